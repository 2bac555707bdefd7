#!/usr/bin/env bash
# bench-imap.sh -- msync's IMAP store against a local Dovecot imapd, side by
# side with mbsync (isync), offlineimap3 and `doveadm backup` with imapc:
# an IMAP account -> Maildir, on tmpfs and on disk, in one run.
#
#   scripts/bench-imap.sh [-n MESSAGES] [--out DIR] [--tools "msync mbsync"]
#                         [--fs "tmpfs disk"]
#
# For each file system (tmpfs: /dev/shm; disk: OUT itself), a private
# Dovecot (tests/integration/lib-imapd.sh: imaps on 127.0.0.1, a
# self-signed certificate) with its mail there gets MESSAGES synthetic
# messages (default 20000; 2-6 KB each, written straight into its Maildir
# and indexed once with `doveadm force-resync` before any timing).  Then,
# for each tool, in a fresh destination on the same file system:
#   initial   the whole account copied into an empty Maildir
#   nochange  the same command again, nothing changed on the server
#   change1   again after 1% new messages and 1% flag changes on the
#             server; both are undone (expunged, unflagged) before the
#             next tool starts, so every tool sees the same account
# Tools (a tool that is not installed is left out, and the report says so):
#   msync     msync --backup imaps://... DST (read-only source: EXAMINE,
#             BODY.PEEK; QRESYNC)
#   mbsync    mbsync with an IMAPStore (the same server, TLS, the
#             certificate given) and a MaildirStore, Sync Pull, Create Near
#             (what it needs to mirror a server into a Maildir)
#   offlineimap  offlineimap3 -o (one pass), an IMAP repository marked
#             readonly and a Maildir repository, the certificate given
#   doveadm   `doveadm backup -R imapc:` into maildir:DST (Dovecot's own
#             migration path: imapc_* settings, imaps), run as the mail
#             user; imapc resolves names through Dovecot's dns-client
#             service, which a bare doveadm has not, so it connects to
#             127.0.0.1 with imapc_ssl_verify = no (the certificate names
#             localhost only): TLS without the certificate check
# Each run is timed once with /usr/bin/time (wall, user, system seconds);
# every run is reported with the load average (/proc/loadavg) just before
# it: the machine is shared.  Runs are 2 s apart (stores settled).
# Output: a Markdown table on stdout and in OUT/results.md, raw numbers in
# OUT/results.tsv, logs in OUT/logs/.  OUT defaults to bench-out/imap.
#
# Needs: dovecot-imapd, dovecot-core, isync, openssl, python3, time;
# offlineimap3 for that column.

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
{
set -uo pipefail
export LC_ALL=C TZ=UTC

top=$(cd "$(dirname "$0")/.." && pwd) || exit 1
msync=${MSYNC:-$top/msync}
n=20000
out=$top/bench-out/imap
tools="msync mbsync offlineimap doveadm"
fslist="tmpfs disk"
while [ $# -gt 0 ]; do
	case $1 in
	-n) n=$2; shift ;;
	--out) out=$2; shift ;;
	--tools) tools=$2; shift ;;
	--fs) fslist=$2; shift ;;
	-h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "bench-imap.sh: unknown option '$1'" >&2; exit 64 ;;
	esac
	shift
done
case $n in ''|*[!0-9]*) echo "bench-imap.sh: -n wants a number" >&2; exit 64 ;; esac

rm -rf "$out" && mkdir -p "$out/logs" || exit 1
out=$(cd "$out" && pwd) || exit 1

# shellcheck source=lib-bench-imap.sh
. "$top/scripts/lib-bench-imap.sh"
TRASH=$out/run
# shellcheck source=../tests/integration/lib-imapd.sh
. "$top/tests/integration/lib-imapd.sh"

# The mail user: as root, Dovecot's users are nobody (lib-imapd.sh), and
# doveadm's mail access must be theirs too (a command prefix, for time).
mailuser=(env)
[ "$(id -u)" = 0 ] &&
    mailuser=(setpriv --reuid=65534 --regid=65534 --clear-groups env)

# change1: 1% new messages, 1% of the messages flagged.
change() {
	local k=$(( n / 100 )) seed=$1
	[ "$k" -ge 1 ] || k=1
	# shellcheck disable=SC2154  # maildir: set by bench_account
	bench_gen "$TRASH/new$seed" "$k" "$seed" imap &&
	mv "$TRASH/new$seed/cur/"* "$maildir/cur/" &&
	{ [ "$(id -u)" != 0 ] || chown -R 65534:65534 "$maildir"; } &&
	doveadm -c "$IMAPD_CONF" flags add -u alice '\Flagged' mailbox INBOX \
	    "$((seed * 7)):$((seed * 7 + k - 1))" &&
	doveadm -c "$IMAPD_CONF" mailbox status -u alice messages INBOX
}

printf 'fs\ttool\trun\twall\tuser\tsys\tstatus\tmessages\tload1\n' \
    >"$out/results.tsv"
# run FS TOOL RUN DST CMD...: time CMD, record, count DST's messages.
run() {
	local fs=$1 tool=$2 what=$3 dst=$4 st tm load
	shift 4
	sync
	load=$(cut -d' ' -f1 /proc/loadavg)
	/usr/bin/time -f '%e %U %S' -o "$out/logs/$fs-$tool-$what.time" \
	    "$@" >"$out/logs/$fs-$tool-$what.log" 2>&1
	st=$?
	tm=$(tail -n 1 "$out/logs/$fs-$tool-$what.time")
	# shellcheck disable=SC2086  # three numbers
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$fs" "$tool" "$what" \
	    $tm "$st" "$(find "$dst" \( -path '*/cur/*' -o -path '*/new/*' \) \
	    -type f | grep -c .)" "$load" >>"$out/results.tsv"
	echo "bench-imap: $fs $tool $what: $tm (exit $st, load $load)" >&2
}

skipped=
for tool in $tools; do
	case $tool in
	offlineimap) command -v offlineimap >/dev/null ||
	    skipped="$skipped offlineimap(not installed)" ;;
	mbsync) command -v mbsync >/dev/null ||
	    skipped="$skipped mbsync(not installed)" ;;
	esac
done

for fs in $fslist; do
	case $fs in
	tmpfs) base=/dev/shm/msync-bench-imap.$$ ;;
	disk) base=$out/disk ;;
	*) echo "bench-imap: unknown file system '$fs'" >&2; exit 64 ;;
	esac
	rm -rf "$base" && mkdir -p "$base" || exit 1
	TRASH=$base
	IMAPD_DIR=$TRASH/imapd
	IMAPD_CONF=$IMAPD_DIR/dovecot.conf
	export HOME=$TRASH/home XDG_CACHE_HOME=$TRASH/home/.cache \
	    XDG_STATE_HOME=$TRASH/home/.local/state
	mkdir -p "$HOME" "$TRASH/dvhome" "$TRASH/dvrun"
	if [ "$(id -u)" = 0 ]; then
		chmod 755 "$TRASH" &&
		chown 65534:65534 "$TRASH/dvhome" "$TRASH/dvrun"
	fi
	echo "bench-imap: $fs: starting Dovecot in $TRASH" >&2
	start_imapd || { echo "bench-imap: Dovecot did not start" >&2; exit 1; }
	# shellcheck disable=SC2034  # run by lib-bench-imap.sh's trap
	atexit_cmds="stop_imapd; rm -rf /dev/shm/msync-bench-imap.$$"
	echo "bench-imap: $fs: writing $n messages" >&2
	bench_account "$n" || exit 1
	doveadm -c "$IMAPD_CONF" mailbox status -u alice all INBOX \
	    >"$out/logs/$fs-status" 2>&1

	seed=2
	for tool in $tools; do
		case " $skipped " in *" $tool("*) continue ;; esac
		dst=$TRASH/dst-$tool
		rm -rf "$dst" "$XDG_CACHE_HOME" "$XDG_STATE_HOME"
		case $tool in
		msync)
			set -- "$msync" --backup --passcmd "echo $IMAPD_PASS" \
			    "$(imaps_url alice)" "$dst" ;;
		mbsync)
			mkdir -p "$dst"
			bench_mbsyncrc "$TRASH/mbsyncrc" "$dst"
			set -- mbsync -c "$TRASH/mbsyncrc" -a -q ;;
		offlineimap)
			mkdir -p "$dst" "$TRASH/oimeta"
			cat >"$TRASH/offlineimaprc" <<EOF
[general]
accounts = bench
metadata = $TRASH/oimeta

[Account bench]
localrepository = near
remoterepository = far

[Repository near]
type = Maildir
localfolders = $dst

[Repository far]
type = IMAP
remotehost = localhost
remoteport = $IMAPS_PORT
remoteuser = alice
remotepass = $IMAPD_PASS
ssl = yes
sslcacertfile = $IMAPD_DIR/cert.pem
readonly = True
EOF
			set -- offlineimap -c "$TRASH/offlineimaprc" -o -u quiet ;;
		doveadm)
			mkdir -p "$dst"
			[ "$(id -u)" = 0 ] && chown 65534:65534 "$dst"
			cat >"$TRASH/imapc.conf" <<EOF
mail_location = maildir:$dst
imapc_host = 127.0.0.1
imapc_port = $IMAPS_PORT
imapc_ssl = imaps
imapc_user = alice
imapc_password = $IMAPD_PASS
imapc_features = rfc822.size fetch-headers modseq
imapc_ssl_verify = no
base_dir = $TRASH/dvrun
namespace inbox {
  inbox = yes
  separator = /
}
EOF
			set -- "${mailuser[@]}" HOME="$TRASH/dvhome" \
			    USER=alice doveadm -c "$TRASH/imapc.conf" \
			    backup -R imapc: ;;
		*) echo "bench-imap: unknown tool '$tool'" >&2; continue ;;
		esac
		run "$fs" "$tool" initial "$dst" "$@"
		sleep 2
		run "$fs" "$tool" nochange "$dst" "$@"
		change "$seed" >"$out/logs/$fs-change-$seed" 2>&1
		seed=$((seed + 1))
		sleep 2
		run "$fs" "$tool" change1 "$dst" "$@"
		doveadm -c "$IMAPD_CONF" expunge -u alice mailbox INBOX header \
		    Subject "of seed $((seed - 1))" \
		    >>"$out/logs/$fs-change-$((seed - 1))" 2>&1
		doveadm -c "$IMAPD_CONF" flags remove -u alice '\Flagged' \
		    mailbox INBOX all >>"$out/logs/$fs-change-$((seed - 1))" 2>&1
		rm -rf "$dst"
	done
	stop_imapd
	rm -rf "$base"
done

{
	echo "# bench-imap: $n messages, Dovecot imapd on 127.0.0.1 -> Maildir"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load at the end $(cut -d' ' -f1-3 /proc/loadavg);"
	echo "a shared machine: other jobs ran at the same time. One run each;"
	echo "load1 is the 1-minute load average just before that run."
	[ -z "$skipped" ] || echo "Left out:$skipped."
	echo
	echo "| fs | tool | run | wall s | user s | sys s | exit | messages in DST | load1 |"
	echo "|---|---|---|---|---|---|---|---|---|"
	tail -n +2 "$out/results.tsv" | while IFS=$'\t' read -r f t r w u s st m l; do
		echo "| $f | $t | $r | $w | $u | $s | $st | $m | $l |"
	done
	echo
	echo "Ratios msync / other tool (wall):"
	for f in $fslist; do
		for o in $tools; do
			[ "$o" = msync ] && continue
			for r in initial nochange change1; do
				a=$(awk -F'\t' -v f="$f" -v r="$r" '$1==f && $2=="msync" && $3==r {print $4}' "$out/results.tsv")
				b=$(awk -F'\t' -v f="$f" -v o="$o" -v r="$r" '$1==f && $2==o && $3==r {print $4}' "$out/results.tsv")
				[ -n "$a" ] && [ -n "$b" ] &&
				    echo "- $f $r vs $o: $(awk -v a="$a" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
			done
		done
	done
} | tee "$out/results.md"
exit 0
}
