#!/usr/bin/env bash
test_description='1% changes on both sides at once (issue 10.3): a two-way run merges them and a --backup run mirrors the source over the destination'"'"'s own changes, on a real corpus (checked with Python mailbox)'
. "$(dirname "$0")/lib.sh"

# The planner's fast paths for a 1% run (a base entry found next to the
# last one, a next base sorted by merging its few new entries in, no
# work for messages without keywords) are taken by changes on the source
# only (t1400).  Changes on both sides also put the other side's new
# messages first in the next base (their uid on A is 0 until copied) and
# make both sides look base entries up out of order.
. "$TEST_DIR/lib-stores.sh"
need_corpus

# dst_changes DIR: about 1% flag changes (F toggled) and 1% expunges in
# every folder of the Maildir++ DIR, by file name order, for a side whose
# names are msync's own (bench-changes.pl finds messages by the corpus's
# names).  Writes "flag changes N" and "expunges N" lines to stdout.
dst_changes() {
	python3 - "$1" <<'PY'
import os, sys
root = sys.argv[1]
dirs = [root] + [os.path.join(root, d) for d in sorted(os.listdir(root))
                 if d.startswith(".") and os.path.isdir(os.path.join(root, d, "cur"))]
flags = exps = 0
for d in dirs:
    names = sorted(os.listdir(os.path.join(d, "cur")))
    for i, name in enumerate(names):
        path = os.path.join(d, "cur", name)
        if i % 100 == 7:
            os.unlink(path)
            exps += 1
        elif i % 100 == 3 and ":2," in name:
            base, info = name.split(":2,", 1)
            info = info.replace("F", "") if "F" in info else "".join(sorted(info + "F"))
            os.rename(path, os.path.join(d, "cur", base + ":2," + info))
            flags += 1
print("applied: %d flag changes, %d expunges" % (flags, exps))
PY
}

# applied FILE KIND: how many changes of KIND ("new", "flag changes",
# "expunges") bench-changes.pl apply or dst_changes reported in FILE.
applied() {
	sed -n "s/.* \([0-9][0-9]*\) $2.*/\1/p" "$1"
}

test_expect_success 'setup: corpus and two different 1% change sets' '
	make_corpus --no-mbox corpus "$n" >corpus.log 2>&1 &&
	perl "$changes_pl" untrash corpus/maildir >/dev/null &&
	perl "$changes_pl" gen corpus/maildir 42 1 >changes.a &&
	# B: only the new mail of another change set (its files have
	# msync'"'"'s names, which bench-changes.pl cannot find; dst_changes).
	perl "$changes_pl" gen corpus/maildir 7 1 >changes.7 &&
	grep "^N" changes.7 >changes.b &&
	! grep -F -x -f changes.b changes.a
'

for mode in twoway backup; do
	case $mode in
	backup) opt=--backup ;;
	twoway) opt= ;;
	esac

	test_expect_success "$mode: a synced pair, then changes on both sides" '
		synced_pair $mode $opt &&
		perl "$changes_pl" apply changes.a corpus/maildir $mode/src \
		    >$mode/applied.a &&
		perl "$changes_pl" apply changes.b corpus/maildir $mode/dst \
		    >$mode/applied.n &&
		dst_changes $mode/dst >$mode/applied.b &&
		sed -n "s/.* \([0-9][0-9]*\) new.*/applied: \1 new/p" \
		    $mode/applied.n >>$mode/applied.b &&
		for f in a b; do
			test "$(applied $mode/applied.$f "new")" -gt 0 &&
			test "$(applied $mode/applied.$f "flag changes")" -gt 0 &&
			test "$(applied $mode/applied.$f "expunges")" -gt 0 ||
			return 1
		done &&
		! check_same $mode/src $mode/dst >/dev/null 2>&1
	'
done

test_expect_success 'twoway: one run merges both change sets' '
	"$MSYNC" --stats twoway/src twoway/dst 2>twoway/stats &&
	check_same twoway/src twoway/dst >twoway/count1 &&
	# The new mail of both sides arrived, the expunges of each went, whether
	# or not the other side expunged the same messages: from
	# n + new - (the sum of the expunges) to n + new - (the larger).
	ea=$(applied twoway/applied.a expunges) &&
	eb=$(applied twoway/applied.b expunges) &&
	new=$(( $(applied twoway/applied.a new) + \
	    $(applied twoway/applied.b new) )) &&
	test "$(cat twoway/count1)" -ge "$(( n + new - ea - eb ))" &&
	test "$(cat twoway/count1)" -le \
	    "$(( n + new - (ea > eb ? ea : eb) ))" &&
	"$MSYNC" twoway/src twoway/dst &&
	check_same twoway/src twoway/dst >twoway/count2 &&
	test_cmp twoway/count1 twoway/count2
'

test_expect_success 'backup: one run makes the destination the source again' '
	cp -a backup/src backup/src.before &&
	"$MSYNC" --backup --stats backup/src backup/dst 2>backup/stats &&
	check_same backup/src backup/dst >backup/count1 &&
	test "$(cat backup/count1)" = \
	    "$(( n + $(applied backup/applied.a "new") - \
	    $(applied backup/applied.a "expunges") ))" &&
	check_same backup/src backup/src.before >/dev/null &&
	"$MSYNC" --backup backup/src backup/dst &&
	check_same backup/src backup/dst >backup/count2 &&
	test_cmp backup/count1 backup/count2
'

test_done
