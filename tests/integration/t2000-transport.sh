#!/usr/bin/env bash
test_description='transports: the remote command line, the stderr relay,
failure reporting (exit 69), ssh and libssh against a private sshd'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-sshd.sh"

# What the msync under test can do; a missing feature turns the tests
# that need it into known breakages instead of failures.
test_lazy_prereq MSYNC_LIST '"$MSYNC" --help 2>&1 | grep -q -- --list'
test_lazy_prereq MSYNC_LIBSSH '"$MSYNC" --help 2>&1 | grep -q -- --ssh=libssh'
test_lazy_prereq MSYNC_REMOTE '"$MSYNC" --help 2>&1 | grep -q -- --remote-msync'

# test_expect_feature FEATURE[,FEATURE] [PREREQ] TITLE BODY: expected to
# succeed when msync has the features, else a known breakage.
test_expect_feature() {
	local f=$1
	shift
	if test_have_prereq "$f"; then
		test_expect_success "$@"
	else
		test_expect_failure "$@"
	fi
}

# A stand-in for ssh: records its arguments, one per line, in rsh.args,
# then runs the "remote" command here with sh -c, as the remote shell
# would (or, with FAKE_RSH_EXIT set, prints FAKE_RSH_SAY to stderr and
# exits with that status, as ssh does when it cannot connect).
test_expect_success 'setup: a fake rsh and a store' '
	cat >fake-rsh <<-\EOF &&
	#!/bin/sh
	printf "%s\n" "$@" >"$TRASH/rsh.args"
	if [ -n "${FAKE_RSH_EXIT:-}" ]; then
		echo "${FAKE_RSH_SAY:-fake-rsh: no route to host}" >&2
		exit "$FAKE_RSH_EXIT"
	fi
	while [ $# -gt 0 ] && [ "$1" != fakehost ]; do shift; done
	shift
	exec sh -c "$*"
	EOF
	chmod +x fake-rsh &&
	make_maildir md &&
	deliver md >/dev/null &&
	deliver md "" S >/dev/null
'

test_expect_feature MSYNC_LIST 'rsh argv: -p, -l, host, then the fixed command' '
	"$MSYNC" --list -e "$TRASH/fake-rsh -x" \
	    "ssh://bob@fakehost:2222/$TRASH/md" >out 2>err &&
	printf "%s\n" -x -p 2222 -l bob fakehost msync --server >expect &&
	test_cmp expect rsh.args &&
	grep INBOX out
'

test_expect_feature MSYNC_LIST '$MSYNC_RSH is used without -e' '
	MSYNC_RSH="$TRASH/fake-rsh -y" "$MSYNC" --list fakehost:"$TRASH/md" \
	    >out 2>err &&
	head -n 1 rsh.args >first &&
	echo -y >expect &&
	test_cmp expect first
'

test_expect_feature MSYNC_LIST,MSYNC_REMOTE '--remote-msync is quoted for the remote shell' '
	mkdir -p "my bin" &&
	ln -s "$MSYNC" "my bin/msync" &&
	"$MSYNC" --list -e "$TRASH/fake-rsh" --remote-msync "$TRASH/my bin/msync" \
	    fakehost:"$TRASH/md" >out 2>err &&
	grep INBOX out &&
	grep "^'\''$TRASH/my bin/msync'\''\$" rsh.args
'

test_expect_success 'a host starting with - is refused (64)' '
	rm -f rsh.args &&
	test_expect_code 64 "$MSYNC" --list -e "$TRASH/fake-rsh" \
	    "-oProxyCommand=touch${IFS}pwned:x" 2>err &&
	test_path_is_missing pwned &&
	test_path_is_missing rsh.args
'

test_expect_feature MSYNC_LIST 'a missing rsh program: exit 69 and why' '
	test_expect_code 69 "$MSYNC" --list -e "$TRASH/no-such-ssh" \
	    fakehost:/x 2>err &&
	grep "cannot run .*no-such-ssh" err
'

test_expect_feature MSYNC_LIST 'ssh exiting 255: exit 69, its last line quoted' '
	FAKE_RSH_EXIT=255 FAKE_RSH_SAY="ssh: connect to host fakehost port 22: Connection refused" \
	    test_expect_code 69 "$MSYNC" --list -e "$TRASH/fake-rsh" \
	    fakehost:/x 2>err &&
	grep "^fakehost: ssh: connect to host fakehost port 22: Connection refused\$" err &&
	grep "cannot reach fakehost: .*status 255 (ssh: connect to host fakehost port 22: Connection refused)" err
'

test_expect_feature MSYNC_LIST 'remote msync missing (127): exit 69' '
	FAKE_RSH_EXIT=127 FAKE_RSH_SAY="bash: line 1: msync: command not found" \
	    test_expect_code 69 "$MSYNC" --list -e "$TRASH/fake-rsh" \
	    fakehost:/x 2>err &&
	grep "cannot start msync on fakehost: command not found" err
'

test_expect_feature MSYNC_LIST 'the peer'\''s stderr is relayed, escaped, with the host' '
	FAKE_RSH_EXIT=255 FAKE_RSH_SAY="$(printf "evil\033[2Jline")" \
	    test_expect_code 69 "$MSYNC" --list -e "$TRASH/fake-rsh" \
	    fakehost:/x 2>err &&
	grep "^fakehost: evil\\\\x1b\\[2Jline\$" err &&
	! grep "$(printf "\033")" err
'

# --- a real sshd ----------------------------------------------------

test_expect_success SSHD 'start sshd' '
	start_sshd
'

test_expect_success SSHD 'ssh -F ssh_config msynctest works' '
	test_ssh msynctest true &&
	test_ssh msynctest-i true
'

test_expect_success SSHD 'msync is on the remote PATH' '
	test_ssh msynctest "command -v msync" >out &&
	echo "$SSHD_DIR/bin/msync" >expect &&
	test_cmp expect out
'

test_expect_feature MSYNC_LIST SSHD 'msync --list over ssh' '
	"$MSYNC" --list -e "$SSH_CMD" msynctest:"$TRASH/md" >out 2>err &&
	grep "^INBOX" out
'

test_expect_feature MSYNC_LIST SSHD 'msync --list over ssh, sshd -i' '
	"$MSYNC" --list -e "$SSH_CMD" msynctest-i:"$TRASH/md" >out 2>err &&
	grep "^INBOX" out
'

test_expect_feature MSYNC_LIST,MSYNC_LIBSSH SSHD 'msync --list over libssh' '
	"$MSYNC" --list --ssh=libssh msynctest:"$TRASH/md" >out 2>err &&
	grep "^INBOX" out
'

test_expect_feature MSYNC_LIST SSHD 'sync over ssh copies the messages' '
	"$MSYNC" -e "$SSH_CMD" md msynctest:"$TRASH/copy-ssh" 2>err &&
	test_cmp_trees md copy-ssh
'

test_expect_feature MSYNC_LIST,MSYNC_LIBSSH SSHD 'sync over libssh copies the messages' '
	"$MSYNC" --ssh=libssh md msynctest:"$TRASH/copy-libssh" 2>err &&
	test_cmp_trees md copy-libssh
'

test_expect_feature MSYNC_LIST SSHD 'connection refused (ssh): exit 69' '
	port=$(sshd_free_port_) &&
	test_expect_code 69 "$MSYNC" --list -e "$SSH_CMD" \
	    "ssh://127.0.0.1:$port/x" 2>err &&
	grep "cannot reach 127.0.0.1" err
'

test_expect_feature MSYNC_LIST,MSYNC_LIBSSH SSHD 'connection refused (libssh): exit 69' '
	port=$(sshd_free_port_) &&
	test_expect_code 69 "$MSYNC" --list --ssh=libssh \
	    "ssh://127.0.0.1:$port/x" 2>err &&
	grep "cannot reach 127.0.0.1" err
'

test_expect_feature MSYNC_LIST SSHD 'authentication refused (ssh): exit 69' '
	ssh-keygen -q -t ed25519 -N "" -f otherkey &&
	sed "s|IdentityFile .*|IdentityFile $TRASH/otherkey|" ssh_config \
	    >ssh_config_nokey &&
	test_expect_code 69 "$MSYNC" --list -e "ssh -F $TRASH/ssh_config_nokey" \
	    msynctest:"$TRASH/md" 2>err &&
	grep "cannot reach msynctest" err &&
	grep -i "permission denied" err
'

test_expect_feature MSYNC_LIST,MSYNC_LIBSSH SSHD 'authentication refused (libssh): exit 69' '
	mv "$HOME/.ssh/id_ed25519" "$HOME/.ssh/id_ed25519.away" &&
	test_when_finished "mv \"\$HOME/.ssh/id_ed25519.away\" \"\$HOME/.ssh/id_ed25519\"" &&
	SSH_AUTH_SOCK= test_expect_code 69 "$MSYNC" --list --ssh=libssh \
	    msynctest:"$TRASH/md" 2>err &&
	grep "authentication refused" err
'

test_expect_feature MSYNC_LIST,MSYNC_REMOTE SSHD 'remote msync missing (ssh): exit 69' '
	test_expect_code 69 "$MSYNC" --list -e "$SSH_CMD" \
	    --remote-msync /no/such/msync msynctest:"$TRASH/md" 2>err &&
	grep "cannot start msync on msynctest" err
'

test_expect_feature MSYNC_LIST,MSYNC_LIBSSH,MSYNC_REMOTE SSHD 'remote msync missing (libssh): exit 69' '
	test_expect_code 69 "$MSYNC" --list --ssh=libssh \
	    --remote-msync /no/such/msync msynctest:"$TRASH/md" 2>err &&
	grep "cannot start msync on msynctest" err
'

test_expect_feature MSYNC_LIST SSHD 'a forced command pins the store (docs/REMOTE.md)' '
	ssh-keygen -q -t ed25519 -N "" -f pinkey &&
	printf "command=\"msync --server --restrict %s --read-only\",restrict %s\n" \
	    "$TRASH/md" "$(cat pinkey.pub)" >>"$SSHD_DIR/authorized_keys" &&
	sed "s|IdentityFile .*|IdentityFile $TRASH/pinkey|" ssh_config \
	    >ssh_config_pin &&
	"$MSYNC" --list -e "ssh -F $TRASH/ssh_config_pin" \
	    msynctest:/some/where/else >out 2>err &&
	grep "^INBOX" out
'

test_expect_feature MSYNC_LIST,MSYNC_LIBSSH SSHD 'libssh: an unknown host key is refused' '
	cp "$HOME/.ssh/known_hosts" known_hosts.saved &&
	: >"$HOME/.ssh/known_hosts" &&
	test_expect_code 69 "$MSYNC" --list --ssh=libssh \
	    msynctest:"$TRASH/md" 2>err &&
	grep "host key for msynctest is not known" err &&
	grep -- "--accept-new-host-key" err &&
	test_must_fail test -s "$HOME/.ssh/known_hosts"
'

test_expect_feature MSYNC_LIST,MSYNC_LIBSSH SSHD 'libssh: --accept-new-host-key records it' '
	"$MSYNC" --list --ssh=libssh --accept-new-host-key \
	    msynctest:"$TRASH/md" >out 2>err &&
	grep "^INBOX" out &&
	grep -F "[127.0.0.1]:$SSHD_PORT" "$HOME/.ssh/known_hosts" &&
	"$MSYNC" --list --ssh=libssh msynctest:"$TRASH/md" >out 2>err &&
	grep "^INBOX" out
'

test_expect_feature MSYNC_LIST,MSYNC_LIBSSH SSHD 'libssh: a changed host key is always refused' '
	ssh-keygen -q -t ed25519 -N "" -f fakehostkey &&
	printf "[127.0.0.1]:%s %s\n" "$SSHD_PORT" \
	    "$(cut -d" " -f1,2 fakehostkey.pub)" >"$HOME/.ssh/known_hosts" &&
	test_when_finished "cp known_hosts.saved \"\$HOME/.ssh/known_hosts\"" &&
	test_expect_code 69 "$MSYNC" --list --ssh=libssh --accept-new-host-key \
	    msynctest:"$TRASH/md" 2>err &&
	grep "host key for msynctest has changed" err &&
	grep "refusing" err
'

test_done
