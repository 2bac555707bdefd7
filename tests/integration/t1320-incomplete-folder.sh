#!/usr/bin/env bash
test_description='a folder caught without cur/ keeps its index and identity; the run stops before changing anything'
. "$(dirname "$0")/lib.sh"

# Issue 11 part 4: a moment without cur/ (a racer, a half-finished
# restore, a user's mv) must not make msync take the folder for a new
# one and write a fresh index (new UIDVALIDITY) over the old: the next
# run would then be a union and bring deleted mail back.  The folder is
# not synced: the run stops with a warning before anything is planned or
# changed (exit 2), and its msync.index stays byte-for-byte as it was.

uidv() { sed -n 's/^uidvalidity //p' "$1"; }


test_expect_success 'setup: a synced pair with a Work folder' '
	make_folder a Work &&
	for i in 1 2 3; do deliver a "" S >/dev/null || return 1; done &&
	for i in 1 2 3 4; do deliver a/.Work "" >/dev/null || return 1; done &&
	"$MSYNC" a b && test_cmp_trees a b &&
	cp a/.Work/msync.index work.index && cp b/.Work/msync.index bwork.index
'

test_expect_success 'A lost cur/ for a moment: skipped with a warning, index kept, nothing lost' '
	mv a/.Work/cur a/Work-cur.away &&
	rm "$(ls b/.Work/new/* b/.Work/cur/* 2>/dev/null | sort | head -n 1)" &&
	deliver b "" >/dev/null &&
	test_expect_code 2 "$MSYNC" a b 2>err1 && cat err1 &&
	grep -q "has an index but no cur/ directory" err1 &&
	cmp a/.Work/msync.index work.index &&
	test "$(count_msgs b/.Work)" = 3
'

test_expect_success 'cur/ back: the base still holds, the deletion is replayed, nothing comes back' '
	mv a/Work-cur.away a/.Work/cur &&
	"$MSYNC" a b 2>err2 && cat err2 &&
	! grep -E "merging without deletions|rebuilding" err2 &&
	test "$(uidv a/.Work/msync.index)" = "$(uidv work.index)" &&
	test "$(count_msgs a/.Work)" = 3 && test "$(count_msgs b/.Work)" = 3 &&
	test_cmp_trees a b
'

test_expect_success 'cur/ replaced by a symlink: skipped, the link and its target untouched' '
	mkdir -p outside/cur outside/new outside/tmp &&
	echo "Subject: outside" >outside/cur/1.outside.host:2,S &&
	cp a/.Work/msync.index work.index &&
	mv a/.Work/cur a/Work-cur.away && ln -s "$TRASH/outside/cur" a/.Work/cur &&
	rm "$(ls b/.Work/cur/* | sort | head -n 1)" &&
	test_expect_code 2 "$MSYNC" a b 2>err3 && cat err3 &&
	grep -q "changing under us" err3 &&
	cmp a/.Work/msync.index work.index &&
	test "$(ls outside/cur)" = "1.outside.host:2,S" &&
	! grep -rq "Subject: outside" b &&
	rm a/.Work/cur && mv a/Work-cur.away a/.Work/cur &&
	"$MSYNC" a b 2>err4 && ! grep -E "merging without deletions" err4 &&
	test "$(count_msgs a/.Work)" = 2 && test_cmp_trees a b
'

# On B (the server brain) the same stop reaches the client with the
# server's error code in an ERROR record: exit 2 as on A ("run again"),
# not 75 (a lost connection).
test_expect_success 'B without cur/ (the other side): the run stops, B keeps its index' '
	cp b/.Work/msync.index bwork.index &&
	mv b/.Work/cur b/Work-cur.away &&
	set_flags "$(ls a/.Work/new/* a/.Work/cur/* 2>/dev/null | sort | head -n 1)" F &&
	test_expect_code 2 "$MSYNC" a b 2>err5 &&
	grep -q "has an index but no cur/ directory" err5 &&
	grep -q "store changed during the run" err5 &&
	! grep -q "connection to the peer lost" err5 &&
	cmp b/.Work/msync.index bwork.index &&
	mv b/Work-cur.away b/.Work/cur &&
	"$MSYNC" a b 2>err6 && ! grep -E "merging without deletions" err6 &&
	test_cmp_trees a b && maildir_digest b | grep -q "  F$"
'

# The same for new/: a Maildir may have no new/, but one whose index
# lists messages there lost it for a moment (a racer caught it between
# two renames: t6200), and those messages must not look deleted.
test_expect_success 'A lost new/ while its index lists messages there: exit 2, nothing expunged on B' '
	deliver a/.Work "" >/dev/null && deliver a/.Work "" >/dev/null &&
	"$MSYNC" a b && test_cmp_trees a b &&
	"$MSYNC" --backup a c2 && test_cmp_trees a c2 &&
	n=$(ls a/.Work/new | wc -l) && test "$n" -ge 2 &&
	nb=$(count_msgs b/.Work) &&
	mv a/.Work/new a/Work-new.away &&
	test_expect_code 2 "$MSYNC" a b 2>err9 && cat err9 &&
	grep -q "new. is missing, but its index lists $n messages there" err9 &&
	test "$(count_msgs b/.Work)" = "$nb" &&
	test_expect_code 2 "$MSYNC" --backup --force-deletes a c2 2>err10 &&
	test "$(count_msgs c2/.Work)" = "$nb" &&
	mv a/Work-new.away a/.Work/new &&
	"$MSYNC" a b 2>err11 && ! grep -E "merging without deletions|expunge" err11 &&
	test "$(count_msgs b/.Work)" = "$nb" && test_cmp_trees a b
'

test_expect_success 'new/ removed on purpose and made again empty: the removal is replayed' '
	rm -r a/.Work/new && mkdir a/.Work/new &&
	"$MSYNC" a b 2>err12 && cat err12 &&
	test "$(count_msgs b/.Work)" = "$(count_msgs a/.Work)" &&
	test_cmp_trees a b
'

# store_create_mailbox over a folder that has its index but no cur/ is
# refused (index kept): tests/unit/test_maildir.c, test_incomplete_folder_kept.

test_expect_success 'a read-only SRC (--backup) with a folder without cur/: skipped, DST keeps the mailbox' '
	"$MSYNC" --backup a c && test_cmp_trees a c &&
	n=$(count_msgs c/.Work) && test "$n" -gt 0 &&
	mv a/.Work/cur a/Work-cur.away &&
	test_expect_code 2 "$MSYNC" --backup --force-deletes a c 2>err8 && cat err8 &&
	test "$(count_msgs c/.Work)" = "$n" &&
	mv a/Work-cur.away a/.Work/cur && "$MSYNC" --backup a c && test_cmp_trees a c
'

test_done
