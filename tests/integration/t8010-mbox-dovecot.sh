#!/usr/bin/env bash
test_description='mbox interop with Dovecot: Dovecot (mail_location=mbox:) reads what msync wrote, msync reads what Dovecot wrote'

. "$(dirname "$0")/lib.sh"
test_lazy_prereq PYTHON3 'command -v python3'
. "$TEST_DIR/lib-dovecot-mbox.sh"

# dove LOCATION ARGS...: doveadm on a mail_location ("mbox:DIR:INBOX=F"
# or "maildir:DIR"); the tree is handed to Dovecot's user first.  Its
# stderr is kept in $TRASH/doveadm.err (it must stay empty).
dove() {
	local dir=${1#*:}
	dove_own "${dir%%:*}" && dove_logged "$@"
}

# digest LOCATION: dove_digest_json of every message Dovecot sees there.
digest() {
	dove "$1" -f json fetch 'mailbox flags text' ALL >"$TRASH/dove.json" &&
	dove_digest_json <"$TRASH/dove.json"
}

test_expect_success DOVECOT,PYTHON3 'setup: a Dovecot configuration, no daemon' '
	dove_conf "mbox_write_locks = fcntl dotlock" &&
	make_maildir md && make_folder md Work &&
	for i in 1 2 3 4 5 6; do
		gen_message $i w | sed "s/^From the line/The line/" >w$i.eml ||
		return 1
	done &&
	deliver md w1.eml S && deliver md w2.eml RS && deliver md w3.eml F &&
	deliver "$(folder_path md Work)" w4.eml "" &&
	deliver "$(folder_path md Work)" w5.eml DS &&
	printf "Subject: plain\n\nno from lines here\n" >md/cur/9.M1P1.plain:2,S &&
	printf "Subject: crlf\r\n\r\nbody\r\n" >md/cur/10.M1P1.crlf:2,
'

test_expect_success DOVECOT,PYTHON3 'msync writes mbox (INBOX from ;inbox=), Dovecot reads the same messages and flags, and warns about nothing' '
	mkdir mb &&
	"$MSYNC" --backup md "mbox:$TRASH/mb;inbox=$TRASH/mb/inbox" &&
	test_path_is_file mb/inbox && test_path_is_file mb/Work &&
	SKIPFROM=1 digest "maildir:$TRASH/md" >want &&
	SKIPFROM=1 digest "mbox:$TRASH/mb:INBOX=$TRASH/mb/inbox" >got &&
	test_cmp want got &&
	test_line_count = 7 want &&
	test_must_fail test -s doveadm.err
'

test_expect_success DOVECOT,PYTHON3 'Dovecot writes an mbox (X-IMAPbase, X-UID, Content-Length, keywords), msync reads it' '
	mkdir dv && touch dv/inbox &&
	L="mbox:$TRASH/dv:INBOX=$TRASH/dv/inbox" &&
	dove "$L" mailbox create Work &&
	dove "$L" save -m INBOX <w1.eml && dove "$L" save -m INBOX <w2.eml &&
	dove "$L" save -m Work <w3.eml &&
	printf "Subject: from\n\nFrom the body, unquoted\n\nFrom again\n" >fr.eml &&
	dove "$L" save -m INBOX <fr.eml &&
	dove "$L" flags add "\\Seen \$Label1 work" mailbox INBOX uid 1 &&
	dove "$L" flags add "\\Answered \\Flagged" mailbox INBOX uid 2 &&
	grep -q "^X-IMAPbase: " dv/inbox &&
	"$MSYNC" --backup "mbox:$TRASH/dv;inbox=$TRASH/dv/inbox" fromdv &&
	digest "$L" >want2 && digest "maildir:$TRASH/fromdv" >got2 &&
	test_cmp want2 got2 && test_line_count = 4 got2 &&
	test_must_fail test -s doveadm.err
'

test_expect_success DOVECOT,PYTHON3 'a flag change msync writes into Dovecot'"'"'s mbox is seen by Dovecot' '
	f=$(grep -l "Subject: w message 3" fromdv/.Work/cur/*) &&
	mv "$f" "${f%:2,*}:2,FS" &&
	"$MSYNC" --backup fromdv "mbox:$TRASH/dv;inbox=$TRASH/dv/inbox" &&
	digest "$L" >want3 && digest "maildir:$TRASH/fromdv" >got3 &&
	test_cmp want3 got3 && grep "^Work	.*	FS$" got3 &&
	test_must_fail test -s doveadm.err
'

test_done
