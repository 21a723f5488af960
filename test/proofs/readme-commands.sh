#!/usr/bin/env bash
# readme-commands.sh [--list] [README...]: run, verbatim, every shell block
# the READMEs present as something to type: README.md, CONTRIBUTING.md and
# each chapter's README, unless files are named.
#
# A ```sh block is run, in order, in a fresh copy of the tree, in a clean
# environment, and must exit 0.  Two markers, an HTML comment on the line
# just above the block, change that:
#   <!-- server -->            the block's last line starts a server in the
#                              foreground: it runs in the background, must
#                              print its "listening on" line and echo, and is
#                              stopped after the README's last block;
#   <!-- fails: REASON -->     the block must exit non-zero (a chapter shows
#                              an error on purpose);
#   <!-- not run: REASON -->   the block is not run, for the reason given.
# Other blocks (```console, ```text, ```diff, ```c, ```mermaid) illustrate.
# A line that is just `make test STEP=N` runs with BATS_FLAGS=--count: it
# builds the chapter and counts its tests without running them, because make
# test runs those very tests already (the runner belongs to make test-all).
# Each README runs in a private network namespace (unshare -n as root, or
# unshare -rn in a user namespace of its own for a normal user), so port 5555
# is always free there and nothing leaves the machine.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1

# blocks FILE: print "LINE<TAB>MARKER<TAB>COMMANDS" for each sh block, with
# the commands' newlines as \x1f.
blocks() {
	awk '
		/^<!-- server -->$/ { marker = "server"; next }
		/^<!-- (not run|fails): .* -->$/ {
			marker = $0; sub(/^<!-- /, "", marker); sub(/ -->$/, "", marker)
			next
		}
		/^```sh$/ && !inblock { inblock = 1; start = NR; body = ""; next }
		/^```/ && inblock {
			printf "%d\t%s\t%s\n", start, (marker == "" ? "run" : marker), body
			inblock = 0; marker = ""; next
		}
		inblock { body = body (body == "" ? "" : "\037") $0; next }
		/^```/ { fence = !fence }
		!/^[[:space:]]*$/ { marker = "" }
	' "$1"
}

if [[ ${1:-} == --list ]]; then
	shift
	for f in "${@:-README.md}" $( (($#)) || ls CONTRIBUTING.md step*/README.md); do
		blocks "$f" | while IFS=$'\t' read -r line marker body; do
			printf '%s:%s\t%s\t%s\n' "$f" "$line" "$marker" "${body//$'\037'/; }"
		done
	done
	exit 0
fi

# --inside FILE COPY: run FILE's blocks in COPY; we are in the namespace.
if [[ ${1:-} == --inside ]]; then
	file=$2 copy=$3
	ip link set lo up || exit 1
	cd "$copy" || exit 1
	# A fresh user's environment; Bats puts its libexec first in PATH.
	path=$(tr : '\n' <<<"$PATH" | grep -v bats-core | paste -sd:)
	clean=(env -i "HOME=$HOME" "PATH=$path" "LANG=C.UTF-8" "TERM=dumb")
	status=0 server=""
	stop_server() {
		[[ -n $server ]] || return 0
		kill -TERM -- "-$server" 2>/dev/null
		for ((i = 0; i < 250; i++)); do
			kill -0 "$server" 2>/dev/null || break
			sleep 0.02
		done
		kill -KILL -- "-$server" 2>/dev/null
		wait "$server" 2>/dev/null
		server=""
	}
	while IFS=$'\t' read -r line marker body; do
		where="$file:$line"
		cmds=${body//$'\037'/$'\n'}
		case $marker in
		"not run:"*)
			echo "not run  $where (${marker#not run: })"
			continue
			;;
		"fails:"*)
			if timeout 600 "${clean[@]}" bash -eo pipefail -c "$cmds" \
				>"$copy/.block.log" 2>&1 </dev/null 3>&-; then
				echo "FAILED   $where: expected to fail: ${cmds//$'\n'/; }"
				status=1
			else
				echo "ok       $where (fails, as it should): ${cmds//$'\n'/; }"
			fi
			;;
		server)
			stop_server
			setup=$(sed '$d' <<<"$cmds")
			last=$(tail -n 1 <<<"$cmds")
			if [[ -n $setup ]] && ! timeout 600 "${clean[@]}" bash -eo pipefail \
				-c "$setup" >"$copy/.block.log" 2>&1 </dev/null 3>&-; then
				echo "FAILED   $where: $setup"
				tail -20 "$copy/.block.log"
				status=1
				continue
			fi
			: >"$copy/.server.out"
			setsid "${clean[@]}" bash -c "exec $last" >"$copy/.server.out" \
				2>"$copy/.server.err" </dev/null 3>&- &
			server=$!
			ok=0
			for ((i = 0; i < 6000; i++)); do
				grep -q '^listening on ' "$copy/.server.out" && ok=1 && break
				kill -0 "$server" 2>/dev/null || break
				sleep 0.02
			done
			port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$copy/.server.out")
			reply=""
			if ((ok)); then
				exec {fd}<>"/dev/tcp/127.0.0.1/$port" &&
					printf 'readme\n' >&"$fd" &&
					IFS= read -r -t 5 reply <&"$fd"
				exec {fd}>&-
			fi
			if [[ $reply == readme ]]; then
				echo "ok       $where (server on port $port): $last"
			else
				echo "FAILED   $where: the server did not start and echo: $last"
				tail -20 "$copy/.server.err"
				status=1
				stop_server
			fi
			;;
		*)
			counted=""
			if grep -qE '^make test STEP=[0-9]+$' <<<"$cmds"; then
				cmds=$(sed -E 's/^(make test STEP=[0-9]+)$/\1 BATS_FLAGS=--count/' <<<"$cmds")
				counted=" (tests counted, not run: make test runs them)"
			fi
			if timeout 600 "${clean[@]}" bash -eo pipefail -c "$cmds" \
				>"$copy/.block.log" 2>&1 </dev/null 3>&-; then
				echo "ok       $where$counted: ${cmds//$'\n'/; }"
			else
				echo "FAILED   $where: ${cmds//$'\n'/; }"
				tail -30 "$copy/.block.log"
				status=1
			fi
			;;
		esac
	done < <(blocks "$ROOT/$file")
	stop_server
	exit $status
fi

# userns_refusal: why this kernel refuses a normal user a user namespace,
# when a known setting says so.
userns_refusal() {
	local f=/proc/sys/kernel/unprivileged_userns_clone
	[[ $(cat "$f" 2>/dev/null) != 0 ]] || { echo "$f is 0"; return; }
	f=/proc/sys/user/max_user_namespaces
	[[ $(cat "$f" 2>/dev/null) != 0 ]] || { echo "$f is 0"; return; }
	f=/proc/sys/kernel/apparmor_restrict_unprivileged_userns
	[[ $(cat "$f" 2>/dev/null) != 1 ]] || { echo "AppArmor restricts them ($f is 1)"; return; }
	echo "no known setting says why (a container or seccomp may forbid unshare)"
}

# Root gets a network namespace alone; a normal user gets one inside a user
# namespace of its own, where it is root (unshare -rn), if the kernel lets it.
if unshare -n true 2>/dev/null; then
	netns=(unshare -n)
elif unshare -rn true 2>/dev/null; then
	netns=(unshare -rn)
else
	echo "readme-commands: needs a private network namespace: unshare -n as root," \
		"or unshare -rn as a normal user, which this kernel refuses: $(userns_refusal)" >&2
	exit 77
fi
files=("$@")
((${#files[@]})) || files=(README.md CONTRIBUTING.md step*/README.md)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for f in "${files[@]}"; do
	copy=$work/$(tr / _ <<<"$f")
	mkdir -p "$copy"
	git ls-files -co --exclude-standard -z |
		tar --null -T - -cf - | tar -xf - -C "$copy"
	"${netns[@]}" bash "$0" --inside "$f" "$copy" || status=1
done
exit $status
