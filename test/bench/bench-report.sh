#!/usr/bin/env bash
# bench-report.sh DIR: the report of a `make bench` run, from DIR/bench.csv
# (every run, as test/bench/bench.sh writes it): DIR/bench.md (the tables),
# DIR/summary.csv (medians per case and server) and, if gnuplot is
# installed, DIR/bench.svg (the chart: throughput, and CPU per echo).  The tables come from
# test/bench/bench-report.awk.
#
# What the CSV does not say comes from the environment:
#   REPORT_SERVERS  one "NAME COMMAND..." line per server, in the run order
#   REPORT_REF      the server the ratios are to (default epoll_echo)
#   REPORT_FINAL    the final chapter's server: the bench fails if it fails
#   REPORT_DATE     when the run started (default: now)
#   REPORT_NOTES    lines for the end of the table (killed servers, time)
#   BENCH_QUICK=1   the run was the quick subset
# Exit status: 0, or 1 if a run lost or changed data, or if a run of the
# final server or of the reference failed.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:?usage: bench-report.sh DIR}
REF=${REPORT_REF:-epoll_echo}
DATE=${REPORT_DATE:-$(date -u '+%Y-%m-%d %H:%M UTC')}
CPU_MODEL=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
LIBEVENT=$(pkg-config --modversion libevent 2>/dev/null || echo unknown)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

say() { printf '%s\n' "$*" >&2; }

# The head: the machine, the servers, and how to read the tables.
head_md() {
	local name cmd sep=' '
	echo "## make bench, $DATE"
	echo
	echo "- machine: $(nproc) CPUs (nproc), ${CPU_MODEL:-unknown CPU}, Linux $(uname -r); libevent $LIBEVENT$([[ ${BENCH_QUICK:-0} == 1 ]] && echo '; BENCH_QUICK=1 (a subset)')"
	printf -- '- servers:'
	while read -r name cmd; do
		[[ -n $name ]] || continue
		printf '%s`%s` = `%s`' "$sep" "$name" "$cmd"
		sep='; '
	done <<<"${REPORT_SERVERS:-}"
	echo
	echo "- every server is started afresh for every run; the servers take turns round by round; a cell is the median over the rounds with (min–max); \"× $REF\" is the ratio to $REF in the same round (throughput: higher is better; CPU and memory: lower is better)"
	echo "- loadgen runs on the same $(nproc) CPUs as the server: where its CPU is near 100 %, it was the limit, not the server. Starved: connections that never got an echo (the most in any round). Server CPU: user + system time from /proc/PID/stat over the run, per echoed message (including the warm-up) or per GB."
	echo "- server RSS per connection: the server's VmRSS with every connection open and echoed, minus VmRSS before the first connection, divided by the connections; kernel socket buffers are not in it."
	echo
}

# chart DATA CPUDATA: draw DATA and CPUDATA (from bench-report.awk) into
# $OUT/bench.svg: throughput on the left, CPU per echo on the right.
chart() {
	local nsrv titles ncpu cputitles
	nsrv=$(head -1 "$1" | awk -F'\t' '{ print (NF - 1) / 3 }')
	titles=$(head -1 "$1" | awk -F'\t' '{ for (i = 2; i <= NF; i += 3) printf "%s ", $i }')
	ncpu=$(head -1 "$2" | awk -F'\t' '{ print (NF - 1) / 3 }')
	cputitles=$(head -1 "$2" | awk -F'\t' '{ for (i = 2; i <= NF; i += 3) printf "%s ", $i }')
	((nsrv > 0)) || return 0
	gnuplot <<EOF 2>"$TMP/gnuplot.err" || say "bench: gnuplot failed: $(head -3 "$TMP/gnuplot.err")"
set encoding utf8
set terminal svg size 1500,600 dynamic noenhanced font "sans,12"
set output "$OUT/bench.svg"
set datafile separator "\t"
set datafile missing "-"
set multiplot layout 1,2 title "make bench, $DATE, $(nproc) CPUs, libevent $LIBEVENT; bars: median over rounds, whiskers: min–max\nleft out: a server in a case where it starved connections"
set style data histogram
set style histogram errorbars gap 2 lw 1
set style fill solid 0.75 border -1
set yrange [0:*]
set grid ytics
set key top right
set xtics scale 0 font ",10"
set title "Throughput relative to $REF in the same round (higher is better)"
set ylabel "× $REF"
set xlabel "ping-pong: message size × connections, or × messages in flight × connections; bulk: one stream"
set arrow 1 from graph 0, first 1 to graph 1, first 1 nohead dashtype 2 lw 1.5
titles = "$titles"
plot for [i=1:$nsrv] "$1" every ::1 using (column(3*i-1)):(column(3*i)):(column(3*i+1)):xtic(1) title word(titles, i)
unset arrow 1
set title "Server CPU time per echoed message, ping-pong cases (lower is better)"
set ylabel "µs of CPU (user + system) per echo"
set xlabel "message size × connections, or × messages in flight × connections"
cputitles = "$cputitles"
plot for [i=1:$ncpu] "$2" every ::1 using (column(3*i-1)):(column(3*i)):(column(3*i+1)):xtic(1) title word(cputitles, i)
unset multiplot
EOF
	[[ -s $OUT/bench.svg ]] && say "bench: chart written to $OUT/bench.svg"
}

head_md >"$TMP/head.md"
awk -F, -v ref="$REF" -v final="${REPORT_FINAL:-}" \
	-v summary="$OUT/summary.csv" -v chart="$TMP/chart.dat" -v cpuchart="$TMP/cpu.dat" \
	-v verdict_file="$TMP/verdict" \
	-f "$ROOT/test/bench/bench-report.awk" "$OUT/bench.csv" >"$TMP/table.md"
status=$?
((status <= 1)) || exit "$status"
{
	cat "$TMP/head.md" "$TMP/table.md"
	echo
	[[ -z ${REPORT_NOTES:-} ]] || printf '%s\n' "$REPORT_NOTES"
} >"$OUT/bench.md"
echo
cat "$OUT/bench.md"

if command -v gnuplot >/dev/null; then
	chart "$TMP/chart.dat" "$TMP/cpu.dat"
else
	say "bench: gnuplot is not installed: no chart (apt-get install gnuplot-nox)"
fi
say "bench: every run in $OUT/bench.csv, the summary in $OUT/summary.csv, the table in $OUT/bench.md"
[[ ! -s $TMP/verdict ]] || say "$(cat "$TMP/verdict")"
exit "$status"
