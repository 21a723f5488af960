#!/usr/bin/env bats
# The attack lab's exercises (chapter 5's README, "Make each attack hold"):
# each starts from a stage of chapter 5's patch series (make stage STEP=5
# PATCH=K) whose attacks break, and its check is the lab itself (make attack
# ATTACK=...), which exits 0 only when every attack named held.  For each
# exercise: the check fails on its stage, passes with the chapter's next
# patch applied (the worked solution), and rejects each of its wrong answers
# (test/proofs/solutions/step5-labK.wrong-M.patch, applied to the stage) in every
# one of WRONG_RUNS runs (default 3).  And the lab fails what it should:
# chapter 4 breaks attacks, and make attack STEP=4 exits 3.

bats_load_library bats-support
bats_load_library bats-assert

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
README=$ROOT/step5-per-thread-base/README.md
WRONG_RUNS=${WRONG_RUNS:-3}

setup_file() {
	make -s -C "$ROOT" test/tools/attack test/tools/echoclient >&2
}

# lab_items: one line per exercise of the README's "Make each attack hold":
# its number, its stage and the attacks its check names, tab-separated.
lab_items() {
	awk '/^#+ / { on = ($0 == "### Make each attack hold") }
		on && /^[0-9]+\. \*\*/ { flush(); k = $0; sub(/\..*/, "", k); text = "" }
		on && k != "" { text = text " " $0 }
		function flush(  n, a) {
			if (k == "") return
			n = a = text
			if (!sub(/.*make stage STEP=5 PATCH=/, "", n)) n = "?"
			sub(/[^0-9].*/, "", n)
			if (sub(/.*ATTACK="/, "", a)) sub(/".*/, "", a)
			else if (sub(/.*ATTACK=/, "", a)) sub(/[^a-z-].*/, "", a)
			else a = "?"
			printf "%s\t%s\t%s\n", k, n, a
		}
		END { flush() }' "$README"
}

# stage K DIR [PATCH]: chapter 5 as it is after its patch K, with PATCH
# (a wrong answer) applied when one is given, built, in DIR.
stage() {
	local what="chapter 5 after patch $1"
	bash "$ROOT/test/proofs/patches.sh" apply 5 "$1" "$2" >/dev/null ||
		fail "chapter 5's patches do not apply up to $1"
	if [[ -n ${3:-} ]]; then
		patch -s -p1 -d "$2" <"$3" || fail "${3##*/} does not apply after patch $1"
		what=${3##*/}
	fi
	make -s -C "$2" >"$2.build.log" 2>&1 ||
		fail "$what does not build: $(tail -5 "$2.build.log")"
}

# run_lab SERVER ATTACKS: the lab's check against SERVER; sets status, output.
run_lab() {
	run env ATTACK="$2" bash "$ROOT/test/proofs/attack.sh" 5 "$1"
}

@test "every attack-lab exercise names its stage, the attacks its check runs, a difficulty and a time, and has two wrong answers" {
	local items k n attacks count p
	items=$(lab_items)
	[[ -n $items ]] || fail "chapter 5's README has no exercise under 'Make each attack hold'"
	while IFS=$'\t' read -r -u 9 k n attacks; do
		[[ $n =~ ^[0-9]+$ ]] || fail "lab exercise $k names no stage (make stage STEP=5 PATCH=K)"
		[[ $attacks != "?" ]] || fail "lab exercise $k names no ATTACK=..."
		run env ATTACK="$attacks" bash "$ROOT/test/proofs/attack.sh" 5 /nonexistent
		refute_output --partial "no attack named"
		compgen -G "$ROOT/step5-per-thread-base/patches/$(printf '%02d' $((n + 1)))-*.patch" >/dev/null ||
			fail "lab exercise $k: chapter 5 has no patch $((n + 1)) to solve it"
		run awk -v k="$k" '/^#+ / { on = ($0 == "### Make each attack hold") }
			on && /^[0-9]+\. \*\*/ { cur = $0; sub(/\..*/, "", cur) }
			on && cur == k' "$README"
		assert_output --regexp '\*\((easy|medium|hard), [0-9]+ min\)\*'
		assert_output --partial "make attack STEP=5"
		count=0
		for p in "$ROOT"/test/proofs/solutions/step5-lab"$k".wrong-*.patch; do
			[[ -e $p ]] || continue
			count=$((count + 1))
			head -1 "$p" | grep -qE "^Chapter 5, attack-lab exercise $k, a wrong answer: " ||
				fail "${p##*/} does not start with 'Chapter 5, attack-lab exercise $k, a wrong answer: '"
		done
		((count >= 2)) || fail "lab exercise $k has $count wrong answers, not at least 2"
	done 9<<<"$items"
}

@test "every attack-lab exercise: its stage breaks the check, the chapter's next patch holds it, every wrong answer breaks it every time" {
	local k n attacks dir p name i t0
	while IFS=$'\t' read -r -u 9 k n attacks; do
		t0=$SECONDS
		dir=$BATS_TEST_TMPDIR/lab$k-stage
		stage "$n" "$dir"
		run_lab "$dir/echoserver" "$attacks"
		echo "$output" | sed "s/^/# lab $k, stage $n: /" >&3
		assert_failure 3
		assert_line --regexp ' broken '

		dir=$BATS_TEST_TMPDIR/lab$k-solved
		stage $((n + 1)) "$dir"
		run_lab "$dir/echoserver" "$attacks"
		echo "$output" | sed "s/^/# lab $k, patch $((n + 1)): /" >&3
		assert_success
		refute_line --regexp ' broken '

		for p in "$ROOT"/test/proofs/solutions/step5-lab"$k".wrong-*.patch; do
			name=${p##*/}
			dir=$BATS_TEST_TMPDIR/${name%.patch}
			stage "$n" "$dir" "$p"
			for ((i = 1; i <= WRONG_RUNS; i++)); do
				run_lab "$dir/echoserver" "$attacks"
				# rejected: an attack broke it and the check failed (3;
				# or 1 when another attack could not run, as on a busy
				# machine the flood once could not: the broken line is
				# the rejection, whatever came after it)
				((status != 0)) && [[ $output =~ \ broken\  ]] ||
					fail "lab exercise $k's check accepts $name (run $i of $WRONG_RUNS): $output"
			done
			echo "# $name: rejected $WRONG_RUNS times of $WRONG_RUNS" >&3
		done
		echo "# lab exercise $k: $((SECONDS - t0)) s" >&3
	done 9< <(lab_items)
}

# Chapter 4, with its F15 spin and no -c, breaks some attacks: the lab says
# which, and exits 3.  (Chapter 5 holding all of them is in make test:
# test/tools/tools.bats.)
@test "make attack STEP=4: chapter 4 breaks at least one of the 13 attacks, and the lab exits 3" {
	run bash "$ROOT/test/proofs/attack.sh" 4
	echo "$output" | sed 's/^/# /' >&3
	assert_failure 3
	assert_line --regexp '^([0-9]|1[0-2]) of 13 attacks held$'
	assert_line --regexp ' broken '
}
