#!/usr/bin/env bash
test_description='--json: one report per sync, valid against docs/report.schema.json'
. "$(dirname "$0")/lib.sh"

schema=$SRCDIR/docs/report.schema.json
cfg=$XDG_CONFIG_HOME/msync/config

test_lazy_prereq JSONSCHEMA 'python3 -c "import jsonschema"'

# validate FILE [N]: every line of FILE is valid against the schema (and
# there are N lines); python's jsonschema is the independent reader.
validate() {
	python3 - "$schema" "$1" "${2:-}" <<-\EOF
	import json, sys, jsonschema
	schema = json.load(open(sys.argv[1]))
	jsonschema.Draft202012Validator.check_schema(schema)
	v = jsonschema.Draft202012Validator(schema)
	lines = open(sys.argv[2], encoding="utf-8").read().splitlines()
	for line in lines:
	    v.validate(json.loads(line))
	if sys.argv[3] and len(lines) != int(sys.argv[3]):
	    sys.exit("%d lines, want %s" % (len(lines), sys.argv[3]))
	EOF
}

# field FILE N EXPR: a python expression on the Nth report (r)
field() {
	python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).read().splitlines()[int(sys.argv[2])]); print(eval(sys.argv[3]))' "$@"
}

test_expect_success 'setup' '
	make_maildir a && make_folder a Work &&
	for i in 1 2 3; do deliver a "" S >/dev/null || return 1; done &&
	deliver a/.Work "" >/dev/null &&
	make_maildir b && deliver b "" F >/dev/null &&
	mkdir -p "$(dirname "$cfg")" &&
	cat >"$cfg" <<-EOF &&
	pair one
		a $TRASH/a
		b $TRASH/b
	pair two
		a $TRASH/a
		b $TRASH/c
		mode backup
	pair bad
		a $TRASH/file/x
		b $TRASH/d
	group all one two bad
	EOF
	chmod 600 "$cfg" && echo x >file
'

test_expect_success JSONSCHEMA 'msync --json A B: one valid report, counts match what moved' '
	make_maildir x && deliver x "" >/dev/null && deliver x "" >/dev/null &&
	make_maildir y && deliver y "" >/dev/null &&
	"$MSYNC" --json x y >out 2>err &&
	validate out 1 &&
	test "$(field out 0 "r[\"status\"]")" = 0 &&
	test "$(field out 0 "r[\"changes\"][\"b\"][\"copied\"]")" = 2 &&
	test "$(field out 0 "r[\"changes\"][\"a\"][\"copied\"]")" = 1 &&
	test "$(field out 0 "\"pair\" in r")" = False &&
	test "$(count_msgs y)" = 3 && test "$(count_msgs x)" = 3
'

test_expect_success JSONSCHEMA 'pairs: one report each, in order, human messages on stderr' '
	test_must_fail "$MSYNC" --json all >out 2>err &&
	validate out 3 &&
	test "$(field out 0 "r[\"pair\"]")" = one &&
	test "$(field out 1 "r[\"pair\"]")" = two &&
	test "$(field out 2 "r[\"pair\"]")" = bad &&
	test "$(field out 0 "r[\"changes\"][\"b\"][\"copied\"]")" = 4 &&
	test "$(field out 1 "r[\"mode\"]")" = backup &&
	test "$(field out 2 "r[\"status\"] != 0")" = True &&
	test "$(field out 2 "len(r[\"errors\"]) > 0")" = True &&
	grep -q "^bad: msync: error:" err &&
	test_cmp_trees a b
'

test_expect_success JSONSCHEMA '-j 3 gives the same three reports' '
	test_must_fail "$MSYNC" -j 3 --json all >out 2>err &&
	validate out 3 &&
	cut -c1-20 out | sort >names && grep -c "\"pair\":\"bad\"" out
'

test_expect_success JSONSCHEMA 'a child that dies without a report still gets one' '
	deliver a "" >/dev/null &&
	test_might_fail "$MSYNC" --json -Tcrash=1 one >out 2>err &&
	validate out 1 &&
	test "$(field out 0 "r[\"status\"]")" = 100 &&
	test "$(field out 0 "r[\"changes\"]")" = None &&
	"$MSYNC" one && test_cmp_trees a b
'

test_expect_success JSONSCHEMA 'a dry run says so and counts what would change' '
	deliver a "" >/dev/null &&
	"$MSYNC" --json -n one >out &&
	validate out 1 &&
	test "$(field out 0 "r[\"dry_run\"]")" = True &&
	test "$(field out 0 "r[\"changes\"][\"b\"][\"copied\"]")" = 1
'

test_expect_success JSONSCHEMA 'bytes that are not UTF-8 in a location are escaped' '
	make_maildir "$(printf "n\\377")" &&
	"$MSYNC" --json "$(printf "./n\\377")" ./u >out &&
	validate out 1 && grep -q "\\\\ufffd" out
'

test_expect_success JSONSCHEMA '--pairs --json lists pairs and last results' '
	"$MSYNC" --pairs --json >out &&
	validate out 3 &&
	test "$(field out 0 "r[\"last\"][\"status\"]")" = 0 &&
	test "$(field out 2 "r[\"last\"][\"status\"] != 0")" = True &&
	jq -e -s "length == 3" out >/dev/null
'

test_expect_success JSONSCHEMA 'a usage error still reports' '
	test_expect_code 64 "$MSYNC" --json "host:" b >out 2>err &&
	validate out 1 && test "$(field out 0 "r[\"status\"]")" = 64
'

test_done
