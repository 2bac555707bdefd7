#!/usr/bin/env bash
# bench-1pct.sh -- the 1% run of issue 10.3 on tmpfs, msync next to mbsync,
# with instruction counts that do not depend on the machine's load.
#
#   sh scripts/bench-1pct.sh [-n MESSAGES] [-r RUNS] [-m MSYNC] [-t TOOLS]
#                            [--no-callgrind] [--keep]
#
# For each tool (default "msync-backup msync-sync mbsync"), in the same
# session: copy the corpus to a fresh directory on tmpfs, initial sync,
# no-change sync, apply the benchmark's 1% change set (bench-changes.pl,
# seed 42: 1% new, 1% flag changes, 1% expunges), sleep 2 so that the
# stores are settled, then the timed run.  That is done once under
# `valgrind --tool=callgrind --trace-children=yes` (a local msync run forks
# a second brain for the destination: both processes are counted) and RUNS
# times (default 3) under /usr/bin/time; every run is printed with the
# 1-minute load average at its start.  Each run checks that the
# destination has the source's message, Seen and Flagged counts.
#
# The corpus (scripts/mkcorpus.sh, 5 folders) is built once on disk in
# ${BENCH_1PCT_DIR:-/tmp/msync-bench-1pct}/corpus-N and reused; the runs
# use ${BENCH_TMPFS:-/dev/shm}/msync-1pct.XXXXXX, removed at the end
# (one tool's pair, about 2 x 110 MB at 20,000 messages, at a time);
# BENCH_TMPFS=/some/dir/on/disk measures on a disk instead (the header
# line names the file system).

# Re-run under bash if started by another sh (the docs say `sh`).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
n=20000 runs=3 msync=$top/msync tools="msync-backup msync-sync mbsync"
do_cg=1 keep=0
while [ $# -gt 0 ]; do
	case $1 in
	-n) n=$2; shift ;;
	-r) runs=$2; shift ;;
	-m) msync=$2; shift ;;
	-t) tools=$2; shift ;;
	--no-callgrind) do_cg=0 ;;
	--keep) keep=1 ;;
	*) echo "usage: bench-1pct.sh [-n N] [-r RUNS] [-m MSYNC] [-t TOOLS]" \
	    "[--no-callgrind] [--keep]" >&2; exit 64 ;;
	esac
	shift
done
die() { echo "bench-1pct: $*" >&2; exit 1; }
chg=$top/scripts/bench-changes.pl
. "$top/scripts/lib-mbsyncrc.sh"
base=${BENCH_1PCT_DIR:-/tmp/msync-bench-1pct}
corpus=$base/corpus-$n
[ -x "$msync" ] || die "no msync binary at $msync (make first)"
if [ ! -f "$corpus/done" ]; then
	rm -rf "$corpus"
	mkdir -p "$base" || die "cannot make $base"
	bash "$top/scripts/mkcorpus.sh" --no-mbox "$corpus" "$n" >&2 ||
	    die "cannot build the corpus"
	# mbsync expunges T (trashed) messages on its first run: clear T so
	# that every tool copies the same messages (as bench.sh does).
	perl "$chg" untrash "$corpus/maildir" >&2 || die "untrash"
	touch "$corpus/done"
fi
perl "$chg" gen "$corpus/maildir" 42 1 >"$corpus/changes.txt" || die "gen"
w=$(mktemp -d "${BENCH_TMPFS:-/dev/shm}/msync-1pct.XXXXXX") ||
    die "cannot make a directory on tmpfs"
[ "$keep" = 1 ] || trap 'rm -rf "$w"' EXIT

# msync's pair state and index cache, private to each prepared pair: the
# pair's paths are the same from one tool and run to the next.
export XDG_STATE_HOME=$w/xdg/state XDG_CACHE_HOME=$w/xdg/cache \
    XDG_CONFIG_HOME=$w/xdg/config
load() { cut -d' ' -f1 /proc/loadavg; }

# cmd_of TOOL: sets cmd to the tool's command on $w/src and $w/dst.
cmd_of() {
	case $1 in
	msync-backup) cmd=("$msync" --backup "$w/src" "$w/dst") ;;
	msync-sync) cmd=("$msync" "$w/src" "$w/dst") ;;
	mbsync)
		bench_mbsyncrc "$w/src" "$w/dst" >"$w/mbsyncrc"
		cmd=(mbsync -c "$w/mbsyncrc" -a -q) ;;
	*) die "unknown tool $1" ;;
	esac
}

# prepare TOOL: a synced pair with the 1% change applied to the source.
prepare() {
	rm -rf "$w/src" "$w/dst" "$w/mbsyncrc" "$w"/cg.* "$w/xdg"
	mkdir -p "$w/xdg/state" "$w/xdg/cache" "$w/xdg/config"
	cp -a "$corpus/maildir" "$w/src" || die "copy"
	mkdir -p "$w/dst"
	cmd_of "$1"
	"${cmd[@]}" >/dev/null 2>"$w/err" || die "$1: initial sync: $(tail -n 3 "$w/err")"
	sleep 1.1
	"${cmd[@]}" >/dev/null 2>"$w/err" || die "$1: no-change sync: $(tail -n 3 "$w/err")"
	perl "$chg" apply "$corpus/changes.txt" "$corpus/maildir" "$w/src" >/dev/null ||
	    die "apply"
	sync
	sleep 2
}

# check TOOL: the destination has the source's counts.
check() {
	local a b
	a=$(perl "$chg" stat "$w/src") b=$(perl "$chg" stat "$w/dst")
	[ "$a" = "$b" ] && echo ok || echo "DIFFERENT (src $a, dst $b)"
}

echo "# bench-1pct: $n messages, $(stat -f -c %T "$w") ($w), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# msync $(git -C "$top" describe --always --dirty 2>/dev/null), $(mbsync --version 2>/dev/null)"
for t in $tools; do
	if [ "$do_cg" = 1 ]; then
		prepare "$t"
		l=$(load)
		cmd_of "$t"
		valgrind --tool=callgrind --trace-children=yes \
		    --callgrind-out-file="$w/cg.%p" "${cmd[@]}" >/dev/null 2>"$w/err" ||
		    echo "$t: callgrind run exit $? ($(tail -n 2 "$w/err"))"
		# Each process's total Ir is the "totals:" (or "summary:")
		# line of its callgrind output.
		tot=0 per=
		for f in "$w"/cg.*; do
			[ -f "$f" ] || continue
			i=$(awk '/^(totals|summary):/ { print $2 }' "$f" | tail -n 1)
			tot=$((tot + i)) per="$per $i"
			[ "$keep" = 1 ] && cp "$f" "$base/$t.$(basename "$f")"
		done
		printf '%-13s callgrind Ir %s M (processes:%s) load %s check %s\n' \
		    "$t" "$(awk -v i="$tot" 'BEGIN { printf "%.1f", i / 1e6 }')" \
		    "$per" "$l" "$(check)"
	fi
	r=1
	while [ "$r" -le "$runs" ]; do
		prepare "$t"
		l=$(load)
		cmd_of "$t"
		/usr/bin/time -f '%e %U %S %M' -o "$w/time" "${cmd[@]}" \
		    >/dev/null 2>"$w/err" || echo "$t: exit $? ($(tail -n 2 "$w/err"))"
		read -r e u s m <"$w/time"
		printf '%-13s run %d wall %s s user %s s sys %s s maxrss %s kB load %s check %s\n' \
		    "$t" "$r" "$e" "$u" "$s" "$m" "$l" "$(check)"
		r=$((r + 1))
	done
done
rm -rf "$w/src" "$w/dst"
