#!/usr/bin/env bash
# stress.sh STEP RUNS [REGEX]: run a chapter's concurrency and shutdown tests
# RUNS times and report every failure and how often it happened.
#
# A race that shows up once in a hundred runs passes a single `make test`;
# this is what finds it.  REGEX picks the tests by name (bats -f); the
# default is every test that signals a server, loads it with many clients,
# or closes connections lingering.  JOBS=2 runs two loops at once, so that
# each run also meets a busy machine.  Exit 0 when nothing failed, 1 when
# anything did, 2 on a usage error.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEFAULT_REGEX='SIG|shutdown|drain|deadline|lingering|clients|threads|worker|-c 10|-i 1|queue'

usage() {
	cat >&2 <<EOF
usage: stress.sh STEP RUNS [REGEX]
  STEP   the chapter, 1 to 5
  RUNS   how many runs (each loop, with JOBS)
  REGEX  which tests, by name (default: '$DEFAULT_REGEX')
  JOBS   environment: loops at once (default 1)
EOF
	exit 2
}

(($# == 2 || $# == 3)) || usage
step=$1 n=$2 regex=${3:-$DEFAULT_REGEX} jobs=${JOBS:-1}
[[ $step =~ ^[1-5]$ ]] || usage
[[ $n =~ ^[1-9][0-9]*$ ]] || usage
[[ $jobs =~ ^[1-9]$ ]] || usage
file=$ROOT/test/step$step.bats
[[ -f $file ]] || usage

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# loop J: N runs, each run's TAP output in $out/J.RUN
loop() {
	local j=$1 i
	for ((i = 1; i <= n; i++)); do
		bats --formatter tap -f "$regex" "$file" >"$out/$j.$i" 2>&1
		printf '%s run %d/%d: %s\n' "loop $j" "$i" "$n" \
			"$(grep -c '^not ok' "$out/$j.$i") failed"
	done
}

start=$SECONDS
pids=()
for ((j = 1; j <= jobs; j++)); do
	loop "$j" &
	pids+=($!)
done
wait "${pids[@]}"

runs=$((n * jobs))
tests=$(grep -h '^1\.\.' "$out"/* | head -1)
echo "step $step: $runs runs of ${tests#1..} tests matching '$regex' in $((SECONDS - start)) s"
# A run whose TAP has no plan, a plan of no test, or fewer results than its
# plan did not test anything it can be trusted with: that is a failure too.
broken=0
for f in "$out"/*; do
	plan=$(sed -n 's/^1\.\.\([0-9]*\)$/\1/p' "$f" | head -1)
	results=$(grep -cE '^(not )?ok [0-9]+' "$f")
	if [[ -z $plan ]] || ((plan == 0 || results != plan)); then
		echo "run $(basename "$f"): ${results} results for a plan of '${plan:-none}':"
		head -20 "$f"
		broken=$((broken + 1))
	fi
done
if ((broken > 0)); then
	echo "$broken of $runs runs reported no complete results"
	exit 1
fi
failures=$(cat "$out"/* | sed -n 's/^not ok [0-9]* //p' | sort | uniq -c | sort -rn)
if [[ -z $failures ]]; then
	echo "0 failures"
	exit 0
fi
echo "failures (count of $runs runs, test):"
echo "$failures"
# the first failure's details, for a start
first=$(grep -l '^not ok' "$out"/* | head -1)
echo "--- first failing run ($(basename "$first")):"
sed -n '/^not ok/,/^ok /p' "$first" | head -40
exit 1
