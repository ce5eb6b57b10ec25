#!/bin/sh
# run_tests.sh - runs each Check test binary, then prints one closing line
# "check: N passed, M failed" summed over all of them; exits 1 on any failure.
#
# The tests run first with the kernel variant the CPU chooses (no
# TAPEGRAD_ISA), then those of ISA_TESTS (the variant-sensitive ones: conv's
# own tests against the naive loops, the registry-wide and whole-LeNet-5
# gradient checks, bit-identical training run to run) once more per ISA
# variant this CPU supports, with TAPEGRAD_ISA forcing it: every variant must
# compute the same gradients within the checker's tolerance and repeat its
# own bits. ISA_VARIANTS overrides the list of variants (e.g. "v3" only).
ISA_TESTS=${ISA_TESTS:-"test_ops_conv test_gradcheck test_lenet5_gradcheck test_reproducible"}
ISA_VARIANTS=${ISA_VARIANTS:-$(sh "$(dirname "$0")/isa_variants.sh")}
passed=0; failed=0; status=0
run() { # label test
    out=$("$2" 2>&1); rc=$?
    printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks: ' | tail -n 1)
    if [ -z "$line" ]; then
        echo "run_tests: $1$2 printed no Check summary (exit $rc)"; failed=$((failed + 1)); status=1; return
    fi
    n=$(echo "$line" | sed -E 's/.*Checks: ([0-9]+).*/\1/')
    f=$(echo "$line" | sed -E 's/.*Failures: ([0-9]+).*/\1/')
    e=$(echo "$line" | sed -E 's/.*Errors: ([0-9]+).*/\1/')
    passed=$((passed + n - f - e)); failed=$((failed + f + e))
    [ "$rc" -ne 0 ] && { echo "run_tests: $1$2 exited $rc"; status=1; }
}
unset TAPEGRAD_ISA
counts=$(mktemp) || exit 1
trap 'rm -f "$counts"' EXIT
for t in "$@"; do run "" "$t"; done
again() { # NAME=VALUE test-basename: run that test once more with NAME=VALUE set
    for t in $tests; do
        [ "$(basename "$t")" = "$2" ] || continue
        echo "$1 $t"
        ( export "${1?}"; run "$1 " "$t"; echo "$passed $failed $status" > "$counts" )
        read passed failed status < "$counts"
    done
}
tests="$*"
# OpenBLAS on its generic SSE3 kernels, as it runs on a CPU model newer than
# itself: the GEMM route (ops/blas.c) must notice and still be right.
again OPENBLAS_CORETYPE=Prescott test_blas
# Sleeping OpenMP threads: the convolutions hand out images one at a time
# (tg_threads_sleep), which must give the bits of one thread too.
again OMP_WAIT_POLICY=passive test_ops_conv
for v in $ISA_VARIANTS; do
    for t in "$@"; do
        case " $ISA_TESTS " in *" $(basename "$t") "*) ;; *) continue ;; esac
        echo "TAPEGRAD_ISA=$v $t"
        export TAPEGRAD_ISA=$v
        run "TAPEGRAD_ISA=$v " "$t"
        unset TAPEGRAD_ISA
    done
done
echo "check: $passed passed, $failed failed (variants: default, then ${ISA_VARIANTS:-none})"
[ "$failed" -eq 0 ] || status=1
exit $status
