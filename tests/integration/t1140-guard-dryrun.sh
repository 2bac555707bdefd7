#!/usr/bin/env bash
test_description='mass-deletion guard and --dry-run'
. "$(dirname "$0")/lib.sh"

test_expect_success 'setup: 30 messages synced' '
	make_maildir a && make_maildir b &&
	for i in $(seq 1 30); do deliver a "" S >/dev/null; done &&
	"$MSYNC" a b && test "$(count_msgs b)" = 30
'

test_expect_success 'emptying one side trips the guard and changes nothing' '
	rm a/cur/* &&
	test_expect_code 1 "$MSYNC" a b 2>err &&
	grep -i "force-deletes" err && test "$(count_msgs b)" = 30
'

test_expect_success '--dry-run prints the plan and changes nothing' '
	"$MSYNC" -n --force-deletes a b >out 2>&1 &&
	grep -c "expunge on B" out >count && test "$(cat count)" = 30 &&
	test "$(count_msgs b)" = 30
'

test_expect_success '--force-deletes lets it through' '
	"$MSYNC" --force-deletes a b && test "$(count_msgs b)" = 0
'

test_expect_success 'dry run of a copy lists it and copies nothing' '
	deliver a "" >/dev/null &&
	"$MSYNC" --dry-run a b >out 2>&1 && grep -q "copy .* A -> B" out &&
	test "$(count_msgs b)" = 0
'

test_done
