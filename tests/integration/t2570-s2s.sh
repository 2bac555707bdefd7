#!/usr/bin/env bash
test_description='server to server: msync msyncs://d1/... msyncs://d2/...,
two daemons on 127.0.0.1 with a test CA; each mode daemon to daemon,
--dry-run, --list of either, a read-only module as source and never as
destination on either daemon, the sync state kept by daemon 1; stores
read back with Python mailbox and perl digests, not with msync'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-msyncd.sh"

test_require_prereq OPENSSL PYTHON PERL

# U DAEMON USER MODULE/PATH
U() {
	local p
	eval "p=\$MSYNCD_PORT_$1"
	printf 'msyncs://%s@127.0.0.1:%s/%s;secret-file=%s' "$2" "$p" "$3" \
	    "$TRASH/$2.secret"
}

# Keeps the client's own state out of the way: it must write none.
export XDG_STATE_HOME="$TRASH/client-state"

test_expect_success 'two daemons, each with a read-write and a read-only module' '
	msyncd_pki &&
	for n in d1 d2; do
		msyncd_conf $n &&
		mkdir -p $n/ro/INBOX && make_maildir $n/ro/INBOX &&
		cat >>$n/msyncd.conf <<-EOF || return 1
		[mail]
		path = $TRASH/$n/srv/%u
		users = alice, bob
		read only = no
		[archive]
		path = $TRASH/$n/ro
		users = alice
		EOF
	done &&
	make_folder d1/ro/INBOX Old &&
	for i in 1 2 3 4 5; do deliver d1/ro/INBOX "" S >/dev/null || return 1; done &&
	deliver "$(folder_path d1/ro/INBOX Old)" "" >/dev/null &&
	deliver d2/ro/INBOX "" >/dev/null &&
	msyncd_own d1/ro d2/ro &&
	msyncd_start d1 && msyncd_start d2
'

test_expect_success '--backup from a read-only module on d1 to d2' '
	maildir_digest d1/ro/INBOX >ro.before &&
	find d1/ro -type f | sort >ro.files.before &&
	"$MSYNC" --backup "$(U d1 alice archive/INBOX)" "$(U d2 alice mail/copy)" &&
	test "$(py_count d2/srv/alice/copy)" = 6 &&
	test_cmp_trees d1/ro/INBOX d2/srv/alice/copy &&
	maildir_digest d1/ro/INBOX >ro.after && test_cmp ro.before ro.after &&
	find d1/ro -type f | sort >ro.files.after &&
	test_cmp ro.files.before ro.files.after &&
	grep "user alice module archive: logged in (read-only), server to server: side A" d1/log &&
	grep "user alice module mail: logged in" d2/log &&
	grep "user alice module archive: done, status 0" d1/log
'

test_expect_success 'the state lives in d1 cache dir, none on the client' '
	ls d1/cache/s2s/*.state >states &&
	test_line_count = 1 states &&
	! test -e client-state
'

test_expect_success '--backup again: nothing to do, nothing copied twice' '
	"$MSYNC" --backup --stats "$(U d1 alice archive/INBOX)" "$(U d2 alice mail/copy)" 2>err &&
	test "$(py_count d2/srv/alice/copy)" = 6 &&
	grep "wire: sent" err
'

test_expect_success '--backup makes d2 identical: an extra message there goes' '
	deliver d2/srv/alice/copy "" >/dev/null && msyncd_own d2/srv &&
	test "$(py_count d2/srv/alice/copy)" = 7 &&
	"$MSYNC" --backup "$(U d1 alice archive/INBOX)" "$(U d2 alice mail/copy)" &&
	test_cmp_trees d1/ro/INBOX d2/srv/alice/copy
'

test_expect_success 'two-way between the read-write modules, changes both sides' '
	make_folder d1/srv/alice/Maildir Work &&
	for i in 1 2 3; do deliver d1/srv/alice/Maildir "" S >/dev/null || return 1; done &&
	deliver "$(folder_path d1/srv/alice/Maildir Work)" "" >/dev/null &&
	make_maildir d2/srv/alice/Maildir &&
	deliver d2/srv/alice/Maildir "" >/dev/null &&
	msyncd_own d1/srv d2/srv &&
	"$MSYNC" "$(U d1 alice mail/Maildir)" "$(U d2 alice mail/Maildir)" &&
	test "$(py_count d1/srv/alice/Maildir)" = 5 &&
	test_cmp_trees d1/srv/alice/Maildir d2/srv/alice/Maildir &&
	# A deletion on d2 and a new message on d1 meet in the next run.
	rm -f "$(ls d2/srv/alice/Maildir/cur/* | head -1)" &&
	sleep 1 && deliver d1/srv/alice/Maildir "" >/dev/null &&
	msyncd_own d1/srv &&
	"$MSYNC" "$(U d1 alice mail/Maildir)" "$(U d2 alice mail/Maildir)" &&
	test "$(py_count d1/srv/alice/Maildir)" = 5 &&
	test "$(py_count d2/srv/alice/Maildir)" = 5 &&
	test_cmp_trees d1/srv/alice/Maildir d2/srv/alice/Maildir
'

test_expect_success '--dry-run changes neither side' '
	sleep 1 && deliver d1/srv/alice/Maildir "" >/dev/null && msyncd_own d1/srv &&
	maildir_digest d1/srv/alice/Maildir >a.before &&
	maildir_digest d2/srv/alice/Maildir >b.before &&
	"$MSYNC" --dry-run "$(U d1 alice mail/Maildir)" "$(U d2 alice mail/Maildir)" 2>out &&
	maildir_digest d1/srv/alice/Maildir >a.after &&
	maildir_digest d2/srv/alice/Maildir >b.after &&
	test_cmp a.before a.after && test_cmp b.before b.after &&
	test "$(py_count d2/srv/alice/Maildir)" = 5
'

test_expect_success '--one-way from d2 to d1 deletes nothing on d1' '
	"$MSYNC" --one-way "$(U d2 alice mail/Maildir)" "$(U d1 alice mail/Maildir)" &&
	test "$(py_count d1/srv/alice/Maildir)" = 6 &&
	sleep 1 && deliver d2/srv/alice/Maildir "" >/dev/null && msyncd_own d2/srv &&
	rm -f "$(ls d1/srv/alice/Maildir/new/* d1/srv/alice/Maildir/cur/* | head -1)" &&
	"$MSYNC" --one-way "$(U d2 alice mail/Maildir)" "$(U d1 alice mail/Maildir)" &&
	test "$(py_count d1/srv/alice/Maildir)" = 6 &&
	test "$(py_count d2/srv/alice/Maildir)" = 6
'

test_expect_success '-m limits the run to a mailbox' '
	make_folder d1/srv/alice/sel Work && make_folder d1/srv/alice/sel Other &&
	deliver "$(folder_path d1/srv/alice/sel Work)" "" >/dev/null &&
	deliver "$(folder_path d1/srv/alice/sel Other)" "" >/dev/null &&
	msyncd_own d1/srv &&
	"$MSYNC" --backup -m Work "$(U d1 alice mail/sel)" "$(U d2 alice mail/sel)" &&
	test "$(py_count d2/srv/alice/sel)" = 1 &&
	test -d "$(folder_path d2/srv/alice/sel Work)" &&
	! test -d "$(folder_path d2/srv/alice/sel Other)"
'

test_expect_success '--json: the counts are daemon 1 side A run (the new message and folder Other)' '
	sleep 1 && deliver d1/srv/alice/sel "" >/dev/null && msyncd_own d1/srv &&
	"$MSYNC" --json --backup "$(U d1 alice mail/sel)" "$(U d2 alice mail/sel)" >report.json &&
	python3 - report.json <<-\EOF
	import json, sys
	r = json.load(open(sys.argv[1]))
	print(r["status"], r["mode"], r["changes"]["b"]["copied"], r["wire"]["sent"])
	assert r["status"] == 0 and r["mode"] == "backup"
	assert r["changes"]["b"]["copied"] == 2, r
	assert r["changes"]["b"]["mailboxes_created"] == 1, r
	assert r["changes"]["a"]["copied"] == 0, r
	assert r["wire"]["sent"] > 0, r
	EOF
'

test_expect_success '--list of either daemon' '
	"$MSYNC" --list "$(U d1 alice archive/INBOX)" >l1 &&
	grep "^INBOX	5	" l1 && grep "^Old	1	" l1 &&
	"$MSYNC" --list "$(U d2 alice mail/copy)" >l2 &&
	grep "^INBOX	5	" l2 && grep "^Old	1	" l2
'

test_expect_success 'a push into the read-only module on d2 is refused, intact' '
	maildir_digest d2/ro/INBOX >before &&
	test_must_fail "$MSYNC" --backup "$(U d1 alice mail/Maildir)" "$(U d2 alice archive/INBOX)" 2>err &&
	grep "read-only" err &&
	maildir_digest d2/ro/INBOX >after && test_cmp before after
'

test_expect_success 'two-way with a read-only module on d1 is refused (77), intact' '
	maildir_digest d1/ro/INBOX >before &&
	test_expect_code 77 "$MSYNC" "$(U d1 alice archive/INBOX)" "$(U d2 alice mail/copy)" 2>err &&
	grep "module is read-only" err &&
	grep "module archive: server to server refused: module is read-only" d1/log &&
	maildir_digest d1/ro/INBOX >after && test_cmp before after
'

test_expect_success 'a wrong secret for either daemon: 77, nothing written' '
	printf "nope\n" >wrong.secret &&
	maildir_digest d2/srv/alice/Maildir >before &&
	p1=$MSYNCD_PORT_d1 && p2=$MSYNCD_PORT_d2 &&
	test_expect_code 77 "$MSYNC" --backup \
	    "msyncs://alice@127.0.0.1:$p1/mail/Maildir;secret-file=$TRASH/wrong.secret" \
	    "$(U d2 alice mail/Maildir)" 2>err &&
	grep "authentication failed" err &&
	test_expect_code 77 "$MSYNC" --backup "$(U d1 alice mail/Maildir)" \
	    "msyncs://alice@127.0.0.1:$p2/mail/Maildir;secret-file=$TRASH/wrong.secret" 2>err &&
	grep "authentication failed" err &&
	maildir_digest d2/srv/alice/Maildir >after && test_cmp before after
'

test_expect_success 'an ssh location and a daemon: still refused (one must be local)' '
	test_expect_code 64 "$MSYNC" "host:Maildir" "$(U d2 alice mail/Maildir)" 2>err &&
	grep "both locations are remote" err
'

test_done
