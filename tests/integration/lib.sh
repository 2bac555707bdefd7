# lib.sh -- msync's shell test library, after git's t/test-lib.sh.
#
# This is bash (not POSIX sh): scripts are run as `bash tNNNN-name.sh`.
# A test script looks like this:
#
#	#!/usr/bin/env bash
#	test_description='local pair: a new message is copied'
#	. "$(dirname "$0")/lib.sh"
#
#	test_expect_success 'setup' '
#		make_maildir a && make_maildir b &&
#		deliver a "" S
#	'
#	test_expect_success SSHD 'sync over ssh' '
#		"$MSYNC" a b && test_cmp_trees a b
#	'
#	test_done
#
# Each test body is eval'd in the script's shell, in the trash directory,
# with stdin from /dev/null; it must be an && chain (as in git), since
# `set -e` is not in force.  Its output goes to a log that is printed (as
# TAP comments) when the test fails; `-v` shows it as it runs instead.
#
# Script options: -v/--verbose  show the output of the test bodies
#                 -i/--immediate stop at the first failed test
#                 -d/--debug     keep the trash directory even on success
#                 -x             trace the test bodies (set -x)
# The same through the environment: MSYNC_TEST_VERBOSE=1,
# MSYNC_TEST_IMMEDIATE=1, MSYNC_TEST_DEBUG=1.
#
# Output is TAP: "ok N - title", "not ok N - title", "ok N # skip title
# (missing PREREQ)", "not ok N - title # TODO known breakage" and a final
# "1..N".  The exit status is 1 if any test failed, else 0.
#
# What a script gets:
#   $MSYNC        absolute path of the msync under test (default: the
#                 repository's ./msync; set MSYNC to test another one);
#                 the directory holding an `msync` link to it is first in
#                 PATH, so plain `msync` works too
#   $SRCDIR       absolute path of the repository's top directory
#   $TEST_DIR     absolute path of tests/integration
#   $TRASH        the script's own empty directory, its working directory;
#                 tests/integration/trash/<script>/ (or under
#                 $MSYNC_TEST_TRASH_ROOT).  Removed when all tests pass,
#                 kept (and its path printed) when one fails.
#   HOME, XDG_*   point inside $TRASH/home (see xdg_isolate), so no test
#                 reads or writes the real home or state directories
#   LC_ALL=C TZ=UTC, and sanitizer options that make a sanitizer report
#                 exit with status 86, which test_must_fail refuses
#
# Test functions:
#   test_description TEXT                    (or set the variable before .)
#   test_expect_success [PREREQS] TITLE BODY
#   test_expect_failure [PREREQS] TITLE BODY  a known breakage: reported
#                 as TODO while it fails, as "fixed" when it passes
#   test_done     print the plan, clean up, exit
#   skip_all=REASON; test_done      skip the whole script
#   test_when_finished CMD...        run CMD after the current test body
#   test_atexit CMD...               run CMD when the script ends (daemons)
#
# Prerequisites (PREREQS is a comma-separated list, `!X` negates):
#   test_set_prereq NAME, test_have_prereq NAME[,NAME...],
#   test_lazy_prereq NAME 'script' (evaluated once, on first use),
#   test_require_prereq NAME...   skip the rest of the script unless met.
#   Built in: SSHD (sshd, ssh, /run/sshd), DOVECOT (dovecot, doveadm),
#   MBSYNC, MBLAZE (mlist), RSYNC, PERL, MSYNC (the binary exists),
#   CORPUS (scripts/mkcorpus.sh can work: npm or a filled cache),
#   ROOT, NOT_ROOT (file permissions are enforced), SAN (msync was built
#   with sanitizers: MSYNC_TEST_SAN=1, set by the Makefile/CI).
#   Skip-or-die: when MSYNC_TEST_SSHD=true (or MSYNC_TEST_DOVECOT=true) a
#   missing SSHD (DOVECOT) is a test failure, not a skip; =false forces a
#   skip.  Other libraries can register such a variable with
#   test_prereq_env NAME VAR.
#
# Assertions:
#   test_must_fail CMD...      CMD must exit non-zero, but not crash
#                              (signal, sanitizer report, 126/127)
#   test_expect_code N CMD...  CMD must exit with status N exactly
#   test_might_fail CMD...     CMD may fail, but must not crash
#   test_cmp EXPECTED ACTUAL   diff -u
#   test_path_is_file F, test_path_is_dir D, test_path_is_missing P
#   test_line_count OP N FILE  e.g. test_line_count = 3 out
#
# Maildir helpers:
#   make_maildir DIR           DIR/cur, DIR/new, DIR/tmp
#   make_folder ROOT NAME      Maildir++ folder: NAME "A/B" (or "A.B")
#                              becomes ROOT/.A.B; ROOT is made a Maildir
#   folder_path ROOT NAME      print that path
#   gen_message N [TAG]        print a small RFC 5322 message; the same
#                              N and TAG always give the same bytes
#   deliver DIR [FILE|-|""] [FLAGS]
#                              store a message (FILE, stdin for -, a new
#                              gen_message when empty or absent) into
#                              DIR/cur as "time.pid_n.host:2,FLAGS", or
#                              into DIR/new when no FLAGS argument is given
#                              (an empty FLAGS argument means cur/ with
#                              ":2,").  Prints the new file's path.
#   count_msgs DIR             messages in DIR/cur + DIR/new
#   count_all ROOT             messages in every folder under ROOT
#   maildir_digest [--names] ROOT
#                              canonical sorted listing, one line per
#                              message: "folder  md5  flags", md5 of the
#                              content with CRLF turned into LF, flags
#                              sorted ("-" for none).  new/ and cur/ are
#                              not told apart; tmp/ and other files are
#                              ignored.  folder is the directory relative
#                              to ROOT ("." for ROOT); with --names it is
#                              the mailbox name (INBOX, ".A.B" -> "A/B").
#   test_cmp_trees ROOT1 ROOT2 compare the digests of two trees
#   set_flags FILE FLAGS       rename a cur/ message to carry FLAGS
#   make_corpus DIR [N]        DIR/maildir (+ DIR/mbox) with N real messages
#                              from scripts/mkcorpus.sh (prereq CORPUS)
#   xdg_isolate                (done at start) HOME and XDG_* into $TRASH

if [ -z "${BASH_VERSION:-}" ]; then
	echo "lib.sh: the test scripts need bash: run 'bash $0'" >&2
	exit 1
fi

# --- options -------------------------------------------------------

test_verbose=${MSYNC_TEST_VERBOSE:-0}
test_immediate=${MSYNC_TEST_IMMEDIATE:-0}
test_debug=${MSYNC_TEST_DEBUG:-0}
test_trace=0
while [ $# -gt 0 ]; do
	case $1 in
	-v|--verbose) test_verbose=1 ;;
	-i|--immediate) test_immediate=1 ;;
	-d|--debug) test_debug=1 ;;
	-x) test_trace=1 ;;
	-h|--help)
		echo "${test_description:-(no description)}"
		exit 0 ;;
	*) echo "lib.sh: unknown option '$1'" >&2; exit 1 ;;
	esac
	shift
done

# --- locations and environment --------------------------------------

TEST_DIR=$(cd "$(dirname "$0")" && pwd) || exit 1
SRCDIR=$(cd "$TEST_DIR/../.." && pwd) || exit 1
TEST_NAME=$(basename "$0" .sh)
# As root, several tests hand stores to the user nobody (Dovecot refuses
# to run as root; the daemon's connections and the unreadable-index tests
# drop to nobody).  A checkout under a private directory (mode 0700, as a
# CI clone under /root may be) is out of nobody's reach: then the trash
# goes to a directory of its own under /tmp instead.
if [ "$(id -u)" = 0 ] && [ -z "${MSYNC_TEST_TRASH_ROOT:-}" ] &&
    command -v setpriv >/dev/null 2>&1 &&
    ! setpriv --reuid=65534 --regid=65534 --clear-groups \
    test -x "$TEST_DIR" 2>/dev/null; then
	MSYNC_TEST_TRASH_ROOT=$(mktemp -d /tmp/msync-test.XXXXXX) &&
	    chmod 755 "$MSYNC_TEST_TRASH_ROOT" &&
	    export MSYNC_TEST_TRASH_ROOT || exit 1
	trash_root_private_=1	# removed with the trash when all pass
fi
TRASH_ROOT=${MSYNC_TEST_TRASH_ROOT:-$TEST_DIR/trash}
TRASH=$TRASH_ROOT/$TEST_NAME
TEST_LOG=$TRASH_ROOT/$TEST_NAME.out
export TEST_DIR SRCDIR TRASH

case ${MSYNC:-} in
"") MSYNC=$SRCDIR/msync ;;
/*) ;;
*) MSYNC=$(cd "$(dirname "$MSYNC")" && pwd)/$(basename "$MSYNC") ;;
esac
export MSYNC

LC_ALL=C
TZ=UTC
export LC_ALL TZ
unset LANG LANGUAGE CDPATH

# A sanitizer report exits with 86, so that test_must_fail can tell it
# from an ordinary failure.  Leak checking follows the caller's choice.
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86:abort_on_error=0"
UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}print_stacktrace=1:halt_on_error=1:exitcode=86"
export ASAN_OPTIONS UBSAN_OPTIONS

# Fresh trash directory.
if [ -e "$TRASH" ]; then
	chmod -R u+rwx "$TRASH" 2>/dev/null
	rm -rf "$TRASH"
fi
if ! mkdir -p "$TRASH"; then
	echo "Bail out! cannot create trash directory '$TRASH'"
	exit 1
fi
# Per-script files beside the trash directory: the log (.out, kept on
# failure), the current test's output, the message counter, digests.
rm -f "$TRASH_ROOT/$TEST_NAME".{cur,msgno,digest1,digest2}
: >"$TEST_LOG"

# `msync` on PATH is the binary under test.
mkdir -p "$TRASH_ROOT/bin" &&
ln -sf "$MSYNC" "$TRASH_ROOT/bin/msync" ||
	echo "# warning: cannot link $TRASH_ROOT/bin/msync" >&2
PATH=$TRASH_ROOT/bin:$PATH
export PATH

# The corpus cache of scripts/mkcorpus.sh stays where it was, so tests
# share one download.
: "${MSYNC_CORPUS_CACHE:=${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/msync-corpus}"
export MSYNC_CORPUS_CACHE

# HOME and the XDG directories inside the trash directory.
xdg_isolate() {
	HOME=$TRASH/home
	XDG_CONFIG_HOME=$HOME/.config
	XDG_STATE_HOME=$HOME/.local/state
	XDG_CACHE_HOME=$HOME/.cache
	XDG_DATA_HOME=$HOME/.local/share
	export HOME XDG_CONFIG_HOME XDG_STATE_HOME XDG_CACHE_HOME XDG_DATA_HOME
	unset XDG_RUNTIME_DIR
	mkdir -p "$HOME" "$XDG_CONFIG_HOME" "$XDG_STATE_HOME" \
	    "$XDG_CACHE_HOME" "$XDG_DATA_HOME"
}
xdg_isolate

cd "$TRASH" || exit 1

# TAP lines go to fd 7, the script's stdout, even from inside a test body
# whose output is being logged.
exec 7>&1

# --- bookkeeping ----------------------------------------------------

test_count=0
test_success=0
test_failure=0
test_fixed=0
test_broken=0
test_skipped=0
test_cleanup=
test_atexit_cleanup=
test_done_called=0
test_in_body=0
test_body_failed=0
declare -A test_prereq_state=()		# NAME -> 0 (have) / 1 (missing)
declare -A test_prereq_lazy=()		# NAME -> script
declare -A test_prereq_envvar=()	# NAME -> MSYNC_TEST_* variable
declare -A test_prereq_died=()		# NAME -> 1 once reported

test_description() {
	test_description=$1
}

# Print the lines of FILE as TAP comments, at most the last 60.
test_show_log() {
	local n
	n=$(wc -l <"$1")
	if [ "$n" -gt 60 ]; then
		echo "#	... ($((n - 60)) lines cut; full log: $TEST_LOG)"
	fi >&7
	tail -n 60 "$1" | sed 's/^/#	/' >&7
}

# say_ TEXT: one line of TAP output.
say_() {
	printf '%s\n' "$*" >&7
}

test_ok_() {
	test_success=$((test_success + 1))
	say_ "ok $test_count - $1"
}

test_failure_() {
	local title=$1 body=$2 log=$3
	test_failure=$((test_failure + 1))
	say_ "not ok $test_count - $title"
	printf '%s\n' "$body" | sed 's/^/#	/' >&7
	if [ -n "$log" ] && [ -s "$log" ]; then
		say_ "#	--- output ---"
		test_show_log "$log"
	fi
	if [ "$test_immediate" = 1 ]; then
		test_done_called=1
		test_run_atexit_
		say_ "# stopped at the first failure (--immediate);" \
		    "trash directory kept: $TRASH"
		say_ "1..$test_count"
		exit 1
	fi
}

test_known_broken_ok_() {
	test_fixed=$((test_fixed + 1))
	say_ "ok $test_count - $1 # TODO known breakage vanished"
}

test_known_broken_failure_() {
	test_broken=$((test_broken + 1))
	say_ "not ok $test_count - $1 # TODO known breakage"
}

test_skip_() {
	test_skipped=$((test_skipped + 1))
	say_ "ok $test_count # skip $1 (missing $2)"
}

# --- prerequisites --------------------------------------------------

test_set_prereq() {
	test_prereq_state[$1]=0
}

test_lazy_prereq() {
	test_prereq_lazy[$1]=$2
}

# test_prereq_env NAME VAR: VAR=true makes a missing NAME a failure,
# VAR=false makes NAME missing.
test_prereq_env() {
	test_prereq_envvar[$1]=$2
}

test_bool_env_() {
	case ${!1:-} in
	true|yes|1) echo true ;;
	false|no|0) echo false ;;
	"") echo auto ;;
	*) echo "lib.sh: $1='${!1}' is not a boolean" >&2; echo auto ;;
	esac
}

# Decide one prerequisite; returns 0 when it is met.
test_have_one_prereq_() {
	local name=$1 var mode script
	if [ -z "${test_prereq_state[$name]+set}" ]; then
		var=${test_prereq_envvar[$name]:-}
		mode=auto
		[ -n "$var" ] && mode=$(test_bool_env_ "$var")
		if [ "$mode" = false ]; then
			test_prereq_state[$name]=1
		elif [ -n "${test_prereq_lazy[$name]+set}" ]; then
			script=${test_prereq_lazy[$name]}
			if (eval "$script") </dev/null >>"$TEST_LOG" 2>&1; then
				test_prereq_state[$name]=0
			else
				test_prereq_state[$name]=1
			fi
		else
			test_prereq_state[$name]=1
		fi
		# Skip-or-die: CI asked for it, so a missing one fails.
		if [ "${test_prereq_state[$name]}" = 1 ] && [ "$mode" = true ] &&
		    [ -z "${test_prereq_died[$name]:-}" ]; then
			test_prereq_died[$name]=1
			if [ "$test_in_body" = 1 ]; then
				# Asked from inside a test: that test fails.
				echo "prerequisite $name: $var=true, but $name is missing" >&2
				test_body_failed=1
			else
				test_count=$((test_count + 1))
				test_failure_ "prerequisite $name ($var=true, but $name is missing)" \
				    "${test_prereq_lazy[$name]:-(no check for $name)}" ""
			fi
		fi
	fi
	return "${test_prereq_state[$name]}"
}

# test_have_prereq A,!B,...: all of them met (B not met).
test_have_prereq() {
	local list p IFS=,
	read -r -a list <<<"$1"
	for p in "${list[@]}"; do
		case $p in
		!*) ! test_have_one_prereq_ "${p#!}" || { test_missing_prereq=$p; return 1; } ;;
		*) test_have_one_prereq_ "$p" || { test_missing_prereq=$p; return 1; } ;;
		esac
	done
	return 0
}

# Skip the rest of the script unless all prerequisites are met.
test_require_prereq() {
	local p
	for p in "$@"; do
		if ! test_have_prereq "$p"; then
			skip_all="missing $test_missing_prereq"
			test_done
		fi
	done
}

test_lazy_prereq SSHD '
	test -x /usr/sbin/sshd && command -v ssh && command -v ssh-keygen &&
	test -d /run/sshd
'
test_prereq_env SSHD MSYNC_TEST_SSHD
test_lazy_prereq DOVECOT '
	{ command -v dovecot || test -x /usr/sbin/dovecot; } &&
	command -v doveadm
'
test_prereq_env DOVECOT MSYNC_TEST_DOVECOT
test_lazy_prereq MBSYNC 'command -v mbsync'
test_lazy_prereq MBLAZE 'command -v mlist && command -v mflag'
test_lazy_prereq RSYNC 'command -v rsync'
test_lazy_prereq PERL 'command -v perl && perl -MDigest::MD5 -e 1'
test_lazy_prereq MSYNC 'test -x "$MSYNC"'
test_lazy_prereq ROOT 'test "$(id -u)" = 0'
test_lazy_prereq NOT_ROOT 'test "$(id -u)" != 0'
test_lazy_prereq CORPUS '
	command -v perl && { command -v npm ||
	    test -n "$(ls -d "$MSYNC_CORPUS_CACHE"/*/package/data 2>/dev/null)"; }
'
test_lazy_prereq SAN '
	test "${MSYNC_TEST_SAN:-0}" = 1 || grep -q __asan_init "$MSYNC"
'

# --- running tests --------------------------------------------------

test_when_finished() {
	test_cleanup="{ $*
	} && (exit \"\$eval_ret\"); eval_ret=\$?; $test_cleanup"
}

test_atexit() {
	test_atexit_cleanup="{ $*
	} >>\"\$TEST_LOG\" 2>&1; $test_atexit_cleanup"
}

test_run_atexit_() {
	local cmds=$test_atexit_cleanup
	test_atexit_cleanup=
	[ -n "$cmds" ] && (cd "$TRASH" 2>/dev/null || cd /; eval "$cmds") </dev/null
	return 0
}

# Run BODY; returns its status (with test_when_finished's cleanups).
test_run_() {
	local body=$1 log=$2
	eval_ret=0
	test_cleanup=:
	test_in_body=1
	test_body_failed=0
	cd "$TRASH" || return 1
	if [ "$test_verbose" = 1 ]; then
		if [ "$test_trace" = 1 ]; then set -x; fi
		eval "$body" </dev/null
		eval_ret=$?
		{ set +x; } 2>/dev/null
		eval "$test_cleanup" </dev/null
	else
		{
			if [ "$test_trace" = 1 ]; then set -x; fi
			eval "$body"
			eval_ret=$?
			{ set +x; } 2>/dev/null
			eval "$test_cleanup"
		} </dev/null >"$log" 2>&1
		cat "$log" >>"$TEST_LOG"
	fi
	test_in_body=0
	cd "$TRASH" 2>/dev/null || cd / || return 1
	[ "$test_body_failed" = 1 ] && return 1
	return "$eval_ret"
}

# Common argument handling: [PREREQ] TITLE BODY.
test_expect_() {
	local kind=$1 prereq='' title body log
	shift
	if [ $# -eq 3 ]; then
		prereq=$1
		shift
	fi
	if [ $# -ne 2 ]; then
		say_ "Bail out! test_expect_$kind needs [PREREQ] TITLE BODY, got $#+ args"
		exit 1
	fi
	title=$1 body=$2
	# Prerequisites first: a skip-or-die failure takes its own number.
	if [ -n "$prereq" ] && ! test_have_prereq "$prereq"; then
		test_count=$((test_count + 1))
		test_skip_ "$title" "$test_missing_prereq"
		return 0
	fi
	test_count=$((test_count + 1))
	log=$TRASH_ROOT/$TEST_NAME.cur
	printf '\n=== %d - %s\n' "$test_count" "$title" >>"$TEST_LOG"
	if test_run_ "$body" "$log"; then
		if [ "$kind" = success ]; then
			test_ok_ "$title"
		else
			test_known_broken_ok_ "$title"
		fi
	else
		if [ "$kind" = success ]; then
			test_failure_ "$title" "$body" "$log"
		else
			test_known_broken_failure_ "$title"
		fi
	fi
	rm -f "$log"
	return 0
}

test_expect_success() {
	test_expect_ success "$@"
}

test_expect_failure() {
	test_expect_ failure "$@"
}

test_done() {
	test_done_called=1
	test_run_atexit_
	if [ -n "${skip_all:-}" ] && [ "$test_count" -eq 0 ]; then
		say_ "1..0 # SKIP $skip_all"
		test_remove_trash_
		exit 0
	fi
	if [ -n "${skip_all:-}" ]; then
		say_ "# skipping the rest: $skip_all"
	fi
	if [ "$test_fixed" -gt 0 ]; then
		say_ "# $test_fixed known breakage(s) vanished; please update the test(s)"
	fi
	if [ "$test_broken" -gt 0 ]; then
		say_ "# still have $test_broken known breakage(s)"
	fi
	say_ "1..$test_count"
	if [ "$test_failure" -eq 0 ]; then
		say_ "# passed all $test_count test(s)"
		test_remove_trash_
		exit 0
	fi
	say_ "# failed $test_failure among $test_count test(s)"
	say_ "# trash directory kept: $TRASH"
	say_ "# full log: $TEST_LOG"
	exit 1
}

test_remove_trash_() {
	[ "$test_debug" = 1 ] && {
		say_ "# trash directory kept (--debug): $TRASH"
		return 0
	}
	cd "$TRASH_ROOT" || return 0
	chmod -R u+rwx "$TRASH" 2>/dev/null
	rm -rf "$TRASH" "$TEST_LOG" \
	    "$TRASH_ROOT/$TEST_NAME".{cur,msgno,digest1,digest2}
	if [ -n "${trash_root_private_:-}" ]; then
		cd / && rm -rf "$TRASH_ROOT"
	fi
}

# A script that ends without test_done (exit in a body, a syntax error)
# still cleans up its daemons and is reported as broken.
test_exit_trap_() {
	local rc=$?
	[ "$test_done_called" = 1 ] && return
	test_run_atexit_
	say_ "Bail out! $TEST_NAME exited ($rc) without test_done;" \
	    "trash directory kept: $TRASH"
	[ "$rc" = 0 ] && exit 1
	exit "$rc"
}
trap test_exit_trap_ EXIT

# --- assertions -----------------------------------------------------

# Why an exit status is a crash rather than a failure, or "".
test_crash_reason_() {
	case $1 in
	86) echo "a sanitizer report (exit 86)" ;;
	126) echo "not executable (126)" ;;
	127) echo "not found (127)" ;;
	1[3-9][0-9]|2[0-9][0-9])
		if [ "$1" -gt 128 ] && [ "$1" -le 192 ]; then
			echo "killed by signal $(($1 - 128))"
		fi ;;
	esac
}

test_must_fail() {
	local rc why
	"$@"
	rc=$?
	if [ "$rc" -eq 0 ]; then
		echo "test_must_fail: command succeeded: $*" >&2
		return 1
	fi
	why=$(test_crash_reason_ "$rc")
	if [ -n "$why" ]; then
		echo "test_must_fail: $why: $*" >&2
		return 1
	fi
	return 0
}

test_might_fail() {
	local rc why
	"$@"
	rc=$?
	why=$(test_crash_reason_ "$rc")
	if [ -n "$why" ]; then
		echo "test_might_fail: $why: $*" >&2
		return 1
	fi
	return 0
}

test_expect_code() {
	local want=$1 rc
	shift
	"$@"
	rc=$?
	if [ "$rc" -ne "$want" ]; then
		echo "test_expect_code: want exit $want, got $rc: $*" >&2
		return 1
	fi
	return 0
}

test_cmp() {
	diff -u "$@"
}

test_path_is_file() {
	[ -f "$1" ] || { echo "not a file: $1" >&2; return 1; }
}

test_path_is_dir() {
	[ -d "$1" ] || { echo "not a directory: $1" >&2; return 1; }
}

test_path_is_missing() {
	if [ -e "$1" ] || [ -L "$1" ]; then
		echo "exists: $1" >&2
		return 1
	fi
}

# test_line_count OP N FILE: the number of lines of FILE is OP N.
test_line_count() {
	local n
	if [ $# -ne 3 ]; then
		echo "usage: test_line_count OP N FILE" >&2
		return 1
	fi
	n=$(wc -l <"$3") || return 1
	if ! test "$n" "$1" "$2"; then
		echo "test_line_count: $3 has $n lines, want $1 $2:" >&2
		cat "$3" >&2
		return 1
	fi
}

# --- Maildir helpers ------------------------------------------------

make_maildir() {
	mkdir -p "$1/cur" "$1/new" "$1/tmp"
}

# folder_path ROOT NAME: the Maildir++ directory of mailbox NAME.
folder_path() {
	local name=$2
	case $name in
	INBOX|"") printf '%s\n' "$1"; return ;;
	esac
	name=${name//\//.}
	printf '%s/.%s\n' "$1" "$name"
}

make_folder() {
	make_maildir "$1" && make_maildir "$(folder_path "$1" "$2")"
}

# gen_message N [TAG]: a small message, the same bytes for the same
# arguments.
gen_message() {
	local n=${1:?gen_message needs a number} tag=${2:-msg} day
	day=$(( (n % 28) + 1 ))
	cat <<EOM
Return-Path: <alice@example.org>
Received: from mail.example.org (mail.example.org [192.0.2.1])
	by mx.example.net with ESMTPS id $tag$n
	for <bob@example.net>; Mon, $day Jan 2024 10:$(printf %02d $((n % 60))):00 +0000
From: Alice Example <alice@example.org>
To: Bob Example <bob@example.net>
Subject: $tag message $n
Date: Mon, $day Jan 2024 10:$(printf %02d $((n % 60))):00 +0000
Message-ID: <$tag.$n.msync-test@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Hello Bob,

this is $tag message number $n of the msync test suite.
From the line above, nothing special; a line starting with "From "
must survive every store.

-- 
Alice
EOM
}

# The next message number for this script (kept in a file, so it also
# counts across subshells).
test_next_msgno_() {
	local f=$TRASH_ROOT/$TEST_NAME.msgno n=0
	[ -f "$f" ] && read -r n <"$f"
	n=$((n + 1))
	echo "$n" >"$f"
	echo "$n"
}

# deliver DIR [FILE|-|""] [FLAGS]: see the header.
# True if a file named PREFIX:... exists (the prefix taken literally, so
# directory names with glob characters work).
deliver_taken_() {
	local f
	for f in "$1":*; do
		[ -e "$f" ] && return 0
	done
	return 1
}

deliver() {
	local dir=$1 src=${2:-} sub=new info='' host now base n=0 tmp
	if [ $# -ge 3 ]; then
		sub=cur
		# Maildir flags are kept sorted by ASCII value.
		info=":2,$(printf '%s' "$3" | fold -w1 | LC_ALL=C sort -u | tr -d '\n')"
	fi
	[ -d "$dir/$sub" ] || make_maildir "$dir" || return 1
	host=${HOSTNAME:-localhost}
	host=${host//\//\\057}
	host=${host//:/\\072}
	now=$(date +%s)
	while :; do
		base=$now.${BASHPID}_$n.$host
		[ -e "$dir/tmp/$base" ] || [ -e "$dir/new/$base" ] ||
		    deliver_taken_ "$dir/cur/$base" || break
		n=$((n + 1))
	done
	tmp=$dir/tmp/$base
	case $src in
	"") gen_message "$(test_next_msgno_)" >"$tmp" ;;
	-) cat >"$tmp" ;;
	*) cat -- "$src" >"$tmp" ;;
	esac || { rm -f "$tmp"; return 1; }
	mv "$tmp" "$dir/$sub/$base$info" || return 1
	printf '%s\n' "$dir/$sub/$base$info"
}

# set_flags FILE FLAGS: give a message new flags (moving it to cur/).
set_flags() {
	local f=$1 dir base flags
	dir=$(dirname "$(dirname "$f")")
	base=$(basename "$f")
	base=${base%%:*}
	flags=$(printf '%s' "$2" | fold -w1 | LC_ALL=C sort -u | tr -d '\n')
	mv "$f" "$dir/cur/$base:2,$flags"
}

count_msgs() {
	local n=0 f
	for f in "$1"/cur/* "$1"/new/*; do
		[ -f "$f" ] && n=$((n + 1))
	done
	echo "$n"
}

count_all() {
	maildir_digest "$1" | wc -l | tr -d ' '
}

# maildir_digest [--names] ROOT: see the header.  One perl process for
# the whole tree, so it stays fast with thousands of messages.
maildir_digest() {
	local names=0
	if [ "${1:-}" = --names ]; then names=1; shift; fi
	[ -d "${1:?maildir_digest needs a directory}" ] || {
		echo "maildir_digest: no such directory: $1" >&2
		return 1
	}
	perl -MDigest::MD5 -e '
		use strict; use warnings;
		my ($root, $names) = @ARGV;
		my @out;
		sub folder_name {
			my ($rel) = @_;
			return $rel unless $names;
			return "INBOX" if $rel eq ".";
			if ($rel =~ m{^\.([^/]+)$}) {
				(my $n = $1) =~ tr{.}{/};
				return $n;
			}
			return $rel;
		}
		sub walk {
			my ($dir, $rel) = @_;
			if (-d "$dir/cur" || -d "$dir/new") {
				for my $sub ("new", "cur") {
					opendir(my $dh, "$dir/$sub") or next;
					for my $f (readdir $dh) {
						next if $f =~ /^\./;
						my $p = "$dir/$sub/$f";
						next unless -f $p;
						open(my $fh, "<:raw", $p) or die "$p: $!\n";
						local $/;
						my $c = <$fh> // "";
						close $fh;
						$c =~ s/\r\n/\n/g;
						my $flags = "";
						$flags = $1 if $f =~ /:2,([^:]*)$/;
						$flags = join "", sort { $a cmp $b }
						    split //, $flags;
						$flags = "-" if $flags eq "";
						push @out, join("  ", folder_name($rel),
						    Digest::MD5::md5_hex($c), $flags);
					}
					closedir $dh;
				}
			}
			opendir(my $dh, $dir) or die "$dir: $!\n";
			for my $e (sort readdir $dh) {
				next if $e eq "." || $e eq "..";
				next if $e eq "cur" || $e eq "new" || $e eq "tmp";
				my $p = "$dir/$e";
				next if -l $p || !-d $p;
				walk($p, $rel eq "." ? $e : "$rel/$e");
			}
			closedir $dh;
		}
		walk($root, ".");
		print "$_\n" for sort @out;
	' "$1" "$names"
}

# make_corpus DIR [N]: DIR/maildir and DIR/mbox from scripts/mkcorpus.sh
# (the SpamAssassin corpus; N messages, default all).  Needs CORPUS.
make_corpus() {
	bash "$SRCDIR/scripts/mkcorpus.sh" "$@"
}

test_cmp_trees() {
	maildir_digest "$1" >"$TRASH_ROOT/$TEST_NAME.digest1" &&
	maildir_digest "$2" >"$TRASH_ROOT/$TEST_NAME.digest2" &&
	diff -u --label "$1" --label "$2" \
	    "$TRASH_ROOT/$TEST_NAME.digest1" "$TRASH_ROOT/$TEST_NAME.digest2"
}

if [ "$test_verbose" = 1 ] && [ -n "${test_description:-}" ]; then
	echo "# $TEST_NAME: $test_description"
fi
