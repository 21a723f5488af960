#!/usr/bin/env bats
# Chapter 3: the 2012 design, an event base per connection on a work queue.
# Run against another binary with: ECHOSERVER=path/to/echoserver bats test/step3.bats

: "${ECHOSERVER:=$BATS_TEST_DIRNAME/../step3-threaded-echo/echoserver}"
: "${WORKQUEUE_DEMO:=$BATS_TEST_DIRNAME/../step3-threaded-echo/workqueue_demo}"
: "${SOURCE_DIR:=$BATS_TEST_DIRNAME/../step3-threaded-echo}"
load helper
# shellcheck source=test/signal-deadlock.bash
source "$BATS_TEST_DIRNAME/signal-deadlock.bash"

# --- Cases only this chapter runs ---------------------------------------

# check_strict_headers_fail DIR: the chapter's strict-headers build fails
# with the error the original's readers reported: a struct that libevent 2
# keeps opaque, used as if it were not (struct bufferevent's fields, or, once
# those are gone, a struct event on the stack).  When grading, the build runs
# in the box, in a copy in its scratch directory.
check_strict_headers_fail() {
	local dir=$1
	if [[ -n ${GRADE_BOXRUN:-} ]]; then
		dir=$(build_copy "$1" strict-headers) || fail "cannot copy $1 to build it"
	fi
	run boxed make -s -C "$dir" strict-headers
	assert_failure
	assert_output --regexp "invalid use of undefined type .struct bufferevent.|incomplete definition of type .struct bufferevent.|dereferencing pointer to incomplete type|storage size of .[a-z_]+. isn.t known|variable has incomplete type .struct event."
}

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
# bats test_tags=flaw
@test "still wrong: with -t 2, a third client waits while two clients hold both workers" {
	check_third_client_waits
}

# The author's reply to comment 7: "never more event pump threads than
# cores".  With -t set so, as many long-lived clients as there are cores,
# each busy (test/tools/loadgen's ping-pong: a message always in flight), hold
# every worker, and the clients beyond them get no echo at all for as long as
# those stay: here the whole run, 0.5 s of warm-up and 3 s measured.  A
# count, not a race: a worker is held for a connection's whole life, so the
# number served is the number of workers however the threads are scheduled.
# The 3 s are a short stand-in for "long-lived"; the README measures 60 s.
# bats test_tags=flaw
@test "still wrong: with as many workers as cores (the author's reply to comment 7), 8 more busy long-lived clients get no echo for as long as the first ones stay" {
	local cores
	cores=$(nproc)
	start_server -t "$cores"
	run "$BATS_TEST_DIRNAME/tools/loadgen" -p "$PORT" -T 30 pingpong \
		-c $((cores + 8)) -d 3
	echo "# ${lines[*]:0:4}" >&3
	assert_success
	local result
	result=$(grep '^RESULT ' <<<"$output")
	[[ $result =~ \ starved=([0-9]+) ]] || fail "no starved count: $result"
	assert_equal "${BASH_REMATCH[1]}" 8
	[[ $result =~ \ msgs=([0-9]+) ]] || fail "no message count: $result"
	((BASH_REMATCH[1] > 0)) || fail "the first $cores clients got no echo either"
}

# What is still wrong (b): the code reads struct bufferevent's fields.
# bats test_tags=flaw,needs-source
@test "still wrong: with libevent 2's public headers alone it does not compile" {
	check_strict_headers_fail "$SOURCE_DIR"
}

# --- F1 as it happened: comment 1's error, the reply, the 2013 fix -------

# The history's read loops live in test/history/read_loops.c, one per macro;
# chapter 3's own code is the 2013 one.  compile_loop MACRO INCLUDE_DIR...:
# compile that loop alone, syntax only, the way comment 1 did (through
# <event.h>; an INCLUDE_DIR first on the path can put a stand-in there),
# with gcc's byte columns, as gcc 4.6 counted them (gcc 10 and later count
# a tab as up to 8 columns).  Leaves gcc's messages in $output.
compile_loop() {
	local macro=$1 inc=() d
	shift
	for d in "$@"; do
		inc+=(-I "$d")
	done
	command -v gcc >/dev/null || skip "needs gcc (for -fdiagnostics-column-unit)"
	gcc -fdiagnostics-column-unit=byte -fsyntax-only -x c /dev/null 2>/dev/null ||
		skip "this gcc has no -fdiagnostics-column-unit (gcc 10 or later has)"
	# shellcheck disable=SC2046 # pkg-config's flags are words
	LC_ALL=C run gcc "${inc[@]}" $(pkg-config --cflags libevent) \
		-fdiagnostics-column-unit=byte -fdiagnostics-plain-output \
		-fsyntax-only -D"$macro" "$BATS_TEST_DIRNAME/history/read_loops.c"
}

# strict_event_h DIR: a stand-in <event.h> in DIR that includes libevent 2's
# public event2/ headers and nothing else (as the Makefile's strict-headers).
strict_event_h() {
	mkdir -p "$1"
	printf '#include <event2/%s.h>\n' util event buffer bufferevent >"$1/event.h"
}

# Comment 1's three errors are the 2012 loop's three ->off accesses: struct
# evbuffer, not struct bufferevent, is what libevent 2 hides even behind its
# compatibility <event.h>.  Where gcc must point: each "->" before "off",
# found in the fixture by its line and byte column.
# bats test_tags=flaw
@test "still wrong in 2012 (comment 1): through event.h on libevent 2, each of the read loop's three bev->input->off is an invalid use of undefined type struct evbuffer" {
	local want got
	want=$(awk '{ s = $0; c = 0
		while ((i = index(s, "->off")) > 0) {
			c += i; print FILENAME ":" NR ":" c ": error: invalid use of undefined type '"'"'struct evbuffer'"'"'"
			s = substr(s, i + 1)
		} }' "$BATS_TEST_DIRNAME/history/read_loops.c")
	assert_equal "$(wc -l <<<"$want")" 3
	compile_loop READ_2012
	assert_failure
	got=$(grep ': error: ' <<<"$output")
	assert_equal "$got" "$want"
	# The same columns as comment 1's 129:19, 131:23 and 131:56: the
	# fixture indents its loop as the 2012 file did.
	assert_equal "$(cut -d: -f3 <<<"$got" | tr '\n' ' ')" "19 23 56 "
	refute_output --partial "struct bufferevent"
}

# A reader's reply to comment 1: a do-while of evbuffer_remove() calls that
# stops on a short read.  It never reads ->off, so it cures the error.
# bats test_tags=reference-only
@test "the reader's reply to comment 1 (an evbuffer_remove loop) compiles through event.h on libevent 2" {
	compile_loop READ_REPLY
	assert_success
	refute_output --partial "error"
}

# The author's commit of 2013-07-23: EVBUFFER_LENGTH(), a compatibility macro
# <event.h> brings in.  It compiles through <event.h>; with the public
# event2/ headers alone it fails, and then on struct bufferevent (bev->input),
# the readers' later point, not on struct evbuffer.
# bats test_tags=reference-only
@test "the 2013 fix (EVBUFFER_LENGTH) compiles through event.h on libevent 2; with event2/ headers alone it fails on struct bufferevent instead" {
	compile_loop READ_2013
	assert_success
	refute_output --partial "error"
	strict_event_h "$BATS_TEST_TMPDIR/strict"
	compile_loop READ_2013 "$BATS_TEST_TMPDIR/strict"
	assert_failure
	assert_output --partial "error: invalid use of undefined type 'struct bufferevent'"
	refute_output --partial "struct evbuffer'"
}

# The later, separate point, on this chapter's own code (the 2013 server):
# since 2013 the code compiles through <event.h>, which in libevent 2 is a
# compatibility header that pulls in event2/bufferevent_struct.h, and it
# still fails where the compiler sees only the public event2/ headers (the
# Makefile's strict-headers stub): bev->input reaches into struct
# bufferevent.  The build through <event.h> is the original's build line,
# the command comment 1 ran, with this chapter's file names and the flags
# pkg-config gives.
# bats test_tags=flaw,needs-source
@test "still wrong: built the readers' way (libevent 2's event2/ public headers only) it does not compile; built the author's way (through event.h) it does" {
	check_strict_headers_fail "$SOURCE_DIR"
	local cflags libs
	cflags=$(pkg-config --cflags libevent)
	libs=$(pkg-config --libs libevent)
	# shellcheck disable=SC2086 # pkg-config's flags are words
	run "${CC:-cc}" $cflags -o "$BATS_TEST_TMPDIR/echoserver_threaded" \
		"$SOURCE_DIR/echoserver.c" "$SOURCE_DIR/workqueue.c" $libs -lpthread
	assert_success
	run "$BATS_TEST_TMPDIR/echoserver_threaded" -h
	assert_output --partial "usage: echoserver"
}

# F18: chapter 3 never calls evthread_use_pthreads(), so no thread can wake
# another thread's event base.  SIGINT sent to one worker thread only
# (test/tools/tgkill.c: kill(1) lets the kernel pick the thread, and it picks the
# main one) runs sighandler() on that worker: event_base_loopexit() marks
# evbase_accept, but the main thread sleeps in epoll_wait() with nothing to
# wake it, and only an event of its own base, a connection, makes it look
# and exit.  Chapter 4's patch 2 makes the same signal stop the server at
# once (test/proofs/patches.bats).  A base woken from another thread exits its loop
# in milliseconds (5 ms measured on chapter 4 after patch 2): 3 s without an
# exit is 600 times that; the connection then ends it at the loop's next
# turn, and 5 s bounds that.
# bats test_tags=flaw
@test "still wrong: a SIGINT handled on a worker thread cannot wake the accept loop (no evthread_use_pthreads()): the server runs on until a client connects" {
	start_server -t 2 -v
	local tgkill=$BATS_FILE_TMPDIR/tgkill tid='' task fd
	[[ -x $tgkill ]] ||
		cc -std=c11 -o "$tgkill" "$BATS_TEST_DIRNAME/tools/tgkill.c" ||
		fail "cannot build test/tools/tgkill.c"
	# the workers start before the server says it listens
	for task in "/proc/$SERVER_PID/task"/*; do
		[[ ${task##*/} == "$SERVER_PID" ]] || tid=${task##*/}
	done
	[[ -n $tid ]] || fail "no worker thread"
	"$tgkill" "$SERVER_PID" "$tid" 2
	wait_for_lines "$SERVER_ERR" '^echoserver: Received signal 2' 1 5
	if wait_until 3 exited "$SERVER_PID"; then
		fail "the server exited after a signal on a worker: the accept loop was woken"
	fi
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	wait_exit "$SERVER_PID" 5
	exec {fd}>&-
	assert_equal "$STATUS" 0
}

# What is still wrong (d): the work queue is chapter 2's, shutdown and all.
# bats test_tags=flaw,needs-demo
@test "still wrong: the work queue's shutdown leaves all 4 idle workers alive" {
	run demo -w 4 -j 1000
	assert_success
	assert_line "jobs run: 1000"
	assert_line "workers alive after shutdown: 4"
}

# bats test_tags=flaw
@test "still wrong: out of descriptors, accepting spins at full CPU" {
	check_accept_spins -t 2
}

# F6: the signal handler calls what a signal handler must not.
# bats test_tags=flaw,needs-source
@test "still wrong: on SIGINT the signal handler makes calls that are not async-signal-safe (ThreadSanitizer)" {
	build_tsan "$SOURCE_DIR"
	local real=$ECHOSERVER
	ECHOSERVER=$TSAN_SERVER
	TSAN_OPTIONS="exitcode=0" start_server -t 2 ||
		cannot_run "a ThreadSanitizer build does not run here: $(head -3 "$SERVER_ERR")"
	ECHOSERVER=$real
	run roundtrip "before the signal"
	assert_output "before the signal"
	kill -INT "$SERVER_PID"
	# ThreadSanitizer's reports and its exit take a few seconds
	wait_exit "$SERVER_PID" 30
	run cat "$SERVER_ERR"
	assert_output --partial "WARNING: ThreadSanitizer: signal-unsafe call inside of a signal"
	assert_output --regexp "sighandler|killServer|event_base_once"
	echo "# built with $TSAN_CC" >&3
}

# F6 for real: the same handler, signalled while the server accepts.  The
# main thread is then often inside workqueue_add_job() holding jobs_mutex,
# or inside malloc() holding its lock, and the handler, on that same
# thread, waits for the lock for ever.  With -t 8 most workers wait on
# jobs_cond, so queueing a job wakes one with a system call made while
# jobs_mutex is held, and a signal is delivered as a system call returns.
# Chapter 3 has no graded test that signals its server, for that reason.
# signal-deadlock.bash says how many attempts, and why.
# bats test_tags=flaw,needs-source
@test "still wrong: a signal that lands while the server accepts can deadlock its handler: the server hangs, stuck in sighandler" {
	f6_build "$SOURCE_DIR" "$BATS_TEST_TMPDIR/f6"
	f6_hunt "$F6_ATTEMPTS" "$F6_SECONDS" "$BATS_TEST_TMPDIR" \
		"$BATS_TEST_TMPDIR/f6/echoserver" -t 8
	[[ -z $F6_ERROR ]] || fail "$F6_ERROR"
	((F6_HUNG)) || fail "no hang in $F6_TRIES attempts (at most $F6_ATTEMPTS in $F6_SECONDS s): every server exited within $F6_EXIT_BOUND s of SIGINT, the slowest after $F6_SLOWEST s"
	f6_show "$BATS_TEST_TMPDIR" | sed 's/^/# /' >&3
	f6_assert_stuck_in_handler "$BATS_TEST_TMPDIR"
}

# F7: after the accept loop, main() returns while workers run clients' loops.
# bats test_tags=flaw
@test "still wrong: on SIGINT a client owed megabytes of echo loses it: the server exits under its worker" {
	start_server -t 2
	# The client starts reading as the signal goes out (as in chapter 4's
	# test that it gets everything); main() returns within milliseconds,
	# ending the worker that was still sending the client megabytes.
	signal_held_client INT hold 64M
	local client_status=$STATUS
	wait_exit "$SERVER_PID" 2
	assert_equal "$STATUS" 0
	run cat "$HELD_OUT"
	echo "# ${output//$'\n'/; }" >&3
	assert_equal "$client_status" 1
	refute_output --partial "all echoed"
	assert_output --regexp "lost|reset"
}

# F9 with F8: the 10 s timeouts drop quiet clients, and that alone frees a
# worker held by one.  One test, so that the 10 s are waited for once.
# bats test_tags=flaw
@test "still wrong: quiet clients are dropped after about 10 s, and only then does a waiting client get its echo" {
	start_server -t 2
	local quiet arrived third reply rc=0 gone dropped served
	hold_clients 2
	# The held clients' last bytes are echoed: from here on they are quiet.
	quiet=$(now)
	# A stagger, not a wait for anything: the third client's own 10 s
	# count from its accept, not from when a worker takes it, so it must
	# come well after the others went quiet.  Had it come at once, it would
	# time out about when it is taken (reset, unserved); 3 s is far more
	# than a worker takes to pick it up, even on a busy machine.
	sleep 3
	exec {third}<>"/dev/tcp/127.0.0.1/$PORT"
	arrived=$(now)
	printf 'third\n' >&"$third"
	expect_no_echo "$third" 1 "${HELD[1]}"
	# That round trip made the second held client active again: the first
	# is the one that stays quiet, and the server drops it at 10 s.
	IFS= read -r -t 20 reply <&"${HELD[0]}" || rc=$?
	gone=$(now)
	((rc == 1)) && [[ -z $reply ]] ||
		fail "expected EOF on the quiet client, got '$reply' (read status $rc)"
	IFS= read -r -t 5 reply <&"$third" ||
		fail "no echo for the waiting client after a quiet one was dropped"
	assert_equal "$reply" "third"
	served=$(now)
	exec {third}>&-
	release_clients
	dropped=$(ms_since "$quiet" "$gone")
	echo "# quiet client dropped $(seconds_since "$quiet" "$gone")s after its last echo;" \
		"waiting client served $(seconds_since "$gone" "$served")s after that," \
		"$(seconds_since "$arrived" "$served")s after it came" >&3
	# Dropped 10 s after its last byte: not before (9.5 s allows for the
	# time between the server's read and the test's clock), and late by
	# 0.1 s at most on a busy machine (measured), where 3 s is allowed.
	((dropped >= 9500 && dropped <= 10000 + $(scaled 3000)))
	# Only then is the waiting client served: within 3 s of the drop (it
	# takes milliseconds), and before its own 10 s run out.
	(($(ms_since "$gone" "$served") < $(scaled 3000)))
	(($(ms_since "$arrived" "$served") < 10000))
}

# F10: the queue is last in, first out.
# bats test_tags=flaw
@test "still wrong: with -t 1, clients waiting for the worker are served newest first" {
	check_waiting_order newer
}

# F11: SO_REUSEADDR after bind(), as in chapter 1.
# bats test_tags=flaw
@test "still wrong: a restart right after a shutdown with a client connected fails: address in use" {
	check_restart_fails -t 2
}

# F16: a base per connection costs descriptors, and libevent exits without them.
# bats test_tags=flaw
@test "still wrong: out of descriptors for a client's event base, libevent exits the whole server" {
	check_base_exits
}

# Exercises (see step3-threaded-echo/README.md).
# With -t 1, client A holds the worker; B connects, and 1.3 s later C;
# a second after that A leaves, and each client that gets its echo leaves
# at once, freeing the worker for the other.  Each client's wait is known
# from the test's side: it was accepted between the start of its connect
# and its "connected" line, and taken between the moment the worker was
# freed for it and its echo.  Each logged wait must fall in its own window
# (20 ms of slack for the log's rounding): one timestamp shared by all
# clients gives B the time since C was accepted, 1.3 s short.
# bats test_tags=exercise
@test "exercise 1: with -v the server logs how long each client waited for a worker, each its own wait" {
	exercise 1
	start_server -t 1 -v
	local -A fd c0 c1 freed echo
	local x reply t
	c0[A]=$(now)
	hold_clients 1
	fd[A]=${HELD[0]} c1[A]=$(now) freed[A]=${c0[A]} echo[A]=${c1[A]}
	for x in B C; do
		c0[$x]=$(now)
		exec {t}<>"/dev/tcp/127.0.0.1/$PORT"
		fd[$x]=$t
		printf '%s\n' "$x" >&"$t"
		wait_for_lines "$SERVER_ERR" ': connected$' $((x == B ? 2 : 3))
		c1[$x]=$(now)
		# B waits about 2.3 s in all, C about 1 s: a wait counted in
		# whole seconds is off by 0.3 s at least for B
		expect_no_echo "$t" "$([[ $x == B ]] && echo 1.3 || echo 1)"
	done
	# A leaves; then whichever of B and C gets its echo leaves at once.
	t=$(now)
	release_clients
	local -A done=()
	while ((${#done[@]} < 2)); do
		for x in B C; do
			[[ -z ${done[$x]:-} ]] || continue
			IFS= read -r -t 0.05 reply <&"${fd[$x]}" || continue
			echo[$x]=$(now) freed[$x]=$t done[$x]=1
			assert_equal "$reply" "$x"
			t=$(now)
			# shellcheck disable=SC1083,SC2093 # closes the array element's descriptor
			exec {fd[$x]}>&-
		done
		# both are served within about a second of C's connect
		(($(awk -v s="$(seconds_since "${c1[C]}")" 'BEGIN { print (s < 7) }'))) ||
			fail "client B or C was never served"
	done
	local ports waited
	mapfile -t ports < <(sed -nE 's/^.*:([0-9]+): connected$/\1/p' "$SERVER_ERR")
	((${#ports[@]} == 3)) || fail "not 3 'connected' lines: $(cat "$SERVER_ERR")"
	local i=0
	for x in A B C; do
		waited=$(sed -nE "s/^.*:${ports[i]}: waited ([0-9.]+) s for a worker.*/\1/p" "$SERVER_ERR")
		i=$((i + 1))
		[[ -n $waited ]] || fail "no 'waited' line for client $x (port ${ports[i - 1]})"
		local lo hi
		lo=$(awk -v f="${freed[$x]}" -v a="${c1[$x]}" 'BEGIN { printf "%.3f", f - a }')
		hi=$(awk -v e="${echo[$x]}" -v a="${c0[$x]}" 'BEGIN { printf "%.3f", e - a }')
		echo "# client $x: logged ${waited} s, its wait was between $lo and $hi s" >&3
		(($(awk -v w="$waited" -v l="$lo" -v h="$hi" 'BEGIN { print (w >= l - 0.02 && w <= h + 0.02) }'))) ||
			fail "client $x logged $waited s, but waited between $lo and $hi s"
	done
}

# The chapter starts all -t threads with the server; a pool that starts a
# worker only for a job that finds none idle shows what a connection costs.
# Two clients that arrive while one worker is idle need a second worker,
# although the idle count says one is free until the woken worker runs:
# racehook.so makes that worker wake a second late, as a busy machine may,
# so a pool that starts a worker only when none is idle leaves one of the
# two unserved every time.  The hook's log says when the worker is idle.
# bats test_tags=exercise
@test "exercise 2: with -t 64 each connection takes a thread of its own: 1 thread with no client, 4 with 3 clients, two of them arriving as one worker is idle" {
	exercise 2
	local log=$BATS_TEST_TMPDIR/waits fd fds=() x reply
	start_server_racehook RACEHOOK_WAKE_DELAY_MS=1000 "RACEHOOK_LOG=$log" -- -t 64
	assert_equal "$(server_threads)" 1
	# one client comes and goes: its worker is left idle
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'first\n' >&"$fd"
	IFS= read -r -t 5 reply <&"$fd" || fail "the first client got no echo"
	exec {fd}>&-
	wait_for_lines "$log" '^wait$' 1 5
	# two arrive together
	for x in B C; do
		exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
		fds+=("$fd")
		printf '%s\n' "$x" >&"$fd"
	done
	# the woken worker runs 1 s late; 5 s is room for a busy machine
	for fd in "${fds[@]}"; do
		IFS= read -r -t 5 reply <&"$fd" ||
			fail "of two clients that arrived as one worker was idle, one got no echo: it waits for a worker that was never started"
	done
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	fds+=("$fd")
	wait_until 5 _server_threads_are 4 ||
		fail "$(server_threads) threads, not 4, with 3 clients connected"
	assert_equal "$(server_threads)" 4
	for fd in "${fds[@]}"; do
		exec {fd}>&-
	done
}

_server_threads_are() {
	(($(server_threads) == $1))
}

# bats test_tags=exercise,needs-source
@test "exercise 3: strict-headers no longer trips over struct bufferevent, and no source includes its definition" {
	exercise 3
	local dir=$SOURCE_DIR
	if [[ -n ${GRADE_BOXRUN:-} ]]; then
		dir=$(build_copy "$SOURCE_DIR" strict-headers) || fail "cannot copy $SOURCE_DIR to build it"
	fi
	run boxed make -s -C "$dir" strict-headers
	# the compiler ran: it succeeded, or it reported on echoserver.c
	((status == 0)) || assert_output --partial "echoserver.c:"
	refute_output --regexp "undefined type .struct bufferevent.|incomplete definition of type .struct bufferevent.|dereferencing pointer to incomplete type"
	# and not by bringing the struct's definition back
	run grep -nE '#include <event2/[a-z_]+_(struct|compat)\.h>' "$SOURCE_DIR"/*.[ch]
	assert_failure 1
}
