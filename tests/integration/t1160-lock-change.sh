#!/usr/bin/env bash
test_description='locking and concurrent changes'
. "$(dirname "$0")/lib.sh"

test_expect_success 'setup' '
	make_maildir a && make_maildir b &&
	deliver a "" S >/dev/null && "$MSYNC" a b
'

test_expect_success 'a second run on a locked store waits, then exits 75 naming the holder' '
	exec 9>a/msync.lock && flock -x 9 &&
	echo "pid 4242 on testhost" >&9 &&
	test_expect_code 75 "$MSYNC" --lock-wait 1 a b 2>err &&
	exec 9>&- &&
	grep -i "locked" err
'

test_expect_success 'after the lock is released the sync works' '
	"$MSYNC" a b
'

test_done
