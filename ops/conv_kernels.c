/* conv_kernels.c - the kernels of 2-D convolution (cross-correlation, as in
 * PyTorch), compiled once per ISA variant (isa.h; the op itself is in
 * conv.c): im2col and OpenBLAS GEMM one image at a time, or direct kernels.
 *
 *   x (B, C, H, W), w (OC, C/G, KH, KW), b (OC) or NULL -> y (B, OC, OH, OW)
 *   OH = (H + 2 ph - dh (KH - 1) - 1) / sh + 1, likewise OW.
 *
 * This file holds what the element types share: the geometry and the path
 * of each direction (conv_geom_of), the scratch layout, the variant's
 * register blocks and vector types. The kernels themselves are plain C in
 * conv_kernels_t.h, included below once per element type (float, double).
 * The naive loops the tests hold every path to are in tests/test_ops_conv.c.
 *
 * For image b, with P = OH OW and K = (C/G) KH KW, the columns of group g are
 * a K x P matrix whose column (oh, ow) holds the input patch under output
 * pixel (oh, ow); row (c, kh, kw) is input channel c shifted by that tap.
 *
 *   y_b,g (OC/G, P) = W_g (OC/G, K) @ cols_b,g (K, P)          (+ bias)
 *   dW_g   += G_b,g (OC/G, P) @ cols_b,g^T (P, K)              summed over b
 *             (or its transpose, dW_g^T += cols_b,g @ G_b,g^T, when that is faster)
 *   dcols_b,g = W_g^T (K, OC/G) @ G_b,g (OC/G, P)              then col2im: scatter-add into dx_b
 *   db     += sum over (b, P) of G          summed per image, then as dW
 *
 * Wide columns (stride 1, the LeNet case): on the zero-padded image xp
 * (Hp = H + 2 ph rows of Wp = W + 2 pw), output pixel (oh, ow) reads
 * xp[c, (oh + kh dh) Wp + ow + kw dw], so if the output is laid out with row
 * pitch Wp instead of OW, row (c, kh, kw) of the columns is ONE contiguous
 * run of xp of length L = (OH - 1) Wp + OW. im2col and col2im become long
 * copies instead of OH short ones (LeNet: 10-element rows, where the short
 * copies cost more than the GEMMs). The price: GEMM columns for the Wp - OW
 * pixels past each row's end, which are dropped on output, and zeros in the
 * upstream gradient there, so they add nothing to dW or dx.
 *
 * Tight columns (stride 1, rows short next to the kernel: LeNet's conv2, OW
 * 10 of Wp 14): wide columns would spend 29% of every GEMM on dropped
 * pixels, so the columns stay plain (L = P), but are built from the padded
 * image by whole-vector copies, one per run of OW, and their transpose is a
 * gather that writes each input pixel once (col2im_tight). Other strides use
 * the plain columns, built element-range by element-range.
 *
 * One image's columns (LeNet: under 100 KB in float32) stay in L2 between
 * im2col and GEMM; at batch 64 that measured 1.5-3x faster than one GEMM
 * over a whole-batch column matrix, which streams megabytes through memory.
 * The vjp recomputes the columns rather than keeping the whole batch's.
 *
 * Scratch: one slot (columns and the wide buffers) per thread. The builder
 * allocates the slots in the tape's arena as saved[0] (ip[7] slots), so
 * forward never allocates and can be replayed; the vjp allocates its own in
 * the arena (the thread count may have changed by then).
 *
 * Threads: images are split over OpenMP threads, or under passive waiting
 * over tg_par_items' workers (conv_par; OpenBLAS is held to one thread
 * meanwhile). Each image's output and dx are computed by one thread
 * in a fixed order; dW is summed per fixed chunk of CONV_CHUNK images and the
 * chunk sums are added in chunk order, so results are bit-identical for any
 * thread count. */
#include <string.h>

#include <omp.h>

#include "blas.h"
#include "conv.h"
#include "pool_kernels.h"

enum { CONV_DIRECT_K = 32 }; /* largest contraction for the direct forward */
/* The vector unit of the variant, and the register blocks sized for it: each
 * block's sums plus the operands of one step fit the register file (AVX2 and
 * SSE: 16 registers, AVX-512: 32), or the sums would live in memory.
 *   CONV_TB            bytes of the vectors of output channels (fwd_cl,
 *                      dw_direct), of tight columns' copies and of the
 *                      vectors of dw_wide and bias sums: one register
 *   CONV_VB, CONV_NV,  the direct forward: CONV_NV vectors of CONV_VB bytes
 *   CONV_OB            of pixels by CONV_OB output channels (see direct_fwd)
 *   CONV_DWK, CONV_DWNV taps of one kernel row x vectors of output channels
 *   CONV_DWPH          per block of the direct weight gradient (dw_direct),
 *                      and the sets of its sums that take the pixels in turn
 *   CONV_DWO, CONV_DWT output channels x taps per block of dw_wide
 *   CONV_FB, CONV_FNV  pixels x vectors of output channels per block of fwd_cl
 * v4's are the values measured on AVX-512 (comments at each kernel). */
#if defined(__AVX512F__)
/* The direct forward (conv1: 6 output channels, 32-pixel wide rows): one
 * block is all 6 channels x 2 full 16-float registers (12 sums, per tap 2
 * loads and 6 broadcasts). The earlier 3 channels x 4 half-width vectors
 * (the AVX2 form, 12 sums of 8 floats) did half the work per FMA: conv1
 * fwd+bwd at batch 64 measured 0.65 -> 0.57 ms (medians of 9 interleaved
 * runs of bench/kernels at TAPEGRAD_ISA=v4, AMD EPYC Zen 5). The weight
 * gradient's blocks 6 x 4 and 3 x 8 measured no faster than 3 x 5. */
enum { CONV_TB = 64, CONV_VB = 64, CONV_NV = 2, CONV_OB = 6 };
enum { CONV_DWK = 5, CONV_DWNV = 1, CONV_DWPH = 2, CONV_DWO = 3, CONV_DWT = 5, CONV_FB = 12, CONV_FNV = 1 };
#elif defined(__AVX2__)
/* The direct forward and dw_wide (conv1): chosen among 7 blockings by the
 * fastest of 6 runs of bench/kernels at TAPEGRAD_ISA=v3 (ms, conv1 / conv2
 * fwd+bwd at batch 64): this one 0.61 / 1.84; the v4 shapes cut to 16
 * registers (NV 3, OB 3, DWO 2, DWT 5) 0.91 / 1.97; the v4 values unchanged
 * (64-byte vectors as pairs of registers) 2.05 / 6.45.
 * The kernels with the output channels in the lanes (conv2: 16 channels, two
 * 8-float vectors) take both vectors per block, so each broadcast input feeds
 * two FMAs and 10-12 independent sums hide the FMA latency: fwd_cl 6 pixels x
 * 2 vectors (12 sums, 2 weight vectors, 1 broadcast: 15 registers), dw_direct
 * 5 taps x 2 vectors (10 sums). With one vector per block (v4's form) conv2
 * ran at 1.9 ms. */
enum { CONV_TB = 32, CONV_VB = 32, CONV_NV = 4, CONV_OB = 2 };
enum { CONV_DWK = 5, CONV_DWNV = 2, CONV_DWPH = 1, CONV_DWO = 2, CONV_DWT = 4, CONV_FB = 6, CONV_FNV = 2 };
#else
/* SSE: 16 registers of 4 floats, and no FMA. dw_wide takes 3 output channels
 * x 3 taps (9 sums, 3 + 3 operands: 15 registers); the 2 x 5 block it had
 * (10 sums and 7 operands, one more than the file) ran conv1 fwd+bwd at
 * batch 64 in 1.24-1.31 ms, 3 x 3 in 0.94-0.97 (2 x 3, 2 x 4 and 6 x 1 in
 * 0.97-1.01; the fastest of 7 runs of bench/kernels interleaved with the
 * old block, TAPEGRAD_ISA=v2, AMD EPYC Zen 5). The other blocks were the
 * fastest tried: the direct forward's 4 x 2 against 3 x 3, 2 x 3, 4 x 3,
 * 5 x 2 and 6 x 2; fwd_cl's 6 pixels x 2 vectors against 3-5 pixels and
 * 4 vectors; dw_direct's 5 taps x 2 vectors against 2 or 4 taps. */
enum { CONV_TB = 16, CONV_VB = 16, CONV_NV = 4, CONV_OB = 2 };
enum { CONV_DWK = 5, CONV_DWNV = 2, CONV_DWPH = 1, CONV_DWO = 3, CONV_DWT = 3, CONV_FB = 6, CONV_FNV = 2 };
#endif
/* body(ctx, i, slot) for i < n (an image, a chunk of images, each written
 * by its own item alone) on `threads` threads, slot the thread's scratch.
 * With spinning OpenMP threads the split is static: a dynamic one was 9 %
 * slower for LeNet-5's 2-thread step, as the next op's static split (ReLU,
 * pooling) then finds half its input in the other core's cache. With
 * sleeping ones (tg_threads_sleep) the items go to tg_par_items' workers,
 * one at a time to whichever thread is free: a libgomp thread woken for each
 * region started 40-50 us late (see tg_par_items). */
static void conv_par(int64_t n, int threads, tg_par_body body, void *ctx) {
    if (threads == 1) { /* no parallel region: its entry and exit cost 0.3-0.5 us */
        for (int64_t i = 0; i < n; i++) body(ctx, i, 0);
    } else if (tg_threads_sleep()) {
        tg_par_items(n, threads, body, ctx);
    } else {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t i = 0; i < n; i++) body(ctx, i, omp_get_thread_num());
    }
}
enum { CONV_GATHER_KW = 8 }; /* kw per pass of col2im_tight (a case of gather_sum each) */
_Static_assert(CONV_DWK <= 8 && CONV_FB <= 12, "the unrolled copies of dw_direct and fwd_cl");
/* Tight columns move whole vectors of CONV_TB bytes (at most CONV_SLACK
 * elements) and may read or write up to CONV_SLACK elements past a buffer's
 * live part; every scratch buffer has that much slack on both sides. */
enum { CONV_SLACK = 16 };


/* The geometry of x (B, C, H, W) * w (OC, C/G, KH, KW) -> (B, OC, OH, OW)
 * with ip[0..1] stride, ip[2..3] padding, ip[4..5] dilation, ip[6] groups
 * (the node's and the sample cases' layout), and this variant's paths. */
static void conv_geom_of(const tensor *x, const tensor *w, int64_t OH, int64_t OW,
                         const int64_t *ip, conv_geom *q) {
    q->B = x->shape[0], q->C = x->shape[1], q->H = x->shape[2], q->W = x->shape[3];
    q->OC = w->shape[0], q->KH = w->shape[2], q->KW = w->shape[3];
    q->OH = OH, q->OW = OW;
    q->sh = ip[0], q->sw = ip[1], q->ph = ip[2], q->pw = ip[3];
    q->dh = ip[4], q->dw = ip[5], q->G = ip[6];
    q->OCg = q->OC / q->G;
    q->K = (q->C / q->G) * q->KH * q->KW;
    q->P = q->OH * q->OW;
    q->pool = q->relu = false, q->POH = q->POW = 0; /* set by the pooled nodes */
    q->Hp = q->H + 2 * q->ph, q->Wp = q->W + 2 * q->pw;
    /* Stride 1: wide columns unless the Wp - OW dropped pixels per row cost
     * the GEMMs more than tight columns cost to build. LeNet's conv2 (OW 10,
     * Wp 14) wastes 29% of its GEMM work wide and runs tight; conv1 (OW 28,
     * Wp 32) runs wide. */
    bool s1 = q->sh == 1 && q->sw == 1;
    q->wide = s1 && 8 * (q->Wp - q->OW) <= q->Wp;
    q->tight = s1 && !q->wide;
    q->padded = (q->wide && (q->ph || q->pw)) || q->tight;
    q->L = q->wide ? (q->OH - 1) * q->Wp + q->OW : q->P;
    conv_layout cols = q->tight ? CONV_TIGHT : q->wide ? CONV_WIDE : CONV_PLAIN;
    /* A short contraction (LeNet's conv1: K 25, OC 6): building the columns
     * costs about what SGEMM then spends on them; the direct kernel reads the
     * padded image in place. Measured for conv1 at batch 64: forward plus
     * backward 10% faster. For the weight gradient the same kernel form (pixels
     * in the lanes, one load per FMA, a lane sum per weight) ran at half the
     * rate of SGEMM on the columns, and for conv2 (K 150) the direct forward
     * was no faster than SGEMM, so both stay on columns. */
    bool direct = q->wide && q->K <= CONV_DIRECT_K && q->L >= CONV_NV * CONV_VB / (int64_t)sizeof(float);
    /* The weight gradient with the output channels in the lanes (see
     * dw_direct) needs whole vectors of them: LeNet's conv2 (16) in
     * float32. It works on the image, so no columns are built in backward. */
    int64_t lanes = CONV_TB / (int64_t)tg_dtype_size(x->dtype);
    bool lanes_ok = s1 && q->OCg % lanes == 0;
    /* Forward: direct where the contraction is short; else with the output
     * channels in the lanes where they fill vectors (see fwd_cl: for
     * conv2 it replaces im2col, which cost half as much as the GEMM after
     * it); else SGEMM on this layout's columns. */
    q->fwd = direct ? CONV_FWD_DIRECT : lanes_ok ? CONV_FWD_LANES : (conv_fwd_path)cols;
    /* Weight gradient: channels in the lanes where they fill vectors; where
     * the forward is direct (conv1), the direct kernel on the wide layout (see
     * dw_wide): no columns at all for it; else SGEMM. */
    q->dwp = lanes_ok ? CONV_DW_LANES : direct ? CONV_DW_DIRECT : (conv_dw_path)cols;
    /* Input gradient: SGEMM, then the columns' transpose for the layout. */
    q->dx = (conv_dx_path)cols;
    /* The weight-gradient parts are dW^T (K, OC/G) for the lanes kernel, and
     * for SGEMM where OpenBLAS packs a short contraction with many outputs
     * faster this way round: measured 30% faster for LeNet's conv2 (K 150,
     * L 136), 10% slower for conv1 (K 25, L 892). */
    q->dw_t = q->dwp == CONV_DW_LANES || (q->dwp != CONV_DW_DIRECT && q->L < 4 * q->K);
}

/* One thread's scratch slot, in elements: columns, their gradient, the padded
 * image and its gradient, the wide output (or upstream gradient), the
 * transposed gradient and weight, and with q->pool the image's output before
 * pooling (forward) or its unpooled gradient (backward). */
typedef struct {
    int64_t cols, dcols, xp, dxp, yw, gt, wt, img, total;
} conv_slot;

static conv_slot conv_slot_of(const conv_geom *q) {
    conv_slot s;
    const int64_t S = CONV_SLACK;
    int64_t cols = q->G * q->K * q->L, img = q->padded ? q->C * q->Hp * q->Wp : 0;
    s.cols = S, s.dcols = s.cols + cols + 2 * S, s.xp = s.dcols + cols + 2 * S;
    s.dxp = s.xp + img + 2 * S;
    s.yw = s.dxp + (q->wide ? img : 0) + 2 * S;
    s.gt = s.yw + (q->wide ? q->OC * q->L : 0) + S;
    s.wt = s.gt + (q->dwp == CONV_DW_LANES ? q->OC * q->P : 0) + S;
    s.img = s.wt + (q->fwd == CONV_FWD_LANES ? q->OC * q->K : 0) + S;
    s.total = s.img + (q->pool ? q->OC * q->P : 0) + S;
    return s;
}

/* The output columns [lo, hi) whose input column ow*s + off lies in [0, W). */
static void valid_range(int64_t off, int64_t s, int64_t W, int64_t OW, int64_t *lo, int64_t *hi) {
    int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t h = W - 1 - off < 0 ? 0 : (W - 1 - off) / s + 1;
    if (h > OW) h = OW;
    if (l > h) l = h;
    *lo = l, *hi = h;
}

/* Inner loops are forced to vectorise: -O2 alone leaves them scalar. */
#define SIMD _Pragma("omp simd")

/* Whole vectors for the tight columns, and lane masks of the same width. */
typedef float vec64_float __attribute__((vector_size(CONV_TB)));
typedef double vec64_double __attribute__((vector_size(CONV_TB)));
typedef int32_t vmask_float __attribute__((vector_size(CONV_TB)));
typedef int64_t vmask_double __attribute__((vector_size(CONV_TB)));
/* Vectors of pixels for the direct forward (CONV_VB bytes, see
 * direct_fwd_block in conv_kernels_t.h). */
typedef float vec_float __attribute__((vector_size(CONV_VB)));
typedef double vec_double __attribute__((vector_size(CONV_VB)));
/* The broadcast inputs of a block (fwd_cl, dw_direct) are the next step's
 * inputs shifted by one, and GCC keeps them across steps in registers it
 * rotates, which AVX2's 16 cannot spare: the sums spilled to the stack. A
 * pointer the compiler cannot follow from one step to the next makes each
 * step load its inputs afresh (broadcasts from memory, which cost a load). */
#if defined(__AVX512F__)
#define OPAQUE(p) (void)(p) /* 32 registers: the rotation fits, and measured faster */
#else
#define OPAQUE(p) __asm__("" : "+r"(p))
#endif
/* The small loops over a register block are unrolled: at -O2 they would stay
 * loops and the accumulators would live in memory. */
#define UNROLL _Pragma("GCC unroll 16")

/* dst[c * ds + r] = src[r * ss + c] for r < rows, c < cols: the transposes
 * between an image's (OC, P) gradient or output and the (P, OC) layout of
 * the kernels with the output channels in the lanes. In float32, TRW x TRW
 * tiles (TRW the floats of one register: 16, 8 or 4) go through registers:
 * stages d = TRW/2, ..., 2, 1 each swap the off-diagonal d x d blocks of
 * every 2d x 2d block, one two-source shuffle per vector: lane l of the
 * pair's first row takes a[l] where bit d of l is clear, else b[l - d]; of
 * the second, a[l + d] where clear, else b[l]. For LeNet's conv2 ((16, 100)
 * <-> (100, 16)) the element-wise copy cost 3.5% of the step in the weight
 * gradient and 1.7% in the forward; on AVX2, 16 x 16 tiles of 64-byte
 * vectors (two registers each, 32 for a tile) spilled and cost 7% of conv2.
 * Leftover rows and columns, and float64, are copied element by element. */
enum { TRW = CONV_TB / (int)sizeof(float) };
typedef float vtr_float __attribute__((vector_size(CONV_TB)));
#define TR_STAGE(d)                                                                         \
    for (int i = 0; i < TRW; i++)                                                           \
        if (!(i & (d))) {                                                                   \
            vtr_float a = v[i], b = v[i + (d)];                                             \
            v[i] = __builtin_shufflevector(a, b, TR_LO_##d);                                \
            v[i + (d)] = __builtin_shufflevector(a, b, TR_HI_##d);                          \
        }
#if defined(__AVX512F__) /* CONV_TB 64 */
#define TR_LO_8 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define TR_HI_8 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define TR_LO_4 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27
#define TR_HI_4 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31
#define TR_LO_2 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29
#define TR_HI_2 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31
#define TR_LO_1 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30
#define TR_HI_1 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31
#define TR_STAGES UNROLL TR_STAGE(8) UNROLL TR_STAGE(4) UNROLL TR_STAGE(2) UNROLL TR_STAGE(1)
#elif defined(__AVX2__) /* CONV_TB 32 */
#define TR_LO_4 0, 1, 2, 3, 8, 9, 10, 11
#define TR_HI_4 4, 5, 6, 7, 12, 13, 14, 15
#define TR_LO_2 0, 1, 8, 9, 4, 5, 12, 13
#define TR_HI_2 2, 3, 10, 11, 6, 7, 14, 15
#define TR_LO_1 0, 8, 2, 10, 4, 12, 6, 14
#define TR_HI_1 1, 9, 3, 11, 5, 13, 7, 15
#define TR_STAGES UNROLL TR_STAGE(4) UNROLL TR_STAGE(2) UNROLL TR_STAGE(1)
#else
#define TR_LO_2 0, 1, 4, 5
#define TR_HI_2 2, 3, 6, 7
#define TR_LO_1 0, 4, 2, 6
#define TR_HI_1 1, 5, 3, 7
#define TR_STAGES UNROLL TR_STAGE(2) UNROLL TR_STAGE(1)
#endif
static void transpose_float(const float *src, int64_t ss, int64_t rows, int64_t cols,
                            float *dst, int64_t ds) {
    int64_t c0 = 0;
    for (; c0 + TRW <= cols; c0 += TRW) {
        int64_t r0 = 0;
        for (; r0 + TRW <= rows; r0 += TRW) {
            vtr_float v[TRW];
            UNROLL for (int i = 0; i < TRW; i++) memcpy(&v[i], src + (r0 + i) * ss + c0, sizeof v[i]);
            TR_STAGES
            UNROLL for (int i = 0; i < TRW; i++) memcpy(dst + (c0 + i) * ds + r0, &v[i], sizeof v[i]);
        }
        for (int64_t c = c0; c < c0 + TRW; c++)
            for (int64_t r = r0; r < rows; r++) dst[c * ds + r] = src[r * ss + c];
    }
    for (int64_t c = c0; c < cols; c++)
        for (int64_t r = 0; r < rows; r++) dst[c * ds + r] = src[r * ss + c];
}
static void transpose_double(const double *src, int64_t ss, int64_t rows, int64_t cols,
                             double *dst, int64_t ds) {
    for (int64_t c = 0; c < cols; c++)
        for (int64_t r = 0; r < rows; r++) dst[c * ds + r] = src[r * ss + c];
}

/* The kernels of each element type, plain C in conv_kernels_t.h: included
 * once with T float and once with T double, it spells every function and
 * vector type NAME(x) = x_T (im2col_float, vec64_double, ...). */
#define NAME(x) ISA_CAT(x, T)
#define T float
#include "conv_kernels_t.h"
#undef T
#define T double
#include "conv_kernels_t.h"
#undef T
#undef NAME

static int64_t conv_slot_total(const conv_geom *q) { return conv_slot_of(q).total; }

const conv_kernels ISA_SYM(tg_conv_kernels) = {
    conv_geom_of, conv_slot_total, {conv_fwd_float, conv_fwd_double}, {conv_bwd_float, conv_bwd_double}};
