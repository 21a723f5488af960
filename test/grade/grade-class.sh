#!/usr/bin/env bash
# grade-class.sh STEP SUBMISSIONS OUT: grade every student's directory in
# SUBMISSIONS (each subdirectory is one student's chapter STEP; its name is
# the student's) with test/grade/grade.sh, JOBS at a time (default: the number of
# cores), and write into OUT:
#   OUT/grades.csv             student,passed,failed,score,exit_status,seconds
#   OUT/STUDENT/grade.log      what test/grade/grade.sh printed for that student
#   OUT/STUDENT/report.*       its report (FORMAT: junit, the default, tap or
#                              gradescope's results.json)
# score is the percentage of graded tests passed; exit_status is grade.sh's
# (0 passed, 1 a test failed or timed out, 2 a broken submission, 4 a grading
# error: results the grader did not plan).  Each grading has grade.sh's time
# limits (GRADE_TEST_TIMEOUT, GRADE_TIMEOUT) and its box.  Each grading builds in
# a directory of its own and its servers take free ports, so none sees
# another's.  EXERCISES, GRADE_FILTER, STUDENT_MAKEFILE and the time limits go
# through to grade.sh.
#
# Exit status: 0 every student's grading ran (whatever its verdict), 3 misuse.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)

misuse() {
	echo "grade-class: $*" >&2
	exit 3
}

(($# == 3)) || misuse "usage: test/grade/grade-class.sh STEP SUBMISSIONS OUT (or make grade-class STEP=N SUBMISSIONS=dir)"
step=$1 subs=$2 out=$3
[[ -d $subs ]] || misuse "SUBMISSIONS=$subs is not a directory"
jobs=${JOBS:-$(nproc)}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || misuse "JOBS must be a positive number, not '$jobs'"
format=${FORMAT:-junit}
[[ $format == junit || $format == tap || $format == gradescope ]] ||
	misuse "FORMAT is junit, tap or gradescope, not '$format'"
mkdir -p -- "$out" 2>/dev/null && [[ -w $out ]] || misuse "cannot write into OUT=$out"
out=$(cd "$out" && pwd)
students=()
for d in "$subs"/*/; do
	[[ -d $d ]] && students+=("${d%/}")
done
((${#students[@]} > 0)) || misuse "no student directory in $subs"
# Grading misused is the same for every student: find out once, up front.
[[ -d $(printf '%s\n' "$ROOT/step$step-"*/ | head -1) && -f $ROOT/test/step$step.bats ]] ||
	misuse "there is no chapter $step here"
# The tools every grading shares, built once before the gradings start.
make -s -C "$ROOT" test/tools/echoclient test/tools/racehook.so >&2 || misuse "cannot build the test tools"

# csv_field TEXT: TEXT as one CSV field.
csv_field() {
	local s=${1//\"/\"\"}
	printf '"%s"' "$s"
}

# grade_one DIR: grade one student; write their log, report and CSV row.
grade_one() {
	local dir=$1 name=${1##*/} t0 rc passed failed secs score
	local dest=$out/$name
	mkdir -p -- "$dest"
	t0=$(date +%s.%N)
	FORMAT=$format OUT=$dest bash "$ROOT/test/grade/grade.sh" "$step" "$dir" >"$dest/grade.log" 2>&1 </dev/null
	rc=$?
	secs=$(awk -v s="$t0" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }')
	passed=$(grep -c '^pass ' "$dest/grade.log")
	failed=$(grep -c '^FAIL ' "$dest/grade.log")
	score=$(awk -v p="$passed" -v f="$failed" 'BEGIN { printf "%.1f", (p + f) ? 100 * p / (p + f) : 0 }')
	printf '%s,%d,%d,%s,%d,%s\n' "$(csv_field "$name")" "$passed" "$failed" "$score" "$rc" "$secs" \
		>"$dest/row.csv"
	printf 'grade-class: %s: %d passed, %d failed, exit %d, %s s\n' "$name" "$passed" "$failed" "$rc" "$secs"
}

t0=$(date +%s.%N)
echo "grade-class: ${#students[@]} students, chapter $step, $jobs at a time"
running=0
for dir in "${students[@]}"; do
	if ((running >= jobs)); then
		wait -n
		running=$((running - 1))
	fi
	grade_one "$dir" &
	running=$((running + 1))
done
wait

{
	echo "student,passed,failed,score,exit_status,seconds"
	for dir in "${students[@]}"; do
		cat "$out/${dir##*/}/row.csv"
		rm -f "$out/${dir##*/}/row.csv"
	done
} >"$out/grades.csv"
echo "grade-class: wrote $out/grades.csv ($(awk -v s="$t0" -v n="$(date +%s.%N)" 'BEGIN { printf "%.0f", n - s }') s)"
awk -F, 'NR > 1 { n[$(NF - 1)]++ } END {
	printf "grade-class: %d passed, %d failed a test, %d broken, %d grading errors\n", n[0], n[1], n[2], n[4] }' "$out/grades.csv"
