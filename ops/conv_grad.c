/* conv_grad.c - conv2d's two gradients as ops, run on conv2d's own kernels
 * (conv_kernels.c, the variant's fast paths), so that the gradient of a
 * gradient through a convolution stays on them: the graph vjps of conv2d
 * and of these two ops are made of the three ops alone.
 *
 * For y = conv2d(x, w) (stride, padding, dilation, groups; a bias only adds
 * a constant) and an upstream gradient g of y's shape (B, OC, OH, OW), all
 * three are derivatives of one trilinear form, F(x, w, g) = <g, conv2d(x, w)>:
 *   dF/dx = conv2d_input_grad(g, w)   (B, C, H, W)      = conv2d's dx
 *   dF/dw = conv2d_weight_grad(x, g)  (OC, C/G, KH, KW) = conv2d's dw
 *   dF/dg = conv2d(x, w)
 * An op's vjp for an upstream gradient u of its output is then the
 * derivative of <u, op> = F with u in the op's place:
 *   <u, conv2d_input_grad(g, w)> = F(u, w, g):  dg = conv2d(u, w),
 *                                               dw = conv2d_weight_grad(u, g)
 *   <u, conv2d_weight_grad(x, g)> = F(x, u, g): dx = conv2d_input_grad(g, u),
 *                                               dg = conv2d(x, u)
 * Every kernel call is one of conv2d's forward (y = conv2d(x, w)) or its
 * backward (dx += ..., dw += ...) on tensors playing conv2d's x, w and y,
 * with the geometry of the node's convolution.
 *
 * Node: in[0], in[1] as above; ip[0..6] stride, padding, dilation, groups
 * (conv2d's layout), ip[7] scratch slots, ip[8] the kernel variant of the
 * builder (the slots were sized by its geometry); saved[0] forward's
 * scratch, saved[1] weight_grad's per-chunk partial sums. */
#include <string.h>

#include "conv.h"

enum { CONV2D_INPUT_GRAD, CONV2D_WEIGHT_GRAD, N_CONV_GRAD_OPS };

extern const op_def tg_ops_conv_grad[];

/* The tensors playing conv2d's x, w and y in node n (only their shapes are
 * read here): input_grad's output is x-shaped, weight_grad's w-shaped. */
typedef struct {
    tensor *x, *w, *y;
} conv_roles;

static conv_roles roles_of(const tape_node *n) {
    if (n->op == &tg_ops_conv_grad[CONV2D_INPUT_GRAD]) return (conv_roles){n->out, n->in[1], n->in[0]};
    return (conv_roles){n->in[0], n->out, n->in[1]};
}

static void node_geom(const tape_node *n, const conv_kernels **k, conv_geom *q) {
    conv_roles r = roles_of(n);
    *k = tg_conv_variant(n->ip[8]);
    (*k)->geom(r.x, r.w, r.y->shape[2], r.y->shape[3], n->ip, q);
}

static int threads_for(const conv_geom *q, int64_t slots) {
    int t = tg_conv_threads(q);
    return t > slots ? (int)slots : t;
}

/* y = conv2d(x, w) (overwritten), on `slots` scratch slots. */
static void run_fwd(const conv_kernels *k, const conv_geom *q, int64_t slots, tensor *x, tensor *w,
                    tensor *y, tensor *scratch) {
    tensor *in[3] = {x, w, NULL};
    tape_node fn = {.n_in = 3, .in = in, .out = y, .saved = {scratch}};
    int threads = threads_for(q, slots), blas = tg_conv_blas_hold(threads);
    k->fwd[y->dtype == DTYPE_F32 ? 0 : 1](&fn, q, threads);
    tg_conv_blas_release(threads, blas);
}

/* dx += conv2d's input gradient (reads w and g), dw += its weight gradient
 * (reads x and g); either may be NULL. parts: zeros, one (weight + OC) block
 * per CONV_CHUNK images, when dw is wanted. */
static void run_bwd(const conv_kernels *k, const conv_geom *q, int64_t slots, tensor *x, tensor *w,
                    tensor *g, tensor *dx, tensor *dw, tensor *scratch, tensor *parts) {
    tensor y = *g;
    y.grad = g;
    tensor *in[3] = {x, w, NULL}, *gin[3] = {dx, dw, NULL};
    tape_node fn = {.n_in = 3, .in = in, .out = &y};
    int threads = threads_for(q, slots), blas = tg_conv_blas_hold(threads);
    k->bwd[g->dtype == DTYPE_F32 ? 0 : 1](&fn, q, threads, gin, scratch->data, parts ? parts->data : NULL);
    tg_conv_blas_release(threads, blas);
}

static int64_t parts_size(const conv_geom *q, const tensor *w) {
    return (q->B + CONV_CHUNK - 1) / CONV_CHUNK * (w->size + q->OC);
}

/* ------------------------------------------------------------ forward */
static void conv2d_input_grad_forward(tape_node *n) {
    const conv_kernels *k;
    conv_geom q;
    node_geom(n, &k, &q);
    memset(n->out->data, 0, (size_t)n->out->size * tg_dtype_size(n->out->dtype));
    if (n->out->size == 0) return; /* empty batch */
    run_bwd(k, &q, n->ip[7], n->out, n->in[1], n->in[0], n->out, NULL, n->saved[0], NULL);
}

static void conv2d_weight_grad_forward(tape_node *n) {
    const conv_kernels *k;
    conv_geom q;
    node_geom(n, &k, &q);
    size_t es = tg_dtype_size(n->out->dtype);
    memset(n->out->data, 0, (size_t)n->out->size * es);
    if (q.B == 0) return; /* no image: dw = 0 */
    memset(n->saved[1]->data, 0, (size_t)n->saved[1]->size * es);
    run_bwd(k, &q, n->ip[7], n->in[0], n->out, n->in[1], NULL, n->out, n->saved[0], n->saved[1]);
}

/* ---------------------------------------------------------------- vjp */
/* acc += t, one float dtype */
static void acc_into(tensor *acc, const tensor *t) {
    if (acc->dtype == DTYPE_F32) {
        float *a = acc->data;
        const float *s = t->data;
        for (int64_t i = 0; i < acc->size; i++) a[i] += s[i];
    } else {
        double *a = acc->data;
        const double *s = t->data;
        for (int64_t i = 0; i < acc->size; i++) a[i] += s[i];
    }
}

/* The scratch slots of `threads` threads of q, or NULL (error set). */
static tensor *scratch_of(const conv_kernels *k, const conv_geom *q, dtype dt, int *threads) {
    *threads = tg_conv_threads(q);
    return tg_tensor_tape_new(dt, 1, (int64_t[]){*threads * k->slot(q)});
}

/* gacc += conv2d(x, w), through a buffer (the forward kernel overwrites). */
static void vjp_fwd(const conv_kernels *k, const conv_geom *q, tensor *x, tensor *w, tensor *gacc) {
    int threads;
    tensor *scratch = scratch_of(k, q, gacc->dtype, &threads);
    tensor *t = tg_tensor_tape_new(gacc->dtype, gacc->ndim, gacc->shape);
    if (!scratch || !t) return;
    run_fwd(k, q, threads, x, w, t, scratch);
    acc_into(gacc, t);
}

/* dx += input gradient, dw += weight gradient of conv2d (one of them). */
static void vjp_bwd(const conv_kernels *k, const conv_geom *q, tensor *x, tensor *w, tensor *g,
                    tensor *dx, tensor *dw) {
    int threads;
    tensor *scratch = scratch_of(k, q, g->dtype, &threads);
    tensor *parts = dw ? tg_tensor_tape_zeros(g->dtype, 1, (int64_t[]){parts_size(q, dw)}) : NULL;
    if (!scratch || (dw && !parts)) return;
    run_bwd(k, q, threads, x, w, g, dx, dw, scratch, parts);
}

/* u x-shaped: dg += conv2d(u, w), dw += conv2d_weight_grad(u, g) */
static void conv2d_input_grad_vjp(tape_node *n, tensor *const *gin) {
    const conv_kernels *k;
    conv_geom q;
    node_geom(n, &k, &q);
    if (n->out->size == 0) return;
    tensor *u = n->out->grad, *g = n->in[0], *w = n->in[1];
    if (gin[0]) vjp_fwd(k, &q, u, w, gin[0]);
    if (gin[1]) vjp_bwd(k, &q, u, w, g, NULL, gin[1]);
}

/* u w-shaped: dx += conv2d_input_grad(g, u), dg += conv2d(x, u) */
static void conv2d_weight_grad_vjp(tape_node *n, tensor *const *gin) {
    const conv_kernels *k;
    conv_geom q;
    node_geom(n, &k, &q);
    if (q.B == 0) return;
    tensor *u = n->out->grad, *x = n->in[0], *g = n->in[1];
    if (gin[0]) vjp_bwd(k, &q, x, u, g, gin[0], NULL);
    if (gin[1]) vjp_fwd(k, &q, x, u, gin[1]);
}

/* ---------------------------------------------------------- graph vjp */
static conv2d_params params_of(const int64_t *ip) {
    return (conv2d_params){{(int)ip[0], (int)ip[1]}, {(int)ip[2], (int)ip[3]}, {(int)ip[4], (int)ip[5]},
                           (int)ip[6]};
}

static int conv2d_input_grad_vjp_graph(const tape_node *n, tensor *u, const bool *want, tensor **gin) {
    conv2d_params p = params_of(n->ip);
    tensor *g = n->in[0], *w = n->in[1];
    if (want[0]) gin[0] = tensor_conv2d(u, w, NULL, p);
    if (want[1]) gin[1] = tensor_conv2d_weight_grad(u, g, w->shape[2], w->shape[3], p);
    return tg_graph_vjp_done(n, want, gin);
}

static int conv2d_weight_grad_vjp_graph(const tape_node *n, tensor *u, const bool *want, tensor **gin) {
    conv2d_params p = params_of(n->ip);
    tensor *x = n->in[0], *g = n->in[1];
    if (want[0]) gin[0] = tensor_conv2d_input_grad(g, u, x->shape[2], x->shape[3], p);
    if (want[1]) gin[1] = tensor_conv2d(x, u, NULL, p);
    return tg_graph_vjp_done(n, want, gin);
}

/* ------------------------------------------------------------ builders */
/* The node of op with inputs a, b and output shape `shape` (checked). */
static tensor *conv_grad_node(const op_def *op, tensor *a, tensor *b, const int64_t *shape,
                              conv2d_params p) {
    if (tg_isa_current() < 0) return NULL; /* TAPEGRAD_ISA refused: its reason is the error */
    tensor *in[2] = {a, b};
    tape_node *n = tg_node_begin(op, in, 2, a->dtype, 4, shape);
    if (!n) return NULL;
    const int ip[7] = {p.stride[0], p.stride[1], p.padding[0], p.padding[1],
                       p.dilation[0], p.dilation[1], p.groups};
    for (int i = 0; i < 7; i++) n->ip[i] = ip[i];
    n->ip[8] = tg_isa_current();
    const conv_kernels *k = tg_conv_variant(n->ip[8]);
    conv_geom q;
    conv_roles r = roles_of(n);
    k->geom(r.x, r.w, r.y->shape[2], r.y->shape[3], n->ip, &q);
    n->ip[7] = tg_conv_threads(&q);
    n->saved[0] = tg_tensor_tape_new(a->dtype, 1, (int64_t[]){n->ip[7] * k->slot(&q)});
    if (!n->saved[0]) return NULL;
    if (op == &tg_ops_conv_grad[CONV2D_WEIGHT_GRAD]) {
        n->saved[1] = tg_tensor_tape_new(a->dtype, 1, (int64_t[]){parts_size(&q, n->out)});
        if (!n->saved[1]) return NULL;
    }
    return tg_node_finish(n);
}

/* g must be conv2d(x, w)'s output shape. */
static int check_upstream(const char *op, const tensor *x, const tensor *w, const tensor *g,
                          conv2d_params p) {
    int64_t oh, ow;
    if (tg_conv2d_validate(x, w, NULL, p, &oh, &ow)) {
        tg_error_prefix("%s: ", op);
        return -1;
    }
    if (g->shape[0] != x->shape[0] || g->shape[1] != w->shape[0] || g->shape[2] != oh || g->shape[3] != ow) {
        char sg[96], sx[96], sw[96];
        tg_error_set("%s: upstream gradient %s is not the output [%lld,%lld,%lld,%lld] of conv2d of "
                     "input %s and weight %s",
                     op, tensor_shape_str(g, sg, sizeof sg), (long long)x->shape[0],
                     (long long)w->shape[0], (long long)oh, (long long)ow,
                     tensor_shape_str(x, sx, sizeof sx), tensor_shape_str(w, sw, sizeof sw));
        return -1;
    }
    return 0;
}

static int check_4d(const char *op, const char *what, const tensor *t) {
    if (t->ndim == 4) return 0;
    char s[96];
    tg_error_set("%s: %s must be 4-D, got %s", op, what, tensor_shape_str(t, s, sizeof s));
    return -1;
}

tensor *tensor_conv2d_input_grad(tensor *g, tensor *w, int64_t in_h, int64_t in_w, conv2d_params p) {
    const op_def *op = &tg_ops_conv_grad[CONV2D_INPUT_GRAD];
    tensor *in[2] = {g, w};
    if (tg_op_check_inputs(op, in, 2, 0)) return NULL;
    if (check_4d(op->name, "upstream gradient (B, OC, OH, OW)", g) ||
        check_4d(op->name, "weight (OC, C/groups, KH, KW)", w))
        return NULL;
    int64_t C;
    if (in_h < 1 || in_w < 1 || p.groups < 1 || i64_mul_overflows(w->shape[1], p.groups, &C)) {
        tg_error_set("conv2d_input_grad: bad input size %lldx%lld or groups %d (must be >= 1)",
                     (long long)in_h, (long long)in_w, p.groups);
        return NULL;
    }
    /* x's header: its shape is all conv2d's checks read */
    tensor x = {.dtype = g->dtype, .ndim = 4, .shape = {g->shape[0], C, in_h, in_w}};
    if (tg_shape_check(op->name, 4, x.shape) || check_upstream(op->name, &x, w, g, p)) return NULL;
    return conv_grad_node(op, g, w, x.shape, p);
}

tensor *tensor_conv2d_weight_grad(tensor *x, tensor *g, int64_t kh, int64_t kw, conv2d_params p) {
    const op_def *op = &tg_ops_conv_grad[CONV2D_WEIGHT_GRAD];
    tensor *in[2] = {x, g};
    if (tg_op_check_inputs(op, in, 2, 0)) return NULL;
    if (check_4d(op->name, "input (B, C, H, W)", x) ||
        check_4d(op->name, "upstream gradient (B, OC, OH, OW)", g))
        return NULL;
    if (kh < 1 || kw < 1 || p.groups < 1) {
        tg_error_set("conv2d_weight_grad: bad kernel size %lldx%lld or groups %d (must be >= 1)",
                     (long long)kh, (long long)kw, p.groups);
        return NULL;
    }
    /* w's header: its shape is all conv2d's checks read */
    tensor w = {.dtype = x->dtype, .ndim = 4, .shape = {g->shape[1], x->shape[1] / p.groups, kh, kw}};
    if (tg_shape_check(op->name, 4, w.shape) || check_upstream(op->name, x, &w, g, p)) return NULL;
    return conv_grad_node(op, x, g, w.shape, p);
}

/* ------------------------------------------------------------- samples */
/* The convolutions of the cases: x * w with stride, padding, dilation,
 * groups (ip 0-6); ip[9], ip[10] the size the op is given (x's H, W for
 * input_grad, w's KH, KW for weight_grad). Together they take every path of
 * conv2d's backward kernels (test_ops_conv.c checks which on each variant). */
static const struct {
    const char *what;
    int64_t x[4], w[4];
    int ip[7];
} conv_grad_cases[] = {
    {"stride 1, tight columns", {2, 3, 6, 5}, {4, 3, 3, 3}, {1, 1, 0, 0, 1, 1, 1}},
    {"stride 2, pad 1, a row past the last window", {2, 2, 8, 7}, {3, 2, 3, 3}, {2, 2, 1, 1, 1, 1, 1}},
    {"dilation 2, pad (1,2)", {1, 2, 8, 7}, {2, 2, 3, 2}, {1, 1, 1, 2, 2, 2, 1}},
    {"groups 2, pad 1", {2, 4, 5, 5}, {6, 2, 3, 3}, {1, 1, 1, 1, 1, 1, 2}},
    {"LeNet-like, pad 2", {2, 1, 6, 6}, {2, 1, 5, 5}, {1, 1, 2, 2, 1, 1, 1}},
    {"wide rows, K 12", {1, 2, 4, 20}, {3, 2, 2, 3}, {1, 1, 0, 0, 1, 1, 1}},
    {"wide rows, K 36", {1, 3, 4, 33}, {3, 3, 3, 4}, {1, 1, 0, 0, 1, 1, 1}},
    {"16 output channels", {1, 3, 5, 5}, {16, 3, 3, 3}, {1, 1, 0, 0, 1, 1, 1}},
};
enum { N_CONV_GRAD_CASES = sizeof conv_grad_cases / sizeof conv_grad_cases[0] };

static int conv_grad_sample(bool weight, int k, rng *g, op_sample *s) {
    if (k >= N_CONV_GRAD_CASES) return 1;
    const int64_t *x = conv_grad_cases[k].x, *w = conv_grad_cases[k].w;
    const int *ip = conv_grad_cases[k].ip;
    int64_t gs[4] = {x[0], w[0], 0, 0};
    for (int d = 0; d < 2; d++)
        gs[2 + d] = (x[2 + d] + 2 * ip[2 + d] - ip[4 + d] * (w[2 + d] - 1) - 1) / ip[d] + 1;
    s->n_inputs = 2;
    s->inputs[0] = tg_sample_tensor(g, 4, weight ? x : gs, -1.0, 1.0);
    s->inputs[1] = tg_sample_tensor(g, 4, weight ? gs : w, -1.0, 1.0);
    for (int i = 0; i < 7; i++) s->ip[i] = ip[i];
    s->ip[9] = weight ? w[2] : x[2];
    s->ip[10] = weight ? w[3] : x[3];
    char sa[64], sb[64];
    tg_sample_name(s, "%s, %s: %s", tensor_shape_str(s->inputs[0], sa, sizeof sa),
                   tensor_shape_str(s->inputs[1], sb, sizeof sb), conv_grad_cases[k].what);
    return s->inputs[0] && s->inputs[1] ? 0 : -1;
}
static int conv2d_input_grad_sample(int k, rng *g, op_sample *s) { return conv_grad_sample(false, k, g, s); }
static int conv2d_weight_grad_sample(int k, rng *g, op_sample *s) { return conv_grad_sample(true, k, g, s); }

static tensor *conv2d_input_grad_build(tensor *const *in, const op_sample *s) {
    return tensor_conv2d_input_grad(in[0], in[1], s->ip[9], s->ip[10], params_of(s->ip));
}
static tensor *conv2d_weight_grad_build(tensor *const *in, const op_sample *s) {
    return tensor_conv2d_weight_grad(in[0], in[1], s->ip[9], s->ip[10], params_of(s->ip));
}

const op_def tg_ops_conv_grad[] = {
    [CONV2D_INPUT_GRAD] = {"conv2d_input_grad", 2, 0, conv2d_input_grad_forward, conv2d_input_grad_vjp,
     conv2d_input_grad_sample, conv2d_input_grad_build,
     "tensor_conv2d_input_grad(g, w, in_h, in_w, params)",
     "dx = d/dx <g, conv2d(x, w)>: dx[b, c, h, v] = sum over the taps (o, u, t) and outputs (i, j) with "
     "h = i sh - ph + u dh, v = j sw - pw + t dw of g[b,o,i,j] w[o,c',u,t] (conv2d's input gradient; "
     "x (B, C, in_h, in_w))",
     "dg = conv2d(u, w), dw = conv2d_weight_grad(u, g) (u the upstream gradient, x-shaped)",
     "linear in each input, no kinks. Runs conv2d's backward kernel; conv2d's graph vjp uses it "
     "for dx, so gradients of gradients through conv2d stay on conv2d's kernels",
     .vjp_graph = conv2d_input_grad_vjp_graph},
    [CONV2D_WEIGHT_GRAD] = {"conv2d_weight_grad", 2, 0, conv2d_weight_grad_forward, conv2d_weight_grad_vjp,
     conv2d_weight_grad_sample, conv2d_weight_grad_build,
     "tensor_conv2d_weight_grad(x, g, kh, kw, params)",
     "dw = d/dw <g, conv2d(x, w)>: dw[o, c, u, t] = sum_{b,i,j} g[b,o,i,j] x[b, g(o) C/G + c, "
     "i sh - ph + u dh, j sw - pw + t dw] (conv2d's weight gradient; w (OC, C/G, kh, kw))",
     "dx = conv2d_input_grad(g, u), dg = conv2d(x, u) (u the upstream gradient, w-shaped)",
     "linear in each input, no kinks. Runs conv2d's backward kernel; conv2d's graph vjp uses it "
     "for dw, so gradients of gradients through conv2d stay on conv2d's kernels",
     .vjp_graph = conv2d_weight_grad_vjp_graph},
};
const int tg_ops_conv_grad_count = N_CONV_GRAD_OPS;
_Static_assert(sizeof tg_ops_conv_grad / sizeof tg_ops_conv_grad[0] == N_CONV_GRAD_OPS,
               "tg_ops_conv_grad: one entry per op of its enum");
