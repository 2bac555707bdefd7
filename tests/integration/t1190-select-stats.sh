#!/usr/bin/env bash
test_description='-m/-x select mailboxes (the base of the others is kept), --stats, --progress, -q, --full, usage errors'
. "$(dirname "$0")/lib.sh"

# find_msg DIR FILE: the message in Maildir folder DIR whose content is
# FILE's.
find_msg() {
	local f
	for f in "$1"/cur/* "$1"/new/*; do
		[ -f "$f" ] && cmp -s "$f" "$2" && { echo "$f"; return 0; }
	done
	echo "find_msg: no copy of $2 in $1" >&2
	return 1
}
# copies DIR FILE: how many copies of FILE are in DIR.
copies() {
	local f n=0
	for f in "$1"/cur/* "$1"/new/*; do
		if [ -f "$f" ] && cmp -s "$f" "$2"; then n=$((n + 1)); fi
	done
	echo "$n"
}

# The stats line for side S ("A" or "B"): what --stats printed.
stats_line() {
	grep "^msync: changes on $1: " "$2" | sed "s/^msync: changes on $1: //"
}

test_expect_success 'setup: four mailboxes, synced' '
	mkdir m && for i in $(seq 1 60); do gen_message $i sel >m/$i || return 1; done &&
	make_folder a Work && make_folder a Work/Old && make_folder a Junk &&
	for i in 1 2 3 4 5; do deliver a m/$i S >/dev/null || return 1; done &&
	for i in 6 7 8; do deliver a/.Work m/$i S >/dev/null || return 1; done &&
	for i in 9 10; do deliver a/.Work.Old m/$i S >/dev/null || return 1; done &&
	for i in 11 12 13 14; do deliver a/.Junk m/$i >/dev/null || return 1; done &&
	"$MSYNC" a b && test_cmp_trees a b &&
	test "$(count_all b)" = 14
'

test_expect_success 'setup: changes in every mailbox on both sides' '
	deliver a m/15 >/dev/null && deliver b m/16 >/dev/null &&
	deliver a/.Work m/17 >/dev/null && deliver b/.Work m/18 >/dev/null &&
	rm "$(find_msg b/.Work m/6)" &&
	deliver a/.Work.Old m/19 >/dev/null &&
	deliver b/.Junk m/20 >/dev/null &&
	rm "$(find_msg a/.Junk m/11)" &&
	set_flags "$(find_msg a/.Junk m/12)" S
'

test_expect_success '-m Work syncs Work only' '
	"$MSYNC" -m Work a b 2>err && cat err &&
	test "$(copies b/.Work m/17)" = 1 && test "$(copies a/.Work m/18)" = 1 &&
	test "$(copies a/.Work m/6)" = 0 &&
	test "$(copies b m/15)" = 0 && test "$(copies a m/16)" = 0 &&
	test "$(copies b/.Work.Old m/19)" = 0 &&
	test "$(copies a/.Junk m/20)" = 0 && test "$(copies b/.Junk m/11)" = 1 &&
	! grep -i "merging" err
'

test_expect_success '-m is repeatable: -m INBOX -m Work/Old' '
	"$MSYNC" -m INBOX -m Work/Old a b 2>err && cat err &&
	test "$(copies b m/15)" = 1 && test "$(copies a m/16)" = 1 &&
	test "$(copies b/.Work.Old m/19)" = 1 &&
	test "$(copies a/.Junk m/20)" = 0 && test "$(copies b/.Junk m/11)" = 1 &&
	! grep -i "merging" err
'

test_expect_success '-m patterns: % stops at the hierarchy separator, * does not' '
	deliver a/.Work m/21 >/dev/null && deliver a/.Work.Old m/22 >/dev/null &&
	"$MSYNC" -m "Work/%" a b &&
	test "$(copies b/.Work.Old m/22)" = 1 && test "$(copies b/.Work m/21)" = 0 &&
	"$MSYNC" -m "W*" a b &&
	test "$(copies b/.Work m/21)" = 1 &&
	test "$(copies a/.Junk m/20)" = 0 && test "$(copies b/.Junk m/11)" = 1
'

test_expect_success '-x Junk leaves Junk out, and a new mailbox it matches' '
	make_folder a Junk/Spam && deliver a/.Junk.Spam m/23 >/dev/null &&
	deliver a m/24 >/dev/null &&
	"$MSYNC" -x "Junk*" a b 2>err && cat err &&
	test "$(copies b m/24)" = 1 &&
	test_path_is_missing b/.Junk.Spam &&
	test "$(copies a/.Junk m/20)" = 0 && test "$(copies b/.Junk m/11)" = 1 &&
	maildir_digest b | grep "^\.Junk  " | grep -v "  S$" >/dev/null &&
	! grep -i "merging" err
'

test_expect_success '-m and -x together: -m "*" -x Junk -x Work' '
	deliver a/.Work m/25 >/dev/null && deliver b m/26 >/dev/null &&
	"$MSYNC" -m "*" -x Junk -x "Work" -x "Junk/*" a b &&
	test "$(copies a m/26)" = 1 && test "$(copies b/.Work m/25)" = 0 &&
	test_path_is_missing b/.Junk.Spam
'

# The base of a mailbox that a run leaves out is kept (brain.c: split_base
# carries it into the new state unchanged), so the next run that includes
# it is a trusted three-way merge: the expunge made on A two runs ago is
# replayed on B, nothing is merged back.
test_expect_success 'a later run without -m/-x: the left-out mailboxes keep their base' '
	"$MSYNC" a b 2>err && cat err &&
	! grep -i "merging\|first sync" err &&
	test_cmp_trees a b &&
	test "$(copies b/.Junk m/11)" = 0 && test "$(copies a/.Junk m/11)" = 0 &&
	test "$(copies a/.Junk m/20)" = 1 &&
	test "$(copies b/.Junk.Spam m/23)" = 1 &&
	test "$(copies b/.Work m/25)" = 1 &&
	maildir_digest --names b | grep "^Junk  " >junk &&
	test_line_count = 4 junk &&
	test "$(count_all a)" = 24 &&
	"$MSYNC" a b 2>err && test_cmp_trees a b
'

test_expect_success 'an expunge made while the mailbox was excluded, on the other side' '
	rm "$(find_msg b/.Work.Old m/9)" &&
	"$MSYNC" -x Work/Old a b && test "$(copies a/.Work.Old m/9)" = 1 &&
	deliver a/.Work m/27 >/dev/null &&
	"$MSYNC" -x Work/Old a b && test "$(copies a/.Work.Old m/9)" = 1 &&
	"$MSYNC" a b 2>err && cat err && ! grep -i merging err &&
	test "$(copies a/.Work.Old m/9)" = 0 && test_cmp_trees a b
'

test_expect_success '-m with a name that matches nothing changes nothing' '
	deliver a m/28 >/dev/null &&
	"$MSYNC" -m NoSuchBox a b &&
	test "$(copies b m/28)" = 0 &&
	"$MSYNC" a b && test "$(copies b m/28)" = 1
'

# --- --stats -----------------------------------------------------------

# A known change set: on A, 3 new messages in INBOX, one expunged, one
# moved from INBOX to Work and a new mailbox New with 2 messages; on B,
# one flag change and one new message.
test_expect_success 'setup: a known change set' '
	test_cmp_trees a b &&
	for i in 30 31 32; do deliver a m/$i >/dev/null || return 1; done &&
	rm "$(find_msg a m/1)" &&
	f=$(find_msg a m/2) && mv "$f" "a/.Work/cur/1700000000.moved.host:2,S" &&
	make_folder a New && deliver a/.New m/33 S >/dev/null &&
	deliver a/.New m/34 >/dev/null &&
	set_flags "$(find_msg b m/3)" FS &&
	deliver b m/35 R >/dev/null &&
	to_b=$(cat m/30 m/31 m/32 m/33 m/34 | wc -c) &&
	to_a=$(wc -c <m/35) &&
	echo "1 copied ($to_a bytes), 0 moved/local, 1 flag changes, 0 expunged; mailboxes: 0 created, 0 renamed, 0 deleted" >expect.A &&
	echo "5 copied ($to_b bytes), 1 moved/local, 0 flag changes, 2 expunged; mailboxes: 1 created, 0 renamed, 0 deleted" >expect.B &&
	sed "s/([0-9]* bytes)/(N bytes)/" expect.A >expect.nobytes.A &&
	sed "s/([0-9]* bytes)/(N bytes)/" expect.B >expect.nobytes.B
'

test_expect_success '--dry-run --stats: the same counts as the real run will have' '
	"$MSYNC" --dry-run --stats a b >dry.out 2>&1 && cat dry.out &&
	grep "^msync: would change on A: " dry.out | sed "s/^msync: would change on A: //; s/([0-9]* bytes)/(N bytes)/" >dry.A &&
	grep "^msync: would change on B: " dry.out | sed "s/^msync: would change on B: //; s/([0-9]* bytes)/(N bytes)/" >dry.B &&
	test_cmp expect.nobytes.A dry.A && test_cmp expect.nobytes.B dry.B
'

# The totals of --dry-run give the bytes the copies will move (from the
# listings), as the real run then reports them.
test_expect_success '--dry-run totals give the bytes the copies will move' '
	grep "^msync: would change on A: " dry.out | sed "s/^msync: would change on A: //" >dry.bytes.A &&
	grep "^msync: would change on B: " dry.out | sed "s/^msync: would change on B: //" >dry.bytes.B &&
	test_cmp expect.A dry.bytes.A && test_cmp expect.B dry.bytes.B
'

test_expect_success '--stats prints what moved each way, with the bytes' '
	"$MSYNC" --stats a b >stats.out 2>&1 && cat stats.out &&
	stats_line A stats.out >got.A && stats_line B stats.out >got.B &&
	test_cmp expect.A got.A && test_cmp expect.B got.B &&
	grep "^msync: wire: sent [0-9]* bytes ([0-9]* before compression), received [0-9]* bytes ([0-9]* after decompression)" stats.out &&
	sent=$(sed -n "s/^msync: wire: sent \([0-9]*\) bytes.*/\1/p" stats.out) &&
	test "$sent" -gt "$to_b" &&
	test_cmp_trees a b &&
	test "$(copies b/.Work m/2)" = 1 && test "$(copies b m/2)" = 0 &&
	test "$(copies b m/1)" = 0
'

test_expect_success '--stats after no change: all zero' '
	"$MSYNC" --stats a b >stats0.out 2>&1 && cat stats0.out &&
	z="0 copied (0 bytes), 0 moved/local, 0 flag changes, 0 expunged; mailboxes: 0 created, 0 renamed, 0 deleted" &&
	test "$(stats_line A stats0.out)" = "$z" &&
	test "$(stats_line B stats0.out)" = "$z"
'

test_expect_success '--stats of a one-way and a backup run count the DST side' '
	deliver a m/36 >/dev/null && deliver a m/37 F >/dev/null &&
	"$MSYNC" --one-way --stats a b >st1.out 2>&1 && cat st1.out &&
	stats_line B st1.out | grep "^2 copied" &&
	stats_line A st1.out | grep "^0 copied (0 bytes), 0 moved/local, 0 flag changes, 0 expunged" &&
	rm "$(find_msg a m/36)" &&
	"$MSYNC" --backup --stats a b >st2.out 2>&1 && cat st2.out &&
	stats_line B st2.out | grep "^0 copied (0 bytes), 0 moved/local, 0 flag changes, 1 expunged" &&
	test_cmp_trees a b
'

# --- --progress, -q ----------------------------------------------------

test_expect_success '--progress with stderr not a terminal: plain lines (no CR), same result' '
	deliver a m/38 >/dev/null && deliver b m/39 >/dev/null &&
	"$MSYNC" --progress a b >prog.out 2>prog.err &&
	cat prog.out prog.err &&
	grep -q "^msync: progress: messages " prog.err &&
	! grep -q "$(printf "\r")" prog.err &&
	! grep -q "$(printf "\r")" prog.out &&
	test_cmp_trees a b && test "$(copies a m/39)" = 1 &&
	"$MSYNC" --progress --stats a b 2>prog2.err </dev/null | cat &&
	! grep -q "$(printf "\r")" prog2.err
'

test_lazy_prereq SCRIPT 'script -qc true /dev/null </dev/null'
test_expect_success SCRIPT '--progress on a terminal shows N/N messages' '
	deliver a m/40 >/dev/null && deliver a m/41 >/dev/null &&
	script -qec "\"$MSYNC\" --progress a b" /dev/null </dev/null >tty.out &&
	cat -A tty.out &&
	grep -a "2/2 messages" tty.out &&
	test_cmp_trees a b
'

test_expect_success '-q prints nothing on success, not even notes' '
	deliver a m/42 >/dev/null && set_flags "$(find_msg b m/4)" ST &&
	"$MSYNC" -q a b >q.out 2>q.err &&
	test_line_count = 0 q.out && test_line_count = 0 q.err &&
	test_cmp_trees a b &&
	make_maildir q1 && deliver q1 m/43 >/dev/null &&
	"$MSYNC" -q q1 q2 >q.out 2>q.err &&
	test_line_count = 0 q.out && test_line_count = 0 q.err &&
	test "$(copies q2 m/43)" = 1 &&
	"$MSYNC" -q --stats a b >qs.out 2>qs.err && cat qs.out qs.err
'

test_expect_success '-q still reports an error' '
	{ "$MSYNC" -q -- q1 "ssh://-bad/x" >qe.out 2>qe.err; rc=$?; true; } &&
	cat qe.err && test "$rc" = 64 && test -s qe.err
'

# --- --full ------------------------------------------------------------

# A flag change that the change token cannot see: the message is renamed
# and cur/'s time stamp (the token, with the inode) put back.  --full reads
# every folder anyway.
test_expect_success '--full reads every folder: finds a change the token cannot see' '
	touch -d "2020-01-01 00:00:00" a/cur a/new b/cur b/new &&
	"$MSYNC" a b && "$MSYNC" a b && test_cmp_trees a b &&
	touch -r a/cur cur.stamp &&
	f=$(find_msg a m/5) && set_flags "$f" FRS &&
	touch -r cur.stamp a/cur &&
	"$MSYNC" a b 2>plain.err &&
	echo "without --full, B got the flags: $(test "$(maildir_digest b | grep -c "  FRS$")" -gt 0 && echo yes || echo no)" &&
	"$MSYNC" --full a b 2>full.err && cat full.err &&
	test_cmp_trees a b &&
	maildir_digest b | grep "  FRS$" &&
	"$MSYNC" -f a b && test_cmp_trees a b
'

test_expect_success '--full on the first sync of a new pair, and --full --dry-run' '
	"$MSYNC" --full a full.b 2>err && test_cmp_trees a full.b &&
	"$MSYNC" --full --dry-run a full.b >dry 2>&1 && cat dry &&
	! grep "^msync: copy\|^msync: expunge\|^msync: flags" dry
'

# --- one base per pair, whatever the mode --------------------------------

# The base belongs to the pair of stores, whatever the mode.  A backup or
# one-way SRC is read-only, so its index lives in the cache; a two-way run
# takes that index over when the folder has none of its own, so a two-way
# run after --backup keeps the base.
test_expect_success 'a two-way run after --backup uses its base: a deletion on B is replayed' '
	rm -rf p1 p2 && rm -f "$XDG_STATE_HOME"/msync/*.state &&
	make_maildir p1 &&
	for i in 50 51 52 53; do deliver p1 m/$i S >/dev/null || return 1; done &&
	"$MSYNC" --backup p1 p2 2>/dev/null && "$MSYNC" --backup p1 p2 &&
	rm "$(find_msg p2 m/51)" &&
	"$MSYNC" p1 p2 2>err && cat err &&
	! grep -i "merging" err &&
	test "$(copies p1 m/51)" = 0 && test "$(copies p2 m/51)" = 0 &&
	test_cmp_trees p1 p2
'

# The other way round: the backup's read-only SRC reads the folder's own
# msync.index (never writing it), so it sees the UIDVALIDITY and UIDs the
# two-way run left in the base.
test_expect_success 'a --backup after a two-way run uses its base: an extra message on DST goes' '
	rm -rf p1 p2 && rm -f "$XDG_STATE_HOME"/msync/*.state &&
	make_maildir p1 &&
	for i in 50 51 52 53; do deliver p1 m/$i S >/dev/null || return 1; done &&
	"$MSYNC" p1 p2 2>/dev/null && "$MSYNC" p1 p2 &&
	deliver p2 m/54 >/dev/null &&
	"$MSYNC" --backup p1 p2 2>err && cat err &&
	! grep -i "merging" err &&
	test "$(copies p2 m/54)" = 0 && test_cmp_trees p1 p2
'

# New mail on the read-only SRC gets UIDs in memory only; the two-way run
# that follows numbers the same files itself (here in another order, as
# one more message came in first), and must find them by GUID: no union,
# nothing copied twice, an expunge still propagates.
test_expect_success 'backup then two-way with UIDs handed out in memory: base kept, no duplicates' '
	rm -rf p1 p2 && rm -f "$XDG_STATE_HOME"/msync/*.state &&
	make_maildir p1 &&
	for i in 55 56; do deliver p1 m/$i S >/dev/null || return 1; done &&
	"$MSYNC" p1 p2 2>/dev/null &&
	index_before=$(cat p1/msync.index) &&
	deliver p1 m/57 >/dev/null && deliver p1 m/58 >/dev/null &&
	"$MSYNC" --backup p1 p2 2>err && cat err && ! grep -i "merging" err &&
	test "$(cat p1/msync.index)" = "$index_before" &&
	test_cmp_trees p1 p2 &&
	"$MSYNC" --backup p1 p2 2>err && cat err && ! grep -i "merging" err &&
	mv "$(find_msg p1 m/58)" p1/new/0000000001.renumbered.host &&
	rm "$(find_msg p2 m/55)" &&
	"$MSYNC" -v p1 p2 2>err && cat err && ! grep -i "merging" err &&
	test "$(copies p1 m/55)" = 0 && test "$(copies p2 m/55)" = 0 &&
	test "$(copies p1 m/57)" = 1 && test "$(copies p2 m/57)" = 1 &&
	test "$(copies p1 m/58)" = 1 && test "$(copies p2 m/58)" = 1 &&
	test_cmp_trees p1 p2 &&
	"$MSYNC" --backup p1 p2 2>err && cat err && ! grep -i "merging" err &&
	test_line_count = 0 err && test_cmp_trees p1 p2
'

test_expect_success 'a --one-way run after --backup uses its base (no union note)' '
	rm -rf p1 p2 && rm -f "$XDG_STATE_HOME"/msync/*.state &&
	make_maildir p1 &&
	for i in 50 51 52 53; do deliver p1 m/$i S >/dev/null || return 1; done &&
	"$MSYNC" --backup p1 p2 2>/dev/null &&
	rm "$(find_msg p2 m/52)" &&
	"$MSYNC" --one-way p1 p2 2>err && cat err &&
	! grep -i "merging" err &&
	test "$(copies p2 m/52)" = 0 && test "$(copies p1 m/52)" = 1
'

# --- --version, --help, usage errors ------------------------------------

test_expect_success '--version, -V, --help and -h exit 0 and print to stdout' '
	"$MSYNC" --version >v.out 2>v.err && grep "^msync [0-9]" v.out &&
	test_line_count = 0 v.err &&
	"$MSYNC" -V >v2.out && test_cmp v.out v2.out &&
	"$MSYNC" --help >h.out 2>h.err && grep "^usage: msync" h.out &&
	grep -e "--mailbox" h.out && grep -e "--exclude" h.out &&
	grep -e "--stats" h.out && grep -e "--progress" h.out &&
	test_line_count = 0 h.err &&
	"$MSYNC" -h >h2.out && test_cmp h.out h2.out
'

# usage_error ARGS...: msync ARGS exits 64 with a message on stderr and
# writes nothing.
usage_error() {
	local rc
	"$MSYNC" "$@" >ue.out 2>ue.err
	rc=$?
	if [ "$rc" != 64 ]; then
		echo "msync $*: exit $rc, want 64" >&2
		cat ue.err >&2
		return 1
	fi
	test -s ue.err && test_line_count "=" 0 ue.out
}

test_expect_success 'usage errors exit 64' '
	usage_error && grep -i usage ue.err &&
	usage_error a && grep -i usage ue.err &&
	usage_error a b c && grep -i usage ue.err &&
	usage_error --no-such-option a b && grep -e "--no-such-option" ue.err &&
	usage_error -Y a b &&
	usage_error --backup --one-way a b &&
	usage_error -b -1 a b &&
	usage_error --list &&
	usage_error --list a b &&
	usage_error --mailbox &&
	test_path_is_missing c
'

# A location that starts with "-" would reach ssh as an option.  After
# "--" (so that getopt does not read it as options: a bare "-host:x" is
# -h, and prints the help) msync must refuse it as a location.
test_expect_success 'a location "-host:x" (also user@-host:x, ssh://-host/x) is a usage error' '
	usage_error -- -host:x b && grep -e "-host:x" ue.err &&
	usage_error -- a -host:x && grep -e "-host:x" ue.err &&
	usage_error -b -- a -host:x &&
	usage_error -- a u@-host:x &&
	usage_error -- a ssh://-host/x &&
	usage_error -- a "-oProxyCommand=touch pwned:x" &&
	usage_error --list -- -host:x &&
	test_path_is_missing pwned && test_path_is_missing ./-host:x &&
	test_path_is_missing b/.x
'

test_done
