#!/usr/bin/env bash
# attack.sh: the attack lab.  Hostile clients (test/tools/attack, test/tools/echoclient)
# meet an echo server, one attack at a time, each on a fresh server on
# 127.0.0.1 and a free port; one line per attack says whether the server
# held or broke, with the figure that decided it.
#
#   attack.sh STEP [SERVER]   chapter STEP's server, or SERVER built from it
#                             (make attack STEP=N [ECHOSERVER=path])
#   ATTACK="NAME ..."         only these attacks (make attack ATTACK=...):
#                             slowloris half-close late-byte reset-storm
#                             churn fd-exhaustion trickle flood
#                             low-fd-flood backlog zero-window cut-echo
#                             kernel-memory
#
# Every client and every wait is bounded; every server is stopped.  Exit 0
# when every attack held, 3 when one broke, 1 if one could not run, 2 on a
# usage error.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=test/server.bash
source "$ROOT/test/server.bash"

[[ $# -ge 1 && $1 =~ ^[1-9]$ ]] || {
	sed -n '/^#   attack.sh/,/^#$/p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}
STEP=$1
ALL="slowloris half-close late-byte reset-storm churn fd-exhaustion trickle flood low-fd-flood backlog zero-window cut-echo kernel-memory"
ATTACKS=${ATTACK:-$ALL}
for a in $ATTACKS; do
	[[ " $ALL " == *" $a "* ]] || {
		echo "attack.sh: no attack named '$a'; the attacks: $ALL" >&2
		exit 2
	}
done
SERVER=${2:-$ROOT/$(cd "$ROOT" && ls -d "step$STEP-"* | head -1)/echoserver}
[[ -x $SERVER ]] || {
	echo "attack.sh: $SERVER is not built: run make" >&2
	exit 1
}
ATTACK_BIN=$ROOT/test/tools/attack
CLIENT=$ROOT/test/tools/echoclient
TMP=$(mktemp -d)
SERVER_PID=
BG=()
NHELD=0
WHY=
RAN=0

# Stop whatever an attack left running, then remove the scratch directory.
cleanup() {
	local p
	for p in "${BG[@]}"; do
		kill "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	BG=()
	[[ -z $SERVER_PID ]] || server_stop "$SERVER_PID" 5
	SERVER_PID=
}
trap 'cleanup; rm -rf "$TMP"' EXIT

# cannot REASON: an attack could not set up what it measures; REASON is
# printed with the "could not run" line.  Returns 1.
cannot() {
	WHY=$1
	return 1
}

# start ARGS...: a fresh server on a free port (SERVER_PID, PORT).
start() {
	cleanup
	server_start 10 "$TMP/server.out" "$TMP/server.err" "$SERVER" -p 0 "$@" ||
		cannot "the server did not start: $(tail -1 "$TMP/server.err")"
}

# start_limited FILES ARGS...: the same, with FILES descriptors at most.
start_limited() {
	local files=$1
	shift
	limit_files "$files" "$SERVER" "$TMP/limited"
	cleanup
	server_start 10 "$TMP/server.out" "$TMP/server.err" "$TMP/limited" \
		-p 0 "$@" ||
		cannot "the server did not start at $files descriptors: $(tail -1 "$TMP/server.err")"
}

# report NAME held|broken FIGURE: the attack's one line.
report() {
	RAN=$((RAN + 1))
	[[ $2 == held ]] && NHELD=$((NHELD + 1))
	printf '%-34s %-7s %s\n' "$1" "$2" "$3"
}

# The server takes option -$1 (its usage lists it).
has_option() {
	"$SERVER" -h 2>&1 | grep -q -- "-$1 "
}

# fresh_echo SECONDS: a new client's line comes back within SECONDS.
fresh_echo() {
	local fd reply rc=1
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" || return 1
	{ printf 'fresh\n' >&"$fd"; } 2>/dev/null
	IFS= read -r -t "$1" reply <&"$fd" 2>/dev/null && [[ $reply == fresh ]] &&
		rc=0
	exec {fd}>&-
	return $rc
}

# The number of descriptors process $1 holds.
fds_of() {
	ls "/proc/$1/fd" 2>/dev/null | wc -l
}

_fds_at_least() { (($(fds_of "$1") >= $2)); }
_fds_at_most() { (($(fds_of "$1") <= $2)); }
_has_line() { grep -q "$2" "$1" 2>/dev/null; }

# slowloris: 200 clients each send a byte every 200 ms for 3 s; a new
# client must still get its echo within 1 s.
attack_slowloris() {
	start -t 2 || return 1
	"$ATTACK_BIN" -p "$PORT" -T 3000 trickle 200 200 >/dev/null 2>&1 &
	BG+=("$!")
	wait_until 5 _fds_at_least "$SERVER_PID" 200 || true
	if fresh_echo 1; then
		report slowloris held "a new client echoed within 1 s among 200 trickling ones"
	else
		report slowloris broken "a new client got no echo in 1 s among 200 trickling ones"
	fi
}

# half-close without reading: 10 clients send until the server stops
# taking data, shut down writing and never read; on SIGTERM the server must
# still exit by its deadline + 2 s.
attack_half_close() {
	local i n=0
	start -t 2 || return 1
	mkfifo "$TMP/never"
	exec 8<>"$TMP/never" # no line ever comes: they never read
	for ((i = 0; i < 10; i++)); do
		"$CLIENT" -p "$PORT" -T 15000 -w hold 16M <&8 \
			>"$TMP/hold$i.out" 2>&1 &
		BG+=("$!")
	done
	for ((i = 0; i < 10; i++)); do
		wait_until 20 _has_line "$TMP/hold$i.out" '^sent unread' &&
			n=$((n + 1))
	done
	kill -TERM "$SERVER_PID"
	if server_wait "$SERVER_PID" 3 2>/dev/null; then
		SERVER_PID=
		report "half-close, never read" held "exit $STATUS ${ELAPSED}s after SIGTERM, $n clients owed megabytes"
	else
		report "half-close, never read" broken "still running 3 s after SIGTERM"
	fi
	exec 8>&-
}

# a byte after the signal: a client owed 1 MiB sends one more byte 300 ms
# after SIGTERM; it must get all its echo, then EOF, not a reset.
attack_late_byte() {
	start -t 2 || return 1
	mkfifo "$TMP/go2"
	"$CLIENT" -p "$PORT" -T 10000 -l 300 hold 1M <"$TMP/go2" \
		>"$TMP/late.out" 2>&1 &
	local c=$!
	BG+=("$c")
	exec 7>"$TMP/go2"
	wait_until 10 _has_line "$TMP/late.out" '^sent unread' ||
		cannot "the client did not send its MiB in 10 s: $(tail -1 "$TMP/late.out")"
	kill -TERM "$SERVER_PID"
	printf 'go\n' >&7
	exec 7>&-
	wait_until 10 exited "$c" || true
	if grep -q 'all echoed' "$TMP/late.out"; then
		report "a byte after the signal" held "all 1 MiB echoed, then EOF"
	else
		report "a byte after the signal" broken "$(tail -1 "$TMP/late.out")"
	fi
}

# reset storm: 100 clients send 256 KiB and reset without reading; the
# server must live and echo a new client within 1 s.
attack_reset_storm() {
	local i
	start -t 2 || return 1
	for ((i = 0; i < 100; i++)); do
		"$CLIENT" -p "$PORT" -T 5000 -S 100 rst 256K >/dev/null 2>&1
	done
	if ! exited "$SERVER_PID" && fresh_echo 1; then
		report "reset storm" held "alive, and a new client echoed after 100 resets"
	else
		report "reset storm" broken "no echo for a new client after 100 resets"
	fi
}

# connect/close churn: 2000 connections opened and closed at once; the
# server must give back their descriptors within 3 s and echo a new client.
attack_churn() {
	local before out
	start -t 2 || return 1
	before=$(fds_of "$SERVER_PID")
	out=$("$ATTACK_BIN" -p "$PORT" -T 20000 churn 2000 2>&1)
	if wait_until 3 _fds_at_most "$SERVER_PID" $((before + 2)) &&
		fresh_echo 1; then
		report "connect/close churn" held "${out#churn: }; descriptors back to $(fds_of "$SERVER_PID")"
	else
		report "connect/close churn" broken "${out#churn: }; $(fds_of "$SERVER_PID") descriptors held (from $before)"
	fi
}

# descriptor exhaustion: a limit of 64 descriptors and 120 clients; over
# one second the server must use under a fifth of a CPU and be runnable
# under a fifth of the time (a spinning loop is runnable all of it, busy
# machine or not), and once
# the clients have gone a new one must get its echo within 3 s: a server
# that stops accepting for good is cool, and broken.  (Chapter 5 pauses
# 100 ms; 3 s is for a busy machine.)
attack_fd_exhaustion() {
	local fds=() fd i t0 t1 r0 r1 ticks pct runnable
	start_limited 64 -t 2 || return 1
	for ((i = 0; i < 120; i++)); do
		exec {fd}<>"/dev/tcp/127.0.0.1/$PORT" || break
		fds+=("$fd")
	done
	ticks=$(getconf CLK_TCK)
	t0=$(proc_cpu_ticks "$SERVER_PID") || t0=
	r0=$(proc_runnable_ms "$SERVER_PID") || r0=
	sleep 1 # the window the CPU time is measured over
	t1=$(proc_cpu_ticks "$SERVER_PID") || t1=
	r1=$(proc_runnable_ms "$SERVER_PID") || r1=
	for fd in "${fds[@]}"; do
		exec {fd}>&-
	done
	if [[ -z $t0 || -z $t1 ]] || exited "$SERVER_PID"; then
		report "descriptor exhaustion" broken "the server died: $(tail -1 "$TMP/server.err")"
		return 0
	fi
	pct=$((100 * (t1 - t0) / ticks))
	# A spinning server is runnable the whole second, however little CPU
	# a busy machine gives it: the verdict is the runnable share where
	# the kernel keeps it, else the CPU.
	runnable=$pct
	[[ -z $r0 || -z $r1 ]] || runnable=$(((r1 - r0) / 10))
	if ((pct >= 20 || runnable >= 20)); then
		report "descriptor exhaustion" broken "${pct}% CPU out of descriptors: it spins (runnable ${runnable}% of the time)"
	elif ! fresh_echo 3; then
		report "descriptor exhaustion" broken "${pct}% CPU, but no echo for a new client 3 s after the others left"
	else
		report "descriptor exhaustion" held "${pct}% CPU out of descriptors, a new client served once they left"
	fi
}

# serve N: N clients, each served (its line echoed) before the next
# connects, held open in HELD.
serve() {
	HELD=()
	hold_echoed "$1" 5 ||
		cannot "client $((HELD_FAILED + 1)) of the $1 served got no echo in 5 s"
}

# unserved CMD...: run CMD in the background (its pid in BG) without the
# HELD clients' descriptors: holding copies, it would keep them open
# after close_held() closes ours.
unserved() {
	(
		for fd in "${HELD[@]}"; do
			exec {fd}>&-
		done
		exec "$@"
	) &
	BG+=("$!")
}

# The listening socket on PORT has no connection waiting to be accepted
# (its receive queue in /proc/net/tcp is the accept queue).
_accept_queue_empty() {
	awk -v port="$(printf ':%04X' "$PORT")" '
		$4 == "0A" && substr($2, length($2) - 4) == port {
			split($5, q, ":"); if (q[2] ~ /^0+$/) ok = 1
		}
		END { exit !ok }' /proc/net/tcp
}

# trickling over-limit clients: with -c 4 and 4 clients served, 40 refused
# ones send a byte every 200 ms; all must be let go within 4 s, none
# echoed; and when the 4 leave, a new client is served: the refused were
# never counted.
attack_trickle() {
	local out last
	if ! has_option c; then
		report "trickling over-limit clients" broken "no connection limit (-c) to hold"
		return 0
	fi
	start -c 4 -t 2 || return 1
	serve 4 || return 1
	out=$("$ATTACK_BIN" -p "$PORT" -T 6000 trickle 40 200 2>"$TMP/trickle.err")
	close_held 4
	last=${out#*the last went }
	last=${last%% ms*}
	if [[ $out != "trickle: 40 of 40 let go"* ]] || ((last > 4000)); then
		report "trickling over-limit clients" broken "${out#trickle: }"
	elif [[ $out != *"; 0 bytes echoed" ]]; then
		report "trickling over-limit clients" broken "refused clients were echoed: ${out##*; }"
	elif ! wait_until 3 fresh_echo 1; then
		report "trickling over-limit clients" broken "no echo for a new client 3 s after the served ones left"
	else
		report "trickling over-limit clients" held "40 of 40 let go, the last ${last} ms after its connect"
	fi
}

# over-limit flood: 128 descriptors, -c 20 and 20 clients served; 250
# refused clients trickle a byte every 200 ms.  Once they are all in, a
# served client leaves: a new client must take its place within 2 s
# (chapter 5: 5 ms; 2 s is less than a refused client's linger bound),
# and all 250 must be let go within 8 s.  A server that lets every
# refused client linger runs out of descriptors; whether a new client
# then waits depends on when it comes, so the verdict also counts: at
# most half the 128 descriptors may linger, and a lingering client is one
# that got a FIN before its reset (the client counts them).  A server
# that lingers them all sends a FIN to each one it accepts, about 100
# before its descriptors run out, however busy the machine is.
attack_flood() {
	local out=$TMP/flood.out c fins
	if ! has_option c; then
		report "over-limit flood" broken "no connection limit (-c) to hold"
		return 0
	fi
	start_limited 128 -c 20 -t 2 || return 1
	serve 20 || return 1
	unserved "$ATTACK_BIN" -p "$PORT" -T 8000 trickle 250 200 >"$out" 2>&1
	c=${BG[-1]}
	# All 250 connect in about 0.1 s; a server out of descriptors never
	# takes them all: go on after 5 s.
	wait_until 10 _has_line "$out" '^trickle: 250 connected' ||
		cannot "the 250 refused clients did not connect in 10 s: $(tail -1 "$out")"
	wait_until 5 _accept_queue_empty || true
	close_held 1
	# The server may take a new client before it sees the served one go:
	# that one is refused, and the next one tried.
	if ! wait_until 2 fresh_echo 1; then
		report "over-limit flood" broken "a client under the limit got no echo in 2 s among 250 refused ones"
	elif ! wait_until 10 exited "$c" || ! _has_line "$out" '^trickle: 250 of 250 let go'; then
		report "over-limit flood" broken "$(grep -m1 'let go' "$out" || echo 'refused clients still held')"
	elif fins=$(sed -n 's/.*, \([0-9]*\) sent a FIN first.*/\1/p' "$out") &&
		((fins > 64)); then
		report "over-limit flood" broken "$fins of 250 refused clients lingered (a FIN first): more than half the 128 descriptors"
	else
		report "over-limit flood" held "a client under the limit served among 250 refused ones, all let go, $fins lingered"
	fi
	close_held 19
}

# ms_since T0: milliseconds since T0, a date +%s%N.
ms_since() {
	echo $((($(date +%s%N) - $1) / 1000000))
}

# refused flood at few descriptors: at 32, 64 and 128 descriptors, -c 2
# and 2 clients served, 250 refused clients that ignore the FIN trickle a
# byte every 200 ms; once they are all in (accepted), a served client
# leaves, and a new one must be echoed within 1 s (a client under the limit is never
# delayed more; a server that lets the refused hold its descriptors, or
# queues sockets without bound, makes it wait seconds).
attack_low_fd_flood() {
	local f out=$TMP/lowfd.out t0 ms line="" ok=1
	if ! has_option c; then
		report "refused flood, 32-128 descriptors" broken "no connection limit (-c) to hold"
		return 0
	fi
	for f in 32 64 128; do
		start_limited "$f" -c 2 -t 2 || return 1
		serve 2 || return 1
		unserved "$ATTACK_BIN" -p "$PORT" -T 6000 trickle 250 200 >"$out" 2>&1
		wait_until 10 _has_line "$out" '^trickle: 250 connected' ||
			cannot "at $f descriptors the 250 refused clients did not connect in 10 s: $(tail -1 "$out")"
		# All in, so that none of them can take the place.
		wait_until 5 _accept_queue_empty || true
		close_held 1
		t0=$(date +%s%N)
		if wait_until 3 fresh_echo 1; then
			ms=$(ms_since "$t0")
		else
			ms=">3000"
		fi
		[[ $ms == ">3000" ]] || ((ms > 1000)) && ok=0
		line+="${line:+, }$f: $ms ms"
		close_held 1
	done
	if ((ok)); then
		report "refused flood, 32-128 descriptors" held "a client under the limit echoed after $line"
	else
		report "refused flood, 32-128 descriptors" broken "a client under the limit waited over 1 s: $line"
	fi
}

# backlog recovery: 4,000 connections wait in the backlog of a server at
# 32 descriptors, then all close; a new client must be echoed within 3 s
# of the close (chapter 5: 20 to 150 ms on a quiet machine, up to 1.2 s on
# a very busy one; paced by a 100 ms pause, 22.7 s).
attack_backlog() {
	local out=$TMP/backlog.out c ms
	start_limited 32 -t 2 || return 1
	mkfifo "$TMP/go4"
	"$ATTACK_BIN" -p "$PORT" -T 60000 backlog 4000 <"$TMP/go4" >"$out" 2>&1 &
	c=$!
	BG+=("$c")
	exec 7>"$TMP/go4"
	if ! wait_until 30 _has_line "$out" '^backlog: 4000 connections open'; then
		exec 7>&-
		exited "$SERVER_PID" ||
			cannot "the 4,000 connections did not open in 30 s: $(tail -1 "$out")"
		report "backlog recovery, 32 descriptors" broken "the server died: $(tail -1 "$TMP/server.err")"
		return 0
	fi
	printf 'go\n' >&7
	exec 7>&-
	wait_until 60 exited "$c" || true
	ms=$(sed -n 's/.*echoed \([0-9]*\) ms after.*/\1/p' "$out")
	if [[ -n $ms ]] && ((ms <= 3000)); then
		report "backlog recovery, 32 descriptors" held "4,000 waiting connections closed; a new client echoed $ms ms after"
	else
		report "backlog recovery, 32 descriptors" broken "$(tail -1 "$out")"
	fi
}

# zero-window trickle under -i: with -i 3, a client that never reads, 64
# KiB of its echo waiting in the server, sends a byte every 200 ms; it
# must be reset within 5 s of its echo stopping (3 s for -i, 2 s for a
# busy machine): what it sends is not reading.
attack_zero_window() {
	local out
	if ! has_option i; then
		report "zero-window trickle under -i" broken "no idle timeout (-i) to hold"
		return 0
	fi
	start -i 3 -t 2 || return 1
	out=$("$ATTACK_BIN" -p "$PORT" -T 12000 stall 1 65536 200 2>/dev/null)
	local last=${out#*the last went }
	last=${last%% ms*}
	if [[ $out == "stall: 1 of 1 let go"* ]] && ((last <= 5000)); then
		report "zero-window trickle under -i" held "reset ${last} ms after its echo stopped, though it sent a byte every 200 ms"
	else
		report "zero-window trickle under -i" broken "${out#stall: }"
	fi
}

# cut-echo detection: 32 clients owed echo that do not read; cut at the
# drain's deadline, each must see a reset, never a FIN before its echo.
attack_cut_echo() {
	local line silent
	start -t 2 || return 1
	mkfifo "$TMP/go3"
	"$ATTACK_BIN" -p "$PORT" -T 30000 cut 32 2500000 98304 <"$TMP/go3" \
		>"$TMP/cut3.out" 2>&1 &
	local c=$!
	BG+=("$c")
	exec 7>"$TMP/go3"
	wait_until 20 _has_line "$TMP/cut3.out" '^cut: 32 connections sent' ||
		cannot "the 32 clients did not send in 20 s: $(tail -1 "$TMP/cut3.out")"
	kill -TERM "$SERVER_PID"
	server_wait "$SERVER_PID" 5 2>/dev/null && SERVER_PID=
	printf 'go\n' >&7
	exec 7>&-
	wait_until 30 exited "$c" || true
	line=$(grep '^cut: .* whole echo' "$TMP/cut3.out") ||
		cannot "the clients gave no verdict: $(tail -1 "$TMP/cut3.out")"
	silent=${line#*reset, }
	silent=${silent%% FIN before*}
	if [[ $silent == 0 ]]; then
		report "cut-echo detection" held "${line#cut: }"
	else
		report "cut-echo detection" broken "$silent of 32 read a FIN after part of their echo"
	fi
}

# kernel memory per stuck client: on -t 4, 4 clients send 64 MB each and
# never read.  Once the server has stopped reading them and nothing moves,
# the kernel memory its 4 sockets hold (ss -tm, see socket_memory in
# test/server.bash) must be at most 1 MiB a client: a receive buffer of
# 512 KiB and 128 KiB of unsent echo, each with a segment over, are 768 KiB.
# One worker per client, so that chapter 4 serves them all too.
attack_kernel_memory() {
	local c count bytes per
	start -t 4 || return 1
	mkfifo "$TMP/go5"
	# the line on the FIFO never comes: cleanup ends the clients
	"$ATTACK_BIN" -p "$PORT" -T 60000 cut 4 64000000 0 <"$TMP/go5" \
		>"$TMP/km.out" 2>&1 &
	c=$!
	BG+=("$c")
	exec 8>"$TMP/go5"
	_LAST_SOCKETS=
	if ! wait_until 20 sockets_steady "$PORT" 4; then
		exec 8>&-
		cannot "the 4 clients did not settle in 20 s: $(socket_memory "$PORT") (sockets, bytes, stopped)"
		return 1
	fi
	read -r count bytes _ <<<"$(socket_memory "$PORT")"
	exec 8>&-
	per=$((bytes / 4 / 1024))
	if ((count == 4 && per <= 1024)); then
		report "kernel memory per stuck client" held "$per KiB in the server's sockets for each of 4 clients that never read"
	else
		report "kernel memory per stuck client" broken "$per KiB in the server's sockets for each of 4 clients that never read"
	fi
}

for a in $ATTACKS; do
	if ! "attack_${a//-/_}"; then
		echo "attack.sh: attack $a could not run: ${WHY:-see above}" >&2
		exit 1
	fi
done
cleanup
echo "$NHELD of $RAN attacks held"
((NHELD == RAN)) || exit 3
