#!/usr/bin/env bash
test_description='mbox files over 2 GB and 4 GB: messages past both marks are read and written (64-bit offsets in the reader, the index and the appends), and memory does not grow with the size of the file (peak RSS of a 2.2 GB scan against a 200 MB one)'
. "$(dirname "$0")/lib.sh"

test_require_prereq PERL

test_lazy_prereq GNU_TIME '/usr/bin/time -f %M -o /dev/null true'
test_lazy_prereq SPARSE '
	truncate -s 5G "$TRASH/sparse.probe" &&
	test "$(du -k "$TRASH/sparse.probe" | cut -f1)" -lt 1024;
	r=$?; rm -f "$TRASH/sparse.probe"; test $r = 0
'

# mbox_msg N: an mbox message (From line, content, separator).
mbox_msg() {
	printf "From big@example.org Mon Jan  1 10:00:%02d 2024\n" $(($1 % 60)) &&
	gen_message "$1" big && printf "\n"
}

# mkbig FILE HOLE: three messages, a message whose body is HOLE bytes of
# NUL (a hole in a sparse file: cheap to make, read as zeros), three
# more messages behind it.
mkbig() {
	{ for i in 1 2 3; do mbox_msg $i || return 1; done &&
	  printf "From hole@example.org Mon Jan  1 11:00:00 2024\nSubject: hole\n\n"
	} >"$1" &&
	truncate -s +"$2" "$1" &&
	{ printf "\n\n" && for i in 4 5 6; do mbox_msg $i || return 1; done; } >>"$1"
}

# The six small messages as msync must give them back.
test_expect_success 'setup: the expected messages' '
	mkdir want && for i in 1 2 3 4 5 6; do gen_message $i big >want/$i; done
'

# same_six DIR: DIR holds exactly the six messages, byte for byte.
same_six() {
	test "$(count_msgs "$1")" = 6 &&
	for i in 1 2 3 4 5 6; do
		f=$(find "$1"/cur "$1"/new -type f -exec \
		    grep -l "^Subject: big message $i\$" {} +) &&
		test -n "$f" && cmp "$f" want/$i || return 1
	done
}

test_expect_success SPARSE 'a 4.3 GB mbox: the messages past 2 GB and 4 GB convert, the 4.3 GB one is skipped with a message' '
	mkbig big.mbox $((4300 * 1024 * 1024)) &&
	test "$(stat -c %s big.mbox)" -gt $((4300 * 1024 * 1024)) &&
	"$MSYNC" --backup mbox:big.mbox md 2>err &&
	grep "skipping the oversized message at byte" err &&
	same_six md &&
	# The index keeps offsets past 4 GiB as they are.
	awk "\$1 == \"m\" && \$3 > 4294967296 { n++ } END { exit n != 3 }" \
	    home/.cache/msync/mbox/*.index
'

# (No flag change here: rewriting the file would write its 4.3 GB hole
# out as real zeros.)
test_expect_success SPARSE 'two-way on it: a new message is appended past 4 GB and read back' '
	"$MSYNC" md mbox:big.mbox 2>/dev/null &&
	deliver md "" S >/dev/null &&
	size=$(stat -c %s big.mbox) &&
	"$MSYNC" md mbox:big.mbox &&
	test "$(stat -c %s big.mbox)" -gt "$size" &&
	tail -c 2000 big.mbox | grep "^Subject: msg message" &&
	"$MSYNC" --backup mbox:big.mbox md2 2>/dev/null &&
	test "$(count_msgs md2)" = 7 &&
	"$MSYNC" md mbox:big.mbox 2>err && ! grep oversized err
'

test_expect_success SPARSE 'a 2.2 GB message (under the 4 GiB limit) is listed with its size' '
	mkbig mid.mbox $((2200 * 1024 * 1024)) &&
	"$MSYNC" --list -v mbox:mid.mbox >list &&
	grep "^INBOX	7	" list
'

# Peak RSS of a scan (every byte parsed and hashed, the index built):
# the same messages around a 200 MB and a 2.2 GB message.  A reader
# that kept a message or the file in memory would grow tenfold.
test_expect_success SPARSE,GNU_TIME,!SAN 'peak memory of a 2.2 GB mbox scan < 1.5x the 200 MB one + 4 MB' '
	mkbig small.mbox $((200 * 1024 * 1024)) &&
	rm -rf home/.cache/msync &&
	/usr/bin/time -f %M -o small.rss "$MSYNC" --list mbox:small.mbox &&
	rm -rf home/.cache/msync &&
	/usr/bin/time -f %M -o mid.rss "$MSYNC" --list mbox:mid.mbox &&
	read -r s <small.rss && read -r b <mid.rss &&
	echo "peak RSS: 200 MB $s KB, 2.2 GB $b KB" &&
	test "$b" -lt $((s * 3 / 2 + 4096))
'

# Converting: the 200 MB mbox (its 200 MB message is converted, read as
# a stream) against the 4.3 GB one (seven small messages converted, the
# 4.3 GB one skipped): each below 1.5x the other + 4 MB.  (A reader that
# kept what it had handed on grew to the message's size: 212 MB.)
test_expect_success SPARSE,GNU_TIME,!SAN 'peak memory converting: a 200 MB message and a 4.3 GB file both in constant memory' '
	rm -rf home/.cache/msync home/.local/state md3 md4 &&
	/usr/bin/time -f %M -o small.rss "$MSYNC" --backup mbox:small.mbox md3 &&
	/usr/bin/time -f %M -o big.rss "$MSYNC" --backup mbox:big.mbox md4 2>/dev/null &&
	read -r s <small.rss && read -r b <big.rss &&
	echo "peak RSS: 200 MB $s KB, 4.3 GB $b KB" &&
	test "$b" -lt $((s * 3 / 2 + 4096)) &&
	test "$s" -lt $((b * 3 / 2 + 4096)) &&
	test "$(count_msgs md3)" = 7
'

test_done
