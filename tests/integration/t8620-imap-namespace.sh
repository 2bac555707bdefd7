#!/usr/bin/env bash
test_description='IMAP store: ID after the login; NAMESPACE gives the personal prefix and separator (a Courier-style "INBOX." server)'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-imapd.sh"
test_require_prereq IMAPD

PASSCMD="echo $IMAPD_PASS"
# Dovecot set up as Courier and Cyrus are: every folder below "INBOX.".
IMAPD_EXTRA_CONF='namespace inbox {
  prefix = INBOX.
  separator = .
}'

same() {
	IMAPD_DIGEST_ALL=1 imap_digest alice >dove.raw &&
	test -s dove.raw &&
	sed "s/^INBOX\.//; s/^\([^	]*\)\./\1\//" dove.raw | sort >dove.now &&
	md_digest "$1" | sort >md.now &&
	test_cmp dove.now md.now
}

test_expect_success 'start imapd with the prefix INBOX. and separator .' '
	start_imapd &&
	doveadm_u alice "mailbox create" INBOX.Work INBOX.Work.2024 &&
	for i in 1 2 3; do
		gen_message "$i" alice | doveadm_u alice save -m INBOX &&
		gen_message "$i" work | doveadm_u alice save -m INBOX.Work &&
		gen_message "$i" old | doveadm_u alice save -m INBOX.Work.2024 ||
		return 1
	done &&
	doveadm_u alice "flags add" "\\Seen" mailbox INBOX.Work 2
'

test_expect_success 'the prefix comes from NAMESPACE, ID is sent, in one round trip' '
	msync -vvv --list --passcmd "$PASSCMD" "$(imaps_url alice)" >list 2>log &&
	grep "> m[0-9]* NAMESPACE" log &&
	grep "> m[0-9]* ID (\"name\" \"msync\"" log &&
	grep "personal namespace .INBOX\.." log &&
	grep "server name .Dovecot" log &&
	! grep "LIST \"\" \"\"" log &&
	grep "^INBOX	3	" list && grep "^Work	3	" list &&
	grep "^Work/2024	3	" list && ! grep "^INBOX/" list
'

test_expect_success 'backup: the folders lose the prefix in the Maildir' '
	msync --backup --passcmd "$PASSCMD" "$(imaps_url alice)" md &&
	test -d md/.Work/cur && test -d md/.Work.2024/cur &&
	! test -e md/.INBOX.Work &&
	same md
'

test_expect_success 'a Maildir folder goes below the prefix on the server' '
	msync --passcmd "$PASSCMD" "$(imaps_url alice)" md &&
	mkdir -p md/.Travel/cur md/.Travel/new md/.Travel/tmp &&
	gen_message 9 travel >md/.Travel/new/1700000000.t9.host &&
	sleep 1.1 &&
	msync --passcmd "$PASSCMD" "$(imaps_url alice)" md &&
	doveadm_u alice "mailbox list" >boxes &&
	grep -x "INBOX.Travel" boxes && same md
'

test_done
