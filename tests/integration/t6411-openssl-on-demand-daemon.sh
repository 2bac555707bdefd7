#!/usr/bin/env bash
test_description='OpenSSL loaded on demand, the daemon side (issue 10.4):
msync --daemon and the msyncs:// client load it and work; with an
OpenSSL that cannot be loaded the daemon does not start and the client
does not connect, both with one clear line and exit 69, and the stores
are untouched.  The other runs are t6410.'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-msyncd.sh"

test_require_prereq OPENSSL PYTHON

U() { printf 'msyncs://%s@127.0.0.1:%s/%s' "$1" "$MSYNCD_PORT_d1" "$2"; }
SA=";secret-file=$TRASH/alice.secret"
MISSING="TLS needs OpenSSL's libssl, which cannot be loaded (libssl-not-here\.so\.3: .*): install libssl3"

# nocert.conf: the same with a certificate that does not exist, so that
# a daemon that went on without OpenSSL would stop (64) at the
# certificate rather than listen.
test_expect_success 'setup: a daemon config with one module' '
	msyncd_pki && msyncd_conf d1 &&
	cat >>d1/msyncd.conf <<-EOF &&
	[mail]
	path = $TRASH/d1/srv/%u
	users = alice
	read only = no
	auth = any
	EOF
	sed "s|^cert = .*|cert = $TRASH/pki/no-such.pem|" d1/msyncd.conf \
	    >d1/nocert.conf &&
	grep -q "^cert = .*no-such.pem" d1/nocert.conf
'

test_expect_success 'without libssl the daemon does not start: 69, one line' '
	test_expect_code 69 env MSYNC_TEST_LIBSSL=libssl-not-here.so.3 \
	    "$MSYNC" --daemon --config "$TRASH/d1/nocert.conf" 2>err &&
	cat err &&
	grep -q "^msyncd: error: $MISSING" err &&
	test_line_count = 1 err &&
	! (exec 3<>"/dev/tcp/127.0.0.1/$MSYNCD_PORT_d1") 2>/dev/null
'

test_expect_success 'nor with a library that lacks the functions' '
	test_expect_code 69 env MSYNC_TEST_LIBSSL=libz.so.1 \
	    "$MSYNC" --daemon --config "$TRASH/d1/nocert.conf" 2>err &&
	cat err &&
	grep -q "has no SSL_CIPHER_get_name: install libssl3" err &&
	test_line_count = 1 err
'

test_expect_success 'with OpenSSL the daemon starts, and msyncs:// syncs' '
	msyncd_start d1 &&
	make_maildir a &&
	for i in 1 2 3; do deliver a "" S >/dev/null || return 1; done &&
	"$MSYNC" a "$(U alice mail/Maildir)$SA" &&
	test "$(py_count d1/srv/alice/Maildir)" = 3 &&
	grep "user alice module mail: done, status 0" d1/log
'

test_expect_success 'without libssl the msyncs:// client is 69, one line, nothing touched' '
	deliver a "" >/dev/null &&
	msyncd_own d1/srv &&
	find a d1/srv -type f ! -name msync.lock | sort >before &&
	grep -c "logged in" d1/log >logins.before &&
	test_expect_code 69 env MSYNC_TEST_LIBSSL=libssl-not-here.so.3 \
	    "$MSYNC" a "$(U alice mail/Maildir)$SA" 2>err &&
	cat err &&
	grep -q "^msync: error: $MISSING" err &&
	test_line_count = 1 err &&
	find a d1/srv -type f ! -name msync.lock | sort >after &&
	test_cmp before after &&
	grep -c "logged in" d1/log >logins.after &&
	test_cmp logins.before logins.after
'

test_expect_success 'and with OpenSSL back the change goes through' '
	"$MSYNC" a "$(U alice mail/Maildir)$SA" &&
	test "$(py_count d1/srv/alice/Maildir)" = 4
'

test_done
