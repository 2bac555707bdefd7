#!/usr/bin/env bash
# bench.sh -- `make bench`: msync side by side with Dovecot's dsync
# (doveadm backup/sync), mbsync and rsync on a real-mail Maildir.
#
#   scripts/bench.sh [--sizes "20000 100000"] [--out DIR] [--ssh]
#                    [--no-local] [--tools LIST] [--timeout SECS]
#                    [--seed N] [--keep] [--fs "disk tmpfs"]
#                    [--ssh-runs K] [--report-only]
#
# For each corpus size (scripts/mkcorpus.sh, built once into
# OUT/corpus-N and reused) and each tool, on a fresh copy of the corpus:
#   initial   copy into an empty destination
#   nochange  the same command again, nothing changed (after 2 s, so that
#             msync can trust its change tokens)
#   change1   again after 1% new messages, 1% flag changes and 1%
#             expunges in the source: one change set, generated once per
#             size from --seed (scripts/bench-changes.pl), applied to every
#             tool's source copy, so every tool gets identical work
# Local tools: msync --backup, msync (two-way), doveadm backup, doveadm
# sync, mbsync (two Maildir stores, one channel), rsync -a --delete and,
# for scale, rsync -a --delete --fsync (msync, Dovecot and mbsync make
# new messages durable before they commit them; plain rsync does not).
# With --ssh also, through a private sshd on 127.0.0.1 (scripts/
# bench-relay.pl in front of `sshd -i`, counting the bytes): msync
# --backup over OpenSSH (with and without --no-compress) and over
# --ssh=libssh, two-way msync over OpenSSH, rsync -a and rsync -az over
# ssh, doveadm backup and sync with `doveadm dsync-server` at the far end,
# and `ssh host true`, the cost of the connection alone.
#
# Each command runs once, under /usr/bin/time and `timeout SECS` (default
# 1800).  The page cache is warmed first (every source file is read) and
# dirty pages are flushed (sync) before each measurement.  After each run
# the destination is checked against the source (message count, Seen and
# Flagged counts).
#
# Output: a Markdown report on stdout and in OUT/results.md, the raw
# numbers in OUT/results.tsv, every command's output in OUT/logs/.
# OUT defaults to bench-out/ in the repository (ignored by git).  Tool
# working copies live in OUT/run/ and are removed after each tool unless
# --keep.  See scripts/BENCH.md for what each number means.
#
# --fs runs everything once per file system named: disk (OUT/run, the
# default) and tmpfs (a directory under ${BENCH_TMPFS:-/dev/shm}, removed
# at the end), so one run shows both the CPU and system-call cost (tmpfs)
# and the cost of making mail durable (disk).  tmpfs rows carry the
# transport "local@tmpfs" or "ssh@tmpfs".  The report's aims also check
# msync's peak RSS (at most 200 bytes per message in every run) and, over
# ssh, the bytes of the 1% run against the lz4-compressed size of the new
# mail (scripts/bench-changes.pl newmail).
#
# A 1%-change-only comparison at 20,000 and 200,000 messages, local and
# over ssh, on both file systems, msync against mbsync and rsync:
#   scripts/bench.sh --sizes "20000 200000" --fs "tmpfs disk" --ssh \
#       --tools "msync-backup,msync-sync,mbsync,rsync"
#
# With --ssh, the initial copy over ssh is then repeated K more times
# (--ssh-runs, default 3; 0 for none) for msync --backup over OpenSSH
# and over libssh and rsync -a -e ssh, in turn, into an empty destination
# each time: the report shows every run's time and load, not only one,
# so a stall shows, and counts the runs where msync was not slower than
# rsync's run next to it.
#
# Everything issue 10 asks for in one run (about 40 min at 20,000 on the
# 2-core VM; 100,000 takes several times that):
#   scripts/bench.sh --sizes "20000 100000" --fs "tmpfs disk" --ssh
#
# --report-only measures nothing: it writes the report again from
# OUT/results.tsv, e.g. of a run that was stopped before its end (give
# the same --out and --sizes).
#
# --tools picks a subset by name (the names in the report's first column,
# comma or space separated), e.g. --tools "msync-backup,rsync".
#
# As root, Dovecot refuses to access mail as root, so doveadm (and its
# dsync-server) run as the user nobody (setpriv) on copies owned by
# nobody; everything else runs as the invoking user.

# Re-run under bash if started by another sh (the Makefile says `sh`).
if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
# The whole script is one block, which bash reads before it runs any of
# it: editing this file during a long run cannot derail that run.
{
set -uo pipefail
export LC_ALL=C

top=$(cd "$(dirname "$0")/.." && pwd) || exit 1
msync=${MSYNC:-$top/msync}
sizes="20000 100000"
out=$top/bench-out
do_ssh=0
do_local=1
tools_sel=
tmo=1800
seed=42
keep=0
fs_list=disk
ssh_runs=3
report_only=0

usage() {
	sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
}

while [ $# -gt 0 ]; do
	case $1 in
	--sizes) sizes=${2:?--sizes needs a list}; shift 2 ;;
	--sizes=*) sizes=${1#--sizes=}; shift ;;
	--out) out=${2:?--out needs a directory}; shift 2 ;;
	--out=*) out=${1#--out=}; shift ;;
	--ssh) do_ssh=1; shift ;;
	--no-local) do_local=0; shift ;;
	--tools) tools_sel=${2:?--tools needs a list}; shift 2 ;;
	--tools=*) tools_sel=${1#--tools=}; shift ;;
	--timeout) tmo=${2:?--timeout needs seconds}; shift 2 ;;
	--timeout=*) tmo=${1#--timeout=}; shift ;;
	--seed) seed=${2:?--seed needs a number}; shift 2 ;;
	--seed=*) seed=${1#--seed=}; shift ;;
	--keep) keep=1; shift ;;
	--fs) fs_list=${2:?--fs needs a list}; shift 2 ;;
	--fs=*) fs_list=${1#--fs=}; shift ;;
	--ssh-runs) ssh_runs=${2:?--ssh-runs needs a number}; shift 2 ;;
	--ssh-runs=*) ssh_runs=${1#--ssh-runs=}; shift ;;
	--report-only) report_only=1; shift ;;
	-h|--help) usage; exit 0 ;;
	*) echo "bench: unknown argument '$1'" >&2; usage >&2; exit 64 ;;
	esac
done
for n in $sizes; do
	case $n in ''|*[!0-9]*) echo "bench: bad size '$n'" >&2; exit 64 ;; esac
done
for f in $fs_list; do
	case $f in disk|tmpfs) ;; *) echo "bench: --fs: disk or tmpfs, not '$f'" >&2; exit 64 ;; esac
done
case $tmo in ''|*[!0-9]*) echo "bench: bad --timeout" >&2; exit 64 ;; esac
case $seed in ''|*[!0-9]*) echo "bench: bad --seed" >&2; exit 64 ;; esac
case $ssh_runs in ''|*[!0-9]*) echo "bench: bad --ssh-runs" >&2; exit 64 ;; esac
tools_sel=" $(printf '%s' "$tools_sel" | tr ',' ' ') "
cmd=()	# tool_cmd's answer

die() { echo "bench: $*" >&2; exit 1; }
note() { echo "bench: $*" >&2; }

# need_debian_pkgs PKG:COMMAND...: install the packages whose command is
# missing (as root, with apt-get), or say how.
need_debian_pkgs() {
	local p missing=''
	for p in "$@"; do
		command -v "${p#*:}" >/dev/null 2>&1 || missing="$missing ${p%%:*}"
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		note "missing:$missing; install with: apt-get install$missing"
		return 1
	fi
	note "installing$missing"
	# shellcheck disable=SC2086  # a list of package names
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
	    --no-install-recommends $missing >&2 || {
		apt-get update -q >&2 &&
		    DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		    --no-install-recommends $missing >&2
	}
}

# GNU time is not in scripts/deps.sh's lists: install it here (as root).
need_debian_pkgs time:/usr/bin/time || exit 1
for t in perl /usr/bin/time timeout rsync doveadm mbsync; do
	command -v "$t" >/dev/null 2>&1 ||
	    die "$t is missing (scripts/deps.sh installs the peers)"
done
if [ "$do_ssh" = 1 ]; then
	for t in ssh ssh-keygen /usr/sbin/sshd; do
		command -v "$t" >/dev/null 2>&1 || die "$t is missing"
	done
fi
have_msync=0
if [ -x "$msync" ] && "$msync" --version >/dev/null 2>&1; then
	have_msync=1
	msync=$(cd "$(dirname "$msync")" && pwd)/$(basename "$msync")
else
	note "$msync is not built or does not run: the msync rows are skipped"
fi

mkdir -p "$out" || exit 1
out=$(cd "$out" && pwd) || exit 1
mkdir -p "$out/logs" "$out/run" "$out/bin" || exit 1
# Measure a snapshot of the binary: a rebuild during the run changes
# nothing.
# (--report-only: the report names the build that was measured.)
if [ "$report_only" = 1 ] && [ -x "$out/bin/msync" ]; then
	msync=$out/bin/msync
elif [ "$have_msync" = 1 ]; then
	cp "$msync" "$out/bin/msync.new" && mv -f "$out/bin/msync.new" "$out/bin/msync" ||
	    die "cannot copy $msync to $out/bin"
	msync=$out/bin/msync
fi
# The corpus cache stays where mkcorpus keeps it, whatever XDG we set.
export MSYNC_CORPUS_CACHE=${MSYNC_CORPUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/msync-corpus}
unset SSH_AUTH_SOCK
changes_pl=$top/scripts/bench-changes.pl
. "$top/scripts/lib-mbsyncrc.sh"
relay_pl=$top/scripts/bench-relay.pl

# --- Dovecot: a minimal config; as root, run it as nobody. ---------------
dove_conf=$out/dovecot.conf
cat >"$dove_conf" <<'EOF'
# msync benchmark: the smallest config doveadm accepts for mail_location
# given with -o; no userdb, no auth: the user comes from $USER.
mail_location = maildir:~/Maildir
EOF
dove_home=$out/dove-home
mkdir -p "$dove_home"
dove_as=()
dove_owner=
if [ "$(id -u)" = 0 ]; then
	getent passwd nobody >/dev/null || die "no user nobody to run doveadm as"
	dove_owner="nobody:$(id -gn nobody)"
	dove_as=(setpriv --reuid=nobody --regid="$(id -g nobody)"
	    --clear-groups env USER=nobody HOME="$dove_home")
	chown nobody "$dove_home"
	chmod 755 "$out" "$out/run"
else
	dove_as=(env USER="$(id -un)" HOME="$dove_home")
fi

# --- results ---------------------------------------------------------------
tsv=$out/results.tsv
[ "$report_only" = 1 ] ||
printf 'size\ttransport\ttool\tscenario\trc\twall_s\tuser_s\tsys_s\tmaxrss_kib\twire_c2s\twire_s2c\tremote_cpu_s\tsrc_msgs\tdst_msgs\tcheck\tload1\n' >"$tsv"

selected() {	# selected TOOL: is it in --tools (or no --tools given)?
	[ "$tools_sel" = "  " ] && return 0
	case $tools_sel in *" $1 "*) return 0 ;; esac
	return 1
}

# Counts for the check: "messages seen flagged".
mstat() { perl "$changes_pl" stat "$1" 2>/dev/null || echo "0 0 0"; }

# Read every message once so all tools start with a warm page cache.
warm() { find "$1" -type f -exec cat {} + >/dev/null 2>&1; }

# fresh_copy SRC DST [OWNER]: a private copy of the corpus for one tool.
fresh_copy() {
	rm -rf "$2" && cp -a "$1" "$2" || return 1
	if [ -n "${3:-}" ]; then chown -R "$3" "$2" || return 1; fi
	warm "$2"
}

# --- ssh: keys, sshd config, the counting relay ----------------------------
ssh_dir=$out/ssh
relay_pid=
ssh_cfg=$ssh_dir/ssh_config
ssh_cfg_dove=$ssh_dir/ssh_config.dove
remote_dove_as=()

stop_relay() {
	if [ -n "$relay_pid" ]; then
		kill "$relay_pid" 2>/dev/null
		wait "$relay_pid" 2>/dev/null
		relay_pid=
	fi
}
tmpfs_root=
trap 'stop_relay; [ -n "$tmpfs_root" ] && rm -rf "$tmpfs_root"' EXIT
trap 'exit 130' INT TERM

start_relay() {
	local user port hostkey
	user=$(id -un)
	rm -rf "$ssh_dir" && mkdir -p "$ssh_dir/bin" "$ssh_dir/home/.ssh" \
	    "$ssh_dir/remote-home" "$ssh_dir/dove" || return 1
	chmod 755 "$ssh_dir"
	chmod 700 "$ssh_dir/home/.ssh"
	ssh-keygen -q -t ed25519 -N '' -C msync-bench-host \
	    -f "$ssh_dir/host_ed25519" &&
	ssh-keygen -q -t ed25519 -N '' -C msync-bench-user \
	    -f "$ssh_dir/id_ed25519" &&
	cp "$ssh_dir/id_ed25519.pub" "$ssh_dir/authorized_keys" || return 1
	chmod 644 "$ssh_dir/authorized_keys"
	[ "$have_msync" = 1 ] && ln -sf "$msync" "$ssh_dir/bin/msync"
	[ -d /run/sshd ] || mkdir -p /run/sshd 2>/dev/null || :

	cat >"$ssh_dir/sshd_config" <<EOF
# msync benchmark: sshd -i behind bench-relay.pl, on 127.0.0.1 only.
HostKey $ssh_dir/host_ed25519
AuthorizedKeysFile $ssh_dir/authorized_keys
PidFile none
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AllowUsers $user
Compression no
LogLevel ERROR
SetEnv PATH=$ssh_dir/bin:/usr/local/bin:/usr/bin:/bin XDG_CACHE_HOME=$ssh_dir/remote-home/cache XDG_STATE_HOME=$ssh_dir/remote-home/state XDG_CONFIG_HOME=$ssh_dir/remote-home/config
EOF
	/usr/sbin/sshd -t -f "$ssh_dir/sshd_config" || {
		note "sshd -t refused $ssh_dir/sshd_config"
		return 1
	}
	perl "$relay_pl" "$ssh_dir" /usr/sbin/sshd -i -f "$ssh_dir/sshd_config" &
	relay_pid=$!
	for _ in $(seq 1 100); do
		[ -s "$ssh_dir/port" ] && break
		sleep 0.1
	done
	[ -s "$ssh_dir/port" ] || { note "the relay did not start"; return 1; }
	port=$(cat "$ssh_dir/port")
	hostkey=$(cut -d' ' -f1,2 "$ssh_dir/host_ed25519.pub")
	printf 'bench,[127.0.0.1]:%s %s\n' "$port" "$hostkey" \
	    >"$ssh_dir/known_hosts"
	chmod 644 "$ssh_dir/known_hosts"
	# OpenSSH: ssh -F this file.
	cat >"$ssh_cfg" <<EOF
Host bench
	HostName 127.0.0.1
	Port $port
	User $user
	IdentityFile $ssh_dir/id_ed25519
	IdentitiesOnly yes
	UserKnownHostsFile $ssh_dir/known_hosts
	GlobalKnownHostsFile /dev/null
	HostKeyAlias bench
	StrictHostKeyChecking yes
	BatchMode yes
	Compression no
	ControlMaster no
	ControlPath none
	ForwardAgent no
	ForwardX11 no
	LogLevel ERROR
EOF
	# libssh reads $HOME/.ssh: a home of its own.
	cp "$ssh_dir/id_ed25519" "$ssh_dir/id_ed25519.pub" "$ssh_dir/home/.ssh/"
	cp "$ssh_dir/known_hosts" "$ssh_dir/home/.ssh/known_hosts"
	cat >"$ssh_dir/home/.ssh/config" <<EOF
Host bench
	HostName 127.0.0.1
	Port $port
	User $user
	IdentityFile $ssh_dir/home/.ssh/id_ed25519
	UserKnownHostsFile $ssh_dir/home/.ssh/known_hosts
EOF
	# doveadm's ssh runs as nobody when we are root: its own key copy.
	if [ -n "$dove_owner" ]; then
		cp "$ssh_dir/id_ed25519" "$ssh_dir/dove/id_ed25519"
		chown -R "$dove_owner" "$ssh_dir/dove"
		chmod 700 "$ssh_dir/dove"
		sed "s|$ssh_dir/id_ed25519|$ssh_dir/dove/id_ed25519|" \
		    "$ssh_cfg" >"$ssh_cfg_dove"
		remote_dove_as=(setpriv --reuid=nobody
		    --regid="$(id -g nobody)" --clear-groups env USER=nobody
		    HOME="$dove_home")
	else
		cp "$ssh_cfg" "$ssh_cfg_dove"
		remote_dove_as=()
	fi
	chmod 644 "$ssh_cfg" "$ssh_cfg_dove"
	: >"$ssh_dir/bytes.log"
	ssh -F "$ssh_cfg" bench true || {
		note "ssh to the private sshd failed; see $ssh_dir/sshd.log"
		return 1
	}
	# The libssh client must accept the key it finds in known_hosts.
	return 0
}

# Wait (at most 10 s) until the relay has logged every connection.
relay_settle() {
	for _ in $(seq 1 100); do
		compgen -G "$ssh_dir/active.*" >/dev/null || return 0
		sleep 0.1
	done
	note "relay: a connection is still open after 10 s"
}

# --- one measurement ---------------------------------------------------------
# measure SIZE TRANSPORT TOOL SCENARIO SRC DST -- COMMAND...
# Runs COMMAND once under time and timeout and appends a row to the TSV.
measure() {
	local size=$1 tr=$2 tool=$3 scen=$4 src=$5 dst=$6
	shift 7
	local tag=$size-$tr$fs_tag-$tool-$scen
	local tf=$out/logs/$tag.time
	local nlog=0 t0 t1 rc wall e u s m c2s=- s2c=- rcpu=- sstat dstat chk
	local load

	sync
	read -r load _ </proc/loadavg
	if [ "$tr" = ssh ]; then
		relay_settle
		nlog=$(wc -l <"$ssh_dir/bytes.log")
	fi
	printf '%s\n' "$*" >"$out/logs/$tag.cmd"
	t0=$EPOCHREALTIME
	/usr/bin/time -f '%e %U %S %M' -o "$tf" \
	    timeout -k 10 "$tmo" "$@" >"$out/logs/$tag.out" 2>"$out/logs/$tag.err" \
	    </dev/null
	rc=$?
	t1=$EPOCHREALTIME
	wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	# time(1) prints "Command exited with non-zero status N" first then.
	read -r e u s m <<<"$(tail -n 1 "$tf" 2>/dev/null)"
	: "${e:=-}" "${u:=-}" "${s:=-}" "${m:=-}"
	if [ "$tr" = ssh ]; then
		relay_settle
		read -r c2s s2c rcpu <<<"$(tail -n +"$((nlog + 1))" \
		    "$ssh_dir/bytes.log" | awk -F '\t' '
		    { c += $1; s += $2; cpu += $3 + $4 }
		    END { printf "%d %d %.2f\n", c, s, cpu }')"
	fi
	if [ "$src" = - ]; then
		sstat="- - -" dstat="- - -" chk=-
	else
		sstat=$(mstat "$src")
		dstat=$(mstat "$dst")
		if [ "$sstat" = "$dstat" ]; then chk=ok; else chk=MISMATCH; fi
	fi
	[ "$rc" = 124 ] && chk=TIMEOUT
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
	    "$size" "$tr$fs_tag" "$tool" "$scen" "$rc" "$wall" "$u" "$s" "$m" \
	    "$c2s" "$s2c" "$rcpu" "${sstat%% *}" "${dstat%% *}" "$chk" \
	    "$load" >>"$tsv"
	note "$(printf '%-7s %-5s %-20s %-8s rc=%-3s %8ss  rss %sK  %s%s' \
	    "$size" "$tr$fs_tag" "$tool" "$scen" "$rc" "$wall" "$m" "$chk" \
	    "$( [ "$tr" = ssh ] && echo "  wire $c2s/$s2c" )")"
	if [ "$rc" != 0 ] && [ "$rc" != 2 ]; then
		sed 's/^/    | /' "$out/logs/$tag.err" | tail -n 5 >&2
	fi
}

# tool_cmd TRANSPORT TOOL SRC DST DIR: sets cmd to TOOL's command
# (DIR: the tool's working directory, for its config files).
tool_cmd() {
	local tr=$1 tool=$2 src=$3 dst=$4 w=$5
	case $tr-$tool in
	local-msync-backup) cmd=("$msync" --backup "$src" "$dst") ;;
	local-msync-sync) cmd=("$msync" "$src" "$dst") ;;
	local-dove-backup)
		cmd=("${dove_as[@]}" doveadm -c "$dove_conf"
		    -o "mail_location=maildir:$src" backup "maildir:$dst") ;;
	local-dove-sync)
		cmd=("${dove_as[@]}" doveadm -c "$dove_conf"
		    -o "mail_location=maildir:$src" sync "maildir:$dst") ;;
	local-mbsync)
		bench_mbsyncrc "$src" "$dst" >"$w/mbsyncrc"
		cmd=(mbsync -c "$w/mbsyncrc" -a -q) ;;
	local-rsync) cmd=(rsync -a --delete "$src/" "$dst/") ;;
	local-rsync-fsync) cmd=(rsync -a --delete --fsync "$src/" "$dst/") ;;
	ssh-ssh-true) cmd=(ssh -F "$ssh_cfg" bench true) ;;
	ssh-msync-backup)
		cmd=("$msync" --backup -e "ssh -F $ssh_cfg" "$src" "bench:$dst") ;;
	ssh-msync-backup-nz)
		cmd=("$msync" --backup --no-compress -e "ssh -F $ssh_cfg" "$src"
		    "bench:$dst") ;;
	ssh-msync-backup-libssh)
		cmd=(env HOME="$ssh_dir/home" "$msync" --backup --ssh=libssh
		    "$src" "bench:$dst") ;;
	ssh-msync-sync)
		cmd=("$msync" -e "ssh -F $ssh_cfg" "$src" "bench:$dst") ;;
	ssh-rsync)
		cmd=(rsync -a --delete -e "ssh -F $ssh_cfg" "$src/" "bench:$dst/") ;;
	ssh-rsync-z)
		cmd=(rsync -az --delete -e "ssh -F $ssh_cfg" "$src/" "bench:$dst/") ;;
	ssh-dove-backup|ssh-dove-sync)
		cmd=("${dove_as[@]}" doveadm -c "$dove_conf"
		    -o "mail_location=maildir:$src" "${tool#dove-}"
		    ssh -F "$ssh_cfg_dove" bench "${remote_dove_as[@]}"
		    doveadm -c "$dove_conf" -o "mail_location=maildir:$dst"
		    dsync-server) ;;
	*) note "unknown tool $tr-$tool"; return 1 ;;
	esac

}

# --- one tool, three scenarios -----------------------------------------------
# run_tool SIZE TRANSPORT TOOL: a fresh copy for TOOL, then its command
# in the three scenarios.
run_tool() {
	local size=$1 tr=$2 tool=$3
	local corpus=$out/corpus-$size/maildir w=$run_root/$tr-$tool
	local src dst owner='' scen r

	selected "$tool" || return 0
	case $tool in msync*)
		if [ "$have_msync" != 1 ]; then
			for scen in initial nochange change1; do
				printf '%s\t%s\t%s\t%s\tmissing\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\n' \
				    "$size" "$tr$fs_tag" "$tool" "$scen" >>"$tsv"
			done
			return 0
		fi ;;
	esac
	case $tool in dove-*) owner=$dove_owner ;; esac
	rm -rf "$w"
	mkdir -p "$w" || return 1
	[ -n "$owner" ] && chown "$owner" "$w"
	src=$w/src
	dst=$w/dst
	if [ "$tool" = ssh-true ]; then
		src=-
		dst=-
	else
		fresh_copy "$corpus" "$src" "$owner" || { note "copy failed"; return 1; }
	fi
	case $tool in dove-*)
		# doveadm wants the destination directory to exist.
		mkdir -p "$dst" && [ -n "$owner" ] && chown "$owner" "$dst" ;;
	esac
	# msync: state and caches inside the tool's directory.
	export XDG_STATE_HOME=$w/xdg/state XDG_CACHE_HOME=$w/xdg/cache \
	    XDG_CONFIG_HOME=$w/xdg/config

	tool_cmd "$tr" "$tool" "$src" "$dst" "$w" || return 1

	measure "$size" "$tr" "$tool" initial "$src" "$dst" -- "${cmd[@]}"
	sleep 2
	measure "$size" "$tr" "$tool" nochange "$src" "$dst" -- "${cmd[@]}"
	if [ "$src" != - ]; then
		if [ -n "$owner" ]; then
			r=$(setpriv --reuid=nobody --regid="$(id -g nobody)" \
			    --clear-groups perl "$changes_pl" apply \
			    "$out/corpus-$size/changes.txt" "$corpus" "$src")
		else
			r=$(perl "$changes_pl" apply \
			    "$out/corpus-$size/changes.txt" "$corpus" "$src")
		fi || note "$tool: $r"
	fi
	sleep 2
	measure "$size" "$tr" "$tool" change1 "$src" "$dst" -- "${cmd[@]}"
	[ "$keep" = 1 ] || rm -rf "$w"
}

# --- the initial copy over ssh, every run --------------------------------------
# initial_runs SIZE: --ssh-runs more initial copies over ssh per tool,
# the tools in turn (so the load falls on all alike), each into an empty
# destination with no state or cache on either side.  Rows "initial#I".
initial_runs() {
	local size=$1 i t w=$run_root/ssh-runs
	local corpus=$out/corpus-$size/maildir
	[ "$ssh_runs" -gt 0 ] || return 0
	rm -rf "$w" && mkdir -p "$w" || return 1
	fresh_copy "$corpus" "$w/src" || { note "copy failed"; return 1; }
	for i in $(seq 1 "$ssh_runs"); do
		for t in msync-backup msync-backup-libssh rsync; do
			selected "$t" || continue
			case $t in msync*) [ "$have_msync" = 1 ] || continue ;; esac
			rm -rf "$w/dst" "$w/xdg" "$ssh_dir"/remote-home/*
			export XDG_STATE_HOME=$w/xdg/state \
			    XDG_CACHE_HOME=$w/xdg/cache XDG_CONFIG_HOME=$w/xdg/config
			tool_cmd ssh "$t" "$w/src" "$w/dst" "$w" || return 1
			sync; sleep 1
			measure "$size" ssh "$t" "initial#$i" "$w/src" "$w/dst" \
			    -- "${cmd[@]}"
		done
	done
	[ "$keep" = 1 ] || rm -rf "$w"
}

# --- the corpus ----------------------------------------------------------------
make_corpus() {
	local n=$1 d=$out/corpus-$1
	if [ ! -f "$d/done" ]; then
		rm -rf "$d"
		mkdir -p "$d" || return 1
		note "building the $n-message corpus in $d"
		bash "$top/scripts/mkcorpus.sh" --no-mbox "$d" "$n" >&2 || return 1
		# mbsync expunges messages flagged T (trashed) on its first
		# run; the other tools copy them.  Clear T so that every tool
		# copies the same messages.
		perl "$changes_pl" untrash "$d/maildir" >&2 || return 1
		touch "$d/done"
	fi
	perl "$changes_pl" gen "$d/maildir" "$seed" 1 >"$d/changes.txt" ||
	    return 1
	perl "$changes_pl" newmail "$d/changes.txt" "$d/maildir" \
	    >"$d/newmail.txt" || return 1
	# Read-only for everyone but root: tools work on copies.
	chmod -R a+rX "$d"
	warm "$d/maildir"
}

local_tools="msync-backup msync-sync dove-backup dove-sync mbsync rsync rsync-fsync"
ssh_tools="ssh-true msync-backup msync-backup-nz msync-backup-libssh msync-sync rsync rsync-z dove-backup dove-sync"

started=$(date -u '+%Y-%m-%d %H:%M UTC')
if [ "$report_only" = 1 ]; then
	[ -s "$tsv" ] || die "no $tsv to report"
	started=$(date -u -r "$out/logs" '+%Y-%m-%d %H:%M UTC')
	finished=$(date -u -r "$tsv" '+%Y-%m-%d %H:%M UTC')
	do_ssh=0 do_local=0 sizes_run=
else
	sizes_run=$sizes
fi
note "results in $out (started $started)"
if [ "$do_ssh" = 1 ]; then
	start_relay || die "cannot start the private sshd (see $ssh_dir)"
fi
for n in $sizes_run; do
	make_corpus "$n" || die "cannot build the $n-message corpus"
	for fs in $fs_list; do
		if [ "$fs" = tmpfs ]; then
			if [ -z "$tmpfs_root" ]; then
				tmpfs_root=$(mktemp -d "${BENCH_TMPFS:-/dev/shm}/msync-bench.XXXXXX") ||
				    die "cannot make a directory on tmpfs"
				chmod 755 "$tmpfs_root"
			fi
			run_root=$tmpfs_root fs_tag=@tmpfs
		else
			run_root=$out/run fs_tag=
		fi
		if [ "$do_local" = 1 ]; then
			for t in $local_tools; do run_tool "$n" local "$t"; done
		fi
		if [ "$do_ssh" = 1 ]; then
			for t in $ssh_tools; do run_tool "$n" ssh "$t"; done
			initial_runs "$n"
		fi
	done
done
stop_relay
[ -n "$tmpfs_root" ] && rm -rf "$tmpfs_root"
[ "$report_only" = 1 ] || finished=$(date -u '+%Y-%m-%d %H:%M UTC')

# --- the report ------------------------------------------------------------------
report() {
	echo "# msync benchmark"
	echo
	echo "Run $started to $finished on $(uname -n): $(nproc) cores," \
	    "$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)," \
	    "Linux $(uname -r)."
	echo "$( [ "$have_msync" = 1 ] && "$msync" --version 2>/dev/null | head -n 1 || echo 'msync (not built)')" \
	    "($(git -C "$top" describe --always --dirty 2>/dev/null || echo '?'))," \
	    "Dovecot $(dovecot --version 2>/dev/null | sed 's/ (.*//')," \
	    "$(mbsync --version 2>/dev/null), $(rsync --version | head -n 1 | awk '{ print "rsync " $3 }')," \
	    "$(ssh -V 2>&1 | cut -d, -f1)."
	for n in $sizes; do
		echo "Corpus of $n messages: $(du -sb "$out/corpus-$n/maildir" 2>/dev/null | awk '{ printf "%.1f MB on disk (du -b)", $1 / 1e6 }');" \
		    "change set: $(awk '{ c[$1]++ } END { printf "%d new, %d flag changes, %d expunges", c["N"], c["F"], c["E"] }' "$out/corpus-$n/changes.txt")," \
		    "new mail $(awk '{ printf "%d bytes, %d with lz4", $1, $2 }' "$out/corpus-$n/newmail.txt" 2>/dev/null)."
	done
	awk -F '\t' 'NR > 1 && $16 != "-" {
		if (min == "" || $16 < min) min = $16
		if ($16 > max) max = $16 }
	    END { if (min != "") printf "Load average (1 min) at the start of the measurements: %s to %s.\n", min, max }' "$tsv"
	echo
	awk -F '\t' -v one_way="msync-backup dove-backup rsync rsync-z rsync-fsync ssh-true msync-backup-nz msync-backup-libssh" '
	function ratio(a, b) {
		if (a == "-" || b == "-" || b + 0 <= 0) return "-"
		return sprintf("%.2f", a / b)
	}
	function mib(k) { return k == "-" ? "-" : sprintf("%.1f", k / 1024) }
	function human(b) {
		if (b == "-") return "-"
		if (b >= 1e6) return sprintf("%.1f MB", b / 1e6)
		if (b >= 1e3) return sprintf("%.1f kB", b / 1e3)
		return b " B"
	}
	BEGIN {
		split(one_way, ow, " ")
		for (i in ow) isow[ow[i]] = 1
		title["initial"] = "initial copy into an empty destination"
		title["nochange"] = "re-run, nothing changed"
		title["change1"] = "re-run after 1% new, 1% flag changes, 1% expunges"
	}
	NR == 1 { next }
	$4 ~ /#/ { next }	# the repeated initial copies: runs_report
	{
		k = $1 SUBSEP $2 SUBSEP $4
		if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
		rows[k] = rows[k] SUBSEP $3
		for (i = 1; i <= NF; i++) v[k, $3, i] = $i
	}
	END {
		for (o = 1; o <= nk; o++) {
			k = order[o]
			split(k, kk, SUBSEP)
			size = kk[1]; tr = kk[2]; sc = kk[3]
			mb = v[k, "msync-backup", 6]; if (mb == "") mb = "-"
			ms = v[k, "msync-sync", 6]; if (ms == "") ms = "-"
			rs = v[k, "rsync", 6]; if (rs == "") rs = "-"
			rsb = v[k, "rsync", 10] + v[k, "rsync", 11]
			if (v[k, "rsync", 10] == "" || v[k, "rsync", 10] == "-") rsb = "-"
			fsn = tr ~ /@tmpfs$/ ? ", on tmpfs" : ""
			printf "## %s%s, %d messages: %s\n\n", tr ~ /^ssh/ ? "over ssh (loopback)" : "local", fsn, size, title[sc]
			if (tr ~ /^ssh/) {
				print "| tool | wall s | × msync | × rsync | local CPU s | remote CPU s | bytes on the wire | × rsync bytes | peak RSS MiB | RSS B/msg | check |"
				print "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
			} else {
				print "| tool | wall s | × msync | × rsync | user s | sys s | peak RSS MiB | RSS B/msg | check |"
				print "|---|---:|---:|---:|---:|---:|---:|---:|---|"
			}
			n = split(substr(rows[k], 2), tl, SUBSEP)
			for (j = 1; j <= n; j++) {
				t = tl[j]
				rc = v[k, t, 5]; wall = v[k, t, 6]; u = v[k, t, 7]; s = v[k, t, 8]
				m = v[k, t, 9]; chk = v[k, t, 15]
				if (rc == "missing") {
					wall = "-"; chk = "not built"
				} else if (rc != 0) {
					chk = chk " (exit " rc ")"
				}
				ref = (t in isow) ? mb : ms
				bpm = "-"
				if (t ~ /^msync/ && m != "-" && m != "") bpm = sprintf("%.0f", m * 1024 / size)
				cpu = (u == "-" || u == "") ? "-" : sprintf("%.2f", u + s)
				if (tr ~ /^ssh/) {
					b = v[k, t, 10] + v[k, t, 11]
					if (v[k, t, 10] == "-" || v[k, t, 10] == "") b = "-"
					printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", t, wall, ratio(wall, ref), ratio(wall, rs), cpu, v[k, t, 12], human(b), ratio(b, rsb), mib(m), bpm, chk
				} else {
					printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", t, wall, ratio(wall, ref), ratio(wall, rs), u, s, mib(m), bpm, chk
				}
			}
			print ""
		}
	}' "$tsv"
	cat <<'EOF'
× msync: the tool's wall time divided by msync's in the same run (msync
--backup for one-way tools, two-way msync for two-way tools: msync-sync,
dove-sync, mbsync). × rsync: divided by rsync's. Peak RSS: the largest
process of the command's tree (time's %M); RSS B/msg: msync's peak RSS
divided by the number of messages. Over ssh, local CPU is user+sys of the
local process tree (ssh client included), remote CPU that of the sshd
serving it (its session and the remote msync/rsync/dsync-server included),
bytes on the wire are the SSH connection's bytes in both directions
(TCP payload) counted by scripts/bench-relay.pl. check: the destination
has the source's message count and Seen and Flagged counts.
EOF
	echo
	runs_report
	aims
}

# The initial copy over ssh, every run (initial_runs), with the load of
# each, and how often msync was not slower than rsync in the same round.
runs_report() {
	awk -F '\t' '
	NR == 1 { next }
	$2 ~ /^ssh/ && ($4 == "initial" || $4 ~ /^initial#/) &&
	    $3 ~ /^(msync-backup|msync-backup-libssh|rsync)$/ {
		k = $1 SUBSEP $2
		if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
		r = $4 == "initial" ? 0 : substr($4, 9) + 0
		if (r > maxr[k]) maxr[k] = r
		cell[k, $3, r] = sprintf("%s (%s)", $6, $16) ($5 != 0 && $5 != 2 ? " exit " $5 : "")
		w[k, $3, r] = $6
		if (!((k, $3) in tn)) { tn[k, $3] = 1; tl[k] = tl[k] " " $3 }
	}
	END {
		for (o = 1; o <= nk; o++) {
			k = order[o]; split(k, kk, SUBSEP)
			printf "## over ssh (loopback)%s, %d messages: the initial copy, every run\n\n",
			    kk[2] ~ /@tmpfs$/ ? ", on tmpfs" : "", kk[1]
			printf "| tool | in its pass |"
			for (r = 1; r <= maxr[k]; r++) printf " run %d |", r
			printf "\n|---|---:|"
			for (r = 1; r <= maxr[k]; r++) printf "---:|"
			printf "\n"
			n = split(substr(tl[k], 2), t, " ")
			for (j = 1; j <= n; j++) {
				printf "| %s |", t[j]
				for (r = 0; r <= maxr[k]; r++)
					printf " %s |", ((k, t[j], r) in cell) ? cell[k, t[j], r] : "-"
				printf "\n"
			}
			print ""
			for (j = 1; j <= n; j++) {
				if (t[j] == "rsync") continue
				ok = 0; tot = 0; worst = 0
				for (r = 1; r <= maxr[k]; r++) {
					if (!((k, t[j], r) in w) || !((k, "rsync", r) in w)) continue
					q = w[k, t[j], r] / w[k, "rsync", r]
					tot++; if (q <= 1) ok++; if (q > worst) worst = q
				}
				if (tot > 0)
					printf "* %s: at most rsync'"'"'s time of the same round in %d of %d rounds (worst %.2fx)\n", t[j], ok, tot, worst
			}
			print ""
		}
		if (nk > 0)
			print "Seconds, with the load average (1 min) at the start of the run in brackets. \"in its pass\": the run with the tool'"'"'s other scenarios above; runs 1..K: the tools in turn, each into an empty destination.\n"
	}' "$tsv"
}

# The issues' aims, checked against this run's numbers.
aims() {
	echo
	echo "## Aims (issues 3, 4 and 10), this run"
	echo
	local nm='' n
	for n in $sizes; do
		nm="$nm $n:$(tr ' ' ':' <"$out/corpus-$n/newmail.txt" 2>/dev/null)"
	done
	awk -F '\t' -v newmail="$nm" '
	NR == 1 { next }
	$5 == "missing" || $4 ~ /#/ { next }
	# Below 100,000 messages the fixed ~5 MB of a process would hide
	# the per-message part: the RSS aim is checked from there up.
	$3 ~ /^msync/ && $9 ~ /^[0-9]+$/ && $1 >= 100000 {
		b = $9 * 1024 / $1
		if (b > rss_worst) { rss_worst = b; rss_where = $3 " " $2 " " $1 " " $4 }
		rss_runs++
	}
	{
		k = $1 SUBSEP $2 SUBSEP $4 SUBSEP $3
		wall[k] = $6; rc[k] = $5
		if ($10 != "-") bytes[k] = $10 + $11
		if (!($1 in seen)) { seen[$1] = 1; sizes[++ns] = $1 }
		tools[$1 SUBSEP $2 SUBSEP $4] = tools[$1 SUBSEP $2 SUBSEP $4] " " $3
	}
	function verdict(ok) { return ok ? "met" : "**not met**" }
	BEGIN {
		nn = split(newmail, nmw, " ")
		for (i = 1; i <= nn; i++) { split(nmw[i], w, ":"); nmv[w[1]] = nmw[i] }
	}
	function aim_faster(size, tr, sc, m,   k, n, t, i, slow, w) {
		k = size SUBSEP tr SUBSEP sc
		if (!((k SUBSEP m) in wall)) return
		w = wall[k SUBSEP m]
		n = split(tools[k], t, " ")
		slow = ""
		for (i = 1; i <= n; i++) {
			if (t[i] ~ /^(msync|ssh-true|rsync-fsync)/) continue
			if (wall[k SUBSEP t[i]] + 0 <= w + 0)
				slow = slow " " t[i] " (" wall[k SUBSEP t[i]] " s)"
		}
		printf "* %s %d, %s: %s (%s s) faster than every peer: %s%s\n", tr, size, sc, m, w,
		    verdict(slow == ""), slow == "" ? "" : "; as fast or faster:" slow
	}
	END {
		if (rss_runs > 0)
			printf "* msync peak RSS at most 200 bytes per message in every run of 100,000 messages or more (%d runs): %s (largest %.0f B/msg: %s)\n",
			    rss_runs, verdict(rss_worst <= 200), rss_worst, rss_where
		for (i = 1; i <= ns; i++) {
			n = sizes[i]
			k = n SUBSEP "local" SUBSEP "initial" SUBSEP
			if ((k "msync-backup") in wall && (k "rsync") in wall)
				printf "* local %d, initial copy: msync --backup %.2fx rsync (aim 1.2x): %s\n", n,
				    wall[k "msync-backup"] / wall[k "rsync"],
				    verdict(wall[k "msync-backup"] <= 1.2 * wall[k "rsync"])
			aim_faster(n, "local", "nochange", "msync-backup")
			aim_faster(n, "local", "nochange", "msync-sync")
			aim_faster(n, "local", "change1", "msync-backup")
			aim_faster(n, "local", "change1", "msync-sync")
			aim_faster(n, "local@tmpfs", "nochange", "msync-backup")
			aim_faster(n, "local@tmpfs", "nochange", "msync-sync")
			aim_faster(n, "local@tmpfs", "change1", "msync-backup")
			aim_faster(n, "local@tmpfs", "change1", "msync-sync")
			aim_faster(n, "ssh@tmpfs", "change1", "msync-backup")
			# Over ssh, a 1% run: the new mail compressed plus tens
			# of bytes (64 here) per flag change and expunge.
			if (split(nmv[n], w, ":") == 6 && w[3] != "-")
				for (f = 1; f <= 2; f++) {
					t = f == 1 ? "ssh" : "ssh@tmpfs"
					k = n SUBSEP t SUBSEP "change1" SUBSEP "msync-backup"
					if (!(k in bytes)) continue
					k0 = n SUBSEP t SUBSEP "nochange" SUBSEP "msync-backup"
					b0 = (k0 in bytes) ? bytes[k0] : 0
					lim = b0 + w[3] + 64 * (w[5] + w[6])
					printf "* %s %d, 1%% run: msync --backup sent %d bytes for %d bytes of new mail (%d with lz4); aim: a no-change run (%d) + lz4 + 64 B per flag change and expunge = %d: %s\n",
					    t, n, bytes[k], w[2], w[3], b0, lim, verdict(bytes[k] <= lim)
				}
			for (f = 1; f <= 2; f++) {
				t = f == 1 ? "ssh" : "ssh@tmpfs"
				k = n SUBSEP t SUBSEP "initial" SUBSEP
				if (!((k "msync-backup") in wall && (k "rsync") in wall && wall[k "rsync"] > 0))
					continue
				printf "* %s %d, initial copy (in its pass): msync --backup %.2fx rsync time (aim: at most rsync'"'"'s, every run; see the every-run table): %s\n", t, n,
				    wall[k "msync-backup"] / wall[k "rsync"],
				    verdict(wall[k "msync-backup"] <= wall[k "rsync"])
				if ((k "msync-backup") in bytes && (k "rsync") in bytes && bytes[k "rsync"] > 0)
					printf "* %s %d, initial copy: msync --backup %.2fx rsync bytes (aim: fewer): %s\n", t, n,
					    bytes[k "msync-backup"] / bytes[k "rsync"],
					    verdict(bytes[k "msync-backup"] < bytes[k "rsync"])
			}
			for (f = 1; f <= 2; f++) {
				t = f == 1 ? "ssh" : "ssh@tmpfs"
				k = n SUBSEP t SUBSEP "nochange" SUBSEP
				if ((k "msync-backup") in wall && (k "ssh-true") in wall && wall[k "ssh-true"] > 0)
					printf "* %s %d, no-change re-run: msync --backup %.3f s and %d bytes vs. ssh host true %.3f s and %d bytes: %.2fx (aim 1.1x): %s\n", t, n,
					    wall[k "msync-backup"], bytes[k "msync-backup"],
					    wall[k "ssh-true"], bytes[k "ssh-true"],
					    wall[k "msync-backup"] / wall[k "ssh-true"],
					    verdict(wall[k "msync-backup"] <= 1.1 * wall[k "ssh-true"])
			}
			aim_faster(n, "ssh", "nochange", "msync-backup")
			aim_faster(n, "ssh", "change1", "msync-backup")
		}
	}' "$tsv"
	echo
	echo "A tool that failed (exit status other than 0 or 2) still counts" \
	    "with its time here; see the check column above."
}

report | tee "$out/results.md"
exit
}
