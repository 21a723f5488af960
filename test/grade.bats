#!/usr/bin/env bats
# make grade (test/grade.sh), make grade-class and make handout: grading
# passes the reference, fails a broken copy naming the test, fails closed on
# a directory that lacks a part, exits 0, 1, 2 or 3 for what happened,
# writes its report every time, and builds with the chapter's own Makefile.

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

# miscount DIR: make DIR's chapter 2 demo report one job more than ran (a
# failure that shows at once).
miscount() {
	sed -i 's/printf("jobs run: %d\\n", demo.done);/printf("jobs run: %d\\n", demo.done + 1);/' "$1/workqueue_demo.c"
	grep -q 'demo.done + 1' "$1/workqueue_demo.c"
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

@test "a directory without sources is a broken submission (exit 2): a report with one failing case names each missing part" {
	mkdir "$BATS_TEST_TMPDIR/empty"
	FORMAT=junit OUT=$BATS_TEST_TMPDIR/out grade 3 "$BATS_TEST_TMPDIR/empty"
	assert_equal "$status" 2
	assert_output --regexp "missing from .*/empty: echoserver.c workqueue.c workqueue.h workqueue_demo.c"
	assert_line --regexp '^FAIL +the submission has every part the chapter needs and builds$'
	run cat "$BATS_TEST_TMPDIR/out/report.xml"
	assert_output --partial 'tests="1" failures="1"'
	assert_output --regexp '<failure type="failure">missing from .*/empty: echoserver.c workqueue.c'
}

@test "a chapter 3 copy built with its own Makefile (STUDENT_MAKEFILE=1) that makes no workqueue_demo is broken (exit 2), naming the demo" {
	student 3
	sed -i 's/^PROGS = echoserver workqueue_demo$/PROGS = echoserver/' "$STUDENT/Makefile"
	grep -q '^PROGS = echoserver$' "$STUDENT/Makefile"
	STUDENT_MAKEFILE=1 FORMAT=tap OUT=$BATS_TEST_TMPDIR/out grade 3 "$STUDENT"
	assert_equal "$status" 2
	assert_output --partial "missing after the build of $STUDENT: workqueue_demo"
	run cat "$BATS_TEST_TMPDIR/out/report.tap"
	assert_line "not ok 1 the submission has every part the chapter needs and builds"
	assert_line --partial "# missing after the build of $STUDENT: workqueue_demo"
}

@test "the student's Makefile is not used: one that copies hidden prebuilt programs over broken sources is a failed build (exit 2)" {
	student 3
	make -s -C "$ROOT/step3-threaded-echo"
	cp "$ROOT/step3-threaded-echo/echoserver" "$STUDENT/.cache-a"
	cp "$ROOT/step3-threaded-echo/workqueue_demo" "$STUDENT/.cache-b"
	printf 'all:\n\tcp .cache-a echoserver\n\tcp .cache-b workqueue_demo\nstrict-headers:\n\ttrue\n' >"$STUDENT/Makefile"
	printf 'this is not C\n' >>"$STUDENT/echoserver.c"
	FORMAT=junit OUT=$BATS_TEST_TMPDIR/out grade 3 "$STUDENT"
	assert_equal "$status" 2
	assert_output --partial "with chapter 3's Makefile"
	assert_output --regexp "echoserver.c:[0-9]+:[0-9]+: error:"
	refute_output --partial "score: 1"
	grep -q 'error:' "$BATS_TEST_TMPDIR/out/report.xml"
}

@test "a failed build shows the compiler's errors, not the warnings before them" {
	student 2
	local i
	for i in $(seq 40); do
		printf 'static int unused_%d(void) { int x; return 0; }\n' "$i"
	done >>"$STUDENT/workqueue.c"
	printf 'int broken(void) { return undeclared_name; }\n' >>"$STUDENT/workqueue.c"
	FORMAT=gradescope OUT=$BATS_TEST_TMPDIR/out grade 2 "$STUDENT"
	assert_equal "$status" 2
	assert_output --regexp "workqueue.c:[0-9]+:[0-9]+: error: .undeclared_name. undeclared"
	grep -q "error: .undeclared_name. undeclared" "$BATS_TEST_TMPDIR/out/results.json"
	grep -q '"status": "failed"' "$BATS_TEST_TMPDIR/out/results.json"
}

@test "a misused grader exits 3 before it builds anything: a bad STEP, FORMAT or OUT, a DIR that is not there" {
	student 2
	touch "$BATS_TEST_TMPDIR/a-file"
	grade 0 "$STUDENT"
	assert_equal "$status" 3
	grade 9 "$STUDENT"
	assert_equal "$status" 3
	assert_output --partial "there is no chapter 9"
	grade 2 "$BATS_TEST_TMPDIR/nowhere"
	assert_equal "$status" 3
	FORMAT=xml OUT=$BATS_TEST_TMPDIR/out grade 2 "$STUDENT"
	assert_equal "$status" 3
	assert_output --partial "FORMAT is junit, tap or gradescope, not 'xml'"
	FORMAT=junit grade 2 "$STUDENT"
	assert_equal "$status" 3
	OUT=$BATS_TEST_TMPDIR/out grade 2 "$STUDENT"
	assert_equal "$status" 3
	FORMAT=junit OUT=$BATS_TEST_TMPDIR/a-file grade 2 "$STUDENT"
	assert_equal "$status" 3
	assert_output --partial "cannot write into OUT="
	refute_output --partial "building"
	run timeout 60 bash "$ROOT/test/grade.sh" 2
	assert_equal "$status" 3
}

@test "make grade takes any directory name (Jane Doe's lab), and says the real exit status when make cannot" {
	local dir="$BATS_TEST_TMPDIR/Jane Doe's lab"
	mkdir -p "$dir"
	(cd "$ROOT/step2-workqueue" && cp ./*.[ch] "$dir/")
	run timeout 120 make -s -C "$ROOT" grade STEP=2 DIR="$dir" GRADE_FILTER='^every one'
	echo "$output"
	assert_success
	assert_line "score: 1/1 passed"
	miscount "$dir"
	run timeout 120 make -s -C "$ROOT" grade STEP=2 DIR="$dir" GRADE_FILTER='^every one'
	echo "$output"
	# make itself exits 2 whenever a recipe fails; the recipe says which
	assert_equal "$status" 2
	assert_output --partial "grade: exit status 1 (a test failed)"
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
	FORMAT=junit OUT=$out/junit GRADE_FILTER='^(every one|a count that is not)' grade 2 "$ROOT/step2-workqueue"
	assert_success
	assert_equal "$(grep -c '<testcase ' "$out/junit/report.xml")" 2
	grep -q 'name="every one of 1000 jobs runs exactly once on 4 workers"' "$out/junit/report.xml"
	FORMAT=tap OUT=$out/tap GRADE_FILTER='^every one' grade 2 "$ROOT/step2-workqueue"
	assert_success
	run cat "$out/tap/report.tap"
	assert_line "1..1"
	assert_line "ok 1 every one of 1000 jobs runs exactly once on 4 workers"
}

@test "FORMAT=gradescope writes results.json: one test per graded test, with name, score, max_score, status and output" {
	student 2
	miscount "$STUDENT"
	local out=$BATS_TEST_TMPDIR/gs
	FORMAT=gradescope OUT=$out GRADE_FILTER='^(every one|a count that is not)' grade 2 "$STUDENT"
	assert_equal "$status" 1
	run cat "$out/results.json"
	assert_line '  "score": 1,'
	assert_line --regexp '^    \{"name": "every one of 1000 jobs runs exactly once on 4 workers", "score": 0, "max_score": 1, "status": "failed", "output": ".*jobs run: 1001.*"\},$'
	assert_line '    {"name": "a count that is not a positive number is a usage error (exit 2)", "score": 1, "max_score": 1, "status": "passed", "output": ""}'
	if command -v python3 >/dev/null; then
		python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert len(d["tests"]) == 2' "$out/results.json"
	fi
}

@test "EXERCISES=1 runs the exercise checks and the graded tests, never the still-wrong ones" {
	run timeout 60 env EXERCISES=1 bats -f 'still wrong: a shutdown with 98|^exercise 2:' "$ROOT/test/step2.bats"
	assert_line --regexp "^ok 1 still wrong: .* # skip a flaw of the chapter's own code, not run with EXERCISES=1"
	assert_line --regexp '^not ok 2 exercise 2:'
}

@test "make grade-class grades every student's directory in parallel: one CSV row each, and each student's report" {
	local subs=$BATS_TEST_TMPDIR/class out=$BATS_TEST_TMPDIR/grades
	mkdir -p "$subs/ann" "$subs/bo, \"the\" third" "$subs/cy"
	(cd "$ROOT/step2-workqueue" && cp ./*.[ch] "$subs/ann/" && cp ./*.[ch] "$subs/bo, \"the\" third/")
	miscount "$subs/bo, \"the\" third"
	run timeout 120 env GRADE_FILTER='^(every one|a count that is not)' make -s -C "$ROOT" grade-class STEP=2 SUBMISSIONS="$subs" OUT="$out"
	echo "$output"
	assert_success
	assert_line "grade-class: 1 passed, 1 failed a test, 1 broken"
	run cat "$out/grades.csv"
	assert_line --index 0 "student,passed,failed,score,exit_status,seconds"
	assert_line --regexp '^"ann",2,0,100\.0,0,[0-9.]+$'
	assert_line --regexp '^"bo, ""the"" third",1,1,50\.0,1,[0-9.]+$'
	assert_line --regexp '^"cy",0,1,0\.0,2,[0-9.]+$'
	assert_equal "${#lines[@]}" 4
	grep -q 'tests="2" failures="0"' "$out/ann/report.xml"
	grep -q 'tests="2" failures="1"' "$out/bo, \"the\" third/report.xml"
	grep -q 'missing from' "$out/cy/report.xml"
	grep -q '^score: 2/2 passed' "$out/ann/grade.log"
}
