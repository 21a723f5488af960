# server.bash: start, stop and time a server, and wait for anything, bounded.
#
# The one copy of these, sourced by the tests (helper.bash), the benchmark
# (bench.sh) and the strict gates (check.sh).  A server is any command that
# prints "listening on ADDR:PORT" on stdout when it is ready.  Linux only: it
# reads /proc.

# Seconds since the epoch, with a fraction (six digits).
now() {
	printf '%s\n' "$EPOCHREALTIME"
}

# usec [T]: T (a `now`; default: now) in microseconds since the epoch, an
# integer that bash's own arithmetic compares: no process is started.
# shellcheck disable=SC2120 # T is for the scripts that source this file
usec() {
	local t=${1:-$EPOCHREALTIME}
	t=${t//[!0-9]/}
	printf '%s\n' "$((10#$t))"
}

# ms_since T0 [T1]: the whole milliseconds from T0 to T1 (both `now`s; T1
# default now), for a test to compare with bash's arithmetic.
ms_since() {
	local t0=${1//[!0-9]/} t1=${2:-$EPOCHREALTIME}
	t1=${t1//[!0-9]/}
	printf '%s\n' "$(((10#$t1 - 10#$t0) / 1000))"
}

# seconds_since T0 [T1]: the seconds from T0 to T1 (both `now`s; T1 default
# now), to the millisecond, as "1.234".  The one elapsed-time formatter.
seconds_since() {
	local t0=${1//[!0-9]/} t1=${2:-$EPOCHREALTIME} ms
	t1=${t1//[!0-9]/}
	ms=$(((10#$t1 - 10#$t0) / 1000))
	((ms >= 0)) || ms=0
	printf '%d.%03d\n' $((ms / 1000)) $((ms % 1000))
}

# TIME_SCALE: every time bound is written, and measured, for a plain build;
# an instrumented build (a sanitizer, valgrind) is slower, and test/check.sh,
# which runs the tests against such builds, sets TIME_SCALE to how many times
# (the one place its values are chosen, with their measurements).  Each
# bounded wait below is scaled by it, and a test that compares an elapsed
# time with a bound writes the bound as `scaled`.  Only a bound that a slow
# build could overrun is scaled: a time that must pass first (no echo for
# 1 s, a server's own -i 1 or drain deadline) is the same in every build.
TIME_SCALE=${TIME_SCALE:-1}
[[ $TIME_SCALE =~ ^[1-9][0-9]*$ ]] || {
	echo "TIME_SCALE=$TIME_SCALE: not a whole number of at least 1" >&2
	TIME_SCALE=1
}

# scaled SECONDS: SECONDS (a whole number or a fraction) times TIME_SCALE,
# as a whole number when SECONDS is one, else to the microsecond.
scaled() {
	local us
	us=$(_usec_of "$1")
	us=$((us * TIME_SCALE))
	if [[ $1 == *.* ]]; then
		printf '%d.%06d\n' $((us / 1000000)) $((us % 1000000))
	else
		printf '%d\n' $((us / 1000000))
	fi
}

# _usec_of SECONDS: SECONDS (a whole number or a fraction) in microseconds.
_usec_of() {
	local whole=${1%.*} frac=
	[[ $1 == *.* ]] && frac=${1#*.}
	frac=${frac}000000
	printf '%d\n' $((10#${whole:-0} * 1000000 + 10#${frac:0:6}))
}

# wait_until SECONDS COMMAND...: run COMMAND every 20 ms until it succeeds
# (return 0) or SECONDS (a whole number or a fraction) times TIME_SCALE have
# passed (return 1).  The one bounded wait; its clock is bash's, so a poll
# forks nothing but what COMMAND itself runs.
wait_until() {
	local limit=$1 whole frac start=${EPOCHREALTIME//[!0-9]/} deadline
	shift
	whole=${limit%.*} frac=
	[[ $limit == *.* ]] && frac=${limit#*.}
	frac=${frac}000000
	deadline=$((10#$start + (10#${whole:-0} * 1000000 + 10#${frac:0:6}) * TIME_SCALE))
	until "$@"; do
		((${EPOCHREALTIME//[!0-9]/} < deadline)) || return 1
		nap 0.02
	done
}

# nap SECONDS: sleep without starting a process, as a read that times out on
# a FIFO no one writes (opened for the nap only, so no program inherits it).
# Outside a Bats run, where there is no run directory for the FIFO, sleep.
nap() {
	local fd
	if [[ -z ${BATS_RUN_TMPDIR:-} ]]; then
		sleep "$1"
		return 0
	fi
	[[ -p $BATS_RUN_TMPDIR/nap ]] || mkfifo "$BATS_RUN_TMPDIR/nap" 2>/dev/null ||
		[[ -p $BATS_RUN_TMPDIR/nap ]] || {
		sleep "$1"
		return 0
	}
	exec {fd}<>"$BATS_RUN_TMPDIR/nap"
	read -r -t "$1" -u "$fd" _ || true
	exec {fd}>&-
}

# Succeed if process $1 has exited (gone, or a zombie waiting to be reaped).
exited() {
	local stat
	read -r stat 2>/dev/null <"/proc/$1/stat" || return 0
	# the state follows the command name, in parentheses, which may hold
	# spaces: skip past it
	stat=${stat##*) }
	[[ -z $stat || ${stat%% *} == Z ]]
}

# Process $1's CPU time so far (user + system, all threads), in clock ticks.
proc_cpu_ticks() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	# the command name, in parentheses, may hold spaces: skip past it
	stat=${stat##*) }
	awk '{ print $12 + $13 }' <<<"$stat"
}

# Process $1's runnable time so far, in ms: each thread's time on a CPU and
# waiting for one (/proc/PID/task/*/schedstat).  A thread that spins is
# runnable all the time, however little CPU a busy machine gives it; one
# that waits for an event is not.  Fails where the kernel keeps no schedstat.
proc_runnable_ms() {
	cat /proc/"$1"/task/*/schedstat 2>/dev/null |
		awk '{ ns += $1 + $2; n++ } END { if (!n) exit 1; printf "%d\n", ns / 1e6 }'
}

# Process $1's resident memory now and at its peak, in KiB.
proc_rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

# socket_memory PORT: the connected sockets whose local port is PORT (a
# server's), as "COUNT BYTES STOPPED": how many there are; the kernel
# memory they hold, from `ss -tm` (skmem's r, w and f: bytes received,
# bytes queued to send, and what is reserved for more, which is what
# net.ipv4.tcp_mem counts; the host-wide /proc/net/sockstat would count
# every other program's sockets too); and how many hold both input the
# server has not read and output its client has not taken.
socket_memory() {
	ss -tmnH state established "( sport = :$1 )" | awk '
		$1 ~ /^[0-9]+$/ && NF >= 4 { n++; if ($1 > 0 && $2 > 0) stopped++ }
		/skmem:\(/ {
			s = $0
			sub(/.*skmem:\(/, "", s)
			sub(/\).*/, "", s)
			k = split(s, a, ",")
			for (i = 1; i <= k; i++) {
				key = a[i]
				sub(/[0-9]+$/, "", key)
				v = substr(a[i], length(key) + 1) + 0
				if (v > 2147483647) # ss prints a signed int unsigned
					v -= 4294967296
				if (key == "r" || key == "w" || key == "f")
					bytes += v
			}
		}
		END { printf "%d %d %d\n", n, bytes, stopped }'
}

# sockets_steady PORT N: for wait_until.  PORT has N sockets, each stopped
# (see socket_memory), and what they hold is what it was at the last look
# (_LAST_SOCKETS; empty it first), 300 ms before.
sockets_steady() {
	local now n stopped
	now=$(socket_memory "$1")
	read -r n _ stopped <<<"$now"
	if [[ $now == "${_LAST_SOCKETS:-}" ]] && ((n == $2 && stopped == $2)); then
		return 0
	fi
	_LAST_SOCKETS=$now
	nap 0.3
	return 1
}
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
		echo "no 'listening on' line after $(scaled "$limit")s" >&2
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
		echo "process $1 still running after $(scaled "$2")s" >&2
		return 1
	fi
	STATUS=0
	wait "$1" 2>/dev/null || STATUS=$?
	# shellcheck disable=SC2034 # for the caller
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
	# shellcheck disable=SC2034 # for the caller
	STATUS=killed
}

# limit_files FILES PROGRAM WRAPPER: write WRAPPER, a script that runs
# PROGRAM, its arguments passed on, with at most FILES descriptors.
limit_files() {
	printf '#!/bin/sh\nulimit -n %d && exec "%s" "$@"\n' "$1" "$2" >"$3" &&
		chmod +x "$3"
}

# hold_echoed N WAIT: open N connections to the server on PORT, one after
# the other, each sending "client I" and getting it back within WAIT seconds
# before the next connects; their descriptors are added to HELD, open.
# Returns 1 at the first one not echoed, with its number in HELD_FAILED.
hold_echoed() {
	local i fd reply
	for ((i = 0; i < $1; i++)); do
		# shellcheck disable=SC2034 # the caller reads it
		HELD_FAILED=$i
		exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" || return 1
		HELD+=("$fd")
		printf 'client %d\n' "$i" >&"$fd"
		IFS= read -r -t "$2" reply <&"$fd" || return 1
		[[ $reply == "client $i" ]] || return 1
	done
}

# close_held [N]: close the first N connections in HELD (all by default).
close_held() {
	local n=${1:-${#HELD[@]}} fd
	for fd in "${HELD[@]:0:n}"; do
		exec {fd}>&-
	done
	HELD=("${HELD[@]:n}")
}

# cannot_run REASON: in a Bats test, skip it with REASON (a tool or a
# permission this machine lacks); under CI (.ci/run sets CI=true) fail
# instead, so that a proof that never ran cannot count as passed.
cannot_run() {
	if [[ ${CI:-} == true ]]; then
		echo "cannot run under CI: $1" >&2
		return 1
	fi
	skip "$1"
}

# need COMMAND PACKAGE: cannot_run unless COMMAND is installed.
need() {
	command -v "$1" >/dev/null || cannot_run "needs $1 (apt-get install $2)"
}
