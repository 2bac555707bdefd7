#!/usr/bin/env bash
test_description='a relay that changes one byte of the stream: every run
converges exactly or fails with 65/76, the state untouched and no mail
lost or damaged (issue 11, part 1)'
. "$(dirname "$0")/lib.sh"

# corrupt_relay.py stands in for ssh (--rsh): it runs "msync --server" on
# this machine and relays the bytes, changing one byte at a given offset
# of one direction.  corrupt_sweep.py runs a two-way sync with every kind
# of record in both directions (HELLO, the base, views, digests, message
# data over several MSG_DATA records, results, DONE, BYE, LOG) from one
# snapshot, once per offset, and checks each outcome with Python's
# mailbox module (see its header).  Plain and LZ4-compressed streams:
# in both, every record type that the session carries in a direction is
# hit in its header and its payload (with LZ4 through the literals that
# decode into those bytes).  Not in this session: MSG_SKIP, ERROR and
# KEEPALIVE (t6000's hostile peer sends the first two, t6110 has
# keepalives); a changed byte in any of them fails its record's checks
# like any other record's.

test_lazy_prereq PYTHON3 'python3 -c "import mailbox, ctypes"'
test_require_prereq PYTHON3 MSYNC

WORK=$TRASH/work
RELAY="python3 $TEST_DIR/corrupt_relay.py"

sync_snap() {
	"$MSYNC" -e "$RELAY" --remote-msync "$MSYNC" \
	    --state-dir "$WORK/state" "$@" "$WORK/A" "relayhost:$WORK/B"
}

test_expect_success 'setup: two stores with a base, then changes on both sides' '
	make_folder "$WORK/A" Work &&
	for i in 1 2 3 4; do deliver "$WORK/A" >/dev/null || return 1; done &&
	for i in 1 2 3; do
		deliver "$(folder_path "$WORK/A" Work)" "" S >/dev/null ||
		    return 1
	done &&
	make_maildir "$WORK/B" &&
	sync_snap &&
	test "$(count_all "$WORK/A")" = 7 &&
	test "$(count_all "$WORK/B")" = 7 &&
	# New mail on both sides, one big enough for several MSG_DATA.
	deliver "$WORK/A" >/dev/null &&
	{ gen_message 900 big &&
	    head -c 600000 /dev/urandom | base64; } >big.eml &&
	deliver "$WORK/A" big.eml >/dev/null &&
	deliver "$(folder_path "$WORK/B" Work)" >/dev/null &&
	make_folder "$WORK/A" New &&
	deliver "$(folder_path "$WORK/A" New)" "" F >/dev/null &&
	# A flag change on A, an expunge on B.
	f=$(ls "$WORK/A/new/" | head -n 1) &&
	set_flags "$WORK/A/new/$f" RS &&
	g=$(ls "$(folder_path "$WORK/B" Work)/cur/" | head -n 1) &&
	rm "$(folder_path "$WORK/B" Work)/cur/$g" &&
	ls "$WORK/state" >state.files &&
	test_line_count -gt 0 state.files &&
	cp -a "$WORK" "$TRASH/snap"
'

test_expect_success 'uncompressed: every changed byte is caught or harmless' '
	python3 "$TEST_DIR/corrupt_sweep.py" --msync "$MSYNC" --snap "$TRASH/snap" \
	    --work "$WORK" --dumps "$TRASH/dumps" --mode plain >out.plain
	rc=$? &&
	cat out.plain &&
	test $rc = 0 &&
	grep "^# record types hit up: " out.plain >up.types &&
	grep "^# record types hit down: " out.plain >down.types &&
	for t in HELLO BASE_MBOX BASE_MSGS BASE_END MBOX MSGS LIST_END DIGEST \
	    MSG_BEGIN MSG_DATA MSG_END DONE BYE; do
		grep -w "$t" up.types >/dev/null || return 1
	done &&
	for t in MBOX MSGS LIST_END DIGEST MSG_BEGIN MSG_DATA MSG_END RESULT \
	    DONE LOG; do
		grep -w "$t" down.types >/dev/null || return 1
	done
'

test_expect_success 'LZ4-compressed: every changed byte is caught or harmless' '
	python3 "$TEST_DIR/corrupt_sweep.py" --msync "$MSYNC" --snap "$TRASH/snap" \
	    --work "$WORK" --dumps "$TRASH/dumps" --mode lz4 >out.lz4
	rc=$? &&
	cat out.lz4 &&
	test $rc = 0 &&
	grep "exit 76" out.lz4 &&
	# Every record type too, through the literals of its bytes.
	grep "^# record types hit up: " out.lz4 >up.types &&
	grep "^# record types hit down: " out.lz4 >down.types &&
	for t in HELLO BASE_MBOX BASE_MSGS BASE_END MBOX MSGS LIST_END DIGEST \
	    MSG_BEGIN MSG_DATA MSG_END DONE BYE; do
		grep -w "$t" up.types >/dev/null || return 1
	done &&
	for t in MBOX MSGS LIST_END DIGEST MSG_BEGIN MSG_DATA MSG_END RESULT \
	    DONE LOG; do
		grep -w "$t" down.types >/dev/null || return 1
	done
'

test_done
