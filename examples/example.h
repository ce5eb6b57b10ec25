/* example.h - what every example program shares: the clock, the message of a
 * failed library call, and option numbers read strictly (all of the text, in
 * range) with a message naming the program and the option. Header-only
 * (static inline, so a program may use only some): every examples/NAME.c is
 * a program of its own. */
#ifndef TAPEGRAD_EXAMPLES_EXAMPLE_H
#define TAPEGRAD_EXAMPLES_EXAMPLE_H

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../include/tapegrad.h"

/* Seconds on the monotonic clock. */
static inline double ex_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "prog: what: the library's message" on stderr; returns 1 (the exit status). */
static inline int ex_fail(const char *prog, const char *what) {
    fprintf(stderr, "%s: %s: %s\n", prog, what, tapegrad_error() ? tapegrad_error() : "failed");
    return 1;
}

/* --name's value s as a whole number in [lo, hi]: 0, or -1 with a message. */
static inline int ex_int_opt(const char *prog, const char *name, const char *s, long long lo, long long hi,
                      int64_t *v) {
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (!*s || *end || errno || x < lo || x > hi) {
        fprintf(stderr, "%s: --%s needs a whole number from %lld to %lld, not \"%s\"\n", prog, name,
                lo, hi, s);
        return -1;
    }
    *v = (int64_t)x;
    return 0;
}

/* --name's value s as a finite number in [lo, hi]: 0, or -1 with a message. */
static inline int ex_real_opt(const char *prog, const char *name, const char *s, double lo, double hi,
                       double *v) {
    char *end;
    double x = strtod(s, &end);
    if (!*s || *end || !isfinite(x) || x < lo || x > hi) {
        fprintf(stderr, "%s: --%s needs a number from %g to %g, not \"%s\"\n", prog, name, lo, hi, s);
        return -1;
    }
    *v = x;
    return 0;
}

/* --name's value s as a finite number above 0: 0, or -1 with a message. */
static inline int ex_pos_opt(const char *prog, const char *name, const char *s, double *v) {
    char *end;
    double x = strtod(s, &end);
    if (!*s || *end || !isfinite(x) || !(x > 0)) {
        fprintf(stderr, "%s: --%s needs a finite number above 0, not \"%s\"\n", prog, name, s);
        return -1;
    }
    *v = x;
    return 0;
}

#endif
