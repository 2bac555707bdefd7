# lib-bench-imap.sh -- what the IMAP benchmarks (bench-imap.sh,
# bench-fprint.sh, bench-imap-move.sh) share: the few functions of the
# test library that tests/integration/lib-imapd.sh calls, so that a
# benchmark can start the tests' Dovecot, and the generator of their
# messages.  Sourced by bash; sets an EXIT trap that runs atexit_cmds.

# lib-imapd.sh expects these of the test library.
atexit_cmds=
test_lazy_prereq() { :; }
test_prereq_env() { :; }
test_have_prereq() { [ "$1" = ROOT ] && [ "$(id -u)" = 0 ]; }
test_atexit() { :; }
trap 'eval "$atexit_cmds"' EXIT

# bench_gen DIR COUNT SEED TAG: COUNT distinct messages (2-6 KB of
# words) into DIR/cur, about 70% of them seen; Message-IDs
# <i.SEED.TAG.bench@example.org>, Dates one second apart.  The same
# arguments give the same messages.
bench_gen() {
	python3 - "$1" "$2" "$3" "$4" <<'PY'
import os, random, sys, time
d, count, seed, tag = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rnd = random.Random(seed)
words = ("mail sync server folder message header body text note plan "
         "meeting report draft update invoice travel project").split()
for sub in ("cur", "new", "tmp"):
    os.makedirs(os.path.join(d, sub), exist_ok=True)
now = int(time.time())
for i in range(count):
    body = "\n".join(" ".join(rnd.choice(words) for _ in range(12))
                     for _ in range(rnd.randint(25, 90)))
    msg = ("From: Sender %d <s%d@example.org>\nTo: me@example.org\n"
           "Subject: message %d of seed %d\n"
           "Date: Mon, 1 Jan 2024 %02d:%02d:%02d +0000\n"
           "Message-ID: <%d.%d.%s.bench@example.org>\n\n%s\n"
           % (i % 97, i % 97, i, seed, (i // 3600) % 24, (i // 60) % 60,
              i % 60, i, seed, tag, body))
    name = "%d.%sS%dR%d.bench:2,%s" % (now - count + i, tag, seed, i,
                                       "S" if rnd.random() < 0.7 else "")
    with open(os.path.join(d, "cur", name), "w") as f:
        f.write(msg)
PY
}

# bench_mbsyncrc FILE DST: an mbsync configuration that mirrors alice's
# account on the benchmark's Dovecot (lib-imapd.sh: imaps, its
# certificate) into the Maildir DST: Sync Pull, Create Near, Expunge
# Near, PipelineDepth 50.
bench_mbsyncrc() {
	cat >"$1" <<EOF
IMAPAccount bench
Host localhost
Port $IMAPS_PORT
User alice
Pass $IMAPD_PASS
SSLType IMAPS
CertificateFile $IMAPD_DIR/cert.pem
PipelineDepth 50

IMAPStore far
Account bench

MaildirStore near
Inbox $2/
SubFolders Maildir++

Channel bench
Far :far:
Near :near:
Patterns *
Create Near
Sync Pull
Expunge Near
SyncState *
EOF
}

# bench_account N: N messages (bench_gen, seed 1) into alice's INBOX on
# the running Dovecot (lib-imapd.sh), indexed once before any timing;
# sets maildir to that Maildir.
bench_account() {
	maildir=$IMAPD_DIR/home/alice/Maildir
	bench_gen "$maildir" "$1" 1 imap || return 1
	if [ "$(id -u)" = 0 ]; then
		chown -R 65534:65534 "$IMAPD_DIR/home" || return 1
	fi
	doveadm -c "$IMAPD_CONF" force-resync -u alice INBOX >/dev/null 2>&1
}
