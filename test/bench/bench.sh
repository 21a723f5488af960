#!/usr/bin/env bash
# bench.sh: `make bench`, the chapters' servers measured against each other.
#
# Every chapter server that is built, a bare epoll loop (test/tools/epoll_echo) and,
# when node is installed, a Node.js echo server (test/bench/node_echo.js) take the
# same loads from test/tools/loadgen.  A case runs in rounds; in each round every
# server runs once, in the same order (A B C A B C ...), freshly started on a
# free port, so the drift of a noisy machine spreads over all of them, and the
# ratio to epoll_echo is taken within each round.  It writes every run to
# test/results/latest/bench.csv; test/bench/bench-report.sh then prints the table
# and writes summary.csv, bench.md (the table) and bench.svg (the chart, if
# gnuplot is installed) next to it.
#
#   BENCH_QUICK=1        a subset that takes about a minute
#   BENCH_THREADS=N      -t for the threaded servers (default: nproc)
#   BENCH_SECONDS=S      measured seconds per ping-pong run (default 2)
#   BENCH_ROUNDS=N       rounds per case (default 3, and 4 for 64-byte
#                        ping-pong, whose CPU time per message is small)
#   BENCH_SERVERS="..."  only these servers (names as in the table)
#   BENCH_CASES="..."    only these kinds of case: pingpong, bulk, idle
#   BENCH_STAGES="N:K ..."  also measure chapter N as it is after its patch K,
#                        as server stepN-K, just before chapter N (default
#                        "5:1": per-thread bases with bufferevents, between
#                        chapter 4's threading model and chapter 5's hot
#                        path); built by test/proofs/patches.sh in test/stages/
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1

LOADGEN=test/tools/loadgen
REF=epoll_echo
OUT=test/results/latest
QUICK=${BENCH_QUICK:-0}
THREADS=${BENCH_THREADS:-$(nproc)}
HZ=$(getconf CLK_TCK)
START_LIMIT=10 # seconds a server may take to print its line
STOP_LIMIT=1   # seconds between SIGTERM and SIGKILL

say() { printf '%s\n' "$*" >&2; }
die() {
	say "bench: $*"
	exit 2
}

[[ $THREADS =~ ^[1-9][0-9]*$ ]] || die "BENCH_THREADS must be a positive number"
[[ -x $LOADGEN && -x test/tools/epoll_echo ]] ||
	die "build the tools first: make test/tools/loadgen test/tools/epoll_echo"

# IDLE_WAIT: how long idle waits for the connects, then for the echoes; a
# server that serves T clients at a time makes it wait that long.
if [[ $QUICK == 1 ]]; then
	SECS=${BENCH_SECONDS:-0.5} WARM=0.25 ROUNDS=${BENCH_ROUNDS:-3}
	ROUNDS64=$ROUNDS BULK_MIB=128 IDLE_CONNS=2000 IDLE_WAIT=2
else
	SECS=${BENCH_SECONDS:-2} WARM=0.5 ROUNDS=${BENCH_ROUNDS:-3}
	ROUNDS64=${BENCH_ROUNDS:-4} BULK_MIB=512 IDLE_CONNS=10000 IDLE_WAIT=5
fi

# The cases: id|label|mode|rounds|loadgen's mode options.  Labels have no
# commas: they go into the CSV as they are.
CASES=()
pingpong_case() { # CONNS SIZE INFLIGHT ROUNDS LABEL
	CASES+=("pp$2x$1x$3|$5|pingpong|$4|-c $1 -s $2 -P $3 -d $SECS -W $WARM")
}
if [[ $QUICK == 1 ]]; then
	pingpong_case 100 64 1 "$ROUNDS64" "ping-pong 64 B × 100 conns"
else
	pingpong_case 1 64 1 "$ROUNDS64" "ping-pong 64 B × 1 conn"
	pingpong_case 10 64 1 "$ROUNDS64" "ping-pong 64 B × 10 conns"
	pingpong_case 100 64 1 "$ROUNDS64" "ping-pong 64 B × 100 conns"
	pingpong_case 1000 64 1 "$ROUNDS64" "ping-pong 64 B × 1000 conns"
fi
pingpong_case 100 4096 4 "$ROUNDS" "ping-pong 4 KiB × 4 in flight × 100 conns"
CASES+=("bulk$BULK_MIB|bulk $BULK_MIB MiB × 1 conn|bulk|$ROUNDS|-c 1 -n $BULK_MIB")

# Connections need descriptors: raise the soft limit for the servers too.
ulimit -n "$(ulimit -Hn)" 2>/dev/null
NOFILE=$(ulimit -n)
if [[ $NOFILE != unlimited ]] && ((NOFILE < IDLE_CONNS + 100)); then
	say "bench: skipping the idle case: the open-file limit is $NOFILE," \
		"too low for $IDLE_CONNS connections (raise ulimit -Hn)"
else
	CASES+=("idle$IDLE_CONNS|$IDLE_CONNS idle conns|idle|$ROUNDS|-c $IDLE_CONNS -s 16 -w $IDLE_WAIT -H 60")
fi
if [[ -n ${BENCH_CASES:-} ]]; then
	for k in $BENCH_CASES; do
		[[ $k == @(pingpong|bulk|idle) ]] ||
			die "BENCH_CASES: no kind of case is named '$k': the kinds are pingpong, bulk and idle"
	done
	KEPT=()
	for c in "${CASES[@]}"; do
		IFS='|' read -r _ _ mode _ _ <<<"$c"
		[[ " $BENCH_CASES " != *" $mode "* ]] || KEPT+=("$c")
	done
	((${#KEPT[@]} > 0)) || die "BENCH_CASES=$BENCH_CASES: no such case in this run"
	CASES=("${KEPT[@]}")
fi

# The servers, in the order each round runs them.  From chapter 3 on the
# servers take -t, and so does epoll_echo.
NAMES=()
declare -A CMD
add_server() { # NAME COMMAND...
	if [[ -n ${BENCH_SERVERS:-} && " $BENCH_SERVERS " != *" $1 "* ]]; then
		return
	fi
	NAMES+=("$1")
	CMD[$1]=${*:2}
}
# add_stage N K: build chapter N after its patch K and add it as stepN-K.
add_stage() {
	local sdir=test/stages/step$1-$2
	rm -rf "$sdir"
	if ! bash test/proofs/patches.sh apply "$1" "$2" "$sdir" >/dev/null ||
		! make -s -C "$sdir" >/dev/null 2>&1; then
		say "bench: chapter $1 after patch $2 does not build: skipped"
		return
	fi
	add_server "step$1-$2" "$sdir/echoserver -t $THREADS"
}
for dir in step*/; do
	dir=${dir%/} name=${dir%%-*} n=${name#step}
	for stage in ${BENCH_STAGES-5:1}; do
		[[ ${stage%%:*} == "$n" ]] && add_stage "$n" "${stage#*:}"
	done
	if [[ -x $dir/echoserver ]]; then
		if [[ $n =~ ^[0-9]+$ ]] && ((n >= 3)); then
			add_server "$name" "$dir/echoserver -t $THREADS"
		else
			add_server "$name" "$dir/echoserver"
		fi
	elif [[ -f $dir/echoserver.c ]]; then
		say "bench: $dir/echoserver is not built: skipped (run make)"
	fi
done
add_server "$REF" "test/tools/epoll_echo -t $THREADS"
if command -v node >/dev/null; then
	add_server node "node test/bench/node_echo.js"
else
	say "bench: node is not installed: the Node.js server is skipped"
fi
((${#NAMES[@]} > 0)) || die "no server to measure"
[[ " ${NAMES[*]} " == *" $REF "* ]] ||
	say "bench: $REF is not among the servers: no ratios"

TMP=$(mktemp -d)
SPID=
LPID=
# shellcheck disable=SC2317 # called by the trap
cleanup() {
	stop_loadgen
	server stop
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# shellcheck source=test/server.bash
source "$ROOT/test/server.bash"

# server start NAME: start NAME on a free port; set SPID and SPORT.
# server stop: SIGTERM, then SIGKILL after STOP_LIMIT seconds; set
# SERVER_NOTE if it had died by itself or had to be killed.
server() {
	local -a cmd
	SERVER_NOTE=
	if [[ $1 == start ]]; then
		read -ra cmd <<<"${CMD[$2]}"
		if server_start "$START_LIMIT" "$TMP/server.out" "$TMP/server.err" \
			"${cmd[@]}" -a 127.0.0.1 -p 0 2>/dev/null; then
			SPID=$SERVER_PID SPORT=$PORT
			return 0
		fi
		SPID=$SERVER_PID
		say "bench: $2 did not start:" "$(tail -3 "$TMP/server.err")"
	fi
	[[ -n $SPID ]] || return 0
	if exited "$SPID"; then
		server_stop "$SPID" 0
		SERVER_NOTE="server exited by itself (status $STATUS)"
	else
		server_stop "$SPID" "$STOP_LIMIT"
		[[ $STATUS != killed ]] || SERVER_NOTE=killed
	fi
	SPID=
	[[ $1 == stop ]]
}

# Stop a load generator left running in the background.
stop_loadgen() {
	[[ -n $LPID ]] || return 0
	kill -TERM "$LPID" 2>/dev/null
	wait "$LPID" 2>/dev/null
	LPID=
}

# The server's CPU time so far (user + system, all threads), in clock ticks.
cpu_ticks() { proc_cpu_ticks "$1" || echo 0; }

# Read loadgen's RESULT line from file $1 into R.
declare -A R
parse_result() {
	local line kv
	local -a kvs
	R=()
	line=$(grep -m1 '^RESULT ' "$1") || return 1
	read -ra kvs <<<"${line#RESULT }"
	for kv in "${kvs[@]}"; do
		R[${kv%%=*}]=${kv#*=}
	done
}

# loadgen has printed its result, or has exited.
_loadgen_done() { grep -q '^RESULT ' "$1" || exited "$2"; }

# Run loadgen idle in the background: once every connection is open and has
# echoed (or starved), read the server's memory, then let the connections go.
run_idle() { # ARGS...
	"$LOADGEN" -p "$SPORT" -T 60 idle "$@" >"$TMP/lg.out" 2>"$TMP/lg.err" 3>&- &
	LPID=$!
	wait_until 70 _loadgen_done "$TMP/lg.out" "$LPID"
	RSS_AFTER=$(proc_rss_kb "$SPID")
	if grep -q '^RESULT ' "$TMP/lg.out"; then
		stop_loadgen
		# What its exit status would have been, had we let it finish.
		LG_STATUS=1
		grep -q '^RESULT .* errors=0 mismatches=0 ' "$TMP/lg.out" && LG_STATUS=0
	else
		exited "$LPID" || kill -KILL "$LPID" 2>/dev/null
		wait "$LPID" 2>/dev/null
		LG_STATUS=$?
		LPID=
	fi
}

# bench.csv's columns: loadgen's RESULT keys (its cpu is loadgen_cpu),
# and what we measure of the server.
COLUMNS=(case label mode round server status conns msgs_per_s mb_per_s
	p50_us p99_us p999_us starved errors mismatches lost total_msgs bytes
	server_cpu_ms cpu_per_unit loadgen_cpu open echoed connect_ms echo_ms
	rss_before_kb rss_after_kb rss_per_conn_b)

# run_one CASE-LINE ROUND SERVER: one run, appended to the CSV.
run_one() {
	local id label mode rounds args round=$2 name=$3
	local -a opts
	local t0 t1 rss0 status cpu_ms unit rss_per note line col
	IFS='|' read -r id label mode rounds args <<<"$1"
	read -ra opts <<<"$args"
	R=()
	RSS_AFTER=
	rss0='' t0=0 t1=0
	: >"$TMP/lg.out"
	if ! server start "$name"; then
		status=nostart
	else
		rss0=$(proc_rss_kb "$SPID")
		t0=$(cpu_ticks "$SPID")
		if [[ $mode == idle ]]; then
			run_idle "${opts[@]}"
		else
			# In the background: a trap runs at once during "wait".
			timeout -k 5 90 "$LOADGEN" -p "$SPORT" -T 60 "$mode" \
				"${opts[@]}" >"$TMP/lg.out" 2>"$TMP/lg.err" 3>&- &
			LPID=$!
			wait "$LPID"
			LG_STATUS=$?
			LPID=
		fi
		t1=$(cpu_ticks "$SPID")
		server stop
		status=ok
		((LG_STATUS == 0)) || status="loadgen exit $LG_STATUS"
		parse_result "$TMP/lg.out" || status="no result (loadgen exit $LG_STATUS)"
		if [[ $status != ok ]]; then
			sed 's/^/    /' "$TMP/lg.err" | head -5 >&2
		fi
		if [[ $SERVER_NOTE == killed ]]; then
			KILLED[$name]=$((${KILLED[$name]:-0} + 1))
		elif [[ -n $SERVER_NOTE ]]; then
			status="$SERVER_NOTE"
		fi
	fi
	cpu_ms=$(((t1 - t0) * 1000 / HZ))
	unit=$(awk -v ms="$cpu_ms" -v m="${R[total_msgs]:-0}" \
		-v b="${R[bytes]:-0}" -v mode="$mode" 'BEGIN {
		if (mode == "pingpong" && m > 0) printf "%.3f", ms * 1000 / m
		else if (mode == "bulk" && b > 0) printf "%.3f", ms / 1000 / (b / 1e9)
	}')
	rss_per=$(awk -v a="${RSS_AFTER:-}" -v b="${rss0:-}" -v n="${R[open]:-0}" \
		'BEGIN { if (a != "" && b != "" && n > 0) printf "%.0f", (a - b) * 1024 / n }')
	R+=([case]=$id [label]=$label [mode]=$mode [round]=$round [server]=$name
		[status]=$status [server_cpu_ms]=$cpu_ms [cpu_per_unit]=$unit
		[loadgen_cpu]=${R[cpu]:-} [rss_before_kb]=$rss0
		[rss_after_kb]=$RSS_AFTER [rss_per_conn_b]=$rss_per)
	line=
	for col in "${COLUMNS[@]}"; do
		line+=${R[$col]:-},
	done
	printf '%s\n' "${line%,}" >>"$CSV"

	# One progress line.
	case $mode in
	pingpong) note="${R[msgs_per_s]:-?} msg/s, p99 ${R[p99_us]:-?} µs, server ${unit:-?} µs/msg" ;;
	bulk) note="${R[mb_per_s]:-?} MB/s, server ${unit:-?} s/GB" ;;
	idle) note="${R[echoed]:-?} of ${R[open]:-?} echoed, ${rss_per:-?} B/conn" ;;
	esac
	[[ ${R[starved]:-0} == 0 ]] || note+=", ${R[starved]} starved"
	[[ $status == ok ]] || note+=" [$status]"
	RUN=$((RUN + 1))
	printf '[%3d/%d %2d:%02d] %-42s round %d/%d  %-10s %s\n' "$RUN" "$TOTAL" \
		$(((SECONDS - BEGIN) / 60)) $(((SECONDS - BEGIN) % 60)) "$label" \
		"$round" "$rounds" "$name" "$note" >&2
}

mkdir -p "$OUT"
CSV=$OUT/bench.csv
(IFS=,; printf '%s\n' "${COLUMNS[*]}") >"$CSV"
declare -A KILLED
TOTAL=0
RUN=0
for c in "${CASES[@]}"; do
	IFS='|' read -r _ _ _ rounds _ <<<"$c"
	TOTAL=$((TOTAL + rounds * ${#NAMES[@]}))
done
BEGIN=$SECONDS
DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
say "bench: ${#CASES[@]} cases, $TOTAL runs; servers: ${NAMES[*]}"

for c in "${CASES[@]}"; do
	IFS='|' read -r _ _ _ rounds _ <<<"$c"
	for ((round = 1; round <= rounds; round++)); do
		for name in "${NAMES[@]}"; do
			run_one "$c" "$round" "$name"
		done
	done
done
ELAPSED=$((SECONDS - BEGIN))

# The report: the table, summary.csv and the chart.
notes=
for name in "${!KILLED[@]}"; do
	notes+="- $name did not exit within ${STOP_LIMIT} s of SIGTERM in ${KILLED[$name]} runs and was killed."$'\n'
done
notes+="- $TOTAL runs in $((ELAPSED / 60)) min $((ELAPSED % 60)) s."
servers=
for name in "${NAMES[@]}"; do
	servers+="$name ${CMD[$name]}"$'\n'
done
final=$(printf '%s\n' "${NAMES[@]}" | grep '^step' | tail -1)
REPORT_DATE=$DATE REPORT_REF=$REF REPORT_FINAL=$final REPORT_SERVERS=$servers \
	REPORT_NOTES=$notes BENCH_QUICK=$QUICK bash test/bench/bench-report.sh "$OUT"
