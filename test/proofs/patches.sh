#!/usr/bin/env bash
# patches.sh: a chapter told as a patch series on the chapter before it.
#
# Chapter N's patches/NN-name.patch, applied in order to chapter N-1's files,
# give chapter N's files byte for byte.  Each patch is a header (a subject
# line, then why) and unified diffs with a/ and b/ paths.  The files a series
# covers are the Makefile and the .c and .h files; a patch that empties a
# file deletes it (patch -E), as a patch that drops a file must.
#
#   patches.sh list STEP            the series, one subject a line
#   patches.sh apply STEP N DIR     DIR gets the state after patch N (0: the
#                                   chapter before; all: every patch)
#   patches.sh check STEP           every patch applies without fuzz and the
#                                   series gives the chapter's files exactly
#   patches.sh show STEP N          print patch N
#   patches.sh unpack STEP WORK     WORK/00-base, WORK/01-name, ...: every
#                                   state, to edit
#   patches.sh pack STEP WORK       write the patches back from WORK's states
#                                   (headers kept; a new state's header comes
#                                   from WORK/NN-name.header) and the last
#                                   state into the chapter
#
# To change a chapter told as patches: unpack, edit the state where the
# change belongs and carry it into the states after it, pack, then
# `make test` (docs.bats runs `check`).  Exit 1 on a failure, 2 on a usage
# error.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT

usage() {
	sed -n '/^#   patches.sh/,/^#$/p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

die() {
	echo "patches.sh: $*" >&2
	exit 1
}

# chapter N: the directory of chapter N, relative to ROOT.
chapter() {
	local d
	d=$(cd "$ROOT" && ls -d "step$1-"* 2>/dev/null | head -1)
	[[ -n $d ]] || die "no chapter $1"
	echo "$d"
}

# The files of directory $1 that a series covers, one a line, sorted.
sources() {
	(cd "$1" && ls Makefile ./*.c ./*.h 2>/dev/null | sed 's#^\./##' | sort)
}

# The patch files of chapter $1, in order.
series() {
	local dir
	dir=$ROOT/$(chapter "$1")/patches
	[[ -d $dir ]] || die "$(chapter "$1") has no patches/"
	ls "$dir"/[0-9][0-9]-*.patch 2>/dev/null | sort
}

# copy_sources FROM TO: the covered files of FROM into the new directory TO.
copy_sources() {
	local f
	mkdir -p "$2"
	for f in $(sources "$1"); do
		cp -p "$1/$f" "$2/$f"
	done
}

# apply STEP N DIR
apply() {
	local step=$1 n=$2 dir=$3 prev i=0 p
	((step > 1)) || die "chapter 1 has no chapter before it"
	prev=$ROOT/$(chapter $((step - 1)))
	[[ ! -e $dir ]] || [[ -z $(ls -A "$dir") ]] ||
		die "$dir exists and is not empty"
	copy_sources "$prev" "$dir"
	for p in $(series "$step"); do
		[[ $n == all ]] || ((i < n)) || break
		i=$((i + 1))
		patch -s -E -p1 -d "$dir" --fuzz=0 --no-backup-if-mismatch \
			-r - <"$p" >/dev/null ||
			die "$(basename "$p") does not apply cleanly"
	done
	[[ $n == all ]] || ((i == n)) || die "chapter $step has only $i patches"
}

# check STEP: the series reproduces the chapter.
check() {
	local step=$1 tmp f bad=0 cur
	cur=$ROOT/$(chapter "$step")
	tmp=$(mktemp -d -p "$SCRATCH")
	apply "$step" all "$tmp/state"
	for f in $(sources "$cur") $(sources "$tmp/state"); do
		if ! cmp -s "$cur/$f" "$tmp/state/$f"; then
			echo "patches.sh: $(chapter "$step")/$f differs from what its patches give" >&2
			bad=1
		fi
	done
	((bad == 0)) || die "refresh the series: test/proofs/patches.sh unpack/pack"
	echo "$(chapter "$step"): $(series "$step" | wc -l) patches reproduce it"
}

# The header of patch file $1: everything before its first diff.
header() {
	awk '/^--- a\// { exit } { print }' "$1"
}

# diff_states A B: unified diffs, a/ and b/ paths, from state A to state B.
diff_states() {
	local f
	for f in $( (sources "$1" && sources "$2") | sort -u); do
		diff -uN --label "a/$f" --label "b/$f" "$1/$f" "$2/$f" || true
	done
}

# unpack STEP WORK
unpack() {
	local step=$1 work=$2 i=0 p name
	[[ ! -e $work ]] || die "$work exists"
	apply "$step" 0 "$work/00-base"
	for p in $(series "$step"); do
		i=$((i + 1))
		name=$(basename "$p" .patch)
		apply "$step" "$i" "$work/$name"
	done
	echo "unpacked $i states into $work"
}

# pack STEP WORK
pack() {
	local step=$1 work=$2 dir prev state name hdr out f
	dir=$ROOT/$(chapter "$step")
	[[ -d $work/00-base ]] || die "$work/00-base is missing"
	mkdir -p "$dir/patches"
	out=$(mktemp -d -p "$SCRATCH")
	prev=$work/00-base
	for state in "$work"/[0-9][0-9]-*/; do
		state=${state%/}
		name=$(basename "$state")
		[[ $name == 00-base ]] && continue
		if [[ -f $work/$name.header ]]; then
			hdr=$(cat "$work/$name.header")
		elif [[ -f $dir/patches/$name.patch ]]; then
			hdr=$(header "$dir/patches/$name.patch")
		else
			die "no header for $name: write $work/$name.header"
		fi
		{
			printf '%s\n\n' "$hdr"
			diff_states "$prev" "$state"
		} >"$out/$name.patch"
		prev=$state
	done
	rm -f "$dir"/patches/[0-9][0-9]-*.patch
	cp "$out"/*.patch "$dir/patches/"
	for f in $(sources "$dir"); do
		[[ -f $prev/$f ]] || rm -f "$dir/$f"
	done
	for f in $(sources "$prev"); do
		cmp -s "$prev/$f" "$dir/$f" || cp "$prev/$f" "$dir/$f"
	done
	check "$step"
}

(($# >= 2)) || usage
cmd=$1 step=$2
[[ $step =~ ^[1-9]$ ]] || usage
case $cmd in
list)
	(($# == 2)) || usage
	for p in $(series "$step"); do
		printf '%s  %s\n' "$(basename "$p" .patch)" \
			"$(sed -n '1s/^Subject: //p' "$p")"
	done
	;;
apply)
	(($# == 4)) || usage
	[[ $3 =~ ^([0-9]+|all)$ ]] || usage
	apply "$step" "$3" "$4"
	;;
check)
	(($# == 2)) || usage
	check "$step"
	;;
show)
	(($# == 3)) || usage
	[[ $3 =~ ^[0-9]+$ ]] || usage
	p=$(series "$step" | sed -n "${3}p")
	[[ -n $p ]] || die "chapter $step has no patch $3"
	cat "$p"
	;;
unpack)
	(($# == 3)) || usage
	unpack "$step" "$3"
	;;
pack)
	(($# == 3)) || usage
	pack "$step" "$3"
	;;
*) usage ;;
esac
