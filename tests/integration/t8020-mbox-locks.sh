#!/usr/bin/env bash
test_description='mbox locking: a held dotlock or fcntl lock makes msync wait --lock-wait, then exit 75; a delivery agent appending while msync rewrites loses nothing'
. "$(dirname "$0")/lib.sh"
test_lazy_prereq PYTHON3 'command -v python3'

test_expect_success 'setup: a Maildir and its mbox copy' '
	make_maildir md &&
	for i in 1 2 3 4 5 6 7 8 9 10; do deliver md "" S >/dev/null || return 1; done &&
	"$MSYNC" --backup md mbox:box.mbox && cp box.mbox box.orig
'

test_expect_success 'a dotlock held by another program: exit 75 after --lock-wait, nothing written' '
	deliver md "" >/dev/null &&
	touch box.mbox.lock &&
	test_expect_code 75 "$MSYNC" --backup --lock-wait 1 md mbox:box.mbox 2>err &&
	grep "box.mbox. is dotlocked by another program" err &&
	cmp box.orig box.mbox &&
	rm box.mbox.lock
'

test_expect_success PYTHON3 'an fcntl lock held by another program: exit 75, nothing written' '
	python3 -c "
import fcntl, subprocess, sys
f = open(\"box.mbox\", \"a\")
fcntl.lockf(f, fcntl.LOCK_EX)
sys.exit(subprocess.call(sys.argv[1:]))
" "$MSYNC" --backup --lock-wait 1 md mbox:box.mbox 2>err;
	test $? = 75 && grep "box.mbox. is locked by another program" err &&
	cmp box.orig box.mbox
'

test_expect_success 'a dotlock left by a process that is gone is removed, with a warning' '
	sh -c "echo \$\$ >box.mbox.lock" &&
	"$MSYNC" --backup --lock-wait 1 --dry-run md mbox:box.mbox 2>err &&
	"$MSYNC" --list mbox:box.mbox >/dev/null &&
	test_path_is_file box.mbox.lock &&
	"$MSYNC" --backup --lock-wait 1 md mbox:box.mbox 2>err &&
	grep "removing the stale dotlock" err &&
	test_path_is_missing box.mbox.lock &&
	cp box.mbox box.orig
'

test_expect_success 'once the locks are gone the run completes' '
	"$MSYNC" --backup md mbox:box.mbox &&
	test "$(grep -c "^From " box.mbox)" = 11 &&
	cmp box.orig box.mbox
'

# The competitor delivers as procmail and postfix do: the dotlock first,
# then the file opened and its fcntl lock taken, one message appended
# and fsynced, both locks released.
test_expect_success PYTHON3 'a delivery agent appends 200 messages while msync rewrites the mbox: all 200 arrive once, none interleaved' '
	cat >deliver.py <<-\EOF &&
	import fcntl, os, sys, time
	path = sys.argv[1]
	for i in range(200):
	    while True:
	        try:
	            fd = os.open(path + ".lock", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
	            break
	        except FileExistsError:
	            time.sleep(0.002)
	    with open(path, "ab") as f:
	        fcntl.lockf(f, fcntl.LOCK_EX)
	        msg = ("From agent@example.org Thu Jan  1 00:00:00 2004\n"
	               "Subject: agent %d\n\n" % i + ("line %d\n" % i) * 50 + "\n")
	        f.write(msg.encode())
	        f.flush()
	        os.fsync(f.fileno())
	        fcntl.lockf(f, fcntl.LOCK_UN)
	    os.close(fd)
	    os.unlink(path + ".lock")
	    time.sleep(0.001)
	EOF
	python3 deliver.py box.mbox &
	pid=$! &&
	n=0 &&
	while kill -0 $pid 2>/dev/null && [ $n -lt 200 ]; do
		# Flip the flags of every message in the Maildir: each run
		# rewrites the mbox.
		for f in md/cur/*; do
			case $f in
			*,S) mv "$f" "${f%,S},FS" ;;
			*) mv "$f" "${f%:2,*}:2,S" ;;
			esac
		done
		"$MSYNC" --one-way md mbox:box.mbox 2>>runs.err || true
		n=$((n + 1))
	done &&
	wait $pid &&
	echo "runs: $n" &&
	python3 - box.mbox >check.out <<-\EOF &&
	import mailbox, sys, collections
	seen = collections.Counter()
	bad = 0
	for m in mailbox.mbox(sys.argv[1]):
	    s = m["Subject"] or ""
	    if s.startswith("agent "):
	        i = int(s.split()[1])
	        seen[i] += 1
	        if m.get_payload() != ("line %d\n" % i) * 50:
	            bad += 1
	print(len(seen), sum(seen.values()), bad)
	EOF
	echo "200 200 0" >check.exp && test_cmp check.exp check.out
'

test_expect_success 'a later run still sees the mbox whole: the agent messages reach the Maildir in a two-way sync' '
	"$MSYNC" mbox:box.mbox md &&
	test "$(grep -l "^Subject: agent " md/cur/* md/new/* | wc -l)" = 200
'

test_done
