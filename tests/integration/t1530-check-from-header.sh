#!/usr/bin/env bash
test_description='the source of a 1% run decodes a changed folder'"'"'s index once (issue 10.3: three times before, past the bound on loaded indexes): the new messages to send are read from what the trim kept, the end-of-run check of a folder the run did not change reads only the index file'"'"'s header; a file renamed before it is read, and a delivery made during the run, are still handled'
. "$(dirname "$0")/lib.sh"

# With the bound on loaded index entries at one (MSYNC_TEST_INDEX_KEEP),
# every pass unloads the folders it is done with.  The source of a
# --backup run changes nothing: its end-of-run check used to load each
# changed folder's index again (and list its messages) only to find
# what it had listed; it now reads the index file's header, and the
# brain does not list a mailbox it did not touch whose modseq is the
# one it listed.  The reading of the new messages to send loaded each
# folder's index again for them: the trim now keeps the few messages
# the run found (their names, sizes and dates) when it lets an index go.
. "$TEST_DIR/lib-stores.sh"
need_corpus
n=${MSYNC_TEST_CORPUS_N:-400}
nf=6

test_expect_success 'setup: a synced pair in six folders, a 1% change set' '
	corpus_split "$n" $nf 11 2 &&
	cp -a corpus/maildir src &&
	"$MSYNC" --backup src dst 2>log0 &&
	test_cmp_trees src dst
'

# src_unloads LOG: the most times the source (not the peer) unloaded one
# folder's index in the run logged in LOG: each "index unloaded" but a
# folder's last is followed by a load.
src_unloads() {
	grep "^msync: .*index unloaded" "$1" |
	    sed "s/: index unloaded.*//" | sort | uniq -c |
	    awk '$1 > m { m = $1 } END { print m + 0 }'
}

test_expect_success 'the 1% run: the source decodes each folder once' '
	perl "$changes_pl" apply changes corpus/maildir src >applied &&
	sleep 1.2 &&
	MSYNC_TEST_INDEX_KEEP=1 "$MSYNC" -vvvv --backup src dst 2>log1 &&
	test_cmp_trees src dst &&
	test "$(grep -c "^msync: .*unchanged: checked from its index" log1)" -ge 2 &&
	test "$(src_unloads log1)" -le 1
'

# Every new message moved from new/ to cur/ and marked seen (a mail
# reader) before the source reads the first one: the kept names are
# stale, the usual path finds the files again (index_refind) and sends
# them; the run may end with 2 (flags changed during it), the next
# brings the flags over.
test_expect_success 'new messages renamed before they are read: still sent' '
	perl "$changes_pl" gen src 13 2 >changes5 &&
	perl "$changes_pl" apply changes5 src src >applied5 &&
	sleep 1.2 &&
	printf "%s\n" "set -e" "shopt -s nullglob" "cd '\''$TRASH'\''" \
	    "for f in src/new/* src/.*/new/*; do" \
	    "  mv \"\$f\" \"\${f%/new/*}/cur/\${f##*/}:2,S\"" \
	    "done" >hook5.sh &&
	moved=$(find src -path "*/new/*" -type f | wc -l) &&
	test "$moved" -gt 0 &&
	{ env MSYNC_TEST_INDEX_KEEP=1 \
	    MSYNC_TEST_OP_HOOK="1:bash '\''$TRASH/hook5.sh'\''" \
	    "$MSYNC" --backup src dst 2>log5; rc=$?; } &&
	{ test $rc = 0 || test $rc = 2; } &&
	test "$(find src -path "*/new/*" -type f | wc -l)" = 0 &&
	test "$(find dst -path "*/cur/*" -type f | wc -l)" = \
	    "$(find src -path "*/cur/*" -type f | wc -l)" &&
	MSYNC_TEST_INDEX_KEEP=1 "$MSYNC" --backup src dst 2>log6 &&
	test_cmp_trees src dst
'

test_expect_success 'no change since: the next run has nothing to do' '
	MSYNC_TEST_INDEX_KEEP=1 "$MSYNC" -vv --backup src dst 2>log2 &&
	test_cmp_trees src dst
'

# A message delivered into every folder of the source while the run
# reads the new messages to send (MSYNC_TEST_OP_HOOK: before the store's
# second message operation, in both processes) moves the folders'
# tokens: the check loads and rescans them, finds mail it did not list,
# and the run ends with 2; the next run copies it.
test_expect_success 'a delivery into the source during the run: exit 2, then copied' '
	perl "$changes_pl" gen src 12 2 >changes3 &&
	perl "$changes_pl" apply changes3 src src >applied3 &&
	sleep 1.2 &&
	msg=$(find corpus/maildir/cur -type f | head -n 1) &&
	printf "%s\n" "set -e" "cd '\''$TRASH'\''" \
	    "for d in src src/.*/; do" \
	    "  test -d \"\$d/new\" || continue" \
	    "  cp \"$msg\" \"\$(mktemp -u \"\$d/new/hook.XXXXXX\")\"" \
	    "done" >hook.sh &&
	test_expect_code 2 env MSYNC_TEST_INDEX_KEEP=1 \
	    MSYNC_TEST_OP_HOOK="2:bash '\''$TRASH/hook.sh'\''" \
	    "$MSYNC" -vv --backup src dst 2>log3 &&
	grep "changed during the run" log3 &&
	test "$(find src -path "*/new/hook.*" | wc -l)" -ge "$nf" &&
	"$MSYNC" --backup src dst 2>log4 &&
	test_cmp_trees src dst
'

test_done
