#!/usr/bin/env bash
test_description='--one-way: SRC changes reach DST; nothing is deleted in DST'
. "$(dirname "$0")/lib.sh"

test_expect_success 'setup and first one-way run' '
	make_maildir src && make_maildir dst &&
	for i in 1 2 3; do deliver src "" >/dev/null; done &&
	deliver dst "" S >/dev/null &&
	"$MSYNC" --one-way src dst &&
	test "$(count_msgs dst)" = 4 && test "$(count_msgs src)" = 3
'

test_expect_success 'messages deleted in SRC stay in DST' '
	rm "$(ls src/new/* src/cur/* 2>/dev/null | head -n 1)" &&
	"$MSYNC" -1 src dst && test "$(count_msgs dst)" = 4
'

test_expect_success 'messages DST deleted stay deleted' '
	f=$(ls dst/new/* dst/cur/* 2>/dev/null | head -n 1) &&
	rm "$f" && "$MSYNC" -1 src dst && test "$(count_msgs dst)" = 3 &&
	"$MSYNC" -1 src dst && test "$(count_msgs dst)" = 3
'

test_expect_success 'new SRC mail and SRC flag changes reach DST' '
	deliver src "" F >/dev/null &&
	"$MSYNC" -1 src dst && test "$(count_msgs dst)" = 4 &&
	maildir_digest dst | grep -q "  F$"
'

test_expect_success 'SRC is never written' '
	test_path_is_missing src/msync.index &&
	ls src/new src/cur >/dev/null
'

test_done
