#!/bin/sh
# run_tests.sh - runs each Check test binary, then prints one closing line
# "check: N passed, M failed" summed over all of them; exits 1 on any failure.
passed=0; failed=0; status=0
for t in "$@"; do
    out=$("$t" 2>&1); rc=$?
    printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks: ' | tail -n 1)
    if [ -z "$line" ]; then
        echo "run_tests: $t printed no Check summary (exit $rc)"; failed=$((failed + 1)); status=1; continue
    fi
    n=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
    f=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
    e=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
    passed=$((passed + n - f - e)); failed=$((failed + f + e))
    [ "$rc" -ne 0 ] && status=1
done
echo "check: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || status=1
exit $status
