#!/usr/bin/env bash
test_description='IMAP store: another IMAP client changes flags, expunges and delivers while msync runs; nothing is lost, a re-run converges'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-imapd.sh"
test_require_prereq IMAPD

PASSCMD="echo $IMAPD_PASS"

test_expect_success 'start imapd, 300 messages for alice' '
	start_imapd &&
	mkdir -p "$IMAPD_DIR/home/alice/Maildir/cur" &&
	for i in $(seq 1 300); do
		gen_message $i busy >"$IMAPD_DIR/home/alice/Maildir/cur/$i.busy:2,S" ||
		    return 1
	done &&
	{ ! test_have_prereq ROOT || chown -R 65534:65534 "$IMAPD_DIR/home"; } &&
	doveadm_u alice "mailbox status" messages INBOX
'

# busy: what another client does meanwhile (doveadm works on the same
# mailbox through Dovecot, as a second IMAP session would).
busy() {
	sleep 0.2
	doveadm_u alice "flags add" "\\Flagged" mailbox INBOX 1:40
	doveadm_u alice expunge mailbox INBOX uid 41:60
	gen_message 999 busy | doveadm_u alice save -m INBOX
	doveadm_u alice "flags remove" "\\Seen" mailbox INBOX 61:80
}

for mode in backup two-way; do
	test_expect_success "$mode IMAP <-> Maildir with changes during the run" '
		rm -rf md "$XDG_STATE_HOME/msync" || return 1
		busy &
		if [ '$mode' = backup ]; then m=--backup; else m=; fi
		msync $m --passcmd "$PASSCMD" "$(imaps_url alice)" md; rc=$?
		wait
		echo "first run: $rc" &&
		{ [ $rc = 0 ] || [ $rc = 2 ]; } &&
		msync $m --passcmd "$PASSCMD" "$(imaps_url alice)" md &&
		msync $m --passcmd "$PASSCMD" "$(imaps_url alice)" md &&
		imap_digest alice >a && md_digest md >b && test_cmp a b
	'
done

test_done
