#!/usr/bin/env bash
test_description='passcmd: a missing program, empty output, a failing or killed
command, an over-long line: a clear error naming the command, exit 64,
the stores intact, and the secret in no message, log or report'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-imapd.sh"
. "$TEST_DIR/lib-watch.sh"
test_require_prereq IMAPD

cfg=$XDG_CONFIG_HOME/msync/config

# The password is kept in a file and printed by helper scripts, so that
# no command line holds it: any appearance of it in output is a leak.
pwfile=$TRASH/pw
# no_secret FILE...: the password appears in none of the files.
no_secret() { ! grep -F -q "$IMAPD_PASS" "$@"; }

# fails_with CODE TEXT PASSCMD: a backup of alice into md with PASSCMD
# exits CODE, says TEXT (a grep -E pattern) and leaks nothing.
fails_with() {
	test_expect_code "$1" "$MSYNC" -vvvv --json --backup --passcmd "$3" \
	    "$(imaps_url alice)" md >out 2>err &&
	grep -E -q "$2" err && grep -E -q "$2" out &&
	no_secret err out &&
	test "$(maildir_digest md)" = "$(cat md.digest)"
}

test_expect_success 'start imapd' 'start_imapd'

test_expect_success 'setup: a synced backup of alice, the password in a file' '
	printf "%s\n" "$IMAPD_PASS" >"$pwfile" && chmod 600 "$pwfile" &&
	printf "#!/bin/sh\ncat %s\n" "$pwfile" >pw-ok && chmod +x pw-ok &&
	for i in 1 2 3; do
		gen_message "$i" alice | doveadm_u alice save -m INBOX || return 1
	done &&
	"$MSYNC" --backup --passcmd ./pw-ok "$(imaps_url alice)" md &&
	test "$(count_msgs md)" = 3 &&
	maildir_digest md >md.digest
'

test_expect_success 'a password command that does not exist: 64, "command not found"' '
	fails_with 64 "password command .$TRASH/no-such-pw-helper. failed \(exit 127: command not found\)" \
	    "$TRASH/no-such-pw-helper"
'

test_expect_success 'a command that cannot be run: 64, "cannot be run"' '
	printf "#!/bin/sh\ncat %s\n" "$pwfile" >pw-noexec && chmod 644 pw-noexec &&
	fails_with 64 "failed \(exit 126: cannot be run\)" ./pw-noexec
'

test_expect_success 'a command that prints nothing (or an empty line): 64' '
	fails_with 64 "password command .true. printed nothing" true &&
	fails_with 64 "password command .echo. printed nothing" echo
'

test_expect_success 'a command that prints the password, then fails: 64, its output not shown' '
	printf "#!/bin/sh\ncat %s\necho \"\$(cat %s) on stdout again\"\nexit 3\n" \
	    "$pwfile" "$pwfile" >pw-fail && chmod +x pw-fail &&
	fails_with 64 "password command .\./pw-fail. failed \(exit 3\)" ./pw-fail
'

test_expect_success 'a command killed by a signal: 64, which signal' '
	printf "#!/bin/sh\ncat %s\nkill -9 \$\$\n" "$pwfile" >pw-kill &&
	chmod +x pw-kill &&
	fails_with 64 "password command .\./pw-kill. failed \(exit 137: killed by signal 9\)" ./pw-kill
'

test_expect_success 'a line over the limit is not a password: 64 (not 76)' '
	fails_with 64 "password command .*printed a line over 8192 bytes" \
	    "head -c 9000 /dev/zero | tr \"\\\\0\" x"
'

test_expect_success 'the server is untouched by all of it' '
	doveadm_u -f flow alice "mailbox status" messages INBOX >st &&
	grep -q "messages=3\>" st
'

test_expect_success 'a good command at -vvvv: the secret is in no log line or report' '
	gen_message 4 alice | doveadm_u alice save -m INBOX &&
	"$MSYNC" -vvvv --json --backup --passcmd ./pw-ok "$(imaps_url alice)" \
	    md >out 2>err &&
	test "$(count_msgs md)" = 4 &&
	grep -q "imap: .* > m[0-9]* " err &&
	no_secret err out
'

test_expect_success 'watch mode: a failing passcmd names the pair, exits 64, leaks nothing' '
	mkdir -p "$(dirname "$cfg")" &&
	cat >"$cfg" <<-EOF &&
	pair pw
		a $(imaps_url alice)
		b $TRASH/md
		mode backup
		passcmd $TRASH/pw-fail
	EOF
	chmod 600 "$cfg" &&
	maildir_digest md >md.digest &&
	test_expect_code 64 "$MSYNC" -vvv --watch pw >out 2>err &&
	grep -q "pw: .*password command .*pw-fail. failed (exit 3)" err &&
	grep -q "pw: cannot be synced (usage error): no longer watched" err &&
	no_secret err out &&
	test "$(maildir_digest md)" = "$(cat md.digest)"
'

test_done
