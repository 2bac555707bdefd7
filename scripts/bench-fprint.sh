#!/usr/bin/env bash
# bench-fprint.sh -- a half-filled migration with and without the header
# fingerprint (docs/IMAP.md "A server that already holds some of the
# messages"), against a private Dovecot on 127.0.0.1.
#
#   scripts/bench-fprint.sh [-n MESSAGES] [-r RUNS] [--out DIR]
#                           [--fs "tmpfs disk"] [--callgrind]
#
# A Maildir of MESSAGES synthetic messages (default 2000, 2-6 KB each).
# Two cases, each RUNS times (default 3) with the fingerprint off
# (MSYNC_NO_FPRINT=1: every message the IMAP cache does not know is
# downloaded once, as before protocol 4) and on, no sync state and no
# cache before each run:
#   into  msync --backup Maildir -> IMAP, the account already holding
#         every other message (written into its Maildir, as another tool
#         would have left it, and indexed with doveadm force-resync)
#   from  msync --backup IMAP -> a Maildir holding every other message,
#         the account holding all
# Reported per run: wall, user and system seconds of msync (both
# brains), the bodies and body bytes Dovecot sent (its imap_logout_format
# counters fetch_body_count / fetch_body_bytes), all bytes it sent
# (out=), the messages in the destination afterwards (MESSAGES: no
# duplicate), and the 1-minute load before the run.  --callgrind adds
# one run of each under valgrind --tool=callgrind (both brains: valgrind
# follows the fork) and reports msync's instructions.
# Output: a Markdown table on stdout and in OUT/results.md, raw numbers
# in OUT/results.tsv, logs in OUT/logs/.  OUT defaults to
# bench-out/fprint.
#
# Needs: dovecot-imapd, dovecot-core, openssl, python3, time; valgrind
# for --callgrind.

if [ -z "${BASH_VERSION:-}" ]; then exec bash "$0" "$@"; fi
{
set -uo pipefail
export LC_ALL=C TZ=UTC

top=$(cd "$(dirname "$0")/.." && pwd) || exit 1
msync=${MSYNC:-$top/msync}
n=2000
runs=3
out=$top/bench-out/fprint
fslist="tmpfs disk"
cg=0
while [ $# -gt 0 ]; do
	case $1 in
	-n) n=$2; shift ;;
	-r) runs=$2; shift ;;
	--out) out=$2; shift ;;
	--fs) fslist=$2; shift ;;
	--callgrind) cg=1 ;;
	-h|--help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "bench-fprint.sh: unknown option '$1'" >&2; exit 64 ;;
	esac
	shift
done
case $n$runs in ''|*[!0-9]*) echo "bench-fprint.sh: -n and -r want numbers" >&2; exit 64 ;; esac

rm -rf "$out" && mkdir -p "$out/logs" || exit 1
out=$(cd "$out" && pwd) || exit 1

# shellcheck source=lib-bench-imap.sh
. "$top/scripts/lib-bench-imap.sh"
TRASH=$out/run
# shellcheck source=../tests/integration/lib-imapd.sh
. "$top/tests/integration/lib-imapd.sh"
# shellcheck disable=SC2034  # read by lib-imapd.sh
IMAPD_EXTRA_CONF='imap_logout_format = in=%i out=%o fbc=%{fetch_body_count} fbb=%{fetch_body_bytes} fhc=%{fetch_hdr_count}'

owner() { [ "$(id -u)" != 0 ] || chown -R 65534:65534 "$@"; }

# fill USER EVERY: the account holds every EVERY-th message of src (1:
# all), nothing else.
fill() {
	local md=$IMAPD_DIR/home/$1/Maildir
	rm -rf "$md" && mkdir -p "$md/cur" "$md/new" "$md/tmp" &&
	ls "$src/cur" | awk -v e="$2" 'NR % e == 0' |
	    while read -r f; do cp "$src/cur/$f" "$md/cur/"; done &&
	rm -rf "$IMAPD_DIR/home/$1/mdbox" "$md"/dovecot* &&
	owner "$IMAPD_DIR/home/$1" &&
	doveadm -c "$IMAPD_CONF" force-resync -u "$1" INBOX >/dev/null 2>&1
}
# half DIR: a Maildir holding every other message of src.
half() {
	rm -rf "$1" && mkdir -p "$1/cur" "$1/new" "$1/tmp" &&
	ls "$src/cur" | awk 'NR % 2 == 0' |
	    while read -r f; do cp "$src/cur/$f" "$1/cur/"; done
}
# sessions USER FIELD: the sum of FIELD over USER's logouts in the log.
sessions() {
	grep "imap($1)" "$IMAPD_DIR/log" | grep -o " $2=[0-9]*" |
	    sed "s/.*=//" | awk '{ s += $1 } END { print s + 0 }'
}
count_imap() {
	doveadm -c "$IMAPD_CONF" -f tab fetch -u "$1" uid mailbox INBOX |
	    sed 1d | grep -c .
}
count_md() { find "$1" \( -path '*/cur/*' -o -path '*/new/*' \) -type f | grep -c .; }

printf 'fs\tcase\tfprint\trun\twall\tuser\tsys\tstatus\tbodies\tbody_bytes\tout_bytes\tmessages\tload1\n' \
    >"$out/results.tsv"

# one FS CASE FPRINT RUN: prepare, time one msync run, record.
one() {
	local fs=$1 cs=$2 fp=$3 i=$4 tag st tm load dst user env=()
	tag=$fs-$cs-$fp-$i
	[ "$fp" = off ] && env=(MSYNC_NO_FPRINT=1)
	rm -rf "$XDG_CACHE_HOME" "$XDG_STATE_HOME"
	case $cs in
	into) user=bob; fill bob 2; dst=bob
		set -- "$msync" --backup --passcmd "echo $IMAPD_PASS" \
		    "$src" "$(imaps_url bob)" ;;
	from) user=carol; dst=$TRASH/half; half "$dst"
		set -- "$msync" --backup --passcmd "echo $IMAPD_PASS" \
		    "$(imaps_url carol)" "$dst" ;;
	esac
	if [ "$i" = cg ]; then
		rm -rf "$out/logs/cg-$tag" && mkdir -p "$out/logs/cg-$tag"
		set -- valgrind --tool=callgrind --trace-children=no \
		    --callgrind-out-file="$out/logs/cg-$tag/cg.%p" "$@"
	fi
	sync; sleep 2
	: >"$IMAPD_DIR/log"
	load=$(cut -d' ' -f1 /proc/loadavg)
	env "${env[@]}" /usr/bin/time -f '%e %U %S' -o "$out/logs/$tag.time" \
	    "$@" >"$out/logs/$tag.log" 2>&1
	st=$?
	sleep 1	# Dovecot logs the counters at logout
	tm=$(tail -n 1 "$out/logs/$tag.time")
	if [ "$cs" = into ]; then m=$(count_imap bob); else m=$(count_md "$dst"); fi
	# shellcheck disable=SC2086  # three numbers
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$fs" \
	    "$cs" "$fp" "$i" $tm "$st" "$(sessions $user fbc)" \
	    "$(sessions $user fbb)" "$(sessions $user out)" "$m" "$load" \
	    >>"$out/results.tsv"
	if [ "$i" = cg ]; then
		printf '%s\t%s\t%s\t%s\n' "$fs" "$cs" "$fp" "$(cat \
		    "$out/logs/cg-$tag"/cg.* | awk '/^summary:/ { s += $2 } END { print s }')" \
		    >>"$out/callgrind.tsv"
	fi
	echo "bench-fprint: $tag: $tm (exit $st, load $load)" >&2
}

for fs in $fslist; do
	case $fs in
	tmpfs) base=/dev/shm/msync-bench-fprint.$$ ;;
	disk) base=$out/disk ;;
	*) echo "bench-fprint: unknown file system '$fs'" >&2; exit 64 ;;
	esac
	rm -rf "$base" && mkdir -p "$base" || exit 1
	TRASH=$base
	IMAPD_DIR=$TRASH/imapd
	IMAPD_CONF=$IMAPD_DIR/dovecot.conf
	export HOME=$TRASH/home XDG_CACHE_HOME=$TRASH/home/.cache \
	    XDG_STATE_HOME=$TRASH/home/.local/state
	mkdir -p "$HOME"
	[ "$(id -u)" = 0 ] && chmod 755 "$TRASH"
	start_imapd || { echo "bench-fprint: Dovecot did not start" >&2; exit 1; }
	# shellcheck disable=SC2034  # run by lib-bench-imap.sh's trap
	atexit_cmds="stop_imapd; rm -rf /dev/shm/msync-bench-fprint.$$"
	src=$TRASH/src
	bench_gen "$src" "$n" 1 fp || exit 1
	fill carol 1
	for i in $(seq 1 "$runs"); do
		for cs in into from; do
			for fp in off on; do
				one "$fs" "$cs" "$fp" "$i"
			done
		done
	done
	if [ "$cg" = 1 ]; then
		for cs in into from; do
			for fp in off on; do
				one "$fs" "$cs" "$fp" cg
			done
		done
	fi
	stop_imapd
	rm -rf "/dev/shm/msync-bench-fprint.$$"
done

{
	echo "\`scripts/bench-fprint.sh -n $n -r $runs\` ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores)"
	echo
	echo "| fs | case | fingerprint | run | wall s | user s | sys s | exit | bodies sent | body bytes | bytes sent | messages after | load1 |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
	sed 1d "$out/results.tsv" | awk -F'\t' '{ printf "| %s |", $1; for (i = 2; i <= NF; i++) printf " %s |", $i; print "" }'
	if [ -f "$out/callgrind.tsv" ]; then
		echo
		echo "| fs | case | fingerprint | msync instructions (callgrind, both brains) |"
		echo "|---|---|---|---|"
		awk -F'\t' '{ printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }' "$out/callgrind.tsv"
	fi
} | tee "$out/results.md"
exit 0
}
