#!/usr/bin/env bash
test_description='msync --list on real mail: counts, sizes and GUIDs checked independently; index and bad input'

# The corpus cache is shared with every other user of scripts/mkcorpus.sh
# (CI fills it under the real home).  lib.sh moves HOME into the trash
# directory, so take the location now, before it does (lib.sh keeps a value
# that is already set).
: "${MSYNC_CORPUS_CACHE:=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/msync-corpus}"
export MSYNC_CORPUS_CACHE

. "$(dirname "$0")/lib.sh"

# How many corpus messages (a few thousand; MSYNC_TEST_CORPUS_N to change).
corpus_n=${MSYNC_TEST_CORPUS_N:-3000}

test_lazy_prereq XXHSUM 'command -v xxhsum && echo x | xxhsum -H2'
test_lazy_prereq STRACE 'command -v strace && strace -f -e trace=openat -o /dev/null true'

# expected_listing ROOT OUT: what `msync --list -v ROOT` must say, computed
# without msync: OUT.mbox gets one "NAME<TAB>COUNT<TAB>BYTES" line per
# mailbox (count with find, bytes with stat); OUT.msgs one
# "NAME<TAB>GUID<TAB>FLAGS<TAB>SIZE" line per message, the GUID being
# xxhsum -H2 (XXH3-128) of a copy with every CRLF turned into LF.  msync
# prints the 128-bit hash in its canonical big-endian form, the same 32
# hex digits as xxhsum 0.8's XXH128 output, so the two compare as they are
# (no byte reversal).  Both files sorted.
mbox_name() {
	case $1 in
	.) echo INBOX ;;
	./.*) local n=${1#./.}; echo "${n//.//}" ;;
	*) echo "?$1" ;;
	esac
}
expected_listing() {
	local root=$1 out=$2 d name count bytes
	rm -rf "$out.norm" && mkdir "$out.norm" && : >"$out.mbox" &&
	: >"$out.manifest" || return 1
	for d in $(cd "$root" && find . -maxdepth 1 \( -name . -o -name '.?*' \) -type d | sort); do
		[ -d "$root/$d/cur" ] || continue
		name=$(mbox_name "$d")
		count=$(find "$root/$d/cur" "$root/$d/new" -maxdepth 1 -type f | wc -l) &&
		bytes=$(find "$root/$d/cur" "$root/$d/new" -maxdepth 1 -type f \
		    -exec stat -c %s {} + | awk '{ s += $1 } END { print s + 0 }') &&
		printf '%s\t%s\t%s\n' "$name" "$count" "$bytes" >>"$out.mbox" &&
		# One normalised copy per message, named by a counter; the
		# manifest maps the counter to mailbox, flags and stat size.
		find "$root/$d/cur" "$root/$d/new" -maxdepth 1 -type f -print0 |
		perl -0 -ne '
			BEGIN { ($dir, $name, $man) = @ARGV[0, 1, 2]; @ARGV = ();
				open(M, ">>", $man) or die "$man: $!"; $k = $ENV{K} // 0 }
			chomp; my $p = $_;
			open(my $in, "<", $p) or die "$p: $!"; binmode $in;
			local $/; my $c = <$in>; close $in;
			$c =~ s/\r\n/\n/g;
			my $n = sprintf "%s-%06d", $name =~ tr{/}{_}r, $k++;
			open(my $o, ">", "$dir/$n") or die "$dir/$n: $!"; binmode $o;
			print $o $c; close $o or die "$dir/$n: $!";
			my ($f) = $p =~ m{/cur/[^/]*:2,([^/]*)$};
			$f //= "";
			$f = join "", grep { index($f, $_) >= 0 } qw(D F P R S T);
			$f = "-" if $f eq "";
			print M join("\t", $n, $name, $f, -s $p), "\n";
		' "$out.norm" "$name" "$out.manifest" || return 1
	done
	sort -o "$out.mbox" "$out.mbox" &&
	(cd "$out.norm" && find . -type f -printf '%f\0' | xargs -0 -r xxhsum -H2) |
	    awk '{ print $2 "\t" $1 }' | sort >"$out.hash" &&
	sort "$out.manifest" >"$out.manifest.s" &&
	join -t "$(printf '\t')" "$out.manifest.s" "$out.hash" |
	    awk -F '\t' '{ print $2 "\t" $5 "\t" $3 "\t" $4 }' | sort >"$out.msgs" &&
	test "$(wc -l <"$out.msgs")" = "$(wc -l <"$out.manifest")"
}

# listing_msgs FILE: the message lines of a `--list -v` output as
# "NAME<TAB>GUID<TAB>FLAGS<TAB>SIZE", sorted; checks that the UIDs of
# each mailbox are distinct.
listing_msgs() {
	awk -F '\t' '
		/^  / { if (seen[mb, $1]++) { print "duplicate UID " $1 " in " mb > "/dev/stderr"; bad = 1 }
			print mb "\t" $2 "\t" $3 "\t" $4; next }
		{ mb = $1 }
		END { exit bad }
	' "$1" >"$1.msgs.u" && sed 's/^\([^\t]*\t\)  [0-9]*\t/\1/' "$1.msgs.u" | sort >"$1.msgs"
}
listing_mbox() {
	grep -v '^  ' "$1" | sort >"$1.mbox"
}

# --- the corpus ------------------------------------------------------

corpus_mode=${MSYNC_TEST_CORPUS:-}
if ! test_have_prereq PERL; then
	skip_all="perl with Digest::MD5 is needed"
	test_done
fi
if test_have_prereq CORPUS &&
    make_corpus --no-mbox corpus "$corpus_n" >corpus.log 2>&1; then
	test_set_prereq CORPUS_BUILT
elif [ "$corpus_mode" = true ]; then
	test_expect_success 'build the corpus (MSYNC_TEST_CORPUS=true)' '
		cat corpus.log 2>/dev/null;
		echo "cannot build the corpus: no npm/network and no cache in $MSYNC_CORPUS_CACHE" &&
		false
	'
	test_done
else
	skip_all="no SpamAssassin corpus: no cache in $MSYNC_CORPUS_CACHE and npm could not fetch it ($(tail -n 1 corpus.log 2>/dev/null))"
	test_done
fi
# shellcheck disable=SC2034  # used in the test bodies
C=$TRASH/corpus/maildir

test_expect_success 'the corpus has the messages asked for' '
	cat corpus.log &&
	test "$(find "$C" -path "*/cur/*" -o -path "*/new/*" | grep -c ,S=)" = "$corpus_n" &&
	expected_listing "$C" exp
'

test_expect_success '--list: one line per mailbox, counts and bytes as find and stat say' '
	"$MSYNC" --list "$C" >list.out 2>list.err &&
	test_line_count = 5 list.out &&
	sort list.out >list.sorted &&
	test_cmp exp.mbox list.sorted &&
	grep "^INBOX	" list.out &&
	grep "^Lists/Newsletters	" list.out &&
	grep "^Junk/Old	" list.out
'

test_expect_success XXHSUM '--list -vv: every message, GUID = XXH3-128 of the LF form, size, flags' '
	"$MSYNC" --list -vv "$C" >listvv.out 2>listvv.err &&
	listing_mbox listvv.out && test_cmp exp.mbox listvv.out.mbox &&
	listing_msgs listvv.out &&
	test_line_count = "$corpus_n" listvv.out.msgs &&
	test_cmp exp.msgs listvv.out.msgs
'

test_expect_success XXHSUM '--list -v lists the messages too, with the same GUIDs' '
	"$MSYNC" --list -v "$C" >listv.out &&
	listing_mbox listv.out && test_cmp exp.mbox listv.out.mbox &&
	listing_msgs listv.out && test_cmp exp.msgs listv.out.msgs
'

test_expect_success XXHSUM 'CRLF copies get the GUID of the LF form; their size is the file size' '
	make_maildir crlf &&
	for f in $(find "$C/cur" -type f | sort | head -n 20); do
		perl -pe "BEGIN { binmode STDIN; binmode STDOUT } s/\r?\n/\r\n/" \
		    <"$f" >"crlf/cur/$(basename "$f")" || return 1
	done &&
	test "$(grep -lc "$(printf "\r")" crlf/cur/* | wc -l)" = 20 &&
	expected_listing crlf expcrlf &&
	"$MSYNC" --list -v crlf >crlf.out &&
	listing_mbox crlf.out && test_cmp expcrlf.mbox crlf.out.mbox &&
	listing_msgs crlf.out && test_cmp expcrlf.msgs crlf.out.msgs &&
	# the same GUIDs as the LF originals in the corpus listing
	cut -f2 crlf.out.msgs | sort >g.crlf &&
	cut -f2 listv.out.msgs | sort >g.all &&
	test "$(comm -23 g.crlf g.all | wc -l)" = 0 &&
	# and bigger sizes than the LF originals
	test "$(grep -v "^  " crlf.out | cut -f3)" -gt \
	    "$(find "$C/cur" -type f | sort | head -n 20 | xargs stat -c %s | awk "{ s += \$1 } END { print s }")"
'

# (LeakSanitizer cannot run under ptrace: leak checking is off for the
# traced runs of a sanitizer build.)
test_expect_success STRACE 'a first --list with no index reads the message files (the check below sees them)' '
	rm -rf "$XDG_CACHE_HOME/msync/index" &&
	ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" strace -f -e trace=open,openat,openat2 -o trace1 "$MSYNC" --list -v "$C" >first.out &&
	test "$(grep -c "msync-corpus,S=" trace1)" -ge "$corpus_n"
'

test_expect_success STRACE 'a second --list after no change opens no file under cur/ or new/' '
	"$MSYNC" --list -v "$C" >warm.out &&
	ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" strace -f -e trace=open,openat,openat2 -o trace2 "$MSYNC" --list -v "$C" >second.out &&
	test_cmp warm.out second.out &&
	! grep -E "msync-corpus,S=|/(cur|new)/[^\"]" trace2 &&
	! grep -E "openat\([0-9]+, \"[0-9]+\.[^\"]*\"" trace2 &&
	listing_msgs second.out && test_cmp listv.out.msgs second.out.msgs
'

test_expect_success 'a corrupt index (truncated, bytes flipped) is rebuilt with a warning' '
	"$MSYNC" --list -v "$C" >before.out &&
	ls "$XDG_CACHE_HOME"/msync/index/*.index >indexes &&
	test "$(wc -l <indexes)" -ge 5 &&
	truncate -s 10 "$(sed -n 1p indexes)" &&
	f=$(sed -n 2p indexes) &&
	size=$(stat -c %s "$f") &&
	printf "\377\000\252\125" | dd of="$f" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null &&
	f=$(sed -n 3p indexes) &&
	printf "garbage, not an index\n" >"$f" &&
	"$MSYNC" --list -v "$C" >after.out 2>after.err &&
	cat after.err &&
	test "$(grep -ci "corrupt" after.err)" = 3 &&
	grep -i "rebuild" after.err &&
	listing_mbox after.out && test_cmp exp.mbox after.out.mbox &&
	listing_msgs after.out && listing_msgs before.out &&
	cut -f1,2,3,4 before.out.msgs >b && cut -f1,2,3,4 after.out.msgs >a &&
	test_cmp b a &&
	"$MSYNC" --list -v "$C" >again.out 2>again.err &&
	! grep -i corrupt again.err
'

test_expect_success 'an empty index file is rebuilt, not fatal' '
	f=$(sed -n 4p indexes) && : >"$f" &&
	"$MSYNC" --list "$C" >empty.out 2>empty.err &&
	sort empty.out >empty.sorted && test_cmp exp.mbox empty.sorted
'

# BUG: the index knows a message by its file name only.  When a store is
# replaced at the same path (deleted and restored, or recreated) by files
# with the same names but other content, the index of a read-only store
# (kept in $XDG_CACHE_HOME/msync/index, so it survives the store) is
# trusted: --list -v prints the old GUID and size, and every --backup or
# --one-way from that store fails with exit 65 ("does not match its GUID"),
# also with --full, until the cache is deleted by hand.  Reproduce:
#   mkdir -p s/cur s/new s/tmp; echo one >s/cur/1.x.h:2,S; msync --list -v s
#   rm -rf s; mkdir -p s/cur s/new s/tmp; echo other >s/cur/1.x.h:2,S
#   msync --list -v s            # the GUID and size of "one"
#   msync --backup --full s d    # exit 65, every time
test_expect_success XXHSUM 'a store recreated with same-named files of other content is rehashed' '
	make_maildir re &&
	printf "Subject: one\n\nthe first store\n" >re/cur/1.x.host:2,S &&
	"$MSYNC" --list -v re >re1.out &&
	rm -rf re && make_maildir re &&
	printf "Subject: two\n\nanother store, with other bytes\n" >re/cur/1.x.host:2,S &&
	expected_listing re expre &&
	"$MSYNC" --list -v re >re2.out &&
	listing_mbox re2.out && test_cmp expre.mbox re2.out.mbox &&
	listing_msgs re2.out && test_cmp expre.msgs re2.out.msgs
'

test_expect_success 'a backup from such a store is not stuck at exit 65 (with --full at least)' '
	test_might_fail "$MSYNC" --backup re re.dst &&
	"$MSYNC" --backup --full re re.dst &&
	cmp re/cur/1.x.host:2,S re.dst/cur/*
'

# --- the in-folder msync.index of a writable store ---------------------

test_expect_success 'setup: a synced pair writes msync.index into each folder' '
	make_folder s Work &&
	for i in 1 2 3 4 5; do deliver s "" S >/dev/null || return 1; done &&
	for i in 6 7 8; do deliver s/.Work "" >/dev/null || return 1; done &&
	"$MSYNC" s t &&
	test_path_is_file s/msync.index && test_path_is_file s/.Work/msync.index &&
	test_path_is_file t/msync.index && test_cmp_trees s t
'

test_expect_success 'corrupt msync.index files: warned, rebuilt, nothing lost or deleted' '
	maildir_digest s >s.before &&
	truncate -s 7 s/msync.index &&
	size=$(stat -c %s t/.Work/msync.index) &&
	printf "\377\377\377\377" | dd of=t/.Work/msync.index bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null &&
	deliver t "" F >/dev/null &&
	"$MSYNC" s t 2>sync.err &&
	cat sync.err &&
	grep -i "corrupt" sync.err | grep -F "$TRASH/s/msync.index" &&
	grep -i "corrupt" sync.err | grep -F "$TRASH/t/.Work/msync.index" &&
	test "$(count_all s)" = 9 && test_cmp_trees s t &&
	"$MSYNC" --list s >s.list 2>s.list.err && ! grep -i corrupt s.list.err &&
	"$MSYNC" s t 2>again.err && ! grep -i corrupt again.err &&
	test_cmp_trees s t
'

test_expect_success 'a --list of the writable store reads its msync.index' '
	"$MSYNC" --list -v s >sl.out 2>sl.err &&
	grep "^INBOX	6	" sl.out && grep "^Work	3	" sl.out
'

# A folder whose change token did not move needs only the header of its
# index (checked by its own "head" checksum); the messages are read, and
# the whole file checked, only when something needs them.
test_expect_success 'an unchanged folder: the index header is enough; damage below it shows when the messages are read' '
	sleep 2 && "$MSYNC" s t && "$MSYNC" s t &&
	grep "^token [0-9]" s/.Work/msync.index &&
	line=$(($(grep -n "^head " s/.Work/msync.index | cut -d: -f1) + 1)) &&
	sed -i "${line}s/^\([0-9]*\) \(.\)/\1 x/" s/.Work/msync.index &&
	"$MSYNC" s t 2>h1.err && test_line_count = 0 h1.err &&
	"$MSYNC" --full s t 2>h2.err && cat h2.err &&
	grep -i "corrupt" h2.err | grep -F "$TRASH/s/.Work/msync.index" &&
	test "$(count_all s)" = 9 && test_cmp_trees s t
'

test_expect_success 'a read-only run says so when the store'"'"'s own index is corrupt' '
	sleep 2 && "$MSYNC" s t &&
	line=$(($(grep -n "^head " s/.Work/msync.index | cut -d: -f1) + 1)) &&
	sed -i "${line}s/^\([0-9]*\) \(.\)/\1 x/" s/.Work/msync.index &&
	"$MSYNC" --list -v s >ro.out 2>ro.err && cat ro.err &&
	grep -i "corrupt" ro.err | grep -F "$TRASH/s/.Work/msync.index" &&
	grep "^Work	3	" ro.out
'

# --- bad input ---------------------------------------------------------

test_expect_success 'setup: a store with a folder without cur/, empty files, links' '
	make_folder bad Good &&
	deliver bad "" S >/dev/null && deliver bad "" >/dev/null &&
	keep=$(deliver bad "" R) &&
	deliver bad/.Good "" S >/dev/null &&
	mkdir -p bad/.NoCur/new bad/.NoCur/tmp &&
	deliver bad/.NoCur "" >/dev/null &&
	: >bad/cur/1000.empty.host:2,S &&
	ln -s "$TRASH/$keep" bad/cur/1001.symlink.host:2, &&
	ln -s "$TRASH/$keep" bad/new/1002.symlink.host &&
	gen_message 500 hard >hard.eml &&
	cp hard.eml bad/cur/1003.hard.host:2,S &&
	ln bad/cur/1003.hard.host:2,S bad/.Good/cur/1004.hard.host:2,S &&
	mkdir outside && gen_message 501 out >outside/msg &&
	ln -s "$TRASH/outside/msg" bad/.Good/new/1005.symlink.host
'

test_expect_success 'a folder without cur/ is named; the rest lists; links and empty files are skipped' '
	"$MSYNC" --list -v bad >bad.out 2>bad.err; rc=$? &&
	cat bad.out bad.err &&
	test "$rc" = 0 &&
	grep "bad/.NoCur" bad.err | grep -i "cur" &&
	grep "^INBOX	3	" bad.out && grep "^Good	1	" bad.out &&
	! grep "^NoCur" bad.out &&
	grep "1000.empty.host" bad.err | grep -i empty &&
	grep "1001.symlink.host" bad.err | grep -i "link" &&
	grep "1002.symlink.host" bad.err | grep -i "link" &&
	grep "1005.symlink.host" bad.err | grep -i "link" &&
	grep "1003.hard.host" bad.err | grep -i "link" &&
	grep "1004.hard.host" bad.err | grep -i "link" &&
	test "$(grep -c "^  " bad.out)" = 4
'

test_expect_success 'skipped files are left alone' '
	test_path_is_file bad/cur/1000.empty.host:2,S &&
	test -L bad/cur/1001.symlink.host:2, &&
	test -L bad/new/1002.symlink.host &&
	test "$(stat -c %h bad/cur/1003.hard.host:2,S)" = 2 &&
	test_path_is_dir bad/.NoCur/new && test "$(ls bad/.NoCur/new | wc -l)" = 1 &&
	cmp outside/msg "$(readlink bad/.Good/new/1005.symlink.host)"
'

test_expect_success NOT_ROOT 'an unreadable file is named and skipped, the rest still lists' '
	f=$(deliver bad "" T) &&
	chmod 000 "$f" &&
	test_when_finished "rm -f \"$f\"" &&
	"$MSYNC" --list -v bad >unr.out 2>unr.err &&
	cat unr.err &&
	grep "$(basename "$f")" unr.err &&
	grep "^INBOX	3	" unr.out && grep "^Good	1	" unr.out
'

test_expect_success 'a sync of the bad store copies only the good messages and touches nothing else' '
	"$MSYNC" bad good 2>bsync.err; rc=$? &&
	cat bsync.err && test "$rc" = 0 &&
	test "$(count_msgs good)" = 3 &&
	test "$(count_msgs good/.Good)" = 1 &&
	test_path_is_missing good/.NoCur &&
	test_path_is_file bad/cur/1000.empty.host:2,S &&
	test -L bad/cur/1001.symlink.host:2, &&
	test "$(stat -c %h bad/cur/1003.hard.host:2,S)" = 2
'

test_done
