#!/usr/bin/env bash
test_description='IMAP store: a mailbox whose UIDVALIDITY changes in the middle of a run is stopped and reported, the others are synced, nothing is lost, and the next run merges with no duplicate'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-imapd.sh"
test_require_prereq IMAPD

PASSCMD="echo $IMAPD_PASS"
MSYNC_IMAP_NO_COMPRESS=1 MSYNC_IMAP_BACKOFF_MS=10
export MSYNC_IMAP_NO_COMPRESS MSYNC_IMAP_BACKOFF_MS

test_expect_success 'start imapd' 'start_imapd'

test_expect_success 'setup: a Maildir with 6 messages in INBOX and 2 in Work' '
	make_maildir src &&
	for i in 1 2 3 4 5 6; do deliver src "" S >/dev/null || return 1; done &&
	make_folder src Work &&
	deliver "$(folder_path src Work)" "" "" >/dev/null &&
	deliver "$(folder_path src Work)" "" F >/dev/null &&
	md_digest src >src.digest && test_line_count = 8 src.digest &&
	grep "^Work" src.digest >src.work
'

test_expect_success 'find the third APPEND into INBOX of a first backup' '
	start_relay pass &&
	msync --backup --passcmd "$PASSCMD" src "$(relay_url bob)" &&
	stop_relay &&
	grep "APPEND \"INBOX\"" relay.log | sed -n 3p | cut -d" " -f2 >at &&
	test -s at &&
	doveadm_u bob expunge mailbox "*" all &&
	doveadm_u bob "mailbox delete" Work &&
	rm -rf "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync"
'

test_expect_success 'Maildir -> IMAP: UIDVALIDITY of INBOX changed while cut: INBOX stopped, Work synced, exit 2' '
	doveadm_u bob "mailbox status" uidvalidity INBOX >uv.before &&
	start_relay "cut:$(cat at)" \
	    "doveadm -c $IMAPD_CONF mailbox update -u bob --uid-validity 4242 INBOX" &&
	test_expect_code 2 msync -v --backup --passcmd "$PASSCMD" src \
	    "$(relay_url bob)" 2>err
	rc=$?
	stop_relay && cat err && test $rc = 0 &&
	doveadm_u bob "mailbox status" uidvalidity INBOX >uv.after &&
	grep 4242 uv.after &&
	grep "UIDVALIDITY changed during the run" err &&
	grep "mailbox .INBOX. changed during the run" err &&
	imap_digest bob >got && grep "^Work" got >got.work &&
	test_cmp src.work got.work &&
	md_digest src >now && test_cmp src.digest now
'

test_expect_success 'the next run merges: no duplicate, nothing lost, exit 0' '
	msync --backup --passcmd "$PASSCMD" src "$(imap_url bob)" 2>err &&
	imap_digest bob >got && test_cmp src.digest got &&
	msync --backup --passcmd "$PASSCMD" src "$(imap_url bob)" &&
	imap_digest bob >got2 && test_cmp src.digest got2
'

test_expect_success 'IMAP -> Maildir: UIDVALIDITY changed while cut in the body reads: stopped, exit 2, re-run complete' '
	rm -rf md "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	start_relay pass &&
	msync --backup --passcmd "$PASSCMD" "$(relay_url bob)" md &&
	stop_relay &&
	grep -n "UID FETCH" relay.log | tail -n 1 | cut -d" " -f2 >at &&
	rm -rf md "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	start_relay "cut:$(cat at)" \
	    "doveadm -c $IMAPD_CONF mailbox update -u bob --uid-validity 4343 INBOX" &&
	test_might_fail msync -v --backup --passcmd "$PASSCMD" \
	    "$(relay_url bob)" md 2>err
	stop_relay && cat err &&
	grep "UIDVALIDITY changed during the run" err &&
	msync --backup --passcmd "$PASSCMD" "$(imap_url bob)" md &&
	md_digest md >got && imap_digest bob >want && test_cmp want got
'

test_done
