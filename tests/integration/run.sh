#!/usr/bin/env bash
# run.sh -- run the integration test scripts and count their results.
#
#   tests/integration/run.sh [-v] [-i] [tNNNN|tNN|tNNNN-name.sh|path]...
#
# Runs every tests/integration/t[0-9][0-9][0-9][0-9]-*.sh in order, or
# only those named (by number or its prefix, name or path), each as its own `bash`
# process with stdin from /dev/null and a time limit of
# MSYNC_TEST_TIMEOUT seconds (default 900).  -v and -i are passed on to
# the scripts (see lib.sh).  Each script's TAP output is shown as it
# runs, and counted:
#   ok N - ...                       passed
#   not ok N - ...                   failed
#   ok N # skip ...                  skipped
#   not ok N - ... # TODO ...        known breakage: skipped
#   ok N - ... # TODO ...            known breakage fixed: passed
#   1..0 # SKIP reason               the whole script skipped: 1 skipped
# A script that exits non-zero without a failed test, gives no plan,
# or times out counts one more failure.
# The last line is "N passed, N failed" (", N skipped" when some were);
# the exit status is 1 when anything failed.

# Re-run under bash if started by another sh (the Makefile says `sh`).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd) || exit 1
timeout_s=${MSYNC_TEST_TIMEOUT:-900}
script_opts=()
names=()
for arg in "$@"; do
	case $arg in
	-v|--verbose|-i|--immediate|-d|--debug|-x) script_opts+=("$arg") ;;
	-h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	-*) echo "run.sh: unknown option '$arg'" >&2; exit 64 ;;
	*) names+=("$arg") ;;
	esac
done

# The scripts to run, in order.
scripts=()
shopt -s nullglob
all=("$here"/t[0-9][0-9][0-9][0-9]-*.sh)
shopt -u nullglob
if [ ${#names[@]} -eq 0 ]; then
	scripts=("${all[@]}")
else
	for n in "${names[@]}"; do
		found=0
		for s in "${all[@]}"; do
			b=${s##*/}
			case $n in
			*/*) [ "$(cd "$(dirname "$n")" 2>/dev/null && pwd)/${n##*/}" = "$s" ] ;;
			*.sh) [ "$n" = "$b" ] ;;
			*) case $b in "$n"*) true ;; *) false ;; esac ;;
			esac && { scripts+=("$s"); found=1; }
		done
		if [ "$found" = 0 ]; then
			echo "run.sh: no test script matches '$n'" >&2
			exit 64
		fi
	done
fi

out=$(mktemp "${TMPDIR:-/tmp}/msync-it.XXXXXX") || exit 1
trap 'rm -f "$out"' EXIT

total_pass=0 total_fail=0 total_skip=0
failed_scripts=()
start_all=$SECONDS
for s in "${scripts[@]}"; do
	name=${s##*/}
	echo "*** $name ***"
	start=$SECONDS
	timeout -k 10 "$timeout_s" bash "$s" ${script_opts[@]+"${script_opts[@]}"} \
	    </dev/null 2>&1 | tee "$out"
	rc=${PIPESTATUS[0]}

	read -r plan pass fail skip < <(awk '
	    /^1\.\.0/ && /# *[Ss][Kk][Ii][Pp]/ { plan = 1; skipall = 1; next }
	    /^1\.\.[0-9]+/ { plan = 1; next }
	    /^ok [0-9]+/ && /# *[Ss][Kk][Ii][Pp]/ { skip++; next }
	    /^ok [0-9]+/ { pass++; next }
	    /^not ok [0-9]+/ && /# *TODO/ { skip++; next }
	    /^not ok [0-9]+/ { fail++; next }
	    END { printf "%d %d %d %d\n", plan, pass, fail, skip + skipall }' "$out")

	why=
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		why="timed out after ${timeout_s}s"
	elif [ "$rc" -gt 128 ]; then
		why="killed by signal $((rc - 128))"
	elif [ "$rc" -ne 0 ] && [ "$fail" -eq 0 ]; then
		why="exit status $rc with no failed test"
	elif [ "$plan" -eq 0 ]; then
		why="no plan: the script died or forgot test_done"
	fi
	[ -n "$why" ] && fail=$((fail + 1))

	total_pass=$((total_pass + pass))
	total_fail=$((total_fail + fail))
	total_skip=$((total_skip + skip))
	if [ "$fail" -gt 0 ]; then
		failed_scripts+=("$name${why:+ ($why)}")
	fi
	printf '*** %s: %d passed, %d failed, %d skipped, %ds%s\n' "$name" \
	    "$pass" "$fail" "$skip" $((SECONDS - start)) "${why:+ ($why)}"
done

echo
echo "integration: ${#scripts[@]} script(s) in $((SECONDS - start_all))s"
if [ ${#failed_scripts[@]} -gt 0 ]; then
	echo "failed scripts:"
	printf '  %s\n' "${failed_scripts[@]}"
	echo "(rerun one with: bash tests/integration/tNNNN-name.sh -v -i)"
fi
if [ "$total_skip" -gt 0 ]; then
	echo "$total_pass passed, $total_fail failed, $total_skip skipped"
else
	echo "$total_pass passed, $total_fail failed"
fi
[ "$total_fail" -eq 0 ]
