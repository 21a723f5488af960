#!/usr/bin/env bats
# The teaching layer: the chapters' diffs, copies and commands stay true.
# bats file_tags=reference-only

bats_load_library bats-support
bats_load_library bats-assert

ROOT=$(cd "$BATS_TEST_DIRNAME/../.." && pwd)

@test "every chapter's README ends with its current diff from the chapter before" {
	run bash "$ROOT/test/proofs/readme-diffs.sh" --check
	assert_success
}

@test "files a chapter keeps from the one before are byte-identical copies" {
	cd "$ROOT"
	local pair
	for pair in \
		step2-workqueue/workqueue.h:step3-threaded-echo/workqueue.h \
		step2-workqueue/workqueue.c:step3-threaded-echo/workqueue.c \
		step2-workqueue/workqueue_demo.c:step3-threaded-echo/workqueue_demo.c \
		step3-threaded-echo/workqueue_demo.c:step4-shutdown-fixes/workqueue_demo.c; do
		cmp "${pair%%:*}" "${pair#*:}"
	done
}

@test "every chapter told as a patch series is its series applied to the chapter before, byte for byte" {
	cd "$ROOT"
	local d step checked=0
	for d in step*/patches; do
		[[ -d $d ]] || continue
		step=${d#step}
		run bash test/proofs/patches.sh check "${step%%-*}"
		assert_success
		checked=$((checked + 1))
	done
	((checked > 0)) || skip "no chapter is told as patches yet"
}

@test "make diff compares a file with the last chapter that had it" {
	cd "$ROOT"
	run make -s diff FROM=2 TO=3
	assert_success
	assert_line -- "--- step1-single-thread/echoserver.c"
	assert_line -- "+++ step3-threaded-echo/echoserver.c"
	refute_line -- "--- /dev/null"
}

@test "every chapter's Makefile is the same below its chapter lines" {
	cd "$ROOT"
	local first="" m
	for m in step*/Makefile; do
		sed -n '/^# Everything below is the same in every chapter\.$/,$p' "$m" \
			>"$BATS_TEST_TMPDIR/${m%%/*}"
		[[ -s $BATS_TEST_TMPDIR/${m%%/*} ]] || fail "$m has no shared part"
		[[ -n $first ]] || first=$BATS_TEST_TMPDIR/${m%%/*}
		cmp "$first" "$BATS_TEST_TMPDIR/${m%%/*}"
	done
}

@test "every historical flaw is marked in the code; chapter 4 keeps only those chapter 5 fixes, and chapter 5 none" {
	cd "$ROOT"
	run grep -l "FLAW (fixed in step 4)" step2-workqueue/*.c step3-threaded-echo/*.c
	assert_success
	run grep -l "FLAW (fixed in step 4)" step4-shutdown-fixes/*.[ch]
	assert_failure
	# chapter 4 fixes none of chapter 3's "fixed in step 5" flaws
	assert_equal "$(grep -c "FLAW (fixed in step 5)" step4-shutdown-fixes/echoserver.c)" \
		"$(grep -c "FLAW (fixed in step 5)" step3-threaded-echo/echoserver.c)"
	run grep -l "FLAW" step5-per-thread-base/*.[ch]
	assert_failure
}

# A reader of the tutorial cannot see the project's issue tracker, so nothing
# in it may send them there: a figure names the command that measured it and
# the date instead.  It flags "issue" or "ticket" or "bug" or "PR" followed
# by a number, "the tracker" and its kin, a "#" and a number standing alone
# in prose, and links to issues or pull requests.  A line that names libevent
# may cite libevent's own issues (the sanitizer suppressions do), and a
# debugger's stack frame ("#4 killServer at echoserver.c:329") is a frame.
# This file is left out: it has to name what it looks for.
@test "no README, code comment, test or script refers to the issue tracker" {
	cd "$ROOT"
	local files=() hits
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		mapfile -t files < <(git ls-files)
	else
		mapfile -t files < <(find . -type f ! -path './.git/*' \
			! -path './test/stages/*' | sed 's|^\./||')
	fi
	((${#files[@]} > 10)) || fail "found only ${#files[@]} files to scan"
	hits=$(printf '%s\0' "${files[@]}" | grep -zv '^test/proofs/docs\.bats$' |
		xargs -0 grep -n -I -i -E \
			-e '\b(issue|ticket|bug|pr|pull request)s? *#?[0-9]+' \
			-e '\b(the|our|issue|bug|project.s) tracker\b' \
			-e '(^|[[:space:](])#[0-9]+([[:space:]).,;:]|$)' \
			-e 'github\.com/[^[:space:]]+/(issues|pull)/' |
		grep -v -i 'libevent' |
		grep -v -E '^[^:]+:[0-9]+:#[0-9]+ +([A-Za-z_?<]|0x)' || true)
	[[ -z $hits ]] || fail "these lines refer to the issue tracker:"$'\n'"$hits"
}

# anchors FILE: the anchors GitHub makes for FILE's headings (outside code
# blocks): lower case, punctuation dropped, spaces made hyphens, and a
# repeated heading numbered -1, -2, ...
anchors() {
	awk '/^```/ { code = !code; next }
		!code && /^#+ / {
			h = tolower($0); sub(/^#+ /, "", h)
			gsub(/[^a-z0-9 _-]/, "", h); gsub(/ /, "-", h)
			if (h in seen) { n = ++seen[h]; h = h "-" n } else seen[h] = 0
			print h
		}' "$1"
}

# The contents lists and the links between chapters go to headings that exist.
@test "every link to a heading of a README leads to a heading that exists" {
	cd "$ROOT"
	local readme link target file anchor checked=0
	for readme in README.md step*/README.md; do
		while IFS= read -r link; do
			target=${link#*](}
			target=${target%)}
			file=${target%%#*}
			anchor=${target#*#}
			if [[ -z $file ]]; then
				file=$readme
			else
				file=$(dirname "$readme")/$file
			fi
			[[ -f $file ]] || fail "$readme links to $target: no such file"
			anchors "$file" | grep -qxF -- "$anchor" ||
				fail "$readme links to $target: $file has no heading with that anchor"
			checked=$((checked + 1))
		done < <(awk '/^```/ { code = !code; next } !code' "$readme" |
			grep -oE '\]\([^) ]*#[^) ]+\)')
	done
	((checked >= 10)) || fail "only $checked links to headings checked"
}

# A README names its tests in italics and quotes, *"like this"*, sometimes
# shortened: every name it gives must be a test's, so that renaming a test
# cannot leave a README pointing at nothing.
@test "every test a README names in quotes is a test that exists" {
	cd "$ROOT"
	local readme
	sed -n 's/^@test "\(.*\)" {$/\1/p' test/*.bats test/*/*.bats >"$BATS_TEST_TMPDIR/names"
	for readme in README.md step*/README.md; do
		awk '/<!-- (diff|patch):begin/ { gen = 1 }
			/<!-- (diff|patch):end/ { gen = 0; next }
			/^```/ { code = !code; next } !gen && !code' "$readme" |
			tr '\n' ' ' | tr -s ' ' |
			sed 's/\*\*"/@@"/g; s/"\*\*/"@@/g' | grep -oE '\*"[^"]+"\*' |
			sed "s|^|$readme: |"
	done >"$BATS_TEST_TMPDIR/quoted"
	# A quote is the start of a test's name (most are the whole name); where
	# it leaves words out ("…") the pieces it keeps come in the name in
	# order, and the name starts with its first piece unless "…" stands there.
	run awk 'NR == FNR { names[++n] = $0; next }
		{
			q = $0; sub(/^[^:]*: \*"/, "", q); sub(/"\*$/, "", q)
			gsub(/`/, "", q)
			k = split(q, pieces, "…"); found = 0
			for (i = 1; i <= n && !found; i++) {
				rest = names[i]; found = 1
				for (j = 1; j <= k; j++) {
					p = pieces[j]; gsub(/^ +| +$/, "", p)
					if (p == "") continue
					at = index(rest, p)
					if (at == 0 || (j == 1 && at != 1)) {
						found = 0; break
					}
					rest = substr(rest, at + length(p))
				}
			}
			checked++
			if (!found) print "no such test: " $0
		}
		END { print checked " test names checked" }' \
		"$BATS_TEST_TMPDIR/names" "$BATS_TEST_TMPDIR/quoted"
	assert_success
	refute_line --partial "no such test"
	echo "# ${lines[-1]}" >&3
	(($(awk '{ print $1 }' <<<"${lines[-1]}") >= 50))
}

# Chapter 3's table of the article's claims: every row gives a verdict (true,
# false, or true with its condition) and the evidence, a test by its name or
# a measurement by its command, and every test it names exists.
@test "every claim in chapter 3's table of the article's claims has a verdict and a test that exists or a command" {
	cd "$ROOT"
	local rows row verdict evidence name n=0
	sed -n 's/^@test "\(.*\)" {$/\1/p' test/*.bats test/*/*.bats >"$BATS_TEST_TMPDIR/names"
	rows=$(sed -n '/<!-- claims:begin -->/,/<!-- claims:end -->/p' \
		step3-threaded-echo/README.md | grep '^| ' | tail -n +3)
	[[ -n $rows ]] || fail "chapter 3's README has no claims table"
	while IFS= read -r row; do
		n=$((n + 1))
		verdict=$(awk -F' \\| ' '{ print $3 }' <<<"$row")
		evidence=$(awk -F' \\| ' '{ print $4 }' <<<"$row")
		[[ $verdict =~ ^\*\*(true|false|true,\ if)\*\* ]] ||
			fail "row $n has no verdict: $row"
		[[ $evidence == *'*"'* || $evidence =~ \`(test/|make |\./)[^\`]+\` ]] ||
			fail "row $n names no test and no command: $row"
		while IFS= read -r name; do
			grep -qxF -- "$name" "$BATS_TEST_TMPDIR/names" ||
				fail "row $n names a test that does not exist: $name"
		done < <(grep -oE '\*"[^"]+"\*' <<<"$evidence" | sed 's/^\*"//; s/"\*$//')
	done <<<"$rows"
	((n >= 10)) || fail "only $n claims in the table"
	echo "# $n claims checked" >&3
}
