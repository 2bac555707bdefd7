#!/usr/bin/env bash
test_description='randomized model test: random changes on both sides, checked against a model of docs/SYNC.md'
. "$(dirname "$0")/lib.sh"

# Each mode (two-way, --backup, --one-way) gets its own pair of Maildir++
# trees and its own sequence of rounds.  A round makes a handful of random
# changes on both sides (new mail, duplicates, flags, expunges, moves,
# folders created, renamed and deleted), runs msync --force-deletes, and
# compares both trees with what model.py predicts from its own reading of
# docs/SYNC.md.  A second run right after must change nothing.
#
# MSYNC_TEST_SEED picks the random sequence (printed; a failure replays
# with the same seed), MSYNC_TEST_MODEL_ROUNDS the rounds per mode (40),
# and on a failure the output shows the round's operations and the
# difference, side by side as "folder  cN  flags" lines (cN: content
# number N of model.py).

test_lazy_prereq PYTHON3 'python3 -c "import json, hashlib, random"'
test_require_prereq PYTHON3

seed=${MSYNC_TEST_SEED:-4000}
rounds=${MSYNC_TEST_MODEL_ROUNDS:-40}
model() {
	python3 -S "$TEST_DIR/model.py" "$@"
}
say_ "# seed $seed, $rounds rounds per mode" \
    "(replay: MSYNC_TEST_SEED=$seed bash $0 -v)"

# run_msync MODE: one sync of $TRASH/MODE/a and b.
run_msync() {
	local opt=
	case $1 in
	backup) opt=--backup ;;
	oneway) opt=--one-way ;;
	esac
	"$MSYNC" $opt --force-deletes "$TRASH/$1/a" "$TRASH/$1/b"
}

# files DIR: every file name under DIR but msync's own.
files() {
	(cd "$1" && find . -type f ! -name 'msync.*' | LC_ALL=C sort)
}

# second_run_is_a_noop MODE
second_run_is_a_noop() {
	files "$1/a" >"$1/before.a" && files "$1/b" >"$1/before.b" &&
	run_msync "$1" &&
	files "$1/a" >"$1/after.a" && files "$1/b" >"$1/after.b" &&
	test_cmp "$1/before.a" "$1/after.a" &&
	test_cmp "$1/before.b" "$1/after.b"
}

# Bugs that the random rounds found, all fixed since; these are their
# minimal reproductions, kept as regression tests; the random rounds run
# into them too.

# SYNC.md, one-way: "S = SRC, and SRC has no new messages: the mailbox
# stays deleted on DST."  The plan keeps the pair in the base; the brain
# used to rescan it on DST too, which does not have it ("cannot rescan
# 'X'", exit 1, on every later run).
test_expect_success 'was a bug: --one-way, a mailbox deleted on DST stays deleted' '
	make_folder ow/src X && deliver ow/src/.X "" S >/dev/null &&
	"$MSYNC" --one-way ow/src ow/dst &&
	rm -r ow/dst/.X &&
	"$MSYNC" --one-way ow/src ow/dst &&
	test_path_is_missing ow/dst/.X &&
	"$MSYNC" --one-way ow/src ow/dst
'

# SYNC.md: "A rename is therefore replayed as a rename", and for one-way
# "SRC's name wins".  SRC is read-only; its cached indexes used to be
# keyed by the folder's path, so a folder renamed on SRC was a new
# mailbox and DST got a full copy, including the message DST had
# deleted.  They are keyed by the folder directory's identity now.
test_expect_success 'was a bug: --one-way replays a rename on SRC as a rename' '
	make_folder ren/src X &&
	deliver ren/src/.X "" S >/dev/null && deliver ren/src/.X "" F >/dev/null &&
	"$MSYNC" --one-way ren/src ren/dst &&
	rm ren/dst/.X/cur/*F &&
	mv ren/src/.X ren/src/.Y &&
	"$MSYNC" --one-way ren/src ren/dst &&
	test_path_is_missing ren/dst/.X &&
	test "$(count_msgs ren/dst/.Y)" = 1
'

# Two-way: A renames P to Q while B makes a folder P/N with a message.
# B's plan: create P/N on A, rename P to Q on B, copy P/N's message to A.
# The Maildir++ rename of P on B used to move B's .P.N to .Q.N too, so
# the copy could not read it (exit 1).  A rename moves the folder alone.
test_expect_success 'was a bug: a folder made under a folder the other side renames' '
	make_folder nest/a P && deliver nest/a/.P "" S >/dev/null &&
	make_maildir nest/b &&
	"$MSYNC" nest/a nest/b &&
	mv nest/a/.P nest/a/.Q &&
	make_folder nest/b P/N && deliver nest/b/.P.N "" F >/dev/null &&
	"$MSYNC" nest/a nest/b &&
	test_cmp_trees nest/a nest/b
'

# The same, when A renames P alone (mv .P .Q; Maildir++ keeps .P.C as
# the separate mailbox P/C): B used to rename P/C to Q/C with P, so the
# sides differed and the next run renamed A's P/C too.
test_expect_success 'was a bug: a rename of a folder alone no longer renames its children on the other side' '
	make_folder alone/a P/C && deliver alone/a/.P.C "" S >/dev/null &&
	make_folder alone/a P && make_maildir alone/b &&
	"$MSYNC" alone/a alone/b &&
	mv alone/a/.P alone/a/.Q &&
	"$MSYNC" alone/a alone/b &&
	test_path_is_dir alone/b/.P.C/cur &&
	test_cmp_trees alone/a alone/b
'

for mode in twoway backup oneway; do
	failures=$test_failure
	test_expect_success "$mode: set-up and first sync (a union)" '
		mkdir "$mode" &&
		model init "$mode/state" --mode "$mode" --seed "$seed" \
		    --dir "$mode" &&
		run_msync "$mode" &&
		model check "$mode/state" &&
		model ops --none "$mode/state" &&
		run_msync "$mode" &&
		model check "$mode/state" &&
		second_run_is_a_noop "$mode"
	'
	r=1
	while [ "$r" -le "$rounds" ] && [ "$test_failure" = "$failures" ]; do
		test_expect_success "$mode: round $r" '
			model ops "$mode/state" &&
			run_msync "$mode" &&
			model check "$mode/state" &&
			second_run_is_a_noop "$mode"
		'
		r=$((r + 1))
	done
	if [ "$test_failure" != "$failures" ]; then
		say_ "# $mode: stopped after the first failure (seed $seed)"
	else
		model summary "$mode/state" | sed "s/^/# /" >&7
	fi
done

test_done
