#!/usr/bin/env bash
test_description='moves travel as local copies; duplicates are a multiset; keywords by name'
. "$(dirname "$0")/lib.sh"

test_expect_success 'setup' '
	make_maildir a && make_folder a Archive &&
	for i in 1 2 3; do deliver a "" S >/dev/null; done &&
	"$MSYNC" a b && test_cmp_trees a b
'

test_expect_success 'a move on A is a move on B: no content on the wire' '
	f=$(ls a/cur/* | head -n 1) &&
	mv "$f" a/.Archive/cur/ &&
	"$MSYNC" --stats -v a b 2>stats && test_cmp_trees a b &&
	grep -q "on B: 0 copied (0 bytes), 1 moved" stats
'

test_expect_success 'a file renamed within its folder keeps its UID: nothing moves' '
	(cd b && find . -path "*/cur/*" -o -path "*/new/*" | sort) >before &&
	f=$(ls a/cur/* | head -n 1) &&
	mv "$f" "${f%%:2,*},U=7:2,${f##*:2,}" &&
	"$MSYNC" --stats a b 2>stats && test_cmp_trees a b &&
	grep -q "on B: 0 copied (0 bytes), 0 moved/local, 0 flag changes, 0 expunged" stats &&
	(cd b && find . -path "*/cur/*" -o -path "*/new/*" | sort) >after &&
	test_cmp before after
'

test_expect_success 'two identical copies in one folder are two messages' '
	gen_message 77 dup >dup.eml &&
	deliver a dup.eml >/dev/null && deliver a dup.eml >/dev/null &&
	"$MSYNC" a b && test "$(count_msgs b)" = "$(count_msgs a)" &&
	test_cmp_trees a b &&
	deliver b dup.eml S >/dev/null &&
	"$MSYNC" a b && test_cmp_trees a b &&
	test "$(maildir_digest a | grep -c "$(md5sum <dup.eml | cut -d" " -f1)")" = 3
'

test_expect_success 'keywords travel by name, whatever the letters' '
	make_maildir k1 && make_maildir k2 &&
	printf "0 \$Forwarded\n1 work\n" >k1/dovecot-keywords &&
	printf "0 other\n1 \$Forwarded\n2 work\n" >k2/dovecot-keywords &&
	deliver k1 "" Sab >/dev/null &&
	"$MSYNC" k1 k2 &&
	"$MSYNC" --list -vv k2 >list &&
	grep -q "S \$Forwarded work" list &&
	ls k2/cur | grep -q ":2,Sbc$"
'

test_done
