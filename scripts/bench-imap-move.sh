#!/usr/bin/env bash
# bench-imap-move.sh -- a move of many messages between two folders of a
# Maildir, synced two-way with an IMAP account (a private Dovecot imapd on
# 127.0.0.1): the run that carries the move to the server, timed for two
# msync builds side by side (before: the move is a download of each body
# and an APPEND, then an expunge; after: UID MOVE on the server).
#
#   scripts/bench-imap-move.sh [-n MESSAGES] [--runs N] [--fs "tmpfs disk"]
#                              [--base MSYNC_BEFORE] [--callgrind]
#                              [--out DIR] [--caps "CAPABILITY ..."]
#
# Per file system (tmpfs: /dev/shm; disk: OUT), per run, per build (the
# builds alternate): the account and msync's state and cache are emptied,
# a Maildir with MESSAGES messages (2-6 KB) in INBOX and an empty folder
# Moved is synced two-way (not timed), then every message is moved to
# Moved in the Maildir (rename, as a mail reader does), 2 s pass, and the
# two-way run is timed with /usr/bin/time.  After it the account must
# hold MESSAGES messages, all in Moved (doveadm), or the run is marked bad.
# Bytes on the wire: Dovecot's own count for that session (its log's
# "in=... out=", bytes it read and wrote); the load average (/proc/loadavg)
# is taken before each timed run.  --callgrind adds one run per build
# under valgrind --tool=callgrind (instructions of the msync processes;
# Dovecot's work is not in it).  --caps replaces Dovecot's capability list
# (e.g. without MOVE).
# Output: a Markdown table on stdout and OUT/results.md (default
# bench-out/imap-move), logs in OUT/logs.

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
{
set -uo pipefail
export LC_ALL=C TZ=UTC

top=$(cd "$(dirname "$0")/.." && pwd) || exit 1
after=${MSYNC:-$top/msync}
before=
n=1000
runs=3
fslist=tmpfs
out=$top/bench-out/imap-move
cg=0
caps=
while [ $# -gt 0 ]; do
	case $1 in
	-n) n=$2; shift ;;
	--runs) runs=$2; shift ;;
	--fs) fslist=$2; shift ;;
	--base) before=$2; shift ;;
	--out) out=$2; shift ;;
	--callgrind) cg=1 ;;
	--caps) caps=$2; shift ;;
	-h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "bench-imap-move.sh: unknown option '$1'" >&2; exit 64 ;;
	esac
	shift
done
case $n$runs in ''|*[!0-9]*) echo "bench-imap-move.sh: numbers wanted" >&2; exit 64 ;; esac
[ -x "$after" ] || { echo "bench-imap-move.sh: no $after (make first)" >&2; exit 1; }
builds="after"
[ -n "$before" ] && builds="before after"

rm -rf "$out" && mkdir -p "$out/logs" || exit 1
out=$(cd "$out" && pwd) || exit 1

# shellcheck source=lib-bench-imap.sh
. "$top/scripts/lib-bench-imap.sh"

bin_of() { if [ "$1" = before ]; then echo "$before"; else echo "$after"; fi; }

results=$out/results.md
printf '| fs | build | run | wall s | user s | sys s | exit | server in B | server out B | in Moved | load1 |\n' >"$results"
printf '|---|---|---|---|---|---|---|---|---|---|---|\n' >>"$results"

for fs in $fslist; do
	case $fs in
	tmpfs) base=$(mktemp -d /dev/shm/msync-bench-move.XXXXXX) || exit 1 ;;
	disk) base=$out/disk && mkdir -p "$base" || exit 1 ;;
	*) echo "bench-imap-move.sh: --fs tmpfs|disk" >&2; exit 64 ;;
	esac
	# shellcheck disable=SC2034  # both read by lib-imapd.sh
	TRASH=$base IMAPD_EXTRA_CONF=${caps:+"imap_capability = $caps"}
	# shellcheck source=../tests/integration/lib-imapd.sh
	. "$top/tests/integration/lib-imapd.sh"
	[ "$(id -u)" = 0 ] && chmod 755 "$base"
	start_imapd || { echo "bench-imap-move.sh: imapd did not start" >&2; exit 1; }
	atexit_cmds="stop_imapd; ${atexit_cmds:-:}"
	[ "$fs" = tmpfs ] && atexit_cmds="$atexit_cmds; rm -rf '$base'"
	url=$(imaps_url alice)
	kinds=""
	for r in $(seq 1 "$runs"); do
		for b in $builds; do kinds="$kinds $b:$r"; done
	done
	[ $cg = 1 ] && for b in $builds; do kinds="$kinds $b:cg"; done
	for k in $kinds; do
		b=${k%%:*} r=${k#*:}
		exe=$(bin_of "$b")
		export XDG_STATE_HOME=$base/state XDG_CACHE_HOME=$base/cache
		rm -rf "$base/state" "$base/cache" "$base/md"
		doveadm -c "$IMAPD_CONF" expunge -u alice mailbox '*' all 2>/dev/null
		doveadm -c "$IMAPD_CONF" mailbox delete -u alice Moved 2>/dev/null
		bench_gen "$base/md" "$n" 7 move && mkdir -p "$base/md/.Moved/cur" \
		    "$base/md/.Moved/new" "$base/md/.Moved/tmp" || exit 1
		"$exe" --passcmd "echo $IMAPD_PASS" "$base/md" "$url" \
		    >"$out/logs/$fs-$b-$r.setup" 2>&1 ||
		    echo "setup run failed ($fs $b $r)" >&2
		mv "$base/md/cur/"* "$base/md/.Moved/cur/" || exit 1
		sleep 2
		load=$(cut -d' ' -f1 /proc/loadavg)
		log=$out/logs/$fs-$b-$r
		nlog=$(wc -l <"$IMAPD_DIR/log")
		pre=(/usr/bin/time -f "TIME %e %U %S")
		[ "$r" = cg ] && pre=(valgrind --tool=callgrind \
		    --trace-children=yes --callgrind-out-file="$log.cg.%p")
		"${pre[@]}" "$exe" -v --passcmd "echo $IMAPD_PASS" \
		    "$base/md" "$url" >"$log.out" 2>"$log.err"
		rc=$?
		sleep 1
		tail -n +"$((nlog + 1))" "$IMAPD_DIR/log" >"$log.dovecot"
		sin=$(grep -o 'Logged out in=[0-9]*' "$log.dovecot" | tail -n 1 | sed 's/.*=//')
		sout=$(grep -o 'Logged out in=[0-9]* out=[0-9]*' "$log.dovecot" | tail -n 1 | sed 's/.*=//')
		moved=$(doveadm -c "$IMAPD_CONF" mailbox status -u alice messages Moved | sed 's/.*=//')
		inbox=$(doveadm -c "$IMAPD_CONF" mailbox status -u alice messages INBOX | sed 's/.*=//')
		[ "$moved" = "$n" ] && [ "$inbox" = 0 ] || moved="BAD $moved/$inbox"
		if [ "$r" = cg ]; then
			ins=0
			for f in "$log".cg.*; do
				i=$(sed -n 's/^summary: //p' "$f")
				ins=$((ins + ${i:-0}))
			done
			printf '| %s | %s | callgrind | instructions %s | | | %s | %s | %s | %s | %s |\n' \
			    "$fs" "$b" "$ins" "$rc" "$sin" "$sout" "$moved" "$load" >>"$results"
			continue
		fi
		read -r wall user sys < <(sed -n 's/^TIME //p' "$log.err")
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' \
		    "$fs" "$b" "$r" "$wall" "$user" "$sys" "$rc" "$sin" "$sout" \
		    "$moved" "$load" >>"$results"
	done
	stop_imapd
done
cat "$results"
exit 0
}
