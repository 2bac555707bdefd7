#!/usr/bin/env bash
test_description='the destination of a 1% run applies each folder'"'"'s flag changes and expunges right after its saves (issue 10.3: memory): past the bound on loaded indexes it checks and lets go of each folder as it goes, decodes none more often than before, and the stores come out equal'
. "$(dirname "$0")/lib.sh"

# Before, the destination changed flags and expunged after every
# folder's saves, so it held every folder it changed from its first save
# to the end-of-run check.  Now, past the bound (MSYNC_TEST_INDEX_KEEP
# here), each folder is checked and unloaded when the destination's
# actions on it are done: the unloads then happen with about one folder
# loaded, and the end of the run loads none again.

nf=6		# INBOX and F1..F5, 20 messages each
per=20

# unloads LOG: "folder count" for every folder the destination (the
# peer) unloaded in the run logged in LOG.
unloads() {
	grep "^msync\[peer\].*index unloaded" "$1" |
	    sed "s/: index unloaded.*//" | sort | uniq -c
}

# most_loaded LOG: the most index entries the destination held loaded
# when it unloaded a folder after its first check (ix_trim says how many
# were loaded; the listing, before, loads every changed folder at once).
most_loaded() {
	sed -n "/^msync\[peer\].*checked as my actions/,\$p" "$1" |
	    grep "^msync\[peer\].*index unloaded" |
	    sed "s/.*(\([0-9]*\) entries loaded).*/\1/" | sort -n | tail -n 1
}

# New mail is delivered before the expunges: deliver takes the first
# free name of the second, and a name just removed would be taken again
# by other content, which a Maildir reader (msync, mbsync) takes for the
# same message (the glob order, and so which names were removed, follows
# the locale: the test failed under LC_ALL=C only).
test_expect_success 'setup: six folders synced, then new mail, flag changes and expunges in each' '
	make_maildir src &&
	for f in "" F1 F2 F3 F4 F5; do
		if test -n "$f"; then make_folder src "$f" || return 1; fi &&
		for i in $(seq 1 $per); do
			deliver "$(folder_path src "${f:-INBOX}")" "" S \
			    >/dev/null || return 1
		done
	done &&
	"$MSYNC" --backup src dst && test_cmp_trees src dst &&
	for f in "" F1 F2 F3 F4 F5; do
		d=$(folder_path src "${f:-INBOX}") &&
		set -- "$d"/cur/* &&
		set_flags "$1" SF && set_flags "$2" F &&
		if test "$f" != F5; then
			deliver "$d" >/dev/null && deliver "$d" >/dev/null ||
			return 1
		fi &&
		rm "$3" "$4" || return 1
	done &&
	sleep 1.2 &&
	cp -a src src0 && cp -a dst dst0 && cp -a home home0
'

# restore: src, dst and the sync state as they were after setup.
restore() {
	rm -rf src dst home &&
	cp -a src0 src && cp -a dst0 dst && cp -a home0 home
}

test_expect_success 'past the bound: every folder checked and let go as the destination is done with it' '
	restore &&
	MSYNC_TEST_INDEX_KEEP=1 "$MSYNC" -vvvv --backup src dst 2>log &&
	test_cmp_trees src dst &&
	test "$(grep -c "^msync\[peer\].*checked as my actions on it are done" log)" -eq $nf &&
	unloads log >counts &&
	test "$(wc -l <counts)" -eq $nf &&
	! awk "\$1 > 2" counts | grep . &&
	test "$(most_loaded log)" -le $((2 * (per + 2)))
'

# after_check LOG: the destination's lines that look at a folder's index
# (a rescan, a check from the header, the stamp chain) after the line
# that said the folder was checked: none, as the end of the run takes
# what that check found instead of loading the folder again.
after_check() {
	perl -ne '
		next unless s/^msync\[peer\]: //;
		if (/^\x27(.*)\x27: checked as my actions/) {
			$done{$1 eq "INBOX" ? "dst" : "dst/.$1"} = 1;
			next;
		}
		next unless /^rescanning \x27\S*\/(dst(?:\/\.\S+?)?)\x27/ ||
		    /^\x27\S*\/(dst(?:\/\.\S+?)?)\x27 (?:unchanged|changed only)/;
		print if $done{$1};
	' "$1"
}

# Each folder decoded as often as before: once by the listing, once for
# the changes; on main the end-of-run check loaded again every folder
# the destination had let go.
test_expect_success 'past the bound: no folder is looked at again after its check' '
	after_check log >after &&
	! test -s after &&
	"$MSYNC" --backup --stats src dst 2>stats && test_cmp_trees src dst &&
	grep -q "on B: 0 copied" stats
'

test_expect_success 'below the bound: nothing let go, the check stays at the end' '
	restore &&
	"$MSYNC" -vvvv --backup src dst 2>log2 &&
	test_cmp_trees src dst &&
	! grep "checked as my actions on it are done" log2 &&
	! grep "index unloaded" log2
'

# Two-way, changes on the second side: the client (A) applies them.
test_expect_success 'two-way past the bound: both sides equal, each folder checked once' '
	"$MSYNC" src dst && test_cmp_trees src dst &&
	for f in F1 F2; do
		d=$(folder_path dst $f) && set -- "$d"/cur/* &&
		set_flags "$1" ST && deliver "$d" >/dev/null &&
		rm "$2" || return 1
	done &&
	sleep 1.2 &&
	MSYNC_TEST_INDEX_KEEP=1 "$MSYNC" -vvvv src dst 2>log3 &&
	test_cmp_trees src dst &&
	test "$(grep -c "^msync: .*checked as my actions on it are done" log3)" -eq 2 &&
	"$MSYNC" src dst && test_cmp_trees src dst
'

test_done
