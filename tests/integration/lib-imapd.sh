# lib-imapd.sh -- a private Dovecot IMAP server for the IMAP store tests.
# Source it after lib.sh:
#
#	. "$(dirname "$0")/lib.sh"
#	. "$TEST_DIR/lib-imapd.sh"
#	test_require_prereq IMAPD
#	test_expect_success 'start imapd' 'start_imapd'
#	test_expect_success 'list' '
#		"$MSYNC" --list --passcmd "echo $IMAPD_PASS" "$(imaps_url alice)"
#	'
#
# start_imapd writes into $IMAPD_DIR ($TRASH/imapd):
#   cert.pem key.pem   a self-signed certificate for CN=localhost with
#                      subjectAltName DNS:localhost (not 127.0.0.1: the
#                      tests of a wrong host name connect to the address)
#   passwd             passwd-file users alice, bob, carol, all with the
#                      password $IMAPD_PASS; homes in $IMAPD_DIR/home/USER,
#                      mail in ~/Maildir (Maildir++)
#   dovecot.conf       imap (STARTTLS, plaintext login refused before it)
#                      and imaps on two free ports of 127.0.0.1; with
#                      imap_zlib, so COMPRESS=DEFLATE is offered (msync
#                      uses it on 127.0.0.1 only with MSYNC_IMAP_COMPRESS
#                      set, and never with MSYNC_IMAP_NO_COMPRESS);
#                      a folder AllMail, when created, is SPECIAL-USE \All
#                      (as Gmail's "[Gmail]/All Mail")
#   log                Dovecot's log; imapd_log prints it
# $IMAPD_EXTRA_CONF, if set, is appended to dovecot.conf (e.g. an
# imap_capability line: a server without QRESYNC or CONDSTORE).
# starts Dovecot and waits (bounded) until both ports answer.  Sets
#   IMAPD_PORT IMAPS_PORT IMAPD_PASS IMAPD_FP (the certificate's pin,
#   "sha256:AB:..."), IMAPD_CONF.
# imap_url USER / imaps_url USER print the locations with the pin:
#   imap://USER@127.0.0.1:PORT;fingerprint=...   (STARTTLS)
#   imaps://USER@127.0.0.1:PORT;fingerprint=...
# doveadm_u [-f FMT] USER "CMD" ARGS... runs doveadm CMD (one or two
# words) on that user's mail, e.g. `doveadm_u alice save -m INBOX <msg`,
# `doveadm_u -f json alice fetch "text" mailbox INBOX`,
# `doveadm_u alice "mailbox create" Work`.
# imap_digest USER and md_digest DIR print one line per message,
# "mailbox <tab> md5 <tab> flags", as Dovecot sees USER's mail and as
# Python's mailbox module sees a Maildir++ tree: equal output means the
# same messages, byte for byte (CRLF folded), with the same flags.
#
# As root, Dovecot refuses mail access as root: the users' uid is nobody
# (65534) and the trash directory must be reachable by it (see t7000 for
# the same trick, done here in imapd_trash_root).  Otherwise the caller's
# own uid is used, with Dovecot's login and internal users set to it too.
#
# Skip-or-die: the IMAPD prerequisite needs /usr/sbin/dovecot with the
# imap binary, doveadm and openssl; MSYNC_TEST_DOVECOT=true turns a
# missing one into a failure.

IMAPD_DIR=$TRASH/imapd
IMAPD_CONF=$IMAPD_DIR/dovecot.conf
IMAPD_PASS=imap-test-pw-42
IMAPD_PORT=
IMAPS_PORT=
IMAPD_FP=
IMAPD_EXTRA_CONF=${IMAPD_EXTRA_CONF:-}
export IMAPD_DIR IMAPD_CONF IMAPD_PASS

test_lazy_prereq IMAPD '
	test -x /usr/sbin/dovecot && test -x /usr/lib/dovecot/imap &&
	command -v doveadm && command -v openssl && command -v python3
'
test_prereq_env IMAPD MSYNC_TEST_DOVECOT

if test_have_prereq ROOT; then
	IMAPD_UID=65534 IMAPD_GID=65534
else
	IMAPD_UID=$(id -u) IMAPD_GID=$(id -g)
fi

imapd_log() {
	[ -f "$IMAPD_DIR/log" ] && sed 's/^/imapd: /' "$IMAPD_DIR/log" >&2
	return 0
}

imapd_free_port_() {
	python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

imap_url() { echo "imap://$1@127.0.0.1:$IMAPD_PORT;fingerprint=$IMAPD_FP"; }
imaps_url() { echo "imaps://$1@127.0.0.1:$IMAPS_PORT;fingerprint=$IMAPD_FP"; }

doveadm_u() {
	local fmt=() u cmd
	if [ "$1" = -f ]; then
		fmt=(-f "$2")
		shift 2
	fi
	u=$1 cmd=$2
	shift 2
	# shellcheck disable=SC2086  # CMD is one or two words
	doveadm -c "$IMAPD_CONF" "${fmt[@]}" $cmd -u "$u" "$@"
}

# Wait (bounded) until 127.0.0.1:$1 accepts a connection.
imapd_wait_port_() {
	local i
	for i in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "imapd: port $1 never answered" >&2
	return 1
}

start_imapd() {
	local u extra=
	rm -rf "$IMAPD_DIR" &&
	mkdir -p "$IMAPD_DIR/run" "$IMAPD_DIR/state" "$IMAPD_DIR/home" ||
	    return 1
	IMAPD_PORT=$(imapd_free_port_) && IMAPS_PORT=$(imapd_free_port_) &&
	[ "$IMAPD_PORT" != "$IMAPS_PORT" ] || return 1
	openssl req -x509 -newkey rsa:2048 -nodes -days 30 \
	    -subj /CN=localhost -addext subjectAltName=DNS:localhost \
	    -keyout "$IMAPD_DIR/key.pem" -out "$IMAPD_DIR/cert.pem" \
	    2>/dev/null || return 1
	IMAPD_FP=$(openssl x509 -in "$IMAPD_DIR/cert.pem" -noout \
	    -fingerprint -sha256 | sed 's/.*=/sha256:/') || return 1
	for u in alice bob carol; do
		mkdir -p "$IMAPD_DIR/home/$u" || return 1
		echo "$u:{PLAIN}$IMAPD_PASS:$IMAPD_UID:$IMAPD_GID::$IMAPD_DIR/home/$u" \
		    >>"$IMAPD_DIR/passwd" || return 1
	done
	if test_have_prereq ROOT; then
		chown -R "$IMAPD_UID:$IMAPD_GID" "$IMAPD_DIR/home" || return 1
	else
		extra="default_login_user = $(id -un)
default_internal_user = $(id -un)"
	fi
	cat >"$IMAPD_CONF" <<EOF || return 1
base_dir = $IMAPD_DIR/run
state_dir = $IMAPD_DIR/state
log_path = $IMAPD_DIR/log
info_log_path = $IMAPD_DIR/log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <$IMAPD_DIR/cert.pem
ssl_key = <$IMAPD_DIR/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:~/Maildir
mail_plugins = zlib
$extra
protocol imap {
  mail_plugins = \$mail_plugins imap_zlib
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAPD_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $IMAPS_PORT
    ssl = yes
  }
}
service anvil {
  chroot =
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $IMAPD_DIR/passwd
}
userdb {
  driver = passwd-file
  args = username_format=%u $IMAPD_DIR/passwd
}
namespace inbox {
  inbox = yes
  separator = /
  mailbox Drafts {
    special_use = \\Drafts
  }
  mailbox Sent {
    special_use = \\Sent
  }
  mailbox Trash {
    special_use = \\Trash
  }
  mailbox AllMail {
    special_use = \\All
  }
}
$IMAPD_EXTRA_CONF
EOF
	/usr/sbin/dovecot -c "$IMAPD_CONF" || { imapd_log; return 1; }
	test_atexit stop_imapd
	imapd_wait_port_ "$IMAPD_PORT" && imapd_wait_port_ "$IMAPS_PORT" ||
	    { imapd_log; return 1; }
}

stop_imapd() {
	local pid
	[ -f "$IMAPD_DIR/run/master.pid" ] || return 0
	pid=$(cat "$IMAPD_DIR/run/master.pid") || return 0
	kill "$pid" 2>/dev/null
	rm -f "$IMAPD_DIR/run/master.pid"
	return 0
}

# imap_digest USER: "mailbox <tab> md5 <tab> flags <tab> date" for every
# message of USER as Dovecot reports it (md5 of the body with CRLF
# folded to LF, flags as Maildir letters then keywords, INTERNALDATE as
# seconds).  The same line format as md_digest below.
# IMAPD_DIGEST_ALL=1 searches "all" instead of "mailbox *" (which
# finds nothing in a namespace with a prefix).
imap_digest() {
	local q=(mailbox '*')
	[ -z "${IMAPD_DIGEST_ALL:-}" ] || q=(all)
	doveadm_u -f json "$1" fetch 'mailbox flags date.received text' \
	    "${q[@]}" >"$TRASH/dove.json" &&
	python3 - "$TRASH/dove.json" <<'PY'
import hashlib, json, sys
sysf = {"\\Seen": "S", "\\Answered": "R", "\\Flagged": "F",
        "\\Deleted": "T", "\\Draft": "D", "$Forwarded": "P"}
data = open(sys.argv[1], "rb").read().decode("utf-8", "surrogateescape")
out = []
for m in (json.loads(data) if data.strip() else []):
    letters, kws = [], []
    for f in m["flags"].split():
        if f == "\\Recent":
            continue
        if f in sysf:
            letters.append(sysf[f])
        else:
            kws.append(f)
    fl = "".join(sorted(letters)) + ("," + ",".join(sorted(kws)) if kws else "")
    body = m["text"].encode("utf-8", "surrogateescape").replace(b"\r\n", b"\n")
    out.append("%s\t%s\t%s" % (m["mailbox"], hashlib.md5(body).hexdigest(), fl or "-"))
for l in sorted(out):
    print(l)
PY
}

# md_digest DIR: the same lines for a Maildir++ tree, read with Python's
# mailbox module (an independent reader).
md_digest() {
	python3 - "$1" <<'PY'
import base64, hashlib, mailbox, os, re, sys
root = sys.argv[1]
def mutf7(s):
    def dec(m):
        t = m.group(1)
        if t == "":
            return "&"
        t = t.replace(",", "/")
        return base64.b64decode(t + "=" * (-len(t) % 4)).decode("utf-16-be")
    return re.sub(r"&([^-]*)-", dec, s)
def folders():
    yield "INBOX", root
    for d in sorted(os.listdir(root)):
        if d.startswith(".") and os.path.isdir(os.path.join(root, d, "cur")):
            yield mutf7(d[1:].replace(".", "/")), os.path.join(root, d)
kwmap = {}
out = []
for name, path in folders():
    kwfile = os.path.join(path, "dovecot-keywords")
    kw = {}
    if os.path.exists(kwfile):
        for line in open(kwfile):
            n, w = line.split(None, 1)
            kw[chr(ord("a") + int(n))] = w.strip()
    md = mailbox.Maildir(path, factory=None, create=False)
    for key in md.keys():
        fn = md._lookup(key)
        info = fn.split(":2,")[1] if ":2," in fn else ""
        letters = sorted(c for c in info if c.isupper())
        kws = sorted(kw.get(c, c) for c in info if c.islower())
        fl = "".join(letters) + ("," + ",".join(kws) if kws else "")
        body = open(os.path.join(path, fn), "rb").read().replace(b"\r\n", b"\n")
        out.append("%s\t%s\t%s" % (name, hashlib.md5(body).hexdigest(), fl or "-"))
for l in sorted(out):
    print(l)
PY
}

# Dovecot's per-session counters of what it sent, logged as each session
# ends: a test that counts msync's downloads sets
# IMAPD_EXTRA_CONF=$IMAPD_COUNTERS before start_imapd.
IMAPD_COUNTERS='imap_logout_format = in=%i out=%o fbc=%{fetch_body_count} fbb=%{fetch_body_bytes} fhc=%{fetch_hdr_count}'
# imapd_sent fbc|fhc USER: the bodies (fbc; BODY[] fetches) or headers
# (fhc; HEADER.FIELDS counts as one) Dovecot sent USER's sessions since
# its log was last cleared.
imapd_sent() {
	grep "imap($2)" "$IMAPD_DIR/log" | grep -o "$1=[0-9]*" |
	    sed "s/$1=//" | awk '{ s += $1 } END { print s + 0 }'
}
# imapd_settle USER: waits (bounded) for the counters of a session of
# USER: Dovecot writes them as the session ends, after msync exits.
imapd_settle() {
	local i=0
	while [ $i -lt 50 ] && ! grep -q "imap($1).*fbc=" "$IMAPD_DIR/log"; do
		sleep 0.1; i=$((i + 1))
	done
}
# imapd_dups USER: the Message-IDs found more than once in USER's INBOX.
imapd_dups() {
	doveadm_u -f tab "$1" fetch 'hdr.message-id' mailbox INBOX |
	    sed 1d | grep . | sort | uniq -d
}

# fprint_maildir DIR TAG: a Maildir DIR of 12 messages with Message-IDs
# (gen_message 1..12 TAG) and 2 without, all \Seen: what the header
# fingerprint tests (t8700, t8740) fill the accounts from.
fprint_maildir() {
	local i
	make_maildir "$1" &&
	for i in $(seq 1 12); do
		gen_message $i "$2" | deliver "$1" - S >/dev/null || return 1
	done &&
	for i in 13 14; do
		gen_message $i noid | grep -v "^Message-ID:" |
		    deliver "$1" - S >/dev/null || return 1
	done
}

# start_relay PLAN [ARG]: tests/integration/drop_relay.py in front of
# Dovecot's plaintext port (see its header for PLAN); sets RELAY_PORT and
# RELAY_PID; the relay's log of commands is relay.log.  relay_url USER is
# the location through it (plaintext: the relay must read commands).
start_relay() {
	local i=0
	rm -f relay.port relay.log
	python3 "$TEST_DIR/drop_relay.py" "$IMAPD_PORT" "$1" relay.log \
	    ${2:+"$2"} >relay.port &
	RELAY_PID=$!
	while [ ! -s relay.port ] && [ $i -lt 100 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	RELAY_PORT=$(head -n 1 relay.port)
	[ -n "$RELAY_PORT" ]
}
stop_relay() {
	kill "$RELAY_PID" 2>/dev/null
	wait "$RELAY_PID" 2>/dev/null
	return 0
}
relay_url() { echo "imap://$1@127.0.0.1:$RELAY_PORT;tls=none"; }
