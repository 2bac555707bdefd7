#!/usr/bin/env bash
# bench-mbox.sh -- msync's mbox store side by side with Dovecot and cat.
#
#   [MSYNC=BINARY] scripts/bench-mbox.sh [--size N] [--out DIR] [--timeout SECS]
#                                        [--runs R] [--no-doveadm]
#
# One mbox file of N messages (default 100000: scripts/mkcorpus.sh's
# mbox files of the SpamAssassin corpus, repeated to N, concatenated;
# built once into OUT/corpus-N and reused) is converted, each command
# run once under /usr/bin/time (wall, user, sys seconds, peak RSS) after
# a warm read of its input and a sync:
#   mbox->maildir   msync --backup mbox:FILE DIR
#                   doveadm backup from mail_location=mbox (INBOX=FILE)
#                   into maildir:DIR
#                   cat FILE >COPY, then syncfs (sync -f) of the
#                   copy: reading and writing the bytes, durably
#                   cp -r of msync's resulting Maildir, then syncfs:
#                   the floor for making that many files durably
#                   rsync -a of the same Maildir, then syncfs
#   maildir->mbox   msync --backup DIR mbox:FILE2 (from msync's Maildir)
#                   doveadm backup from that Maildir into an mbox
#                   location
#   nochange        msync mbox->maildir again, nothing changed (after
#                   2 s, so the mbox index's stat is trusted); doveadm
#                   the same
#   append1         1% more messages appended to the mbox (a delivery),
#                   then msync and doveadm again
# With --runs R the mbox->maildir row is run R times (each run shown,
# the load from /proc/loadavg next to it); --no-doveadm leaves doveadm
# out (at 100,000 messages it takes over ten minutes).  OUT decides the
# file system: put it on tmpfs (/dev/shm) and on a disk, and compare.
# Each destination is checked afterwards (message count in the Maildir
# or the mbox's "From " lines).  Output: a table on stdout and in
# OUT/results.md, raw numbers in OUT/results.tsv, logs in OUT/logs/.
#
# As root, doveadm runs as nobody (setpriv) on copies owned by nobody.
# The figures depend on the machine and its load: report every run with
# the machine's description next to it.

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd) || exit 1
size=100000
out=$top/bench-out/mbox
tmo=3600
runs=1
dove=1
while [ $# -gt 0 ]; do
	case $1 in
	--size) size=${2:?}; shift 2 ;;
	--out) out=${2:?}; shift 2 ;;
	--timeout) tmo=${2:?}; shift 2 ;;
	--runs) runs=${2:?}; shift 2 ;;
	--no-doveadm) dove=0; shift ;;
	-h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "bench-mbox: unknown argument '$1'" >&2; exit 64 ;;
	esac
done
die() { echo "bench-mbox: $*" >&2; exit 1; }
for t in /usr/bin/time timeout doveadm perl; do
	command -v "$t" >/dev/null || die "$t is needed"
done
msync=${MSYNC:-$top/msync}
[ -x "$msync" ] || die "build msync first (make)"
mkdir -p "$out/logs" "$out/run" || die "cannot make $out"
out=$(cd "$out" && pwd)

corpus=$out/corpus-$size
if [ ! -d "$corpus/mbox" ]; then
	echo "building the corpus ($size messages) in $corpus" >&2
	rm -rf "$corpus"
	bash "$top/scripts/mkcorpus.sh" "$corpus" "$size" >"$out/logs/corpus" 2>&1 ||
	    die "mkcorpus failed: $(tail -n 1 "$out/logs/corpus")"
	rm -rf "$corpus/maildir"
fi
big=$out/big.mbox
if [ ! -f "$big" ]; then
	cat "$corpus"/mbox/* >"$big" || die "cannot write $big"
fi
nmsg=$(grep -c '^From ' "$big")
bytes=$(stat -c %s "$big")

dove_conf=$out/dovecot.conf
cat >"$dove_conf" <<'EOF'
# msync mbox benchmark: mail_location is given with -o on each call.
mail_location = maildir:~/Maildir
mbox_write_locks = fcntl dotlock
namespace inbox {
  inbox = yes
  prefix =
  separator = /
}
EOF
dove_home=$out/dove-home
mkdir -p "$dove_home"
dove_as=(env USER="$(id -un)" HOME="$dove_home")
owner=
if [ "$(id -u)" = 0 ]; then
	owner="nobody:$(id -gn nobody)"
	dove_as=(setpriv --reuid=nobody --regid="$(id -g nobody)"
	    --clear-groups env USER=nobody HOME="$dove_home")
	chown nobody "$dove_home" && chmod 755 "$out" "$out/run"
fi

tsv=$out/results.tsv
printf 'run\ttool\tseconds\tuser\tsys\tpeak_kb\tresult\tload\n' >"$tsv"

# measure RUN TOOL CHECK CMD...: one timed run; CHECK is a command whose
# output (a count) is recorded as the result.
measure() {
	local run=$1 tool=$2 check=$3 log t load
	shift 3
	log=$out/logs/$run-$tool
	sync
	sleep 2		# settled: no writeback of the last step in the timing
	load=$(cut -d" " -f1 /proc/loadavg)
	/usr/bin/time -f '%e %U %S %M' -o "$log.time" \
	    timeout "$tmo" "$@" >"$log" 2>&1
	echo "exit $?" >>"$log"
	t=$(cat "$log.time" | tail -n 1)
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$tool" $t \
	    "$(eval "$check" 2>/dev/null)" "$load" >>"$tsv"
	printf '%-14s %-8s %s  -> %s (load %s)\n' "$run" "$tool" "$t" \
	    "$(eval "$check" 2>/dev/null)" "$load" >&2
}
warm() { cat "$@" >/dev/null 2>&1 || true; }
count_md() { find "$1/cur" "$1/new" -type f | wc -l; }
count_mbox() { grep -c '^From ' "$1"; }

r=$out/run
rm -rf "${r:?}"/* && mkdir -p "$r/xdg"
export XDG_STATE_HOME=$r/xdg/state XDG_CACHE_HOME=$r/xdg/cache

# mbox -> Maildir: cat, msync, and the copies of msync's Maildir, runs
# times in turn; the last msync Maildir is kept for the next steps.
cp "$big" "$r/in.mbox" && warm "$r/in.mbox"
for _ in $(seq 1 "$runs"); do
	rm -rf "$r/cat.copy" "$r/md" "$r/xdg" "$r/md-cp" "$r/md-rs"
	mkdir -p "$r/xdg"
	measure mbox-maildir cat "stat -c %s $r/cat.copy" \
	    sh -c "cat '$r/in.mbox' >'$r/cat.copy' && sync -f '$r/cat.copy'"
	rm -f "$r/cat.copy"
	measure mbox-maildir msync "count_md $r/md" \
	    "$msync" --backup "mbox:$r/in.mbox" "$r/md"
	warm "$r"/md/cur/*
	measure mbox-maildir cp-r "count_md $r/md-cp" \
	    sh -c "cp -r '$r/md' '$r/md-cp' && sync -f '$r/md-cp'"
	measure mbox-maildir rsync "count_md $r/md-rs" \
	    sh -c "rsync -a '$r/md/' '$r/md-rs/' && sync -f '$r/md-rs'"
	rm -rf "$r/md-cp" "$r/md-rs"
done
if [ "$dove" = 1 ]; then
	mkdir -p "$r/dv" && cp "$big" "$r/dv/inbox" && mkdir -p "$r/dvmd"
	[ -n "$owner" ] && chown -R "$owner" "$r/dv" "$r/dvmd"
	warm "$r/dv/inbox"
	measure mbox-maildir doveadm "count_md $r/dvmd" \
	    "${dove_as[@]}" doveadm -c "$dove_conf" \
	    -o "mail_location=mbox:$r/dv:INBOX=$r/dv/inbox" \
	    backup "maildir:$r/dvmd"
fi

# Maildir -> mbox (both from msync's Maildir)
warm "$r"/md/cur/*
measure maildir-mbox msync "count_mbox $r/out.mbox" \
    "$msync" --backup "$r/md" "mbox:$r/out.mbox"
[ "$dove" = 1 ] && {
cp -r "$r/md" "$r/md-dv" && rm -f "$r/md-dv/msync.index" "$r/md-dv/msync.lock"
mkdir -p "$r/dvout" && touch "$r/dvout/inbox"
[ -n "$owner" ] && chown -R "$owner" "$r/md-dv" "$r/dvout"
measure maildir-mbox doveadm "count_mbox $r/dvout/inbox" \
    "${dove_as[@]}" doveadm -c "$dove_conf" \
    -o "mail_location=maildir:$r/md-dv" \
    backup "mbox:$r/dvout:INBOX=$r/dvout/inbox"
}

# No change
sleep 2
measure nochange msync "count_md $r/md" \
    "$msync" --backup "mbox:$r/in.mbox" "$r/md"
[ "$dove" = 1 ] && measure nochange doveadm "count_md $r/dvmd" \
    "${dove_as[@]}" doveadm -c "$dove_conf" \
    -o "mail_location=mbox:$r/dv:INBOX=$r/dv/inbox" backup "maildir:$r/dvmd"

# 1% appended (a delivery): the first 1% of the corpus again, each with
# a new Message-ID line so that it is new mail.
perl -e '
	my ($n) = @ARGV; my $i = 0; local $/ = "\nFrom ";
	while (my $m = <STDIN>) {
		$m =~ s/\nFrom $//; $m =~ s/^From // if $i == 0 || 1;
		$i++; last if $i > $n;
		$m =~ s/\n\n/\nX-Bench-Append: $i\n\n/;
		print "From $m\n\n" =~ s/\n\n\n$/\n\n/r;
	}' "$((nmsg / 100))" <"$big" >"$out/append.mbox"
cat "$out/append.mbox" >>"$r/in.mbox"
[ "$dove" = 1 ] && cat "$out/append.mbox" >>"$r/dv/inbox"
[ "$dove" = 1 ] && [ -n "$owner" ] && chown -R "$owner" "$r/dv"
measure append1 msync "count_md $r/md" \
    "$msync" --backup "mbox:$r/in.mbox" "$r/md"
[ "$dove" = 1 ] && measure append1 doveadm "count_md $r/dvmd" \
    "${dove_as[@]}" doveadm -c "$dove_conf" \
    -o "mail_location=mbox:$r/dv:INBOX=$r/dv/inbox" backup "maildir:$r/dvmd"

{
	echo "## mbox benchmark: $nmsg messages, $bytes bytes in one mbox"
	echo
	echo "$(uname -srm), $(nproc) CPUs, load $(cut -d" " -f1-3 /proc/loadavg) at the end; every run shown ($runs of mbox->maildir), load before each."
	echo
	echo "| run | tool | wall s | user s | sys s | peak RSS KB | result | load |"
	echo "|---|---|---|---|---|---|---|---|"
	tail -n +2 "$tsv" | while IFS=$'\t' read -r a b c d e f g h; do
		echo "| $a | $b | $c | $d | $e | $f | $g | $h |"
	done
} | tee "$out/results.md"
