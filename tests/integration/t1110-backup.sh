#!/usr/bin/env bash
test_description='--backup: DST becomes identical to SRC; SRC is never modified'
. "$(dirname "$0")/lib.sh"

snapshot() {
	(cd "$1" && find . -path ./msync.index -prune -o -print0 | sort -z |
	    xargs -0 stat -c "%n %s %Y %i" ) 
}

test_expect_success 'setup' '
	make_maildir src && make_folder src Work && make_folder src Work/Old &&
	for i in 1 2 3 4 5; do deliver src "" S >/dev/null; done &&
	deliver src "" >/dev/null &&
	deliver "$(folder_path src Work)" "" F >/dev/null &&
	deliver "$(folder_path src Work/Old)" "" >/dev/null
'

test_expect_success 'backup into an empty DST copies everything' '
	"$MSYNC" --backup src dst &&
	test_cmp_trees src dst
'

test_expect_success 'SRC is byte-for-byte untouched by a backup' '
	snapshot src >before &&
	deliver dst "" >/dev/null &&
	"$MSYNC" --backup src dst &&
	snapshot src >after && test_cmp before after &&
	test_path_is_missing src/msync.index
'

test_expect_success 'extra messages in DST are expunged, flags overwritten' '
	deliver dst "" >/dev/null &&
	f=$(ls dst/cur/* | head -n 1) && set_flags "$f" T &&
	"$MSYNC" --backup src dst && test_cmp_trees src dst
'

test_expect_success 'changes in SRC reach DST' '
	deliver src "" R >/dev/null &&
	rm "$(ls src/cur/* | head -n 1)" &&
	"$MSYNC" --backup src dst && test_cmp_trees src dst
'

test_expect_success 'a mailbox deleted in SRC that holds mail needs --force-deletes' '
	rm -r "$(folder_path src Work/Old)" &&
	test_expect_code 1 "$MSYNC" --backup src dst 2>err &&
	grep -q "force-deletes" err &&
	test_path_is_dir "$(folder_path dst Work/Old)" &&
	"$MSYNC" --backup --force-deletes src dst && test_cmp_trees src dst &&
	test_path_is_missing "$(folder_path dst Work/Old)"
'

test_expect_success 'a mailbox renamed in SRC is renamed in DST, nothing recopied' '
	mv "$(folder_path src Work)" "$(folder_path src Projects)" &&
	"$MSYNC" --backup --stats src dst 2>stats &&
	test_cmp_trees src dst &&
	test_path_is_missing "$(folder_path dst Work)" &&
	grep -q "on B: 0 copied" stats
'

test_done
