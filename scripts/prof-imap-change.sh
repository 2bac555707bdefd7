#!/usr/bin/env bash
# prof-imap-change.sh -- where the 1% re-run IMAP -> Maildir spends its
# time: the account of scripts/bench-imap.sh (a private Dovecot, N
# synthetic messages in INBOX), one initial `msync --backup` into a
# Maildir, then 1% new messages and 1% flag changes on the server, and
# the re-run measured several ways, each on the same change (the
# Maildir and msync's state and cache are copied back before each):
#
#   scripts/prof-imap-change.sh [-n MESSAGES] [--dir DIR] [--runs K]
#                               [--msync BIN]... [--mbsync] [--no-callgrind]
#
#   wall       K timed runs of each build (/usr/bin/time), load1 before each
#   callgrind  valgrind --tool=callgrind --trace-children=yes: the
#              instructions of every msync process (the Maildir side runs
#              in a child msync), per process, files kept in OUT
#   strace     strace -f -c: system calls of all processes; and one
#              timeline (strace -f -ttt -T) kept as OUT/trace.NAME
# With --mbsync the same for mbsync (IMAPStore -> MaildirStore, Sync
# Pull), its state and Maildir restored the same way.  Several --msync
# give several builds, each measured on the same change (before/after).
# DIR (default /dev/shm/msync-prof.$$) holds Dovecot's mail, the Maildir
# and the copies: about 3 x 4.5 KB x N; it is removed at the end.
# Output: a table on stdout and in DIR/../prof-imap-change.md (or --out).

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -uo pipefail
export LC_ALL=C TZ=UTC

top=$(cd "$(dirname "$0")/.." && pwd) || exit 1
n=20000
dir=/dev/shm/msync-prof.$$
runs=3
builds=()
with_mbsync=0
callgrind=1
report=$top/bench-out/prof-imap-change.md
while [ $# -gt 0 ]; do
	case $1 in
	-n) n=$2; shift ;;
	--dir) dir=$2; shift ;;
	--runs) runs=$2; shift ;;
	--msync) builds+=("$2"); shift ;;
	--mbsync) with_mbsync=1 ;;
	--no-callgrind) callgrind=0 ;;
	--out) report=$2; shift ;;
	-h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "prof-imap-change.sh: unknown option '$1'" >&2; exit 64 ;;
	esac
	shift
done
[ ${#builds[@]} -gt 0 ] || builds=("$top/msync")
mkdir -p "$(dirname "$report")" || exit 1

# shellcheck source=lib-bench-imap.sh
. "$top/scripts/lib-bench-imap.sh"
rm -rf "$dir" && mkdir -p "$dir" || exit 1
dir=$(cd "$dir" && pwd)
# shellcheck disable=SC2034  # read by lib-imapd.sh
TRASH=$dir
# shellcheck source=../tests/integration/lib-imapd.sh
. "$top/tests/integration/lib-imapd.sh"
IMAPD_DIR=$dir/imapd
IMAPD_CONF=$IMAPD_DIR/dovecot.conf
export HOME=$dir/home XDG_CACHE_HOME=$dir/home/.cache \
    XDG_STATE_HOME=$dir/home/.local/state
mkdir -p "$HOME"
start_imapd || { echo "prof: Dovecot did not start" >&2; exit 1; }
# shellcheck disable=SC2034  # run by lib-bench-imap.sh's trap
atexit_cmds="stop_imapd; rm -rf '$dir'"
echo "prof: writing $n messages" >&2
bench_account "$n" || exit 1

url=$(imaps_url alice)
ms=("${builds[0]}" --backup --passcmd "echo $IMAPD_PASS" "$url" "$dir/md")
bench_mbsyncrc "$dir/mbsyncrc" "$dir/mb"
echo "prof: initial copies" >&2
"${ms[@]}" || exit 1
if [ $with_mbsync = 1 ]; then
	mkdir -p "$dir/mb" && mbsync -c "$dir/mbsyncrc" -a -q || exit 1
fi
k=$(( n / 100 ))
[ "$k" -ge 1 ] || k=1
# The "before" picture of everything the re-run writes, restored before
# each measured run so that each one sees the same 1% change.
snap() {
	rm -rf "$dir/snap" && mkdir -p "$dir/snap" &&
	cp -a "$dir/md" "$dir/home" "$dir/snap/" &&
	{ [ $with_mbsync = 0 ] || cp -a "$dir/mb" "$dir/snap/"; }
}
# In place (rsync), not a new copy: a Maildir whose directories are new
# (other inode, birth time) is one msync takes for a store recreated at
# the same path, and checks every file's size once (a stat per message).
restore() {
	local d
	for d in md home mb; do
		[ -d "$dir/snap/$d" ] || continue
		rsync -a --delete "$dir/snap/$d/" "$dir/$d/" || return 1
	done
	sync
	sleep 1.5	# stores settled (mtime granularity)
}
snap || exit 1
# shellcheck disable=SC2154  # maildir: set by bench_account
bench_gen "$dir/new" "$k" 2 imap && mv "$dir/new/cur/"* "$maildir/cur/" &&
doveadm -c "$IMAPD_CONF" flags add -u alice '\Flagged' mailbox INBOX \
    "14:$((14 + k - 1))" || exit 1
doveadm -c "$IMAPD_CONF" mailbox status -u alice messages INBOX >&2
sleep 1.5

rows=()
row() { rows+=("$*"); echo "prof: $*" >&2; }
load() { cut -d' ' -f1 /proc/loadavg; }

# measure NAME CMD...: wall runs, callgrind, strace of one re-run.
measure() {
	local name=$1 i t l f tot
	shift
	for i in $(seq 1 "$runs"); do
		restore
		l=$(load)
		/usr/bin/time -f '%e %U %S' -o "$dir/time" "$@" \
		    >"$dir/log" 2>&1
		row "| $name | wall $i | $(cat "$dir/time") | load $l |"
	done
	if [ $callgrind = 1 ]; then
		restore
		rm -f "$dir"/callgrind.out.*
		l=$(load)
		valgrind --tool=callgrind --trace-children=yes \
		    --callgrind-out-file="$dir/callgrind.out.%p" "$@" \
		    >"$dir/log" 2>&1
		tot=0
		for f in "$dir"/callgrind.out.*; do
			i=$(sed -n 's/^summary: //p;s/^totals: //p' "$f" |
			    head -n 1)
			t=$(sed -n 's/^cmd: //p' "$f" | cut -c1-60)
			row "| $name | callgrind | $i | $t |"
			tot=$((tot + i))
			cp "$f" "$(dirname "$report")/callgrind.$name.$(basename "$f" |
			    sed 's/.*\.//')"
		done
		row "| $name | callgrind total | $tot | load $l |"
	fi
	restore
	strace -f -c -o "$dir/strace" "$@" >"$dir/log" 2>&1
	row "| $name | syscalls | $(tail -n 1 "$dir/strace" |
	    awk '{print $(NF-2) " calls, " $(NF-1) " errors"}') | |"
	cp "$dir/strace" "$(dirname "$report")/strace.$name"
	# A timeline (every call with its time and duration): where it waits.
	restore
	strace -f -ttt -T -o "$(dirname "$report")/trace.$name" "$@" \
	    >"$dir/log" 2>&1
}

b=0
for bin in "${builds[@]}"; do
	b=$((b + 1))
	measure "msync$b" "$bin" --backup --passcmd "echo $IMAPD_PASS" "$url" \
	    "$dir/md"
done
[ $with_mbsync = 0 ] || measure mbsync mbsync -c "$dir/mbsyncrc" -a -q

{
	echo "# prof-imap-change: $n messages, 1% change ($k new, $k flagged), IMAP -> Maildir"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $dir"
	for i in $(seq 1 ${#builds[@]}); do
		echo "msync$i: ${builds[$((i - 1))]}"
	done
	echo
	echo "| tool | what | figures | |"
	echo "|---|---|---|---|"
	printf '%s\n' "${rows[@]}"
} | tee "$report"
