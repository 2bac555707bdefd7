#!/usr/bin/env bash
# bench-index.sh -- how much msync's per-folder index costs to build and
# to check (issue 2's index benchmark).
#
#   scripts/bench-index.sh [--out DIR] [N]
#
# Builds an N-message Maildir (default 100000) with scripts/mkcorpus.sh
# (kept in OUT/corpus-N and shared with scripts/bench.sh), copies it to
# OUT/index-N/maildir, and in one run measures:
#   read     `cat` of every message file to /dev/null, with a warm page
#            cache (the files are read once before, untimed)
#   first    `msync --list DIR` with no index yet (every msync.index and
#            msync's cache directory removed first): hashes every message
#   ratio    first / read; the aim is at most 1.5
#   rescan   `msync --list DIR` again, 2 s later, nothing changed, under
#            `strace -f -c`: system calls in total, those of the same
#            command on an empty Maildir (process start-up), and the
#            difference divided by the number of folders; the aim is a
#            few stat calls per unchanged folder
#   memory   peak RSS (/usr/bin/time %M) of the first scan minus that of
#            `msync --list` on an empty Maildir, divided by N; the aim is
#            under 200 bytes per message
# Prints a Markdown table (also written to OUT/index-N/results.md); the
# strace summaries are in OUT/index-N/; the Maildir copy is removed at
# the end.  OUT defaults to bench-out/ in
# the repository.  Every command is bounded by `timeout` (--timeout SECS,
# default 1800).

# Re-run under bash if started by another sh.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# The whole script is one block, which bash reads before it runs any of
# it: editing this file during a long run cannot derail that run.
{
set -uo pipefail
export LC_ALL=C

top=$(cd "$(dirname "$0")/.." && pwd) || exit 1
msync=${MSYNC:-$top/msync}
out=$top/bench-out
tmo=1800
n=100000

while [ $# -gt 0 ]; do
	case $1 in
	--out) out=${2:?--out needs a directory}; shift 2 ;;
	--out=*) out=${1#--out=}; shift ;;
	--timeout) tmo=${2:?--timeout needs seconds}; shift 2 ;;
	--timeout=*) tmo=${1#--timeout=}; shift ;;
	-h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	-*) echo "bench-index: unknown option '$1'" >&2; exit 64 ;;
	*) n=$1; shift ;;
	esac
done
case $n in ''|*[!0-9]*|0) echo "bench-index: N must be a positive number" >&2; exit 64 ;; esac
case $tmo in ''|*[!0-9]*) echo "bench-index: bad --timeout" >&2; exit 64 ;; esac

die() { echo "bench-index: $*" >&2; exit 1; }
note() { echo "bench-index: $*" >&2; }

# need_debian_pkgs PKG:COMMAND...: install the packages whose command is
# missing (as root, with apt-get), or say how.
need_debian_pkgs() {
	local p missing=''
	for p in "$@"; do
		command -v "${p#*:}" >/dev/null 2>&1 || missing="$missing ${p%%:*}"
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		note "missing:$missing; install with: apt-get install$missing"
		return 1
	fi
	note "installing$missing"
	# shellcheck disable=SC2086  # a list of package names
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    --no-install-recommends $missing >&2 || {
		apt-get update -q >&2 &&
		    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		    --no-install-recommends $missing >&2
	}
}

need_debian_pkgs time:/usr/bin/time strace:strace || exit 1
for t in perl strace /usr/bin/time timeout; do
	command -v "$t" >/dev/null 2>&1 || die "$t is missing"
done
[ -x "$msync" ] && "$msync" --version >/dev/null 2>&1 ||
    die "$msync is not built or does not run; run make first"

mkdir -p "$out" || exit 1
out=$(cd "$out" && pwd) || exit 1
export MSYNC_CORPUS_CACHE=${MSYNC_CORPUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/msync-corpus}
corpus=$out/corpus-$n
w=$out/index-$n
md=$w/maildir
empty=$w/empty

# The corpus, built the way bench.sh builds it (so that both share it).
if [ ! -f "$corpus/done" ]; then
	rm -rf "$corpus"
	mkdir -p "$corpus" || exit 1
	note "building the $n-message corpus in $corpus"
	bash "$top/scripts/mkcorpus.sh" --no-mbox "$corpus" "$n" >&2 ||
	    die "mkcorpus failed"
	perl "$top/scripts/bench-changes.pl" untrash "$corpus/maildir" >&2 ||
	    die "untrash failed"
	touch "$corpus/done"
fi

rm -rf "$w"
mkdir -p "$w" "$empty/cur" "$empty/new" "$empty/tmp" || exit 1
# Measure a snapshot of the binary: a rebuild during the run changes
# nothing.
cp "$msync" "$w/msync" || die "cannot copy $msync"
msync=$w/msync
cp -a "$corpus/maildir" "$md" || die "cannot copy the corpus"
export XDG_CACHE_HOME=$w/xdg/cache XDG_STATE_HOME=$w/xdg/state \
    XDG_CONFIG_HOME=$w/xdg/config
find "$md" "$empty" -name msync.index -delete
rm -rf "$w/xdg"
folders=$(find "$md" -type d -name cur | wc -l)
bytes=$(find "$md" -type f \( -path '*/cur/*' -o -path '*/new/*' \) \
    -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')

# now: seconds since the epoch, with microseconds.
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# rss FILE: the max RSS (KiB) that time -f %M wrote last into FILE.
rss() { tail -n 1 "$1"; }

# Read every message file once: find | xargs cat.
readall() {
	timeout "$tmo" sh -c 'find "$1" -type f \( -path "*/cur/*" -o \
	    -path "*/new/*" \) -print0 | xargs -0 cat >/dev/null' sh "$md"
}

sync
note "warming the page cache"
readall
t0=$(now)
readall || die "reading the files failed"
t1=$(now)
t_read=$(elapsed "$t0" "$t1")

note "first scan: msync --list (no index)"
t0=$(now)
/usr/bin/time -f '%M' -o "$w/first.time" timeout "$tmo" \
    "$msync" --list "$md" >"$w/first.out" 2>"$w/first.err" ||
    die "msync --list failed (see $w/first.err)"
t1=$(now)
t_first=$(elapsed "$t0" "$t1")
rss_first=$(rss "$w/first.time")

# Where the scan put its index: in the folders, or in the cache
# directory (--list only reads the store).
nidx_store=$(find "$md" -name msync.index | wc -l)
nidx_cache=$(find "$XDG_CACHE_HOME" -type f -name '*index*' 2>/dev/null | wc -l)
[ $((nidx_store + nidx_cache)) -ge "$folders" ] ||
    note "warning: only $((nidx_store + nidx_cache)) index files for $folders folders"

sleep 2
note "rescan, nothing changed"
t0=$(now)
/usr/bin/time -f '%M' -o "$w/rescan.time" timeout "$tmo" \
    "$msync" --list "$md" >"$w/rescan.out" 2>"$w/rescan.err" ||
    die "msync --list (rescan) failed"
t1=$(now)
t_rescan=$(elapsed "$t0" "$t1")
rss_rescan=$(rss "$w/rescan.time")
cmp -s "$w/first.out" "$w/rescan.out" ||
    note "warning: the rescan lists something else than the first scan"

timeout "$tmo" strace -f -c -o "$w/rescan.strace" \
    "$msync" --list "$md" >/dev/null 2>&1 || die "strace msync --list failed"

# The empty Maildir: start-up cost, in memory and in system calls.
/usr/bin/time -f '%M' -o "$w/empty.time" timeout "$tmo" \
    "$msync" --list "$empty" >/dev/null 2>"$w/empty.err" ||
    die "msync --list on an empty Maildir failed"
sleep 2
"$msync" --list "$empty" >/dev/null 2>&1
timeout "$tmo" strace -f -c -o "$w/empty.strace" \
    "$msync" --list "$empty" >/dev/null 2>&1 || die "strace failed"
rss_empty=$(rss "$w/empty.time")

# strace -c ends with a "total" line: "100.00 T S C [E] total".
calls() { awk '$NF == "total" { print $4 }' "$1"; }
c_rescan=$(calls "$w/rescan.strace")
c_empty=$(calls "$w/empty.strace")

{
	echo "## msync index benchmark, $n messages"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -n): $(nproc) cores," \
	    "Linux $(uname -r), $("$msync" --version | head -n 1)" \
	    "($(git -C "$top" describe --always --dirty 2>/dev/null || echo '?'))."
	echo "$n messages in $folders folders, $(awk -v b="$bytes" 'BEGIN { printf "%.1f MB", b / 1e6 }');" \
	    "index files written by the first scan: $nidx_store in the folders," \
	    "$nidx_cache in msync's cache directory;" \
	    "load average (1 min) at the end: $(cut -d' ' -f1 /proc/loadavg)."
	echo
	echo "| measure | value | aim |"
	echo "|---|---:|---|"
	awk -v r="$t_read" -v f="$t_first" -v s="$t_rescan" \
	    -v rf="$rss_first" -v rr="$rss_rescan" -v re="$rss_empty" \
	    -v cr="$c_rescan" -v ce="$c_empty" -v fo="$folders" -v n="$n" '
	BEGIN {
		printf "| read every file (cat, warm cache) | %.3f s | |\n", r
		printf "| first scan (msync --list, no index) | %.3f s | |\n", f
		printf "| first scan / read | %.2f | ≤ 1.5 |\n", (r > 0 ? f / r : 0)
		printf "| rescan, nothing changed | %.3f s | |\n", s
		printf "| rescan system calls, total | %d | |\n", cr
		printf "| system calls on an empty Maildir (start-up) | %d | |\n", ce
		printf "| rescan system calls per folder, start-up excluded | %.1f | a few stat calls |\n", (fo > 0 ? (cr - ce) / fo : 0)
		printf "| peak RSS: first scan / rescan / empty Maildir | %.1f / %.1f / %.1f MiB | |\n", rf / 1024, rr / 1024, re / 1024
		printf "| peak memory per message (first scan − empty) | %.0f B | < 200 B |\n", (rf - re) * 1024 / n
		printf "| peak memory per message (rescan − empty) | %.0f B | |\n", (rr - re) * 1024 / n
	}'
	echo
	echo "System calls of the rescan beyond start-up (strace -f -c of the"
	echo "rescan minus that of the empty Maildir), most frequent first:"
	echo
	echo '```'
	awk 'FNR > 2 && $1 !~ /^-/ && $NF != "total" {
		n[$NF] += (FILENAME == ARGV[1] ? $4 : -$4) }
	    END { for (c in n) if (n[c] != 0) printf "%8d %s\n", n[c], c }' \
	    "$w/rescan.strace" "$w/empty.strace" | sort -rn
	echo '```'
} | tee "$w/results.md"
# The Maildir copy is big and only good for this run.
rm -rf "$md" "$empty"
exit
}
