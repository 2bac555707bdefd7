#!/usr/bin/env bash
# demo.sh -- `make demo`: sync the bundled example and show what happened.
#
#   scripts/demo.sh [DIR]          (or MSYNC_DEMO_DIR=DIR make demo)
#
# Builds nothing (make has built ./msync).  Creates the example of
# examples/make-example.sh in DIR (default: a new temporary directory),
# lists both Maildirs with `msync --list`, runs a two-way sync of the
# local pair (`msync DIR/server DIR/laptop -v --stats`), lists them again,
# checks that both sides now hold the same messages with the same flags,
# and runs the sync once more, which should find nothing to do.
# msync's state and cache go to DIR/xdg, not to your home directory.
# The directory is kept for you to look at.
# Exit status: 0 when every step worked and the sides match, else 1.

# Re-run under bash if started by another sh (the Makefile says `sh`).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -uo pipefail

top=$(cd "$(dirname "$0")/.." && pwd) || exit 1
msync=${MSYNC:-$top/msync}
if [ ! -x "$msync" ]; then
	echo "demo: $msync is not built; run 'make' (or 'make demo') first" >&2
	exit 1
fi

if [ $# -ge 1 ] || [ -n "${MSYNC_DEMO_DIR:-}" ]; then
	dir=${1:-$MSYNC_DEMO_DIR}
	mkdir -p "$dir" || exit 1
else
	dir=$(mktemp -d "${TMPDIR:-/tmp}/msync-demo.XXXXXX") || exit 1
fi
dir=$(cd "$dir" && pwd) || exit 1
export XDG_STATE_HOME=$dir/xdg/state XDG_CACHE_HOME=$dir/xdg/cache
failures=0

if [ -t 1 ]; then bold=$(printf '\033[1m') plain=$(printf '\033[0m'); else bold='' plain=''; fi
say() {
	printf '\n%s== %s%s\n' "$bold" "$*" "$plain"
}

# run CMD...: show it, run it; on failure say so and count it.
run() {
	local rc
	echo "\$ ${*/#$msync/msync}"
	"$@"
	rc=$?
	if [ "$rc" -ne 0 ]; then
		echo "demo: FAILED: msync exited with status $rc" >&2
		failures=$((failures + 1))
	fi
	return "$rc"
}

# messages ROOT: "folder<TAB>flags<TAB>file" for every message under the
# Maildir++ tree ROOT; folder is the mailbox name (INBOX, Work, ...).
messages() {
	local f rel folder flags
	find "$1" -path '*/tmp' -prune -o -type f \
	    \( -path '*/cur/*' -o -path '*/new/*' \) -print |
	while IFS= read -r f; do
		rel=${f#"$1"/}
		case $rel in
		cur/*|new/*) folder=INBOX ;;
		*) folder=${rel%/*/*}; folder=${folder#.} ;;
		esac
		flags=-
		case $f in *:2,?*) flags=${f##*:2,} ;; esac
		printf '%s\t%s\t%s\n' "$folder" "$flags" "$f"
	done
}

# tree ROOT: folder, flags and subject of every message, sorted.
tree() {
	local folder flags f
	messages "$1" | while IFS=$'\t' read -r folder flags f; do
		printf '%-8s %-4s %s\n' "$folder" "$flags" \
		    "$(sed -n 's/^Subject: //p' "$f" | head -n 1)"
	done | sort
}

# digest ROOT: folder, md5 (CRLF as LF) and flags of every message, sorted.
digest() {
	local folder flags f
	messages "$1" | while IFS=$'\t' read -r folder flags f; do
		echo "$folder $(sed 's/\r$//' "$f" | md5sum | cut -d' ' -f1) $flags"
	done | sort
}

say "the example: two Maildirs that drifted apart"
sh "$top/examples/make-example.sh" "$dir" || exit 1
for side in server laptop; do
	echo
	echo "$side: $(tree "$dir/$side" | wc -l) messages (folder, flags, subject)"
	tree "$dir/$side" | sed 's/^/    /'
done

say "what msync sees before the sync"
for side in server laptop; do
	run "$msync" --list "$dir/$side"
done

say "two-way sync of the local pair"
echo "Each side has mail the other lacks, and a few flags differ; after the"
echo "sync both should hold the same 13 messages (INBOX 8, Work 4, Drafts 1)."
if ! run "$msync" "$dir/server" "$dir/laptop" -v --stats; then
	echo
	echo "demo: the sync failed, so there is nothing more to show." >&2
	echo "the example is kept in $dir" >&2
	exit 1
fi

say "what msync sees after the sync"
for side in server laptop; do
	run "$msync" --list "$dir/$side"
done

say "the result"
for side in server laptop; do
	echo "$side: $(tree "$dir/$side" | wc -l) messages"
done
for side in server laptop; do
	if [ "$(tree "$dir/$side" | wc -l)" -ne 13 ]; then
		echo "demo: FAILED: $side should have 13 messages" >&2
		failures=$((failures + 1))
	fi
done
if diff -u --label server --label laptop <(digest "$dir/server") \
    <(digest "$dir/laptop") >"$dir/diff.txt"; then
	echo "both sides hold the same messages with the same flags"
	tree "$dir/laptop" | sed 's/^/    /'
	rm -f "$dir/diff.txt"
else
	echo "demo: FAILED: the sides differ (folder, md5, flags):" >&2
	sed 's/^/    /' "$dir/diff.txt"
	failures=$((failures + 1))
fi

say "a second sync: nothing changed, so nothing to do"
run "$msync" "$dir/server" "$dir/laptop" -v --stats

echo
echo "the example is kept in $dir (msync's state in $dir/xdg)"
if [ "$failures" -gt 0 ]; then
	echo "demo: $failures step(s) FAILED" >&2
	exit 1
fi
echo "demo: ok"
