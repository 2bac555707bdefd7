#!/usr/bin/env bash
test_description='libssh is loaded only for --ssh=libssh (issue 10.4): the
binary does not link it, the server and the client over the ssh program
never load it (the dynamic linker'"'"'s own record), the libssh client
still syncs, and a libssh that cannot be loaded, or lacks a function, is
said clearly (69) with nothing touched'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-sshd.sh"
. "$TEST_DIR/lib-ldlibs.sh"

test_require_prereq SSHD

test_expect_success 'the binary does not name libssh as needed' '
	LD_TRACE_LOADED_OBJECTS=1 "$MSYNC" >libs &&
	cat libs &&
	grep -q "libc\.so" libs &&
	! grep -q "libssh" libs
'

# A remote msync that records what the dynamic linker opens for it.
test_expect_success 'setup: sshd, a pair, a remote msync that logs its linking' '
	start_sshd &&
	ld_mk_folder a 10 &&
	ld_remote_msync
'

test_expect_success 'over the ssh program: neither side loads libssh' '
	ld_run client -e "$SSH_CMD" --remote-msync "$TRASH/ld-msync" a \
	    msynctest:"$TRASH/b" &&
	test "$(ls b/cur | wc -l)" = 10 &&
	ld_loaded ld/server.* >server-libs &&
	ld_without server-libs libssh &&
	ld_loaded ld/client.* >client-libs &&
	ld_without client-libs libssh
'

test_expect_success 'over libssh: the client loads it, syncs; the server does not' '
	rm -f ld/* &&
	ld_mk_folder a/.New 3 &&
	ld_run client --ssh=libssh --remote-msync "$TRASH/ld-msync" a \
	    msynctest:"$TRASH/b" &&
	test "$(ls b/.New/cur | wc -l)" = 3 &&
	ld_loaded ld/client.* >client-libs &&
	cat client-libs &&
	grep -q "libssh\.so\.4" client-libs &&
	ld_loaded ld/server.* >server-libs &&
	! grep -q "libssh" server-libs
'

test_expect_success 'a libssh that cannot be loaded: 69, said once, nothing touched' '
	ld_mk_folder a/.Later 2 &&
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
