#!/usr/bin/env bash
test_description='IMAP store: a real Dovecot imapd -> Maildir, checked byte for byte with doveadm'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-imapd.sh"
test_require_prereq IMAPD

PASSCMD="echo $IMAPD_PASS"

# fill USER N: N messages into USER's INBOX and a folder "Work/Büro"
# (modified UTF-7 on the server), with flags and a keyword.
fill() {
	local i
	for i in $(seq 1 "$2"); do
		gen_message "$i" "$1" | doveadm_u "$1" save -m INBOX || return 1
	done &&
	doveadm_u "$1" "mailbox create" "Work" "Work/Büro" &&
	for i in 1 2 3; do
		gen_message "$i" work | doveadm_u "$1" save -m "Work/Büro" ||
		    return 1
	done &&
	# An old received date on message 1 (Dovecot's Maildir takes the
	# file's mtime, read before anything caches it).
	touch -d "2021-03-04 12:34:56 UTC" $(grep -l "^Message-ID: <$1\.1\." \
	    "$IMAPD_DIR/home/$1/Maildir/new/"* "$IMAPD_DIR/home/$1/Maildir/cur/"* \
	    2>/dev/null) &&
	doveadm_u "$1" "flags add" '\Seen' mailbox INBOX 1:3 &&
	doveadm_u "$1" "flags add" '\Flagged $Label1' mailbox INBOX 2 &&
	doveadm_u "$1" "flags add" '\Answered' mailbox Work/Büro 1
}

test_expect_success 'start imapd' 'start_imapd'

test_expect_success 'fill alice' 'fill alice 20 && imap_digest alice >dove.before && test_line_count = 23 dove.before'

test_expect_success 'list over imaps' '
	msync --list --passcmd "$PASSCMD" "$(imaps_url alice)" >list &&
	grep "^INBOX	20	" list && grep "^Work/Büro	3	" list
'

test_expect_success 'backup IMAP -> Maildir over imaps' '
	msync --backup --passcmd "$PASSCMD" "$(imaps_url alice)" md &&
	md_digest md >md.after && imap_digest alice >dove.after &&
	test_cmp dove.before md.after
'

test_expect_success 'the read-only source is unchanged (\Seen too)' '
	test_cmp dove.before dove.after
'

test_expect_success 'INTERNALDATE becomes the Maildir file date' '
	doveadm_u -f tab alice fetch "date.received" mailbox INBOX uid 1 |
	    tail -n 1 >date.dove &&
	grep "2021-03-04 12:34:56" date.dove &&
	f=$(grep -l "^Message-ID: <alice\.1\." md/cur/* md/new/* 2>/dev/null | head -n 1) &&
	test -n "$f" &&
	test "$(date -u -d @"$(stat -c %Y "$f")" "+%Y-%m-%d %H:%M:%S")" = "2021-03-04 12:34:56"
'

test_expect_success 'no-change re-run downloads nothing' '
	msync -vvv --backup --passcmd "$PASSCMD" "$(imaps_url alice)" md 2>log &&
	grep "> m[0-9]* STATUS" log && ! grep "BODY.PEEK" log &&
	! grep "UID FETCH" log &&
	md_digest md >md.again && test_cmp dove.before md.again
'

test_expect_success 'a new message and a flag change reach the Maildir' '
	gen_message 99 late | doveadm_u alice save -m INBOX &&
	doveadm_u alice "flags add" "\\Seen" mailbox INBOX 10 &&
	msync --backup --passcmd "$PASSCMD" "$(imaps_url alice)" md &&
	imap_digest alice >dove.now && md_digest md >md.now &&
	test_cmp dove.now md.now
'

test_expect_success 'an expunge on the server reaches the backup' '
	doveadm_u alice expunge mailbox INBOX uid 5 &&
	msync --backup --passcmd "$PASSCMD" "$(imaps_url alice)" md &&
	imap_digest alice >dove.now && md_digest md >md.now &&
	test_cmp dove.now md.now
'

test_expect_success 'STARTTLS on imap:// works the same' '
	msync --backup --passcmd "$PASSCMD" "$(imap_url alice)" md2 &&
	md_digest md2 >md2.now && test_cmp dove.now md2.now
'

test_expect_success 'a SPECIAL-USE \All folder (Gmail All Mail) is left out, with a note' '
	doveadm_u alice "mailbox create" AllMail &&
	gen_message 1 alice | doveadm_u alice save -m AllMail &&
	msync --backup --passcmd "$PASSCMD" "$(imaps_url alice)" md 2>err &&
	grep "AllMail.* is a virtual folder" err &&
	test_path_is_missing md/.AllMail &&
	doveadm_u alice "mailbox delete" AllMail
'

test_expect_success 'COMPRESS=DEFLATE is used when offered (asked for on loopback), and can be turned off' '
	MSYNC_IMAP_COMPRESS=1 msync -vv --backup --passcmd "$PASSCMD" "$(imaps_url alice)" md3 2>log &&
	grep "COMPRESS=DEFLATE on" log &&
	md_digest md3 >md3.now && test_cmp dove.now md3.now &&
	MSYNC_IMAP_COMPRESS=1 MSYNC_IMAP_NO_COMPRESS=1 msync -vv --backup --passcmd "$PASSCMD" \
	    "$(imaps_url alice)" md4 2>log &&
	! grep "COMPRESS=DEFLATE on" log &&
	md_digest md4 >md4.now && test_cmp dove.now md4.now
'

test_expect_success 'the password is never on the command line or in -vvv' '
	msync -vvv --list --passcmd "$PASSCMD" "$(imaps_url alice)" >out 2>&1 &&
	! grep -F "$IMAPD_PASS" out
'

test_done
