#!/usr/bin/env bash
test_description='IMAP store <-> mbox: an account backed up into an mbox file and an mbox uploaded into an account, checked with Python and doveadm'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-imapd.sh"
test_require_prereq IMAPD

PASSCMD="echo $IMAPD_PASS"

# mbox_digest FILE: "INBOX <tab> md5 <tab> flags" per message of an mbox
# file, as Python's mailbox module reads it (From_ line and Status/X-Status
# headers are metadata, not content, as msync and Dovecot treat them).
mbox_digest() {
	python3 - "$1" <<'PY'
import hashlib, re, sys
# Split on From_ lines; body lines ">From " are unquoted (mboxrd).
data = open(sys.argv[1], "rb").read()
parts = re.split(rb"(?m)^From [^\n]*\n", data)[1:]
meta = (b"status:", b"x-status:", b"x-keywords:", b"content-length:", b"x-uid:")
out = []
for p in parts:
    if p.endswith(b"\n\n"):
        p = p[:-1]          # the blank line that separates messages
    head, sep, body = p.partition(b"\n\n")
    keep, st, xst = [], b"", b""
    for line in head.split(b"\n"):
        low = line.lower()
        if low.startswith(b"status:"):
            st = line[7:].strip()
        elif low.startswith(b"x-status:"):
            xst = line[9:].strip()
        if not low.startswith(meta):
            keep.append(line)
    fl = ("S" if b"R" in st else "") + ("F" if b"F" in xst else "") + \
         ("R" if b"A" in xst else "") + ("D" if b"T" in xst else "")
    body = re.sub(rb"(?m)^>(>*From )", rb"\1", body)   # mboxrd quoting
    msg = b"\n".join(keep) + sep + body
    out.append("INBOX\t%s\t%s" % (hashlib.md5(msg.replace(b"\r\n", b"\n")).hexdigest(),
                                  "".join(sorted(fl)) or "-"))
for l in sorted(out):
    print(l)
PY
}

test_expect_success 'start imapd, fill alice INBOX' '
	start_imapd &&
	for i in 1 2 3 4 5; do
		gen_message $i mb | doveadm_u alice save -m INBOX || return 1
	done &&
	doveadm_u alice "flags add" "\\Seen" mailbox INBOX 1:3 &&
	doveadm_u alice "flags add" "\\Flagged" mailbox INBOX 2 &&
	imap_digest alice >dove
'

test_expect_success 'backup IMAP -> mbox (a new directory of mbox files)' '
	msync --backup --passcmd "$PASSCMD" "$(imaps_url alice)" mbox:box &&
	test -f box/INBOX && mbox_digest box/INBOX >got && test_cmp dove got
'

test_expect_success 'backup mbox -> IMAP (another user)' '
	msync --backup --passcmd "$PASSCMD" mbox:box "$(imaps_url bob)" &&
	imap_digest bob >bob && test_cmp dove bob
'

test_done
