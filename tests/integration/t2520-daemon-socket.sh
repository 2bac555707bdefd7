#!/usr/bin/env bash
test_description='msync --daemon under socket activation: the command of
contrib/systemd/msyncd@.service run by systemd-socket-activate, one
process per connection (Accept=yes) and a passed listening socket
(Accept=no); a silent client still times out'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-msyncd.sh"

test_require_prereq OPENSSL PYTHON PERL SOCKET_ACTIVATE

UNIT=$SRCDIR/contrib/systemd/msyncd@.service

# The unit's ExecStart, with the installed paths replaced by ours.
unit_cmd() {
	sed -n 's/^ExecStart=//p' "$UNIT" |
	sed "s|/usr/local/bin/msync|$MSYNC|; s|/etc/msync/msyncd.conf|$TRASH/d1/msyncd.conf|"
}

# activate NAME [--accept]: systemd-socket-activate on a new port.
activate() {
	local n=$1 port
	shift
	port=$(msyncd_free_port_) || return 1
	SA_PORT=$port
	# shellcheck disable=SC2046  # the unit's command line is split on purpose
	systemd-socket-activate -l "127.0.0.1:$port" "$@" \
	    $(unit_cmd) 2>>"$TRASH/$n.log" &
	echo $! >"$TRASH/$n.pid" &&
	test_atexit "kill \$(cat '$TRASH/$n.pid') 2>/dev/null" &&
	msyncd_wait_port_ "$port"
}

U() { printf 'msyncs://alice@127.0.0.1:%s/%s;secret-file=%s' "$SA_PORT" "$1" "$TRASH/alice.secret"; }

test_expect_success 'setup: the config and a Maildir' '
	msyncd_pki && msyncd_conf d1 &&
	cat >>d1/msyncd.conf <<-EOF &&
	[mail]
	path = $TRASH/d1/srv/%u
	users = alice
	read only = no
	EOF
	make_maildir a && make_folder a Lists &&
	for i in 1 2 3; do deliver a "" S >/dev/null || return 1; done &&
	deliver "$(folder_path a Lists)" "" >/dev/null &&
	unit_cmd | grep -- "--daemon --config $TRASH/d1/msyncd.conf"
'

test_expect_success 'Accept=yes: each connection its own process, sync works' '
	activate sa1 --accept &&
	"$MSYNC" --backup a "$(U mail/Maildir)" &&
	test "$(py_count d1/srv/alice/Maildir)" = 4 &&
	test_cmp_trees a d1/srv/alice/Maildir &&
	deliver a "" >/dev/null &&
	"$MSYNC" a "$(U mail/Maildir)" &&
	test "$(py_count d1/srv/alice/Maildir)" = 5 &&
	test "$(grep -c "user alice module mail: logged in" sa1.log)" = 2 &&
	! grep "listening on" sa1.log
'

test_expect_success 'Accept=yes: a wrong secret and a silent client are logged' '
	printf "bad\n" >bad.secret &&
	test_expect_code 77 "$MSYNC" --list "msyncs://alice@127.0.0.1:$SA_PORT/mail;secret-file=$TRASH/bad.secret" &&
	grep "user alice module mail: login refused: wrong secret" sa1.log &&
	python3 -c "
import socket, sys
s = socket.create_connection((\"127.0.0.1\", $SA_PORT)); s.settimeout(20)
sys.exit(0 if s.recv(10) == b\"\" else 1)" &&
	grep "TLS handshake timed out" sa1.log
'

test_expect_success 'Accept=no: the daemon accepts on the socket it was given' '
	activate sa2 &&
	deliver a "" >/dev/null &&
	"$MSYNC" a "$(U mail/Maildir)" &&
	test "$(py_count d1/srv/alice/Maildir)" = 6 &&
	test_cmp_trees a d1/srv/alice/Maildir &&
	grep "listening on" sa2.log &&
	grep "user alice module mail: done, status 0" sa2.log
'

test_done
