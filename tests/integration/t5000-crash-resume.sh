#!/usr/bin/env bash
test_description='a run killed after any durable step resumes without loss or duplicates'
. "$(dirname "$0")/lib.sh"

# Prints the path of the message in Maildir folder dir whose content is
# file's (file names carry times and pids, so choose by content).
find_msg() {
	local f
	for f in "$1"/cur/* "$1"/new/*; do
		[ -f "$f" ] && cmp -s "$f" "$2" && { echo "$f"; return 0; }
	done
	return 1
}

# Builds the same starting point in ./a and ./b: a synced pair, then a
# mix of new mail, flag changes, expunges and a rename on both sides.
setup_pair() {
	rm -rf a b home/.local/state &&
	make_maildir a && make_folder a Work &&
	for i in $(seq 1 12); do deliver a "$SRCMSG/m$i" S >/dev/null; done &&
	for i in $(seq 13 16); do deliver a/.Work "$SRCMSG/m$i" >/dev/null; done &&
	"$MSYNC" a b >/dev/null 2>&1 &&
	for i in $(seq 17 22); do deliver a "$SRCMSG/m$i" F >/dev/null; done &&
	for i in $(seq 23 26); do deliver b "$SRCMSG/m$i" R >/dev/null; done &&
	set_flags "$(find_msg a "$SRCMSG/m2")" ST &&
	rm "$(find_msg b "$SRCMSG/m3")" &&
	mv a/.Work a/.Projects
}

test_expect_success 'setup: messages and the expected result' '
	mkdir msgs && SRCMSG=$PWD/msgs &&
	for i in $(seq 1 26); do gen_message $i crash >msgs/m$i; done &&
	setup_pair && "$MSYNC" a b && maildir_digest --names a >expected &&
	maildir_digest --names b >expected.b && test_cmp expected expected.b
'

SRCMSG=$TRASH/msgs
for n in $(seq 1 24); do
	for who in crash crash-server; do
		test_expect_success "killed after write $n ($who), then resumed" '
			setup_pair &&
			test_might_fail "$MSYNC" -T$who=$n a b >/dev/null 2>&1 &&
			"$MSYNC" a b 2>err &&
			maildir_digest --names a >got.a &&
			maildir_digest --names b >got.b &&
			test_cmp expected got.a && test_cmp expected got.b &&
			"$MSYNC" a b
		'
	done
done

test_done
