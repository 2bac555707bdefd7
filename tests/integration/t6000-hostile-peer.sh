#!/usr/bin/env bash
test_description='a hostile peer against msync --server --restrict: bounded,
validated, no crash, no write outside the root (DESIGN.md promise 3)'
. "$(dirname "$0")/lib.sh"

# hostile_peer.py plays side A of docs/PROTOCOL.md against
# "$MSYNC --server --restrict ROOT" (a child with pipes) and sends
# hostile input.  For every server run it checks: no signal, no exit
# 86/126/127, no sanitizer report on stderr, an exit within 5 s of the
# end of its input (else killed: a hang), a non-zero exit for hostile
# input with an ERROR record or an error LOG (or exit 76), peak RSS
# under a bound with RLIMIT_AS at 512 MiB (not for sanitizer builds),
# and nothing changed under w/ outside the root: the canaries in
# w/outside/ (and behind the symlinks) stay byte-identical and no file
# appears.  Each case prints what it sent and what the server said.
#
# Layout of the trash directory:
#   w/                 the watched directory (the server's cwd)
#   w/outside/         canaries: secret.txt, md/ (a Maildir), dir/
#   w/r/main           Maildir++ root: INBOX, Work, Lists/dev (only listed)
#   w/r/fs             fs-layout root: INBOX, Work, Work/Sub (only listed)
#   w/r/sync           a copy of main for the cases that get to write
#   w/r/extreme        copies of main and fs for extreme mailbox names
#   w/r/fsextreme
#   w/r/mdlink         Maildir++ root (INBOX, Work) with .evil -> w/outside/md
#   w/r/fslink         fs root (INBOX, Work) with evil -> w/outside/md,
#                      sub -> w/outside/dir
#   w/r/inside         Maildir++ root with symlinks to w/outside inside:
#                      two message files and dovecot-keywords in INBOX,
#                      .box/cur, .box2/tmp, and .box3's msync.index,
#                      maildirfolder and dovecot-keywords
#   w/r/locklink       Maildir++ root whose msync.lock is a symlink

test_lazy_prereq PYTHON3 'python3 -c "import select, resource, ctypes"'
test_require_prereq PYTHON3 MSYNC

W=$TRASH/w
R=$W/r

# hostile ROOT CASE [ARGS...]: run one case of hostile_peer.py.
hostile() {
	local root=$1
	shift
	python3 "$TEST_DIR/hostile_peer.py" --msync "$MSYNC" --root "$root" \
	    --watch "$W" "$@"
}

# tree_sums DIR: every entry under DIR (type, size, mode, link target)
# and the checksum of every file, to compare DIR before and after.
tree_sums() {
	(cd "$1" && find . -printf "%p %y %s %m %l\n" | sort &&
	    find . -type f -print0 | sort -z | xargs -0 -r sha256sum --)
}

test_expect_success 'setup: roots, canaries outside, planted symlinks' '
	mkdir -p "$W/outside/dir" "$R" &&
	printf "Subject: secret\n\nthe canary: must never be read or written\n" \
	    >"$W/outside/secret.txt" &&
	echo "a file in a plain directory" >"$W/outside/dir/file" &&
	make_maildir "$W/outside/md" &&
	deliver "$W/outside/md" "" S >/dev/null &&

	make_folder "$R/main" Work && make_folder "$R/main" Lists &&
	make_folder "$R/main" Lists/dev &&
	deliver "$R/main" "" S >/dev/null &&
	deliver "$(folder_path "$R/main" Work)" "" >/dev/null &&

	make_maildir "$R/fs" && make_maildir "$R/fs/Work" &&
	make_maildir "$R/fs/Work/Sub" &&
	deliver "$R/fs/Work/Sub" "" F >/dev/null &&

	make_folder "$R/mdlink" Work && deliver "$R/mdlink" "" >/dev/null &&
	deliver "$(folder_path "$R/mdlink" Work)" "" >/dev/null &&
	ln -s "$W/outside/md" "$R/mdlink/.evil" &&

	make_maildir "$R/fslink" && make_maildir "$R/fslink/Work" &&
	deliver "$R/fslink/Work" "" S >/dev/null &&
	ln -s "$W/outside/md" "$R/fslink/evil" &&
	ln -s "$W/outside/dir" "$R/fslink/sub" &&

	make_maildir "$R/inside" && deliver "$R/inside" "" S >/dev/null &&
	ln -s "$W/outside/secret.txt" "$R/inside/cur/1700000000.M1P1.link:2,S" &&
	ln -s "$W/outside/secret.txt" "$R/inside/new/1700000001.M1P1.link" &&
	ln -s "$W/outside/secret.txt" "$R/inside/dovecot-keywords" &&
	make_maildir "$R/inside/.box" && rmdir "$R/inside/.box/cur" &&
	ln -s "$W/outside/md/cur" "$R/inside/.box/cur" &&
	make_maildir "$R/inside/.box2" && rmdir "$R/inside/.box2/tmp" &&
	ln -s "$W/outside/md/tmp" "$R/inside/.box2/tmp" &&
	make_maildir "$R/inside/.box3" &&
	ln -s "$W/outside/secret.txt" "$R/inside/.box3/msync.index" &&
	ln -s "$W/outside/secret.txt" "$R/inside/.box3/maildirfolder" &&
	ln -s "$W/outside/secret.txt" "$R/inside/.box3/dovecot-keywords" &&

	make_maildir "$R/locklink" &&
	ln -s "$W/outside/secret.txt" "$R/locklink/msync.lock" &&
	cp -a "$R/main" "$R/sync" && cp -a "$R/main" "$R/extreme" &&
	cp -a "$R/fs" "$R/fsextreme" &&
	tree_sums "$W/outside" >outside.before &&
	test -s outside.before
'

# --- the client is right ---------------------------------------------

test_expect_success 'baseline: a well-formed LIST session (plain and LZ4) names the test mailboxes' '
	hostile "$R/main" baseline-list INBOX Work Lists Lists/dev &&
	hostile "$R/fs" --layout fs baseline-list INBOX Work Work/Sub
'

test_expect_success 'baseline: a well-formed sync copies one message into cur/' '
	hostile "$R/sync" baseline-copy
'

# Regression: the server once read the client's DONE where it expected
# BYE and exited 76 after every real sync.
test_expect_success 'a complete session (DONE, then BYE) ends with exit 0' '
	hostile "$R/sync" clean-exit
'

# --- hostile mailbox names (in A's view and in A's base) -------------

test_expect_success 'names with . and .. levels (a/../../x, overlong UTF-8 ..) are refused' '
	hostile "$R/main" name-dotdot && hostile "$R/fs" --layout fs name-dotdot
'

test_expect_success 'absolute names (/etc/...) and empty levels are refused' '
	hostile "$R/main" name-absolute &&
	hostile "$R/fs" --layout fs name-absolute
'

test_expect_success 'names with NUL bytes are refused' '
	hostile "$R/main" name-nul
'

test_expect_success 'names with control characters or invalid UTF-8 are refused' '
	hostile "$R/main" name-control
'

test_expect_success 'names over 1024 bytes are refused' '
	hostile "$R/main" name-overlong
'

test_expect_success 'names deeper than 32 levels are refused' '
	hostile "$R/main" name-deep && hostile "$R/fs" --layout fs name-deep
'

test_expect_success 'legal but extreme names (1024 bytes, 32 levels, UTF-7 blow-up, reserved) stay inside the root' '
	hostile "$R/extreme" name-extreme &&
	hostile "$R/fsextreme" --layout fs name-extreme
'

test_expect_success 'HELLO: a store path is ignored under --restrict; bad paths, patterns, enums refused' '
	hostile "$R/main" name-hello INBOX Work Lists Lists/dev
'

# --- symlinks planted in a root ---------------------------------------

test_expect_success 'Maildir++: a folder symlinked outside is not listed, not written through' '
	hostile "$R/mdlink" symlink-mailbox INBOX Work via evil
'

test_expect_success 'fs layout: folders symlinked outside are not listed, not written through' '
	hostile "$R/fslink" --layout fs symlink-mailbox INBOX Work via evil sub
'

test_expect_success 'renames the peer asks for stay inside the root (INBOX, onto or under a symlink, into a child)' '
	hostile "$R/mdlink" rename Work:evil INBOX:Evil Work:Work/Child \
	    =Work:evil/sub2 &&
	hostile "$R/fslink" --layout fs rename Work:sub/Work Work:evil \
	    Work:evil/x INBOX:Evil Work:Work/Child =Work:Work2
'

test_expect_success 'symlinked messages, cur/, tmp/ and dovecot-keywords are not followed' '
	hostile "$R/inside" --outside "$W/outside/secret.txt" symlink-inside
'

test_expect_success 'a symlinked msync.lock is not written through' '
	hostile "$R/locklink" symlink-lock
'

# --- framing ---------------------------------------------------------

test_expect_success 'absurd record and string lengths (0xffffffff) are refused' '
	hostile "$R/sync" lengths
'

test_expect_success 'absurd counts (MSGS of 4 billion entries, 10 million announced) are refused' '
	hostile "$R/sync" counts
'

test_expect_success 'field values out of range (uids, flags, sizes, keywords, statuses) are refused' '
	hostile "$R/sync" fields
'

test_expect_success 'unknown record types, and B-to-A types, are refused' '
	hostile "$R/sync" types
'

# Regression: LIST mode once ignored whatever followed its view.
test_expect_success 'after a --list view, anything but BYE is a protocol error' '
	hostile "$R/main" list-tail
'

test_expect_success 'truncated records, then the end of the stream' '
	hostile "$R/sync" truncated
'

test_expect_success 'records in the wrong order are refused' '
	hostile "$R/sync" order
'

test_expect_success 'the second part of the base: unknown, repeated, miscounted mailboxes' '
	hostile "$R/sync" base
'

test_expect_success 'a flood of legal records costs bounded memory' '
	hostile "$R/sync" flood
'

test_expect_success 'hostile LZ4 blocks (lengths, bad data, matches before the start)' '
	hostile "$R/sync" lz4
'

# --- messages --------------------------------------------------------

test_expect_success 'MSG_DATA longer or shorter than announced, sizes over 4 GiB' '
	hostile "$R/sync" msg-data
'

test_expect_success 'a message that does not match its GUID is discarded' '
	hostile "$R/sync" guid-mismatch
'

test_expect_success 'MSG_BEGIN / MSG_SKIP for an action out of range or not a COPY' '
	hostile "$R/sync" act-range
'

# --- handshake -------------------------------------------------------

test_expect_success 'a handshake line of garbage is refused' '
	hostile "$R/main" handshake-garbage
'

test_expect_success 'a handshake with no common version is refused' '
	hostile "$R/main" handshake-version
'

# --- afterwards ------------------------------------------------------

test_expect_success 'the canaries outside the roots are byte-identical' '
	tree_sums "$W/outside" >outside.after &&
	test_cmp outside.before outside.after &&
	find "$W/outside" -newer outside.before >newer &&
	test_line_count = 0 newer
'

test_done
