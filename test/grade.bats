#!/usr/bin/env bats
# make grade (test/grade.sh): it passes the reference, fails a broken copy
# naming the test, and fails closed on a directory that lacks a part.

bats_load_library bats-support
bats_load_library bats-assert

ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)

# grade STEP DIR: run the grader with a bound.  A graded chapter 2 takes 2 s
# here (6 s with the broken copy's 5 s barrier wait), a filtered chapter 1 or 3
# a few seconds, most of it the build; 120 s is room for a busy machine.
grade() {
	run timeout 120 bash "$ROOT/test/grade.sh" "$@"
	echo "$output"
}

# student STEP: a student's copy of chapter STEP's sources (what git tracks,
# nothing built) in $STUDENT.
student() {
	local ref
	ref=$(cd "$ROOT" && ls -d "step$1-"*)
	STUDENT=$BATS_TEST_TMPDIR/student/$ref
	mkdir -p "$STUDENT"
	(cd "$ROOT/$ref" && cp Makefile ./*.[ch] "$STUDENT/")
}

@test "the reference chapter 2 passes every graded test; its flaw tests are not run and its tree is not written" {
	student 2
	local before after n
	before=$(cd "$STUDENT" && ls -l --time-style=full-iso)
	n=$(bats -c --filter-tags '!flaw,!exercise,!reference-only' "$ROOT/test/step2.bats")
	grade 2 "$STUDENT"
	assert_success
	assert_line --regexp '^pass +every one of 1000 jobs runs exactly once on 4 workers$'
	assert_line "score: $n/$n passed"
	refute_line --regexp '^(pass|FAIL|skip) +(still wrong|exercise)'
	after=$(cd "$STUDENT" && ls -l --time-style=full-iso)
	assert_equal "$after" "$before"
}

@test "chapter 4's fixed work queue graded as chapter 2 passes: the flaws it no longer has are not held against it" {
	grade 2 "$ROOT/step4-shutdown-fixes"
	assert_success
	assert_line --regexp '^score: ([0-9]+)/\1 passed$'
}

@test "a chapter 2 copy that starts one worker too few fails, and the table names the test it fails" {
	student 2
	sed -i 's/for (i = 0; i < numWorkers; i++)/for (i = 1; i < numWorkers; i++)/' "$STUDENT/workqueue.c"
	grep -q 'for (i = 1; i < numWorkers' "$STUDENT/workqueue.c"
	grade 2 "$STUDENT"
	assert_equal "$status" 1
	assert_line --regexp '^FAIL +jobs run in parallel: 4 jobs that need each other all finish on 4 workers$'
	assert_line --regexp '^score: [0-9]+/[0-9]+ passed$'
	refute_line --regexp '^score: ([0-9]+)/\1 passed$'
}

@test "a chapter 1 copy whose echo drops a byte fails 'text a client sends comes back unchanged'" {
	student 1
	sed -i 's|^\t/\* Moves the data to the output buffer|\tevbuffer_drain(bev->input, 1);\n&|' "$STUDENT/echoserver.c"
	grep -q 'evbuffer_drain(bev->input, 1);' "$STUDENT/echoserver.c"
	GRADE_FILTER='^text a client sends' grade 1 "$STUDENT"
	assert_equal "$status" 1
	assert_line --regexp '^FAIL +text a client sends comes back unchanged$'
	assert_line "score: 0/1 passed"
}

@test "a directory without sources is an error that names each missing part" {
	mkdir "$BATS_TEST_TMPDIR/empty"
	grade 3 "$BATS_TEST_TMPDIR/empty"
	assert_equal "$status" 2
	assert_output --regexp "missing from .*/empty: Makefile echoserver.c workqueue.c workqueue.h workqueue_demo.c"
	refute_output --partial "score:"
}

@test "a chapter 3 copy whose build makes no workqueue_demo is an error that names the demo" {
	student 3
	sed -i 's/^PROGS = echoserver workqueue_demo$/PROGS = echoserver/' "$STUDENT/Makefile"
	grep -q '^PROGS = echoserver$' "$STUDENT/Makefile"
	grade 3 "$STUDENT"
	assert_equal "$status" 2
	assert_output --partial "missing after make -C $STUDENT: workqueue_demo"
	refute_output --partial "score:"
}

@test "with GRADING=1 a chapter's tests refuse to fall back on the reference's programs" {
	student 3
	run timeout 60 env -u ECHOSERVER GRADING=1 SOURCE_DIR="$STUDENT" \
		WORKQUEUE_DEMO="$ROOT/step3-threaded-echo/workqueue_demo" \
		bats -f '^text a client sends' "$ROOT/test/step3.bats"
	assert_failure
	assert_output --regexp "grading: ECHOSERVER=.*/step3-threaded-echo/echoserver is the reference's"
	refute_line --regexp '^ok '
	run timeout 60 env -u SOURCE_DIR GRADING=1 bats -f 'every one' "$ROOT/test/step2.bats"
	assert_failure
	assert_output --partial "grading: SOURCE_DIR is not set"
}

@test "EXERCISES=1 adds the exercise checks, and the reference fails them" {
	GRADE_FILTER='^exercise 3' grade 2 "$ROOT/step2-workqueue"
	assert_equal "$status" 1
	assert_output --partial "grade: no test ran"
	EXERCISES=1 GRADE_FILTER='^exercise 3' grade 2 "$ROOT/step2-workqueue"
	assert_equal "$status" 1
	assert_line --regexp '^FAIL +exercise 3: queued jobs run oldest first: 1 2 3 4 5$'
}

@test "FORMAT=junit and FORMAT=tap write a report with one entry per graded test" {
	local out=$BATS_TEST_TMPDIR/reports
	FORMAT=junit OUT=$out/junit GRADE_FILTER='^(every one|a job can add)' grade 2 "$ROOT/step2-workqueue"
	assert_success
	assert_equal "$(grep -c '<testcase ' "$out/junit/report.xml")" 2
	grep -q 'name="every one of 1000 jobs runs exactly once on 4 workers"' "$out/junit/report.xml"
	FORMAT=tap OUT=$out/tap GRADE_FILTER='^every one' grade 2 "$ROOT/step2-workqueue"
	assert_success
	run cat "$out/tap/report.tap"
	assert_line "1..1"
	assert_line "ok 1 every one of 1000 jobs runs exactly once on 4 workers"
}
