#!/usr/bin/env bash
test_description='a 200 MB message syncs byte-identical, in about the memory of a 2 KB one, with and without -z'
. "$(dirname "$0")/lib.sh"

# The big message: a MIME message whose attachment is base64 of random
# bytes (76-column lines, so every line is valid RFC 5322), about
# MSYNC_TEST_BIG_MB megabytes (default 200).
big_mb=${MSYNC_TEST_BIG_MB:-200}
raw_bytes=$((big_mb * 1000000 * 3 / 4))

# Peak memory of a command, in KB, from GNU time (max RSS of msync and
# its waited-for peer process).
test_lazy_prereq GNU_TIME '/usr/bin/time -f %M -o rss.probe true && test -s rss.probe'

# big_header N: the header and the first MIME part.
big_header() {
	cat <<EOM
Return-Path: <alice@example.org>
From: Alice Example <alice@example.org>
To: Bob Example <bob@example.net>
Subject: a very big attachment $1
Date: Mon, 1 Jan 2024 10:00:00 +0000
Message-ID: <big.$1.msync-test@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="=_msync_big_$1"

This is a multi-part message in MIME format.

--=_msync_big_$1
Content-Type: text/plain; charset=us-ascii

Bob, the data you asked for.

--=_msync_big_$1
Content-Type: application/octet-stream; name="data.bin"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="data.bin"

EOM
}

# make_big DIR: DIR becomes a Maildir with one big message (written
# through tmp/ and renamed into cur/, as a delivery would).
make_big() {
	make_maildir "$1" &&
	{
		big_header 1 &&
		head -c "$raw_bytes" /dev/urandom | base64 -w 76 &&
		printf '\n--=_msync_big_1--\n'
	} >"$1/tmp/1700000000.big.host" &&
	mv "$1/tmp/1700000000.big.host" "$1/cur/1700000000.big.host:2,S"
}

# make_small DIR: a Maildir with one message of about 2 KB.
make_small() {
	make_maildir "$1" &&
	{
		gen_message 1 small &&
		for i in $(seq 1 20); do
			echo "padding line $i, so that the message is about two kilobytes long....."
		done
	} | deliver "$1" - S >/dev/null
}

# run_measured NAME CMD...: run CMD, with its peak RSS in NAME.rss when
# GNU time is there.
run_measured() {
	local name=$1
	shift
	if test_have_prereq GNU_TIME; then
		/usr/bin/time -f %M -o "$name.rss" "$@"
	else
		"$@"
	fi
}

# same_message SRC DST: DST holds exactly one message, byte-identical to
# SRC's one message, with the same flags.
same_message() {
	local s d
	s=$(find "$1/cur" "$1/new" -type f) &&
	d=$(find "$2/cur" "$2/new" -type f) &&
	test "$(echo "$d" | wc -l)" = 1 &&
	test "$(stat -c %s "$s")" = "$(stat -c %s "$d")" &&
	cmp "$s" "$d" &&
	test "${s##*:2,}" = "${d##*:2,}" &&
	test "$(stat -c %Y "$s")" = "$(stat -c %Y "$d")"
}

# rss_ok BIG SMALL: BIG < 2 * SMALL + 16 MB (KB).
rss_ok() {
	local big small
	read -r big <"$1" && read -r small <"$2" &&
	echo "peak RSS: $1 $big KB, $2 $small KB" &&
	test "$big" -lt $((2 * small + 16384)) || {
		echo "$1: $big KB is not below 2 * $small + 16384 KB" >&2
		return 1
	}
}

test_expect_success 'setup: a 2 KB message and a 200 MB message' '
	make_small small &&
	s=$(find small/cur -type f) && test "$(stat -c %s "$s")" -gt 1500 &&
	test "$(stat -c %s "$s")" -lt 3000 &&
	make_big big &&
	b=$(find big/cur -type f) &&
	size=$(stat -c %s "$b") && echo "big message: $size bytes" &&
	test "$size" -gt $((big_mb * 1000000)) &&
	test "$(awk "length > 998" "$b" | wc -l)" = 0 &&
	head -c 100 "$b" | grep -q "^Return-Path:"
'

test_expect_success 'the 2 KB message syncs (baseline)' '
	run_measured small.plain "$MSYNC" small small.dst &&
	same_message small small.dst
'

test_expect_success 'the 200 MB message syncs and arrives byte-identical' '
	run_measured big.plain "$MSYNC" --stats big big.dst 2>stats.plain &&
	cat stats.plain &&
	same_message big big.dst &&
	grep "changes on B: 1 copied" stats.plain &&
	ls big.dst/tmp >tmpfiles && test_line_count = 0 tmpfiles
'

test_expect_success 'a second run changes nothing' '
	"$MSYNC" big big.dst 2>again.err &&
	same_message big big.dst && same_message big.dst big
'

test_expect_success GNU_TIME 'peak memory: 200 MB message < 2x the 2 KB one + 16 MB' '
	rss_ok big.plain.rss small.plain.rss
'

test_expect_success 'the other direction: B to A, 200 MB' '
	make_maildir back &&
	"$MSYNC" back big.dst &&
	same_message big back &&
	rm -rf back
'

test_expect_success 'with -z: the 2 KB message (baseline)' '
	run_measured small.z "$MSYNC" -z small small.zdst &&
	same_message small small.zdst
'

test_expect_success 'with -z: the 200 MB message arrives byte-identical, through the LZ4 stream' '
	rm -rf big.dst &&
	run_measured big.z "$MSYNC" -z --stats big big.zdst 2>stats.z &&
	cat stats.z &&
	same_message big big.zdst &&
	grep "changes on B: 1 copied" stats.z &&
	! grep "uncompressed" stats.z &&
	sent=$(sed -n "s/.*wire: sent \([0-9]*\) bytes (\([0-9]*\) before.*/\1/p" stats.z) &&
	before=$(sed -n "s/.*wire: sent \([0-9]*\) bytes (\([0-9]*\) before.*/\2/p" stats.z) &&
	echo "sent $sent, before compression $before" &&
	test "$before" -gt $((big_mb * 1000000)) &&
	# base64 of random bytes does not shrink under LZ4 (no entropy
	# coding): the stream is compressed (the counts differ) and grows
	# by at most LZ4s worst case, well under 1%.
	test "$sent" != "$before" &&
	test "$sent" -lt $((before + before / 100))
'

test_expect_success GNU_TIME 'with -z: peak memory < 2x the 2 KB one + 16 MB' '
	rss_ok big.z.rss small.z.rss
'

test_expect_success 'with -z the other way round' '
	make_maildir zback &&
	"$MSYNC" -z zback big.zdst &&
	same_message big zback &&
	rm -rf zback big.zdst
'

test_done
