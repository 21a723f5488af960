#!/usr/bin/env bats
# The measuring tools: the load generator checks what it claims to check,
# and the bare epoll server it compares with echoes correctly.

: "${ECHOSERVER:=$BATS_TEST_DIRNAME/../../step5-per-thread-base/echoserver}"
load ../helper

# listening_port PID: the TCP port process PID listens on (for servers that
# do not print it), waiting for it at most 5 s.
listening_port() {
	wait_until 5 _listening_port "$1" >/dev/null ||
		fail "process $1 listens on no TCP port"
	_listening_port "$1"
}

# Print the port of a listening TCP socket process $1 holds; fail if none.
_listening_port() {
	local inode port
	for inode in $(ls -l "/proc/$1/fd" 2>/dev/null |
		sed -n 's/.*socket:\[\([0-9]*\)\]$/\1/p'); do
		port=$(awk -v ino="$inode" '$4 == "0A" && $10 == ino {
			split($2, a, ":"); print a[2] }' /proc/net/tcp)
		[[ -n $port ]] && { echo $((16#$port)); return 0; }
	done
	return 1
}

LOADGEN=$ROOT/test/tools/loadgen

# Rebuild whichever tool is older than its source: run directly, this file
# must not test a stale binary.
setup() {
	make -s -C "$ROOT" test/tools/echoclient test/tools/loadgen test/tools/epoll_echo >&2
}

# The value of KEY in loadgen's RESULT line, in $output.
result() {
	sed -n "s/^RESULT .*[ ]$1=\\([^ ]*\\).*/\\1/p" <<<"$output"
}

@test "loadgen: ping-pong against chapter 5 verifies every echo and finds no fault" {
	start_server -t 2
	run "$LOADGEN" -p "$PORT" pingpong -c 10 -P 2 -s 256 -d 1
	assert_success
	(($(result msgs) > 0))
	assert_equal "$(result mismatches)" 0
	assert_equal "$(result starved)" 0
}

@test "loadgen: a 16 MiB bulk stream comes back whole" {
	start_server -t 2
	run "$LOADGEN" -p "$PORT" bulk -n 16
	assert_success
	assert_equal "$(result bytes)" 16777216
	assert_equal "$(result lost)" 0
}

@test "loadgen: a server that changes bytes is caught (exit 1, mismatches counted)" {
	# socat as a broken echo server: every 'a' comes back as 'b'
	socat "TCP-LISTEN:0,bind=127.0.0.1,reuseaddr,fork" SYSTEM:"tr a b" \
		2>/dev/null 3>&- &
	SERVER_PID=$!
	SERVER_PIDS+=("$SERVER_PID")
	PORT=$(listening_port "$SERVER_PID")
	run "$LOADGEN" -p "$PORT" pingpong -c 2 -s 4096 -d 0.5
	assert_equal "$status" 1
	(($(result mismatches) > 0))
}

@test "loadgen: with -t 2, chapter 3 starves 8 of 10 connections, and loadgen says so" {
	ECHOSERVER=$ROOT/step3-threaded-echo/echoserver start_server -t 2
	run "$LOADGEN" -p "$PORT" pingpong -c 10 -d 1
	assert_success
	assert_equal "$(result starved)" 8
}

@test "epoll_echo, the yardstick, passes chapter 1's echo cases" {
	ECHOSERVER=$ROOT/test/tools/epoll_echo
	check_stream
	stop_all_servers
	check_halfclose
	stop_all_servers
	check_backpressure
}

@test "every tool prints its usage, each option with its default, for -h (exit 0)" {
	local tool
	for tool in echoclient loadgen epoll_echo; do
		run "$ROOT/test/tools/$tool" -h
		assert_success
		assert_line --index 0 --regexp "^usage: $tool \[-h[a-z]*\] \[-a addr\] "
		assert_line --regexp '^  -a addr +.*\(default 127\.0\.0\.1'
		assert_line --regexp '^  -h +show this help$'
	done
}

@test "every tool answers an unknown flag with its usage and exit 2" {
	local tool
	for tool in echoclient loadgen epoll_echo; do
		run "$ROOT/test/tools/$tool" -x
		assert_equal "$status" 2
		assert_line --index 1 --regexp "^usage: $tool \[-h[a-z]*\] "
	done
}

@test "make check's posix gate fails a Linux-only name in a chapter's code, and passes it under #ifdef __linux__ with a portable #else" {
	local copy=$BATS_TEST_TMPDIR/px
	mkdir "$copy"
	cp "$ROOT/step5-per-thread-base/echoserver.c" "$copy/"
	printf 'static const char *where = "/proc/self/status";\n' >>"$copy/echoserver.c"
	run env GATES=posix bash "$ROOT/test/check.sh" "$copy"
	assert_failure
	assert_line --regexp "^$copy/echoserver.c: Linux-only: [0-9]+:static const char \\*where = \"/proc/self/status\";\$"
	cp "$ROOT/step5-per-thread-base/echoserver.c" "$copy/"
	printf '#ifdef __linux__\nstatic const char *where = "/proc/self/status";\n#else\nstatic const char *where = "";\n#endif\n' >>"$copy/echoserver.c"
	run env GATES=posix bash "$ROOT/test/check.sh" "$copy"
	assert_success
}

@test "make bench: a BENCH_CASES kind it does not know is a usage error, before any server runs" {
	run env BENCH_CASES="bulk nope" bash "$ROOT/test/bench/bench.sh"
	assert_equal "$status" 2
	assert_output "bench: BENCH_CASES: no kind of case is named 'nope': the kinds are pingpong, bulk and idle"
}

@test "a size whose K or M suffix overflows 64 bits is a usage error, not a wrapped-around small size" {
	ECHOSERVER=$ROOT/test/tools/epoll_echo start_server
	# 2^44 + 1 mebibytes is 2^64 + 1 MiB: wrapped around, 1 MiB
	run "$ECHOCLIENT" -p "$PORT" stream 17592186044417M
	assert_equal "$status" 2
	assert_line --index 0 --partial "not a size from 0 to"
	# 2^54 + 1 kibi-connections: wrapped around, 1024 connections
	run "$LOADGEN" -p "$PORT" pingpong -c 18014398509481985K -d 0.2
	assert_equal "$status" 2
	assert_line --index 0 --partial "-c: not a number from 1 to"
}

@test "echoclient stops with an error when it cannot read its descriptor limit" {
	# A getrlimit() that fails, put in front of the C library's.
	cat >"$BATS_TEST_TMPDIR/nolimit.c" <<-'EOF'
		#include <errno.h>
		struct rlimit;
		int getrlimit(int r, struct rlimit *rl) { (void)r; (void)rl; errno = EPERM; return -1; }
		int getrlimit64(int r, struct rlimit *rl) { return getrlimit(r, rl); }
	EOF
	cc -shared -fPIC -o "$BATS_TEST_TMPDIR/nolimit.so" "$BATS_TEST_TMPDIR/nolimit.c"
	ECHOSERVER=$ROOT/test/tools/epoll_echo start_server
	run env LD_PRELOAD="$BATS_TEST_TMPDIR/nolimit.so" "$ECHOCLIENT" -p "$PORT" clients 4 1K
	assert_equal "$status" 1
	assert_output --partial "getrlimit RLIMIT_NOFILE: Operation not permitted"
}

@test "loadgen: connections already open cost no CPU while others are still connecting" {
	# A server that accepts 8 connections and closes them at once, then
	# accepts no more: its backlog of 1 fills, and the kernel drops the
	# other SYNs, so loadgen dials them until the SYNs are sent again.
	# The 8 closed ones are readable all that time.
	printf '%s\n' "#!$(command -v perl)" 'use IO::Socket::INET; $| = 1;' \
		'my $l = IO::Socket::INET->new(LocalAddr => "127.0.0.1",' \
		'    LocalPort => 0, Listen => 1) or die "listen: $!";' \
		'print "listening on 127.0.0.1:", $l->sockport, "\n";' \
		'for (1 .. 8) { close($l->accept // die "accept: $!") }' \
		'sleep 60;' >"$BATS_TEST_TMPDIR/closer"
	chmod +x "$BATS_TEST_TMPDIR/closer"
	ECHOSERVER=$BATS_TEST_TMPDIR/closer start_server
	# CPU time, user and system, from bash's time in a shell of its own.
	run env OUT="$BATS_TEST_TMPDIR/lg.out" bash -c \
		'TIMEFORMAT="%U %S"; time "$0" "$@" >"$OUT" 2>&1' \
		"$LOADGEN" -p "$PORT" -T 20 idle -c 64 -w 1.5
	local cpu_ms connect_ms
	cpu_ms=$(awk 'END { printf "%d", ($1 + $2) * 1000 }' <<<"$output")
	connect_ms=$(sed -n 's/^RESULT .* connect_ms=\([0-9]*\) .*/\1/p' \
		"$BATS_TEST_TMPDIR/lg.out")
	echo "# dialling took $connect_ms ms; loadgen used $cpu_ms ms of CPU" >&3
	# The dial phase was slow: the dropped SYNs were sent again after the
	# kernel's first retransmission timeout, 1 s.
	((connect_ms >= 900))
	# A loop spinning on the 8 closed connections uses most of that second
	# (at least half of it on a busy 2-core machine); waiting idle takes a
	# few milliseconds.
	((cpu_ms < 250))
}

# --- The test harness itself ---------------------------------------------------

@test "the harness's bounded wait starts no process while it polls" {
	need strace strace
	strace -f -o /dev/null true 2>/dev/null ||
		cannot_run "strace cannot trace here (ptrace is not allowed)"
	# half a second of polling is 25 polls: a wait that forked a clock or
	# a sleep per poll would start 25 processes or more
	run strace -f -qq -e trace=fork,vfork,clone,clone3 -o "$BATS_TEST_TMPDIR/trace" \
		env BATS_RUN_TMPDIR="$BATS_TEST_TMPDIR" bash -c \
		'source "$1"; wait_until 0.5 false' _ "$ROOT/test/server.bash"
	assert_failure 1
	local forks
	forks=$(grep -cE '(fork|clone3?)\(' "$BATS_TEST_TMPDIR/trace")
	echo "# processes started by 25 polls: $forks (the FIFO it naps on: mkfifo)" >&3
	((forks <= 2))
}

@test "teardown stops a server that ignores SIGTERM 2 s after the signal" {
	ECHOSERVER=$BATS_TEST_TMPDIR/deaf
	printf '%s\n' '#!/bin/bash' "trap '' TERM" 'echo "listening on 127.0.0.1:9"' \
		'exec sleep 30' >"$ECHOSERVER"
	chmod +x "$ECHOSERVER"
	start_server
	local t0 pid=$SERVER_PID
	t0=$(now)
	stop_all_servers
	echo "# stopped after $(seconds_since "$t0") s: $STATUS" >&3
	exited "$pid"
	assert_equal "$STATUS" killed
	# STOP_TIMEOUT (2 s), then SIGKILL; 1 s more for a busy machine
	(($(ms_since "$t0") < 3000))
}

# A hang Bats cannot end: its BATS_TEST_TIMEOUT kills a test's children,
# and run's grandchild, the demo, keeps the output open for good.
@test "a workqueue_demo that never returns fails its test after DEMO_TIMEOUT, saying so, and the test file ends" {
	local fake=$BATS_TEST_TMPDIR/stuck t0
	printf '%s\n' '#!/bin/sh' 'exec sleep 600' >"$fake"
	chmod +x "$fake"
	t0=$(now)
	run timeout 60 env WORKQUEUE_DEMO="$fake" DEMO_TIMEOUT=1 \
		bats --tap -f "^every one of 1000 jobs runs exactly once" "$ROOT/test/step2.bats"
	echo "# the file ended after $(seconds_since "$t0") s" >&3
	assert_failure 1
	assert_line --regexp '^not ok 1 every one of 1000 jobs'
	assert_output --partial "workqueue_demo: still running after 1 s: killed"
	# 1 s, then Bats' own start and end: 2 s on a quiet machine
	(($(ms_since "$t0") < 30000))
}

@test "a test that needs a missing tool skips, and fails under CI" {
	local t=$BATS_TEST_TMPDIR/needs.bats
	printf '%s\n' "source '$ROOT/test/server.bash'" \
		'@test "needs a tool" { need no-such-tool-here no-such-package; }' >"$t"
	run env -u CI bats --tap "$t"
	assert_success
	assert_line --partial "# skip needs no-such-tool-here"
	run env CI=true bats --tap "$t"
	assert_failure
	assert_line --partial "cannot run under CI: needs no-such-tool-here"
}

@test "stress.sh fails when its runs report no results, instead of counting 0 failures" {
	run bash "$ROOT/test/stress.sh" 2 1 'no test has this name'
	assert_failure 1
	assert_output --partial "1 of 1 runs reported no complete results"
}

# The attack lab (make attack): chapter 5 holds every attack and exits 0.
# The lab starts its own servers and bounds every wait; one run takes about
# 25 s.  That it fails an earlier chapter is proven in make proofs
# (test/proofs/lab.bats).
@test "make attack: chapter 5 holds all 13 attacks and the lab exits 0" {
	make -s -C "$ROOT" test/tools/attack test/tools/echoclient >&2
	run bash "$ROOT/test/proofs/attack.sh" 5
	echo "$output" | sed 's/^/# /' >&3
	assert_success
	assert_line "13 of 13 attacks held"
	refute_line --regexp ' broken '
}

@test "make attack ATTACK=...: runs only the attacks named, and a name it does not know is a usage error" {
	make -s -C "$ROOT" test/tools/attack test/tools/echoclient >&2
	run env ATTACK="churn reset-storm" bash "$ROOT/test/proofs/attack.sh" 5
	assert_success
	assert_equal "${#lines[@]}" 3
	assert_line --index 0 --regexp '^connect/close churn +held '
	assert_line --index 1 --regexp '^reset storm +held '
	assert_line --index 2 "2 of 2 attacks held"
	run env ATTACK="churn slowlorris" bash "$ROOT/test/proofs/attack.sh" 5
	assert_failure 2
	assert_output --partial "no attack named 'slowlorris'"
}
