#!/usr/bin/env bash
# grade.sh STEP DIR: grade a student's chapter STEP in DIR with the chapter's
# tests, and print a table of every test and a score.  (make grade STEP=N
# DIR=path runs it.)
#
# DIR is built in a copy (links followed), from its sources: the programs
# and objects it may hold are removed first, and DIR itself is never written.  Every test then
# runs against the copy: its echoserver, its workqueue_demo (chapters 2 to 4)
# and its sources (SOURCE_DIR, for the compile-time checks).  Grading fails
# closed: a part the chapter needs that DIR lacks is an error naming that
# part, never a fallback to the chapter's own code, and the tests themselves
# refuse a reference path (GRADING=1, see helper.bash).
#
# Left out: the tests tagged "flaw" (they assert a historical flaw of the
# reference, which a student's fix should remove) and "reference-only"; the
# exercise checks too, unless EXERCISES=1.
#
# Environment:
#   EXERCISES=1         include the exercise checks
#   GRADE_FILTER=REGEX  run only the tests whose names match (bats -f)
#   FORMAT=junit|tap    also write a report to OUT (Bats' report formatter),
#   OUT=DIR             for CI graders; OUT must exist or is created
# Exit status: 0 every test passed (skips allowed), 1 a test failed, 2 a
# usage error, a missing part or a failed build.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)

die() {
	echo "grade: $*" >&2
	exit 2
}

(($# == 2)) || die "usage: make grade STEP=N DIR=path/to/student/stepN"
step=$1 dir=$2
[[ $step =~ ^[1-9][0-9]*$ ]] || die "STEP must be a chapter number, not '$step'"
bats_file=$ROOT/test/step$step.bats
refs=("$ROOT/step$step-"*/)
ref=${refs[0]%/}
[[ -f $bats_file && -d $ref ]] || die "there is no chapter $step here"
[[ -d $dir ]] || die "missing: the directory $dir"
dir=$(cd "$dir" && pwd)

# What the chapter builds: the PROGS line of its Makefile.
progs=$(sed -n 's/^PROGS[[:space:]]*=[[:space:]]*//p' "$ref/Makefile")
[[ -n $progs ]] || die "cannot tell what chapter $step builds (no PROGS in $ref/Makefile)"

# The parts DIR must have: its Makefile, and every source file the chapter has
# (the compile-time checks read and build them).
missing=()
[[ -f $dir/Makefile ]] || missing+=("Makefile")
for src in "$ref"/*.[ch]; do
	[[ -f $dir/${src##*/} ]] || missing+=("${src##*/}")
done
((${#missing[@]} == 0)) ||
	die "missing from $dir: ${missing[*]} (chapter $step needs them)"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
copy=$work/${ref##*/}
cp -RL "$dir" "$copy" || die "cannot copy $dir"
# shellcheck disable=SC2086 # progs is a list of names
(cd "$copy" && rm -rf $progs ./*.o strict-include)

echo "grade: building a copy of $dir"
# A build of one chapter takes seconds; 600 s only stops a hung make.
if ! timeout 600 make -C "$copy" >"$work/build.log" 2>&1 </dev/null; then
	tail -30 "$work/build.log" >&2
	die "the build of $dir failed (make -C DIR; its last lines above)"
fi
for prog in $progs; do
	[[ -x $copy/$prog ]] || missing+=("$prog")
done
((${#missing[@]} == 0)) ||
	die "missing after make -C $dir: ${missing[*]} (chapter $step's tests run it)"

# Every variable a chapter file reads is set here or unset: none is left to
# the chapter's default, which is the reference.
env=(env -u ECHOSERVER -u WORKQUEUE_DEMO -u EXERCISES GRADING=1 "SOURCE_DIR=$copy")
for prog in $progs; do
	case $prog in
	echoserver) env+=("ECHOSERVER=$copy/echoserver") ;;
	workqueue_demo) env+=("WORKQUEUE_DEMO=$copy/workqueue_demo") ;;
	*) die "chapter $step builds $prog, which grading does not know" ;;
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
if [[ -n ${FORMAT:-} ]]; then
	[[ $FORMAT == junit || $FORMAT == tap ]] || die "FORMAT is junit or tap, not '$FORMAT'"
	[[ -n ${OUT:-} ]] || die "FORMAT=$FORMAT needs OUT=directory"
	mkdir -p "$OUT" || die "cannot create $OUT"
	args+=(--report-formatter "$FORMAT" --output "$OUT")
fi

echo "grade: chapter $step's tests against $dir"
"${env[@]}" bats "${args[@]}" "$bats_file" 2>&1 | tee "$work/tap"
rc=${PIPESTATUS[0]}

# The table, from the TAP stream: one line per test.
awk -v rc="$rc" '
	/^1\.\.[0-9]+$/ { planned = substr($0, 4) }
	/^(not )?ok [0-9]+ / {
		line = $0
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
