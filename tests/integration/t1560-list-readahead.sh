#!/usr/bin/env bash
test_description='the listing'"'"'s read-ahead (issue 10.3): threads load and rescan the next changed folders'"'"' indexes while the listing works on one; a folder that changes after its read-ahead is rescanned again, nothing is missed, and the stores come out as without the read-ahead, in every mode'
. "$(dirname "$0")/lib.sh"

# MSYNC_READAHEAD=N asks for N threads whatever the machine's CPUs, 0
# for none; MSYNC_TEST_READAHEAD_WAIT makes the listing wait for the
# threads to do every folder (else it does those they have not started,
# which on small folders may be all).  Results are read with Python's
# mailbox (check_same) and compared file by file (test_cmp_trees).
. "$TEST_DIR/lib-stores.sh"
need_corpus
n=${MSYNC_TEST_CORPUS_N:-400}
nf=6

# listing_of LOG: the client's lines of LOG up to the end of its
# listing of the mailboxes.
listing_of() {
	end=$(grep -n "^msync: .*mailboxes listed" "$1" | head -n 1 |
	    cut -d: -f1)
	head -n "${end:-0}" "$1" | grep "^msync: "
}

# refound FOLDERS LISTING: every folder named in FOLDERS has the hook's
# message found in LISTING: by the main thread when the folder was
# rescanned ahead before the hook ran, else by the read-ahead.
refound() {
	while read -r f; do
		grep -q "^msync: new file .$f/cur/1800000000.hook" "$2" || {
			echo "not found again at the listing: $f"
			return 1
		}
	done <"$1"
}

# count PATTERN LOG: the client's lines in LOG that match PATTERN.
count() {
	grep -c "^msync: .*$1" "$2"
}

# The no-change run after the first leaves the destinations' change
# tokens valid, so that their folders are not rescanned but loaded.
test_expect_success 'setup: two synced pairs in six folders, a 2% change set' '
	corpus_split "$n" $nf 21 2 &&
	cp -a corpus/maildir src &&
	"$MSYNC" --backup src dst 2>log0 &&
	cp -a corpus/maildir src0 &&
	"$MSYNC" --backup src0 dst0 2>>log0 &&
	sleep 1.2 &&
	"$MSYNC" --backup src dst 2>>log0 &&
	"$MSYNC" --backup src0 dst0 2>>log0 &&
	test_cmp_trees src dst &&
	perl "$changes_pl" apply changes corpus/maildir src >applied &&
	perl "$changes_pl" apply changes corpus/maildir src0 >applied0 &&
	sleep 1.2
'

# With the read-ahead the changed folders are rescanned by its threads
# (each index still decoded once); without it, by the listing; the
# destinations come out the same.  The server, whose folders did not
# change, has their indexes loaded ahead for the base that refers to
# its listing (store_prefetch).
test_expect_success '--backup: with and without the read-ahead, the same result' '
	MSYNC_TEST_READAHEAD_WAIT=1 MSYNC_READAHEAD=2 \
	    "$MSYNC" -vvvv --backup src dst 2>log1 &&
	MSYNC_READAHEAD=0 "$MSYNC" -vvvv --backup src0 dst0 2>log1n &&
	test "$(count "rescanned ahead" log1)" = "$nf" &&
	test "$(count "rescanned ahead" log1n)" = 0 &&
	test "$(grep -c "^msync\[peer\]: .*loaded ahead" log1)" = "$nf" &&
	! grep -q "^msync\[peer\]: .*loaded ahead" log1n &&
	test "$(count "rescanning" log1)" = "$(count "rescanning" log1n)" &&
	test "$(count "index loaded" log1)" = "$(count "index loaded" log1n)" &&
	test_cmp_trees src dst &&
	test_cmp_trees dst dst0 &&
	check_same src dst >/dev/null
'

# The hook runs as the listing takes a folder the read-ahead rescanned:
# it delivers a message into every folder of the source, once, from the
# client (the server, which has the environment too, leaves it).  The
# taken folder's index is then older than the folder; the listing must
# see that (its change token moved) and rescan, so this one run copies
# every delivered message.
test_expect_success 'a folder changed after its read-ahead is rescanned again' '
	perl "$changes_pl" gen src 22 2 >changes2 &&
	perl "$changes_pl" apply changes2 src src >applied2 &&
	sleep 1.2 &&
	cat >hook.sh <<-\EOF &&
	tr "\\0" " " </proc/$PPID/cmdline | grep -q -- --server && exit 0
	mkdir hooked 2>/dev/null || exit 0
	i=0
	for d in src src/.[!.]*/; do
		test -d "$d/cur" || continue
		i=$((i + 1))
		printf "From: hook@example.org\nSubject: %s\n\nbody %s\n" \
		    "$i" "$i" >"$d/cur/1800000000.hook$i.test:2,S" || exit 1
	done
	EOF
	MSYNC_TEST_READAHEAD_WAIT=1 MSYNC_READAHEAD=2 \
	    MSYNC_TEST_AHEAD_HOOK="sh $PWD/hook.sh" \
	    "$MSYNC" -vvvv --backup src dst 2>log2 &&
	test -d hooked &&
	test "$(find src -name "1800000000.hook*" | wc -l)" -ge $nf &&
	listing_of log2 >listing2 &&
	grep "^msync: .*: rescanned ahead" listing2 |
	    sed "s/^msync: .\(.*\).: rescanned ahead/\1/" >ahead2 &&
	test -s ahead2 &&
	refound ahead2 listing2 &&
	check_same src dst >/dev/null &&
	"$MSYNC" -v --backup src dst 2>log3 &&
	! grep "copy " log3
'

# Two-way: both sides list with the read-ahead (the server too), with
# changes made on both: they meet, and a second run has nothing to do.
test_expect_success 'two-way: changes on both sides meet' '
	rm -rf a b &&
	cp -a corpus/maildir a &&
	"$MSYNC" a b 2>log4 &&
	perl "$changes_pl" gen a 31 2 >changes_a &&
	perl "$changes_pl" apply changes_a a a >/dev/null &&
	perl "$changes_pl" gen b 32 2 >changes_b &&
	perl "$changes_pl" apply changes_b b b >/dev/null &&
	sleep 1.2 &&
	MSYNC_TEST_READAHEAD_WAIT=1 MSYNC_READAHEAD=2 \
	    "$MSYNC" -vvvv a b 2>log5 &&
	test "$(count "rescanned ahead" log5)" -ge 1 &&
	grep -q "^msync\[peer\]: .*rescanned ahead" log5 &&
	check_same a b >/dev/null &&
	MSYNC_READAHEAD=2 "$MSYNC" -v a b 2>log6 &&
	! grep -E "copy |expunge |flags " log6
'

test_done
