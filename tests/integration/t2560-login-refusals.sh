#!/usr/bin/env bash
test_description='exit statuses of a refused IMAP login, as a batch needs
them: a come-back-later response code (RFC 5530 UNAVAILABLE, LIMIT,
INUSE) is 75, "retry later"; a wrong password (AUTHENTICATIONFAILED, or
a NO without a code) is 77, "needs a person"; msync-report groups them
so; no message is written to the destination'
. "$(dirname "$0")/lib.sh"

test_lazy_prereq PYTHON 'command -v python3'
test_require_prereq PYTHON

REPORT=$SRCDIR/scripts/msync-report

# refuser LINE: a one-connection IMAP server on 127.0.0.1 (clear text,
# the client says ;tls=none) that answers the login with "TAG LINE";
# its port is written to ./port.
refuser() {
	rm -f port
	python3 - "$1" >port <<'PY' &
import socket, sys
answer = sys.argv[1].encode()
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(1)
print(s.getsockname()[1], flush=True)
s.settimeout(60)
c, _ = s.accept()
c.settimeout(60)
f = c.makefile("rb")
c.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] refuser\r\n")
for line in f:
    w = line.split(b" ")
    tag, cmd = w[0], (w[1] if len(w) > 1 else b"").upper().strip()
    if cmd in (b"AUTHENTICATE", b"LOGIN"):
        c.sendall(tag + b" " + answer + b"\r\n")
    elif cmd == b"CAPABILITY":
        c.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR\r\n" + tag + b" OK\r\n")
    elif cmd == b"LOGOUT":
        c.sendall(b"* BYE\r\n" + tag + b" OK\r\n")
        break
    else:
        c.sendall(tag + b" BAD no\r\n")
c.close()
PY
	refuser_pid=$!
	for _ in $(seq 1 100); do
		[ -s port ] && return 0
		sleep 0.05
	done
	return 1
}

# try NAME STATUS LINE: msync against a refuser answering LINE ends
# with STATUS and a JSON report res/NAME.json; no message is written.
try() {
	refuser "$3" &&
	test_expect_code "$2" "$MSYNC" --json --backup --passcmd "echo pw" \
	    "imap://$1@127.0.0.1:$(cat port);tls=none" "dst-$1" \
	    >"res/$1.json" 2>"err-$1" &&
	wait "$refuser_pid" &&
	cat "err-$1" &&
	test -z "$(find "dst-$1" -type f \( -path "*/cur/*" -o -path "*/new/*" \) 2>/dev/null)"
}

test_expect_success 'setup' 'mkdir res'

test_expect_success '[UNAVAILABLE]: 75, retry later' '
	try unavail 75 "NO [UNAVAILABLE] Temporary authentication failure" &&
	grep "refused the login of .unavail.: \[UNAVAILABLE\] Temporary" err-unavail
'

test_expect_success '[LIMIT] and [INUSE]: 75' '
	try limit 75 "NO [LIMIT] Too many connections from your address" &&
	try inuse 75 "NO [INUSE] Mailbox in use"
'

test_expect_success '[AUTHENTICATIONFAILED]: 77, needs a person' '
	try wrongpw 77 "NO [AUTHENTICATIONFAILED] Authentication failed." &&
	grep "AUTHENTICATIONFAILED" err-wrongpw &&
	grep "\"status\":77,\"status_text\":\"login refused\"" res/wrongpw.json &&
	python3 -c "import json, sys, jsonschema
jsonschema.validate(json.load(open(\"res/wrongpw.json\")), json.load(open(sys.argv[1])))" \
	    "$SRCDIR/docs/report.schema.json"
'

test_expect_success 'a NO without a code is taken as bad credentials: 77' '
	try nocode 77 "NO Login failed"
'

test_expect_success 'msync-report groups them by status' '
	test_expect_code 1 python3 "$REPORT" res/*.json >out &&
	cat out &&
	grep "accounts: 5   done: 0   retry: 3   needs a person: 2   left: 0" out &&
	grep "^== retry, status 75: temporary failure" out &&
	grep "^== needs a person, status 77: login refused" out &&
	{ python3 "$REPORT" --json res/*.json >out.json || :; } &&
	python3 -c "import json; d = json.load(open(\"out.json\")); assert d[\"by_status\"] == {\"75\": [\"inuse\", \"limit\", \"unavail\"], \"77\": [\"nocode\", \"wrongpw\"]}, d"
'

test_done
