/* pool_kernels.c - max pooling's 2x2 stride-2 plane kernel, compiled once per
 * ISA variant (pool_kernels.h, isa.h): the four taps of a row of outputs are
 * reduced with selects, so each variant's compiler uses its own vector width
 * (it was 7.5 % of a LeNet-5 step at batch 64 built for the baseline). On v3
 * and v4 a row's inputs are whole-vector loads split by shuffles (see
 * POOL_VECTORS); when the pools read the whole batch's conv output from
 * memory that form was no faster (BENCHMARKS.md), but conv2d_max_pool2d
 * hands them each image's output in cache. On SSE the stride-2 loads stay
 * in `omp simd` loops. The kernels are plain C in pool_kernels_t.h, included
 * once per element type. */
#include <string.h>

#include "pool_kernels.h"

#define POOL_SIMD _Pragma("omp simd")
/* Explicit vectors (max_chunk8) on AVX2 and AVX-512, whose two-source
 * shuffles split a row's columns in one instruction each; on SSE they cost
 * 6x the omp simd loop (1.05 against 6.4 ns an output, LeNet's conv1 planes
 * in L1, AMD EPYC Zen 5), which stays there. The unpool's vectors, which
 * interleave (SSE's unpack instructions), are used on every variant: v2's
 * scalar loop, which the compiler left with a branch per tap, was 12 % of
 * its LeNet-5 batch-64 step. */
#if defined(__AVX2__)
#define POOL_VECTORS 1
#else
#define POOL_VECTORS 0
#endif

typedef int32_t mask_t_float; /* the lanes of a comparison of T vectors */
typedef int64_t mask_t_double;

#define T float
#define POOL(x) x##_float
#include "pool_kernels_t.h"
#undef POOL
#undef T

#define T double
#define POOL(x) x##_double
#include "pool_kernels_t.h"
#undef POOL
#undef T

const pool_kernels ISA_SYM(tg_pool_kernels) = {
    .max_2x2_float = max_2x2_float,
    .max_2x2_double = max_2x2_double,
    .max_2x2_code_float = max_2x2_code_float,
    .max_2x2_code_double = max_2x2_code_double,
    .unpool_2x2_code_float = unpool_2x2_code_float,
    .unpool_2x2_code_double = unpool_2x2_code_double,
};
