#!/usr/bin/env bash
test_description='msync --daemon under attack (issue 15, "Bad input"):
port scans, TLS garbage, a silent client, many connections at once, a
wrong secret 1000 times, module names and paths with "..", a symlinked
store root, a secrets file others can read; each one a log line, the
daemon still serving, and no file outside a module root touched'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-msyncd.sh"

test_require_prereq OPENSSL PYTHON PERL

U() { printf 'msyncs://%s@127.0.0.1:%s/%s' "$1" "$MSYNCD_PORT_d1" "$2"; }
SA=";secret-file=$TRASH/alice.secret"

# attack WHAT [ARGS]: the Python side of an attack on the daemon's port.
attack() {
	python3 "$TRASH/attack.py" "$MSYNCD_PORT_d1" "$@"
}

# The daemon still serves a real client.
still_serves() {
	"$MSYNC" --list "$(U alice mail/Maildir)$SA" >/dev/null
}

# The daemon's pid is alive.
alive() {
	kill -0 "$(cat d1/pid)"
}

test_expect_success 'setup: a daemon, a store, a file outside every module' '
	msyncd_pki && msyncd_conf d1 &&
	cat >>d1/msyncd.conf <<-EOF &&
	max connections = 6
	max connections per address = 4
	max auth failures = 5
	auth failure window = 4
	timeout = 3
	[mail]
	path = $TRASH/d1/srv/%u
	users = alice, bob
	read only = no
	EOF
	mkdir -p outside && make_maildir outside/Maildir &&
	deliver outside/Maildir "" >/dev/null &&
	chmod -R a+rwX outside &&
	maildir_digest outside >outside.digest &&
	find outside | sort >outside.files &&
	msyncd_start d1 &&
	make_maildir a && deliver a "" >/dev/null && deliver a "" >/dev/null &&
	"$MSYNC" a "$(U alice mail/Maildir)$SA" &&
	cat >attack.py <<-\EOF
	import os, resource, socket, ssl, sys, time
	port = int(sys.argv[1]); what = sys.argv[2]
	def tls(sock):
	    ctx = ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
	    return ctx.wrap_socket(sock, server_hostname="127.0.0.1")
	if what == "scan":
	    for i in range(50):
	        s = socket.create_connection(("127.0.0.1", port)); s.close()
	elif what == "garbage":
	    for i in range(20):
	        s = socket.create_connection(("127.0.0.1", port))
	        s.sendall(os.urandom(4096)); s.settimeout(10)
	        try:
	            s.recv(100)
	        except OSError:
	            pass
	        s.close()
	elif what == "silent":
	    s = socket.create_connection(("127.0.0.1", port)); s.settimeout(20)
	    t = time.monotonic(); d = s.recv(10)
	    print("closed after", round(time.monotonic() - t), "s with", d)
	    sys.exit(0 if d == b"" else 1)
	elif what == "many":
	    n = int(sys.argv[3]); socks = []
	    # One descriptor per connection: as many as the hard limit allows.
	    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
	    want = n + 64 if hard == resource.RLIM_INFINITY else min(n + 64, hard)
	    if want > soft:
	        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
	    for i in range(n):
	        try:
	            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
	        except OSError as e:
	            print("connect", i, e); break
	    print(len(socks), "connected"); sys.stdout.flush()
	    time.sleep(float(sys.argv[4]))
	    for s in socks: s.close()
	elif what == "greet":
	    s = tls(socket.create_connection(("127.0.0.1", port), timeout=10))
	    s.sendall(sys.argv[3].encode().replace(b"|", b"\n"))
	    print(s.recv(200).decode().strip())
	elif what == "idle":
	    s = tls(socket.create_connection(("127.0.0.1", port), timeout=30))
	    s.sendall(b"MSYNCD/1 mail alice\nSECRET alice-secret\n")
	    print(s.recv(3).decode().strip())
	    t = time.monotonic(); d = b"x"
	    # the server brain speaks first (its handshake line); we never do
	    while d and time.monotonic() - t < 25:
	        try:
	            d = s.recv(100)
	        except (OSError, ssl.SSLError):
	            d = b""
	    print("closed after", round(time.monotonic() - t), "s")
	    sys.exit(0 if d == b"" else 1)
	elif what == "secrets":
	    n = int(sys.argv[3]); got = {}; t = time.monotonic()
	    for i in range(n):
	        try:
	            s = tls(socket.create_connection(("127.0.0.1", port), timeout=10))
	            s.sendall(b"MSYNCD/1 mail alice\nSECRET guess%d\n" % i)
	            a = s.recv(200).decode().strip() or "closed"
	        except (OSError, ssl.SSLError):
	            a = "refused"
	        got[a] = got.get(a, 0) + 1
	    print(got)
	    print("elapsed", int(time.monotonic() - t) + 1)
	EOF
	true
'

test_expect_success 'a port scan: connections that close at once are logged, nothing breaks' '
	attack scan &&
	sleep 0.5 && alive && still_serves &&
	grep -c "127.0.0.1: TLS handshake failed" d1/log
'

test_expect_success 'TLS garbage: the handshake fails, logged, daemon serves on' '
	n=$(grep -c "TLS handshake failed" d1/log) &&
	attack garbage &&
	# Each connection process logs its failure as it ends, which under
	# load can come after the attacker is done: wait for the lines (a
	# bounded loop, not a limit on the daemon).
	i=0 && while [ "$(grep -c "TLS handshake failed" d1/log)" -lt $((n + 20)) ] &&
	    [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done &&
	alive && still_serves &&
	test "$(grep -c "TLS handshake failed" d1/log)" -ge $((n + 20))
'

test_expect_success 'a silent client is dropped after the handshake timeout' '
	attack silent >out &&
	cat out &&
	grep "127.0.0.1: TLS handshake timed out" d1/log &&
	alive
'

test_expect_success 'a client that logs in and goes silent is dropped after the idle timeout' '
	attack idle >out && cat out &&
	grep "^OK" out &&
	grep "user alice module mail: idle timeout: closing" d1/log &&
	alive
'

test_expect_success '10,000 connections at once: at most 6 served, the rest refused, then all is well' '
	attack many 10000 3 >out &
	apid=$! &&
	sleep 1.5 &&
	kids=$(ps -o pid= --ppid "$(cat d1/pid)" | wc -l) &&
	echo "connection processes: $kids" &&
	test "$kids" -le 6 &&
	wait $apid && cat out &&
	grep "refused: too many connections from this address" d1/log &&
	sleep 3 && alive && still_serves
'

test_expect_success 'a wrong secret 1000 times: delayed, then throttled; the right one too, until the window passes' '
	attack secrets 1000 >out && cat out &&
	n=$(grep -c "user alice module mail: login refused: wrong secret" d1/log) &&
	echo "failed logins that reached the check: $n" &&
	# 5 per 4-second window (the config above), and a few in flight
	secs=$(sed -n "s/^elapsed //p" out) &&
	test "$n" -le $(( 5 * (secs / 4 + 1) + 3 )) &&
	test "$n" -lt 100 &&
	grep "127.0.0.1: refused: too many failed logins: throttled" d1/log &&
	test_expect_code 69 "$MSYNC" --list "$(U alice mail/Maildir)$SA" &&
	sleep 5 && still_serves && alive
'

test_expect_success 'a module name with ../ is refused (client and raw greeting)' '
	test_expect_code 64 "$MSYNC" --list "$(U alice ../outside)$SA" &&
	attack greet "MSYNCD/1 ../outside alice|SECRET alice-secret|" >out &&
	grep "ERR malformed greeting" out &&
	grep "malformed greeting .MSYNCD/1 ../outside alice." d1/log &&
	sleep 5 && still_serves
'

test_expect_success 'a store path with .. inside a module is refused, nothing outside touched' '
	test_must_fail "$MSYNC" --backup a "$(U alice mail/../../../../outside/Maildir)$SA" 2>err &&
	grep "store path refused" err &&
	test_must_fail "$MSYNC" --backup a "$(U alice mail/x/../../y)$SA" &&
	maildir_digest outside >now && test_cmp outside.digest now
'

test_expect_success 'a symlinked store root is refused with a log line' '
	ln -s "$TRASH/outside" d1/srv/bob &&
	test_expect_code 77 "$MSYNC" --backup a "$(U bob mail/Maildir);secret-file=$TRASH/bob.secret" 2>err &&
	grep "store root refused" err &&
	grep "user bob module mail: store root .$TRASH/d1/srv/bob. refused: a symbolic link" d1/log &&
	maildir_digest outside >now && test_cmp outside.digest now &&
	find outside | sort >now.files && test_cmp outside.files now.files
'

test_expect_success 'a symlink below the root is refused too' '
	rm d1/srv/bob && mkdir d1/srv/bob && ln -s "$TRASH/outside" d1/srv/bob/link &&
	msyncd_own d1/srv &&
	test_must_fail "$MSYNC" --backup a "$(U bob mail/link/Maildir);secret-file=$TRASH/bob.secret" 2>err &&
	grep "store path refused" err &&
	maildir_digest outside >now && test_cmp outside.digest now
'

test_expect_success 'a secrets file others can read: the daemon refuses to start' '
	msyncd_conf d2 &&
	cat >>d2/msyncd.conf <<-EOF &&
	[mail]
	path = $TRASH/d2/srv
	users = alice
	EOF
	chmod 644 d2/secrets &&
	test_expect_code 64 "$MSYNC" --daemon --config d2/msyncd.conf 2>err &&
	cat err &&
	grep "secrets file .*readable or writable by others.*refusing to start" err
'

test_expect_success 'a broken config: a clear line number, no start' '
	printf "port = 99999\n[m]\npath = /x\nusers = a\n" >bad.conf &&
	test_expect_code 64 "$MSYNC" --daemon --config bad.conf 2>err &&
	grep "bad.conf: line 1: unknown key or bad value" err &&
	printf "[m]\npath = /srv/../etc\nusers = a\n" >bad.conf &&
	test_expect_code 64 "$MSYNC" --daemon --config bad.conf 2>err &&
	grep "line 2" err
'

test_expect_success 'after all this the daemon is alive and the stores intact' '
	alive && still_serves &&
	test "$(py_count d1/srv/alice/Maildir)" = 2 &&
	test_cmp_trees a d1/srv/alice/Maildir &&
	maildir_digest outside >now && test_cmp outside.digest now
'

test_done
