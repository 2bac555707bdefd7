#!/usr/bin/env bash
test_description='a folder'"'"'s flag changes and expunges come right after its saves, but the expunge of a message moved to another folder waits for the local copy that reads it: a destination killed after any of its writes keeps every moved message in one folder or the other, and the next run ends equal'
. "$(dirname "$0")/lib.sh"

# On the source, three messages of Old move to New, and Old gets new mail,
# a flag change and an expunge.  The destination then saves Old's new
# mail, changes Old's flag and removes its expunged message as soon as
# those saves are in, copies the three moved messages from its own Old
# into New (a local copy: no byte crosses the wire), and only then
# removes them from Old.  Were those three expunged with Old's others,
# a run killed before the copies would leave them in neither folder.

# moved_kept DIR: every moved message (by content) is in DIR's Old or New.
moved_kept() {
	local m
	for m in moved/*; do
		cat "$1"/.Old/cur/* "$1"/.Old/new/* "$1"/.New/cur/* \
		    "$1"/.New/new/* 2>/dev/null | grep -q -F -x \
		    "Message-ID: <$(basename "$m").msync-test@example.org>" ||
		    { echo "lost: $m in $1"; return 1; }
	done
}

# msg_in DIR N: the file of message N in DIR's cur/.
msg_in() {
	grep -l -x "Message-ID: <mv.$2.msync-test@example.org>" "$1"/cur/*
}

# put_new DIR N: message N delivered into DIR's new/ under a name never
# used before (deliver's may be that of a message just moved away, which
# to a Maildir reader is the same message).
put_new() {
	cp "m$2" "$1/tmp/new$2" && mv "$1/tmp/new$2" "$1/new/2000000000.new$2.host"
}

# move_to FILE DIR: a mail reader's move of FILE into DIR's cur/, under a
# name of its own (deliver's names repeat from one folder to the next).
move_to() {
	mv "$1" "$2/cur/moved.$(basename "$1")"
}

# synced_pair [OPTION]: a and b built anew (Old with mv.1-10, New with
# mv.11-14) and synced (with OPTION: --backup).  Built anew each time: a
# copied source would be a new directory to msync.
synced_pair() {
	rm -rf a b home/.local/state home/.cache moved &&
	make_maildir a && make_folder a Old && make_folder a New &&
	for i in $(seq 1 10); do deliver a/.Old m$i S >/dev/null || return 1; done &&
	for i in $(seq 11 14); do deliver a/.New m$i S >/dev/null || return 1; done &&
	"$MSYNC" "$@" a b >/dev/null 2>&1 && test_cmp_trees a b
}

# move_three ROOT I J K: messages I, J and K moved from ROOT's Old to
# its New, and noted in moved/.
move_three() {
	local root=$1 i
	shift
	mkdir moved &&
	for i in "$@"; do
		move_to "$(msg_in "$root"/.Old $i)" "$root"/.New &&
		: >moved/mv.$i || return 1
	done
}

# setup_backup: synced_pair --backup, then on a: mv.2, 5 and 7 moved from
# Old to New, mv.1 flagged, mv.3 expunged, mv.15 and 16 delivered into
# Old.
setup_backup() {
	synced_pair --backup && move_three a 2 5 7 &&
	set_flags "$(msg_in a/.Old 1)" SF && rm "$(msg_in a/.Old 3)" &&
	put_new a/.Old 15 && put_new a/.Old 16 &&
	sleep 1.2
}

test_expect_success 'setup: the messages' '
	for i in $(seq 1 16); do gen_message $i mv >m$i || return 1; done
'

test_expect_success 'the moved messages are copied within the destination, then expunged from Old' '
	setup_backup &&
	"$MSYNC" -vv --backup a b 2>log &&
	test_cmp_trees a b &&
	test "$(grep -c "^msync: copy .* within B: .Old. uid [0-9]* -> .New." log)" -eq 3
'

# The destination writes: 2 saves, 1 flag change, 1 expunge, 3 copies, 3
# expunges; killed after each (and once more, after all of them).  Before
# session 10 (and with no flush of the copies) writes 7-10 lost a moved
# message on the destination: its copy still in New/tmp/, its source
# expunged from Old.
for n in $(seq 1 11); do
	test_expect_success "destination killed after write $n: no moved message lost, the next run ends equal" '
		setup_backup &&
		test_might_fail "$MSYNC" -Tcrash-server=$n --backup a b \
		    >/dev/null 2>&1 &&
		moved_kept b &&
		"$MSYNC" --backup a b && test_cmp_trees a b
	'
done

# setup_twoway: synced_pair (two-way), then on b: mv.1, 3 and 4 moved
# from Old to New, mv.2 flagged, mv.5 expunged, mv.15 delivered into Old.
# The client (a) applies them.
setup_twoway() {
	synced_pair && move_three b 1 3 4 &&
	set_flags "$(msg_in b/.Old 2)" ST && rm "$(msg_in b/.Old 5)" &&
	put_new b/.Old 15 &&
	sleep 1.2
}

# The client writes: 1 save, 1 flag change, 1 expunge, 3 copies, 3
# expunges.
for n in $(seq 1 9); do
	test_expect_success "two-way: the client killed after write $n: no moved message lost, the next run ends equal" '
		setup_twoway &&
		test_might_fail "$MSYNC" -Tcrash=$n a b >/dev/null 2>&1 &&
		moved_kept a &&
		"$MSYNC" a b && test_cmp_trees a b
	'
done

test_done
