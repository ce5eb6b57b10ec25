#!/bin/sh
# mpi.sh BUILD - data-parallel LeNet-5 throughput at np = 1 and np = 2 (one
# thread per rank, per-rank batch 64, Fashion-MNIST, float32, Adam), with
# the share of np = 2's wall time spent in dist_allreduce_grads (make
# bench-mpi; make bench runs it too when Open MPI is installed).
# BENCH_MPI_STEPS (default 400) steps per run, BENCH_ROUNDS (default 3)
# rounds alternating np = 1 and np = 2; the line gives each side's median:
#   dist_scaling cpu="MODEL" ... np1_images_s=A np2_images_s=B ratio=B/A np2_comm_share=C
set -eu
build=$1
cores=$(nproc) # before mpi_env.sh: nproc obeys its OMP_NUM_THREADS=1
. "$(dirname "$0")/../scripts/mpi_env.sh"
steps=${BENCH_MPI_STEPS:-400} rounds=${BENCH_ROUNDS:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
load=$(cut -d' ' -f1-3 /proc/loadavg)
# the "epoch" line: "... 50466 images/s, allreduce 6.5% of the time"
field() { sed -n "s|.* \([0-9.]*\) $1.*|\1|p" "$2" | tail -n 1; }
med() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
r=0
while [ $r -lt "$rounds" ]; do
    for np in 1 2; do
        timeout 600 mpirun -np $np "$build/examples/dist/lenet5" --batch 64 --steps "$steps" \
            --check-every 0 > "$tmp/out" 2>&1 || { cat "$tmp/out" >&2; exit 1; }
        field 'images/s' "$tmp/out" >> "$tmp/np$np.ips"
        sed -n 's/.*allreduce \([0-9.]*\)% of the time.*/\1/p' "$tmp/out" | tail -n 1 >> "$tmp/np$np.comm"
    done
    r=$((r + 1))
done
a=$(med < "$tmp/np1.ips") b=$(med < "$tmp/np2.ips") c=$(med < "$tmp/np2.comm")
echo "dist_scaling cpu=\"$cpu\" cores=$cores load=\"$load\" model=lenet5 batch_per_rank=64 threads_per_rank=1" \
    "steps=$steps np1_images_s=$a np2_images_s=$b ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }')" \
    "np2_comm_share=$c%"
