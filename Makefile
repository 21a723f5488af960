# The tutorial's top-level Makefile.  `make help` lists the targets.

STEPS := $(patsubst %/,%,$(sort $(wildcard step*/)))
LAST := $(lastword $(STEPS))
ECHO_PORT ?= 5555
TOOLS := test/tools/echoclient test/tools/loadgen test/tools/epoll_echo test/tools/attack
# The exercise checks load it into a program to make a race happen every time.
TOOLS += test/tools/racehook.so
BATS_FLAGS ?=
# make test: every chapter's behaviour, the tools and the docs' quick
# checks, what a learner runs after a change.  make test-all adds the
# proofs of the tutorial itself and of its grading kit, which take longer:
# each patch flips its claim, each worked solution flips its check and each
# wrong answer fails it (the attack lab's exercises too), the grader grades
# right and cannot be fooled, a handout works on its own, every README
# command runs, and a short stress run of the threaded chapters.
TEST_FILES := $(if $(STEP),test/step$(STEP).bats,$(sort $(wildcard test/step*.bats)) $(wildcard test/tools/tools.bats test/proofs/docs.bats))
PROOF_FILES := test/grade/grade.bats test/proofs/patches.bats test/proofs/solutions.bats test/proofs/wrong-answers.bats test/proofs/lab.bats test/grade/handout.bats test/proofs/readme.bats test/proofs/timeline.bats test/grade/grade-class.bats

# The test tools are plain C with no library; they use the chapters' flags.
TOOL_CFLAGS = -std=c11 -Wall -Wextra -Wpedantic -O2 -g \
	-D_POSIX_C_SOURCE=200809L $(if $(filter 1,$(WERROR)),-Werror)

# A plain make only builds: when something is missing it says what, and
# `make deps` (or make run, test, check) installs it.
all: have-build-deps
	@for s in $(STEPS); do $(MAKE) -C $$s || exit 1; done

help:
	@echo "make              build every chapter ($(STEPS))"
	@echo "make run          build and run the final server ($(LAST)) on port $(ECHO_PORT)"
	@echo "make test         run every chapter's tests; STEP=N for one chapter"
	@echo "make test-all     make test, then make proofs"
	@echo "make proofs       the proofs of the tutorial itself: every patch, solution,"
	@echo "                  wrong answer and README command, and a short stress run"
	@echo "make lint         in seconds: shellcheck on every shell file, clang-format"
	@echo "                  on every C file, the Makefile's own checks (CI runs it first)"
	@echo "make grade STEP=N DIR=path   grade a student's chapter N in path:"
	@echo "                  a table and a score; EXERCISES=1 grades the"
	@echo "                  exercises too, FORMAT=junit|tap|gradescope OUT=dir"
	@echo "                  writes a report (batch scripts: bash test/grade/grade.sh);"
	@echo "                  STEP=5 LAB=K grades the attack lab's exercise K"
	@echo "make grade-class STEP=N SUBMISSIONS=dir   grade every student's"
	@echo "                  directory in dir in parallel: OUT/grades.csv"
	@echo "make handout STEP=N   the lab archive for chapter N, tested"
	@echo "make diff FROM=N TO=M   show what chapter M changes from chapter N"
	@echo "make diff STEP=N PATCH=K   show patch K of chapter N's series"
	@echo "make stage STEP=N PATCH=K  build chapter N as it is after its patch K"
	@echo "                  (N=K, the old spelling, still works)"
	@echo "make readme-diffs write each chapter's diff into its README"
	@echo "make bench        measure every chapter against a bare epoll loop and"
	@echo "                  Node.js; BENCH_QUICK=1 for a one-minute subset;"
	@echo "                  BENCH_CASES=, BENCH_SERVERS=: see test/bench/bench.sh"
	@echo "make timeline STEP=N   draw chapter N's lesson from a real run:"
	@echo "                  test/results/timeline/stepN.svg (ECHOSERVER=path);"
	@echo "                  STEP=5 SCENARIO=emfile: the accept pause out of"
	@echo "                  descriptors, to step5-emfile.svg"
	@echo "make timeline-png   screenshot every committed timeline in headless"
	@echo "                  Chromium: test/results/timeline/*.png"
	@echo "make attack STEP=N   the attack lab: hostile clients against chapter N's"
	@echo "                  server (or ECHOSERVER=path), held or broken per attack;"
	@echo "                  ATTACK=\"name ...\" runs only those"
	@echo "make check        the strict gates: -Werror with gcc and clang, format,"
	@echo "                  cppcheck, sanitizers, valgrind"
	@echo "make stress STEP=N RUNS=50   repeat a chapter's concurrency and shutdown"
	@echo "                  tests RUNS times; report each failure and how often"
	@echo "                  (N=50, the old spelling, still works)"
	@echo "make deps         install what make run, test and check need"
	@echo "                  (Debian or Ubuntu; as root or with sudo)"
	@echo "make clean        remove what the build made"
	@echo "make help         this list"

run: deps-run all
	./$(LAST)/echoserver -p $(ECHO_PORT)

test: deps-test all $(TOOLS)
	@bash test/run-bats.sh $(BATS_FLAGS) $(TEST_FILES)

test-all: test proofs

# The proofs alone, for CI after make test; stress as in `make stress`,
# chapters 4 and 5 side by side (their tests mostly wait), each reported
# whole once both are done.
proofs: deps-test all $(TOOLS)
	@bash test/run-bats.sh $(BATS_FLAGS) $(PROOF_FILES)
	@d=$$(mktemp -d); \
	bash test/stress.sh 4 2 >$$d/4 2>&1 & p4=$$!; \
	bash test/stress.sh 5 2 >$$d/5 2>&1 & p5=$$!; \
	wait $$p4; r4=$$?; wait $$p5; r5=$$?; \
	cat $$d/4 $$d/5; rm -rf $$d; test $$r4 = 0 -a $$r5 = 0

# A make variable as one shell word, whatever it holds (Jane Doe's lab).
shell_word = '$(subst ','\'',$(1))'

# Grade a student's chapter: test/grade/grade.sh says what it runs and leaves out.
# Its exit status says what happened (0 passed, 1 a test failed, 2 a broken
# submission, 3 misuse, 4 a grading error), but make exits 2 whenever a
# recipe fails, whatever its status: the recipe prints it, and a batch script
# runs test/grade/grade.sh.
grade: deps-test test/tools/echoclient test/tools/racehook.so
	@test -n "$(STEP)" -a -n "$(DIR)" || { echo "make grade: STEP and DIR are both needed; usage: make grade STEP=N DIR=path/to/student/stepN [EXERCISES=1] [FORMAT=junit|tap|gradescope OUT=dir]" >&2; exit 2; }
	@bash test/grade/grade.sh $(call shell_word,$(STEP)) $(call shell_word,$(DIR)); rc=$$?; \
	case $$rc in 0) ;; 1) what="a test failed" ;; 2) what="the submission is broken" ;; \
	3) what="the grader was misused" ;; 4) what="a grading error: results the grader did not plan" ;; \
	*) what="unexpected" ;; esac; \
	test $$rc = 0 || echo "grade: exit status $$rc ($$what); make reports any failure as 2: run bash test/grade/grade.sh to get the status itself" >&2; \
	exit $$rc

# Grade every student's directory under SUBMISSIONS, in parallel: a CSV and
# each student's report in OUT (test/grade/grade-class.sh).
grade-class: deps-test test/tools/echoclient test/tools/racehook.so
	@test -n "$(STEP)" -a -n "$(SUBMISSIONS)" || { echo "make grade-class: STEP and SUBMISSIONS are both needed; usage: make grade-class STEP=N SUBMISSIONS=dir [OUT=dir] [JOBS=n]" >&2; exit 2; }
	@bash test/grade/grade-class.sh $(call shell_word,$(STEP)) $(call shell_word,$(SUBMISSIONS)) $(call shell_word,$(or $(OUT),grades-step$(STEP)))

# The lab for chapter STEP: chapters 1 to STEP and test/ without the worked
# solutions and wrong answers, proven to test and grade on their own.
handout:
	@test -n "$(STEP)" || { echo "usage: make handout STEP=N [OUT=labN.tar.gz]"; exit 2; }
	@bash test/grade/handout.sh $(call shell_word,$(STEP)) $(call shell_word,$(or $(OUT),lab$(STEP).tar.gz))

test/tools/%: test/tools/%.c
	$(CC) $(TOOL_CFLAGS) -o $@ $<

# The client, the load generator and the attack lab's client share their
# payload, size parser, clock and connect (test/tools/tools.h).
test/tools/echoclient test/tools/loadgen test/tools/attack: test/tools/tools.h

readme-diffs:
	bash test/proofs/readme-diffs.sh

test/tools/racehook.so: test/tools/racehook.c
	$(CC) $(TOOL_CFLAGS) -U_POSIX_C_SOURCE -fPIC -shared -o $@ $< -ldl

# Chapter 2's timeline loads it into the work-queue demo to see its threads.
test/tools/jobtrace.so: test/tools/jobtrace.c
	$(CC) $(TOOL_CFLAGS) -U_POSIX_C_SOURCE -fPIC -shared -o $@ $< -ldl

# The reference server runs one epoll loop per thread.
test/tools/epoll_echo: TOOL_CFLAGS += -pthread

bench: all $(TOOLS)
	bash test/bench/bench.sh

# make diff FROM=N TO=M: each file of chapter M against the last chapter up
# to N that has it; make diff STEP=N PATCH=K: patch K of chapter N's series.
diff:
ifneq ($(PATCH),)
	@bash test/proofs/patches.sh show $(STEP) $(PATCH)
else
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make diff FROM=N TO=M, or make diff STEP=N PATCH=K"; exit 2; }
	@bash test/proofs/chapter-diff.sh $(FROM) $(TO)
endif

# make stage STEP=N PATCH=K: build the state after patch K of chapter N's
# series in test/stages/, to run it or point any chapter's tests at it.
# PATCH is the patch number's one name, as in make diff; N=K is its old
# spelling here, kept working.
STAGE_PATCH = $(or $(PATCH),$(N))
STAGE_DIR = test/stages/step$(STEP)-$(STAGE_PATCH)
stage:
	@test -n "$(STEP)" -a -n "$(STAGE_PATCH)" || { echo "usage: make stage STEP=N PATCH=K (K: 0 to the number of patches)"; exit 2; }
	@rm -rf $(STAGE_DIR)
	@bash test/proofs/patches.sh apply $(STEP) $(STAGE_PATCH) $(STAGE_DIR)
	@$(MAKE) -s -C $(STAGE_DIR)
	@echo "built $(STAGE_DIR): try ECHOSERVER=$$PWD/$(STAGE_DIR)/echoserver bats test/step$(STEP).bats"

# make attack STEP=N [ECHOSERVER=path] [ATTACK="name ..."]: hostile clients
# against a chapter's server, one line per attack (test/proofs/attack.sh); it
# fails (status 3 from attack.sh) when an attack broke the server.
attack: all test/tools/attack test/tools/echoclient
	@test -n "$(STEP)" || { echo "usage: make attack STEP=N [ECHOSERVER=path] [ATTACK=\"name ...\"]"; exit 2; }
	@ATTACK=$(call shell_word,$(ATTACK)) bash test/proofs/attack.sh $(call shell_word,$(STEP)) $(if $(ECHOSERVER),$(call shell_word,$(ECHOSERVER)))

# make timeline STEP=N [SCENARIO=name] [ECHOSERVER=path]: run chapter N's
# short scenario (or its SCENARIO: 5 has emfile) against its server and
# draw what happened (test/proofs/timeline.sh).
timeline: all test/tools/timeline test/tools/jobtrace.so
	@test -n "$(STEP)" || { echo "usage: make timeline STEP=N [SCENARIO=emfile] [ECHOSERVER=path] (N: 1 to 5)"; exit 2; }
	@SCENARIO=$(call shell_word,$(SCENARIO)) bash test/proofs/timeline.sh $(call shell_word,$(STEP)) $(if $(ECHOSERVER),$(call shell_word,$(ECHOSERVER)))

# make timeline-png: each committed timeline as a PNG beside its SVG, as
# headless Chromium draws it (test/proofs/timeline-png.sh).
timeline-png:
	@bash test/proofs/timeline-png.sh

check: deps-check all $(TOOLS)
	bash test/check.sh $(STEPS)

# make lint: the gates of test/check.sh that take seconds and need no build
# (format, shellcheck, makefile); .ci/run runs it before anything else.
LINT_TOOLS := shellcheck clang-format
lint:
	@for t in $(LINT_TOOLS); do command -v $$t >/dev/null || \
		{ echo "make lint needs $$t: make deps installs it"; exit 2; }; done
	@GATES="format shellcheck makefile" bash test/check.sh

# Races that show up once in a hundred runs: JOBS=2 runs two loops at once.
# RUNS is the run count (N=RUNS, its old spelling, still works).
STRESS_RUNS = $(or $(RUNS),$(N))
stress: deps-test all $(TOOLS)
	@test -n "$(STEP)" -a -n "$(STRESS_RUNS)" || { echo "usage: make stress STEP=N RUNS=count [TESTS=regex]"; exit 2; }
	bash test/stress.sh $(STEP) $(STRESS_RUNS) $(if $(TESTS),'$(TESTS)')

clean:
	@for s in $(STEPS); do $(MAKE) -C $$s clean; done
	rm -f $(TOOLS)

have-build-deps:
	@bash test/deps.sh --check build

deps: deps-check

deps-run deps-test deps-check:
	@bash test/deps.sh $(@:deps-%=%)

.PHONY: all help run test test-all proofs lint diff stage readme-diffs check bench clean deps stress grade \
	grade-class handout attack timeline timeline-png \
	have-build-deps deps-run deps-test deps-check
