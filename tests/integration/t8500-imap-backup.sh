#!/usr/bin/env bash
test_description='IMAP store: a real Dovecot imapd -> Maildir, checked byte for byte with doveadm'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-imapd.sh"
test_require_prereq IMAPD

PASSCMD="echo $IMAPD_PASS"

# imap_digest USER: "mailbox <tab> md5 <tab> flags <tab> date" for every
# message of USER as Dovecot reports it (md5 of the body with CRLF
# folded to LF, flags as Maildir letters then keywords, INTERNALDATE as
# seconds).  The same line format as md_digest below.
imap_digest() {
	doveadm_u -f json "$1" fetch 'mailbox flags date.received text' \
	    mailbox '*' >"$TRASH/dove.json" &&
	python3 - "$TRASH/dove.json" <<'PY'
import hashlib, json, sys
sysf = {"\\Seen": "S", "\\Answered": "R", "\\Flagged": "F",
        "\\Deleted": "T", "\\Draft": "D", "$Forwarded": "P"}
data = open(sys.argv[1], "rb").read().decode("utf-8", "surrogateescape")
out = []
for m in (json.loads(data) if data.strip() else []):
    letters, kws = [], []
    for f in m["flags"].split():
        if f == "\\Recent":
            continue
        if f in sysf:
            letters.append(sysf[f])
        else:
            kws.append(f)
    fl = "".join(sorted(letters)) + ("," + ",".join(sorted(kws)) if kws else "")
    body = m["text"].encode("utf-8", "surrogateescape").replace(b"\r\n", b"\n")
    out.append("%s\t%s\t%s" % (m["mailbox"], hashlib.md5(body).hexdigest(), fl or "-"))
for l in sorted(out):
    print(l)
PY
}

# md_digest DIR: the same lines for a Maildir++ tree, read with Python's
# mailbox module (an independent reader).
md_digest() {
	python3 - "$1" <<'PY'
import base64, hashlib, mailbox, os, re, sys
root = sys.argv[1]
def mutf7(s):
    def dec(m):
        t = m.group(1)
        if t == "":
            return "&"
        t = t.replace(",", "/")
        return base64.b64decode(t + "=" * (-len(t) % 4)).decode("utf-16-be")
    return re.sub(r"&([^-]*)-", dec, s)
def folders():
    yield "INBOX", root
    for d in sorted(os.listdir(root)):
        if d.startswith(".") and os.path.isdir(os.path.join(root, d, "cur")):
            yield mutf7(d[1:].replace(".", "/")), os.path.join(root, d)
kwmap = {}
out = []
for name, path in folders():
    kwfile = os.path.join(path, "dovecot-keywords")
    kw = {}
    if os.path.exists(kwfile):
        for line in open(kwfile):
            n, w = line.split(None, 1)
            kw[chr(ord("a") + int(n))] = w.strip()
    md = mailbox.Maildir(path, factory=None, create=False)
    for key in md.keys():
        fn = md._lookup(key)
        info = fn.split(":2,")[1] if ":2," in fn else ""
        letters = sorted(c for c in info if c.isupper())
        kws = sorted(kw.get(c, c) for c in info if c.islower())
        fl = "".join(letters) + ("," + ",".join(kws) if kws else "")
        body = open(os.path.join(path, fn), "rb").read().replace(b"\r\n", b"\n")
        out.append("%s\t%s\t%s" % (name, hashlib.md5(body).hexdigest(), fl or "-"))
for l in sorted(out):
    print(l)
PY
}

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

test_expect_success 'the password is never on the command line or in -vvv' '
	msync -vvv --list --passcmd "$PASSCMD" "$(imaps_url alice)" >out 2>&1 &&
	! grep -F "$IMAPD_PASS" out
'

test_done
