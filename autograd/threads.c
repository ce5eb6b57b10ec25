/* threads.c - one setting for OpenMP kernels and OpenBLAS's GEMM threads.
 *
 * One thread unless asked for more. libgomp's and OpenBLAS's threads spin
 * while they wait for each other, so on a machine busy with other work more
 * threads can be many times slower than one (2 threads: 66 -> 320 ms a step
 * for a user's model). More threads come from tapegrad_set_threads(n) or from
 * OMP_NUM_THREADS in the environment, the user's explicit choice. The default
 * is applied when the library is loaded, before any GEMM, so OpenBLAS does
 * not keep its default of one thread per core. So is the work a loop needs
 * before it enters a parallel region (parallel_pays, internal.h), and how the
 * convolutions share images among threads (tg_threads_sleep): both depend on
 * OMP_WAIT_POLICY. */
#include <omp.h>
#include <stdlib.h>
#include <strings.h>

#include "internal.h"

void openblas_set_num_threads(int n); /* OpenBLAS's own API (cblas.h) */

static int n_threads = 1;
static int64_t parallel_min = PARALLEL_MIN_ELEMS;

void tapegrad_set_threads(int n) {
    if (n < 1) n = 1;
    n_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int tapegrad_threads(void) { return n_threads; }

int64_t tg_parallel_min_for(const char *policy) {
    return policy && strcasecmp(policy, "passive") == 0 ? PARALLEL_MIN_PASSIVE : PARALLEL_MIN_ELEMS;
}

int64_t tg_parallel_min(void) { return parallel_min; }

bool tg_threads_sleep(void) { return parallel_min == PARALLEL_MIN_PASSIVE; }

__attribute__((constructor)) static void threads_default(void) {
    const char *env = getenv("OMP_NUM_THREADS");
    tapegrad_set_threads(env && *env ? omp_get_max_threads() : 1);
    parallel_min = tg_parallel_min_for(getenv("OMP_WAIT_POLICY"));
}
