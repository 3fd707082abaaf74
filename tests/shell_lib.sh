# Helpers shared by the shell tests (tests/cli_*.sh source this file; its name
# keeps it out of the cli_*.sh glob that registers tests). Each result is one
# line, "ok   NAME" or "FAIL NAME" with the end of the output indented; the test
# ends with `finish`, which prints "N passed, M failed" and sets the status.
pass=0
fail=0

ok() { echo "ok   $1"; pass=$((pass + 1)); }
bad() {
    echo "FAIL $1"
    [ $# -gt 1 ] && echo "$2" | tail -5 | sed 's/^/    /'
    fail=$((fail + 1))
}

# check NAME COMMAND...: passes when the command succeeds (its output is not shown).
check() {
    local name=$1
    shift
    if "$@" >/dev/null 2>&1; then ok "$name"; else bad "$name"; fi
}

# expect_ok NAME COMMAND...: exit status 0.
expect_ok() {
    local name=$1 out
    shift
    if out=$("$@" 2>&1); then ok "$name"; else bad "$name: exit status $?" "$out"; fi
}

# expect_error NAME PATTERN COMMAND...: exit status 1..127 (an error, not a
# signal), output matching PATTERN, and no raw control character (a CR, an
# escape) in what was printed.
expect_error() {
    local name=$1 pattern=$2
    shift 2
    local out rc
    out=$("$@" 2>&1)
    rc=$?
    if [ $rc -eq 0 ] || [ $rc -ge 128 ]; then
        bad "$name: exit status $rc (want 1..127)" "$out"
    elif ! grep -qE -- "$pattern" <<<"$out"; then
        bad "$name: message does not match /$pattern/" "$out"
    elif LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' <<<"$out"; then
        bad "$name: message holds a raw control character" "$(cat -A <<<"$out")"
    else
        ok "$name: $(grep -m1 -E -- "$pattern" <<<"$out" | cut -c1-150)"
    fi
}

finish() {
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
}
