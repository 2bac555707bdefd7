#!/usr/bin/env bash
test_description='IMAP header fingerprints with the Maildir over ssh: a protocol 4 server sends them (FPRINTS), a protocol 3 server is still served (every unknown body read, no duplicate); a first two-way sync against a half-filled account'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-sshd.sh"
. "$TEST_DIR/lib-imapd.sh"
test_require_prereq SSHD IMAPD

IMAPD_EXTRA_CONF=$IMAPD_COUNTERS
PASSCMD="echo $IMAPD_PASS"

test_expect_success 'start sshd and imapd; a Maildir of 10; bob and carol hold 5 of them (APPEND, other flags)' '
	start_sshd && start_imapd &&
	make_maildir md &&
	for i in $(seq 1 10); do
		gen_message $i sf | deliver md - S >/dev/null || return 1
	done &&
	md_digest md >md.digest &&
	ls md/cur/* | head -n 5 >pre.files &&
	for u in bob carol; do
		python3 "$TEST_DIR/imap_append.py" "$IMAPS_PORT" $u \
		    "$IMAPD_PASS" INBOX "(\\Answered)" $(cat pre.files) ||
		    return 1
	done &&
	cat >msync-v23 <<-EOF &&
	#!/bin/sh
	MSYNC_TEST_PROTO_VERSIONS="2 3"
	export MSYNC_TEST_PROTO_VERSIONS
	exec "$MSYNC" "\$@"
	EOF
	chmod +x msync-v23
'

test_expect_success 'Maildir over ssh -> IMAP, protocol 4: 5 matched, no body read, none twice' '
	rm -rf "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	: >"$IMAPD_DIR/log" &&
	msync -vv --backup -e "$SSH_CMD" --passcmd "$PASSCMD" \
	    msynctest:"$TRASH/md" "$(imaps_url bob)" 2>err &&
	grep "protocol version 5" err &&
	grep "5 of 5 new message(s) matched by header fingerprint" err &&
	imapd_settle bob && test "$(imapd_sent fbc bob)" = 0 &&
	imap_digest bob >got && test_cmp md.digest got &&
	imapd_dups bob >d && ! test -s d
'

test_expect_success 'the same with a protocol 3 server: served, the 5 bodies read once, none twice' '
	rm -rf "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	: >"$IMAPD_DIR/log" &&
	msync -vv --backup -e "$SSH_CMD" --remote-msync "$TRASH/msync-v23" \
	    --passcmd "$PASSCMD" msynctest:"$TRASH/md" "$(imaps_url carol)" 2>err &&
	grep "protocol version 3" err &&
	! grep "matched by header fingerprint" err &&
	imapd_settle carol && test "$(imapd_sent fbc carol)" = 5 &&
	imap_digest carol >got && test_cmp md.digest got &&
	imapd_dups carol >d && ! test -s d
'

test_expect_success 'a first two-way sync, IMAP half-filled (alice): matched, the rest copied both ways, flags merged, no duplicate' '
	python3 "$TEST_DIR/imap_append.py" "$IMAPS_PORT" alice "$IMAPD_PASS" \
	    INBOX "(\\Flagged)" $(cat pre.files) &&
	gen_message 77 only-imap >extra &&
	python3 "$TEST_DIR/imap_append.py" "$IMAPS_PORT" alice "$IMAPD_PASS" \
	    INBOX "" extra &&
	rm -rf "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	cp -r md tw &&
	: >"$IMAPD_DIR/log" &&
	msync -vv -e "$SSH_CMD" --passcmd "$PASSCMD" "$(imaps_url alice)" \
	    msynctest:"$TRASH/tw" 2>err &&
	grep "5 of 6 new message(s) matched by header fingerprint" err &&
	imapd_settle alice && test "$(imapd_sent fbc alice)" = 1 &&
	imap_digest alice >a && md_digest tw >b && test_cmp a b &&
	test_line_count = 11 a &&
	imapd_dups alice >d && ! test -s d &&
	grep -c "	FS$" a >nf && test "$(cat nf)" = 5
'

test_done
