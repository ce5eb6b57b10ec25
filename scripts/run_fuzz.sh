#!/bin/sh
# run_fuzz.sh BUILD SECONDS FUZZER... - runs each libFuzzer target for SECONDS
# on a scratch copy of fuzz/corpus/<name> (the repo's seeds stay unchanged),
# and prints one line per target with its executions and result.
set -u
build=$1; seconds=$2; shift 2
status=0
for f in "$@"; do
    name=$(basename "$f" | sed 's/^fuzz_//')
    work="$build/fuzz-corpus/$name"
    mkdir -p "$work"
    cp -n fuzz/corpus/"$name"/* "$work"/ 2>/dev/null || true
    log="$build/fuzz-$name.log"
    "$f" -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$build/fuzz-$name-" "$work" > "$log" 2>&1
    rc=$?
    runs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    if [ "$rc" -eq 0 ]; then result=clean; else result="FAILED (see $log)"; status=1; fi
    echo "fuzz $name seconds=$seconds executions=${runs:-0} result=$result"
done
exit $status
