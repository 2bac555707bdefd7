#!/usr/bin/env bash
# run-unit.sh -- run cmocka unit test binaries and count their results.
#
#   tests/run-unit.sh [-v] BIN...
#
# Each binary runs with CMOCKA_MESSAGE_OUTPUT=TAP, stdin from /dev/null
# and a time limit (MSYNC_UNIT_TIMEOUT seconds, default 300).  Its TAP
# lines are counted: "ok N" passes, "not ok N" fails, "# SKIP" skips.
# A binary also counts one failure when it crashes, times out, exits
# non-zero with no failing test (a sanitizer report at exit, say), or
# reports fewer results than its "1..N" plans announced.
# The output of a binary is shown in full when it fails (always with -v).
# The last line is "N passed, N failed" (", N skipped" when some were);
# the exit status is 1 when anything failed, else 0.

# Re-run under bash if started by another sh (the Makefile says `sh`).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -uo pipefail

verbose=0
if [ "${1:-}" = -v ]; then verbose=1; shift; fi
timeout_s=${MSYNC_UNIT_TIMEOUT:-300}
export CMOCKA_MESSAGE_OUTPUT=TAP

total_pass=0 total_fail=0 total_skip=0
failed_bins=()
log=$(mktemp "${TMPDIR:-/tmp}/msync-unit.XXXXXX") || exit 1
trap 'rm -f "$log"' EXIT

for bin in "$@"; do
	case $bin in */*) ;; *) bin=./$bin ;; esac
	name=${bin##*/}
	if [ ! -x "$bin" ]; then
		printf '%-28s FAIL (not found or not executable)\n' "$name"
		total_fail=$((total_fail + 1)); failed_bins+=("$name")
		continue
	fi
	timeout -k 10 "$timeout_s" "$bin" </dev/null >"$log" 2>&1
	rc=$?

	# Count the TAP lines: plans, passes, failures, skips.
	read -r planned pass fail skip < <(awk '
	    /^1\.\.[0-9]+/ { split($1, a, "\\.\\."); plan += a[2]; next }
	    /^(not )?ok [0-9]+/ && /# *[Ss][Kk][Ii][Pp]/ { skip++; next }
	    /^ok [0-9]+/ { pass++; next }
	    /^not ok [0-9]+/ { fail++; next }
	    END { printf "%d %d %d %d\n", plan, pass, fail, skip }' "$log")

	why=
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		why="timed out after ${timeout_s}s"
	elif [ "$rc" -gt 128 ]; then
		why="killed by signal $((rc - 128))"
	elif [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
		why="exit status $rc with no failed test"
	elif [ $((pass + fail + skip)) -lt "$planned" ]; then
		why="$((planned - pass - fail - skip)) planned test(s) never reported"
	elif [ "$planned" -eq 0 ] && [ "$rc" -eq 0 ]; then
		why="no TAP output (is it a cmocka binary?)"
	fi
	if [ -n "$why" ]; then
		fail=$((fail + 1))
	fi

	total_pass=$((total_pass + pass))
	total_fail=$((total_fail + fail))
	total_skip=$((total_skip + skip))
	status=ok
	[ "$fail" -gt 0 ] && { status=FAIL; failed_bins+=("$name"); }
	extra=
	[ "$skip" -gt 0 ] && extra=", $skip skipped"
	printf '%-28s %-4s %d passed, %d failed%s%s\n' "$name" "$status" \
	    "$pass" "$fail" "$extra" "${why:+ ($why)}"
	if [ "$status" = FAIL ] || [ "$verbose" = 1 ]; then
		sed 's/^/    /' "$log"
	fi
done

if [ ${#failed_bins[@]} -gt 0 ]; then
	echo "failed: ${failed_bins[*]}"
fi
if [ "$total_skip" -gt 0 ]; then
	echo "$total_pass passed, $total_fail failed, $total_skip skipped"
else
	echo "$total_pass passed, $total_fail failed"
fi
[ "$total_fail" -eq 0 ]
