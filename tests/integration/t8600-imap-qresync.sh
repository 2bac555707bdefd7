#!/usr/bin/env bash
test_description='IMAP store: a changed mailbox is listed by its changes (QRESYNC, CONDSTORE), with a full listing where they cannot tell'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-imapd.sh"
test_require_prereq IMAPD

PASSCMD="echo $IMAPD_PASS"

# fill USER N: N messages in USER's INBOX, some flagged, one keyword.
fill() {
	local i
	for i in $(seq 1 "$2"); do
		gen_message "$i" "$1" | doveadm_u "$1" save -m INBOX || return 1
	done &&
	doveadm_u "$1" "mailbox create" Work &&
	for i in 1 2 3; do
		gen_message "$i" work | doveadm_u "$1" save -m Work || return 1
	done &&
	doveadm_u "$1" "flags add" '\Seen' mailbox INBOX 1:10 &&
	doveadm_u "$1" "flags add" '\Flagged $Label1' mailbox INBOX 2
}

# backup USER DIR LOG: a -vvv backup of USER into DIR; the log in LOG.
backup() {
	msync -vvv --backup --passcmd "$PASSCMD" "$(imaps_url "$1")" "$2" \
	    2>"$3"
}

# same USER DIR: the Maildir holds exactly what Dovecot has.
same() {
	imap_digest "$1" >dove.now && md_digest "$2" >md.now &&
	test_cmp dove.now md.now
}

test_expect_success 'start imapd' 'start_imapd'

test_expect_success 'fill alice' 'fill alice 30'

test_expect_success 'first backup lists in full and records the modseq' '
	backup alice md log0 && same alice md &&
	grep "UID FETCH 1:\* (UID FLAGS)\$" log0 &&
	for c in "$HOME"/.cache/msync/imap/*/*; do
		awk "NR == 1 { exit !(\$1 == \"msync-imap-cache\" && \$2 == 2 && \$5 > 0) }" "$c" ||
		    return 1
	done &&
	grep "^2 [0-9a-f]* [0-9]* [0-9]* 18 \\\$Label1\$" \
	    "$HOME"/.cache/msync/imap/*/*
'

test_expect_success 'flags set and cleared, a keyword, a new message and an expunge: only the changes are asked for (QRESYNC)' '
	doveadm_u alice "flags remove" "\\Seen" mailbox INBOX 3 &&
	doveadm_u alice "flags add" "\\Answered \$Work" mailbox INBOX 20 &&
	doveadm_u alice "flags remove" "\$Label1" mailbox INBOX 2 &&
	gen_message 31 alice | doveadm_u alice save -m INBOX &&
	doveadm_u alice expunge mailbox INBOX uid 7 &&
	backup alice md log1 && same alice md &&
	grep "EXAMINE \"INBOX\" (QRESYNC (" log1 &&
	! grep "UID FETCH 1:\* (UID FLAGS)\$" log1 &&
	grep "INBOX.: 4 change(s), 1 expunged range(s) since modseq" log1 &&
	grep "reading 1 new message" log1 &&
	! grep "EXAMINE \"Work\"" log1
'

test_expect_success 'the cache holds the new flags (a re-run without change reads nothing)' '
	backup alice md log2 && same alice md &&
	! grep "EXAMINE" log2 && ! grep "UID FETCH" log2
'

test_expect_success 'expunges only: VANISHED alone makes the listing' '
	doveadm_u alice expunge mailbox INBOX uid 8:9 &&
	doveadm_u alice expunge mailbox Work uid 1 &&
	backup alice md log3 && same alice md &&
	grep "INBOX.: 0 change(s), 1 expunged range(s)" log3 &&
	grep "Work.: 0 change(s), 1 expunged range(s)" log3 &&
	! grep "BODY.PEEK" log3
'

test_expect_success 'two-way: our own STOREs and APPENDs come back as changes, and converge' '
	msync --passcmd "$PASSCMD" "$(imaps_url alice)" md2 &&
	same alice md2 &&
	f=$(grep -l "^Message-ID: <alice\.12\." md2/cur/* md2/new/* | head -n 1) &&
	mv "$f" "${f%%:2,*}:2,FS" &&
	gen_message 77 local >md2/new/1700000000.local77.host &&
	sleep 1.1 &&
	msync -vvv --passcmd "$PASSCMD" "$(imaps_url alice)" md2 2>log4 &&
	grep "UID STORE" log4 && grep "APPEND" log4 &&
	same alice md2 &&
	msync -vvv --passcmd "$PASSCMD" "$(imaps_url alice)" md2 2>log5 &&
	same alice md2 && ! grep "UID FETCH 1:\* (UID FLAGS)\$" log5 &&
	! grep "APPEND\|UID STORE\|BODY.PEEK" log5
'

test_expect_success 'no cache: a full listing, then changes again' '
	rm -rf "$HOME"/.cache/msync/imap &&
	doveadm_u alice "flags add" "\\Flagged" mailbox INBOX 25 &&
	backup alice md log6 && same alice md &&
	grep "UID FETCH 1:\* (UID FLAGS)\$" log6
'

test_expect_success 'a cache whose modseq is ahead of the server is not trusted' '
	for c in "$HOME"/.cache/msync/imap/*/*; do
		case ${c##*/} in *.*) continue ;; esac
		awk "NR == 1 { \$5 = \"999999999999\" } { print }" "$c" >c.tmp &&
		cat c.tmp >"$c" || return 1
	done &&
	doveadm_u alice "flags remove" "\\Flagged" mailbox INBOX 25 &&
	backup alice md log7 && same alice md &&
	grep "UID FETCH 1:\* (UID FLAGS)\$" log7
'

test_expect_success 'a damaged cache line only costs a full listing' '
	for c in "$HOME"/.cache/msync/imap/*/*; do
		case ${c##*/} in *.*) continue ;; esac
		sed -i "2s/ [0-9]* \\([^ ]*\\)\$/ 99x \\1/" "$c" || return 1
	done &&
	doveadm_u alice "flags add" "\\Draft" mailbox INBOX 26 &&
	backup alice md log8 && same alice md &&
	grep "UID FETCH 1:\* (UID FLAGS)\$" log8
'

test_done
