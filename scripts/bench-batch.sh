#!/usr/bin/env bash
# bench-batch.sh -- a batch of many accounts (docs/MIGRATION.md) run by GNU
# parallel, against the sum of the same accounts run one after another.
#
#   scripts/bench-batch.sh [--accounts N] [--messages M] [--jobs J]
#                          [--runs R] [--dir DIR]
#
# Builds N Maildir accounts (default 200) of M generated messages each
# (default 20, 2-6 KB, INBOX and a folder), then R times (default 3):
#   serial    for each account: msync --json --backup SRC DST (fresh DST)
#   batch     parallel -j J (default: nproc) over the same accounts, the
#             runbook's command (fresh DSTs)
# in DIR (default a directory under /dev/shm when it exists, else
# bench-out/batch; give a disk path for disk).  Every run's wall seconds
# are printed with the load average before it, then the ratio
# batch / serial per run, and the summed instructions of one serial pass
# and one batch pass (perf stat -e instructions, when perf works), which
# do not depend on the machine's load.  The stores are settled (sleep
# 2 s) before each timed pass, and every copy is counted with msync
# --list afterwards (a pass that lost a message stops the script).
#
# Speed is measured, never asserted.  Needs GNU parallel and python3 (the
# message generator); perf is optional.

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
msync=${MSYNC:-$top/msync}
n=200 m=20 runs=3 jobs=$(nproc)
dir=
while [ $# -gt 0 ]; do
	case $1 in
	--accounts) n=$2; shift 2 ;;
	--messages) m=$2; shift 2 ;;
	--jobs) jobs=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--dir) dir=$2; shift 2 ;;
	-h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "bench-batch: unknown option '$1'" >&2; exit 64 ;;
	esac
done
if [ -z "$dir" ]; then
	if [ -d /dev/shm ]; then dir=/dev/shm/msync-bench-batch.$$; else dir=$top/bench-out/batch; fi
fi
command -v parallel >/dev/null || { echo "bench-batch: needs GNU parallel" >&2; exit 69; }
[ -x "$msync" ] || { echo "bench-batch: no $msync (run make)" >&2; exit 69; }
mkdir -p "$dir"
r=$(cd "$dir" && pwd)
trap 'rm -rf "${r:?}/old" "${r:?}/new" "${r:?}/state" "${r:?}/res"' EXIT
export XDG_STATE_HOME=$r/state XDG_CACHE_HOME=$r/state/cache

echo "# bench-batch: $n accounts x $m messages, parallel -j $jobs, $runs runs, in $r"
echo "# $(uname -sr), nproc $(nproc), msync $("$msync" --version | head -1)"

# The accounts: one Python run writes every Maildir.
python3 - "$r/old" "$n" "$m" <<'PY'
import os, random, sys
root, n, m = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rnd = random.Random(15)
for a in range(1, n + 1):
    for folder in ("", ".Archive"):
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(root, "u%03d" % a, folder, sub), exist_ok=True)
    for i in range(m):
        folder = ".Archive" if i % 4 == 3 else ""
        body = "".join(rnd.choice("abcdefghij klmnop\n") for _ in range(rnd.randint(2000, 6000)))
        msg = ("From: a%d@old.example\nTo: u%03d@old.example\nSubject: m %d\n"
               "Message-ID: <%d.%d@bench>\nDate: Sun, 06 Dec 2026 12:00:00 +0000\n\n%s\n"
               % (a, a, i, a, i, body))
        with open(os.path.join(root, "u%03d" % a, folder, "cur",
                               "%d.%d.bench:2,S" % (a, i)), "w") as f:
            f.write(msg)
PY
seq -f "u%03g" 1 "$n" >"$r/accounts.csv"

fresh() { rm -rf "$r/new" "$r/state" "$r/res"; mkdir -p "$r/new" "$r/state" "$r/res"; sync; sleep 2; }
one() { "$msync" --json --backup "$r/old/$1" "$r/new/$1" >"$r/res/$1.json" 2>/dev/null; }
export -f one
export msync r

serial() { while read -r a; do one "$a"; done <"$r/accounts.csv"; }
batch() { parallel -j "$jobs" one :::: "$r/accounts.csv"; }

check() {
	local a want=$m got
	while read -r a; do
		got=$("$msync" --list "$r/new/$a" | awk -F'\t' '{ s += $2 } END { print s + 0 }')
		[ "$got" = "$want" ] || { echo "bench-batch: $a has $got messages, not $want" >&2; exit 1; }
	done <"$r/accounts.csv"
}

timed() {
	local t0 t1
	t0=$(date +%s.%N)
	"$@"
	t1=$(date +%s.%N)
	echo "$t0 $t1" | awk '{ printf "%.2f", $2 - $1 }'
}

declare -a S B
for i in $(seq 1 "$runs"); do
	fresh; ld=$(cut -d' ' -f1-3 /proc/loadavg)
	S[i]=$(timed serial); check
	echo "run $i serial $n accounts: ${S[i]} s   (load $ld)"
	fresh; ld=$(cut -d' ' -f1-3 /proc/loadavg)
	B[i]=$(timed batch); check
	echo "run $i batch -j $jobs: ${B[i]} s   (load $ld)   batch/serial $(echo "${B[i]} ${S[i]}" | awk '{ printf "%.2f", $1 / $2 }')"
done

if perf stat -e instructions -x, true 2>&1 >/dev/null | grep -q '^[0-9]'; then
	fresh
	si=$(perf stat -e instructions -x, -- bash -c "$(declare -f serial one); export -f one; serial" 2>&1 >/dev/null | awk -F, '/instructions/ { print $1 }')
	fresh
	bi=$(perf stat -e instructions -x, -- bash -c "$(declare -f batch one); export -f one; jobs=$jobs; batch" 2>&1 >/dev/null | awk -F, '/instructions/ { print $1 }')
	echo "instructions (all processes): serial $si   batch $bi   ratio $(echo "$bi $si" | awk '{ printf "%.2f", $1 / $2 }')"
else
	echo "instructions: perf stat cannot count them here (no hardware counters, e.g. a VM)"
fi
echo "# load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
