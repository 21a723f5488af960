# svg.awk: the drawing functions test/proofs/timeline.awk and
# test/proofs/timeline-jobs.awk share (awk -f svg.awk -f the picture's own file):
# x() maps a time in ms to a column, given LEFT, RIGHT, W and tend; esc()
# makes a string safe in SVG text; text(), line() and rect() print one
# element each.
function x(t) { return LEFT + t * (W - LEFT - RIGHT) / tend }
function esc(s) { gsub(/&/, "\\&amp;", s); gsub(/</, "\\&lt;", s); gsub(/>/, "\\&gt;", s); return s }
function text(px, py, s, extra) {
	printf "<text x=\"%.1f\" y=\"%.1f\"%s>%s</text>\n", px, py, extra, esc(s)
}
function line(x1, y1, x2, y2, style) {
	printf "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" %s/>\n", x1, y1, x2, y2, style
}
function rect(rx, ry, rw, rh, fill, extra) {
	if (rw < 0.5) rw = 0.5
	printf "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"%s/>\n", rx, ry, rw, rh, fill, extra
}
