#!/usr/bin/env bash
test_description='peak memory per message (issue 10.3): both processes of a local run, initial, no-change and 1% runs, --backup and two-way, on a store of many small folders'
. "$(dirname "$0")/lib.sh"

# Each brain appends "A|B <VmHWM kB>" to $MSYNC_TEST_HWM when it ends
# (src/brain.c report_hwm): the client and the forked server brain of a
# local run, which /usr/bin/time alone does not tell apart.  What a run
# costs beyond a run of a near-empty pair (the program, its libraries,
# the fixed buffers of the channel) is divided by the number of messages
# and bounded.  The shape is that of issue 10's 200,000 messages in 2,000
# folders: 100 messages per folder.  A memory bound, not a time limit.
n=${MSYNC_TEST_MEM_N:-10000}
nf=$(( n / 100 ))
# Bytes per message above the near-empty run.  Measured at 10,000: see
# docs/PERFORMANCE.md "Memory"; the bound leaves room for malloc's
# arenas and the noise of a page here and there.
bound=${MSYNC_TEST_MEM_BOUND:-300}
changes_pl=$SRCDIR/scripts/bench-changes.pl

if ! test_have_prereq CORPUS; then
	skip_all="no SpamAssassin corpus in $MSYNC_CORPUS_CACHE"
	test_done
fi
if ! test -r /proc/self/status; then
	skip_all="no /proc/self/status"
	test_done
fi

# split DIR N: moves every message of the Maildir++ DIR into N folders,
# INBOX and .F0001 ... (round robin over the sorted names).
split_folders() {
	perl - "$1" "$2" <<'PL'
use strict; use warnings;
my ($src, $n) = @ARGV;
$src .= "/" unless $src =~ m{/$};
opendir(my $d, $src) or die "$src: $!";
my @dirs = ("", grep { /^\.[^.]/ && -d "$src/$_/cur" } readdir $d);
closedir $d;
my @files;
for my $f (@dirs) {
	for my $s ("cur", "new") {
		opendir(my $h, "$src$f/$s") or next;
		push @files, map { [$f, $s, $_] } grep { !/^\./ } readdir $h;
		closedir $h;
	}
}
@files = sort { "$a->[0]/$a->[1]/$a->[2]" cmp "$b->[0]/$b->[1]/$b->[2]" } @files;
for my $i (1 .. $n - 1) {
	my $fd = sprintf("%s.F%04d", $src, $i);
	mkdir $fd or die "$fd: $!";
	mkdir "$fd/$_" or die "$fd/$_: $!" for ("cur", "new", "tmp");
}
my $k = 0;
for my $e (@files) {
	my ($f, $s, $name) = @$e;
	my $i = $k++ % $n;
	my $to = $i == 0 ? "$src$s/$name" :
	    sprintf("%s.F%04d/%s/%s", $src, $i, $s, $name);
	rename("$src$f/$s/$name", $to) or die "$f/$s/$name: $!";
}
for my $f (@dirs) {
	next if $f eq "";
	rmdir "$src$f/$_" for ("cur", "new", "tmp");
	rmdir "$src$f" or die "$src$f: $!";
}
PL
}

# hwm SIDE: the VmHWM (kB) SIDE's brain reported in ./hwm.
hwm() {
	awk -v s="$1" '$1 == s { print $2 }' hwm
}

# run_hwm WHAT ARGS...: runs msync ARGS with the hook, keeps A's and B's
# peak in WHAT.A and WHAT.B.
run_hwm() {
	what=$1
	shift
	rm -f hwm &&
	MSYNC_TEST_HWM=$PWD/hwm "$MSYNC" "$@" &&
	hwm A >"$what.A" && hwm B >"$what.B" &&
	test -s "$what.A" && test -s "$what.B"
}

# per_msg WHAT: checks that WHAT's peak of each side is at most $bound
# bytes per message above the near-empty run's, and says what it was.
per_msg() {
	for s in A B; do
		per=$(( ($(cat "$1.$s") - $(cat "empty.$s")) * 1024 / n ))
		echo "# $1: $s peak $(cat "$1.$s") kB, $per bytes/message" \
		    "above a near-empty run ($(cat "empty.$s") kB)" >&7
		if test "$per" -gt "$bound"; then
			echo "# $1: $s uses $per bytes/message (bound $bound)" >&7
			return 1
		fi
	done
}

test_expect_success 'setup: corpus in folders of 100 messages, a 1% change set' '
	make_corpus --no-mbox corpus "$n" >corpus.log 2>&1 &&
	perl "$changes_pl" untrash corpus/maildir >/dev/null &&
	split_folders corpus/maildir "$nf" &&
	test "$(find corpus/maildir -path "*/cur/*" -o -path "*/new/*" -type f |
	    wc -l)" = "$n" &&
	test -d corpus/maildir/.F0001/cur &&
	perl "$changes_pl" gen corpus/maildir 42 1 >changes &&
	make_corpus --no-mbox tiny 5 >tiny.log 2>&1 &&
	run_hwm empty --backup tiny/maildir tiny/dst &&
	test "$(cat empty.A)" -gt 0 && test "$(cat empty.B)" -gt 0
'

test_expect_success 'the hook reports both processes' '
	run_hwm hook --backup tiny/maildir tiny/dst &&
	test "$(wc -l <hwm)" = 2
'

for mode in backup twoway; do
	case $mode in
	backup) opt=--backup ;;
	twoway) opt= ;;
	esac

	test_expect_success "$mode: initial copy, peak bytes per message bounded" '
		rm -rf $mode && mkdir $mode && cp -a corpus/maildir $mode/src &&
		run_hwm $mode.initial $opt $mode/src $mode/dst &&
		per_msg $mode.initial
	'

	test_expect_success "$mode: no-change run, bounded" '
		run_hwm $mode.nochange $opt $mode/src $mode/dst &&
		per_msg $mode.nochange
	'

	test_expect_success "$mode: 1% run, bounded, and every change made" '
		perl "$changes_pl" apply changes corpus/maildir $mode/src \
		    >$mode/applied &&
		run_hwm $mode.onepct $opt $mode/src $mode/dst &&
		per_msg $mode.onepct &&
		"$MSYNC" $opt --list $mode/dst >/dev/null &&
		(cd $mode/src && find . -path "*/cur/*" -o -path "*/new/*" |
		    sed "s/:2,.*//" | sort) >$mode/src.names &&
		test "$(wc -l <$mode/src.names)" = \
		    "$(find $mode/dst -path "*/cur/*" -o -path "*/new/*" |
		    grep -vc "msync.index")"
	'
done

test_done
