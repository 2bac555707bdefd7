# lib-msyncd.sh -- msync daemons on 127.0.0.1 with a test CA, for the
# t25xx tests.  Source it after lib.sh:
#
#	. "$(dirname "$0")/lib.sh"
#	. "$TEST_DIR/lib-msyncd.sh"
#	test_require_prereq OPENSSL
#	test_expect_success 'pki' 'msyncd_pki'
#	test_expect_success 'start' '
#		msyncd_conf d1 && cat >>"$TRASH/d1/msyncd.conf" <<-EOF &&
#		[mail]
#		path = $TRASH/d1/srv/%u
#		users = alice
#		EOF
#		msyncd_start d1
#	'
#
# msyncd_pki writes into $TRASH/pki/ (with the openssl program):
#   ca.pem ca.key        the test CA; exported as SSL_CERT_FILE, so the
#                        client trusts it as it would the system CAs
#   srv.pem srv.key      the server's certificate for 127.0.0.1/localhost
#   alice.pem alice.key  a client certificate with CN=alice (test CA)
#   rogue-ca.pem, rogue.pem rogue.key  a CA nobody trusts, and a server
#                        certificate for 127.0.0.1 that it signed
#   SRV_FP               the server certificate's sha256 fingerprint
# msyncd_conf NAME picks a free port (MSYNCD_PORT_<NAME>, and
# MSYNCD_PORT for the last one) and writes the global part of
# $TRASH/NAME/msyncd.conf: that port on 127.0.0.1, the certificate, the
# secrets file $TRASH/NAME/secrets (alice:alice-secret, bob:bob-secret,
# mode 600), the client CA, a cache dir, short timeouts and delays.
# Run as root, connections run as nobody, and msyncd_own DIR gives a
# directory to that user.  msyncd_start NAME [ARGS] starts the daemon
# (its log in $TRASH/NAME/log) and waits, bounded, for its port;
# msyncd_stop NAME kills it by its pid; start registers the stop with
# test_atexit.  $TRASH/alice.secret and bob.secret hold the secrets.

test_lazy_prereq OPENSSL 'command -v openssl'
test_lazy_prereq SOCKET_ACTIVATE 'command -v systemd-socket-activate'
test_lazy_prereq PYTHON 'command -v python3'

# The Unix user the connections run as (root only).
MSYNCD_USER=
[ "$(id -u)" = 0 ] && MSYNCD_USER=nobody

# The connections run as nobody and keep their stores in $TRASH: a trash
# under a directory nobody cannot enter (a clone in /root) cannot work.
if [ -n "$MSYNCD_USER" ] &&
    ! runuser -u "$MSYNCD_USER" -- test -x "$TRASH" 2>/dev/null; then
	skip_all="$MSYNCD_USER cannot reach $TRASH; run with MSYNC_TEST_TRASH_ROOT=/tmp/msync-trash (or clone outside /root)"
	test_done
fi

# msyncd_own DIR...: hand directories to the daemon's user.
msyncd_own() {
	[ -z "$MSYNCD_USER" ] && return 0
	chown -R "$MSYNCD_USER" "$@"
}

msyncd_free_port_() {
	python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# msyncd_cert_ NAME CA SUBJ [SAN]: a key and a certificate signed by CA.
msyncd_cert_() {
	local d=$TRASH/pki
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	    -keyout "$d/$1.key" -out "$d/$1.csr" -subj "$3" 2>/dev/null &&
	if [ -n "${4:-}" ]; then
		printf 'subjectAltName=%s\n' "$4" >"$d/$1.ext"
	else
		printf 'extendedKeyUsage=clientAuth\n' >"$d/$1.ext"
	fi &&
	openssl x509 -req -in "$d/$1.csr" -CA "$d/$2.pem" -CAkey "$d/$2.key" \
	    -CAcreateserial -out "$d/$1.pem" -days 2 \
	    -extfile "$d/$1.ext" 2>/dev/null
}

msyncd_ca_() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
	    -nodes -keyout "$TRASH/pki/$1.key" -out "$TRASH/pki/$1.pem" \
	    -days 2 -subj "/CN=$1" 2>/dev/null
}

msyncd_pki() {
	mkdir -p "$TRASH/pki" &&
	msyncd_ca_ ca && msyncd_ca_ rogue-ca &&
	msyncd_cert_ srv ca /CN=localhost IP:127.0.0.1,DNS:localhost &&
	msyncd_cert_ rogue rogue-ca /CN=localhost IP:127.0.0.1,DNS:localhost &&
	msyncd_cert_ alice ca /CN=alice &&
	msyncd_cert_ mallory rogue-ca /CN=alice &&
	chmod 644 "$TRASH"/pki/*.key &&
	SRV_FP=$(openssl x509 -in "$TRASH/pki/srv.pem" -noout -fingerprint \
	    -sha256 | sed 's/.*=//') &&
	printf 'alice-secret\n' >"$TRASH/alice.secret" &&
	printf 'bob-secret\n' >"$TRASH/bob.secret" &&
	SSL_CERT_FILE=$TRASH/pki/ca.pem &&
	export SSL_CERT_FILE SRV_FP
}

msyncd_conf() {
	local n=$1 port d=$TRASH/$1
	port=$(msyncd_free_port_) || return 1
	eval "MSYNCD_PORT_$n=$port"
	MSYNCD_PORT=$port
	export MSYNCD_PORT "MSYNCD_PORT_$n"
	mkdir -p "$d/srv" "$d/cache" && msyncd_own "$d/srv" "$d/cache" &&
	printf 'alice:alice-secret\nbob:bob-secret\n' >"$d/secrets" &&
	chmod 600 "$d/secrets" &&
	{
		echo "# test daemon $n"
		echo "address = 127.0.0.1"
		echo "port = $port"
		[ -n "$MSYNCD_USER" ] && echo "user = $MSYNCD_USER"
		echo "cert = $TRASH/pki/srv.pem"
		echo "key = $TRASH/pki/srv.key"
		echo "client ca = $TRASH/pki/ca.pem"
		echo "secrets file = $d/secrets"
		echo "cache dir = $d/cache"
		echo "auth delay = 0.05"
		echo "handshake timeout = 2"
		echo "timeout = 30"
		echo "max memory = 0"
	} >"$d/msyncd.conf"
}

# msyncd_wait_port_ PORT: true once the port answers (at most 10 s).
msyncd_wait_port_() {
	local i
	for i in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

msyncd_start() {
	local n=$1 port
	shift
	eval "port=\$MSYNCD_PORT_$n"
	"$MSYNC" --daemon --config "$TRASH/$n/msyncd.conf" "$@" \
	    2>>"$TRASH/$n/log" &
	echo $! >"$TRASH/$n/pid"
	test_atexit msyncd_stop "$n"
	msyncd_wait_port_ "$port" || {
		echo "msyncd_start: $n did not come up" >&2
		cat "$TRASH/$n/log" >&2
		return 1
	}
}

msyncd_stop() {
	local pid
	[ -f "$TRASH/$1/pid" ] || return 0
	read -r pid <"$TRASH/$1/pid" || return 0
	[ -n "$pid" ] && kill "$pid" 2>/dev/null
	rm -f "$TRASH/$1/pid"
	return 0
}

# py_count DIR: messages in a Maildir and its Maildir++ folders, read by
# Python's mailbox module (not by msync).
py_count() {
	python3 - "$1" <<'EOF'
import mailbox, sys
md = mailbox.Maildir(sys.argv[1], factory=None, create=False)
n = len(md)
for f in md.list_folders():
    n += len(md.get_folder(f))
print(n)
EOF
}

# msyncd_gen DIR N TAG: N distinct messages of about 4 KB in a new
# Maildir DIR (random text, so that lz4 cannot shrink what --bwlimit
# paces), Message-IDs <i@TAG>, the same for the same TAG.
msyncd_gen() {
	python3 - "$1" "$2" "$3" <<'EOF'
import base64, os, random, sys, zlib
root, n, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3]
random.seed(zlib.crc32(tag.encode()))
for d in ("cur", "new", "tmp"):
    os.makedirs(os.path.join(root, d), exist_ok=True)
for i in range(n):
    raw = bytes(random.getrandbits(8) for _ in range(3000))
    body = base64.encodebytes(raw).decode()
    name = "%d.%s.%d:2,S" % (1700000000 + i, tag, i)
    with open(os.path.join(root, "cur", name), "w") as f:
        f.write("From: a@example.org\nTo: b@example.org\n"
                "Subject: message %d\nMessage-ID: <%d@%s>\n\n%s"
                % (i, i, tag, body))
EOF
}

# py_check DIR N: exactly N messages in the Maildir DIR, read by Python's
# mailbox module, each with a Message-ID, none twice.
py_check() {
	python3 - "$1" "$2" <<'EOF'
import mailbox, sys
md = mailbox.Maildir(sys.argv[1], factory=None, create=False)
ids = [m["Message-ID"] for m in md]
dups = len(ids) - len(set(ids))
print("messages %d, duplicates %d" % (len(ids), dups))
sys.exit(0 if len(ids) == int(sys.argv[2]) and dups == 0 and None not in ids else 1)
EOF
}

# msyncd_s2s_conf: the configurations of daemons d1 and d2 for a server-
# to-server pair (after msyncd_pki): a writable module "mail" with a
# root per user under $TRASH/dN/srv, for alice.
msyncd_s2s_conf() {
	local n
	for n in d1 d2; do
		msyncd_conf $n &&
		cat >>"$n/msyncd.conf" <<-EOF || return 1
		[mail]
		path = $TRASH/$n/srv/%u
		users = alice
		read only = no
		EOF
	done
}
