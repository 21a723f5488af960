# signal-deadlock.bash: make chapter 3's signal handler deadlock (flaw F6)
# on purpose, and show where the hung server waits.  Its functions and
# variables are named for the flaw (f6_hunt, F6_ATTEMPTS, ...).
#
# Sourced by step3.bats, whose still-wrong test shows the hang, and by
# patches.bats, which shows that chapter 4's patch 9 ends it.

# The F6_ variables are for the tests that source this file.
# shellcheck disable=SC2034

# shellcheck source=test/server.bash
source "${BASH_SOURCE[0]%/*}/server.bash"

# How long a server has to exit after SIGINT before it counts as hung, in
# seconds.  While a client churns, chapter 3 exits 2-80 ms after the signal,
# and chapter 4 after patch 9 (which waits for its workers) within 0.36 s,
# on a 2-core machine shared with other test runs; a deadlocked server
# never does.
F6_EXIT_BOUND=3

# How many servers to try (with -t 8), and for how long at most.  Measured
# on a 2-core machine shared with other test runs, 2026-12-02: chapter 3
# hung after 1 to 19 attempts in 50 runs of its test (median 2); chapter 4
# before patch 9, whose handler can only deadlock on malloc's lock or its
# base's, after 2 to 213 in 34 hunts (mean 68; 129 in the 4 of them the
# patch test made): even at 1 hang in 130 attempts, 1000 miss it about
# once in 2000 runs.  After patch 9 an attempt takes 0.06-0.12 s: all
# 1000 in 60-120 s; the 600 s only stop a hunt on a machine far slower.
F6_ATTEMPTS=1000
F6_SECONDS=600

# f6_hunt ATTEMPTS SECONDS DIR COMMAND...: up to ATTEMPTS times, and no
# more attempts once SECONDS have passed, start COMMAND -p 0 (a server),
# keep a client connecting to it, one connection after another, each
# sending a byte, and send the server SIGINT while the client is at it.
# Stop at the first server that has not exited F6_EXIT_BOUND s after the
# signal: print its threads' stacks (gdb, else each thread's wchan) to
# DIR/stacks, then kill it.  Every server the function starts is gone when
# it returns; while one runs it is in SERVER_PIDS, so that a test stopped
# half-way stops it in teardown.  Sets F6_TRIES (attempts made), F6_HUNG (1
# if a server hung, else 0), F6_PID (the hung server's process id),
# F6_SLOWEST (the slowest exit, in seconds), F6_STATUSES (the exit statuses
# seen, each once) and F6_ERROR (why it stopped early, if it did).
f6_hunt() {
	local attempts=$1 end=$((EPOCHSECONDS + $2)) dir=$3 churner start pid
	local status lines line fifo=$3/churn
	shift 3
	rm -f "$fifo"
	mkfifo "$fifo" || {
		F6_ERROR="cannot make $fifo"
		return 0
	}
	F6_TRIES=0 F6_HUNG=0 F6_PID='' F6_SLOWEST=0 F6_STATUSES='' F6_ERROR=''
	while ((F6_TRIES < attempts && EPOCHSECONDS < end)); do
		F6_TRIES=$((F6_TRIES + 1))
		if ! server_start 10 "$dir/f6.out" "$dir/f6.err" "$@" -p 0 \
			2>"$dir/f6.start"; then
			F6_ERROR="attempt $F6_TRIES: the server did not start: $(cat "$dir/f6.start" "$dir/f6.err")"
			_f6_kill "$SERVER_PID"
			return 0
		fi
		pid=$SERVER_PID
		SERVER_PIDS+=("$pid")
		# At most 5 s of connections, 100 000 of them: the client ends
		# by itself even if nothing stops it.  Its line after its first
		# 100 connections comes through a pipe the test reads at once:
		# the signal goes out while the server is accepting, before the
		# clients queued behind its workers cost it all its descriptors.
		exec {lines}<>"$fifo"
		"$ECHOCLIENT" -p "$PORT" -T 5000 churn 100000 \
			>"$fifo" 2>"$dir/churn.err" 3>&- &
		churner=$!
		if ! IFS= read -r -t 5 line <&"$lines" ||
			[[ $line != churning* ]]; then
			F6_ERROR="attempt $F6_TRIES: the client never got going: $line $(cat "$dir/churn.err")"
			exec {lines}<&-
			_f6_kill "$churner"
			_f6_stop "$pid"
			return 0
		fi
		exec {lines}<&-
		if exited "$pid"; then
			F6_ERROR="attempt $F6_TRIES: the server exited before the signal: $(cat "$dir/f6.err")"
			_f6_kill "$churner"
			_f6_stop "$pid"
			return 0
		fi
		start=$(now)
		kill -INT "$pid" 2>/dev/null || true
		if server_wait "$pid" "$F6_EXIT_BOUND" 2>/dev/null; then
			unset 'SERVER_PIDS[-1]'
			_f6_kill "$churner"
			status=$STATUS
			[[ " $F6_STATUSES " == *" $status "* ]] ||
				F6_STATUSES="${F6_STATUSES:+$F6_STATUSES }$status"
			F6_SLOWEST=$(awk -v a="$F6_SLOWEST" -v b="$ELAPSED" \
				'BEGIN { print (b > a ? b : a) }')
			continue
		fi
		_f6_kill "$churner"
		F6_HUNG=1 F6_PID=$pid
		echo "attempt $F6_TRIES: the server (pid $pid) has not" \
			"exited $(seconds_since "$start") s after SIGINT" >"$dir/stacks"
		f6_stacks "$pid" >>"$dir/stacks" 2>&1
		_f6_stop "$pid"
		return 0
	done
}

# _f6_kill PID: end PID at once and reap it.
_f6_kill() {
	kill -KILL "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

# _f6_stop PID: the same for the server, the last in SERVER_PIDS: SIGKILL,
# since a deadlocked server has taken SIGTERM already, and its handler waits
# for ever.
_f6_stop() {
	_f6_kill "$1"
	unset 'SERVER_PIDS[-1]'
}

# f6_stacks PID: every thread's stack, from gdb (60 s at most: attaching and
# reading the symbols of a few libraries takes 1-3 s), or, without gdb, the
# kernel function each thread sleeps in (wchan).
f6_stacks() {
	if command -v gdb >/dev/null; then
		# no debuginfod: a test does not fetch symbols from the network
		DEBUGINFOD_URLS='' timeout 60 gdb -nx -batch -p "$1" \
			-iex 'set debuginfod enabled off' \
			-ex 'thread apply all bt' </dev/null 2>&1 || true
		return 0
	fi
	local task
	for task in /proc/"$1"/task/*; do
		echo "thread ${task##*/}: wchan $(cat "$task/wchan" 2>/dev/null)"
	done
}

# f6_build SOURCE COPY: build SOURCE's echoserver in COPY, optimised as
# usual but with every call kept a call (no sibling-call optimisation), so
# that a trace shows each function the signal handler went through:
# killServer() ends by calling workqueue_shutdown(), and -O2 alone turns
# that call into a jump that leaves killServer() and sighandler() out.
# When grading (test/grade/grade.sh's GRADE_BOXRUN), the build runs in the box, in
# its scratch directory, and COPY/echoserver runs the server built there in
# the box, under the same process id.
f6_build() {
	local built=$2
	rm -rf "$2"
	if [[ -n ${GRADE_BOXRUN:-} ]]; then
		built=$GRADE_SCRATCH/f6
		"$GRADE_BOXRUN" rm -rf "$built"
	fi
	${GRADE_BOXRUN:+"$GRADE_BOXRUN"} cp -r "$1" "$built"
	${GRADE_BOXRUN:+"$GRADE_BOXRUN"} make -s -C "$built" clean >/dev/null
	${GRADE_BOXRUN:+"$GRADE_BOXRUN"} make -s -C "$built" CFLAGS='-O2 -g -fno-optimize-sibling-calls' echoserver >&2 ||
		return
	[[ -n ${GRADE_BOXRUN:-} ]] || return 0
	mkdir -p "$2"
	printf '#!/bin/sh\nexec '"'%s' '%s'"' "$@"\n' "$GRADE_BOXRUN" "$built/echoserver" >"$2/echoserver"
	chmod 755 "$2/echoserver"
}

# f6_show DIR: print the hung server's main thread as f6_hunt found it in
# DIR/stacks, one frame a line without addresses and arguments, from the
# lock it waits on down to the code the signal interrupted (on_accept());
# without gdb, every thread's wchan.
f6_show() {
	local stacks=$1/stacks
	head -1 "$stacks"
	if ! grep -q '^Thread ' "$stacks"; then
		grep '^thread ' "$stacks"
		return 0
	fi
	awk -v lwp="(LWP $F6_PID)" '
		/^Thread / { main = index($0, lwp) > 0; next }
		main && /^$/ { exit }
		main && /^#/ { print; if (/ on_accept /) exit }
	' "$stacks" >"$1/main"
	sed -E -e 's/^(#[0-9]+) +(0x[0-9a-f]+ in )?/\1 /' \
		-e 's/ \(.*\) (at|from) / \1 /' "$1/main"
	# the lock the first frame waits on, as gdb names its address
	sed -nE '1s/.*futex_word=[^<]*<([^>]*)>.*/the lock: \1/p' "$1/main"
}

# f6_assert_stuck_in_handler DIR: the hung server's main thread is inside
# its signal handler: the frames above "<signal handler called>" name
# sighandler() and killServer(), and the first frame waits for a lock.
# Without gdb: the main thread sleeps in a futex wait (wchan).
f6_assert_stuck_in_handler() {
	local trace handler
	if ! grep -q '^Thread ' "$1/stacks"; then
		grep -qE "^thread $F6_PID: wchan .*futex" "$1/stacks" ||
			fail "the main thread is not in a futex wait: $(cat "$1/stacks")"
		return 0
	fi
	trace=$(f6_show "$1")
	[[ $trace == *"#0 "* ]] ||
		fail "no main thread (LWP $F6_PID) in the trace: $(cat "$1/stacks")"
	[[ $trace == *"<signal handler called>"* ]] ||
		fail "the main thread is not in a signal handler: $trace"
	handler=$(sed -n '/<signal handler called>/q;p' <<<"$trace")
	grep -q ' sighandler ' <<<"$handler" ||
		fail "no sighandler() above the signal frame: $trace"
	grep -q ' killServer ' <<<"$handler" ||
		fail "no killServer() above the signal frame: $trace"
	grep -qE 'lll_lock_wait|pthread_mutex_lock|malloc|calloc' <<<"$handler" ||
		fail "the handler waits for no lock: $trace"
}
