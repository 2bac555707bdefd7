#!/usr/bin/env bash
test_description='SIGKILL at random points of a large sync: the re-run converges, no loss, no duplicate'
. "$(dirname "$0")/lib.sh"

# Seeded, so a failure can be replayed: MSYNC_TEST_SEED=n.
RANDOM=${MSYNC_TEST_SEED:-4711}
ROUNDS=${MSYNC_TEST_KILL_ROUNDS:-24}

# Writes n messages numbered from first into Maildir folder dir quickly
# (deliver() forks too much for thousands of messages).
bulk() {
	local dir=$1 first=$2 n=$3 flags=$4 i
	make_maildir "$dir" &&
	for ((i = first; i < first + n; i++)); do
		gen_message "$i" kill >"$dir/cur/1700000000.M${i}P1.test:2,$flags" ||
			return 1
	done
}

snapshot() { rm -rf snap && mkdir snap && cp -a a b home snap/; }
restore() { rm -rf a b home && cp -a snap/a snap/b snap/home .; }

test_expect_success 'setup: a synced pair, then changes on both sides' '
	bulk a 1 1500 S && bulk a/.Work 2000 300 "" &&
	"$MSYNC" a b &&
	bulk a 3000 300 F && bulk b 4000 200 R &&
	for f in $(ls a/cur | sort | head -n 100); do
		case $f in *:2,S) mv "a/cur/$f" "a/cur/${f%:2,S}:2,RS" ;; esac
	done &&
	for f in $(ls b/cur | sort | sed -n "1,100p"); do rm "b/cur/$f"; done &&
	mv a/.Work a/.Projects &&
	snapshot &&
	"$MSYNC" --force-deletes a b &&
	maildir_digest --names a >expected &&
	maildir_digest --names b >expected.b &&
	test_cmp expected expected.b &&
	test "$(wc -l <expected)" -ge 2000
'

for round in $(seq 1 "$ROUNDS"); do
	delay=$((RANDOM % 1500))
	target=$((RANDOM % 3))
	test_expect_success "round $round: kill -9 after ${delay} ms (target $target), re-run converges" '
		restore &&
		{ "$MSYNC" --force-deletes a b >/dev/null 2>&1 & pid=$!; } &&
		sleep "$(printf "0.%03d" "$delay")" &&
		child=$(pgrep -P "$pid" | head -n 1) &&
		case $target in
		0) kill -9 "$pid" 2>/dev/null ;;
		1) if [ -n "$child" ]; then kill -9 "$child"; else kill -9 "$pid"; fi 2>/dev/null ;;
		2) kill -9 "$pid" $child 2>/dev/null ;;
		esac;
		wait "$pid";
		"$MSYNC" --force-deletes a b 2>err ||
		{ rc=$?; [ $rc = 2 ] || { cat err; false; }; } &&
		"$MSYNC" --force-deletes a b &&
		maildir_digest --names a >got.a && maildir_digest --names b >got.b &&
		test_cmp expected got.a && test_cmp expected got.b
	'
done

test_done
