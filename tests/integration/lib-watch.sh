# lib-watch.sh -- helpers for the watch-mode tests (t19xx).  Source it
# after lib.sh.
#
#   wait_until CMD...       run CMD every 0.1 s until it succeeds; fail
#                           after 1200 tries (two minutes: the machine may
#                           be shared; the bound is generous and the tool
#                           is never timed)
#   watch_start NAME ARGS...  start `msync --watch --json ARGS` in the
#                           background: pid in NAME.pid, reports in
#                           NAME.out, messages in NAME.err; returns when
#                           the first sync has reported
#   watch_stop NAME         SIGTERM it; its exit status must be 0
#   has_count DIR N         DIR (cur/ + new/) holds N messages

wait_until() {
	local i=0
	until "$@" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 1200 ] || { echo "wait_until: gave up on: $*" >&2; return 1; }
		sleep 0.1
	done
}

# watch_start NAME ARGS...: starts `msync --watch --json ARGS` in the
# background, its pid in NAME.pid, reports in NAME.out, messages in
# NAME.err; waits until its first sync has reported.
watch_start() {
	local name=$1
	shift
	"$MSYNC" --watch --json "$@" >"$name.out" 2>"$name.err" &
	echo $! >"$name.pid"
	test_atexit "kill -9 $! 2>/dev/null"
	wait_until test -s "$name.out"
}

# watch_stop NAME: SIGTERM, then the exit status must be 0.
watch_stop() {
	local pid
	pid=$(cat "$1.pid")
	kill -TERM "$pid" && wait "$pid"
}

has_count() { test "$(count_msgs "$1")" = "$2"; }
