#!/usr/bin/env bats
# make handout: the lab archive for a chapter stands alone.  (About 15 s:
# it runs the chapter's tests inside the unpacked archive.)

bats_load_library bats-support
bats_load_library bats-assert

ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
# shellcheck source=test/server.bash
source "$ROOT/test/server.bash"

@test "make handout STEP=2 writes a lab of chapters 1 and 2 without the solutions, in which plain make test and make grade pass" {
	git -C "$ROOT" rev-parse --verify -q HEAD >/dev/null || cannot_run "needs a git checkout"
	local lab=$BATS_TEST_TMPDIR/lab2.tar.gz
	run timeout 300 make -s -C "$ROOT" handout STEP=2 OUT="$lab"
	echo "$output"
	assert_success
	assert_line --regexp '^handout: make test: tests 1\.\.[0-9]+$'
	assert_line --regexp '^handout: make grade: score: ([0-9]+)/\1 passed$'
	assert_line "handout: $lab stands alone"
	run tar -tzf "$lab"
	assert_line "lab2/step1-single-thread/echoserver.c"
	assert_line "lab2/step2-workqueue/workqueue.c"
	assert_line "lab2/test/step2.bats"
	refute_line --regexp '^lab2/step[3-9]'
	refute_line --regexp '^lab2/test/(solutions/|solutions\.bats|wrong-answers\.bats|step[3-9]\.bats|docs\.bats|grade\.bats|tools\.bats)'
	refute_line --regexp '\.patch$'
}
