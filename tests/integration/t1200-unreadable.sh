#!/usr/bin/env bash
test_description='a store or mailbox that cannot be read is an error, never
an empty one: low open-file limits (ulimit -n 7..10), an index made
unreadable (chmod 000, as an unprivileged user) and EIO injected into its
reads, in all three modes, locally and over ssh'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-sshd.sh"

test_require_prereq PERL

# Every scenario: ./a (SRC, or side A) and ./b synced in MODE, then
# changes since that good sync (a deletion in INBOX and Arch on a, new
# mail in INBOX and Work on a, a deletion in Work on b; in backup mode
# an extra message in b instead), then one run under the fault, then a
# normal run.  The faulty run must either sync correctly or exit
# non-zero leaving the state of every mailbox it did not sync as it was
# (the whole file byte for byte when it synced none); the normal run
# must then bring every change since the good sync across.

STATE_DUMP="$TEST_DIR/state_dump.py"

# md5 of a message file, as maildir_digest prints it.
msg_md5() {
	perl -MDigest::MD5 -e 'local $/; open(my $f, "<:raw", $ARGV[0])
	    or die; my $c = <$f>; $c =~ s/\r\n/\n/g;
	    print Digest::MD5::md5_hex($c), "\n"' "$1"
}

# copies ROOT FILE: how many copies of FILE's content ROOT holds (any
# folder), read by maildir_digest, not by msync.
copies() {
	maildir_digest "$1" | grep -c "  $(msg_md5 "$2")  " || :
}

# lowfd N CMD...: CMD with only fds 0-2 open and at most N open files
# (soft and hard limit, so msync cannot raise it).
lowfd() {
	local n=$1 fd
	shift
	(
		for fd in $(ls /proc/$BASHPID/fd); do
			[ "$fd" -gt 2 ] && eval "exec $fd>&-"
		done
		ulimit -n "$n" && exec "$@"
	)
}

# modeopt MODE: the option for MODE (tw, backup, oneway).
modeopt() {
	case $1 in
	tw) ;;
	backup) echo --backup ;;
	oneway) echo --one-way ;;
	esac
}

# sync_ab MODE WHERE FAULT: one run of msync on ./a ./b.  WHERE: local
# or ssh.  FAULT: none, nofile=N, chmod (b's Work index mode 000, run as
# nobody), eio (EIO injected into every read of b's Work index).
sync_ab() {
	local mode=$1 where=$2 fault=$3 idx=$PWD/b/.Work/msync.index
	local run=() rwrap=$PWD/rwrap dst=b
	local -a opts
	read -ra opts <<<"$(modeopt "$mode")"
	[ "$where" = ssh ] && dst=msynctest:$PWD/b
	# The remote side runs the wrapper; the local one gets run[].
	echo 'exec msync "$@"' >"$rwrap.cmd"
	case $fault in
	none) ;;
	nofile=*)
		run=(lowfd "${fault#nofile=}")
		echo "ulimit -n ${fault#nofile=}; exec msync \"\$@\"" >"$rwrap.cmd" ;;
	chmod) chmod 000 "$idx" ;;
	eio)
		# LeakSanitizer cannot work under ptrace: off for this run.
		set -- env "ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0" \
		    strace -f -qq -o /dev/null -P "$idx" -e trace=read,pread64 \
		    -e inject=read,pread64:error=EIO
		if [ "$where" = ssh ]; then
			echo "exec $* msync \"\$@\"" >"$rwrap.cmd"
		else
			run=("$@")
		fi ;;
	esac
	if [ -n "${NOBODY:-}" ]; then
		# The store's side runs unprivileged, so chmod 000 bites:
		# NOBODY=1 both sides (local), NOBODY=remote the server.
		[ "$NOBODY" = remote ] ||
		run=(setpriv --reuid=nobody --regid=nogroup --clear-groups
		    "${run[@]}")
		sed -i 's/^exec /exec setpriv --reuid=nobody --regid=nogroup --clear-groups /' \
		    "$rwrap.cmd"
	fi
	{ echo '#!/bin/sh'; cat "$rwrap.cmd"; } >"$rwrap" && chmod 755 "$rwrap"
	if [ "$where" = ssh ]; then
		opts+=(-e "$SSH_CMD" --remote-msync "$rwrap")
	fi
	"${run[@]}" "$MSYNC" "${opts[@]}" a "$dst"
	local rc=$?
	[ "$fault" = chmod ] && chmod 600 "$idx"
	return $rc
}

# nth DIR N: the Nth message of Maildir folder DIR.
nth() {
	ls "$1"/cur/* "$1"/new/* 2>/dev/null | LC_ALL=C sort | sed -n "${2}p"
}

# setup MODE WHERE: a fresh pair synced in MODE, then the changes.
setup() {
	local mode=$1 where=$2 f i
	rm -rf a b keep rwrap* st.good dump.* "$XDG_STATE_HOME/msync" \
	    "$XDG_CACHE_HOME/msync" && mkdir keep &&
	make_maildir a && make_folder a Work && make_folder a Arch &&
	for i in 1 2 3 4 5; do
		deliver a "" S >/dev/null &&
		deliver a/.Work "" >/dev/null &&
		deliver a/.Arch "" F >/dev/null || return 1
	done &&
	if [ -n "${NOBODY:-}" ]; then chown -R nobody:nogroup a; fi &&
	sync_ab "$mode" "$where" none 2>err.setup &&
	cp "$XDG_STATE_HOME"/msync/*.state st.good &&
	f=$(nth a 1) && cp "$f" keep/del1 && rm "$f" &&
	f=$(nth a/.Arch 2) && cp "$f" keep/del2 && rm "$f" &&
	cp "$(deliver a "" R)" keep/new1 &&
	cp "$(deliver a/.Work "")" keep/new2 &&
	if [ "$mode" = backup ]; then
		cp "$(deliver b/.Work "")" keep/extra
	else
		f=$(nth b/.Work 3) && cp "$f" keep/delb && rm "$f"
	fi &&
	if [ -n "${NOBODY:-}" ]; then chown -R nobody:nogroup a b; fi
}

# converged MODE: every change since the good sync is across.
converged() {
	case $1 in
	tw|backup)
		test_cmp_trees a b &&
		test "$(copies b keep/del1)" = 0 &&
		test "$(copies b keep/del2)" = 0 ;;
	oneway)
		# One-way deletes nothing, and what DST deleted stays deleted.
		test "$(copies b keep/del1)" = 1 &&
		test "$(copies b keep/delb)" = 0 ;;
	esac &&
	test "$(copies b keep/new1)" = 1 && test "$(copies b keep/new2)" = 1 &&
	case $1 in
	tw) test "$(copies a keep/delb)" = 0 ;;
	backup) test "$(copies b keep/extra)" = 0 ;;
	esac
}

# folder_synced MODE NAME: mailbox NAME is the same on a and b (two-way,
# backup) or has a's new mail (one-way).
folder_synced() {
	local d=$2
	[ "$d" = INBOX ] && d=. || d=.$d
	case $1 in
	tw|backup)
		maildir_digest a | awk -v d="$d" '$1 == d' >fa &&
		maildir_digest b | awk -v d="$d" '$1 == d' >fb &&
		test_cmp fa fb ;;
	oneway) : ;;
	esac
}

# scenario MODE WHERE FAULT: see the top.
scenario() {
	local mode=$1 where=$2 fault=$3 rc name
	setup "$mode" "$where" || { echo "setup failed"; cat err.setup; return 1; }
	python3 "$STATE_DUMP" st.good >dump.good || return 1
	sync_ab "$mode" "$where" "$fault" 2>err.fault
	rc=$?
	echo "# $mode $where $fault: exit $rc" >&7
	if [ $rc = 0 ]; then
		converged "$mode" || { cat err.fault; return 1; }
	else
		case $rc in 1|75|69) ;; *) cat err.fault; return 1 ;; esac
		# Mailboxes whose state changed were synced; the rest kept it.
		python3 "$STATE_DUMP" "$XDG_STATE_HOME"/msync/*.state >dump.now &&
		for name in $(diff dump.good dump.now | sed -n 's/^> \([^	]*\)	.*/\1/p'); do
			folder_synced "$mode" "$name" || {
				echo "state of $name changed, but it is not synced"
				cat err.fault; return 1
			}
		done
		# Not one mailbox read: the file is byte for byte the same.
		if grep -q "cannot list the mailboxes\|cannot run\|cannot open store" err.fault; then
			cmp st.good "$XDG_STATE_HOME"/msync/*.state || return 1
		fi
		# Nothing is ever taken for an empty store.
		! grep -q "no mailboxes at all\|first sync" err.fault || return 1
	fi
	sync_ab "$mode" "$where" none 2>err.next || { cat err.next; return 1; }
	! grep -q "first sync\|merging without deletions" err.next || {
		cat err.next; return 1; }
	converged "$mode" || { cat err.next; return 1; }
}

for mode in tw backup oneway; do
	for n in 7 8 9 10; do
		test_expect_success "$mode, local, ulimit -n $n" "
			scenario $mode local nofile=$n
		"
	done
	test_expect_success "$mode, local, EIO reading an index" "
		scenario $mode local eio
	"
done

# Taken for deleted, an unreadable mailbox would be deleted on the other
# side by --force-deletes (or by the guard's silence, were it empty).
test_expect_success 'tw: an unreadable mailbox is never taken for deleted, even with --force-deletes' '
	setup tw local &&
	n=$(count_msgs b/.Work) &&
	test_expect_code 1 \
	    env "ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0" \
	    strace -f -qq -o /dev/null \
	    -P "$PWD/a/.Work/msync.index" -e trace=read,pread64 \
	    -e inject=read,pread64:error=EIO \
	    "$MSYNC" --force-deletes a b 2>err &&
	grep -q "cannot read mailbox .Work." err &&
	test "$(count_msgs b/.Work)" = "$n" &&
	"$MSYNC" a b && converged tw
'

test_expect_success 'a SRC with no mailboxes at all (unmounted?) stops the backup' '
	setup backup local &&
	"$MSYNC" --backup a b &&
	mv a a.away && mkdir a &&
	# (With SRC cached indexes still there, the root is a folder that
	# lost its cur/: t1320 covers that; here SRC is simply empty.)
	rm -rf "$XDG_CACHE_HOME/msync" &&
	maildir_digest b >before &&
	cp "$XDG_STATE_HOME"/msync/*.state st.before &&
	test_expect_code 1 "$MSYNC" --backup a b 2>err &&
	grep -q "A has no mailboxes at all" err &&
	grep -q "force-deletes" err &&
	maildir_digest b >after && test_cmp before after &&
	cmp st.before "$XDG_STATE_HOME"/msync/*.state &&
	rmdir a && mv a.away a && "$MSYNC" --backup a b && test_cmp_trees a b
'

# A low soft limit is raised to the hard one: the run just works.
test_expect_success 'a low soft limit (ulimit -Sn 8) is raised' '
	setup tw local &&
	(ulimit -Sn 8 && exec "$MSYNC" a b) 2>err && converged tw
'

# chmod 000 stops reads only for an unprivileged user, who must be able
# to run msync (not from a clone in a 0700 directory: then these skip).
test_lazy_prereq NOBODY_OK '
	test "$(id -u)" = 0 &&
	mkdir -p "$TRASH/nbcheck" && chown nobody:nogroup "$TRASH/nbcheck" &&
	setpriv --reuid=nobody --regid=nogroup --clear-groups \
	    touch "$TRASH/nbcheck/x" &&
	setpriv --reuid=nobody --regid=nogroup --clear-groups \
	    test -x "$MSYNC"
'
for mode in tw backup oneway; do
	test_expect_success NOBODY_OK "$mode, local, an index with mode 000" "
		mkdir -p nb && chown nobody:nogroup nb &&
		(cd nb && export XDG_STATE_HOME=\$PWD/state \
		    XDG_CACHE_HOME=\$PWD/cache NOBODY=1 &&
		mkdir -p state cache && chown nobody:nogroup state cache &&
		scenario $mode local chmod)
	"
done

test_expect_success SSHD 'start sshd' 'start_sshd'
for mode in tw backup oneway; do
	for n in 7 8 9 10; do
		test_expect_success SSHD "$mode, ssh, ulimit -n $n on both ends" "
			scenario $mode ssh nofile=$n
		"
	done
	test_expect_success SSHD "$mode, ssh, EIO reading the remote index" "
		scenario $mode ssh eio
	"
	test_expect_success SSHD,NOBODY_OK "$mode, ssh, remote index mode 000" "
		mkdir -p nbs && chown nobody:nogroup nbs &&
		(cd nbs && NOBODY=remote && scenario $mode ssh chmod)
	"
done

test_done
