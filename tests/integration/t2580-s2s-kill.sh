#!/usr/bin/env bash
test_description='server to server, killed mid-run: daemon 2 killed with
SIGKILL (listener and connection) during a --backup, then daemon 1 the
same way during a two-way run; each run ends 75 with both stores intact
(every message readable by Python mailbox), and a re-run completes with
every message present once'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-msyncd.sh"

test_require_prereq OPENSSL PYTHON PERL

U() {
	local p
	eval "p=\$MSYNCD_PORT_$1"
	printf 'msyncs://%s@127.0.0.1:%s/%s;secret-file=%s' "$2" "$p" "$3" \
	    "$TRASH/$2.secret"
}

# kill_daemon NAME: SIGKILL to the listener and its connection processes.
kill_daemon() {
	local pid
	read -r pid <"$TRASH/$1/pid" &&
	pkill -KILL -P "$pid"
	kill -KILL "$pid"
	rm -f "$TRASH/$1/pid"
	return 0
}

# wait_some DIR N: until DIR holds at least N files in cur (bounded).
wait_some() {
	local i
	for i in $(seq 1 600); do
		test "$(ls "$1/cur" 2>/dev/null | wc -l)" -ge "$2" && return 0
		sleep 0.05
	done
	return 1
}

N=800

test_expect_success 'two daemons, 800 messages on d1' '
	msyncd_pki && msyncd_s2s_conf &&
	msyncd_gen d1/srv/alice/big $N t2580 && msyncd_own d1/srv &&
	msyncd_start d1 && msyncd_start d2
'

test_expect_success 'daemon 2 killed during --backup: exit 75, stores intact' '
	maildir_digest d1/srv/alice/big >src.before &&
	{ "$MSYNC" --backup --bwlimit 400K "$(U d1 alice mail/big)" \
	    "$(U d2 alice mail/big)" 2>err; echo $? >rc; } &
	run=$! &&
	wait_some d2/srv/alice/big 40 &&
	kill_daemon d2 &&
	wait $run &&
	cat err &&
	test "$(cat rc)" = 75 &&
	maildir_digest d1/srv/alice/big >src.after &&
	test_cmp src.before src.after &&
	n=$(py_count d2/srv/alice/big) &&
	echo "copied before the kill: $n" &&
	test "$n" -gt 0 && test "$n" -lt $N &&
	python3 -c "import mailbox; [m.as_bytes() for m in mailbox.Maildir(\"d2/srv/alice/big\", factory=None, create=False)]"
'

test_expect_success 'the re-run completes: every message once' '
	msyncd_start d2 &&
	"$MSYNC" --backup "$(U d1 alice mail/big)" "$(U d2 alice mail/big)" &&
	py_check d2/srv/alice/big $N &&
	test_cmp_trees d1/srv/alice/big d2/srv/alice/big
'

test_expect_success 'daemon 1 killed during a two-way run: exit 75, stores intact' '
	msyncd_gen d1/srv/alice/tw $N t2580 && msyncd_own d1/srv &&
	make_maildir d2/srv/alice/tw && deliver d2/srv/alice/tw "" >/dev/null &&
	msyncd_own d2/srv &&
	{ "$MSYNC" --bwlimit 400K "$(U d1 alice mail/tw)" \
	    "$(U d2 alice mail/tw)" 2>err; echo $? >rc; } &
	run=$! &&
	wait_some d2/srv/alice/tw 40 &&
	kill_daemon d1 &&
	wait $run &&
	cat err &&
	test "$(cat rc)" = 75 &&
	grep "connection to msyncs://alice@127.0.0.1:$MSYNCD_PORT_d1/mail/tw lost" err &&
	n=$(py_count d2/srv/alice/tw) &&
	echo "copied before the kill: $n" &&
	test "$n" -gt 1 && test "$n" -le $N &&
	m=$(py_count d1/srv/alice/tw) && test "$m" -ge $N
'

test_expect_success 'the re-run completes: every message once on both sides' '
	msyncd_start d1 &&
	"$MSYNC" "$(U d1 alice mail/tw)" "$(U d2 alice mail/tw)" &&
	py_check d1/srv/alice/tw $((N + 1)) && py_check d2/srv/alice/tw $((N + 1)) &&
	test_cmp_trees d1/srv/alice/tw d2/srv/alice/tw
'

test_done
