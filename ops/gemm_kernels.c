/* gemm_kernels.c - GEMMs with a few rows, compiled once per ISA variant
 * (isa.h); tg_blas_gemm (blas.c) sends them here and the rest to OpenBLAS.
 *
 *   C (M, N) = A (M, K) B^T + beta C,    B (N, K): rows of B contiguous
 *
 * (and C = A B + beta C for up to GEMM_AB_M rows, gemm_ab, and C = A^T B +
 * beta C for an inner size up to GEMM_ATB_K, gemm_atb: see blas.h)
 *
 * is what a linear layer computes, Y = X W^T, at a small batch M. OpenBLAS
 * packs all of W into its panel layout on every call whatever M is; its
 * AVX-512 build has a small-matrix path that skips the copy, its AVX2
 * (Haswell) build does not, and at M = 2 the copy cost as much as the
 * products: the whole-LeNet-5 float64 check (two images, a forward per
 * perturbed number, 48,000 of them in f1's [120, 400] weight) spent 83% of
 * its time in dgemm there, 3.8 s against 0.8 s with the AVX-512 kernels.
 * Here each row of B is read once, straight from memory, and dotted with
 * every row of A: up to GEMM_MB rows of A by GEMM_NB rows of B of vector
 * sums per block, reduced across lanes once at the end (in lane order, so
 * the bits do not depend on anything but the variant). The kernels, plain C
 * per element type, are in gemm_kernels_t.h. */
#include <string.h>

#include "blas.h"
#include "isa.h"

/* Vector bytes of the variant; a block of mb rows of A by nb rows of B keeps
 * mb nb sums and nb + 1 operands in registers: at most 4 x 2 or 2 x 4 (13 of
 * 16 registers on SSE and AVX2). */
#if defined(__AVX512F__)
enum { GEMM_VB = 64 };
#elif defined(__AVX2__)
enum { GEMM_VB = 32 };
#else
enum { GEMM_VB = 16 };
#endif
/* The few-row A B kernel's tile (and gemm_atb's): GEMM_AB_MR rows by
 * GEMM_AB_NV vectors of sums, plus GEMM_AB_NV operands and a broadcast: 19
 * of AVX-512's 32 registers (8 x 2; 4 x 4 and 16 x 1 measured no faster for
 * 16 rows by [256, 1024] on an AMD EPYC Zen 4), 16 of 16 on AVX2 (4 x 3),
 * 11 of 16 on SSE (4 x 2). gemm_atb on an Intel Xeon (family 6 model 207),
 * time against OpenBLAS's Haswell kernels in the same process, two runs:
 * 4 x 3 0.79-0.85 for LeNet-5's conv2 input gradient [150, 16] x [16, 100],
 * 0.65-0.71 for [27, 16] x [16, 1024], 0.72-0.74 for [72, 6] x [6, 196];
 * 4 x 2 0.84-0.93, 0.73-0.80, 0.83-0.84 (6 x 2 and 3 x 4 between them,
 * 2 x 6 last; [400, 8] x [8, 64]: 0.76-0.86 for all but 2 x 6). On SSE no
 * tile of these led on every shape. Each C[m, n] sums over k in order
 * whatever the tile, so the tile does not change the bits. */
#if defined(__AVX512F__)
enum { GEMM_AB_MR = 8, GEMM_AB_NV = 2 };
#elif defined(__AVX2__)
enum { GEMM_AB_MR = 4, GEMM_AB_NV = 3 };
#else
enum { GEMM_AB_MR = 4, GEMM_AB_NV = 2 };
#endif
_Static_assert(GEMM_AB_MR <= 8, "ab_rows has a case per row count up to 8");
#define UNROLL _Pragma("GCC unroll 16")

#define NAME(x) ISA_CAT(x, T)
#define T float
#include "gemm_kernels_t.h"
#undef T
#define T double
#include "gemm_kernels_t.h"
#undef T
#undef NAME

const gemm_kernels ISA_SYM(tg_gemm_kernels) = {{gemm_abt_float, gemm_abt_double},
                                                {gemm_ab_float, gemm_ab_double},
                                                {gemm_atb_float, gemm_atb_double},
                                                {gemm_outer_float, gemm_outer_double}};
