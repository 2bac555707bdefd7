# lib-held-sync.sh -- helpers of the tests that hold the durability
# thread's syncfs() (MSYNC_TEST_SYNC_HOLD) and look at a Maildir
# meanwhile (t2610, t6120): small messages written by Python, file
# counts, the sync state's checksum, and a check with Python's mailbox
# module.  Sourced after lib.sh; needs the PYTHON3 prereq.

# add_msgs DIR TAG FIRST N: N small messages, written by Python for speed.
add_msgs() {
	python3 - "$@" <<'EOF'
import os, sys
root, tag, first, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for d in ("cur", "new", "tmp"):
    os.makedirs(os.path.join(root, d), exist_ok=True)
for i in range(first, first + n):
    body = ("From: a@example.org\nTo: b@example.net\n"
            "Subject: %s %d\nMessage-ID: <%s.%d@example.org>\n\n"
            "message %d of %s, with a line of text.\n" % (tag, i, tag, i, i, tag))
    name = "1700000000.M%dP1Q%s.test:2,S" % (i, tag)
    with open(os.path.join(root, "cur", name), "w") as f:
        f.write(body)
EOF
}

# py_check A B N: both stores hold the same N messages, each once
# (Python's mailbox module reads them).
py_check() {
	python3 - "$@" <<'EOF'
import collections, hashlib, mailbox, sys
def load(path):
    md = mailbox.Maildir(path, factory=None, create=False)
    c = collections.Counter()
    for key in md.keys():
        data = md.get_bytes(key).replace(b"\r\n", b"\n")
        c[(hashlib.md5(data).hexdigest(),
           "".join(sorted(md.get_message(key).get_flags())))] += 1
    return c
a, b, n = load(sys.argv[1]), load(sys.argv[2]), int(sys.argv[3])
dup = [k for k, v in list(a.items()) + list(b.items()) if v > 1]
if dup:
    sys.exit("duplicates: %d" % len(dup))
if a != b:
    sys.exit("differ: %d only in A, %d only in B" % (len(a - b), len(b - a)))
if sum(a.values()) != n:
    sys.exit("%d messages, want %d" % (sum(a.values()), n))
EOF
}

nfiles() { find "$1" -maxdepth 1 -type f | wc -l; }

# wait_files DIR N: until DIR holds at least N files (bounded: 3000 naps).
wait_files() {
	for _ in $(seq 1 3000); do
		[ "$(nfiles "$1")" -ge "$2" ] && return 0
		sleep 0.02
	done
	echo "wait_files: $1 has $(nfiles "$1") files, want $2" >&2
	return 1
}

# state_sum: a checksum of every sync state file of the run's pairs.
state_sum() {
	find "$XDG_STATE_HOME" -type f -name '*.state' -exec cat {} + 2>/dev/null |
	    md5sum
}
