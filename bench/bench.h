/* bench.h - the clock, the median and the LeNet-5 options the benchmark
 * programs share. */
#ifndef TAPEGRAD_BENCH_BENCH_H
#define TAPEGRAD_BENCH_BENCH_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Seconds on the monotonic clock. */
static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of v[0 .. n-1] (n >= 1); sorts v in place. */
static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return v[n / 2];
}

/* The options of the LeNet-5 programs: --batch B --threads T --steps S, each
 * positive (the defaults are the values passed in). 0, or 2 with the usage on
 * stderr naming prog. */
static inline int bench_lenet5_args(int argc, char **argv, const char *prog, int64_t *batch,
                                    int *threads, int *steps) {
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--batch") && a + 1 < argc) *batch = atoll(argv[++a]);
        else if (!strcmp(argv[a], "--threads") && a + 1 < argc) *threads = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--steps") && a + 1 < argc) *steps = atoi(argv[++a]);
        else {
            fprintf(stderr, "usage: %s [--batch %lld] [--threads %d] [--steps %d]\n", prog,
                    (long long)*batch, *threads, *steps);
            return 2;
        }
    }
    if (*batch < 1 || *threads < 1 || *steps < 1) {
        fprintf(stderr, "%s: batch, threads and steps must be positive\n", prog);
        return 2;
    }
    return 0;
}

#endif
