#!/usr/bin/env bash
test_description='--watch on mbox stores (inotify on the mbox file'"'"'s directory), and
the fallback to polling when inotify'"'"'s watch limit is reached'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-watch.sh"

test_require_prereq PERL
test_lazy_prereq PYTHON3 'command -v python3'
test_require_prereq PYTHON3

cfg=$XDG_CONFIG_HOME/msync/config

# syncs NAME: how many syncs reported so far.
syncs() { wc -l <"$1.out"; }

# mbox_count FILE: messages in an mbox file, as Python's mailbox reads it.
mbox_count() {
	python3 -c 'import mailbox, sys
print(len(mailbox.mbox(sys.argv[1], create=False)))' "$1"
}
has_mbox_count() { test "$(mbox_count "$1")" = "$2"; }

# mbox_append FILE TAG: what an MDA does: one message appended in place.
mbox_append() {
	{
		echo "From mda@example.org Mon Jan  1 10:00:00 2024"
		echo "From: mda@example.org"
		echo "Subject: delivered $2"
		echo "Message-ID: <$2.mbox-watch@example.org>"
		echo
		echo "body of $2"
		echo
	} >>"$1"
}

test_expect_success 'setup: a Maildir and an mbox file in a pair (no polling)' '
	make_maildir a && deliver a "" S >/dev/null &&
	mkdir box && : >box/inbox &&
	mkdir -p "$(dirname "$cfg")" &&
	cat >"$cfg" <<-EOF &&
	pair m
		a $TRASH/a
		b mbox:$TRASH/box/inbox
		debounce 100ms
	EOF
	chmod 600 "$cfg" &&
	watch_start w m &&
	wait_until has_mbox_count box/inbox 1 &&
	! grep "cannot be watched" w.err
'

test_expect_success 'a message appended to the mbox reaches the Maildir' '
	mbox_append box/inbox one &&
	wait_until has_count a 2
'

test_expect_success 'a delivery into the Maildir reaches the mbox' '
	deliver a "" >/dev/null &&
	wait_until has_mbox_count box/inbox 3 &&
	wait_until has_count a 3
'

test_expect_success 'a flag change in the Maildir rewrites the mbox (by rename), and the watch still sees appends' '
	f=$(ls a/cur/* | head -n 1) && set_flags "$f" FS &&
	wait_until grep -q "^X-Status: .*F" box/inbox &&
	mbox_append box/inbox two &&
	wait_until has_count a 4 && wait_until has_mbox_count box/inbox 4
'

test_expect_success 'the loop settles: its own writes cost one sync, not a loop' '
	sleep 2 && n1=$(syncs w) && sleep 3 && n2=$(syncs w) &&
	test "$n1" = "$n2"
'

test_expect_success 'dot files and dotlocks beside the mbox do not start syncs' '
	n1=$(syncs w) &&
	touch box/inbox.lock box/.hidden && rm box/inbox.lock &&
	echo x >box/other-file-not-ours.txt.lock &&
	sleep 2 && test "$(syncs w)" = "$n1"
'

test_expect_success 'SIGTERM ends the watch with 0; both sides agree' '
	watch_stop w &&
	"$MSYNC" m && has_count a 4 && has_mbox_count box/inbox 4
'

test_expect_success 'a directory of mbox files: a new mbox file is a new folder' '
	make_maildir c && mkdir mdir &&
	cat >>"$cfg" <<-EOF &&
	pair d
		a $TRASH/c
		b mbox:$TRASH/mdir
		debounce 100ms
	EOF
	watch_start wd d &&
	mbox_append mdir/Lists l1 && mbox_append mdir/Lists l2 &&
	wait_until test -d "$(folder_path c Lists)" &&
	wait_until has_count "$(folder_path c Lists)" 2 &&
	deliver c "" >/dev/null &&
	wait_until test -f mdir/INBOX &&
	wait_until has_mbox_count mdir/INBOX 1 &&
	watch_stop wd
'

test_expect_success 'the inotify watch limit: said once, the pair is polled instead' '
	make_maildir p && make_maildir q && make_folder p F1 && make_folder p F2 &&
	cat >>"$cfg" <<-EOF &&
	pair lim
		a $TRASH/p
		b $TRASH/q
		every 1s
		debounce 100ms
	EOF
	MSYNC_TEST_INOTIFY_MAX=2 watch_start wl lim &&
	grep -q "lim: the inotify watch limit is reached (fs.inotify.max_user_watches): polling instead" wl.err &&
	grep -q "lim: a side cannot be watched for changes: looking every 1 s" wl.err &&
	deliver p "" >/dev/null && wait_until has_count q 1 &&
	deliver q "" >/dev/null && wait_until has_count p 2 &&
	test "$(grep -c "watch limit" wl.err)" = 1 &&
	watch_stop wl
'

test_done
