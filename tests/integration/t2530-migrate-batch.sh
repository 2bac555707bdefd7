#!/usr/bin/env bash
test_description='a batch migration of Maildir accounts with GNU parallel
over ssh to two "hosts" (sshd on 127.0.0.1), --joblog and --resume-failed,
summed by scripts/msync-report: a malformed row, a duplicate account, an
account whose source vanished, a worker killed mid-run; every message
present once at the end (read by Python mailbox)'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-sshd.sh"

test_lazy_prereq PARALLEL 'command -v parallel'
test_lazy_prereq PYTHON 'command -v python3'
test_require_prereq SSHD PARALLEL PYTHON PERL

REPORT=$SRCDIR/scripts/msync-report
N=8	# accounts

# py_count DIR: messages in a Maildir and its folders, by Python mailbox.
py_count() {
	python3 -c 'import mailbox, sys
md = mailbox.Maildir(sys.argv[1], factory=None, create=False)
print(len(md) + sum(len(md.get_folder(f)) for f in md.list_folders()))' "$1"
}

# batch: the runbook's command (docs/MIGRATION.md), over two workers.
batch() {
	parallel --colsep , --joblog "$TRASH/mig.log" "$@" \
	    --sshloginfile "$TRASH/workers" --ssh "$SSH_CMD" \
	    "msync --json --backup $TRASH/old/{1} $TRASH/new/{1} >$TRASH/res/{1}.json" \
	    :::: "$TRASH/clean.csv"
}

test_expect_success 'setup: sshd, two workers, accounts with their mail' '
	start_sshd &&
	printf "1/msynctest\n1/msynctest-i\n" >workers &&
	mkdir -p old new res &&
	echo "account,note" >accounts.csv &&
	for i in $(seq 1 $N); do
		a=user$i &&
		make_folder old/$a Sent &&
		for j in $(seq 1 $((i + 2))); do deliver old/$a "" S >/dev/null || return 1; done &&
		deliver "$(folder_path old/$a Sent)" "" >/dev/null &&
		echo "$a,ok" >>accounts.csv || return 1
	done &&
	echo "../../etc,malformed" >>accounts.csv &&
	echo "user2,duplicate" >>accounts.csv &&
	echo "user9,source vanished" >>accounts.csv
'

test_expect_success 'vetting the accounts file names the bad rows' '
	test_expect_code 1 python3 "$REPORT" --accounts accounts.csv >out 2>err &&
	cat err &&
	grep "line 10: malformed row" err &&
	grep "line 11: duplicate account user2 (first on line 3)" err &&
	grep "accounts: 9 .*left: 9" out &&
	sed "/^\.\.\//d; /,duplicate$/d" accounts.csv | sed 1d >clean.csv &&
	test_line_count = 9 clean.csv
'

test_expect_success 'first pass: user9 fails (its source vanished), the rest are done' '
	test_must_fail batch &&
	cat mig.log &&
	test "$(awk "NR > 1 && \$7 != 0" mig.log | wc -l)" = 1 &&
	test_expect_code 1 python3 "$REPORT" --accounts clean.csv res/*.json >out &&
	cat out &&
	grep "^user9 .*needs a person .*cannot open store" out &&
	grep "accounts: 9   done: 8   retry: 0   needs a person: 1   left: 0" out &&
	for i in $(seq 1 $N); do
		test "$(py_count new/user$i)" = $((i + 3)) || return 1
	done
'

test_expect_success 'a worker killed mid-run: --resume-failed finishes, nothing twice' '
	mkdir -p old/user9 && make_folder old/user9 Archive &&
	for j in $(seq 1 150); do
		{ gen_message $j big && head -c 60000 /dev/urandom | base64; } \
		    >"old/user9/cur/$j.batch.host:2,S" || return 1
	done &&
	deliver "$(folder_path old/user9 Archive)" "" >/dev/null &&
	# kill the msync of user9 on its worker as soon as it runs (a pause
	# here let a fast run finish first, and the test fail)
	{ ( for k in $(seq 1 400); do
		p=$(pgrep -f "^msync --json --backup $TRASH/old/user9" || :)
		if [ -n "$p" ]; then kill -9 $p; exit 0; fi
		sleep 0.025
	  done; exit 1 ) & } &&
	killer=$! &&
	test_must_fail batch --resume-failed &&
	wait $killer &&
	tail -1 mig.log &&
	test "$(tail -1 mig.log | cut -f7)" != 0 &&
	batch --resume-failed &&
	tail -1 mig.log &&
	python3 "$REPORT" --accounts clean.csv res/*.json >out &&
	cat out &&
	grep "accounts: 9   done: 9" out &&
	for i in $(seq 1 $N); do
		test "$(py_count new/user$i)" = $((i + 3)) || return 1
	done &&
	test "$(py_count new/user9)" = 151 &&
	test_cmp_trees old/user9 new/user9
'

test_expect_success 'msync-report --verify compares counts and sizes per mailbox' '
	python3 "$REPORT" --msync "$MSYNC" --verify old/user4 new/user4 >out &&
	grep "0 differ" out &&
	deliver old/user4 "" >/dev/null &&
	test_expect_code 1 python3 "$REPORT" --msync "$MSYNC" --verify old/user4 new/user4 >out &&
	grep "^INBOX" out
'

test_expect_success 'msync-report --json sums the same' '
	python3 "$REPORT" --json res/*.json >out &&
	python3 -c "import json,sys; d=json.load(open(\"out\")); sys.exit(0 if d[\"states\"][\"done\"] == 9 and d[\"messages\"] > 0 else 1)"
'

test_done
