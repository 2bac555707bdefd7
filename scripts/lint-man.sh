#!/bin/sh
# lint-man.sh -- check mdoc manual pages.
#
#   scripts/lint-man.sh FILE...
#
# Uses `mandoc -Tlint -W warning` (any warning fails), or, where mandoc is
# missing, `groff -mdoc -ww -z` (any diagnostic fails).  mandoc's
# complaint that $Mdocdate$ was not expanded (a CVS/OpenBSD keyword, which
# git leaves alone) is not counted.
set -u

if [ $# -eq 0 ]; then
	echo "usage: scripts/lint-man.sh FILE..." >&2
	exit 64
fi

status=0
for f in "$@"; do
	if [ ! -f "$f" ]; then
		echo "lint-man: $f: no such file" >&2
		status=1
		continue
	fi
	if command -v mandoc >/dev/null 2>&1; then
		out=$(mandoc -Tlint -W warning "$f" 2>&1 |
		    grep -v -e 'missing date, using ""' \
		        -e 'Mdocdate' -e 'cannot parse date, using it verbatim')
	elif command -v groff >/dev/null 2>&1; then
		out=$(groff -mdoc -ww -z "$f" 2>&1)
	else
		echo "lint-man: neither mandoc nor groff is installed" \
		    "(Debian: apt-get install mandoc)" >&2
		exit 1
	fi
	if [ -n "$out" ]; then
		printf '%s\n' "$out"
		echo "lint-man: $f: FAILED"
		status=1
	else
		echo "lint-man: $f: ok"
	fi
done
exit "$status"
