#!/usr/bin/env bash
test_description='OpenSSL is loaded only by a run that needs TLS (issue 10.4):
the binary does not link libssl or libcrypto, a local run and both sides
of a run over ssh never load them (the dynamic linker'"'"'s own record),
imaps:// and STARTTLS still sync, and an OpenSSL that cannot be loaded,
or lacks a function, is said clearly (69) with both stores untouched.
The daemon and msyncs:// are t6411.'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-sshd.sh"
. "$TEST_DIR/lib-imapd.sh"
. "$TEST_DIR/lib-ldlibs.sh"

test_require_prereq SSHD IMAPD

PASSCMD="echo $IMAPD_PASS"

test_expect_success 'the binary names neither libssl nor libcrypto as needed' '
	LD_TRACE_LOADED_OBJECTS=1 "$MSYNC" >libs &&
	cat libs &&
	grep -q "libc\.so" libs &&
	! grep -q "libssl\|libcrypto" libs
'

test_expect_success 'msync --version loads no OpenSSL' '
	mkdir ld &&
	ld_run version --version &&
	ld_loaded ld/version.* >version-libs &&
	ld_without version-libs "libssl\|libcrypto"
'

test_expect_success 'a local run loads no OpenSSL, in either brain' '
	ld_mk_folder a 10 &&
	ld_run local a local &&
	test "$(ls local/cur | wc -l)" = 10 &&
	ld_loaded ld/local.* >local-libs &&
	ld_without local-libs "libssl\|libcrypto"
'

# A remote msync that records what the dynamic linker opens for it.
test_expect_success 'setup: sshd, a remote msync that logs its linking' '
	start_sshd && ld_remote_msync
'

test_expect_success 'over ssh: neither the client nor the server loads OpenSSL' '
	ld_run client -e "$SSH_CMD" --remote-msync "$TRASH/ld-msync" a \
	    msynctest:"$TRASH/b" &&
	test "$(ls b/cur | wc -l)" = 10 &&
	ld_loaded ld/server.* >server-libs &&
	ld_without server-libs "libssl\|libcrypto" &&
	ld_loaded ld/client.* >client-libs &&
	ld_without client-libs "libssl\|libcrypto"
'

test_expect_success 'setup: imapd, alice with 4 messages' '
	start_imapd &&
	for i in 1 2 3 4; do
		gen_message "$i" lazy | doveadm_u alice save -m INBOX ||
		    return 1
	done &&
	imap_digest alice >dove
'

test_expect_success 'imaps:// loads OpenSSL and syncs' '
	rm -f ld/* &&
	ld_run imaps --passcmd "$PASSCMD" "$(imaps_url alice)" md &&
	md_digest md >got && test_cmp dove got &&
	ld_loaded ld/imaps.* >imaps-libs &&
	cat imaps-libs &&
	grep -q "libssl\.so\.3" imaps-libs &&
	grep -q "libcrypto\.so\.3" imaps-libs
'

test_expect_success 'STARTTLS (imap://) loads OpenSSL and syncs' '
	gen_message 5 lazy | doveadm_u alice save -m INBOX &&
	imap_digest alice >dove &&
	"$MSYNC" --passcmd "$PASSCMD" "$(imap_url alice)" md &&
	md_digest md >got && test_cmp dove got
'

# unchanged: the Maildir and the IMAP account are as they were.
snapshot() {
	find md -type f ! -name msync.lock | sort >"$1.files" &&
	imap_digest alice >"$1.dove"
}

test_expect_success 'a libssl that cannot be loaded: imaps:// is 69, said once, nothing touched' '
	deliver md "" >/dev/null &&
	gen_message 6 lazy | doveadm_u alice save -m INBOX &&
	snapshot before &&
	test_expect_code 69 env MSYNC_TEST_LIBSSL=libssl-not-here.so.3 \
	    "$MSYNC" --passcmd "$PASSCMD" "$(imaps_url alice)" md 2>err &&
	cat err &&
	grep -q "TLS needs OpenSSL'"'"'s libssl, which cannot be loaded (libssl-not-here\.so\.3: .*): install libssl3" err &&
	test_line_count = 1 err &&
	snapshot after &&
	test_cmp before.files after.files &&
	test_cmp before.dove after.dove
'

test_expect_success 'the same with STARTTLS: 69 after the greeting, nothing touched' '
	test_expect_code 69 env MSYNC_TEST_LIBSSL=libssl-not-here.so.3 \
	    "$MSYNC" --passcmd "$PASSCMD" "$(imap_url alice)" md 2>err &&
	cat err &&
	grep -q "TLS needs OpenSSL'"'"'s libssl, which cannot be loaded" err &&
	test_line_count = 1 err &&
	snapshot after &&
	test_cmp before.files after.files &&
	test_cmp before.dove after.dove
'

test_expect_success 'a library without the functions: 69, names the first missing' '
	test_expect_code 69 env MSYNC_TEST_LIBSSL=libz.so.1 \
	    "$MSYNC" --passcmd "$PASSCMD" "$(imaps_url alice)" md 2>err &&
	cat err &&
	grep -q "TLS needs OpenSSL 3, but the library loaded (libz\.so\.1) has no SSL_CIPHER_get_name: install libssl3" err &&
	test_line_count = 1 err &&
	snapshot after &&
	test_cmp before.files after.files &&
	test_cmp before.dove after.dove
'

test_expect_success 'runs without TLS are not affected by a missing libssl' '
	env MSYNC_TEST_LIBSSL=libssl-not-here.so.3 "$MSYNC" a local &&
	env MSYNC_TEST_LIBSSL=libssl-not-here.so.3 "$MSYNC" -e "$SSH_CMD" \
	    a msynctest:"$TRASH/b" &&
	env MSYNC_TEST_LIBSSL=libssl-not-here.so.3 "$MSYNC" --version
'

test_expect_success 'and with OpenSSL back, the two-way run completes' '
	"$MSYNC" --passcmd "$PASSCMD" "$(imaps_url alice)" md &&
	imap_digest alice >dove && md_digest md >got && test_cmp dove got &&
	test_line_count = 7 dove
'

test_done
