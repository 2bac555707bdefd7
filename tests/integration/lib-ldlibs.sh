# lib-ldlibs.sh -- what the dynamic linker loads for msync, for the tests
# of the libraries msync loads only when a run needs them (t6400 libssh,
# t6410 OpenSSL).  Sourced after lib.sh.
#
# Run msync with LD_DEBUG=files LD_DEBUG_OUTPUT=$TRASH/ld/NAME: the
# dynamic linker writes one file per process, ld/NAME.PID.

# ld_mk_folder DIR N: a Maildir folder of N messages (lib.sh's deliver).
ld_mk_folder() {
	make_maildir "$1" || return 1
	for _ in $(seq 1 "$2"); do
		deliver "$1" "" S >/dev/null || return 1
	done
}

# ld_loaded FILE...: the libraries the dynamic linker opened for msync
# (needed, or loaded by dlopen), one a line, from the LD_DEBUG=files
# records in FILE...; the files of other programs (the ssh program msync
# runs links libcrypto itself) are left out.  Fails if none is msync's.
ld_loaded() {
	local f mine=
	for f in "$@"; do
		grep -q "needed by $MSYNC \[0\]" "$f" && mine="$mine $f"
	done
	# shellcheck disable=SC2086 # $mine: file names without blanks
	test -n "$mine" &&
	sed -n 's/.*file=\([^ ]*\) \[0\];  needed by.*/\1/p
	    s/.*file=\([^ ]*\) \[0\];  dynamically loaded by.*/\1/p' $mine |
	    sort -u
}

# ld_remote_msync: writes $TRASH/ld-msync, a --remote-msync that records
# the server's linking into ld/server.PID.
ld_remote_msync() {
	mkdir -p "$TRASH/ld" &&
	cat >"$TRASH/ld-msync" <<-EOF2 &&
	#!/bin/sh
	LD_DEBUG=files LD_DEBUG_OUTPUT="$TRASH/ld/server" exec "$MSYNC" "\$@"
	EOF2
	chmod +x "$TRASH/ld-msync"
}

# ld_run NAME ARGS...: msync ARGS, its linking recorded in ld/NAME.PID.
ld_run() {
	local name=$1
	shift
	LD_DEBUG=files LD_DEBUG_OUTPUT="$TRASH/ld/$name" "$MSYNC" "$@"
}

# ld_without LIST REGEX: LIST (from ld_loaded) names libc, so the record
# is real, and no library that matches REGEX.
ld_without() {
	cat "$1" &&
	grep -q "libc\.so" "$1" &&
	! grep -q "$2" "$1"
}
