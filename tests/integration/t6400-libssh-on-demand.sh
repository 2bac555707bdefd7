#!/usr/bin/env bash
test_description='libssh is loaded only for --ssh=libssh (issue 10.4): the
binary does not link it, the server and the client over the ssh program
never load it (the dynamic linker'"'"'s own record), the libssh client
still syncs, and a libssh that cannot be loaded, or lacks a function, is
said clearly (69) with nothing touched'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-sshd.sh"

test_require_prereq SSHD

# mk_folder DIR N: a Maildir folder of N messages (lib.sh's deliver).
mk_folder() {
	make_maildir "$1" || return 1
	for _ in $(seq 1 "$2"); do
		deliver "$1" "" S >/dev/null || return 1
	done
}

# loaded FILE...: the libraries the dynamic linker opened, from the
# LD_DEBUG=files records in FILE... (one file per process).
loaded() {
	sed -n 's/.*file=\([^ ]*\) \[0\];  needed by.*/\1/p
	    s/.*file=\([^ ]*\) \[0\];  dynamically loaded by.*/\1/p' "$@" |
	    sort -u
}

test_expect_success 'the binary does not name libssh as needed' '
	LD_TRACE_LOADED_OBJECTS=1 "$MSYNC" >libs &&
	cat libs &&
	grep -q "libc\.so" libs &&
	! grep -q "libssh" libs
'

# A remote msync that records what the dynamic linker opens for it.
test_expect_success 'setup: sshd, a pair, a remote msync that logs its linking' '
	start_sshd &&
	mk_folder a 10 &&
	mkdir ld &&
	cat >ld-msync <<-EOF &&
	#!/bin/sh
	LD_DEBUG=files LD_DEBUG_OUTPUT="$TRASH/ld/server" exec "$MSYNC" "\$@"
	EOF
	chmod +x ld-msync
'

test_expect_success 'over the ssh program: neither side loads libssh' '
	LD_DEBUG=files LD_DEBUG_OUTPUT="$TRASH/ld/client" "$MSYNC" \
	    -e "$SSH_CMD" --remote-msync "$TRASH/ld-msync" a \
	    msynctest:"$TRASH/b" &&
	test "$(ls b/cur | wc -l)" = 10 &&
	loaded ld/server.* >server-libs &&
	cat server-libs &&
	grep -q "libc\.so" server-libs &&
	! grep -q "libssh" server-libs &&
	loaded ld/client.* >client-libs &&
	grep -q "libc\.so" client-libs &&
	! grep -q "libssh" client-libs
'

test_expect_success 'over libssh: the client loads it, syncs; the server does not' '
	rm -f ld/* &&
	mk_folder a/.New 3 &&
	LD_DEBUG=files LD_DEBUG_OUTPUT="$TRASH/ld/client" "$MSYNC" \
	    --ssh=libssh --remote-msync "$TRASH/ld-msync" a \
	    msynctest:"$TRASH/b" &&
	test "$(ls b/.New/cur | wc -l)" = 3 &&
	loaded ld/client.* >client-libs &&
	cat client-libs &&
	grep -q "libssh\.so\.4" client-libs &&
	loaded ld/server.* >server-libs &&
	! grep -q "libssh" server-libs
'

test_expect_success 'a libssh that cannot be loaded: 69, said once, nothing touched' '
	mk_folder a/.Later 2 &&
	find a b -type f ! -name msync.lock | sort >before &&
	test_expect_code 69 env MSYNC_TEST_LIBSSH=libssh-not-here.so.4 \
	    "$MSYNC" --ssh=libssh a msynctest:"$TRASH/b" 2>err &&
	cat err &&
	grep -q "^msync: error: --ssh=libssh needs libssh, which cannot be loaded (libssh-not-here\.so\.4: .*): install it" err &&
	test_line_count = 1 err &&
	find a b -type f ! -name msync.lock | sort >after &&
	test_cmp before after &&
	test_path_is_missing b/.Later
'

test_expect_success 'a library without the functions: 69, names the first missing' '
	test_expect_code 69 env MSYNC_TEST_LIBSSH=libz.so.1 \
	    "$MSYNC" --ssh=libssh a msynctest:"$TRASH/b" 2>err &&
	cat err &&
	grep -q "^msync: error: --ssh=libssh: the libssh loaded (libz\.so\.1) has no ssh_channel_close: it is older than msync needs" err &&
	test_line_count = 1 err &&
	test_path_is_missing b/.Later
'

test_expect_success 'the ssh program is not affected by a missing libssh' '
	env MSYNC_TEST_LIBSSH=libssh-not-here.so.4 "$MSYNC" -e "$SSH_CMD" a \
	    msynctest:"$TRASH/b" &&
	test "$(ls b/.Later/cur | wc -l)" = 2
'

test_done
