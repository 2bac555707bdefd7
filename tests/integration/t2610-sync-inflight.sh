#!/usr/bin/env bash
test_description='the durability thread (issue 10.4): saves go on while a
syncfs() is in flight, yet no message reaches cur/ or the sync state before
its syncfs() ended; a receiver killed with -9 while one is in flight loses
nothing and duplicates nothing on the next run (checked with Python'"'"'s
mailbox module)'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-sshd.sh"

test_lazy_prereq PYTHON3 'python3 -c "import mailbox, hashlib"'
test_require_prereq PYTHON3
. "$TEST_DIR/lib-held-sync.sh"

test_expect_success 'setup: a synced pair of 100 messages, then 1500 new in A' '
	add_msgs a base 1 100 &&
	"$MSYNC" --backup a b &&
	test "$(nfiles b/cur)" = 100 &&
	test -n "$(find "$XDG_STATE_HOME" -type f -name "*.state")" &&
	state_sum >state.before &&
	add_msgs a new 1 1500 &&
	rm -rf snap && mkdir snap && cp -a a b home snap/
'

restore() {
	rm -rf a b home release && cp -a snap/a snap/b snap/home .
}

test_expect_success 'a held syncfs: the saves go on, none reaches cur/ or the state' '
	restore &&
	{ MSYNC_TEST_SYNC_HOLD=$PWD/release "$MSYNC" --backup a b >out 2>&1 &
	  pid=$!; } &&
	wait_files b/tmp 1500 &&
	test "$(nfiles b/cur)" = 100 &&
	state_sum >state.held &&
	test_cmp state.before state.held &&
	touch release &&
	wait "$pid" &&
	test "$(nfiles b/cur)" = 1600 &&
	test "$(nfiles b/tmp)" = 0 &&
	py_check a b 1600 &&
	! state_sum | cmp -s - state.before
'

test_expect_success 'kill -9 of the receiving server while its syncfs is in flight, then a re-run' '
	restore &&
	{ MSYNC_TEST_SYNC_HOLD=$PWD/release "$MSYNC" --backup a b >out 2>&1 &
	  pid=$!; } &&
	wait_files b/tmp 600 &&
	child=$(pgrep -P "$pid" | head -n 1) &&
	test -n "$child" &&
	test "$(nfiles b/cur)" = 100 &&
	kill -9 "$child" &&
	{ wait "$pid"; test $? != 0; } &&
	state_sum >state.killed &&
	test_cmp state.before state.killed &&
	"$MSYNC" --backup a b &&
	py_check a b 1600 &&
	"$MSYNC" --backup --stats a b >stats 2>&1 &&
	grep -q "changes on B: 0 copied" stats
'

test_expect_success 'kill -9 of the receiving client (two-way, new mail in B) while its syncfs is in flight' '
	rm -rf a b home release && mkdir -p "$XDG_STATE_HOME" &&
	add_msgs a base 1 100 &&
	"$MSYNC" a b &&
	add_msgs b new 1 1500 &&
	state_sum >state.before2 &&
	{ MSYNC_TEST_SYNC_HOLD=$PWD/release "$MSYNC" a b >out 2>&1 &
	  pid=$!; } &&
	wait_files a/tmp 600 &&
	test "$(nfiles a/cur)" = 100 &&
	kill -9 "$pid" &&
	{ wait "$pid"; test $? != 0; } &&
	state_sum >state.killed2 &&
	test_cmp state.before2 state.killed2 &&
	"$MSYNC" a b &&
	py_check a b 1600 &&
	"$MSYNC" --stats a b >stats 2>&1 &&
	grep -q "changes on A: 0 copied" stats &&
	grep -q "changes on B: 0 copied" stats
'

test_expect_success 'kill -9 of both sides at once while the syncfs is in flight, twice, then a re-run' '
	restore &&
	{ MSYNC_TEST_SYNC_HOLD=$PWD/release "$MSYNC" --backup a b >out 2>&1 &
	  pid=$!; } &&
	wait_files b/tmp 300 &&
	child=$(pgrep -P "$pid" | head -n 1) &&
	kill -9 "$pid" $child &&
	{ wait "$pid"; test $? != 0; } &&
	{ MSYNC_TEST_SYNC_HOLD=$PWD/release "$MSYNC" --backup a b >out 2>&1 &
	  pid=$!; } &&
	wait_files b/tmp 1700 &&
	child=$(pgrep -P "$pid" | head -n 1) &&
	kill -9 "$pid" $child &&
	{ wait "$pid"; test $? != 0; } &&
	state_sum >state.killed3 &&
	test_cmp state.before state.killed3 &&
	"$MSYNC" --backup a b &&
	py_check a b 1600
'

# Over ssh the receiver is the remote msync: a wrapper holds its syncfs()
# and says its pid.
test_expect_success SSHD 'over ssh: kill -9 of the remote receiver while its syncfs is in flight, then a re-run' '
	start_sshd &&
	cat >held-msync <<-EOF &&
	#!/bin/sh
	echo \$\$ >"$TRASH/remote.pid"
	MSYNC_TEST_SYNC_HOLD="$TRASH/release" exec msync "\$@"
	EOF
	chmod +x held-msync &&
	rm -f release remote.pid &&
	add_msgs sa base 1 100 &&
	"$MSYNC" --backup -e "$SSH_CMD" sa msynctest:"$TRASH/sb" &&
	add_msgs sa new 1 1500 &&
	state_sum >state.ssh &&
	{ "$MSYNC" --backup -e "$SSH_CMD" --remote-msync "$TRASH/held-msync" \
	    sa msynctest:"$TRASH/sb" >out 2>&1 & pid=$!; } &&
	wait_files sb/tmp 600 &&
	test "$(nfiles sb/cur)" = 100 &&
	kill -9 "$(cat remote.pid)" &&
	{ wait "$pid"; test $? != 0; } &&
	state_sum >state.ssh.killed &&
	test_cmp state.ssh state.ssh.killed &&
	"$MSYNC" --backup -e "$SSH_CMD" sa msynctest:"$TRASH/sb" &&
	py_check sa sb 1600
'

test_done
