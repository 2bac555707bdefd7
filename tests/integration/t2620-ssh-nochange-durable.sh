#!/usr/bin/env bash
test_description='a run over ssh that changes no mail makes nothing durable
(issue 10.4): no fsync, fdatasync, syncfs, rename or ftruncate on either
side (client, ssh, sshd -i and the server are all traced), also when both
folders must be rescanned because their cur/ was touched (the index then
takes the new token in a journal batch of no records, not fsynced); the
lock file still names its holder in one line'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-sshd.sh"

test_lazy_prereq STRACE 'strace -f -qq -e trace=fsync -o /dev/null true'
test_require_prereq SSHD STRACE

# LeakSanitizer cannot work under ptrace; every msync of this script
# runs under strace, the remote one too (sshd passes this on).
ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"
export ASAN_OPTIONS

# mk_folder DIR TAG N: a Maildir folder of N small messages.
mk_folder() {
	mkdir -p "$1/cur" "$1/new" "$1/tmp" || return 1
	for i in $(seq 1 "$3"); do
		printf 'From: a@example.org\nSubject: %s %d\nMessage-ID: <%s.%d@example.org>\n\nbody %d\n' \
		    "$2" "$i" "$2" "$i" "$i" \
		    >"$1/cur/1700000000.M${i}P1Q$2.test:2,S" || return 1
	done
}

# DURABLE: the system calls that make or cut something on disk.
DURABLE=fsync,fdatasync,syncfs,sync_file_range,ftruncate,rename,renameat,renameat2

# traced OUT ARGS...: msync --backup over ssh (sshd -i under ssh, so
# strace -f sees every process of the run), the calls above into OUT.
traced() {
	local out=$1
	shift
	strace -f -qq -e trace="$DURABLE" -o "$out" \
	    "$MSYNC" --backup -e "$SSH_CMD" "$@" a msynctest-i:"$TRASH/b"
}

# durable_calls FILE: the calls of DURABLE that FILE records.
durable_calls() {
	grep -E '(^|[0-9] )(fsync|fdatasync|syncfs|sync_file_range|ftruncate|rename|renameat|renameat2)\(' "$1"
}

# index_sizes: the sizes of every index file of both sides.
index_sizes() {
	find a b "$TRASH/home" "$TRASH/remote-home" -name '*.index' \
	    -type f -printf '%p %s\n' 2>/dev/null | sort
}

test_expect_success 'setup: a store of two folders copied over ssh' '
	start_sshd &&
	mk_folder a inbox 40 &&
	mk_folder a/.Lists lists 30 &&
	"$MSYNC" --backup -e "$SSH_CMD" a msynctest-i:"$TRASH/b" &&
	test "$(ls b/cur | wc -l)" = 40 &&
	test "$(ls b/.Lists/cur | wc -l)" = 30 &&
	"$MSYNC" --backup -e "$SSH_CMD" a msynctest-i:"$TRASH/b"
'

test_expect_success 'a run with nothing changed makes nothing durable' '
	traced trace1 &&
	! durable_calls trace1
'

# Stamped now, cur/ is newer than any token: a rescan, past the racy
# window of 2 s (index.c) so that the token it takes is final.
test_expect_success 'cur/ touched on both sides: rescans, new tokens, still nothing durable' '
	touch a/cur a/.Lists/cur b/cur b/.Lists/cur &&
	sleep 2.1 &&
	index_sizes >sizes.before &&
	traced trace2 --stats 2>stats2 &&
	! durable_calls trace2 &&
	index_sizes >sizes.after &&
	! test_cmp sizes.before sizes.after &&
	grep -q "changes on B: 0 copied" stats2
'

test_expect_success 'the tokens taken: the next run rescans nothing and appends nothing' '
	traced trace3 &&
	! durable_calls trace3 &&
	index_sizes >sizes.again &&
	test_cmp sizes.after sizes.again
'

test_expect_success 'the lock file holds one line naming the last holder' '
	printf "pid 1234567890 on a-host-whose-name-is-much-longer-than-ours\n" \
	    >b/msync.lock &&
	"$MSYNC" --backup -e "$SSH_CMD" a msynctest-i:"$TRASH/b" &&
	test "$(wc -l <b/msync.lock)" = 1 &&
	grep -Eqx "pid [0-9]+ on $(hostname)" b/msync.lock
'

test_expect_success 'a shorter old line is written over, not cut first' '
	printf "pid 1 on h\n" >b/msync.lock &&
	traced trace4 &&
	! durable_calls trace4 &&
	test "$(wc -l <b/msync.lock)" = 1 &&
	grep -Eqx "pid [0-9]+ on $(hostname)" b/msync.lock
'

test_done
