# timeline.awk: draw the events test/tools/timeline prints (with the "# key"
# lines test/proofs/timeline.sh adds) as an SVG: one row per client, time across;
# grey while a client waits for its first echo, then coloured by the thread
# that serves it where the server's log names one; the signal and the
# drain's deadline as vertical lines; out of descriptors, the accept pause
# and the moment the held clients give descriptors back, and the server's
# CPU time in between.  Several clients may share a row (the held ones):
# it spans the first connect to the last close.
BEGIN {
	FS = "\t"
	W = 960; LEFT = 170; RIGHT = 30; TOP = 92; ROW = 40
	split("#1f77b4 #ff7f0e #2ca02c #9467bd #8c564b #e377c2 #17becf #bcbd22", palette, " ")
	UNKNOWN = "#5b7a99"
	ONLY = "#1f77b4"
	deadline = -1; signal = -1; threads = -1; pause = -1; release = -1; back = -1
}

/^# / {
	key = substr($1, 3)
	if (key == "client") { name[$2] = $3; if ($2 > nrows) nrows = $2 }
	else meta[key] = $2
	next
}

{
	t = $1 + 0; row = $2 + 0; ev = $3
	if (t > tmax) tmax = t
	if (row == 0) {
		if (ev == "signal") { signal = t; signame = $4 }
		else if (ev == "threads") threads = $4 + 0
		else if (ev == "end") tend = t
		else if (ev == "log" && $4 ~ /Stopping socket listener/ && stopping == "") stopping = t
		else if (ev == "log" && $4 ~ /pausing until a connection closes/ && pause < 0) pause = t
		else if (ev == "release") { release = t; released = $4 }
		else if (ev == "cpu") cpu[$5] = $4
		next
	}
	if (ev == "connect") { if (!(row in conn)) conn[row] = t; nconn[row]++ }
	else if (ev == "echo") {
		if (!(row in first)) first[row] = t
		necho[row]++; echo[row, necho[row]] = t
	} else if (ev == "noread") noread[row] = t
	else if (ev == "eof" || ev == "reset" || ev == "error" || ev == "close") {
		# a shared row ends with its last client
		if (!(row in fin) || nconn[row] > 1) { fin[row] = t; how[row] = ev }
	} else if (ev == "log") {
		if ($4 ~ /: timed out$/) timedout[row] = t
		# descriptors back: the server closed the first released one
		if ($4 ~ /: closed$/ && release >= 0 && back < 0) back = t
		if ($4 ~ /worker [0-9]+: .*: connected$/ && !(row in worker)) {
			w = $4; sub(/.*worker /, "", w); sub(/:.*/, "", w)
			worker[row] = w + 0; nworkers_seen[w + 0] = 1
		}
	}
}

END {
	if (tend <= 0) tend = tmax
	if (signal >= 0 && meta["drain_ms"] != "") {
		# the drain's deadline runs from when the accept loop stopped
		deadline = (stopping != "" ? stopping : signal) + meta["drain_ms"]
	}
	H = TOP + nrows * ROW + 110
	printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H
	printf "<title>%s</title>\n", esc(meta["title"])
	rect(0, 0, W, H, "#ffffff", "")
	text(12, 24, meta["title"], " font-size=\"16\" font-weight=\"bold\"")
	text(12, 44, "server: " meta["server"], "")
	text(12, 62, "recorded by " meta["command"] " on " meta["date"] "; " meta["machine"], " fill=\"#555\"")

	# the time axis, with a tick every second or half second
	step = tend > 5000 ? 1000 : 500
	yaxis = TOP + nrows * ROW + 6
	line(LEFT, yaxis, W - RIGHT, yaxis, "stroke=\"#333\"")
	for (s = 0; s <= tend; s += step) {
		line(x(s), TOP - 6, x(s), yaxis, "stroke=\"#e4e4e4\"")
		line(x(s), yaxis, x(s), yaxis + 5, "stroke=\"#333\"")
		text(x(s) - 8, yaxis + 18, sprintf("%g s", s / 1000), "")
	}

	for (r = 1; r <= nrows; r++) {
		y = TOP + (r - 1) * ROW
		text(12, y + 20, name[r], "")
		if (!(r in conn)) continue
		stop = (r in fin) ? fin[r] : tend
		served = (r in first) ? first[r] : stop
		# waiting for the first echo
		rect(x(conn[r]), y + 6, x(served) - x(conn[r]), 20, "#c8c8c8", "")
		if (served - conn[r] >= 500)
			text(x(conn[r]) + 4, y + 20, sprintf("waiting %.1f s", (served - conn[r]) / 1000), "")
		if (nconn[r] > 1) { col = UNKNOWN; who = "each echoed once, then silent, holding a descriptor" }
		else if (r in worker) { col = palette[worker[r] % 8 + 1]; who = "worker " worker[r] }
		else if (threads == 1) { col = ONLY; who = "the one thread" }
		else { col = UNKNOWN; who = "" }
		if (r in first) {
			reading_end = (r in noread) ? noread[r] : stop
			rect(x(served), y + 6, x(reading_end) - x(served), 20, col, "")
			if (r in noread)
				rect(x(reading_end), y + 6, x(stop) - x(reading_end), 20, col, " fill-opacity=\"0.35\"")
			if (who != "") text(x(served) + 4, y + 20, who, " fill=\"#fff\"")
			if (r in noread && x(stop) - x(reading_end) > 120)
				text(x(reading_end) + 60, y + 20, "client reads nothing", "")
		}
		for (i = 1; i <= necho[r]; i++)
			line(x(echo[r, i]), y + 2, x(echo[r, i]), y + 9, "stroke=\"#000\"")
		if (r in fin) {
			if (how[r] == "reset") {
				line(x(fin[r]) - 5, y + 11, x(fin[r]) + 5, y + 21, "stroke=\"#d62728\" stroke-width=\"2.5\"")
				line(x(fin[r]) - 5, y + 21, x(fin[r]) + 5, y + 11, "stroke=\"#d62728\" stroke-width=\"2.5\"")
				text(x(fin[r]) + 8, y + 20, "reset", " fill=\"#d62728\"")
			} else {
				line(x(fin[r]), y + 4, x(fin[r]), y + 28, "stroke=\"#000\" stroke-width=\"2\"")
				text(x(fin[r]) + 4, y + 38, (r in timedout ? "timed out, " : "") (how[r] == "eof" ? "closed (FIN)" : how[r] == "close" ? "the client closes" : how[r]), " font-size=\"10\"")
			}
		}
	}
	if (signal >= 0) {
		line(x(signal), TOP - 10, x(signal), yaxis, "stroke=\"#d62728\" stroke-dasharray=\"5,3\" stroke-width=\"1.5\"")
		text(x(signal) + 4, TOP - 12, signame, " fill=\"#d62728\"")
	}
	if (deadline >= 0) {
		line(x(deadline), TOP - 10, x(deadline), yaxis, "stroke=\"#000\" stroke-dasharray=\"2,2\" stroke-width=\"1.5\"")
		text(x(deadline) + 4, TOP - 12, "deadline (+" meta["drain_ms"] / 1000 " s)", "")
	}

	if (pause >= 0) {
		line(x(pause), TOP - 10, x(pause), yaxis, "stroke=\"#d62728\" stroke-dasharray=\"5,3\" stroke-width=\"1.5\"")
		text(x(pause) + 4, TOP - 12, "accept(): EMFILE, accepting pauses", " fill=\"#d62728\"")
	}
	if (release >= 0) {
		b = back >= 0 ? back : release
		line(x(b), TOP - 10, x(b), yaxis, "stroke=\"#2ca02c\" stroke-dasharray=\"5,3\" stroke-width=\"1.5\"")
		text(x(b) + 4, TOP - 12, "descriptors back: " released " held clients close", " fill=\"#2ca02c\"")
	}

	# the legend, and what the picture could not know
	y = yaxis + 40
	rect(12, y - 10, 14, 12, "#c8c8c8", "")
	text(30, y, "waiting for the first echo", "")
	nw = 0
	for (wk = 0; wk < 64; wk++) if (wk in nworkers_seen) { rect(200 + nw * 16, y - 10, 14, 12, palette[wk % 8 + 1], ""); nw++ }
	if (nw == 0) rect(200, y - 10, 14, 12, threads == 1 ? ONLY : UNKNOWN, "")
	if (nw > 0) {
		text(204 + nw * 16, y, "served; colour = the worker the server's -v log names (" nw " seen)", "")
	} else if (threads == 1) {
		text(218, y, "served by the server's only thread (1 in /proc/PID/task)", "")
	} else {
		text(218, y, "served; which thread: not known, the server's log does not say (" threads " threads in /proc/PID/task)", "")
	}
	line(12, y + 18, 12, y + 25, "stroke=\"#000\"")
	text(20, y + 25, "a tick: one 16-byte echo back at the client", "")
	text(300, y + 25, "times: ms since the server's \"listening on\" line, stamped by test/tools/timeline", " fill=\"#555\"")
	if (pause >= 0 && ("pause" in cpu) && ("release" in cpu))
		text(12, y + 45, sprintf("the server's CPU time during the pause (/proc/PID/stat): %d ms in %.1f s; nofile (ulimit -n) %s", cpu["release"] - cpu["pause"], (release - pause) / 1000, meta["nofile"]), " fill=\"#555\"")
	if (deadline >= 0)
		text(12, y + 45, "deadline: " meta["drain_ms"] / 1000 " s (the chapter's DRAIN_SECONDS) after the server logged that its accept loop stops", " fill=\"#555\"")
	print "</svg>"
}
