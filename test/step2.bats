#!/usr/bin/env bats
# Chapter 2: a pthread work queue, with the 2012 original's shutdown flaws.
# Run against another demo with: WORKQUEUE_DEMO=path/to/workqueue_demo bats test/step2.bats

: "${WORKQUEUE_DEMO:=$BATS_TEST_DIRNAME/../step2-workqueue/workqueue_demo}"
load helper

# bats test_tags=needs-demo
@test "every one of 1000 jobs runs exactly once on 4 workers" {
	run demo -w 4 -j 1000
	assert_success
	assert_line "jobs run: 1000"
}

# bats test_tags=needs-demo
@test "jobs run in parallel: 4 jobs that need each other all finish on 4 workers" {
	run demo -w 4 -b
	assert_success
	assert_line "barrier: passed"
}

# bats test_tags=needs-demo
@test "a job can add jobs: 500 jobs each adding one more run 1000 jobs" {
	run demo -w 4 -j 500 -c
	assert_success
	assert_line "jobs run: 1000"
}

# bats test_tags=needs-demo
@test "a count that is not a positive number is a usage error (exit 2)" {
	local bad
	for bad in "-w 0" "-w x" "-j -1" "-x" "-w 1001" "-w 1 extra" "-o -w 2" "-s -o" "-f 4 -w 4"; do
		# shellcheck disable=SC2086
		run demo $bad
		assert_equal "$status" 2
		assert_output --partial "usage: workqueue_demo"
	done
}

# bats test_tags=needs-demo
@test "a count must be plain digits: a sign, a space, a suffix or nothing is a usage error (exit 2)" {
	local bad
	for bad in " 1" "+1" "-0" "1x" "" "0x10" "99999999999"; do
		run demo -w "$bad"
		assert_equal "$status" 2
		assert_output --partial "invalid worker count"
	done
}

# What is still wrong (F2): the shutdown broadcast wakes the idle workers, they
# find no job, and the wait loop puts them back to sleep for good.
# bats test_tags=flaw,needs-demo
@test "still wrong: after shutdown all 4 idle workers are still alive" {
	run demo -w 4 -j 1000
	assert_success
	assert_line "workers alive after shutdown: 4"
}

# bats test_tags=flaw,needs-demo
@test "still wrong: no worker leaves, whatever the number of workers" {
	for n in 1 2 8; do
		run demo -w "$n" -j 100
		assert_success
		assert_line "workers alive after shutdown: $n"
	done
}

# F5: with both workers held in a job and 98 jobs queued, the shutdown forgets
# the queue.  The two held jobs finish; the 98 never run.
# bats test_tags=flaw,needs-demo
@test "still wrong: a shutdown with 98 jobs queued drops them: 2 of 100 jobs run" {
	run demo -w 2 -j 100 -s
	assert_success
	assert_line "jobs added: 100"
	assert_line "jobs run: 2"
}

# F10: job 1 holds the only worker while jobs 2..5 are queued; each new job is
# pushed at the head, where the worker takes the next one.
# bats test_tags=flaw,needs-demo
@test "still wrong: queued jobs run newest first: 1 5 4 3 2" {
	run demo -j 5 -o
	assert_success
	assert_line "order: 1 5 4 3 2"
}

# F17: with address space for two thread stacks only, the third
# pthread_create() fails; workqueue_init() returns 1 and the two threads it
# started run on, on a queue the caller has given up.
# bats test_tags=flaw,needs-demo
@test "still wrong: a failed workqueue_init leaves the 2 threads it started running" {
	run demo -w 4 -f 2
	assert_success
	assert_line "workers alive after failed init: 2"
}

# F19: the same -f run, where the third pthread_create() fails for want of
# address space for its stack and returns EAGAIN ("insufficient resources",
# POSIX).  It sets no errno; the failed mmap() of the stack inside it left
# errno at ENOMEM, and perror() prints that.  Chapter 4 prints the EAGAIN.
# bats test_tags=flaw,needs-demo
@test "still wrong: a failed pthread_create is reported with errno's stale error, not the EAGAIN it returned" {
	run demo -w 4 -f 2
	assert_success
	assert_line --regexp '^(workqueue_demo: )?workqueue_init: pthread_create: '
	refute_line --regexp 'pthread_create: Resource temporarily unavailable$'
}

# Exercises (see step2-workqueue/README.md).
# The shutdown's broadcast races with whatever it writes after the unlock:
# racehook.so holds it there until every woken worker has gone back to
# sleep or left, so a terminate set too late is missed every time.  Idle for
# 500 ms (-i), workers asleep on jobs_cond are never runnable (measured:
# 0 ms); four that poll are runnable the whole time, on a CPU or waiting for
# one (measured: 1993 ms, and 1994 ms with two busy loops beside them, which
# cut their CPU from 480 ms to 92 ms): the runnable time rejects a poller
# however busy the machine is, where its CPU time alone did not.  Where the
# kernel keeps no schedstat, the CPU time is the check: asleep, 0 ms.
# bats test_tags=exercise,needs-demo
@test "exercise 1: with terminate checked in the wait loop, every worker leaves, and an idle worker sleeps" {
	exercise 1
	run with_racehook RACEHOOK_AFTER_BROADCAST=1 -- timeout 20 "$WORKQUEUE_DEMO" -w 4 -j 1000 -i
	assert_success
	assert_line "jobs run: 1000"
	assert_line "workers alive after shutdown: 0"
	local cpu runnable
	cpu=$(sed -nE 's/^cpu while idle: ([0-9]+) ms.*/\1/p' <<<"$output")
	[[ -n $cpu ]] || fail "no 'cpu while idle' line"
	((cpu < 50)) || fail "idle workers used $cpu ms of CPU in 500 ms: they poll instead of waiting on jobs_cond"
	runnable=$(sed -nE 's/^runnable while idle: ([0-9]+) ms.*/\1/p' <<<"$output")
	[[ -n $runnable ]] || assert_line "runnable while idle: unknown (no schedstat)"
	[[ -z $runnable ]] || ((runnable < 250)) ||
		fail "idle workers were runnable $runnable ms in 500 ms: they poll instead of waiting on jobs_cond"
}

# bats test_tags=exercise,needs-demo
@test "exercise 2: a shutdown runs the jobs still queued: 100 of 100" {
	exercise 2
	run demo -w 2 -j 100 -s
	assert_success
	assert_line "jobs run: 100"
}

# bats test_tags=exercise,needs-demo
@test "exercise 3: queued jobs run oldest first: 1 2 3 4 5" {
	exercise 3
	run demo -j 5 -o
	assert_success
	assert_line "order: 1 2 3 4 5"
}

# The demo counts the threads the moment workqueue_init() returns, and
# racehook.so makes each woken worker wake 200 ms late: threads that were
# only told to stop are still there; joined ones are gone.  A join of a
# worker that never leaves never returns: 5 s ends it, where a right answer
# takes 0.2 s.
# bats test_tags=exercise,needs-demo
@test "exercise 4: a failed workqueue_init leaves no thread behind: each is gone when it returns" {
	exercise 4
	run with_racehook RACEHOOK_WAKE_DELAY_MS=200 -- timeout 5 "$WORKQUEUE_DEMO" -w 4 -f 2
	assert_success
	assert_line "workers alive after failed init: 0"
}
