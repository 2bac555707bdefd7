# lib-stores.sh -- comparing two Maildir++ stores with an independent
# reader (Python's mailbox), for the tests of whole-store runs (t1400,
# t1410, t1420, t1500, t1530).  Sourced after lib.sh.

# need_corpus: skips the whole script without the SpamAssassin corpus;
# sets n (how many messages to take from it: a few thousand keep a test
# quick) and changes_pl (the benchmark's change sets, as bench.sh makes
# them).
need_corpus() {
	n=${MSYNC_TEST_CORPUS_N:-2000}
	changes_pl=$SRCDIR/scripts/bench-changes.pl
	if ! test_have_prereq CORPUS; then
		skip_all="no SpamAssassin corpus in $MSYNC_CORPUS_CACHE"
		test_done
	fi
}

# corpus_split N FOLDERS SEED PERCENT: corpus/maildir with N messages of
# the corpus in FOLDERS folders (scripts/split-folders.pl), its T flags
# cleared, and the benchmark's change set of SEED at PERCENT% in
# ./changes (after need_corpus).
corpus_split() {
	make_corpus --no-mbox corpus "$1" >corpus.log 2>&1 &&
	perl "$changes_pl" untrash corpus/maildir >/dev/null &&
	perl "$SRCDIR/scripts/split-folders.pl" corpus/maildir "$2" &&
	perl "$changes_pl" gen corpus/maildir "$3" "$4" >changes
}

# check_same A B: every folder of A and B holds the same messages
# (bytes, and the flags D F P R S T) and no folder holds one message
# twice; prints the number of messages.  On a difference, says which
# folders differ on stderr and fails.
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
            got.append((hashlib.sha1(box.get_bytes(key)).hexdigest(), flags))
        out[name] = sorted(got)
        if len(set(h for h, _ in got)) != len(got):
            print("duplicates in %s of %s" % (name, root), file=sys.stderr)
            sys.exit(1)
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

# synced_pair DIR [OPTION]: DIR/src, a copy of corpus/maildir, synced to
# DIR/dst by an initial and a no-change run of msync with OPTION
# (--backup, or none for two-way); fails unless the two stores then
# hold the same $n messages.
synced_pair() {
	rm -rf "$1" && mkdir "$1" &&
	cp -a corpus/maildir "$1/src" &&
	"$MSYNC" ${2:+"$2"} "$1/src" "$1/dst" 2>"$1/err1" &&
	"$MSYNC" ${2:+"$2"} "$1/src" "$1/dst" &&
	check_same "$1/src" "$1/dst" >"$1/count0" &&
	test "$(cat "$1/count0")" = "$n"
}
