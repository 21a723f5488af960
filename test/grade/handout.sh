#!/usr/bin/env bash
# handout.sh STEP OUT: write the lab archive for chapter STEP to OUT (a
# .tar.gz): the top level, chapters 1 to STEP and test/ without the worked
# solutions and wrong answers (test/proofs/solutions/ and the files that apply
# them) or the tests of later chapters, all as committed (HEAD); of
# test/results/, the files its READMEs show or link to (the timelines).
# Then unpack it in a scratch directory and prove that it stands alone: make
# test and make grade STEP=STEP DIR=<the chapter> pass there.
#
# Exit status: 0 the archive is written and works, 1 it does not work,
# 3 misuse (not a git checkout, no such chapter).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# Run from inside a Bats test (grade.bats), PATH starts with bats-core's
# libexec directory, whose bats works only under its wrapper: drop it.
PATH=$(sed -E 's#(^|:)[^:]*/libexec/bats-core(:|$)#\1#' <<<"$PATH")

misuse() {
	echo "handout: $*" >&2
	exit 3
}

(($# == 2)) || misuse "usage: test/grade/handout.sh STEP OUT (or make handout STEP=N)"
step=$1 out=$2
[[ $step =~ ^[1-9][0-9]*$ ]] || misuse "STEP must be a chapter number, not '$step'"
git -C "$ROOT" rev-parse --verify -q HEAD >/dev/null || misuse "$ROOT is not a git checkout with a commit"
cd "$ROOT" || exit 3
mapfile -t chapters < <(git ls-tree --name-only HEAD | grep -E '^step[0-9]+-' | sort -V)
keep=() chapter=
for c in "${chapters[@]}"; do
	n=${c#step}
	n=${n%%-*}
	((n <= step)) && keep+=("$c")
	((n == step)) && chapter=$c
done
[[ -n $chapter ]] || misuse "there is no chapter $step here"

# What a lab leaves out: the worked solutions and wrong answers, the tests
# that apply them or need the chapters left out, and those chapters' tests.
exclude=(':!test/proofs/solutions' ':!test/proofs/solutions.bats' ':!test/proofs/wrong-answers.bats'
	':!test/proofs/exercises.bash' ':!test/proofs/lab.bats'
	':!test/proofs/patches.bats' ':!test/stress.sh'
	# the tutorial's own proofs, which need every chapter: the README's
	# claims, the tools' and the grader's tests (make test runs them when
	# present)
	':!test/proofs/docs.bats' ':!test/grade/grade.bats' ':!test/grade/junit.xsd' ':!test/tools/tools.bats')
for c in "${chapters[@]}"; do
	n=${c#step}
	n=${n%%-*}
	((n > step)) && exclude+=(":!test/step$n.bats")
done
top=()
for f in Makefile README.md LICENSE .clang-format .gitignore; do
	git cat-file -e "HEAD:$f" 2>/dev/null && top+=("$f")
done
if ! git diff --quiet HEAD -- "${top[@]}" test "${keep[@]}"; then
	echo "handout: note: uncommitted changes are not in the archive (it is made from HEAD)" >&2
fi
# What the handout's READMEs show or link to in test/results/ (the chapters'
# timelines, the top README's benchmark), so that no picture is broken.
results=()
for readme in README.md "${keep[@]/%//README.md}"; do
	git cat-file -e "HEAD:$readme" 2>/dev/null || continue
	base=${readme%README.md}
	while IFS= read -r target; do
		[[ -n $target ]] || continue
		target=$(realpath -m --relative-to=. -- "$base$target")
		[[ $target == test/results/* ]] && git cat-file -e "HEAD:$target" 2>/dev/null &&
			results+=("$target")
	done < <(git show "HEAD:$readme" | grep -oE '\]\([^) ]+\)' | sed -E 's/^\]\(//; s/\)$//; s/#.*//')
done
# the rest of test/results/ (the measurements themselves) stays out
while IFS= read -r f; do
	[[ " ${results[*]} " == *" $f "* ]] || exclude+=(":!$f")
done < <(git ls-tree -r --name-only HEAD -- test/results)
prefix=lab$step
git archive --format=tar.gz --prefix="$prefix/" -o "$out" HEAD -- \
	"${top[@]}" test "${keep[@]}" "${results[@]}" "${exclude[@]}" || misuse "git archive failed"
echo "handout: wrote $out: ${keep[*]}, test/ without the solutions${results:+, ${results[*]}}"

# Prove it: unpacked elsewhere, the lab tests and grades its chapter, with
# nothing of this make's command line (OUT, STEP) or environment in the way.
clean_env=(env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u OUT -u FORMAT -u EXERCISES
	-u GRADE_FILTER -u STUDENT_MAKEFILE -u ECHOSERVER -u WORKQUEUE_DEMO -u SOURCE_DIR)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
tar -xzf "$out" -C "$scratch" || exit 1
lab=$scratch/$prefix
if [[ -e $lab/test/proofs/solutions ]] || compgen -G "$lab/test/*.patch" >/dev/null ||
	compgen -G "$lab/test/*/*.patch" >/dev/null; then
	echo "handout: the archive holds worked solutions" >&2
	exit 1
fi
# plain make test: every test file the lab has (its chapters', nothing else)
echo "handout: in the unpacked lab: make test"
if ! "${clean_env[@]}" make -s -C "$lab" test >"$scratch/test.log" 2>&1; then
	tail -30 "$scratch/test.log" >&2
	echo "handout: make test fails in the lab" >&2
	exit 1
fi
grep -E '^[0-9]+\.\.[0-9]+$' "$scratch/test.log" | sed 's/^/handout: make test: tests /'
echo "handout: in the unpacked lab: make grade STEP=$step DIR=$chapter"
if ! "${clean_env[@]}" make -s -C "$lab" grade STEP="$step" DIR="$chapter" >"$scratch/grade.log" 2>&1; then
	tail -30 "$scratch/grade.log" >&2
	echo "handout: make grade fails in the lab" >&2
	exit 1
fi
grep '^score:' "$scratch/grade.log" | sed 's/^/handout: make grade: /'
echo "handout: $out stands alone"
