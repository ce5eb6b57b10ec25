#!/bin/sh
# run_mpi.sh BUILD - the dist tests under mpirun on this machine (loopback):
# tests/mpi/test_dist at np = 2 and np = 1, then a job whose rank 1 fails,
# which must end within 30 s with a message naming the rank.
set -u
build=$1
. "$(dirname "$0")/mpi_env.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
for np in 2 1; do
    if timeout 600 mpirun -np $np "$build/tests/mpi/test_dist" "$tmp"; then
        passed=$((passed + 1))
    else
        echo "run_mpi: test_dist at np = $np failed"; failed=$((failed + 1))
    fi
done
start=$(date +%s)
timeout 60 mpirun -np 2 "$build/tests/mpi/test_dist" "$tmp" --fail > "$tmp/fail.out" 2>&1
rc=$? took=$(($(date +%s) - start))
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $took -le 30 ] && grep -q "rank 1 of 2: step 3: nn_loader_set_shard: loader is NULL" "$tmp/fail.out"; then
    echo "run_mpi: a failing rank 1 ended the job in ${took} s, named (exit $rc)"
    passed=$((passed + 1))
else
    echo "run_mpi: the job with a failing rank 1 did not end as it should (exit $rc, ${took} s):"
    cat "$tmp/fail.out"; failed=$((failed + 1))
fi
echo "run_mpi: $passed passed, $failed failed"
[ $failed -eq 0 ]
