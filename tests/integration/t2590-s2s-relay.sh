#!/usr/bin/env bash
test_description='server to server: the relay loses one side (a TCP
relay that resets the connection to daemon 1, then to daemon 2, mid-run):
exit 75, both stores intact, a re-run completes with each message once;
and a client that steers daemon 1 (RUN lines sent raw over TLS): a path
out of the module, an absolute path, an unknown option, an IMAP store, an
over-long line: each refused with a log line, nothing outside the module
touched'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-msyncd.sh"

test_require_prereq OPENSSL PYTHON PERL

# UP PORT USER MODULE/PATH
UP() {
	printf 'msyncs://%s@127.0.0.1:%s/%s;secret-file=%s' "$2" "$1" "$3" \
	    "$TRASH/$2.secret"
}

# relay NAME UPSTREAM CUT: a cut_relay.py in front of UPSTREAM; its port
# in $RELAY_PORT_NAME.
relay() {
	local p
	python3 "$TEST_DIR/cut_relay.py" "$2" "$3" >"$TRASH/relay.$1" &
	echo $! >"$TRASH/relay.$1.pid"
	test_atexit "kill $! 2>/dev/null"
	for i in $(seq 1 100); do
		p=$(head -1 "$TRASH/relay.$1" 2>/dev/null) && test -n "$p" && break
		sleep 0.05
	done
	test -n "$p" && eval "RELAY_PORT_$1=$p"
}

# settled NAME: until every connection daemon NAME logged in has logged
# its end (bounded): a connection whose client vanished ends when its
# brain has taken in what had reached it, and holds the store's lock till
# then.
settled() {
	local i
	for i in $(seq 1 600); do
		test "$(grep -c "logged in" "$TRASH/$1/log")" = \
		    "$(grep -c "done, status" "$TRASH/$1/log")" && return 0
		sleep 0.1
	done
	return 1
}

N=400

test_expect_success 'two daemons, relays that cut after 300 KB' '
	msyncd_pki && msyncd_s2s_conf &&
	mkdir -p outside && echo keep >outside/file &&
	msyncd_gen d1/srv/alice/big $N t2590 && msyncd_own d1/srv &&
	msyncd_start d1 && msyncd_start d2 &&
	relay c1 $MSYNCD_PORT_d1 300000 && relay c2 $MSYNCD_PORT_d2 300000
'

test_expect_success 'the connection to daemon 2 reset mid-run: 75, stores intact' '
	maildir_digest d1/srv/alice/big >src.before &&
	test_expect_code 75 "$MSYNC" --backup "$(UP $MSYNCD_PORT_d1 alice mail/big)" \
	    "$(UP $RELAY_PORT_c2 alice mail/big)" 2>err &&
	cat err &&
	maildir_digest d1/srv/alice/big >src.after && test_cmp src.before src.after &&
	n=$(py_count d2/srv/alice/big) && echo "copied: $n" &&
	test "$n" -lt $N &&
	settled d2 && settled d1
'

test_expect_success 'the connection to daemon 1 reset mid-run: 75, stores intact' '
	test_expect_code 75 "$MSYNC" --backup "$(UP $RELAY_PORT_c1 alice mail/big)" \
	    "$(UP $MSYNCD_PORT_d2 alice mail/big)" 2>err &&
	cat err &&
	grep "lost" err &&
	maildir_digest d1/srv/alice/big >src.after && test_cmp src.before src.after &&
	n=$(py_count d2/srv/alice/big) && echo "copied: $n" &&
	test "$n" -lt $N &&
	settled d2 && settled d1
'

test_expect_success 'a re-run without the relays: every message once' '
	"$MSYNC" --backup "$(UP $MSYNCD_PORT_d1 alice mail/big)" \
	    "$(UP $MSYNCD_PORT_d2 alice mail/big)" &&
	py_check d2/srv/alice/big $N &&
	test_cmp_trees d1/srv/alice/big d2/srv/alice/big
'

# raw_run RUNLINE: the greeting with a RUN line sent by hand to d1;
# prints what the daemon answered.
raw_run() {
	python3 - "$MSYNCD_PORT_d1" "$TRASH/pki/ca.pem" "$1" <<'EOF'
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
ctx.minimum_version = ssl.TLSVersion.TLSv1_3
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))),
                    server_hostname="127.0.0.1")
s.sendall(b"MSYNCD/1 mail alice RUN\nSECRET alice-secret\n" +
          sys.argv[3].encode() + b"\n")
line = b""
while not line.endswith(b"\n"):
    b = s.recv(1)
    if not b:
        break
    line += b
print(line.decode(errors="replace").rstrip("\n"))
s.close()
EOF
}
OK_TAIL="dry=0 force=0 full=0 stats=0 v=1 z=1 timeout=300 lockwait=10 bwlimit=0 la=0 b=x lb=0 other=y"

test_expect_success 'a well-formed RUN line by hand is accepted (the checks below can fail)' '
	raw_run "RUN mode=backup a=big $OK_TAIL" >ans &&
	echo OK >want && test_cmp want ans
'

test_expect_success 'a path out of the module: refused, logged' '
	raw_run "RUN mode=backup a=..%2F..%2Foutside $OK_TAIL" >ans &&
	grep "^ERR store path refused" ans &&
	raw_run "RUN mode=backup a=%2Fetc $OK_TAIL" >ans &&
	grep "^ERR store path refused" ans &&
	grep "server to server refused: store path refused" d1/log &&
	test "$(cat outside/file)" = keep && test "$(ls outside)" = file
'

test_expect_success 'an option daemon 1 does not take, a repeated one, a bad value: refused' '
	raw_run "RUN mode=backup a=big $OK_TAIL statedir=%2Ftmp" >ans &&
	grep "^ERR malformed greeting" ans &&
	raw_run "RUN mode=backup a=big a=other $OK_TAIL" >ans &&
	grep "^ERR malformed greeting" ans &&
	raw_run "RUN mode=backup a=big ${OK_TAIL/v=1/v=9}" >ans &&
	grep "^ERR malformed greeting" ans &&
	raw_run "RUN mode=sideways a=big $OK_TAIL" >ans &&
	grep "^ERR malformed greeting" ans &&
	raw_run "RUN mode=backup a=b%01ig $OK_TAIL" >ans &&
	grep "^ERR malformed greeting" ans &&
	grep "malformed server-to-server greeting" d1/log
'

test_expect_success 'an IMAP store on either side: refused' '
	raw_run "RUN mode=backup a=big ${OK_TAIL/la=0/la=4}" >ans &&
	grep "^ERR no IMAP stores" ans &&
	raw_run "RUN mode=backup a=big ${OK_TAIL/lb=0/lb=4}" >ans &&
	grep "^ERR no IMAP stores" ans
'

test_expect_success 'an over-long RUN line: refused' '
	long=$(python3 -c "print(\"m=\" + \"x\" * 9000)") &&
	raw_run "RUN mode=backup a=big $OK_TAIL $long" >ans &&
	grep "^ERR malformed greeting" ans
'

test_expect_success 'the daemon still serves after all that' '
	"$MSYNC" --backup "$(UP $MSYNCD_PORT_d1 alice mail/big)" \
	    "$(UP $MSYNCD_PORT_d2 alice mail/big)" &&
	py_check d2/srv/alice/big $N
'

test_done
