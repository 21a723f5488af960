#!/usr/bin/env bash
# timeline-png.sh [OUT]: screenshot every committed timeline
# (test/results/timeline/*.svg) in headless Chromium, each at its own size,
# to OUT/NAME.png (default: beside its SVG), for a page that shows PNG
# only.  The browser check (test/proofs/timeline.bats) takes its screenshots here
# too.  Needs chromium (bash test/deps.sh check installs it).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PICS=$ROOT/test/results/timeline
OUT=${1:-$PICS}

command -v chromium >/dev/null || {
	echo "timeline-png: needs chromium (bash test/deps.sh check installs it)" >&2
	exit 1
}
mkdir -p "$OUT"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
n=0
for svg in "$PICS"/*.svg; do
	name=$(basename "$svg" .svg)
	size=$(sed -n 's/^<svg [^>]* width="\([0-9]*\)" height="\([0-9]*\)".*/\1,\2/p' "$svg")
	[[ $size =~ ^[0-9]+,[0-9]+$ ]] || {
		echo "timeline-png: $name.svg: no width and height on its <svg>" >&2
		exit 1
	}
	rm -f "$OUT/$name.png"
	# A fresh profile each; no network, no first-run work.  It takes a
	# second or two; 60 s stops one that hangs.
	timeout 60 chromium --headless --no-sandbox --disable-gpu --disable-quic \
		--no-first-run --disable-background-networking \
		--disable-component-update --disable-sync --hide-scrollbars \
		--user-data-dir="$TMP/profile-$name" --window-size="$size" \
		--screenshot="$OUT/$name.png" "file://$svg" >/dev/null 2>"$TMP/$name.err" || {
		echo "timeline-png: chromium failed on $name.svg: $(tail -3 "$TMP/$name.err")" >&2
		exit 1
	}
	[[ -s $OUT/$name.png ]] || {
		echo "timeline-png: chromium wrote no $name.png" >&2
		exit 1
	}
	echo "timeline-png: wrote ${OUT#"$ROOT"/}/$name.png (${size/,/x})"
	n=$((n + 1))
done
((n > 0)) || {
	echo "timeline-png: no pictures in ${PICS#"$ROOT"/}" >&2
	exit 1
}
