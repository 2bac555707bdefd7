#!/usr/bin/env bash
test_description='flag changes and expunges keep their folder open from one
message to the next (issue 10.3), yet a folder moved, replaced or with its
cur/ swapped between two of them is noticed: the later ones never reach the
directory that was moved away'
. "$(dirname "$0")/lib.sh"

# MSYNC_TEST_OP_HOOK="N:command" runs command in each Maildir store's
# process before its Nth message read, flag change or expunge.  With
# --backup only B changes flags and removes messages, and without new
# mail A reads none, so the hook runs between B's second and third
# operation in Work.
hook() {
	printf '%s\n' "set -e" "cd '$TRASH'" "$@" >hook.sh
}
run_hooked() {
	env MSYNC_TEST_OP_HOOK="3:bash '$TRASH/hook.sh'" "$@"
}

# run_swapped CMDS...: the --backup run with the hook CMDS before B's
# third operation; it may end 0 or 2 (the folder B writes to changed).
run_swapped() {
	local rc
	hook "$@" || return 1
	run_hooked "$MSYNC" --backup a b 2>err
	rc=$?
	test "$rc" = 0 || test "$rc" = 2
}

# flagged DIR: messages of Maildir DIR (cur/ and new/) with flag F.
flagged() {
	local n=0 f
	for f in "$1"/cur/* "$1"/new/*; do
		case $f in *:2,*F*) n=$((n + 1)) ;; esac
	done
	echo "$n"
}

# pair: a and b synced (--backup) with Work (6 messages, flag S).
pair() {
	rm -rf a b "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	make_maildir a && make_folder a Work &&
	for i in 1 2 3 4 5 6; do
		deliver a/.Work "" S >/dev/null || return 1
	done &&
	"$MSYNC" --backup a b && test_cmp_trees a b
}

# flag_all: flag F on every message of a's Work.
flag_all() {
	local f
	for f in a/.Work/cur/*; do set_flags "$f" SF || return 1; done
}

test_expect_success 'six flag changes in one run all reach b' '
	pair && flag_all &&
	"$MSYNC" --backup a b && test_cmp_trees a b &&
	test "$(flagged b/.Work)" = 6
'

test_expect_success 'Work replaced by a copy after two flag changes: the rest go to the copy' '
	pair && flag_all &&
	run_swapped "mv b/.Work b/.Old" "cp -a b/.Old b/.Work" &&
	test "$(flagged b/.Old)" = 2 &&
	test "$(flagged b/.Work)" = 6
'

test_expect_success 'Work moved away after two flag changes: the rest not made there, exit 2' '
	pair && flag_all &&
	hook "mv b/.Work b/.Old" &&
	test_expect_code 2 run_hooked "$MSYNC" --backup a b 2>err &&
	test "$(flagged b/.Old)" = 2 &&
	test_path_is_missing b/.Work &&
	"$MSYNC" --backup a b && test_cmp_trees a b
'

test_expect_success 'cur/ of Work swapped for a copy after two flag changes: the rest go to the copy' '
	pair && flag_all &&
	run_swapped "mv b/.Work/cur b/.Work/cur.old" \
	    "cp -a b/.Work/cur.old b/.Work/cur" &&
	test "$(ls b/.Work/cur.old | grep -c ":2,.*F")" = 2 &&
	test "$(flagged b/.Work)" = 6
'

test_expect_success 'Work replaced by a copy after two expunges: the rest removed from the copy' '
	pair && rm a/.Work/cur/* &&
	run_swapped "mv b/.Work b/.Old" "cp -a b/.Old b/.Work" &&
	test "$(count_msgs b/.Old)" = 4 &&
	test "$(count_msgs b/.Work)" = 0
'

test_expect_success 'Work of the source moved away after two messages were read: the rest not sent, exit 2' '
	pair &&
	for i in 1 2 3 4 5 6; do deliver a/.Work >/dev/null || return 1; done &&
	hook "mv a/.Work a/.Old" &&
	test_expect_code 2 run_hooked "$MSYNC" --backup a b 2>err &&
	test "$(count_msgs b/.Work)" = 8
'

# The stamp chain: B's Work, changed only by this run's own operations,
# is not read again at the end of the run; a change by another program
# between two of them, or after the last, still is (exit 2).

# pair2: pair, with Other (6 messages, flag S) after Work on both.
pair2() {
	pair && make_folder a Other &&
	for i in 1 2 3 4 5 6; do
		deliver a/.Other "" S >/dev/null || return 1
	done &&
	"$MSYNC" --backup a b && test_cmp_trees a b
}

test_expect_success 'only this run changed Work: not rescanned at the end, a re-run finds nothing to do' '
	pair && sleep 1 && flag_all &&
	"$MSYNC" --backup -vvv a b 2>err && test_cmp_trees a b &&
	grep -q "b/.Work.* changed only by this run: not rescanned" err &&
	"$MSYNC" --backup --stats a b 2>stats && test_cmp_trees a b &&
	grep -q "on B: 0 copied" stats
'

test_expect_success 'a delivery into Work between two flag changes: kept, exit 2' '
	pair && sleep 1 && flag_all &&
	hook "cp a/.Work/cur/\$(ls a/.Work/cur | head -n 1) b/.Work/tmp/x" \
	    "mv b/.Work/tmp/x b/.Work/new/2000000000.x.during.host" &&
	test_expect_code 2 run_hooked "$MSYNC" --backup a b 2>err &&
	test_path_is_file b/.Work/new/2000000000.x.during.host &&
	test "$(flagged b/.Work)" = 6
'

test_expect_success 'a message put into cur/ of Work between two flag changes: kept, exit 2' '
	pair && sleep 1 && flag_all &&
	hook "cp a/.Work/cur/\$(ls a/.Work/cur | head -n 1) b/.Work/tmp/x" \
	    "mv b/.Work/tmp/x b/.Work/cur/2000000000.x.during.host:2,S" &&
	test_expect_code 2 run_hooked "$MSYNC" --backup a b 2>err &&
	test_path_is_file b/.Work/cur/2000000000.x.during.host:2,S &&
	test "$(flagged b/.Work)" = 6
'

test_expect_success 'a delivery into Work after its last flag change (before Other): exit 2' '
	pair2 && sleep 1 && flag_all &&
	for f in a/.Other/cur/*; do set_flags "$f" SF || return 1; done &&
	hook "cp a/.Work/cur/\$(ls a/.Work/cur | head -n 1) b/.Work/tmp/x" \
	    "mv b/.Work/tmp/x b/.Work/new/2000000000.x.during.host" &&
	test_expect_code 2 env MSYNC_TEST_OP_HOOK="8:bash $TRASH/hook.sh" \
	    "$MSYNC" --backup a b 2>err &&
	test_path_is_file b/.Work/new/2000000000.x.during.host &&
	test "$(flagged b/.Other)" = 6
'

test_done
