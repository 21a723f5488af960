#!/usr/bin/env bash
# grade.sh STEP DIR: grade a student's chapter STEP in DIR with the chapter's
# tests, and print a table of every test and a score.  (make grade STEP=N
# DIR=path runs it; a batch script should run this file itself, since make
# turns every failure into its own exit status 2.)
#
# DIR's sources are copied (links followed) and built with the chapter's own
# Makefile, never DIR's: only the source files the chapter has (its .c and .h
# files) are copied, so a program DIR holds, under any name, is never
# graded, and DIR itself is never written.  STUDENT_MAKEFILE=1 builds with
# DIR's Makefile instead, for an exercise that changes it (DIR's Makefile and
# its .c and .h files are copied, nothing else).  Every test then runs
# against the copy: its echoserver, its workqueue_demo (chapters 2 to 4) and
# its sources (SOURCE_DIR, for the compile-time checks).  Grading fails
# closed: a part the chapter needs that DIR lacks is an error naming that
# part, never a fallback to the chapter's own code, and the tests themselves
# refuse a reference path (GRADING=1, see helper.bash).
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
#   STUDENT_MAKEFILE=1  build with DIR's Makefile
# Every run that gets as far as DIR writes its report, a broken submission
# too: one failing case that names the missing part or shows the compiler's
# errors.
#
# Exit status: 0 every test passed (skips allowed), 1 a test failed, 2 the
# submission is broken (a missing part, a failed build), 3 the grader was
# misused (arguments, FORMAT, OUT); nothing is built or written then.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
# Run from inside a Bats test (grade.bats), PATH starts with bats-core's
# libexec directory, whose bats works only under its wrapper: drop it.
PATH=$(sed -E 's#(^|:)[^:]*/libexec/bats-core(:|$)#\1#' <<<"$PATH")
BROKEN_CASE="the submission has every part the chapter needs and builds"
START=$(date +%s.%N)

misuse() {
	echo "grade: $*" >&2
	exit 3
}

(($# == 2)) || misuse "usage: test/grade.sh STEP DIR (or make grade STEP=N DIR=path/to/student/stepN)"
step=$1 dir=$2
[[ $step =~ ^[1-9][0-9]*$ ]] || misuse "STEP must be a chapter number, not '$step'"
bats_file=$ROOT/test/step$step.bats
refs=("$ROOT/step$step-"*/)
ref=${refs[0]%/}
[[ -f $bats_file && -d $ref ]] || misuse "there is no chapter $step here"
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

# What the chapter builds: the PROGS line of its Makefile.
progs=$(sed -n 's/^PROGS[[:space:]]*=[[:space:]]*//p' "$ref/Makefile")
[[ -n $progs ]] || misuse "cannot tell what chapter $step builds (no PROGS in $ref/Makefile)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- Reports -------------------------------------------------------------

# json_string TEXT: TEXT as a JSON string.
json_string() {
	awk 'BEGIN { RS = "\001" }
		{
			gsub(/\\/, "\\\\"); gsub(/"/, "\\\""); gsub(/\t/, "\\t")
			gsub(/\r/, "\\r"); gsub(/\n/, "\\n")
			gsub(/[\001-\037]/, " ")
			printf "\"%s\"", $0
		}' < <(printf '%s' "$1")
}

# xml_text TEXT: TEXT escaped for XML.
xml_text() {
	sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g' -e 's/"/\&quot;/g' <<<"$1"
}

# elapsed: the seconds since grading started.
elapsed() {
	awk -v s="$START" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f", n - s }'
}

# broken MESSAGE: the submission is broken.  Print MESSAGE, write a report
# with one failing case that says it, and exit 2.
broken() {
	local msg=$1 name="step$step.bats"
	printf '%s\n' "$msg" | sed 's/^/grade: /' >&2
	printf '\nresult test\nFAIL  %s\nscore: 0/1 passed\n' "$BROKEN_CASE"
	case $format in
	junit)
		{
			echo '<?xml version="1.0" encoding="UTF-8"?>'
			echo "<testsuites time=\"$(elapsed)\">"
			echo "<testsuite name=\"$name\" tests=\"1\" failures=\"1\" errors=\"0\" skipped=\"0\" time=\"$(elapsed)\">"
			echo "    <testcase classname=\"$name\" name=\"$BROKEN_CASE\" time=\"$(elapsed)\">"
			echo "        <failure type=\"failure\">$(xml_text "$msg")</failure>"
			echo "    </testcase>"
			echo "</testsuite>"
			echo "</testsuites>"
		} >"$out/report.xml"
		;;
	tap)
		{
			echo "1..1"
			echo "not ok 1 $BROKEN_CASE"
			printf '%s\n' "$msg" | sed 's/^/# /'
		} >"$out/report.tap"
		;;
	gradescope)
		{
			echo "{"
			echo "  \"score\": 0,"
			echo "  \"execution_time\": $(elapsed),"
			echo "  \"output\": $(json_string "The submission is broken: 0 of 1 passed."),"
			echo "  \"tests\": ["
			echo "    {\"name\": $(json_string "$BROKEN_CASE"), \"score\": 0, \"max_score\": 1, \"status\": \"failed\", \"output\": $(json_string "$msg")}"
			echo "  ]"
			echo "}"
		} >"$out/results.json"
		;;
	esac
	exit 2
}

# gradescope_report TAP: Gradescope's results.json from the TAP stream of a
# run: one test per graded test (1 point each; a skipped test is worth 0),
# with the diagnostics Bats printed for a failure as its output.
gradescope_report() {
	awk -v time="$(elapsed)" '
		function js(s) {
			gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); gsub(/\t/, "\\t", s)
			gsub(/\n/, "\\n", s); gsub(/[\001-\037]/, " ", s)
			return "\"" s "\""
		}
		function flush() {
			if (name == "") return
			tests[++n] = sprintf("    {\"name\": %s, \"score\": %d, \"max_score\": %d, \"status\": \"%s\", \"output\": %s}",
				js(name), score, max, status, js(outp))
			name = ""
		}
		/^(not )?ok [0-9]+ / {
			flush()
			line = $0; outp = ""
			sub(/ # in [0-9]+ ?ms$/, "", line)
			if (line ~ /^not ok/) {
				sub(/^not ok [0-9]+ /, "", line); status = "failed"; score = 0; max = 1; failed++
			} else if (line ~ / # skip/) {
				sub(/^ok [0-9]+ /, "", line); outp = line; sub(/.* # skip ?/, "skipped: ", outp)
				sub(/ # skip.*/, "", line); status = "passed"; score = 0; max = 0
			} else {
				sub(/^ok [0-9]+ /, "", line); status = "passed"; score = 1; max = 1; passed++
			}
			name = line; next
		}
		/^# / && name != "" { l = $0; sub(/^# /, "", l); outp = outp l "\n"; next }
		END {
			flush()
			print "{"
			printf "  \"score\": %d,\n", passed + 0
			printf "  \"execution_time\": %s,\n", time
			printf "  \"output\": %s,\n", js((passed + 0) " of " (passed + failed) " graded tests passed.")
			print "  \"tests\": ["
			for (i = 1; i <= n; i++) printf "%s%s\n", tests[i], (i < n ? "," : "")
			print "  ]"
			print "}"
		}' "$1" >"$out/results.json"
}

# --- The submission ------------------------------------------------------

# The parts DIR must have: every source file the chapter has (the tests
# build and read them), and its Makefile when it is the one used.
missing=()
[[ ${STUDENT_MAKEFILE:-} != 1 || -f $dir/Makefile ]] || missing+=("Makefile")
for src in "$ref"/*.[ch]; do
	[[ -f $dir/${src##*/} ]] || missing+=("${src##*/}")
done
((${#missing[@]} == 0)) ||
	broken "missing from $dir: ${missing[*]} (chapter $step needs them)"

copy=$work/${ref##*/}
mkdir "$copy"
if [[ ${STUDENT_MAKEFILE:-} == 1 ]]; then
	files=("$dir"/Makefile "$dir"/*.[ch])
	how="$dir's own Makefile"
else
	files=("$ref"/Makefile)
	for src in "$ref"/*.[ch]; do
		files+=("$dir/${src##*/}")
	done
	how="chapter $step's Makefile"
fi
cp -L -- "${files[@]}" "$copy/" 2>"$work/cp.log" ||
	broken "cannot copy the sources of $dir: $(cat "$work/cp.log")"

echo "grade: building the sources of $dir with $how"
# A build of one chapter takes seconds; 600 s only stops a hung make.
if ! timeout 600 make -C "$copy" >"$work/build.log" 2>&1 </dev/null; then
	# The errors, not the warnings before them: the compiler's and the
	# linker's error lines, else the end of the log.
	errors=$(grep -E ': (fatal )?error:|undefined reference|: No such file|\*\*\*' "$work/build.log" | head -40)
	[[ -n $errors ]] || errors=$(tail -30 "$work/build.log")
	broken "the build of $dir failed (with $how); its errors:
$errors"
fi
for prog in $progs; do
	[[ -x $copy/$prog ]] || missing+=("$prog")
done
((${#missing[@]} == 0)) ||
	broken "missing after the build of $dir: ${missing[*]} (chapter $step's tests run it)"

# --- The tests -----------------------------------------------------------

# Every variable a chapter file reads is set here or unset: none is left to
# the chapter's default, which is the reference.
env=(env -u ECHOSERVER -u WORKQUEUE_DEMO -u EXERCISES GRADING=1 "SOURCE_DIR=$copy")
for prog in $progs; do
	case $prog in
	echoserver) env+=("ECHOSERVER=$copy/echoserver") ;;
	workqueue_demo) env+=("WORKQUEUE_DEMO=$copy/workqueue_demo") ;;
	*) misuse "chapter $step builds $prog, which grading does not know" ;;
	esac
done
args=(--formatter tap)
if [[ ${EXERCISES:-} == 1 ]]; then
	env+=(EXERCISES=1)
	args+=(--filter-tags '!flaw,!reference-only')
else
	args+=(--filter-tags '!flaw,!exercise,!reference-only')
fi
[[ -z ${GRADE_FILTER:-} ]] || args+=(--filter "$GRADE_FILTER")
case $format in
junit | tap) args+=(--report-formatter "$format" --output "$out") ;;
esac

echo "grade: chapter $step's tests against the copy of $dir"
"${env[@]}" bats "${args[@]}" "$bats_file" 2>&1 | tee "$work/tap"
rc=${PIPESTATUS[0]}
[[ $format != gradescope ]] || gradescope_report "$work/tap"

# The table, from the TAP stream: one line per test.
awk -v rc="$rc" '
	/^1\.\.[0-9]+$/ { planned = substr($0, 4) }
	/^(not )?ok [0-9]+ / {
		line = $0
		# a report formatter turns the timing on: not part of the name
		sub(/ # in [0-9]+ ?ms$/, "", line)
		result = "pass"
		if (line ~ /^not ok/) { result = "FAIL"; failed++; sub(/^not ok [0-9]+ /, "", line) }
		else { sub(/^ok [0-9]+ /, "", line) }
		if (result == "pass" && line ~ / # skip/) {
			result = "skip"; skipped++
			sub(/ # skip/, " (skipped:", line); line = line ")"
		}
		if (result == "pass") passed++
		names[++n] = sprintf("%-5s %s", result, line)
	}
	END {
		print ""
		print "result test"
		for (i = 1; i <= n; i++) print names[i]
		if (n == 0) { print "grade: no test ran"; exit 1 }
		if (n != planned) { print "grade: " n " of " planned " planned tests reported"; exit 1 }
		printf "score: %d/%d passed", passed, n - skipped
		if (skipped) printf " (%d skipped, not counted)", skipped
		printf "\n"
		if (failed || rc != 0) exit 1
	}
' "$work/tap"
