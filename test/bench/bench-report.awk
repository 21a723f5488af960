# bench-report.awk: from bench.csv (one line per run, as bench.sh writes it),
# print the Markdown tables and write summary.csv (one line per case and
# server) and the chart's data.  Every field is read by its column name.
#
#   awk -F, -v ref=SERVER -v final=SERVER -v summary=FILE -v chart=FILE \
#       [-v cpuchart=FILE] -v verdict_file=FILE -f bench-report.awk bench.csv
#
# ref is the server the ratios are taken to, within each round.  The exit
# status is 1 if a run lost or changed bytes, or if a run of final or of ref
# failed; runs of the other servers may fail: that is what their chapters'
# flaws predict, and the tables show it.  Either way verdict_file says so.

# The header names the columns.
NR == 1 {
	for (i = 1; i <= NF; i++)
		col[$i] = i
	next
}

{
	c = get("case"); s = get("server"); r = get("round"); m = get("mode")
	if (!(c in mode)) {
		cases[++ncases] = c
		label[c] = get("label")
		mode[c] = m
	}
	if (!(s in is_server)) {
		is_server[s] = 1
		servers[++nservers] = s
	}
	if (!((c, r) in is_round)) {
		is_round[c, r] = 1
		rounds[c] = rounds[c] " " r
	}
	k = c SUBSEP s
	runs[k]++
	errors[k] += get("errors")
	mismatches[k] += get("mismatches")
	lost[k] += get("lost")
	if (get("starved") + 0 > starved[k])
		starved[k] = get("starved") + 0

	if (get("mismatches") + get("lost") > 0)
		verdict = "a run lost or changed data"
	if (get("status") != "ok" || get("errors") > 0) {
		if (s == final || s == ref)
			verdict = "a run of " s " failed"
		some_failed = 1
	}
	if (get("status") != "ok") {
		failed[k]++
		why[k] = get("status")
		next
	}

	# The value the servers are compared by: throughput, or for idle
	# connections the memory each one costs.
	v = m == "pingpong" ? get("msgs_per_s") : m == "bulk" ? get("mb_per_s") : get("rss_per_conn_b")
	if (v == "")
		next
	value[c, s, r] = v
	add(VALUE, k, v)
	if (get("cpu_per_unit") != "") {
		cpu[c, s, r] = get("cpu_per_unit")
		add(CPU, k, cpu[c, s, r])
	}
	add(P50, k, get("p50_us"))
	add(P99, k, get("p99_us"))
	add(P999, k, get("p999_us"))
	add(LOADGEN, k, get("loadgen_cpu") * 100)
	add(ECHOED, k, get("echoed"))
	add(OPEN, k, get("open"))
	add(CONNS, k, get("conns"))
	add(CONNECT_MS, k, get("connect_ms"))
	add(ECHO_MS, k, get("echo_ms"))
}

END {
	if (broken)
		exit 2
	ratios()
	print "case,server,runs,failed_runs,value_median,value_min,value_max,ratio_median,ratio_min,ratio_max,cpu_median,cpu_ratio_median,p50_us,p99_us,p999_us,starved_max,errors,mismatches,lost" > summary
	tables()
	chart_data()
	if (verdict != "") {
		print "bench: " verdict ": see the problems column" > verdict_file
		exit 1
	}
	if (some_failed)
		print "bench: some runs of the earlier chapters failed, as their flaws predict: see the problems column" > verdict_file
}

# The field in column name of the current line.
function get(name) {
	if (!(name in col)) {
		print "bench-report: bench.csv has no column " name > "/dev/stderr"
		broken = 1
		exit 2
	}
	return $col[name]
}

# Append v to the list a[k], a string of numbers separated by spaces.
function add(a, k, v) {
	a[k] = (k in a) ? a[k] " " v : v
}

# Sort the list s; set S["med"], S["min"] and S["max"]; return its length.
function stats(s,    n, i, j, x, v) {
	n = split(s, v, " ")
	for (i = 2; i <= n; i++) {
		x = v[i] + 0
		for (j = i - 1; j >= 1 && v[j] + 0 > x; j--)
			v[j + 1] = v[j]
		v[j + 1] = x
	}
	if (n == 0)
		return 0
	S["min"] = v[1] + 0
	S["max"] = v[n] + 0
	S["med"] = n % 2 ? v[(n + 1) / 2] + 0 : (v[n / 2] + v[n / 2 + 1]) / 2
	return n
}

# Each server's value and CPU over ref's, round by round: RATIO and CPU_RATIO.
function ratios(    i, j, q, n, c, s, r, rr) {
	for (i = 1; i <= ncases; i++) {
		c = cases[i]
		n = split(rounds[c], rr, " ")
		for (j = 1; j <= nservers; j++) {
			s = servers[j]
			for (q = 1; q <= n; q++) {
				r = rr[q]
				if ((c, s, r) in value && value[c, ref, r] > 0)
					add(RATIO, c SUBSEP s, value[c, s, r] / value[c, ref, r])
				if ((c, s, r) in cpu && cpu[c, ref, r] > 0)
					add(CPU_RATIO, c SUBSEP s, cpu[c, s, r] / cpu[c, ref, r])
			}
		}
	}
}

# A number as the table shows it: 1.23M, 45.6k, or with d decimals.
function num(v, d) {
	if (v >= 1e6)
		return sprintf("%.2fM", v / 1e6)
	if (v >= 1e4)
		return sprintf("%.1fk", v / 1e3)
	return sprintf("%." d "f", v)
}

# A table cell: the median of list s, then (min–max).
function cell(s, d, unit) {
	if (!stats(s))
		return "–"
	return num(S["med"], d) unit " (" num(S["min"], d) "–" num(S["max"], d) ")"
}

function bytes(v) {
	return v >= 10240 ? sprintf("%.1f KiB", v / 1024) : sprintf("%.0f B", v)
}

# What went wrong in the runs of k, or "–".
function problems(k,    p) {
	p = ""
	if (failed[k])
		p = p sprintf("%d of %d runs failed (%s); ", failed[k], runs[k], why[k])
	if (errors[k])
		p = p errors[k] " errors; "
	if (mismatches[k])
		p = p mismatches[k] " mismatches; "
	if (lost[k])
		p = p lost[k] " bytes lost; "
	return p == "" ? "–" : substr(p, 1, length(p) - 2)
}

# The two tables, ping-pong and bulk, then idle, and summary.csv in the
# same order.
function tables(    i, j, c, s, k, header, idle_rows, idle_summary) {
	for (i = 1; i <= ncases; i++) {
		c = cases[i]
		for (j = 1; j <= nservers; j++) {
			s = servers[j]
			k = c SUBSEP s
			if (!(k in runs))
				continue
			if (mode[c] == "idle") {
				idle_rows = idle_rows idle_row(c, s, k) "\n"
				idle_summary = idle_summary summary_row(c, s, k) "\n"
				continue
			}
			if (!header++) {
				print "| case | server | throughput | × " ref " | latency p50 / p99 / p99.9 µs | server CPU | CPU × " ref " | loadgen CPU | starved | problems |"
				print "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
			}
			print load_row(c, s, k)
			print summary_row(c, s, k) > summary
		}
	}
	if (idle_rows != "") {
		print ""
		print "| case | server | echoed | connect / echo ms | server RSS per connection | × " ref " | problems |"
		print "| --- | --- | ---: | ---: | ---: | ---: | --- |"
		printf "%s", idle_rows
		printf "%s", idle_summary > summary
	}
}

# A row of the ping-pong and bulk table.
function load_row(c, s, k,    m, tput, lat, cpu_cell, lg) {
	m = mode[c]
	tput = cell(VALUE[k], 0, m == "pingpong" ? " msg/s" : " MB/s")
	lat = "–"
	if (m == "pingpong" && stats(P50[k])) {
		lat = sprintf("%.0f", S["med"])
		stats(P99[k])
		lat = lat sprintf(" / %.0f", S["med"])
		stats(P999[k])
		lat = lat sprintf(" / %.0f", S["med"])
	}
	cpu_cell = "–"
	if (stats(CPU[k]))
		cpu_cell = sprintf("%.2f", S["med"]) (m == "pingpong" ? " µs/msg" : " s/GB")
	lg = stats(LOADGEN[k]) ? sprintf("%.0f %%", S["med"]) : "–"
	return "| " label[c] " | " s " | " tput " | " cell(RATIO[k], 2, "") " | " lat " | " cpu_cell " | " cell(CPU_RATIO[k], 2, "") " | " lg " | " (starved[k] + 0) " | " problems(k) " |"
}

# A row of the idle table.
function idle_row(c, s, k,    echoed, conns, times, rss) {
	# The fewest echoed, of the most asked for.
	conns = stats(CONNS[k]) ? S["max"] : "–"
	echoed = (stats(ECHOED[k]) ? S["min"] : "–") " of " conns
	if (stats(OPEN[k]) && S["min"] < conns)
		echoed = echoed " (" S["min"] " connected)"
	times = (stats(CONNECT_MS[k]) ? S["med"] : "–") " / " (stats(ECHO_MS[k]) ? S["med"] : "–")
	rss = "–"
	if (stats(VALUE[k]))
		rss = bytes(S["med"]) " (" bytes(S["min"]) "–" bytes(S["max"]) ")"
	return "| " label[c] " | " s " | " echoed " | " times " | " rss " | " cell(RATIO[k], 2, "") " | " problems(k) " |"
}

# A line of summary.csv: medians (and ranges) over the rounds.
function summary_row(c, s, k,    pp, out) {
	pp = mode[c] == "pingpong"
	out = c "," s "," runs[k] "," (failed[k] + 0)
	out = out (stats(VALUE[k]) ? "," S["med"] "," S["min"] "," S["max"] : ",,,")
	out = out (stats(RATIO[k]) ? "," S["med"] "," S["min"] "," S["max"] : ",,,")
	out = out "," (stats(CPU[k]) ? S["med"] : "") "," (stats(CPU_RATIO[k]) ? S["med"] : "")
	out = out "," (pp && stats(P50[k]) ? S["med"] : "")
	out = out "," (pp && stats(P99[k]) ? S["med"] : "")
	out = out "," (pp && stats(P999[k]) ? S["med"] : "")
	return out "," (starved[k] + 0) "," (errors[k] + 0) "," (mismatches[k] + 0) "," (lost[k] + 0)
}

# Case c's label, short enough to fit under a chart's bars without turning.
function short_label(c,    l) {
	l = label[c]
	sub(/^ping-pong /, "", l)
	sub(/ in flight/, "", l)
	sub(/ conns?$/, "", l)
	# one stream goes without saying
	if (l ~ /^bulk /)
		sub(/ × 1$/, "", l)
	return l
}

# Chart file f's cells for k (case SUBSEP server): a tab, then the median,
# min and max of the list a[k]; "-" for each where k starved connections or
# has no figure.
function chart_cells(f, k, a) {
	if (!starved[k] && stats(a[k]))
		printf "\t%.3f\t%.3f\t%.3f", S["med"], S["min"], S["max"] > f
	else
		printf "\t-\t-\t-" > f
}

# The chart's data, tab-separated: for each ping-pong and bulk case, every
# server's throughput ratio to ref (median, min, max), "-" where it starved
# connections, since its rate then compares nothing.
function chart_data(    i, j, c) {
	printf "case" > chart
	for (j = 1; j <= nservers; j++)
		if (servers[j] != ref)
			printf "\t%s\t\t", servers[j] > chart
	printf "\n" > chart
	for (i = 1; i <= ncases; i++) {
		c = cases[i]
		if (mode[c] == "idle")
			continue
		printf "%s", short_label(c) > chart
		for (j = 1; j <= nservers; j++)
			if (servers[j] != ref)
				chart_cells(chart, c SUBSEP servers[j], RATIO)
		printf "\n" > chart
	}
	if (cpuchart != "")
		cpu_chart_data()
}

# The CPU panel's data, tab-separated: for each ping-pong case, every
# server's CPU time per echoed message in µs (median, min, max), the
# reference included, last; "-" where it starved connections or has no
# figure.
function cpu_chart_data(    i, j, c, n, order) {
	# the throughput panel's servers in its order (and colours), ref last
	for (j = 1; j <= nservers; j++)
		if (servers[j] != ref)
			order[++n] = servers[j]
	order[++n] = ref
	printf "case" > cpuchart
	for (j = 1; j <= n; j++)
		printf "\t%s\t\t", order[j] > cpuchart
	printf "\n" > cpuchart
	for (i = 1; i <= ncases; i++) {
		c = cases[i]
		if (mode[c] != "pingpong")
			continue
		printf "%s", short_label(c) > cpuchart
		for (j = 1; j <= n; j++)
			chart_cells(cpuchart, c SUBSEP order[j], CPU)
		printf "\n" > cpuchart
	}
}
