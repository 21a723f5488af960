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
	run env ECHOSERVER="$dir/echoserver" WORKQUEUE_DEMO="$dir/workqueue_demo" \
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
