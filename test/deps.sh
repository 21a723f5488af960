#!/usr/bin/env bash
# deps.sh build|test: make sure what `make` (build) or `make test` (test)
# needs is installed.  Missing Debian/Ubuntu packages are installed when we
# are root or have passwordless sudo; otherwise print the one command to run.
set -euo pipefail

need=()
have_pkg() { pkg-config --exists "$1" 2>/dev/null; }

command -v cc >/dev/null || need+=(gcc)
command -v make >/dev/null || need+=(make)
command -v pkg-config >/dev/null || need+=(pkg-config)
have_pkg libevent && have_pkg libevent_pthreads || need+=(libevent-dev)
if [[ ${1:-build} == test ]]; then
	command -v bats >/dev/null || need+=(bats)
	[[ -f /usr/lib/bats/bats-support/load.bash ||
		-f /usr/lib/bats-support/load.bash ]] || need+=(bats-support)
	[[ -f /usr/lib/bats/bats-assert/load.bash ||
		-f /usr/lib/bats-assert/load.bash ]] || need+=(bats-assert)
	command -v socat >/dev/null || need+=(socat)
	# the README-command test runs in a network namespace of its own
	command -v ip >/dev/null || need+=(iproute2)
	command -v prlimit >/dev/null || need+=(util-linux)
fi
((${#need[@]} == 0)) && exit 0

if ! command -v apt-get >/dev/null; then
	echo "missing: ${need[*]}" >&2
	echo "install libevent 2.1 (headers and pkg-config file), bats," >&2
	echo "bats-support, bats-assert and socat with your package manager" >&2
	exit 1
fi
if ((EUID == 0)); then
	sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
	sudo=(sudo -n)
else
	echo "missing packages: ${need[*]}; install them with:" >&2
	echo "  sudo apt-get install ${need[*]}" >&2
	exit 1
fi
echo "installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >&2
"${sudo[@]}" apt-get install -y -qq "${need[@]}" >&2
