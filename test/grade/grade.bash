# grade.bash: what the grader's tests share (test/grade/grade.bats, the grader
# one student at a time, and test/grade/grade-class.bats, a hostile class): a
# student's copy of a chapter, and the mistakes and attacks made on it.
# ROOT is the tutorial's top directory; STUDENT, TRACE as each function says.

# student STEP [DIR]: a student's copy of chapter STEP's sources (what git
# tracks, nothing built) in $STUDENT: DIR, by default a directory named as
# the chapter's in the test's own.
student() {
	local ref
	ref=$(cd "$ROOT" && ls -d "step$1-"*)
	STUDENT=${2:-$BATS_TEST_TMPDIR/student/$ref}
	mkdir -p "$STUDENT"
	(cd "$ROOT/$ref" && cp Makefile ./*.[ch] "$STUDENT/")
}

# miscount DIR: make DIR's chapter 2 work queue run its first job twice (a
# failure the demo shows at once: "job N ran 2 times"; its count of jobs run
# is 1001 or, when the shutdown comes before the last job, 1000).
miscount() {
	sed -i 's/^\t\tjob->job_function(job);$/\t\t{\n\t\t\tstatic int twice;\n\t\t\tif (__sync_fetch_and_add(\&twice, 1) == 0)\n\t\t\t\tjob->job_function(job);\n\t\t}\n&/' "$1/workqueue.c"
	grep -q '__sync_fetch_and_add(&twice, 1)' "$1/workqueue.c"
}

# worker_short DIR: make DIR's chapter 2 workqueue_init() start one worker
# too few (4 jobs that wait for each other then never all finish).
worker_short() {
	sed -i 's/for (i = 0; i < numWorkers; i++)/for (i = 1; i < numWorkers; i++)/' "$1/workqueue.c"
	grep -q 'for (i = 1; i < numWorkers' "$1/workqueue.c"
}

# hang DIR: make DIR's chapter 2 workqueue_shutdown() join a worker without
# exercise 1's fix, so that the demo never returns (a plausible mistake).
hang() {
	sed -i 's/^\t\tworker->terminate = 1;$/&\n\tpthread_join(workqueue->workers->thread, NULL);/' "$1/workqueue.c"
	grep -q 'pthread_join' "$1/workqueue.c"
}

# liar DIR: make DIR's chapter 2 demo, the instrument, print the lines the
# checks look for and measure nothing.
liar() {
	cat >"$1/workqueue_demo.c" <<'C'
#include <stdio.h>
int main(void) { puts("jobs run: 1000\nworkers alive after shutdown: 0\ncpu while idle: 0 ms"); return 0; }
C
}

# hostile DIR CODE: make DIR's chapter 2 workqueue_init() run CODE first
# (the student's code, run by the demo in the box).
hostile() {
	local wq=$1/workqueue.c
	{
		printf '#include <sys/prctl.h>\n#include <sys/socket.h>\n#include <sys/un.h>\n#include <sys/wait.h>\n'
		printf '#include <dirent.h>\n#include <errno.h>\n#include <fcntl.h>\n#include <signal.h>\n#include <stddef.h>\n'
		printf '#include <stdio.h>\n#include <stdlib.h>\n#include <string.h>\n#include <unistd.h>\n'
		printf 'static void tell(const char *);\n'
		printf 'static void hostile(void);\n'
		cat "$wq"
		printf '/* The hostile part. */\nstatic void\nhostile(void)\n{\n%s\n}\n' "$2"
		# tell(TEXT): one datagram to the abstract socket $TRACE (no file:
		# the box may see none of the grader's)
		printf '/* Tell the test TEXT. */\nstatic void\ntell(const char *text)\n{\n'
		printf '\tstruct sockaddr_un a = {.sun_family = AF_UNIX};\n'
		printf '\tint s = socket(AF_UNIX, SOCK_DGRAM, 0);\n'
		printf '\tmemcpy(a.sun_path + 1, "%s", %d);\n' "$TRACE" "${#TRACE}"
		printf '\tsendto(s, text, strlen(text), 0, (struct sockaddr *)&a, offsetof(struct sockaddr_un, sun_path) + 1 + %d);\n' "${#TRACE}"
		printf '\tclose(s);\n}\n'
	} >"$wq.new"
	mv "$wq.new" "$wq"
	sed -i 's/^\tif (numWorkers < 1)$/\thostile();\n&/' "$wq"
	grep -q '^.hostile();' "$wq"
}

# traced LOG CMD...: run CMD; what the student's code tells the abstract
# socket $TRACE meanwhile (a datagram each, read when CMD is done) is in LOG.
traced() {
	local log=$1
	shift
	python3 - "$TRACE" "$log" "$@" <<'PY'
import socket, subprocess, sys
name, log, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + name)
rc = subprocess.call(cmd, stdin=subprocess.DEVNULL)
s.setblocking(False)
with open(log, "wb") as f:
    while True:
        try:
            f.write(s.recv(4096))
        except BlockingIOError:
            break
sys.exit(rc)
PY
}

# fake_bats SCRIPT: a bats in $FAKE_BIN (put it first in PATH) that counts
# tests as the real one does (grade.sh's plan) but runs SCRIPT, bash, for the
# tests; SCRIPT finds the real bats in $REAL_BATS.
fake_bats() {
	FAKE_BIN=$BATS_TEST_TMPDIR/fakebin
	mkdir -p "$FAKE_BIN"
	{
		printf '#!/usr/bin/env bash\nREAL_BATS=%q\n' "$(command -v bats)"
		printf '[[ " $* " == *" --count "* ]] && exec "$REAL_BATS" "$@"\n'
		printf '%s\n' "$1"
	} >"$FAKE_BIN/bats"
	chmod +x "$FAKE_BIN/bats"
}
