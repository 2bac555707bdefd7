#!/usr/bin/env bash
test_description='mbox interop with Dovecot: Dovecot (mail_location=mbox:) reads what msync wrote, msync reads what Dovecot wrote'

# doveadm runs as nobody when the tests run as root: lib.sh puts the
# trash where nobody can reach it.
. "$(dirname "$0")/lib.sh"
test_lazy_prereq PYTHON3 'command -v python3'

if test_have_prereq ROOT; then
	DOVE_UID=65534 DOVE_GID=65534
else
	DOVE_UID=$(id -u) DOVE_GID=$(id -g)
fi
DOVE_CONF=$TRASH/dovecot.conf

# dove LOCATION ARGS...: doveadm on a mail_location ("mbox:DIR:INBOX=F"
# or "maildir:DIR"); the tree is handed to Dovecot's user first.  Its
# stderr is kept in $TRASH/doveadm.err (it must stay empty).
dove() {
	local loc=$1 dir rc
	shift
	dir=${loc#*:}
	dir=${dir%%:*}
	if test_have_prereq ROOT; then
		chown -R "$DOVE_UID:$DOVE_GID" "$dir" || return 1
	fi
	USER=msynctest doveadm -c "$DOVE_CONF" -o "mail_location=$loc" "$@" \
	    2>"$TRASH/doveadm.last"
	rc=$?
	cat "$TRASH/doveadm.last" >&2
	cat "$TRASH/doveadm.last" >>"$TRASH/doveadm.err"
	return $rc
}

# digest LOCATION: MAILBOX <tab> MD5 <tab> FLAGS per message, as Dovecot
# sees it (flags: Maildir letters, then keywords; CRLF folded to LF).
# With SKIPFROM=1, messages with a ">*From " line are left out: Dovecot
# shows msync's mboxrd quoting as it is (it does not unquote).
digest() {
	dove "$1" -f json fetch 'mailbox flags text' ALL >"$TRASH/dove.json" &&
	SKIPFROM=${SKIPFROM:-0} python3 -c '
import hashlib, json, os, re, sys
sysf = {"\\Seen": "S", "\\Answered": "R", "\\Flagged": "F",
        "\\Deleted": "T", "\\Draft": "D"}
data = sys.stdin.read()
out = []
for m in json.loads(data) if data.strip() else []:
    t = m["text"].replace("\r\n", "\n").encode()
    if os.environ["SKIPFROM"] == "1" and re.search(rb"(^|\n)>*From ", t):
        continue
    fl = [f for f in m["flags"].split() if f != "\\Recent"]
    l = "".join(sorted(sysf[f] for f in fl if f in sysf))
    k = " ".join(sorted(f for f in fl if f not in sysf))
    s = " ".join(x for x in (l, k) if x) or "-"
    out.append("%s\t%s\t%s" % (m["mailbox"], hashlib.md5(t).hexdigest(), s))
print("\n".join(sorted(out)))
' <"$TRASH/dove.json"
}

test_expect_success DOVECOT,PYTHON3 'setup: a Dovecot configuration, no daemon' '
	mkdir -p dovecot/run dovecot/state dovecot/home &&
	cat >"$DOVE_CONF" <<-EOF &&
	base_dir = $TRASH/dovecot/run
	state_dir = $TRASH/dovecot/state
	ssl = no
	first_valid_uid = 1
	first_valid_gid = 1
	mail_uid = $DOVE_UID
	mail_gid = $DOVE_GID
	mail_home = $TRASH/dovecot/home
	mail_location = maildir:$TRASH/dovecot/none
	mbox_write_locks = fcntl dotlock
	namespace inbox {
	  inbox = yes
	  separator = /
	}
	EOF
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
