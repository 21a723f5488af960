#!/usr/bin/env bats
# Chapter 3: the 2012 design, an event base per connection on a work queue.
# Run against another binary with: ECHOSERVER=path/to/echoserver bats test/step3.bats

: "${ECHOSERVER:=$BATS_TEST_DIRNAME/../step3-threaded-echo/echoserver}"
: "${WORKQUEUE_DEMO:=$BATS_TEST_DIRNAME/../step3-threaded-echo/workqueue_demo}"
: "${SOURCE_DIR:=$BATS_TEST_DIRNAME/../step3-threaded-echo}"
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

@test "200 clients that connect at once all get their own bytes back, a few at a time" {
	# each client leaves once it has its echo, and frees a worker for the next
	check_many_clients
}

@test "clients that connect and vanish do not disturb the server" {
	check_vanishing_clients
}

@test "clients that reset their connection do not disturb another client" {
	check_reset_clients
}

@test "writing to a client that has gone does not kill the server (SIGPIPE)" {
	check_sigpipe
}

@test "a client that never reads cannot make the server buffer without bound" {
	check_backpressure
}

@test "SIGINT makes the server exit 0 promptly" {
	check_signal_exit INT
}

@test "SIGTERM makes the server exit 0 promptly" {
	check_signal_exit TERM
}

@test "a port in use is an error that names the port (exit 1)" {
	check_address_in_use
}

@test "an unknown flag, a bad port, thread count or address is a usage error (exit 2)" {
	check_usage_errors
}

@test "-h prints the usage with the defaults" {
	check_help
}

@test "-v logs connections to stderr; stdout has only the listening line" {
	check_verbose_log
}

@test "with -t 4, four clients are served at the same time" {
	check_served_at_once 4
}

# What is still wrong (a): a worker is busy for a connection's whole life.
@test "still wrong: with -t 2, a third client waits while two clients hold both workers" {
	check_third_client_waits
}

# What is still wrong (b): the code reads struct bufferevent's fields.
@test "still wrong: with libevent 2's public headers alone it does not compile" {
	check_strict_headers_fail "$SOURCE_DIR"
}

# What is still wrong (c): the work queue is chapter 2's, shutdown and all.
@test "still wrong: the work queue's shutdown leaves all 4 idle workers alive" {
	run "$WORKQUEUE_DEMO" -w 4 -j 1000
	assert_success
	assert_line "jobs run: 1000"
	assert_line "workers alive after shutdown: 4"
}

@test "still wrong: out of descriptors, accepting spins at full CPU" {
	check_accept_spins -t 2
}

# Exercises (see step3-threaded-echo/README.md).
@test "exercise 3: strict-headers no longer trips over struct bufferevent" {
	exercise 3
	run make -s -C "$SOURCE_DIR" strict-headers
	# the compiler ran: it succeeded, or it reported on echoserver.c
	((status == 0)) || assert_output --partial "echoserver.c:"
	refute_output --regexp "undefined type .struct bufferevent.|incomplete definition of type .struct bufferevent.|dereferencing pointer to incomplete type"
}
