#!/usr/bin/env bash
test_description='the 1% change run (issue 10.3): new mail, flag changes and expunges on a real corpus reach the other side exactly, --backup and two-way (checked with Python mailbox)'
. "$(dirname "$0")/lib.sh"

. "$TEST_DIR/lib-stores.sh"

# A few thousand messages keep the test quick; the benchmark's change set
# (scripts/bench-changes.pl) at 1%, as scripts/bench.sh makes it.
need_corpus

test_expect_success 'setup: corpus and a 1% change set' '
	make_corpus --no-mbox corpus "$n" >corpus.log 2>&1 &&
	perl "$changes_pl" untrash corpus/maildir >/dev/null &&
	perl "$changes_pl" gen corpus/maildir 42 1 >changes &&
	grep -c "^N" changes >n.new && grep -c "^E" changes >n.exp &&
	grep -c "^F" changes >n.flag &&
	test "$(cat n.new)" -gt 0 && test "$(cat n.exp)" -gt 0 &&
	test "$(cat n.flag)" -gt 0
'

for mode in backup twoway; do
	case $mode in
	backup) opt=--backup ;;
	twoway) opt= ;;
	esac

	test_expect_success "$mode: initial and no-change runs make equal stores" '
		synced_pair $mode $opt
	'

	test_expect_success "$mode: the 1% run carries every change, nothing else" '
		perl "$changes_pl" apply changes corpus/maildir $mode/src \
		    >$mode/applied &&
		"$MSYNC" $opt --stats $mode/src $mode/dst 2>$mode/stats &&
		check_same $mode/src $mode/dst >$mode/count1 &&
		test "$(cat $mode/count1)" = \
		    "$(( n + $(cat n.new) - $(cat n.exp) ))" &&
		"$MSYNC" $opt --stats $mode/src $mode/dst 2>$mode/stats2 &&
		check_same $mode/src $mode/dst >$mode/count2 &&
		test_cmp $mode/count1 $mode/count2
	'
done

test_done
