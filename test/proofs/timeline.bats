#!/usr/bin/env bats
# The timelines (make timeline) are proofs: the events behind each picture,
# fresh and committed, show the chapter's lesson; each committed picture is
# what its events draw, with its screenshot beside it; and every picture,
# and every README with its pictures, renders in a real browser.
# bats file_tags=reference-only

bats_load_library bats-support
bats_load_library bats-assert

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)
# shellcheck source=test/server.bash
source "$ROOT/test/server.bash"
PICS=$ROOT/test/results/timeline

setup() {
	OUT=$(mktemp -d)
}

teardown() {
	rm -rf "$OUT"
}

# lesson STEP FILE: check chapter STEP's lesson in the events in FILE; on a
# failure print what is wrong.  Times are ms since the server's "listening
# on" line, stamped by test/tools/timeline when its poll() wakes.
lesson() {
	awk -F'\t' -v step="$1" '
	/^#/ { next }
	$2 == 0 && $3 == "signal" { signal = $1 }
	$2 == 0 && $3 == "threads" { threads = $4 }
	$2 == 0 && $3 == "log" && $4 ~ /Stopping socket listener/ && stopping == "" { stopping = $1 }
	$2 == 0 && $3 == "log" && $4 ~ /pausing until a connection closes/ { if (!npause++) pause = $1 }
	$2 == 0 && $3 == "release" { release = $1; released = $4 }
	$2 == 0 && $3 == "cpu" { cpu[$5] = $4 }
	$2 == 1 && $3 == "log" && $4 ~ /: closed$/ && release != "" && back == "" { back = $1 }
	$2 > 0 && $2 > rows { rows = $2 }
	$3 == "connect" { conn[$2] = $1 }
	$3 == "echo" { if (!($2 in first)) first[$2] = $1; last[$2] = $1; n[$2]++; echoes[NR] = $2 "\t" $1 }
	($3 == "eof" || $3 == "reset") && !($2 in end) { end[$2] = $1; how[$2] = $3 }
	$3 == "log" && $4 ~ /worker [0-9]+: .*: connected$/ { w = $4; sub(/.*worker /, "", w); sub(/:.*/, "", w); worker[w] = 1 }
	function bad(s) { print "wrong: " s; failed = 1 }
	END {
		if (rows < 3) bad("only " rows " clients in the events")
		if (step == 1) {
			# one thread: its own count in /proc, not a guess
			if (threads != 1) bad("the server had " threads " threads, not 1")
			# interleaved: each client echoed between client 1s first and last echo
			for (r = 1; r <= rows; r++) {
				if (n[r] < 8) bad("client " r " got " n[r] " echoes, not 8 or more")
				if (r > 1 && !(first[r] < last[1] && last[r] > first[1]))
					bad("client " r " was not served while client 1 was")
			}
		}
		if (step == 3) {
			# Clients 1 and 2 hold both workers until their 10 s read
			# timeout, which started 0.3 s before clients 3 and 4
			# connected: those wait 9.7 s.  9 s leaves 0.7 s for
			# stamping delays; a free worker would echo in a few ms.
			for (r = 3; r <= 4; r++)
				if (!(r in first) || first[r] - conn[r] < 9000)
					bad(sprintf("client %d: first echo %.0f ms after its connect, not >= 9000", r, first[r] - conn[r]))
			# ...while the first two were served at once (the bound:
			# chapter 5s, below)
			for (r = 1; r <= 2; r++)
				if (!(r in first) || first[r] - conn[r] >= 500)
					bad("client " r " was not served at once")
		}
		if (step == 4) {
			if (signal == "") bad("no signal")
			# chapter 4s DRAIN_SECONDS, from the end of the accept loop
			deadline = (stopping != "" ? stopping : signal) + 1000
			# Every connection ends: the scenario runs 0.8 s past the
			# deadline, and a server that kept serving would leave the
			# busy client (a message every 20 ms) open and echoing.
			for (r = 1; r <= rows; r++)
				if (!(r in end)) bad("client " r " was never closed")
			# No echo after the deadline.  The 500 ms slack covers the
			# delay between an echo arriving and test/tools/timeline waking
			# to stamp it on a loaded machine; a server echoing past
			# the deadline would add some 15 echoes in the 300 ms left.
			for (i in echoes) {
				split(echoes[i], e, "\t")
				if (e[2] > deadline + 500) bad(sprintf("client %d: an echo at %.0f ms, after the deadline at %.0f ms", e[1], e[2], deadline))
			}
			# the quiet client drained: a FIN before the deadline
			if (how[2] != "eof" || end[2] >= deadline) bad("the quiet client did not close with a FIN before the deadline")
			# the client that reads nothing is owed echo: a reset
			if (how[3] != "reset") bad("the non-reading client ended with " how[3] ", not a reset")
		}
		if (step == 5) {
			# Served at once: chapter 3 makes such a client wait 10 s;
			# 0.5 s is 20 times less, and hundreds of times a loopback
			# echo, so a loaded machine does not reach it.
			for (r = 1; r <= rows; r++)
				if (!(r in first) || first[r] - conn[r] >= 500)
					bad(sprintf("client %d: first echo %.0f ms after its connect, not < 500", r, first[r] - conn[r]))
			# round robin over the two workers, each named in the log
			nw = 0
			for (k in worker) nw++
			if (nw != 2) bad("the log names " nw " workers, not 2")
		}
		if (step == "5-emfile") {
			# Row 1: the held clients, row 2: the one that found no
			# descriptor, rows 3 to 5: the clients that arrive after.
			if (npause != 1) bad("the pause was logged " npause + 0 " times, not once")
			if (release == "" || released < 1) bad("no held clients released")
			if (back == "") bad("the server closed none of the released clients")
			if (back == "" || pause == "") exit 1
			for (r = 2; r <= rows; r++) {
				if (r > 2 && conn[r] <= pause) bad(sprintf("client %d connected at %.0f ms, before the pause at %.0f ms", r, conn[r], pause))
				# it waited: nothing before the descriptors came back
				if ((r in first) && first[r] < back) bad(sprintf("client %d: an echo at %.0f ms, before the descriptors came back at %.0f ms", r, first[r], back))
				# and then is served promptly: the close itself makes
				# the accept loop resume (under 1 ms on a quiet
				# machine), not a timer.  500 ms, chapter 5s bound
				# above, is far under the 600 ms the last of them has
				# waited and leaves a loaded machine room.
				if (!(r in first) || first[r] - back >= 500)
					bad(sprintf("client %d: first echo %.0f ms after the descriptors came back, not < 500", r, first[r] - back))
			}
			# Paused, not spinning: a loop calling accept() again
			# at once burns the whole pause (1.5 s); a paused one
			# wakes every 100 ms (ACCEPT_RETRY_MS), well under 1%.
			# A quarter leaves room for the 10 ms clock ticks and
			# the server'"'"'s own logging.
			if (!("pause" in cpu) || !("release" in cpu) || cpu["pause"] < 0)
				bad("no CPU times of the server")
			else if (cpu["release"] - cpu["pause"] > (release - pause) / 4)
				bad(sprintf("the server used %d ms of CPU in the %.0f ms pause, more than a quarter", cpu["release"] - cpu["pause"], release - pause))
		}
		exit failed
	}' "$2"
}

# lesson_jobs CHAPTER FILE: check the lesson of CHAPTER's run (2 or 4) in
# chapter 2's events in FILE (test/tools/jobtrace.so's lines, each led by the
# chapter); on a failure print what is wrong.  The demo's run: -w workers
# run -j jobs, idle, then workqueue_shutdown() broadcasts, then the demo
# waits up to 200 ms (its GRACE_MS) for leaving workers and exits.
lesson_jobs() {
	awk -F'\t' -v ch="$1" '
	# the first pass: the cond the workers sleep on, and the first
	# broadcast main() makes on it, the shutdown
	NR == FNR { if ($1 == ch && $3 > 0 && $4 == "sleep" && qcond == "") qcond = $5; next }
	$1 == "# run" && $2 == ch { n = split($3, a, " "); for (i = 1; i < n; i++) { if (a[i] == "-w") w = a[i + 1]; if (a[i] == "-j") j = a[i + 1] } }
	$1 == "# output" && $2 == ch && $3 ~ /^workers alive after shutdown: / { alive = $3; sub(/.*: /, "", alive) }
	/^#/ || $1 != ch { next }
	$3 == 0 && $4 == "broadcast" && $5 == qcond && bc == "" { bc = $2 }
	$3 == 0 && $4 == "end" { endt = $2; endnote = $5 }
	$3 == 0 { next }
	$4 == "start" { started++ }
	$4 == "unlock" { taking[$3] = 1 }
	$4 == "lock" && taking[$3] { jobs++; taking[$3] = 0 }
	$4 == "wake" && bc != "" { woken[$3] = 1 }
	$4 == "exit" { exits++; if (bc == "") early++; else if ($2 - bc > slowest) slowest = $2 - bc }
	$4 == "sleep" || $4 == "wake" || $4 == "exit" { last[$3] = $4 }
	function bad(s) { print "wrong: " s; failed = 1 }
	END {
		if (w == "" || j == "") { bad("no run of chapter " ch); exit 1 }
		if (started != w) bad(started + 0 " workers started, not " w)
		# a job: a worker unlocks the queue with one, locks it again after
		if (jobs != j) bad(jobs + 0 " jobs taken, not " j)
		if (bc == "") bad("no shutdown broadcast")
		if (endt == "") bad("no end of the process")
		if (early) bad(early " workers left before the shutdown")
		if (ch == 2) {
			# Every worker woke at the broadcast, went back to
			# pthread_cond_wait and was still in it when the process
			# exited, at least the 200 ms the demo gives leaving
			# workers later (its loop of 20 sleeps of 10 ms).
			for (t = 1; t <= w; t++) {
				if (!(t in woken)) bad("worker " t " was not woken by the shutdown")
				if (last[t] != "sleep") bad("worker " t ": " last[t] " after the shutdown, not asleep again")
			}
			if (exits > 0) bad(exits " workers left")
			if (endnote != w " asleep, " w " alive") bad("at exit: " endnote ", not " w " asleep, " w " alive")
			if (endt - bc < 200) bad(sprintf("the process exited %.0f ms after the shutdown, not >= 200", endt - bc))
			if (alive != w) bad("the demo counted " alive " workers alive, not " w)
		}
		if (ch == 4) {
			# Every worker leaves within 200 ms of the broadcast.
			# It has only to wake, lock, find no job and return:
			# 0.2 ms on a quiet machine, 11 ms seen under load.
			# 200 ms is GRACE_MS in the demo, the time it gives
			# leaving workers before it counts them alive, and the
			# time the workers of chapter 2 are shown asleep through.
			if (exits != w) bad(exits + 0 " of " w " workers left")
			if (slowest > 200) bad(sprintf("a worker left %.0f ms after the shutdown, not within 200", slowest))
			if (endnote != "0 asleep, 0 alive") bad("at exit: " endnote ", not 0 asleep, 0 alive")
			if (alive != "0") bad("the demo counted " alive " workers alive, not 0")
		}
		exit failed
	}' "$2" "$2"
}

# run_timeline STEP: a fresh run into $OUT, checked.
run_timeline() {
	TIMELINE_OUT=$OUT run bash "$ROOT/test/proofs/timeline.sh" "$1"
	assert_success
	[[ -s $OUT/step$1.svg ]]
	run lesson "$1" "$OUT/step$1.tsv"
	assert_success
}

@test "timeline, chapter 1: one thread serves four clients, interleaved" {
	run_timeline 1
}

# bats test_tags=flaw
@test "timeline, chapter 2: still wrong: after workqueue_shutdown() all 4 workers sleep again in pthread_cond_wait, none leaves" {
	TIMELINE_OUT=$OUT run bash "$ROOT/test/proofs/timeline.sh" 2
	assert_success
	[[ -s $OUT/step2.svg ]]
	run lesson_jobs 2 "$OUT/step2.tsv"
	assert_success
}

@test "timeline, chapter 2's picture: chapter 4's queue beside it, every worker leaves within 200 ms of the shutdown" {
	TIMELINE_OUT=$OUT run bash "$ROOT/test/proofs/timeline.sh" 2
	assert_success
	run lesson_jobs 4 "$OUT/step2.tsv"
	assert_success
}

# bats test_tags=flaw
@test "timeline, chapter 3: with two workers, the third client's first echo waits >= 9 s" {
	run_timeline 3
}

@test "timeline, chapter 4: after SIGTERM the quiet client drains, nothing is echoed after the deadline, the non-reader is reset" {
	run_timeline 4
}

@test "timeline, chapter 5: with two threads, all four clients get their first echo within 0.5 s" {
	run_timeline 5
}

@test "timeline, chapter 5: out of descriptors the server pauses, without spinning; clients arriving in the pause are served within 0.5 s of descriptors coming back" {
	TIMELINE_OUT=$OUT SCENARIO=emfile run bash "$ROOT/test/proofs/timeline.sh" 5
	assert_success
	[[ -s $OUT/step5-emfile.svg ]]
	run lesson 5-emfile "$OUT/step5-emfile.tsv"
	assert_success
}

@test "make timeline ECHOSERVER=: chapter 5's scenario against chapter 4's server fails chapter 5's lesson" {
	# With -t 2 chapter 4 serves two of the four talking clients; the
	# other two wait until the first two leave, 2 s in.
	cd "$ROOT"
	TIMELINE_OUT=$OUT run make -s timeline STEP=5 ECHOSERVER="$ROOT/step4-shutdown-fixes/echoserver"
	assert_success
	grep -q "^# title	Chapter 5's scenario: " "$OUT/step5.tsv"
	grep -q "^# server	step4-shutdown-fixes/echoserver " "$OUT/step5.tsv"
	run lesson 5 "$OUT/step5.tsv"
	assert_failure
	assert_output --partial "not < 500"
}

@test "a lesson check rejects the wrong chapter's events" {
	# chapter 3's events fail chapter 5's lesson, and chapter 5's fail 3's
	run lesson 5 "$PICS/step3.tsv"
	assert_failure
	assert_output --partial "not < 500"
	run lesson 3 "$PICS/step5.tsv"
	assert_failure
	assert_output --partial "not >= 9000"
	# no pause in chapter 5's first run; the pause's clients wait
	run lesson 5-emfile "$PICS/step5.tsv"
	assert_failure
	assert_output --partial "logged 0 times"
	run lesson 5 "$PICS/step5-emfile.tsv"
	assert_failure
	assert_output --partial "not < 500"
	# a server that spins through the pause, its CPU time made so
	awk -F'\t' -v OFS='\t' '$3 == "cpu" && $5 == "release" { $4 = $4 + 1400 } 1' \
		"$PICS/step5-emfile.tsv" >"$OUT/spin.tsv"
	run lesson 5-emfile "$OUT/spin.tsv"
	assert_failure
	assert_output --partial "more than a quarter"
	# a server that never accepts again
	awk -F'\t' '!($2 >= 2 && $3 == "echo")' "$PICS/step5-emfile.tsv" >"$OUT/stuck.tsv"
	run lesson 5-emfile "$OUT/stuck.tsv"
	assert_failure
	assert_output --partial "after the descriptors came back, not < 500"
	# chapter 2's run and chapter 4's, each under the other's name
	awk -F'\t' -v OFS='\t' '$1 == "# run" || $1 == "# output" || $1 ~ /^[24]$/ { $(1 + ($1 ~ /^#/)) = 6 - $(1 + ($1 ~ /^#/)) } 1' \
		"$PICS/step2.tsv" >"$OUT/swapped.tsv"
	run lesson_jobs 2 "$OUT/swapped.tsv"
	assert_failure
	assert_output --partial "workers left"
	run lesson_jobs 4 "$OUT/swapped.tsv"
	assert_failure
	assert_output --partial "0 of 4 workers left"
}

@test "every committed timeline shows its lesson and is the picture of its events" {
	local s
	for s in 1 3 4 5 5-emfile; do
		run lesson "$s" "$PICS/step$s.tsv"
		assert_success
		awk -f "$ROOT/test/proofs/svg.awk" -f "$ROOT/test/proofs/timeline.awk" "$PICS/step$s.tsv" >"$OUT/step$s.svg"
		cmp "$OUT/step$s.svg" "$PICS/step$s.svg"
	done
	for s in 2 4; do
		run lesson_jobs "$s" "$PICS/step2.tsv"
		assert_success
	done
	awk -f "$ROOT/test/proofs/svg.awk" -f "$ROOT/test/proofs/timeline-jobs.awk" "$PICS/step2.tsv" >"$OUT/step2.svg"
	cmp "$OUT/step2.svg" "$PICS/step2.svg"
}

@test "every chapter README with a timeline shows its committed picture" {
	local s dir
	for s in 1 2 3 4 5 5-emfile; do
		dir=$(cd "$ROOT" && echo step"${s%%-*}"-*)
		grep -q "](../test/results/timeline/step$s.svg)" "$ROOT/$dir/README.md" ||
			fail "$dir/README.md does not show test/results/timeline/step$s.svg"
	done
}

# png_size FILE: a PNG's width and height, "WxH", from its IHDR chunk.
png_size() {
	od -An -tu1 -j16 -N8 "$1" | awk '{ print $1 * 16777216 + $2 * 65536 + $3 * 256 + $4 "x" $5 * 16777216 + $6 * 65536 + $7 * 256 + $8 }'
}

# svg_size FILE: the width and height of an SVG's <svg>, "WxH".
svg_size() {
	sed -n 's/^<svg [^>]* width="\([0-9]*\)" height="\([0-9]*\)".*/\1x\2/p' "$1"
}

@test "every committed timeline has its PNG screenshot (make timeline-png), at its SVG's size" {
	local svg n=0
	for svg in "$PICS"/*.svg; do
		[[ -s ${svg%.svg}.png ]] || fail "${svg#"$ROOT"/}: no PNG beside it (make timeline-png)"
		# a picture redrawn at another size has a stale screenshot
		[[ $(png_size "${svg%.svg}.png") == "$(svg_size "$svg")" ]] ||
			fail "${svg%.svg}.png is $(png_size "${svg%.svg}.png"), its SVG $(svg_size "$svg"): make timeline-png"
		n=$((n + 1))
	done
	((n >= 6))
}

# chromium_flags NAME: what headless Chromium needs here, a fresh profile
# each (NAME names it); its log, console messages included, on stderr.
chromium_flags() {
	echo --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update \
		--disable-sync --user-data-dir="$OUT/profile-$1" \
		--allow-file-access-from-files --virtual-time-budget=5000 \
		--enable-logging=stderr
}

# render_readmes README...: render each README (Markdown) to HTML as GitHub
# does (cmark-gfm: tables, raw HTML) and load them all in headless
# Chromium, each in a frame of one page, each from its own directory (a
# <base>); check them: every image loads (a width, no error event, an alt
# text), each timeline's caption names the command that drew it (make
# bench for the benchmark chart), no console message.  Print "image
# README REF WxH" for each image and "wrong: ..." for each fault; fail if
# there is one.
render_readmes() {
	local readme dir k=0 failed=0 kind file ref size alt codes cmd
	{
		echo '<html><body>'
		for readme in "$@"; do
			k=$((k + 1))
			dir=$(cd "$(dirname "$readme")" && pwd)
			{
				printf '<!DOCTYPE html><html><head><meta charset="utf-8"><base href="file://%s/">\n' "$dir"
				cat <<-'EOF'
					<script>
					var errors = [];
					window.addEventListener("error", function (e) {
						var t = e.target;
						errors.push(t && t.tagName ? t.tagName + " " + (t.getAttribute("src") || t.getAttribute("href")) : String(e.message));
					}, true);
					</script></head><body>
				EOF
				cmark-gfm --unsafe -e table -e strikethrough -e autolink "$readme"
				echo '</body></html>'
			} >"$OUT/readme$k.html"
			printf '<iframe data-readme="%s" src="readme%d.html"></iframe>\n' "$readme" "$k"
		done
		# Each frame's images, its errors and the commands it shows
		# in code, one tab-separated line each, once all have loaded.
		cat <<-'EOF'
			<pre id="result"></pre><script>
			window.addEventListener("load", function () {
				var out = [];
				document.querySelectorAll("iframe").forEach(function (f) {
					var r = f.getAttribute("data-readme"), w = f.contentWindow, d = f.contentDocument;
					if (d == null || d.body == null) { out.push(r + "\tnone"); return; }
					d.querySelectorAll("img").forEach(function (i) {
						out.push(r + "\timage\t" + i.getAttribute("src") + "\t" + i.naturalWidth + "x" + i.naturalHeight + "\t" + (i.getAttribute("alt") ? "alt" : "no-alt"));
					});
					(w.errors || []).forEach(function (e) { out.push(r + "\terror\t" + e); });
					var codes = [];
					d.querySelectorAll("code").forEach(function (c) {
						// inline code only: a code block spans lines
						if (c.parentNode.tagName != "PRE" && /^make /.test(c.textContent))
							codes.push(c.textContent.replace(/\s+/g, " "));
					});
					out.push(r + "\tcodes\t" + codes.join("|"));
				});
				document.getElementById("result").textContent = out.join("\n");
			});
			</script></body></html>
		EOF
	} >"$OUT/readmes.html"
	# shellcheck disable=SC2046
	timeout 60 chromium $(chromium_flags readmes) --dump-dom "file://$OUT/readmes.html" \
		>"$OUT/readmes.dom" 2>"$OUT/readmes.err" || {
		echo "wrong: chromium failed on the READMEs: $(tail -3 "$OUT/readmes.err")"
		return 1
	}
	sed -n '/<pre id="result">/,/<\/pre>/p' "$OUT/readmes.dom" |
		sed 's/^<pre id="result">//; s/<\/pre>.*//' >"$OUT/readmes.result"
	for readme in "$@"; do
		grep -q "^$readme	codes	" "$OUT/readmes.result" || {
			echo "wrong: $readme: not rendered: $(grep "^$readme	" "$OUT/readmes.result")"
			failed=1
		}
	done
	while IFS=$'\t' read -r file kind ref size alt; do
		case $kind in
		image)
			echo "image $file $ref $size"
			[[ $size != 0x* ]] || {
				echo "wrong: $file: $ref is broken"
				failed=1
			}
			[[ $alt == alt ]] || {
				echo "wrong: $file: $ref has no alt text"
				failed=1
			}
			# the caption names the command that drew it
			cmd=
			[[ $ref =~ timeline/step([0-9])\.svg$ ]] && cmd="make timeline STEP=${BASH_REMATCH[1]}"
			[[ $ref =~ timeline/step([0-9])-([a-z]+)\.svg$ ]] &&
				cmd="make timeline STEP=${BASH_REMATCH[1]} SCENARIO=${BASH_REMATCH[2]}"
			[[ $ref =~ /bench\.svg$ ]] && cmd="make bench"
			codes=$(grep "^$file	codes	" "$OUT/readmes.result" | cut -f3)
			if [[ -n $cmd && "|$codes|" != *"|$cmd|"* ]]; then
				echo "wrong: $file: $ref is shown, and no \"$cmd\" names what drew it"
				failed=1
			fi
			;;
		error)
			echo "wrong: $file: $ref failed to load"
			failed=1
			;;
		none)
			echo "wrong: $file: no document"
			failed=1
			;;
		esac
	done <"$OUT/readmes.result"
	if grep -q 'CONSOLE' "$OUT/readmes.err"; then
		echo "wrong: a console message: $(grep -m 3 CONSOLE "$OUT/readmes.err")"
		failed=1
	fi
	return "$failed"
}

@test "every README renders (cmark-gfm) and loads in headless Chromium: its pictures load, none broken, each captioned with its command, no console message" {
	need chromium chromium
	need cmark-gfm cmark-gfm
	local readmes=("$ROOT"/README.md "$ROOT"/step*/README.md) readme n
	((${#readmes[@]} >= 6))
	run render_readmes "${readmes[@]}"
	assert_success
	refute_output --partial "wrong:"
	# each chapter README shows its own timelines, loaded
	for readme in "${readmes[@]}"; do
		[[ $readme =~ /step([0-9])-[^/]*/README.md$ ]] || continue
		n=${BASH_REMATCH[1]}
		assert_output --regexp "image $readme \\.\\./test/results/timeline/step$n\\.svg 960x[1-9][0-9]*"
		[[ $n != 5 ]] ||
			assert_output --regexp "image $readme \\.\\./test/results/timeline/step5-emfile\\.svg 960x[1-9][0-9]*"
	done
	assert_output --regexp "image $ROOT/README.md test/results/bench\\.svg [1-9][0-9]*x[1-9]"
}

@test "the README check rejects a broken picture, a missing caption and a console error" {
	need chromium chromium
	need cmark-gfm cmark-gfm
	mkdir -p "$OUT/book/chapter" "$OUT/book/timeline"
	cat >"$OUT/book/chapter/README.md" <<-'EOF'
		# A chapter

		![A picture that is not there](../missing.svg)

		![A timeline with no caption](../timeline/step3.svg)

		<img src="x" onerror="console.error('boom')" alt="logs">
	EOF
	cp "$PICS/step3.svg" "$OUT/book/timeline/step3.svg"
	run render_readmes "$OUT/book/chapter/README.md"
	assert_failure
	assert_output --partial "../missing.svg is broken"
	assert_output --partial 'no "make timeline STEP=3" names what drew it'
	assert_output --partial "a console message"
	assert_output --regexp 'image [^ ]*/README.md \.\./timeline/step3\.svg 960x362'
}

@test "every committed timeline renders in headless Chromium: labels present, not blank, no console error" {
	need chromium chromium
	local svg name n i=0 label labels names=()
	# the screenshots, as make timeline-png takes them
	run bash "$ROOT/test/proofs/timeline-png.sh" "$OUT/png"
	assert_success
	# One page: each SVG in an <object>, the text of the document
	# Chromium built from it copied out (a broken SVG is a parser error
	# instead); and each screenshot drawn on a canvas, its colours and
	# its share of pixels that are not white counted.
	{
		echo '<html><body>'
		for svg in "$PICS"/*.svg; do
			name=$(basename "$svg" .svg)
			names+=("$name")
			printf '<object data-name="%s" type="image/svg+xml" data="file://%s"></object>\n' "$name" "$svg"
			printf '<img data-name="%s" src="%s.png">\n' "$name" "$name"
		done
		cat <<-'EOF'
			<canvas id="c"></canvas><script>
			window.addEventListener("load", function () {
				document.querySelectorAll("object").forEach(function (o) {
					var d = o.contentDocument, pre = document.createElement("pre");
					pre.id = "text-" + o.getAttribute("data-name");
					pre.textContent = d == null ? "no document" :
						d.querySelector("parsererror") ? "parser error" : d.documentElement.textContent;
					document.body.appendChild(pre);
				});
				var out = [];
				document.querySelectorAll("img").forEach(function (img) {
					var c = document.getElementById("c");
					c.width = img.naturalWidth; c.height = img.naturalHeight;
					var g = c.getContext("2d", {willReadFrequently: true});
					g.drawImage(img, 0, 0);
					var d = g.getImageData(0, 0, c.width, c.height).data, seen = {}, n = 0, ink = 0;
					for (var i = 0; i < d.length; i += 4) {
						var k = d[i] + "," + d[i + 1] + "," + d[i + 2];
						if (!(k in seen)) { seen[k] = 1; n++; }
						if (d[i] + d[i + 1] + d[i + 2] < 600) ink++;
					}
					out.push(img.getAttribute("data-name") + " colours=" + n + " ink=" + (ink / Math.max(1, d.length / 4)).toFixed(3));
				});
				document.body.setAttribute("data-px", out.join("|"));
			});
			</script></body></html>
		EOF
	} >"$OUT/png/check.html"
	# shellcheck disable=SC2046
	timeout 60 chromium $(chromium_flags check) --dump-dom "file://$OUT/png/check.html" \
		>"$OUT/check.dom" 2>"$OUT/check.err" || fail "chromium failed on the pictures: $(tail -3 "$OUT/check.err")"
	grep -q 'CONSOLE' "$OUT/check.err" && fail "a console message: $(grep -m 3 CONSOLE "$OUT/check.err")"
	for name in "${names[@]}"; do
		n=${name#step} && n=${n%%-*}
		# the text of the SVG as Chromium rendered it
		awk -v RS='<pre id="text-' -v n="$name" 'index($0, n "\">") == 1 { sub(/<\/pre>.*/, ""); print }' \
			"$OUT/check.dom" >"$OUT/text-$name"
		[[ -s $OUT/text-$name ]] || fail "$name.svg: not rendered: $(head -c 300 "$OUT/check.dom")"
		case $name in
		step2) labels=("Chapter 2" "recorded by make timeline STEP=2" "worker 4" "asleep in pthread_cond_wait" "workqueue_shutdown()") ;;
		step5-emfile) labels=("Chapter 5" "recorded by make timeline STEP=5 SCENARIO=emfile" " held clients" "accept(): EMFILE, accepting pauses" "descriptors back" "waiting for the first echo") ;;
		*) labels=("Chapter $n" "recorded by make timeline STEP=$n on" "client" "waiting for the first echo") ;;
		esac
		for label in "${labels[@]}"; do
			grep -qF "$label" "$OUT/text-$name" || fail "$name.svg: no \"$label\" in what Chromium rendered: $(head -c 200 "$OUT/text-$name")"
		done
		[[ $(png_size "$OUT/png/$name.png") == "$(svg_size "$PICS/$name.svg")" ]] ||
			fail "$name.png is $(png_size "$OUT/png/$name.png"), not $(svg_size "$PICS/$name.svg")"
		i=$((i + 1))
	done
	((i >= 6))
	# Not blank: each screenshot has many colours and enough ink.
	local px line colours ink checked=0
	px=$(sed -n 's/.*data-px="\([^"]*\)".*/\1/p' "$OUT/check.dom")
	[[ -n $px ]] || fail "the pixel check did not run: $(head -c 300 "$OUT/check.dom")"
	while IFS= read -r line; do
		[[ $line =~ ^([^ ]+)\ colours=([0-9]+)\ ink=0\.([0-9]+)$ ]] || fail "pixel check: $line"
		name=${BASH_REMATCH[1]} colours=${BASH_REMATCH[2]} ink=${BASH_REMATCH[3]}
		# A blank page has 1 colour and no ink; bars, text and
		# anti-aliasing give hundreds of colours and several % ink.
		((colours >= 50)) || fail "$name.png: only $colours colours ($line)"
		((10#$ink >= 20)) || fail "$name.png: almost blank ($line)"
		checked=$((checked + 1))
	done < <(tr '|' '\n' <<<"$px")
	((checked == i)) || fail "the pixel check saw $checked screenshots of $i: $px"
}
