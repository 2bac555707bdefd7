#!/usr/bin/env bash
test_description='IMAP store as the destination: killed after every durable step, then resumed: no duplicate, nothing lost'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-imapd.sh"
test_require_prereq IMAPD

PASSCMD="echo $IMAPD_PASS"

test_expect_success 'start imapd' 'start_imapd'

test_expect_success 'setup: a Maildir of 8 messages, flags, a folder' '
	make_maildir src &&
	for i in 1 2 3 4 5 6; do deliver src "" S >/dev/null || return 1; done &&
	deliver src "" FR >/dev/null &&
	make_folder src Work && deliver "$(folder_path src Work)" "" "" >/dev/null &&
	md_digest src >expected && test_line_count = 8 expected
'

# reset: bob's account emptied, msync's state and cache forgotten.
reset() {
	doveadm_u bob expunge mailbox "*" all &&
	{ doveadm_u bob "mailbox delete" Work 2>/dev/null || :; } &&
	rm -rf "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync"
}

for n in $(seq 1 10); do
	test_expect_success "killed after durable write $n, then resumed" '
		reset &&
		test_might_fail msync -Tcrash='$n' --backup --passcmd "$PASSCMD" \
		    src "$(imaps_url bob)" >/dev/null 2>&1 &&
		msync --backup --passcmd "$PASSCMD" src "$(imaps_url bob)" &&
		imap_digest bob >got && test_cmp expected got &&
		msync --backup --passcmd "$PASSCMD" src "$(imaps_url bob)" &&
		imap_digest bob >got2 && test_cmp expected got2
	'
done

test_done
