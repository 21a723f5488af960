#!/usr/bin/env bats
# make handout: the lab archive for a chapter stands alone.  (About 15 s:
# it runs the chapter's tests inside the unpacked archive, once for the
# file.)

bats_load_library bats-support
bats_load_library bats-assert

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
# shellcheck source=test/server.bash
source "$ROOT/test/server.bash"

# The lab of chapter 2, made once: its archive, what make handout said
# (handout.out) and its exit status (handout.rc), in BATS_FILE_TMPDIR.
setup_file() {
	git -C "$ROOT" rev-parse --verify -q HEAD >/dev/null || return 0
	local rc=0
	timeout 300 make -s -C "$ROOT" handout STEP=2 OUT="$BATS_FILE_TMPDIR/lab2.tar.gz" \
		>"$BATS_FILE_TMPDIR/handout.out" 2>&1 || rc=$?
	echo "$rc" >"$BATS_FILE_TMPDIR/handout.rc"
}

# lab: fail unless the lab was made; LAB is its archive.
lab() {
	git -C "$ROOT" rev-parse --verify -q HEAD >/dev/null || cannot_run "needs a git checkout"
	LAB=$BATS_FILE_TMPDIR/lab2.tar.gz
	cat "$BATS_FILE_TMPDIR/handout.out"
	assert_equal "$(cat "$BATS_FILE_TMPDIR/handout.rc")" 0
}

@test "make handout STEP=2 writes a lab of chapters 1 and 2 without the solutions, in which plain make test and make grade pass" {
	lab
	run cat "$BATS_FILE_TMPDIR/handout.out"
	assert_line --regexp '^handout: make test: tests 1\.\.[0-9]+$'
	assert_line --regexp '^handout: make grade: score: ([0-9]+)/\1 passed$'
	assert_line "handout: $LAB stands alone"
	run tar -tzf "$LAB"
	assert_line "lab2/step1-single-thread/echoserver.c"
	assert_line "lab2/step2-workqueue/workqueue.c"
	assert_line "lab2/test/step2.bats"
	refute_line --regexp '^lab2/step[3-9]'
	refute_line --regexp '^lab2/test/(proofs/(solutions/|solutions\.bats|wrong-answers\.bats|docs\.bats)|step[3-9]\.bats|grade/grade\.bats|tools/tools\.bats)'
	refute_line --regexp '\.patch$'
}

@test "the lab's READMEs show no broken picture: every file they show or link to in test/results (chapter 1's and 2's timelines) is in it, and no other measurement" {
	lab
	local dir=$BATS_TEST_TMPDIR/unpacked readme target n=0
	mkdir "$dir"
	tar -xzf "$LAB" -C "$dir"
	for readme in "$dir"/lab2/README.md "$dir"/lab2/step*/README.md; do
		while IFS= read -r target; do
			[[ $target == *test/results/* ]] || continue
			n=$((n + 1))
			[[ -f ${readme%/*}/$target ]] || fail "${readme#"$dir"/} shows $target, which the lab lacks"
		done < <(grep -oE '\]\([^) #]+' "$readme" | cut -c3-)
	done
	# the top README's chart and table, and chapter 1's and 2's timelines
	((n >= 4)) || fail "only $n links into test/results: the READMEs changed, or the scan is wrong"
	run tar -tzf "$LAB"
	assert_line "lab2/test/results/timeline/step1.svg"
	assert_line "lab2/test/results/timeline/step2.svg"
	refute_line --regexp '^lab2/test/results/(timeline/step[3-9]|.*\.tsv$|summary\.csv$)'
}
