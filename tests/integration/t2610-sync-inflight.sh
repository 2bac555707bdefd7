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

# add_msgs DIR TAG FIRST N: N small messages, written by Python for speed.
add_msgs() {
	python3 - "$@" <<'EOF'
import os, sys
root, tag, first, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for d in ("cur", "new", "tmp"):
    os.makedirs(os.path.join(root, d), exist_ok=True)
for i in range(first, first + n):
    body = ("From: a@example.org\nTo: b@example.net\n"
            "Subject: %s %d\nMessage-ID: <%s.%d@example.org>\n\n"
            "message %d of %s, with a line of text.\n" % (tag, i, tag, i, i, tag))
    name = "1700000000.M%dP1Q%s.test:2,S" % (i, tag)
    with open(os.path.join(root, "cur", name), "w") as f:
        f.write(body)
EOF
}

# py_check A B N: both stores hold the same N messages, each once
# (Python's mailbox module reads them).
py_check() {
	python3 - "$@" <<'EOF'
import collections, hashlib, mailbox, sys
def load(path):
    md = mailbox.Maildir(path, factory=None, create=False)
    c = collections.Counter()
    for key in md.keys():
        data = md.get_bytes(key).replace(b"\r\n", b"\n")
        c[(hashlib.md5(data).hexdigest(),
           "".join(sorted(md.get_message(key).get_flags())))] += 1
    return c
a, b, n = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
dup = [k for k, v in list(a.items()) + list(b.items()) if v > 1]
if dup:
    sys.exit("duplicates: %d" % len(dup))
if a != b:
    sys.exit("differ: %d only in A, %d only in B" % (len(a - b), len(b - a)))
if sum(a.values()) != n:
    sys.exit("%d messages, want %d" % (sum(a.values()), n))
EOF
}

nfiles() { find "$1" -maxdepth 1 -type f | wc -l; }

# wait_files DIR N: until DIR holds at least N files (bounded: 3000 naps).
wait_files() {
	for _ in $(seq 1 3000); do
		[ "$(nfiles "$1")" -ge "$2" ] && return 0
		sleep 0.02
	done
	echo "wait_files: $1 has $(nfiles "$1") files, want $2" >&2
	return 1
}

# state_sum: a checksum of every sync state file of the run's pairs.
state_sum() {
	find "$XDG_STATE_HOME" -type f -name '*.state' -exec cat {} + 2>/dev/null |
	    md5sum
}

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
