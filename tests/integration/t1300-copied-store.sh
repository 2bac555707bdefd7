#!/usr/bin/env bash
test_description='a store copied (cp -a, rsync -a, tar) keeps its sync base; one restored from an older copy is merged as a union'
. "$(dirname "$0")/lib.sh"

# Issue 10 part 1: a folder's identity is what it holds (its index, its
# mailbox GUID, its file names), never its inode numbers.  Each store is
# replaced in place by a copy made with METHOD (new inode numbers, same
# contents and stamps), as a move to a new disk mounted at the same place
# or a backup restore does; deletions and flag changes made afterwards
# must propagate, and nothing deleted may come back.  The trees are
# compared with maildir_digest (perl), not with msync.

# replace_store METHOD DIR: DIR becomes a copy of itself made by METHOD.
replace_store() {
	local m=$1 d=$2
	case $m in
	cp) cp -a "$d" "$d.copy" && rm -rf "$d" && mv "$d.copy" "$d" ;;
	rsync) rsync -a "$d/" "$d.copy/" && rm -rf "$d" && mv "$d.copy" "$d" ;;
	tar) tar -C "$d" -cf "$d.tar" . && rm -rf "$d" && mkdir "$d" &&
	    tar -C "$d" -xf "$d.tar" && rm -f "$d.tar" ;;
	*) return 1 ;;
	esac
}

# first_msg DIR: the first message file of DIR (cur/ then new/), by name.
first_msg() {
	ls "$1"/cur/* "$1"/new/* 2>/dev/null | sort | head -n "${2:-1}" | tail -n 1
}

# no_union FILE: the run trusted its base (no union note, no rebuild).
no_union() {
	! grep -E "merging without deletions|rebuilding|older than" "$1"
}

methods="cp tar"
test_have_prereq RSYNC && methods="cp rsync tar"

setup_pair() {
	make_folder "$1" Work &&
	for i in 1 2 3 4; do deliver "$1" "" S >/dev/null || return 1; done &&
	deliver "$1" "" >/dev/null &&
	deliver "$(folder_path "$1" Work)" "" >/dev/null &&
	deliver "$(folder_path "$1" Work)" "" F >/dev/null
}

for m in $methods; do

test_expect_success "two-way, both stores copied with $m: deletions and flags propagate" '
	setup_pair a.$m && "$MSYNC" a.$m b.$m && test_cmp_trees a.$m b.$m &&
	ino=$(stat -c %i a.$m/cur) &&
	replace_store $m a.$m && replace_store $m b.$m &&
	if [ $m != tar ]; then test "$(stat -c %i a.$m/cur)" != "$ino"; fi &&
	rm "$(first_msg a.$m)" &&
	set_flags "$(first_msg a.$m 2)" FS &&
	rm "$(first_msg b.$m/.Work)" &&
	"$MSYNC" a.$m b.$m 2>err.$m && cat err.$m && no_union err.$m &&
	test_cmp_trees a.$m b.$m &&
	test "$(count_msgs a.$m)" = 4 && test "$(count_msgs a.$m/.Work)" = 1 &&
	maildir_digest a.$m | grep -q "  FS$" &&
	"$MSYNC" a.$m b.$m 2>err2.$m && no_union err2.$m &&
	test "$(count_all b.$m)" = 5
'

test_expect_success "--backup, both stores copied with $m: DST follows in one run, nothing recopied" '
	setup_pair s.$m && "$MSYNC" --backup s.$m d.$m &&
	replace_store $m s.$m && replace_store $m d.$m &&
	rm "$(first_msg s.$m)" && set_flags "$(first_msg s.$m)" T &&
	"$MSYNC" --backup --stats s.$m d.$m 2>err.b.$m && cat err.b.$m &&
	no_union err.b.$m && grep -q "on B: 0 copied" err.b.$m &&
	test_cmp_trees s.$m d.$m && test_path_is_missing s.$m/msync.index
'

test_expect_success "--one-way, both stores copied with $m: what DST deleted stays deleted" '
	setup_pair o.$m && "$MSYNC" -1 o.$m p.$m &&
	rm "$(first_msg p.$m)" && "$MSYNC" -1 o.$m p.$m &&
	test "$(count_msgs p.$m)" = 4 &&
	replace_store $m o.$m && replace_store $m p.$m &&
	rm "$(first_msg p.$m)" && set_flags "$(first_msg o.$m 3)" R &&
	"$MSYNC" -1 o.$m p.$m 2>err.o.$m && cat err.o.$m && no_union err.o.$m &&
	test "$(count_msgs p.$m)" = 3 && test "$(count_msgs o.$m)" = 5 &&
	maildir_digest p.$m | grep -q "  R$"
'

done

test_expect_success 'two live copies of a read-only source keep apart in the cache' '
	setup_pair c1 && "$MSYNC" --backup c1 e1 &&
	cp -a c1 c2 && "$MSYNC" --backup c2 e2 &&
	rm "$(first_msg c1)" && set_flags "$(first_msg c2 2)" F &&
	rm "$(first_msg c2/.Work)" &&
	"$MSYNC" --backup --stats c1 e1 2>err.c1 && no_union err.c1 &&
	grep -q "on B: 0 copied" err.c1 && test_cmp_trees c1 e1 &&
	"$MSYNC" --backup --stats c2 e2 2>err.c2 && no_union err.c2 &&
	grep -q "on B: 0 copied" err.c2 && test_cmp_trees c2 e2 &&
	"$MSYNC" --backup --stats c1 e1 2>err.c1b && grep -q "on B: 0 copied (0 bytes), 0 moved/local, 0 flag changes, 0 expunged" err.c1b &&
	test "$(count_all e1)" = 6 && test "$(count_all e2)" = 6
'

# --- restored from an older copy: a union, nothing deleted --------------

test_expect_success 'two-way: a store restored from an older tar is merged without deletions' '
	setup_pair ra && "$MSYNC" ra rb &&
	tar -C ra -cf ra.tar . &&
	deliver rb "" >/dev/null && deliver rb/.Work "" S >/dev/null &&
	"$MSYNC" ra rb && test "$(count_all ra)" = 9 &&
	rm -rf ra && mkdir ra && tar -C ra -xf ra.tar &&
	test "$(count_all ra)" = 7 &&
	"$MSYNC" ra rb 2>err.r && cat err.r &&
	grep -q "merging without deletions" err.r &&
	test "$(count_all rb)" = 9 && test_cmp_trees ra rb
'

test_expect_success 'two-way: the restored side is B (the other direction)' '
	tar -C rb -cf rb.tar . &&
	deliver ra "" >/dev/null && "$MSYNC" ra rb && test "$(count_all rb)" = 10 &&
	rm -rf rb && mkdir rb && tar -C rb -xf rb.tar &&
	"$MSYNC" ra rb 2>err.rb && grep -q "merging without deletions" err.rb &&
	test "$(count_all ra)" = 10 && test_cmp_trees ra rb
'

test_expect_success 'two-way: only cur/ restored from an older copy, under a newer index: a union' '
	tar -C ra -cf cur.tar cur && sleep 3 &&
	deliver rb "" S >/dev/null && "$MSYNC" ra rb && test "$(count_all ra)" = 11 &&
	rm -rf ra/cur && mkdir ra/cur &&
	tar -C ra -xf cur.tar &&
	"$MSYNC" ra rb 2>err.c && cat err.c && grep -q "older than its index" err.c &&
	test "$(count_all rb)" = 11 && test_cmp_trees ra rb
'

test_expect_success 'two-way: an older restore changed before the sync is still a union' '
	setup_pair xa && "$MSYNC" xa xb &&
	tar -C xa -cf xa.tar . &&
	deliver xb "" >/dev/null && deliver xb "" F >/dev/null &&
	"$MSYNC" xa xb && test "$(count_all xa)" = 9 &&
	rm -rf xa && mkdir xa && tar -C xa -xf xa.tar &&
	deliver xa "" >/dev/null &&
	rm "$(first_msg xa)" && set_flags "$(first_msg xa 2)" ST &&
	"$MSYNC" xa xb 2>err.x && cat err.x &&
	grep -q "merging without deletions" err.x &&
	test "$(count_all xb)" = 10 && test_cmp_trees xa xb
'

test_expect_success '--one-way: a DST restored from an older tar gets the missing mail again' '
	setup_pair oa && "$MSYNC" -1 oa ob &&
	tar -C ob -cf ob.tar . &&
	deliver oa "" >/dev/null && "$MSYNC" -1 oa ob && test "$(count_all ob)" = 8 &&
	rm -rf ob && mkdir ob && tar -C ob -xf ob.tar &&
	"$MSYNC" -1 oa ob 2>err.o && cat err.o &&
	test "$(count_all ob)" = 8 && test_cmp_trees oa ob
'

test_expect_success 'a tar restore of the current state keeps the base (two-way)' '
	tar -C ra -cf now.tar . && rm -rf ra && mkdir ra && tar -C ra -xf now.tar &&
	rm "$(first_msg ra)" &&
	"$MSYNC" ra rb 2>err.n && no_union err.n &&
	test "$(count_all rb)" = 10 && test_cmp_trees ra rb
'

test_done
