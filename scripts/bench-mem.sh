#!/usr/bin/env bash
# bench-mem.sh -- peak memory of both msync processes (issue 10.3) at the
# issue's shape: N messages in folders of 100.
#
#   sh scripts/bench-mem.sh [--mode backup|twoway] [--msync BIN] [--keep]
#       WORKDIR N [FOLDERS]
#
# Builds WORKDIR/store once (scripts/mkcorpus.sh --no-mbox, the T flag
# cleared, scripts/split-folders.pl into FOLDERS folders, default N/100,
# and bench-changes.pl's change set of seed 42 at 1%), then, on a copy:
# the initial sync into an empty destination, a no-change sync, the 1%
# change applied (and a 1.2 s pause), the 1% sync.  Each prints the
# VmHWM of the client (A) and of the server brain (B) that msync reports
# with MSYNC_TEST_HWM, in kB and bytes per message of the store, with the
# load (uptime) at the start of the run, and checks that both stores
# hold as many messages, seen and flagged ones (bench-changes.pl stat).
# The sync state and caches live in WORKDIR; the copy is removed at the
# end unless --keep.  Put WORKDIR on the file system to measure (disk,
# not /dev/shm, for large N).

# Re-run under bash if started by another sh (the docs say `sh`).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -eu
mode=backup
bin=
keep=0
while [ $# -gt 0 ]; do
	case $1 in
	--mode) mode=$2; shift 2 ;;
	--msync) bin=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	-*) echo "bench-mem.sh: unknown option $1" >&2; exit 64 ;;
	*) break ;;
	esac
done
if [ $# -lt 2 ]; then
	sed -n '2,20s/^# \{0,1\}//p' "$0" >&2
	exit 64
fi
here=$(cd "$(dirname "$0")" && pwd)
: "${bin:=$here/../msync}"
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
work=$1 n=$2 nf=${3:-$(( $2 / 100 ))}
case $mode in
backup) opt=--backup ;;
twoway) opt= ;;
*) echo "bench-mem.sh: --mode backup or twoway" >&2; exit 64 ;;
esac
mkdir -p "$work"
work=$(cd "$work" && pwd)
if [ ! -s "$work/store/changes" ]; then
	rm -rf "$work/store"
	mkdir -p "$work/store"
	bash "$here/mkcorpus.sh" --no-mbox "$work/store/c" "$n" \
	    >"$work/store/mkcorpus.log" 2>&1
	perl "$here/bench-changes.pl" untrash "$work/store/c/maildir" >/dev/null
	if [ "$nf" -gt 1 ]; then
		perl "$here/split-folders.pl" "$work/store/c/maildir" "$nf"
	fi
	perl "$here/bench-changes.pl" gen "$work/store/c/maildir" 42 1 \
	    >"$work/store/changes.tmp"
	mv "$work/store/changes.tmp" "$work/store/changes"
fi
run=$work/run-$mode
rm -rf "$run"
mkdir -p "$run/xdg"
cp -a "$work/store/c/maildir" "$run/src"
export XDG_STATE_HOME=$run/xdg XDG_CACHE_HOME=$run/xdg

one() {
	load=$(uptime | sed 's/.*load average: //')
	rm -f "$run/hwm"
	MSYNC_TEST_HWM=$run/hwm "$bin" $opt "$run/src" "$run/dst" \
	    2>>"$run/log"
	a=$(awk '$1 == "A" { print $2 }' "$run/hwm")
	b=$(awk '$1 == "B" { print $2 }' "$run/hwm")
	printf '%s %s: A %s kB (%d B/msg), B %s kB (%d B/msg); load %s\n' \
	    "$mode" "$1" "$a" $(( a * 1024 / n )) "$b" $(( b * 1024 / n )) \
	    "$load"
}

one initial
one nochange
perl "$here/bench-changes.pl" apply "$work/store/changes" \
    "$work/store/c/maildir" "$run/src" >"$run/applied"
sleep 1.2
one onepct
s=$(perl "$here/bench-changes.pl" stat "$run/src")
d=$(perl "$here/bench-changes.pl" stat "$run/dst")
echo "stores: A $s, B $d (messages seen flagged)"
test "$s" = "$d"
[ "$keep" = 1 ] || rm -rf "$run"
