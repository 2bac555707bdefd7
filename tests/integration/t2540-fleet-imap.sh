#!/usr/bin/env bash
test_description='the fleet test of docs/MIGRATION.md: 50 accounts of a real
Dovecot imapd (passwd-file users) migrated by GNU parallel over ssh to two
"hosts" (sshd on 127.0.0.1, a port and sshd -i), one password per account
in a file; a worker job killed mid-copy and a wrong password; --resume-failed
finishes; scripts/msync-report groups the accounts by exit status; every
message present once, compared with what doveadm reads on the server'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-sshd.sh"
. "$TEST_DIR/lib-imapd.sh"

test_lazy_prereq PARALLEL 'command -v parallel'
test_require_prereq SSHD IMAPD PARALLEL PERL

REPORT=$SRCDIR/scripts/msync-report
N=50		# accounts
BIG=fleet07	# the account whose job is killed mid-copy
BAD=fleet50	# the account whose password file is wrong at first

# The runbook's command (docs/MIGRATION.md, step 2), over two workers with
# two jobs each.  The password comes from a file per account through
# --passcmd: only the file's name is on a command line.  --bwlimit (3 MB/s
# per account, the old provider's bandwidth spared) also gives the killer
# below time to find the big job while it copies.
batch() {
	parallel --colsep , --joblog "$TRASH/mig.log" "$@" \
	    --sshloginfile "$TRASH/workers" --ssh "$SSH_CMD" \
	    "msync --json --backup --bwlimit=3000000 --passcmd 'cat $TRASH/pw/{1}' \
	    'imaps://{1}@127.0.0.1:$IMAPS_PORT;fingerprint=$IMAPD_FP' \
	    $TRASH/new/{1} >$TRASH/res/{1}.json" \
	    :::: "$TRASH/accounts.csv"
}

# add_user U: a passwd-file user of the running Dovecot (it rereads the
# file when it changes), with some mail written straight into its Maildir
# (INBOX, some seen, and a Sent folder).
add_user() {
	local u=$1 n=$2 h=$IMAPD_DIR/home/$1 j
	echo "$u:{PLAIN}$IMAPD_PASS:$IMAPD_UID:$IMAPD_GID::$h" \
	    >>"$IMAPD_DIR/passwd" &&
	mkdir -p "$h/Maildir/cur" "$h/Maildir/new" "$h/Maildir/tmp" \
	    "$h/Maildir/.Sent/cur" "$h/Maildir/.Sent/new" \
	    "$h/Maildir/.Sent/tmp" &&
	for j in $(seq 1 "$n"); do
		gen_message "$j" "$u" >"$h/Maildir/cur/$j.fleet.host:2,S" ||
		    return 1
	done &&
	gen_message 1 "$u-sent" >"$h/Maildir/.Sent/cur/1.fleet.host:2,S" &&
	gen_message "$((n + 1))" "$u" >"$h/Maildir/new/$((n + 1)).fleet.host"
}

# msgs_of U: what each account holds (INBOX + new + Sent, and the big
# ones of $BIG).
msgs_of() {
	local i=${1#fleet} big=0
	[ "$1" = "$BIG" ] && big=120
	echo $(( (10#$i % 5) + 2 + 2 + big ))
}

test_expect_success 'setup: imapd with 50 users, sshd, two workers' '
	start_imapd &&
	start_sshd &&
	mkdir -p new res pw &&
	chmod 700 pw &&
	: >accounts.csv &&
	for i in $(seq -w 1 $N); do
		u=fleet$i &&
		add_user $u $(( (10#$i % 5) + 2 )) &&
		echo "$IMAPD_PASS" >pw/$u &&
		echo "$u" >>accounts.csv || return 1
	done &&
	# the killed job needs time to be killed in: 120 messages of 80 KB
	for j in $(seq 1 120); do
		{ gen_message "$((j + 100))" big && head -c 60000 /dev/urandom |
		    base64; } >"$IMAPD_DIR/home/$BIG/Maildir/cur/$j.big.host:2,S" ||
		    return 1
	done &&
	if test_have_prereq ROOT; then
		chown -R "$IMAPD_UID:$IMAPD_GID" "$IMAPD_DIR/home"
	fi &&
	echo "not-the-password" >pw/$BAD &&
	chmod 600 pw/* &&
	printf "2/msynctest\n2/msynctest-i\n" >workers &&
	test_expect_code 1 python3 "$REPORT" --accounts accounts.csv >out &&
	grep "accounts: 50 .*left: 50" out
' || { imapd_log; sshd_log; }

test_expect_success 'every account is there for doveadm' '
	for i in $(seq -w 1 $N); do
		test "$(doveadm_u fleet$i "mailbox status" -t messages "*" | sed "s/^messages=//")" \
		    = "$(msgs_of fleet$i)" || return 1
	done
'

test_expect_success 'first pass, a job killed mid-copy: 48 done, 1 retry, 1 needs a person' '
	# kill -9 the msync of $BIG on its worker once it has written some
	# messages (into tmp/: they reach cur/ a mailbox at a time); bounded
	# wait; by its pid, as a crashed worker would be
	{ ( for k in $(seq 1 1200); do
		c=$(find new/$BIG -type f 2>/dev/null | wc -l)
		p=$(pgrep -f "^msync --json --backup .*imaps://$BIG@" || :)
		if [ -n "$p" ] && [ "$c" -ge 10 ]; then
			kill -9 $p; exit 0
		fi
		sleep 0.05
	  done; exit 1 ) & } &&
	killer=$! &&
	test_must_fail batch &&
	wait $killer &&
	cat mig.log &&
	test "$(awk "NR > 1 && \$7 == 0" mig.log | wc -l)" = 48 &&
	# the killed job: signal 9 in the joblog, or the exit status ssh
	# passed on for it
	test "$(grep "imaps://$BIG@" mig.log | cut -f7)" != 0 &&
	test_expect_code 1 python3 "$REPORT" --accounts accounts.csv res/*.json >out &&
	cat out &&
	grep "^$BAD .*needs a person .*refused the login of .$BAD.: \[AUTHENTICATIONFAILED\]" out &&
	grep "^== needs a person, status 77: login refused" out &&
	grep "^$BIG .*retry .*no report: the run was killed" out &&
	grep "accounts: 50   done: 48   retry: 1   needs a person: 1   left: 0" out &&
	test "$(md_digest new/$BIG | wc -l)" -lt $(msgs_of $BIG)
'

test_expect_success '--resume-failed reruns only the two, the password still wrong' '
	before=$(wc -l <mig.log) &&
	test_must_fail batch --resume-failed &&
	test "$(wc -l <mig.log)" = $((before + 2)) &&
	test_expect_code 1 python3 "$REPORT" --accounts accounts.csv res/*.json >out &&
	cat out &&
	grep "accounts: 50   done: 49   retry: 0   needs a person: 1   left: 0" out &&
	{ python3 "$REPORT" --json --accounts accounts.csv res/*.json >out.json || :; } &&
	python3 -c "import json; d = json.load(open(\"out.json\")); assert d[\"by_status\"] == {\"77\": [\"$BAD\"]}, d"
'

test_expect_success 'the password fixed, --resume-failed finishes the batch' '
	echo "$IMAPD_PASS" >pw/$BAD &&
	before=$(wc -l <mig.log) &&
	batch --resume-failed &&
	test "$(wc -l <mig.log)" = $((before + 1)) &&
	python3 "$REPORT" --accounts accounts.csv res/*.json >out &&
	cat out &&
	grep "accounts: 50   done: 50   retry: 0   needs a person: 0   left: 0" out
'

test_expect_success 'every message is there once, as doveadm reads it on the server' '
	for i in $(seq -w 1 $N); do
		u=fleet$i &&
		imap_digest $u >dove &&
		md_digest new/$u >md &&
		test_cmp dove md || return 1
	done &&
	test "$(md_digest new/$BIG | wc -l)" = $(msgs_of $BIG)
'

test_expect_success 'a pass with nothing new copies nothing (an incremental pass)' '
	batch &&
	python3 "$REPORT" --json res/*.json >out.json &&
	python3 -c "import json; d = json.load(open(\"out.json\")); assert d[\"messages\"] == 0 and d[\"states\"][\"done\"] == 50, d"
'

test_done
