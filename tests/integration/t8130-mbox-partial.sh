#!/usr/bin/env bash
test_description='mbox: a run killed in the middle of an append (a partial last message) is repaired by the next run: the unfinished part is cut off (a copy kept in the cache), a delivery made after the crash is kept, nothing is lost or duplicated; killed at several points inside a write, and by a real SIGKILL from outside'
. "$(dirname "$0")/lib.sh"

test_require_prereq PERL
. "$TEST_DIR/lib-mbox-partial.sh"

# check_end EXPECTED: both stores hold exactly EXPECTED's messages, each
# "From " line in the mbox starts one of them, and no append journal is
# left.
check_end() {
	maildir_digest --names a >got.a && digest_b >got.b &&
	test_cmp "$1" got.a && test_cmp "$1" got.b &&
	test "$(grep -c "^From " b/INBOX)" = "$(grep -c "^INBOX " "$1")" &&
	test "$(grep -c "^From " b/Work)" = "$(grep -c "^Work " "$1")" &&
	! ls home/.cache/msync/mbox/*.append 2>/dev/null
}

test_expect_success 'setup: messages and the expected result' '
	mkdir msgs && SRCMSG=$PWD/msgs &&
	for i in $(seq 1 51); do gen_message $i partial >msgs/m$i; done &&
	cp msgs/m1 late && sed -i "s/partial message 1/late delivery/" late &&
	setup_pair && "$MSYNC" a mbox:b && maildir_digest --names a >expected &&
	digest_b >expected.b && test_cmp expected expected.b &&
	test_line_count = 51 expected
'
SRCMSG=$TRASH/msgs

# Points inside the first write of appended data: its first byte, inside
# the first "From " line, inside a header, inside a body, the last byte
# missing, and the whole write done but not fsynced.
for k in 1 20 80 1000 10000 -1; do
	test_expect_success "killed inside the write after $k bytes, then resumed" '
		setup_pair &&
		size0=$(cat b/INBOX b/Work | wc -c) &&
		test_might_fail env MSYNC_TEST_MBOX_KILL=1:'"$k"' \
		    "$MSYNC" a mbox:b >/dev/null 2>&1 &&
		test "$(cat b/INBOX b/Work | wc -c)" -gt "$size0" &&
		ls home/.cache/msync/mbox/*.append &&
		"$MSYNC" a mbox:b 2>err &&
		grep "died appending" err && check_end expected &&
		ls home/.cache/msync/mbox/*.unfinished-* &&
		"$MSYNC" a mbox:b 2>err && ! grep "died appending" err
	'
done

test_expect_success 'the second write (the other folder) cut short: the first kept, the second repaired' '
	setup_pair &&
	test_might_fail env MSYNC_TEST_MBOX_KILL=2:100 \
	    "$MSYNC" a mbox:b >/dev/null 2>&1 &&
	"$MSYNC" a mbox:b 2>err && grep "died appending" err &&
	check_end expected
'

test_expect_success 'a delivery after the crash and before the next run is kept' '
	setup_pair && cp b/INBOX inbox.before &&
	test_might_fail env MSYNC_TEST_MBOX_KILL=1:-1 \
	    "$MSYNC" a mbox:b >/dev/null 2>&1 &&
	# The delivery goes into the file the killed run was appending to.
	if cmp -s b/INBOX inbox.before; then f=Work; else f=INBOX; fi &&
	mbox_append b/$f late &&
	"$MSYNC" a mbox:b 2>err &&
	grep "what was delivered after it is kept" err &&
	maildir_digest --names a >got.a && digest_b >got.b &&
	test_cmp got.a got.b && test_line_count = 52 got.a &&
	grep -c "late delivery" b/$f >n && test "$(cat n)" = 1 &&
	test "$(grep -c "^From " b/$f)" = "$(grep -c "^$f " got.a)"
'

test_expect_success 'a read-only run (the mbox as a backup source) does not repair, says so and leaves the mailbox out' '
	setup_pair &&
	test_might_fail env MSYNC_TEST_MBOX_KILL=1:500 \
	    "$MSYNC" a mbox:b >/dev/null 2>&1 &&
	cp b/INBOX inbox.before &&
	test_expect_code 1 "$MSYNC" --backup mbox:b c 2>err &&
	grep "did not finish" err && cmp b/INBOX inbox.before &&
	test_path_is_missing c/cur/*partial* &&
	"$MSYNC" a mbox:b 2>err && grep "died appending" err &&
	check_end expected
'

# A real SIGKILL from outside, as soon as the mbox has grown at all, by
# 1 MiB, by 2 MiB: many big messages, so that an append takes several
# writes.  Where the kill lands varies; every outcome must be whole.
test_expect_success 'setup: 300 messages of 12 KiB' '
	mkdir big && for i in $(seq 1 300); do
		{ gen_message $i big && for j in $(seq 1 150); do
			echo "line $j of big message $i: padding padding padding padding"
		  done; } >big/m$i || return 1
	done
'
for mib in 0 1 2; do
	test_expect_success "SIGKILL once the mbox grew by more than $mib MiB, then resumed" '
		rm -rf a b home/.local/state home/.cache &&
		make_maildir a && deliver a "$SRCMSG/m1" S >/dev/null &&
		"$MSYNC" a mbox:b >/dev/null 2>&1 &&
		for i in $(seq 1 300); do deliver a big/m$i >/dev/null; done &&
		size0=$(stat -c %s b/INBOX) &&
		{ "$MSYNC" a mbox:b >/dev/null 2>&1 & } && pid=$! &&
		i=0 && while [ $i -lt 100000 ] && kill -0 $pid 2>/dev/null &&
		    [ "$(stat -c %s b/INBOX)" -le $((size0 + '"$mib"' * 1048576)) ]; do
			i=$((i + 1))
		done &&
		pkill -KILL -P $pid; kill -KILL $pid; wait $pid;
		"$MSYNC" a mbox:b 2>err &&
		maildir_digest --names a >got.a && digest_b >got.b &&
		test_cmp got.a got.b && test_line_count = 301 got.a &&
		test "$(grep -c "^From " b/INBOX)" = 301 &&
		! ls home/.cache/msync/mbox/*.append 2>/dev/null
	'
done

test_done
