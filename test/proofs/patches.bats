#!/usr/bin/env bats
# Every patch of a chapter told as a series is proven: a test whose claim is
# the patch's lesson fails on the state before the patch and passes on the
# state after it.  Each state is built by test/proofs/patches.sh, as `make stage`
# builds it for a learner.

bats_load_library bats-support
bats_load_library bats-assert

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
# shellcheck source=test/server.bash
source "$ROOT/test/server.bash"
# shellcheck source=test/signal-deadlock.bash
source "$ROOT/test/signal-deadlock.bash"

# stage STEP K: build the state after patch K of chapter STEP (once per
# file) and print its directory.
stage() {
	local dir=$BATS_FILE_TMPDIR/step$1-$2
	if [[ ! -x $dir/echoserver && ! -x $dir/workqueue_demo ]]; then
		rm -rf "$dir"
		bash "$ROOT/test/proofs/patches.sh" apply "$1" "$2" "$dir" >&2 ||
			return 1
		make -s -C "$dir" >&2 || return 1
	fi
	echo "$dir"
}

# on_stage STEP K FILE REGEX: run FILE's tests whose names match REGEX
# against the state after patch K of chapter STEP; set status and output.
on_stage() {
	local dir
	dir=$(stage "$1" "$2") || fail "state $2 of chapter $1 does not build"
	# A state without the work queue's demo (chapter 5 drops it) leaves
	# WORKQUEUE_DEMO to the test file's default.
	local demo=$dir/workqueue_demo
	[[ -x $demo ]] || demo=
	# Each test bounds its own waits; this bounds the whole file, should
	# one of a state's flaws escape them (the slowest filter takes 60 s).
	run timeout -k 10 600 env ECHOSERVER="$dir/echoserver" \
		WORKQUEUE_DEMO="$demo" SOURCE_DIR="$dir" bats -f "$4" "$ROOT/test/$3"
	((status != 124 && status != 137)) ||
		fail "bats -f '$4' $3 on state $2 of chapter $1: still running after 600 s, killed"
}

# flips STEP K FILE REGEX: FILE's tests matching REGEX (at least one) each
# fail on the state before patch K, and each pass on the state after it.
flips() {
	on_stage "$1" $(($2 - 1)) "$3" "$4"
	assert_failure
	assert_line --regexp '^not ok [0-9]+ '
	refute_line --regexp '^ok [0-9]+ '
	on_stage "$1" "$2" "$3" "$4"
	assert_success
	assert_line --regexp '^ok [0-9]+ '
}

# flips_back STEP K FILE REGEX: the other way round, for a test that asserts
# a flaw ("still wrong: ..."): each passes before patch K and fails after it.
flips_back() {
	on_stage "$1" $(($2 - 1)) "$3" "$4"
	assert_success
	assert_line --regexp '^ok [0-9]+ '
	on_stage "$1" "$2" "$3" "$4"
	assert_failure
	assert_line --regexp '^not ok [0-9]+ '
	refute_line --regexp '^ok [0-9]+ '
}

# --- Chapter 4: one patch per fix --------------------------------------------

# alive_after_shutdown K ARGS...: the "workers alive after shutdown" count of
# chapter 4's workqueue_demo after patch K, run with ARGS, or "hung".  With
# -s every worker holds a job while the shutdown runs, so each meets
# terminate only after its job: who locks jobs_mutex first is never a race.
# 20 s: the demo bounds its own waits at 10 s, but a worker that leaves
# holding jobs_mutex can block whoever locks it next for good.
alive_after_shutdown() {
	local dir out
	dir=$(stage 4 "$1") || fail "state $1 of chapter 4 does not build"
	shift
	if ! out=$(timeout 20 "$dir/workqueue_demo" "$@"); then
		echo hung
		return 0
	fi
	sed -n 's/^workers alive after shutdown: //p' <<<"$out"
}

# serve_stage K ARGS...: in the caller's subshell, start chapter 4's server
# after patch K with ARGS on a free port (SERVER_PID, PORT, SERVER_ERR); the
# subshell stops it when it exits.
serve_stage() {
	local dir
	dir=$(stage 4 "$1") || {
		echo "state $1 of chapter 4 does not build"
		exit 1
	}
	shift
	STAGE_SERVER=$dir/echoserver
	SERVER_ERR=$BATS_TEST_TMPDIR/server.err
	trap 'server_stop "$SERVER_PID" 5' EXIT
	server_start 10 "$BATS_TEST_TMPDIR/server.out" "$SERVER_ERR" \
		"$STAGE_SERVER" -p 0 "$@" || exit 1
}

# signal_held_and_queued K SIG [LINE]: in a test's subshell, serve chapter
# 4's state K with -t 1 -v; one client, in HELD, holds the worker (it got
# its echo) and a second, on fd QUEUED, connected and having sent LINE if
# given, waits in the queue; send SIG and wait until the server logs that
# it stops its workers, just before workqueue_shutdown().  Each step takes
# milliseconds: 5 s bounds each wait.  Exits the subshell, saying why, on a
# failure.
signal_held_and_queued() {
	serve_stage "$1" -t 1 -v
	HELD=()
	hold_echoed 1 5 || {
		echo "no echo for the first client"
		exit 1
	}
	# on_accept() logs "connected" just before it queues the job
	exec {QUEUED}<>"/dev/tcp/127.0.0.1/$PORT"
	[[ -z ${3:-} ]] || printf '%s\n' "$3" >&"$QUEUED"
	wait_until 5 _logged "$SERVER_ERR" ': connected$' 2 || {
		echo "the second client was never queued"
		exit 1
	}
	kill -"$2" "$SERVER_PID"
	wait_until 5 _logged "$SERVER_ERR" '^echoserver: Stopping workers' 1 || {
		echo "the server never stopped its workers"
		exit 1
	}
}

# owed_on_shutdown K: on chapter 4's server after patch K, a client sends
# 64 MiB without reading, shuts down writing and stalls with megabytes of
# echo owed; SIGTERM; then it reads.  Print what the client says, its exit
# status, and the server's.  (Chapter 4's own test of this keeps the client
# writing, and only the drain of patch 13 ends that connection.)
owed_on_shutdown() {
	(
		serve_stage "$1" -t 2
		local fifo=$BATS_TEST_TMPDIR/go$1 out=$BATS_TEST_TMPDIR/hold$1.out w
		local holder
		make -s -C "$ROOT" test/tools/echoclient >&2
		mkfifo "$fifo"
		"$ROOT/test/tools/echoclient" -p "$PORT" -w -T 10000 hold 64M \
			<"$fifo" >"$out" 2>&1 3>&- &
		holder=$!
		exec {w}>"$fifo"
		wait_until 10 grep -q '^sent unread' "$out" || {
			echo "the client never stalled"
			exit 1
		}
		kill -TERM "$SERVER_PID"
		printf 'go\n' >&"$w"
		exec {w}>&-
		# the client gives up after 10 s (-T)
		server_wait "$holder" 15 || exit 1
		echo "client: $(tail -1 "$out"), status $STATUS"
		server_wait "$SERVER_PID" 5 || exit 1
		echo "server: status $STATUS"
	)
}

# restart_after_shutdown K: on chapter 4's server after patch K, with -t 1,
# one client holds the worker and a second one waits in the queue, connected
# and silent.  SIGINT; the first client leaves; the server exits, closing the
# waiting connection first while its client keeps its end open, so that end
# of it is still closing (FIN_WAIT2) on the port.  Print "restarted" when a
# new server listens on the same port at once, else why not.  Since patch 8
# the server waits for a connected client, up to its 10 s timeout, so the
# test chapter 3 has for this, which keeps its one client, cannot tell
# states 9 and 10 apart.
restart_after_shutdown() {
	(
		local port
		signal_held_and_queued "$1" INT
		port=$PORT
		# Should the worker take the queued connection before the shutdown
		# drops the queue, it serves it until the 10 s timeout and closes
		# it then, first all the same.
		close_held
		server_wait "$SERVER_PID" 15 || exit 1
		if server_start 10 "$BATS_TEST_TMPDIR/again.out" "$SERVER_ERR" \
			"$STAGE_SERVER" -p "$port" -t 1; then
			echo restarted
		else
			cat "$SERVER_ERR"
		fi
		exec {QUEUED}>&-
	)
}

# _logged FILE REGEX N: FILE has N lines that match REGEX.
_logged() {
	(($(grep -cE -- "$2" "$1") >= $3))
}

@test "chapter 4, patch 1: with libevent 2's public headers alone it compiles" {
	flips 4 1 step4.bats "it compiles with libevent 2.s public headers alone"
	flips_back 4 1 step3.bats "with libevent 2.s public headers alone it does not compile"
}

# signal_a_worker K: on chapter 4's server after patch K, with -t 2, send
# SIGINT to one worker thread only (test/tools/tgkill.c: kill(1) lets the kernel
# pick the thread).  Its handler runs on that worker
# and asks the accept loop, asleep in the main thread, to exit.  Print how
# the server took it.  A base woken from another thread exits its loop in
# milliseconds (5 ms measured); a base without locks has no way to be woken
# and sleeps without a timeout until a connection arrives, and none does:
# the 5 s bound is 1000 times the measured exit.
signal_a_worker() {
	(
		serve_stage "$1" -t 2 -v
		local tgkill=$BATS_FILE_TMPDIR/tgkill tid
		[[ -x $tgkill ]] ||
			cc -std=c11 -o "$tgkill" "$ROOT/test/tools/tgkill.c" || exit 1
		# the workers start before the server says it listens
		# shellcheck disable=SC2010 # the names are thread ids: digits
		tid=$(ls "/proc/$SERVER_PID/task" | grep -vx "$SERVER_PID" | head -1)
		[[ -n $tid ]] || {
			echo "no worker thread"
			exit 1
		}
		"$tgkill" "$SERVER_PID" "$tid" 2 || exit 1
		wait_until 5 _logged "$SERVER_ERR" '^echoserver: Received signal 2' 1 || {
			echo "the handler never ran"
			exit 1
		}
		if server_wait "$SERVER_PID" 5 2>/dev/null; then
			echo "exited, status $STATUS"
		else
			echo "still running 5 s after the signal"
		fi
	)
}

@test "chapter 4, patch 2: with evthread_use_pthreads() a signal handled on a worker wakes the accept loop, and the server stops" {
	run signal_a_worker 1
	echo "# state 1: $output" >&3
	assert_output "still running 5 s after the signal"
	run signal_a_worker 2
	echo "# state 2: $output" >&3
	assert_output "exited, status 0"
	# chapter 3's own still-wrong test of F18 flips with it
	flips_back 4 2 step3.bats "a SIGINT handled on a worker thread cannot wake the accept loop"
}

# The step-3 test runs the demo without -s, where a worker can also lock
# jobs_mutex before the shutdown does and leave holding it: then the demo
# hangs (1 run in 200 on state 3).  helper.bash's demo kills it after 20 s,
# and the test fails, as it should on state 3; the demo takes 0.2 s otherwise.
@test "chapter 4, patch 3: with the author's terminate check workers leave on shutdown, but the first leaves holding jobs_mutex: 3 of 4 stay" {
	flips_back 4 3 step3.bats "the work queue.s shutdown leaves all 4 idle workers alive"
	assert_equal "$(alive_after_shutdown 2 -w 4 -j 100 -s)" 4
	assert_equal "$(alive_after_shutdown 3 -w 4 -j 100 -s)" 3
}

@test "chapter 4, patch 4: a worker unlocks jobs_mutex before it leaves, so the other workers leave too" {
	flips 4 4 step4.bats "after shutdown no worker is left"
	assert_equal "$(alive_after_shutdown 3 -w 4 -j 100 -s)" 3
	assert_equal "$(alive_after_shutdown 4 -w 4 -j 100 -s)" 0
}

@test "chapter 4, patch 5: a failed pthread_create() is reported with the error it returned, not errno's" {
	flips 4 5 step4.bats "a failed pthread_create is reported with the error it returned"
	flips_back 4 5 step2.bats "a failed pthread_create is reported with errno.s stale error"
}

@test "chapter 4, patch 6: workqueue_shutdown() joins the workers: none is left when it returns, however late they wake" {
	flips 4 6 step4.bats "workqueue_shutdown returns only once every worker has left"
}

@test "chapter 4, patch 7: a failed workqueue_init stops and joins the threads it started" {
	flips 4 7 step4.bats "a failed workqueue_init stops and joins"
	flips_back 4 7 step2.bats "a failed workqueue_init leaves the 2 threads it started running"
}

# idle_worker PID: the one thread of PID, not its main thread, asleep on a
# futex (a worker waiting for a job; the others sleep in epoll); fails
# unless there is exactly one.
idle_worker() {
	local t found=()
	# shellcheck disable=SC2045 # the names are thread ids: digits
	for t in $(ls "/proc/$1/task"); do
		[[ $t != "$1" ]] || continue
		[[ $(cat "/proc/$1/task/$t/wchan" 2>/dev/null) == *futex* ]] &&
			found+=("$t")
	done
	((${#found[@]} == 1)) && IDLE_TID=${found[0]}
}

# signal_idle_worker K: on chapter 4's server after patch K, with -t 2, one
# client is connected and served, and SIGINT goes to the other worker, the
# idle one (test/tools/tgkill.c).  Print whether the server exits within 5 s with
# the client connected; if not, whether the client still gets its echo, and
# how the server exits once the client leaves.  The client is quiet, but
# its 10 s timeout cannot end it within those 5 s; a server that returns
# from main() exits in milliseconds: 5 s is a thousand times that.
signal_idle_worker() {
	(
		serve_stage "$1" -t 2 -v
		local tgkill=$BATS_FILE_TMPDIR/tgkill fd reply
		[[ -x $tgkill ]] ||
			cc -std=c11 -o "$tgkill" "$ROOT/test/tools/tgkill.c" || exit 1
		HELD=()
		hold_echoed 1 5 || {
			echo "no echo before the signal"
			exit 1
		}
		fd=${HELD[0]}
		wait_until 5 idle_worker "$SERVER_PID" || {
			echo "no single idle worker"
			exit 1
		}
		"$tgkill" "$SERVER_PID" "$IDLE_TID" 2 || exit 1
		if server_wait "$SERVER_PID" 5 2>/dev/null; then
			echo "exited within 5 s, a client still connected"
			exit 0
		fi
		printf 'second\n' >&"$fd"
		IFS= read -r -t 5 reply <&"$fd" || reply=
		echo "still running 5 s after the signal; echo: ${reply:-none}"
		exec {fd}>&-
		server_wait "$SERVER_PID" 5 || exit 1
		echo "once the client left: exited, status $STATUS"
	)
}

# Before patch 6 nothing waits for the workers: the server returns with a
# client's echo owed.  Patches 6 and 7 join, but from the signal handler:
# when the signal lands on a worker, the main thread's loop exits, main()
# returns and the process ends with the client connected (or, should the
# handler's worker come to join itself first, pthread_join() says EDEADLK
# and it aborts).  Patch 8 joins after the accept loop, whatever thread
# took the signal.
@test "chapter 4, patch 8: the server waits for every connection after the accept loop, not in the signal handler" {
	run signal_idle_worker 7
	echo "# state 7: ${output//$'\n'/; }" >&3
	assert_line "exited within 5 s, a client still connected"
	run signal_idle_worker 8
	echo "# state 8: ${output//$'\n'/; }" >&3
	assert_line "still running 5 s after the signal; echo: second"
	assert_line "once the client left: exited, status 0"
	run owed_on_shutdown 5
	echo "# state 5: ${output//$'\n'/; }" >&3
	assert_line --regexp '^client: .*(lost|reset).*, status 1$'
	run owed_on_shutdown 8
	echo "# state 8: ${output//$'\n'/; }" >&3
	assert_line --regexp '^client: .*all echoed.*, status 0$'
	assert_line "server: status 0"
}

# Patch 9 also ends the deadlock that chapter 3's still-wrong test provokes
# (test/signal-deadlock.bash): the same attempts, each a SIGINT sent while a client
# churns connections, find a server hung in its handler before the patch
# and none after it.
@test "chapter 4, patch 9: with signals taken as libevent events no signal handler makes unsafe calls (ThreadSanitizer), and a signal that lands while the server accepts no longer hangs it" {
	flips_back 4 9 step3.bats "the signal handler makes calls that are not async-signal-safe"
	local k dir
	# shellcheck disable=SC2034 # f6_hunt's client
	ECHOCLIENT=$ROOT/test/tools/echoclient
	make -s -C "$ROOT" test/tools/echoclient >&2
	for k in 8 9; do
		dir=$(stage 4 "$k") || fail "state $k of chapter 4 does not build"
		f6_build "$dir" "$BATS_TEST_TMPDIR/state$k"
		mkdir -p "$BATS_TEST_TMPDIR/hunt$k"
		f6_hunt "$F6_ATTEMPTS" "$F6_SECONDS" "$BATS_TEST_TMPDIR/hunt$k" \
			"$BATS_TEST_TMPDIR/state$k/echoserver" -t 8
		[[ -z $F6_ERROR ]] || fail "state $k: $F6_ERROR"
		if ((k == 8)); then
			((F6_HUNG)) || fail "state 8: no hang in $F6_TRIES attempts"
			f6_show "$BATS_TEST_TMPDIR/hunt8" | sed 's/^/# state 8: /' >&3
			f6_assert_stuck_in_handler "$BATS_TEST_TMPDIR/hunt8"
		else
			echo "# state 9: $F6_TRIES attempts, none hung; the slowest exit took ${F6_SLOWEST}s; exit statuses: $F6_STATUSES" >&3
			((!F6_HUNG)) || fail "state 9 hung: $(f6_show "$BATS_TEST_TMPDIR/hunt9")"
			assert_equal "$F6_TRIES" "$F6_ATTEMPTS"
			assert_equal "$F6_STATUSES" 0
		fi
	done
}

@test "chapter 4, patch 10: with SO_REUSEADDR before bind() a restart right after a shutdown binds the same port" {
	run restart_after_shutdown 9
	assert_output --partial "Address already in use"
	run restart_after_shutdown 10
	assert_output "restarted"
}

@test "chapter 4, patch 11: queued jobs run oldest first" {
	flips 4 11 step4.bats "queued jobs run in arrival order"
	flips_back 4 11 step2.bats "queued jobs run newest first"
}

# queued_at_shutdown K: on chapter 4's server after patch K, with -t 1,
# one client holds the worker and a second one, connected, has sent a line
# and waits in the queue.  SIGTERM; once the server stops its workers, the
# first client leaves.  Print the line the waiting client reads back, or
# "nothing".  Before patch 12 the shutdown drops the queued job and the
# server exits without serving it; after it the worker takes the job and
# echoes the line within milliseconds: 5 s bounds the read.
queued_at_shutdown() {
	(
		local reply
		signal_held_and_queued "$1" TERM waiting
		close_held
		# closed unserved, with its line unread, it may read a reset
		IFS= read -r -t 5 reply <&"$QUEUED" 2>/dev/null || reply=
		echo "${reply:-nothing}"
		exec {QUEUED}>&-
	)
}

@test "chapter 4, patch 12: on shutdown the jobs still queued run: a connection waiting for a worker is served" {
	flips 4 12 step4.bats "jobs still queued runs them all"
	run queued_at_shutdown 11
	assert_output "nothing"
	run queued_at_shutdown 12
	assert_output "waiting"
}

# On state 12 the server waits for its clients, which the test has left
# connected when it fails: teardown kills it 2 s after its SIGTERM.  The
# other shutdown tests of step4.bats that fail on state 12 and pass on state
# 13 (the busy clients', the half-closed readers', the chatty clients', the
# owed megabytes' and the restart with a client connected: step4.bats run
# on each state, 2026-12-02) are left out: on state 12 each waits out its
# client's timeouts, and these three already show the drain, its deadline
# and its reset.
@test "chapter 4, patch 13: on shutdown every connection, queued ones too, gets its echo and EOF within the deadline, or a reset when cut" {
	flips 4 13 step4.bats "a client still waiting for a worker gets its echo too|still queued at the deadline end with a reset|cut at the deadline get a reset"
}

# Before patch 14 a drained connection is closed while its client may still
# send: the late byte draws a reset, and the reset destroys the echo the
# client has not read yet.
@test "chapter 4, patch 14: a drained connection closes lingering, so a byte its client sends late draws no reset and the echo arrives whole" {
	flips 4 14 step4.bats "one more byte 300 ms later gets all its echo"
}

# --- Chapter 5: the threading model, the hot path, one patch per defence -----

# Patch 1, one event base per thread: the 500th client is served on 2
# threads, where chapter 4 served 2 clients and kept the third waiting.
@test "chapter 5 patch 1 (a base per thread): with -t 2 a third and a 500th client are served, and not before" {
	flips 5 1 step5.bats "^fixed: with -t 2, a third and a 500th client get their echo"
}

# Patch 1 fixes F8 and F16: chapter 4's flaw tests stop passing.
@test "chapter 5 patch 1 (a base per thread): chapter 4's third client no longer waits, and no base per connection exits the server" {
	flips_back 5 1 step4.bats "^still wrong: with -t 2, a third client waits"
	flips_back 5 1 step4.bats "^still wrong: out of descriptors for a client's event base"
}

# Patch 1 keeps chapter 4's drain: its shutdown tests pass on both sides.
@test "chapter 5 patch 1 (a base per thread): chapter 4's drain tests still pass after it" {
	on_stage 5 1 step4.bats "^fixed: on (SIGINT|SIGTERM)"
	assert_success
	assert_line --regexp '^ok [0-9]+ fixed: on SIGTERM with -t 1 and three clients'
}

# Patch 2, the hot path: strace counts 7 system calls per echo before it and
# 3 after it; the test's bound is 4.
@test "chapter 5 patch 2 (the hot path): an echo costs at most 4 system calls, and not before" {
	need strace strace
	flips 5 2 step5.bats "^the hot path: one echo costs the server at most 4 system calls"
}

# Patch 3: a worker whose loop fails stops the server (exit 1), and a late
# signal cannot change the exit status; before it, the server ran on
# without that worker, and a SIGTERM while it freed its signal events
# ended it with 143.
@test "chapter 5 patch 3 (a failing loop stops the server): a worker's failed loop makes the server exit 1, a late SIGTERM leaves exit 0, and not before" {
	need cc gcc
	flips 5 3 step5.bats "^a worker whose event loop fails stops the server|^a SIGTERM that comes while the server frees"
}

# Patch 4: out of descriptors, accepting pauses instead of spinning; before
# it, chapter 4's spin is still there.
@test "chapter 5 patch 4 (accepting pauses): out of descriptors accepting pauses, and spins before it" {
	need prlimit util-linux
	flips 5 4 step5.bats "^fixed: out of descriptors, accepting pauses instead of spinning|^out of descriptors with 4,000 connections in the backlog"
	flips_back 5 4 step4.bats "^still wrong: out of descriptors, accepting spins"
}

# Patch 5 replaces the 10 s timeouts with -i: the quiet client stays, an
# idle one goes when asked, and one cut with echo owed gets a reset.
@test "chapter 5 patch 5 (-i): idle clients close after -i, cut ones with a reset, and a client quiet for 10 s is no longer dropped" {
	flips 5 5 step5.bats "^-i 3 resets a client that never reads|^-i 1 closes an idle client within 1 to 3 s|^-i 3 on clients that do not read|^-i 1: clients closed idle that then trickle"
	flips_back 5 5 step4.bats "^still wrong: a client quiet for 10 s is dropped"
}

# Patch 6, -c: the limit holds, and refused clients, trickling or by the
# hundred, are let go within the linger bound.
@test "chapter 5 patch 6 (-c): the limit serves exactly 10 of 15, and refused clients cannot linger or starve the rest" {
	need prlimit util-linux
	flips 5 6 step5.bats "^-c 10 serves exactly 10 of 15|^-c 1: refused clients that trickle|^-c 20 at 128 descriptors|^-t 500 at 1,024 descriptors|^-c too large for the descriptor limit|^-c 2 at 32, 64 and 128|^-c 2: a client refused on one worker"
}

# Patch 7: what the kernel holds for a client that never reads is capped;
# before it, its send buffer alone grew to megabytes of echo.
@test "chapter 5 patch 7 (socket buffers): a client that never reads costs the server under 1.25 MiB, and megabytes before" {
	flips 5 7 step5.bats "^16 clients that never read cost the server under 1.25 MiB"
	flips_back 5 7 step4.bats "^still wrong: a client that never reads makes the server's kernel hold megabytes"
}
