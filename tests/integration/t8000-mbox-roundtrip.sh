#!/usr/bin/env bash
test_description='mbox: Maildir -> mbox -> Maildir and mbox -> Maildir -> mbox keep every message byte for byte, with its flags; Python'"'"'s mailbox module reads what msync wrote'
. "$(dirname "$0")/lib.sh"
test_lazy_prereq PYTHON3 'command -v python3'

corpus_n=${MSYNC_TEST_CORPUS_N:-1000}

# Messages that test the format's corners, as Maildir files.
edge_messages() {
	local d=$1
	printf 'Subject: from lines\n\nFrom the start\n>From one\n>>From two\n\nFrom after a blank\n' >"$d/cur/1.M1P1.edge:2,S"
	printf 'Subject: no final newline\n\nlast line' >"$d/cur/2.M1P1.edge:2,F"
	printf 'Subject: crlf\r\n\r\nline\r\nFrom crlf\r\n' >"$d/cur/3.M1P1.edge:2,RS"
	printf 'Subject: lying length\nContent-Length: 3\n\nmore than three bytes\n\n' >"$d/cur/4.M1P1.edge:2,"
	printf 'Subject: empty body\n\n' >"$d/cur/5.M1P1.edge:2,T"
	printf 'Subject: own status\nStatus: RO\nX-Keywords: mine\nX-Msync-Kept-Status: x\n\nb\n' >"$d/cur/6.M1P1.edge:2,S"
	printf 'Subject: headers only\n' >"$d/cur/7.M1P1.edge:2,D"
	printf ' folded: first\nSubject: folded first line\n\nx\n' >"$d/cur/8.M1P1.edge:2,"
}

test_expect_success 'edge messages: Maildir -> mbox file -> Maildir, byte for byte' '
	make_maildir edge && edge_messages edge &&
	"$MSYNC" --backup edge mbox:edge.mbox 2>err && test_path_is_file edge.mbox &&
	head -c 5 edge.mbox | grep -q "^From " &&
	"$MSYNC" --backup mbox:edge.mbox edge2 &&
	test_cmp_trees edge edge2
'

test_expect_success 'a message with no final newline gets a Content-Length' '
	grep -q "^Content-Length: 9$" edge.mbox
'

test_expect_success 'the bare path of an mbox file is detected' '
	"$MSYNC" --list edge.mbox >list && grep "^INBOX	8	" list
'

test_expect_success PYTHON3 'Python mailbox reads the same messages and flags' '
	python3 - edge.mbox edge >py.out <<-\EOF &&
	import mailbox, os, sys
	box = mailbox.mbox(sys.argv[1], create=False)
	seen = sorted((m["Subject"], "R" in m.get_flags()) for m in box)
	md = []
	for f in os.listdir(sys.argv[2] + "/cur"):
	    with open(sys.argv[2] + "/cur/" + f, "rb") as fh:
	        msg = mailbox.Message(fh.read())
	    md.append((msg["Subject"], "S" in f.split(":2,")[1]))
	print(len(box), seen == sorted(md))
	EOF
	echo "8 True" >py.exp && test_cmp py.exp py.out
'

test_expect_success 'a re-run changes nothing and reads no message' '
	cp edge.mbox edge.before &&
	"$MSYNC" --backup edge mbox:edge.mbox --stats >stats 2>&1 &&
	cmp edge.before edge.mbox
'

test_expect_success 'flags set on the Maildir side reach the mbox, the rest stays' '
	f=$(ls edge/cur/3.M1P1.edge*) && mv "$f" "${f%:2,*}:2,FRS" &&
	"$MSYNC" --backup edge mbox:edge.mbox &&
	"$MSYNC" --backup mbox:edge.mbox edge3 &&
	test_cmp_trees edge edge3
'

# --- the corpus ------------------------------------------------------

if ! test_have_prereq PERL; then
	test_done
fi
if test_have_prereq CORPUS &&
    make_corpus corpus "$corpus_n" >corpus.log 2>&1; then
	test_set_prereq CORPUS_BUILT
elif [ "${MSYNC_TEST_CORPUS:-}" = true ]; then
	test_expect_success 'build the corpus (MSYNC_TEST_CORPUS=true)' '
		cat corpus.log; false
	'
	test_done
fi

test_expect_success CORPUS_BUILT 'corpus: Maildir -> mbox (Thunderbird layout, nested folders) -> Maildir' '
	"$MSYNC" --backup corpus/maildir "mbox:tb;layout=thunderbird" &&
	test_path_is_file tb/Lists && test_path_is_file tb/Lists.sbd/Newsletters &&
	"$MSYNC" --backup "mbox:tb;layout=thunderbird" back &&
	maildir_digest --names corpus/maildir >d1 &&
	maildir_digest --names back >d2 && test_cmp d1 d2 &&
	test_line_count = "$corpus_n" d2
'

# mkcorpus names its mbox files "Lists.Newsletters": a name Maildir++
# cannot hold (a dot in a folder name), so the Maildir side is in the fs
# layout here.
test_expect_success CORPUS_BUILT 'corpus: mbox files (mboxrd, from mkcorpus) -> Maildir -> mbox -> Maildir' '
	"$MSYNC" --backup mbox:corpus/mbox "frommbox;layout=fs" &&
	"$MSYNC" --list -vv mbox:corpus/mbox | grep -c "^  " >n1 &&
	echo "$corpus_n" >n0 && test_cmp n0 n1 &&
	"$MSYNC" --backup "frommbox;layout=fs" mbox:again &&
	"$MSYNC" --backup mbox:again "frommbox2;layout=fs" &&
	test_cmp_trees frommbox frommbox2
'

test_expect_success CORPUS_BUILT,PYTHON3 'corpus: Python reads the same messages from each mbox file msync wrote' '
	python3 - again frommbox >py2.out <<-\EOF &&
	import mailbox, os, sys, hashlib, re
	# Python reads mboxo: a message with a ">*From " line reads
	# differently there (the mboxrd quoting stays); those are left out.
	fromline = re.compile(rb"(^|\n)>*From ")
	# msync adds Status, X-Status, X-Keywords, Content-Length; such
	# headers of the message itself it keeps as X-Msync-Kept-NAME.
	def strip(b):
	    head, sep, body = b.partition(b"\n\n")
	    keep = [l[13:] if l.lower().startswith(b"x-msync-kept-") else l
	            for l in head.split(b"\n") if not l.lower().startswith((b"status:", b"x-status:", b"x-keywords:", b"content-length:"))]
	    return b"\n".join(keep) + sep + body
	bad = 0
	for name in ("INBOX", "Lists.Newsletters", "Junk"):
	    box = mailbox.mbox(os.path.join(sys.argv[1], name), create=False)
	    raw = [box.get_bytes(k) for k in box.keys()]
	    got = sorted(hashlib.md5(strip(b)).hexdigest() for b in raw
	                 if not fromline.search(b))
	    d = sys.argv[2] if name == "INBOX" else os.path.join(sys.argv[2], name)
	    want = []
	    for sub in ("cur", "new"):
	        for f in os.listdir(os.path.join(d, sub)):
	            b = open(os.path.join(d, sub, f), "rb").read()
	            if fromline.search(b): continue
	            if not b.endswith(b"\n"): b += b"\n"
	            want.append(hashlib.md5(b).hexdigest())
	    if sorted(want) != got or not got:
	        bad += 1
	        print(name, len(want), len(got))
	print("bad", bad)
	EOF
	echo "bad 0" >py2.exp && test_cmp py2.exp py2.out
'

test_done
