#!/usr/bin/env bash
test_description='saving into the next folder does not wait for the last
folder'"'"'s syncfs() (issue 10.4): while the durability thread'"'"'s syncfs()
is held, the saves of a second folder reach its tmp/, and no message of
either folder reaches cur/ or the sync state before that syncfs() ended; a
receiver killed with -9 then loses and duplicates nothing (checked with
Python'"'"'s mailbox module)'
. "$(dirname "$0")/lib.sh"

test_lazy_prereq PYTHON3 'python3 -c "import mailbox, hashlib"'
test_require_prereq PYTHON3
. "$TEST_DIR/lib-held-sync.sh"

# Two folders of 300 new messages each: more than the 256 saves that
# start a syncfs() in the thread, so the first folder's syncfs() is the
# one held, with saves of it still waiting when the second one begins.
test_expect_success 'setup: a synced pair of folders .A and .B, then 300 new in each' '
	add_msgs a base 1 10 &&
	add_msgs a/.A base 1 50 &&
	add_msgs a/.B base 1 50 &&
	"$MSYNC" --backup a b &&
	test "$(nfiles b/.A/cur)" = 50 &&
	test "$(nfiles b/.B/cur)" = 50 &&
	state_sum >state.before &&
	add_msgs a/.A new 1 300 &&
	add_msgs a/.B new 1 300 &&
	rm -rf snap && mkdir snap && cp -a a b home snap/
'

restore() {
	rm -rf a b home release && cp -a snap/a snap/b snap/home .
}

# held_run: from the snapshot, a run whose syncfs() is held (its pid in
# $pid) until both folders' 300 saves are in tmp/ and none has reached
# cur/, and the sync state is still the one before.
held_run() {
	restore &&
	{ MSYNC_TEST_SYNC_HOLD=$PWD/release "$MSYNC" --backup a b >out 2>&1 &
	  pid=$!; } &&
	wait_files b/.A/tmp 300 &&
	wait_files b/.B/tmp 300 &&
	test "$(nfiles b/.A/cur)" = 50 &&
	test "$(nfiles b/.B/cur)" = 50 &&
	state_sum >state.held &&
	test_cmp state.before state.held
}

test_expect_success 'a held syncfs of the first folder: the second folder is saved meanwhile' '
	held_run &&
	touch release &&
	wait "$pid" &&
	test "$(nfiles b/.A/cur)" = 350 &&
	test "$(nfiles b/.B/cur)" = 350 &&
	test "$(nfiles b/.A/tmp)" = 0 &&
	test "$(nfiles b/.B/tmp)" = 0 &&
	py_check a/.A b/.A 350 &&
	py_check a/.B b/.B 350 &&
	py_check a b 10 &&
	! state_sum | cmp -s - state.before &&
	"$MSYNC" --backup --stats a b >stats 2>&1 &&
	grep -q "changes on B: 0 copied" stats
'

test_expect_success 'kill -9 of the receiver with both folders waiting, then a re-run' '
	held_run &&
	child=$(pgrep -P "$pid" | head -n 1) &&
	test -n "$child" &&
	kill -9 "$child" &&
	{ wait "$pid"; test $? != 0; } &&
	state_sum >state.killed &&
	test_cmp state.before state.killed &&
	"$MSYNC" --backup a b &&
	py_check a/.A b/.A 350 &&
	py_check a/.B b/.B 350 &&
	"$MSYNC" --backup --stats a b >stats 2>&1 &&
	grep -q "changes on B: 0 copied" stats
'

test_done
