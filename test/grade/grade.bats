#!/usr/bin/env bats
# make grade (test/grade/grade.sh), make grade-class and make handout: grading
# passes the reference, fails a broken copy naming the test, fails closed on
# a directory that lacks a part, exits 0, 1, 2 or 3 for what happened,
# writes its report every time, and builds with the chapter's own Makefile.

bats_load_library bats-support
bats_load_library bats-assert

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
# shellcheck source=test/grade/grade.bash
source "$ROOT/test/grade/grade.bash"

# grade STEP DIR: run the grader with a bound.  A graded chapter 2 takes 2 s
# here (6 s with the broken copy's 5 s barrier wait), a filtered chapter 1 or 3
# a few seconds, most of it the build; 120 s is room for a busy machine.
# With TRACE set, what the student's code tells (see hostile) is in
# $BATS_TEST_TMPDIR/told.
grade() {
	if [[ -n ${TRACE:-} ]]; then
		run traced "$BATS_TEST_TMPDIR/told" timeout 120 bash "$ROOT/test/grade/grade.sh" "$@"
	else
		run timeout 120 bash "$ROOT/test/grade/grade.sh" "$@"
	fi
	echo "$output"
}

# A directory a test made outside BATS_TEST_TMPDIR goes, also when it fails.
teardown() {
	[[ -z ${BOX_BASE:-} ]] || rm -rf "$BOX_BASE" "/tmp/grade-box-evil.$BOX_PID"
}

# bait MODE: base, a directory outside /tmp (which the box's read-only view
# replaces) with MODE, and name, a file in /tmp: places student code must
# not write.  Teardown removes both.
bait() {
	name=grade-box-evil.$BASHPID
	base=$(mktemp -d /var/tmp/grade-box.XXXXXX)
	BOX_BASE=$base BOX_PID=$BASHPID
	chmod "$1" "$base"
}

# hostile_strict_headers: the student's Makefile gets a strict-headers
# recipe that prints its uid, tries to write /tmp/$name and $base/evil,
# says whether it could, and fails.
hostile_strict_headers() {
	python3 - "$STUDENT/Makefile" "$name" "$base" <<'PY'
import re, sys
path, name, base = sys.argv[1:]
s = open(path).read()
recipe = ("strict-headers:\n\t@echo \"recipe uid $$(id -u)\"; touch /tmp/%s %s/evil; "
          "echo \"recipe touched $$?\"; exit 1\n" % (name, base))
s, n = re.subn(r"^strict-headers:\n(\t.*\n)+", recipe, s, flags=re.M)
assert n == 1
open(path, "w").write(s)
PY
}

# assert_recipe_boxed: the recipe ran as the box's user and wrote nothing.
assert_recipe_boxed() {
	assert_output --regexp "recipe uid $(id -u gradebox)"
	assert_output --partial "recipe touched 1"
	[[ ! -e /tmp/$name && ! -e $base/evil ]] || fail "the student's strict-headers recipe wrote outside the box"
}

# valid_reports DIR: DIR's results.json follows Gradescope's documented
# format and its report.xml the JUnit schema's shape (whichever is there).
valid_reports() {
	python3 - "$1" <<'PY'
import json, os, sys
import xml.etree.ElementTree as ET
d = sys.argv[1]
p = os.path.join(d, "results.json")
if os.path.exists(p):
    raw = open(p, "rb").read()
    raw.decode("utf-8")  # strict: valid UTF-8
    doc = json.loads(raw)
    top = {"score", "max_score", "execution_time", "output", "output_format", "visibility",
           "stdout_visibility", "extra_data", "tests", "leaderboard", "test_output_format",
           "test_name_format"}
    assert set(doc) <= top, set(doc) - top
    assert isinstance(doc["tests"], list)
    assert isinstance(doc.get("execution_time", 0), int)
    keys = {"score", "max_score", "status", "name", "name_format", "number", "output",
            "output_format", "tags", "visibility", "extra_data"}
    for t in doc["tests"]:
        assert set(t) <= keys, set(t) - keys
        assert t["status"] in ("passed", "failed"), t
        assert isinstance(t["score"], (int, float)) and isinstance(t["max_score"], (int, float))
        assert isinstance(t["name"], str) and isinstance(t.get("output", ""), str)
        assert t["status"] == "passed" or t["score"] == 0, t
p = os.path.join(d, "report.xml")
if os.path.exists(p):
    root = ET.parse(p).getroot()
    assert root.tag == "testsuites"
    for suite in root:
        assert suite.tag == "testsuite" and {"name", "tests", "failures"} <= set(suite.attrib)
        cases = suite.findall("testcase")
        assert int(suite.get("tests")) == len(cases)
        assert int(suite.get("failures")) == sum(c.find("failure") is not None for c in cases)
        for c in cases:
            assert {"name", "classname"} <= set(c.attrib)
            for child in c:
                assert child.tag in ("failure", "error", "skipped", "system-out", "system-err"), child.tag
PY
	if [[ -f $1/report.xml ]]; then
		xmllint --noout --schema "$BATS_TEST_DIRNAME/junit.xsd" "$1/report.xml"
	fi
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
	worker_short "$STUDENT"
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

@test "a directory without sources is a broken submission (exit 2): every planned test fails naming each missing part, so max_score is the same" {
	mkdir "$BATS_TEST_TMPDIR/empty"
	local n
	n=$(bats -c --filter-tags '!flaw,!exercise,!reference-only' "$ROOT/test/step3.bats")
	FORMAT=gradescope OUT=$BATS_TEST_TMPDIR/gs grade 3 "$BATS_TEST_TMPDIR/empty"
	assert_equal "$status" 2
	assert_output --regexp "missing from .*/empty: echoserver.c workqueue.c workqueue.h "
	refute_output --partial workqueue_demo.c
	assert_line --regexp '^FAIL +text a client sends comes back unchanged$'
	assert_line "score: 0/$n passed"
	FORMAT=junit OUT=$BATS_TEST_TMPDIR/out grade 3 "$BATS_TEST_TMPDIR/empty"
	run cat "$BATS_TEST_TMPDIR/out/report.xml"
	assert_output --partial "tests=\"$n\" failures=\"$n\""
	assert_output --regexp '<failure message="the submission is broken: missing from .*/empty: echoserver.c workqueue.c'
	valid_reports "$BATS_TEST_TMPDIR/out"
	valid_reports "$BATS_TEST_TMPDIR/gs"
	run python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(sum(t["max_score"] for t in d["tests"]), d["score"])' "$BATS_TEST_TMPDIR/gs/results.json"
	assert_output "$n 0"
}

@test "STUDENT_MAKEFILE=1 takes the student's Makefile too: one that is missing is a broken submission (exit 2) naming it" {
	student 4
	rm "$STUDENT/Makefile"
	STUDENT_MAKEFILE=1 GRADE_FILTER='^text a client' grade 4 "$STUDENT"
	assert_equal "$status" 2
	assert_output --partial "missing from $STUDENT: Makefile"
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
	assert_output --partial "with chapter 3's other files and Makefile"
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

@test "the build runs in the box: a workqueue.c or echoserver.c that includes a file only root can read fails the build, and the file's contents are in no report" {
	((EUID == 0)) || skip "the box's unprivileged user needs a grader that runs as root"
	# outside /tmp (which the read-only view replaces) and open to anyone
	# but the file itself: only the box's user keeps the build out of it
	local base secret=grade_secret_$BASHPID$RANDOM$RANDOM
	base=$(mktemp -d /var/tmp/grade-box.XXXXXX)
	BOX_BASE=$base BOX_PID=$BASHPID
	chmod 755 "$base"
	printf '%s only root may read this line\n' "$secret" >"$base/secret"
	chmod 600 "$base/secret"
	student 2
	sed -i "1i #include \"$base/secret\"" "$STUDENT/workqueue.c"
	FORMAT=gradescope OUT=$base/gs grade 2 "$STUDENT"
	assert_equal "$status" 2
	assert_output --partial "the build of $STUDENT failed; its errors:"
	assert_output --partial "$base/secret: Permission denied"
	refute_output --partial "$secret"
	grep -q '"status": "failed"' "$base/gs/results.json"
	! grep -rqF "$secret" "$base/gs" || fail "the secret is in results.json"
	# chapter 1's echoserver.c, without the read-only view (the box's user
	# alone)
	student 1 "$BATS_TEST_TMPDIR/one"
	sed -i "1i #include \"$base/secret\"" "$STUDENT/echoserver.c"
	GRADE_MOUNT_NS=0 FORMAT=junit OUT=$base/junit grade 1 "$STUDENT"
	assert_equal "$status" 2
	assert_output --partial "the build of $STUDENT failed; its errors:"
	assert_output --partial "$base/secret: Permission denied"
	refute_output --partial "$secret"
	! grep -rqF "$secret" "$base/junit" || fail "the secret is in report.xml"
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
	run timeout 60 bash "$ROOT/test/grade/grade.sh" 2
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
	valid_reports "$out"
	run python3 - "$out/results.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print("score", d["score"])
for t in d["tests"]:
    print(t["status"], t["score"], t["max_score"], t["name"], "ran 2 times" in t["output"])
PY
	assert_line "score 1"
	assert_line "failed 0 1 every one of 1000 jobs runs exactly once on 4 workers True"
	assert_line "passed 1 1 a count that is not a positive number is a usage error (exit 2) False"
	assert_equal "${#lines[@]}" 3
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
	assert_line "grade-class: 1 passed, 1 failed a test, 1 broken, 0 grading errors"
	run cat "$out/grades.csv"
	assert_line --index 0 "student,passed,failed,score,exit_status,seconds"
	assert_line --regexp '^"ann",2,0,100\.0,0,[0-9.]+$'
	assert_line --regexp '^"bo, ""the"" third",1,1,50\.0,1,[0-9.]+$'
	assert_line --regexp '^"cy",0,2,0\.0,2,[0-9.]+$'
	assert_equal "${#lines[@]}" 4
	grep -q 'tests="2" failures="0"' "$out/ann/report.xml"
	grep -q 'tests="2" failures="1"' "$out/bo, \"the\" third/report.xml"
	grep -q 'missing from' "$out/cy/report.xml"
	grep -q '^score: 2/2 passed' "$out/ann/grade.log"
}

@test "finding 1: a liar's demo (it prints the lines the checks look for; workqueue.c untouched) is not built: the chapter's demo measures" {
	student 2
	liar "$STUDENT"
	EXERCISES=1 GRADE_FILTER='^exercise 1:' grade 2 "$STUDENT"
	assert_equal "$status" 1
	assert_line --regexp '^FAIL +exercise 1: '
	assert_line "score: 0/1 passed"
}

@test "finding 2: a program that writes 'ok N' lines into every descriptor it could inherit adds no result" {
	student 2
	hostile "$STUDENT" '		int fd;
		for (fd = 3; fd < 1024; fd++)
			dprintf(fd, "ok 1 every one of 1000 jobs runs exactly once on 4 workers\\nok 2 forged\\n");
		char p[64];
		snprintf(p, sizeof(p), "/proc/%d/fd/3", (int)getppid());
		if ((fd = open(p, O_WRONLY)) >= 0)
			dprintf(fd, "ok 3 forged through /proc\\n");'
	miscount "$STUDENT"
	FORMAT=junit OUT=$BATS_TEST_TMPDIR/out GRADE_FILTER='^(every one|a count that is not)' grade 2 "$STUDENT"
	assert_equal "$status" 1
	assert_line --regexp '^FAIL +every one of 1000 jobs runs exactly once on 4 workers$'
	assert_line "score: 1/2 passed"
	refute_output --partial "grading error"
	grep -q 'tests="2" failures="1"' "$BATS_TEST_TMPDIR/out/report.xml"
	valid_reports "$BATS_TEST_TMPDIR/out"
}

@test "finding 2: a result the grader did not plan (a forged or a duplicated line in Bats' output) is a grading error (exit 4) that says so" {
	# a bats that runs the tests, then adds a line as if someone wrote it
	fake_bats '"$REAL_BATS" "$@"
rc=$?
echo "ok 9 every one of 1000 jobs runs exactly once on 4 workers"
exit $rc'
	PATH=$FAKE_BIN:$PATH FORMAT=gradescope OUT=$BATS_TEST_TMPDIR/gs GRADE_FILTER='^every one' grade 2 "$ROOT/step2-workqueue"
	assert_equal "$status" 4
	assert_output --partial "grading error: results the grader did not plan"
	assert_line "score: 0/1 passed"
	valid_reports "$BATS_TEST_TMPDIR/gs"
	grep -q '"max_score": 1' "$BATS_TEST_TMPDIR/gs/results.json"
}

@test "finding 3: a demo that never returns (a join without exercise 1's fix) fails 'timed out after 3 s', the grading ends and writes its report" {
	student 2
	hang "$STUDENT"
	local t0=$SECONDS
	# 3 s a test: the demo's jobs take milliseconds; the hang is the join
	GRADE_TEST_TIMEOUT=3 FORMAT=junit OUT=$BATS_TEST_TMPDIR/out GRADE_FILTER='^every one' grade 2 "$STUDENT"
	assert_equal "$status" 1
	assert_line --regexp '^FAIL +every one of 1000 jobs runs exactly once on 4 workers \(timed out after 3 s'
	assert_line "grade: time limits: 3 s a test, 1500 s the whole grading"
	grep -q 'timed out after 3 s' "$BATS_TEST_TMPDIR/out/report.xml"
	valid_reports "$BATS_TEST_TMPDIR/out"
	# build (about 2 s) + 3 s + the box's cleanup; 60 s is room for load
	((SECONDS - t0 < 60)) || fail "grading took $((SECONDS - t0)) s"
}

@test "finding 3: the whole grading has a limit: past it the tests not run fail 'not run', and the report is still written" {
	student 2
	hang "$STUDENT"
	GRADE_TIMEOUT=4 GRADE_TEST_TIMEOUT=100 FORMAT=gradescope OUT=$BATS_TEST_TMPDIR/gs GRADE_FILTER='^(every one|a count that is not)' grade 2 "$STUDENT"
	assert_equal "$status" 1
	assert_output --partial "not run: the whole grading timed out after 4 s"
	assert_line "score: 0/2 passed"
	valid_reports "$BATS_TEST_TMPDIR/gs"
	grep -q 'the whole grading timed out after 4 s' "$BATS_TEST_TMPDIR/gs/results.json"
}

@test "finding 4: the student's code runs boxed: a fork that ignores SIGTERM and leaves its group is gone after the test, writes outside its directory and into OUT fail" {
	((EUID == 0)) || skip "the box's unprivileged user needs a grader that runs as root"
	student 2
	# the box may see no file of the grader's: the program tells a socket
	local out=$BATS_TEST_TMPDIR/out TRACE=grade-trace.$BASHPID
	mkdir -p "$out"
	hostile "$STUDENT" "		char msg[256];
		pid_t child = fork();
		if (child == 0) {
			signal(SIGTERM, SIG_IGN);
			setsid();
			close(0);
			close(1);
			close(2);
			sleep(300);
			_exit(0);
		}
		snprintf(msg, sizeof(msg), \"child %d\\nuid %d\\nout %d\\ndir %d\\n\", (int)child, (int)getuid(),
			 open(\"$out/evil\", O_WRONLY | O_CREAT, 0644) >= 0,
			 open(\"$STUDENT/evil\", O_WRONLY | O_CREAT, 0644) >= 0);
		tell(msg);"
	# 20 s a test: the demo takes a second; the fork sleeps 300 s
	GRADE_TEST_TIMEOUT=20 FORMAT=junit OUT=$out GRADE_FILTER='^every one' grade 2 "$STUDENT"
	run cat "$BATS_TEST_TMPDIR/told"
	assert_line --regexp '^child [0-9]+$'
	refute_line "uid 0"
	assert_line "out 0"
	assert_line "dir 0"
	[[ ! -e $out/evil && ! -e $STUDENT/evil ]]
	local pid
	pid=$(sed -n 's/^child //p' "$BATS_TEST_TMPDIR/told" | head -1)
	# gone, or a zombie of a parent that does not reap (a container's init)
	local stat
	stat=$(cat "/proc/$pid/stat" 2>/dev/null) || stat=
	stat=${stat##*) }
	[[ -z $stat || ${stat%% *} == Z ]] || { kill -KILL "$pid"; fail "the fork $pid outlived the grading: $stat"; }
}

@test "finding 4: without a cgroup (GRADE_CGROUP=0), a double fork that calls setsid() and ignores SIGTERM is killed at the end of its test, not only of the grading" {
	student 2
	# each of 3 tests runs the demo once; the demo first counts the living
	# processes named NAME (the grandchildren of the tests before), then
	# leaves one behind: a child in a session of its own forks it and exits
	local TRACE=grade-trace.$BASHPID name=orphan$((BASHPID % 100000))
	hostile "$STUDENT" "		char msg[64], path[64], comm[64], stat[256];
		int left = 0;
		DIR *d = opendir(\"/proc\");
		struct dirent *e;
		pid_t child;
		while (d != NULL && (e = readdir(d)) != NULL) {
			FILE *f;
			snprintf(path, sizeof(path), \"/proc/%s/stat\", e->d_name);
			if (atoi(e->d_name) <= 0 || (f = fopen(path, \"r\")) == NULL)
				continue;
			if (fgets(stat, sizeof(stat), f) != NULL && sscanf(stat, \"%*d (%63[^)]) %63s\", comm, msg) == 2 &&
			    strcmp(comm, \"$name\") == 0 && strcmp(msg, \"Z\") != 0)
				left++;
			fclose(f);
		}
		if (d != NULL)
			closedir(d);
		snprintf(msg, sizeof(msg), \"left %d\\n\", left);
		tell(msg);
		if ((child = fork()) == 0) {
			setsid();
			if (fork() == 0) {
				signal(SIGTERM, SIG_IGN);
				prctl(PR_SET_NAME, \"$name\");
				close(0);
				close(1);
				close(2);
				snprintf(msg, sizeof(msg), \"grandchild %d\\n\", (int)getpid());
				tell(msg);
				sleep(300);
			}
			_exit(0);
		}
		waitpid(child, NULL, 0);"
	GRADE_CGROUP=0 TRACE=$TRACE GRADE_FILTER='^(every one|jobs run in parallel|a job can add)' grade 2 "$STUDENT"
	assert_success
	assert_output --partial "grade: note: no pids cgroup for the student's code (GRADE_CGROUP=0)"
	assert_line "score: 3/3 passed"
	run cat "$BATS_TEST_TMPDIR/told"
	echo "$output"
	assert_equal "$(grep -c '^left 0$' <<<"$output")" 3
	assert_equal "$(grep -c '^grandchild [0-9]*$' <<<"$output")" 3
	local pid stat
	for pid in $(sed -n 's/^grandchild //p' <<<"$output"); do
		stat=$(cat "/proc/$pid/stat" 2>/dev/null) || stat=
		stat=${stat##*) }
		[[ -z $stat || ${stat%% *} == Z ]] || { kill -KILL "$pid"; fail "the grandchild $pid outlived the grading: $stat"; }
	done
}

@test "finding 4: the box's view is read-only: writes to /tmp, to a world-writable OUT and to a world-writable file of the repository outside the student's directory do not happen; /tmp in the box is its own" {
	((EUID == 0)) || skip "a mount namespace needs a grader that runs as root"
	# outside /tmp (which the box replaces), all writable by anyone: only
	# the read-only view stops the writes
	local base name=grade-box-evil.$BASHPID TRACE=grade-trace.$BASHPID
	base=$(mktemp -d /var/tmp/grade-box.XXXXXX)
	BOX_BASE=$base BOX_PID=$BASHPID
	mkdir -p "$base/out" "$base/repo/lab"
	echo mine >"$base/repo/notes.txt"
	chmod -R a+rwX "$base"
	STUDENT=$base/repo/lab
	(cd "$ROOT/step2-workqueue" && cp Makefile ./*.[ch] "$STUDENT/")
	hostile "$STUDENT" "		char msg[512];
		int tmp = open(\"/tmp/$name\", O_WRONLY | O_CREAT, 0666);
		int tmp_ok = tmp >= 0 && write(tmp, \"x\", 1) == 1;
		int out = open(\"$base/out/evil\", O_WRONLY | O_CREAT, 0666);
		int out_errno = errno;
		int repo = open(\"$base/repo/notes.txt\", O_WRONLY | O_APPEND);
		int repo_errno = errno;
		snprintf(msg, sizeof(msg), \"tmp %d\\nout %d %s\\nrepo %d %s\\n\", tmp_ok,
			 out >= 0, strerror(out_errno), repo >= 0 && write(repo, \"evil\\n\", 5) == 5,
			 strerror(repo_errno));
		tell(msg);"
	FORMAT=junit OUT=$base/out GRADE_FILTER='^every one' grade 2 "$STUDENT"
	[[ $output != *"no read-only view"* ]] || skip "this machine gives no mount namespace (the grading's note says why)"
	assert_success
	assert_output --partial "score: 1/1 passed"
	[[ -s $base/out/report.xml ]]
	run cat "$BATS_TEST_TMPDIR/told"
	echo "$output"
	assert_line "tmp 1"
	assert_line "out 0 Read-only file system"
	assert_line "repo 0 Read-only file system"
	[[ ! -e /tmp/$name && ! -e $base/out/evil ]]
	assert_equal "$(cat "$base/repo/notes.txt")" mine
}

@test "finding 4: the builds the checks make from the student's sources run in the box: chapter 4 exercise 5's build with the student's Makefile writes neither /tmp nor a world-writable directory" {
	((EUID == 0)) || skip "a mount namespace needs a grader that runs as root"
	local base name
	bait 777
	student 4
	# make runs \$(shell) at every start: the check's clean and its build
	sed -i "1i \$(shell touch /tmp/$name $base/evil)" "$STUDENT/Makefile"
	EXERCISES=1 STUDENT_MAKEFILE=1 GRADE_FILTER='^exercise 5:' grade 4 "$STUDENT"
	[[ $output != *"no read-only view"* ]] || skip "this machine gives no mount namespace (the grading's note says why)"
	assert_output --partial "exercise 5: linked without event_pthreads"
	[[ ! -e /tmp/$name && ! -e $base/evil ]] || fail "the student's Makefile wrote outside the box"
}

@test "finding 4: the strict-headers build of the checks (check_public_headers) runs in the box: a student's Makefile whose strict-headers recipe writes runs as the box's user and writes neither /tmp nor a world-writable directory" {
	((EUID == 0)) || skip "the box's unprivileged user needs a grader that runs as root"
	local base name
	bait 777
	student 4
	hostile_strict_headers
	STUDENT_MAKEFILE=1 GRADE_FILTER="^fixed: it compiles with libevent 2's public headers" grade 4 "$STUDENT"
	[[ $output != *"no read-only view"* ]] || skip "this machine gives no mount namespace (the grading's note says why)"
	assert_equal "$status" 1
	assert_line --regexp "^FAIL +fixed: it compiles with libevent 2's public headers alone, and includes no other$"
	assert_recipe_boxed
}

@test "finding 4: chapter 3 exercise 3's strict-headers build runs in the box: a student's Makefile whose strict-headers recipe writes runs as the box's user and writes neither /tmp nor a world-writable directory" {
	((EUID == 0)) || skip "the box's unprivileged user needs a grader that runs as root"
	local base name
	bait 777
	student 3
	hostile_strict_headers
	EXERCISES=1 STUDENT_MAKEFILE=1 GRADE_FILTER="^exercise 3:" grade 3 "$STUDENT"
	[[ $output != *"no read-only view"* ]] || skip "this machine gives no mount namespace (the grading's note says why)"
	assert_equal "$status" 1
	assert_line --regexp "^FAIL +exercise 3: strict-headers no longer trips over struct bufferevent"
	assert_recipe_boxed
}

@test "finding 4: chapter 3's F6 build (f6_build) runs in the box when grading: a student's Makefile runs as the box's user, writes nowhere, and the server it built runs in the box too" {
	((EUID == 0)) || skip "the box's unprivileged user needs a grader that runs as root"
	local base name
	bait 777
	student 3
	# make runs $(shell) at every start: f6_build's clean and its build
	sed -i "1i \$(info make uid \$(shell id -u))\$(shell touch /tmp/$name $base/evil)" "$STUDENT/Makefile"
	# the F6 test is a flaw test, which grading leaves out: a bats in the
	# grader's place runs f6_build as that test would, with the grading's
	# environment, then the server it built, and reports the one planned
	# test
	fake_bats "$(printf 'source %q\n' "$ROOT/test/signal-deadlock.bash")"'
echo 1..1
d=$(mktemp -d)
f6_build "$SOURCE_DIR" "$d/f6" 2>&1 | sed "s/^/# /"
"$d/f6/echoserver" -p 0 >"$d/out" 2>&1 &
for i in $(seq 100); do grep -q "^listening on" "$d/out" && break; sleep 0.1; done
echo "# server uid $(stat -c %u /proc/$!): $(cat "$d/out")"
kill -KILL $!
rm -rf "$d"
echo "ok 1 text a client sends comes back unchanged"'
	PATH=$FAKE_BIN:$PATH STUDENT_MAKEFILE=1 GRADE_FILTER='^text a client sends' grade 3 "$STUDENT"
	[[ $output != *"no read-only view"* ]] || skip "this machine gives no mount namespace (the grading's note says why)"
	assert_success
	assert_output --regexp "# make uid $(id -u gradebox)"
	refute_output --regexp "# make uid 0"
	assert_output --regexp "# server uid $(id -u gradebox): listening on "
	[[ ! -e /tmp/$name && ! -e $base/evil ]] || fail "the student's Makefile wrote outside the box"
}

@test "finding 4: GRADE_MOUNT_NS=0 (what a machine without mount namespaces gets): a one-line note says the student's code can write /tmp, and grading works" {
	GRADE_MOUNT_NS=0 GRADE_FILTER='^every one' grade 2 "$ROOT/step2-workqueue"
	assert_success
	assert_equal "$(grep -c 'note: no read-only view' <<<"$output")" 1
	assert_output --partial "can write /tmp and whatever its user may write"
}

@test "finding 6: a program's bytes in a failure message (0xFF, control characters, <&>) leave results.json valid UTF-8 and report.xml valid against the JUnit schema" {
	student 2
	hostile "$STUDENT" '		printf("bytes: \xff\xfe\x01\x1b[31m <&> \"quoted\" \xc3\xa9\n");
		fflush(stdout);'
	miscount "$STUDENT"
	FORMAT=gradescope OUT=$BATS_TEST_TMPDIR/gs GRADE_FILTER='^every one' grade 2 "$STUDENT"
	assert_equal "$status" 1
	valid_reports "$BATS_TEST_TMPDIR/gs"
	grep -qF 'bytes: \\xff\\xfe\\x01\\x1b[31m <&> \"quoted\" é' "$BATS_TEST_TMPDIR/gs/results.json"
	FORMAT=junit OUT=$BATS_TEST_TMPDIR/junit GRADE_FILTER='^every one' grade 2 "$STUDENT"
	assert_equal "$status" 1
	valid_reports "$BATS_TEST_TMPDIR/junit"
	grep -qF 'bytes: \xff\xfe\x01\x1b[31m &lt;&amp;&gt; "quoted" é' "$BATS_TEST_TMPDIR/junit/report.xml"
}

@test "finding 6: a skipped test is not passed: it scores 0 of 1 in results.json and the table says skipped" {
	# a bats whose run reports the one planned test skipped
	fake_bats 'echo 1..1
echo "ok 1 every one of 1000 jobs runs exactly once on 4 workers # skip no machine for it"'
	PATH=$FAKE_BIN:$PATH FORMAT=gradescope OUT=$BATS_TEST_TMPDIR/gs GRADE_FILTER='^every one' grade 2 "$ROOT/step2-workqueue"
	assert_success
	assert_line "skip  every one of 1000 jobs runs exactly once on 4 workers (skipped: no machine for it)"
	assert_line "score: 0/1 passed (1 skipped: not passed)"
	valid_reports "$BATS_TEST_TMPDIR/gs"
	run python3 -c 'import json, sys; t = json.load(open(sys.argv[1]))["tests"][0]; print(t["status"], t["score"], t["max_score"], t["output"].strip())' "$BATS_TEST_TMPDIR/gs/results.json"
	assert_output "failed 0 1 skipped: no machine for it"
}

@test "finding 7: LAB=K grades the attack lab's exercise K: the stage as handed out fails its attack, the next patch's server holds it" {
	local stage=$BATS_TEST_TMPDIR/lab1 solved=$BATS_TEST_TMPDIR/solved
	bash "$ROOT/test/proofs/patches.sh" apply 5 3 "$stage" >/dev/null
	bash "$ROOT/test/proofs/patches.sh" apply 5 4 "$solved" >/dev/null
	LAB=1 FORMAT=junit OUT=$BATS_TEST_TMPDIR/out grade 5 "$stage"
	assert_equal "$status" 1
	assert_line --regexp '^FAIL +attack-lab exercise 1: the fd-exhaustion attack holds$'
	valid_reports "$BATS_TEST_TMPDIR/out"
	LAB=1 grade 5 "$solved"
	assert_success
	assert_line "score: 1/1 passed"
	LAB=9 grade 5 "$stage"
	assert_equal "$status" 3
	LAB=1 grade 2 "$stage"
	assert_equal "$status" 3
}

@test "finding 7: make grade without DIR says what is missing; chapter 4's EXERCISES=1 says its exercises exclude each other" {
	run make -s -C "$ROOT" grade STEP=2
	assert_failure
	assert_output --partial "make grade: STEP and DIR are both needed"
	EXERCISES=1 GRADE_FILTER='^text a client sends' grade 4 "$ROOT/step4-shutdown-fixes"
	refute_output --partial "exclude each other"
	EXERCISES=1 GRADE_TIMEOUT=1 grade 4 "$ROOT/step4-shutdown-fixes"
	assert_output --partial "exercises 2, 3, 5, 6 and 7 each make a mistake on purpose"
}
