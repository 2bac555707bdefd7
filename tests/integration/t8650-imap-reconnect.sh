#!/usr/bin/env bash
test_description='IMAP store: a connection cut at every point of a run, a BYE [UNAVAILABLE], a NO [THROTTLED]: msync backs off, connects again and resumes, with no duplicate and nothing lost (checked with doveadm)'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-imapd.sh"
test_require_prereq IMAPD

PASSCMD="echo $IMAPD_PASS"
# Commands must be readable by the relay; waits short (the rule is
# the same, only the unit is smaller).
MSYNC_IMAP_NO_COMPRESS=1 MSYNC_IMAP_BACKOFF_MS=10
export MSYNC_IMAP_NO_COMPRESS MSYNC_IMAP_BACKOFF_MS

test_expect_success 'start imapd' 'start_imapd'

# reset USER: the account emptied, msync's state and cache forgotten.
reset() {
	doveadm_u "$1" expunge mailbox "*" all &&
	{ doveadm_u "$1" "mailbox delete" Work 2>/dev/null || :; } &&
	rm -rf "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync"
}

test_expect_success 'setup: alice has 8 messages in two folders, a Maildir has 8 for bob' '
	for i in 1 2 3 4 5 6; do
		gen_message $i alice | doveadm_u alice save -m INBOX || return 1
	done &&
	doveadm_u alice "mailbox create" Work &&
	gen_message 7 alice | doveadm_u alice save -m Work &&
	gen_message 8 alice | doveadm_u alice save -m Work &&
	doveadm_u alice "flags add" "\\Flagged" mailbox INBOX 2 &&
	imap_digest alice >alice.digest && test_line_count = 8 alice.digest &&
	make_maildir src &&
	for i in 1 2 3 4 5 6; do deliver src "" S >/dev/null || return 1; done &&
	make_folder src Work &&
	deliver "$(folder_path src Work)" "" "" >/dev/null &&
	deliver "$(folder_path src Work)" "" F >/dev/null &&
	md_digest src >src.digest && test_line_count = 8 src.digest
'

test_expect_success 'through a relay that drops nothing, both directions work' '
	start_relay pass &&
	msync --backup --passcmd "$PASSCMD" "$(relay_url alice)" md 2>err &&
	md_digest md >got && test_cmp alice.digest got &&
	reset bob &&
	msync --backup --passcmd "$PASSCMD" src "$(relay_url bob)" 2>err &&
	imap_digest bob >got && test_cmp src.digest got &&
	stop_relay
'

# How many commands a first backup sends, each way: the cuts below cover
# every one of them.
test_expect_success 'count the commands of a first backup, each way' '
	rm -rf md "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	start_relay pass &&
	msync --backup --passcmd "$PASSCMD" "$(relay_url alice)" md &&
	stop_relay &&
	grep -c "^1 [1-9]" relay.log >n.down && test "$(cat n.down)" -gt 5 &&
	reset bob && start_relay pass &&
	msync --backup --passcmd "$PASSCMD" src "$(relay_url bob)" &&
	stop_relay &&
	grep -c "^1 [1-9]" relay.log >n.up &&
	grep "APPEND" relay.log >appends && test_line_count = 8 appends
'

test_expect_success 'IMAP -> Maildir: cut after each command in turn, resumed in the same run' '
	n=$(cat n.down) && k=2 && : >cuts &&
	while [ $k -lt "$n" ]; do	# the last one is LOGOUT
		rm -rf md "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
		start_relay "cut:$k" &&
		msync -v --backup --passcmd "$PASSCMD" "$(relay_url alice)" md \
		    2>err.$k
		rc=$?
		stop_relay
		cat relay.log >>cuts
		test $rc = 0 || { cat err.$k; return 1; }
		grep "connecting again" err.$k >/dev/null || { cat err.$k; return 1; }
		md_digest md >got && test_cmp alice.digest got || return 1
		k=$((k + 1))
	done &&
	grep "UID FETCH" cuts >/dev/null
'

test_expect_success 'Maildir -> IMAP: cut after each command in turn (APPENDs too): no duplicate' '
	n=$(cat n.up) && k=2 && : >cuts && : >errs &&
	while [ $k -lt "$n" ]; do	# the last one is LOGOUT
		reset bob &&
		start_relay "cut:$k" &&
		msync -v --backup --passcmd "$PASSCMD" src "$(relay_url bob)" \
		    2>err.$k
		rc=$?
		stop_relay
		cat relay.log >>cuts && cat err.$k >>errs
		test $rc = 0 || { cat err.$k; return 1; }
		imap_digest bob >got && test_cmp src.digest got || return 1
		k=$((k + 1))
	done &&
	grep -B1 " cut$" cuts | grep APPEND &&
	grep "had arrived (UID [0-9]*): not sent again" errs
'

test_expect_success 'a second run after those finds nothing to do' '
	start_relay pass &&
	msync --backup --passcmd "$PASSCMD" src "$(relay_url bob)" &&
	stop_relay &&
	! grep APPEND relay.log &&
	imap_digest bob >got && test_cmp src.digest got
'

test_expect_success 'BYE [UNAVAILABLE] "throttled" with a suggested backoff: waits that long, resumes' '
	rm -rf md "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	start_relay "bye:6" &&
	msync -v --backup --passcmd "$PASSCMD" "$(relay_url alice)" md 2>err &&
	stop_relay && cat err &&
	grep "closed the connection: Request is throttled" err &&
	grep "connecting again in 0.020 s (try 1 of 5)" err &&
	md_digest md >got && test_cmp alice.digest got
'

# A server that throttles by bandwidth: the body of a FETCH comes a byte
# every 50 ms.  With the window cut to 1 s (60 s by default), the
# trickle is taken for a stall: msync connects again and finishes.
test_expect_success 'a slow trickle in the middle of a FETCH: taken for a stall, resumes' '
	rm -rf md "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	start_relay pass &&
	msync --backup --passcmd "$PASSCMD" "$(relay_url alice)" md &&
	stop_relay &&
	k=$(grep -n "^1 [0-9]* UID FETCH" relay.log | tail -n 1 | cut -d" " -f2) &&
	test -n "$k" &&
	rm -rf md "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	start_relay "slow:$k" &&
	MSYNC_IMAP_TRICKLE_MS=1000 msync -v --backup --passcmd "$PASSCMD" \
	    "$(relay_url alice)" md 2>err
	rc=$?
	stop_relay && cat err && test $rc = 0 &&
	grep "^1 $k slow" relay.log &&
	grep "bytes of a response in 1 s (a trickle)" err &&
	grep "connecting again" err &&
	md_digest md >got && test_cmp alice.digest got
'

test_expect_success 'NO [THROTTLED] on an APPEND: backs off, sends it again, exit 0' '
	reset bob &&
	start_relay "no:APPEND" &&
	msync -v --backup --passcmd "$PASSCMD" src "$(relay_url bob)" 2>err &&
	stop_relay && cat err &&
	grep -B1 "^1 [0-9]* no" relay.log | grep "^1 [0-9]* APPEND" &&
	grep "asks to slow down: \[THROTTLED\] Too many requests" err &&
	imap_digest bob >got && test_cmp src.digest got
'

test_expect_success 'a server that keeps cutting: gives up after the retries, exit 75, stores intact' '
	rm -rf md "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	start_relay "cut:6,cut:3,cut:3,cut:3" &&
	MSYNC_IMAP_RETRIES=3 test_expect_code 75 msync --backup \
	    --passcmd "$PASSCMD" "$(relay_url alice)" md 2>err
	rc=$?
	stop_relay && cat err && test $rc = 0 &&
	grep "giving up after 3 reconnect(s)" err &&
	imap_digest alice >now && test_cmp alice.digest now &&
	{ test ! -d md || { md_digest md >part &&
	  LC_ALL=C comm -23 part alice.digest >extra &&
	  test_line_count = 0 extra; }; } &&
	msync --backup --passcmd "$PASSCMD" "$(imap_url alice)" md &&
	md_digest md >got && test_cmp alice.digest got
'

test_done
