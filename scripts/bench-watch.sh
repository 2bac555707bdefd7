#!/usr/bin/env bash
# bench-watch.sh -- watch mode figures: the latency from a delivery into
# new/ on one side to its arrival on the other (local Maildirs), and the
# CPU a watching process uses while nothing changes.
#
#   scripts/bench-watch.sh [RUNS] [IDLE_SECONDS]     (default 10 and 60)
#
# Every run is printed, then the median.  The latency includes the
# debounce (set here to 100 ms, the figure to subtract) and the sync;
# arrival is seen by polling the target every 10 ms, so figures are +-10
# ms.  No peer tool has a watch mode to compare with (mbsync lists it in
# its TODO; goimapnotify only watches IMAP).  A side over ssh is polled
# every `every` by design, so its latency is that interval plus a sync.
# Say how loaded the machine was next to any figure you quote.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail

runs=${1:-10}
idle=${2:-60}
top=$(cd "$(dirname "$0")/.." && pwd)
msync=${MSYNC:-$top/msync}
dir=$(mktemp -d "${TMPDIR:-/tmp}/msync-bench-watch.XXXXXX")
pid=
cleanup() {
	[ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

export HOME=$dir/home XDG_CONFIG_HOME=$dir/home/.config \
    XDG_STATE_HOME=$dir/home/.local/state XDG_CACHE_HOME=$dir/home/.cache
mkdir -p "$XDG_CONFIG_HOME/msync" "$dir/a/cur" "$dir/a/new" "$dir/a/tmp" \
    "$dir/b/cur" "$dir/b/new" "$dir/b/tmp"
printf 'pair bench\n\ta %s/a\n\tb %s/b\n\tdebounce 100ms\n' "$dir" "$dir" \
    >"$XDG_CONFIG_HOME/msync/config"
chmod 600 "$XDG_CONFIG_HOME/msync/config"

"$msync" --watch -q bench 2>"$dir/err" &
pid=$!
sleep 1

count_b() { find "$dir/b/cur" "$dir/b/new" -type f | wc -l; }
now_ms() { date +%s%3N; }

echo "latency, delivery on A -> arrival on B (debounce 100 ms included):"
lat=()
for i in $(seq 1 "$runs"); do
	before=$(count_b)
	printf 'From: bench@example.org\nSubject: run %d\n\n%s\n' "$i" \
	    "$(date +%s%N)" >"$dir/a/tmp/m$i"
	t0=$(now_ms)
	mv "$dir/a/tmp/m$i" "$dir/a/new/m$i.bench"
	n=0
	until [ "$(count_b)" -gt "$before" ]; do
		n=$((n + 1))
		[ $n -lt 6000 ] || { echo "no arrival after 60 s" >&2; exit 1; }
		sleep 0.01
	done
	t1=$(now_ms)
	lat+=($((t1 - t0)))
	echo "  run $i: $((t1 - t0)) ms"
	sleep 0.5
done
printf '%s\n' "${lat[@]}" | sort -n |
    awk '{ v[NR] = $1 } END { printf "  median of %d: %d ms\n", NR, v[int((NR + 1) / 2)] }'

sleep 2
ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
c0=$(ticks)
sleep "$idle"
c1=$(ticks)
echo "idle CPU over $idle s: $((c1 - c0)) ticks of 1/$hz s" \
    "($(awk -v t=$((c1 - c0)) -v hz="$hz" 'BEGIN { printf "%.2f", t * 1000 / hz }') ms)"
echo "watcher RSS: $(awk '/^VmRSS:/ { print $2, $3 }' "/proc/$pid/status")"
