#!/usr/bin/env bash
test_description='IMAP store, the costs of a first copy: no COMPRESS=DEFLATE to a server on a loopback address unless asked for (MSYNC_IMAP_COMPRESS), and the bodies read while listing kept in one unlinked spool file, so that a run killed in the middle of its listing leaves no body behind in the cache directory'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-imapd.sh"
test_require_prereq IMAPD

PASSCMD="echo $IMAPD_PASS"
MSYNC_IMAP_BACKOFF_MS=10
export MSYNC_IMAP_BACKOFF_MS

# spooled: the files in the IMAP cache directories other than the
# caches themselves (a cache file is named by a 32-digit hash).
spooled() {
	find "$XDG_CACHE_HOME/msync/imap" -type f 2>/dev/null |
	    grep -Ev '/[0-9a-f]{32}$' || true
}

test_expect_success 'start imapd' 'start_imapd'

test_expect_success 'setup: alice has INBOX (30 messages) and Work (3)' '
	for i in $(seq 1 30); do
		gen_message "$i" inbox | doveadm_u alice save -m INBOX ||
		    return 1
	done &&
	doveadm_u alice "mailbox create" Work &&
	for i in 1 2 3; do
		gen_message "$i" work | doveadm_u alice save -m Work || return 1
	done &&
	doveadm_u alice "flags add" "\\Seen" mailbox INBOX 1:9 &&
	imap_digest alice >dove.0 && test_line_count = 33 dove.0
'

test_expect_success 'a server on 127.0.0.1: COMPRESS=DEFLATE is not asked for' '
	msync -vv --backup --passcmd "$PASSCMD" "$(imaps_url alice)" md1 \
	    2>log &&
	grep "a loopback address: COMPRESS=DEFLATE not asked for" log &&
	! grep "COMPRESS=DEFLATE on" log &&
	md_digest md1 >md1.now && test_cmp dove.0 md1.now
'

test_expect_success 'MSYNC_IMAP_COMPRESS=1 asks for it all the same; new bodies come compressed' '
	rm -rf "$XDG_CACHE_HOME/msync" "$XDG_STATE_HOME/msync" &&
	MSYNC_IMAP_COMPRESS=1 msync -vv --backup --passcmd "$PASSCMD" \
	    "$(imaps_url alice)" md2 2>log &&
	grep "COMPRESS=DEFLATE on" log &&
	md_digest md2 >md2.now && test_cmp dove.0 md2.now &&
	gen_message 31 inbox | doveadm_u alice save -m INBOX &&
	MSYNC_IMAP_COMPRESS=1 msync -vv --backup --passcmd "$PASSCMD" \
	    "$(imaps_url alice)" md2 2>log &&
	grep "COMPRESS=DEFLATE on" log &&
	imap_digest alice >dove.1 && test_line_count = 34 dove.1 &&
	md_digest md2 >md2.now && test_cmp dove.1 md2.now &&
	test -z "$(spooled)"
'

test_expect_success 'MSYNC_IMAP_NO_COMPRESS wins over MSYNC_IMAP_COMPRESS' '
	MSYNC_IMAP_COMPRESS=1 MSYNC_IMAP_NO_COMPRESS=1 msync -vv --backup \
	    --passcmd "$PASSCMD" "$(imaps_url alice)" md2 2>log &&
	! grep "COMPRESS=DEFLATE" log
'

# The relay's hook kills msync (the IMAP side; its Maildir side ends
# with the connection) just before it opens INBOX, the mailbox Dovecot
# lists after Work: Work's 3 bodies have been read into the spool then
# (checked: a UID FETCH before the hook).
test_expect_success 'killed while listing, after Work was read: no body is left in the cache directory' '
	rm -rf "$XDG_CACHE_HOME/msync" "$XDG_STATE_HOME/msync" md3 &&
	start_relay "hook:EXAMINE \"INBOX\"" "kill -9 \$(cat $PWD/msync.pid)" &&
	{ MSYNC_IMAP_NO_COMPRESS=1 msync --backup --passcmd "$PASSCMD" \
	    "$(relay_url alice)" md3 2>err & echo $! >msync.pid; } &&
	wait $(cat msync.pid)
	rc=$?
	stop_relay &&
	echo "exit $rc" &&
	test "$rc" = 137 &&
	awk "/UID FETCH/ { f = 1 } / hook\$/ { print f + 0; exit }" \
	    relay.log >fetched_before && test "$(cat fetched_before)" = 1 &&
	test -d "$XDG_CACHE_HOME/msync/imap" &&
	spooled >left && cat left && test_line_count = 0 left
'

test_expect_success 'the next run completes the copy' '
	msync --backup --passcmd "$PASSCMD" "$(imaps_url alice)" md3 &&
	md_digest md3 >md3.now && test_cmp dove.1 md3.now &&
	test -z "$(spooled)"
'

test_expect_success 'no state and no cache, the Maildir complete: bodies read only to learn their GUIDs leave nothing in the cache directory' '
	rm -rf "$XDG_CACHE_HOME/msync" "$XDG_STATE_HOME/msync" &&
	msync -vv --backup --passcmd "$PASSCMD" "$(imaps_url alice)" md3 \
	    2>log &&
	md_digest md3 >md3.now && test_cmp dove.1 md3.now &&
	test -z "$(spooled)"
'

test_done
