# shellcheck shell=sh
# mpi_env.sh - sourced before mpirun on this one machine (containers, CI):
# root may run jobs (Open MPI refuses by default), more ranks than cores are
# allowed, shared memory without the cross-memory-attach copy (blocked in
# many containers) and no network transports, and one thread per rank.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
export OMPI_MCA_btl=self,vader OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# A rank waiting in a collective yields its core instead of spinning: on a
# machine shared with other work (CI, a shared build host) a spinning rank takes the
# core its partner needs; at load 6-9 on 2 cores this doubled np = 2's
# LeNet-5 throughput (0.26-0.34x np = 1 spinning, 0.53-0.76x yielding).
export OMPI_MCA_mpi_yield_when_idle=1
