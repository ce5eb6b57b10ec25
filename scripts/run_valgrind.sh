#!/bin/sh
# run_valgrind.sh BUILD "TESTS" - memcheck over the examples (the README
# program; LeNet-5 on 256 images for one epoch, saving a checkpoint, then
# loading it) and the named test programs (Check in no-fork mode so valgrind
# sees the tests themselves). Any error or leak fails. Prints
# "valgrind: N passed, M failed".
set -u
build=$1; tests=$2
# valgrind does not decode AVX-512: the kernels' AVX2 variant (its cpuid
# would hide AVX-512 anyway; this says so).
export TAPEGRAD_ISA=v3
supp=scripts/valgrind.supp
passed=0; failed=0
run() {
    name=$1; shift
    log="$build/valgrind-$name.log"
    if CK_FORK=no valgrind --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect \
        --errors-for-leak-kinds=definite,indirect --suppressions=$supp "$@" > "$log" 2>&1; then
        passed=$((passed + 1)); echo "valgrind $name: clean ($(grep -m1 'total heap usage' "$log" | sed 's/.*total heap usage: //'))"
    else
        failed=$((failed + 1)); echo "valgrind $name: FAILED (see $log)"; grep -E "ERROR SUMMARY|definitely|indirectly" "$log"
    fi
}
run readme "$build/examples/readme"
if [ -x "$build/examples/lenet5" ]; then
    ckpt="$build/valgrind-lenet5.safetensors"
    run lenet5 "$build/examples/lenet5" --subset 256 --epochs 1 --batch 64 --save "$ckpt"
    run lenet5-load "$build/examples/lenet5" --load "$ckpt" --epochs 0
fi
for t in $tests; do run "$t" "$build/tests/$t"; done
echo "valgrind: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
