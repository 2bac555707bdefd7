#!/usr/bin/env bash
test_description='A opens and lists its store while the connection comes
up (issue 10.4): over ssh the store is already locked when ssh starts; a
first sync still waits for the handshake (nothing is created for an
unreachable peer); what goes wrong on either side is said once, as before:
an unreachable peer (69), a local store gone (1), a local store locked (75)'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-sshd.sh"

test_require_prereq SSHD

# mk_folder DIR TAG N: a Maildir folder of N small messages.
mk_folder() {
	mkdir -p "$1/cur" "$1/new" "$1/tmp" || return 1
	for i in $(seq 1 "$3"); do
		printf 'From: a@example.org\nSubject: %s %d\n\nbody %d\n' \
		    "$2" "$i" "$i" >"$1/cur/1700000000.M${i}P1Q$2.test:2,S" ||
		    return 1
	done
}

# An rsh that notes whether the msync that started it (its parent) holds
# A's store before ssh starts: the lock file names the holder's pid
# (bounded: 100 looks, 20 ms apart), then runs ssh.
test_expect_success 'setup: a two-way pair over ssh, an rsh that looks at A' '
	start_sshd &&
	mk_folder a inbox 20 &&
	cat >look-rsh <<-EOF &&
	#!/bin/sh
	i=0
	while [ \$i -lt 100 ]; do
		if grep -q "^pid \$PPID " "$TRASH/a/msync.lock" 2>/dev/null; then
			echo held >"$TRASH/seen"
			exec $SSH_CMD "\$@"
		fi
		sleep 0.02
		i=\$((i + 1))
	done
	echo free >"$TRASH/seen"
	exec $SSH_CMD "\$@"
	EOF
	chmod +x look-rsh &&
	"$MSYNC" -e "$TRASH/look-rsh" a msynctest:"$TRASH/b" &&
	test "$(cat seen)" = free &&
	test "$(ls b/cur | wc -l)" = 20
'

test_expect_success 'a later run has A locked before ssh has connected' '
	rm -f seen &&
	mk_folder a/.New new 3 &&
	"$MSYNC" -e "$TRASH/look-rsh" a msynctest:"$TRASH/b" &&
	test "$(cat seen)" = held &&
	test "$(ls b/.New/cur | wc -l)" = 3
'

test_expect_success 'an unreachable peer: 69, said once, A intact' '
	find a -type f ! -name msync.lock ! -name msync.index | sort >a.before &&
	test_expect_code 69 "$MSYNC" -e "$TRASH/no-such-rsh" a \
	    msynctest:"$TRASH/b" 2>err &&
	cat err &&
	test "$(grep -c "error:" err)" = 1 &&
	find a -type f ! -name msync.lock ! -name msync.index | sort >a.after &&
	test_cmp a.before a.after
'

test_expect_success 'a first sync with an unreachable peer creates nothing' '
	test_expect_code 69 "$MSYNC" -e "$TRASH/no-such-rsh" fresh \
	    msynctest:"$TRASH/fresh-b" 2>err &&
	test_path_is_missing fresh &&
	test_path_is_missing fresh-b
'

test_expect_success 'A gone after a sync: said once, B untouched' '
	mv a a.away &&
	find b -type f | sort >b.before &&
	test_expect_code 1 "$MSYNC" -e "$SSH_CMD" a msynctest:"$TRASH/b" 2>err &&
	cat err &&
	test "$(grep -c "does not exist, but this pair was synced before" err)" = 1 &&
	test_path_is_missing a &&
	find b -type f | sort >b.after &&
	test_cmp b.before b.after &&
	mv a.away a
'

test_expect_success 'A locked by another run: 75, said once' '
	printf "pid 4242 on elsewhere\n" >a/msync.lock &&
	{ flock -o a/msync.lock sleep 30 & holder=$!; } &&
	test_when_finished "kill \$(pgrep -P $holder) $holder 2>/dev/null; wait $holder 2>/dev/null; :" &&
	for _ in $(seq 1 100); do
		flock -n a/msync.lock true || break
		sleep 0.05
	done &&
	test_expect_code 75 "$MSYNC" -e "$SSH_CMD" a msynctest:"$TRASH/b" 2>err &&
	cat err &&
	test "$(grep -c "is locked by pid 4242 on elsewhere" err)" = 1
'

test_expect_success 'and the pair is still in step afterwards' '
	mk_folder b/.FromB fromb 2 &&
	"$MSYNC" -e "$SSH_CMD" a msynctest:"$TRASH/b" &&
	test "$(ls a/.FromB/cur | wc -l)" = 2 &&
	"$MSYNC" --stats -e "$SSH_CMD" a msynctest:"$TRASH/b" 2>stats &&
	grep -q "changes on A: 0 copied" stats &&
	grep -q "changes on B: 0 copied" stats
'

test_done
