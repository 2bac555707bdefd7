#!/usr/bin/env bash
test_description='IMAP store: a move between folders of a Maildir is made on the server with UID MOVE (or UID COPY and UID EXPUNGE without MOVE): no body uploaded, no duplicate, a kill or a lost connection loses nothing'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-imapd.sh"
test_require_prereq IMAPD

PASSCMD="echo $IMAPD_PASS"
# Dovecot's own list, so that a test can take MOVE (or UIDPLUS) away.
CAPS="IMAP4rev1 SASL-IR ID ENABLE IDLE NAMESPACE LITERAL+ SPECIAL-USE CONDSTORE QRESYNC"
IMAPD_EXTRA_CONF="imap_capability = $CAPS UIDPLUS MOVE"
MSYNC_IMAP_NO_COMPRESS=1
export MSYNC_IMAP_NO_COMPRESS

test_expect_success 'start imapd' 'start_imapd'
DROP_RELAY_PORT=$(imapd_free_port_)
export DROP_RELAY_PORT

# The relay (lib-imapd.sh's start_relay, drop_relay.py) sees every
# command msync sends, in clear; DROP_RELAY_PORT keeps its port (msync's
# state and cache are per host:port) when it is started again.
test_atexit stop_relay
url() { relay_url alice; }
sync2() { msync -vv --passcmd "$PASSCMD" md "$(url)" 2>"$1"; }

# same: the account equals the Maildir, byte for byte with flags, and
# no message is there twice (in any folder).
same() {
	imap_digest alice >dove.now && md_digest md >md.now &&
	test_cmp md.now dove.now &&
	cut -f2 dove.now | sort | uniq -d >dups && test ! -s dups
}

# guids MAILBOX: Dovecot's own GUIDs of a folder's messages (a message
# the server moved or copied keeps its GUID in Dovecot's Maildir; an
# uploaded one gets a new one).
guids() {
	doveadm_u -f tab alice fetch guid mailbox "$1" | sed 1d | sort
}

# mdmove FROM TO N: moves the first N messages of Maildir folder FROM
# to folder TO, as a mail reader does (the file is renamed).
mdmove() {
	local f t n=0 m
	f=$(folder_path md "$1") t=$(folder_path md "$2")
	for m in $(ls "$f/cur" | sort); do
		[ $n -lt "$3" ] || break
		mv "$f/cur/$m" "$t/cur/$m" || return 1
		n=$((n + 1))
	done
}

test_expect_success 'setup: a Maildir with three folders, synced two-way with the account' '
	make_maildir md && make_folder md Archive && make_folder md Old &&
	for i in $(seq 1 12); do
		gen_message $i move | deliver md - S >/dev/null || return 1
	done &&
	gen_message 13 move | deliver "$(folder_path md Archive)" - "" >/dev/null &&
	start_relay pass &&
	sync2 log0 && same && test_line_count = 13 dove.now
'

test_expect_success 'a move of 6 messages in the Maildir: UID MOVE on the server, no APPEND, no body read' '
	guids INBOX >inbox.before &&
	mdmove INBOX Archive 6 &&
	set_flags "$(ls "$(folder_path md Archive)"/cur/* | head -n 1)" FS &&
	: >relay.log &&
	sync2 log1 && same &&
	grep -c "^INBOX" dove.now >n && test "$(cat n)" = 6 &&
	grep -c "^Archive" dove.now >n && test "$(cat n)" = 7 &&
	grep " UID MOVE$" relay.log &&
	! grep " APPEND" relay.log &&
	! grep " UID COPY" relay.log &&
	! grep "UID EXPUNGE" relay.log &&
	guids Archive >arch.after &&
	comm -12 inbox.before arch.after >kept && test_line_count = 6 kept &&
	grep "moved 6 message(s) from .INBOX. to .Archive." log1
'

test_expect_success 'the flag changed with the move was set on the new UID' '
	doveadm_u -f tab alice fetch flags mailbox Archive FLAGGED >fl &&
	sed 1d fl >fl.rows && test_line_count = 1 fl.rows
'

test_expect_success 'the next run finds nothing to do and reads no body (the cache knew the moved messages)' '
	: >relay.log &&
	sync2 log2 && same &&
	! grep -E " (APPEND|UID MOVE|UID COPY|UID EXPUNGE|UID STORE)" relay.log &&
	! grep "BODY.PEEK" relay.log
'

test_expect_success 'a server without MOVE: UID COPY, then \Deleted and UID EXPUNGE of the copied set' '
	stop_relay &&
	sed -i "s/^imap_capability = .*/imap_capability = $CAPS UIDPLUS/" \
	    "$IMAPD_CONF" && doveadm -c "$IMAPD_CONF" reload && sleep 1 &&
	start_relay pass &&
	guids Archive >arch.before &&
	mdmove Archive Old 4 &&
	: >relay.log &&
	sync2 log3 && same &&
	grep -c "^Old" dove.now >n && test "$(cat n)" = 4 &&
	grep " UID COPY$" relay.log && grep " UID EXPUNGE$" relay.log &&
	! grep -E " (APPEND|UID MOVE)" relay.log &&
	test "$(grep -c " UID EXPUNGE" relay.log)" = 1 &&
	guids Old >old.after &&
	comm -12 arch.before old.after >kept && test_line_count = 4 kept
'

test_expect_success 'without MOVE and UIDPLUS: UID COPY, the expunges as planned, nothing uploaded' '
	stop_relay &&
	sed -i "s/^imap_capability = .*/imap_capability = $CAPS/" \
	    "$IMAPD_CONF" && doveadm -c "$IMAPD_CONF" reload && sleep 1 &&
	start_relay pass &&
	mdmove Old INBOX 2 &&
	: >relay.log &&
	sync2 log4 && same &&
	grep " UID COPY$" relay.log && ! grep -E " (APPEND|UID MOVE)" relay.log &&
	sync2 log4b && same
'

test_expect_success 'killed right after its first move (-Tcrash=1), then run again: every message once' '
	stop_relay &&
	sed -i "s/^imap_capability = .*/imap_capability = $CAPS UIDPLUS MOVE/" \
	    "$IMAPD_CONF" && doveadm -c "$IMAPD_CONF" reload && sleep 1 &&
	start_relay pass &&
	sync2 log5 && same &&
	mdmove INBOX Archive 3 && mdmove Archive Old 3 &&
	md_digest md >md.want &&
	: >relay.log &&
	test_expect_code 100 msync -Tcrash=1 --passcmd "$PASSCMD" md "$(url)" &&
	test "$(grep -c " UID MOVE" relay.log)" = 1 &&
	sync2 log6 && same && test_cmp md.want md.now
'

test_expect_success 'the connection cut after UID MOVE was sent: found in the target, not moved twice, nothing lost' '
	stop_relay &&
	start_relay "cut:UID MOVE" &&
	mdmove Old INBOX 3 &&
	md_digest md >md.want &&
	sync2 log7 && same && test_cmp md.want md.now &&
	grep "cut" relay.log &&
	grep "had arrived" log7 &&
	test "$(grep -c " UID MOVE" relay.log)" = 1 &&
	! grep " APPEND" relay.log
'

test_expect_success 'kill -9 while UID MOVE is in flight, then run again: every message once' '
	stop_relay &&
	start_relay "cut:UID MOVE" "kill -9 \$(cat \"$TRASH/msync.pid\")" &&
	mdmove INBOX Archive 2 &&
	md_digest md >md.want &&
	{
		"$MSYNC" --passcmd "$PASSCMD" md "$(url)" 2>log11 &
		echo $! >"$TRASH/msync.pid"
		wait $!
		test $? = 137
	} &&
	grep "cut" relay.log &&
	stop_relay && start_relay pass &&
	sync2 log12 && same && test_cmp md.want md.now &&
	! grep " APPEND" relay.log
'

test_expect_success 'the connection cut after UID COPY was sent (no MOVE): no duplicate' '
	stop_relay &&
	sed -i "s/^imap_capability = .*/imap_capability = $CAPS UIDPLUS/" \
	    "$IMAPD_CONF" && doveadm -c "$IMAPD_CONF" reload && sleep 1 &&
	start_relay "cut:UID COPY" &&
	mdmove INBOX Old 3 &&
	md_digest md >md.want &&
	sync2 log8 && same && test_cmp md.want md.now &&
	grep "cut" relay.log &&
	grep "had arrived" log8 &&
	test "$(grep -c " UID COPY" relay.log)" = 1 &&
	! grep " APPEND" relay.log &&
	sync2 log9 && same && test_cmp md.want md.now
'

# (The source folder changes too: the planner looks for local sources
# only in the folders it plans, not in those unchanged on both sides.)
test_expect_success 'a message copied to another folder in the Maildir: UID COPY on the server, the source kept' '
	stop_relay && start_relay pass &&
	f=$(ls "$(folder_path md Old)"/cur/* | head -n 1) &&
	cp "$f" "$(folder_path md Archive)/cur/$(date +%s).copy1.bench:2,S" &&
	set_flags "$(ls "$(folder_path md Old)"/cur/* | tail -n 1)" RS &&
	: >relay.log &&
	sync2 log10 &&
	imap_digest alice >dove.now && md_digest md >md.now &&
	test_cmp md.now dove.now &&
	cut -f1,2 dove.now | sort | uniq -d >dups && test ! -s dups &&
	grep " UID COPY$" relay.log &&
	! grep -E " (APPEND|UID MOVE|UID EXPUNGE)" relay.log
'

test_expect_success 'stop the relay' 'stop_relay'

test_done
