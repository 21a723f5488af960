#!/usr/bin/env bash
# chapter-diff.sh FROM TO: what chapter TO changes from chapter FROM.
#
# Each source file of chapter TO (Makefile, .c, .h) is compared with the
# copy in the last chapter up to FROM that has it, so that a file chapter
# FROM does not have (chapter 3's server, from chapter 2) shows its change
# from the chapter it came from, not as new.  Files no chapter up to FROM has
# are shown whole, as new, and files chapter FROM has and TO drops as gone.
set -euo pipefail
cd "$(dirname "$0")/../.."

(($# == 2)) && [[ $1 =~ ^[1-9]$ && $2 =~ ^[1-9]$ ]] || {
	echo "usage: chapter-diff.sh FROM TO (chapter numbers)" >&2
	exit 2
}
to=$(ls -d "step$2-"* 2>/dev/null | head -1)
[[ -n $to ]] || {
	echo "no chapter $2 here" >&2
	exit 2
}
ls -d "step$1-"* >/dev/null 2>&1 || {
	echo "no chapter $1 here" >&2
	exit 2
}

for f in $(cd "$to" && ls Makefile ./*.c ./*.h 2>/dev/null | sed 's#^\./##' | sort); do
	from=
	for ((j = $1; j >= 1; j--)); do
		d=$(ls -d "step$j-"* 2>/dev/null | head -1)
		if [[ -n $d && -f $d/$f ]]; then
			from=$d
			break
		fi
	done
	if [[ -z $from ]]; then
		diff -uN --label /dev/null --label "$to/$f" /dev/null "$to/$f" || true
	elif ! cmp -s "$from/$f" "$to/$f"; then
		diff -u --label "$from/$f" --label "$to/$f" "$from/$f" "$to/$f" || true
	fi
done
# What chapter FROM has and chapter TO drops.
from=$(ls -d "step$1-"* | head -1)
for f in $(cd "$from" && ls Makefile ./*.c ./*.h 2>/dev/null | sed 's#^\./##' | sort); do
	[[ -f $to/$f ]] ||
		diff -uN --label "$from/$f" --label /dev/null "$from/$f" /dev/null || true
done
