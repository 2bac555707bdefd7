#!/usr/bin/env bash
test_description='IMAP store: migrating into a destination that already holds some of the messages (no sync state, no cache: another tool ran before, or the state was lost) creates no duplicate; a refused message is listed at the end with exit 1'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-imapd.sh"
test_require_prereq IMAPD

PASSCMD="echo $IMAPD_PASS"

test_expect_success 'start imapd' 'start_imapd'

test_expect_success 'setup: a Maildir of 10 messages; bob already has 5 of them (doveadm save)' '
	make_maildir src &&
	for i in $(seq 1 10); do deliver src "" S >/dev/null || return 1; done &&
	md_digest src >src.digest && test_line_count = 10 src.digest &&
	for f in $(ls src/cur/* | head -n 5); do
		doveadm_u bob save -m INBOX <"$f" || return 1
	done &&
	imap_digest bob >pre && test_line_count = 5 pre
'

test_expect_success '--one-way Maildir -> IMAP with no state: 5 copied, none twice' '
	rm -rf "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	msync -v --one-way --passcmd "$PASSCMD" src "$(imaps_url bob)" 2>err &&
	doveadm_u -f tab bob search mailbox INBOX all >uids &&
	test_line_count = 11 uids &&
	imap_digest bob | cut -f1,2 >got && cut -f1,2 src.digest >want &&
	test_cmp want got
'

test_expect_success '--backup into carol holding 5 of them, state and cache lost: identical, no duplicate' '
	for f in $(ls src/cur/* | tail -n 5); do
		doveadm_u carol save -m INBOX <"$f" || return 1
	done &&
	rm -rf "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	msync --backup --passcmd "$PASSCMD" src "$(imaps_url carol)" &&
	imap_digest carol >got && test_cmp src.digest got
'

test_expect_success 'IMAP -> a Maildir holding half of them, no state: no duplicate' '
	make_maildir half &&
	for f in $(ls src/cur/* | head -n 5); do
		cp "$f" half/cur/ || return 1
	done &&
	rm -rf "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	msync --one-way --passcmd "$PASSCMD" "$(imaps_url carol)" half &&
	test "$(count_all half)" = 10 &&
	md_digest half | cut -f1,2 >got && cut -f1,2 src.digest >want &&
	test_cmp want got
'

test_lazy_prereq PYTHON3 'command -v python3'

test_expect_success PYTHON3 'a refused message: the rest synced, listed at the end (folder, size, Message-ID, Subject), exit 1' '
	rm -rf big port.out && make_maildir big &&
	deliver big "" S >/dev/null &&
	{ gen_message 99 huge && head -c 3000 /dev/zero | tr "\\0" x; echo; } |
	    deliver big - S >/dev/null || return 1
	python3 "$TEST_DIR/hostile_imapd.py" toobig >port.out &
	i=0 && while [ ! -s port.out ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done &&
	port=$(head -n 1 port.out) &&
	test_expect_code 1 msync --backup --passcmd "echo pw" big \
	    "imap://u@127.0.0.1:$port;tls=none" 2>err
	rc=$?
	wait
	cat err && test $rc = 0 &&
	grep "1 message(s) refused by 127.0.0.1, not copied" err &&
	grep "refused: .INBOX., [0-9]* bytes, Message-ID <huge.99.msync-test@example.org>, Subject .huge message 99.: \[TOOBIG\] message too big" err &&
	grep -c "^appended" port.out >n && test "$(cat n)" = 1
'

test_done
