/* threads.c - one setting for OpenMP kernels and OpenBLAS's GEMM threads. */
#include <omp.h>

#include "internal.h"

void openblas_set_num_threads(int n); /* OpenBLAS's own API (cblas.h) */

static int n_threads = 1;
static int n_threads_set;

void tapegrad_set_threads(int n) {
    if (n < 1) n = 1;
    n_threads = n;
    n_threads_set = 1;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int tapegrad_threads(void) { return n_threads_set ? n_threads : omp_get_max_threads(); }
