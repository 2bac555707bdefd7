#!/usr/bin/env bash
test_description='--watch with a side on a disk that fills (a small tmpfs): the watcher
says so once, keeps going, loses nothing, and syncs once there is room'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-watch.sh"

test_require_prereq ROOT PERL

for d in b mount-probe; do
	if mountpoint -q "$TRASH/$d" 2>/dev/null; then
		umount "$TRASH/$d" 2>/dev/null || umount -l "$TRASH/$d"
	fi
	rmdir "$TRASH/$d" 2>/dev/null
done
probe=$TRASH/mount-probe
mkdir -p "$probe"
if ! mount -t tmpfs -o size=64k tmpfs "$probe" 2>mount.err; then
	skip_all="cannot mount a tmpfs here: $(head -n 1 mount.err)"
	test_done
fi
umount "$probe" && rmdir "$probe"

cfg=$XDG_CONFIG_HOME/msync/config

# bigmsg N: about 300 KB of base64.
bigmsg() {
	printf "From: a@example.org\nSubject: big %s\nMessage-ID: <big.%s.t1990@example.org>\n\n" "$1" "$1"
	head -c 225000 /dev/urandom | base64 -w 76
}

# deliver_big DIR N...: deliveries into new/ the way an MDA makes them.
deliver_big() {
	local d=$1 i
	shift
	for i in "$@"; do
		bigmsg "$i" >"$d/tmp/big$i" &&
		mv "$d/tmp/big$i" "$d/new/$i.big$i.host" || return 1
	done
}

reports_ge() { test "$(wc -l <w.out)" -ge "$1"; }
sums() { for f in "$1"/cur/* "$1"/new/*; do [ -f "$f" ] && md5sum <"$f"; done | sort; }

test_expect_success 'setup: B on a 2 MB tmpfs, a filler taking most of it' '
	mkdir b &&
	mount -t tmpfs -o size=2m tmpfs b &&
	test_atexit "umount \"$TRASH/b\" 2>/dev/null || umount -l \"$TRASH/b\"" &&
	make_maildir a && make_maildir b &&
	head -c 1200000 /dev/zero >b/filler &&
	mkdir -p "$(dirname "$cfg")" &&
	cat >"$cfg" <<-EOF &&
	pair f
		a $TRASH/a
		b $TRASH/b
		debounce 100ms
	EOF
	chmod 600 "$cfg" &&
	watch_start w f
'

test_expect_success 'deliveries that do not fit: the failure is said once, the watch goes on, A keeps all' '
	deliver_big a 1 2 3 4 5 6 &&
	sums a >a.sums &&
	wait_until grep -q "f: sync failed" w.err &&
	kill -0 "$(cat w.pid)" &&
	sums a >a.now && test_cmp a.sums a.now &&
	test "$(grep -c "sync failed" w.err)" = 1
'

test_expect_success 'a retry after a while fails again, quietly' '
	wait_until reports_ge 3 &&
	test "$(grep -c "sync failed" w.err)" = 1 &&
	kill -0 "$(cat w.pid)"
'

test_expect_success 'room again: the next retry syncs everything, "in sync again"' '
	rm b/filler &&
	wait_until grep -q "f: in sync again" w.err &&
	wait_until has_count b 6 &&
	sums b >b.sums && test_cmp a.sums b.sums &&
	watch_stop w
'

test_expect_success 'no stray temporary files left in B' '
	test -z "$(ls b/tmp)"
'

test_done
