#!/usr/bin/env bash
test_description='IMAP store: a first sync against an account another tool half filled recognises the messages already there by their header fingerprint (Message-ID, Date, CRLF size) without reading their bodies; messages without a Message-ID are read; no duplicates either way (docs/IMAP.md)'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-imapd.sh"
test_require_prereq IMAPD

# Dovecot counts, per session, the bodies and headers it sent: the
# independent count of what msync downloaded.
IMAPD_EXTRA_CONF=$IMAPD_COUNTERS
PASSCMD="echo $IMAPD_PASS"

test_expect_success 'start imapd' 'start_imapd'

test_expect_success 'setup: a Maildir of 12 messages and 2 without Message-ID; another tool APPENDed 6 + 1 of them to bob with other flags' '
	fprint_maildir src fp &&
	md_digest src >src.digest && test_line_count = 14 src.digest &&
	ls src/cur/* >all &&
	grep -l "^Message-ID: <fp\.[1-6]\." $(cat all) >pre.files &&
	test_line_count = 6 pre.files &&
	grep -L "^Message-ID:" $(cat all) | head -n 1 >>pre.files &&
	python3 "$TEST_DIR/imap_append.py" "$IMAPS_PORT" bob "$IMAPD_PASS" \
	    INBOX "(\\Flagged)" $(cat pre.files) &&
	imap_digest bob >pre && test_line_count = 7 pre
'

test_expect_success 'Maildir -> IMAP backup, no state or cache: 6 recognised by fingerprint, 1 read (no Message-ID), 7 uploaded, none twice (14 in all)' '
	rm -rf "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	: >"$IMAPD_DIR/log" &&
	msync -vv --backup --passcmd "$PASSCMD" src "$(imaps_url bob)" 2>err &&
	grep "6 of 7 new message(s) matched by header fingerprint" err &&
	imapd_settle bob &&
	test "$(imapd_sent fbc bob)" = 1 && test "$(imapd_sent fhc bob)" -ge 7 &&
	imap_digest bob >got && test_cmp src.digest got &&
	imapd_dups bob >d && ! test -s d &&
	doveadm_u -f tab bob fetch uid mailbox INBOX >uids &&
	test_line_count = 15 uids
'

test_expect_success 'the cache marks the matched ones (~), and a re-run reads nothing and changes nothing' '
	grep -c "^[0-9]* ~" "$XDG_CACHE_HOME"/msync/imap/*/* >n &&
	test "$(cat n)" = 6 &&
	: >"$IMAPD_DIR/log" &&
	msync --backup --passcmd "$PASSCMD" src "$(imaps_url bob)" &&
	imapd_settle bob && test "$(imapd_sent fbc bob)" = 0 &&
	imap_digest bob >got && test_cmp src.digest got
'

test_expect_success 'IMAP -> a Maildir holding 6 of them, no state: only the 8 missing bodies (and the no-Message-ID one) are read' '
	make_maildir half &&
	for f in $(head -n 6 pre.files); do cp "$f" half/cur/ || return 1; done &&
	rm -rf "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	: >"$IMAPD_DIR/log" &&
	msync -vv --one-way --passcmd "$PASSCMD" "$(imaps_url bob)" half 2>err &&
	grep "6 of 14 new message(s) matched by header fingerprint" err &&
	imapd_settle bob && test "$(imapd_sent fbc bob)" = 8 &&
	test "$(count_all half)" = 14 &&
	md_digest half | cut -f1,2 >got && cut -f1,2 src.digest >want &&
	test_cmp want got
'

test_expect_success 'an older peer (protocol 3): no fingerprints, every unknown body read once, still no duplicate' '
	make_maildir old &&
	for f in $(head -n 6 pre.files); do cp "$f" old/cur/ || return 1; done &&
	rm -rf "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	: >"$IMAPD_DIR/log" &&
	MSYNC_TEST_PROTO_VERSIONS="2 3" msync -vv --one-way \
	    --passcmd "$PASSCMD" "$(imaps_url bob)" old 2>err &&
	! grep "matched by header fingerprint" err &&
	imapd_settle bob && test "$(imapd_sent fbc bob)" = 14 &&
	test "$(count_all old)" = 14
'

test_expect_success 'duplicates of one fingerprint: matched one to one in UID order, the other two copied (from the matched one, a copy within the server)' '
	make_maildir twin &&
	gen_message 40 tw | deliver twin - S >/dev/null &&
	gen_message 40 tw | deliver twin - SF >/dev/null &&
	gen_message 40 tw | deliver twin - >/dev/null &&
	ls twin/cur/* | head -n 1 >one &&
	python3 "$TEST_DIR/imap_append.py" "$IMAPS_PORT" alice "$IMAPD_PASS" \
	    INBOX "" $(cat one) &&
	rm -rf "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	: >"$IMAPD_DIR/log" &&
	msync -vv --one-way --passcmd "$PASSCMD" twin "$(imaps_url alice)" 2>err &&
	grep "1 of 1 new message(s) matched by header fingerprint" err &&
	doveadm_u -f tab alice fetch "uid hdr.message-id" mailbox INBOX >uids &&
	cat uids &&
	test_line_count = 4 uids
'

test_expect_success 'same Message-ID, Date and size, other bytes: taken as the same (documented); reading it later finds out, exit 2, and the next run copies it right' '
	make_maildir orig &&
	gen_message 50 mm | deliver orig - S >/dev/null &&
	gen_message 50 mm | sed "s/Hello Bob/Hello Bub/" >changed &&
	python3 "$TEST_DIR/imap_append.py" "$IMAPS_PORT" carol "$IMAPD_PASS" \
	    INBOX "" changed &&
	rm -rf "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	msync -vv --backup --passcmd "$PASSCMD" orig "$(imaps_url carol)" 2>err &&
	grep "1 of 1 new message(s) matched" err &&
	doveadm_u -f tab carol fetch uid mailbox INBOX >uids &&
	test_line_count = 2 uids &&
	make_maildir out &&
	test_expect_code 2 msync --backup --passcmd "$PASSCMD" \
	    "$(imaps_url carol)" out 2>err &&
	grep "has the Message-ID, Date and size of another message but not its content" err &&
	msync --backup --passcmd "$PASSCMD" "$(imaps_url carol)" out &&
	test "$(count_all out)" = 1 &&
	grep -l "Hello Bub" out/cur/* out/new/* 2>/dev/null | grep . &&
	msync --backup --passcmd "$PASSCMD" orig "$(imaps_url carol)" &&
	imap_digest carol | cut -f2 >got && md_digest orig | cut -f2 >want &&
	test_cmp want got
'

test_done
