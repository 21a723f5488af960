#!/usr/bin/env bash
# run-bats.sh [BATS-OPTIONS...] FILE...: run Bats with each test's time
# shown (--timing), then list the slowest tests, so that a test that has grown
# slow is seen.  make test and make test-all run their files through it.  The
# exit status is Bats'.
set -uo pipefail

report=$(mktemp -d)
trap 'rm -rf "$report"' EXIT

bats --timing --report-formatter tap --output "$report" "$@"
rc=$?

# "ok 12 name # in 2345 ms" (a skipped test has no time)
slowest=$(sed -nE 's/^(not )?ok [0-9]+ (.*) # in ([0-9]+) ?ms$/\3 \2/p' \
	"$report/report.tap" 2>/dev/null | sort -rn | head -5)
if [[ -n $slowest ]]; then
	echo "slowest tests:"
	awk '{ ms = $1; sub(/^[0-9]+ /, ""); printf "  %6.1f s  %s\n", ms / 1000, $0 }' <<<"$slowest"
fi
exit $rc
