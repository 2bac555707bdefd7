#!/usr/bin/env bash
# tests/check.sh UNIT_BIN... -- what `make check` runs: the unit tests,
# then the integration tests, then one line with the sum of both:
# "N passed, N failed[, N skipped]".  Exit status 1 if anything failed.
set -u
cd "$(dirname "$0")/.." || exit 1
log=$(mktemp "${TMPDIR:-/tmp}/msync-check.XXXXXX") || exit 1
trap 'rm -f "$log"' EXIT

bash tests/run-unit.sh "$@" | tee "$log"
unit_rc=${PIPESTATUS[0]}
bash tests/integration/run.sh | tee -a "$log"
int_rc=${PIPESTATUS[0]}

# Sum the two runners' closing lines.
awk '
	/^[0-9]+ passed, [0-9]+ failed/ {
		p += $1; f += $3
		if (match($0, /[0-9]+ skipped/))
			s += substr($0, RSTART, RLENGTH) + 0
	}
	END { printf "\ncheck: %d passed, %d failed, %d skipped\n", p, f, s }
' "$log"
[ "$unit_rc" = 0 ] && [ "$int_rc" = 0 ]
