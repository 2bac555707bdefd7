#!/usr/bin/env bash
test_description='a racer swapping cur/, new/ and folders for symlinks while syncs run: nothing outside the stores is touched, nothing from outside gets in, nothing is lost'
. "$(dirname "$0")/lib.sh"

# Issue 11 part 3.  An outside tree holds files with the same names as the
# messages of store A (other bytes): a rename or unlink that followed a
# symlink swapped in for A's cur/ or new/ (or for a whole folder) would
# change it.  While a racer swaps, syncs run with work to do on A (flag
# renames and expunges replayed from B).  Afterwards the outside tree must
# be byte-identical, no outside bytes may be inside a store, and every
# message not deliberately deleted must still be there, once.

SYNCS=${MSYNC_TEST_RACER_SYNCS:-40}

# digest_tree DIR: every file's path, size and content hash, sorted.
digest_tree() {
	(cd "$1" && find . -print0 | sort -z | xargs -0 -r stat -c '%n %s %F' &&
	    find . -type f -print0 | sort -z | xargs -0 -r md5sum)
}

# contents DIR: one md5 per message file of the Maildir++ store DIR.
contents() {
	find "$1" -path '*/cur/*' -type f -o -path '*/new/*' -type f |
	    xargs -r md5sum | cut -d' ' -f1 | sort
}

test_expect_success 'setup: a synced pair, an outside tree shadowing A' '
	make_folder a W1 && make_folder a W2 &&
	for i in $(seq 1 12); do
		deliver a "" S >/dev/null && deliver a/.W1 "" S >/dev/null &&
		deliver a/.W2 "" >/dev/null || return 1
	done &&
	"$MSYNC" a b && test_cmp_trees a b &&
	mkdir -p outside/cur outside/new outside/tmp &&
	for f in a/cur/* a/.W1/cur/* a/.W2/new/*; do
		sub=$(basename "$(dirname "$f")") &&
		printf "Subject: OUTSIDE-SENTINEL\n\n%s\n" "$f" \
		    >"outside/$sub/$(basename "$f")" || return 1
	done &&
	digest_tree outside >outside.before &&
	contents a >initial && test "$(wc -l <initial)" = 36
'

test_expect_success 'syncs under a racer: exits are 0, 1 or 2, never a crash' '
	: >deleted &&
	cat >racer.sh <<-\EOS &&
	cd "$1" || exit 1
	out=$PWD/outside
	i=0
	while [ ! -e stop ] && [ $i -lt 200000 ]; do
		i=$((i + 1))
		for d in a a/.W1 a/.W2; do
			for s in cur new; do
				mv -T "$d/$s" "$d/$s.r" 2>/dev/null || continue
				ln -s "$out/$s" "$d/$s"
				rm -f "$d/$s"
				mv -T "$d/$s.r" "$d/$s"
			done
		done
		# (W1.racer: no leading dot, so no mailbox of its own.)
		if mv -T a/.W1 a/W1.racer 2>/dev/null; then
			ln -s "$out" a/.W1
			rm -f a/.W1
			mv -T a/W1.racer a/.W1
		fi
	done
	EOS
	(bash racer.sh "$TRASH" &) &&
	test_when_finished "touch \"$TRASH/stop\"" &&
	n=0 && bad=0 &&
	while [ $n -lt $SYNCS ]; do
		n=$((n + 1))
		# Work for A: flag changes and an expunge made on B.
		f=$(ls b/cur/* b/.W1/cur/* 2>/dev/null | shuf -n 1) &&
		set_flags "$f" "$(shuf -n 1 -e S FS RS T)" 2>/dev/null &&
		if [ $((n % 4)) = 0 ]; then
			f=$(ls b/.W1/cur/* b/.W2/cur/* b/.W2/new/* 2>/dev/null | shuf -n 1) &&
			md5sum <"$f" | cut -d" " -f1 >>deleted && rm "$f"
		fi
		rc=0
		"$MSYNC" a b 2>>racer.err || rc=$?
		case $rc in
		0|1|2) ;;
		*) echo "sync $n: exit $rc"; bad=1 ;;
		esac
	done &&
	touch stop && sleep 1 &&
	for d in a a/.W1 a/.W2; do
		for s in cur new; do
			if [ -e "$d/$s.r" ]; then rm -f "$d/$s"; mv -T "$d/$s.r" "$d/$s"; fi
		done
	done &&
	if [ -e a/W1.racer ]; then rm -f a/.W1; mv -T a/W1.racer a/.W1; fi &&
	test $bad = 0 &&
	grep -c "warning" racer.err || :
'

test_expect_success 'the outside tree is byte-identical' '
	digest_tree outside >outside.after &&
	test_cmp outside.before outside.after
'

test_expect_success 'no outside bytes inside either store' '
	! grep -rl OUTSIDE-SENTINEL a b &&
	! find a b -type l | grep .
'

# Actions the racer made fail (a flag rename or an expunge in a folder
# that was a symlink at that instant) are recorded in the sync state as
# done, so a later run may not redo them (the stores can stay apart on
# those flags; issue 11 part 5, the brain's side).  That is reported,
# not asserted; the check of what the stores hold starts from a fresh
# state (a union), which must lose nothing and take nothing from outside.
test_expect_success 'after the racer: nothing lost, nothing twice, nothing from outside' '
	"$MSYNC" a b 2>final.err || "$MSYNC" a b 2>>final.err || :
	maildir_digest a >da && maildir_digest b >db &&
	echo "# $(diff da db | grep -c "^[<>]") lines differ after the racer" &&
	rm -rf "$XDG_STATE_HOME/msync" &&
	"$MSYNC" a b && "$MSYNC" a b && test_cmp_trees a b &&
	contents a >final &&
	sort deleted >deleted.s &&
	comm -23 initial deleted.s >expected &&
	comm -23 expected final >lost && { test ! -s lost || { cat lost; false; }; } &&
	test -z "$(uniq -d final)" &&
	comm -13 initial final >extra && { test ! -s extra || { cat extra; false; }; } &&
	# Not asserted: an expunge the racer made fail (its folder was a
	# symlink at that instant) is recorded by the brain as done, so the
	# kept message is copied back at the next run (a union, no loss).
	comm -12 deleted.s final >back &&
	echo "# $(wc -l <back) of $(wc -l <deleted.s) deleted messages came back"
'

test_done
