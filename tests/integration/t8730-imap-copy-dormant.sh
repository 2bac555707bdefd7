#!/usr/bin/env bash
test_description='IMAP store: a message the server holds already, in a folder that is unchanged on both sides (which the brain does not plan), is saved with UID COPY, not uploaded; a cached message gone from the server is uploaded; the same message twice in a first upload is sent once'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-imapd.sh"
test_require_prereq IMAPD

PASSCMD="echo $IMAPD_PASS"
MSYNC_IMAP_NO_COMPRESS=1
export MSYNC_IMAP_NO_COMPRESS
CAPS="IMAP4rev1 SASL-IR ID ENABLE IDLE NAMESPACE LITERAL+ SPECIAL-USE CONDSTORE QRESYNC MOVE"
IMAPD_EXTRA_CONF="imap_capability = $CAPS UIDPLUS"

test_expect_success 'start imapd' 'start_imapd'
DROP_RELAY_PORT=$(imapd_free_port_)
export DROP_RELAY_PORT
test_atexit stop_relay

# Every run goes through the relay, which logs each command msync sends
# (relay.log: "CONN N VERB", VERB its first two words).
url() { relay_url "$1"; }
run() {
	local log=$1 rc
	shift
	: >relay.log
	msync -vv --passcmd "$PASSCMD" "$@" 2>"$log"
	rc=$?
	[ $rc = 0 ] || cat "$log"
	return $rc
}

# same DIR USER: the account equals the Maildir, byte for byte with
# flags, and no message is there twice in one folder.
same() {
	imap_digest "$2" >dove.now && md_digest "$1" >md.now &&
	test_cmp md.now dove.now &&
	cut -f1,2 dove.now | sort | uniq -d >dups && test ! -s dups
}

# msgfile DIR N: the file of message N (gen_message N cp) in folder DIR.
msgfile() { grep -l "^Message-ID: <cp\.$2\." "$1"/cur/* | head -n 1; }

# guids USER MAILBOX: Dovecot's own GUIDs of a folder's messages (a
# message the server copied keeps its GUID in Dovecot's Maildir; an
# uploaded one gets a new one).
guids() {
	doveadm_u -f tab "$1" fetch guid mailbox "$2" | sed 1d | sort
}

test_expect_success 'setup: a Maildir with INBOX, Old and Archive, synced two-way with alice' '
	make_maildir md && make_folder md Archive && make_folder md Old &&
	for i in $(seq 1 4); do
		gen_message $i cp | deliver md - S >/dev/null || return 1
	done &&
	for i in $(seq 5 8); do
		gen_message $i cp | deliver "$(folder_path md Old)" - S \
		    >/dev/null || return 1
	done &&
	gen_message 9 cp | deliver "$(folder_path md Archive)" - "" >/dev/null &&
	start_relay pass &&
	run log0 md "$(url alice)" && same md alice &&
	test_line_count = 9 dove.now && grep -c " APPEND" relay.log >n &&
	test "$(cat n)" = 9
'

test_expect_success 'a message copied from Old (unchanged on both sides) to Archive in the Maildir: UID COPY, no APPEND' '
	f=$(msgfile "$(folder_path md Old)" 5) && test -n "$f" &&
	cp "$f" "$(folder_path md Archive)/cur/$(date +%s).copy1.t8730:2,F" &&
	guids alice Old >old.guids &&
	run log1 md "$(url alice)" && same md alice &&
	grep " UID COPY$" relay.log &&
	! grep -E " (APPEND|UID MOVE|UID EXPUNGE)" relay.log &&
	grep "a copy of .Old. UID [0-9]* made on the server" log1 &&
	guids alice Archive >arch.guids &&
	comm -12 old.guids arch.guids >common && test_line_count = 1 common
'

test_expect_success 'the copy has the flags of the Maildir copy (\Flagged, not the source'\''s \Seen)' '
	grep "^Archive	.*	F$" dove.now &&
	grep "^Old	" dove.now >old && ! grep "	F$" old
'

test_expect_success 'the next run does nothing and reads no body' '
	run log2 md "$(url alice)" && same md alice &&
	! grep -E " (APPEND|UID COPY|UID MOVE|UID STORE|UID EXPUNGE)" relay.log &&
	! grep "BODY.PEEK\[\]" relay.log
'

test_expect_success 'Maildir -> IMAP backup: a copy out of INBOX (unchanged) into Old: UID COPY' '
	f=$(msgfile "$(folder_path md)" 4) && test -n "$f" &&
	cp "$f" "$(folder_path md Old)/cur/$(date +%s).copy2.t8730:2,S" &&
	run log3 --backup md "$(url alice)" && same md alice &&
	test "$(grep -c " UID COPY$" relay.log)" = 1 &&
	! grep " APPEND" relay.log
'

test_expect_success 'the source expunged by another client just before the UID COPY: no copy made, so uploaded (one APPEND); nothing lost, no duplicate' '
	run log4a md "$(url alice)" && same md alice &&
	run log4a md "$(url alice)" &&
	! grep -E " (APPEND|UID COPY)" relay.log &&
	f=$(msgfile "$(folder_path md Old)" 7) && test -n "$f" &&
	cp "$f" "$(folder_path md Archive)/cur/$(date +%s).copy3.t8730:2," &&
	stop_relay &&
	start_relay "hook:UID COPY" "doveadm -c $IMAPD_CONF expunge -u alice mailbox Old header Message-ID cp.7.msync-test" &&
	: >relay.log &&
	test_might_fail msync -vv --passcmd "$PASSCMD" md "$(url alice)" 2>log4 &&
	grep " hook$" relay.log &&
	test "$(grep -c " UID COPY$" relay.log)" = 1 &&
	test "$(grep -c " APPEND" relay.log)" = 1 &&
	grep "UID [0-9]* is no longer there to copy: uploaded" log4 &&
	stop_relay && start_relay pass &&
	run log4b md "$(url alice)" && same md alice &&
	test -z "$(msgfile "$(folder_path md Old)" 7)" &&
	test -n "$(msgfile "$(folder_path md Archive)" 7)" &&
	test_line_count = 11 dove.now
'

test_expect_success 'a first upload with one message in two folders: one APPEND, one UID COPY, Dovecot holds it twice with one GUID' '
	make_maildir md2 && make_folder md2 Copy &&
	for i in 1 2 3; do
		gen_message $i twice | deliver md2 - S >/dev/null || return 1
	done &&
	f=$(ls md2/cur/* | head -n 1) &&
	cp "$f" "$(folder_path md2 Copy)/cur/$(date +%s).copy4.t8730:2,S" &&
	run log5 --backup md2 "$(url carol)" && same md2 carol &&
	test_line_count = 4 dove.now &&
	test "$(grep -c " APPEND" relay.log)" = 3 &&
	test "$(grep -c " UID COPY$" relay.log)" = 1 &&
	guids carol INBOX >a && guids carol Copy >b &&
	comm -12 a b >common && test_line_count = 1 common
'

test_expect_success 'without UIDPLUS: uploaded as before (the copy'\''s UID would not be known)' '
	stop_relay &&
	sed -i "s/^imap_capability = .*/imap_capability = $CAPS/" \
	    "$IMAPD_CONF" &&
	doveadm -c "$IMAPD_CONF" reload && sleep 1 &&
	start_relay pass &&
	f=$(msgfile "$(folder_path md)" 2) && test -n "$f" &&
	cp "$f" "$(folder_path md Archive)/cur/$(date +%s).copy5.t8730:2,S" &&
	run log6 md "$(url alice)" && same md alice &&
	test "$(grep -c " APPEND" relay.log)" = 1 &&
	! grep " UID COPY$" relay.log
'

test_done
