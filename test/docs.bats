#!/usr/bin/env bats
# The teaching layer: the chapters' diffs, copies and commands stay true.
# bats file_tags=reference-only

bats_load_library bats-support
bats_load_library bats-assert

ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)

@test "every chapter's README ends with its current diff from the chapter before" {
	run bash "$ROOT/test/readme-diffs.sh" --check
	assert_success
}

@test "files a chapter keeps from the one before are byte-identical copies" {
	cd "$ROOT"
	local pair
	for pair in \
		step2-workqueue/workqueue.h:step3-threaded-echo/workqueue.h \
		step2-workqueue/workqueue.c:step3-threaded-echo/workqueue.c \
		step2-workqueue/workqueue_demo.c:step3-threaded-echo/workqueue_demo.c \
		step3-threaded-echo/workqueue_demo.c:step4-shutdown-fixes/workqueue_demo.c; do
		cmp "${pair%%:*}" "${pair#*:}"
	done
}

@test "every chapter told as a patch series is its series applied to the chapter before, byte for byte" {
	cd "$ROOT"
	local d step checked=0
	for d in step*/patches; do
		[[ -d $d ]] || continue
		step=${d#step}
		run bash test/patches.sh check "${step%%-*}"
		assert_success
		checked=$((checked + 1))
	done
	((checked > 0)) || skip "no chapter is told as patches yet"
}

@test "make diff compares a file with the last chapter that had it" {
	cd "$ROOT"
	run make -s diff FROM=2 TO=3
	assert_success
	assert_line -- "--- step1-single-thread/echoserver.c"
	assert_line -- "+++ step3-threaded-echo/echoserver.c"
	refute_line -- "--- /dev/null"
}

@test "every chapter's Makefile is the same below its chapter lines" {
	cd "$ROOT"
	local first="" m
	for m in step*/Makefile; do
		sed -n '/^# Everything below is the same in every chapter\.$/,$p' "$m" \
			>"$BATS_TEST_TMPDIR/${m%%/*}"
		[[ -s $BATS_TEST_TMPDIR/${m%%/*} ]] || fail "$m has no shared part"
		[[ -n $first ]] || first=$BATS_TEST_TMPDIR/${m%%/*}
		cmp "$first" "$BATS_TEST_TMPDIR/${m%%/*}"
	done
}

@test "every historical flaw is marked in the code; chapter 4 keeps only those chapter 5 fixes, and chapter 5 none" {
	cd "$ROOT"
	run grep -l "FLAW (fixed in step 4)" step2-workqueue/*.c step3-threaded-echo/*.c
	assert_success
	run grep -l "FLAW (fixed in step 4)" step4-shutdown-fixes/*.[ch]
	assert_failure
	# chapter 4 fixes none of chapter 3's "fixed in step 5" flaws
	assert_equal "$(grep -c "FLAW (fixed in step 5)" step4-shutdown-fixes/echoserver.c)" \
		"$(grep -c "FLAW (fixed in step 5)" step3-threaded-echo/echoserver.c)"
	run grep -l "FLAW" step5-per-thread-base/*.[ch]
	assert_failure
}
