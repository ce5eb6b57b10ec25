/* conv.c - 2-D convolution (cross-correlation, as in PyTorch) through
 * im2col and one OpenBLAS GEMM per group over the whole batch.
 *
 *   x (B, C, H, W), w (OC, C/G, KH, KW), b (OC) or NULL -> y (B, OC, OH, OW)
 *   OH = (H + 2 ph - dh (KH - 1) - 1) / sh + 1, likewise OW.
 *
 * With N = B OH OW and K = (C/G) KH KW, the columns of group g are a K x N
 * matrix whose column (b, oh, ow) holds the input patch under output pixel
 * (b, oh, ow); row (c, kh, kw) of it is input channel c shifted by the tap.
 *
 *   Y_g (OC/G, N) = W_g (OC/G, K) @ cols_g (K, N)          then permute to (B, OC, OH, OW)
 *   dW_g  += G_g (OC/G, N) @ cols_g^T (N, K)
 *   dcols_g = W_g^T (K, OC/G) @ G_g (OC/G, N)              then col2im (scatter-add) into dx
 *   db    += sum over N of G
 * where G_g is the upstream gradient permuted to (OC, N). Putting the whole
 * batch into N gives GEMMs of a useful size even for LeNet's 6 and 16 output
 * channels, where one small GEMM per image would be dominated by overhead.
 *
 * Scratch: the builder allocates, in the tape's arena, saved[0] = the columns
 * (G K N elements) and saved[1] = the (OC, N) GEMM result before its permute,
 * so forward never allocates and can be replayed. The columns are kept for
 * dW. saved[1] is pure scratch: every forward writes it before reading it, so
 * the vjp reuses it for the permuted upstream gradient. dcols is allocated by
 * the vjp in the arena.
 *
 * Threads: im2col, col2im and the permutes split over disjoint output rows or
 * (image, channel) planes with a fixed per-element order, and OpenBLAS splits
 * GEMMs over M and N only, so results are bit-identical for any thread count. */
#include <cblas.h>

#include "elementwise.h"

typedef struct {
    int64_t B, C, H, W, OC, KH, KW, OH, OW, G, OCg, K, N, OHW;
    int64_t sh, sw, ph, pw, dh, dw;
} conv_geom;

/* Node integer params: ip[0..1] stride, ip[2..3] padding, ip[4..5] dilation,
 * ip[6] groups (the same layout in the sample cases). */
static void conv_geom_of(const tape_node *n, conv_geom *q) {
    const tensor *x = n->in[0], *w = n->in[1], *y = n->out;
    q->B = x->shape[0], q->C = x->shape[1], q->H = x->shape[2], q->W = x->shape[3];
    q->OC = w->shape[0], q->KH = w->shape[2], q->KW = w->shape[3];
    q->OH = y->shape[2], q->OW = y->shape[3];
    q->sh = n->ip[0], q->sw = n->ip[1], q->ph = n->ip[2], q->pw = n->ip[3];
    q->dh = n->ip[4], q->dw = n->ip[5], q->G = n->ip[6];
    q->OCg = q->OC / q->G;
    q->K = (q->C / q->G) * q->KH * q->KW;
    q->OHW = q->OH * q->OW;
    q->N = q->B * q->OHW;
}

/* The output columns [lo, hi) whose input column ow*s + off lies in [0, W). */
static void valid_range(int64_t off, int64_t s, int64_t W, int64_t OW, int64_t *lo, int64_t *hi) {
    int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t h = W - 1 - off < 0 ? 0 : (W - 1 - off) / s + 1;
    if (h > OW) h = OW;
    if (l > h) l = h;
    *lo = l, *hi = h;
}

static void gemm(dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const void *A,
                 int64_t lda, const void *B, int64_t ldb, double beta, void *C, int64_t ldc) {
    if (dt == DTYPE_F32)
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B, (int)ldb, (float)beta, C, (int)ldc);
    else
        cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    (int)M, (int)N, (int)K, 1.0, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* Inner loops are forced to vectorise: -O2 alone leaves them scalar. */
#define SIMD _Pragma("omp simd")

#define CONV_KERNELS(T)                                                                     \
    /* cols[(c, kh, kw)][(b, oh, ow)] = x[b, c, oh sh - ph + kh dh, ow sw - pw + kw dw],     \
     * 0 in the padding. Row index (c KH + kh) KW + kw runs over all C channels, which \
     * lays the groups' K x N blocks one after the other. */                                \
    static void im2col_##T(const conv_geom *q, const T *x, T *cols) {                       \
        int64_t rows = q->C * q->KH * q->KW;                                                \
        _Pragma("omp parallel for collapse(2) schedule(static) if (rows * q->N >= PARALLEL_MIN_ELEMS)") \
        for (int64_t r = 0; r < rows; r++) {                                                \
            for (int64_t b = 0; b < q->B; b++) {                                            \
                int64_t c = r / (q->KH * q->KW), kh = r / q->KW % q->KH, kw = r % q->KW;    \
                int64_t off = kw * q->dw - q->pw, lo, hi;                                   \
                valid_range(off, q->sw, q->W, q->OW, &lo, &hi);                             \
                const T *plane = x + (b * q->C + c) * q->H * q->W;                          \
                T *dst = cols + r * q->N + b * q->OHW;                                      \
                for (int64_t oh = 0; oh < q->OH; oh++, dst += q->OW) {                      \
                    int64_t ih = oh * q->sh - q->ph + kh * q->dh;                           \
                    if (ih < 0 || ih >= q->H) {                                             \
                        SIMD for (int64_t ow = 0; ow < q->OW; ow++) dst[ow] = 0;            \
                        continue;                                                           \
                    }                                                                       \
                    const T *src = plane + ih * q->W;                                       \
                    SIMD for (int64_t ow = 0; ow < lo; ow++) dst[ow] = 0;                   \
                    if (q->sw == 1)                                                         \
                        SIMD for (int64_t ow = lo; ow < hi; ow++) dst[ow] = src[ow + off];  \
                    else                                                                    \
                        SIMD for (int64_t ow = lo; ow < hi; ow++) dst[ow] = src[ow * q->sw + off]; \
                    SIMD for (int64_t ow = hi; ow < q->OW; ow++) dst[ow] = 0;               \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    /* dx[b, c] += the columns' entries that im2col read from it; one thread owns a  \
     * (b, c) plane and adds the taps in a fixed order. */                                  \
    static void col2im_##T(const conv_geom *q, const T *dcols, T *dx) {                     \
        _Pragma("omp parallel for collapse(2) schedule(static) if (q->C * q->KH * q->KW * q->N >= PARALLEL_MIN_ELEMS)") \
        for (int64_t b = 0; b < q->B; b++) {                                                \
            for (int64_t c = 0; c < q->C; c++) {                                            \
                T *plane = dx + (b * q->C + c) * q->H * q->W;                               \
                for (int64_t kh = 0; kh < q->KH; kh++) {                                    \
                    for (int64_t kw = 0; kw < q->KW; kw++) {                                \
                        int64_t r = (c * q->KH + kh) * q->KW + kw;                          \
                        int64_t off = kw * q->dw - q->pw, lo, hi;                           \
                        valid_range(off, q->sw, q->W, q->OW, &lo, &hi);                     \
                        const T *src = dcols + r * q->N + b * q->OHW;                       \
                        for (int64_t oh = 0; oh < q->OH; oh++, src += q->OW) {              \
                            int64_t ih = oh * q->sh - q->ph + kh * q->dh;                   \
                            if (ih < 0 || ih >= q->H) continue;                             \
                            T *d = plane + ih * q->W;                                       \
                            if (q->sw == 1)                                                 \
                                SIMD for (int64_t ow = lo; ow < hi; ow++) d[ow + off] += src[ow]; \
                            else                                                            \
                                SIMD for (int64_t ow = lo; ow < hi; ow++) d[ow * q->sw + off] += src[ow]; \
                        }                                                                   \
                    }                                                                       \
                }                                                                           \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    /* y[b, oc, p] = tmp[oc, b OHW + p] + bias[oc] */                                       \
    static void unpermute_##T(const conv_geom *q, const T *tmp, const T *bias, T *y) {      \
        _Pragma("omp parallel for collapse(2) schedule(static) if (q->OC * q->N >= PARALLEL_MIN_ELEMS)") \
        for (int64_t b = 0; b < q->B; b++) {                                                \
            for (int64_t oc = 0; oc < q->OC; oc++) {                                        \
                const T *s = tmp + oc * q->N + b * q->OHW;                                  \
                T *d = y + (b * q->OC + oc) * q->OHW;                                       \
                const T bv = bias ? bias[oc] : (T)0;                                        \
                SIMD for (int64_t p = 0; p < q->OHW; p++) d[p] = s[p] + bv;                 \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    /* gp[oc, b OHW + p] = g[b, oc, p] */                                                   \
    static void permute_##T(const conv_geom *q, const T *g, T *gp) {                        \
        _Pragma("omp parallel for collapse(2) schedule(static) if (q->OC * q->N >= PARALLEL_MIN_ELEMS)") \
        for (int64_t oc = 0; oc < q->OC; oc++) {                                            \
            for (int64_t b = 0; b < q->B; b++) {                                            \
                const T *s = g + (b * q->OC + oc) * q->OHW;                                 \
                T *d = gp + oc * q->N + b * q->OHW;                                         \
                SIMD for (int64_t p = 0; p < q->OHW; p++) d[p] = s[p];                      \
            }                                                                               \
        }                                                                                   \
    }                                                                                       \
    /* db[oc] += sum of gp[oc, :], summed in double (lane order fixed at compile time) */                     \
    static void bias_grad_##T(const conv_geom *q, const T *gp, T *db) {                     \
        for (int64_t oc = 0; oc < q->OC; oc++) {                                            \
            double acc = 0;                                                                 \
            const T *s = gp + oc * q->N;                                                    \
            _Pragma("omp simd reduction(+ : acc)")                                           \
            for (int64_t i = 0; i < q->N; i++) acc += s[i];                                 \
            db[oc] += (T)acc;                                                               \
        }                                                                                   \
    }
CONV_KERNELS(float)
CONV_KERNELS(double)

static void conv2d_forward(tape_node *n) {
    conv_geom q;
    conv_geom_of(n, &q);
    dtype dt = n->out->dtype;
    size_t es = dtype_size(dt);
    char *cols = n->saved[0]->data, *tmp = n->saved[1]->data;
    const char *w = n->in[1]->data;
    const void *bias = n->in[2] ? n->in[2]->data : NULL;
    if (dt == DTYPE_F32)
        im2col_float(&q, n->in[0]->data, (float *)cols);
    else
        im2col_double(&q, n->in[0]->data, (double *)cols);
    for (int64_t g = 0; g < q.G; g++)
        gemm(dt, false, false, q.OCg, q.N, q.K, w + (size_t)(g * q.OCg * q.K) * es, q.K,
             cols + (size_t)(g * q.K * q.N) * es, q.N, 0.0, tmp + (size_t)(g * q.OCg * q.N) * es, q.N);
    if (dt == DTYPE_F32)
        unpermute_float(&q, (const float *)tmp, bias, n->out->data);
    else
        unpermute_double(&q, (const double *)tmp, bias, n->out->data);
}

static void conv2d_vjp(tape_node *n, tensor *const *gin) {
    conv_geom q;
    conv_geom_of(n, &q);
    dtype dt = n->out->dtype;
    size_t es = dtype_size(dt);
    const char *cols = n->saved[0]->data, *w = n->in[1]->data;
    char *gp = n->saved[1]->data; /* scratch, see the top of the file */
    char *dcols = NULL;
    if (gin[0]) {
        tensor *t = tensor_tape_new(dt, 1, (int64_t[]){q.G * q.K * q.N});
        if (!t) return;
        dcols = t->data;
    }
    if (dt == DTYPE_F32)
        permute_float(&q, n->out->grad->data, (float *)gp);
    else
        permute_double(&q, n->out->grad->data, (double *)gp);
    if (gin[2]) {
        if (dt == DTYPE_F32)
            bias_grad_float(&q, (const float *)gp, gin[2]->data);
        else
            bias_grad_double(&q, (const double *)gp, gin[2]->data);
    }
    for (int64_t g = 0; g < q.G; g++) {
        const char *gpg = gp + (size_t)(g * q.OCg * q.N) * es;
        const char *wg = w + (size_t)(g * q.OCg * q.K) * es;
        const char *colsg = cols + (size_t)(g * q.K * q.N) * es;
        if (gin[1])
            gemm(dt, false, true, q.OCg, q.K, q.N, gpg, q.N, colsg, q.N, 1.0,
                 (char *)gin[1]->data + (size_t)(g * q.OCg * q.K) * es, q.K);
        if (gin[0])
            gemm(dt, true, false, q.K, q.N, q.OCg, wg, q.K, gpg, q.N, 0.0,
                 dcols + (size_t)(g * q.K * q.N) * es, q.N);
    }
    if (gin[0]) {
        if (dt == DTYPE_F32)
            col2im_float(&q, (const float *)dcols, gin[0]->data);
        else
            col2im_double(&q, (const double *)dcols, gin[0]->data);
    }
}

/* ------------------------------------------------------------- builder */
extern const op_def ops_conv[];

static int conv2d_validate(const tensor *x, const tensor *w, const tensor *b, conv2d_params p,
                           int64_t *oh, int64_t *ow) {
    char sx[96], sw[96], sb[96];
    tensor_shape_str(x, sx, sizeof sx);
    tensor_shape_str(w, sw, sizeof sw);
    if (x->ndim != 4) {
        error_set("conv2d: input must be 4-D (B, C, H, W), got %s", sx);
        return -1;
    }
    if (w->ndim != 4) {
        error_set("conv2d: weight must be 4-D (OC, C/groups, KH, KW), got %s", sw);
        return -1;
    }
    if (p.stride[0] < 1 || p.stride[1] < 1 || p.dilation[0] < 1 || p.dilation[1] < 1 ||
        p.padding[0] < 0 || p.padding[1] < 0 || p.groups < 1) {
        error_set("conv2d: bad params: stride [%d,%d] and dilation [%d,%d] must be >= 1, "
                  "padding [%d,%d] >= 0, groups %d >= 1",
                  p.stride[0], p.stride[1], p.dilation[0], p.dilation[1], p.padding[0],
                  p.padding[1], p.groups);
        return -1;
    }
    if (x->shape[1] % p.groups || w->shape[0] % p.groups) {
        error_set("conv2d: groups %d must divide input channels %lld and output channels %lld "
                  "(input %s, weight %s)",
                  p.groups, (long long)x->shape[1], (long long)w->shape[0], sx, sw);
        return -1;
    }
    if (x->shape[1] != w->shape[1] * p.groups) {
        error_set("conv2d: input channels %lld do not match weight %s (groups %d)",
                  (long long)x->shape[1], sw, p.groups);
        return -1;
    }
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0])) {
        error_set("conv2d: bias must be [%lld] for weight %s, got %s", (long long)w->shape[0], sw,
                  tensor_shape_str(b, sb, sizeof sb));
        return -1;
    }
    int64_t ekh = (int64_t)p.dilation[0] * (w->shape[2] - 1) + 1;
    int64_t ekw = (int64_t)p.dilation[1] * (w->shape[3] - 1) + 1;
    int64_t ph = x->shape[2] + 2 * (int64_t)p.padding[0], pw = x->shape[3] + 2 * (int64_t)p.padding[1];
    if (w->shape[2] < 1 || w->shape[3] < 1 || ekh > ph || ekw > pw) {
        error_set("conv2d: kernel %s (dilated %lldx%lld) larger than padded input %lldx%lld "
                  "(input %s, padding [%d,%d])",
                  sw, (long long)ekh, (long long)ekw, (long long)ph, (long long)pw, sx,
                  p.padding[0], p.padding[1]);
        return -1;
    }
    *oh = (ph - ekh) / p.stride[0] + 1;
    *ow = (pw - ekw) / p.stride[1] + 1;
    return 0;
}

tensor *tensor_conv2d(tensor *x, tensor *w, tensor *b, conv2d_params p) {
    const op_def *op = &ops_conv[0];
    tensor *in[3] = {x, w, b};
    if (op_check_inputs(op, in, b ? 3 : 2, 0)) return NULL;
    int64_t oh, ow;
    if (conv2d_validate(x, w, b, p, &oh, &ow)) return NULL;
    int64_t B = x->shape[0], OC = w->shape[0];
    int64_t ncols = x->shape[1] * w->shape[2] * w->shape[3] * B * oh * ow;
    tape_node *n = node_begin(op, in, 3, x->dtype, 4, (int64_t[]){B, OC, oh, ow});
    if (!n) return NULL;
    n->saved[0] = tensor_tape_new(x->dtype, 1, (int64_t[]){ncols});
    n->saved[1] = tensor_tape_new(x->dtype, 1, (int64_t[]){OC * B * oh * ow});
    if (!n->saved[0] || !n->saved[1]) return NULL;
    const int ip[7] = {p.stride[0], p.stride[1], p.padding[0], p.padding[1],
                       p.dilation[0], p.dilation[1], p.groups};
    for (int i = 0; i < 7; i++) n->ip[i] = ip[i];
    return node_finish(n);
}

/* ------------------------------------------------------------- samples */
static int conv2d_sample(int k, rng *g, op_sample *s) {
    static const struct {
        const char *what;
        int64_t x[4], w[4];
        int ip[7]; /* stride, padding, dilation, groups */
        bool bias;
    } cases[] = {
        {"plain, batch 2, non-square", {2, 3, 6, 5}, {4, 3, 3, 3}, {1, 1, 0, 0, 1, 1, 1}, true},
        {"stride 2, padding 1", {2, 2, 7, 7}, {3, 2, 3, 3}, {2, 2, 1, 1, 1, 1, 1}, true},
        {"dilation 2, padding (1,2)", {1, 2, 8, 7}, {2, 2, 3, 2}, {1, 1, 1, 2, 2, 2, 1}, true},
        {"groups 2, padding 1", {2, 4, 5, 5}, {6, 2, 3, 3}, {1, 1, 1, 1, 1, 1, 2}, true},
        {"no bias, stride (2,1), padding (0,1)", {2, 3, 5, 6}, {2, 3, 2, 3}, {2, 1, 0, 1, 1, 1, 1}, false},
        {"LeNet-like 5x5, padding 2", {2, 1, 6, 6}, {2, 1, 5, 5}, {1, 1, 2, 2, 1, 1, 1}, true},
    };
    if (k >= (int)(sizeof cases / sizeof cases[0])) return 1;
    s->n_inputs = cases[k].bias ? 3 : 2;
    s->inputs[0] = sample_tensor(g, 4, cases[k].x, -1.0, 1.0);
    s->inputs[1] = sample_tensor(g, 4, cases[k].w, -1.0, 1.0);
    if (cases[k].bias) s->inputs[2] = sample_tensor(g, 1, cases[k].w, -1.0, 1.0);
    for (int i = 0; i < 7; i++) s->ip[i] = cases[k].ip[i];
    char sx[64], sw[64];
    sample_name(s, "%s * %s: %s", tensor_shape_str(s->inputs[0], sx, sizeof sx),
                tensor_shape_str(s->inputs[1], sw, sizeof sw), cases[k].what);
    for (int i = 0; i < s->n_inputs; i++)
        if (!s->inputs[i]) return -1;
    return 0;
}

static tensor *conv2d_build(tensor *const *in, const op_sample *s) {
    conv2d_params p = {{(int)s->ip[0], (int)s->ip[1]}, {(int)s->ip[2], (int)s->ip[3]},
                       {(int)s->ip[4], (int)s->ip[5]}, (int)s->ip[6]};
    return tensor_conv2d(in[0], in[1], s->n_inputs > 2 ? in[2] : NULL, p);
}

const op_def ops_conv[] = {
    {"conv2d", 3, 0, conv2d_forward, conv2d_vjp, conv2d_sample, conv2d_build,
     "tensor_conv2d(x, w, b, params)",
     "y[b,o,i,j] = bias[o] + sum_{c,u,v} w[o,c,u,v] x[b, g(o) C/G + c, i sh - ph + u dh, "
     "j sw - pw + v dw] (x = 0 in the padding)",
     "per group, with N = B OH OW: dW += G (OC/G,N) @ cols^T, dx = col2im(W^T @ G), "
     "db = sum over (b,i,j) of G",
     "b may be NULL (then the node's third input is NULL and the case has 2 inputs); "
     "linear in each input, no kinks"},
};
const int ops_conv_count = 1;
