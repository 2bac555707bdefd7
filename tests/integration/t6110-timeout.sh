#!/usr/bin/env bash
test_description='--timeout: a peer that goes quiet ends the run with 75 and
both stores intact; a slow but alive peer keeps it going (issue 11, part 2)'
. "$(dirname "$0")/lib.sh"

# The remote side runs through corrupt_relay.py (an --rsh stand-in that
# runs "msync --server" here): it can stop forwarding one direction while
# keeping the connection open (RELAY_STOP), the quiet network of a
# laptop whose Wi-Fi went away.  A server wrapper records its pid so the
# test can SIGSTOP it, and another runs it under strace with every
# fsync/fdatasync/syncfs delayed by 3 s: a slow disk on a live side.
# There are no wall-clock limits: every wait is a bounded loop of short
# sleeps, generous enough for a loaded machine.

test_lazy_prereq PYTHON3 'python3 -c "import mailbox"'
test_lazy_prereq STRACE_INJECT '
	strace -qq -o /dev/null -e trace=getpid \
	    -e inject=getpid:delay_enter=1000 true'
test_require_prereq PYTHON3 MSYNC

RELAY="python3 $TEST_DIR/corrupt_relay.py"

# bg_msync OUT ARGS...: runs msync in the background, stderr to OUT,
# and its exit status to OUT.rc when it ends.
bg_msync() {
	local out=$1
	shift
	rm -f "$out.rc"
	( "$MSYNC" "$@" 2>"$out"; echo $? >"$out.rc" ) &
}

# wait_for FILE [TRIES]: until FILE exists (0.2 s per try, 600 by default).
wait_for() {
	local i=0
	while [ ! -e "$1" ]; do
		i=$((i + 1))
		[ $i -le "${2:-600}" ] || return 1
		sleep 0.2
	done
}

# wait_grep PATTERN FILE: until FILE holds PATTERN (bounded like wait_for).
wait_grep() {
	local i=0
	until grep -q "$1" "$2" 2>/dev/null; do
		i=$((i + 1))
		[ $i -le 600 ] || return 1
		sleep 0.2
	done
}

# msgs_subset SUB ALL: every message of the Maildir++ SUB is one of ALL's
# (by content), read with Python's mailbox.
msgs_subset() {
	python3 - "$1" "$2" <<-\EOF
	import hashlib, mailbox, sys
	def sums(root):
	    md = mailbox.Maildir(root, factory=None, create=False)
	    boxes = [md] + [md.get_folder(f) for f in md.list_folders()]
	    return {hashlib.sha256(b.get_bytes(k)).hexdigest()
	            for b in boxes for k in b.keys()}
	extra = sums(sys.argv[1]) - sums(sys.argv[2])
	sys.exit(1 if extra else 0)
	EOF
}

test_expect_success 'setup: a store of about 1.5 MB, wrappers' '
	make_folder src Work &&
	for i in $(seq 1 12); do
		{ gen_message "$i" big && head -c 90000 /dev/urandom | base64; } |
		    deliver src - >/dev/null || return 1
	done &&
	for i in 1 2 3; do deliver "$(folder_path src Work)" >/dev/null || return 1; done &&
	maildir_digest --names src >src.digest &&
	cat >srv-pid <<-EOF &&
	#!/bin/sh
	echo \$\$ >"$TRASH/server.pid"
	exec "$MSYNC" "\$@"
	EOF
	chmod +x srv-pid &&
	cat >srv-slowdisk <<-EOF &&
	#!/bin/sh
	exec strace -qq -f -o /dev/null -e trace=fsync,fdatasync,syncfs \
	    -e inject=fsync:delay_enter=3000000 \
	    -e inject=fdatasync:delay_enter=3000000 \
	    -e inject=syncfs:delay_enter=3000000 "$MSYNC" "\$@"
	EOF
	chmod +x srv-slowdisk
'

test_expect_success 'a healthy run with a short --timeout completes' '
	"$MSYNC" -e "$RELAY" --remote-msync "$MSYNC" --timeout 2 \
	    src relayhost:"$TRASH/healthy" &&
	maildir_digest --names healthy >now && test_cmp src.digest now
'

test_expect_success 'bad --timeout values are usage errors' '
	test_expect_code 64 "$MSYNC" --timeout -1 src dst 2>err &&
	grep "invalid --timeout" err &&
	test_expect_code 64 "$MSYNC" --timeout 5x src dst 2>err &&
	test_path_is_missing dst
'

# down: a pull whose data stops coming; up: a push whose data stops
# arriving (the relay still takes it, so A keeps sending until it waits).
for way in down up; do
	case $way in
	down) from=relayhost:$TRASH/src to=quiet-$way ;;
	up) from=src to=relayhost:$TRASH/quiet-$way ;;
	esac
	test_expect_success "the link stops carrying $way (connection open): 75, stores intact" '
		rm -rf "quiet-$way" &&
		# Past the handshake and the first records: mid-copy.
		RELAY_WAY=$way RELAY_STOP=1 RELAY_OFF=4000 \
		    bg_msync "err-$way" -e "$RELAY" --remote-msync "$MSYNC" \
		    --timeout 2 --no-compress "$from" "$to" &&
		wait_for "err-$way.rc" &&
		cat "err-$way" &&
		test "$(cat "err-$way.rc")" = 75 &&
		if test $way = down; then
			grep "B (the other side) sent nothing for [0-9]* s: it went quiet" "err-$way"
		else
			# A waits on B, which waits on A: A says B went quiet;
			# B (whose stderr reaches us) says the same of A.
			grep "went quiet" "err-$way"
		fi &&
		maildir_digest --names src >now && test_cmp src.digest now &&
		msgs_subset "quiet-$way" src &&
		# A clean run finishes the copy.
		"$MSYNC" -e "$RELAY" --remote-msync "$MSYNC" "$from" "$to" &&
		maildir_digest --names "quiet-$way" >now && test_cmp src.digest now
	'
done

test_expect_success 'the remote msync stopped (SIGSTOP) mid-copy: 75, it is named' '
	rm -f server.pid &&
	bg_msync err-stop -e "$RELAY" --remote-msync "$TRASH/srv-pid" \
	    --timeout 2 --bwlimit 150K --no-compress src relayhost:"$TRASH/stopped" &&
	wait_for server.pid &&
	read -r spid <server.pid &&
	# Let the copy start (it takes over 10 s at this rate), then
	# freeze the server.
	sleep 1 &&
	kill -STOP "$spid" &&
	wait_grep "went quiet" err-stop &&
	kill -CONT "$spid" &&
	wait_for err-stop.rc &&
	cat err-stop &&
	test "$(cat err-stop.rc)" = 75 &&
	grep "B (the other side) sent nothing for [0-9]* s: it went quiet" err-stop &&
	maildir_digest --names src >now && test_cmp src.digest now &&
	msgs_subset stopped src &&
	"$MSYNC" -e "$RELAY" --remote-msync "$MSYNC" src relayhost:"$TRASH/stopped" &&
	maildir_digest --names stopped >now && test_cmp src.digest now
'

test_expect_success STRACE_INJECT 'a live server on a slow disk (3 s per fsync) keeps a 1 s --timeout run going' '
	"$MSYNC" -v -e "$RELAY" --remote-msync "$TRASH/srv-slowdisk" \
	    --timeout 1 src relayhost:"$TRASH/slow" 2>err-slow &&
	cat err-slow &&
	! grep "went quiet" err-slow &&
	maildir_digest --names slow >now && test_cmp src.digest now
'

test_expect_success '--timeout 0: no timeout, no keepalive thread needed' '
	"$MSYNC" -e "$RELAY" --remote-msync "$MSYNC" --timeout 0 \
	    src relayhost:"$TRASH/notimeout" &&
	maildir_digest --names notimeout >now && test_cmp src.digest now
'

test_done
