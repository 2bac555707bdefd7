#!/usr/bin/env bash
test_description='the index journal (format 3, issue 10.3): a small change
is appended to msync.index instead of rewriting it; a torn last batch (a
run killed during the append) and a damaged batch each leave a correct
index, nothing lost and no duplicate (checked with Python mailbox); a
format 2 index is still read'
. "$(dirname "$0")/lib.sh"

# mkstore DIR N: a Maildir with N small messages in cur/ (some Seen) and
# a folder Work with N/4 more; the same bytes for the same arguments.
mkstore() {
	python3 - "$1" "$2" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for folder, count in (("", n), (".Work", n // 4)):
    d = os.path.join(root, folder)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    for i in range(count):
        body = ("From: a@example.org\nTo: b@example.net\nSubject: m%s%d\n"
                "Message-ID: <m%s.%d@example.org>\n\nbody %d\n" %
                (folder, i, folder, i, i)) * (1 + i % 5)
        flags = "S" if i % 3 else ""
        name = "17000%05d.M%dP1Q%s.host,S=%d:2,%s" % (i, i, folder[1:] or "i",
                                                    len(body), flags)
        with open(os.path.join(d, "cur", name), "w") as f:
            f.write(body)
PY
}

# change DIR SEED K [DEL]: K new messages in each folder's new/, K flag
# changes and (unless DEL is "nodel") K expunges.
change() {
	python3 - "$@" <<'PY'
import os, random, sys
root, seed, k = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
dele = len(sys.argv) < 5 or sys.argv[4] != "nodel"
rnd = random.Random(seed)
for folder in ("", ".Work"):
    d = os.path.join(root, folder)
    cur = sorted(os.listdir(os.path.join(d, "cur")))
    pick = rnd.sample(cur, 2 * k)
    for name in pick[:k]:
        base, _, fl = name.partition(":2,")
        nfl = "".join(sorted(set(fl) ^ {"F"}))
        os.rename(os.path.join(d, "cur", name),
                  os.path.join(d, "cur", base + ":2," + nfl))
    if dele:
        for name in pick[k:]:
            os.unlink(os.path.join(d, "cur", name))
    for i in range(k):
        body = "Subject: new %d %d\n\nnew %s %d %d\n" % (seed, i, folder, seed, i)
        with open(os.path.join(d, "new", "18%d.N%dP%d.host" % (seed, i, seed)), "w") as f:
            f.write(body)
PY
}

. "$TEST_DIR/lib-stores.sh"

# batches FILE: journal batches in an index file.
batches() {
	grep -c '^end ' "$1" || true
}

# Settled: the racy window of the change token (100 ms) has passed.
settle() {
	sleep 0.3
}

for mode in backup twoway; do
	case $mode in
	backup) opt=--backup ;;
	twoway) opt= ;;
	esac

	test_expect_success "$mode: a 1% change is a journal batch on B, the file is not rewritten" "
		rm -rf a b \"\$XDG_STATE_HOME/msync\" \"\$XDG_CACHE_HOME/msync\" &&
		mkstore a 400 &&
		\"\$MSYNC\" $opt a b && settle &&
		\"\$MSYNC\" $opt a b && settle &&
		head -1 b/msync.index >magic && echo 'msync-index 3' >want &&
		test_cmp want magic &&
		ino0=\$(stat -c %i b/msync.index) &&
		size0=\$(stat -c %s b/msync.index) &&
		head -c \$size0 b/msync.index >before &&
		change a 1 4 && settle &&
		\"\$MSYNC\" $opt a b && settle &&
		test \"\$(stat -c %i b/msync.index)\" = \"\$ino0\" &&
		test \"\$(batches b/msync.index)\" -ge 1 &&
		head -c \$size0 b/msync.index >after &&
		cmp before after &&
		check_same a b >count && test \"\$(cat count)\" = 500 &&
		if [ $mode = backup ]; then
			test_path_is_missing a/msync.index
		else
			test \"\$(batches a/msync.index)\" -ge 1
		fi
	"

	test_expect_success "$mode: the next runs read the journal: nothing to do, still equal" "
		\"\$MSYNC\" $opt -v a b >out 2>&1 && settle &&
		\"\$MSYNC\" $opt a b && check_same a b >count &&
		test \"\$(cat count)\" = 500
	"

	for cut in 3 60 140; do
		test_expect_success "$mode: a torn last batch ($cut bytes cut: a run killed during the append) is dropped, the folder rescanned, no duplicate" "
			change a 2$cut 3 && settle &&
			\"\$MSYNC\" $opt a b && settle &&
			n=\$(batches b/msync.index) && test \"\$n\" -ge 1 &&
			size=\$(stat -c %s b/msync.index) &&
			truncate -s \$((size - $cut)) b/msync.index &&
			change a 3$cut 2 && settle &&
			\"\$MSYNC\" $opt a b 2>err && settle &&
			! grep -i corrupt err &&
			check_same a b &&
			\"\$MSYNC\" $opt a b && check_same a b
		"
	done

	test_expect_success "$mode: a damaged record before a sound end line: the index is refused and rebuilt, nothing lost, no duplicate" "
		change a 41 3 && settle &&
		\"\$MSYNC\" $opt a b && settle &&
		python3 - b/msync.index <<-'PY' &&
		import sys
		p = sys.argv[1]
		b = bytearray(open(p, 'rb').read())
		last = b.rindex(b'\nend ')
		rec = max(b.rfind(s, 0, last) for s in (b'\n+ ', b'\n- ', b'\nr '))
		assert rec > b.index(b'\nchecksum ')
		b[rec + 3] ^= 0x01          # a digit of the uid
		open(p, 'wb').write(bytes(b))
		PY
		change a 42 3 nodel && settle &&
		\"\$MSYNC\" $opt a b 2>err; rc=\$?; cat err; test \$rc = 0 &&
		grep 'corrupt: rebuilding' err &&
		check_same a b && settle &&
		\"\$MSYNC\" $opt a b && check_same a b
	"
done

test_expect_success 'an index in format 2 is read and written back in format 3' '
	rm -rf a b "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	mkstore a 40 && "$MSYNC" a b && settle &&
	test "$(batches b/msync.index)" = 0 &&
	python3 - b/msync.index <<-\PY &&
	import subprocess, sys
	def xxh3(data):
	    out = subprocess.run(["xxhsum", "-H3", "-"], input=data,
	                         capture_output=True, check=True).stdout
	    return out.split(b"=")[-1].strip()[-16:]
	p = sys.argv[1]
	t = open(p, "rb").read()
	assert t.startswith(b"msync-index 3\n")
	t = b"msync-index 2\n" + t[len(b"msync-index 3\n"):]
	h = t.index(b"\nhead ") + 1
	t = t[:h] + b"head " + xxh3(t[:h]) + t[h + 21:]
	c = t.index(b"checksum ")
	t = t[:c] + b"checksum " + xxh3(t[:c]) + b"\n"
	open(p, "wb").write(t)
	PY
	head -1 b/msync.index >magic && echo "msync-index 2" >want &&
	test_cmp want magic &&
	change a 5 1 && settle &&
	"$MSYNC" a b 2>err && ! grep -i corrupt err &&
	head -1 b/msync.index >magic && echo "msync-index 3" >want &&
	test_cmp want magic &&
	check_same a b
'

test_done
