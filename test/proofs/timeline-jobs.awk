# timeline-jobs.awk: draw chapter 2's timeline, the events test/tools/jobtrace.so
# records in the work-queue demo (with the "# key" lines test/proofs/timeline.sh
# adds), as an SVG: one panel per chapter's queue, one row per worker
# thread, time across; each job a coloured span, each sleep in
# pthread_cond_wait a pale one, the shutdown's broadcast and the process's
# exit as vertical lines.
#
# Input lines: CHAPTER MS THREAD EVENT DETAIL (tab-separated; thread 0 is
# main(), 1.. the workers).  A job is a worker's span from unlocking the
# queue's mutex to locking it again: between the two it ran what it took.
BEGIN {
	FS = "\t"
	W = 960; LEFT = 150; RIGHT = 30; TOP = 84; ROW = 30
	split("#1f77b4 #ff7f0e #2ca02c #9467bd #8c564b #e377c2 #17becf #bcbd22", palette, " ")
	SLEEP = "#cfe0f1"
}

/^# / {
	key = substr($1, 3)
	if (key == "run") { nruns++; runs[nruns] = $2; cmd[$2] = $3 }
	else if (key == "output") out[$2] = out[$2] (out[$2] == "" ? "" : "; ") $3
	else meta[key] = $2
	next
}

{
	c = $1; t = $2 + 0; th = $3 + 0; ev = $4
	if (t > tmax) tmax = t
	if (th == 0) {
		# main() signals and broadcasts: kept for the cond the workers
		# sleep on, known at the end
		if (ev == "broadcast") { nb[c]++; bcast[c, nb[c]] = t; bcond[c, nb[c]] = $5 }
		else if (ev == "signal") { nsig[c]++; sig[c, nsig[c]] = t; scond[c, nsig[c]] = $5 }
		else if (ev == "end") { at[c, "end"] = t; endnote[c] = $5 }
		next
	}
	if (th > nth[c]) nth[c] = th
	if (ev == "start") born[c, th] = t
	else if (ev == "exit") died[c, th] = t
	else if (ev == "sleep") {
		ns[c, th]++; s0[c, th, ns[c, th]] = t
		if (!(c in qcond)) qcond[c] = $5
	}
	else if (ev == "wake") s1[c, th, ns[c, th]] = t
	else if (ev == "unlock") { open_[c, th] = t }
	else if (ev == "lock" && ((c, th) in open_)) {
		nj[c, th]++; j0[c, th, nj[c, th]] = open_[c, th]; j1[c, th, nj[c, th]] = t
		delete open_[c, th]
	}
}

# panel(C, Y): chapter C's run, its heading at Y; the height it took.
function panel(c, y,    th, i, yy, stop, h, n, asleep) {
	text(12, y + 14, "Chapter " c "'s queue: " cmd[c], " font-weight=\"bold\"")
	text(12, y + 30, "it printed: " out[c], " fill=\"#555\"")
	y += 40
	h = (nth[c] + 1) * ROW
	# main(): each job it queued, a tick
	text(12, y + 19, "main()", "")
	for (i = 1; i <= nq[c]; i++)
		line(x(queued[c, i]), y + 8, x(queued[c, i]), y + 22, "stroke=\"#000\"")
	if (nq[c] > 0) text(x(queued[c, nq[c]]) + 6, y + 19, nq[c] " jobs queued", " font-size=\"10\"")
	for (th = 1; th <= nth[c]; th++) {
		yy = y + th * ROW
		text(12, yy + 19, "worker " th, "")
		if (!((c, th) in born)) continue
		stop = ((c, th) in died) ? died[c, th] : at[c, "end"]
		# alive: a thin grey line under everything else
		rect(x(born[c, th]), yy + 14, x(stop) - x(born[c, th]), 2, "#999", "")
		asleep = 0
		for (i = 1; i <= ns[c, th]; i++) {
			if ((c, th, i) in s1)
				rect(x(s0[c, th, i]), yy + 6, x(s1[c, th, i]) - x(s0[c, th, i]), 18, SLEEP, "")
			else {
				# never woken: asleep until the process ended
				rect(x(s0[c, th, i]), yy + 6, x(stop) - x(s0[c, th, i]), 18, SLEEP, " stroke=\"#d62728\" stroke-width=\"1.5\"")
				text(x(s0[c, th, i]) + 6, yy + 19, "asleep again, for good", " fill=\"#d62728\" font-size=\"11\"")
				asleep = 1
			}
		}
		# woken by the shutdown's broadcast: a red tick
		for (i = 1; i <= ns[c, th]; i++)
			if (((c, th, i) in s1) && ((c, "bc") in at) && s1[c, th, i] >= at[c, "bc"])
				line(x(s1[c, th, i]), yy + 1, x(s1[c, th, i]), yy + 29, "stroke=\"#d62728\" stroke-width=\"2\"")
		for (i = 1; i <= nj[c, th]; i++)
			rect(x(j0[c, th, i]), yy + 6, x(j1[c, th, i]) - x(j0[c, th, i]), 18, palette[(th - 1) % 8 + 1], " stroke=\"#fff\" stroke-width=\"0.5\"")
		if (nj[c, th] > 0) text(x(j1[c, th, nj[c, th]]) + 4, yy + 19, nj[c, th] " jobs", " font-size=\"10\"")
		if ((c, th) in died) {
			line(x(died[c, th]), yy + 3, x(died[c, th]), yy + 27, "stroke=\"#000\" stroke-width=\"2.5\"")
			text(x(died[c, th]) + 5, yy + 19, "leaves", "")
		}
	}
	# the shutdown's broadcast, and the end of the process
	if ((c, "bc") in at) {
		line(x(at[c, "bc"]), y - 2, x(at[c, "bc"]), y + h, "stroke=\"#d62728\" stroke-dasharray=\"5,3\" stroke-width=\"1.5\"")
		text(x(at[c, "bc"]) - 4, y + 19, "workqueue_shutdown()", " fill=\"#d62728\" text-anchor=\"end\"")
	}
	if ((c, "end") in at) {
		line(x(at[c, "end"]), y - 2, x(at[c, "end"]), y + h, "stroke=\"#000\" stroke-dasharray=\"2,2\" stroke-width=\"1.5\"")
		# left of its line, unless the shutdown's label is there
		if (!((c, "bc") in at) || x(at[c, "end"]) - x(at[c, "bc"]) > 190)
			text(x(at[c, "end"]) - 4, y + 19, "exit: " endnote[c], " text-anchor=\"end\" font-size=\"11\"")
		else
			text(x(at[c, "end"]) + 4, y + 19, "exit: " endnote[c], " font-size=\"11\"")
	}
	return 40 + h
}

END {
	# the queue's cond: jobs queued, and the shutdown's first broadcast
	for (n = 1; n <= nruns; n++) {
		c = runs[n]
		for (i = 1; i <= nsig[c]; i++)
			if (scond[c, i] == qcond[c]) { nq[c]++; queued[c, nq[c]] = sig[c, i] }
		for (i = nb[c]; i >= 1; i--)
			if (bcond[c, i] == qcond[c]) at[c, "bc"] = bcast[c, i]
	}
	tend = tmax * 1.02
	if (tend <= 0) tend = 1
	H = TOP
	for (n = 1; n <= nruns; n++) H += 40 + (nth[runs[n]] + 1) * ROW + 12
	yaxis = H
	H += 100
	printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H
	printf "<title>%s</title>\n", esc(meta["title"])
	rect(0, 0, W, H, "#ffffff", "")
	text(12, 24, meta["title"], " font-size=\"16\" font-weight=\"bold\"")
	text(12, 44, "recorded by " meta["command"] " on " meta["date"] "; " meta["machine"], " fill=\"#555\"")
	text(12, 62, "each demo run with LD_PRELOAD=test/tools/jobtrace.so, which stamps its threads' calls; same time scale in both", " fill=\"#555\"")

	# a tick every 100 ms
	for (s = 0; s <= tend; s += 100) {
		line(x(s), TOP, x(s), yaxis, "stroke=\"#eee\"")
		line(x(s), yaxis, x(s), yaxis + 5, "stroke=\"#333\"")
		text(x(s) - 8, yaxis + 18, sprintf("%g s", s / 1000), "")
	}
	line(LEFT, yaxis, W - RIGHT, yaxis, "stroke=\"#333\"")
	y = TOP
	for (n = 1; n <= nruns; n++) y += panel(runs[n], y) + 12

	# the legend
	y = yaxis + 42
	rect(12, y - 10, 14, 12, palette[1], "")
	rect(28, y - 10, 14, 12, palette[2], "")
	text(48, y, "a job, from taking it off the queue to coming back for the next (each held " meta["job_ms"] " ms by JOBTRACE_JOB_MS so it can be seen)", "")
	rect(12, y + 8, 30, 12, SLEEP, "")
	text(48, y + 18, "asleep in pthread_cond_wait(); red tick: woken by the shutdown's broadcast; red outline: asleep until the process exited", "")
	line(20, y + 26, 20, y + 38, "stroke=\"#000\" stroke-width=\"2.5\"")
	text(48, y + 36, "the thread ends (returns or calls pthread_exit())", "")
	text(400, y + 36, "times: ms since the demo started, CLOCK_MONOTONIC", " fill=\"#555\"")
	print "</svg>"
}
