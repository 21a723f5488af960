#!/usr/bin/env bats
# Chapter 5: one event base per thread, hardened.
# Run against another binary with: ECHOSERVER=path/to/echoserver bats test/step5.bats

: "${ECHOSERVER:=$BATS_TEST_DIRNAME/../step5-per-thread-base/echoserver}"
: "${SOURCE_DIR:=$BATS_TEST_DIRNAME/../step5-per-thread-base}"
load helper

@test "text a client sends comes back unchanged" {
	check_text_echo
}

@test "all 256 byte values come back unchanged" {
	check_binary_echo
}

@test "an 8 MiB stream sent while reading comes back intact and in order" {
	check_stream
}

@test "after a half-close, all 8 MiB come back before the server closes" {
	check_halfclose
}

@test "200 concurrent clients each get their own bytes back" {
	check_many_clients -t 2
}

@test "clients that reset their connection do not disturb another client" {
	check_reset_clients
}

@test "clients that connect and vanish do not disturb the server" {
	check_vanishing_clients
}

@test "writing to a client that has gone does not kill the server (SIGPIPE)" {
	check_sigpipe
}

@test "a client that never reads cannot make the server buffer without bound" {
	check_backpressure
}

@test "a port in use is an error that names the port (exit 1)" {
	check_address_in_use
}

@test "an unknown flag, a bad port, thread count or address is a usage error (exit 2)" {
	check_usage_errors
}

@test "a bad idle timeout or connection limit is a usage error (exit 2)" {
	for bad in "-i -1" "-i x" "-c -1" "-c 1x"; do
		# shellcheck disable=SC2086
		run "$ECHOSERVER" $bad -p 0 3>&-
		assert_equal "$status" 2
		assert_output --partial "usage:"
	done
}

@test "-h prints the usage with the defaults" {
	check_help
}

@test "-a ::1 listens on IPv6 loopback" {
	check_ipv6
}

# bats test_tags=needs-source
@test "it compiles with libevent 2's public headers alone, and includes no other" {
	check_public_headers "$SOURCE_DIR"
}

@test "on SIGINT two busy clients get their pending echo, then EOF; exit 0 within 2 s" {
	check_shutdown INT 2
}

@test "on SIGTERM a client that has not read megabytes of echo still gets all of it, then EOF" {
	check_shutdown_owed TERM
}

@test "on SIGINT with no client the server exits 0 within 2 s" {
	check_shutdown INT 0
}

@test "20 runs of start-then-SIGINT each exit 0 within 1 s" {
	check_quick_signals 20 1
}

# Closing without loss, and one deadline for the whole shutdown.
@test "on SIGTERM clients that half-closed and never read cannot keep the server past the drain's deadline" {
	check_shutdown_stuck_readers
}

@test "on SIGTERM a client owed 1 MiB that sends one more byte 300 ms later gets all its echo, then EOF, not a reset" {
	check_shutdown_late_byte
}

@test "on SIGTERM with -t 1 and three clients that never stop talking, the server exits by one deadline from the signal" {
	check_shutdown_chatty
}

# Chapter 3's flaw, fixed.
@test "fixed: with -t 2, a third and a 500th client get their echo while two others stay connected" {
	check_third_client_served
}

@test "1000 clients at once on -t 2 each get their own bytes back, on 3 threads throughout" {
	check_threads_fixed 1000 2
}

@test "-v shows the connections spread round robin over the workers" {
	check_round_robin 100 2
	stop_all_servers
	check_round_robin 100 3
}

@test "10 000 connections at once on -t 2 each echo, all connected within 4 s" {
	check_many_idle 10000
}

@test "out of descriptors, the server does not spin and serves clients once others leave" {
	check_emfile
}

@test "fixed: out of descriptors, accepting pauses instead of spinning, and resumes by itself" {
	check_accept_pauses -t 2
}

@test "-i 1 closes an idle client within 1 to 3 s while an active one stays" {
	check_idle_timeout
}

# A client with a 4 KiB receive buffer is owed 256 KiB, most of it still in
# the server's kernel buffer, when -i 1 closes it; 2 s after its last write
# it sends one more byte, then reads.  Closed lingering, it gets all of its
# echo and EOF; closed at once, the late byte draws a reset that throws the
# unsent echo away.
@test "-i 1 closes an idle client lingering: a byte it sends after the close does not cost it its echo" {
	start_server -i 1 -t 2
	local fifo=$BATS_TEST_TMPDIR/go out=$BATS_TEST_TMPDIR/late.out w
	mkfifo "$fifo"
	client -T 20000 -r 4K -l 2000 hold 256K <"$fifo" >"$out" 2>&1 3>&- &
	BG_PIDS+=($!)
	exec {w}>"$fifo"
	wait_for_lines "$out" '^sent unread' 1 10
	printf 'go\n' >&"$w"
	exec {w}>&-
	wait_exit "${BG_PIDS[0]}" 20 || fail "the client did not finish"
	run cat "$out"
	assert_line --partial "all echoed"
	assert_equal "$STATUS" 0
}

@test "-c 10 serves exactly 10 of 15 clients, closes 5 at once with a clean EOF though they have sent, and takes a new one after two leave" {
	check_connection_limit
}

@test "drain: with 200 clients connected, SIGTERM echoes what each sent, then EOF; exit 0 within 2 s" {
	check_shutdown TERM 200
}

# Exercises (see step5-per-thread-base/README.md).
# bats test_tags=exercise
@test "exercise 2: SIGUSR1 makes every worker log its connection count" {
	exercise 2
	start_server -t 2
	hold_clients 10
	kill -USR1 "$SERVER_PID"
	wait_for_lines "$SERVER_ERR" '^echoserver: worker [0-9]+: [0-9]+ connections' 2
	run cat "$SERVER_ERR"
	assert_output --partial "worker 0: 5 connections"
	assert_output --partial "worker 1: 5 connections"
	release_clients
}
