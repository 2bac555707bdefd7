#!/usr/bin/env bash
test_description='IMAP store: a scripted hostile server (absurd literals, endless lines, broken lists, BYE mid-FETCH, stalls, clear text where TLS was asked for) gives a clear error and 75/76/69, no crash, nothing saved'
. "$(dirname "$0")/lib.sh"

test_lazy_prereq PYTHON3 'command -v python3'
test_require_prereq PYTHON3

# hostile CASE STATUS PATTERN: run msync --backup against the hostile
# server playing CASE; msync must exit STATUS with PATTERN on stderr, and
# unless STATUS is 0 the Maildir must hold no message (a half message is
# never saved).
hostile() {
	local case=$1 want=$2 pat=$3 port i=0 rc
	rm -rf md port.out || return 1
	python3 "$TEST_DIR/hostile_imapd.py" "$case" >port.out &
	while [ ! -s port.out ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
	port=$(head -n 1 port.out)
	MSYNC_IMAP_TIMEOUT=3 MSYNC_IMAP_BACKOFF_MS=10 test_expect_code "$want" msync --backup \
	    --passcmd "echo pw" "imap://u@127.0.0.1:$port;tls=none" md 2>err
	rc=$?
	wait
	cat err
	[ $rc = 0 ] && grep -E "$pat" err &&
	if [ "$want" != 0 ]; then
		test_path_is_missing md || test "$(count_all md)" = 0
	fi
}

test_expect_success 'the scripted server works when it behaves' '
	hostile good 0 "" && test "$(count_all md)" = 1 &&
	grep -rl "Message-ID: <hostile@x>" md
'
test_expect_success 'a literal of 4 GiB in a LIST: 76' '
	hostile biglit 76 "over the size limit"
'
test_expect_success 'a line that never ends: 76' '
	hostile bigline 76 "over the size limit"
'
test_expect_success 'a broken FETCH list: 76' '
	hostile garbage 76 "malformed response"
'
test_expect_success 'an answer to a command never sent: 76' '
	hostile badtag 76 "answered a command never sent"
'
test_expect_success 'BYE while listing: 75' '
	hostile bye-list 75 "closed the connection: going away"
'
test_expect_success 'the connection lost in the middle of a body: 75' '
	hostile bye-fetch 75 "closed the connection"
'
test_expect_success 'a server that stalls: 75' '
	hostile stall 75 "sent nothing for 3 seconds"
'
test_expect_success 'a body of 5 GiB announced: 76' '
	hostile hugebody 76 "over the size limit"
'

test_expect_success 'a message the server refuses (TOOBIG): the rest is synced, exit 1' '
	rm -rf src port.out && make_maildir src &&
	deliver src "" S >/dev/null &&
	{ gen_message 2 big && head -c 3000 /dev/zero | tr "\\0" x; echo; } |
	    deliver src - S >/dev/null || return 1
	python3 "$TEST_DIR/hostile_imapd.py" toobig >port.out &
	i=0 && while [ ! -s port.out ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done &&
	port=$(head -n 1 port.out) &&
	test_expect_code 1 msync --backup --passcmd "echo pw" src \
	    "imap://u@127.0.0.1:$port;tls=none" 2>err
	rc=$?
	wait
	cat err port.out &&
	test $rc = 0 &&
	grep "refused a message for .INBOX.: \[TOOBIG\] message too big" err &&
	grep "not saved into .INBOX.: refused by the store" err &&
	grep -c "^appended" port.out >n && test "$(cat n)" = 1 &&
	grep -c "^refused" port.out >n && test "$(cat n)" = 1
'

# clear URL CASE: msync --backup from URL (its port appended) against the
# hostile server playing CASE, which answers in clear where TLS was asked
# for: msync must fail the handshake with a clear error, and must not go
# on in clear (no login sent, nothing saved).
clear() {
	local url=$1 case=$2 port i=0 rc
	rm -rf md port.out got.log || return 1
	HOSTILE_IMAPD_LOG=$PWD/got.log python3 "$TEST_DIR/hostile_imapd.py" \
	    "$case" >port.out &
	while [ ! -s port.out ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
	port=$(head -n 1 port.out)
	MSYNC_IMAP_TIMEOUT=3 MSYNC_IMAP_BACKOFF_MS=10 test_expect_code 69 \
	    msync --backup --passcmd "echo pw" "$url$port" md 2>err
	rc=$?
	wait
	cat err
	[ $rc = 0 ] && grep "TLS handshake with 127.0.0.1 failed" err &&
	! grep -a -i -e AUTHENTICATE -e LOGIN got.log &&
	{ test_path_is_missing md || test "$(count_all md)" = 0; }
}

test_expect_success 'imaps:// to a server that answers in clear: the handshake fails, no login in clear' '
	clear "imaps://u@127.0.0.1:" good
'
test_expect_success 'STARTTLS answered OK, then clear: the handshake fails, no login in clear' '
	clear "imap://u@127.0.0.1:" starttls-clear
'

test_done
