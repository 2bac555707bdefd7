#!/usr/bin/env bash
test_description='the listing holds at most the bound'"'"'s indexes (issue 10.3: memory): list_mailboxes lets a changed folder'"'"'s index go past the bound once it has made the folder'"'"'s message listing, which list_messages then takes; each folder is still decoded once, a folder changed between the two is listed again, a listing never asked for is dropped, and the stores come out equal in every mode'
. "$(dirname "$0")/lib.sh"

# With the bound on loaded index entries at one (MSYNC_TEST_INDEX_KEEP),
# every pass that may trim unloads the folders it is done with.  Before,
# list_mailboxes was no such pass: it loaded and rescanned every changed
# folder's index and kept them all, and list_messages unloaded them; so
# the first trim of a run found every changed folder loaded.  Now the
# listing trims as it goes, having made the message listing of each
# changed folder while its index was loaded (held for list_messages).
. "$TEST_DIR/lib-stores.sh"
need_corpus
n=${MSYNC_TEST_CORPUS_N:-400}
nf=8

# upto WHO LOG: the lines of LOG up to WHO's last "held listing taken"
# ("msync" the client, "msync\[peer\]" the server): its listing, and
# list_messages taking the listings.
upto() {
	end=$(grep -n "^$1: .*held listing taken" "$2" | tail -n 1 |
	    cut -d: -f1)
	head -n "${end:-0}" "$2"
}

# most_loaded WHO: the most index entries WHO found loaded at one trim,
# in the log lines read from stdin.
most_loaded() {
	grep "^$1: .*index unloaded (" |
	    sed "s/.*index unloaded (\([0-9]*\) entries loaded)/\1/" |
	    awk '$1 > m { m = $1 } END { print m + 0 }'
}

# most_decoded WHO: the most times WHO decoded one folder's index, in
# the log lines read from stdin.
most_decoded() {
	grep "^$1: .*: index loaded (" |
	    sed "s/: index loaded (.*//" | sort | uniq -c |
	    awk '$1 > m { m = $1 } END { print m + 0 }'
}

# change DIR SEED: the benchmark's 2% change set of SEED made in DIR,
# then a pause so that the folders' tokens are valid (not racy) when the
# run reads them.
change() {
	perl "$changes_pl" gen "$1" "$2" 2 >"changes$2" &&
	perl "$changes_pl" apply "changes$2" "$1" "$1" >"applied$2" &&
	sleep 1.2
}

# count WHO PATTERN LOG: lines of WHO in LOG that match PATTERN.
count() {
	grep -c "^$1: .*$2" "$3"
}

test_expect_success 'setup: a synced pair in eight folders, a 2% change set' '
	corpus_split "$n" $nf 21 2 &&
	cp -a corpus/maildir src &&
	"$MSYNC" --backup src dst 2>log0 &&
	"$MSYNC" --backup src dst 2>>log0 &&
	test_cmp_trees src dst
'

# Every changed folder of the source is loaded, rescanned, listed and
# let go by the listing itself: the most entries loaded at any trim is
# about two folders' worth (the one just opened and the one before),
# where the listing used to hold every changed folder's (about all n).
test_expect_success 'the 1% run: the listing unloads as it goes, one decode each' '
	perl "$changes_pl" apply changes corpus/maildir src >applied &&
	sleep 1.2 &&
	MSYNC_TEST_INDEX_KEEP=1 "$MSYNC" -vvvv --backup src dst 2>log1 &&
	test_cmp_trees src dst &&
	held=$(count msync "listing held" log1) &&
	test "$held" -ge $((nf / 2)) &&
	test "$(count msync "held listing taken" log1)" = "$held" &&
	test "$(most_loaded msync <log1)" -gt 0 &&
	test "$(most_loaded msync <log1)" -lt $((n / 3)) &&
	test "$(most_decoded msync <log1)" -le 1 &&
	! grep "changed since it was listed" log1
'

# The folders were unloaded in the listing, not after it: an unload of
# the source comes before its last "listing held".
test_expect_success 'the unloads are the listing'"'"'s' '
	first_unload=$(grep -n "^msync: .*index unloaded" log1 |
	    head -n 1 | cut -d: -f1) &&
	last_held=$(grep -n "^msync: .*listing held" log1 |
	    tail -n 1 | cut -d: -f1) &&
	test -n "$first_unload" && test -n "$last_held" &&
	test "$first_unload" -lt "$last_held"
'

# A message delivered into every folder of the source right after its
# listing (MSYNC_TEST_LIST_HOOK, run after each process's listing, so
# twice: the second delivery comes after the source's listing whichever
# lists first): the held listings no longer match the folders, so
# list_messages loads and rescans them as before; the next run finds
# the stores equal.
test_expect_success 'a folder changed between the listing and list_messages: listed again' '
	change src 22 &&
	msg=$(find corpus/maildir/cur -type f | head -n 1) &&
	printf "%s\n" "set -e" "cd '\''$TRASH'\''" "echo >>hook.ran" \
	    "for d in src src/.*/; do" \
	    "  test -d \"\$d/new\" || continue" \
	    "  cp \"$msg\" \"\$(mktemp -u \"\$d/new/hook.XXXXXX\")\"" \
	    "done" >hook.sh &&
	{ env MSYNC_TEST_INDEX_KEEP=1 \
	    MSYNC_TEST_LIST_HOOK="bash '\''$TRASH/hook.sh'\''" \
	    "$MSYNC" -vvvv --backup src dst 2>log2; rc=$?; } &&
	{ test $rc = 0 || test $rc = 2; } &&
	test "$(wc -l <hook.ran)" = 2 &&
	grep "^msync: .*changed since it was listed" log2 &&
	MSYNC_TEST_INDEX_KEEP=1 "$MSYNC" --backup src dst 2>log2b &&
	test_cmp_trees src dst
'

# A changed folder the run leaves out (--exclude) had its listing made
# but never asked for: dropped when the transfer starts, not kept.
test_expect_success 'a listing never asked for is dropped' '
	msg=$(find corpus/maildir/cur -type f | tail -n 1) &&
	cp "$msg" src/new/excl.1 &&
	cp "$msg" src/.F0001/new/excl.2 &&
	sleep 1.2 &&
	MSYNC_TEST_INDEX_KEEP=1 "$MSYNC" -vvvv --backup -x F0001 src dst \
	    2>log3 &&
	grep "^msync: .*/\.F0001.: listing held" log3 &&
	grep "^msync: .*/\.F0001.: held listing dropped, not asked for" log3 &&
	! grep "^msync: .*/\.F0001.: held listing taken" log3 &&
	test "$(find dst/cur dst/new -type f | wc -l)" = \
	    "$(find src/cur src/new -type f | wc -l)" &&
	test "$(find dst/.F0001/cur dst/.F0001/new -type f | wc -l)" -lt \
	    "$(find src/.F0001/cur src/.F0001/new -type f | wc -l)" &&
	MSYNC_TEST_INDEX_KEEP=1 "$MSYNC" --backup src dst 2>log3b &&
	test_cmp_trees src dst
'

# --full rescans every folder and lists every mailbox: every folder's
# listing is made and taken, each index decoded once up to there (the
# end-of-run check of --full loads each folder again, as before).
test_expect_success '--full: every folder listed once, stores equal' '
	MSYNC_TEST_INDEX_KEEP=1 "$MSYNC" -vvvv --full --backup src dst \
	    2>log4 &&
	test_cmp_trees src dst &&
	test "$(count msync "held listing taken" log4)" -ge $((nf - 1)) &&
	test "$(upto msync log4 | most_decoded msync)" -le 1 &&
	test "$(upto msync log4 | most_loaded msync)" -gt 0 &&
	test "$(upto msync log4 | most_loaded msync)" -lt $((n / 3))
'

# Two-way, changes on both sides: each side lists the same way (the
# server at HELLO) and saves into the other's changed folders, which
# load their indexes again (saves do not unload: issue 10.3's apply
# part, not this one).
test_expect_success 'two-way, both sides changed: both listings bounded, stores equal' '
	MSYNC_TEST_INDEX_KEEP=1 "$MSYNC" src dst 2>log5a &&
	test_cmp_trees src dst &&
	change src 24 &&
	change dst 25 &&
	MSYNC_TEST_INDEX_KEEP=1 "$MSYNC" -vvvv src dst 2>log5 &&
	test_cmp_trees src dst &&
	test "$(count msync "held listing taken" log5)" -ge 2 &&
	test "$(count "msync\[peer\]" "held listing taken" log5)" -ge 2 &&
	for who in msync "msync\[peer\]"; do
		test "$(upto "$who" log5 | most_decoded "$who")" -le 1 &&
		test "$(upto "$who" log5 | most_loaded "$who")" -gt 0 &&
		test "$(upto "$who" log5 | most_loaded "$who")" -lt $((n / 3)) ||
		return 1
	done &&
	MSYNC_TEST_INDEX_KEEP=1 "$MSYNC" src dst 2>log5b &&
	test_cmp_trees src dst
'

# After the two-way runs src has its own msync.index files: a --backup
# from it is read-only and keeps those indexes in memory (new UIDs live
# there only), never unloaded; the held listings are taken all the same.
test_expect_success 'read-only source with its own indexes: stores equal' '
	change src 26 &&
	rm -rf dst2 && cp -a dst dst2 &&
	MSYNC_TEST_INDEX_KEEP=1 "$MSYNC" -vvvv --backup src dst2 2>log7 &&
	grep "^msync: using the index in .* read-only" log7 &&
	test "$(count msync "held listing taken" log7)" -ge 2 &&
	test_cmp_trees src dst2
'

# Below the bound the listing unloads nothing.
test_expect_success 'below the bound nothing is unloaded' '
	change src 27 &&
	"$MSYNC" -vvvv --backup src dst2 2>log8 &&
	test_cmp_trees src dst2 &&
	! grep "index unloaded" log8 &&
	test "$(most_decoded msync <log8)" -le 1
'

test_done
