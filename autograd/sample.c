/* sample.c - seeded, non-uniform sample inputs for the checker's op cases,
 * kept away from kinks, ties and domain edges. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

tensor *tg_sample_tensor(rng *g, int ndim, const int64_t *shape, double lo, double hi) {
    return tensor_rand(g, DTYPE_F64, ndim, shape, lo, hi);
}

tensor *tg_sample_tensor_avoiding(rng *g, int ndim, const int64_t *shape, double lo, double hi,
                               const double *avoid, int n_avoid, double margin) {
    tensor *t = tensor_new(DTYPE_F64, ndim, shape);
    if (!t) return NULL;
    double *p = t->data;
    for (int64_t i = 0; i < t->size; i++) {
        for (int tries = 0;; tries++) {
            double v = lo + (hi - lo) * rng_uniform(g);
            bool ok = true;
            for (int k = 0; k < n_avoid; k++)
                if (fabs(v - avoid[k]) < margin) ok = false;
            if (ok || tries > 1000) {
                p[i] = v;
                break;
            }
        }
    }
    return t;
}

tensor *tg_sample_tensor_distinct(rng *g, int ndim, const int64_t *shape, double lo, double gap) {
    tensor *t = tensor_new(DTYPE_F64, ndim, shape);
    if (!t) return NULL;
    double *p = t->data;
    for (int64_t i = 0; i < t->size; i++) p[i] = lo + gap * (double)i;
    for (int64_t i = t->size - 1; i > 0; i--) { /* Fisher-Yates */
        int64_t j = (int64_t)rng_below(g, (uint64_t)i + 1);
        double tmp = p[i];
        p[i] = p[j];
        p[j] = tmp;
    }
    return t;
}

tensor *tg_sample_labels(rng *g, int ndim, const int64_t *shape, int64_t n_classes) {
    tensor *t = tensor_new(DTYPE_I64, ndim, shape);
    if (!t) return NULL;
    int64_t *p = t->data;
    for (int64_t i = 0; i < t->size; i++) p[i] = (int64_t)rng_below(g, (uint64_t)n_classes);
    return t;
}

void tg_sample_name(op_sample *s, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->name, sizeof s->name, fmt, ap);
    va_end(ap);
}
