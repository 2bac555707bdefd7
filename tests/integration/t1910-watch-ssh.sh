#!/usr/bin/env bash
test_description='--watch with a side over ssh: the local side by inotify, the
remote one polled every `every`'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-sshd.sh"
. "$TEST_DIR/lib-watch.sh"

test_require_prereq PERL SSHD

cfg=$XDG_CONFIG_HOME/msync/config

test_expect_success 'start sshd' 'start_sshd'

test_expect_success 'setup: a pair with a remote side' '
	make_maildir local && make_maildir remote &&
	deliver local "" S >/dev/null && deliver remote "" >/dev/null &&
	mkdir -p "$(dirname "$cfg")" &&
	cat >"$cfg" <<-EOF &&
	pair r
		a $TRASH/local
		b msynctest-i:$TRASH/remote
		rsh $SSH_CMD
		every 2s
		debounce 100ms
	EOF
	chmod 600 "$cfg" &&
	watch_start w r &&
	wait_until has_count remote 2 && wait_until has_count local 2 &&
	grep -q "cannot be watched for changes: looking every 2 s" w.err
'

test_expect_success 'a delivery on the local side reaches the remote one' '
	deliver local "" >/dev/null &&
	wait_until has_count remote 3
'

test_expect_success 'a delivery on the remote side is found by polling' '
	deliver remote "" F >/dev/null &&
	wait_until has_count local 4 &&
	test_cmp_trees local remote
'

test_expect_success 'SIGTERM ends the watch with status 0' '
	watch_stop w
'

test_done
