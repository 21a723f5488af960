#!/usr/bin/env bash
# timeline.sh STEP [SERVER]: run chapter STEP's scenario (test/timeline.c)
# against SERVER (default: the chapter's echoserver; any server with the
# chapters' interface) and write OUT/stepSTEP.tsv, the events, and
# OUT/stepSTEP.svg, their picture (test/timeline.awk).  OUT is
# $TIMELINE_OUT, default test/results/timeline (test/results/latest/timeline
# with a SERVER).  Chapter 2 has no server and
# its demo logs no per-job event, so it has no timeline.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STEP=${1:?usage: timeline.sh STEP [SERVER]}
# A picture of another server goes to test/results/latest/, not over the
# chapter's committed one.
OUT=${TIMELINE_OUT:-$ROOT/test/results/${2:+latest/}timeline}

case $STEP in
1) dir=step1-single-thread title="Chapter 1: four clients, one thread, interleaved"
	scen="four clients, a line every 200 ms each" ;;
3) dir=step3-threaded-echo title="Chapter 3: two workers, four clients: two wait for the 10 s timeout"
	scen="-t 2; clients 1 and 2 send a line and go silent, 3 and 4 talk" ;;
4) dir=step4-shutdown-fixes title="Chapter 4: SIGTERM: the quiet client drains, the deadline cuts the rest"
	scen="-t 4; a busy, a quiet and a non-reading client; SIGTERM at 1 s" ;;
5) dir=step5-per-thread-base title="Chapter 5: two threads, four clients, all served at once"
	scen="-t 2; four clients, a line every 200 ms each" ;;
2)
	echo "timeline: chapter 2 has no timeline: workqueue_demo prints totals," >&2
	echo "not per-job events, and the chapter's code is not changed for a picture" >&2
	exit 0
	;;
*)
	echo "timeline: STEP must be 1, 3, 4 or 5 (2 has no server)" >&2
	exit 2
	;;
esac
SERVER=${2:-$ROOT/$dir/echoserver}
# another server: the picture says what was run, not what the chapter shows
[[ -z ${2:-} ]] || title="Chapter $STEP's scenario: $scen"
[[ -x $SERVER ]] || {
	echo "timeline: $SERVER: no such program (make first?)" >&2
	exit 1
}
# the recorder, built as make does it
make -s -C "$ROOT" test/timeline >&2
mkdir -p "$OUT"
# the scenario's flags, for the picture: what test/timeline.c adds
case $STEP in
3 | 5) flags=" -t 2" ;;
4) flags=" -t 4" ;;
*) flags= ;;
esac
shown=$SERVER
[[ $shown == "$ROOT"/* ]] && shown=${shown#"$ROOT"/}
cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
{
	printf '# title\t%s\n' "$title"
	printf '# server\t%s -p 0 -v%s\n' "$shown" "$flags"
	printf '# command\tmake timeline STEP=%s\n' "$STEP"
	printf '# date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
	printf '# machine\t%s CPUs, %s, Linux %s\n' "$(nproc)" "${cpu:-unknown CPU}" "$(uname -r)"
	# chapter 4's DRAIN_SECONDS: the one deadline after the accept loop ends
	[[ $STEP != 4 ]] || printf '# drain_ms\t1000\n'
	"$ROOT/test/timeline" "step$STEP" "$SERVER"
} >"$OUT/step$STEP.tsv.tmp"
mv "$OUT/step$STEP.tsv.tmp" "$OUT/step$STEP.tsv"
awk -f "$ROOT/test/timeline.awk" "$OUT/step$STEP.tsv" >"$OUT/step$STEP.svg"
echo "timeline: wrote ${OUT#"$ROOT"/}/step$STEP.svg and step$STEP.tsv"
