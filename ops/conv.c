/* conv.c - 2-D convolution (cross-correlation, as in PyTorch): the op's
 * builder, registry entry and samples, and the dispatch to the kernels of
 * the ISA variant in use (conv_kernels.c, compiled once per variant; the
 * paths and their layouts are described there).
 *
 *   x (B, C, H, W), w (OC, C/G, KH, KW), b (OC) or NULL -> y (B, OC, OH, OW)
 *   OH = (H + 2 ph - dh (KH - 1) - 1) / sh + 1, likewise OW.
 *
 * Threads: images are split over OpenMP threads (OpenBLAS is held to one
 * thread meanwhile). Each image's output and dx are computed by one thread
 * in a fixed order; dW is summed per fixed chunk of CONV_CHUNK images and the
 * chunk sums are added in chunk order, so results are bit-identical for any
 * thread count (for one variant: variants differ in rounding). */
#include <cblas.h>

#include "conv.h"
#include "grad_ops.h"

static const conv_kernels *const variants[ISA_COUNT] = {&tg_conv_kernels_v2, &tg_conv_kernels_v3,
                                                       &tg_conv_kernels_v4};

/* The kernels of the variant in use; NULL (error set) when TAPEGRAD_ISA is
 * refused. */
static const conv_kernels *conv_impl(void) {
    int v = tg_isa_current();
    return v < 0 ? NULL : variants[v];
}

const conv_kernels *tg_conv_variant(int64_t v) { return variants[v]; }

/* Threads for a loop over B images: one per image at most, none when the
 * whole batch is too little work to share. */
int tg_conv_threads(const conv_geom *q) {
    int t = tapegrad_threads();
    if (q->B * q->OC * q->P * q->K < tg_parallel_min()) t = 1;
    return t < q->B || q->B < 1 ? t : (int)q->B;
}

/* OpenBLAS stays on one thread while our threads each run their own GEMMs. */
int tg_conv_blas_hold(int threads) {
    int was = openblas_get_num_threads();
    if (threads > 1 && was > 1) openblas_set_num_threads(1);
    return was;
}
void tg_conv_blas_release(int threads, int was) {
    if (threads > 1 && was > 1) openblas_set_num_threads(was);
}

/* The conv family: index of each op in tg_ops_conv, its entry below. */
enum { CONV2D, CONV2D_MAX_POOL2D, CONV2D_MAX_POOL2D_RELU, N_CONV_OPS };

extern const op_def tg_ops_conv[];

/* A node's pooling, ip[11] (set by its builder: copies of an op_def, as the
 * checker's tests make, run the same way) */
enum { CONV_UNPOOLED, CONV_POOLED, CONV_POOLED_RELU };
static bool is_pooled(const tape_node *n) { return n->ip[11] != CONV_UNPOOLED; }

/* The variant is the one the builder saw (ip[8]): its scratch slots were
 * sized by that variant's geometry. A pooled node (conv2d_max_pool2d, _relu)
 * keeps the convolution's output size in ip[9], ip[10]; its out is the
 * pooled one. */
static void node_geom(const conv_kernels *k, const tape_node *n, conv_geom *q) {
    if (!is_pooled(n)) {
        k->geom(n->in[0], n->in[1], n->out->shape[2], n->out->shape[3], n->ip, q);
        return;
    }
    k->geom(n->in[0], n->in[1], n->ip[9], n->ip[10], n->ip, q);
    q->pool = true, q->POH = n->out->shape[2], q->POW = n->out->shape[3];
    q->relu = n->ip[11] == CONV_POOLED_RELU;
}

static void conv2d_forward(tape_node *n) {
    const conv_kernels *k = variants[n->ip[8]];
    conv_geom q;
    node_geom(k, n, &q);
    if (n->out->size == 0) return; /* empty batch */
    int threads = tg_conv_threads(&q);
    if (threads > n->ip[7]) threads = (int)n->ip[7]; /* one scratch slot per thread */
    int blas = tg_conv_blas_hold(threads);
    k->fwd[n->out->dtype == DTYPE_F32 ? 0 : 1](n, &q, threads);
    tg_conv_blas_release(threads, blas);
}

static void conv2d_vjp(tape_node *n, tensor *const *gin) {
    const conv_kernels *k = variants[n->ip[8]];
    conv_geom q;
    node_geom(k, n, &q);
    dtype dt = n->out->dtype;
    if (n->out->size == 0) return; /* empty batch */
    if (!gin[0] && !gin[1] && !gin[2]) return;
    int threads = tg_conv_threads(&q);
    int64_t chunks = (q.B + CONV_CHUNK - 1) / CONV_CHUNK;
    tensor *scratch = tg_tensor_tape_new(dt, 1, (int64_t[]){threads * k->slot(&q)});
    /* per chunk of images: its dW (the weight's size), then its db (OC) */
    bool want_parts = gin[1] || gin[2];
    tensor *parts = want_parts ? tg_tensor_tape_zeros(dt, 1, (int64_t[]){chunks * (n->in[1]->size + q.OC)})
                               : NULL;
    if (!scratch || (want_parts && !parts)) return;
    int blas = tg_conv_blas_hold(threads);
    k->bwd[dt == DTYPE_F32 ? 0 : 1](n, &q, threads, gin, scratch->data, parts ? parts->data : NULL);
    tg_conv_blas_release(threads, blas);
}

/* ------------------------------------------------------------- builder */

int tg_conv2d_validate(const tensor *x, const tensor *w, const tensor *b, conv2d_params p,
                       int64_t *oh, int64_t *ow) {
    /* the shapes are formatted for a message only: this runs on every call */
    char sx[96], sw[96], sb[96];
#define SX tensor_shape_str(x, sx, sizeof sx)
#define SW tensor_shape_str(w, sw, sizeof sw)
    if (x->ndim != 4) {
        tg_error_set("conv2d: input must be 4-D (B, C, H, W), got %s", SX);
        return -1;
    }
    if (w->ndim != 4) {
        tg_error_set("conv2d: weight must be 4-D (OC, C/groups, KH, KW), got %s", SW);
        return -1;
    }
    if (w->shape[0] < 1 || w->shape[1] < 1) {
        tg_error_set("conv2d: weight %s has no channels", SW);
        return -1;
    }
    if (p.stride[0] < 1 || p.stride[1] < 1 || p.dilation[0] < 1 || p.dilation[1] < 1 ||
        p.padding[0] < 0 || p.padding[1] < 0 || p.groups < 1) {
        tg_error_set("conv2d: bad params: stride [%d,%d] and dilation [%d,%d] must be >= 1, "
                  "padding [%d,%d] >= 0, groups %d >= 1",
                  p.stride[0], p.stride[1], p.dilation[0], p.dilation[1], p.padding[0],
                  p.padding[1], p.groups);
        return -1;
    }
    if (x->shape[1] % p.groups || w->shape[0] % p.groups) {
        tg_error_set("conv2d: groups %d must divide input channels %lld and output channels %lld "
                  "(input %s, weight %s)",
                  p.groups, (long long)x->shape[1], (long long)w->shape[0], SX, SW);
        return -1;
    }
    if (x->shape[1] != w->shape[1] * p.groups) {
        tg_error_set("conv2d: input channels %lld do not match weight %s (groups %d)",
                  (long long)x->shape[1], SW, p.groups);
        return -1;
    }
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0])) {
        tg_error_set("conv2d: bias must be [%lld] for weight %s, got %s", (long long)w->shape[0], SW,
                  tensor_shape_str(b, sb, sizeof sb));
        return -1;
    }
    /* the dilated kernel's extent; an overflow is larger than any input */
    int64_t ekh, ekw;
    if (i64_mul_overflows(p.dilation[0], w->shape[2] - 1, &ekh)) ekh = INT64_MAX - 1;
    if (i64_mul_overflows(p.dilation[1], w->shape[3] - 1, &ekw)) ekw = INT64_MAX - 1;
    ekh++, ekw++;
    int64_t ph = x->shape[2] + 2 * (int64_t)p.padding[0], pw = x->shape[3] + 2 * (int64_t)p.padding[1];
    if (w->shape[2] < 1 || w->shape[3] < 1 || ekh > ph || ekw > pw) {
        tg_error_set("conv2d: kernel %s (dilated %lldx%lld) larger than padded input %lldx%lld "
                  "(input %s, padding [%d,%d])",
                  SW, (long long)ekh, (long long)ekw, (long long)ph, (long long)pw, SX,
                  p.padding[0], p.padding[1]);
        return -1;
    }
#undef SX
#undef SW
    *oh = (ph - ekh) / p.stride[0] + 1;
    *ow = (pw - ekw) / p.stride[1] + 1;
    return 0;
}

/* The node of op (conv2d; a pooled one, pool CONV_POOLED or
 * CONV_POOLED_RELU) for inputs in[] checked and a convolution output of
 * oh x ow. */
static tensor *conv_node(const op_def *op, tensor *const *in, conv2d_params p, int64_t oh,
                         int64_t ow, int pool) {
    const bool pooled = pool != CONV_UNPOOLED;
    tensor *x = in[0], *w = in[1];
    const int64_t shape[4] = {x->shape[0], w->shape[0], pooled ? oh / 2 : oh, pooled ? ow / 2 : ow};
    tape_node *n = tg_node_begin(op, in, 3, x->dtype, 4, shape);
    if (!n) return NULL;
    const int ip[7] = {p.stride[0], p.stride[1], p.padding[0], p.padding[1],
                       p.dilation[0], p.dilation[1], p.groups};
    for (int i = 0; i < 7; i++) n->ip[i] = ip[i];
    n->ip[8] = tg_isa_current(); /* checked before tg_node_begin */
    n->ip[9] = oh, n->ip[10] = ow, n->ip[11] = pool;
    const conv_kernels *k = variants[n->ip[8]];
    /* one image's columns per thread that forward may use */
    conv_geom q;
    node_geom(k, n, &q);
    n->ip[7] = tg_conv_threads(&q);
    n->saved[0] = tg_tensor_tape_new(x->dtype, 1, (int64_t[]){n->ip[7] * k->slot(&q)});
    if (!n->saved[0]) return NULL;
    /* the argmax taps, an int32 per output (pool_kernels.h), written by
     * every forward, read by the vjp: int32s in an int64 tensor's buffer */
    const int64_t taps = shape[0] * shape[1] * shape[2] * shape[3];
    if (pooled && !(n->saved[1] = tg_tensor_tape_new(DTYPE_I64, 1, (int64_t[]){(taps + 1) / 2})))
        return NULL;
    return tg_node_finish(n);
}

tensor *tensor_conv2d(tensor *x, tensor *w, tensor *b, conv2d_params p) {
    const op_def *op = &tg_ops_conv[CONV2D];
    tensor *in[3] = {x, w, b};
    /* a NULL bias while an error is pending is a failed expression, not "no
     * bias" (op_check_optional) */
    if (tg_op_check_inputs(op, in, 2, 0) || op_check_optional(op->name, "bias", b, x)) return NULL;
    int64_t oh, ow;
    if (tg_conv2d_validate(x, w, b, p, &oh, &ow)) return NULL;
    if (!conv_impl()) return NULL; /* TAPEGRAD_ISA refused: its reason is the error */
    return conv_node(op, in, p, oh, ow, CONV_UNPOOLED);
}

/* The fused node (op: conv2d_max_pool2d, or its relu form) where the pool
 * is 2x2, stride 2, unpadded and the convolution's output holds a window.
 * Any other pool is the two (three) ops, whose errors name them. */
static tensor *conv_pool(const op_def *op, tensor *x, tensor *w, tensor *b, conv2d_params p,
                         pool2d_params pp, bool relu) {
    tensor *in[3] = {x, w, b};
    if (tg_op_check_inputs(op, in, 2, 0) || op_check_optional(op->name, "bias", b, x)) return NULL;
    int64_t oh, ow;
    if (tg_conv2d_validate(x, w, b, p, &oh, &ow)) {
        tg_error_prefix("%s: ", op->name);
        return NULL;
    }
    const bool k2s2 = pp.kernel[0] == 2 && pp.kernel[1] == 2 && pp.stride[0] == 2 &&
                      pp.stride[1] == 2 && pp.padding[0] == 0 && pp.padding[1] == 0;
    if (!k2s2 || oh < 2 || ow < 2) {
        tensor *y = tensor_max_pool2d(tensor_conv2d(x, w, b, p), pp);
        return relu ? tensor_relu(y) : y;
    }
    if (!conv_impl()) return NULL;
    return conv_node(op, in, p, oh, ow, relu ? CONV_POOLED_RELU : CONV_POOLED);
}
tensor *tensor_conv2d_max_pool2d(tensor *x, tensor *w, tensor *b, conv2d_params p,
                                 pool2d_params pp) {
    return conv_pool(&tg_ops_conv[CONV2D_MAX_POOL2D], x, w, b, p, pp, false);
}
tensor *tensor_conv2d_max_pool2d_relu(tensor *x, tensor *w, tensor *b, conv2d_params p,
                                      pool2d_params pp) {
    return conv_pool(&tg_ops_conv[CONV2D_MAX_POOL2D_RELU], x, w, b, p, pp, true);
}

int tg_conv2d_paths(const tensor *x, const tensor *w, conv2d_params p, isa_level v, conv_paths *out) {
    int64_t oh, ow;
    if (!x || !w || tg_conv2d_validate(x, w, NULL, p, &oh, &ow)) return -1;
    const int64_t ip[7] = {p.stride[0], p.stride[1], p.padding[0], p.padding[1],
                           p.dilation[0], p.dilation[1], p.groups};
    conv_geom q;
    variants[v]->geom(x, w, oh, ow, ip, &q);
    *out = (conv_paths){q.fwd, q.dwp, q.dx};
    return 0;
}

/* ------------------------------------------------------------- samples */
static int conv2d_sample(int k, rng *g, op_sample *s) {
    static const struct {
        const char *what;
        int64_t x[4], w[4];
        int ip[7]; /* stride, padding, dilation, groups */
        bool bias;
    } cases[] = {
        {"batch 2, non-square", {2, 3, 6, 5}, {4, 3, 3, 3}, {1, 1, 0, 0, 1, 1, 1}, true},
        {"stride 2, pad 1", {2, 2, 7, 7}, {3, 2, 3, 3}, {2, 2, 1, 1, 1, 1, 1}, true},
        {"dilation 2, pad (1,2)", {1, 2, 8, 7}, {2, 2, 3, 2}, {1, 1, 1, 2, 2, 2, 1}, true},
        {"groups 2, pad 1", {2, 4, 5, 5}, {6, 2, 3, 3}, {1, 1, 1, 1, 1, 1, 2}, true},
        {"no bias, stride (2,1), pad (0,1)", {2, 3, 5, 6}, {2, 3, 2, 3}, {2, 1, 0, 1, 1, 1, 1}, false},
        {"LeNet-like, pad 2", {2, 1, 6, 6}, {2, 1, 5, 5}, {1, 1, 2, 2, 1, 1, 1}, true},
        /* the paths the cases above leave out (conv_paths; a test checks every
         * variant and dtype): wide columns through SGEMM (K 36 too long for
         * the direct kernels), the direct kernels on the wide layout, and 16
         * output channels, whole vectors of them in the lanes on every variant */
        {"wide rows, K 36", {1, 3, 4, 33}, {3, 3, 3, 4}, {1, 1, 0, 0, 1, 1, 1}, true},
        {"wide rows, K 12", {1, 2, 4, 20}, {3, 2, 2, 3}, {1, 1, 0, 0, 1, 1, 1}, true},
        {"16 output channels", {1, 3, 5, 5}, {16, 3, 3, 3}, {1, 1, 0, 0, 1, 1, 1}, true},
    };
    if (k >= (int)(sizeof cases / sizeof cases[0])) return 1;
    s->n_inputs = cases[k].bias ? 3 : 2;
    s->inputs[0] = tg_sample_tensor(g, 4, cases[k].x, -1.0, 1.0);
    s->inputs[1] = tg_sample_tensor(g, 4, cases[k].w, -1.0, 1.0);
    if (cases[k].bias) s->inputs[2] = tg_sample_tensor(g, 1, cases[k].w, -1.0, 1.0);
    for (int i = 0; i < 7; i++) s->ip[i] = cases[k].ip[i];
    char sx[64], sw[64];
    tg_sample_name(s, "%s * %s: %s", tensor_shape_str(s->inputs[0], sx, sizeof sx),
                tensor_shape_str(s->inputs[1], sw, sizeof sw), cases[k].what);
    for (int i = 0; i < s->n_inputs; i++)
        if (!s->inputs[i]) return -1;
    return 0;
}

static conv2d_params sample_params(const op_sample *s) {
    return (conv2d_params){{(int)s->ip[0], (int)s->ip[1]}, {(int)s->ip[2], (int)s->ip[3]},
                           {(int)s->ip[4], (int)s->ip[5]}, (int)s->ip[6]};
}
static tensor *conv2d_build(tensor *const *in, const op_sample *s) {
    return tensor_conv2d(in[0], in[1], s->n_inputs > 2 ? in[2] : NULL, sample_params(s));
}

/* conv2d_max_pool2d's cases are conv2d's: each reaches one of conv2d's paths
 * on some variant, and every output is at least 2x2, some odd (a last row or
 * column no window takes). Convolution outputs of random inputs do not tie.
 * tests/test_ops_conv.c holds the node to the two ops, bit for bit. */
static int conv2d_max_pool2d_sample(int k, rng *g, op_sample *s) { return conv2d_sample(k, g, s); }
static tensor *conv2d_max_pool2d_build(tensor *const *in, const op_sample *s) {
    return tensor_conv2d_max_pool2d(in[0], in[1], s->n_inputs > 2 ? in[2] : NULL, sample_params(s),
                                    (pool2d_params){{2, 2}, {2, 2}, {0, 0}, false});
}
static tensor *conv2d_max_pool2d_relu_build(tensor *const *in, const op_sample *s) {
    return tensor_conv2d_max_pool2d_relu(in[0], in[1], s->n_inputs > 2 ? in[2] : NULL,
                                         sample_params(s), (pool2d_params){{2, 2}, {2, 2}, {0, 0}, false});
}

/* A pooled node's argmax taps as max_pool2d's offsets in each (OH, OW)
 * plane of the convolution's output (a tape-owned int64 tensor of the node's
 * output shape), or NULL with the error set. A dead tap (the relu form's
 * window whose gradient relu zeroes, which the caller has done) names the
 * window's first element. */
static tensor *tap_offsets(const tape_node *n) {
    tensor *o = tg_tensor_tape_new(DTYPE_I64, 4, n->out->shape);
    if (!o) return NULL;
    const int32_t *t = n->saved[1]->data;
    const int64_t POH = n->out->shape[2], POW = n->out->shape[3], OW = n->ip[10];
    int64_t *d = o->data;
    for (int64_t k = 0; k < o->size; k++) {
        const int64_t i = k / POW % POH, j = k % POW;
        const int32_t tk = t[k] == CONV_TAP_DEAD ? 0 : t[k];
        d[k] = (2 * i + tk / 2) * OW + 2 * j + tk % 2;
    }
    return o;
}

/* conv2d's differentiable vjp: its two gradients as ops of their own
 * (conv_grad.c), which run this op's backward kernel and whose own graph
 * vjps are conv2d and each other, so every order stays on the kernels:
 *   dx = conv2d_input_grad(g, w), dw = conv2d_weight_grad(x, g),
 *   db = g summed over batch and space. */
static int conv2d_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *x = n->in[0], *w = n->in[1];
    conv2d_params p = {{(int)n->ip[0], (int)n->ip[1]}, {(int)n->ip[2], (int)n->ip[3]},
                       {(int)n->ip[4], (int)n->ip[5]}, (int)n->ip[6]};
    /* the relu form: g through relu's vjp first, on the node's output (> 0
     * exactly where relu's input is); a pooled node: g unpooled to the
     * convolution's output, to the argmaxes its forward saved, as
     * max_pool2d's graph vjp does */
    if (n->ip[11] == CONV_POOLED_RELU) g = tg_relu_input_grad(g, n->out);
    if (is_pooled(n)) g = tg_max_pool2d_input_grad(g, tap_offsets(n), n->ip[9], n->ip[10]);
    if (want[0]) gin[0] = tensor_conv2d_input_grad(g, w, x->shape[2], x->shape[3], p);
    if (want[1]) gin[1] = tensor_conv2d_weight_grad(x, g, w->shape[2], w->shape[3], p);
    if (n->n_in > 2 && n->in[2] && want[2]) {
        const int axes[3] = {0, 2, 3};
        gin[2] = tensor_sum(g, axes, 3, false);
    }
    return tg_graph_vjp_done(n, want, gin);
}

const op_def tg_ops_conv[] = {
    [CONV2D] = {"conv2d", 3, 0, conv2d_forward, conv2d_vjp, conv2d_sample, conv2d_build,
     "tensor_conv2d(x, w, b, params)",
     "y[b,o,i,j] = bias[o] + sum_{c,u,v} w[o,c,u,v] x[b, g(o) C/G + c, i sh - ph + u dh, "
     "j sw - pw + v dw] (x = 0 in the padding)",
     "per image b and group: dW += G_b (OC/G,P) @ cols_b^T, dx_b = col2im(W^T @ G_b), "
     "db = sum over (b,i,j) of G",
     "b may be NULL (then the node's third input is NULL and the case has 2 inputs); "
     "linear in each input, no kinks. tensor_conv1d(x [B,C,L], w [OC,C/G,K], b, conv1d_params) is this "
     "op on x viewed [B,C,1,L] and w [OC,C/G,1,K] with stride (1,s), padding (0,p), dilation (1,d): "
     "composed of reshapes and conv2d (ops/conv_extra.c), so it has no entry of its own",
     .vjp_graph = conv2d_vjp_graph},
    [CONV2D_MAX_POOL2D] = {"conv2d_max_pool2d", 3, 0, conv2d_forward, conv2d_vjp, conv2d_max_pool2d_sample,
     conv2d_max_pool2d_build, "tensor_conv2d_max_pool2d(x, w, b, conv_params, pool_params)",
     "y = max_pool2d(conv2d(x, w, b, conv_params), pool_params) for a 2x2 stride-2 unpadded pool, "
     "one image at a time: the convolution's output is pooled while in cache and never stored",
     "G = g at each window's argmax (max_pool2d's vjp, per image), then conv2d's gradients of G",
     "the same values and gradients, bit for bit, as max_pool2d of conv2d (the same kernels); "
     "not differentiable where a window's maxima tie (the first in window order takes the "
     "gradient). Another pool_params is the two ops, and their nodes",
     .vjp_graph = conv2d_vjp_graph},
    [CONV2D_MAX_POOL2D_RELU] = {"conv2d_max_pool2d_relu", 3, 0, conv2d_forward, conv2d_vjp,
     conv2d_max_pool2d_sample, conv2d_max_pool2d_relu_build,
     "tensor_conv2d_max_pool2d_relu(x, w, b, conv_params, pool_params)",
     "y = relu(max_pool2d(conv2d(x, w, b, conv_params), pool_params)) for a 2x2 stride-2 unpadded "
     "pool: conv2d_max_pool2d with the relu applied to each image's pooled output as it is written",
     "G = g [y > 0] at each window's argmax, then conv2d's gradients of G",
     "the same values and gradients, bit for bit, as relu of max_pool2d of conv2d; relu's kink "
     "at 0 (its gradient there 0, as tensor_relu's) and the pool's at tied maxima. Another "
     "pool_params is the three ops, and their nodes",
     .vjp_graph = conv2d_vjp_graph},
};
const int tg_ops_conv_count = N_CONV_OPS;
_Static_assert(sizeof tg_ops_conv / sizeof tg_ops_conv[0] == N_CONV_OPS,
               "tg_ops_conv: one entry per op of its enum");
