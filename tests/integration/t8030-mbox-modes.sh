#!/usr/bin/env bash
test_description='mbox in every mode, locally and over ssh (the server opens mbox stores too), and bad input: a clear message naming the file, the rest syncs, nothing lost'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-sshd.sh"

test_require_prereq PERL

# mbox_count FILE: messages in an mbox file, by its "From " lines.
mbox_count() {
	grep -c "^From " "$1"
}

test_expect_success 'setup: a spool, a mutt-style directory of mbox files' '
	for i in 1 2 3; do
		printf "From a@example.org Mon Jan  1 10:0%d:00 2024\nSubject: spool %d\n\nbody %d\n\n" $i $i $i || return 1
	done >spool &&
	mkdir mail &&
	printf "From b@example.org Mon Jan  1 10:00:00 2024\nStatus: RO\nSubject: lists 1\n\nx\n\n" >mail/lists &&
	mkdir mail/old &&
	printf "From c@example.org Mon Jan  1 10:00:00 2024\nSubject: old 1\n\ny\n\n" >mail/old/2019 &&
	cp spool spool.orig
'

test_expect_success '--one-way from the spool into a Maildir INBOX: nothing deleted on either side' '
	make_maildir md && deliver md "" S >/dev/null &&
	"$MSYNC" --one-way mbox:spool md &&
	test "$(count_msgs md)" = 4 &&
	cmp spool spool.orig
'

test_expect_success 'two-way between formats with ;inbox= (the second location): changes both ways' '
	"$MSYNC" md "mbox:mail;inbox=$TRASH/spool" &&
	test "$(mbox_count spool)" = 4 &&
	test_path_is_dir md/.lists && test_path_is_dir md/.old.2019 &&
	f=$(grep -l "Subject: spool 2" md/cur/*) && rm "$f" &&
	deliver "$(folder_path md lists)" "" F >/dev/null &&
	"$MSYNC" md "mbox:mail;inbox=$TRASH/spool" &&
	test "$(mbox_count spool)" = 3 && test "$(mbox_count mail/lists)" = 2 &&
	! grep -q "Subject: spool 2" spool
'

test_expect_success '--backup Maildir -> mbox directory; --list -v of the result' '
	"$MSYNC" --backup md mbox:bk &&
	"$MSYNC" --list mbox:bk >list &&
	grep "^INBOX	3	" list && grep "^lists	2	" list && grep "^old/2019	1	" list &&
	"$MSYNC" --list -vv mbox:bk >listv && test "$(grep -c "^  " listv)" = 6
'

test_expect_success '--dry-run changes no mbox file' '
	deliver md "" >/dev/null &&
	cp bk/INBOX inbox.before &&
	"$MSYNC" --backup --dry-run md mbox:bk &&
	cmp inbox.before bk/INBOX
'

test_expect_success 'mbox on both sides' '
	"$MSYNC" --backup mbox:bk mbox:bk2 &&
	"$MSYNC" --backup mbox:bk2 md2 && "$MSYNC" --backup mbox:bk md3 &&
	test_cmp_trees md2 md3
'

# --- bad input --------------------------------------------------------

test_expect_success 'a bare path that is neither Maildir nor mbox: exit 64, the prefixes named' '
	echo "not mail" >notes &&
	test_expect_code 64 "$MSYNC" --backup notes md 2>err &&
	grep "maildir:PATH or mbox:PATH" err && grep "notes" err
'

test_expect_success 'mbox: on a file that is not an mbox: refused, untouched' '
	cp notes notes.orig &&
	test_must_fail "$MSYNC" --backup md mbox:notes 2>err &&
	grep "notes. is not an mbox file" err && cmp notes notes.orig
'

test_expect_success 'bad files in an mbox directory: named, skipped, the rest syncs' '
	mkdir bad &&
	printf "From x Mon Jan  1 10:00:00 2024\nSubject: ok\n\nfine\n\n" >bad/good &&
	printf "From x\nSubject: no date\n\nz\n" >bad/nodate &&
	printf "From x Mon Jan  1 10:00:00 2024\r\nSubject: crlf\r\n\r\nline\r\n\r\n" >bad/crlf &&
	printf "From x Mon Jan  1 10:00:00 2024\nSubject: nul\n\na\0b\n\nFrom y Mon Jan  1 10:00:00 2024\nSubject: truncated" >bad/nul &&
	printf "just text\n" >bad/README &&
	mkdir bad/dir.mbox &&
	cp -r bad bad.orig && rmdir bad.orig/dir.mbox &&
	"$MSYNC" --backup mbox:bad badmd 2>err &&
	cat err &&
	grep "bad/nodate.: a \"From \" line without a date" err &&
	grep "bad/nul. holds NUL bytes" err &&
	test "$(grep -c "NUL bytes" err)" = 1 &&
	test "$(count_msgs badmd/.good)" = 1 && test "$(count_msgs badmd/.nodate)" = 1 &&
	test "$(count_msgs badmd/.crlf)" = 1 && test "$(count_msgs badmd/.nul)" = 2 &&
	test_path_is_missing badmd/.README &&
	for f in bad.orig/*; do cmp "$f" "bad/${f#bad.orig/}" || return 1; done
'

test_expect_success 'a message with no final newline and a CRLF mbox come back byte for byte' '
	"$MSYNC" --backup badmd mbox:bad2 &&
	"$MSYNC" --backup mbox:bad2 badmd2 && test_cmp_trees badmd badmd2
'

test_expect_success 'a mailbox with messages and children: refused in mbox:DIR with a message, kept in ;layout=thunderbird' '
	make_maildir nest && make_folder nest A && make_folder nest A/B &&
	deliver "$(folder_path nest A)" "" S >/dev/null &&
	deliver "$(folder_path nest A/B)" "" >/dev/null &&
	test_must_fail "$MSYNC" --backup nest mbox:nestmb 2>err &&
	grep "use ;layout=thunderbird" err &&
	"$MSYNC" --backup nest "mbox:nesttb;layout=thunderbird" &&
	"$MSYNC" --backup "mbox:nesttb;layout=thunderbird" nest2 &&
	test_cmp_trees nest nest2
'

test_expect_success NOT_ROOT 'an unreadable mbox file is named and skipped, the rest syncs' '
	chmod 000 bad/good &&
	"$MSYNC" --backup mbox:bad badmd3 2>err;
	chmod 644 bad/good &&
	grep "bad/good" err && test "$(count_msgs badmd3/.crlf)" = 1
'

# --- over ssh ----------------------------------------------------------

test_expect_success SSHD 'start sshd' '
	start_sshd
'

test_expect_success SSHD 'over ssh: a remote mbox file (bare path, detected by the server) -> local Maildir' '
	cp spool remote.mbox &&
	"$MSYNC" -e "$SSH_CMD" --backup msynctest:"$TRASH/remote.mbox" rmd &&
	test "$(count_msgs rmd)" = 3
'

test_expect_success SSHD 'over ssh: local Maildir -> remote mbox directory (;layout=mbox), two-way back' '
	"$MSYNC" -e "$SSH_CMD" --backup md "msynctest:$TRASH/rbox;layout=mbox" &&
	test_path_is_file rbox/INBOX && test_path_is_file rbox/old/2019 &&
	"$MSYNC" -e "$SSH_CMD" --list "msynctest:$TRASH/rbox;layout=mbox" >rl &&
	grep "^old/2019	1	" rl &&
	deliver md "" >/dev/null &&
	"$MSYNC" -e "$SSH_CMD" md "msynctest:$TRASH/rbox;layout=mbox" &&
	test "$(mbox_count rbox/INBOX)" = "$(count_msgs md)"
'

test_expect_success SSHD 'over ssh with libssh: local mbox -> remote Maildir' '
	"$MSYNC" --ssh=libssh --backup mbox:bk msynctest:"$TRASH/rmd2" &&
	"$MSYNC" --backup mbox:bk md4 && test_cmp_trees md4 rmd2
'

test_expect_success SSHD ';inbox= is refused for a remote location' '
	test_expect_code 64 "$MSYNC" -e "$SSH_CMD" md "msynctest:$TRASH/rbox;layout=mbox;inbox=/x"
'

test_done
