#!/usr/bin/env bats
# The exercises of chapters 1 to 5: every one has a check (a test named
# "exercise K: ..." in test/stepN.bats, tagged exercise) and a worked solution
# (test/proofs/solutions/stepN-exK.patch; the stepN-exK.wrong-M.patch beside them
# are wrong answers, test/proofs/wrong-answers.bats), and every check fails on its chapter's
# code and passes on a copy of the chapter with the solution applied.
#
# A chapter is copied and built once; each solution is applied to a copy of
# its own and built once; each check runs alone (bats -f '^exercise K:').

bats_load_library bats-support
bats_load_library bats-assert
load exercises

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
CHAPTERS=(1 2 3 4 5)

setup_file() {
	if [[ ! -x $ROOT/test/tools/echoclient || $ROOT/test/tools/echoclient.c -nt $ROOT/test/tools/echoclient ]]; then
		make -s -C "$ROOT" test/tools/echoclient >&2
	fi
}

# readme_exercises N: the numbers of the exercises in chapter N's README
# (the numbered items of its "## Exercises" section), one a line.
readme_exercises() {
	awk '/^## / { on = ($0 == "## Exercises") } on && /^[0-9]+\. \*\*/ { sub(/\..*/, ""); print }' \
		"$(chapter_dir "$1")/README.md"
}

# checks N: the numbers of chapter N's exercise checks that are tagged
# exercise and skip unless EXERCISES=1 (they call the exercise helper).
checks() {
	awk '/^# bats test_tags=/ { tags = $0; next }
		/^@test "exercise [0-9]+:/ {
			n = $3; sub(/:$/, "", n)
			if (tags ~ /[=,]exercise(,|$)/) want = n
			tags = ""; next
		}
		want != "" && $1 == "exercise" && $2 == want { print want; want = "" }
		/^}/ { want = "" }' "$ROOT/test/step$1.bats"
}

# copy_chapter N DEST: a clean copy of chapter N's sources in DEST.
copy_chapter() {
	cp -r "$(chapter_dir "$1")" "$2"
	make -s -C "$2" clean >/dev/null
}

# check_flips N: each of chapter N's checks fails on a copy of the chapter,
# and passes on a copy with its solution applied.
check_flips() {
	local n=$1 k copy t0
	local base=$BATS_TEST_TMPDIR/step$n
	copy_chapter "$n" "$base"
	make -s -C "$base" >"$BATS_TEST_TMPDIR/build.log" 2>&1 ||
		fail "chapter $n does not build: $(tail -5 "$BATS_TEST_TMPDIR/build.log")"
	for k in $(solutions "$n"); do
		t0=$SECONDS
		run_check "$n" "$k" "$base"
		[[ $output == *"1..1"* ]] || fail "no single check 'exercise $k:' in step$n.bats: $output"
		[[ $output != *"# skip"* ]] || fail "exercise $k's check skipped on chapter $n: $output"
		((status != 0)) || fail "exercise $k's check passes on chapter $n's own code: $output"
		assert_line --regexp "^not ok 1 exercise $k:"

		copy=$BATS_TEST_TMPDIR/step$n-ex$k
		copy_chapter "$n" "$copy"
		patch -s -p1 -d "$copy" <"$ROOT/test/proofs/solutions/step$n-ex$k.patch" ||
			fail "step$n-ex$k.patch does not apply to chapter $n"
		# A solution that breaks the build on purpose is checked by
		# its check; make's messages are in the log.
		make -s -C "$copy" >"$copy.build.log" 2>&1 || true
		run_check "$n" "$k" "$copy"
		((status == 0)) || fail "exercise $k's check fails with its solution: $output"
		[[ $output != *"# skip"* ]] || fail "exercise $k's check skipped with its solution: $output"
		assert_line --regexp "^ok 1 exercise $k:"
		echo "# chapter $n, exercise $k: flips ($((SECONDS - t0)) s)" >&3
	done
}

@test "every exercise in chapters 1 to 5 has a check tagged exercise and a worked solution, and nothing else has" {
	local n want
	for n in "${CHAPTERS[@]}"; do
		want=$(readme_exercises "$n")
		[[ -n $want ]] || fail "chapter $n's README lists no exercise"
		assert_equal "$(seq "$(wc -l <<<"$want")")" "$want"
		assert_equal "chapter $n checks: $(checks "$n" | sort -n | tr '\n' ' ')" \
			"chapter $n checks: $(tr '\n' ' ' <<<"$want")"
		assert_equal "chapter $n solutions: $(solutions "$n" | tr '\n' ' ')" \
			"chapter $n solutions: $(tr '\n' ' ' <<<"$want")"
		echo "# chapter $n: $(wc -l <<<"$want") exercises, checks and solutions" >&3
	done
}

@test "every exercise in chapters 1 to 5 states its difficulty, a time and how to check it" {
	local n readme item
	for n in "${CHAPTERS[@]}"; do
		readme=$(chapter_dir "$n")/README.md
		for item in $(readme_exercises "$n"); do
			run awk -v k="$item" '/^## / { on = ($0 == "## Exercises") }
				on && /^[0-9]+\. \*\*/ { cur = $0; sub(/\..*/, "", cur) }
				on && cur == k' "$readme"
			assert_output --regexp '\*\((easy|medium|hard), [0-9]+ min\)\*'
			assert_output --regexp "EXERCISES=1 (make test STEP=$n|bats test/step$n.bats)"
		done
	done
}

@test "chapter 1: every solution flips its exercise's check from fail to pass" {
	check_flips 1
}

@test "chapter 2: every solution flips its exercise's check from fail to pass" {
	check_flips 2
}

@test "chapter 3: every solution flips its exercise's check from fail to pass" {
	check_flips 3
}

@test "chapter 4: every solution flips its exercise's check from fail to pass" {
	check_flips 4
}

@test "chapter 5: every solution flips its exercise's check from fail to pass" {
	check_flips 5
}

@test "every worked solution changes only the files test/grade/grade.sh takes from a student (chapter 4's Makefile with STUDENT_MAKEFILE=1)" {
	local patch n files f
	for patch in "$ROOT"/test/proofs/solutions/step*-ex*.patch; do
		[[ $patch == *.wrong-*.patch ]] && continue
		n=${patch##*/step}
		n=${n%%-*}
		files=" $(bash "$ROOT/test/grade/grade.sh" --student-files "$n") "
		[[ $n == 4 ]] && files+="Makefile "
		for f in $(sed -n 's|^+++ b/||p' "$patch"); do
			[[ $files == *" $f "* ]] || fail "${patch##*/} changes $f, which grading takes from the chapter, not the student"
		done
	done
}
