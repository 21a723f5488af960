# exercises.bash: what test/proofs/solutions.bats and test/proofs/wrong-answers.bats share,
# loaded by both (load exercises): where a chapter is, which exercises have
# worked solutions, and how one exercise's check runs against a copy of the
# chapter.  ROOT is the tutorial's top directory.

# chapter_dir N: the directory of chapter N.
chapter_dir() {
	local dirs=("$ROOT/step$1-"*/)
	printf '%s\n' "${dirs[0]%/}"
}

# solutions N: the numbers of chapter N's worked solutions
# (test/proofs/solutions/stepN-exK.patch), one a line.
solutions() {
	local p
	for p in "$ROOT"/test/proofs/solutions/step"$1"-ex*.patch; do
		[[ -e $p && $p != *.wrong-*.patch ]] || continue
		p=${p##*-ex}
		printf '%s\n' "${p%.patch}"
	done | sort -n
}

# run_check N K DIR: run chapter N's check for exercise K alone against
# DIR's programs and sources; sets status and output (bats' run).  A program
# DIR could not build is left to the chapter's default: the check at hand
# does not run it (exercise 5 of chapter 4 breaks the build on purpose).
# status is what Bats' run sets.
# shellcheck disable=SC2154
run_check() {
	local n=$1 k=$2 dir=$3
	local env=(env -u ECHOSERVER -u WORKQUEUE_DEMO EXERCISES=1 "SOURCE_DIR=$dir")
	[[ -x $dir/echoserver ]] && env+=("ECHOSERVER=$dir/echoserver")
	[[ -x $dir/workqueue_demo ]] && env+=("WORKQUEUE_DEMO=$dir/workqueue_demo")
	# the check bounds its own waits; 600 s bounds it whole, should a
	# solution or a wrong answer escape them
	run timeout -k 10 600 "${env[@]}" bats --tap -f "^exercise $k:" "$ROOT/test/step$n.bats"
	((status != 124 && status != 137)) ||
		fail "chapter $n's exercise $k check: still running after 600 s, killed"
}
