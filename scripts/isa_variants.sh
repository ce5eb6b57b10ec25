#!/bin/sh
# isa_variants.sh - prints the kernel variants (ops/isa.h) this CPU can run,
# from /proc/cpuinfo's flags: "v2 v3 v4" on an AVX-512 machine, "v2 v3" on
# an AVX2 one. Used by run_tests.sh and bench/run.sh.
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
has() { for f in "$@"; do case " $flags " in *" $f "*) ;; *) return 1 ;; esac; done; }
out=""
has sse4_2 popcnt && out="v2"
has avx2 fma bmi2 && out="$out v3"
has avx512f avx512bw avx512cd avx512dq avx512vl && out="$out v4"
echo $out
