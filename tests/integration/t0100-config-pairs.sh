#!/usr/bin/env bash
test_description='config file: named pairs, groups, selection, -j, --pairs, bad files'
. "$(dirname "$0")/lib.sh"

cfg=$XDG_CONFIG_HOME/msync/config

# snapshot DIR: every file with its size and content hash (stores intact?)
snapshot() {
	(cd "$1" && find . -type f ! -name msync.index ! -name msync.lock \
	    -print0 | sort -z | xargs -0 -r md5sum)
}

test_expect_success 'setup: two stores and a config' '
	make_maildir home/mail && make_maildir home/work &&
	for i in 1 2 3; do deliver home/mail "" S >/dev/null || return 1; done &&
	deliver home/work "" >/dev/null &&
	mkdir -p "$(dirname "$cfg")" &&
	cat >"$cfg" <<-\EOF &&
	# a test config
	defaults
		lock-wait 5s

	pair mail
		a ~/mail
		b ~/mail-copy
	pair work
		a ~/work
		b ~/work-backup
		mode backup
	pair broken
		a ~/not-a-dir/x
		b ~/broken-copy
	group good mail work
	group some good broken
	EOF
	chmod 600 "$cfg" && echo x >home/not-a-dir
'

test_expect_success 'a pair name runs that pair, lines prefixed with its name' '
	"$MSYNC" mail 2>err &&
	test_cmp_trees home/mail home/mail-copy &&
	test "$(count_msgs home/mail-copy)" = 3 &&
	grep -q "^mail: " err && ! grep -v "^mail: " err &&
	test_path_is_missing home/work-backup
'

test_expect_success 'the pair mode comes from the file (backup)' '
	"$MSYNC" work &&
	test_cmp_trees home/work home/work-backup &&
	deliver home/work-backup "" >/dev/null &&
	"$MSYNC" work && test_cmp_trees home/work home/work-backup &&
	test "$(count_msgs home/work-backup)" = 1
'

test_expect_success 'a group runs its pairs; a new message reaches both copies' '
	deliver home/mail "" >/dev/null && deliver home/work "" >/dev/null &&
	"$MSYNC" good &&
	test_cmp_trees home/mail home/mail-copy &&
	test_cmp_trees home/work home/work-backup
'

test_expect_success '-j 3 with a failing pair: the others finish, status is the failure' '
	deliver home/mail "" >/dev/null && deliver home/work "" >/dev/null &&
	test_must_fail "$MSYNC" -j 3 some 2>err &&
	grep -q "^broken: msync: error: " err &&
	test_cmp_trees home/mail home/mail-copy &&
	test_cmp_trees home/work home/work-backup &&
	test_path_is_file home/not-a-dir
'

test_expect_success '--all runs every pair (sequentially)' '
	deliver home/mail-copy "" >/dev/null &&
	test_must_fail "$MSYNC" --all 2>err &&
	test_cmp_trees home/mail home/mail-copy &&
	grep -q "^broken: " err && ! grep -q "^mail: .*error" err
'

test_expect_success '--pairs lists pairs, modes and the last result' '
	"$MSYNC" --pairs >out &&
	grep -q "^mail  *two-way .*last: .* status 0" out &&
	grep -q "^work  *backup .*status 0" out &&
	grep -q "^broken  *two-way .*status [1-9]" out &&
	grep -q "^some  *group  *good broken" out
'

test_expect_success 'command-line options reach each pair (-n changes nothing)' '
	deliver home/mail "" >/dev/null &&
	snapshot home/mail-copy >before &&
	"$MSYNC" -n mail 2>err &&
	snapshot home/mail-copy >after && test_cmp before after &&
	"$MSYNC" mail && test_cmp_trees home/mail home/mail-copy
'

test_expect_success 'an unknown name is an error with a hint, nothing touched' '
	snapshot home/mail >before &&
	test_expect_code 64 "$MSYNC" nosuch 2>err &&
	grep -q "no pair named .nosuch. in .*config" err &&
	grep -q "hint: the configured pairs are: mail, work, broken, good, some" err &&
	grep -q "hint: a location needs a ./. or a .:." err &&
	test_expect_code 64 "$MSYNC" mail nosuch 2>err &&
	grep -q "nosuch" err &&
	snapshot home/mail >after && test_cmp before after
'

test_expect_success 'two words that are not pairs stay two locations; ./NAME forces one' '
	make_maildir x && deliver x "" >/dev/null &&
	"$MSYNC" x y && test_cmp_trees x y &&
	make_maildir mail && deliver mail "" >/dev/null &&
	"$MSYNC" ./mail ./mail2 && test_cmp_trees mail mail2
'

test_expect_success 'a config that does not parse: file:line:col, exit 64, stores intact' '
	cp "$cfg" good.cfg &&
	printf "pair p\n\ta /x\n\tb /y\n\tfrobnicate yes\n" >"$cfg" &&
	snapshot home/mail >before &&
	test_expect_code 64 "$MSYNC" p 2>err &&
	grep -q "config:4:2: unknown key .frobnicate." err &&
	snapshot home/mail >after && test_cmp before after &&
	cp good.cfg "$cfg"
'

test_expect_success 'a group that contains itself is refused' '
	printf "pair p\n\ta /x\n\tb /y\ngroup g p h\ngroup h g\n" >bad.cfg &&
	test_expect_code 64 "$MSYNC" -F bad.cfg p 2>err &&
	grep -q "bad.cfg:4:1: group .g. contains itself" err
'

test_expect_success '-F names another file; a missing one is an error' '
	sed -e "s/pair mail/pair other/" -e "s/good mail work/good other work/" \
	    "$cfg" >other.cfg &&
	"$MSYNC" -F other.cfg other &&
	test_expect_code 64 "$MSYNC" -F missing.cfg mail 2>err &&
	grep -q "no config file .missing.cfg." err
'

test_expect_success 'a config that others may write is refused' '
	cp "$cfg" w.cfg && chmod 602 w.cfg &&
	test_expect_code 64 "$MSYNC" -F w.cfg mail 2>err &&
	grep -q "writable by others" err
'

test_expect_success 'a passcmd in a config others can read gets a warning' '
	printf "pair p\n\ta ~/mail\n\tb ~/mail-copy\n\tpasscmd pass show mail\n" >r.cfg &&
	chmod 644 r.cfg &&
	"$MSYNC" -F r.cfg p 2>err &&
	grep -q "readable by others and names a password command" err
'

test_expect_success 'a password in the config is refused with a pointer to passcmd' '
	printf "pair p\n\ta /x\n\tb /y\n\tpassword hunter2\n" >p.cfg &&
	chmod 600 p.cfg &&
	test_expect_code 64 "$MSYNC" -F p.cfg p 2>err &&
	grep -q "p.cfg:4:2: .*passcmd" err
'

test_expect_success 'the shipped examples/config parses and lists its pairs' '
	"$MSYNC" -F "$SRCDIR/examples/config" --pairs >out &&
	grep -q "^laptop  *two-way " out && grep -q "^backup  *backup " out &&
	grep -q "^import  *one-way " out && grep -q "^nightly  *group  *daily backup" out
'

test_expect_success '--all and --pairs take no names' '
	test_expect_code 64 "$MSYNC" --all mail &&
	test_expect_code 64 "$MSYNC" --pairs mail
'

test_done
