#!/usr/bin/env bash
# timeline.sh STEP [SERVER]: run chapter STEP's scenario (test/tools/timeline.c)
# against SERVER (default: the chapter's echoserver; any server with the
# chapters' interface) and write OUT/stepSTEP.tsv, the events, and
# OUT/stepSTEP.svg, their picture (test/proofs/timeline.awk, test/proofs/svg.awk).  OUT is
# $TIMELINE_OUT, default test/results/timeline (test/results/latest/timeline
# with a SERVER).  Chapter 2 has no server: its timeline is the work-queue
# demo's threads, seen through test/tools/jobtrace.so, beside chapter 4's.
# SCENARIO=emfile (STEP 5 only) draws chapter 5's second lesson instead,
# to OUT/step5-emfile.{tsv,svg}: the server at 32 descriptors (ulimit -n),
# held clients take them all, accepting pauses, three clients arrive and
# wait; the held clients close and the three are served.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
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
2) dir=step2-workqueue title="Chapter 2: the shutdown wakes every idle worker; each finds no job and sleeps again" ;;
*)
	echo "timeline: STEP must be 1 to 5" >&2
	exit 2
	;;
esac
# the scenario: the chapter's, or SCENARIO's; NAME names its files
NAME=step$STEP limit=
case $STEP:${SCENARIO:-} in
*:) ;;
5:emfile)
	NAME=step5-emfile limit="ulimit -n 32; "
	title="Chapter 5: out of descriptors, accepting pauses; who waits is served once descriptors return"
	scen="32 descriptors (ulimit -n), -t 2; held clients take them all, three arrive in the pause, the held close"
	;;
*)
	echo "timeline: no scenario '$SCENARIO' for STEP=$STEP (chapter 5 has SCENARIO=emfile)" >&2
	exit 2
	;;
esac
# the facts every picture names: the date and the machine
cpu=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
machine="$(nproc) CPUs, ${cpu:-unknown CPU}, Linux $(uname -r)"
if [[ $STEP == 2 ]]; then
	[[ -z ${2:-} ]] || {
		echo "timeline: STEP=2 runs the chapters' workqueue_demo, not a server" >&2
		exit 2
	}
	make -s -C "$ROOT" test/tools/jobtrace.so >&2
	mkdir -p "$OUT"
	# Four workers, 16 jobs, then -i: half a second idle before the
	# shutdown, every worker asleep; each job held 25 ms so it shows.
	args="-w 4 -j 16 -i" job_ms=25
	{
		printf '# title\t%s\n' "$title"
		printf '# command\tmake timeline STEP=2\n'
		printf '# date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
		printf '# machine\t%s\n' "$machine"
		printf '# job_ms\t%s\n' "$job_ms"
		for c in 2 4; do
			demo=$(cd "$ROOT" && echo step"$c"-*/workqueue_demo)
			[[ -x $ROOT/$demo ]] || {
				echo "timeline: $demo: no such program (make first?)" >&2
				exit 1
			}
			printf '# run\t%s\t%s %s\n' "$c" "$demo" "$args"
			rm -f "$OUT/jobtrace.log"
			# It takes 1 s and bounds its own waits (10 s for the
			# jobs); 20 s stops one that hangs all the same.
			# shellcheck disable=SC2086
			# env sets the library for the demo alone, not timeout.
			timeout 20 env JOBTRACE_LOG="$OUT/jobtrace.log" JOBTRACE_JOB_MS=$job_ms \
				LD_PRELOAD="$ROOT/test/tools/jobtrace.so" "$ROOT/$demo" $args |
				sed "s/^/# output\t$c\t/"
			sed "s/^/$c\t/" "$OUT/jobtrace.log"
		done
		rm -f "$OUT/jobtrace.log"
	} >"$OUT/step2.tsv.tmp"
	mv "$OUT/step2.tsv.tmp" "$OUT/step2.tsv"
	awk -f "$ROOT/test/proofs/svg.awk" -f "$ROOT/test/proofs/timeline-jobs.awk" "$OUT/step2.tsv" >"$OUT/step2.svg"
	echo "timeline: wrote ${OUT#"$ROOT"/}/step2.svg and step2.tsv"
	[[ -n ${TIMELINE_OUT:-} ]] || echo "timeline: make timeline-png redraws step2.png from it"
	exit 0
fi
SERVER=${2:-$ROOT/$dir/echoserver}
# another server: the picture says what was run, not what the chapter shows
[[ -z ${2:-} ]] || title="Chapter $STEP's scenario: $scen"
[[ -x $SERVER ]] || {
	echo "timeline: $SERVER: no such program (make first?)" >&2
	exit 1
}
# the recorder, built as make does it
make -s -C "$ROOT" test/tools/timeline >&2
mkdir -p "$OUT"
# the scenario's flags, for the picture: what test/tools/timeline.c adds
case $STEP in
3 | 5) flags=" -t 2" ;;
4) flags=" -t 4" ;;
*) flags= ;;
esac
shown=$SERVER
[[ $shown == "$ROOT"/* ]] && shown=${shown#"$ROOT"/}
{
	printf '# title\t%s\n' "$title"
	printf '# server\t%s%s -p 0 -v%s\n' "$limit" "$shown" "$flags"
	printf '# command\tmake timeline STEP=%s%s\n' "$STEP" "${SCENARIO:+ SCENARIO=$SCENARIO}"
	printf '# date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
	printf '# machine\t%s\n' "$machine"
	# chapter 4's DRAIN_SECONDS: the one deadline after the accept loop ends
	[[ $STEP != 4 ]] || printf '# drain_ms\t1000\n'
	"$ROOT/test/tools/timeline" "$NAME" "$SERVER"
} >"$OUT/$NAME.tsv.tmp"
mv "$OUT/$NAME.tsv.tmp" "$OUT/$NAME.tsv"
awk -f "$ROOT/test/proofs/svg.awk" -f "$ROOT/test/proofs/timeline.awk" "$OUT/$NAME.tsv" >"$OUT/$NAME.svg"
echo "timeline: wrote ${OUT#"$ROOT"/}/$NAME.svg and $NAME.tsv"
# the committed pictures have screenshots beside them
[[ -z ${TIMELINE_OUT:-} && -z ${2:-} ]] || exit 0
echo "timeline: make timeline-png redraws $NAME.png from it"
