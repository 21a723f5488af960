# The tutorial's top-level Makefile.  `make help` lists the targets.

STEPS := $(patsubst %/,%,$(sort $(wildcard step*/)))
LAST := $(lastword $(STEPS))
ECHO_PORT ?= 5555
TOOLS := test/echoclient test/loadgen test/epoll_echo test/attack
BATS_FLAGS ?=
TEST_FILES := $(if $(STEP),test/step$(STEP).bats,$(sort $(wildcard test/step*.bats)) test/tools.bats test/docs.bats test/grade.bats test/patches.bats test/solutions.bats)

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
	@echo "make grade STEP=N DIR=path   grade a student's chapter N in path:"
	@echo "                  a table and a score; EXERCISES=1 adds the exercise"
	@echo "                  checks, FORMAT=junit|tap OUT=dir writes a report"
	@echo "make diff FROM=N TO=M   show what chapter M changes from chapter N"
	@echo "make diff STEP=N PATCH=K   show patch K of chapter N's series"
	@echo "make stage STEP=N N=K  build chapter N as it is after its patch K"
	@echo "make readme-diffs write each chapter's diff into its README"
	@echo "make bench        measure every chapter against a bare epoll loop and"
	@echo "                  Node.js; BENCH_QUICK=1 for a one-minute subset"
	@echo "make attack STEP=N   the attack lab: hostile clients against chapter N's"
	@echo "                  server (or ECHOSERVER=path), held or broken per attack"
	@echo "make check        the strict gates: -Werror with gcc and clang, format,"
	@echo "                  cppcheck, sanitizers, valgrind"
	@echo "make stress STEP=N N=50   repeat a chapter's concurrency and shutdown"
	@echo "                  tests N times; report each failure and how often"
	@echo "make deps         install what make run, test and check need"
	@echo "                  (Debian or Ubuntu; as root or with sudo)"
	@echo "make clean        remove what the build made"

run: deps-run all
	./$(LAST)/echoserver -p $(ECHO_PORT)

test: deps-test all $(TOOLS)
	bats $(BATS_FLAGS) $(TEST_FILES)

# Grade a student's chapter: test/grade.sh says what it runs and leaves out.
grade: deps-test test/echoclient
	@test -n "$(STEP)" -a -n "$(DIR)" || { echo "usage: make grade STEP=N DIR=path/to/student/stepN"; exit 2; }
	bash test/grade.sh '$(STEP)' '$(DIR)'

test/%: test/%.c
	$(CC) $(TOOL_CFLAGS) -o $@ $<

# The client and the load generator share their payload and size parser.
test/echoclient test/loadgen: test/tools.h

readme-diffs:
	bash test/readme-diffs.sh

# The reference server runs one epoll loop per thread.
test/epoll_echo: TOOL_CFLAGS += -pthread

bench: all $(TOOLS)
	bash test/bench.sh

# make diff FROM=N TO=M: each file of chapter M against the last chapter up
# to N that has it; make diff STEP=N PATCH=K: patch K of chapter N's series.
diff:
ifneq ($(PATCH),)
	@bash test/patches.sh show $(STEP) $(PATCH)
else
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make diff FROM=N TO=M, or make diff STEP=N PATCH=K"; exit 2; }
	@bash test/chapter-diff.sh $(FROM) $(TO)
endif

# make stage STEP=N N=K: build the state after patch K of chapter N's series
# in test/stages/, to run it or point any chapter's tests at it.
STAGE_DIR = test/stages/step$(STEP)-$(N)
stage:
	@test -n "$(STEP)" -a -n "$(N)" || { echo "usage: make stage STEP=N N=K (K: 0 to the number of patches)"; exit 2; }
	@rm -rf $(STAGE_DIR)
	@bash test/patches.sh apply $(STEP) $(N) $(STAGE_DIR)
	@$(MAKE) -s -C $(STAGE_DIR)
	@echo "built $(STAGE_DIR): try ECHOSERVER=$$PWD/$(STAGE_DIR)/echoserver bats test/step$(STEP).bats"

# make attack STEP=N [ECHOSERVER=path]: hostile clients against a chapter's
# server, one line per attack (test/attack.sh).
attack: all test/attack test/echoclient
	@test -n "$(STEP)" || { echo "usage: make attack STEP=N [ECHOSERVER=path]"; exit 2; }
	@bash test/attack.sh '$(STEP)' $(if $(ECHOSERVER),'$(ECHOSERVER)')

check: deps-check all $(TOOLS)
	bash test/check.sh $(STEPS)

# Races that show up once in a hundred runs: JOBS=2 runs two loops at once.
stress: deps-test all $(TOOLS)
	@test -n "$(STEP)" -a -n "$(N)" || { echo "usage: make stress STEP=N N=RUNS [TESTS=regex]"; exit 2; }
	bash test/stress.sh $(STEP) $(N) $(if $(TESTS),'$(TESTS)')

clean:
	@for s in $(STEPS); do $(MAKE) -C $$s clean; done
	rm -f $(TOOLS)

have-build-deps:
	@bash test/deps.sh --check build

deps: deps-check

deps-run deps-test deps-check:
	@bash test/deps.sh $(@:deps-%=%)

.PHONY: all help run test diff stage readme-diffs check bench clean deps stress grade attack \
	have-build-deps deps-run deps-test deps-check
