#!/usr/bin/env bash
test_description='a folder missing when listed and back when the plan is
applied (or a message file gone in between) ends that mailbox'"'"'s sync
with exit 2, copies nothing twice, and a re-run converges'
. "$(dirname "$0")/lib.sh"

test_require_prereq PERL

# MSYNC_TEST_AFTER_PLAN_B (see t1180) runs in B's brain after both sides
# planned and before B changes anything: the hook puts the folder back
# exactly then.
hook() {
	printf '%s\n' "set -e" "cd '$TRASH'" "$@" >hook.sh
}
run_hooked() {
	env MSYNC_TEST_AFTER_PLAN_B="bash '$TRASH/hook.sh'" "$@"
}

# dups ROOT: content+folder pairs held more than once (none expected).
dups() {
	maildir_digest "$1" | cut -d" " -f1,3 | LC_ALL=C sort | uniq -d
}

# pair MODE: a and b synced in MODE with Work (4 messages) on both.
pair() {
	local opt=
	[ "$1" = backup ] && opt=--backup
	rm -rf a b away "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	make_maildir a && make_folder a Work &&
	for i in 1 2 3 4; do deliver a/.Work "" S >/dev/null || return 1; done &&
	deliver a "" >/dev/null &&
	"$MSYNC" $opt a b && test_cmp_trees a b
}

for mode in backup tw; do
	opt=
	[ $mode = backup ] && opt=--backup
	test_expect_success "$mode: Work gone from b when listed, back when applied: exit 2, no duplicate" "
		pair $mode &&
		deliver a/.Work '' F >/dev/null &&
		mv b/.Work away &&
		hook 'mv away b/.Work' &&
		test_expect_code 2 run_hooked \"\$MSYNC\" $opt a b 2>err &&
		grep -q \"mailbox 'Work' appeared during the run\" err &&
		test -z \"\$(dups b)\" &&
		test \"\$(count_msgs b/.Work)\" = 4 &&
		\"\$MSYNC\" $opt a b 2>err2 && test_cmp_trees a b &&
		test -z \"\$(dups b)\" && test -z \"\$(dups a)\" &&
		\"\$MSYNC\" $opt --stats a b 2>stats &&
		grep -q 'on B: 0 copied' stats
	"
done

test_expect_success 'the folder swapped out and back on every run: never a duplicate' '
	pair backup &&
	for round in 1 2 3; do
		deliver a/.Work "" >/dev/null &&
		mv b/.Work away && hook "mv away b/.Work" &&
		{ run_hooked "$MSYNC" --backup a b 2>/dev/null; rc=$?; } &&
		test "$rc" = 2 && test -z "$(dups b)" || return 1
	done &&
	"$MSYNC" --backup a b && test_cmp_trees a b && test -z "$(dups b)"
'

test_expect_success 'a message file gone between listing and copying: exit 2, then converges' '
	pair tw &&
	f=$(deliver a/.Work "" D) &&
	hook "rm -f $f" &&
	# A sends it, so A runs the hook, before its transfer.
	test_expect_code 2 env MSYNC_TEST_AFTER_PLAN="bash $TRASH/hook.sh" \
	    "$MSYNC" a b 2>err &&
	grep -q "no such mailbox or message" err &&
	"$MSYNC" a b && test_cmp_trees a b && test -z "$(dups b)"
'

test_expect_success 'a target folder renamed away between listing and copying: exit 2, then converges' '
	pair tw &&
	deliver a/.Work "" >/dev/null &&
	hook "mv b/.Work b/.Moved" &&
	{ run_hooked "$MSYNC" a b 2>err; rc=$?; } &&
	test "$rc" = 2 &&
	"$MSYNC" a b 2>err2; "$MSYNC" a b && test_cmp_trees a b &&
	test -z "$(dups a)" && test -z "$(dups b)"
'

test_done
