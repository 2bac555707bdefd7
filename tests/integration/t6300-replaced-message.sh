#!/usr/bin/env bash
test_description='a message file replaced between listing and copying
ends the run with exit 2 (a store changed: run again), not 65; other
bytes under an unchanged size and mtime (bit rot) stay bad data (65)
with the sync state not written; a re-run converges with no duplicate'
. "$(dirname "$0")/lib.sh"

# Issue 11: "a message file gone or replaced between listing and
# copying" is a change during the run.  The sender compares the file it
# opens with the index entry it listed (size, mtime; the bytes only when
# those differ) and sends MSG_SKIP for a replaced one.  The hooks (see
# t1180, t1220) run in A's brain (MSYNC_TEST_AFTER_PLAN) or B's
# (MSYNC_TEST_AFTER_PLAN_B) after both planned, before any transfer.

hook() {
	printf '%s\n' "set -e" "cd '$TRASH'" "$@" >hook.sh
}

# dups ROOT: content+folder pairs held more than once (none expected).
dups() {
	maildir_digest "$1" | cut -d" " -f1,3 | LC_ALL=C sort | uniq -d
}

# pair [OPT]: a and b synced with Work (3 messages) on both.
pair() {
	rm -rf a b "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	make_maildir a && make_folder a Work &&
	for i in 1 2 3; do deliver a/.Work "" S >/dev/null || return 1; done &&
	"$MSYNC" "$@" a b && test_cmp_trees a b
}

# has ROOT TEXT: some message under ROOT holds TEXT.
has() {
	grep -rqF -- "$2" "$1"/cur "$1"/new "$1"/.*/cur "$1"/.*/new 2>/dev/null
}

state_sum() {
	find "$XDG_STATE_HOME/msync" -type f -exec cat {} + | cksum
}

test_expect_success 'replaced by other bytes of another size (A sends): exit 2, then converges' '
	pair &&
	f=$(deliver a/.Work) && echo "$f" >f &&
	{ gen_message 901 replacement && echo "a longer body than before"; } >new.eml &&
	hook "cp new.eml $f.tmp && mv $f.tmp $f" &&
	test_expect_code 2 env MSYNC_TEST_AFTER_PLAN="bash $TRASH/hook.sh" \
	    "$MSYNC" a b 2>err && cat err &&
	grep -q "was replaced since it was listed" err &&
	! grep -q "does not match its GUID" err &&
	test "$(count_msgs b/.Work)" = 3 &&
	"$MSYNC" a b 2>err2 && cat err2 && test_cmp_trees a b &&
	has b/.Work "a longer body than before" &&
	test "$(count_msgs b/.Work)" = 4 && test -z "$(dups b)"
'

test_expect_success 'same size, other bytes, a newer mtime (A sends): exit 2, then converges' '
	pair &&
	f=$(deliver a/.Work) &&
	sed "s/^Subject: .*/Subject: XXXXXXXXXXXXXXXXXXXXXX/" "$f" | head -c "$(stat -c %s "$f")" >same.eml &&
	test "$(stat -c %s same.eml)" = "$(stat -c %s "$f")" &&
	! cmp -s same.eml "$f" &&
	hook "cat same.eml >$f" "touch -d @\$((\$(stat -c %Y $f) + 100)) $f" &&
	test_expect_code 2 env MSYNC_TEST_AFTER_PLAN="bash $TRASH/hook.sh" \
	    "$MSYNC" a b 2>err && cat err &&
	grep -q "was replaced since it was listed" err &&
	"$MSYNC" a b && test_cmp_trees a b &&
	has b/.Work XXXXXXXXXXXXXXXXXXXXXX && test -z "$(dups b)"
'

test_expect_success 'only touched (same bytes, new mtime): copied, exit 0' '
	pair &&
	f=$(deliver a/.Work) &&
	hook "touch -d @\$((\$(stat -c %Y $f) + 100)) $f" &&
	env MSYNC_TEST_AFTER_PLAN="bash $TRASH/hook.sh" "$MSYNC" a b 2>err &&
	! grep -q "replaced" err &&
	test_cmp_trees a b && test "$(count_msgs b/.Work)" = 4
'

test_expect_success 'replaced on B, the server side, which sends it: exit 2, then converges' '
	pair &&
	f=$(deliver b/.Work) &&
	{ gen_message 902 other && echo "B replaced this one"; } >newb.eml &&
	hook "cp newb.eml $f.tmp && mv $f.tmp $f" &&
	test_expect_code 2 env MSYNC_TEST_AFTER_PLAN_B="bash $TRASH/hook.sh" \
	    "$MSYNC" a b 2>err && cat err &&
	grep -q "was replaced since it was listed" err &&
	! has a/.Work "B replaced this one" &&
	"$MSYNC" a b && test_cmp_trees a b &&
	has a/.Work "B replaced this one" && test -z "$(dups a)"
'

test_expect_success '--backup from a read-only SRC (cached index): exit 2, then converges' '
	pair --backup &&
	f=$(deliver a/.Work) &&
	{ gen_message 903 bk && echo "replaced before the backup copied it"; } >newc.eml &&
	hook "cp newc.eml $f.tmp && mv $f.tmp $f" &&
	test_expect_code 2 env MSYNC_TEST_AFTER_PLAN="bash $TRASH/hook.sh" \
	    "$MSYNC" --backup a b 2>err && cat err &&
	grep -q "was replaced since it was listed" err &&
	"$MSYNC" --backup a b && test_cmp_trees a b &&
	has b/.Work "replaced before the backup copied it" &&
	test -z "$(dups b)"
'

test_expect_success 'other bytes under the same size and mtime (bit rot): 65, the state not written' '
	pair &&
	f=$(deliver a/.Work) &&
	g=$(deliver a) &&
	cp -p "$f" orig.eml &&
	sed "s/^Subject: .*/Subject: YYYYYYYYYYYYYYYYYYYYYY/" "$f" | head -c "$(stat -c %s "$f")" >rot.eml &&
	hook "cat rot.eml >$f" "touch -r orig.eml $f" &&
	before=$(state_sum) &&
	test_expect_code 65 env MSYNC_TEST_AFTER_PLAN="bash $TRASH/hook.sh" \
	    "$MSYNC" a b 2>err && cat err &&
	grep -q "does not match its GUID" err &&
	grep -q "sync state is not updated" err &&
	test "$(state_sum)" = "$before" &&
	! has b YYYYYYYYYYYYYYYYYYYYYY &&
	# The message from INBOX arrived all the same; the re-run pairs it.
	test "$(count_msgs b)" = 1 &&
	# The index still holds the old GUID (nothing says the file
	# changed): every run says so, until the index is rebuilt.
	test_expect_code 65 "$MSYNC" a b 2>err2 &&
	test "$(state_sum)" = "$before" && test "$(count_msgs b)" = 1 &&
	rm a/.Work/msync.index &&
	"$MSYNC" a b && test_cmp_trees a b && test -z "$(dups b)" &&
	has b YYYYYYYYYYYYYYYYYYYYYY
'

test_done
