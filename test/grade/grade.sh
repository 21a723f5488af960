#!/usr/bin/env bash
# grade.sh STEP DIR: grade a student's chapter STEP in DIR with the chapter's
# tests, and print a table of every test and a score.  (make grade STEP=N
# DIR=path runs it; a batch script should run this file itself, since make
# turns every failure into its own exit status 2.)
#
# What is taken from DIR: only the files the chapter's exercises ask a
# student to change, and the header they may extend (student_files below;
# chapter 4's Makefile too with STUDENT_MAKEFILE=1, for the checks that read
# it).  Everything else -- the
# demo that measures the work queue, the Makefile that builds the programs,
# the tools and the tests -- is the chapter's own, so a submission cannot
# change what measures it.  The copy is built with the chapter's Makefile,
# in the box (below) like everything of the student's: as the box's user, in
# a copy in its scratch directory, the programs then copied out of it (the
# tests run them read-only), so a source that includes a file the box's user
# may not read fails to build, and that file is not in the errors shown.  (A
# grader that is not root has no box user: the build then reads what the
# grader may read, so run it as root, or as a user who can read no one
# else's files.)  DIR is never written.  Grading fails closed: a student
# file DIR lacks is an error naming it, never a fallback to the chapter's
# code (GRADING=1, see helper.bash, makes the tests refuse a reference path).
#
# The box: the student's programs never run directly.  ECHOSERVER and
# WORKQUEUE_DEMO name a wrapper that closes every descriptor but 0-2, puts
# the program in a session and process group of its own and, where the
# machine allows, a pids cgroup of its own; limits its processes, CPU time
# and file size; runs it as the unprivileged user GRADE_USER (default
# gradebox, created when missing) when the grader runs as root; as root and
# where the kernel allows, in a mount namespace of its own where every mount
# is read-only but a private /tmp and /dev/shm (its scratch, empty at each
# start) and the scratch directory GRADE_SCRATCH (emptied after each test)
# -- elsewhere the grading says in a note that the program can write /tmp
# and what its user may; and kills it when it outlives a test.  The
# program is a child subreaper (what its children leave stays under it),
# and the tests run under a reaper of the grader's (what a program that
# ended left comes to it): end-test finds and kills every descendant, with
# or without a cgroup.  The grader's build of the submission runs in the
# same box (with 600 s of CPU time, not the tests' limit); GRADE_BOXRUN runs
# any command in it: the tests' builds from the student's sources and
# Makefile (in GRADE_SCRATCH), and the sanitizer servers.  At the end of
# every test (helper.bash's teardown) everything it started is killed, and a
# process left over fails the test.
#
# Results come from the grader alone: the tests it planned (the chapter's
# test names, filtered as below) are matched by name to what Bats reported;
# a result for a test not planned, or twice for one, is a grading error
# (exit 4): someone wrote into Bats' output.  A planned test without a
# result (the whole grading timed out) fails with "not run".
#
# Time limits: every test GRADE_TEST_TIMEOUT seconds (default 120; a test
# that takes longer fails "timed out after N s"), the whole grading
# GRADE_TIMEOUT seconds (default 1500).  Both are stated in the report.
#
# Left out: the tests tagged "flaw" (they assert a historical flaw of the
# reference, which a student's fix should remove) and "reference-only"; the
# exercise checks too, unless EXERCISES=1.  The graded tests alone pass on the
# chapter as handed out: EXERCISES=1 is what grades the exercises.
#
# Environment:
#   EXERCISES=1         include the exercise checks
#   GRADE_FILTER=REGEX  run only the tests whose names match (bats -f)
#   FORMAT=junit|tap|gradescope  also write a report into OUT: report.xml,
#   OUT=DIR             report.tap or Gradescope's results.json; OUT is
#                       created if it does not exist
#   STUDENT_MAKEFILE=1  take DIR's Makefile too (chapter 4, exercise 5)
#   LAB=K               (STEP=5) grade the attack lab's exercise K instead
#                       (chapter 5's README, "Make each attack hold"): DIR's
#                       echoserver.c on the stage the exercise starts from,
#                       one test per attack its check names (test/proofs/attack.sh,
#                       with the attack clients and the server in the box)
#   GRADE_TEST_TIMEOUT, GRADE_TIMEOUT  the limits above, in seconds
#   GRADE_MOUNT_NS=0    no mount namespace for the box (what a machine
#                       without one gets; the grading says so in a note)
#   GRADE_CGROUP=0      no pids cgroup for the box (what a machine without
#                       one to give gets): the process limit is then the
#                       box user's RLIMIT_NPROC alone, and what escapes the
#                       program's group (setsid(), a double fork) is still
#                       found under the program, a child subreaper, or
#                       under the grader's reaper above the tests
# Every run that gets as far as DIR writes its report, a broken submission
# too: every planned test fails with the message that names the missing
# part or shows the compiler's errors, so max_score is the same.
#
# Exit status: 0 no test failed (a skipped test is not passed, but not a
# failure), 1 a test failed or timed out, 2 the submission is broken (a
# missing part, a failed build), 3 the grader was misused (arguments,
# FORMAT, OUT); nothing is built or written then, 4 a grading error (results
# the grader did not plan).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# Run from inside a Bats test (grade.bats), PATH starts with bats-core's
# libexec directory, whose bats works only under its wrapper: drop it.
PATH=$(sed -E 's#(^|:)[^:]*/libexec/bats-core(:|$)#\1#' <<<"$PATH")
START=$EPOCHREALTIME

misuse() {
	echo "grade: $*" >&2
	exit 3
}

# student_files N: the files chapter N's exercises ask a student to change
# (test/proofs/solutions.bats checks that every worked solution stays inside them).
student_files() {
	case $1 in
	1) echo echoserver.c ;;
	2) echo workqueue.c workqueue.h ;;
	3) echo echoserver.c workqueue.c workqueue.h ;;
	4) echo echoserver.c workqueue.c workqueue.h ;;
	5) echo echoserver.c ;;
	esac
}

[[ ${1:-} == --student-files && $# == 2 ]] && {
	student_files "$2"
	exit 0
}
(($# == 2)) || misuse "usage: test/grade/grade.sh STEP DIR (or make grade STEP=N DIR=path/to/student/stepN)"
step=$1 dir=$2
[[ $step =~ ^[1-9][0-9]*$ ]] || misuse "STEP must be a chapter number, not '$step'"
bats_file=$ROOT/test/step$step.bats
refs=("$ROOT/step$step-"*/)
ref=${refs[0]%/}
[[ -f $bats_file && -d $ref && -n $(student_files "$step") ]] || misuse "there is no chapter $step here"
[[ -d $dir ]] || misuse "$dir is not a directory"
dir=$(cd "$dir" && pwd)
format=${FORMAT:-}
out=${OUT:-}
case $format in
'') [[ -z $out ]] || misuse "OUT=$out needs FORMAT=junit, tap or gradescope" ;;
junit | tap | gradescope)
	[[ -n $out ]] || misuse "FORMAT=$format needs OUT=directory"
	mkdir -p -- "$out" 2>/dev/null && [[ -w $out ]] || misuse "cannot write into OUT=$out"
	out=$(cd "$out" && pwd)
	;;
*) misuse "FORMAT is junit, tap or gradescope, not '$format'" ;;
esac
[[ -z ${STUDENT_MAKEFILE:-} || ${STUDENT_MAKEFILE:-} == 1 ]] ||
	misuse "STUDENT_MAKEFILE is 1 or unset, not '$STUDENT_MAKEFILE'"
test_limit=${GRADE_TEST_TIMEOUT:-120}
total_limit=${GRADE_TIMEOUT:-1500}
[[ $test_limit =~ ^[1-9][0-9]*$ && $total_limit =~ ^[1-9][0-9]*$ ]] ||
	misuse "GRADE_TEST_TIMEOUT and GRADE_TIMEOUT are whole seconds"
command -v python3 >/dev/null || misuse "python3 is needed (make deps installs it)"

# What the chapter builds: the PROGS line of its Makefile.
progs=$(sed -n 's/^PROGS[[:space:]]*=[[:space:]]*//p' "$ref/Makefile")
[[ -n $progs ]] || misuse "cannot tell what chapter $step builds (no PROGS in $ref/Makefile)"

args=(--formatter tap)
if [[ ${EXERCISES:-} == 1 ]]; then
	tags='!flaw,!reference-only'
else
	tags='!flaw,!exercise,!reference-only'
fi
args+=(--filter-tags "$tags")
[[ -z ${GRADE_FILTER:-} ]] || args+=(--filter "$GRADE_FILTER")

lab=${LAB:-} lab_stage='' lab_attacks=''
if [[ -n $lab ]]; then
	[[ $step == 5 && $lab =~ ^[1-9][0-9]*$ ]] || misuse "LAB=K grades chapter 5's attack lab: STEP=5 and a number, not STEP=$step LAB=$lab"
	# README item K of "Make each attack hold": its stage and its attacks
	read -r lab_stage lab_attacks < <(awk -v k="$lab" '
		/^#+ / { on = ($0 == "### Make each attack hold") }
		on && /^[0-9]+\. \*\*/ { cur = $0; sub(/\..*/, "", cur) }
		on && cur == k { text = text " " $0 }
		END {
			n = a = text
			if (!sub(/.*make stage STEP=5 PATCH=/, "", n)) exit
			sub(/[^0-9].*/, "", n)
			if (sub(/.*ATTACK="/, "", a)) sub(/".*/, "", a)
			else if (sub(/.*ATTACK=/, "", a)) sub(/[^a-z -].*/, "", a)
			else exit
			print n, a
		}' "$ref/README.md")
	[[ -n $lab_stage && -n $lab_attacks ]] || misuse "chapter 5's README has no attack-lab exercise $lab"
fi

work=$(mktemp -d)
box=$work/box
cgroup=
cleanup() {
	[[ -z ${watchdog_pid:-} ]] || kill "$watchdog_pid" 2>/dev/null
	[[ ! -x $box/end-test ]] || "$box/end-test" >/dev/null 2>&1
	[[ -z $cgroup ]] || rmdir "$cgroup" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

# --- The plan --------------------------------------------------------------

# The tests this grading runs, by name, in order: the chapter's @test lines
# whose tags pass the filter and whose names match GRADE_FILTER.  Bats'
# own count of the same selection must agree.
plan_tests() {
	local name
	awk -v want="$tags" '
		BEGIN { n = split(want, w, ",") }
		/^# bats file_tags=/ { ft = substr($0, 18); next }
		/^# bats test_tags=/ { tt = tt "," substr($0, 18); next }
		/^@test "/ {
			name = $0; sub(/^@test "/, "", name); sub(/" *\{ *$/, "", name)
			all = "," ft "," tt ","; ok = 1
			for (i = 1; i <= n; i++) {
				t = w[i]; neg = sub(/^!/, "", t)
				has = index(all, "," t ",") > 0
				if (neg == has) ok = 0
			}
			if (ok) print name
			tt = ""; next
		}
		!/^#/ { tt = "" }' "$bats_file" |
		while IFS= read -r name; do
			[[ -z ${GRADE_FILTER:-} || $name =~ $GRADE_FILTER ]] && printf '%s\n' "$name"
		done
}
if [[ -n $lab ]]; then
	for a in $lab_attacks; do
		echo "attack-lab exercise $lab: the $a attack holds"
	done >"$work/plan"
	planned=$(grep -c . "$work/plan")
else
	plan_tests >"$work/plan"
	counted=$(bats --count "${args[@]}" "$bats_file" 2>/dev/null)
	planned=$(grep -c . "$work/plan")
	[[ $counted == "$planned" ]] ||
		misuse "cannot plan chapter $step's tests: $planned by name, $counted by bats --count"
fi

# report STATUS RC [MESSAGE]: the table, the score and the report in OUT,
# from the plan and Bats' TAP ($work/tap); MESSAGE fails every test (a broken
# submission, a grading error).  Exits with RC, or with the verdict's status.
report() {
	python3 - "$work/plan" "$work/tap" "$format" "$out" "$step" "$1" "$2" \
		"$test_limit" "$total_limit" "$(seconds)" "${3:-}" <<'PY'
import json, re, sys
from xml.sax.saxutils import escape, quoteattr

plan_f, tap_f, fmt, out, step, why, rc, test_limit, total_limit, secs, msg = sys.argv[1:]
rc, secs = int(rc), float(secs)
plan = [l.rstrip("\n") for l in open(plan_f, encoding="utf-8", errors="replace") if l.strip()]

def clean(b):
    # a program's bytes: valid UTF-8 stays, other bytes show as \xNN; no
    # control character but newline and tab (XML 1.0 forbids them)
    s = b.decode("utf-8", errors="backslashreplace")
    s = re.sub(r"[\x00-\x08\x0b-\x1f\x7f\ufffe\uffff\ud800-\udfff]",
               lambda m: "\\x%02x" % ord(m.group()) if ord(m.group()) < 256 else "?", s)
    return s

results, extra, order = {}, [], []
try:
    tap = open(tap_f, "rb").read().split(b"\n")
except OSError:
    tap = []
cur = None
line_re = re.compile(rb"^(not )?ok [0-9]+ (.*)$")
for raw in tap:
    m = line_re.match(raw)
    if m:
        text = clean(m.group(2))
        text = re.sub(r" # in [0-9]+ ?ms$", "", text)
        status, detail = ("fail" if m.group(1) else "pass"), ""
        t = re.search(r" # timeout after ([0-9]+)s$", text)
        if t:
            text, status = text[: t.start()], "fail"
            detail = "timed out after %s s, the limit of every test\n" % t.group(1)
        s = re.search(r" # skip ?(.*)$", text)
        if s and status == "pass":
            text, status, detail = text[: s.start()], "skip", "skipped: %s\n" % s.group(1)
        if text in results or text not in plan:
            extra.append(text)
            cur = None
            continue
        results[text] = cur = {"status": status, "output": detail}
        continue
    if cur is not None and raw.startswith(b"# "):
        cur["output"] += clean(raw[2:]) + "\n"

if extra and why == "ran":
    why = "error"
    msg = ("grading error: results the grader did not plan (extra or duplicated; "
           "something wrote into the test runner's output): " +
           "; ".join(repr(e) for e in extra[:5]))
    rc = 4
if why in ("broken", "error"):
    results = {n: {"status": "fail", "output": msg + "\n"} for n in plan}
for n in plan:
    if n not in results:
        results[n] = {"status": "fail", "output": (
            "not run: the whole grading timed out after %s s\n" % total_limit
            if why == "timeout" else "not run: no result from the tests\n")}

passed = sum(r["status"] == "pass" for r in results.values())
failed = sum(r["status"] == "fail" for r in results.values())
skipped = sum(r["status"] == "skip" for r in results.values())
if why == "ran" or why == "timeout":
    rc = 1 if failed or rc not in (0,) else 0
    if not plan:
        rc = 1
limits = "time limits: %s s a test, %s s the whole grading" % (test_limit, total_limit)

print("\nresult test")
for n in plan:
    r = results[n]
    tag = {"pass": "pass", "fail": "FAIL", "skip": "skip"}[r["status"]]
    line = "%-5s %s" % (tag, n)
    if r["status"] == "skip":
        line += " (%s)" % r["output"].strip()
    elif r["output"].startswith(("timed out", "not run")):
        line += " (%s)" % r["output"].splitlines()[0]
    print(line)
if not plan:
    print("grade: no test ran")
if msg:
    for l in msg.splitlines():
        print("grade: " + l)
print("score: %d/%d passed%s" % (passed, len(plan),
      " (%d skipped: not passed)" % skipped if skipped else ""))
print("grade: " + limits)

name = "step%s.bats" % step
if fmt == "junit":
    with open(out + "/report.xml", "w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n')
        f.write('<testsuites name="grade" tests="%d" failures="%d" errors="0" skipped="%d" time="%.3f">\n'
                % (len(plan), failed, skipped, secs))
        f.write('<testsuite name=%s tests="%d" failures="%d" errors="0" skipped="%d" time="%.3f">\n'
                % (quoteattr(name), len(plan), failed, skipped, secs))
        f.write('<properties><property name="limits" value=%s/></properties>\n' % quoteattr(limits))
        for n in plan:
            r = results[n]
            f.write('<testcase classname=%s name=%s>' % (quoteattr(name), quoteattr(n)))
            if r["status"] == "fail":
                first = r["output"].splitlines()[0] if r["output"] else "failed"
                f.write('<failure message=%s type="failure">%s</failure>'
                        % (quoteattr(first), escape(r["output"])))
            elif r["status"] == "skip":
                f.write('<skipped message=%s/>' % quoteattr(r["output"].strip()))
            f.write('</testcase>\n')
        f.write('</testsuite>\n</testsuites>\n')
elif fmt == "tap":
    with open(out + "/report.tap", "w", encoding="utf-8") as f:
        f.write("1..%d\n# %s\n" % (len(plan), limits))
        for i, n in enumerate(plan, 1):
            r = results[n]
            f.write("%s %d %s%s\n" % ("not ok" if r["status"] == "fail" else "ok", i, n,
                    " # skip " + r["output"].strip()[9:] if r["status"] == "skip" else ""))
            for l in r["output"].splitlines():
                f.write("# " + l + "\n")
elif fmt == "gradescope":
    tests = []
    for i, n in enumerate(plan, 1):
        r = results[n]
        tests.append({"name": n, "number": str(i), "score": 1 if r["status"] == "pass" else 0,
                      "max_score": 1, "status": "passed" if r["status"] == "pass" else "failed",
                      "output": r["output"]})
    doc = {"score": passed, "execution_time": int(round(secs)),
           "output": "%d of %d graded tests passed%s. %s." % (
               passed, len(plan), " (%d skipped: not passed)" % skipped if skipped else "", limits),
           "tests": tests}
    if msg:
        doc["output"] = msg + "\n" + doc["output"]
    with open(out + "/results.json", "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2, ensure_ascii=False)
        f.write("\n")
sys.exit(rc)
PY
	exit $?
}

# seconds: the seconds since grading started.
seconds() {
	local t0=${START//[!0-9]/} t1=${EPOCHREALTIME//[!0-9]/}
	printf '%d.%03d\n' $(((10#$t1 - 10#$t0) / 1000000)) $((((10#$t1 - 10#$t0) / 1000) % 1000))
}

# broken MESSAGE: the submission is broken: every planned test fails with
# MESSAGE; exit 2.
broken() {
	printf '%s\n' "$1" | sed 's/^/grade: /' >&2
	: >"$work/tap"
	report broken 2 "the submission is broken: $1"
}

# --- The submission --------------------------------------------------------

read -ra mine <<<"$(student_files "$step")"
[[ ${STUDENT_MAKEFILE:-} != 1 ]] || mine+=(Makefile)
missing=()
for f in "${mine[@]}"; do
	[[ -f $dir/$f ]] || missing+=("$f")
done
((${#missing[@]} == 0)) ||
	broken "missing from $dir: ${missing[*]} (chapter $step's exercises change them)"

# The build: the chapter's files and Makefile with the student's files over
# them.  The sources the checks read (SOURCE_DIR) are the same files, with
# the student's Makefile where it is taken.
copy=$work/${ref##*/}
mkdir -p "$copy" "$work/src"
if [[ -n $lab ]]; then
	# the stage the exercise starts from: chapter 5 after its patch N
	rmdir "$copy"
	bash "$ROOT/test/proofs/patches.sh" apply 5 "$lab_stage" "$copy" >/dev/null 2>&1 ||
		misuse "cannot make chapter 5's stage $lab_stage (test/proofs/patches.sh)"
	make -s -C "$copy" clean >/dev/null 2>&1
else
	cp -- "$ref"/Makefile "$ref"/*.[ch] "$copy/"
fi
for f in "${mine[@]}"; do
	[[ $f == Makefile ]] && continue
	cp -L -- "$dir/$f" "$copy/$f" 2>>"$work/cp.log" ||
		broken "cannot copy $f from $dir: $(cat "$work/cp.log")"
done
cp -- "$copy"/*.[ch] "$copy/Makefile" "$work/src/"
if [[ ${STUDENT_MAKEFILE:-} == 1 ]]; then
	cp -L -- "$dir/Makefile" "$work/src/Makefile" 2>>"$work/cp.log" ||
		broken "cannot copy Makefile from $dir: $(cat "$work/cp.log")"
fi

# --- The box ---------------------------------------------------------------

mkdir -p "$box"
: >"$box/pids"
# the box's one writable directory, emptied after every test
scratch=$work/scratch
mkdir -m 700 "$scratch"
box_uid=-1 box_gid=-1
if ((EUID == 0)); then
	box_user=${GRADE_USER:-gradebox}
	# (a grading beside this one may create it at the same time: then
	# useradd fails, and the user is there)
	id -u "$box_user" >/dev/null 2>&1 ||
		useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$box_user" >/dev/null 2>&1 ||
		id -u "$box_user" >/dev/null 2>&1 ||
		misuse "cannot create the unprivileged user $box_user to run student code"
	box_uid=$(id -u "$box_user") box_gid=$(id -g "$box_user")
	# the box user reads and runs the programs, nothing else of the grader's
	chmod 711 "$work"
	chown "$box_uid:$box_gid" "$scratch"
	chmod 755 "$copy" "$box"
fi
# A pids cgroup of this grading's own, where the machine has one to give
# (GRADE_CGROUP=0: none, as on a machine without).
for root in /sys/fs/cgroup/pids /sys/fs/cgroup; do
	[[ ${GRADE_CGROUP:-1} == 0 ]] && break
	if [[ -w $root/cgroup.procs ]] && mkdir "$root/grade.$$" 2>/dev/null; then
		cgroup=$root/grade.$$
		echo 256 >"$cgroup/pids.max" 2>/dev/null
		break
	fi
done
[[ -n $cgroup ]] || echo "grade: note: no pids cgroup for the student's code ($([[ ${GRADE_CGROUP:-1} == 0 ]] && echo GRADE_CGROUP=0 || echo 'none to give here')): its processes are limited by its user's process limit, and found by their ancestry"

# box/boxexec.c: a program's wrapper, built once per program (PROG): PROG
# in the box (see the header), under the wrapper's own PID, so a test that
# looks at /proc/PID sees the program; C, not a script, so that a test that
# counts the program's system calls (strace -f) counts few of the wrapper's.
cat >"$box/boxexec.c" <<'EOF'
#define _GNU_SOURCE
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <linux/mount.h>

#include <dirent.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Append TEXT to the file PATH (created if missing); 0 or -1. */
static int
append(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	int rc = 0;

	if (fd == -1)
		return -1;
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text))
		rc = -1;
	close(fd);
	return rc;
}

/* Close every descriptor above 2. */
static void
close_others(void)
{
	DIR *d;
	struct dirent *e;

	if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0)
		return;
	if ((d = opendir("/proc/self/fd")) == NULL)
		err(126, "box: /proc/self/fd");
	while ((e = readdir(d)) != NULL) {
		int fd = atoi(e->d_name);

		if (fd > 2 && fd != dirfd(d))
			close(fd);
	}
	closedir(d);
}

/* Set limit RES to N; fail closed. */
static void
limit(int res, rlim_t n)
{
	struct rlimit r = {n, n};

	if (setrlimit(res, &r) == -1)
		err(126, "box: setrlimit");
}

/* Make the directories of PATH (absolute) with MODE, each if missing. */
static void
make_path(const char *path, mode_t mode)
{
	char p[4096];
	char *slash;

	snprintf(p, sizeof(p), "%s", path);
	for (slash = strchr(p + 1, '/');; slash = strchr(slash + 1, '/')) {
		if (slash != NULL)
			*slash = '\0';
		if (mkdir(p, mode) == -1 && errno != EEXIST)
			err(126, "box: mkdir %s", p);
		if (slash == NULL)
			return;
		*slash = '/';
	}
}

/* Mount an empty tmpfs of the program's own on DIR, if DIR is there. */
static void
scratch(const char *dir)
{
	struct stat st;

	if (stat(dir, &st) == -1)
		return;
	if (mount("box", dir, "tmpfs", MS_NOSUID | MS_NODEV,
		  "mode=1777,size=64m") == -1)
		err(126, "box: a tmpfs on %s", dir);
}

/* A mount namespace of the program's own: every mount read-only, but a
 * private /tmp and /dev/shm (gone with it) and SCRATCH; the grading's
 * directory, when under /tmp, shows there again, read-only. */
static void
read_only_view(void)
{
	struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY};
	struct mount_attr rw = {.attr_clr = MOUNT_ATTR_RDONLY};
	char path[64];
	int work;

	if (unshare(CLONE_NEWNS) == -1)
		err(126, "box: unshare(CLONE_NEWNS)");
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == -1)
		err(126, "box: a private /");
	if (syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &ro,
		    sizeof(ro)) == -1)
		err(126, "box: a read-only /");
	/* the directory as this namespace mounts it, before /tmp is covered */
	if ((work = open(WORK, O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1)
		err(126, "box: %s", WORK);
	scratch("/tmp");
	scratch("/dev/shm");
	if (strncmp(WORK, "/tmp/", 5) == 0) {
		make_path(WORK, 0755);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", work);
		if (mount(path, WORK, NULL, MS_BIND | MS_REC, NULL) == -1)
			err(126, "box: %s again", WORK);
	}
	close(work);
	/* the one place it may write and keep: the test's builds */
	if (mount(SCRATCH, SCRATCH, NULL, MS_BIND, NULL) == -1 ||
	    syscall(SYS_mount_setattr, AT_FDCWD, SCRATCH, 0, &rw, sizeof(rw)) ==
		-1)
		err(126, "box: a writable %s", SCRATCH);
}

#ifdef REAPER
static volatile sig_atomic_t stopped;

/* Note that the grading was told to stop. */
static void
on_stop(int sig)
{
	(void)sig;
	stopped = 1;
}

/* Kill every process left under this one (each child, and the children a
 * killed one leaves, which come to this subreaper) until none is left. */
static void
kill_all(void)
{
	char path[64], stat[512];
	DIR *d;
	struct dirent *e;

	for (;;) {
		if ((d = opendir("/proc")) == NULL)
			err(1, "reaper: /proc");
		while ((e = readdir(d)) != NULL) {
			char *close_paren;
			FILE *f;
			int ppid;

			if (atoi(e->d_name) <= 0)
				continue;
			snprintf(path, sizeof(path), "/proc/%s/stat",
				 e->d_name);
			if ((f = fopen(path, "r")) == NULL)
				continue;
			if (fgets(stat, sizeof(stat), f) != NULL &&
			    (close_paren = strrchr(stat, ')')) != NULL &&
			    sscanf(close_paren + 2, "%*c %d", &ppid) == 1 &&
			    ppid == (int)getpid())
				kill(atoi(e->d_name), SIGKILL);
			fclose(f);
		}
		closedir(d);
		if (waitpid(-1, NULL, 0) == -1 && errno == ECHILD)
			return;
	}
}

/* Run the command the arguments name as a child subreaper: a process its
 * descendants leave behind (a double fork, setsid()) comes to this one, not
 * to init, and is killed when the command ends or this one is told to stop;
 * BOX/reaper says "REAPER-PID COMMAND-PID" for box/end-test. */
int
main(int argc, char **argv)
{
	struct sigaction sa = {.sa_handler = on_stop};
	char line[64];
	pid_t child, pid;
	int status, rc = 1;

	if (argc < 2)
		errx(126, "reaper: usage: reaper COMMAND [ARGS...]");
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) == -1)
		err(126, "reaper: PR_SET_CHILD_SUBREAPER");
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if ((child = fork()) == -1)
		err(126, "reaper: fork");
	if (child == 0) {
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		execvp(argv[1], argv + 1);
		err(127, "reaper: %s", argv[1]);
	}
	snprintf(line, sizeof(line), "%d %d\n", (int)getpid(), (int)child);
	if (append(BOX "/reaper", line) == -1)
		warn("reaper: %s/reaper", BOX);
	while (!stopped) {
		pid = waitpid(-1, &status, 0);
		if (pid == child) {
			rc = WIFEXITED(status) ? WEXITSTATUS(status)
					       : 128 + WTERMSIG(status);
			break;
		}
		if (pid == -1 && errno == ECHILD)
			break;
	}
	if (stopped)
		rc = 128 + SIGTERM;
	kill_all();
	return rc;
}
#else
/* Run PROG in the box with this program's arguments (ANY_PROG: run the
 * command the arguments name). */
int
main(int argc, char **argv)
{
	char pid[32], path[4096];

	(void)argc;
	(void)argv;
	close_others();
	snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	snprintf(path, sizeof(path), "%s/started.%d", BOX, (int)getpid());
	if (append(BOX "/pids", pid) == -1 || append(path, "") == -1)
		err(126, "box: cannot record the program");
	if (CGROUP[0] != '\0' && append(CGROUP "/cgroup.procs", pid) == -1)
		err(126, "box: cannot join %s", CGROUP);
	if (setsid() == -1)
		err(126, "box: setsid");
	/* kept across exec: what the program's children leave stays under it */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) == -1)
		err(126, "box: PR_SET_CHILD_SUBREAPER");
	limit(RLIMIT_NPROC, 512);
	limit(RLIMIT_CPU, CPU_SECONDS);
	limit(RLIMIT_FSIZE, 64 << 20);
	if (MOUNT_NS)
		read_only_view();
	if (BOX_UID >= 0) {
		if (setgroups(0, NULL) == -1 || setgid(BOX_GID) == -1 ||
		    setuid(BOX_UID) == -1)
			err(126, "box: cannot become the box's user");
	}
#ifdef ANY_PROG
	if (argc < 2)
		errx(126, "box: usage: boxrun COMMAND [ARGS...]");
	execvp(argv[1], argv + 1);
	err(127, "box: %s", argv[1]);
#else
	argv[0] = PROG;
	execv(PROG, argv);
	err(127, "box: %s", PROG);
#endif
}
#endif
EOF
# box/end-test: kill everything the student's programs started; fail if
# anything is left after a bound.  What they started: the process groups of
# the programs (box/pids), the pids cgroup's members, and every descendant
# of a program still running (the wrapper makes it a child subreaper, so a
# setsid() or a double fork stays under it) or of the reaper above the
# tests (what a program that ended left behind comes to it: as root, the
# box user's; else what is not in the tests' session).  No cgroup is needed for any but the second.
cat >"$box/end-test" <<EOF
#!/usr/bin/env bash
box='$box' cgroup='$cgroup' scratch='$scratch' box_uid=$box_uid
EOF
cat >>"$box/end-test" <<'EOF'
# left: kill what the student's code started that is not dead yet, and
# print how many that was.
left() {
	local p pid stat n=0 reaper='' main='' q
	local groups=" $(tr '\n' ' ' <"$box/pids") " members=" "
	local -A ppid sid state pgid kids doomed
	[[ -z $cgroup ]] || members=" $(tr '\n' ' ' <"$cgroup/cgroup.procs") "
	[[ ! -s $box/reaper ]] || read -r reaper main < <(tail -1 "$box/reaper")
	for p in /proc/[0-9]*; do
		read -r stat 2>/dev/null <"$p/stat" || continue
		pid=${p#/proc/}
		stat=${stat##*) }
		# shellcheck disable=SC2086 # the fields of the line
		set -- $stat
		state[$pid]=$1 ppid[$pid]=$2 pgid[$pid]=$3 sid[$pid]=$4
		kids[$2]+=" $pid"
	done
	# the roots: the programs still running (a session of their own, as the
	# wrapper made it), and what came to the reaper but the tests
	q=()
	for pid in $(cat "$box/pids" 2>/dev/null); do
		[[ ${sid[$pid]:-} == "$pid" ]] && q+=("$pid")
	done
	if [[ -n $reaper && -n ${kids[$reaper]:-} ]]; then
		for pid in ${kids[$reaper]}; do
			[[ $pid == "$main" ]] && continue
			# the student's: the box user's, or (no box user) in a session
			# not the tests' (the wrapper gave the program one of its own)
			if ((box_uid < 0)); then
				[[ ${sid[$pid]} != "${sid[$reaper]}" ]] || continue
			else
				[[ $(stat -c %u "/proc/$pid" 2>/dev/null) == "$box_uid" ]] || continue
			fi
			q+=("$pid")
		done
	fi
	while ((${#q[@]} > 0)); do
		pid=${q[0]}
		q=("${q[@]:1}")
		[[ -z ${doomed[$pid]:-} ]] || continue
		doomed[$pid]=1
		# shellcheck disable=SC2206 # a list of pids
		[[ -z ${kids[$pid]:-} ]] || q+=(${kids[$pid]})
	done
	for pid in "${!state[@]}"; do
		[[ ${state[$pid]} == Z ]] && continue
		if [[ -n ${doomed[$pid]:-} || $groups == *" ${pgid[$pid]} "* || $members == *" $pid "* ]]; then
			kill -KILL "$pid" 2>/dev/null
			n=$((n + 1))
		fi
	done
	echo $n
}
for pid in $(cat "$box/pids" 2>/dev/null); do
	kill -KILL -- -"$pid" 2>/dev/null
done
[[ -z $cgroup ]] || for pid in $(cat "$cgroup/cgroup.procs" 2>/dev/null); do kill -KILL "$pid"; done 2>/dev/null
# a killed process is gone at once unless the kernel is busy: 50 x 0.1 s
for i in $(seq 50); do
	n=$(left)
	((n == 0)) && break
	sleep 0.1
done
: >"$box/pids"
rm -f "$box"/started.*
find "$scratch" -mindepth 1 -delete 2>/dev/null
((n == 0)) || { echo "# box: $n processes the student's code started outlived the test" >&2; exit 1; }
EOF
chmod 755 "$box/end-test"
mkdir "$work/bin"
# build_box OUT PROG MOUNT_NS [CC ARGS]: the wrapper OUT that runs PROG in
# the box.
build_box() {
	cc -O1 -o "$1" "$box/boxexec.c" "${@:4}" -DPROG="\"$2\"" -DBOX="\"$box\"" -DWORK="\"$work\"" \
		-DSCRATCH="\"$scratch\"" \
		-DCGROUP="\"$cgroup\"" -DCPU_SECONDS="${cpu_seconds:-$((test_limit * 2))}" -DMOUNT_NS="$3" \
		-DBOX_UID="$box_uid" -DBOX_GID="$box_gid" 2>"$1.log" ||
		misuse "cannot build the box: $(cat "$1.log")"
	rm -f "$1.log"
}
# boxrun COMMAND ARGS: the tests' builds from the student's sources (and
# Makefile) and the sanitizer servers they make, in the same box.
# The read-only view needs root (a mount namespace) and a kernel that gives
# one (5.12 or later for a recursive read-only remount): tried once by
# running true(1) with boxrun built for it; without it the box is the rest
# (GRADE_MOUNT_NS=0 asks for that), and boxrun is built again without.
mount_ns=0
if ((EUID != 0)); then
	ns_note="the grader does not run as root"
elif [[ ${GRADE_MOUNT_NS:-1} == 0 ]]; then
	ns_note="GRADE_MOUNT_NS=0"
else
	build_box "$work/bin/boxrun" "" 1 -DANY_PROG
	if "$work/bin/boxrun" true 2>"$work/probe.log" </dev/null; then
		mount_ns=1
	else
		ns_note=$(head -1 "$work/probe.log")
		rm -f "$work/bin/boxrun"
	fi
	"$box/end-test" >/dev/null 2>&1
fi
((mount_ns)) || echo "grade: note: no read-only view for the student's code ($ns_note): it can write /tmp and whatever its user may write"
# the other wrappers at once, each a compiler run of its own
builds=()
for prog in $progs; do
	build_box "$work/bin/$prog" "$copy/$prog" "$mount_ns" &
	builds+=($!)
done
[[ -x $work/bin/boxrun ]] || {
	build_box "$work/bin/boxrun" "" "$mount_ns" -DANY_PROG &
	builds+=($!)
}
# buildrun COMMAND ARGS: the grader's build of the submission (below), in
# the box but with the build's own CPU limit
cpu_seconds=600 build_box "$work/bin/buildrun" "" "$mount_ns" -DANY_PROG &
builds+=($!)
# reaper COMMAND ARGS: the tests (and the attack lab) under a child
# subreaper of the grader's, which end-test looks under and which kills
# whatever is left when they end
build_box "$work/bin/reaper" "" 0 -DREAPER &
builds+=($!)
for b in "${builds[@]}"; do
	wait "$b" || exit 3
done
chmod 755 "$work/bin"

echo "grade: building ${mine[*]} of $dir with chapter $step's other files and Makefile"
# The build runs in the box too, in a copy in its scratch directory (the one
# place it may write), as its user: the compiler reads only what that user
# may, so a source that includes a file of the grader's (or another
# student's) fails to build instead of showing that file in its errors.
# A build of one chapter takes seconds; 600 s (and as much CPU time) only
# stops a hung make.
cp -r -- "$copy" "$scratch/build"
((box_uid < 0)) || chown -R "$box_uid:$box_gid" "$scratch/build"
timeout 600 "$work/bin/buildrun" make -C "$scratch/build" >"$work/build.log" 2>&1 </dev/null
build_rc=$?
# what the build left running is killed (end-test empties the scratch
# directory, so the build moves out first); then its programs, plain files
# and never a link, are copied into the grader's copy, which the box reads
mv -- "$scratch/build" "$work/built"
"$box/end-test" >/dev/null 2>&1
if ((build_rc != 0)); then
	# The errors, not the warnings before them: the compiler's and the
	# linker's error lines, else the end of the log.
	errors=$(grep -E ': (fatal )?error:|undefined reference|: No such file|\*\*\*' "$work/build.log" | head -40)
	[[ -n $errors ]] || errors=$(tail -30 "$work/build.log")
	broken "the build of $dir failed; its errors:
$errors"
fi
for prog in $progs; do
	if [[ -f $work/built/$prog && ! -L $work/built/$prog && -x $work/built/$prog ]]; then
		cp -- "$work/built/$prog" "$copy/$prog" && chmod 755 "$copy/$prog"
	fi
	[[ -x $copy/$prog ]] || missing+=("$prog")
done
rm -rf -- "$work/built"
((${#missing[@]} == 0)) ||
	broken "missing after the build of $dir: ${missing[*]} (chapter $step's tests run it)"

# The watchdog: a program of the student's that outlives a test is killed,
# and what it started with it (its group, and its cgroup's processes as old).
# One loop of the grader's, outside the box: nothing in the box to trace.
watchdog() {
	local f pid now
	exec </dev/null >/dev/null 2>&1
	while sleep 1; do
		now=$EPOCHSECONDS
		for f in "$box"/started.*; do
			[[ -e $f ]] || continue
			# 2 s past the limit: bats labels a test "timeout" only when it
			# ends after the limit, and this loop's clock is whole seconds
			# (mtime rounded down, a 1 s sleep), so killing at the limit
			# could end the test up to a second early, unlabelled
			(($(stat -c %Y "$f" 2>/dev/null || echo "$now") + test_limit + 2 <= now)) || continue
			pid=${f##*.}
			kill -KILL -- -"$pid" 2>/dev/null
			rm -f "$f"
			[[ -z $cgroup ]] || ps -o pid=,etimes= -p "$(tr '\n' ',' <"$cgroup/cgroup.procs")0" |
				awk -v l="$test_limit" '$2 >= l { print $1 }' | xargs -r kill -KILL
		done
	done
}
watchdog &
watchdog_pid=$!

# prlimit on a program in the box: the tests lower a running server's
# descriptor limit; a grader without CAP_SYS_RESOURCE may do that only as
# the program's own user.
mkdir -p "$work/shim"
real_prlimit=$(command -v prlimit || echo prlimit)
cat >"$work/shim/prlimit" <<EOF
#!/usr/bin/env bash
args=("\$@") pid=
while ((\$# > 0)); do
	case \$1 in --pid) pid=\$2; shift ;; --pid=*) pid=\${1#--pid=} ;; -p) pid=\$2; shift ;; esac
	shift
done
uid=\$(stat -c %u "/proc/\$pid" 2>/dev/null) gid=\$(stat -c %g "/proc/\$pid" 2>/dev/null)
if [[ -n \$pid && -n \$uid && \$uid != \$(id -u) ]]; then
	exec setpriv --reuid="\$uid" --regid="\$gid" --clear-groups -- '$real_prlimit' "\${args[@]}"
fi
exec '$real_prlimit' "\${args[@]}"
EOF
chmod 755 "$work/shim" "$work/shim/prlimit"

# --- The tests -------------------------------------------------------------

# Every variable a chapter file reads is set here or unset: none is left to
# the chapter's default, which is the reference.
env=(env -u ECHOSERVER -u WORKQUEUE_DEMO -u EXERCISES GRADING=1 "SOURCE_DIR=$work/src"
	"GRADE_BOX=$box" "BATS_TEST_TIMEOUT=$test_limit" "PATH=$work/shim:$PATH"
	"GRADE_BOXRUN=$work/bin/boxrun" "GRADE_SCRATCH=$scratch"
)
for prog in $progs; do
	case $prog in
	echoserver) env+=("ECHOSERVER=$work/bin/echoserver") ;;
	workqueue_demo) env+=("WORKQUEUE_DEMO=$work/bin/workqueue_demo") ;;
	*) misuse "chapter $step builds $prog, which grading does not know" ;;
	esac
done
[[ ${EXERCISES:-} != 1 ]] || env+=(EXERCISES=1)

if [[ $step == 4 && ${EXERCISES:-} == 1 && -z ${GRADE_FILTER:-} ]]; then
	echo "grade: note: chapter 4's exercises 2, 3, 5, 6 and 7 each make a mistake on purpose, so they exclude each other and exercises 1 and 4: grade each alone, GRADE_FILTER='^exercise K:'"
fi
what="chapter $step's tests"
[[ -z $lab ]] || what="attack-lab exercise $lab (stage $lab_stage; $lab_attacks)"
echo "grade: $what against the copy of $dir ($planned planned; $test_limit s a test, $total_limit s in all)"
# Bats' output goes to a file only the grader reads; the student's programs
# hold no descriptor of it (the box closes them).
# (--tempdir: a run directory the box's user may enter, for the tests that
# hand a program a file there; it can write nothing in it)
if [[ -n $lab ]]; then
	# one attack at a time, each a test: test/proofs/attack.sh's verdict (0 held,
	# 3 broke, 1 could not run) under the test's limit; then the box is
	# emptied, as a test's teardown empties it
	i=0 rc=0
	echo "1..$planned" >"$work/tap"
	for a in $lab_attacks; do
		i=$((i + 1))
		if (($(seconds | cut -d. -f1) >= total_limit)); then
			rc=124
			break
		fi
		timeout -k 5 "$test_limit" "$work/bin/reaper" env "PATH=$work/shim:$PATH" ATTACK="$a" \
			bash "$ROOT/test/proofs/attack.sh" 5 "$work/bin/echoserver" >"$work/attack.out" 2>&1 </dev/null
		arc=$?
		"$box/end-test" 2>>"$work/attack.out" || arc=1
		name="attack-lab exercise $lab: the $a attack holds"
		case $arc in
		0) echo "ok $i $name" ;;
		124 | 137) echo "not ok $i $name # timeout after ${test_limit}s" ;;
		*) echo "not ok $i $name" ;;
		esac >>"$work/tap"
		sed 's/^/# /' "$work/attack.out" >>"$work/tap"
	done
else
	timeout -k 5 "$total_limit" "$work/bin/reaper" "${env[@]}" bats --tempdir "$work/bats-run" "${args[@]}" "$bats_file" >"$work/tap" 2>"$work/bats.err" </dev/null
	rc=$?
fi
kill "$watchdog_pid" 2>/dev/null
"$box/end-test" 2>>"$work/bats.err"
sed 's/^/  /' "$work/tap"
if ((rc == 124 || rc == 137)); then
	report timeout 1
fi
report ran "$rc"
