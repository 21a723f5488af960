#!/usr/bin/env bash
# bench.sh: `make bench`, the chapters' servers measured against each other.
#
# Every chapter server that is built, a bare epoll loop (test/epoll_echo) and,
# when node is installed, a Node.js echo server (test/node_echo.js) take the
# same loads from test/loadgen.  A case runs in rounds; in each round every
# server runs once, in the same order (A B C A B C ...), freshly started on a
# free port, so the drift of a noisy machine spreads over all of them, and the
# ratio to epoll_echo is taken within each round.  It prints a Markdown table
# and writes test/results/latest/: bench.csv (every run), summary.csv, bench.md
# (the table) and bench.svg (a chart, if gnuplot is installed).
#
#   BENCH_QUICK=1        a subset that takes about a minute
#   BENCH_THREADS=N      -t for the threaded servers (default: nproc)
#   BENCH_SECONDS=S      measured seconds per ping-pong run (default 2)
#   BENCH_ROUNDS=N       rounds per case (default 3, and 4 for 64-byte
#                        ping-pong, whose CPU time per message is small)
#   BENCH_SERVERS="..."  only these servers (names as in the table)
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1

LOADGEN=test/loadgen
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
[[ -x $LOADGEN && -x test/epoll_echo ]] ||
	die "build the tools first: make test/loadgen test/epoll_echo"

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

# The servers, in the order each round runs them.  From chapter 3 on the
# servers take -t (DESIGN.md), and so does epoll_echo.
NAMES=()
declare -A CMD
add_server() { # NAME COMMAND...
	if [[ -n ${BENCH_SERVERS:-} && " $BENCH_SERVERS " != *" $1 "* ]]; then
		return
	fi
	NAMES+=("$1")
	CMD[$1]=${*:2}
}
for dir in step*/; do
	dir=${dir%/} name=${dir%%-*} n=${name#step}
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
add_server "$REF" "test/epoll_echo -t $THREADS"
if command -v node >/dev/null; then
	add_server node "node test/node_echo.js"
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
	stop_server
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Succeed if process $1 has exited (gone, or a zombie not yet reaped).
exited() {
	local state
	state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 0
	[[ -z $state || $state == Z ]]
}

# start_server NAME: start it on a free port; set SPID and SPORT.
start_server() {
	local -a cmd
	local line='' i
	read -ra cmd <<<"${CMD[$1]}"
	: >"$TMP/server.out"
	"${cmd[@]}" -a 127.0.0.1 -p 0 >"$TMP/server.out" 2>"$TMP/server.err" 3>&- &
	SPID=$!
	for ((i = 0; i < START_LIMIT * 50; i++)); do
		line=$(grep -m1 '^listening on ' "$TMP/server.out") && break
		exited "$SPID" && break
		sleep 0.02
	done
	SPORT=${line##*:}
	if [[ ! $SPORT =~ ^[0-9]+$ ]]; then
		say "bench: $1 did not start:" "$(tail -3 "$TMP/server.err")"
		stop_server
		return 1
	fi
}

# Stop the server: SIGTERM, then SIGKILL after STOP_LIMIT seconds.  Set
# SERVER_NOTE if it had died by itself or had to be killed.
stop_server() {
	local i status
	SERVER_NOTE=
	[[ -n $SPID ]] || return 0
	if exited "$SPID"; then
		wait "$SPID" 2>/dev/null
		status=$?
		SERVER_NOTE="server exited by itself (status $status)"
		SPID=
		return 0
	fi
	kill -TERM "$SPID" 2>/dev/null
	for ((i = 0; i < STOP_LIMIT * 50; i++)); do
		exited "$SPID" && break
		sleep 0.02
	done
	if ! exited "$SPID"; then
		kill -KILL "$SPID" 2>/dev/null
		SERVER_NOTE=killed
	fi
	wait "$SPID" 2>/dev/null
	SPID=
}

# Stop a load generator left running in the background.
stop_loadgen() {
	[[ -n $LPID ]] || return 0
	kill -TERM "$LPID" 2>/dev/null
	wait "$LPID" 2>/dev/null
	LPID=
}

# The server's CPU time so far (user + system, all threads), in clock ticks.
cpu_ticks() {
	local stat f
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || {
		echo 0
		return
	}
	read -ra f <<<"${stat##*) }"
	echo $((f[11] + f[12]))
}

# The server's resident memory, in KiB.
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null; }

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

# Run loadgen idle in the background: once every connection is open and has
# echoed (or starved), read the server's memory, then let the connections go.
run_idle() { # ARGS...
	local i
	"$LOADGEN" -p "$SPORT" -T 60 idle "$@" >"$TMP/lg.out" 2>"$TMP/lg.err" 3>&- &
	LPID=$!
	for ((i = 0; i < 70 * 50; i++)); do
		grep -q '^RESULT ' "$TMP/lg.out" && break
		exited "$LPID" && break
		sleep 0.02
	done
	RSS_AFTER=$(rss_kb "$SPID")
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

CSV_HEADER="case,label,mode,round,server,status,conns,msgs_per_s,mb_per_s,p50_us,p99_us,p999_us,starved,errors,mismatches,lost,total_msgs,bytes,server_cpu_ms,cpu_per_unit,loadgen_cpu,open,echoed,connect_ms,echo_ms,rss_before_kb,rss_after_kb,rss_per_conn_b"

# run_one CASE-LINE ROUND SERVER: one run, appended to the CSV.
run_one() {
	local id label mode rounds args round=$2 name=$3
	local -a opts
	local t0 t1 rss0 status cpu_ms unit rss_per note
	IFS='|' read -r id label mode rounds args <<<"$1"
	read -ra opts <<<"$args"
	R=()
	RSS_AFTER=
	rss0='' t0=0 t1=0
	: >"$TMP/lg.out"
	if ! start_server "$name"; then
		status=nostart
	else
		rss0=$(rss_kb "$SPID")
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
		stop_server
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
	printf '%s\n' "$id,$label,$mode,$round,$name,$status,${R[conns]:-},${R[msgs_per_s]:-},${R[mb_per_s]:-},${R[p50_us]:-},${R[p99_us]:-},${R[p999_us]:-},${R[starved]:-},${R[errors]:-},${R[mismatches]:-},${R[lost]:-},${R[total_msgs]:-},${R[bytes]:-},$cpu_ms,$unit,${R[cpu]:-},${R[open]:-},${R[echoed]:-},${R[connect_ms]:-},${R[echo_ms]:-},$rss0,$RSS_AFTER,$rss_per" >>"$CSV"

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
printf '%s\n' "$CSV_HEADER" >"$CSV"
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

# The table: medians over the rounds, (min–max), and per-round ratios to REF.
CPU_MODEL=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
LIBEVENT=$(pkg-config --modversion libevent 2>/dev/null || echo unknown)
{
	echo "## make bench, $DATE"
	echo
	echo "- machine: $(nproc) CPUs (nproc), ${CPU_MODEL:-unknown CPU}, Linux $(uname -r); libevent $LIBEVENT$([[ $QUICK == 1 ]] && echo '; BENCH_QUICK=1 (a subset)')"
	printf -- '- servers:'
	sep=' '
	for name in "${NAMES[@]}"; do
		printf '%s%s = %s' "$sep" "\`$name\`" "\`${CMD[$name]}\`"
		sep='; '
	done
	echo
	echo "- every server is started afresh for every run; the servers take turns round by round; a cell is the median over the rounds with (min–max); \"× $REF\" is the ratio to $REF in the same round (throughput: higher is better; CPU and memory: lower is better)"
	echo "- loadgen runs on the same $(nproc) CPUs as the server: where its CPU is near 100 %, it was the limit, not the server. Starved: connections that never got an echo (the most in any round). Server CPU: user + system time from /proc/PID/stat over the run, per echoed message (including the warm-up) or per GB."
	echo "- server RSS per connection: the server's VmRSS with every connection open and echoed, minus VmRSS before the first connection, divided by the connections; kernel socket buffers are not in it."
	echo
} >"$TMP/head.md"

awk -F, -v ref="$REF" -v chart="$TMP/chart.dat" -v summary="$OUT/summary.csv" '
function add(a, k, v) { a[k] = (k in a) ? a[k] " " v : v }
# Sort the numbers in string s; set S["med"], S["min"], S["max"], S["n"].
function stats(s, n, i, j, x, v) {
	n = split(s, v, " ")
	for (i = 2; i <= n; i++) {
		x = v[i] + 0
		for (j = i - 1; j >= 1 && v[j] + 0 > x; j--)
			v[j + 1] = v[j]
		v[j + 1] = x
	}
	S["n"] = n
	if (n == 0)
		return 0
	S["min"] = v[1] + 0
	S["max"] = v[n] + 0
	S["med"] = n % 2 ? v[(n + 1) / 2] + 0 : (v[n / 2] + v[n / 2 + 1]) / 2
	return n
}
function num(v, d) {
	if (v >= 1e6) return sprintf("%.2fM", v / 1e6)
	if (v >= 1e4) return sprintf("%.1fk", v / 1e3)
	return sprintf("%." d "f", v)
}
function cell(s, d, unit) {
	if (!stats(s)) return "–"
	return num(S["med"], d) unit " (" num(S["min"], d) "–" num(S["max"], d) ")"
}
function bytes(v) {
	return v >= 10240 ? sprintf("%.1f KiB", v / 1024) : sprintf("%.0f B", v)
}
NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
{
	c = $col["case"]; s = $col["server"]; r = $col["round"]; m = $col["mode"]
	if (!(c in seen)) { seen[c] = 1; cases[++nc] = c; label[c] = $col["label"]; mode[c] = m }
	if (!(s in seens)) { seens[s] = 1; servers[++ns] = s }
	k = c SUBSEP s
	runs[k]++
	err[k] += $col["errors"]; mis[k] += $col["mismatches"]; lost[k] += $col["lost"]
	if ($col["starved"] + 0 > starved[k]) starved[k] = $col["starved"] + 0
	if ($col["status"] != "ok") { bad[k]++; why[k] = $col["status"]; next }
	v = m == "pingpong" ? $col["msgs_per_s"] : m == "bulk" ? $col["mb_per_s"] : $col["rss_per_conn_b"]
	if (v == "") next
	val[c, s, r] = v; add(V, k, v)
	if ($col["cpu_per_unit"] != "") { cpu[c, s, r] = $col["cpu_per_unit"]; add(CPU, k, $col["cpu_per_unit"]) }
	add(P50, k, $col["p50_us"]); add(P99, k, $col["p99_us"]); add(P999, k, $col["p999_us"])
	add(LG, k, $col["loadgen_cpu"] * 100)
	add(ECHOED, k, $col["echoed"]); add(OPEN, k, $col["open"]); add(CONNS, k, $col["conns"])
	add(CONN, k, $col["connect_ms"]); add(ECHO, k, $col["echo_ms"])
	rounds[c] = rounds[c] " " r
}
END {
	print "case,server,runs,failed_runs,value_median,value_min,value_max,ratio_median,ratio_min,ratio_max,cpu_median,cpu_ratio_median,p50_us,p99_us,p999_us,starved_max,errors,mismatches,lost" > summary
	for (i = 1; i <= nc; i++) {
		c = cases[i]
		nr = split(rounds[c], rr, " ")
		for (j = 1; j <= ns; j++) {
			s = servers[j]; k = c SUBSEP s
			delete seenr
			for (q = 1; q <= nr; q++) {
				r = rr[q]
				if (r in seenr) continue
				seenr[r] = 1
				if ((c, s, r) in val && (c, ref, r) in val && val[c, ref, r] > 0)
					add(RATIO, k, val[c, s, r] / val[c, ref, r])
				if ((c, s, r) in cpu && (c, ref, r) in cpu && cpu[c, ref, r] > 0)
					add(CRATIO, k, cpu[c, s, r] / cpu[c, ref, r])
			}
		}
	}
	hdr1 = 0; hdr2 = 0
	for (i = 1; i <= nc; i++) {
		c = cases[i]; m = mode[c]
		if (m == "idle") continue
		if (!hdr1++) {
			print "| case | server | throughput | × " ref " | latency p50 / p99 / p99.9 µs | server CPU | CPU × " ref " | loadgen CPU | starved | problems |"
			print "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
		}
		for (j = 1; j <= ns; j++) {
			s = servers[j]; k = c SUBSEP s
			if (!(k in runs)) continue
			t = cell(V[k], 0, m == "pingpong" ? " msg/s" : " MB/s")
			lat = "–"
			if (m == "pingpong" && stats(P50[k])) {
				lat = sprintf("%.0f", S["med"])
				stats(P99[k]); lat = lat sprintf(" / %.0f", S["med"])
				stats(P999[k]); lat = lat sprintf(" / %.0f", S["med"])
			}
			cu = stats(CPU[k]) ? sprintf("%.2f", S["med"]) (m == "pingpong" ? " µs/msg" : " s/GB") : "–"
			lg = stats(LG[k]) ? sprintf("%.0f %%", S["med"]) : "–"
			print "| " label[c] " | " s " | " t " | " cell(RATIO[k], 2, "") " | " lat " | " cu " | " cell(CRATIO[k], 2, "") " | " lg " | " (starved[k] + 0) " | " problems(k) " |"
			row(c, s, k, m)
		}
	}
	for (i = 1; i <= nc; i++) {
		c = cases[i]
		if (mode[c] != "idle") continue
		if (!hdr2++) {
			print ""
			print "| case | server | echoed | connect / echo ms | server RSS per connection | × " ref " | problems |"
			print "| --- | --- | ---: | ---: | ---: | ---: | --- |"
		}
		for (j = 1; j <= ns; j++) {
			s = servers[j]; k = c SUBSEP s
			if (!(k in runs)) continue
			e = stats(ECHOED[k]) ? S["min"] : "–"
			o = stats(CONNS[k]) ? S["max"] : "–"
			e = e " of " o
			if (stats(OPEN[k]) && S["min"] < o) e = e " (" S["min"] " connected)"
			ce = stats(CONN[k]) ? S["med"] : "–"
			ce = ce " / " (stats(ECHO[k]) ? S["med"] : "–")
			rs = stats(V[k]) ? bytes(S["med"]) " (" bytes(S["min"]) "–" bytes(S["max"]) ")" : "–"
			print "| " label[c] " | " s " | " e " | " ce " | " rs " | " cell(RATIO[k], 2, "") " | " problems(k) " |"
			row(c, s, k, "idle")
		}
	}
	# The chart: throughput ratios of every server but the reference.
	printf "case" > chart
	for (j = 1; j <= ns; j++) if (servers[j] != ref) printf "\t%s\t\t", servers[j] > chart
	printf "\n" > chart
	for (i = 1; i <= nc; i++) {
		c = cases[i]
		if (mode[c] == "idle") continue
		# Short labels fit under the bars without turning.
		l = label[c]
		sub(/^ping-pong /, "", l); sub(/ in flight/, "", l); sub(/ conns?$/, "", l)
		printf "%s", l > chart
		for (j = 1; j <= ns; j++) {
			s = servers[j]
			if (s == ref) continue
			# A server that starved connections has no comparable rate.
			if (!starved[c SUBSEP s] && stats(RATIO[c SUBSEP s]))
				printf "\t%.3f\t%.3f\t%.3f", S["med"], S["min"], S["max"] > chart
			else printf "\t-\t-\t-" > chart
		}
		printf "\n" > chart
	}
}
function problems(k, p) {
	p = ""
	if (bad[k]) p = p sprintf("%d of %d runs failed (%s); ", bad[k], runs[k], why[k])
	if (err[k]) p = p err[k] " errors; "
	if (mis[k]) p = p mis[k] " mismatches; "
	if (lost[k]) p = p lost[k] " bytes lost; "
	return p == "" ? "–" : substr(p, 1, length(p) - 2)
}
function row(c, s, k, m, out) {
	out = c "," s "," runs[k] "," (bad[k] + 0)
	if (stats(V[k])) out = out "," S["med"] "," S["min"] "," S["max"]; else out = out ",,,"
	if (stats(RATIO[k])) out = out "," S["med"] "," S["min"] "," S["max"]; else out = out ",,,"
	out = out "," (stats(CPU[k]) ? S["med"] : "") "," (stats(CRATIO[k]) ? S["med"] : "")
	out = out "," (m == "pingpong" && stats(P50[k]) ? S["med"] : "")
	out = out "," (m == "pingpong" && stats(P99[k]) ? S["med"] : "")
	out = out "," (m == "pingpong" && stats(P999[k]) ? S["med"] : "")
	print out "," (starved[k] + 0) "," (err[k] + 0) "," (mis[k] + 0) "," (lost[k] + 0) > summary
}' "$CSV" >"$TMP/table.md"

{
	cat "$TMP/head.md" "$TMP/table.md"
	echo
	for name in "${!KILLED[@]}"; do
		echo "- $name did not exit within ${STOP_LIMIT} s of SIGTERM in ${KILLED[$name]} runs and was killed."
	done
	echo "- $TOTAL runs in $((ELAPSED / 60)) min $((ELAPSED % 60)) s."
} >"$OUT/bench.md"
echo
cat "$OUT/bench.md"

if command -v gnuplot >/dev/null; then
	nsrv=$(head -1 "$TMP/chart.dat" | awk -F'\t' '{ print (NF - 1) / 3 }')
	titles=$(head -1 "$TMP/chart.dat" | awk -F'\t' '{ for (i = 2; i <= NF; i += 3) printf "%s ", $i }')
	if ((nsrv > 0)); then
		gnuplot <<EOF 2>"$TMP/gnuplot.err" || say "bench: gnuplot failed: $(head -3 "$TMP/gnuplot.err")"
set encoding utf8
set terminal svg size 1000,560 dynamic noenhanced font "sans,12"
set output "$OUT/bench.svg"
set datafile separator "\t"
set datafile missing "-"
set title "Throughput relative to $REF in the same round (median, bars: min–max over rounds)\nleft out: a server in a case where it starved connections. $DATE, $(nproc) CPUs, libevent $LIBEVENT"
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.75 border -1
set ylabel "× $REF"
set yrange [0:*]
set grid ytics
set key top right
set xtics scale 0
set xlabel "ping-pong: message size × connections, or × messages in flight × connections; bulk: one stream"
set arrow from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 lw 1.5
titles = "$titles"
plot for [i=1:$nsrv] "$TMP/chart.dat" every ::1 using (column(3*i-1)):(column(3*i)):(column(3*i+1)):xtic(1) title word(titles, i)
EOF
		[[ -s $OUT/bench.svg ]] && say "bench: chart written to $OUT/bench.svg"
	fi
else
	say "bench: gnuplot is not installed: no chart (apt-get install gnuplot-nox)"
fi
say "bench: every run in $CSV, the summary in $OUT/summary.csv, the table in $OUT/bench.md"

# Fail if any server lost or changed a byte, or if a run of the final
# server or of the reference failed.  Starving, and chapters 3 and 4 dying
# with thousands of clients, are not failures of the bench: they are the
# flaws the table reports.
if awk -F, 'NR > 1 && ($15 + $16 > 0 ||
	($5 ~ /^(step5|epoll_echo)$/ && ($6 != "ok" || $14 > 0))) { bad = 1 }
	END { exit !bad }' "$CSV"; then
	say "bench: a run lost or changed data, or the final server failed: see the problems column"
	exit 1
fi
if awk -F, 'NR > 1 && ($6 != "ok" || $14 > 0) { bad = 1 } END { exit !bad }' "$CSV"; then
	say "bench: some runs of the earlier chapters failed, as their flaws predict: see the problems column"
fi
exit 0
