/* conv_extra.c - the convolutions beside conv2d: conv_transpose2d, an op of
 * its own (GEMM + col2im), and conv1d, composed of reshapes and conv2d.
 *
 * conv_transpose2d is conv2d's input gradient taken as an op (PyTorch's
 * ConvTranspose2d):
 *   x (B, C, H, W), w (C, OC/G, KH, KW), b (OC) or NULL -> y (B, OC, OH, OW),
 *   OH = (H - 1) sh - 2 ph + dh (KH - 1) + oph + 1, likewise OW,
 * where input pixel (h, w) of channel c of group g spreads x[b, c, h, w]
 * w[c, o, u, v] onto y[b, g OC/G + o, h sh - ph + u dh, w sw - pw + v dw] for
 * every tap (u, v) that lands inside y. The output padding oph only adds rows
 * at the bottom (nothing lands there but the bias); it resolves which of the
 * sh input sizes a conv2d of stride sh maps to this H, so it must be below
 * the stride or the dilation (as PyTorch requires).
 *
 * Per image b and group g, with K = OC/G KH KW and P = H W:
 *   forward: cols (K, P) = W_g^T @ x_bg, W_g = w[g C/G .. (g+1) C/G) as
 *            (C/G, K), x_bg (C/G, P); y_bg = b + col2im(cols)
 *   vjp:     cols = im2col(g_bg) (K, P), the transpose of col2im;
 *            dx_bg += W_g @ cols, dW_g += x_bg @ cols^T, db += sum over (b, i, j)
 * im2col of y is conv2d's column matrix of y with conv2d's stride, padding
 * and dilation, so dx = conv2d(g, w) and dW is the correlation of g with x.
 *
 * Images run one after another (each GEMM on OpenBLAS's threads), and dW
 * and db sum the images in order, so results do not depend on the thread
 * count beyond OpenBLAS's own GEMMs. */
#include "blas.h"

typedef struct {
    int64_t B, C, H, W, OC, KH, KW, OH, OW, G, Cg, OCg, K, P;
    int64_t sh, sw, ph, pw, dh, dw;
} ct_geom;

/* Node ip: stride (2), padding (2), output_padding (2), dilation (2), groups
 * (the same layout in the sample cases); saved[0] forward's columns (K P). */
static void ct_geom_of(const tensor *x, const tensor *w, int64_t OH, int64_t OW, const int64_t *ip,
                       ct_geom *q) {
    q->B = x->shape[0], q->C = x->shape[1], q->H = x->shape[2], q->W = x->shape[3];
    q->G = ip[8], q->Cg = q->C / q->G, q->OCg = w->shape[1], q->OC = q->OCg * q->G;
    q->KH = w->shape[2], q->KW = w->shape[3], q->OH = OH, q->OW = OW;
    q->K = q->OCg * q->KH * q->KW, q->P = q->H * q->W;
    q->sh = ip[0], q->sw = ip[1], q->ph = ip[2], q->pw = ip[3], q->dh = ip[6], q->dw = ip[7];
}

/* The input columns [lo, hi) whose output column w s + off lies in [0, OW). */
static inline void ct_cols(int64_t off, int64_t s, int64_t W, int64_t OW, int64_t *lo, int64_t *hi) {
    int64_t l = off >= 0 ? 0 : (-off + s - 1) / s;
    int64_t h = OW - 1 - off < 0 ? 0 : (OW - 1 - off) / s + 1;
    if (h > W) h = W;
    if (l > h) l = h;
    *lo = l, *hi = h;
}

/* col2im (forward: y_bg += the columns, y_bg (OCg, OH, OW)) and im2col (vjp:
 * the columns = g_bg's entries at the same places, 0 where a tap falls
 * outside), row r = (o KH + u) KW + v, column p = h W + w of cols. */
#define CT_KERNELS(T)                                                                   \
    static void ct_col2im_##T(const ct_geom *q, const T *cols, T *y) {                  \
        for (int64_t o = 0; o < q->OCg; o++)                                            \
            for (int64_t u = 0; u < q->KH; u++)                                         \
                for (int64_t v = 0; v < q->KW; v++) {                                   \
                    const T *cr = cols + ((o * q->KH + u) * q->KW + v) * q->P;          \
                    int64_t off = v * q->dw - q->pw, lo, hi;                            \
                    ct_cols(off, q->sw, q->W, q->OW, &lo, &hi);                         \
                    for (int64_t h = 0; h < q->H; h++) {                                \
                        int64_t i = h * q->sh - q->ph + u * q->dh;                      \
                        if (i < 0 || i >= q->OH) continue;                              \
                        int64_t yo = (o * q->OH + i) * q->OW + off;                     \
                        for (int64_t w = lo; w < hi; w++) y[yo + w * q->sw] += cr[h * q->W + w]; \
                    }                                                                   \
                }                                                                       \
    }                                                                                   \
    static void ct_im2col_##T(const ct_geom *q, const T *g, T *cols) {                  \
        for (int64_t o = 0; o < q->OCg; o++)                                            \
            for (int64_t u = 0; u < q->KH; u++)                                         \
                for (int64_t v = 0; v < q->KW; v++) {                                   \
                    T *cr = cols + ((o * q->KH + u) * q->KW + v) * q->P;                \
                    int64_t off = v * q->dw - q->pw, lo, hi;                            \
                    ct_cols(off, q->sw, q->W, q->OW, &lo, &hi);                         \
                    for (int64_t h = 0; h < q->H; h++) {                                \
                        int64_t i = h * q->sh - q->ph + u * q->dh;                      \
                        T *c = cr + h * q->W;                                           \
                        if (i < 0 || i >= q->OH) {                                      \
                            for (int64_t w = 0; w < q->W; w++) c[w] = 0;                \
                            continue;                                                   \
                        }                                                               \
                        int64_t go = (o * q->OH + i) * q->OW + off;                     \
                        for (int64_t w = 0; w < lo; w++) c[w] = 0;                      \
                        for (int64_t w = lo; w < hi; w++) c[w] = g[go + w * q->sw];     \
                        for (int64_t w = hi; w < q->W; w++) c[w] = 0;                   \
                    }                                                                   \
                }                                                                       \
    }                                                                                   \
    static void ct_fwd_##T(const ct_geom *q, const T *x, const T *wt, const T *b, T *y,   \
                           T *cols) {                                                   \
        int64_t out = q->OH * q->OW;                                                    \
        for (int64_t n = 0; n < q->B; n++)                                              \
            for (int64_t g = 0; g < q->G; g++) {                                        \
                const T *xg = x + (n * q->C + g * q->Cg) * q->P;                        \
                T *yg = y + (n * q->OC + g * q->OCg) * out;                             \
                blas_gemm_##T(true, false, q->K, q->P, q->Cg, wt + g * q->Cg * q->K, q->K, \
                              xg, q->P, 0, cols, q->P);                                 \
                for (int64_t o = 0; o < q->OCg; o++) {                                  \
                    T bv = b ? b[g * q->OCg + o] : 0;                                   \
                    for (int64_t k = 0; k < out; k++) yg[o * out + k] = bv;             \
                }                                                                       \
                ct_col2im_##T(q, cols, yg);                                             \
            }                                                                           \
    }                                                                                   \
    static void ct_bwd_##T(const ct_geom *q, const T *x, const T *wt, const T *gy, T *dx, \
                           T *dw, T *db, T *cols) {                                     \
        int64_t out = q->OH * q->OW;                                                    \
        for (int64_t n = 0; n < q->B; n++)                                              \
            for (int64_t g = 0; g < q->G; g++) {                                        \
                const T *gg = gy + (n * q->OC + g * q->OCg) * out;                      \
                if (db)                                                                 \
                    for (int64_t o = 0; o < q->OCg; o++) {                              \
                        T s = 0;                                                        \
                        for (int64_t k = 0; k < out; k++) s += gg[o * out + k];         \
                        db[g * q->OCg + o] += s;                                        \
                    }                                                                   \
                if (!dx && !dw) continue;                                               \
                ct_im2col_##T(q, gg, cols);                                             \
                int64_t xo = (n * q->C + g * q->Cg) * q->P, wo = g * q->Cg * q->K;      \
                if (dx)                                                                 \
                    blas_gemm_##T(false, false, q->Cg, q->P, q->K, wt + wo, q->K, cols,  \
                                  q->P, 1, dx + xo, q->P);                              \
                if (dw)                                                                 \
                    blas_gemm_##T(false, true, q->Cg, q->K, q->P, x + xo, q->P, cols,    \
                                  q->P, 1, dw + wo, q->K);                              \
            }                                                                           \
    }
CT_KERNELS(float)
CT_KERNELS(double)

static void node_geom(const tape_node *n, ct_geom *q) {
    ct_geom_of(n->in[0], n->in[1], n->out->shape[2], n->out->shape[3], n->ip, q);
}

static void conv_transpose2d_forward(tape_node *n) {
    ct_geom q;
    node_geom(n, &q);
    const tensor *b = n->in[2];
    if (n->out->dtype == DTYPE_F32)
        ct_fwd_float(&q, n->in[0]->data, n->in[1]->data, b ? b->data : NULL, n->out->data,
                     n->saved[0]->data);
    else
        ct_fwd_double(&q, n->in[0]->data, n->in[1]->data, b ? b->data : NULL, n->out->data,
                      n->saved[0]->data);
}

static void conv_transpose2d_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0] && !gin[1] && !gin[2]) return;
    ct_geom q;
    node_geom(n, &q);
    /* the vjp's own columns: forward's are the node's, and a vjp writes
     * nothing but gradient buffers */
    tensor *cols = tg_tensor_tape_new(n->out->dtype, 1, (int64_t[]){q.K * q.P});
    if (!cols) return;
    void *dx = gin[0] ? gin[0]->data : NULL, *dw = gin[1] ? gin[1]->data : NULL;
    void *db = gin[2] ? gin[2]->data : NULL;
    if (n->out->dtype == DTYPE_F32)
        ct_bwd_float(&q, n->in[0]->data, n->in[1]->data, n->out->grad->data, dx, dw, db, cols->data);
    else
        ct_bwd_double(&q, n->in[0]->data, n->in[1]->data, n->out->grad->data, dx, dw, db, cols->data);
}

/* ------------------------------------------------------- graph vjp */
/* The differentiable vjp, by decomposition (tg_vjp_graph_by_decomposition):
 * the forward rebuilt from differentiable ops as a stride-1 conv2d of the
 * zero-stuffed input with the flipped weight,
 *   xd[m sh] = x[m] (zeros between), padded by P = dh (KH - 1) - ph before
 *              and P + oph after (cut instead where negative);
 *   w'[g OC/G + o, c, u, v] = w[g C/G + c, o, KH-1-u, KW-1-v]  (OC, C/G, KH, KW);
 *   y = conv2d(xd, w', b), dilation (dh, dw), groups G;
 * then y[i] = sum_u xd[i + ph - u dh] w[u] as the kernel sums. Built on the
 * node's own inputs only, not on g: dx written as conv2d(g, w) would make
 * conv2d's own decomposition walk from w through g's ancestry (g depends on
 * w in any Hessian through a nonlinearity) back into this node, endlessly.
 * When x is itself computed from w, the decomposition's walk stops at this
 * node's inputs (its floor), so that path is the outer walk's alone. */
static tensor *ct_flip(tensor *t, int ax) {
    if (!t) return NULL;
    int64_t len = t->shape[ax];
    tensor *idx = tg_tensor_tape_new(DTYPE_I64, 1, &len);
    if (!idx) return NULL;
    for (int64_t i = 0; i < len; i++) ((int64_t *)idx->data)[i] = len - 1 - i;
    return tensor_index_select(t, ax, idx);
}
static int conv_transpose2d_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    ct_geom q;
    node_geom(n, &q);
    tensor *x = n->in[0], *w = n->in[1], *b = n->n_in > 2 ? n->in[2] : NULL;
    /* zero-stuffing: [B, C, H, 1, W, 1] padded to [B, C, H, sh, W, sw] */
    tensor *xd = tensor_reshape(x, 6, (int64_t[]){q.B, q.C, q.H, 1, q.W, 1});
    int64_t stuff[12] = {0, 0, 0, 0, 0, 0, 0, q.sh - 1, 0, 0, 0, q.sw - 1};
    xd = tensor_reshape(tensor_pad(xd, stuff, 0.0), 4, (int64_t[]){q.B, q.C, q.H * q.sh, q.W * q.sw});
    const int64_t pb[2] = {q.dh * (q.KH - 1) - q.ph, q.dw * (q.KW - 1) - q.pw};
    const int64_t pa[2] = {pb[0] + n->ip[4], pb[1] + n->ip[5]};
    int64_t pads[8] = {0, 0, 0, 0, pb[0] > 0 ? pb[0] : 0, pa[0] > 0 ? pa[0] : 0,
                       pb[1] > 0 ? pb[1] : 0, pa[1] > 0 ? pa[1] : 0};
    xd = tensor_pad(xd, pads, 0.0);
    xd = tensor_narrow(xd, 2, pb[0] < 0 ? -pb[0] : 0, q.OH + q.dh * (q.KH - 1));
    xd = tensor_narrow(xd, 3, pb[1] < 0 ? -pb[1] : 0, q.OW + q.dw * (q.KW - 1));
    /* w (C, OCg, KH, KW) -> [G, Cg, OCg, KH, KW] -> [G, OCg, Cg, ..] -> (OC, Cg, KH, KW), flipped */
    tensor *wf = tensor_reshape(w, 5, (int64_t[]){q.G, q.Cg, q.OCg, q.KH, q.KW});
    wf = tensor_reshape(tensor_transpose(wf, 1, 2), 4, (int64_t[]){q.OC, q.Cg, q.KH, q.KW});
    wf = ct_flip(ct_flip(wf, 2), 3);
    conv2d_params p = {{1, 1}, {0, 0}, {(int)q.dh, (int)q.dw}, (int)q.G};
    tensor *y = xd && wf ? tensor_conv2d(xd, wf, b, p) : NULL;
    return tg_vjp_graph_by_decomposition(n, y, g, want, gin);
}

/* ------------------------------------------------------------ builders */
/* The conv_extra family: index of each op in tg_ops_conv_extra, its entry below. */
enum { CONV_TRANSPOSE2D, N_CONV_EXTRA_OPS };

extern const op_def tg_ops_conv_extra[];

/* One output dimension, (in - 1) s - 2 p + d (k - 1) + op + 1, or -1 with an
 * error when a product overflows (no valid tensor is that large). */
static int64_t ct_out_size(int64_t in, int s, int p, int d, int64_t k, int op) {
    int64_t a, e;
    if (i64_mul_overflows(in - 1, s, &a) || i64_mul_overflows(d, k - 1, &e) ||
        __builtin_add_overflow(a, e, &a))
        return INT64_MAX;
    return a - 2 * (int64_t)p + op + 1;
}

static int conv_transpose2d_validate(const tensor *x, const tensor *w, const tensor *b,
                                     conv_transpose2d_params p, int64_t *oh, int64_t *ow) {
    char sx[96], sw[96], sb[96];
#define SX tensor_shape_str(x, sx, sizeof sx)
#define SW tensor_shape_str(w, sw, sizeof sw)
    if (x->ndim != 4) {
        tg_error_set("conv_transpose2d: input must be 4-D (B, C, H, W), got %s", SX);
        return -1;
    }
    if (w->ndim != 4) {
        tg_error_set("conv_transpose2d: weight must be 4-D (C, OC/groups, KH, KW), got %s", SW);
        return -1;
    }
    if (w->shape[0] < 1 || w->shape[1] < 1 || w->shape[2] < 1 || w->shape[3] < 1) {
        tg_error_set("conv_transpose2d: weight %s has an empty dimension", SW);
        return -1;
    }
    if (p.stride[0] < 1 || p.stride[1] < 1 || p.dilation[0] < 1 || p.dilation[1] < 1 ||
        p.padding[0] < 0 || p.padding[1] < 0 || p.output_padding[0] < 0 || p.output_padding[1] < 0 ||
        p.groups < 1) {
        tg_error_set("conv_transpose2d: bad params: stride [%d,%d] and dilation [%d,%d] must be >= 1, "
                     "padding [%d,%d] and output_padding [%d,%d] >= 0, groups %d >= 1",
                     p.stride[0], p.stride[1], p.dilation[0], p.dilation[1], p.padding[0],
                     p.padding[1], p.output_padding[0], p.output_padding[1], p.groups);
        return -1;
    }
    for (int d = 0; d < 2; d++)
        if (p.output_padding[d] >= p.stride[d] && p.output_padding[d] >= p.dilation[d]) {
            tg_error_set("conv_transpose2d: output_padding [%d,%d] must be smaller than the stride "
                         "[%d,%d] or the dilation [%d,%d] in each dimension",
                         p.output_padding[0], p.output_padding[1], p.stride[0], p.stride[1],
                         p.dilation[0], p.dilation[1]);
            return -1;
        }
    if (x->shape[1] % p.groups) {
        tg_error_set("conv_transpose2d: groups %d must divide input channels %lld (input %s, weight %s)",
                     p.groups, (long long)x->shape[1], SX, SW);
        return -1;
    }
    if (x->shape[1] != w->shape[0]) {
        tg_error_set("conv_transpose2d: input channels %lld do not match weight %s (its dimension 0)",
                     (long long)x->shape[1], SW);
        return -1;
    }
    int64_t oc;
    if (i64_mul_overflows(w->shape[1], p.groups, &oc)) oc = -1;
    if (b && (b->ndim != 1 || b->shape[0] != oc)) {
        tg_error_set("conv_transpose2d: bias must be [%lld] for weight %s and groups %d, got %s",
                     (long long)oc, SW, p.groups, tensor_shape_str(b, sb, sizeof sb));
        return -1;
    }
    *oh = ct_out_size(x->shape[2], p.stride[0], p.padding[0], p.dilation[0], w->shape[2],
                      p.output_padding[0]);
    *ow = ct_out_size(x->shape[3], p.stride[1], p.padding[1], p.dilation[1], w->shape[3],
                      p.output_padding[1]);
    if (x->shape[2] < 1 || x->shape[3] < 1 || *oh < 1 || *ow < 1) {
        tg_error_set("conv_transpose2d: output size %lldx%lld must be >= 1 (input %s, weight %s, "
                     "stride [%d,%d], padding [%d,%d], output_padding [%d,%d], dilation [%d,%d])",
                     (long long)*oh, (long long)*ow, SX, SW, p.stride[0], p.stride[1], p.padding[0],
                     p.padding[1], p.output_padding[0], p.output_padding[1], p.dilation[0],
                     p.dilation[1]);
        return -1;
    }
#undef SX
#undef SW
    return 0;
}

tensor *tensor_conv_transpose2d(tensor *x, tensor *w, tensor *b, conv_transpose2d_params p) {
    const op_def *op = &tg_ops_conv_extra[CONV_TRANSPOSE2D];
    tensor *in[3] = {x, w, b};
    if (tg_op_check_inputs(op, in, 2, 0) || op_check_optional(op->name, "bias", b, x)) return NULL;
    int64_t oh, ow;
    if (conv_transpose2d_validate(x, w, b, p, &oh, &ow)) return NULL;
    int64_t OC = w->shape[1] * p.groups, cols;
    /* the columns of one image and group, K P; refused up front when the
     * count overflows (the allocation limit refuses a merely huge one) */
    if (i64_mul_overflows(w->shape[1] * w->shape[2] * w->shape[3], x->shape[2] * x->shape[3], &cols)) {
        char sx[96], sw[96];
        tg_error_set("conv_transpose2d: columns of input %s and weight %s overflow int64",
                     tensor_shape_str(x, sx, sizeof sx), tensor_shape_str(w, sw, sizeof sw));
        return NULL;
    }
    tape_node *n = tg_node_begin(op, in, 3, x->dtype, 4, (int64_t[]){x->shape[0], OC, oh, ow});
    if (!n) return NULL;
    const int ip[9] = {p.stride[0], p.stride[1], p.padding[0], p.padding[1], p.output_padding[0],
                       p.output_padding[1], p.dilation[0], p.dilation[1], p.groups};
    for (int i = 0; i < 9; i++) n->ip[i] = ip[i];
    n->saved[0] = tg_tensor_tape_new(x->dtype, 1, (int64_t[]){cols});
    if (!n->saved[0]) return NULL;
    return tg_node_finish(n);
}

/* conv1d is conv2d on x viewed (B, C, 1, L) and w viewed (OC, C/G, 1, K),
 * stride (1, s), padding (0, p), dilation (1, d): the two reshapes copy x
 * and w (and y back) but the convolution runs on conv2d's kernels, chosen
 * per shape and ISA, which beat any plain loop written for one dimension;
 * the gradient flows through the reshapes and conv2d, both checked ops. An
 * error from conv2d or a reshape is prefixed with conv1d and its shapes. */
tensor *tensor_conv1d(tensor *x, tensor *w, tensor *b, conv1d_params p) {
    char sx[96], sw[96];
    if (!x || !w) {
        if (!tg_error_pending()) tg_error_set("conv1d: input %d is NULL", x ? 1 : 0);
        return NULL;
    }
    if (x->ndim != 3 || w->ndim != 3) {
        tg_error_set("conv1d: input must be 3-D (B, C, L) and weight 3-D (OC, C/groups, K), got "
                     "input %s and weight %s",
                     tensor_shape_str(x, sx, sizeof sx), tensor_shape_str(w, sw, sizeof sw));
        return NULL;
    }
    uint64_t errors = tg_error_count();
    tensor *x4 = tensor_reshape(x, 4, (int64_t[]){x->shape[0], x->shape[1], 1, x->shape[2]});
    tensor *w4 = tensor_reshape(w, 4, (int64_t[]){w->shape[0], w->shape[1], 1, w->shape[2]});
    conv2d_params q = {{1, p.stride}, {0, p.padding}, {1, p.dilation}, p.groups};
    tensor *y4 = x4 && w4 ? tensor_conv2d(x4, w4, b, q) : NULL;
    tensor *y = y4 ? tensor_reshape(y4, 3, (int64_t[]){y4->shape[0], y4->shape[1], y4->shape[3]}) : NULL;
    if (!y && tg_error_count() != errors)
        tg_error_prefix("conv1d: input %s, weight %s, stride %d, padding %d, dilation %d, groups %d: ",
                        tensor_shape_str(x, sx, sizeof sx), tensor_shape_str(w, sw, sizeof sw),
                        p.stride, p.padding, p.dilation, p.groups);
    return y;
}

/* ------------------------------------------------------------- samples */
static int conv_transpose2d_sample(int k, rng *g, op_sample *s) {
    static const struct {
        const char *what;
        int64_t x[4], w[4];
        int ip[9]; /* stride, padding, output_padding, dilation, groups */
        bool bias;
    } cases[] = {
        {"batch 2, non-square", {2, 3, 4, 5}, {3, 2, 3, 3}, {1, 1, 0, 0, 0, 0, 1, 1, 1}, true},
        {"stride 2, pad 1, output_padding 1", {2, 2, 3, 3}, {2, 3, 3, 3}, {2, 2, 1, 1, 1, 1, 1, 1, 1}, true},
        {"dilation 2, pad (1,0)", {1, 2, 4, 3}, {2, 2, 2, 3}, {1, 1, 1, 0, 0, 0, 2, 2, 1}, true},
        {"groups 2, stride (2,1), pad 1", {2, 4, 3, 3}, {4, 3, 3, 3}, {2, 1, 1, 1, 0, 0, 1, 1, 2}, true},
        {"no bias, stride (1,2), output_padding (0,1)", {1, 3, 4, 4}, {3, 2, 2, 3},
         {1, 2, 0, 0, 0, 1, 1, 1, 1}, false},
        {"stride 1, dilation 2, output_padding 1", {1, 2, 3, 3}, {2, 2, 3, 3}, {1, 1, 0, 0, 1, 1, 2, 2, 1}, true},
        {"stride 3, pad 2, groups 3", {1, 3, 3, 2}, {3, 1, 4, 4}, {3, 3, 2, 2, 2, 0, 1, 1, 3}, true},
    };
    if (k >= (int)(sizeof cases / sizeof cases[0])) return 1;
    s->n_inputs = cases[k].bias ? 3 : 2;
    s->inputs[0] = tg_sample_tensor(g, 4, cases[k].x, -1.0, 1.0);
    s->inputs[1] = tg_sample_tensor(g, 4, cases[k].w, -1.0, 1.0);
    if (cases[k].bias)
        s->inputs[2] = tg_sample_tensor(g, 1, (int64_t[]){cases[k].w[1] * cases[k].ip[8]}, -1.0, 1.0);
    for (int i = 0; i < 9; i++) s->ip[i] = cases[k].ip[i];
    char sx[64], sw[64];
    tg_sample_name(s, "%s * %s: %s", tensor_shape_str(s->inputs[0], sx, sizeof sx),
                   tensor_shape_str(s->inputs[1], sw, sizeof sw), cases[k].what);
    for (int i = 0; i < s->n_inputs; i++)
        if (!s->inputs[i]) return -1;
    return 0;
}

static tensor *conv_transpose2d_build(tensor *const *in, const op_sample *s) {
    conv_transpose2d_params p = {{(int)s->ip[0], (int)s->ip[1]}, {(int)s->ip[2], (int)s->ip[3]},
                                 {(int)s->ip[4], (int)s->ip[5]}, {(int)s->ip[6], (int)s->ip[7]},
                                 (int)s->ip[8]};
    return tensor_conv_transpose2d(in[0], in[1], s->n_inputs > 2 ? in[2] : NULL, p);
}

const op_def tg_ops_conv_extra[] = {
    [CONV_TRANSPOSE2D] = {"conv_transpose2d", 3, 0, conv_transpose2d_forward, conv_transpose2d_vjp,
     conv_transpose2d_sample, conv_transpose2d_build, "tensor_conv_transpose2d(x, w, b, params)",
     "y[b, g OC/G + o, h sh - ph + u dh, w sw - pw + v dw] += x[b, g C/G + c, h, w] w[g C/G + c, o, u, v] "
     "over taps landing in y, plus bias[o]; OH = (H-1) sh - 2 ph + dh (KH-1) + oph + 1, likewise OW",
     "per image b and group g, cols = im2col(G_bg) (OC/G KH KW, H W): dx_bg += W_g @ cols, "
     "dW_g += x_bg @ cols^T, db = sum over (b,i,j) of G (so dx = conv2d(g, w))",
     "w is (C, OC/groups, KH, KW) as in PyTorch; b may be NULL; output_padding must be below the "
     "stride or the dilation (as PyTorch); linear in each input, no kinks",
     .vjp_graph = conv_transpose2d_vjp_graph},
};
const int tg_ops_conv_extra_count = N_CONV_EXTRA_OPS;
_Static_assert(sizeof tg_ops_conv_extra / sizeof tg_ops_conv_extra[0] == N_CONV_EXTRA_OPS,
               "tg_ops_conv_extra: one entry per op of its enum");
