/* conv_kernels.c - the kernels of 2-D convolution, compiled once per ISA
 * variant (isa.h; the op itself is in conv.c): 2-D convolution (cross-correlation, as in PyTorch) through
 * im2col and OpenBLAS GEMM, one image at a time.
 *
 *   x (B, C, H, W), w (OC, C/G, KH, KW), b (OC) or NULL -> y (B, OC, OH, OW)
 *   OH = (H + 2 ph - dh (KH - 1) - 1) / sh + 1, likewise OW.
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
 * Threads: images are split over OpenMP threads (OpenBLAS is held to one
 * thread meanwhile). Each image's output and dx are computed by one thread
 * in a fixed order; dW is summed per fixed chunk of CONV_CHUNK images and the
 * chunk sums are added in chunk order, so results are bit-identical for any
 * thread count. */
#include <string.h>

#include <omp.h>

#include "blas.h"
#include "conv.h"

enum { CONV_DIRECT_K = 32 }; /* largest contraction for the direct forward */
/* The vector unit of the variant, and the register blocks sized for it: each
 * block's sums plus the operands of one step fit the register file (AVX2 and
 * SSE: 16 registers, AVX-512: 32), or the sums would live in memory.
 *   CONV_TB            bytes of the vectors of output channels (fwd_cl,
 *                      dw_direct), of tight columns' copies and of the
 *                      vectors of dw_wide and bias sums: one register
 *   CONV_VB, CONV_NV,  the direct forward: CONV_NV vectors of CONV_VB bytes
 *   CONV_OB            of pixels by CONV_OB output channels (see CONV_DIRECT)
 *   CONV_DWK           taps per block of the direct weight gradient
 *   CONV_DWO, CONV_DWT output channels x taps per block of dw_wide
 *   CONV_FB            pixels per block of fwd_cl
 * v4's are the values measured on AVX-512 (comments at each kernel). */
#if defined(__AVX512F__)
enum { CONV_TB = 64, CONV_VB = 32, CONV_NV = 4, CONV_OB = 3 };
enum { CONV_DWK = 5, CONV_DWO = 3, CONV_DWT = 5, CONV_FB = 12 };
#elif defined(__AVX2__)
/* chosen among 7 blockings by the fastest of 6 runs of bench/kernels at
 * TAPEGRAD_ISA=v3 (ms, conv1 / conv2 fwd+bwd at batch 64): this one 0.61 /
 * 1.84; the v4 shapes cut to 16 registers (NV 3, OB 3, DWO 2, DWT 5) 0.91 /
 * 1.97; the v4 values unchanged (64-byte vectors as pairs of registers) 2.05 /
 * 6.45 */
enum { CONV_TB = 32, CONV_VB = 32, CONV_NV = 4, CONV_OB = 2 };
enum { CONV_DWK = 6, CONV_DWO = 2, CONV_DWT = 4, CONV_FB = 12 };
#else
enum { CONV_TB = 16, CONV_VB = 16, CONV_NV = 4, CONV_OB = 2 };
enum { CONV_DWK = 5, CONV_DWO = 2, CONV_DWT = 5, CONV_FB = 12 };
#endif
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
     * CONV_DW_DIRECT) needs whole vectors of them: LeNet's conv2 (16) in
     * float32. It works on the image, so no columns are built in backward. */
    int64_t lanes = CONV_TB / (int64_t)tg_dtype_size(x->dtype);
    bool lanes_ok = s1 && q->OCg % lanes == 0;
    /* Forward: direct where the contraction is short; else with the output
     * channels in the lanes where they fill vectors (see CONV_FWD_CL: for
     * conv2 it replaces im2col, which cost half as much as the GEMM after
     * it); else SGEMM on this layout's columns. */
    q->fwd = direct ? CONV_FWD_DIRECT : lanes_ok ? CONV_FWD_LANES : (conv_fwd_path)cols;
    /* Weight gradient: channels in the lanes where they fill vectors; where
     * the forward is direct (conv1), the direct kernel on the wide layout (see
     * CONV_DW_WIDE): no columns at all for it; else SGEMM. */
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
 * image and its gradient, the wide output (or upstream gradient). */
typedef struct {
    int64_t cols, dcols, xp, dxp, yw, gt, wt, total;
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
    s.total = s.wt + (q->fwd == CONV_FWD_LANES ? q->OC * q->K : 0) + S;
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

/* Column building and scattering, one image. */
#define CONV_COLUMNS(T)                                                                     \
    /* cols[(c, kh, kw)][(oh, ow)] = x[c, oh sh - ph + kh dh, ow sw - pw + kw dw], 0 in  \
     * the padding. Row (c KH + kh) KW + kw runs over all C channels, which lays the   \
     * groups' K x P blocks one after the other. */                                         \
    static void im2col_##T(const conv_geom *q, const T *x, T *cols) {                       \
        for (int64_t r = 0; r < q->C * q->KH * q->KW; r++) {                                \
            int64_t c = r / (q->KH * q->KW), kh = r / q->KW % q->KH, kw = r % q->KW;        \
            int64_t off = kw * q->dw - q->pw, lo, hi;                                       \
            valid_range(off, q->sw, q->W, q->OW, &lo, &hi);                                 \
            const T *plane = x + c * q->H * q->W;                                           \
            T *dst = cols + r * q->P;                                                       \
            for (int64_t oh = 0; oh < q->OH; oh++, dst += q->OW) {                          \
                int64_t ih = oh * q->sh - q->ph + kh * q->dh;                               \
                if (ih < 0 || ih >= q->H) {                                                 \
                    SIMD for (int64_t ow = 0; ow < q->OW; ow++) dst[ow] = 0;                \
                    continue;                                                               \
                }                                                                           \
                const T *src = plane + ih * q->W;                                           \
                SIMD for (int64_t ow = 0; ow < lo; ow++) dst[ow] = 0;                       \
                SIMD for (int64_t ow = lo; ow < hi; ow++) dst[ow] = src[ow * q->sw + off];  \
                SIMD for (int64_t ow = hi; ow < q->OW; ow++) dst[ow] = 0;                   \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    /* dx[c] += the columns' entries that im2col read from it. */                          \
    static void col2im_##T(const conv_geom *q, const T *dcols, T *dx) {                     \
        for (int64_t r = 0; r < q->C * q->KH * q->KW; r++) {                                \
            int64_t c = r / (q->KH * q->KW), kh = r / q->KW % q->KH, kw = r % q->KW;        \
            int64_t off = kw * q->dw - q->pw, lo, hi;                                       \
            valid_range(off, q->sw, q->W, q->OW, &lo, &hi);                                 \
            T *plane = dx + c * q->H * q->W;                                                \
            const T *src = dcols + r * q->P;                                                \
            for (int64_t oh = 0; oh < q->OH; oh++, src += q->OW) {                          \
                int64_t ih = oh * q->sh - q->ph + kh * q->dh;                               \
                if (ih < 0 || ih >= q->H) continue;                                         \
                T *d = plane + ih * q->W;                                                   \
                SIMD for (int64_t ow = lo; ow < hi; ow++) d[ow * q->sw + off] += src[ow];   \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    /* Wide: row (c, kh, kw) = xp[c] from offset kh dh Wp + kw dw, L long. */               \
    static void im2col_wide_##T(const conv_geom *q, const T *xp, T *cols) {                 \
        for (int64_t r = 0; r < q->C * q->KH * q->KW; r++) {                                \
            int64_t c = r / (q->KH * q->KW), kh = r / q->KW % q->KH, kw = r % q->KW;        \
            const T *src = xp + c * q->Hp * q->Wp + kh * q->dh * q->Wp + kw * q->dw;        \
            T *dst = cols + r * q->L;                                                       \
            SIMD for (int64_t i = 0; i < q->L; i++) dst[i] = src[i];                        \
        }                                                                                   \
    }                                                                                       \
    static void col2im_wide_##T(const conv_geom *q, const T *dcols, T *dxp) {               \
        for (int64_t r = 0; r < q->C * q->KH * q->KW; r++) {                                \
            int64_t c = r / (q->KH * q->KW), kh = r / q->KW % q->KH, kw = r % q->KW;        \
            T *dst = dxp + c * q->Hp * q->Wp + kh * q->dh * q->Wp + kw * q->dw;             \
            const T *src = dcols + r * q->L;                                                \
            SIMD for (int64_t i = 0; i < q->L; i++) dst[i] += src[i];                       \
        }                                                                                   \
    }                                                                                       \
    /* Tight (stride 1): plain columns, row (c, kh, kw) the OH runs of OW elements        \
     *   cols[(c, kh, kw)][oh OW + ow] = xp[c, (oh + kh dh) Wp + ow + kw dw]               \
     * copied a vector at a time. A run's last vector spills past its end into the next   \
     * run, which is written after it; the last spills into the slack, and reads run at    \
     * most a vector past xp, into its slack. */                                            \
    static void im2col_tight_##T(const conv_geom *q, const T *xp, T *cols) {                \
        enum { V = CONV_TB / sizeof(T) };                                                   \
        T *dst = cols;                                                                      \
        for (int64_t r = 0; r < q->C * q->KH * q->KW; r++) {                                \
            int64_t c = r / (q->KH * q->KW), kh = r / q->KW % q->KH, kw = r % q->KW;        \
            const T *src = xp + c * q->Hp * q->Wp + kh * q->dh * q->Wp + kw * q->dw;        \
            for (int64_t oh = 0; oh < q->OH; oh++, src += q->Wp, dst += q->OW)              \
                for (int64_t ow = 0; ow < q->OW; ow += V) memcpy(dst + ow, src + ow, CONV_TB); \
        }                                                                                   \
    }                                                                                       \
    /* Its transpose, as a gather: each input pixel (c, ih, iw), at (ih + ph, iw + pw) in  \
     * xp, sums the column entries that copied it,                                          \
     *   dx[c, ih, iw] += sum_{kw, kh} dcols[(c, kh, kw)][oh OW + ow],                      \
     *   oh = ih + ph - kh dh in [0, OH), ow = iw + pw - kw dw in [0, OW),                  \
     * V pixels of a row at a time, one load per tap with its lanes outside [0, OW) masked  \
     * to zero. The mask depends on kw only, so kw is the outer loop; a kw with no lane     \
     * inside adds nothing and is not loaded (loads stay within a vector of the columns).   \
     * Even and odd kh go to two sums, so the adds are not one chain of FADD latencies.     \
     * One store per pixel instead of one read-modify-write per column entry. */            \
    static void col2im_tight_##T(const conv_geom *q, const T *dcols, T *dx) {               \
        enum { V = CONV_TB / sizeof(T) };                                                   \
        vmask_##T lane;                                                                     \
        for (int l = 0; l < V; l++) lane[l] = l;                                            \
        const int64_t plane = q->H * q->W, tap_kh = q->KW * q->P - q->dh * q->OW;           \
        for (int64_t c = 0; c < q->C; c++)                                                  \
            for (int64_t ih = 0; ih < q->H; ih++) {                                         \
                int64_t kh0 = 0, kh1 = q->KH; /* the kh with oh in [0, OH) */               \
                while (kh0 < kh1 && ih + q->ph - kh0 * q->dh >= q->OH) kh0++;               \
                while (kh1 > kh0 && ih + q->ph - (kh1 - 1) * q->dh < 0) kh1--;              \
                for (int64_t j0 = 0; j0 < q->W; j0 += V) {                                  \
                    vec64_##T a0 = {0}, a1 = {0};                                           \
                    for (int64_t kw = 0; kw < q->KW; kw++) {                                \
                        int64_t ow0 = j0 + q->pw - kw * q->dw; /* lane l is ow0 + l */      \
                        if (ow0 >= q->OW || ow0 + V <= 0) continue;                         \
                        const int lo = (int)-ow0, hi = (int)(q->OW - ow0);                  \
                        const vmask_##T in = (lane >= lo) & (lane < hi);                    \
                        const T *p = dcols + ((c * q->KH + kh0) * q->KW + kw) * q->P +      \
                                     (ih + q->ph - kh0 * q->dh) * q->OW + ow0;              \
                        vec64_##T v;                                                        \
                        int64_t kh = kh0;                                                   \
                        for (; kh + 1 < kh1; kh += 2, p += 2 * tap_kh) {                    \
                            memcpy(&v, p, sizeof v);                                        \
                            a0 += (vec64_##T)((vmask_##T)v & in);                           \
                            memcpy(&v, p + tap_kh, sizeof v);                               \
                            a1 += (vec64_##T)((vmask_##T)v & in);                           \
                        }                                                                   \
                        if (kh < kh1) {                                                     \
                            memcpy(&v, p, sizeof v);                                        \
                            a0 += (vec64_##T)((vmask_##T)v & in);                           \
                        }                                                                   \
                    }                                                                       \
                    a0 += a1;                                                               \
                    /* the pixels past the row's end belong to later rows of this image,   \
                     * written back unchanged; past the image, element by element */        \
                    int64_t at = (c * q->H + ih) * q->W + j0, n = q->W - j0 < V ? q->W - j0 : V; \
                    T *d = dx + at;                                                         \
                    if (at + V <= q->C * plane) {                                           \
                        vec64_##T dv;                                                       \
                        memcpy(&dv, d, sizeof dv);                                          \
                        dv += (vec64_##T)((vmask_##T)a0 & (lane < (int)n));                 \
                        memcpy(d, &dv, sizeof dv);                                          \
                    } else {                                                                \
                        T a[V];                                                             \
                        memcpy(a, &a0, sizeof a);                                           \
                        for (int64_t l = 0; l < n; l++) d[l] += a[l];                       \
                    }                                                                       \
                }                                                                           \
            }                                                                               \
    }                                                                                       \
    /* xp = x with ph zero rows and pw zero columns around each plane */                    \
    static void pad_##T(const conv_geom *q, const T *x, T *xp) {                            \
        for (int64_t i = 0; i < q->C * q->Hp * q->Wp; i++) xp[i] = 0;                       \
        for (int64_t c = 0; c < q->C; c++)                                                  \
            for (int64_t ih = 0; ih < q->H; ih++) {                                         \
                const T *s = x + (c * q->H + ih) * q->W;                                    \
                T *d = xp + (c * q->Hp + ih + q->ph) * q->Wp + q->pw;                       \
                SIMD for (int64_t iw = 0; iw < q->W; iw++) d[iw] = s[iw];                   \
            }                                                                               \
    }                                                                                       \
    /* dx += the interior of dxp */                                                         \
    static void unpad_acc_##T(const conv_geom *q, const T *dxp, T *dx) {                    \
        for (int64_t c = 0; c < q->C; c++)                                                  \
            for (int64_t ih = 0; ih < q->H; ih++) {                                         \
                const T *s = dxp + (c * q->Hp + ih + q->ph) * q->Wp + q->pw;                \
                T *d = dx + (c * q->H + ih) * q->W;                                         \
                SIMD for (int64_t iw = 0; iw < q->W; iw++) d[iw] += s[iw];                  \
            }                                                                               \
    }                                                                                       \
    /* y[oc, oh, ow] = yw[oc, oh Wp + ow] + bias[oc]  (bias may be NULL) */                 \
    static void unwiden_##T(const conv_geom *q, const T *yw, const T *bias, T *y) {         \
        for (int64_t oc = 0; oc < q->OC; oc++) {                                            \
            const T bv = bias ? bias[oc] : (T)0;                                            \
            for (int64_t oh = 0; oh < q->OH; oh++) {                                        \
                const T *s = yw + oc * q->L + oh * q->Wp;                                   \
                T *d = y + (oc * q->OH + oh) * q->OW;                                       \
                SIMD for (int64_t ow = 0; ow < q->OW; ow++) d[ow] = s[ow] + bv;             \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    /* gw[oc, oh Wp + ow] = g[oc, oh, ow], 0 past each row's end */                         \
    static void widen_##T(const conv_geom *q, const T *g, T *gw) {                          \
        for (int64_t oc = 0; oc < q->OC; oc++)                                              \
            for (int64_t oh = 0; oh < q->OH; oh++) {                                        \
                const T *s = g + (oc * q->OH + oh) * q->OW;                                 \
                T *d = gw + oc * q->L + oh * q->Wp;                                         \
                SIMD for (int64_t ow = 0; ow < q->OW; ow++) d[ow] = s[ow];                  \
                int64_t end = oh + 1 < q->OH ? q->Wp : q->OW;                               \
                for (int64_t ow = q->OW; ow < end; ow++) d[ow] = 0;                         \
            }                                                                               \
    }


/* Direct forward (stride 1, small K), one group of one image, on the wide
 * layout: with xp the group's padded channels (C/G, Hp, Wp), yw (OC/G, L) and
 * tap t = (c, kh, kw) at offset off_t = c Hp Wp + kh dh Wp + kw dw,
 *
 *   yw[o, i] = sum_t w[o, t] xp[i + off_t]
 *
 * a sum of shifted contiguous runs of xp. The accumulators, a block of
 * CONV_OB output channels x CONV_NV vectors of pixels (GCC/Clang vectors of
 * CONV_VB bytes), stay in registers over all K taps: 12 FMAs per 4 loads and
 * 3 broadcasts. The small loops over a block are unrolled by pragma: at -O2
 * they would stay loops and the accumulators would live in memory. */
typedef float vec_float __attribute__((vector_size(CONV_VB)));
typedef double vec_double __attribute__((vector_size(CONV_VB)));
#define UNROLL _Pragma("GCC unroll 16")
#define CONV_DIRECT(T)                                                                      \
    enum { LANES_##T = CONV_VB / sizeof(T) };                                               \
    static inline vec_##T vload_##T(const T *p) {                                           \
        vec_##T v;                                                                          \
        memcpy(&v, p, sizeof v);                                                            \
        return v;                                                                           \
    }                                                                                       \
    static int64_t direct_offsets_##T(const conv_geom *q, int64_t *off) {                   \
        int64_t k = 0;                                                                      \
        for (int64_t c = 0; c < q->C / q->G; c++)                                           \
            for (int64_t kh = 0; kh < q->KH; kh++)                                          \
                for (int64_t kw = 0; kw < q->KW; kw++)                                      \
                    off[k++] = c * q->Hp * q->Wp + kh * q->dh * q->Wp + kw * q->dw;         \
        return k;                                                                           \
    }                                                                                       \
    /* The block of wide pixels [i, i + NV LANES) for the no <= OB channels of wo     \
     * (no, K), stored as y[o, oh, ow0 ..] + bias[o] from lane s on, n pixels. With    \
     * `spill` the whole block is stored from dst: its lanes past n land in the next   \
     * output row, which is written after this one. Otherwise through a buffer. */     \
    static inline __attribute__((always_inline)) void direct_fwd_block_##T(                 \
        const T *xp, const int64_t *off, int64_t K, const T *wo, int no, const T *bias,     \
        T *dst, int64_t P, int64_t s, int64_t n, bool spill) {                              \
        vec_##T acc[CONV_OB][CONV_NV];                                                      \
        UNROLL for (int u = 0; u < no; u++)                                                 \
            UNROLL for (int v = 0; v < CONV_NV; v++) acc[u][v] = (vec_##T){0};              \
        for (int64_t t = 0; t < K; t++) {                                                   \
            vec_##T xs[CONV_NV];                                                            \
            UNROLL for (int v = 0; v < CONV_NV; v++) xs[v] = vload_##T(xp + off[t] + v * LANES_##T); \
            UNROLL for (int u = 0; u < no; u++) {                                           \
                const T wv = wo[u * K + t];                                                 \
                UNROLL for (int v = 0; v < CONV_NV; v++) acc[u][v] += wv * xs[v];           \
            }                                                                               \
        }                                                                                   \
        UNROLL for (int u = 0; u < no; u++) {                                               \
            const T bv = bias ? bias[u] : (T)0;                                             \
            if (spill) {                                                                    \
                UNROLL for (int v = 0; v < CONV_NV; v++) {                                  \
                    vec_##T r = acc[u][v] + bv;                                             \
                    memcpy(dst + u * P + v * LANES_##T, &r, sizeof r);                      \
                }                                                                           \
            } else {                                                                        \
                T buf[CONV_NV * LANES_##T];                                                 \
                memcpy(buf, acc[u], sizeof buf);                                            \
                for (int64_t l = 0; l < n; l++) dst[u * P + l] = buf[s + l] + bv;           \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    /* y (OC/G, OH, OW) of the group, with bias (or NULL), straight from the wide       \
     * sums, row by row: output row oh is wide pixels [oh Wp, oh Wp + OW). A row of     \
     * at least a block is covered by blocks, the last shifted back to end at OW        \
     * (recomputing a few pixels to the same values). A shorter row (LeNet's conv1:     \
     * 28 of a 32-pixel block) is one block from its start, storing all 32 into the     \
     * next row's start (overwritten next) when the row is not the last and is at       \
     * least half a block; the last row's block is shifted back to end at L (needs      \
     * L >= NV LANES), so no read passes the image, and goes through a buffer. */      \
    static void direct_fwd_##T(const conv_geom *q, const T *xp, const T *w, const T *bias, \
                               T *y) {                                                      \
        int64_t off[CONV_DIRECT_K], K = direct_offsets_##T(q, off), L = q->L;               \
        const int64_t blk = CONV_NV * LANES_##T, OW = q->OW, P = q->P;                      \
        for (int64_t oh = 0; oh < q->OH; oh++)                                              \
            for (int64_t ow0 = 0; ow0 < OW; ow0 += blk) {                                   \
                if (ow0 + blk > OW && OW >= blk) ow0 = OW - blk;                            \
                int64_t n = OW - ow0 < blk ? OW - ow0 : blk, i = oh * q->Wp + ow0, s = 0;   \
                if (i + blk > L) s = i + blk - L, i = L - blk;                              \
                bool spill = n == blk || (s == 0 && oh + 1 < q->OH && blk <= 2 * OW);       \
                T *dst = y + oh * OW + ow0;                                                 \
                int64_t o = 0;                                                              \
                for (; o + CONV_OB <= q->OCg; o += CONV_OB)                                 \
                    direct_fwd_block_##T(xp + i, off, K, w + o * K, CONV_OB,                \
                                         bias ? bias + o : NULL, dst + o * P, P, s, n, spill); \
                for (; o < q->OCg; o++)                                                     \
                    direct_fwd_block_##T(xp + i, off, K, w + o * K, 1, bias ? bias + o : NULL, \
                                         dst + o * P, P, s, n, spill);                      \
            }                                                                               \
    }

/* dst[c * ds + r] = src[r * ss + c] for r < rows, c < cols: the transposes
 * between an image's (OC, P) gradient or output and the (P, OC) layout of
 * the kernels with the output channels in the lanes. In float32, 16 x 16
 * tiles go through registers: four stages each swap the off-diagonal d x d
 * blocks (d = 8, 4, 2, 1) of every 2d x 2d block, one two-source shuffle per
 * vector. For LeNet's conv2 ((16, 100) <-> (100, 16)) the element-wise copy
 * cost 3.5% of the step in the weight gradient and 1.7% in the forward.
 * Leftover rows and columns, and float64, are copied element by element. */
typedef float vtr_float __attribute__((vector_size(64)));
#define TR_STAGE(d, ...)                                                                    \
    for (int i = 0; i < 16; i++)                                                            \
        if (!(i & (d))) {                                                                   \
            vtr_float a = v[i], b = v[i + (d)];                                             \
            v[i] = __builtin_shufflevector(a, b, TR_LO_##d);                                \
            v[i + (d)] = __builtin_shufflevector(a, b, TR_HI_##d);                          \
        }
#define TR_LO_8 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23
#define TR_HI_8 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31
#define TR_LO_4 0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27
#define TR_HI_4 4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31
#define TR_LO_2 0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29
#define TR_HI_2 2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31
#define TR_LO_1 0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30
#define TR_HI_1 1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31
static void transpose_float(const float *src, int64_t ss, int64_t rows, int64_t cols,
                            float *dst, int64_t ds) {
    int64_t c0 = 0;
    for (; c0 + 16 <= cols; c0 += 16) {
        int64_t r0 = 0;
        for (; r0 + 16 <= rows; r0 += 16) {
            vtr_float v[16];
            UNROLL for (int i = 0; i < 16; i++) memcpy(&v[i], src + (r0 + i) * ss + c0, sizeof v[i]);
            UNROLL TR_STAGE(8, ) UNROLL TR_STAGE(4, ) UNROLL TR_STAGE(2, ) UNROLL TR_STAGE(1, )
            UNROLL for (int i = 0; i < 16; i++) memcpy(dst + (c0 + i) * ds + r0, &v[i], sizeof v[i]);
        }
        for (int64_t c = c0; c < c0 + 16; c++)
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

/* Direct weight gradient (stride 1), one group of one image, as dW^T
 * (K, OC/G) like the transposed GEMM: with xp the group's padded channels
 * (C/G, Hp, Wp), G (OC/G, P) the upstream gradient, gt = G^T (P, OC/G) and
 * tap k = (c, kh, kw) at offset off_k = c Hp Wp + kh dh Wp + kw dw,
 *
 *   dW^T[k, o] += sum_{oh, ow} xp[off_k + oh Wp + ow] gt[oh OW + ow, o]
 *
 * A vector of output channels per tap: each pixel is one load of gt's row
 * and, per tap, a broadcast of the input under it and an FMA, for a block
 * of CONV_DWK taps whose sums stay in registers over all P pixels. No
 * columns are built, and the sum runs over the P output pixels only (wide
 * columns would run over L). For LeNet's conv2 it replaces im2col and an
 * SGEMM whose small M x N (150 x 16) kept it at about 80 GFLOP/s. */
/* 5 taps a block (CONV_DWK on v4): measured for conv2 (ms per batch-64
 * fwd+bwd) 1.41 against 1.43 for 6, 1.46 for 10, 1.47 for 8 or 15 (more sums
 * spill the taps' pointers). */
#define CONV_DW_DIRECT(T)                                                                   \
    enum { DWV_##T = CONV_TB / sizeof(T) };                                                 \
    /* the no <= CONV_DWK taps at xk[u] = xp + off_k, lanes [0, V) of part rows (K, OCg) */ \
    static inline __attribute__((always_inline)) void dw_direct_block_##T(                  \
        const conv_geom *q, const T *const *xk, const T *gt, int no, T *part) {             \
        vec64_##T acc[CONV_DWK];                                                            \
        UNROLL for (int u = 0; u < no; u++) memcpy(&acc[u], part + u * q->OCg, sizeof acc[u]); \
        for (int64_t oh = 0; oh < q->OH; oh++) {                                            \
            const T *gr = gt + oh * q->OW * q->OCg;                                         \
            const int64_t xo = oh * q->Wp;                                                  \
            for (int64_t ow = 0; ow < q->OW; ow++) {                                        \
                vec64_##T gv;                                                               \
                memcpy(&gv, gr + ow * q->OCg, sizeof gv);                                   \
                UNROLL for (int u = 0; u < no; u++) acc[u] += xk[u][xo + ow] * gv;          \
            }                                                                               \
        }                                                                                   \
        UNROLL for (int u = 0; u < no; u++) memcpy(part + u * q->OCg, &acc[u], sizeof acc[u]); \
    }                                                                                       \
    static void dw_direct_##T(const conv_geom *q, const T *xp, const T *g, T *gt, T *part) { \
        transpose_##T(g, q->P, q->OCg, q->P, gt, q->OCg); /* gt (P, OC/G) = G^T */          \
        const int64_t KHW = q->KH * q->KW;                                                  \
        for (int64_t ob = 0; ob < q->OCg; ob += DWV_##T)                                    \
            for (int64_t k0 = 0; k0 < q->K; k0 += CONV_DWK) {                               \
                const T *xk[CONV_DWK];                                                      \
                int no = q->K - k0 < CONV_DWK ? (int)(q->K - k0) : CONV_DWK;                \
                for (int u = 0; u < no; u++) {                                              \
                    int64_t k = k0 + u, c = k / KHW, kh = k / q->KW % q->KH, kw = k % q->KW; \
                    xk[u] = xp + c * q->Hp * q->Wp + kh * q->dh * q->Wp + kw * q->dw;       \
                }                                                                           \
                T *pk = part + k0 * q->OCg + ob;                                            \
                if (no == CONV_DWK)                                                         \
                    dw_direct_block_##T(q, xk, gt + ob, CONV_DWK, pk);                      \
                else                                                                        \
                    for (int u = 0; u < no; u++)                                            \
                        dw_direct_block_##T(q, xk + u, gt + ob, 1, pk + u * q->OCg);        \
            }                                                                               \
    }

/* Direct weight gradient on the wide layout (the short contractions of the
 * direct forward: LeNet's conv1, K 25, OC 6), one group of one image. With
 * xp the group's padded channels (C/G, Hp, Wp), gw (OC/G, L) the upstream
 * gradient widened (0 past each row's end) and off_t as in CONV_DIRECT,
 *
 *   dW[o, t] += sum_{i < L} gw[o, i] xp[off_t + i]
 *
 * Pixels in the lanes, with a block of CONV_DWO output channels x CONV_DWT
 * taps of vector sums in registers over the whole image: per vector of
 * pixels CONV_DWO + CONV_DWT loads feed CONV_DWO CONV_DWT FMAs, and each sum
 * is reduced across its lanes once per image. (One load per FMA and a lane
 * sum per weight ran at half SGEMM's rate.) The last part vector of L is
 * copied into zeroed vectors: past L, xp may be the end of the input. */
#define CONV_DW_WIDE(T)                                                                     \
    static inline __attribute__((always_inline)) void dw_wide_block_##T(                    \
        const conv_geom *q, const T *xp, const int64_t *off, int nt, const T *gw, int no,   \
        T *part) {                                                                          \
        enum { V = CONV_TB / sizeof(T) };                                                   \
        vec64_##T acc[CONV_DWO][CONV_DWT], gv[CONV_DWO], xv[CONV_DWT];                      \
        UNROLL for (int u = 0; u < no; u++)                                                 \
            UNROLL for (int t = 0; t < nt; t++) acc[u][t] = (vec64_##T){0};                 \
        const int64_t L = q->L;                                                             \
        int64_t i = 0;                                                                      \
        for (; i + V <= L; i += V) {                                                        \
            UNROLL for (int u = 0; u < no; u++) memcpy(&gv[u], gw + u * L + i, sizeof gv[u]); \
            UNROLL for (int t = 0; t < nt; t++) memcpy(&xv[t], xp + off[t] + i, sizeof xv[t]); \
            UNROLL for (int u = 0; u < no; u++)                                             \
                UNROLL for (int t = 0; t < nt; t++) acc[u][t] += gv[u] * xv[t];             \
        }                                                                                   \
        if (i < L) {                                                                        \
            size_t tail = (size_t)(L - i) * sizeof(T);                                      \
            UNROLL for (int u = 0; u < no; u++) {                                           \
                gv[u] = (vec64_##T){0};                                                     \
                memcpy(&gv[u], gw + u * L + i, tail);                                       \
            }                                                                               \
            UNROLL for (int t = 0; t < nt; t++) {                                           \
                xv[t] = (vec64_##T){0};                                                     \
                memcpy(&xv[t], xp + off[t] + i, tail);                                      \
            }                                                                               \
            UNROLL for (int u = 0; u < no; u++)                                             \
                UNROLL for (int t = 0; t < nt; t++) acc[u][t] += gv[u] * xv[t];             \
        }                                                                                   \
        UNROLL for (int u = 0; u < no; u++)                                                 \
            UNROLL for (int t = 0; t < nt; t++) {                                           \
                T a[V], sum = 0;                                                            \
                memcpy(a, &acc[u][t], sizeof a);                                            \
                for (int l = 0; l < V; l++) sum += a[l];                                    \
                part[u * q->K + t] += sum;                                                  \
            }                                                                               \
    }                                                                                       \
    /* part (OC/G, K) += this image's dW */                                                \
    static void dw_wide_##T(const conv_geom *q, const T *xp, const T *gw, T *part) {        \
        int64_t off[CONV_DIRECT_K], K = direct_offsets_##T(q, off);                         \
        int64_t o = 0;                                                                      \
        for (; o + CONV_DWO <= q->OCg; o += CONV_DWO) {                                     \
            int64_t t = 0;                                                                  \
            for (; t + CONV_DWT <= K; t += CONV_DWT)                                        \
                dw_wide_block_##T(q, xp, off + t, CONV_DWT, gw + o * q->L, CONV_DWO,        \
                                  part + o * K + t);                                        \
            for (; t < K; t++)                                                              \
                dw_wide_block_##T(q, xp, off + t, 1, gw + o * q->L, CONV_DWO, part + o * K + t); \
        }                                                                                   \
        for (; o < q->OCg; o++)                                                             \
            for (int64_t t = 0; t < K; t++)                                                 \
                dw_wide_block_##T(q, xp, off + t, 1, gw + o * q->L, 1, part + o * K + t);   \
    }

/* Direct forward with the output channels in the lanes (stride 1, OC/G a
 * whole number of vectors: LeNet's conv2, 16 in float32), one group of one
 * image. With xp the group's padded channels (C/G, Hp, Wp), wt = W^T
 * (K, OC/G) and tap t = (c, kh, kw) at off_t = c Hp Wp + kh dh Wp + kw dw,
 *
 *   yt[oh OW + ow, o] = bias[o] + sum_t xp[off_t + oh Wp + ow] wt[t, o]
 *   y[o, p] = yt[p, o]                                 y (OC/G, P), yt (P, OC/G)
 *
 * A block of n <= CONV_FB pixels of one output row keeps its n sums, a
 * vector of output channels each, in registers over all K taps: per tap one
 * load of wt's row, and per pixel a broadcast of the input and an FMA. No
 * columns are built; for conv2 im2col cost half as much as the SGEMM after
 * it. n is the same for every block of a call (the row's last block is
 * shifted back to end at OW, recomputing a few pixels to the same values),
 * so one of CONV_FB unrolled copies runs. */
#define CONV_FWD_CL(T)                                                                      \
    static inline __attribute__((always_inline)) void fwd_cl_block_##T(                     \
        const conv_geom *q, const T *xp, const T *wt, vec64_##T b0, int n, T *yt) {         \
        vec64_##T acc[CONV_FB];                                                             \
        UNROLL for (int j = 0; j < n; j++) acc[j] = b0;                                     \
        const T *wk = wt;                                                                   \
        for (int64_t c = 0; c < q->C / q->G; c++)                                           \
            for (int64_t kh = 0; kh < q->KH; kh++) {                                        \
                const T *xr = xp + c * q->Hp * q->Wp + kh * q->dh * q->Wp;                  \
                for (int64_t kw = 0; kw < q->KW; kw++, xr += q->dw, wk += q->OCg) {         \
                    vec64_##T wv;                                                           \
                    memcpy(&wv, wk, sizeof wv);                                             \
                    UNROLL for (int j = 0; j < n; j++) acc[j] += xr[j] * wv;                \
                }                                                                           \
            }                                                                               \
        UNROLL for (int j = 0; j < n; j++) memcpy(yt + j * q->OCg, &acc[j], sizeof acc[j]); \
    }                                                                                       \
    static inline __attribute__((always_inline)) void fwd_cl_blocks_##T(                    \
        const conv_geom *q, const T *xp, const T *wt, const T *bias, int n, T *yt) {        \
        for (int64_t ob = 0; ob < q->OCg; ob += CONV_TB / sizeof(T)) {                      \
            vec64_##T b0 = {0};                                                             \
            if (bias) memcpy(&b0, bias + ob, sizeof b0);                                    \
            for (int64_t oh = 0; oh < q->OH; oh++)                                          \
                for (int64_t ow = 0; ow < q->OW; ow += n) {                                 \
                    if (ow + n > q->OW) ow = q->OW - n;                                     \
                    fwd_cl_block_##T(q, xp + oh * q->Wp + ow, wt + ob, b0, n,               \
                                     yt + (oh * q->OW + ow) * q->OCg + ob);                 \
                }                                                                           \
        }                                                                                   \
    }                                                                                       \
    static void fwd_cl_##T(const conv_geom *q, const T *xp, const T *wt, const T *bias,     \
                           T *yt, T *y) {                                                   \
        switch (q->OW < CONV_FB ? q->OW : CONV_FB) {                                        \
        FWD_CL_CASES(T)                                                                     \
        }                                                                                   \
        transpose_##T(yt, q->OCg, q->P, q->OCg, y, q->P); /* y (OC/G, P) = yt^T */          \
    }
#define FWD_CL_CASE(T, n) case n: fwd_cl_blocks_##T(q, xp, wt, bias, n, yt); break;
#define FWD_CL_CASES(T)                                                                     \
    FWD_CL_CASE(T, 1) FWD_CL_CASE(T, 2) FWD_CL_CASE(T, 3) FWD_CL_CASE(T, 4)                 \
    FWD_CL_CASE(T, 5) FWD_CL_CASE(T, 6) FWD_CL_CASE(T, 7) FWD_CL_CASE(T, 8)                 \
    FWD_CL_CASE(T, 9) FWD_CL_CASE(T, 10) FWD_CL_CASE(T, 11) FWD_CL_CASE(T, 12)

/* Per-image forward and backward. */
#define CONV_IMAGE(T)                                                                       \
    /* y_b = W @ cols_b + bias, group by group, by q->fwd */                             \
    static void conv_fwd_image_##T(const conv_geom *q, const T *xb, const T *w,          \
                                   const T *wt, const T *bias, T *yb, T *slot) {         \
        conv_slot s = conv_slot_of(q);                                                   \
        T *cols = slot + s.cols, *out = q->wide ? slot + s.yw : yb, *xs = slot + s.xp;   \
        const int64_t gx = (q->C / q->G) * q->Hp * q->Wp; /* a group's padded channels */ \
        const T *xp = xb;                                                                \
        switch (q->fwd) {                                                                \
        case CONV_FWD_LANES: /* wt: W^T per group, written by conv_fwd_##T */            \
            if (q->ph || q->pw) pad_##T(q, xb, xs), xp = xs;                             \
            for (int64_t g = 0; g < q->G; g++)                                           \
                fwd_cl_##T(q, xp + g * gx, wt + g * q->K * q->OCg, bias ? bias + g * q->OCg : NULL, \
                           slot + s.gt, yb + g * q->OCg * q->P);                         \
            return;                                                                      \
        case CONV_FWD_DIRECT:                                                            \
            if (q->padded) pad_##T(q, xb, xs), xp = xs;                                  \
            for (int64_t g = 0; g < q->G; g++)                                           \
                direct_fwd_##T(q, xp + g * gx, w + g * q->OCg * q->K, bias ? bias + g * q->OCg : NULL, \
                               yb + g * q->OCg * q->P);                                  \
            return;                                                                      \
        case CONV_FWD_TIGHT:                                                             \
            pad_##T(q, xb, xs);                                                          \
            im2col_tight_##T(q, xs, cols);                                               \
            break;                                                                       \
        case CONV_FWD_WIDE:                                                              \
            if (q->padded) pad_##T(q, xb, xs), xp = xs;                                  \
            im2col_wide_##T(q, xp, cols);                                                \
            break;                                                                       \
        case CONV_FWD_PLAIN:                                                             \
            im2col_##T(q, xb, cols);                                                     \
            break;                                                                       \
        }                                                                                \
        for (int64_t g = 0; g < q->G; g++)                                               \
            blas_gemm_##T(false, false, q->OCg, q->L, q->K, w + g * q->OCg * q->K, q->K, \
                          cols + g * q->K * q->L, q->L, 0, out + g * q->OCg * q->L, q->L); \
        if (q->wide) {                                                                   \
            unwiden_##T(q, out, bias, yb);                                               \
        } else if (bias) {                                                               \
            for (int64_t oc = 0; oc < q->OC; oc++) {                                     \
                T *d = yb + oc * q->P;                                                   \
                SIMD for (int64_t p = 0; p < q->P; p++) d[p] += bias[oc];                \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    /* db_part[oc] += sum_p gb[oc, p] for one image's G (OC, P), read here while the   \
     * image's backward has it in cache (a pass over the whole batch's G of its own    \
     * read 1.6 MB for LeNet, 2% of the step). Four vector sums: one would be a chain  \
     * of dependent adds. */                                                           \
    static void bias_part_##T(const conv_geom *q, const T *gb, T *db_part) {                \
        enum { V = CONV_TB / sizeof(T) };                                                   \
        for (int64_t oc = 0; oc < q->OC; oc++) {                                            \
            const T *s = gb + oc * q->P;                                                    \
            vec64_##T a[4] = {{0}, {0}, {0}, {0}}, v;                                       \
            int64_t p = 0;                                                                  \
            for (; p + 4 * V <= q->P; p += 4 * V)                                           \
                UNROLL for (int u = 0; u < 4; u++) {                                        \
                    memcpy(&v, s + p + u * V, sizeof v);                                    \
                    a[u] += v;                                                              \
                }                                                                           \
            for (; p + V <= q->P; p += V) {                                                 \
                memcpy(&v, s + p, sizeof v);                                                \
                a[0] += v;                                                                  \
            }                                                                               \
            T r = 0, lane[V];                                                               \
            for (; p < q->P; p++) r += s[p];                                                \
            a[0] += a[1], a[2] += a[3], a[0] += a[2];                                       \
            memcpy(lane, &a[0], sizeof lane);                                               \
            for (int l = 0; l < V; l++) r += lane[l];                                       \
            db_part[oc] += r;                                                               \
        }                                                                                   \
    } \
    /* dw_part += G_b @ cols_b^T by q->dwp (when dw_part); db_part += G_b's row sums     \
     * (when db_part); dx_b += col2im(W^T @ G_b) by q->dx (when dxb) */                  \
    static void conv_bwd_image_##T(const conv_geom *q, const T *xb, const T *w,          \
                                   const T *gb, T *dw_part, T *db_part, T *dxb, T *slot) { \
        conv_slot s = conv_slot_of(q);                                                   \
        if (db_part) bias_part_##T(q, gb, db_part);                                      \
        T *cols = slot + s.cols, *dcols = slot + s.dcols, *xs = slot + s.xp;             \
        const int64_t gx = (q->C / q->G) * q->Hp * q->Wp; /* a group's padded channels */ \
        const T *g = gb, *xp = xb;                                                       \
        if (q->wide) widen_##T(q, gb, slot + s.yw), g = slot + s.yw;                     \
        if (dw_part) switch (q->dwp) {                                                   \
        case CONV_DW_LANES: /* reads the image in place when unpadded */                 \
            if (q->ph || q->pw) pad_##T(q, xb, xs), xp = xs;                             \
            for (int64_t k = 0; k < q->G; k++)                                           \
                dw_direct_##T(q, xp + k * gx, gb + k * q->OCg * q->P, slot + s.gt,       \
                              dw_part + k * q->OCg * q->K);                              \
            break;                                                                       \
        case CONV_DW_DIRECT:                                                             \
            if (q->padded) pad_##T(q, xb, xs), xp = xs;                                  \
            for (int64_t k = 0; k < q->G; k++)                                           \
                dw_wide_##T(q, xp + k * gx, g + k * q->OCg * q->L, dw_part + k * q->OCg * q->K); \
            break;                                                                       \
        case CONV_DW_TIGHT:                                                              \
        case CONV_DW_WIDE:                                                               \
        case CONV_DW_PLAIN:                                                              \
            if (q->dwp == CONV_DW_PLAIN) {                                               \
                im2col_##T(q, xb, cols);                                                 \
            } else {                                                                     \
                if (q->padded) pad_##T(q, xb, xs), xp = xs;                              \
                if (q->dwp == CONV_DW_TIGHT)                                             \
                    im2col_tight_##T(q, xp, cols);                                       \
                else                                                                     \
                    im2col_wide_##T(q, xp, cols);                                        \
            }                                                                            \
            for (int64_t k = 0; k < q->G; k++) {                                         \
                const T *gk = g + k * q->OCg * q->L, *ck = cols + k * q->K * q->L;       \
                T *pk = dw_part + k * q->OCg * q->K;                                     \
                if (q->dw_t)                                                             \
                    blas_gemm_##T(false, true, q->K, q->OCg, q->L, ck, q->L, gk, q->L, 1, pk, q->OCg); \
                else                                                                     \
                    blas_gemm_##T(false, true, q->OCg, q->K, q->L, gk, q->L, ck, q->L, 1, pk, q->K); \
            }                                                                            \
            break;                                                                       \
        }                                                                                \
        if (!dxb) return;                                                                \
        for (int64_t k = 0; k < q->G; k++)                                               \
            blas_gemm_##T(true, false, q->K, q->L, q->OCg, w + k * q->OCg * q->K, q->K,  \
                          g + k * q->OCg * q->L, q->L, 0, dcols + k * q->K * q->L, q->L); \
        switch (q->dx) {                                                                 \
        case CONV_DX_TIGHT:                                                              \
            col2im_tight_##T(q, dcols, dxb);                                             \
            break;                                                                       \
        case CONV_DX_PLAIN:                                                              \
            col2im_##T(q, dcols, dxb);                                                   \
            break;                                                                       \
        case CONV_DX_WIDE:                                                               \
            if (!q->padded) {                                                            \
                col2im_wide_##T(q, dcols, dxb);                                          \
            } else {                                                                     \
                T *dxp = slot + s.dxp;                                                   \
                for (int64_t i = 0; i < q->C * q->Hp * q->Wp; i++) dxp[i] = 0;           \
                col2im_wide_##T(q, dcols, dxp);                                          \
                unpad_acc_##T(q, dxp, dxb);                                              \
            }                                                                            \
            break;                                                                       \
        }                                                                                \
    }

/* The batch loops: images over threads, dW by fixed chunks. */
#define CONV_BATCH(T)                                                                       \
    static void conv_fwd_##T(const tape_node *n, const conv_geom *q, int threads) {         \
        const T *x = n->in[0]->data, *w = n->in[1]->data;                                   \
        const T *bias = n->in[2] ? n->in[2]->data : NULL;                                   \
        T *y = n->out->data, *scratch = n->saved[0]->data;                                  \
        int64_t slot = conv_slot_of(q).total;                                               \
        /* W^T per group (K, OC/G) for the direct kernel, in slot 0, read by all threads */ \
        T *wt = scratch + conv_slot_of(q).wt;                                               \
        if (q->fwd == CONV_FWD_LANES)                                                       \
            for (int64_t g = 0; g < q->G; g++)                                              \
                for (int64_t o = 0; o < q->OCg; o++)                                        \
                    for (int64_t k = 0; k < q->K; k++)                                      \
                        wt[(g * q->K + k) * q->OCg + o] = w[(g * q->OCg + o) * q->K + k];   \
        if (threads == 1) { /* no parallel region: its entry and exit cost 0.3-0.5 us */    \
            for (int64_t b = 0; b < q->B; b++)                                              \
                conv_fwd_image_##T(q, x + b * q->C * q->H * q->W, w, wt, bias,              \
                                   y + b * q->OC * q->P, scratch);                          \
            return;                                                                         \
        }                                                                                   \
        _Pragma("omp parallel for num_threads(threads) schedule(static)")                   \
        for (int64_t b = 0; b < q->B; b++)                                                  \
            conv_fwd_image_##T(q, x + b * q->C * q->H * q->W, w, wt, bias,                  \
                               y + b * q->OC * q->P, scratch + omp_get_thread_num() * slot); \
    }                                                                                       \
    /* chunk c's images, their dW and db into part c: (wsize) dW then (OC) db */          \
    static void conv_bwd_chunk_##T(const conv_geom *q, const T *x, const T *w, const T *g,  \
                                   T *parts, bool dw, bool db, T *dx, int64_t wsize,        \
                                   int64_t c, T *slot) {                                    \
        T *pc = parts ? parts + c * (wsize + q->OC) : NULL;                                 \
        for (int64_t b = c * CONV_CHUNK; b < q->B && b < (c + 1) * CONV_CHUNK; b++)         \
            conv_bwd_image_##T(q, x + b * q->C * q->H * q->W, w, g + b * q->OC * q->P,      \
                               dw ? pc : NULL, db ? pc + wsize : NULL,                      \
                               dx ? dx + b * q->C * q->H * q->W : NULL, slot);              \
    }                                                                                       \
    static void conv_bwd_##T(const tape_node *n, const conv_geom *q, int threads,           \
                             tensor *const *gin, void *scratch_, void *parts_) {            \
        T *scratch = scratch_, *parts = parts_;                                             \
        const T *x = n->in[0]->data, *w = n->in[1]->data, *g = n->out->grad->data;          \
        T *dx = gin[0] ? gin[0]->data : NULL;                                               \
        int64_t slot = conv_slot_of(q).total, wsize = n->in[1]->size;                       \
        int64_t chunks = (q->B + CONV_CHUNK - 1) / CONV_CHUNK;                              \
        if (threads == 1)                                                                   \
            for (int64_t c = 0; c < chunks; c++)                                            \
                conv_bwd_chunk_##T(q, x, w, g, parts, gin[1], gin[2], dx, wsize, c, scratch); \
        else                                                                                \
            _Pragma("omp parallel for num_threads(threads) schedule(static)")               \
            for (int64_t c = 0; c < chunks; c++)                                            \
                conv_bwd_chunk_##T(q, x, w, g, parts, gin[1], gin[2], dx, wsize, c,         \
                                   scratch + omp_get_thread_num() * slot);                  \
        if (gin[2]) /* chunk sums in chunk order: the same bits for any thread count */    \
            for (int64_t c = 0; c < chunks; c++)                                            \
                for (int64_t o = 0; o < q->OC; o++)                                         \
                    ((T *)gin[2]->data)[o] += parts[c * (wsize + q->OC) + wsize + o];       \
        if (!gin[1]) return;                                                                \
        T *dw = gin[1]->data;                                                               \
        for (int64_t c = 0; c < chunks; c++) {                                              \
            const T *pc = parts + c * (wsize + q->OC);                                      \
            if (!q->dw_t) {                                                                 \
                SIMD for (int64_t i = 0; i < wsize; i++) dw[i] += pc[i];                    \
                continue;                                                                   \
            }                                                                               \
            for (int64_t k = 0; k < q->G; k++) /* part k is (K, OC/G) */                   \
                for (int64_t o = 0; o < q->OCg; o++) {                                      \
                    T *d = dw + (k * q->OCg + o) * q->K;                                    \
                    const T *src = pc + k * q->OCg * q->K + o;                              \
                    for (int64_t i = 0; i < q->K; i++) d[i] += src[i * q->OCg];             \
                }                                                                           \
        }                                                                                   \
    }

CONV_COLUMNS(float)
CONV_COLUMNS(double)
CONV_DIRECT(float)
CONV_DIRECT(double)
CONV_DW_DIRECT(float)
CONV_DW_DIRECT(double)
CONV_DW_WIDE(float)
CONV_DW_WIDE(double)
CONV_FWD_CL(float)
CONV_FWD_CL(double)
CONV_IMAGE(float)
CONV_IMAGE(double)
CONV_BATCH(float)
CONV_BATCH(double)

static int64_t conv_slot_total(const conv_geom *q) { return conv_slot_of(q).total; }

const conv_kernels ISA_SYM(tg_conv_kernels) = {
    conv_geom_of, conv_slot_total, {conv_fwd_float, conv_fwd_double}, {conv_bwd_float, conv_bwd_double}};
