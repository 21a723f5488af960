#!/usr/bin/env bash
# deps.sh [--check] build|run|test|check: make sure what a make target needs
# is installed.
#
#   build  `make`: a C compiler, make, pkg-config, libevent 2.1
#   run    `make run`: that, and socat to try the server by hand
#   test   `make test`: that, and Bats, socat, iproute2, util-linux, strace,
#          gdb, GNU parallel
#   check  `make check` and `make deps`: that, and clang with its sanitizer
#          runtime, clang-format, cppcheck, valgrind, shellcheck,
#          chromium, cmark-gfm
#
# Missing Debian/Ubuntu packages are installed when we are root or have
# passwordless sudo; otherwise, or with --check, the script prints the one
# command to run and fails.
set -euo pipefail

check_only=0
if [[ ${1:-} == --check ]]; then
	check_only=1
	shift
fi
want=${1:-build}
case $want in
build | run | test | check) ;;
*)
	echo "usage: deps.sh [--check] build|run|test|check" >&2
	exit 2
	;;
esac

have() { command -v "$1" >/dev/null; }
have_pkg() { pkg-config --exists "$1" 2>/dev/null; }
bats_lib() { [[ -f /usr/lib/bats/$1/load.bash || -f /usr/lib/$1/load.bash ]]; }

# The sanitizer runtime that matches clang, when clang cannot link an ASan
# program: libclang-rt-N-dev, N the major version of the installed clang or,
# before it is installed, of the one apt would install.  Debian 12 and 13
# and Ubuntu 24.04 package it so; where apt has no such package (Ubuntu
# 22.04's clang 14 has it in libclang-common-14-dev, which clang depends
# on), print nothing.
sanitizer_pkg() {
	local version pkg
	if have clang; then
		printf 'int main(void) { return 0; }\n' |
			clang -fsanitize=address,undefined -x c - -o /dev/null \
				2>/dev/null && return 0
		version=$(clang -dumpversion)
	else
		# "Candidate: 1:14.0-55.7~deb12u1": the epoch, then the version
		version=$(apt-cache policy clang 2>/dev/null |
			sed -n 's/^ *Candidate: \([0-9]*:\)\{0,1\}//p')
	fi
	pkg=libclang-rt-${version%%.*}-dev
	[[ $version =~ ^[0-9]+ ]] && apt-cache show "$pkg" >/dev/null 2>&1 &&
		echo "$pkg"
	return 0
}

# What the target needs and is not installed, as Debian package names.
missing() {
	local -a need=() rt
	have cc || need+=(gcc)
	have make || need+=(make)
	have pkg-config || need+=(pkg-config)
	have_pkg libevent && have_pkg libevent_pthreads || need+=(libevent-dev)
	[[ $want == build ]] || have socat || need+=(socat)
	if [[ $want == test || $want == check ]]; then
		have bats || need+=(bats)
		bats_lib bats-support || need+=(bats-support)
		bats_lib bats-assert || need+=(bats-assert)
		# the README-command test runs in a network namespace of its own
		have ip || need+=(iproute2)
		have prlimit || need+=(util-linux)
		# chapter 5 counts its system calls per echo
		have strace || need+=(strace)
		# chapter 5's refusal test preloads a hook into a gcc TSan build
		printf 'int main(void) { return 0; }\n' |
			gcc -fsanitize=thread -x c - -o /dev/null 2>/dev/null ||
			need+=(gcc libtsan2)
		# chapter 3's hung server shows its threads' stacks (signal-deadlock.bash)
		have gdb || need+=(gdb)
		# the grader writes its reports and the tests check them
		# (grade.sh, grade.bats): python3, and xmllint for the JUnit schema
		have python3 || need+=(python3)
		have xmllint || need+=(libxml2-utils)
		# Bats runs test files side by side with GNU parallel (not
		# moreutils' parallel, which has the same name)
		parallel --version </dev/null 2>/dev/null | grep -q 'GNU parallel' ||
			need+=(parallel)
	fi
	if [[ $want == check ]]; then
		have clang || need+=(clang)
		have clang-format || need+=(clang-format)
		have cppcheck || need+=(cppcheck)
		have valgrind || need+=(valgrind)
		have shellcheck || need+=(shellcheck)
		# the browser check of the timelines (test/proofs/timeline.bats)
		have chromium || need+=(chromium)
		# the READMEs rendered to HTML for that check
		have cmark-gfm || need+=(cmark-gfm)
		read -ra rt <<<"$(sanitizer_pkg)"
		need+=("${rt[@]}")
	fi
	echo "${need[@]}"
}

read -ra need <<<"$(missing)"
((${#need[@]} == 0)) && exit 0

if ! have apt-get; then
	echo "missing: ${need[*]}" >&2
	echo "install them (libevent 2.1 with its headers and pkg-config file)" >&2
	echo "with your package manager" >&2
	exit 1
fi
if ((EUID == 0)); then
	sudo=()
elif have sudo && sudo -n true 2>/dev/null; then
	sudo=(sudo -n)
else
	check_only=1
	sudo=(sudo)
fi
if ((check_only)); then
	echo "missing packages: ${need[*]}; install them with:" >&2
	echo "  ${sudo[*]}${sudo[*]:+ }apt-get install --no-install-recommends ${need[*]}" >&2
	[[ $want != build ]] || echo "(or run: make deps)" >&2
	exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >&2
# With fresh package lists, the sanitizer runtime's name may be known now.
read -ra need <<<"$(missing)"
echo "installing ${need[*]}" >&2
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
