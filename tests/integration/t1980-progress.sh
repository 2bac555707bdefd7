#!/usr/bin/env bash
test_description='--progress: plain lines when stderr is not a terminal (counts and
bytes done out of the total, rate, time left) for Maildir, mbox and IMAP
stores; the lines are checked, never the timings'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-imapd.sh"

# check_progress FILE N BYTES: FILE's progress lines start at 0/N and
# 0/BYTES (BYTES "" for any), end with N/N, all bytes, "done"; the totals
# never change and the counts never go back.
check_progress() {
	grep "^msync: progress: " "$1" >pl &&
	test "$(wc -l <pl)" -ge 2 &&
	awk -v n="$2" -v bytes="$3" '
	{
		split($4, m, "/"); split($6, b, "/")
		if ($3 != "messages" || $5 != "bytes" || $7 != "rate" ||
		    $9 != "B/s" || $10 != "eta") { print "bad line: " $0; exit 1 }
		if (NR == 1) {
			if (m[1] != 0 || m[2] != n || b[1] != 0) { print "bad first: " $0; exit 1 }
			if (bytes != "" && b[2] != bytes) { print "bad total: " $0; exit 1 }
			total = b[2]
		}
		if (m[2] != n || b[2] != total) { print "total moved: " $0; exit 1 }
		if (m[1] < lm || b[1] < lb) { print "went back: " $0; exit 1 }
		lm = m[1]; lb = b[1]; last = $0
	}
	END {
		if (lm != n || lb != total || last !~ / eta 0 s done$/) {
			print "bad last: " last; exit 1
		}
	}' pl
}

# bytes_of DIR: the bytes of the messages in a Maildir (cur/ and new/).
bytes_of() { cat "$1"/cur/* "$1"/new/* 2>/dev/null | wc -c; }

test_expect_success 'Maildir -> Maildir: 0/N at the start, N/N and every byte at the end' '
	make_maildir a &&
	for i in $(seq 1 40); do deliver a "" S >/dev/null || return 1; done &&
	"$MSYNC" --progress --backup a b 2>err &&
	check_progress err 40 "$(bytes_of a)" &&
	test "$(count_msgs b)" = 40
'

test_expect_success 'two-way, messages both ways: one line counts both directions' '
	for i in 1 2 3; do deliver a "" >/dev/null && deliver b "" >/dev/null || return 1; done &&
	"$MSYNC" a b 2>/dev/null && "$MSYNC" a b &&
	for i in 1 2 3 4; do deliver a "" >/dev/null && deliver b "" F >/dev/null || return 1; done &&
	"$MSYNC" --progress a b 2>err &&
	check_progress err 8 "" && test "$(count_msgs a)" = "$(count_msgs b)"
'

test_expect_success 'nothing to do: 0/0 and done' '
	"$MSYNC" --progress a b 2>err &&
	check_progress err 0 0
'

test_expect_success 'Maildir -> mbox and mbox -> Maildir' '
	"$MSYNC" --progress --backup a mbox:box.mbox 2>err &&
	check_progress err "$(count_msgs a)" "" &&
	"$MSYNC" --progress --backup mbox:box.mbox c 2>err2 &&
	check_progress err2 "$(count_msgs a)" ""
'

test_expect_success 'without --progress: no progress lines' '
	make_maildir d && deliver d "" >/dev/null &&
	"$MSYNC" d e 2>err && ! grep -q progress err
'

test_expect_success IMAPD 'IMAP -> Maildir: the same lines' '
	start_imapd &&
	for i in $(seq 1 12); do
		gen_message "$i" alice | doveadm_u alice save -m INBOX || return 1
	done &&
	"$MSYNC" --progress --backup --passcmd "echo $IMAPD_PASS" \
	    "$(imaps_url alice)" md 2>err &&
	check_progress err 12 "" && test "$(count_msgs md)" = 12
'

test_expect_success IMAPD 'Maildir -> IMAP: the same lines' '
	"$MSYNC" --progress --backup --passcmd "echo $IMAPD_PASS" \
	    d "$(imaps_url bob)" 2>err &&
	check_progress err 1 "$(bytes_of d)"
'

test_done
