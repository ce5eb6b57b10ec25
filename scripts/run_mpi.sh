#!/bin/sh
# run_mpi.sh BUILD - make check-mpi on this machine (loopback, np = 2):
#   - the core library and a build without MPI=1 reference no MPI;
#   - tests/mpi/test_dist at np = 2 and np = 1;
#   - jobs that must end, naming the rank, within 30 s: rank 1 fails in a
#     step (dist_abort), rank 1 is killed, rank 1 is given a missing data
#     directory (examples/dist/lenet5);
#   - the example's checkpoints: 10 steps, a checkpoint, 10 more steps from it
#     write the same file, byte for byte, as 20 steps in one run;
#   - examples/dist/chargpt at np = 2 on a small text (the repository's docs):
#     3 steps comparing the ranks' parameters every step, two runs writing
#     the same model file, 2 + 2 steps through a checkpoint writing the file
#     4 steps write, np = 1 writing the checkpoint examples/chargpt writes,
#     and a rank without its corpus ending the job naming it.
# Every mpirun runs under a timeout, so a hang is a failure, not a stall.
set -u
build=$1
. "$(dirname "$0")/mpi_env.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
ok() { echo "run_mpi: ok: $1"; passed=$((passed + 1)); }
bad() { echo "run_mpi: FAILED: $1"; failed=$((failed + 1)); }

# The MPI layer is a separate library: nothing of MPI in the core.
mpi_syms=$(nm "$build/libtapegrad.a" 2>/dev/null | grep -E ' U (P?MPI_|ompi_|opal_)' | sort -u)
mpi_libs=$(readelf -d "$build"/libtapegrad.so.* 2>/dev/null | grep NEEDED | grep -iE 'mpi|open-pal|open-rte')
mpi_incl=$(grep -rlE '#include *[<"](mpi\.h|tapegrad_dist\.h)' autograd ops nn include/tapegrad.h examples/*.c tools 2>/dev/null)
mpi_make=$(make -n --no-print-directory BUILD="$tmp/core" MPI= all 2>/dev/null | sed "s|$tmp||g" |
    grep -iE 'mpi|dist')
if [ -z "$mpi_syms$mpi_libs$mpi_incl$mpi_make" ]; then
    ok "the core library and the build without MPI=1 reference no MPI"
else
    bad "MPI reaches the core: $mpi_syms $mpi_libs $mpi_incl $mpi_make"
fi

for np in 2 1; do
    if timeout 150 mpirun -np $np "$build/tests/mpi/test_dist" "$tmp"; then
        ok "test_dist at np = $np"
    else
        bad "test_dist at np = $np (exit $?)"
    fi
done

# must_end NAME PATTERN COMMAND...: the job fails, within 30 s, and its
# output names the rank (PATTERN).
must_end() {
    name=$1 pattern=$2
    shift 2
    start=$(date +%s)
    timeout 60 "$@" > "$tmp/out" 2>&1
    rc=$? took=$(($(date +%s) - start))
    if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $took -le 30 ] && grep -qE "$pattern" "$tmp/out"; then
        ok "$name: the job ended in ${took} s, naming the rank (exit $rc)"
    else
        bad "$name: the job did not end as it should (exit $rc, ${took} s):"
        cat "$tmp/out"
    fi
}
must_end "rank 1 fails in a step" "rank 1 of 2: step 3: nn_loader_set_shard: loader is NULL" \
    mpirun -np 2 "$build/tests/mpi/test_dist" "$tmp" --fail
must_end "rank 1 is killed" "rank 1 .*(signal 9|Killed)" \
    mpirun -np 2 "$build/tests/mpi/test_dist" "$tmp" --crash
ex=$build/examples/dist/lenet5
must_end "rank 1 has no data" "failed on rank\(s\) 1 of 2; rank 1: $tmp/missing/train-images-idx3-ubyte.gz: no such file" \
    mpirun -np 1 "$ex" --steps 2 : -np 1 "$ex" --steps 2 --data "$tmp/missing"

# Resume through the example (Fashion-MNIST, scripts/deps.sh installs it).
if timeout 120 mpirun -np 2 "$ex" --steps 20 --save "$tmp/a.st" > "$tmp/out" 2>&1 &&
    timeout 120 mpirun -np 2 "$ex" --steps 10 --save "$tmp/b.st" >> "$tmp/out" 2>&1 &&
    timeout 120 mpirun -np 2 "$ex" --steps 10 --resume "$tmp/b.st" --save "$tmp/c.st" >> "$tmp/out" 2>&1 &&
    cmp -s "$tmp/a.st" "$tmp/c.st"; then
    ok "examples/dist/lenet5: 10 + 10 steps through a checkpoint equal 20 steps, byte for byte"
else
    bad "examples/dist/lenet5 resume:"; cat "$tmp/out"
fi

# The GPT (examples/chargpt.h's model and loop), on a small text.
gpt=$build/examples/dist/chargpt
mkdir -p "$tmp/text"
cat docs/*.md > "$tmp/text/docs"
gargs="--data $tmp/text --batch 2 --quiet"
if timeout 120 mpirun -np 2 "$gpt" $gargs --steps 3 --check-every 1 --save "$tmp/g1.st" > "$tmp/out" 2>&1 &&
    timeout 120 mpirun -np 2 "$gpt" $gargs --steps 3 --check-every 1 --save "$tmp/g2.st" >> "$tmp/out" 2>&1 &&
    grep -q "^steps=3 val_loss=" "$tmp/out" && cmp -s "$tmp/g1.st" "$tmp/g2.st"; then
    ok "examples/dist/chargpt: 3 steps at np = 2, the ranks equal at every step, two runs bit-identical"
else
    bad "examples/dist/chargpt at np = 2:"; cat "$tmp/out"
fi
if timeout 120 mpirun -np 2 "$gpt" $gargs --steps 4 --checkpoint "$tmp/g4.ck" > "$tmp/out" 2>&1 &&
    timeout 120 mpirun -np 2 "$gpt" $gargs --steps 2 --checkpoint "$tmp/g2.ck" >> "$tmp/out" 2>&1 &&
    timeout 120 mpirun -np 2 "$gpt" $gargs --steps 2 --resume "$tmp/g2.ck" --checkpoint "$tmp/g22.ck" >> "$tmp/out" 2>&1 &&
    cmp -s "$tmp/g4.ck" "$tmp/g22.ck"; then
    ok "examples/dist/chargpt: 2 + 2 steps through a checkpoint equal 4 steps, byte for byte"
else
    bad "examples/dist/chargpt resume:"; cat "$tmp/out"
fi
if timeout 120 mpirun -np 1 "$gpt" $gargs --steps 2 --checkpoint "$tmp/n1.ck" > "$tmp/out" 2>&1 &&
    timeout 120 "$build/examples/chargpt" $gargs --steps 2 --checkpoint "$tmp/one.ck" >> "$tmp/out" 2>&1 &&
    cmp -s "$tmp/n1.ck" "$tmp/one.ck"; then
    ok "examples/dist/chargpt at np = 1 trains as examples/chargpt, byte for byte"
else
    bad "examples/dist/chargpt at np = 1 against examples/chargpt:"; cat "$tmp/out"
fi
must_end "rank 1 has no corpus" "reading the corpus failed on rank\(s\) 1 of 2" \
    mpirun -np 1 "$gpt" $gargs --steps 2 : -np 1 "$gpt" --data "$tmp/missing" --batch 2 --quiet --steps 2

echo "run_mpi: $passed passed, $failed failed"
[ $failed -eq 0 ]
