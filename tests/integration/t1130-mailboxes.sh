#!/usr/bin/env bash
test_description='mailboxes: create, rename, delete, hierarchy, names'
. "$(dirname "$0")/lib.sh"

test_expect_success 'setup' '
	make_maildir a && make_maildir b &&
	make_folder a Lists && make_folder a Lists/Debian &&
	deliver "$(folder_path a Lists/Debian)" "" S >/dev/null &&
	deliver "$(folder_path a Lists)" "" >/dev/null &&
	mkdir -p a/.Entw\&APw-rfe/cur a/.Entw\&APw-rfe/new a/.Entw\&APw-rfe/tmp &&
	deliver "a/.Entw&APw-rfe" "" D >/dev/null &&
	"$MSYNC" a b && test_cmp_trees a b &&
	test_path_is_dir "b/.Entw&APw-rfe/cur"
'

test_expect_success 'a rename on A is replayed as a rename on B' '
	mv a/.Lists.Debian a/.Lists.Ubuntu &&
	"$MSYNC" --stats a b 2>stats && test_cmp_trees a b &&
	test_path_is_missing b/.Lists.Debian &&
	grep -q "on B: 0 copied" stats
'

test_expect_success 'a mailbox deleted on B is deleted on A when A has nothing new' '
	rm -r b/.Lists.Ubuntu &&
	"$MSYNC" --force-deletes a b && test_path_is_missing a/.Lists.Ubuntu &&
	test_cmp_trees a b
'

test_expect_success 'a mailbox deleted on B but with new mail on A is kept' '
	deliver a/.Lists "" >/dev/null &&
	rm -r b/.Lists &&
	"$MSYNC" a b 2>err && test_path_is_dir b/.Lists &&
	test "$(count_msgs b/.Lists)" = 2 && test_cmp_trees a b &&
	grep -i "kept" err
'

test_expect_success 'a folder copied with its index becomes a mailbox of its own' '
	cp -a a/.Lists a/.ListsCopy &&
	"$MSYNC" a b 2>err && grep -q "new one" err &&
	test_cmp_trees a b && test "$(count_msgs b/.ListsCopy)" = 2 &&
	"$MSYNC" a b
'

test_expect_success 'the fs layout works as a destination' '
	"$MSYNC" --backup a "maildir:fsdst;layout=fs" &&
	test_path_is_dir fsdst/Lists/cur &&
	test "$(count_msgs fsdst/Lists)" = 2
'

test_done
