#!/bin/sh
# mpi.sh BUILD - data-parallel LeNet-5 throughput at np = 1 and np = 2 (one
# thread per rank, per-rank batch 64, 400 steps of Fashion-MNIST), with the
# share of the time spent in the gradient allreduce (make bench-mpi).
set -eu
build=$1
. "$(dirname "$0")/../scripts/mpi_env.sh"
lscpu | grep -E '^(Model name|CPU\(s\)|Thread)' || true
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
for np in 1 2; do
    echo "np = $np:"
    mpirun -np $np "$build/examples/dist/lenet5" --batch 64 --steps 400 --check-every 0 | tail -n 1
done
