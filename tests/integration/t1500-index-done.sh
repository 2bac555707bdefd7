#!/usr/bin/env bash
test_description='the side that saves lets go of a folder after its last action (store_done, issue 10.3: memory): with the bound at one entry, the destination of an initial copy unloads each folder it wrote before the end-of-run rescan loads it again, a 1% run'"'"'s keeps the folders it changes later, and the stores still come out equal'
. "$(dirname "$0")/lib.sh"

# Past the bound on loaded index entries (MSYNC_TEST_INDEX_KEEP=1 here),
# the brain's store_done after a folder's last save, flag change or
# expunge makes the Maildir driver write and free that folder's index.
# Before, the destination held every folder it wrote until the
# end-of-run rescan, which unloads each folder once as it passes: so a
# folder unloaded twice (after its saves, and in the rescan) is what
# store_done adds.
. "$TEST_DIR/lib-stores.sh"
need_corpus
n=${MSYNC_TEST_CORPUS_N:-400}
nf=8

test_expect_success 'setup: corpus in eight folders and a 1% change set' '
	corpus_split "$n" $nf 7 2 &&
	test "$(grep -c "^E" changes)" -gt 0 &&
	test "$(grep -c "^F" changes)" -gt 0
'

# unloaded K LOG: how many folders the destination (the peer) unloaded
# at least K times in the run logged in LOG.
unloaded() {
	grep "^msync\[peer\].*index unloaded" "$2" |
	    sed "s/: index unloaded.*//" | sort | uniq -c |
	    awk -v k="$1" '$1 >= k' | wc -l
}

test_expect_success 'initial copy: every folder written is let go before the rescan' '
	cp -a corpus/maildir src &&
	MSYNC_TEST_INDEX_KEEP=1 "$MSYNC" -vvvv --backup src dst 2>log1 &&
	test_cmp_trees src dst &&
	test "$(unloaded 2 log1)" -ge $((nf - 2))
'

# A 1% run's destination changes flags and expunges after every folder's
# saves: a folder with those still to come is not let go after its saves
# (the rescan would only load it again), so it is unloaded no more often
# than before (by the listing and the rescan).
test_expect_success 'the 1% run: folders with flag changes or expunges to come are kept' '
	perl "$changes_pl" apply changes corpus/maildir src >applied &&
	sleep 1.2 &&
	MSYNC_TEST_INDEX_KEEP=1 "$MSYNC" -vvvv --backup src dst 2>log2 &&
	test_cmp_trees src dst &&
	test "$(unloaded 3 log2)" -eq 0
'

test_expect_success 'below the bound nothing is unloaded' '
	perl "$changes_pl" gen src 8 2 >changes2 &&
	perl "$changes_pl" apply changes2 src src >applied2 &&
	sleep 1.2 &&
	"$MSYNC" -vvvv --backup src dst 2>log3 &&
	test_cmp_trees src dst &&
	! grep "index unloaded" log3
'

test_done
