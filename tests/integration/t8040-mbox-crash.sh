#!/usr/bin/env bash
test_description='mbox: a two-way run between a Maildir and an mbox store killed after any durable step resumes without loss or duplicates'
. "$(dirname "$0")/lib.sh"

test_require_prereq PERL

# Prints the path of the message in Maildir folder dir whose content is
# file's.
find_msg() {
	local f
	for f in "$1"/cur/* "$1"/new/*; do
		[ -f "$f" ] && cmp -s "$f" "$2" && { echo "$f"; return 0; }
	done
	return 1
}

# mbox_append FILE MSG: a delivery into an mbox file, as an MTA makes it.
mbox_append() {
	{ printf "From crash@example.org Mon Jan  1 10:00:00 2024\n" &&
	  sed "s/^\(>*From \)/>\1/" "$2" && printf "\n"; } >>"$1"
}

# The same starting point each time: ./a (Maildir) and ./b (mbox
# directory) synced, then new mail, flag changes, an expunge and a rename
# on the Maildir side, and deliveries into the mbox INBOX.
setup_pair() {
	rm -rf a b home/.local/state home/.cache &&
	make_maildir a && make_folder a Work &&
	for i in $(seq 1 12); do deliver a "$SRCMSG/m$i" S >/dev/null; done &&
	for i in $(seq 13 16); do deliver a/.Work "$SRCMSG/m$i" >/dev/null; done &&
	"$MSYNC" a mbox:b >/dev/null 2>&1 &&
	for i in $(seq 17 22); do deliver a "$SRCMSG/m$i" F >/dev/null; done &&
	for i in $(seq 23 26); do mbox_append b/INBOX "$SRCMSG/m$i"; done &&
	set_flags "$(find_msg a "$SRCMSG/m2")" ST &&
	rm "$(find_msg a "$SRCMSG/m3")" &&
	mv a/.Work a/.Projects
}

# digest_b: the mbox store as a Maildir digest (converted by msync into
# a scratch Maildir, which is then read by maildir_digest).
digest_b() {
	rm -rf bmd "$TRASH/scratch" &&
	    XDG_STATE_HOME=$TRASH/scratch XDG_CACHE_HOME=$TRASH/scratch \
	    "$MSYNC" --backup mbox:b bmd >/dev/null 2>&1 &&
	maildir_digest --names bmd
}

test_expect_success 'setup: messages and the expected result' '
	mkdir msgs && SRCMSG=$PWD/msgs &&
	for i in $(seq 1 26); do gen_message $i crash >msgs/m$i; done &&
	setup_pair && "$MSYNC" a mbox:b && maildir_digest --names a >expected &&
	digest_b >expected.b && test_cmp expected expected.b &&
	test_line_count = 25 expected
'

SRCMSG=$TRASH/msgs
for n in $(seq 1 20); do
	for who in crash crash-server; do
		test_expect_success "killed after write $n ($who), then resumed" '
			setup_pair &&
			test_might_fail "$MSYNC" -T$who=$n a mbox:b >/dev/null 2>&1 &&
			"$MSYNC" a mbox:b 2>err &&
			maildir_digest --names a >got.a && digest_b >got.b &&
			test_cmp expected got.a && test_cmp expected got.b &&
			"$MSYNC" a mbox:b &&
			test "$(grep -c "^From " b/INBOX)" = "$(grep -c "^INBOX " expected)"
		'
	done
done

test_done
