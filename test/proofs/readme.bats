#!/usr/bin/env bats
# Every command the READMEs and CONTRIBUTING.md give a reader runs, verbatim
# (test/proofs/readme-commands.sh says how, and which blocks it leaves out).  Part
# of make test-all.
# bats file_tags=reference-only

bats_load_library bats-support
bats_load_library bats-assert

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
# shellcheck source=test/server.bash
source "$ROOT/test/server.bash"

@test "every command block in the READMEs and CONTRIBUTING.md works verbatim" {
	[[ -z ${README_COMMANDS_RUNNING:-} ]] || skip "already inside the README runner"
	run env README_COMMANDS_RUNNING=1 bash "$ROOT/test/proofs/readme-commands.sh"
	if ((status == 77)); then
		cannot_run "$output"
	fi
	echo "# $(grep -c '^ok ' <<<"$output") blocks ran, $(grep -c '^not run ' <<<"$output") not run" >&3
	assert_success
}

# The map of test/ is generated from each file's header comment; a file
# added, removed or re-described without regenerating it fails here.
@test "test/README.md, the map of test/, is what test/proofs/test-map.sh makes of each file's header" {
	run bash "$ROOT/test/proofs/test-map.sh" --check
	assert_success
	run grep -c '^| `' "$ROOT/test/README.md"
	echo "# $output files and directories mapped" >&3
	((output > 40))
}
