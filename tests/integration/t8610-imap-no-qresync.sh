#!/usr/bin/env bash
test_description='IMAP store: servers without QRESYNC (CONDSTORE only) and without either: the same results, more listing'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-imapd.sh"
test_require_prereq IMAPD

PASSCMD="echo $IMAPD_PASS"
# What msync looks for, less QRESYNC (Dovecot's own list replaced).
CAPS="IMAP4rev1 SASL-IR ID ENABLE IDLE NAMESPACE UIDPLUS LITERAL+ SPECIAL-USE MOVE"
IMAPD_EXTRA_CONF="imap_capability = $CAPS CONDSTORE"

backup() {
	msync -vvv --backup --passcmd "$PASSCMD" "$(imaps_url alice)" md \
	    2>"$1"
}

same() {
	imap_digest alice >dove.now && md_digest md >md.now &&
	test_cmp dove.now md.now
}

test_expect_success 'start imapd offering CONDSTORE, not QRESYNC' '
	start_imapd &&
	for i in $(seq 1 20); do
		gen_message "$i" alice | doveadm_u alice save -m INBOX || return 1
	done &&
	doveadm_u alice "flags add" "\\Seen" mailbox INBOX 1:5
'

test_expect_success 'first backup' '
	backup log0 && same &&
	grep "ENABLE CONDSTORE" log0 && ! grep "ENABLE QRESYNC\|(QRESYNC\| VANISHED" log0 &&
	grep "has no QRESYNC" log0
'

test_expect_success 'flag changes and a new message: UID FETCH CHANGEDSINCE, no full listing' '
	doveadm_u alice "flags add" "\\Flagged \$Todo" mailbox INBOX 4 &&
	doveadm_u alice "flags remove" "\\Seen" mailbox INBOX 2 &&
	gen_message 21 alice | doveadm_u alice save -m INBOX &&
	backup log1 && same &&
	grep "UID FETCH 1:\* (UID FLAGS) (CHANGEDSINCE [0-9]*)\$" log1 &&
	grep "INBOX.: 3 change(s), 0 expunged range(s) since modseq [0-9]* (CONDSTORE)" log1 &&
	! grep "UID FETCH 1:\* (UID FLAGS)\$" log1
'

test_expect_success 'an expunge: the count does not add up, so a full listing finds it' '
	doveadm_u alice expunge mailbox INBOX uid 6 &&
	doveadm_u alice "flags add" "\\Answered" mailbox INBOX 7 &&
	backup log2 && same &&
	grep "no QRESYNC: expunges are seen this way" log2 &&
	grep "UID FETCH 1:\* (UID FLAGS)\$" log2
'

test_expect_success 'an expunge and a new message at once are not mistaken for no change' '
	doveadm_u alice expunge mailbox INBOX uid 8 &&
	gen_message 22 alice | doveadm_u alice save -m INBOX &&
	backup log3 && same &&
	grep "UID FETCH 1:\* (UID FLAGS)\$" log3
'

test_expect_success 'neither CONDSTORE nor QRESYNC: a full listing every time, same results' '
	sed -i "s/^imap_capability = .*/imap_capability = $CAPS/" \
	    "$IMAPD_CONF" &&
	doveadm -c "$IMAPD_CONF" reload &&
	doveadm_u alice "flags add" "\\Draft" mailbox INBOX 9 &&
	doveadm_u alice expunge mailbox INBOX uid 10 &&
	backup log4 && same &&
	! grep "ENABLE\|CHANGEDSINCE\|HIGHESTMODSEQ" log4 &&
	grep "UID FETCH 1:\* (UID FLAGS)\$" log4 &&
	backup log5 && same
'

test_done
