#!/usr/bin/env bash
test_description='--watch on local Maildirs: changes on either side are synced, bursts
are debounced, signals stop it cleanly, crashes converge, memory stays flat'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-watch.sh"

test_require_prereq PERL

cfg=$XDG_CONFIG_HOME/msync/config
XDG_RUNTIME_DIR=$TRASH/run
export XDG_RUNTIME_DIR

# syncs NAME: how many syncs reported so far.
syncs() { wc -l <"$1.out"; }

# same A B: the two trees hold the same messages and flags.
same() { test "$(maildir_digest "$1")" = "$(maildir_digest "$2")"; }

# no_dups DIR: no two messages in DIR have the same content.
no_dups() {
	test -z "$(for f in "$1"/cur/* "$1"/new/*; do
	    [ -f "$f" ] && md5sum <"$f"; done | sort | uniq -d)"
}

# deliver_new DIR N [TAG]: N deliveries the way an MDA makes them
# (written into tmp/, renamed into new/).
deliver_new() {
	local i
	for i in $(seq 1 "$2"); do
		gen_message "$i" "${3:-x}" >"$1/tmp/d$i.$3" &&
		mv "$1/tmp/d$i.$3" "$1/new/$(date +%s).d$i-$3.host" || return 1
	done
}

test_expect_success 'setup: a pair in the config' '
	make_maildir a && make_maildir b &&
	deliver a "" S >/dev/null &&
	mkdir -p "$(dirname "$cfg")" &&
	cat >"$cfg" <<-EOF &&
	pair w
		a $TRASH/a
		b $TRASH/b
		debounce 200ms
	EOF
	chmod 600 "$cfg"
'

test_expect_success 'the first sync runs at once' '
	watch_start w w &&
	wait_until has_count b 1 && same a b &&
	grep -q "\"pair\":\"w\"" w.out
'

test_expect_success 'a delivery into new/ on A reaches B' '
	deliver_new a 1 one &&
	wait_until has_count b 2 && wait_until same a b
'

test_expect_success 'a delivery on B and a flag change reach A' '
	deliver_new b 1 two &&
	wait_until has_count a 3 &&
	f=$(ls a/cur/* | head -n 1) && set_flags "$f" FS &&
	wait_until same a b
'

test_expect_success 'a new folder on B, and a message in it, reach A' '
	make_folder b Lists && deliver_new b/.Lists 2 three &&
	wait_until test -d a/.Lists && wait_until has_count a/.Lists 2 &&
	wait_until same a b
'

test_expect_success 'the loop settles: no syncs while nothing changes' '
	wait_until same a b && sleep 2 && n1=$(syncs w) &&
	sleep 3 && n2=$(syncs w) && test "$n1" = "$n2"
'

test_expect_success '500 deliveries in a burst make a handful of syncs' '
	n0=$(syncs w) &&
	deliver_new a 500 burst &&
	wait_until has_count b 503 && wait_until same a b &&
	sleep 2 && n1=$(syncs w) &&
	echo "syncs for the burst: $((n1 - n0))" &&
	test $((n1 - n0)) -le 25 &&
	no_dups a && no_dups b
'

test_expect_success 'every report is a sync of the pair, in sync or changed' '
	python3 -c "
import json, sys
for l in open(\"w.out\"):
    r = json.loads(l)
    assert r[\"pair\"] == \"w\", r
    assert r[\"status\"] in (0, 2), r
"
'

test_expect_success 'a second watch of the same pair is refused' '
	test_expect_code 75 "$MSYNC" --watch w 2>err2 &&
	grep -q "already watches" err2
'

test_expect_success 'SIGTERM: exit 0, nothing lost' '
	deliver_new a 50 term &&
	sleep 0.3 && watch_stop w &&
	"$MSYNC" w && same a b && has_count a 553 && has_count b 553 &&
	no_dups a && no_dups b
'

test_expect_success 'kill -9 of a sync, and of the watch, then a restart: converges, no duplicates' '
	watch_start w2 w &&
	deliver_new b 200 nine &&
	for i in $(seq 1 500); do
		pkill -9 -f "msync.*-- $TRASH/a $TRASH/b" && break
		sleep 0.01
	done
	echo "a sync was killed: $([ $i -lt 500 ] && echo yes || echo no)" &&
	kill -9 "$(cat w2.pid)" && { wait "$(cat w2.pid)" 2>/dev/null; true; } &&
	watch_start w3 w &&
	wait_until has_count a 753 && wait_until same a b &&
	no_dups a && no_dups b && watch_stop w3
'

test_expect_success 'SIGHUP reads the config again' '
	watch_start w4 w &&
	make_maildir c &&
	sed -i "s|b $TRASH/b|b $TRASH/c|" "$cfg" &&
	kill -HUP "$(cat w4.pid)" &&
	wait_until grep -q "read again" w4.err &&
	deliver_new a 1 hup &&
	wait_until has_count c 754 &&
	watch_stop w4 &&
	sed -i "s|b $TRASH/c|b $TRASH/b|" "$cfg"
'

test_expect_success 'a broken config on SIGHUP keeps the old one' '
	watch_start w5 w &&
	cp "$cfg" cfg.good && echo "frob" >>"$cfg" &&
	kill -HUP "$(cat w5.pid)" &&
	wait_until grep -q "keeping the old configuration" w5.err &&
	cp cfg.good "$cfg" &&
	deliver_new a 1 keep &&
	wait_until has_count b 755 &&
	watch_stop w5
'

test_expect_success 'a store deleted while watched: the other side keeps its mail, the watch goes on' '
	watch_start w6 w &&
	mv a a.gone &&
	wait_until grep -q "sync failed" w6.err &&
	kill -0 "$(cat w6.pid)" &&
	has_count b 755 && test_path_is_dir "$(folder_path b Lists)" &&
	test_path_is_missing a && mv a.gone a &&
	deliver_new b 1 back &&
	wait_until has_count a 756 &&
	wait_until grep -q "in sync again" w6.err &&
	watch_stop w6 &&
	"$MSYNC" w && same a b
'

test_expect_success 'an unreachable side: said once, retried, the watch goes on' '
	cat >un.cfg <<-EOF &&
	pair u
		a $TRASH/a
		b nosuchhost.invalid:mail
		rsh false
		debounce 100ms
	EOF
	chmod 600 un.cfg &&
	watch_start un -F un.cfg u &&
	wait_until grep -q "sync failed" un.err &&
	sleep 7 &&
	kill -0 "$(cat un.pid)" &&
	test "$(grep -c "sync failed" un.err)" = 1 &&
	watch_stop un
'

test_expect_success '--watch of two locations (./p ./q: a location has a / or :)' '
	make_maildir p && make_maildir q && deliver p "" S >/dev/null &&
	watch_start pq ./p ./q &&
	wait_until has_count q 1 &&
	deliver_new q 1 pq &&
	wait_until has_count p 2 &&
	watch_stop pq && same p q
'

# rss PID: resident set of PID in kB.
rss() { awk "/^VmRSS:/ { print \$2 }" "/proc/$1/status"; }

# Not under ASan: its quarantine of freed memory grows the RSS by design.
test_expect_success !SAN 'memory stays flat over 1,000 change events' '
	make_maildir m1 && make_maildir m2 &&
	cat >mem.cfg <<-EOF &&
	pair mem
		a $TRASH/m1
		b $TRASH/m2
		debounce 20ms
	EOF
	chmod 600 mem.cfg &&
	watch_start mem -F mem.cfg mem &&
	pid=$(cat mem.pid) &&
	tr "\\0" " " </proc/$pid/cmdline | grep -q -- --watch &&
	deliver_new m1 10 r0 && wait_until has_count m2 10 &&
	start=$(rss "$pid") &&
	for r in $(seq 1 99); do
		deliver_new m1 10 "r$r" &&
		wait_until has_count m2 $((10 * r + 10)) || return 1
	done &&
	end=$(rss "$pid") &&
	echo "RSS at the start: $start kB, after 1,000 deliveries: $end kB" &&
	test "$end" -le $((start + 256)) &&
	watch_stop mem
'

test_done
