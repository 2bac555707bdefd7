#!/usr/bin/env bash
test_description='faults over a real sshd: unreachable, refused keys, host
keys, remote msync missing, protocol version mismatch, the connection
killed mid-transfer (exit 75, stores intact, the re-run converges), and a
read-only, restricted forced-command server'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-sshd.sh"

test_require_prereq PERL SSHD

# snapshot DIR: every path under DIR with its type, inode, size, mtime
# and content hash: a tree that must not be touched at all.
snapshot() {
	perl -MDigest::MD5 -MTime::HiRes=lstat -e '
		use strict; use warnings;
		my @out;
		sub walk {
			my ($p) = @_;
			my @st = lstat($p) or die "$p: $!\n";
			my $line = sprintf "%s %o %d %d %.9f", $p, $st[2], $st[1],
			    $st[7], $st[9];
			if (-f _) {
				open(my $fh, "<:raw", $p) or die "$p: $!\n";
				$line .= " " . Digest::MD5->new->addfile($fh)->hexdigest;
			}
			push @out, $line;
			return unless -d _;
			opendir(my $dh, $p) or die "$p: $!\n";
			for my $e (sort readdir $dh) {
				next if $e eq "." || $e eq "..";
				walk("$p/$e");
			}
		}
		walk($ARGV[0]);
		print "$_\n" for @out;
	' "$1"
}

# bulk DIR N: N distinct messages of about 1 KB (random hex, so they do
# not compress away) in DIR/cur, quickly.
bulk() {
	make_maildir "$1" &&
	perl -e '
		my ($dir, $n) = @ARGV;
		srand(4711);
		for my $i (1 .. $n) {
			my $body = join "", map { sprintf "%08x", int(rand(2**32)) }
			    1 .. 120;
			$body =~ s/(.{72})/$1\n/g;
			my $f = sprintf "%s/cur/1700000000.M%dP1.kill:2,%s", $dir,
			    $i, $i % 3 ? "S" : "";
			open(my $fh, ">", $f) or die "$f: $!\n";
			print $fh "From: Alice <alice\@example.org>\n",
			    "To: Bob <bob\@example.net>\n",
			    "Subject: transfer $i\n",
			    "Message-ID: <kill.$i\@example.org>\n\n$body\n";
			close $fh or die "$f: $!\n";
		}
	' "$1" "$2"
}

# wait_until SECS CMD...: run CMD every 0.05 s until it succeeds, at most
# SECS seconds.  Returns CMD's last status.
wait_until() {
	local end=$((SECONDS + $1))
	shift
	while ! "$@"; do
		[ "$SECONDS" -ge "$end" ] && return 1
		sleep 0.05
	done
}

# has_msgs DIR N: DIR holds at least N messages.
has_msgs() {
	[ "$(count_msgs "$1")" -ge "$2" ]
}

# gone PID: the process has exited (a zombie counts as gone).
gone() {
	! kill -0 "$1" 2>/dev/null ||
	    [ "$(ps -o stat= -p "$1" 2>/dev/null | cut -c1)" = Z ]
}

# wait_exit PID SECS: wait for our background job PID to end, at most
# SECS seconds (then SIGKILL it and fail); its status in $rc.
wait_exit() {
	rc=
	if ! wait_until "$2" gone "$1"; then
		echo "wait_exit: $1 still runs after $2 s; killing it" >&2
		kill -9 "$1" 2>/dev/null
		wait "$1"
		return 1
	fi
	wait "$1"
	rc=$?
	echo "exit status $rc"
}

# subset_of SRC DST: every message in DST (mailbox and content) is one of
# SRC's, so DST holds only complete copies; no duplicates.
subset_of() {
	maildir_digest --names "$1" | cut -d" " -f1-3 | LC_ALL=C sort >subset.src &&
	maildir_digest --names "$2" | cut -d" " -f1-3 | LC_ALL=C sort >subset.dst &&
	LC_ALL=C comm -13 subset.src subset.dst >subset.extra &&
	test_line_count = 0 subset.extra &&
	! uniq -d subset.dst | grep .
}

# msync_lines FILE: the lines msync itself wrote (not the relayed ones).
msync_lines() {
	grep "^msync: " "$1"
}

test_expect_success 'start sshd' '
	start_sshd
'

test_expect_success 'setup: a store, a key sshd does not know' '
	make_folder src Work &&
	for i in 1 2 3; do deliver src "" S >/dev/null || break; done &&
	deliver "$(folder_path src Work)" "" F >/dev/null &&
	test "$(count_all src)" = 4 &&
	maildir_digest --names src >src.digest &&
	ssh-keygen -q -t ed25519 -N "" -C stranger -f stranger &&
	sed "s|IdentityFile .*|IdentityFile $TRASH/stranger|" ssh_config \
	    >ssh_config_stranger
'

# --- cannot connect: exit 69, the reason said, nothing written ---

test_expect_success 'unreachable port (ssh): 69, a clear reason, nothing written' '
	port=$(sshd_free_port_) &&
	test_expect_code 69 "$MSYNC" -e "$SSH_CMD" src \
	    "ssh://127.0.0.1:$port$TRASH/unreach" 2>err &&
	cp err unreach-ssh.err &&
	msync_lines err >lines &&
	grep "cannot reach 127.0.0.1: .*Connection refused" lines &&
	test_path_is_missing unreach &&
	maildir_digest --names src >now && test_cmp src.digest now
'

test_expect_success 'unreachable port (libssh): 69, a clear reason, nothing written' '
	port=$(sshd_free_port_) &&
	test_expect_code 69 "$MSYNC" --ssh=libssh --backup src \
	    "ssh://127.0.0.1:$port$TRASH/unreach" 2>err &&
	cp err unreach-libssh.err &&
	msync_lines err >lines &&
	grep "cannot reach 127.0.0.1" lines &&
	test_path_is_missing unreach &&
	maildir_digest --names src >now && test_cmp src.digest now
'

test_expect_success 'wrong user key (ssh): 69, permission denied' '
	test_expect_code 69 "$MSYNC" -e "ssh -F $TRASH/ssh_config_stranger" \
	    src msynctest:"$TRASH/wrongkey" 2>err &&
	cp err key-ssh.err &&
	msync_lines err >lines &&
	grep "cannot reach msynctest: ssh exited with status 255 (.*Permission denied" lines &&
	test_path_is_missing wrongkey &&
	maildir_digest --names src >now && test_cmp src.digest now
'

test_expect_success 'wrong user key (libssh): 69, authentication refused' '
	mv "$HOME/.ssh/id_ed25519" "$HOME/.ssh/id_ed25519.right" &&
	mv "$HOME/.ssh/id_ed25519.pub" "$HOME/.ssh/id_ed25519.pub.right" &&
	test_when_finished "
		mv \"\$HOME/.ssh/id_ed25519.right\" \"\$HOME/.ssh/id_ed25519\" &&
		mv \"\$HOME/.ssh/id_ed25519.pub.right\" \"\$HOME/.ssh/id_ed25519.pub\"" &&
	cp stranger "$HOME/.ssh/id_ed25519" &&
	cp stranger.pub "$HOME/.ssh/id_ed25519.pub" &&
	SSH_AUTH_SOCK= test_expect_code 69 "$MSYNC" --ssh=libssh src \
	    msynctest:"$TRASH/wrongkey" 2>err &&
	cp err key-libssh.err &&
	msync_lines err >lines &&
	grep "authentication refused" lines &&
	test_path_is_missing wrongkey
'

test_expect_success 'the right key works again (libssh)' '
	"$MSYNC" --ssh=libssh --backup src msynctest:"$TRASH/rightkey" &&
	test_cmp_trees src rightkey
'

# --- libssh host keys -----------------------------------------------

test_expect_success 'libssh: an unknown host key: 69, says --accept-new-host-key' '
	cp "$HOME/.ssh/known_hosts" known_hosts.saved &&
	: >"$HOME/.ssh/known_hosts" &&
	fp=$(ssh-keygen -l -E sha256 -f "$SSHD_DIR/host_ed25519.pub" |
	    cut -d" " -f2) &&
	test_expect_code 69 "$MSYNC" --ssh=libssh src \
	    msynctest:"$TRASH/hostkey" 2>err &&
	cp err hostkey-unknown.err &&
	msync_lines err >lines &&
	grep "host key for msynctest is not known" lines &&
	grep -F "$fp" lines &&
	grep -e "--accept-new-host-key" lines &&
	test_path_is_missing hostkey &&
	test_must_fail test -s "$HOME/.ssh/known_hosts"
'

test_expect_success 'libssh: --accept-new-host-key syncs and records the key' '
	"$MSYNC" --ssh=libssh --accept-new-host-key src \
	    msynctest:"$TRASH/hostkey" 2>err &&
	test_cmp_trees src hostkey &&
	grep -F "added host key $fp" err &&
	ssh-keygen -F "[127.0.0.1]:$SSHD_PORT" -f "$HOME/.ssh/known_hosts" |
	    grep -v "^#" | cut -d" " -f2,3 >recorded &&
	cut -d" " -f1,2 "$SSHD_DIR/host_ed25519.pub" >expect &&
	test_cmp expect recorded &&
	"$MSYNC" --ssh=libssh src msynctest:"$TRASH/hostkey" 2>err &&
	! grep "added host key" err
'

test_expect_success 'libssh: a changed host key is refused, even with --accept-new-host-key' '
	ssh-keygen -q -t ed25519 -N "" -f impostor &&
	printf "[127.0.0.1]:%s %s\n" "$SSHD_PORT" \
	    "$(cut -d" " -f1,2 impostor.pub)" >"$HOME/.ssh/known_hosts" &&
	test_when_finished "cp known_hosts.saved \"\$HOME/.ssh/known_hosts\"" &&
	cp "$HOME/.ssh/known_hosts" kh.before &&
	snapshot hostkey >hk.before &&
	test_expect_code 69 "$MSYNC" --ssh=libssh --accept-new-host-key src \
	    msynctest:"$TRASH/hostkey" 2>err &&
	msync_lines err >lines &&
	grep "host key for msynctest has changed (now $fp)" lines &&
	grep "refusing" lines &&
	test_cmp kh.before "$HOME/.ssh/known_hosts" &&
	snapshot hostkey >hk.after && test_cmp hk.before hk.after &&
	maildir_digest --names src >src.digest
'

# --- the remote side cannot run ---------------------------------------

test_expect_success 'remote msync missing (ssh): 69, command not found' '
	test_expect_code 69 "$MSYNC" -e "$SSH_CMD" --remote-msync /nonexistent/msync \
	    src msynctest:"$TRASH/nomsync" 2>err &&
	cp err nomsync-ssh.err &&
	msync_lines err >lines &&
	grep "cannot start msync on msynctest: command not found" lines &&
	grep "/nonexistent/msync" lines &&
	test_path_is_missing nomsync
'

test_expect_success 'remote msync missing (libssh): 69, command not found' '
	test_expect_code 69 "$MSYNC" --ssh=libssh --remote-msync /nonexistent/msync \
	    --backup msynctest:"$TRASH/src" nomsync 2>err &&
	msync_lines err >lines &&
	grep "cannot start msync on msynctest: command not found" lines &&
	test_path_is_missing nomsync
'

# Why msync could not connect fits in one line: the reason, not also
# "the peer closed the connection before its handshake".
test_expect_success 'a failure to connect is reported in one line' '
	ok=1 &&
	for f in unreach-ssh unreach-libssh key-ssh key-libssh \
	    hostkey-unknown nomsync-ssh; do
		msync_lines $f.err >lines &&
		test_line_count = 1 lines || ok=0
	done &&
	test "$ok" = 1
'

# --- protocol versions (the MSYNC_TEST_PROTO_VERSIONS hook, src/chan.c) --

test_expect_success 'setup: a remote msync that speaks protocol 6..7 only' '
	msync_speaking msync-v67 6 7 && msync_speaking msync-v16 1 6
'

for t in ssh libssh; do
	case $t in
	ssh) X=(-e "$SSH_CMD") ;;
	libssh) X=(--ssh=libssh) ;;
	esac

	test_expect_success "$t: no common protocol version: 76, both ranges named" '
		test_expect_code 76 "$MSYNC" "${X[@]}" --remote-msync "$TRASH/msync-v67" \
		    src msynctest:"$TRASH/vers-$t" 2>err &&
		msync_lines err >lines &&
		grep "this side speaks 2\.\.5, the peer 6\.\.7" lines &&
		test_path_is_missing "vers-$t" &&
		maildir_digest --names src >now && test_cmp src.digest now
	'

	test_expect_success "$t: the other way round (a newer client): 76" '
		MSYNC_TEST_PROTO_VERSIONS="6 7" test_expect_code 76 "$MSYNC" \
		    "${X[@]}" src msynctest:"$TRASH/vers-$t" 2>err &&
		msync_lines err >lines &&
		grep "this side speaks 6\.\.7, the peer 2\.\.5" lines &&
		test_path_is_missing "vers-$t"
	'

	test_expect_success "$t: overlapping ranges agree on the common version" '
		"$MSYNC" "${X[@]}" -vv --remote-msync "$TRASH/msync-v16" \
		    src msynctest:"$TRASH/vers-$t" 2>err &&
		grep "protocol version 5" err &&
		test_cmp_trees src "vers-$t"
	'
done

# --- the connection killed mid-transfer --------------------------------
#
# The client's --bwlimit slows what it sends to about 11 s for the whole
# store, so killing the connection as soon as a few messages have landed
# is reliably mid-transfer.  A pull is slowed the same way by an rsh
# wrapper that passes the server's output on at 200 KB/s (--bwlimit
# only throttles what the client sends).  The server is started through
# a wrapper that records its pid.

test_expect_success 'setup: 1500 messages, pid-recording wrappers' '
	bulk big 1500 &&
	make_folder big Work &&
	for i in 1 2 3; do deliver "$(folder_path big Work)" "" S >/dev/null || break; done &&
	maildir_digest --names big >big.digest &&
	test_line_count = 1503 big.digest &&
	cat >srv-wrap <<-EOF &&
	#!/bin/sh
	echo \$\$ >"$TRASH/server.pid"
	exec msync "\$@"
	EOF
	chmod +x srv-wrap &&
	cat >rsh-wrap <<-EOF &&
	#!/bin/sh
	echo \$\$ >"$TRASH/rsh.pid"
	exec ssh -F "$TRASH/ssh_config" "\$@"
	EOF
	chmod +x rsh-wrap &&
	cat >throttle.pl <<-\EOF &&
	# stdin to stdout at most 200 KB/s
	use Time::HiRes qw(sleep);
	$| = 1;
	while ((my $n = sysread(STDIN, my $buf, 8192)) > 0) {
		syswrite(STDOUT, $buf) == $n or exit 1;
		sleep($n / 204800);
	}
	EOF
	cat >rsh-slow <<-EOF &&
	#!/usr/bin/env bash
	echo \$\$ >"$TRASH/rsh.pid"
	exec ssh -F "$TRASH/ssh_config" "\$@" > >(exec perl "$TRASH/throttle.pl")
	EOF
	chmod +x rsh-slow
'

# kill_case TITLE TARGET SRC DST: run msync "${KC_SLOW[@]}" SRC_LOC
# DST_LOC (KC_SRC_LOC, KC_DST_LOC) in the background and kill TARGET (rsh:
# the ssh process; server: the remote msync --server; helper: msync's
# child, the libssh helper) once DST has 20 messages.  Wants exit 75,
# both stores intact (SRC as it was, DST only complete copies of SRC's
# messages), the server gone, and a re-run with "${KC_ARGS[@]}" (not
# slowed) that converges.
kill_case() {
	KC_TITLE=$1 KC_TARGET=$2 KC_SRC=$3 KC_DST=$4
	KC_N=$((KC_N + 1))
	test_expect_success "$KC_TITLE" '
		rm -f server.pid rsh.pid &&
		maildir_digest --names "$KC_SRC" >kc.src.before &&
		{ "$MSYNC" "${KC_SLOW[@]}" --remote-msync "$TRASH/srv-wrap" \
		    "$KC_SRC_LOC" "$KC_DST_LOC" >out 2>err & pid=$!; } &&
		wait_until 30 has_msgs "$KC_DST" 20 &&
		wait_until 10 test -s server.pid &&
		read -r spid <server.pid &&
		! gone "$pid" &&
		case $KC_TARGET in
		rsh)	read -r victim <rsh.pid ;;
		server)	victim=$spid ;;
		helper)	victim=$(pgrep -P "$pid" | head -n 1) ;;
		esac &&
		echo "killing $KC_TARGET, pid $victim" &&
		kill "$victim" &&
		wait_exit "$pid" 30 &&
		cat err && cp err "kill-$KC_N.err" &&
		test "$rc" = 75 &&
		msync_lines err >lines &&
		grep -i "connection.*lost" lines &&
		wait_until 15 gone "$spid" &&
		n=$(count_all "$KC_DST") &&
		echo "$n messages arrived before the kill" &&
		test "$n" -lt 1503 &&
		subset_of "$KC_SRC" "$KC_DST" &&
		maildir_digest --names "$KC_SRC" >kc.src.after &&
		test_cmp kc.src.before kc.src.after &&
		"$MSYNC" "${KC_ARGS[@]}" "$KC_SRC_LOC" "$KC_DST_LOC" &&
		test_cmp_trees "$KC_SRC" "$KC_DST" &&
		"$MSYNC" "${KC_ARGS[@]}" --stats "$KC_SRC_LOC" "$KC_DST_LOC" 2>stats &&
		grep "on B: 0 copied (0 bytes), 0 moved/local, 0 flag changes, 0 expunged" stats &&
		test_cmp_trees "$KC_SRC" "$KC_DST"
	'
}

KC_N=0
KC_SRC_LOC=big KC_DST_LOC=msynctest:$TRASH/k1
KC_SLOW=(-e "$TRASH/rsh-wrap" --backup --no-compress --bwlimit 200K)
KC_ARGS=(-e "$SSH_CMD" --backup)
kill_case 'ssh, backup push: the ssh process killed -> 75, intact, re-run converges' \
    rsh big k1

KC_SRC_LOC=big KC_DST_LOC=msynctest:$TRASH/k2
KC_SLOW=(-e "$SSH_CMD" --no-compress --bwlimit 200K)
KC_ARGS=(-e "$SSH_CMD")
kill_case 'ssh, two-way push: the remote msync --server killed -> 75, intact, re-run converges' \
    server big k2

KC_SRC_LOC=msynctest:$TRASH/big KC_DST_LOC=k3
KC_SLOW=(-e "$TRASH/rsh-slow" --backup --no-compress)
KC_ARGS=(-e "$SSH_CMD" --backup)
kill_case 'ssh, backup pull (throttled): the ssh process killed -> 75, intact, re-run converges' \
    rsh big k3

KC_SRC_LOC=big KC_DST_LOC=msynctest:$TRASH/k4
KC_SLOW=(--ssh=libssh --backup -z --bwlimit 200K)
KC_ARGS=(--ssh=libssh --backup)
kill_case 'libssh, backup push: the remote msync --server killed -> 75, intact, re-run converges' \
    server big k4

KC_SRC_LOC=big KC_DST_LOC=msynctest:$TRASH/k5
KC_SLOW=(--ssh=libssh --no-compress --bwlimit 200K)
KC_ARGS=(--ssh=libssh)
kill_case 'libssh, two-way push: the libssh helper killed -> 75, intact, re-run converges' \
    helper big k5

test_expect_success 'ssh: the client killed (-9) mid-transfer: ssh and the server exit, re-run converges' '
	rm -f server.pid rsh.pid &&
	{ "$MSYNC" -e "$TRASH/rsh-wrap" --no-compress --bwlimit 200K \
	    --remote-msync "$TRASH/srv-wrap" big msynctest:"$TRASH/k6" \
	    >out 2>err & pid=$!; } &&
	wait_until 30 has_msgs k6 20 &&
	read -r spid <server.pid && read -r sshpid <rsh.pid &&
	! gone "$pid" &&
	kill -9 "$pid" &&
	wait_exit "$pid" 30 &&
	test "$rc" = 137 &&
	wait_until 15 gone "$sshpid" &&
	wait_until 15 gone "$spid" &&
	subset_of big k6 &&
	maildir_digest --names big >now && test_cmp big.digest now &&
	"$MSYNC" -e "$SSH_CMD" big msynctest:"$TRASH/k6" &&
	test_cmp_trees big k6
'

# After the handshake, a connection lost over OpenSSH is reported as
# lost, never as "cannot reach" (which ssh's exit status 255 suggests).
test_expect_success 'a connection lost mid-transfer is not reported as "cannot reach"' '
	ok=1 &&
	for f in kill-*.err; do
		grep "connection to the peer lost" "$f" &&
		! grep "cannot reach" "$f" || ok=0
	done &&
	test "$ok" = 1
'

# --- a read-only server pinned to one store (authorized_keys command=) ---

test_expect_success 'setup: a key whose forced command is a read-only, restricted server' '
	make_folder ro-store Lists &&
	for i in 1 2 3 4; do deliver ro-store "" S >/dev/null || break; done &&
	deliver ro-store >/dev/null &&
	deliver "$(folder_path ro-store Lists)" "" F >/dev/null &&
	"$MSYNC" --list ro-store >/dev/null &&
	ssh-keygen -q -t ed25519 -N "" -C pinned -f pinkey &&
	printf "command=\"msync --server --restrict %s --read-only\",restrict %s\n" \
	    "$TRASH/ro-store" "$(cat pinkey.pub)" >>"$SSHD_DIR/authorized_keys" &&
	sed "s|IdentityFile .*|IdentityFile $TRASH/pinkey|" ssh_config \
	    >ssh_config_ro &&
	make_maildir elsewhere && deliver elsewhere "" R >/dev/null &&
	snapshot elsewhere >elsewhere.snap &&
	snapshot ro-store >ro.snap
'

RO=(-e "ssh -F $TRASH/ssh_config_ro")

test_expect_success 'read-only server: a backup pull works, the asked path is ignored' '
	"$MSYNC" "${RO[@]}" --backup msynctest:/no/such/store ro-pull 2>err &&
	test_cmp_trees ro-store ro-pull &&
	test_path_is_missing /no/such/store &&
	"$MSYNC" "${RO[@]}" --backup msynctest:"$TRASH/elsewhere" ro-pull2 2>err &&
	test_cmp_trees ro-store ro-pull2 &&
	snapshot elsewhere >now && test_cmp elsewhere.snap now &&
	snapshot ro-store >now && test_cmp ro.snap now
'

test_expect_success 'read-only server: --list and a one-way pull work' '
	"$MSYNC" "${RO[@]}" --list msynctest:anything >list &&
	printf "INBOX\t5\nLists\t1\n" >expect &&
	cut -f1,2 list >got && test_cmp expect got &&
	make_maildir ro-ow && deliver ro-ow "" S >/dev/null &&
	"$MSYNC" "${RO[@]}" --one-way msynctest:anything ro-ow &&
	test "$(count_all ro-ow)" = 7 &&
	snapshot ro-store >now && test_cmp ro.snap now
'

test_expect_success 'read-only server: a two-way sync is refused, nothing changes' '
	cp -a ro-pull ro-local && deliver ro-local "" S >/dev/null &&
	maildir_digest --names ro-local >local.digest &&
	test_must_fail "$MSYNC" "${RO[@]}" ro-local msynctest:"$TRASH/ro-store" 2>err &&
	msync_lines err >lines &&
	grep "read-only" lines &&
	snapshot ro-store >now && test_cmp ro.snap now &&
	maildir_digest --names ro-local >now && test_cmp local.digest now
'

test_expect_success 'read-only server: a backup push is refused, nothing changes' '
	test_must_fail "$MSYNC" "${RO[@]}" --backup ro-local msynctest:"$TRASH/elsewhere" 2>err &&
	msync_lines err >lines &&
	grep "read-only" lines &&
	snapshot ro-store >now && test_cmp ro.snap now &&
	snapshot elsewhere >now && test_cmp elsewhere.snap now
'

test_expect_success 'read-only server: a one-way push is refused, nothing changes' '
	test_must_fail "$MSYNC" "${RO[@]}" --one-way ro-local msynctest:/tmp/x 2>err &&
	msync_lines err >lines &&
	grep "read-only" lines &&
	test_path_is_missing /tmp/x/cur &&
	snapshot ro-store >now && test_cmp ro.snap now
'

test_expect_success 'read-only server over libssh: pull works, push refused' '
	cat >>"$HOME/.ssh/config" <<-EOF &&
	Host msynctest-ro
		HostName 127.0.0.1
		Port $SSHD_PORT
		User $(id -un)
		IdentityFile $TRASH/pinkey
		UserKnownHostsFile $HOME/.ssh/known_hosts
	EOF
	mv "$HOME/.ssh/id_ed25519" "$HOME/.ssh/id_ed25519.off" &&
	test_when_finished "mv \"\$HOME/.ssh/id_ed25519.off\" \"\$HOME/.ssh/id_ed25519\"" &&
	SSH_AUTH_SOCK= "$MSYNC" --ssh=libssh --backup msynctest-ro:/ignored ro-pull3 &&
	test_cmp_trees ro-store ro-pull3 &&
	SSH_AUTH_SOCK= test_must_fail "$MSYNC" --ssh=libssh ro-local \
	    msynctest-ro:"$TRASH/ro-store" 2>err &&
	grep "read-only" err &&
	snapshot ro-store >now && test_cmp ro.snap now
'

test_done
