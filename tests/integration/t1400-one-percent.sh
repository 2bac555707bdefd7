#!/usr/bin/env bash
test_description='the 1% change run (issue 10.3): new mail, flag changes and expunges on a real corpus reach the other side exactly, --backup and two-way (checked with Python mailbox)'
. "$(dirname "$0")/lib.sh"

# A few thousand messages keep the test quick; the benchmark's change set
# (scripts/bench-changes.pl) at 1%, as scripts/bench.sh makes it.
n=${MSYNC_TEST_CORPUS_N:-2000}
changes_pl=$SRCDIR/scripts/bench-changes.pl

if ! test_have_prereq CORPUS; then
	skip_all="no SpamAssassin corpus in $MSYNC_CORPUS_CACHE"
	test_done
fi

# check_same A B: every folder of A and B (Python's mailbox, Maildir++)
# holds the same messages (bytes) with the same flags, and prints the
# number of messages.
check_same() {
	python3 - "$1" "$2" <<'PY'
import hashlib, mailbox, sys
def load(root):
    out = {}
    top = mailbox.Maildir(root, factory=None, create=False)
    boxes = [("INBOX", top)] + [(n, top.get_folder(n)) for n in top.list_folders()]
    for name, box in boxes:
        got = []
        for key in box.iterkeys():
            m = box.get_message(key)
            flags = "".join(sorted(set(m.get_flags()) & set("DFPRST")))
            data = box.get_bytes(key)
            got.append((hashlib.sha1(data).hexdigest(), flags))
        out[name] = sorted(got)
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
if a != b:
    for k in sorted(set(a) | set(b)):
        if a.get(k) != b.get(k):
            sa, sb = set(a.get(k, [])), set(b.get(k, []))
            print("folder %s: only in A %d, only in B %d" % (k, len(sa - sb), len(sb - sa)), file=sys.stderr)
    sys.exit(1)
print(sum(len(v) for v in a.values()))
PY
}

test_expect_success 'setup: corpus and a 1% change set' '
	make_corpus --no-mbox corpus "$n" >corpus.log 2>&1 &&
	perl "$changes_pl" untrash corpus/maildir >/dev/null &&
	perl "$changes_pl" gen corpus/maildir 42 1 >changes &&
	grep -c "^N" changes >n.new && grep -c "^E" changes >n.exp &&
	grep -c "^F" changes >n.flag &&
	test "$(cat n.new)" -gt 0 && test "$(cat n.exp)" -gt 0 &&
	test "$(cat n.flag)" -gt 0
'

for mode in backup twoway; do
	case $mode in
	backup) opt=--backup ;;
	twoway) opt= ;;
	esac

	test_expect_success "$mode: initial and no-change runs make equal stores" '
		rm -rf $mode && mkdir $mode &&
		cp -a corpus/maildir $mode/src &&
		"$MSYNC" $opt $mode/src $mode/dst 2>$mode/err1 &&
		"$MSYNC" $opt $mode/src $mode/dst &&
		check_same $mode/src $mode/dst >$mode/count0 &&
		test "$(cat $mode/count0)" = "$n"
	'

	test_expect_success "$mode: the 1% run carries every change, nothing else" '
		perl "$changes_pl" apply changes corpus/maildir $mode/src \
		    >$mode/applied &&
		"$MSYNC" $opt --stats $mode/src $mode/dst 2>$mode/stats &&
		check_same $mode/src $mode/dst >$mode/count1 &&
		test "$(cat $mode/count1)" = \
		    "$(( n + $(cat n.new) - $(cat n.exp) ))" &&
		"$MSYNC" $opt --stats $mode/src $mode/dst 2>$mode/stats2 &&
		check_same $mode/src $mode/dst >$mode/count2 &&
		test_cmp $mode/count1 $mode/count2
	'
done

test_done
