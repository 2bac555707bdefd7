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
# its TODO; goimapnotify only watches IMAP).
#
# Then over ssh (a private `sshd -i` as ProxyCommand, 127.0.0.1, no
# port; skipped without /usr/sbin/sshd): a delivery on the local side to
# its arrival on the remote one (inotify, then a sync over ssh), and a
# delivery on the remote side to its arrival here, which is found by
# polling every `every` (2 s here), so it is spread over 0..2 s plus a
# sync.  `uptime` is printed before each series: the machine is shared,
# say how loaded it was next to any figure you quote.
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

count_in() { find "$1/cur" "$1/new" -type f | wc -l; }
now_ms() { date +%s%3N; }

# latency FROM TO TAG [SETTLE [JITTER]]: RUNS deliveries into FROM/new,
# each timed until it is in TO, SETTLE seconds apart (default 0.5), plus
# a random 0-2 s when JITTER is 1; every run printed, then the median.
latency() {
	local from=$1 to=$2 tag=$3 settle=${4:-0.5} i n t0 t1 before lat=()
	echo "  load: $(uptime)"
	for i in $(seq 1 "$runs"); do
		before=$(count_in "$to")
		printf 'From: bench@example.org\nSubject: %s %d\n\n%s\n' \
		    "$tag" "$i" "$(date +%s%N)" >"$from/tmp/$tag$i"
		t0=$(now_ms)
		mv "$from/tmp/$tag$i" "$from/new/$tag$i.bench"
		n=0
		until [ "$(count_in "$to")" -gt "$before" ]; do
			n=$((n + 1))
			[ $n -lt 6000 ] || { echo "no arrival after 60 s" >&2; exit 1; }
			sleep 0.01
		done
		t1=$(now_ms)
		lat+=($((t1 - t0)))
		echo "  run $i: $((t1 - t0)) ms"
		sleep "$settle"
		# JITTER=1: then a random 0-2 s more (a poll's phase).
		[ "${5:-0}" = 1 ] && sleep "$((RANDOM % 2)).$((RANDOM % 10))"
	done
	printf '%s\n' "${lat[@]}" | sort -n |
	    awk '{ v[NR] = $1 } END { printf "  median of %d: %d ms\n", NR, v[int((NR + 1) / 2)] }'
}

echo "latency, delivery on A -> arrival on B (local; debounce 100 ms included):"
latency "$dir/a" "$dir/b" local

sleep 2
ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
c0=$(ticks)
sleep "$idle"
c1=$(ticks)
echo "idle CPU over $idle s: $((c1 - c0)) ticks of 1/$hz s" \
    "($(awk -v t=$((c1 - c0)) -v hz="$hz" 'BEGIN { printf "%.2f", t * 1000 / hz }') ms)"
echo "watcher RSS: $(awk '/^VmRSS:/ { print $2, $3 }' "/proc/$pid/status")"

kill -TERM "$pid" && wait "$pid" || :
pid=

# --- over ssh ------------------------------------------------------------
if [ ! -x /usr/sbin/sshd ] || ! command -v ssh-keygen >/dev/null; then
	echo "ssh: skipped (no /usr/sbin/sshd or ssh-keygen)"
	exit 0
fi
s=$dir/sshd
mkdir -p "$s/bin" "$dir/l/cur" "$dir/l/new" "$dir/l/tmp" "$dir/r/cur" \
    "$dir/r/new" "$dir/r/tmp"
[ -d /run/sshd ] || mkdir -p /run/sshd 2>/dev/null || :
chmod 700 "$s"
ssh-keygen -q -t ed25519 -N '' -f "$s/host"
ssh-keygen -q -t ed25519 -N '' -f "$s/id"
cp "$s/id.pub" "$s/authorized_keys" && chmod 600 "$s/authorized_keys"
ln -s "$msync" "$s/bin/msync"
{
	echo "HostKey $s/host"
	echo "AuthorizedKeysFile $s/authorized_keys"
	echo "StrictModes no"
	echo "UsePAM no"
	echo "PasswordAuthentication no"
	echo "KbdInteractiveAuthentication no"
	echo "PermitRootLogin yes"
	echo "AllowUsers $(id -un)"
	echo "SetEnv PATH=$s/bin:/usr/bin:/bin XDG_CACHE_HOME=$dir/rhome/cache XDG_STATE_HOME=$dir/rhome/state"
} >"$s/sshd_config"
printf 'bench %s\n' "$(cut -d' ' -f1,2 "$s/host.pub")" >"$s/known_hosts"
{
	echo "Host bench"
	echo "	User $(id -un)"
	echo "	IdentityFile $s/id"
	echo "	IdentitiesOnly yes"
	echo "	UserKnownHostsFile $s/known_hosts"
	echo "	GlobalKnownHostsFile /dev/null"
	echo "	HostKeyAlias bench"
	echo "	StrictHostKeyChecking yes"
	echo "	BatchMode yes"
	echo "	ProxyCommand /usr/sbin/sshd -i -f $s/sshd_config -E $s/log"
} >"$s/ssh_config"
printf 'pair sshbench\n\ta %s/l\n\tb bench:%s/r\n\trsh ssh -F %s/ssh_config\n\tevery 2s\n\tdebounce 100ms\n' \
    "$dir" "$dir" "$s" >>"$XDG_CONFIG_HOME/msync/config"
"$msync" --watch -q sshbench 2>"$dir/err-ssh" &
pid=$!
# The first sync, then settled (>1 s) before timing.
n=0
until [ "$(count_in "$dir/r")" -ge 0 ] && grep -q . "$dir/err-ssh" 2>/dev/null ||
    [ $n -ge 50 ]; do n=$((n + 1)); sleep 0.1; done
sleep 3
echo "latency over ssh, delivery on the local side -> arrival on the remote (inotify, then a sync over ssh):"
latency "$dir/l" "$dir/r" sshout
# The sync that brings a message here writes into the watched side, which
# costs one more sync right after it (docs/WATCH.md); a delivery 0.5 s
# later would ride on that one and look faster than polling is.  So the
# remote deliveries wait that out (3 s), then a random 0-2 s.
echo "latency over ssh, delivery on the remote side -> arrival here (polled every 2 s, then a sync):"
latency "$dir/r" "$dir/l" sshin 3 1
