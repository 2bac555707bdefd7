#!/usr/bin/env bash
test_description='cluster engines for a migration batch (docs/MIGRATION.md):
the Kubernetes Indexed Job of contrib/k8s checked against its schema with
python3-jsonschema, its pod failure policy against msync'"'"'s exit statuses,
and its container command run for every index against a real Dovecot; a
one-node Slurm cluster (munged, slurmctld, slurmd on 127.0.0.1) running
contrib/slurm/msync-array.sbatch as a job array, a wrong password, and a
second array of only the accounts msync-report names; stores compared
with doveadm. The Slurm part is skipped when Slurm cannot start here'
. "$(dirname "$0")/lib.sh"
. "$TEST_DIR/lib-imapd.sh"

test_lazy_prereq PYYAML 'python3 -c "import yaml, jsonschema"'
test_lazy_prereq SLURM '
	command -v slurmctld && command -v slurmd && command -v sbatch &&
	command -v munged && command -v mungekey
'
test_require_prereq IMAPD PYYAML

REPORT=$SRCDIR/scripts/msync-report
ACCOUNT=$SRCDIR/contrib/batch/msync-account
K8S=$SRCDIR/contrib/k8s/msync-indexed-job.yaml
SCHEMA=$SRCDIR/contrib/k8s/msync-indexed-job.schema.json

# validate FILE: the manifest FILE against the schema (exit 1 and the
# first error on stderr when it does not conform).
validate() {
	python3 - "$1" "$SCHEMA" <<'PY'
import json, sys, yaml, jsonschema
doc = yaml.safe_load(open(sys.argv[1]))
schema = json.load(open(sys.argv[2]))
jsonschema.Draft202012Validator.check_schema(schema)
errs = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc),
              key=lambda e: list(e.path))
for e in errs[:1]:
    sys.stderr.write("invalid: %s: %s\n" % ("/".join(map(str, e.path)), e.message))
sys.exit(1 if errs else 0)
PY
}

# mutate EXPR: the manifest with one change (a Python statement on d),
# written to bad.yaml.
mutate() {
	python3 - "$K8S" "$1" <<'PY'
import sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
spec = d["spec"]
pod = spec["template"]["spec"]
exec(sys.argv[2])
yaml.safe_dump(d, open("bad.yaml", "w"))
PY
}

test_expect_success 'the Indexed Job conforms to the schema' '
	validate "$K8S"
'

test_expect_success 'the schema catches what the API server would drop or refuse' '
	mutate "spec[\"completionmode\"] = spec.pop(\"completionMode\")" &&
	test_must_fail validate bad.yaml 2>err && cat err &&
	grep "completionmode" err &&
	mutate "pod[\"restartPolicy\"] = \"OnFailure\"" &&
	test_must_fail validate bad.yaml &&
	mutate "pod[\"containers\"][0][\"env\"][0][\"vaule\"] = \"x\"" &&
	test_must_fail validate bad.yaml &&
	mutate "spec[\"podFailurePolicy\"][\"rules\"][0][\"onExitCodes\"][\"values\"] = [1, 1]" &&
	test_must_fail validate bad.yaml &&
	mutate "pod[\"volumes\"][0][\"configMap\"][\"name\"] = \"Not_A_Name\"" &&
	test_must_fail validate bad.yaml
'

test_expect_success 'the pod failure policy fails an index on "needs a person" only' '
	python3 - "$K8S" "$REPORT" <<-\PY
	import sys, yaml, importlib.machinery, importlib.util
	d = yaml.safe_load(open(sys.argv[1]))
	loader = importlib.machinery.SourceFileLoader("report", sys.argv[2])
	spec = importlib.util.spec_from_loader("report", loader)
	rep = importlib.util.module_from_spec(spec)
	loader.exec_module(rep)
	rules = d["spec"]["podFailurePolicy"]["rules"]
	fail = [r for r in rules if r["action"] == "FailIndex"]
	assert len(fail) == 1 and fail[0]["onExitCodes"]["operator"] == "In"
	codes = set(fail[0]["onExitCodes"]["values"])
	person = set(rep.MEANING) - rep.RETRY
	assert codes == person, (codes, person)
	assert not codes & rep.RETRY
	assert d["spec"]["backoffLimitPerIndex"] >= 1
	assert fail[0]["onExitCodes"]["containerName"] == \
	    d["spec"]["template"]["spec"]["containers"][0]["name"]
	PY
'

# The accounts of both engines: alice, bob and carol of lib-imapd.sh,
# carol with a wrong password at first.
test_expect_success 'setup: imapd with three accounts, their passwords in files' '
	start_imapd &&
	for u in alice bob carol; do
		for i in 1 2 3 4; do
			gen_message $i $u | doveadm_u $u save -m INBOX || return 1
		done &&
		doveadm_u $u "mailbox create" Archive &&
		gen_message 9 $u-a | doveadm_u $u save -m Archive || return 1
	done &&
	mkdir -p pw && chmod 700 pw &&
	echo "$IMAPD_PASS" >pw/alice && echo "$IMAPD_PASS" >pw/bob &&
	echo wrong >pw/carol && chmod 600 pw/* &&
	printf "account,note\nalice,\nbob,\n# a comment\ncarol,\n" >accounts.csv
'

# k8s_env: the container's environment from the manifest, with each
# volume's mountPath moved under $TRASH/k8s/ and the source pointed at
# the test Dovecot, as "export NAME=VALUE" lines.
k8s_env() {
	python3 - "$K8S" "$TRASH/k8s" "$(imaps_url "{a}")" <<'PY'
import shlex, sys, yaml
d = yaml.safe_load(open(sys.argv[1]))
c = d["spec"]["template"]["spec"]["containers"][0]
mounts = sorted(((m["mountPath"], m["name"]) for m in c["volumeMounts"]),
                key=lambda x: -len(x[0]))
for e in c["env"]:
    v = e["value"]
    for path, name in mounts:
        if v == path or v.startswith(path + "/"):
            v = sys.argv[2] + "/" + name + v[len(path):]
            break
    if e["name"] == "MSYNC_SOURCE":
        v = sys.argv[3]
    print("export %s=%s" % (e["name"], shlex.quote(v)))
print("export K8S_COMMAND=%s" % shlex.quote(" ".join(c["command"])))
print("export K8S_COMPLETIONS=%d" % d["spec"]["completions"])
PY
}

test_expect_success 'the Indexed Job'"'"'s command, run for every index as a pod would' '
	k8s_env >env.sh && cat env.sh &&
	mkdir -p k8s/accounts k8s/tmp &&
	cp accounts.csv k8s/accounts/ &&
	ln -s "$TRASH/pw" k8s/passwords &&
	(
		. ./env.sh &&
		test "$K8S_COMMAND" = msync-account &&
		PATH=$SRCDIR/contrib/batch:$PATH &&
		for idx in 0 1 2; do
			JOB_COMPLETION_INDEX=$idx $K8S_COMMAND
			echo "$idx $?" >>codes || return 1
		done
	) &&
	cat codes &&
	printf "0 0\n1 0\n2 77\n" >expect && test_cmp expect codes &&
	for u in alice bob; do
		imap_digest $u >dove && md_digest k8s/new-mail/$u/Maildir >md &&
		test_cmp dove md || return 1
	done &&
	test_expect_code 1 python3 "$REPORT" --accounts accounts.csv k8s/results/*.json >out &&
	cat out &&
	grep "^carol .*needs a person .*AUTHENTICATIONFAILED" out &&
	test "$(python3 "$REPORT" --indices person --accounts accounts.csv k8s/results/*.json)" = 3
'

test_expect_success 'msync-account refuses a malformed account and a bad index' '
	printf "../../etc\n" >evil.csv &&
	test_expect_code 64 env MSYNC_ACCOUNTS=evil.csv MSYNC_SOURCE=x \
	    MSYNC_DEST=y MSYNC_RESULTS=r "$ACCOUNT" 1 2>err &&
	grep "malformed account name" err &&
	test_path_is_missing r &&
	test_expect_code 64 env MSYNC_ACCOUNTS=accounts.csv MSYNC_SOURCE=x \
	    MSYNC_DEST=y MSYNC_RESULTS=r "$ACCOUNT" 9 2>err &&
	grep "no account number 9" err &&
	test_expect_code 64 env MSYNC_ACCOUNTS=accounts.csv MSYNC_SOURCE=x \
	    MSYNC_DEST=y MSYNC_RESULTS=r JOB_COMPLETION_INDEX=-1 "$ACCOUNT" 2>err &&
	grep "is not a number" err
'

# --- Slurm: a one-node cluster, if it can run here ---------------------
SLURM_DIR=$TRASH/slurm
SLURM_WHY=

slurm_free_port_() { imapd_free_port_; }

slurm_stop() {
	local f
	for f in slurmd slurmctld munge/munged; do
		[ -f "$SLURM_DIR/$f.pid" ] && kill "$(cat "$SLURM_DIR/$f.pid")" 2>/dev/null
	done
	return 0
}

# slurm_start: munged, slurmctld and slurmd from a config in $SLURM_DIR;
# 0 when the node is idle (bounded wait), else 1 with SLURM_WHY set.
slurm_start() {
	local p1 p2 i
	test_have_prereq ROOT || { SLURM_WHY="slurmd must run as root"; return 1; }
	mkdir -p "$SLURM_DIR/state" "$SLURM_DIR/spool" "$SLURM_DIR/munge" &&
	chmod 700 "$SLURM_DIR/munge" &&
	mungekey -c -k "$SLURM_DIR/munge/key" 2>/dev/null ||
	    { SLURM_WHY="mungekey failed"; return 1; }
	munged -f --key-file="$SLURM_DIR/munge/key" \
	    --socket="$SLURM_DIR/munge/sock" \
	    --pid-file="$SLURM_DIR/munge/munged.pid" \
	    --log-file="$SLURM_DIR/munge/log" \
	    --seed-file="$SLURM_DIR/munge/seed" 2>"$SLURM_DIR/munge.err" ||
	    { SLURM_WHY="munged: $(tail -1 "$SLURM_DIR/munge.err")"; return 1; }
	test_atexit slurm_stop
	p1=$(slurm_free_port_) && p2=$(slurm_free_port_) &&
	cat >"$SLURM_DIR/slurm.conf" <<EOF
ClusterName=msynctest
SlurmctldHost=localhost
SlurmctldPort=$p1
SlurmdPort=$p2
AuthType=auth/munge
AuthInfo=socket=$SLURM_DIR/munge/sock
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=$SLURM_DIR/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/slurmd.pid
SlurmctldLogFile=$SLURM_DIR/slurmctld.log
SlurmdLogFile=$SLURM_DIR/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
SwitchType=switch/none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN
PartitionName=msync Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
	export SLURM_CONF=$SLURM_DIR/slurm.conf
	slurmctld -i 2>"$SLURM_DIR/slurmctld.err" ||
	    { SLURM_WHY="slurmctld: $(tail -1 "$SLURM_DIR/slurmctld.err")"; return 1; }
	slurmd 2>"$SLURM_DIR/slurmd.err" ||
	    { SLURM_WHY="slurmd: $(tail -1 "$SLURM_DIR/slurmd.err")"; return 1; }
	for i in $(seq 1 150); do
		sinfo -h -o %T 2>/dev/null | grep -qx idle && return 0
		sleep 0.2
	done
	SLURM_WHY="the node never became idle: $(tail -2 "$SLURM_DIR/slurmd.log" "$SLURM_DIR/slurmctld.log" 2>/dev/null | tr '\n' ' ')"
	return 1
}

# slurm_wait JOBID: until no task of the array is queued or running
# (bounded: 1500 polls).
slurm_wait() {
	local i
	for i in $(seq 1 1500); do
		[ -z "$(squeue -h -j "$1" 2>/dev/null)" ] && return 0
		sleep 0.2
	done
	echo "slurm job $1 still running" >&2
	return 1
}

# The array, as the runbook submits it: two tasks at once at most.
slurm_submit() {
	sbatch --parsable --array="$1%2" --chdir="$TRASH" \
	    --output="$TRASH/slurm-%A_%a.log" \
	    --export="ALL,MSYNC_ACCOUNT=$ACCOUNT,MSYNC_ACCOUNTS=$TRASH/accounts.csv,MSYNC_SOURCE=$(imaps_url "{a}"),MSYNC_DEST=$TRASH/sl/{a},MSYNC_PASSDIR=$TRASH/pw,MSYNC_RESULTS=$TRASH/sl-res,PATH=$PATH" \
	    "$SRCDIR/contrib/slurm/msync-array.sbatch"
}

if test_have_prereq SLURM; then
	if slurm_start; then
		test_set_prereq SLURMUP
	else
		say_ "# Slurm cannot run here: $SLURM_WHY"
		slurm_stop
	fi
fi

test_expect_success SLURMUP 'slurm: a job array over the accounts; carol needs a person' '
	echo wrong >pw/carol &&
	job=$(slurm_submit 1-3) &&
	slurm_wait "$job" &&
	cat slurm-*.log &&
	scontrol show job "$job" | grep -E "ArrayTaskId|ExitCode" >tasks &&
	cat tasks &&
	grep -c "ExitCode=77:0" tasks >n && test "$(cat n)" = 1 &&
	test_expect_code 1 python3 "$REPORT" --accounts accounts.csv sl-res/*.json >out &&
	cat out &&
	grep "accounts: 3   done: 2   retry: 0   needs a person: 1   left: 0" out &&
	grep "^== needs a person, status 77" out
'

test_expect_success SLURMUP 'slurm: the password fixed, an array of only what msync-report names' '
	echo "$IMAPD_PASS" >pw/carol &&
	idx=$(python3 "$REPORT" --indices retry,person,left --accounts accounts.csv sl-res/*.json) &&
	test "$idx" = 3 &&
	job=$(slurm_submit "$idx") &&
	slurm_wait "$job" &&
	python3 "$REPORT" --accounts accounts.csv sl-res/*.json >out &&
	cat out &&
	grep "accounts: 3   done: 3" out &&
	test -z "$(python3 "$REPORT" --indices retry,person,left --accounts accounts.csv sl-res/*.json)" &&
	for u in alice bob carol; do
		imap_digest $u >dove && md_digest sl/$u >md &&
		test_cmp dove md || return 1
	done
'

test_done
