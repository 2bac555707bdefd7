#!/usr/bin/env bash
# bench-daemon.sh -- msync's daemon transport (msyncs://, TLS 1.3) next to
# ssh (OpenSSH, and libssh) for the same backup, on 127.0.0.1.
#
#   scripts/bench-daemon.sh [--messages N] [--runs R] [--out DIR]
#
# Builds a Maildir of N generated messages (default 5000, 2-6 KB each,
# in 5 folders), then for each transport, R times (default 3):
#   initial   msync --backup SRC REMOTE into an empty remote directory
#   nochange  the same command again (after 2 s, so that change tokens
#             are trusted)
# Transports: ssh (OpenSSH client to a private sshd on a free port),
# libssh (--ssh=libssh to the same sshd), msyncs (a private
# `msync --daemon` with a throwaway CA, secret login, 127.0.0.1 only),
# and s2s: server to server, the same messages from a module of that
# daemon to a module of a second daemon (msync msyncs://d1 msyncs://d2:
# this msync only relays), next to the ssh row, which is the same pair
# run from the source's machine over ssh.  For s2s the TCP bytes are
# both connections' (the relayed bytes cross this machine twice), and
# the overhead is what they carried beyond twice msync's bytes.
# Every run is reported (wall seconds from /usr/bin/time; CPU seconds of
# the client and of the servers' reaped connections), then the median
# per transport and the ratio to ssh; with, for the first run, the bytes
# msync --stats counts (its protocol, the same for every transport), the
# bytes the TCP connection carried both ways (a counting relay on
# 127.0.0.1 in front of sshd and of the daemon), and their difference:
# what the transport adds (handshake, authentication, framing).
# After each initial copy the remote store's message count is checked
# with Python's mailbox module.
#
# Speed is measured, never asserted: the machine this runs on may be
# shared; say so next to any figure quoted (the report prints nproc and
# the load average).  Needs: openssl, sshd/ssh/ssh-keygen, python3,
# /usr/bin/time.  Root runs the daemon's connections as nobody.

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
msync=${MSYNC:-$top/msync}
n=5000
runs=3
out=$top/bench-out/daemon
while [ $# -gt 0 ]; do
	case $1 in
	--messages) n=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	-h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "bench-daemon.sh: unknown option '$1'" >&2; exit 64 ;;
	esac
done
for t in openssl ssh ssh-keygen /usr/sbin/sshd python3 /usr/bin/time; do
	command -v "$t" >/dev/null 2>&1 || {
		echo "bench-daemon.sh: $t is missing" >&2; exit 69; }
done
[ -x "$msync" ] || { echo "bench-daemon.sh: build msync first" >&2; exit 69; }

rm -rf "$out" && mkdir -p "$out/logs"
out=$(cd "$out" && pwd)
w=$out/work
mkdir -p "$w" && chmod 755 "$out" "$w"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || :; done; }
trap cleanup EXIT

free_port() {
	python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
	local i
	for i in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "bench-daemon.sh: port $1 did not answer" >&2
	return 1
}

echo "building $n messages" >&2
python3 - "$w/src" "$n" <<'EOF'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
random.seed(15)
folders = ["", ".Lists", ".Lists.Dev", ".Archive", ".Junk"]
for f in folders:
    for s in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(root, f, s), exist_ok=True)
words = "mail sync server message daemon backup folder index tls".split()
for i in range(n):
    f = folders[i % len(folders)]
    body = "\n".join(" ".join(random.choice(words) for _ in range(12))
                     for _ in range(random.randint(25, 80)))
    msg = ("From: a%d@example.org\nTo: b@example.net\nSubject: bench %d\n"
           "Message-ID: <%d.bench@example.org>\nDate: Mon, 1 Jan 2024 10:00:00 +0000\n\n%s\n"
           % (i % 97, i, i, body))
    with open(os.path.join(root, f, "cur", "%d.bench.host:2,S" % i), "w") as fh:
        fh.write(msg)
EOF

# --- a counting TCP relay: the bytes each connection really carries --------
cat >"$w/relay.py" <<'EOF'
import socket, sys, threading
lport, tport, logf = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Lock()
def pipe(a, b, n, i):
    try:
        while True:
            d = a.recv(65536)
            if not d:
                break
            n[i] += len(d)
            b.sendall(d)
    except OSError:
        pass
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass
def serve(c):
    t = socket.create_connection(("127.0.0.1", tport))
    n = [0, 0]
    th = [threading.Thread(target=pipe, args=(c, t, n, 0)),
          threading.Thread(target=pipe, args=(t, c, n, 1))]
    for x in th: x.start()
    for x in th: x.join()
    c.close(); t.close()
    with lock, open(logf, "a") as f:
        f.write("%d %d\n" % (n[0], n[1]))
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", lport)); s.listen(64)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF
# relay NAME TARGET_PORT: starts a relay (its port in RELAY_PORT).
relay() {
	RELAY_PORT=$(free_port)
	python3 "$w/relay.py" "$RELAY_PORT" "$2" "$w/relay-$1.log" &
	pids+=("$!")
	wait_port "$RELAY_PORT"
	: >"$w/relay-$1.log"
}

# --- sshd ----------------------------------------------------------------
sd=$w/sshd
mkdir -p "$sd/bin" && chmod 700 "$sd"
ssh-keygen -q -t ed25519 -N '' -f "$sd/host" && ssh-keygen -q -t ed25519 -N '' -f "$sd/id"
cp "$sd/id.pub" "$sd/authorized_keys" && chmod 600 "$sd/authorized_keys"
ln -sf "$msync" "$sd/bin/msync"
sport=$(free_port)
[ -d /run/sshd ] || mkdir -p /run/sshd 2>/dev/null || :
cat >"$sd/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $sport
HostKey $sd/host
AuthorizedKeysFile $sd/authorized_keys
PidFile $sd/pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin yes
SetEnv PATH=$sd/bin:/usr/bin:/bin XDG_CACHE_HOME=$w/rhome/cache XDG_STATE_HOME=$w/rhome/state
EOF
/usr/sbin/sshd -f "$sd/sshd_config" -E "$sd/log"
wait_port "$sport"
pids+=("$(cat "$sd/pid")")
relay ssh "$sport"
rsport=$RELAY_PORT
printf '[127.0.0.1]:%s %s\n' "$rsport" "$(cut -d' ' -f1,2 "$sd/host.pub")" >"$sd/known_hosts"
cat >"$sd/ssh_config" <<EOF
Host bench
	HostName 127.0.0.1
	Port $rsport
	User $(id -un)
	IdentityFile $sd/id
	IdentitiesOnly yes
	UserKnownHostsFile $sd/known_hosts
	StrictHostKeyChecking yes
	BatchMode yes
EOF
# libssh reads $HOME/.ssh
lh=$w/lhome
mkdir -p "$lh/.ssh" && chmod 700 "$lh/.ssh"
cp "$sd/id" "$sd/id.pub" "$sd/known_hosts" "$lh/.ssh/"
cat >"$lh/.ssh/config" <<EOF
Host bench
	HostName 127.0.0.1
	Port $rsport
	User $(id -un)
	IdentityFile $lh/.ssh/id
	UserKnownHostsFile $lh/.ssh/known_hosts
EOF
cp "$sd/known_hosts" "$lh/.ssh/known_hosts"

# --- the daemon ------------------------------------------------------------
dd=$w/msyncd
mkdir -p "$dd/srv" "$dd/cache"
(
	cd "$dd"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	    -keyout ca.key -out ca.pem -days 1 -subj /CN=bench-ca 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
	    -keyout srv.key -out srv.csr -subj /CN=localhost 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1\n' >ext
	openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
	    -out srv.pem -days 1 -extfile ext 2>/dev/null
)
printf 'bench:bench-secret\n' >"$dd/secrets" && chmod 600 "$dd/secrets"
printf 'bench-secret\n' >"$dd/client.secret"
dport=$(free_port)
{
	echo "address = 127.0.0.1"
	echo "port = $dport"
	[ "$(id -u)" = 0 ] && echo "user = nobody"
	echo "cert = $dd/srv.pem"
	echo "key = $dd/srv.key"
	echo "secrets file = $dd/secrets"
	echo "cache dir = $dd/cache"
	echo "[bench]"
	echo "path = $dd/srv"
	echo "users = bench"
	echo "read only = no"
} >"$dd/msyncd.conf"
[ "$(id -u)" = 0 ] && chown -R nobody "$dd/srv" "$dd/cache"
"$msync" --daemon --config "$dd/msyncd.conf" 2>"$dd/log" &
pids+=("$!")
dpid1=$!
wait_port "$dport"
relay msyncs "$dport"
rdport=$RELAY_PORT

# A second daemon, the other end of server to server; its module is
# bench2.  The source is a copy of the messages in the first's module.
mkdir -p "$dd/srv2" "$dd/cache2"
cp -a "$w/src" "$dd/srv/s2s-src"
dport2=$(free_port)
sed -e "s/^port = .*/port = $dport2/" -e "s|^cache dir = .*|cache dir = $dd/cache2|" \
    -e 's/^\[bench\]/[bench2]/' -e "s|^path = .*|path = $dd/srv2|" \
    "$dd/msyncd.conf" >"$dd/msyncd2.conf"
[ "$(id -u)" = 0 ] && chown -R nobody "$dd/srv" "$dd/srv2" "$dd/cache2"
"$msync" --daemon --config "$dd/msyncd2.conf" 2>"$dd/log2" &
pids+=("$!")
dpid2=$!
wait_port "$dport2"
relay msyncs2 "$dport2"
rdport2=$RELAY_PORT

# --- runs ------------------------------------------------------------------
count() {
	python3 - "$1" <<'EOF'
import mailbox, sys
md = mailbox.Maildir(sys.argv[1], factory=None, create=False)
print(len(md) + sum(len(md.get_folder(f)) for f in md.list_folders()))
EOF
}

# The CPU time (ticks) a server has spent with its reaped connections:
# its own utime+stime and its waited-for children's (fields 14-17 of
# /proc/PID/stat).  The sshd and daemon listeners reap every connection
# (and a connection its brain), so the difference over a run is the
# server side's CPU time: with the client's, a figure that the load of
# a shared machine moves far less than wall time.
ticks() {
	local p t=0
	for p in "$@"; do
		t=$((t + $(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$p/stat")))
	done
	echo "$t"
}
hz=$(getconf CLK_TCK)
sshd_pid=$(cat "$sd/pid")

# run TRANSPORT KIND I: one timed run; prints a TSV row.
run() {
	local tr=$1 kind=$2 i=$3 dst log=$out/logs/$1-$2-$3.log secs bytes
	local -a cmd
	case $tr in
	ssh) dst="bench:$w/dst-ssh-$i"
	     cmd=("$msync" --stats --backup -e "ssh -F $sd/ssh_config" "$w/src" "$dst") ;;
	libssh) dst="bench:$w/dst-libssh-$i"
	     cmd=(env HOME="$lh" "$msync" --stats --backup --ssh=libssh "$w/src" "$dst") ;;
	msyncs) dst="msyncs://bench@127.0.0.1:$rdport/bench/dst-$i;secret-file=$dd/client.secret"
	     cmd=(env SSL_CERT_FILE="$dd/ca.pem" "$msync" --stats --backup "$w/src" "$dst") ;;
	s2s) dst="msyncs://bench@127.0.0.1:$rdport2/bench2/dst-$i;secret-file=$dd/client.secret"
	     cmd=(env SSL_CERT_FILE="$dd/ca.pem" "$msync" --stats --backup
	         "msyncs://bench@127.0.0.1:$rdport/bench/s2s-src;secret-file=$dd/client.secret" "$dst") ;;
	esac
	sync
	: >"$w/relay-${tr/libssh/ssh}.log"
	: >"$w/relay-msyncs.log"
	: >"$w/relay-msyncs2.log"
	case $tr in
	ssh|libssh) servers=("$sshd_pid") ;;
	msyncs) servers=("$dpid1") ;;
	s2s) servers=("$dpid1" "$dpid2") ;;
	esac
	t0=$(ticks "${servers[@]}")
	/usr/bin/time -f '%U %S %e' -o "$log.time" "${cmd[@]}" >"$log" 2>&1 || {
		echo "bench-daemon.sh: $tr $kind $i failed; see $log" >&2
		return 1
	}
	secs=$(tail -1 "$log.time" | cut -d" " -f3)
	ccpu=$(tail -1 "$log.time" | awk '{ print $1 + $2 }')
	bytes=$(sed -n 's/.*wire: sent \([0-9]*\) bytes.*received \([0-9]*\) bytes.*/\1+\2/p' "$log" | head -1)
	bytes=$((${bytes:-0}))
	# what the TCP connection carried, both ways (the relay's count)
	# (the daemons reap within a second)
	sleep 1.5
	scpu=$(awk -v a="$t0" -v b="$(ticks "${servers[@]}")" -v hz="$hz" \
	    'BEGIN { printf "%.2f", (b - a) / hz }')
	if [ "$tr" = s2s ]; then
		tcp=$(cat "$w/relay-msyncs.log" "$w/relay-msyncs2.log" |
		    awk '{ s += $1 + $2 } END { print s + 0 }')
	else
		tcp=$(awk '{ s += $1 + $2 } END { print s + 0 }' "$w/relay-${tr/libssh/ssh}.log")
	fi
	load=$(cut -d" " -f1 /proc/loadavg)
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tr" "$kind" "$i" "$secs" "$bytes" "$tcp" "$load" "$ccpu" "$scpu"
}

tsv=$out/results.tsv
printf 'transport\trun\ti\tseconds\twire_bytes\ttcp_bytes\tload\tclient_cpu\tserver_cpu\n' >"$tsv"
for i in $(seq 1 "$runs"); do
	for tr in ssh libssh msyncs s2s; do
		run "$tr" initial "$i" >>"$tsv"
		case $tr in
		ssh) got=$(count "$w/dst-ssh-$i") ;;
		libssh) got=$(count "$w/dst-libssh-$i") ;;
		msyncs) got=$(count "$dd/srv/dst-$i") ;;
		s2s) got=$(count "$dd/srv2/dst-$i") ;;
		esac
		[ "$got" = "$n" ] || {
			echo "bench-daemon.sh: $tr run $i copied $got of $n" >&2
			exit 1
		}
		sleep 2
		run "$tr" nochange "$i" >>"$tsv"
	done
done

python3 - "$tsv" "$n" "$runs" <<'EOF' | tee "$out/results.md"
import csv, os, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
n, runs = sys.argv[2], sys.argv[3]
print("# msync over ssh, libssh, its daemon (msyncs://) and daemon to daemon (s2s)\n")
print("%s messages, %s runs each; machine: %d cores, load average %s "
      "(shared with other users: figures are noisy)\n"
      % (n, runs, os.cpu_count(), " ".join("%.2f" % x for x in os.getloadavg())))
print("| transport | run | seconds (every run) | median | vs ssh | CPU s, client + servers (every run) | msync bytes | TCP bytes | overhead | load (1 min) at each run |")
print("|---|---|---|---|---|---|---|---|---|---|")
med = {}
for kind in ("initial", "nochange"):
    for tr in ("ssh", "libssh", "msyncs", "s2s"):
        r = [x for x in rows if x["transport"] == tr and x["run"] == kind]
        s = [float(x["seconds"]) for x in r]
        med[(tr, kind)] = statistics.median(s)
    for tr in ("ssh", "libssh", "msyncs", "s2s"):
        r = [x for x in rows if x["transport"] == tr and x["run"] == kind]
        m = med[(tr, kind)]
        base = med[("ssh", kind)]
        wb, tb = int(r[0]["wire_bytes"]), int(r[0]["tcp_bytes"])
        # s2s: msync's bytes cross this machine twice (in from one
        # daemon, out to the other); the overhead is what is beyond that.
        ob = tb - (2 * wb if tr == "s2s" else wb)
        print("| %s | %s | %s | %.2f | %s | %s | %d | %d | %d | %s |" % (
            tr, kind, " ".join(x["seconds"] for x in r), m,
            "%.2f" % (m / base) if base > 0 else "-",
            " ".join("%.2f+%s" % (float(x["client_cpu"]), x["server_cpu"]) for x in r),
            wb, tb, ob,
            " ".join(x["load"] for x in r)))
EOF
