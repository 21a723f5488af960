#!/usr/bin/env bats
# Chapter 2: a pthread work queue, with the 2012 original's shutdown flaws.
# Run against another demo with: WORKQUEUE_DEMO=path/to/workqueue_demo bats test/step2.bats

: "${WORKQUEUE_DEMO:=$BATS_TEST_DIRNAME/../step2-workqueue/workqueue_demo}"
load helper

@test "every one of 1000 jobs runs exactly once on 4 workers" {
	run "$WORKQUEUE_DEMO" -w 4 -j 1000
	assert_success
	assert_line "jobs run: 1000"
}

@test "jobs run in parallel: 4 jobs that need each other all finish on 4 workers" {
	run "$WORKQUEUE_DEMO" -w 4 -b
	assert_success
	assert_line "barrier: passed"
}

@test "a job can add jobs: 500 jobs each adding one more run 1000 jobs" {
	run "$WORKQUEUE_DEMO" -w 4 -j 500 -c
	assert_success
	assert_line "jobs run: 1000"
}

@test "a count that is not a positive number is a usage error (exit 2)" {
	for bad in "-w 0" "-w x" "-j -1" "-x"; do
		# shellcheck disable=SC2086
		run "$WORKQUEUE_DEMO" $bad
		assert_equal "$status" 2
	done
}

# What is still wrong: the shutdown broadcast wakes the idle workers, they
# find no job, and the wait loop puts them back to sleep for good.
@test "still wrong: after shutdown all 4 idle workers are still alive" {
	run "$WORKQUEUE_DEMO" -w 4 -j 1000
	assert_success
	assert_line "workers alive after shutdown: 4"
}

@test "still wrong: no worker leaves, whatever the number of workers" {
	for n in 1 2 8; do
		run "$WORKQUEUE_DEMO" -w "$n" -j 100
		assert_success
		assert_line "workers alive after shutdown: $n"
	done
}

# Exercises (see step2-workqueue/README.md).
@test "exercise 1: -s shuts down without waiting and counts the jobs dropped" {
	exercise 1
	run timeout 10 "$WORKQUEUE_DEMO" -w 2 -j 1000 -s
	((status != 124)) || fail "the demo hung in workqueue_shutdown(): a worker saw terminate with jobs queued and left holding jobs_mutex"
	assert_success
	local ran dropped
	ran=$(sed -n 's/^jobs run: //p' <<<"$output")
	dropped=$(sed -n 's/^jobs dropped: //p' <<<"$output")
	[[ -n $ran && -n $dropped ]] || fail "expected 'jobs run: N' and 'jobs dropped: M'"
	assert_equal $((ran + dropped)) 1000
	((dropped > 0)) || fail "no job was dropped: did the demo wait?"
}
