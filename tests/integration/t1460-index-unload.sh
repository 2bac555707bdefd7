#!/usr/bin/env bash
test_description='indexes unloaded and loaded again during a run (issue 10.3: memory): with the bound at one entry, --backup and two-way initial, 1% and no-change runs still make equal stores, and leave sound indexes'
. "$(dirname "$0")/lib.sh"

# A store keeps at most IX_KEEP (32,768) index entries loaded; past it,
# the passes that visit each folder once (the listing's list_messages,
# the reading of messages to send, the end-of-run rescan) write and free
# the indexes of the folders they are done with, which are loaded again
# when their folder is opened again (src/store/maildir.c ix_trim).  The
# test hook MSYNC_TEST_INDEX_KEEP=1 makes every such pass unload every
# folder behind it, on both sides: a read-only source's cache indexes,
# a writable source's and the destination's own, dirty or not.  The stores are compared by an independent reader
# (lib.sh maildir_digest: each folder's message bytes and flags).
n=${MSYNC_TEST_CORPUS_N:-1000}
changes_pl=$SRCDIR/scripts/bench-changes.pl

if ! test_have_prereq CORPUS; then
	skip_all="no SpamAssassin corpus in $MSYNC_CORPUS_CACHE"
	test_done
fi

test_expect_success 'setup: corpus in several folders and a 1% change set' '
	make_corpus --no-mbox corpus "$n" >corpus.log 2>&1 &&
	perl "$changes_pl" untrash corpus/maildir >/dev/null &&
	test "$(ls -d corpus/maildir/.*/cur | wc -l)" -ge 3 &&
	perl "$changes_pl" gen corpus/maildir 42 1 >changes &&
	test "$(grep -c "^N" changes)" -gt 0 &&
	test "$(grep -c "^E" changes)" -gt 0 &&
	test "$(grep -c "^F" changes)" -gt 0
'

# unloads FILE: both sides unloaded indexes in the run logged in FILE.
unloads() {
	grep "index unloaded" "$1" | grep -v "^msync\[peer\]" >"$1.a" &&
	grep "^msync\[peer\].*index unloaded" "$1" >"$1.b" &&
	test -s "$1.a" && test -s "$1.b"
}

for mode in backup twoway; do
	case $mode in
	backup) opt=--backup ;;
	twoway) opt= ;;
	esac

	test_expect_success "$mode: initial copy with every index unloaded" '
		rm -rf $mode && mkdir $mode &&
		cp -a corpus/maildir $mode/src &&
		MSYNC_TEST_INDEX_KEEP=1 "$MSYNC" -vvvv $opt $mode/src \
		    $mode/dst 2>$mode/log1 &&
		unloads $mode/log1 &&
		test_cmp_trees $mode/src $mode/dst
	'

	test_expect_success "$mode: the 1% run, indexes unloaded, carries every change" '
		perl "$changes_pl" apply changes corpus/maildir $mode/src \
		    >$mode/applied &&
		MSYNC_TEST_INDEX_KEEP=1 "$MSYNC" -vvvv $opt $mode/src \
		    $mode/dst 2>$mode/log2 &&
		unloads $mode/log2 &&
		test_cmp_trees $mode/src $mode/dst
	'

	test_expect_success "$mode: then a run that keeps them finds nothing to do" '
		"$MSYNC" --stats $opt $mode/src $mode/dst 2>$mode/log3 &&
		! grep -i "warning\|rebuild\|uidvalidity" $mode/log3 &&
		"$MSYNC" --dry-run -v $opt $mode/src $mode/dst >$mode/dry \
		    2>&1 &&
		! grep -E "^msync: (copy|flags on|expunge on|(create|rename|delete) mailbox)" \
		    $mode/dry &&
		test_cmp_trees $mode/src $mode/dst
	'
done

test_expect_success 'twoway: changes on both sides, indexes unloaded' '
	# B: a flag change and a new message; A: a flag change and an
	# expunge in another folder.
	f=$(ls twoway/dst/cur | head -n 1) &&
	mv "twoway/dst/cur/$f" "twoway/dst/cur/${f%%:2,*}:2,FS" &&
	cp "$(ls -d corpus/maildir/cur/* | tail -n 1)" \
	    twoway/dst/new/1700000000.t1460.host &&
	d=$(ls -d twoway/src/.*/cur | head -n 1) &&
	g=$(ls "$d" | head -n 1) && h=$(ls "$d" | tail -n 1) &&
	test "$g" != "$h" &&
	mv "$d/$g" "$d/${g%%:2,*}:2,RS" && rm "$d/$h" &&
	MSYNC_TEST_INDEX_KEEP=1 "$MSYNC" -vvvv twoway/src twoway/dst \
	    2>twoway/log4 &&
	unloads twoway/log4 &&
	grep -q "flags on A" twoway/log4 && grep -q "flags on B" twoway/log4 &&
	grep -q "expunge on B" twoway/log4 && grep -q "^msync: copy " twoway/log4 &&
	test_cmp_trees twoway/src twoway/dst
'

test_done
