/* act_kernels.h - the float32 kernels of the smooth activations (e^x,
 * sigmoid, tanh, the tanh form of GELU, rows of softmax and log_softmax),
 * compiled once per ISA variant (act_kernels.c; isa.h). The ops that call
 * them are in activation.c and attention.c; float64 keeps libm there.
 *
 * Each kernel evaluates its own range reduction and polynomial in float32,
 * written as plain C loops the compiler vectorises, accurate to a few
 * float32 ulps (tests/test_ops_act_fast.c holds every variant to float64
 * libm over a sweep that includes +-inf, NaN, huge, tiny and subnormal
 * inputs). x and z (or dx) may be the same array; nothing else aliases. */
#ifndef TAPEGRAD_ACT_KERNELS_H
#define TAPEGRAD_ACT_KERNELS_H

#include "isa.h"

typedef struct {
    /* z = e^x */
    void (*exp)(const float *x, float *z, int64_t n);
    /* z = 1 / (1 + e^-x) */
    void (*sigmoid)(const float *x, float *z, int64_t n);
    /* z = tanh x */
    void (*tanh)(const float *x, float *z, int64_t n);
    /* z = x (1 + tanh(k0 (x + k1 x^3))) / 2, k0 = sqrt(2 / pi), k1 = 0.044715 */
    void (*gelu_tanh)(const float *x, float *z, int64_t n);
    /* dx += g gelu_tanh'(x); write: dx = g gelu_tanh'(x) (dx is a fresh
     * gradient buffer, its contents garbage and never read) */
    void (*gelu_tanh_vjp)(const float *x, const float *g, float *dx, int64_t n, bool write);
    /* One contiguous row of D: z = e^(x - m) / s (log_form: z = x - m - ln s),
     * m = max x, s = sum e^(x - m) accumulated in double. */
    void (*softmax_row)(const float *x, float *z, int64_t D, bool log_form);
    /* One contiguous row of log_softmax's vjp: dx += g - e^z sum(g). */
    void (*log_softmax_row_vjp)(const float *z, const float *g, float *dx, int64_t D);
} act_kernels;

extern const act_kernels tg_act_kernels_v2, tg_act_kernels_v3, tg_act_kernels_v4;

/* The kernels of variant v (any variant, supported by this CPU or not: the
 * caller checks tg_isa_supported before running them). */
const act_kernels *tg_act_kernels_of(isa_level v);

/* The kernels of the variant in use, for an op's forward or vjp: v2 when
 * TAPEGRAD_ISA was refused after the op was built (a test choosing again). */
const act_kernels *tg_act_kernels_run(void);
/* For the builders of float32 ops that run these kernels: -1 with the reason
 * set when TAPEGRAD_ISA names a variant this CPU cannot run (so they refuse,
 * as conv2d does), else 0; 0 for any other dtype or NULL. */
int tg_act_variant_check(const tensor *a);

#endif
