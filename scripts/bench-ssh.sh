#!/usr/bin/env bash
# bench-ssh.sh -- msync over ssh next to rsync -e ssh and `ssh host true`,
# every run shown (issue 10.4 and the ssh figures of 10.3).
#
#   scripts/bench-ssh.sh [--size N] [--runs K] [--fs "tmpfs disk loop"]
#                        [--out DIR] [--callgrind] [--base MSYNC]
#                        [--only "initial nochange change1"]
#
# Starts a private sshd on 127.0.0.1 (a free port, keys of its own, the
# msync under test first on the remote PATH), makes an N-message corpus
# (scripts/mkcorpus.sh, default 20000) and, on each file system (tmpfs
# under /dev/shm, disk under DIR, loop and loop-nojournal below), runs K
# times each, alternating the tools so that the machine's load falls on
# all of them alike:
#
#   initial   copy into an empty destination: msync --backup over
#             OpenSSH (-e ssh), msync --backup --ssh=libssh, and
#             rsync -a --delete -e ssh
#   nochange  the same again with nothing changed, next to `ssh host true`
#             (run before and after the others, so each round also shows
#             how far `ssh host true` differs from itself); every round's
#             ratios to the first `ssh host true`, and at the end their
#             medians and how many rounds were within 1.1x
#   change1   1% new, 1% flag changes, 1% expunges in the source
#             (scripts/bench-changes.pl, seed 42), then the timed run;
#             msync's stream bytes (--stats: sent, and before
#             compression) next to rsync's (--stats)
#
# Every run prints its wall time and `uptime`'s 1-minute load.  With
# --callgrind the nochange and change1 runs are repeated once under
# valgrind (client, and server through a wrapper) for instruction counts,
# which do not depend on the load.  Stores settle (sleep 1.2 s) after
# every change before a timed run, and every timed run of change1 starts
# with nothing left to write back (sync): a run that makes its saves
# durable (msync's syncfs) would otherwise also write out what the
# setup, or the other tool's run before it, left dirty on that file
# system.  Traffic stays on 127.0.0.1.
#
# The initial copy also prints, per run, the user and system CPU seconds
# of the receiving process (the remote msync or rsync, through
# /usr/bin/time where there is one): a slow run whose receiver worked
# as long as it took is the file system's doing; one whose receiver
# waited is a stall.  And it prints how long a `sync -f` of that file
# system takes right after the run ("then-sync"): msync's copy is on
# disk when it ends (its syncfs() calls, before the sync state is
# written), rsync's is not, so rsync's time plus its then-sync is the
# time of the same durable copy.
#
# --base MSYNC adds, to the initial copy, a run of another msync build
# over OpenSSH (both ends: it is the remote msync too), in the same
# rotation, so a change is measured against the build before it under
# the same load.  --only runs the scenarios named.  The initial copy
# also prints, per run, the pressure the disk was under (PSI "some"
# avg10 of /proc/pressure/io), as other programs' writes slow a syncfs.
#
# loop is a file system made for the benchmark, so that what the disk
# under DIR holds and did (no journal on some VMs, other programs'
# deletions and writes) is not measured: a sparse image DIR/loop.img
# (about 6 times the corpus, an inode for every 8 kB), mkfs.ext4 WITH a
# journal and its inode tables written at once (no lazy init running
# during the runs), attached with losetup --direct-io=on (no second page
# cache of the image) and mounted on DIR/loop.  loop-nojournal is the
# same without the journal, as the root file system of the test VM.
# Needs root; it is unmounted, detached and removed on exit, also on ^C.

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
{
set -uo pipefail
export LC_ALL=C

top=$(cd "$(dirname "$0")/.." && pwd) || exit 1
msync=${MSYNC:-$top/msync}
size=20000
runs=5
fs_list="tmpfs disk"
out=$top/bench-ssh-out
cg=0
basebin=
only="initial nochange change1"
while [ $# -gt 0 ]; do
	case $1 in
	--size) size=${2:?}; shift 2 ;;
	--runs) runs=${2:?}; shift 2 ;;
	--fs) fs_list=${2:?}; shift 2 ;;
	--out) out=${2:?}; shift 2 ;;
	--callgrind) cg=1; shift ;;
	--base) basebin=${2:?}; shift 2 ;;
	--only) only=${2:?}; shift 2 ;;
	-h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "bench-ssh: unknown argument '$1'" >&2; exit 64 ;;
	esac
done
case $size$runs in *[!0-9]*) echo "bench-ssh: bad number" >&2; exit 64 ;; esac
for t in ssh ssh-keygen /usr/sbin/sshd rsync perl python3; do
	command -v "$t" >/dev/null || { echo "bench-ssh: needs $t" >&2; exit 1; }
done
[ -x "$msync" ] || { echo "bench-ssh: build msync first" >&2; exit 1; }
if [ -n "$basebin" ]; then
	[ -x "$basebin" ] || { echo "bench-ssh: --base: not executable" >&2; exit 1; }
	basebin=$(cd "$(dirname "$basebin")" && pwd)/$(basename "$basebin")
fi
want() { case " $only " in *" $1 "*) return 0 ;; esac; return 1; }

mkdir -p "$out" || exit 1
out=$(cd "$out" && pwd)
shm=$(mktemp -d /dev/shm/msync-bench-ssh.XXXXXX) || exit 1
D=$out/ssh
loopdev='' loopmnt=''
# loop_down: unmount and detach the benchmark's loop file system, if any.
loop_down() {
	[ -z "$loopmnt" ] || umount "$loopmnt" || umount -l "$loopmnt"
	[ -z "$loopdev" ] || losetup -d "$loopdev"
	[ -z "$loopmnt" ] || rm -rf "$loopmnt" "$out/loop.img"
	loopdev='' loopmnt=''
}
trap '[ -f "$D/pid" ] && kill "$(cat "$D/pid")" 2>/dev/null; loop_down; rm -rf "$shm"' EXIT
trap 'exit 130' INT TERM

load() { cut -d' ' -f1 /proc/loadavg; }
iopsi() { sed -n 's/^some avg10=\([0-9.]*\).*/\1/p' /proc/pressure/io 2>/dev/null; }
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc | sed 's/^\./0./'; }

# --- sshd ---------------------------------------------------------------
rm -rf "$D" && mkdir -p "$D/bin" "$D/rh" "$D/home/.ssh" && chmod 700 "$D" "$D/home/.ssh" || exit 1
ssh-keygen -q -t ed25519 -N '' -f "$D/host" -C bench-host &&
ssh-keygen -q -t ed25519 -N '' -f "$D/id" -C bench-user &&
cp "$D/id.pub" "$D/ak" && ln -sf "$msync" "$D/bin/msync" || exit 1
[ -z "$basebin" ] || ln -sf "$basebin" "$D/bin/msync-base" || exit 1
port=$(python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') || exit 1
user=$(id -un)
cat >"$D/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $port
HostKey $D/host
AuthorizedKeysFile $D/ak
PidFile $D/pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
AllowUsers $user
Compression no
LogLevel ERROR
SetEnv PATH=$D/bin:/usr/local/bin:/usr/bin:/bin XDG_CACHE_HOME=$D/rh/cache XDG_STATE_HOME=$D/rh/state XDG_CONFIG_HOME=$D/rh/config
EOF
printf 'b,[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$D/host.pub")" >"$D/kh"
cat >"$D/cfg" <<EOF
Host b
	HostName 127.0.0.1
	Port $port
	User $user
	IdentityFile $D/id
	IdentitiesOnly yes
	UserKnownHostsFile $D/kh
	GlobalKnownHostsFile /dev/null
	HostKeyAlias b
	StrictHostKeyChecking yes
	BatchMode yes
	Compression no
	ControlMaster no
	ControlPath none
EOF
cp "$D/id" "$D/id.pub" "$D/home/.ssh/" && cp "$D/kh" "$D/home/.ssh/known_hosts" &&
cat >"$D/home/.ssh/config" <<EOF
Host b
	HostName 127.0.0.1
	Port $port
	User $user
	IdentityFile $D/home/.ssh/id
	UserKnownHostsFile $D/home/.ssh/known_hosts
EOF
[ -d /run/sshd ] || mkdir -p /run/sshd 2>/dev/null || :
/usr/sbin/sshd -f "$D/sshd_config" -E "$D/log" || exit 1
for _ in $(seq 1 50); do ssh -F "$D/cfg" b true 2>/dev/null && break; sleep 0.1; done
ssh -F "$D/cfg" b true || { echo "bench-ssh: sshd did not answer" >&2; exit 1; }
cat >"$D/bin/msync-cg" <<EOF
#!/bin/sh
exec valgrind -q --tool=callgrind --callgrind-out-file=$out/cg.server "$msync" "\$@"
EOF
chmod +x "$D/bin/msync-cg"
# The receivers of the initial copies, timed (recv_cpu).
rtime=
[ -x /usr/bin/time ] && rtime="/usr/bin/time -o $D/recv.cpu -f '%U %S'"
for w in msync:"$msync" msync-base:"${basebin:-$msync}" rsync:rsync; do
	printf '#!/bin/sh\nexec %s %s "$@"\n' "$rtime" "${w#*:}" >"$D/bin/${w%%:*}-cpu" &&
	chmod +x "$D/bin/${w%%:*}-cpu" || exit 1
done

# --- corpus and changes -------------------------------------------------
corpus=$shm/corpus
bash "$top/scripts/mkcorpus.sh" --no-mbox "$corpus" "$size" >/dev/null || exit 1
perl "$top/scripts/bench-changes.pl" untrash "$corpus/maildir" >/dev/null
perl "$top/scripts/bench-changes.pl" gen "$corpus/maildir" 42 1 >"$shm/changes" || exit 1
read -r nb nlz _ < <(perl "$top/scripts/bench-changes.pl" newmail "$shm/changes" "$corpus/maildir")

SSH="ssh -F $D/cfg"
export XDG_STATE_HOME=$shm/cstate XDG_CACHE_HOME=$shm/ccache
m_ssh() { "$msync" --backup -e "$SSH" "$@"; }
m_lib() { HOME=$D/home "$msync" --backup --ssh=libssh "$@"; }
r_ssh() { rsync -a --delete -e "$SSH" "$@"; }
b_ssh() { "$basebin" --backup -e "$SSH" --remote-msync=msync-base "$@"; }

# reset BASE: empty destinations and states.
reset() {
	rm -rf "$1"/m-dst "$1"/l-dst "$1"/r-dst "$1"/b-dst "$shm/cstate" "$shm/ccache" "$D"/rh/*
	sync
}
# recv_cpu: "  recv-cpu U+S" of the last timed receiver, if any.
recv_cpu() {
	[ -s "$D/recv.cpu" ] && tail -n 1 "$D/recv.cpu" |
	    awk 'NF == 2 { printf "  recv-cpu %s+%s", $1, $2 }'
}
# timed LABEL CMD...: one run, its wall time and load; the seconds are
# left in $last.
last=0
timed() {
	local label=$1 s e; shift
	rm -f "$D/recv.cpu"
	s=$(now); "$@" >"$shm/last.out" 2>&1; local rc=$?; e=$(now)
	last=$(secs "$s" "$e")
	local info
	info="load $(load)${PSI:+  io-psi $(iopsi)}$(recv_cpu)"
	if [ -n "${PSI:-}" ]; then
		s=$(now); sync -f "$base"; e=$(now)
		info="$info  then-sync $(printf %.3f "$(secs "$s" "$e")")"
	fi
	printf '%-22s %7.3f s  %s%s\n' "$label" "$last" "$info" \
	    "$([ $rc = 0 ] || echo "  FAILED rc=$rc")"
}

echo "bench-ssh: $("$msync" --version | head -n 1), $(rsync --version | head -n 1), $(ssh -V 2>&1)"
echo "bench-ssh: $size messages, $(du -sh "$corpus/maildir" | cut -f1); new mail of the 1% run: $nb bytes, $nlz through lz4"
echo "bench-ssh: $(uptime)"
# loop_up -O [^]has_journal: make, attach and mount a fresh ext4 of about
# 6 times the corpus (4 GB at least) and mount it on $loopmnt ($out/loop).
loop_up() {
	local kb
	kb=$(du -sk "$corpus/maildir" | cut -f1) &&
	kb=$((kb * 6 > 4194304 ? kb * 6 : 4194304)) &&
	rm -f "$out/loop.img" && truncate -s "${kb}K" "$out/loop.img" &&
	mkfs.ext4 -q -F -i 8192 -E lazy_itable_init=0,lazy_journal_init=0 \
	    "$@" "$out/loop.img" &&
	loopdev=$(losetup -f --show --direct-io=on "$out/loop.img") &&
	loopmnt=$out/loop && mkdir -p "$loopmnt" &&
	mount "$loopdev" "$loopmnt" || return 1
	echo "bench-ssh: $fs: $(findmnt -no SOURCE,FSTYPE,OPTIONS "$loopmnt")," \
	    "journal: $(dumpe2fs -h "$loopdev" 2>/dev/null |
	    grep -q has_journal && echo yes || echo no)"
}
for fs in $fs_list; do
	case $fs in
	tmpfs) base=$shm/run ;;
	disk) base=$out/run ;;
	loop|loop-nojournal)
		if [ "$fs" = loop ]; then set -- -O has_journal; else set -- -O ^has_journal; fi
		loop_up "$@" || { echo "bench-ssh: cannot make the loop file system (root?)" >&2; exit 1; }
		base=$loopmnt/run ;;
	*) echo "bench-ssh: --fs: tmpfs, disk, loop or loop-nojournal" >&2; exit 64 ;;
	esac
	mkdir -p "$base" && src=$base/src && rm -rf "$src" && cp -a "$corpus/maildir" "$src" || exit 1
	echo
	if want initial; then
	echo "== $fs: initial copy into an empty destination, $runs runs each"
	for i in $(seq 1 "$runs"); do
		reset "$base"; sleep 1
		PSI=1 timed "msync-ssh #$i" m_ssh --remote-msync=msync-cpu \
		    "$src" "b:$base/m-dst"
		reset "$base"; sleep 1
		PSI=1 timed "msync-libssh #$i" m_lib --remote-msync=msync-cpu \
		    "$src" "b:$base/l-dst"
		if [ -n "$basebin" ]; then
			reset "$base"; sleep 1
			PSI=1 timed "msync-base-ssh #$i" b_ssh \
			    --remote-msync=msync-base-cpu "$src" "b:$base/b-dst"
		fi
		reset "$base"; sleep 1
		PSI=1 timed "rsync-ssh #$i" r_ssh --rsync-path="$D/bin/rsync-cpu" \
		    "$src/" "b:$base/r-dst/"
	done
	fi
	if want nochange; then
	echo "== $fs: nothing changed, $runs runs each"
	m_ssh "$src" "b:$base/m-dst" >/dev/null 2>&1
	m_lib "$src" "b:$base/l-dst" >/dev/null 2>&1
	r_ssh "$src/" "b:$base/r-dst/" >/dev/null 2>&1
	sleep 1.2
	: >"$shm/ratios"
	for i in $(seq 1 "$runs"); do
		timed "ssh-true #$i" ssh -F "$D/cfg" b true; t0=$last
		timed "msync-ssh #$i" m_ssh "$src" "b:$base/m-dst"; t1=$last
		timed "msync-libssh #$i" m_lib "$src" "b:$base/l-dst"; t2=$last
		timed "rsync-ssh #$i" r_ssh "$src/" "b:$base/r-dst/"
		timed "ssh-true again #$i" ssh -F "$D/cfg" b true; t3=$last
		echo "$t1 $t2 $t3" | awk -v t="$t0" '{ printf "%.3f %.3f %.3f\n", $1 / t, $2 / t, $3 / t }' |
		    tee -a "$shm/ratios" |
		    awk '{ printf "    to ssh-true: msync-ssh %.2fx, msync-libssh %.2fx, ssh-true again %.2fx\n", $1, $2, $3 }'
	done
	# The round ratios: median, and how many rounds were within 1.1x.
	for c in 1:msync-ssh 2:msync-libssh 3:"ssh-true again"; do
		sort -n -k "${c%%:*},${c%%:*}" "$shm/ratios" | awk -v k="${c%%:*}" -v n="${c#*:}" \
		    '{ v[NR] = $k; if ($k <= 1.1) ok++ }
		    END { printf "  %s to ssh-true: median %.2fx, %d of %d rounds within 1.1x\n",
		        n, NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2, ok, NR }'
	done
	if [ "$cg" = 1 ] && command -v valgrind >/dev/null; then
		valgrind -q --tool=callgrind --callgrind-out-file="$out/cg.client" \
		    "$msync" --backup -e "$SSH" --remote-msync=msync-cg "$src" "b:$base/m-dst" >/dev/null 2>&1
		echo "callgrind nochange: client $(sed -n 's/^summary: //p' "$out/cg.client") Ir, server $(sed -n 's/^summary: //p' "$out/cg.server") Ir"
	fi
	fi
	if want change1; then
	echo "== $fs: 1% new, 1% flag changes, 1% expunges; $runs runs each"
	for i in $(seq 1 "$runs"); do
		rm -rf "$src" && cp -a "$corpus/maildir" "$src" || exit 1
		m_ssh "$src" "b:$base/m-dst" >/dev/null 2>&1
		r_ssh "$src/" "b:$base/r-dst/" >/dev/null 2>&1
		perl "$top/scripts/bench-changes.pl" apply "$shm/changes" "$corpus/maildir" "$src" >/dev/null
		sync; sleep 1.2
		timed "msync-ssh #$i" m_ssh --stats "$src" "b:$base/m-dst"
		sed -n 's/^msync: wire: /    msync stream: /p' "$shm/last.out"
		sync
		timed "rsync-ssh #$i" r_ssh --stats "$src/" "b:$base/r-dst/"
		sed -n 's/^Total bytes \(sent\|received\): /    rsync \1: /p' "$shm/last.out" | tr '\n' ' '; echo
	done
	if [ "$cg" = 1 ] && command -v valgrind >/dev/null; then
		rm -rf "$src" && cp -a "$corpus/maildir" "$src" &&
		m_ssh "$src" "b:$base/m-dst" >/dev/null 2>&1
		perl "$top/scripts/bench-changes.pl" apply "$shm/changes" "$corpus/maildir" "$src" >/dev/null
		sleep 1.2
		valgrind -q --tool=callgrind --callgrind-out-file="$out/cg.client" \
		    "$msync" --backup -e "$SSH" --remote-msync=msync-cg "$src" "b:$base/m-dst" >/dev/null 2>&1
		echo "callgrind change1: client $(sed -n 's/^summary: //p' "$out/cg.client") Ir, server $(sed -n 's/^summary: //p' "$out/cg.server") Ir"
	fi
	fi
	rm -rf "$base"
	loop_down
done
echo
echo "bench-ssh: $(uptime)"
}
