#!/usr/bin/env bash
test_description='msync --daemon on 127.0.0.1 with a test CA: two-way,
backup both ways, one-way and --list over msyncs://, a read-only module,
client certificates, fingerprint pinning, untrusted servers; stores read
back with Python mailbox and perl, not with msync'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-msyncd.sh"

test_require_prereq OPENSSL PYTHON PERL

U() { printf 'msyncs://%s@127.0.0.1:%s/%s' "$1" "$MSYNCD_PORT_d1" "$2"; }
SA=";secret-file=$TRASH/alice.secret"

test_expect_success 'start a daemon with a read-write and a read-only module' '
	msyncd_pki && msyncd_conf d1 &&
	mkdir -p d1/archive && make_maildir d1/archive/INBOX &&
	for i in 1 2 3 4; do deliver d1/archive/INBOX "" S >/dev/null || return 1; done &&
	msyncd_own d1/archive &&
	cat >>d1/msyncd.conf <<-EOF &&
	[mail]
	path = $TRASH/d1/srv/%u
	users = alice, bob
	read only = no
	auth = any
	[archive]
	comment = read-only backups
	path = $TRASH/d1/archive
	users = alice
	EOF
	msyncd_start d1 &&
	grep "listening on 127.0.0.1 port $MSYNCD_PORT_d1, 2 modules" d1/log
'

test_expect_success 'two-way: a local Maildir reaches the module, as the daemon user' '
	make_maildir a && make_folder a Work &&
	for i in 1 2 3; do deliver a "" S >/dev/null || return 1; done &&
	deliver "$(folder_path a Work)" "" >/dev/null &&
	"$MSYNC" a "$(U alice mail/Maildir)$SA" &&
	test "$(py_count d1/srv/alice/Maildir)" = 4 &&
	test_cmp_trees a d1/srv/alice/Maildir &&
	if test -n "$MSYNCD_USER"; then
		test "$(stat -c %U d1/srv/alice/Maildir/cur)" = "$MSYNCD_USER"
	fi &&
	grep "127.0.0.1 user alice module mail: logged in" d1/log &&
	grep "127.0.0.1 user alice module mail: done, status 0" d1/log
'

test_expect_success 'two-way: changes on the daemon side come back' '
	deliver d1/srv/alice/Maildir "" >/dev/null &&
	msyncd_own d1/srv &&
	"$MSYNC" "$(U alice mail/Maildir)$SA" a &&
	test "$(py_count a)" = 5 &&
	test_cmp_trees a d1/srv/alice/Maildir
'

test_expect_success 'backup pull from the read-only module leaves it untouched' '
	maildir_digest d1/archive >before &&
	find d1/archive -type f | sort >files.before &&
	"$MSYNC" --backup "$(U alice archive/INBOX)$SA" pulled &&
	test "$(py_count pulled)" = 4 &&
	maildir_digest d1/archive >after && test_cmp before after &&
	find d1/archive -type f | sort >files.after &&
	test_cmp files.before files.after &&
	grep "user alice module archive: logged in (read-only)" d1/log
'

test_expect_success 'a push into the read-only module is refused, the module intact' '
	maildir_digest d1/archive >before &&
	test_must_fail "$MSYNC" --backup a "$(U alice archive/INBOX)$SA" 2>err &&
	grep "read-only" err &&
	maildir_digest d1/archive >after && test_cmp before after
'

test_expect_success 'one-way merge into the daemon deletes nothing there' '
	make_maildir src && deliver src "" >/dev/null &&
	"$MSYNC" --one-way src "$(U alice mail/merged)$SA" &&
	deliver d1/srv/alice/merged "" >/dev/null && msyncd_own d1/srv &&
	rm -f src/cur/* src/new/* &&
	# A new second: a reused Maildir name with new content breaks
	# Maildir (names are unique), and deliver names by time and pid.
	sleep 1 && deliver src "" >/dev/null &&
	"$MSYNC" --one-way src "$(U alice mail/merged)$SA" &&
	test "$(py_count d1/srv/alice/merged)" = 3
'

test_expect_success '--list through the daemon' '
	"$MSYNC" --list "$(U alice mail/Maildir)$SA" >list &&
	grep "^INBOX	4	" list && grep "^Work	1	" list
'

test_expect_success 'each user has their own root (%u)' '
	make_maildir b && deliver b "" >/dev/null &&
	"$MSYNC" --backup b "$(U bob mail/Maildir);secret-file=$TRASH/bob.secret" &&
	test "$(py_count d1/srv/bob/Maildir)" = 1 &&
	test "$(py_count d1/srv/alice/Maildir)" = 5
'

test_expect_success 'login by client certificate (CN is the user)' '
	"$MSYNC" --list "$(U alice mail/Maildir);cert=$TRASH/pki/alice.pem;key=$TRASH/pki/alice.key" >list &&
	grep "^INBOX	4	" list
'

test_expect_success 'a certificate for another user, or from an unknown CA, is refused' '
	test_expect_code 77 "$MSYNC" --list "$(U bob mail/Maildir);cert=$TRASH/pki/alice.pem;key=$TRASH/pki/alice.key" 2>err &&
	grep "authentication failed" err &&
	grep "user bob module mail: login refused: certificate is not the user" d1/log &&
	test_expect_code 69 "$MSYNC" --list "$(U alice mail/Maildir);cert=$TRASH/pki/mallory.pem;key=$TRASH/pki/mallory.key" 2>err &&
	cat err
'

test_expect_success 'the read-only module takes no certificates (auth = secret)' '
	test_expect_code 77 "$MSYNC" --list "$(U alice archive/INBOX);cert=$TRASH/pki/alice.pem;key=$TRASH/pki/alice.key" 2>err &&
	grep "module archive: login refused: module takes no certificates" d1/log
'

test_expect_success 'fingerprint pinning: the right one works without any CA' '
	SSL_CERT_FILE=/dev/null "$MSYNC" --list "$(U alice mail/Maildir)$SA;fingerprint=sha256:$SRV_FP" >list &&
	grep "^INBOX	4	" list
'

test_expect_success 'fingerprint pinning: a wrong one is refused before the login' '
	bad=$(printf "%s" "$SRV_FP" | sed "s/^../00/") &&
	n=$(grep -c "logged in" d1/log) &&
	test_expect_code 69 "$MSYNC" --list "$(U alice mail/Maildir)$SA;fingerprint=sha256:$bad" 2>err &&
	grep "does not match the pinned fingerprint" err &&
	test "$(grep -c "logged in" d1/log)" = "$n"
'

test_expect_success 'a server certificate no trusted CA signed is refused' '
	test_expect_code 69 env SSL_CERT_FILE="$TRASH/pki/rogue-ca.pem" \
	    "$MSYNC" --list "$(U alice mail/Maildir)$SA" 2>err &&
	grep "not trusted" err
'

test_expect_success 'a wrong secret: exit 77, a clear message, a log line, nothing written' '
	printf "nope\n" >wrong.secret &&
	maildir_digest d1/srv/alice/Maildir >before &&
	deliver a "" >/dev/null &&
	test_expect_code 77 "$MSYNC" a "$(U alice mail/Maildir);secret-file=$TRASH/wrong.secret" 2>err &&
	grep "refused the login to module .mail.: authentication failed" err &&
	grep "user alice module mail: login refused: wrong secret" d1/log &&
	maildir_digest d1/srv/alice/Maildir >after && test_cmp before after
'

test_expect_success 'msyncs:// locations: malformed ones are usage errors' '
	test_expect_code 64 "$MSYNC" --list "msyncs://127.0.0.1/../etc" &&
	test_expect_code 64 "$MSYNC" --list "msyncs://127.0.0.1/mail;bogus=1" &&
	test_expect_code 64 "$MSYNC" --list "msyncs://127.0.0.1/mail;fingerprint=sha256:00" &&
	test_expect_code 64 "$MSYNC" --list "msyncs://-oProxy/mail"
'

test_done
