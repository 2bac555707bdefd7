#!/usr/bin/env bash
# bench-verify.sh -- what the stream checks cost (issue 11, part 1):
# msync with its record checks side by side with msync without them.
#
#   scripts/bench-verify.sh [--msgs N] [--runs R] [--fs "tmpfs disk"]
#                           [--no-ssh] [--no-callgrind] [--out DIR]
#
# There is no switch that turns the checks off, so "off" is the build of
# the commit just before they came in (8afb7ba^, protocol 1), built from
# `git archive` in OUT/build-off; "v2" is the commit that brought them
# (8afb7ba: every record's payload hashed on both sides, message content
# too).  Today's build runs twice: forced to protocol 2 (the test hook
# MSYNC_TEST_PROTO_VERSIONS="2 2": every record checked, MSG_DATA too)
# and as it is (protocol 3: MSG_DATA is covered by the message GUID and
# not hashed a second time).  Note that off and v2 also lack what came
# after them (timeouts and keepalives, symlink-safe folders, ...): the
# clean comparison of the checks alone is head-p2 against head, and the
# --timeout 0 row shows what the keepalive thread costs.
#
# For each variant, on a copy of an N-message corpus (scripts/mkcorpus.sh,
# default 2,000, real mail):
#   initial    msync --backup SRC DST into an empty DST
#   nochange   the same again, after 1.1 s (the stores settled)
# locally (a socketpair to "msync --server") and over ssh (OpenSSH
# client to a private `sshd -i` as ProxyCommand: a real sshd on a pipe,
# keys made here, nothing listening; compression on, msync's default
# over ssh).  Each (variant, scenario, transport, file system) runs R
# times (default 3), the variants interleaved round by round so that a
# change of load hits all of them; every run is printed with the load
# average (uptime) at its start.  With callgrind (default), each
# variant's initial and no-change run is also done once under
# valgrind --tool=callgrind and the instructions of both msync processes
# are added up (the remote one through a --remote-msync wrapper; ssh and
# sshd are not counted: the checks do not change their work).
#
# Output: a Markdown report on stdout and in OUT/results.md; raw rows in
# OUT/results.tsv.  OUT defaults to a directory under /tmp.

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
{
set -uo pipefail
export LC_ALL=C

top=$(cd "$(dirname "$0")/.." && pwd) || exit 1
msgs=2000
runs=3
fs_list="tmpfs disk"
do_ssh=1
do_cg=1
out=
off_commit=8afb7ba^
v2_commit=8afb7ba

while [ $# -gt 0 ]; do
	case $1 in
	--msgs) msgs=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--fs) fs_list=$2; shift 2 ;;
	--no-ssh) do_ssh=0; shift ;;
	--no-callgrind) do_cg=0; shift ;;
	--out) out=$2; shift 2 ;;
	*) echo "usage: $0 [--msgs N] [--runs R] [--fs LIST] [--no-ssh]" \
	    "[--no-callgrind] [--out DIR]" >&2; exit 64 ;;
	esac
done
case $msgs$runs in *[!0-9]*) echo "--msgs, --runs: numbers" >&2; exit 64 ;; esac
[ -n "$out" ] || out=$(mktemp -d /tmp/bench-verify.XXXXXX) || exit 1
mkdir -p "$out" || exit 1
out=$(cd "$out" && pwd)

note() { printf 'bench-verify: %s\n' "$*" >&2; }
die() { note "$*"; exit 1; }

[ -x "$top/msync" ] || die "build msync first (make)"
if [ "$do_cg" = 1 ] && ! command -v valgrind >/dev/null; then
	note "no valgrind: no instruction counts"
	do_cg=0
fi

# --- builds -----------------------------------------------------------------

build_at() {	# build_at COMMIT DIR: msync of COMMIT in DIR (once)
	[ -x "$2/msync" ] && return 0
	rm -rf "$2" && mkdir -p "$2" &&
	git -C "$top" archive "$1" | tar -x -C "$2" &&
	make -C "$2" -j2 msync >"$2.log" 2>&1 ||
	    die "cannot build $1 (see $2.log)"
}
build_at "$off_commit" "$out/build-off"
build_at "$v2_commit" "$out/build-v2"
head_rev=$(git -C "$top" rev-parse --short HEAD)
dirty=$(git -C "$top" status --porcelain -- src remote | head -n 1)
[ -n "$dirty" ] && head_rev="$head_rev+changes"

# variant NAME -> binary, extra environment, extra options
variants="off v2 head-p2 head head-t0"
v_bin() {
	case $1 in
	off) echo "$out/build-off/msync" ;;
	v2) echo "$out/build-v2/msync" ;;
	*) echo "$top/msync" ;;
	esac
}
v_env() { [ "$1" = head-p2 ] && echo "MSYNC_TEST_PROTO_VERSIONS=2 2"; }
v_opt() { [ "$1" = head-t0 ] && printf '%s\n' --timeout 0; }
v_what() {
	case $1 in
	off) echo "$(git -C "$top" rev-parse --short "$off_commit"), before the checks (protocol 1)" ;;
	v2) echo "$(git -C "$top" rev-parse --short "$v2_commit"), the checks as they came in (protocol 2)" ;;
	head-p2) echo "$head_rev forced to protocol 2 (MSG_DATA hashed too)" ;;
	head) echo "$head_rev, protocol 3 (MSG_DATA under the GUID only)" ;;
	head-t0) echo "$head_rev, protocol 3, --timeout 0 (no keepalive thread)" ;;
	esac
}

# --- corpus -----------------------------------------------------------------

corpus=$out/corpus-$msgs
if [ ! -d "$corpus/maildir" ]; then
	rm -rf "$corpus"
	sh "$top/scripts/mkcorpus.sh" --no-mbox "$corpus" "$msgs" >&2 ||
	    die "cannot build the corpus"
fi

# --- ssh: a real sshd on a pipe (ProxyCommand sshd -i) ------------------------

sshdir=$out/ssh
ssh_cmd=
if [ "$do_ssh" = 1 ]; then
	user=$(id -un)
	rm -rf "$sshdir" && mkdir -p "$sshdir" && chmod 700 "$sshdir" &&
	ssh-keygen -q -t ed25519 -N '' -f "$sshdir/host" &&
	ssh-keygen -q -t ed25519 -N '' -f "$sshdir/id" &&
	cp "$sshdir/id.pub" "$sshdir/authorized_keys" || die "ssh keys"
	[ -d /run/sshd ] || mkdir -p /run/sshd 2>/dev/null || :
	cat >"$sshdir/sshd_config" <<EOF
HostKey $sshdir/host
AuthorizedKeysFile $sshdir/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin yes
AllowUsers $user
SetEnv XDG_CACHE_HOME=$out/remote-home/cache XDG_STATE_HOME=$out/remote-home/state
EOF
	printf 'benchhost %s\n' "$(cut -d' ' -f1,2 "$sshdir/host.pub")" \
	    >"$sshdir/known_hosts"
	cat >"$sshdir/ssh_config" <<EOF
Host benchhost
	User $user
	IdentityFile $sshdir/id
	IdentitiesOnly yes
	UserKnownHostsFile $sshdir/known_hosts
	GlobalKnownHostsFile /dev/null
	StrictHostKeyChecking yes
	BatchMode yes
	ProxyCommand /usr/sbin/sshd -i -f $sshdir/sshd_config -E $sshdir/log
EOF
	/usr/sbin/sshd -t -f "$sshdir/sshd_config" || die "sshd -t"
	ssh_cmd="ssh -F $sshdir/ssh_config"
	$ssh_cmd benchhost true || die "ssh to the private sshd failed"
fi

# --- one run ----------------------------------------------------------------

# fsroot FS: where the stores live.
fsroot() {
	case $1 in
	tmpfs) echo "${BENCH_TMPFS:-/dev/shm}/bench-verify.$$" ;;
	disk) echo "$out/run" ;;
	esac
}

# prepare FS VARIANT TRANSPORT: fresh SRC copy, no DST, no state.
prepare() {
	local w
	w=$(fsroot "$1")/$2-$3
	rm -rf "$w" && mkdir -p "$w" && cp -a "$corpus/maildir" "$w/src" &&
	rm -rf "$out/remote-home" "$out/home-$2-$3" || return 1
	sync
	echo "$w"
}

# msync_cmd W VARIANT TRANSPORT [WRAP]: the command line, one word a line.
msync_cmd() {
	local w=$1 v=$2 t=$3 bin
	bin=$(v_bin "$v")
	printf '%s\n' env "XDG_STATE_HOME=$out/home-$v-$t/state" \
	    "XDG_CACHE_HOME=$out/home-$v-$t/cache"
	[ -n "$(v_env "$v")" ] && printf '%s\n' "$(v_env "$v")"
	# The wrapper's words are split on purpose.
	# shellcheck disable=SC2086
	[ -n "${4:-}" ] && printf '%s\n' $4
	printf '%s\n' "$bin" --backup
	v_opt "$v"
	if [ "$t" = ssh ]; then
		printf '%s\n' -e "$ssh_cmd" --remote-msync "${5:-$bin}" \
		    "$w/src" "benchhost:$w/dst"
	else
		printf '%s\n' "$w/src" "$w/dst"
	fi
}

# timed W VARIANT TRANSPORT: runs once; prints "wall user sys rc".
timed() {
	local -a cmd
	local t0 t1 rc
	mapfile -t cmd < <(msync_cmd "$@")
	t0=$(date +%s.%N)
	/usr/bin/time -f '%U %S' -o "$out/time.$$" "${cmd[@]}" \
	    >/dev/null 2>"$out/last.err"
	rc=$?
	t1=$(date +%s.%N)
	printf '%s %s %s\n' "$(awk -v a="$t0" -v b="$t1" \
	    'BEGIN { printf "%.3f", b - a }')" \
	    "$(tail -n 1 "$out/time.$$")" "$rc"
}

# counted W VARIANT TRANSPORT: the same under callgrind; prints the
# instructions of both msync processes (0 if a run failed).
counted() {
	local w=$1 v=$2 t=$3 cg wrap tot=0 n f rc
	local -a cmd
	cg=$out/cg/$v-$t-$4
	rm -rf "$cg" && mkdir -p "$cg"
	if [ "$t" = ssh ]; then
		cat >"$cg/remote" <<EOF
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file=$cg/cg.remote.%p $(v_bin "$v") "\$@"
EOF
		chmod +x "$cg/remote"
		wrap="valgrind --tool=callgrind --trace-children=no --callgrind-out-file=$cg/cg.local.%p"
		mapfile -t cmd < <(msync_cmd "$w" "$v" "$t" "$wrap" "$cg/remote")
	else
		wrap="valgrind --tool=callgrind --trace-children=yes --callgrind-out-file=$cg/cg.local.%p"
		mapfile -t cmd < <(msync_cmd "$w" "$v" "$t" "$wrap")
	fi
	"${cmd[@]}" >/dev/null 2>"$cg/err"
	rc=$?
	for f in "$cg"/cg.*; do
		[ -f "$f" ] || continue
		n=$(sed -n 's/^summary: //p' "$f" | head -n 1)
		tot=$((tot + ${n:-0}))
	done
	[ "$rc" = 0 ] || tot="fail($rc)"
	echo "$tot"
}

check_dst() {	# check_dst W: DST holds as many messages as SRC
	local a b
	a=$(find "$1/src" -type f \( -path '*/cur/*' -o -path '*/new/*' \) | wc -l)
	b=$(find "$1/dst" -type f \( -path '*/cur/*' -o -path '*/new/*' \) | wc -l)
	[ "$a" = "$b" ] || { note "DST has $b messages, SRC $a"; return 1; }
}

# --- the runs ---------------------------------------------------------------

transports=local
[ "$do_ssh" = 1 ] && transports="local ssh"
tsv=$out/results.tsv
printf 'fs\ttransport\tvariant\tscenario\trun\twall_s\tuser_s\tsys_s\trc\tload1\n' >"$tsv"
cgtsv=$out/callgrind.tsv
printf 'fs\ttransport\tvariant\tscenario\tinstructions\n' >"$cgtsv"

for fs in $fs_list; do
	mkdir -p "$(fsroot "$fs")" || die "cannot use $fs"
	for t in $transports; do
		for r in $(seq 1 "$runs"); do
			for v in $variants; do
				load=$(cut -d' ' -f1 /proc/loadavg)
				w=$(prepare "$fs" "$v" "$t") || die "prepare"
				read -r wall u s rc < <(timed "$w" "$v" "$t")
				printf '%s\t%s\t%s\tinitial\t%s\t%s\t%s\t%s\t%s\t%s\n' \
				    "$fs" "$t" "$v" "$r" "$wall" "$u" "$s" "$rc" \
				    "$load" >>"$tsv"
				[ "$rc" = 0 ] && check_dst "$w" ||
				    note "$fs $t $v initial run $r: exit $rc: $(tail -n 2 "$out/last.err")"
				sleep 1.1
				load=$(cut -d' ' -f1 /proc/loadavg)
				read -r wall u s rc < <(timed "$w" "$v" "$t")
				printf '%s\t%s\t%s\tnochange\t%s\t%s\t%s\t%s\t%s\t%s\n' \
				    "$fs" "$t" "$v" "$r" "$wall" "$u" "$s" "$rc" \
				    "$load" >>"$tsv"
				[ "$rc" = 0 ] ||
				    note "$fs $t $v no-change run $r: exit $rc"
				note "$fs $t round $r $v done (load $load)"
			done
		done
		# Instructions: once per variant (they hardly vary), tmpfs only.
		if [ "$do_cg" = 1 ] && [ "$fs" = tmpfs ]; then
			for v in $variants; do
				w=$(prepare "$fs" "$v" "$t") || die "prepare"
				n=$(counted "$w" "$v" "$t" initial)
				printf '%s\t%s\t%s\tinitial\t%s\n' "$fs" "$t" "$v" \
				    "$n" >>"$cgtsv"
				sleep 1.1
				n=$(counted "$w" "$v" "$t" nochange)
				printf '%s\t%s\t%s\tnochange\t%s\n' "$fs" "$t" "$v" \
				    "$n" >>"$cgtsv"
				note "callgrind $t $v done"
			done
		fi
	done
	rm -rf "$(fsroot "$fs")"
done

# --- report -----------------------------------------------------------------

{
	echo "## bench-verify: $msgs messages, $runs runs, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "Machine: $(nproc) CPUs, $(uname -sr); load at the end: $(uptime)"
	echo
	echo "Variants:"
	for v in $variants; do echo "* $v: $(v_what "$v")"; done
	echo
	if [ "$do_cg" = 1 ]; then
		echo "### Instructions (callgrind, both msync processes, tmpfs)"
		echo
		echo "| transport | scenario | ${variants// / | } | head/off | head/head-p2 |"
		echo "|---|---|$(for v in $variants; do printf -- '---:|'; done)---:|---:|"
		for t in $transports; do
			for sc in initial nochange; do
				awk -F'\t' -v t="$t" -v sc="$sc" -v vs="$variants" '
				    $2 == t && $4 == sc { n[$3] = $5 }
				    END {
					k = split(vs, v, " ")
					printf "| %s | %s |", t, sc
					for (i = 1; i <= k; i++)
						printf " %.1fM |", n[v[i]] / 1e6
					printf " %.3f | %.3f |\n", n["head"] / n["off"],
					    n["head"] / n["head-p2"]
				    }' "$cgtsv"
			done
		done
		echo
	fi
	echo "### Every timed run (wall s / user+sys CPU s; load1 at its start)"
	echo
	echo "| fs | transport | scenario | variant | runs (wall/cpu @load) | median wall |"
	echo "|---|---|---|---|---|---:|"
	awk -F'\t' 'NR > 1 {
		k = $1 "|" $2 "|" $4 "|" $3
		if (!(k in seen)) { seen[k] = 1; order[++n] = k }
		runs[k] = runs[k] sprintf("%s%.3f/%.2f@%s%s", runs[k] == "" ? "" : ", ",
		    $6, $7 + $8, $10, $9 == 0 ? "" : " (exit " $9 ")")
		w[k, ++c[k]] = $6
	    }
	    END {
		for (i = 1; i <= n; i++) {
			k = order[i]; m = c[k]
			for (a = 1; a <= m; a++) x[a] = w[k, a]
			for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++)
				if (x[b] < x[a]) { t = x[a]; x[a] = x[b]; x[b] = t }
			med = m % 2 ? x[(m + 1) / 2] : (x[m / 2] + x[m / 2 + 1]) / 2
			split(k, f, "|")
			printf "| %s | %s | %s | %s | %s | %.3f |\n", f[1], f[2], f[3],
			    f[4], runs[k], med
		}
	    }' "$tsv" | sort -t'|' -k2,2 -k3,3 -k4,4 -s
	echo
	echo "Raw: $tsv$([ "$do_cg" = 1 ] && echo ", $cgtsv")"
} | tee "$out/results.md"
}
