#!/usr/bin/env bash
test_description='IMAP store: connection, certificate and login failures give one clear line and the exit status of DESIGN.md; nothing is written'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-imapd.sh"
test_require_prereq IMAPD

PASSCMD="echo $IMAPD_PASS"

# run_fail STATUS PATTERN ARGS...: msync ARGS must exit STATUS, say
# PATTERN on one line of stderr (the last one), and leave md without a
# message (the Maildir side may have been created already: both sides
# open their stores at once).
run_fail() {
	local want=$1 pat=$2
	shift 2
	rm -rf md &&
	test_expect_code "$want" msync "$@" 2>err &&
	cat err &&
	tail -n 1 err | grep -E "$pat" &&
	test_line_count = 1 err &&
	{ test_path_is_missing md || test "$(count_all md)" = 0; }
}

test_expect_success 'start imapd' 'start_imapd &&
	gen_message 1 a | doveadm_u alice save -m INBOX'

test_expect_success 'connection refused: 69' '
	port=$(imapd_free_port_) &&
	run_fail 69 "cannot connect to 127.0.0.1 port $port: Connection refused" \
	    --backup --passcmd "$PASSCMD" "imaps://alice@127.0.0.1:$port" md
'

test_expect_success 'unknown CA (self-signed, not pinned): 69 and how to pin' '
	run_fail 69 "certificate of 127.0.0.1 is not trusted: self-signed certificate \(to trust this certificate anyway, add ;fingerprint=$IMAPD_FP to the location\)" \
	    --backup --passcmd "$PASSCMD" "imaps://alice@127.0.0.1:$IMAPS_PORT" md
'

test_expect_success 'wrong host name (trusted CA, other name): 69' '
	SSL_CERT_FILE=$IMAPD_DIR/cert.pem run_fail 69 "certificate of 127.0.0.1 is not trusted: IP address mismatch" \
	    --backup --passcmd "$PASSCMD" "imaps://alice@127.0.0.1:$IMAPS_PORT" md
'

test_expect_success 'the right host name with the CA trusted works' '
	SSL_CERT_FILE=$IMAPD_DIR/cert.pem msync --list --passcmd "$PASSCMD" \
	    "imaps://alice@localhost:$IMAPS_PORT" >list &&
	grep "^INBOX	1	" list
'

test_expect_success 'a wrong pin: 69, and the right one is named' '
	run_fail 69 "does not match the pinned fingerprint: it is $IMAPD_FP" \
	    --backup --passcmd "$PASSCMD" \
	    "imaps://alice@127.0.0.1:$IMAPS_PORT;fingerprint=sha256:$(printf "%064d" 0)" md
'

test_expect_success 'wrong password: 77 (a person must fix it)' '
	run_fail 77 "refused the login of .alice.: \[AUTHENTICATIONFAILED\] Authentication failed" \
	    --backup --passcmd "echo wrong" "$(imaps_url alice)" md
'

test_expect_success 'a failing password command: 64' '
	run_fail 64 "the password command .false. failed" \
	    --backup --passcmd false "$(imaps_url alice)" md
'

test_expect_success 'no password source and no terminal: 64' '
	HOME=$TRASH/nohome run_fail 64 "no password for alice@127.0.0.1" \
	    --backup "$(imaps_url alice)" md </dev/null
'

test_expect_success 'the password from ~/.netrc' '
	printf "machine 127.0.0.1 login alice password %s\n" "$IMAPD_PASS" \
	    >"$HOME/.netrc" && chmod 600 "$HOME/.netrc" &&
	msync --list "$(imaps_url alice)" </dev/null >list &&
	grep "^INBOX	1	" list && rm "$HOME/.netrc"
'

test_expect_success 'a password in the URL is refused: 64' '
	rm -rf md && test_expect_code 64 msync --backup \
	    "imaps://alice:secret@127.0.0.1:$IMAPS_PORT" md 2>err &&
	grep "a password in the location is refused" err &&
	test_path_is_missing md
'

test_expect_success 'imap:// without STARTTLS and no ;tls=none: 69' '
	python3 -c "
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((\"127.0.0.1\", 0)); s.listen(1)
print(s.getsockname()[1]); sys.stdout.flush()
c, _ = s.accept()
c.sendall(b\"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] plain only\\r\\n\")
f = c.makefile(\"rb\")
for line in f:
    tag = line.split()[0].decode()
    if b\"LOGOUT\" in line.upper():
        c.sendall(b\"* BYE\\r\\n\" + tag.encode() + b\" OK bye\\r\\n\"); break
    c.sendall(tag.encode() + b\" BAD no\\r\\n\")
" >port.out &
	i=0 && while [ ! -s port.out ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done &&
	port=$(cat port.out) &&
	run_fail 69 "does not offer STARTTLS: use imaps://, or add ;tls=none" \
	    --backup --passcmd "$PASSCMD" "imap://alice@127.0.0.1:$port" md &&
	wait
'

test_expect_success 'the read-only source was never changed' '
	doveadm_u -f tab alice fetch flags mailbox INBOX >flags &&
	! grep Seen flags
'

test_done
