#!/usr/bin/env bash
test_description='IMAP on the local side, a Maildir over ssh: msync --backup imaps://... host:Maildir and back'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-sshd.sh"
. "$TEST_DIR/lib-imapd.sh"
test_require_prereq SSHD IMAPD

PASSCMD="echo $IMAPD_PASS"

test_expect_success 'start sshd and imapd, fill alice' '
	start_sshd && start_imapd &&
	for i in 1 2 3 4; do
		gen_message $i ssh | doveadm_u alice save -m INBOX || return 1
	done &&
	doveadm_u alice "mailbox create" Lists &&
	gen_message 5 ssh | doveadm_u alice save -m Lists &&
	doveadm_u alice "flags add" "\\Seen" mailbox INBOX 1:2 &&
	imap_digest alice >dove
'

test_expect_success 'backup IMAP -> a Maildir over ssh' '
	msync --backup -e "$SSH_CMD" --passcmd "$PASSCMD" "$(imaps_url alice)" \
	    msynctest:"$TRASH/remote-md" &&
	md_digest "$TRASH/remote-md" >got && test_cmp dove got
'

test_expect_success 'backup a Maildir over ssh -> IMAP (bob)' '
	msync --backup -e "$SSH_CMD" --passcmd "$PASSCMD" \
	    msynctest:"$TRASH/remote-md" "$(imaps_url bob)" &&
	imap_digest bob >bob && test_cmp dove bob
'

test_expect_success 'two-way IMAP <-> Maildir over ssh' '
	msync -e "$SSH_CMD" --passcmd "$PASSCMD" "$(imaps_url alice)" \
	    msynctest:"$TRASH/remote-md" &&
	gen_message 9 late | doveadm_u alice save -m Lists &&
	msync -e "$SSH_CMD" --passcmd "$PASSCMD" "$(imaps_url alice)" \
	    msynctest:"$TRASH/remote-md" &&
	imap_digest alice >a && md_digest "$TRASH/remote-md" >b && test_cmp a b
'

test_done
