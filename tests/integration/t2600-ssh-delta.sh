#!/usr/bin/env bash
test_description='protocol 3 over a real sshd: a run after a few changes
sends the changes, not the lists (MSGS_DELTA and BASE_REFS), with OpenSSH
and libssh, in --backup and two-way, across list records of 1024
entries; the result checked with Python'"'"'s mailbox module'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-sshd.sh"

test_lazy_prereq PYTHON3 'python3 -c "import mailbox, hashlib"'
test_require_prereq PYTHON3 SSHD

# mk_store DIR: INBOX with 1100 messages (more than one list record of
# 1024), Lists with 120, all Seen; written by Python for speed.
mk_store() {
	python3 - "$1" <<'EOF'
import os, sys
root = sys.argv[1]
def folder(path, n, tag):
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(path, d), exist_ok=True)
    for i in range(1, n + 1):
        body = ("From: a@example.org\nTo: b@example.net\n"
                "Subject: %s %d\nMessage-ID: <%s.%d@example.org>\n\n"
                "message %d of %s, some text to make it a message.\n"
                % (tag, i, tag, i, i, tag))
        name = "1700000000.M%dP1Q%s.test:2,S" % (i, tag)
        with open(os.path.join(path, "cur", name), "w") as f:
            f.write(body)
        t = 1700000000 + i
        os.utime(os.path.join(path, "cur", name), (t, t))
folder(root, 1100, "inbox")
folder(os.path.join(root, ".Lists"), 120, "lists")
EOF
}

# py_digest ROOT: "folder md5 flags" per message, sorted, read with
# Python's mailbox module (an independent Maildir reader).
py_digest() {
	python3 - "$1" <<'EOF'
import hashlib, mailbox, sys
md = mailbox.Maildir(sys.argv[1], factory=None, create=False)
out = []
def dump(box, name):
    for key in box.keys():
        m = box.get_message(key)
        data = box.get_bytes(key).replace(b"\r\n", b"\n")
        out.append("%s %s %s" % (name, hashlib.md5(data).hexdigest(),
                                 "".join(sorted(m.get_flags())) or "-"))
dump(md, "INBOX")
for f in md.list_folders():
    dump(md.get_folder(f), f)
print("\n".join(sorted(out)))
EOF
}

# msg_file DIR TAG N: the file of message N of mk_store's TAG in DIR
# (found by its Subject: msync names the copies it makes its own way).
msg_file() {
	local f
	f=$(grep -l -x "Subject: $2 $3" "$1"/cur/* "$1"/new/* 2>/dev/null |
	    head -n 1)
	[ -n "$f" ] || { echo "msg_file: no $2 $3 in $1" >&2; return 1; }
	printf '%s\n' "$f"
}

# change ROOT: 3 new messages in INBOX, the Flagged flag on 3, 3 deleted
# (one of them past the first 1024, so the runs of consecutive uids
# break inside the second record), 1 deleted in Lists.
change() {
	local r=$1 f i
	for i in 1 2 3; do
		deliver "$r" "" S >/dev/null || return 1
	done
	for i in 10 500 1050; do
		f=$(msg_file "$r" inbox $i) && set_flags "$f" FS || return 1
	done
	for i in 20 700 1030; do
		f=$(msg_file "$r" inbox $i) && rm "$f" || return 1
	done
	f=$(msg_file "$r/.Lists" lists 7) && rm "$f"
}

# sent_raw LOG: bytes sent before compression, from --stats.
sent_raw() {
	sed -n 's/^msync: wire: sent [0-9]* bytes (\([0-9]*\) before compression).*/\1/p' "$1"
}

# new_bytes ROOT: the size of the messages change() delivered.
new_bytes() {
	cat "$1"/cur/*_*.* 2>/dev/null | wc -c
}
# (deliver names files NOW.PID_N.HOST, mk_store T.MiP1Q...: only the
# delivered ones have an underscore.)

test_expect_success 'start sshd' '
	start_sshd
'

for tr in ssh libssh; do
	case $tr in
	ssh) X=(-e "$SSH_CMD") ;;
	libssh) X=(--ssh=libssh) ;;
	esac

	test_expect_success "$tr: a --backup after a few changes sends the changes, not the lists" '
		rm -rf "$TRASH/src-$tr" "$TRASH/dst-$tr" &&
		mk_store "$TRASH/src-$tr" &&
		"$MSYNC" -q --backup "${X[@]}" "$TRASH/src-$tr" \
		    "msynctest:$TRASH/dst-$tr" &&
		sleep 1.2 &&
		"$MSYNC" -q --backup "${X[@]}" "$TRASH/src-$tr" \
		    "msynctest:$TRASH/dst-$tr" &&
		change "$TRASH/src-$tr" &&
		sleep 1.2 &&
		"$MSYNC" --stats --backup "${X[@]}" "$TRASH/src-$tr" \
		    "msynctest:$TRASH/dst-$tr" 2>"$TRASH/stats-$tr" &&
		cat "$TRASH/stats-$tr" &&
		py_digest "$TRASH/src-$tr" >"$TRASH/want-$tr" &&
		py_digest "$TRASH/dst-$tr" >"$TRASH/got-$tr" &&
		test_cmp "$TRASH/want-$tr" "$TRASH/got-$tr" &&
		test_line_count = 1219 "$TRASH/got-$tr" &&
		grep -c " FS$" "$TRASH/got-$tr" >"$TRASH/nf" &&
		echo 3 >"$TRASH/nf.want" && test_cmp "$TRASH/nf.want" "$TRASH/nf" &&
		raw=$(sent_raw "$TRASH/stats-$tr") &&
		nb=$(new_bytes "$TRASH/src-$tr") &&
		echo "sent $raw bytes before compression, new mail $nb" &&
		# The lists alone would be over 1220 x 75 bytes (91 kB).
		test "$raw" -lt $((nb + 8000))
	'
done

test_expect_success 'two-way: changes on both sides, B changed too (no BASE_REFS there)' '
	rm -rf "$TRASH/a" "$TRASH/b" &&
	mk_store "$TRASH/a" &&
	"$MSYNC" -q -e "$SSH_CMD" "$TRASH/a" "msynctest:$TRASH/b" &&
	sleep 1.2 &&
	change "$TRASH/a" &&
	deliver "$TRASH/b/.Lists" "" S >/dev/null &&
	f=$(msg_file "$TRASH/b" inbox 33) && set_flags "$f" RS &&
	f=$(msg_file "$TRASH/b" inbox 900) && rm "$f" &&
	sleep 1.2 &&
	"$MSYNC" --stats -e "$SSH_CMD" "$TRASH/a" "msynctest:$TRASH/b" \
	    2>"$TRASH/stats-2w" &&
	cat "$TRASH/stats-2w" &&
	py_digest "$TRASH/a" >"$TRASH/want-2w" &&
	py_digest "$TRASH/b" >"$TRASH/got-2w" &&
	test_cmp "$TRASH/want-2w" "$TRASH/got-2w" &&
	test_line_count = 1219 "$TRASH/got-2w" &&
	grep -q " RS$" "$TRASH/got-2w" &&
	sleep 1.2 &&
	"$MSYNC" --stats -e "$SSH_CMD" "$TRASH/a" "msynctest:$TRASH/b" \
	    2>"$TRASH/stats-nc" &&
	grep "0 copied" "$TRASH/stats-nc" &&
	raw=$(sent_raw "$TRASH/stats-nc") &&
	test "$raw" -lt 4000
'

test_expect_success 'a pull (--backup from B): B sends full lists, A plans right' '
	rm -rf "$TRASH/pa" &&
	"$MSYNC" -q --backup -e "$SSH_CMD" "msynctest:$TRASH/b" "$TRASH/pa" &&
	sleep 1.2 &&
	deliver "$TRASH/b" "" S >/dev/null &&
	f=$(msg_file "$TRASH/b" inbox 40) && set_flags "$f" FS &&
	f=$(msg_file "$TRASH/b" inbox 41) && rm "$f" &&
	f=$(msg_file "$TRASH/b" inbox 1060) && rm "$f" &&
	sleep 1.2 &&
	"$MSYNC" -q --backup -e "$SSH_CMD" "msynctest:$TRASH/b" "$TRASH/pa" &&
	py_digest "$TRASH/b" >"$TRASH/want-p" &&
	py_digest "$TRASH/pa" >"$TRASH/got-p" &&
	test_cmp "$TRASH/want-p" "$TRASH/got-p"
'

test_done
