# server.bash: start, stop and time a server, and wait for anything, bounded.
#
# The one copy of these, sourced by the tests (helper.bash), the benchmark
# (bench.sh) and the strict gates (check.sh).  A server is any command that
# prints "listening on ADDR:PORT" on stdout when it is ready.  Linux only: it
# reads /proc.

# Seconds since the epoch, with a fraction.
now() {
	printf '%s\n' "$EPOCHREALTIME"
}

# seconds_since T0: the seconds from T0 (a `now`) to now, to the millisecond.
seconds_since() {
	awk -v s="$1" -v n="$EPOCHREALTIME" 'BEGIN { printf "%.3f", n - s }'
}

# wait_until SECONDS COMMAND...: run COMMAND every 20 ms until it succeeds
# (return 0) or SECONDS have passed (return 1).  The one bounded wait.
wait_until() {
	local limit=$1 start=$EPOCHREALTIME
	shift
	until "$@"; do
		(($(awk -v s="$start" -v n="$EPOCHREALTIME" -v l="$limit" \
			'BEGIN { print (n - s > l) }') == 0)) || return 1
		sleep 0.02
	done
}

# Succeed if process $1 has exited (gone, or a zombie waiting to be reaped).
exited() {
	local state
	[[ -r /proc/$1/stat ]] || return 0
	state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 0
	[[ -z $state || $state == Z ]]
}

# Process $1's CPU time so far (user + system, all threads), in clock ticks.
proc_cpu_ticks() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	# the command name, in parentheses, may hold spaces: skip past it
	stat=${stat##*) }
	awk '{ print $12 + $13 }' <<<"$stat"
}

# Process $1's resident memory now and at its peak, in KiB.
proc_rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }
proc_peak_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

# server_start SECONDS OUT ERR COMMAND...: run COMMAND in the background, its
# stdout to OUT and stderr to ERR, and wait at most SECONDS for its
# "listening on" line.  Sets SERVER_PID and PORT; on failure says why on
# stderr and returns 1 (the process, if it still runs, is left to the
# caller, whose SERVER_PID names it).
server_start() {
	local limit=$1 out=$2 err=$3 line
	shift 3
	: >"$out"
	"$@" >"$out" 2>"$err" 3>&- &
	SERVER_PID=$!
	PORT=
	if ! wait_until "$limit" _server_ready "$out" "$SERVER_PID"; then
		echo "no 'listening on' line after ${limit}s" >&2
		return 1
	fi
	if ! line=$(grep -m1 '^listening on ' "$out"); then
		echo "the server exited before listening:" >&2
		tail -5 "$err" >&2
		return 1
	fi
	PORT=${line##*:}
	[[ $PORT =~ ^[0-9]+$ && $PORT -gt 0 ]] || {
		echo "bad listening line: $line" >&2
		return 1
	}
}

# The server has printed its line, or has exited: waiting is over.
_server_ready() {
	grep -q '^listening on ' "$1" || exited "$2"
}

# server_wait PID SECONDS: wait at most SECONDS for PID to exit and reap it;
# set STATUS to its exit status and ELAPSED to the seconds waited; return 1
# on a timeout (the process still runs).
server_wait() {
	local start=$EPOCHREALTIME
	if ! wait_until "$2" exited "$1"; then
		echo "process $1 still running after ${2}s" >&2
		return 1
	fi
	STATUS=0
	wait "$1" 2>/dev/null || STATUS=$?
	ELAPSED=$(seconds_since "$start")
}

# server_stop PID SECONDS: SIGTERM, then SIGKILL if PID is still running
# after SECONDS; reap it.  Sets STATUS ("killed" when it took SIGKILL).
server_stop() {
	if exited "$1"; then
		STATUS=0
		wait "$1" 2>/dev/null || STATUS=$?
		return 0
	fi
	kill -TERM "$1" 2>/dev/null || true
	server_wait "$1" "$2" 2>/dev/null && return 0
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
	STATUS=killed
}
