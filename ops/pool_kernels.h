/* pool_kernels.h - max pooling's 2x2 stride-2 unpadded plane kernel (LeNet's
 * pools), compiled once per ISA variant (pool_kernels.c; isa.h). pool.c
 * calls it and keeps the other pooling kernels, built for the baseline.
 *
 * One (b, c) plane of W columns: y[i, j] = max of x[2i, 2j], x[2i, 2j+1],
 * x[2i+1, 2j], x[2i+1, 2j+1] for i < OH, j < OW (2 OW <= W, 2 OH <= H);
 * idx[i, j] = the argmax's flat offset in the plane. Ties go to the first
 * maximum in window order (row by row, left to right); a NaN wins over
 * numbers and the first NaN in window order is kept. The offsets are worked
 * out in int32 lanes, as wide as float32's, and widened as they are stored
 * (5.0 -> 4.5 % of a v3 LeNet-5 step at batch 64, AMD EPYC Zen 4), so the
 * caller passes planes of at most INT32_MAX elements. The naive kernels
 * (tg_pool_max_2x2_naive_*, pool.c) define the result: every variant gives
 * the same values and offsets (tests/test_ops_pool.c). */
#ifndef TAPEGRAD_POOL_KERNELS_H
#define TAPEGRAD_POOL_KERNELS_H

#include "isa.h"

/* The lanes of vectors (GCC vector extensions) where v replaces best as a
 * window's maximum: v > best, or v is NaN and best is not. The one rule of
 * the vector forms of the 2x2 kernel here and of conv2d_max_pool2d's pool on
 * the channels-in-lanes layout (conv_kernels_t.h), so both give max_pool2d's
 * values and argmaxes. */
#define TG_POOL_TAKES(best, v) (((v) > (best)) | (((v) != (v)) & ((best) == (best))))

typedef struct {
    void (*max_2x2_float)(const float *x, int64_t W, int64_t OH, int64_t OW, float *y, int64_t *idx);
    void (*max_2x2_double)(const double *x, int64_t W, int64_t OH, int64_t OW, double *y,
                           int64_t *idx);
    /* the same maxima, each argmax kept as its tap in window order (0 top
     * left, 1 top right, 2 bottom left, 3 bottom right): offset
     * (2 i + t / 2) W + 2 j + t % 2 (conv2d_max_pool2d's saved form) */
    void (*max_2x2_code_float)(const float *x, int64_t W, int64_t OH, int64_t OW, float *y,
                               int32_t *code);
    void (*max_2x2_code_double)(const double *x, int64_t W, int64_t OH, int64_t OW, double *y,
                                int32_t *code);
    /* the adjoint into a whole (H, W) plane, H >= 2 OH, W >= 2 OW, its rows
     * ld >= W apart, each element written once: dx = g at each window's
     * tap, 0 elsewhere, and 0 in the ld - W elements after each row but the
     * last (the plane is (H - 1) ld + W long: a convolution's wide layout).
     * A tap outside 0-3 (conv.h's CONV_TAP_DEAD) takes no gradient: its
     * window's four elements get 0. */
    void (*unpool_2x2_code_float)(const float *g, const int32_t *code, int64_t OH, int64_t OW,
                                  int64_t H, int64_t W, int64_t ld, float *dx);
    void (*unpool_2x2_code_double)(const double *g, const int32_t *code, int64_t OH, int64_t OW,
                                   int64_t H, int64_t W, int64_t ld, double *dx);
} pool_kernels;

extern const pool_kernels tg_pool_kernels_v2, tg_pool_kernels_v3, tg_pool_kernels_v4;

/* The kernels of variant v (the caller checks tg_isa_supported). */
const pool_kernels *tg_pool_kernels_of(isa_level v);
/* The kernels of the variant in use; v2 when none is (TAPEGRAD_ISA refused). */
const pool_kernels *tg_pool_kernels_run(void);

/* The oracle and reference: a scalar loop over the four taps in window order. */
void tg_pool_max_2x2_naive_float(const float *x, int64_t W, int64_t OH, int64_t OW, float *y,
                                 int64_t *idx);
void tg_pool_max_2x2_naive_double(const double *x, int64_t W, int64_t OH, int64_t OW, double *y,
                                  int64_t *idx);

#endif
