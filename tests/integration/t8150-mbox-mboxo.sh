#!/usr/bin/env bash
test_description='mbox ;format=mboxo: a file read as mboxo leaves ">From " lines as they are; msync writes such a file the mboxo way (a message with a "From " line gets a Content-Length instead of a quoting no mboxo reader takes back); Maildir -> mboxo -> Maildir byte for byte, Dovecot and Python'"'"'s mailbox agree'

. "$(dirname "$0")/lib.sh"
test_lazy_prereq PYTHON3 'command -v python3'
. "$TEST_DIR/lib-dovecot-mbox.sh"

# dove_digest LOCATION DIR: dove_digest_json of a copy of DIR, as
# Dovecot reads it (index in memory; the store is a copy, so Dovecot
# changes nothing under test).  Its stderr must stay empty.
dove_digest() {
	rm -rf dvc && cp -r "$2" dvc && dove_own dvc &&
	dove_adm "$1" -f json fetch 'mailbox flags text' ALL >dove.json \
	    2>dove.err &&
	! test -s dove.err &&
	dove_digest_json <dove.json
}

test_expect_success 'setup' '
	make_maildir md && mboxo_edge_messages md &&
	dove_conf
'

test_expect_success 'Maildir -> mbox;format=mboxo -> Maildir: byte for byte, with the flags' '
	"$MSYNC" --backup md "mbox:$TRASH/o.mbox;format=mboxo" &&
	"$MSYNC" --backup "mbox:$TRASH/o.mbox;format=mboxo" back &&
	test_cmp_trees md back &&
	test "$(grep -c "^From " o.mbox)" -ge 7
'

test_expect_success 'mboxo writing: ">From " lines left alone, "From " lines kept by a Content-Length' '
	grep -q "^>From one$" o.mbox && ! grep -q "^>>>From two$" o.mbox &&
	grep -q "^>>From two$" o.mbox &&
	grep -q "^From the start$" o.mbox && grep -q "^Content-Length: " o.mbox &&
	# Without a "From " line no Content-Length: the quoted-only message.
	awk "/^Subject: quoted only/ { q = 1 } q && /^Content-Length/ { bad = 1 } q && /^$/ { exit } END { exit bad }" o.mbox
'

# Dovecot shows a message without a final newline with the newline mbox
# needs, and msync's X-Msync-Headerless marker as a header (t8000): the
# messages that end in a newline and have a body are compared.
test_expect_success DOVECOT,PYTHON3 'Dovecot reads the mboxo file msync wrote as the Maildir it came from' '
	mkdir mbd && make_maildir md4 && cp md/cur/1.* md/cur/2.* md/cur/4.* md/cur/5.* md4/cur/ &&
	"$MSYNC" --backup md4 "mbox:$TRASH/mbd/in.mbox;format=mboxo" &&
	dove_digest "maildir:$TRASH/dvc" md4 >want &&
	dove_digest "mbox:$TRASH/dvc:INBOX=$TRASH/dvc/in.mbox:INDEX=MEMORY" mbd >got &&
	test_line_count = 4 want && test_cmp want got
'

test_expect_success 'read as mboxrd (the default), the same file loses a ">" on each ">From " line' '
	"$MSYNC" --backup "mbox:$TRASH/o.mbox" rd &&
	f=$(grep -l "^Subject: quoted only" rd/cur/*) &&
	grep -q "^From one$" "$f" && grep -q "^>From two$" "$f"
'

test_expect_success PYTHON3 'Python'"'"'s mailbox writes mboxo; msync with ;format=mboxo reads every message as Python does' '
	python3 - py.mbox <<-\EOF &&
	import mailbox, sys
	box = mailbox.mbox(sys.argv[1])
	for i, body in enumerate(["From start\n>From one\n>>From two\n",
	                          ">From only quoted\n", "plain\n"]):
	    box.add(("Subject: py %d\nFrom: a@example.org\n\n" % i + body).encode())
	box.flush()
	box.close()
	EOF
	grep -q "^>From start$" py.mbox &&
	"$MSYNC" --backup "mbox:$TRASH/py.mbox;format=mboxo" pmd &&
	python3 - py.mbox pmd <<-\EOF >py.out &&
	import mailbox, os, sys
	box = mailbox.mbox(sys.argv[1], create=False)
	want = sorted(box.get_bytes(k) for k in box.keys())
	got = []
	for sub in ("cur", "new"):
	    for f in os.listdir(os.path.join(sys.argv[2], sub)):
	        got.append(open(os.path.join(sys.argv[2], sub, f), "rb").read())
	print(len(want), sorted(got) == want)
	EOF
	echo "3 True" >py.exp && test_cmp py.exp py.out
'

test_expect_success 'two-way with an mboxo file: a re-run finds nothing to do (the GUIDs of what it wrote read back the same)' '
	make_maildir tw && mboxo_edge_messages tw &&
	"$MSYNC" tw "mbox:$TRASH/tw.mbox;format=mboxo" &&
	printf "Subject: later\n\nFrom later\n>From later\n" >tw/cur/9.M1P1.later:2, &&
	"$MSYNC" tw "mbox:$TRASH/tw.mbox;format=mboxo" &&
	sleep 2 && cp tw.mbox tw.before &&
	"$MSYNC" tw "mbox:$TRASH/tw.mbox;format=mboxo" &&
	"$MSYNC" "mbox:$TRASH/tw.mbox;format=mboxo" tw &&
	cmp tw.mbox tw.before && test "$(count_msgs tw)" = 8 &&
	test "$(grep -c "^From " tw.mbox)" -ge 8 &&
	"$MSYNC" --backup "mbox:$TRASH/tw.mbox;format=mboxo" tw2 &&
	test_cmp_trees tw tw2
'

test_expect_success 'two-way: a flag change and an expunge rewrite the mboxo file, the rest byte for byte' '
	f=$(grep -l "^Subject: quoted only" tw/cur/*) && mv "$f" "${f%:2,*}:2,RS" &&
	rm "$(grep -l "^Subject: plain" tw/cur/*)" &&
	"$MSYNC" tw "mbox:$TRASH/tw.mbox;format=mboxo" &&
	"$MSYNC" --backup "mbox:$TRASH/tw.mbox;format=mboxo" tw3 &&
	test_cmp_trees tw tw3 && test "$(count_msgs tw3)" = 7
'

test_expect_success '--list reads with the format given' '
	"$MSYNC" --list -v "mbox:$TRASH/o.mbox;format=mboxo" >l.o &&
	"$MSYNC" --list -v "mbox:$TRASH/o.mbox" >l.rd &&
	grep "^INBOX	7	" l.o && ! test_cmp l.o l.rd
'

test_expect_success 'bad uses of ;format= are usage errors (64)' '
	test_expect_code 64 "$MSYNC" --list "maildir:$TRASH/md;format=mboxo" &&
	test_expect_code 64 "$MSYNC" --list "$TRASH/md;format=mboxo" &&
	test_expect_code 64 "$MSYNC" --list "mbox:$TRASH/o.mbox;format=mboxcl2" &&
	test_expect_code 64 "$MSYNC" md "localhost:x;layout=fs;format=mboxo"
'

test_done
