#!/usr/bin/env bash
# run-bats.sh [BATS-OPTIONS...] FILE...: run Bats with each test's time
# shown (--timing), then list the slowest tests, so that a test that has grown
# slow is seen.  make test and make test-all run their files through it.  The
# exit status is Bats'.
#
# Several files run BATS_JOBS at a time (default: one per CPU) when GNU
# parallel is installed, which Bats needs for that; the tests of one file
# still run one after another, and the largest files start first, so that
# the longest does not start last.  BATS_JOBS=1 runs them one at a time.
# Every test is built to pass on a busy machine, so running two files at
# once changes no verdict, only the time (make test on 2 cores, 2026-12-02:
# 250 s one at a time, 163 s two at a time).
set -uo pipefail

report=$(mktemp -d)
trap 'rm -rf "$report"' EXIT

opts=() files=()
for a in "$@"; do
	if [[ $a == *.bats ]]; then
		files+=("$a")
	else
		opts+=("$a")
	fi
done
jobs=${BATS_JOBS:-$(nproc 2>/dev/null || echo 1)}
if ((${#files[@]} > 1 && jobs > 1)) &&
	parallel --version </dev/null 2>/dev/null | grep -q 'GNU parallel'; then
	opts+=(--jobs "$jobs" --no-parallelize-within-files)
	mapfile -t files < <(ls -S -- "${files[@]}")
fi

bats --timing --report-formatter tap --output "$report" "${opts[@]}" "${files[@]}"
rc=$?

# "ok 12 name # in 2345 ms" (a skipped test has no time)
slowest=$(sed -nE 's/^(not )?ok [0-9]+ (.*) # in ([0-9]+) ?ms$/\3 \2/p' \
	"$report/report.tap" 2>/dev/null | sort -rn | head -5)
if [[ -n $slowest ]]; then
	echo "slowest tests:"
	awk '{ ms = $1; sub(/^[0-9]+ /, ""); printf "  %6.1f s  %s\n", ms / 1000, $0 }' <<<"$slowest"
fi
exit $rc
