#!/usr/bin/env bash
# bench-imap.sh -- msync's IMAP store against a local Dovecot imapd, side by
# side with mbsync (isync): an IMAP account -> Maildir.
#
#   scripts/bench-imap.sh [-n MESSAGES] [--out DIR] [--tools "msync mbsync"]
#
# A private Dovecot (tests/integration/lib-imapd.sh: imaps on 127.0.0.1,
# a self-signed certificate) gets MESSAGES synthetic messages (default
# 20000; 2-6 KB each, written straight into its Maildir and indexed once
# with `doveadm force-resync` before any timing).  Then, for each tool, in
# a fresh destination:
#   initial   the whole account copied into an empty Maildir
#   nochange  the same command again, nothing changed on the server
#   change1   again after 1% new messages and 1% flag changes on the
#             server; both are undone (expunged, unflagged) before the
#             next tool starts, so every tool sees the same account
# Tools:
#   msync     msync --backup imaps://... DST (read-only source: EXAMINE,
#             BODY.PEEK; CONDSTORE)
#   mbsync    mbsync with an IMAPStore (the same server, TLS, the
#             certificate given) and a MaildirStore, Sync Pull, Create Near
#             (what it needs to mirror a server into a Maildir)
# offlineimap3 and `doveadm backup` with imapc are not in this script yet.
#
# Each run is timed once with /usr/bin/time (wall, user, system seconds);
# every run is reported.  The machine is shared: say so next to any
# figure (the report's header records nproc and the load average).
# Output: a Markdown table on stdout and in OUT/results.md, raw numbers in
# OUT/results.tsv, logs in OUT/logs/.  OUT defaults to bench-out/imap.
#
# Needs: dovecot-imapd, dovecot-core, isync, openssl, python3, time.

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
{
set -uo pipefail
export LC_ALL=C TZ=UTC

top=$(cd "$(dirname "$0")/.." && pwd) || exit 1
msync=${MSYNC:-$top/msync}
n=20000
out=$top/bench-out/imap
tools="msync mbsync"
while [ $# -gt 0 ]; do
	case $1 in
	-n) n=$2; shift ;;
	--out) out=$2; shift ;;
	--tools) tools=$2; shift ;;
	-h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "bench-imap.sh: unknown option '$1'" >&2; exit 64 ;;
	esac
	shift
done
case $n in ''|*[!0-9]*) echo "bench-imap.sh: -n wants a number" >&2; exit 64 ;; esac

rm -rf "$out" && mkdir -p "$out/logs" || exit 1
TRASH=$out/run
mkdir -p "$TRASH"
export HOME=$TRASH/home XDG_CACHE_HOME=$TRASH/home/.cache \
    XDG_STATE_HOME=$TRASH/home/.local/state
mkdir -p "$HOME"

# lib-imapd.sh expects a few things of the test library.
atexit_cmds=
test_lazy_prereq() { :; }
test_prereq_env() { :; }
test_have_prereq() { [ "$1" = ROOT ] && [ "$(id -u)" = 0 ]; }
test_atexit() { atexit_cmds="$*; $atexit_cmds"; }
trap 'eval "$atexit_cmds"' EXIT
# shellcheck source=../tests/integration/lib-imapd.sh
. "$top/tests/integration/lib-imapd.sh"

echo "bench-imap: starting Dovecot" >&2
start_imapd || { echo "bench-imap: Dovecot did not start" >&2; exit 1; }
maildir=$IMAPD_DIR/home/alice/Maildir

# gen DIR COUNT SEED: COUNT messages into DIR/cur (2-6 KB, distinct).
gen() {
	python3 - "$1" "$2" "$3" <<'PY'
import os, random, sys, time
d, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
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
           "Subject: message %d of seed %d\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n"
           "Message-ID: <%d.%d.bench@example.org>\n\n%s\n"
           % (i % 97, i % 97, i, seed, seed, i, body))
    name = "%d.S%dR%d.bench:2,%s" % (now - count + i, seed, i,
                                     "S" if rnd.random() < 0.7 else "")
    with open(os.path.join(d, "cur", name), "w") as f:
        f.write(msg)
PY
}

echo "bench-imap: writing $n messages" >&2
gen "$maildir" "$n" 1 || exit 1
[ "$(id -u)" = 0 ] && chown -R 65534:65534 "$IMAPD_DIR/home"
doveadm -c "$IMAPD_CONF" force-resync -u alice INBOX >/dev/null 2>&1
doveadm -c "$IMAPD_CONF" mailbox status -u alice all INBOX >"$out/logs/status" 2>&1

# change1: 1% new messages, 1% of the messages flagged.
change() {
	local k=$(( n / 100 )) seed=$1
	[ "$k" -ge 1 ] || k=1
	gen "$TRASH/new$seed" "$k" "$seed" &&
	mv "$TRASH/new$seed/cur/"* "$maildir/cur/" &&
	{ [ "$(id -u)" != 0 ] || chown -R 65534:65534 "$maildir"; } &&
	doveadm -c "$IMAPD_CONF" flags add -u alice '\Flagged' mailbox INBOX \
	    "$((seed * 7)):$((seed * 7 + k - 1))" &&
	doveadm -c "$IMAPD_CONF" mailbox status -u alice messages INBOX
}

printf 'tool\trun\twall\tuser\tsys\tstatus\tmessages\n' >"$out/results.tsv"
# run TOOL RUN DST CMD...: time CMD, record, count DST's messages.
run() {
	local tool=$1 what=$2 dst=$3 st tm
	shift 3
	sync
	/usr/bin/time -f '%e %U %S' -o "$out/logs/$tool-$what.time" "$@" \
	    >"$out/logs/$tool-$what.log" 2>&1
	st=$?
	tm=$(tail -n 1 "$out/logs/$tool-$what.time")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$what" \
	    $tm "$st" "$(find "$dst" -path '*/cur/*' -o -path '*/new/*' -type f |
	    grep -c .)" >>"$out/results.tsv"
	echo "bench-imap: $tool $what: $tm (exit $st)" >&2
}

seed=2
for tool in $tools; do
	dst=$TRASH/dst-$tool
	rm -rf "$dst" "$XDG_CACHE_HOME" "$XDG_STATE_HOME"
	case $tool in
	msync)
		set -- "$msync" --backup --passcmd "echo $IMAPD_PASS" \
		    "$(imaps_url alice)" "$dst" ;;
	mbsync)
		mkdir -p "$dst"
		cat >"$TRASH/mbsyncrc" <<EOF
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
Inbox $dst/
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
		set -- mbsync -c "$TRASH/mbsyncrc" -a -q ;;
	*) echo "bench-imap: unknown tool '$tool'" >&2; continue ;;
	esac
	run "$tool" initial "$dst" "$@"
	sleep 2
	run "$tool" nochange "$dst" "$@"
	change "$seed" >"$out/logs/change-$seed" 2>&1
	seed=$((seed + 1))
	run "$tool" change1 "$dst" "$@"
	doveadm -c "$IMAPD_CONF" expunge -u alice mailbox INBOX header Subject \
	    "of seed $((seed - 1))" >>"$out/logs/change-$((seed - 1))" 2>&1
	doveadm -c "$IMAPD_CONF" flags remove -u alice '\Flagged' mailbox \
	    INBOX all >>"$out/logs/change-$((seed - 1))" 2>&1
done

{
	echo "# bench-imap: $n messages, Dovecot imapd on 127.0.0.1 -> Maildir"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg);"
	echo "a shared machine: other jobs ran at the same time. One run each."
	echo
	echo "| tool | run | wall s | user s | sys s | exit | messages in DST |"
	echo "|---|---|---|---|---|---|---|"
	tail -n +2 "$out/results.tsv" | while IFS=$'\t' read -r t r w u s st m; do
		echo "| $t | $r | $w | $u | $s | $st | $m |"
	done
	echo
	echo "Ratios msync / mbsync (wall):"
	for r in initial nochange change1; do
		a=$(awk -F'\t' -v r="$r" '$1=="msync" && $2==r {print $3}' "$out/results.tsv")
		b=$(awk -F'\t' -v r="$r" '$1=="mbsync" && $2==r {print $3}' "$out/results.tsv")
		[ -n "$a" ] && [ -n "$b" ] &&
		    echo "- $r: $(awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
	done
} | tee "$out/results.md"
exit 0
}
