#!/usr/bin/env bats
# Every patch of a chapter told as a series is proven: a test whose claim is
# the patch's lesson fails on the state before the patch and passes on the
# state after it.  Each state is built by test/patches.sh, as `make stage`
# builds it for a learner.

bats_load_library bats-support
bats_load_library bats-assert

ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)

# stage STEP K: build the state after patch K of chapter STEP (once per
# file) and print its directory.
stage() {
	local dir=$BATS_FILE_TMPDIR/step$1-$2
	if [[ ! -x $dir/echoserver && ! -x $dir/workqueue_demo ]]; then
		rm -rf "$dir"
		bash "$ROOT/test/patches.sh" apply "$1" "$2" "$dir" >&2 ||
			return 1
		make -s -C "$dir" >&2 || return 1
	fi
	echo "$dir"
}

# on_stage STEP K FILE REGEX: run FILE's tests whose names match REGEX
# against the state after patch K of chapter STEP; set status and output.
on_stage() {
	local dir
	dir=$(stage "$1" "$2") || fail "state $2 of chapter $1 does not build"
	# A state without the work queue's demo (chapter 5 drops it) leaves
	# WORKQUEUE_DEMO to the test file's default.
	local demo=$dir/workqueue_demo
	[[ -x $demo ]] || demo=
	run env ECHOSERVER="$dir/echoserver" WORKQUEUE_DEMO="$demo" \
		SOURCE_DIR="$dir" bats -f "$4" "$ROOT/test/$3"
}

# flips STEP K FILE REGEX: FILE's tests matching REGEX (at least one) fail
# on the state before patch K and pass on the state after it.
flips() {
	on_stage "$1" $(($2 - 1)) "$3" "$4"
	assert_failure
	assert_output --partial "not ok"
	on_stage "$1" "$2" "$3" "$4"
	assert_success
	assert_line --regexp '^ok [0-9]+ '
}

# flips_back STEP K FILE REGEX: the other way round, for a test that asserts
# a flaw ("still wrong: ..."): it passes before patch K and fails after it.
flips_back() {
	on_stage "$1" $(($2 - 1)) "$3" "$4"
	assert_success
	assert_line --regexp '^ok [0-9]+ '
	on_stage "$1" "$2" "$3" "$4"
	assert_failure
	assert_output --partial "not ok"
}

# --- Chapter 4: one patch per fix --------------------------------------------

# --- Chapter 5: the threading model, the hot path, the hardening -------------

# Patch 1, one event base per thread: the 500th client is served on 2
# threads, where chapter 4 served 2 clients and kept the third waiting.
@test "chapter 5 patch 1 (a base per thread): with -t 2 a third and a 500th client are served, and not before" {
	flips 5 1 step5.bats "^fixed: with -t 2, a third and a 500th client get their echo"
}

# Patch 1 fixes F8 and F16: chapter 4's flaw tests stop passing.
@test "chapter 5 patch 1 (a base per thread): chapter 4's third client no longer waits, and no base per connection exits the server" {
	flips_back 5 1 step4.bats "^still wrong: with -t 2, a third client waits"
	flips_back 5 1 step4.bats "^still wrong: out of descriptors for a client's event base"
}

# Patch 1 keeps chapter 4's drain: its shutdown tests pass on both sides.
@test "chapter 5 patch 1 (a base per thread): chapter 4's drain tests still pass after it" {
	on_stage 5 1 step4.bats "^fixed: on (SIGINT|SIGTERM)"
	assert_success
	assert_line --regexp '^ok [0-9]+ fixed: on SIGTERM with -t 1 and three clients'
}

# Patch 2, the hot path: strace counts 7 system calls per echo before it and
# 3 after it; the test's bound is 4.
@test "chapter 5 patch 2 (the hot path): an echo costs at most 4 system calls, and not before" {
	command -v strace >/dev/null || skip "needs strace (apt-get install strace)"
	flips 5 2 step5.bats "^the hot path: one echo costs the server at most 4 system calls"
}

# Patch 3, the hardening: out of descriptors, accepting pauses instead of
# spinning; before it, chapter 4's spin is still there.
@test "chapter 5 patch 3 (hardening): out of descriptors accepting pauses, and spins before it" {
	command -v prlimit >/dev/null || skip "needs prlimit (util-linux)"
	flips 5 3 step5.bats "^fixed: out of descriptors, accepting pauses instead of spinning"
	flips_back 5 3 step4.bats "^still wrong: out of descriptors, accepting spins"
}

# Patch 3 replaces the 10 s timeouts with -i: the quiet client stays.
@test "chapter 5 patch 3 (hardening): a client quiet for 10 s is no longer dropped" {
	flips_back 5 3 step4.bats "^still wrong: a client quiet for 10 s is dropped"
}
