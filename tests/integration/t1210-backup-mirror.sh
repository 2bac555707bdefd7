#!/usr/bin/env bash
test_description='--backup makes DST identical to SRC in one run, even
without a sync base (a first run into a DST that holds mail, a base that
a store contradicts), subject to the mass-deletion guard; --one-way and
two-way stay a union; locally and over ssh'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-sshd.sh"

test_require_prereq PERL

# snapshot DIR: names, sizes and mtimes of every file and the list of
# directories in DIR but msync's own files, to show that SRC (and a
# refused DST) are untouched.
snapshot() {
	(cd "$1" && find . -name 'msync.*' -prune -o -type f -print0 |
	    LC_ALL=C sort -z | xargs -0 -r stat -c "%n %s %Y" &&
	    find . -type d | LC_ALL=C sort)
}

# kept OLD NEW: every message (folder and content, any flags) of digest
# OLD is in digest NEW.
kept() {
	local f md5 rest
	while read -r f md5 rest; do
		grep -q "^$f  $md5  " "$2" || { echo "lost: $f $md5"; return 1; }
	done <"$1"
}

# pair: src with INBOX (3 messages), Work (2); dst made independently
# with two of src's messages (other flags), an extra message in INBOX
# and, unless $1 is "small", an extra mailbox Junk holding mail.
pair() {
	rm -rf src dst "$XDG_STATE_HOME/msync" "$XDG_CACHE_HOME/msync" &&
	make_maildir src && make_folder src Work &&
	deliver src "" S >src.1 && deliver src "" F >src.2 &&
	deliver src "" >/dev/null &&
	deliver src/.Work "" S >/dev/null && deliver src/.Work "" >/dev/null &&
	make_maildir dst &&
	deliver dst "$(cat src.1)" R >/dev/null &&
	deliver dst "$(cat src.2)" >/dev/null &&
	deliver dst "" T >/dev/null &&
	if [ "${1:-}" != small ]; then
		make_folder dst Junk && deliver dst/.Junk "" S >/dev/null
	else
		make_folder dst Empty
	fi
}

test_expect_success 'first backup into a DST with its own mail: one run, identical' '
	pair small &&
	snapshot src >src.before &&
	"$MSYNC" --backup src dst 2>err &&
	grep -q "first sync of this pair: B is made identical to A" err &&
	test_cmp_trees src dst &&
	test_path_is_missing dst/.Empty &&
	snapshot src >src.after && test_cmp src.before src.after &&
	"$MSYNC" --backup --stats src dst 2>stats && test_cmp_trees src dst &&
	grep -q "on B: 0 copied" stats
'

test_expect_success 'a DST mailbox holding mail stops the first backup, and says what would go' '
	pair &&
	snapshot dst >dst.before &&
	test_expect_code 1 "$MSYNC" --backup src dst 2>err &&
	grep -q "would delete mailbox Junk on B with 1 messages" err &&
	grep -q "force-deletes" err &&
	snapshot dst >dst.after && test_cmp dst.before dst.after &&
	test_path_is_missing "$XDG_STATE_HOME/msync" &&
	"$MSYNC" --backup --force-deletes src dst &&
	test_cmp_trees src dst && test_path_is_missing dst/.Junk
'

test_expect_success 'more than half of a DST mailbox of 20 or more is the guard too' '
	pair small &&
	for i in $(seq 1 20); do deliver dst "" >/dev/null || return 1; done &&
	snapshot dst >dst.before &&
	test_expect_code 1 "$MSYNC" --backup src dst 2>err &&
	grep -q "would expunge 21 of 23 messages in INBOX on B" err &&
	snapshot dst >dst.after && test_cmp dst.before dst.after &&
	"$MSYNC" --backup --force-deletes src dst && test_cmp_trees src dst
'

test_expect_success 'a base the store contradicts (SRC re-indexed): still one run' '
	pair small &&
	"$MSYNC" --backup src dst && test_cmp_trees src dst &&
	# SRC is read-only: its index lives in the cache; without it SRC
	# gets a new UIDVALIDITY, so the base no longer applies.
	rm -rf "$XDG_CACHE_HOME/msync" &&
	deliver dst "" >/dev/null && deliver dst/.Work "" F >/dev/null &&
	f=$(ls dst/cur/* | head -n 1) && set_flags "$f" T &&
	"$MSYNC" --backup src dst 2>err &&
	grep -q "mirroring A onto B without a base" err &&
	test_cmp_trees src dst
'

test_expect_success '--one-way and two-way stay a union without a base' '
	pair small &&
	maildir_digest dst >dst.digest &&
	"$MSYNC" --one-way src dst 2>err &&
	grep -q "first sync of this pair: merging, nothing deleted" err &&
	maildir_digest dst >dst.now && kept dst.digest dst.now &&
	test_path_is_dir dst/.Empty &&
	pair small && maildir_digest dst >dst.digest &&
	"$MSYNC" src dst && test_cmp_trees src dst &&
	maildir_digest dst >dst.now && kept dst.digest dst.now
'

test_expect_success SSHD 'start sshd' 'start_sshd'

test_expect_success SSHD 'over ssh, push and pull: one run, identical' '
	pair small &&
	"$MSYNC" -e "$SSH_CMD" --backup src "msynctest:$PWD/dst" &&
	test_cmp_trees src dst &&
	pair small &&
	"$MSYNC" -e "$SSH_CMD" --backup "msynctest:$PWD/src" dst &&
	test_cmp_trees src dst &&
	pair &&
	test_expect_code 1 "$MSYNC" -e "$SSH_CMD" --backup src \
	    "msynctest:$PWD/dst" 2>err &&
	grep -q "would delete mailbox Junk on B" err &&
	test_path_is_dir dst/.Junk &&
	"$MSYNC" -e "$SSH_CMD" --backup --force-deletes src \
	    "msynctest:$PWD/dst" &&
	test_cmp_trees src dst
'

test_done
