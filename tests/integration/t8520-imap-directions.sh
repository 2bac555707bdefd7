#!/usr/bin/env bash
test_description='IMAP store: Maildir -> IMAP, two-way Maildir <-> IMAP, IMAP -> IMAP (two users), in the three modes, checked with doveadm'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-imapd.sh"
test_require_prereq IMAPD

PASSCMD="echo $IMAPD_PASS"

test_expect_success 'start imapd' 'start_imapd'

test_expect_success 'setup: a Maildir with folders, flags, a keyword, CRLF and an old date' '
	make_maildir src &&
	for i in 1 2 3 4 5; do deliver src "" S >/dev/null || return 1; done &&
	deliver src "" FR >/dev/null &&
	f=$(deliver src "" "") && touch -d "2020-02-03 04:05:06 UTC" "$f" &&
	printf "Subject: crlf\r\nMessage-ID: <crlf@x>\r\n\r\nline one\r\nline two\r\n" |
	    deliver src - S >/dev/null &&
	make_folder src "Archive/2024" &&
	deliver "$(folder_path src Archive/2024)" "" S >/dev/null &&
	md_digest src >src.digest && test_line_count = 9 src.digest
'

test_expect_success 'backup Maildir -> IMAP' '
	msync --backup --passcmd "$PASSCMD" src "$(imaps_url bob)" &&
	imap_digest bob >bob.digest && test_cmp src.digest bob.digest
'

test_expect_success 'the file date became INTERNALDATE' '
	doveadm_u -f tab bob fetch "date.received" mailbox INBOX \
	    header Message-ID "$(sed -n "s/^Message-ID: //p" "$f")" >d &&
	grep "2020-02-03 04:05:06" d
'

test_expect_success 'the Maildir source is unchanged' '
	md_digest src >src.after && test_cmp src.digest src.after
'

test_expect_success 'backup again: nothing to do, nothing duplicated' '
	msync --backup --passcmd "$PASSCMD" src "$(imaps_url bob)" &&
	imap_digest bob >bob.digest2 && test_cmp src.digest bob.digest2
'

test_expect_success 'backup removes on IMAP what left the Maildir, and flags follow' '
	rm "$(ls src/cur/* | head -n 1)" &&
	set_flags "$(ls src/cur/* | tail -n 1)" FS &&
	md_digest src >src.digest &&
	msync --backup --passcmd "$PASSCMD" src "$(imaps_url bob)" &&
	imap_digest bob >bob.digest3 && test_cmp src.digest bob.digest3
'

test_expect_success 'two-way: a change on each side reaches the other' '
	msync --passcmd "$PASSCMD" src "$(imaps_url bob)" &&
	gen_message 50 server | doveadm_u bob save -m INBOX &&
	doveadm_u bob "flags add" "\\Answered" mailbox INBOX 1 &&
	deliver src "" "" >/dev/null &&
	msync --passcmd "$PASSCMD" src "$(imaps_url bob)" &&
	md_digest src >a && imap_digest bob >b && test_cmp a b &&
	grep -c . a >n && test "$(cat n)" = 10
'

test_expect_success 'two-way: an expunge on the server is replayed in the Maildir' '
	doveadm_u bob expunge mailbox INBOX uid 2 &&
	msync --passcmd "$PASSCMD" src "$(imaps_url bob)" &&
	md_digest src >a && imap_digest bob >b && test_cmp a b &&
	test_line_count = 9 a
'

test_expect_success 'two-way with the IMAP side first gives the same' '
	gen_message 51 server | doveadm_u bob save -m INBOX &&
	msync --passcmd "$PASSCMD" "$(imaps_url bob)" src &&
	md_digest src >a && imap_digest bob >b && test_cmp a b
'

test_expect_success 'a lost cache: bodies are read again, none is copied, none stays in the spool' '
	rm -rf "$XDG_CACHE_HOME/msync/imap" &&
	msync --passcmd "$PASSCMD" src "$(imaps_url bob)" &&
	md_digest src >a && imap_digest bob >b && test_cmp a b &&
	find "$XDG_CACHE_HOME/msync/imap" -type f >files &&
	test -s files && ! grep "\.[0-9]*\.[0-9]*$" files &&
	! grep -E "/(spool|save)\." files
'

test_expect_success 'backup IMAP -> IMAP makes carol identical to bob' '
	msync --backup --passcmd "$PASSCMD" "$(imaps_url bob)" "$(imap_url carol)" &&
	imap_digest bob >b && imap_digest carol >c && test_cmp b c
'

test_expect_success 'one-way IMAP -> IMAP (bob to carol), then a delete on bob stays on carol' '
	msync --one-way --passcmd "$PASSCMD" "$(imaps_url bob)" "$(imap_url carol)" &&
	imap_digest bob >b && imap_digest carol >c && test_cmp b c &&
	doveadm_u bob expunge mailbox INBOX uid 3 &&
	msync --one-way --passcmd "$PASSCMD" "$(imaps_url bob)" "$(imap_url carol)" &&
	imap_digest carol >c2 && test_cmp c c2
'

test_done
