#!/usr/bin/env bash
test_description='--watch with an IMAP side: IMAP IDLE (RFC 2177) against a real Dovecot;
polling when the server has no IDLE; a lost IDLE connection is said once
and comes back'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-imapd.sh"
. "$TEST_DIR/lib-watch.sh"
test_require_prereq IMAPD

cfg=$XDG_CONFIG_HOME/msync/config

# inbox_count USER: messages in USER's INBOX as Dovecot counts them.
inbox_count() {
	doveadm_u -f flow "$1" "mailbox status" messages INBOX |
	    sed 's/.*messages=//'
}
has_inbox_count() { test "$(inbox_count "$1")" = "$2"; }

# save USER TAG: a delivery into USER's INBOX, the way an MDA makes it.
save() { gen_message 1 "$2" | doveadm_u "$1" save -m INBOX; }

test_expect_success 'start imapd' 'start_imapd'

test_expect_success 'setup: alice'"'"'s account and a Maildir in a pair, no polling' '
	save alice first &&
	make_maildir md &&
	mkdir -p "$(dirname "$cfg")" &&
	cat >"$cfg" <<-EOF &&
	pair i
		a $(imaps_url alice)
		b $TRASH/md
		passcmd echo $IMAPD_PASS
		debounce 100ms
	EOF
	chmod 600 "$cfg" &&
	watch_start w -v i &&
	wait_until has_count md 1 &&
	! grep "cannot be watched" w.err
'

test_expect_success 'a message saved with doveadm reaches the Maildir (IDLE, not polling)' '
	save alice idle1 &&
	wait_until has_count md 2 &&
	grep -rq "idle1" md
'

test_expect_success 'a delivery into the Maildir reaches the server' '
	deliver md "" >/dev/null &&
	wait_until has_inbox_count alice 3
'

test_expect_success 'an expunge on the server reaches the Maildir' '
	doveadm_u alice expunge mailbox INBOX 1 &&
	wait_until has_count md 2 && wait_until has_inbox_count alice 2
'

test_expect_success 'the watch is idle while nothing changes (no sync without a change)' '
	sleep 2 && n1=$(wc -l <w.out) && sleep 3 && test "$(wc -l <w.out)" = "$n1"
'

test_expect_success 'Dovecot restarted: the lost IDLE is said once, it reconnects, mail flows again' '
	kill "$(cat "$IMAPD_DIR/run/master.pid")" &&
	wait_until grep -q "IDLE connection of side A lost" w.err &&
	/usr/sbin/dovecot -c "$IMAPD_CONF" &&
	imapd_wait_port_ "$IMAPS_PORT" &&
	wait_until grep -q "IDLE on side A works again" w.err &&
	save alice back &&
	wait_until has_count md 3 &&
	test "$(grep -c "IDLE connection of side A lost" w.err)" = 1
'

test_expect_success 'SIGTERM ends the watch (and its IDLE child) with status 0' '
	watch_stop w &&
	! pgrep -f "msync --watch --json -v i" >/dev/null
'

test_expect_success '`idle INBOX Work`: a message saved into Work arrives too, by IDLE' '
	doveadm_u carol "mailbox create" Work &&
	gen_message 1 c0 | doveadm_u carol save -m INBOX &&
	make_maildir md3 &&
	cat >>"$cfg" <<-EOF &&
	pair f
		a $(imaps_url carol)
		b $TRASH/md3
		passcmd echo $IMAPD_PASS
		idle INBOX Work
		debounce 100ms
	EOF
	watch_start wf -vv f &&
	wait_until has_count md3 1 &&
	wait_until grep -q "IDLE helper .* started for side A, .Work." wf.err &&
	gen_message 2 work1 | doveadm_u carol save -m Work &&
	wait_until has_count "$(folder_path md3 Work)" 1 &&
	wait_until grep -q "IDLE: side A changed (.Work.)" wf.err &&
	watch_stop wf
'

test_expect_success '`idle` takes mailbox names, at most 4' '
	printf "pair x\n\ta %s\n\tb %s/md3\n\tidle a b c d e\n" "$(imaps_url carol)" "$TRASH" >bad1.cfg &&
	chmod 600 bad1.cfg &&
	test_expect_code 64 "$MSYNC" -F bad1.cfg --watch x 2>err1 &&
	grep -q "bad1.cfg:4:.*.idle. takes 1 to 4 mailbox names" err1 &&
	printf "pair x\n\ta %s\n\tb %s/md3\n\tidle ../up\n" "$(imaps_url carol)" "$TRASH" >bad2.cfg &&
	chmod 600 bad2.cfg &&
	test_expect_code 64 "$MSYNC" -F bad2.cfg --watch x 2>err2 &&
	grep -q "bad2.cfg:4:.*.\.\./up. is not a mailbox name" err2
'

test_expect_success 'a server without IDLE: said once, the side is polled every `every`' '
	make_maildir md2 &&
	cat >>"$cfg" <<-EOF &&
	pair p
		a $(imaps_url bob)
		b $TRASH/md2
		passcmd echo $IMAPD_PASS
		every 1s
		debounce 100ms
	EOF
	save bob b1 &&
	MSYNC_TEST_NO_IDLE=1 watch_start wp p &&
	wait_until has_count md2 1 &&
	wait_until grep -q "p: the IMAP server of side A offers no IDLE: looking for changes every 1 s instead" wp.err &&
	save bob b2 &&
	wait_until has_count md2 2 &&
	test "$(grep -c "offers no IDLE" wp.err)" = 1 &&
	watch_stop wp
'

test_done
