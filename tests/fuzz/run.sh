#!/usr/bin/env bash
# run.sh -- run every built libFuzzer harness for a bounded time.
#
#   tests/fuzz/run.sh [SECONDS] [NAME...]     (default 60 s, all fuzzers)
#
# For each tests/fuzz/fuzz_NAME binary (build them with `make fuzz`):
#   corpus     tests/fuzz/corpus/fuzz_NAME/   (made here, not committed;
#              new inputs that libFuzzer finds are kept there)
#   seeds      tests/fuzz/seeds/fuzz_NAME/, and tests/unit/data/NAME/
#              (or all of tests/unit/data/ when there is no NAME/)
#   dictionary tests/fuzz/fuzz_NAME.dict, if present
#   crashes    tests/fuzz/artifacts/fuzz_NAME-crash-*, also shown as hex
# Each fuzzer runs for SECONDS with -timeout=10 per input and a 2 GB
# memory limit; extra libFuzzer flags come from MSYNC_FUZZ_ARGS.
# Exit status 1 when a fuzzer found a crash, leak, timeout or OOM; 0 when
# none did, or when there is nothing to run (with a message saying why).
# Reproduce a crash with: tests/fuzz/fuzz_NAME tests/fuzz/artifacts/FILE

# Re-run under bash if started by another sh.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd) || exit 1
top=$(cd "$here/../.." && pwd) || exit 1
seconds=${1:-60}
case $seconds in
''|*[!0-9]*) echo "usage: tests/fuzz/run.sh [SECONDS] [NAME...]" >&2; exit 64 ;;
esac
[ $# -gt 0 ] && shift

fuzzers=()
if [ $# -gt 0 ]; then
	for n in "$@"; do
		n=${n##*/}
		case $n in fuzz_*) ;; *) n=fuzz_$n ;; esac
		fuzzers+=("$here/$n")
	done
else
	for f in "$here"/fuzz_*; do
		case $f in *.c|*.h|*.o|*.d|*.dict|*.options) continue ;; esac
		[ -f "$f" ] && [ -x "$f" ] && fuzzers+=("$f")
	done
fi

if [ ${#fuzzers[@]} -eq 0 ]; then
	if ls "$here"/fuzz_*.c >/dev/null 2>&1; then
		echo "fuzz: no fuzzer built (run 'make fuzz'; it needs clang" \
		    "with libFuzzer): skipping"
	else
		echo "fuzz: no tests/fuzz/fuzz_*.c harness yet: skipping"
	fi
	exit 0
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for bin in "${fuzzers[@]}"; do
	name=${bin##*/}
	short=${name#fuzz_}
	if [ ! -x "$bin" ]; then
		echo "fuzz: $name is not built" >&2
		status=1
		continue
	fi
	corpus=$here/corpus/$name
	artifacts=$here/artifacts
	mkdir -p "$corpus" "$artifacts"
	dirs=("$corpus")
	[ -d "$here/seeds/$name" ] && dirs+=("$here/seeds/$name")
	if [ -d "$top/tests/unit/data/$short" ]; then
		dirs+=("$top/tests/unit/data/$short")
	elif [ -d "$top/tests/unit/data" ]; then
		dirs+=("$top/tests/unit/data")
	fi
	opts=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048
	    -print_final_stats=1 -artifact_prefix="$artifacts/$name-")
	[ -f "$here/$name.dict" ] && opts+=(-dict="$here/$name.dict")
	# shellcheck disable=SC2206  # MSYNC_FUZZ_ARGS is a list of flags
	[ -n "${MSYNC_FUZZ_ARGS:-}" ] && opts+=(${MSYNC_FUZZ_ARGS})

	echo "fuzz: $name for ${seconds}s; corpus ${dirs[*]#"$top"/}"
	find "$artifacts" -name "$name-*" -type f | sort >"$artifacts/.before"
	log=$(mktemp "${TMPDIR:-/tmp}/msync-fuzz.XXXXXX")
	# A hard stop in case the fuzzer hangs outside its own clock.
	timeout -k 10 $((seconds + 120)) "$bin" "${opts[@]}" "${dirs[@]}" \
	    </dev/null >"$log" 2>&1
	rc=$?
	new=$(find "$artifacts" -name "$name-*" -type f | sort |
	    comm -13 "$artifacts/.before" -)
	rm -f "$artifacts/.before"
	if [ "$rc" -ne 0 ] || [ -n "$new" ]; then
		status=1
		echo "fuzz: $name FAILED (exit $rc)"
		# The report, without libFuzzer's per-input progress lines.
		grep -v -E '^#[0-9]+\s+(NEW|REDUCE|pulse|INITED)' "$log" | tail -n 80
		while IFS= read -r a; do
			[ -n "$a" ] || continue
			echo "fuzz: input ${a#"$top"/} ($(wc -c <"$a") bytes):"
			od -A x -t x1z -v "$a" | head -n 40
		done <<<"$new"
	else
		grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added|#[0-9]+\s+DONE)' "$log" |
		    sed 's/^/    /'
		echo "fuzz: $name ok ($(find "$corpus" -type f | wc -l) inputs in corpus)"
	fi
	rm -f "$log"
done
exit "$status"
