#!/usr/bin/env bash
test_description='mbox: a mailbox file (or directory) that cannot be read is an error for that mailbox, never an empty or deleted one: EIO injected into its reads, mode 000 as an unprivileged user, in backup and two-way runs; the rest of the store syncs and the other side keeps its copy'
. "$(dirname "$0")/lib.sh"

test_require_prereq PERL

# mbox_msg FILE N: appends message N to the mbox FILE.
mbox_msg() {
	printf "From u@example.org Mon Jan  1 10:00:%02d 2024\nSubject: m%d\nMessage-ID: <%d.%s@t>\n\nbody %d\n\n" \
	    $(($2 % 60)) "$2" "$2" "$(basename "$1")" "$2" >>"$1"
}

# eio PATH CMD...: CMD with EIO injected into every read of PATH.
eio() {
	local p=$1
	shift
	env "ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0" \
	    strace -f -qq -o /dev/null -P "$p" \
	    -e trace=read,pread64 -e inject=read,pread64:error=EIO "$@"
}

setup() {
	rm -rf mb md home/.local/state home/.cache &&
	mkdir -p mb/sub &&
	for i in 1 2 3; do mbox_msg mb/INBOX $i || return 1; done &&
	for i in 4 5 6 7; do mbox_msg mb/Work $i || return 1; done &&
	for i in 8 9; do mbox_msg mb/sub/Arch $i || return 1; done
}

test_lazy_prereq STRACE_INJECT '
	strace -qq -o /dev/null -P /nonexistent -e trace=read \
	    -e inject=read:error=EIO true
'

test_expect_success 'setup: an mbox directory synced to a Maildir' '
	setup && "$MSYNC" --backup mbox:mb md &&
	test "$(count_msgs md/.Work)" = 4 && test "$(count_msgs md/.sub.Arch)" = 2
'

test_expect_success STRACE_INJECT 'backup, EIO reading Work: exit 1, Work named, its Maildir copy kept; INBOX still syncs' '
	setup && "$MSYNC" --backup mbox:mb md &&
	mbox_msg mb/INBOX 10 && mbox_msg mb/Work 11 &&
	test_expect_code 1 eio "$TRASH/mb/Work" \
	    "$MSYNC" --backup mbox:mb md 2>err &&
	grep "mb/Work" err && grep "mailbox .Work" err &&
	test "$(count_msgs md/.Work)" = 4 &&
	test "$(count_msgs md)" = 4 &&
	"$MSYNC" --backup mbox:mb md && test "$(count_msgs md/.Work)" = 5
'

test_expect_success STRACE_INJECT 'two-way, EIO reading Work (changed, so it must be read): nothing deleted on the Maildir side' '
	setup && "$MSYNC" mbox:mb md &&
	deliver md/.Work "" >/dev/null && mbox_msg mb/Work 12 &&
	test_expect_code 1 eio "$TRASH/mb/Work" "$MSYNC" mbox:mb md 2>err &&
	grep "mb/Work" err &&
	test "$(count_msgs md/.Work)" = 5 && test "$(grep -c "^From " mb/Work)" = 5 &&
	"$MSYNC" mbox:mb md &&
	test "$(count_msgs md/.Work)" = 6 && test "$(grep -c "^From " mb/Work)" = 6
'

test_expect_success STRACE_INJECT 'a single-file store (INBOX) that cannot be read: exit 1, the Maildir keeps its messages' '
	rm -rf one md1 && mbox_msg one 1 && mbox_msg one 2 &&
	"$MSYNC" --backup mbox:one md1 && mbox_msg one 3 &&
	test_expect_code 1 eio "$TRASH/one" "$MSYNC" --backup mbox:one md1 2>err &&
	grep "one" err && test "$(count_msgs md1)" = 2
'

# chmod 000 stops reads only for an unprivileged user.
test_lazy_prereq NOBODY_OK '
	test "$(id -u)" = 0 &&
	mkdir -p "$TRASH/nbcheck" && chown nobody:nogroup "$TRASH/nbcheck" &&
	setpriv --reuid=nobody --regid=nogroup --clear-groups \
	    touch "$TRASH/nbcheck/x" &&
	setpriv --reuid=nobody --regid=nogroup --clear-groups \
	    test -x "$MSYNC"
'
as_nobody() {
	setpriv --reuid=nobody --regid=nogroup --clear-groups \
	    env HOME="$TRASH/nbhome" XDG_STATE_HOME="$TRASH/nbhome/state" \
	    XDG_CACHE_HOME="$TRASH/nbhome/cache" "$@"
}

# nb_setup: the stores in ./nb, owned by nobody (who cannot write the
# trash directory itself).
nb_setup() {
	rm -rf nb && mkdir nb && (cd nb && setup) && rm -rf nbhome &&
	mkdir nbhome && chown -R nobody:nogroup nb nbhome
}

test_expect_success NOBODY_OK 'mode 000 on a changed mbox file: listed as unreadable, not skipped' '
	nb_setup && cd nb &&
	as_nobody "$MSYNC" --backup mbox:mb md &&
	mbox_msg mb/Work 10 && chmod 000 mb/Work && mbox_msg mb/INBOX 10 &&
	test_expect_code 1 as_nobody "$MSYNC" --backup mbox:mb md 2>err;
	rc=$?; chmod 644 mb/Work; test $rc = 0 &&
	grep "mb/Work" err &&
	test "$(count_msgs md/.Work)" = 4 && test "$(count_msgs md)" = 4 &&
	cd ..
'

test_expect_success NOBODY_OK 'mode 000 on a new mbox file: listed as unreadable (not taken for a non-mbox file)' '
	nb_setup && cd nb &&
	mbox_msg mb/New 1 && chmod 000 mb/New && chown nobody mb/New &&
	test_expect_code 1 as_nobody "$MSYNC" --backup mbox:mb md 2>err;
	rc=$?; chmod 644 mb/New; test $rc = 0 &&
	grep "mb/New" err && test "$(count_msgs md/.Work)" = 4 &&
	cd ..
'

test_expect_success NOBODY_OK 'mode 000 on a subdirectory: the listing fails, nothing is deleted' '
	nb_setup && cd nb &&
	as_nobody "$MSYNC" --backup mbox:mb md &&
	chmod 000 mb/sub &&
	test_must_fail as_nobody "$MSYNC" --backup mbox:mb md 2>err;
	rc=$?; chmod 755 mb/sub; test $rc = 0 &&
	grep "mb/sub" err &&
	test "$(count_msgs md/.sub.Arch)" = 2 && test "$(count_msgs md/.Work)" = 4 &&
	cd ..
'

test_done
