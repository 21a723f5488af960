#!/usr/bin/env bats
# The measuring tools: the load generator checks what it claims to check,
# and the bare epoll server it compares with echoes correctly.

: "${ECHOSERVER:=$BATS_TEST_DIRNAME/../step5-per-thread-base/echoserver}"
load helper

LOADGEN=$ROOT/test/loadgen

setup() {
	[[ -x $LOADGEN ]] || make -s -C "$ROOT" test/loadgen test/epoll_echo >&2
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
	ECHOSERVER=$ROOT/test/epoll_echo
	check_stream
	stop_all_servers
	check_halfclose
	stop_all_servers
	check_backpressure
}
