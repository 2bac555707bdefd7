#!/usr/bin/env bash
test_description='a full disk (a small tmpfs as one side) stops the run cleanly; a re-run with space converges'
. "$(dirname "$0")/lib.sh"

# Needs root, and a sandbox that lets root mount a tmpfs.
test_require_prereq ROOT

# A run that was killed (no atexit) may have left its tmpfs mounted in the
# trash directory, which lib.sh could then empty but not remove.
for d in b c d mount-probe; do
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

# bigmsg N: a message of about 500 KB (base64 of random bytes).
bigmsg() {
	cat <<EOM
From: Alice Example <alice@example.org>
To: Bob Example <bob@example.net>
Subject: big message $1
Date: Mon, 1 Jan 2024 10:$(printf %02d "$1"):00 +0000
Message-ID: <big.$1.full-disk@example.org>
MIME-Version: 1.0
Content-Type: application/octet-stream
Content-Transfer-Encoding: base64

EOM
	head -c 375000 /dev/urandom | base64 -w 76
}

# md5s DIR: the md5 of every message in DIR, sorted.
md5s() {
	maildir_digest "$1" | awk '{ print $2 }' | sort
}

# no_loss DIR: DIR (a) still has every message it had before the run,
# and nothing that was on neither side.
no_loss() {
	md5s "$1" >"$1.now.md5" &&
	test "$(comm -23 "$1.md5" "$1.now.md5" | wc -l)" = 0 &&
	test "$(comm -23 "$1.now.md5" ab.md5 | wc -l)" = 0
}

test_expect_success 'setup: a synced pair, B on a 2 MB tmpfs' '
	mkdir b &&
	mount -t tmpfs -o size=2m tmpfs b &&
	test_atexit "umount \"$TRASH/b\" 2>/dev/null || umount -l \"$TRASH/b\"" &&
	make_maildir a &&
	for i in 1 2 3; do deliver a "" S >/dev/null || return 1; done &&
	"$MSYNC" a b && test_cmp_trees a b &&
	test "$(count_msgs b)" = 3
'

test_expect_success 'setup: 8 messages of 500 KB on A, a flag change, an expunge, new mail on B' '
	for i in 1 2 3 4 5 6 7 8; do
		bigmsg $i >big$i.eml && deliver a big$i.eml >/dev/null || return 1
	done &&
	test "$(du -sk a | cut -f1)" -gt 3000 &&
	f=$(ls a/cur/* | sort | head -n 1) && set_flags "$f" FS &&
	gen_message 42 onb >onb.eml && deliver b onb.eml R >/dev/null &&
	gone=$(ls a/cur/* | sort | sed -n 2p) &&
	cp "$gone" expunged.eml && rm "$gone" &&
	maildir_digest a >a.before && maildir_digest b >b.before &&
	md5s a >a.md5 && md5s b >b.md5 &&
	cat a.md5 b.md5 | sort >ab.md5
'

test_expect_success 'the sync stops: non-zero exit, the cause named, no partial file, nothing deleted' '
	{ "$MSYNC" a b >out 2>err; rc=$?; true; } &&
	cat out err && echo "exit $rc" &&
	test "$rc" != 0 && test "$rc" != 2 &&
	test -z "$(test_crash_reason_ $rc)" &&
	grep -i "no space left on device" err &&
	# every message in B is byte-identical to one that was in A or B
	md5s b >b.after.md5 &&
	test "$(comm -23 b.after.md5 ab.md5 | wc -l)" = 0 &&
	for f in b/cur/* b/new/*; do
		[ -f "$f" ] || continue
		if grep -q "^Subject: big message" "$f"; then
			n=$(sed -n "s/^Subject: big message //p" "$f") &&
			cmp "$f" big$n.eml || return 1
		fi
	done &&
	# nothing deleted on either side: A and B kept all they had (A may
	# have got B'"'"'s new message, and flags may have changed)
	no_loss a &&
	test "$(comm -23 b.md5 b.after.md5 | wc -l)" = 0 &&
	# and no partial file left in tmp/ either
	ls -la b/tmp && test -z "$(ls -A b/tmp)"
'

test_expect_success 'the store on the full disk is still a valid Maildir that lists' '
	"$MSYNC" --list -v b >blist &&
	grep "^INBOX	" blist
'

test_expect_success 'a re-run on the still-full disk fails the same way, still deleting nothing' '
	{ "$MSYNC" a b >out2 2>err2; rc=$?; true; } &&
	cat err2 && test "$rc" != 0 && test -z "$(test_crash_reason_ $rc)" &&
	no_loss a &&
	md5s b >b.after2.md5 &&
	test "$(comm -23 b.md5 b.after2.md5 | wc -l)" = 0 &&
	test "$(comm -23 b.after2.md5 ab.md5 | wc -l)" = 0
'

test_expect_success 'after the tmpfs is enlarged, a re-run converges' '
	mount -o remount,size=64m b &&
	{ "$MSYNC" a b 2>err3; rc=$?; true; } && cat err3 && echo "exit $rc" &&
	{ test "$rc" = 0 || test "$rc" = 2; } &&
	"$MSYNC" a b && test_cmp_trees a b &&
	test "$(count_msgs a)" = 11 &&
	for i in 1 2 3 4 5 6 7 8; do
		n=0 &&
		for f in b/cur/* b/new/*; do
			if cmp -s "$f" big$i.eml; then n=$((n + 1)); fi
		done &&
		test "$n" = 1 || return 1
	done &&
	! grep -rlF "$(sed -n "s/^Message-ID: //p" expunged.eml)" b/cur b/new &&
	grep -l "^Subject: onb message 42" a/cur/* &&
	maildir_digest a | grep -c "  FS$" &&
	"$MSYNC" a b 2>err4 && test_cmp_trees a b
'

test_expect_success 'a --backup onto a full disk also stops cleanly and converges' '
	mkdir c &&
	mount -t tmpfs -o size=1m tmpfs c &&
	test_atexit "umount \"$TRASH/c\" 2>/dev/null || umount -l \"$TRASH/c\"" &&
	{ "$MSYNC" --backup a c 2>err5; rc=$?; true; } && cat err5 &&
	test "$rc" != 0 && test -z "$(test_crash_reason_ $rc)" &&
	grep -i "no space left on device" err5 &&
	md5s a >a.now.md5 && md5s c >c.md5 &&
	test "$(comm -23 c.md5 a.now.md5 | wc -l)" = 0 &&
	mount -o remount,size=64m c &&
	"$MSYNC" --backup a c && test_cmp_trees a c
'

test_expect_success 'the full disk on the initiating side (A) also stops cleanly and converges' '
	mkdir d &&
	mount -t tmpfs -o size=1m tmpfs d &&
	test_atexit "umount \"$TRASH/d\" 2>/dev/null || umount -l \"$TRASH/d\"" &&
	make_maildir d && deliver d onb.eml S >/dev/null &&
	md5s a >a.md5 && md5s d >d.md5 && cat a.md5 d.md5 | sort >ab.md5 &&
	{ "$MSYNC" d a 2>err6; rc=$?; true; } && cat err6 && echo "exit $rc" &&
	test "$rc" != 0 && test "$rc" != 2 && test -z "$(test_crash_reason_ $rc)" &&
	grep -i "no space left on device" err6 &&
	no_loss a && no_loss d && test -z "$(ls -A d/tmp)" &&
	mount -o remount,size=64m d &&
	{ "$MSYNC" d a 2>err7; rc=$?; true; } && cat err7 &&
	{ test "$rc" = 0 || test "$rc" = 2; } &&
	"$MSYNC" d a && test_cmp_trees a d && no_loss a
'

test_done
