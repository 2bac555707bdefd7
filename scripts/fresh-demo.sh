#!/usr/bin/env bash
# fresh-demo.sh -- CI step: the README's first command works in one run on
# a machine that lacks a build library (issue 10, part 5).
#
#   scripts/fresh-demo.sh [PACKAGE]     (default libxxhash-dev; as root)
#
# Removes PACKAGE (dpkg -r, so nothing that depends on it goes with it),
# clones this repository's HEAD into a temporary directory and runs
# `make demo` there once: scripts/deps.sh must install the package again
# and the build must then link.  The package is reinstalled at the end
# whatever happened.  Exit status: that of `make demo`; 0 with a note when
# it cannot run here (not root, no dpkg, or the package cannot be removed).

# Re-run under bash if started by another sh.
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -uo pipefail

pkg=${1:-libxxhash-dev}
top=$(cd "$(dirname "$0")/.." && pwd) || exit 1
if [ "$(id -u)" != 0 ] || ! command -v dpkg >/dev/null; then
	echo "fresh-demo: skipped (needs root and dpkg)"
	exit 0
fi
if ! dpkg -r "$pkg"; then
	echo "fresh-demo: skipped ($pkg cannot be removed alone)"
	exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/msync-fresh.XXXXXX") || exit 1
rc=0
git clone -q "$top" "$tmp/msync" &&
    MSYNC_DEMO_DIR=$tmp/demo make -C "$tmp/msync" demo || rc=$?
# Whatever happened, put the package back for the steps that follow.
bash "$top/scripts/deps.sh" >/dev/null || rc=1
rm -rf "$tmp"
[ "$rc" -eq 0 ] && echo "fresh-demo: make demo without $pkg: ok"
exit "$rc"
