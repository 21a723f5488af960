#!/usr/bin/env bash
# check.sh STEP...: the strict gates `make check` runs on every chapter.
#
#   warnings   gcc and clang, -std=c11 -Wall -Wextra -Wpedantic -Werror
#   stages     so does every state of a chapter told as patches, and its
#              files are clang-formatted
#   posix      the chapter compiles with only POSIX's feature macro and
#              calls nothing Linux-only (epoll, accept4, MSG_NOSIGNAL, ...)
#              outside an #ifdef __linux__ block with a portable #else
#   format     every C file matches the root .clang-format
#   (the gate named shellcheck) ShellCheck finds no warning in any shell
#              file, each read as its shell: scripts by their #! line,
#              .bash files as bash, .bats files as Bats (ShellCheck 0.9 on)
#   makefile   the Makefile: every target is .PHONY or a file, every .PHONY
#              target has a rule and a dry run (make -n), and make help
#              names every target a reader types
#   cppcheck   finds nothing
#   asan       the chapter's tests pass against an ASan+UBSan build
#   valgrind   an echo-and-SIGINT run: no errors, all heap blocks freed
#   tsan       an echo-and-SIGINT run with concurrent clients reports nothing
#
# Each build happens in a copy of the chapter under a temporary directory, so
# the binaries `make` built are left alone.  GATES="format asan" runs only
# those gates; `make lint` runs format, shellcheck and makefile, which take
# seconds, and needs no chapter named.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
GATES=${GATES:-format shellcheck makefile warnings stages posix cppcheck asan valgrind tsan}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
failed=()

# Which gates apply to which chapter: valgrind and tsan need a clean shutdown,
# which only chapters 1, 4 and 5 have (chapters 2 and 3 keep the original's
# flaws on purpose).
valgrind_steps="step1 step4 step5"
tsan_steps="step4 step5"
# LeakSanitizer likewise: chapter 3's connections are still running when
# main() returns (its flaw (c)), so what they hold is lost by design; and
# chapter 2's workers outlive main() holding the only pointer to their own
# worker_t, which workqueue_shutdown() forgot (F4), so clang 14's LeakSanitizer
# now and then finds them lost, and crashes reporting them.
leak_steps="step1 step4 step5"

say() { printf '== %s\n' "$*"; }
fail() {
	printf 'FAILED: %s\n' "$*"
	failed+=("$*")
}
applies() { [[ " $1 " == *" ${2%%-*} "* ]]; }

# build STEP NAME MAKEARGS...: copy STEP to $WORK/NAME/STEP and build it there.
build() {
	local step=$1 name=$2
	shift 2
	mkdir -p "$WORK/$name"
	rm -rf "${WORK:?}/$name/$step"
	cp -r "$step" "$WORK/$name/"
	make -s -C "$WORK/$name/$step" clean >/dev/null
	make -s -C "$WORK/$name/$step" "$@"
}

# How many times slower than a plain build each instrumented build runs: the
# tests and echo_and_sigint below write every time bound for a plain build,
# and TIME_SCALE (server.bash) multiplies each by the value for the build
# under test.  Measured on this project's 2-core machine with other test
# runs beside it (load 3-4), 2026-12-06, chapter 5, three runs each, plain /
# ASan+UBSan / TSan / valgrind:
#   start to "listening on"          8-35 / 28-31 / 27-28 / 416-443 ms
#   SIGINT to exit, no client        2-5 / 23-27 / 4-5 / 45-52 ms
#   200 clients x 64 KiB             40-49 / 37-47 / 30-48 / 127-137 ms
#   "20 runs of start-then-SIGINT"   1.7-2.1 / 2.4-2.7 / 2.0-2.5 / 14-18 s
#   drain with 200 clients, exit     1.03-1.15 / 1.04-1.06 / 1.02-1.04 /
#                                    0.78-0.95 s (the 1 s drain deadline)
# A sanitizer build starts about 3 times slower and is otherwise within 2
# times of plain, but the ASan run of the drain test still overran its
# plain 2 s bound once on a busy machine (2.3 s): 3.  Valgrind starts 40
# times slower and runs 3 to 10 times slower: 10.
declare -A TIME_SCALE_OF=([asan]=3 [tsan]=3 [valgrind]=10)

# shellcheck source=test/server.bash
source "$ROOT/test/server.bash"

# echo_and_sigint LOG CMD...: start the server CMD, run clients against it,
# send SIGINT, and wait for it to exit.  Fails unless it exits 0.  Its
# bounds are a plain build's, scaled by TIME_SCALE: a plain server starts in
# 10-35 ms, has its held client's bytes in well under 0.1 s, and exits in
# 2-5 ms; 6, 3 and 6 s leave room for a busy machine.
echo_and_sigint() {
	local log=$1 out=$WORK/server.out pid port
	shift
	if ! server_start 6 "$out" "$log" "$@" -p 0; then
		server_stop "$SERVER_PID" 0
		echo "server did not start" >>"$log"
		return 1
	fi
	pid=$SERVER_PID port=$PORT
	test/tools/echoclient -p "$port" clients 8 1M >/dev/null &&
		test/tools/echoclient -p "$port" halfclose 4M >/dev/null &&
		test/tools/echoclient -p "$port" rst 1M >/dev/null
	local rc=$?
	# leave clients connected through the shutdown
	test/tools/echoclient -p "$port" -T "$(scaled 6000)" -d 1000 lateread 64K \
		>"$WORK/held.out" 2>&1 3>&- &
	local held=$!
	wait_until 3 grep -q '^sent unread' "$WORK/held.out"
	kill -INT "$pid"
	server_wait "$pid" 6 || server_stop "$pid" 0
	kill "$held" 2>/dev/null
	wait "$held" 2>/dev/null
	[[ $rc == 0 && $STATUS == 0 ]] || {
		echo "clients: $rc, server exit status: $STATUS" >>"$log"
		return 1
	}
}

has_gate() { [[ " $GATES " == *" $1 "* ]]; }

# stages N: every state of chapter N's series builds with -Werror under gcc
# and clang and is clang-formatted, as a learner's `make stage` gets it.
stages() {
	local k total rc=0 dir cc
	total=$(bash test/proofs/patches.sh list "$1" | wc -l)
	for ((k = 1; k < total; k++)); do
		dir=$WORK/stage$1-$k
		say "stages: chapter $1 after patch $k, gcc and clang -Werror"
		bash test/proofs/patches.sh apply "$1" "$k" "$dir" || {
			rc=1
			continue
		}
		for cc in gcc clang; do
			make -s -C "$dir" clean >/dev/null
			make -s -C "$dir" CC="$cc" WERROR=1 >/dev/null || rc=1
		done
		# outside the tree, the style file must be named
		clang-format --style="file:$ROOT/.clang-format" --dry-run --Werror \
			"$dir"/*.[ch] || rc=1
	done
	return $rc
}

# Every C file, from the tree itself so that a copy outside git is checked
# too; strict-include/ holds headers a chapter's build generates.
CFILES=$(find step* test -name '*.[ch]' -not -path '*/strict-include/*' | sort)

# Names that exist only on Linux (or only with _GNU_SOURCE): the chapters
# must build on macOS and the BSDs with libevent.  test/ may use them.
LINUX_ONLY='epoll_|accept4|SOCK_NONBLOCK|SOCK_CLOEXEC|pipe2|eventfd|signalfd|MSG_NOSIGNAL|TCP_(CORK|QUICKACK|DEFER_ACCEPT|USER_TIMEOUT|INFO|KEEPIDLE)|SIOCOUTQ|/proc/|sendfile|splice|prctl|sched_setaffinity|gettid|SO_PEERCRED'

# unguarded FILE: FILE's code, comments left out, without what only Linux
# compiles: a block under "#ifdef __linux__" (or "#if defined(__linux__)")
# up to its #else or #endif, or under "#ifdef NAME" of a Linux-only NAME.
unguarded() {
	cc -fpreprocessed -dD -E -P "$1" 2>/dev/null | awk -v names="$LINUX_ONLY" '
		function guard(line) {
			return line ~ /^[ \t]*#[ \t]*if(def[ \t]+|[ \t]+defined[ \t]*\(?[ \t]*)/ &&
			    (line ~ /__linux__/ || line ~ names)
		}
		skip && /^[ \t]*#[ \t]*if/ { depth++; next }
		skip && /^[ \t]*#[ \t]*endif/ { if (depth-- == 0) skip = 0; next }
		skip && depth == 0 && /^[ \t]*#[ \t]*else/ { skip = 0; next }
		skip { next }
		guard($0) { skip = 1; depth = 0; next }
		{ print }'
}

# posix STEP: compile STEP's files with only -D_POSIX_C_SOURCE=200809L (an
# undeclared call is an error), and look for Linux-only names in its code,
# comments left out.  Only the server must be portable: a demo's findings
# (the work-queue demo counts threads in /proc) are shown, not failed.
posix() {
	local f found rc=0
	for f in "$1"/*.c; do
		if [[ $f == *_demo.c ]]; then
			found=$(cc -fpreprocessed -dD -E -P "$f" 2>/dev/null |
				grep -nE "$LINUX_ONLY") &&
				printf '  note, %s (a demo, not the server): %s\n' "$f" "$found"
			continue
		fi
		# shellcheck disable=SC2046 # pkg-config's flags are words
		cc -std=c11 -fsyntax-only -Werror=implicit-function-declaration \
			-U_GNU_SOURCE -U_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L \
			$(pkg-config --cflags libevent) "$f" || rc=1
		found=$(unguarded "$f" | grep -nE "$LINUX_ONLY") && {
			printf '%s: Linux-only: %s\n' "$f" "$found"
			rc=1
		}
	done
	return $rc
}

if has_gate format; then
	say "format: clang-format --dry-run --Werror"
	# shellcheck disable=SC2086
	clang-format --dry-run --Werror $CFILES || fail "format"
fi

# Every shell file of the project: by name, or a script by its #! line.
shell_files() {
	local dirs=(test)
	[[ -d .ci ]] && dirs+=(.ci) # a handout has none
	find "${dirs[@]}" -path test/stages -prune -o -type f \( -name '*.sh' -o \
		-name '*.bash' -o -name '*.bats' -o -perm -u+x \) -print |
		while read -r f; do
			case $f in
			*.sh | *.bash | *.bats) echo "$f" ;;
			*) head -c 64 "$f" | grep -qE '^#!.*(bash|/sh)' && echo "$f" ;;
			esac
		done | sort
}

if has_gate shellcheck; then
	say "shellcheck: every shell file, each as its shell"
	mapfile -t files < <(shell_files)
	bats=() bash=() scripts=()
	for f in "${files[@]}"; do
		case $f in
		*.bats) bats+=("$f") ;;
		*.bash) bash+=("$f") ;;
		*) scripts+=("$f") ;;
		esac
	done
	# Bats syntax (@test) is known to shellcheck from 0.9 on; before, a .bats
	# file does not even parse as bash.
	version=$(shellcheck --version | sed -n 's/^version: //p')
	if [[ $(printf '%s\n' 0.9 "$version" | sort -V | head -1) != 0.9 ]]; then
		fail "shellcheck $version cannot read .bats files: 0.9 or later needed"
	fi
	echo "  ${#scripts[@]} scripts, ${#bash[@]} .bash files, ${#bats[@]} .bats files"
	shellcheck -S warning "${scripts[@]}" || fail "shellcheck: scripts"
	shellcheck -S warning -s bash "${bash[@]}" || fail "shellcheck: .bash files"
	shellcheck -S warning -s bats "${bats[@]}" || fail "shellcheck: .bats files"
fi

# The targets of the Makefile's rules, one a line: not files (no / or %),
# not variables.
make_targets() {
	sed -nE 's/^([A-Za-z][A-Za-z0-9_ -]*):([^=]|$).*/\1/p' Makefile |
		tr ' ' '\n' | grep -v '^$' | sort -u
}

# make help must name each target a reader types: all but the ones other
# targets use (deps-*, have-build-deps) and all (plain `make`).
makefile_checks() {
	local phony targets t rc=0 help
	phony=$(sed -n '/^\.PHONY:/,/[^\\]$/p' Makefile | sed 's/^\.PHONY://; s/\\$//' |
		tr ' \t' '\n\n' | grep -v '^$' | sort -u)
	targets=$(make_targets)
	for t in $(comm -13 <(echo "$phony") <(echo "$targets")); do
		echo "  $t: a rule that is not .PHONY"
		rc=1
	done
	for t in $(comm -23 <(echo "$phony") <(echo "$targets")); do
		echo "  $t: .PHONY, but no rule makes it"
		rc=1
	done
	help=$(make -s help)
	for t in $phony; do
		case $t in
		all | have-build-deps | deps-*) ;;
		*) grep -qE "^make $t( |$)" <<<"$help" || {
			echo "  $t: make help does not name it"
			rc=1
		} ;;
		esac
		# a dry run expands every recipe; stage's recurses into the stage
		# directory it makes, which a dry run does not make
		[[ $t == stage ]] && continue
		make -n "$t" STEP=5 PATCH=1 RUNS=1 FROM=4 TO=5 DIR=/nonexistent \
			SUBMISSIONS=/nonexistent >/dev/null 2>"$WORK/make-n" || {
			echo "  $t: make -n fails: $(head -3 "$WORK/make-n")"
			rc=1
		}
	done
	return $rc
}

if has_gate makefile; then
	say "makefile: .PHONY, make -n and make help agree with the rules"
	makefile_checks || fail "makefile"
fi

if has_gate cppcheck; then
	say "cppcheck"
	# cppcheck reads no system header, so show it the queue macros.
	queue_h=$(printf '#include <sys/queue.h>\n' | cc -M -x c - |
		grep -o '/[^ ]*sys/queue\.h')
	for step in "$@"; do
		cppcheck -q --error-exitcode=1 --std=c11 --inline-suppr \
			--enable=warning,performance,portability \
			--include="$queue_h" \
			-D_POSIX_C_SOURCE=200809L "$step"/*.c ||
			fail "cppcheck $step"
	done
	cppcheck -q --error-exitcode=1 --std=c11 \
		--enable=warning,performance,portability test/tools/*.c ||
		fail "cppcheck test"
fi

for step in "$@"; do
	n=${step#step}
	n=${n%%-*}
	if has_gate warnings; then
		for cc in gcc clang; do
			say "warnings: $step with $cc"
			build "$step" "$cc" CC="$cc" WERROR=1 ||
				fail "$step: $cc -Werror"
		done
	fi
	if has_gate stages && [[ -d $step/patches ]]; then
		stages "$n" || fail "$step: a state of its series"
	fi
	if has_gate posix; then
		say "posix: $step with only _POSIX_C_SOURCE, nothing Linux-only"
		posix "$step" || fail "$step: not portable POSIX"
	fi
	if has_gate asan; then
		say "asan+ubsan: $step's tests"
		printf 'int main(void) { return 0; }\n' |
			clang -fsanitize=address,undefined -x c - -o "$WORK/asan-probe" ||
			echo "clang $(clang -dumpversion) cannot link a sanitized program:" \
				"install its runtime (make deps)"
		if build "$step" asan CC=clang \
			CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"; then
			progs=()
			for p in echoserver:ECHOSERVER workqueue_demo:WORKQUEUE_DEMO; do
				[[ -x $WORK/asan/$step/${p%:*} ]] &&
					progs+=("${p#*:}=$WORK/asan/$step/${p%:*}")
			done
			env "${progs[@]}" SANITIZER=asan TIME_SCALE="${TIME_SCALE_OF[asan]}" \
				ASAN_OPTIONS="detect_leaks=$(applies "$leak_steps" "$step" && echo 1 || echo 0)" \
				UBSAN_OPTIONS=print_stacktrace=1 \
				bash test/run-bats.sh "test/step$n.bats" || fail "$step: tests under ASan+UBSan"
		else
			fail "$step: ASan build"
		fi
	fi
	if has_gate valgrind && applies "$valgrind_steps" "$step"; then
		say "valgrind: $step, echo and SIGINT"
		build "$step" plain || fail "$step: build"
		log=$WORK/valgrind-$n.log
		if TIME_SCALE=${TIME_SCALE_OF[valgrind]} echo_and_sigint "$log" valgrind --leak-check=full \
			--show-leak-kinds=all --errors-for-leak-kinds=all \
			--error-exitcode=99 "$WORK/plain/$step/echoserver" &&
			grep -q 'All heap blocks were freed' "$log" &&
			grep -q 'ERROR SUMMARY: 0 errors' "$log"; then
			grep -E 'total heap usage|All heap blocks|ERROR SUMMARY' "$log" |
				sed 's/^==[0-9]*== /  /'
		else
			tail -40 "$log"
			fail "$step: valgrind"
		fi
	fi
	if has_gate tsan && applies "$tsan_steps" "$step"; then
		say "tsan: $step, concurrent clients and SIGINT"
		log=$WORK/tsan-$n.log
		if build "$step" tsan CC=clang CFLAGS="-O1 -g -fsanitize=thread" &&
			TIME_SCALE=${TIME_SCALE_OF[tsan]} \
				TSAN_OPTIONS="exitcode=66 suppressions=$ROOT/test/tsan.supp" \
				echo_and_sigint "$log" "$WORK/tsan/$step/echoserver" \
				-t 4 && ! grep -q 'WARNING: ThreadSanitizer' "$log"; then
			echo "  ThreadSanitizer: no reports"
		else
			tail -60 "$log"
			fail "$step: ThreadSanitizer"
		fi
	fi
done

if ((${#failed[@]})); then
	printf '\ncheck.sh failed:\n'
	printf '  %s\n' "${failed[@]}"
	exit 1
fi
printf '\ncheck.sh: every gate passed (%s)\n' "$GATES"
