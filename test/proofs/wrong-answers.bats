#!/usr/bin/env bats
# Wrong answers to the exercises of chapters 1 to 5: each exercise has at
# least two (test/proofs/solutions/stepN-exK.wrong-M.patch, each starting with what
# is wrong with it), mistakes a student would plausibly make, and its check
# rejects every one of them, every time: WRONG_RUNS runs each (default 3).
# A check that must win a race against a wrong answer makes the race happen
# (test/tools/racehook.so, or an order of events the test drives) instead of
# hoping for it.
#
# A chapter is copied and patched once per wrong answer; each check runs
# alone (bats -f '^exercise K:') against the patched copy's programs and
# sources.

bats_load_library bats-support
bats_load_library bats-assert
load exercises

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
CHAPTERS=(1 2 3 4 5)
WRONG_RUNS=${WRONG_RUNS:-3}

setup_file() {
	make -s -C "$ROOT" test/tools/echoclient test/tools/racehook.so >&2
}

# wrong_answers N K: chapter N exercise K's wrong-answer patches.
wrong_answers() {
	local p
	for p in "$ROOT"/test/proofs/solutions/step"$1"-ex"$2".wrong-*.patch; do
		[[ -e $p ]] && printf '%s\n' "$p"
	done
}

# check_rejects N: every wrong answer of every exercise of chapter N fails
# its exercise's check in each of WRONG_RUNS runs.
check_rejects() {
	local n=$1 k patch copy name i t0
	for k in $(solutions "$n"); do
		for patch in $(wrong_answers "$n" "$k"); do
			name=${patch##*/}
			copy=$BATS_TEST_TMPDIR/${name%.patch}
			cp -r "$(chapter_dir "$n")" "$copy"
			make -s -C "$copy" clean >/dev/null
			patch -s -p1 -d "$copy" <"$patch" ||
				fail "$name does not apply to chapter $n"
			# A wrong answer may break the build; its check says so.
			make -s -C "$copy" >"$copy.build.log" 2>&1 || true
			t0=$SECONDS
			for ((i = 1; i <= WRONG_RUNS; i++)); do
				run_check "$n" "$k" "$copy"
				[[ $output == *"1..1"* ]] || fail "no single check 'exercise $k:' in step$n.bats: $output"
				[[ $output != *"# skip"* ]] || fail "exercise $k's check skipped $name: $output"
				((status != 0)) || fail "exercise $k's check accepts $name (run $i of $WRONG_RUNS): $output"
				assert_line --regexp "^not ok 1 exercise $k:"
			done
			echo "# $name: rejected $WRONG_RUNS times of $WRONG_RUNS ($((SECONDS - t0)) s)" >&3
		done
	done
}

@test "every exercise in chapters 1 to 5 has at least two wrong answers, each saying what is wrong with it" {
	local n k patch count
	for n in "${CHAPTERS[@]}"; do
		for k in $(solutions "$n"); do
			count=0
			for patch in $(wrong_answers "$n" "$k"); do
				count=$((count + 1))
				head -1 "$patch" | grep -qE "^Chapter $n, exercise $k, a wrong answer: " ||
					fail "${patch##*/} does not start with 'Chapter $n, exercise $k, a wrong answer: '"
			done
			((count >= 2)) || fail "chapter $n, exercise $k has $count wrong answers, not at least 2"
		done
	done
}

@test "chapter 1: every exercise's check rejects each of its wrong answers, every time" {
	check_rejects 1
}

@test "chapter 2: every exercise's check rejects each of its wrong answers, every time" {
	check_rejects 2
}

@test "chapter 3: every exercise's check rejects each of its wrong answers, every time" {
	check_rejects 3
}

@test "chapter 4: every exercise's check rejects each of its wrong answers, every time" {
	check_rejects 4
}

@test "chapter 5: every exercise's check rejects each of its wrong answers, every time" {
	check_rejects 5
}
