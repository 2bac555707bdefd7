#!/usr/bin/env bash
test_description='two-way sync between two local Maildirs: new mail, flags, expunges'
. "$(dirname "$0")/lib.sh"

test_expect_success 'setup: different mail on each side' '
	make_maildir a && make_maildir b &&
	deliver a "" S >/dev/null && deliver a "" >/dev/null &&
	deliver a "" FS >/dev/null &&
	deliver b "" >/dev/null && deliver b "" R >/dev/null
'

test_expect_success 'first sync is a union, both sides end equal' '
	"$MSYNC" a b 2>err &&
	test "$(count_msgs a)" = 5 && test "$(count_msgs b)" = 5 &&
	test_cmp_trees a b &&
	grep -i "first sync" err
'

test_expect_success 'a second run changes nothing on disk and exits 0' '
	(cd a && find . -type f ! -name "msync.*" | sort) >before.a &&
	(cd b && find . -type f ! -name "msync.*" | sort) >before.b &&
	"$MSYNC" a b &&
	(cd a && find . -type f ! -name "msync.*" | sort) >after.a &&
	(cd b && find . -type f ! -name "msync.*" | sort) >after.b &&
	test_cmp before.a after.a && test_cmp before.b after.b
'

test_expect_success 'a new message on B reaches A' '
	deliver b "" F >/dev/null &&
	"$MSYNC" a b && test "$(count_msgs a)" = 6 && test_cmp_trees a b
'

test_expect_success 'a flag set on A reaches B' '
	f=$(ls a/cur/* | head -n 1) &&
	set_flags "$f" FRS &&
	"$MSYNC" a b && test_cmp_trees a b &&
	grep -c "FRS" <(maildir_digest b) >/dev/null
'

test_expect_success 'an expunge on B is replayed on A' '
	f=$(ls b/cur/* | head -n 1) && rm "$f" &&
	"$MSYNC" a b && test "$(count_msgs a)" = 5 && test_cmp_trees a b
'

test_expect_success 'expunge beats a flag change on the other side' '
	fa=$(ls a/cur/* | head -n 1) &&
	md5=$(md5sum <"$fa" | cut -d" " -f1) &&
	for f in b/cur/* b/new/*; do
		[ -f "$f" ] || continue
		if [ "$(md5sum <"$f" | cut -d" " -f1)" = "$md5" ]; then rm "$f"; fi
	done &&
	set_flags "$fa" T &&
	"$MSYNC" a b && test "$(count_msgs a)" = 4 && test_cmp_trees a b
'

test_expect_success 'flags changed on both sides merge per flag' '
	fa=$(ls a/cur/* | sort | head -n 1) &&
	md5=$(md5sum <"$fa" | cut -d" " -f1) &&
	fb=$(for f in b/cur/* b/new/*; do
		[ -f "$f" ] && [ "$(md5sum <"$f" | cut -d" " -f1)" = "$md5" ] &&
		    echo "$f"
	done; true) &&
	test -n "$fb" &&
	set_flags "$fa" D && set_flags "$fb" P &&
	"$MSYNC" a b && test_cmp_trees a b &&
	maildir_digest a | grep "$md5" | grep -q "  DP$"
'

test_expect_success 'CRLF and LF copies of one message are one message' '
	make_maildir c && make_maildir d &&
	gen_message 900 crlf >lf.eml &&
	sed "s/\$/\r/" lf.eml >crlf.eml &&
	deliver c lf.eml S >/dev/null && deliver d crlf.eml S >/dev/null &&
	"$MSYNC" c d && test "$(count_msgs c)" = 1 && test "$(count_msgs d)" = 1
'

# Maildir convention: a file in tmp/ untouched for 36 hours is what a
# dead delivery left.  msync removes such files from a folder it saves
# into, and only those: a recent file (a delivery in progress) stays.
test_expect_success 'stale files in tmp/ are removed from a folder msync writes; recent ones stay' '
	make_maildir t1 && make_maildir t2 &&
	echo "half a message" >t2/tmp/1700000000.M1P1.dead &&
	touch -d "3 days ago" t2/tmp/1700000000.M1P1.dead &&
	echo "being delivered" >t2/tmp/1700000001.M2P2.live &&
	touch -d "35 hours ago" t2/tmp/1700000001.M2P2.live &&
	echo "fresh" >t2/tmp/1700000002.M3P3.now &&
	mkdir t2/tmp/olddir && touch -d "3 days ago" t2/tmp/olddir &&
	deliver t1 "" S >/dev/null &&
	"$MSYNC" t1 t2 &&
	test_path_is_missing t2/tmp/1700000000.M1P1.dead &&
	test_path_is_file t2/tmp/1700000001.M2P2.live &&
	test_path_is_file t2/tmp/1700000002.M3P3.now &&
	test_path_is_dir t2/tmp/olddir &&
	test "$(count_msgs t2)" = 1
'

test_done
