#!/usr/bin/env bash
# deps.sh -- make sure the Debian packages that msync's build and tests
# need are installed.
#
#   scripts/deps.sh              build + test dependencies (what `make check` needs)
#   scripts/deps.sh --minimal    only what `make` needs to build ./msync
#   scripts/deps.sh --corpus     also npm, for scripts/mkcorpus.sh
#   scripts/deps.sh --check      report what is missing, install nothing
#
# Cheap when everything is present: one dpkg-query call, no output.
# As root, missing packages are installed with apt-get (after one
# `apt-get update`).  As anyone else, the exact command is printed and the
# script exits 1.  It also creates /run/sshd, which sshd refuses to start
# without (the integration tests run a real sshd).
#
# On a system without dpkg, the build libraries are checked with
# pkg-config and the rest is left to the user.

# Re-run under bash if started by another sh (the Makefile says `sh`).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail

# What `make` needs (OpenSSL and zlib: the IMAP store's TLS and COMPRESS).
BUILD_PKGS="build-essential pkg-config libssh-dev liblz4-dev libxxhash-dev
libssl-dev zlib1g-dev"
# What `make check`, `make demo`, `make lint` and CI need on top of that:
# cmocka for the unit tests; a real OpenSSH client and server; rsync for
# comparisons; clang with its runtime (ASan/UBSan/libFuzzer; Debian only
# recommends libclang-rt-dev, and we install without recommends) and llvm
# for llvm-symbolizer (readable sanitizer stacks); mandoc for the man page
# lint; Dovecot, isync (mbsync) and mblaze as real peers and checkers;
# perl for the test library's digests; procps (pgrep) for the crash
# tests; shellcheck for the scripts; xxhash (xxhsum), strace and time
# for independent checks in the tests; python3 for the model and
# hostile-peer tests; dosfstools (mkfs.vfat) for the vfat remount test;
# python3-jsonschema and jq to check the --json reports against
# docs/report.schema.json; the openssl program (a test CA) and systemd
# (systemd-socket-activate) for the daemon tests; GNU parallel for the
# migration batch test; mutt reads and writes mbox files in the mbox
# interop test; python3-yaml to read the Kubernetes example and
# slurmctld, slurmd, slurm-client and munge for the one-node Slurm
# cluster of t2550 only (it skips its Slurm part when they are missing
# or Slurm cannot start).
TEST_PKGS="libcmocka-dev openssh-server openssh-client rsync clang
libclang-rt-dev llvm mandoc dovecot-core dovecot-imapd isync mblaze perl
procps shellcheck xxhash strace time python3 util-linux
dosfstools python3-jsonschema jq openssl systemd parallel mutt python3-yaml
slurmctld slurmd slurm-client munge"
# What scripts/mkcorpus.sh needs.
CORPUS_PKGS="npm ca-certificates"

want_test=1
want_corpus=0
check_only=0
for arg in "$@"; do
	case $arg in
	--minimal) want_test=0 ;;
	--corpus) want_corpus=1 ;;
	--check) check_only=1 ;;
	-h|--help)
		sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
		exit 0 ;;
	*)
		echo "deps.sh: unknown option '$arg'" >&2
		echo "usage: scripts/deps.sh [--minimal] [--corpus] [--check]" >&2
		exit 64 ;;
	esac
done

pkgs=$BUILD_PKGS
[ "$want_test" = 1 ] && pkgs="$pkgs $TEST_PKGS"
# An npm that is already on PATH (a Node.js from elsewhere) will do: the
# Debian npm package would conflict with such a nodejs.
if [ "$want_corpus" = 1 ]; then
	if command -v npm >/dev/null 2>&1; then
		pkgs="$pkgs ca-certificates"
	else
		pkgs="$pkgs $CORPUS_PKGS"
	fi
fi
# shellcheck disable=SC2086  # word splitting of the lists is intended
set -- $pkgs

is_root() { [ "$(id -u)" = 0 ]; }

# sshd needs its privilege separation directory; /run is a tmpfs, so this
# can vanish at every boot.
ensure_run_sshd() {
	[ "$want_test" = 1 ] || return 0
	[ -d /run/sshd ] && return 0
	if is_root; then
		mkdir -p /run/sshd && chmod 0755 /run/sshd
	else
		echo "deps.sh: /run/sshd is missing; sshd will not start." \
		    "Run: sudo mkdir -p -m 0755 /run/sshd" >&2
	fi
}

if ! command -v dpkg-query >/dev/null 2>&1; then
	# Not Debian: check the build libraries, leave the rest to the user.
	if command -v pkg-config >/dev/null 2>&1 &&
	    pkg-config --exists libssh liblz4 libxxhash openssl zlib; then
		[ "$want_test" = 1 ] && ! pkg-config --exists cmocka &&
		    echo "deps.sh: cmocka not found (needed by make check)" >&2
		echo "deps.sh: no dpkg; checked only the libraries with pkg-config." \
		    "The tests also want: OpenSSH client and server, clang," \
		    "mandoc, dovecot, isync, mblaze, rsync, perl." >&2
		exit 0
	fi
	echo "deps.sh: no dpkg, and pkg-config cannot find libssh liblz4" \
	    "libxxhash. Install them (and cmocka for the tests)." >&2
	exit 1
fi

# One dpkg-query for all packages; a package is present when its status
# is "ii" (installed, no error).  Unknown packages print nothing.
installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "$@" \
    2>/dev/null | awk '$2 == "ii" { print $1 }' | sort -u) || true
missing=
for p in "$@"; do
	if ! printf '%s\n' "$installed" | grep -qx -- "$p"; then
		missing="$missing $p"
	fi
done
missing=${missing# }

if [ -z "$missing" ]; then
	ensure_run_sshd
	exit 0
fi

apt_line="apt-get install -y --no-install-recommends $missing"
if [ "$check_only" = 1 ]; then
	echo "deps.sh: missing: $missing" >&2
	exit 1
fi
if ! is_root; then
	echo "deps.sh: missing Debian packages: $missing" >&2
	echo "deps.sh: install them with:" >&2
	echo "  sudo apt-get update && sudo DEBIAN_FRONTEND=noninteractive $apt_line" >&2
	exit 1
fi

echo "deps.sh: installing: $missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086  # word splitting of the list is intended
apt-get install -y -q --no-install-recommends $missing
ensure_run_sshd
echo "deps.sh: done"
