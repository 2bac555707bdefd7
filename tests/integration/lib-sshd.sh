# lib-sshd.sh -- a private OpenSSH server for the transport tests, after
# OpenSSH's regress/test-exec.sh.  Source it after lib.sh:
#
#	. "$(dirname "$0")/lib.sh"
#	. "$TEST_DIR/lib-sshd.sh"
#	test_require_prereq SSHD
#	test_expect_success 'start sshd' 'start_sshd'
#	test_expect_success 'list over ssh' '
#		"$MSYNC" --list -e "$SSH_CMD" msynctest:"$TRASH/md"
#	'
#
# start_sshd writes into $TRASH/sshd/:
#   host_ed25519[.pub]   the server's host key
#   id_ed25519[.pub]     the user's key, also in authorized_keys
#   sshd_config          ListenAddress 127.0.0.1, a free port, public keys
#                        only, the log at LogLevel VERBOSE
#   known_hosts          the host key for "msynctest" and [127.0.0.1]:PORT
#   bin/msync            a link to $MSYNC, first on the remote PATH
#                        (sshd_config SetEnv), so "msync --server" finds
#                        the binary under test
#   log                  sshd's log (-E); kept with the trash directory
#                        when a test fails; sshd_log prints it
# then runs `sshd -t`, starts the daemon and waits (bounded) until the
# port answers.  It also writes
#   $TRASH/ssh_config    for `ssh -F`: Host msynctest (the daemon) and
#                        Host msynctest-i (ProxyCommand sshd -i: a real
#                        sshd on a pipe, no port), BatchMode, strict host
#                        key checking against known_hosts
#   $HOME/.ssh/          config, id_ed25519 and known_hosts for the libssh
#                        client, which reads $HOME/.ssh (HOME is inside
#                        $TRASH, see lib.sh)
# and sets
#   SSHD_PORT            the port
#   SSH_CMD              "ssh -F $TRASH/ssh_config", for msync -e
#   SSHD_DIR             $TRASH/sshd
# test_ssh ARGS... runs ssh with that config.  stop_sshd kills the daemon
# by its pid; start_sshd registers it with test_atexit.
# msync_speaking FILE MIN MAX writes FILE, an msync that speaks only
# protocol versions MIN..MAX (the MSYNC_TEST_PROTO_VERSIONS hook of
# src/chan.c), for --remote-msync.
#
# The remote session's environment (SetEnv): PATH starts with
# $SSHD_DIR/bin; XDG_*_HOME point into $TRASH/remote-home; the sanitizer
# options are passed on.
#
# Skip-or-die: the SSHD prerequisite (lib.sh) is missing without sshd;
# MSYNC_TEST_SSHD=true turns that into a failure.

SSHD_DIR=$TRASH/sshd
SSHD_PORT=
SSH_CMD="ssh -F $TRASH/ssh_config"
export SSHD_DIR SSH_CMD

# sshd wants its privilege separation directory; make it when we can.
[ -d /run/sshd ] || mkdir -p /run/sshd 2>/dev/null || :

# Print sshd's log (for a failing test's output).
sshd_log() {
	[ -f "$SSHD_DIR/log" ] && sed 's/^/sshd: /' "$SSHD_DIR/log" >&2
	return 0
}

msync_speaking() {
	cat >"$1" <<-EOF &&
	#!/bin/sh
	MSYNC_TEST_PROTO_VERSIONS="$2 $3"
	export MSYNC_TEST_PROTO_VERSIONS
	exec "$MSYNC" "\$@"
	EOF
	chmod +x "$1"
}

# test_ssh ARGS...: ssh to msynctest and friends with the test config.
test_ssh() {
	ssh -F "$TRASH/ssh_config" "$@"
}

# A free TCP port on 127.0.0.1 (the kernel's pick, through python3 when
# there is one; else a bounded search of a random range).
sshd_free_port_() {
	local p i
	if command -v python3 >/dev/null 2>&1 &&
	    p=$(python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' \
	    2>/dev/null) && [ -n "$p" ]; then
		echo "$p"
		return 0
	fi
	for i in $(seq 1 50); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

# Keys, configs and the wrapper directory (no daemon yet).
sshd_setup_() {
	local user hostkey
	user=$(id -un) || return 1
	rm -rf "$SSHD_DIR" && mkdir -p "$SSHD_DIR/bin" "$TRASH/remote-home" &&
	chmod 700 "$SSHD_DIR" || return 1
	ssh-keygen -q -t ed25519 -N '' -C msync-test-host \
	    -f "$SSHD_DIR/host_ed25519" &&
	ssh-keygen -q -t ed25519 -N '' -C msync-test-user \
	    -f "$SSHD_DIR/id_ed25519" &&
	cp "$SSHD_DIR/id_ed25519.pub" "$SSHD_DIR/authorized_keys" &&
	chmod 600 "$SSHD_DIR/authorized_keys" &&
	ln -sf "$MSYNC" "$SSHD_DIR/bin/msync" || return 1

	cat >"$SSHD_DIR/sshd_config" <<EOF || return 1
ListenAddress 127.0.0.1
Port $SSHD_PORT
HostKey $SSHD_DIR/host_ed25519
AuthorizedKeysFile $SSHD_DIR/authorized_keys
PidFile $SSHD_DIR/pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin yes
AllowUsers $user
LogLevel VERBOSE
Subsystem sftp internal-sftp
SetEnv PATH=$SSHD_DIR/bin:/usr/local/bin:/usr/bin:/bin XDG_CACHE_HOME=$TRASH/remote-home/cache XDG_STATE_HOME=$TRASH/remote-home/state XDG_CONFIG_HOME=$TRASH/remote-home/config "ASAN_OPTIONS=${ASAN_OPTIONS:-}" "UBSAN_OPTIONS=${UBSAN_OPTIONS:-}"
EOF

	hostkey=$(cut -d' ' -f1,2 "$SSHD_DIR/host_ed25519.pub") || return 1
	printf 'msynctest,msynctest-i,[127.0.0.1]:%s %s\n' "$SSHD_PORT" \
	    "$hostkey" >"$SSHD_DIR/known_hosts" || return 1

	cat >"$TRASH/ssh_config" <<EOF || return 1
Host msynctest msynctest-i
	User $user
	IdentityFile $SSHD_DIR/id_ed25519
	IdentitiesOnly yes
	UserKnownHostsFile $SSHD_DIR/known_hosts
	GlobalKnownHostsFile /dev/null
	HostKeyAlias msynctest
	StrictHostKeyChecking yes
	BatchMode yes
	ConnectTimeout 10
Host msynctest
	HostName 127.0.0.1
	Port $SSHD_PORT
Host msynctest-i
	ProxyCommand /usr/sbin/sshd -i -f $SSHD_DIR/sshd_config -E $SSHD_DIR/log-i
EOF

	# The libssh client reads $HOME/.ssh (HOME is in the trash).
	mkdir -p "$HOME/.ssh" && chmod 700 "$HOME/.ssh" &&
	cp "$SSHD_DIR/id_ed25519" "$SSHD_DIR/id_ed25519.pub" "$HOME/.ssh/" &&
	cp "$SSHD_DIR/known_hosts" "$HOME/.ssh/known_hosts" &&
	cat >"$HOME/.ssh/config" <<EOF
Host msynctest
	HostName 127.0.0.1
	Port $SSHD_PORT
	User $user
	IdentityFile $HOME/.ssh/id_ed25519
	UserKnownHostsFile $HOME/.ssh/known_hosts
EOF
}

# start_sshd: see the top of this file.  Returns non-zero (and prints
# why, with the log) when the daemon cannot be started.
start_sshd() {
	local try i
	if ! test_have_prereq SSHD; then
		echo "start_sshd: sshd, ssh or ssh-keygen missing" >&2
		return 1
	fi
	for try in 1 2 3; do
		SSHD_PORT=$(sshd_free_port_) || {
			echo "start_sshd: no free port" >&2
			return 1
		}
		sshd_setup_ || { echo "start_sshd: setup failed" >&2; return 1; }
		if ! /usr/sbin/sshd -t -f "$SSHD_DIR/sshd_config"; then
			echo "start_sshd: sshd -t refused the config" >&2
			return 1
		fi
		/usr/sbin/sshd -f "$SSHD_DIR/sshd_config" -E "$SSHD_DIR/log" ||
			continue
		test_atexit stop_sshd
		# Wait (at most 10s) for the port to answer.
		for i in $(seq 1 100); do
			if (exec 3<>"/dev/tcp/127.0.0.1/$SSHD_PORT") 2>/dev/null
			then
				export SSHD_PORT
				return 0
			fi
			sleep 0.1
		done
		stop_sshd
	done
	echo "start_sshd: sshd did not come up" >&2
	sshd_log
	return 1
}

# stop_sshd: kill the daemon by its pid (if it runs).
stop_sshd() {
	local pid
	[ -f "$SSHD_DIR/pid" ] || return 0
	read -r pid <"$SSHD_DIR/pid" || return 0
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	rm -f "$SSHD_DIR/pid"
	return 0
}
