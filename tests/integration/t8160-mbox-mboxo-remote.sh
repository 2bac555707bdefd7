#!/usr/bin/env bash
test_description='mbox ;format=mboxo on the server side (over ssh, HELLO_MBOXO, protocol 5) and on both locations of a local mbox -> mbox pair: the remote msync reads and writes its file as mboxo, checked with Python'"'"'s mailbox; an older server is refused before anything is written'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-sshd.sh"
. "$TEST_DIR/lib-dovecot-mbox.sh"
test_lazy_prereq PYTHON3 'command -v python3'
test_require_prereq PYTHON3

# py_mboxo FILE MSGFILE...: Python's mailbox writes the messages into an
# mboxo file (it quotes "From " lines as ">From ", and leaves ">From "
# lines alone).
py_mboxo() {
	python3 - "$@" <<-\EOF
	import mailbox, sys
	box = mailbox.mbox(sys.argv[1])
	for f in sys.argv[2:]:
	    box.add(open(f, "rb").read())
	box.flush()
	box.close()
	EOF
}

# py_same MBOX MAILDIR: the messages Python's mailbox reads from MBOX,
# without the bookkeeping headers msync writes (Status, X-Status,
# X-Keywords, Content-Length), are the files of MAILDIR: prints the two
# counts and True when they are the same.
py_same() {
	python3 - "$1" "$2" <<-\EOF
	import mailbox, os, re, sys
	meta = re.compile(rb"^(Status|X-Status|X-Keywords|Content-Length):[^\n]*\n",
	                  re.I | re.M)
	box = mailbox.mbox(sys.argv[1], create=False)
	want = []
	for k in box.keys():
	    b = box.get_bytes(k)
	    head, sep, body = b.partition(b"\n\n")
	    want.append(meta.sub(b"", head + b"\n")[:-1] + sep + body)
	got = []
	for sub in ("cur", "new"):
	    for f in os.listdir(os.path.join(sys.argv[2], sub)):
	        got.append(open(os.path.join(sys.argv[2], sub, f), "rb").read())
	print(len(want), len(got), sorted(want) == sorted(got))
	EOF
}

test_expect_success 'setup: messages with ">From " lines (no "From " line), and all the edge messages' '
	make_maildir q &&
	printf "Subject: quoted\n\n>From one\n>>From two\nplain\n" \
	    >"q/cur/1.M1P1.q:2,S" &&
	printf "Subject: quoted after a blank\n\nx\n\n>From after a blank\n" \
	    >"q/cur/2.M1P1.q:2,F" &&
	printf "Subject: plain\n\nnothing special\n" >"q/cur/3.M1P1.q:2," &&
	make_maildir edge && mboxo_edge_messages edge &&
	printf "Subject: py 1\n\nFrom start\n>From one\n>>From two\n" >p1 &&
	printf "Subject: py 2\n\n>From only quoted\n" >p2 &&
	printf "Subject: py 3\n\nplain\n" >p3 &&
	py_mboxo py.mbox p1 p2 p3 &&
	grep -q "^>From start$" py.mbox && cp py.mbox py.orig
'

test_expect_success 'start sshd' '
	start_sshd
'

test_expect_success 'Maildir -> remote mbox;format=mboxo: written the mboxo way, Python reads the Maildir'"'"'s messages' '
	"$MSYNC" -e "$SSH_CMD" --backup q \
	    "msynctest:$TRASH/r.mbox;layout=mbox;format=mboxo" &&
	grep -q "^>From one$" r.mbox && ! grep -q "^>>From one$" r.mbox &&
	grep -q "^>>From two$" r.mbox && ! grep -q "^>>>From two$" r.mbox &&
	py_same r.mbox q >out && echo "3 3 True" >exp && test_cmp exp out
'

test_expect_success 'the same without ;format=: mboxrd quoting, which Python does not read back' '
	"$MSYNC" -e "$SSH_CMD" --backup q \
	    "msynctest:$TRASH/rd.mbox;layout=mbox" &&
	grep -q "^>>From one$" rd.mbox &&
	py_same rd.mbox q >out && echo "3 3 False" >exp && test_cmp exp out
'

test_expect_success 'remote mboxo -> local Maildir, and edge messages there and back: byte for byte' '
	"$MSYNC" -e "$SSH_CMD" --backup \
	    "msynctest:$TRASH/r.mbox;format=mboxo" back &&
	maildir_digest q >want && maildir_digest back >got &&
	test_cmp want got &&
	"$MSYNC" -e "$SSH_CMD" --backup edge \
	    "msynctest:$TRASH/e.mbox;layout=mbox;format=mboxo" &&
	"$MSYNC" -e "$SSH_CMD" --backup \
	    "msynctest:$TRASH/e.mbox;format=mboxo" eback &&
	maildir_digest edge >want && maildir_digest eback >got &&
	test_cmp want got
'

test_expect_success 'Python'"'"'s mboxo file read over ssh with ;format=mboxo: every message as Python reads it; without, one differs' '
	"$MSYNC" -e "$SSH_CMD" --backup \
	    "msynctest:$TRASH/py.mbox;format=mboxo" pmd &&
	cmp py.mbox py.orig &&
	py_same py.mbox pmd >out && echo "3 3 True" >exp && test_cmp exp out &&
	"$MSYNC" -e "$SSH_CMD" --backup "msynctest:$TRASH/py.mbox" prd &&
	py_same py.mbox prd >out && echo "3 3 False" >exp && test_cmp exp out
'

test_expect_success '--list of a remote mbox reads with the format given' '
	"$MSYNC" -e "$SSH_CMD" --list -v "msynctest:$TRASH/py.mbox;format=mboxo" >l.o &&
	"$MSYNC" -e "$SSH_CMD" --list -v "msynctest:$TRASH/py.mbox" >l.rd &&
	"$MSYNC" --list -v "mbox:$TRASH/py.mbox;format=mboxo" >l.local &&
	grep "^INBOX	3	" l.o && test_cmp l.local l.o && ! test_cmp l.o l.rd
'

test_expect_success 'two-way with a remote mboxo file: a re-run finds nothing to do' '
	cp -r q tw &&
	"$MSYNC" -e "$SSH_CMD" tw "msynctest:$TRASH/tw.mbox;layout=mbox;format=mboxo" &&
	cp tw.mbox tw.before &&
	"$MSYNC" -e "$SSH_CMD" tw \
	    "msynctest:$TRASH/tw.mbox;layout=mbox;format=mboxo" &&
	cmp tw.mbox tw.before &&
	maildir_digest q >want && maildir_digest tw >got && test_cmp want got
'

test_expect_success 'a server of protocol 4 is refused before anything is written (76), and says why' '
	msync_speaking msync-v24 2 4 &&
	cp py.mbox py.before &&
	test_expect_code 76 "$MSYNC" -e "$SSH_CMD" \
	    --remote-msync "$TRASH/msync-v24" q \
	    "msynctest:$TRASH/py.mbox;format=mboxo" 2>err &&
	grep "protocol 4; ;format=mboxo on its store needs 5" err &&
	cmp py.mbox py.before &&
	"$MSYNC" -e "$SSH_CMD" --remote-msync "$TRASH/msync-v24" --backup \
	    "msynctest:$TRASH/py.mbox" p24
'

test_expect_success ';format=mboxo on a remote Maildir is refused by the server, nothing changed' '
	make_maildir rmd && cp -r rmd rmd.before &&
	test_must_fail "$MSYNC" -e "$SSH_CMD" q \
	    "msynctest:$TRASH/rmd;format=mboxo" 2>err &&
	grep "format=mboxo is for an mbox store" err &&
	test_cmp_trees rmd.before rmd &&
	test_expect_code 64 "$MSYNC" -e "$SSH_CMD" q \
	    "msynctest:$TRASH/rmd;layout=fs;format=mboxo"
'

test_expect_success 'both locations of a local mbox -> mbox pair mboxo: the copy reads as Python wrote the source' '
	"$MSYNC" --backup "mbox:$TRASH/py.mbox;format=mboxo" \
	    "mbox:$TRASH/copy.mbox;format=mboxo" &&
	python3 - py.mbox copy.mbox <<-\EOF >out &&
	import mailbox, re, sys
	meta = re.compile(rb"^(Status|X-Status|X-Keywords|Content-Length):[^\n]*\n",
	                  re.I | re.M)
	def msgs(p):
	    box = mailbox.mbox(p, create=False)
	    out = []
	    for k in box.keys():
	        head, sep, body = box.get_bytes(k).partition(b"\n\n")
	        out.append(meta.sub(b"", head + b"\n")[:-1] + sep + body)
	    return sorted(out)
	a, b = msgs(sys.argv[1]), msgs(sys.argv[2])
	print(len(a), len(b), a == b)
	EOF
	echo "3 3 True" >exp && test_cmp exp out &&
	grep -q "^>From one$" copy.mbox && grep -q "^>>From two$" copy.mbox &&
	"$MSYNC" --backup "mbox:$TRASH/copy.mbox;format=mboxo" cmd &&
	maildir_digest pmd >want && maildir_digest cmd >got && test_cmp want got
'

test_done
