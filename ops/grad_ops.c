/* grad_ops.c - the gradient ops of grad_ops.h: first-order vjps recorded as
 * one node each, for the differentiable vjps of relu and max_pool2d (a
 * Hessian-vector product through LeNet-5 walks them twice).
 *
 *   relu_input_grad(g, x)          y = g [x > 0]                 dg = u [x > 0]
 *   max_pool2d_input_grad(g, idx)  y[p].flat[idx[p,o]] += g[p,o]  dg = gather(u, idx)
 *   max_pool2d_gather(u, idx)      y[p,o] = u[p].flat[idx[p,o]]    du = input_grad(g, idx)
 *
 * (p a (b, c) plane, o an output position.) Each is linear in its float
 * input; the two pooling ops are adjoint, so each one's vjp is the other and
 * relu_input_grad's is itself: every order past the first is one of these
 * nodes again. x and idx get no gradient (a step function of x, an index).
 * Planes are split across threads whole, so results repeat bit for bit for
 * any thread count. Their vjps write a fresh gradient buffer (a scatter
 * zeroes its planes first) instead of adding to it. */
#include "elementwise.h"
#include "grad_ops.h"

enum { RELU_INPUT_GRAD, MAX_POOL2D_INPUT_GRAD, MAX_POOL2D_GATHER, N_GRAD_OPS };
extern const op_def tg_ops_grad[];
#define OP(i) (&tg_ops_grad[i])

/* ------------------------------------------------------------ relu_input_grad */
/* y = x > 0 ? g : 0 (a select, not g * mask: an inf or NaN in g stays where
 * x <= 0 is 0, as relu's kernel vjp); acc: y += instead of = */
#define RELU_GRAD(T)                                                                    \
    static void relu_grad_##T(int64_t n, const T *g, const T *x, T *y, bool acc) {       \
        if (acc) {                                                                      \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++) y[i] += x[i] > 0 ? g[i] : (T)0; \
        } else {                                                                        \
            _Pragma("omp simd") for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0 ? g[i] : (T)0; \
        }                                                                               \
    }
RELU_GRAD(float)
RELU_GRAD(double)

static void relu_input_grad_forward(tape_node *n) {
    const tensor *g = n->in[0], *x = n->in[1];
    if (g->dtype == DTYPE_F32)
        relu_grad_float(g->size, g->data, x->data, n->out->data, false);
    else
        relu_grad_double(g->size, g->data, x->data, n->out->data, false);
}
static void relu_input_grad_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0]) return;
    const tensor *u = n->out->grad, *x = n->in[1];
    const bool acc = !tg_grad_take_fresh(gin[0]); /* a fresh buffer is written */
    if (u->dtype == DTYPE_F32)
        relu_grad_float(u->size, u->data, x->data, gin[0]->data, acc);
    else
        relu_grad_double(u->size, u->data, x->data, gin[0]->data, acc);
}
static int relu_input_grad_vjp_graph(const tape_node *n, tensor *u, const bool *want, tensor **gin) {
    if (want[0]) gin[0] = tg_relu_input_grad(u, n->in[1]);
    return tg_graph_vjp_done(n, want, gin);
}

tensor *tg_relu_input_grad(tensor *g, tensor *x) {
    const op_def *op = OP(RELU_INPUT_GRAD);
    tensor *in[2] = {g, x};
    if (tg_op_check_inputs(op, in, 2, 0)) return NULL;
    if (!tensor_same_shape(g, x)) {
        char a[96], b[96];
        tg_error_set("relu_input_grad: g %s and x %s must have one shape", tensor_shape_str(g, a, sizeof a),
                     tensor_shape_str(x, b, sizeof b));
        return NULL;
    }
    return tg_op_apply(op, in, 2, g->dtype, g->ndim, g->shape);
}

/* ------------------------------------------------- max pooling's scatter, gather */
/* Node params: ip[0] = H, ip[1] = W (the input_grad's output plane). */
#define POOL_SCATTER_GATHER(T)                                                          \
    /* y[p].flat[idx[p, o]] += g[p, o] (y zeroed first unless acc) */                  \
    static void pool_scatter_##T(int64_t planes, int64_t out, int64_t in, const T *g,    \
                                 const int64_t *idx, T *y, bool acc) {                  \
        TG_PAR_FOR(p, planes, planes * in, {                                            \
            T *yp = y + p * in;                                                         \
            if (!acc) memset(yp, 0, (size_t)in * sizeof(T));                            \
            for (int64_t o = p * out; o < (p + 1) * out; o++) yp[idx[o]] += g[o];       \
        });                                                                             \
    }                                                                                   \
    /* y[p, o] (+)= u[p].flat[idx[p, o]] */                                            \
    static void pool_gather_##T(int64_t planes, int64_t out, int64_t in, const T *u,     \
                                const int64_t *idx, T *y, bool acc) {                   \
        TG_PAR_FOR(p, planes, planes * out, {                                           \
            const T *up = u + p * in;                                                   \
            if (acc)                                                                    \
                for (int64_t o = p * out; o < (p + 1) * out; o++) y[o] += up[idx[o]];   \
            else                                                                        \
                for (int64_t o = p * out; o < (p + 1) * out; o++) y[o] = up[idx[o]];    \
        });                                                                             \
    }
POOL_SCATTER_GATHER(float)
POOL_SCATTER_GATHER(double)

/* planes, outputs per plane (idx's), inputs per plane (H W) of either op */
static void pool_dims(const tape_node *n, int64_t *planes, int64_t *out, int64_t *in) {
    const tensor *idx = n->in[1];
    *planes = idx->shape[0] * idx->shape[1];
    *out = idx->shape[2] * idx->shape[3];
    *in = n->ip[0] * n->ip[1];
}
static void scatter(const tape_node *n, const tensor *g, tensor *y, bool acc) {
    int64_t planes, out, in;
    pool_dims(n, &planes, &out, &in);
    if (y->dtype == DTYPE_F32)
        pool_scatter_float(planes, out, in, g->data, n->in[1]->data, y->data, acc);
    else
        pool_scatter_double(planes, out, in, g->data, n->in[1]->data, y->data, acc);
}
static void gather(const tape_node *n, const tensor *u, tensor *y, bool acc) {
    int64_t planes, out, in;
    pool_dims(n, &planes, &out, &in);
    if (y->dtype == DTYPE_F32)
        pool_gather_float(planes, out, in, u->data, n->in[1]->data, y->data, acc);
    else
        pool_gather_double(planes, out, in, u->data, n->in[1]->data, y->data, acc);
}

static void max_pool2d_input_grad_forward(tape_node *n) { scatter(n, n->in[0], n->out, false); }
static void max_pool2d_input_grad_vjp(tape_node *n, tensor *const *gin) {
    if (gin[0]) gather(n, n->out->grad, gin[0], !tg_grad_take_fresh(gin[0]));
}
static void max_pool2d_gather_forward(tape_node *n) { gather(n, n->in[0], n->out, false); }
static void max_pool2d_gather_vjp(tape_node *n, tensor *const *gin) {
    if (gin[0]) scatter(n, n->out->grad, gin[0], !tg_grad_take_fresh(gin[0]));
}
static int max_pool2d_input_grad_vjp_graph(const tape_node *n, tensor *u, const bool *want, tensor **gin) {
    if (want[0]) gin[0] = tg_max_pool2d_gather(u, n->in[1]);
    return tg_graph_vjp_done(n, want, gin);
}
static int max_pool2d_gather_vjp_graph(const tape_node *n, tensor *u, const bool *want, tensor **gin) {
    if (want[0]) gin[0] = tg_max_pool2d_input_grad(u, n->in[1], n->ip[0], n->ip[1]);
    return tg_graph_vjp_done(n, want, gin);
}

/* The checks both pooling ops share: t (g or u) a 4-D float tensor, idx int64
 * of 4 dimensions with t's planes (input_grad: t's whole shape), every offset
 * in [0, H W). Returns 0 or -1 with an error naming the op and shapes. */
static int pool_index_check(const op_def *op, tensor *t, tensor *idx, int64_t H, int64_t W, bool same) {
    tensor *in[2] = {t, idx};
    if (tg_op_check_inputs(op, in, 2, 2u)) return -1;
    char a[96], b[96];
    const char *tn = same ? "g" : "u";
    if (t->dtype == DTYPE_I64 || idx->dtype != DTYPE_I64) {
        tg_error_set("%s: %s must be float and idx int64, got %s %s and %s %s", op->name, tn,
                     tg_dtype_name(t->dtype), tensor_shape_str(t, a, sizeof a), tg_dtype_name(idx->dtype),
                     tensor_shape_str(idx, b, sizeof b));
        return -1;
    }
    bool ok = t->ndim == 4 && idx->ndim == 4 && idx->shape[0] == t->shape[0] && idx->shape[1] == t->shape[1];
    if (ok && same) ok = tensor_same_shape(t, idx);
    if (!ok) {
        tg_error_set("%s: %s %s and idx %s must be 4-D [B,C,..] with %s", op->name, tn,
                     tensor_shape_str(t, a, sizeof a), tensor_shape_str(idx, b, sizeof b),
                     same ? "one shape" : "the same B and C");
        return -1;
    }
    if (H < 1 || W < 1) {
        tg_error_set("%s: the plane %lldx%lld must be at least 1x1", op->name, (long long)H, (long long)W);
        return -1;
    }
    const int64_t *I = idx->data;
    for (int64_t k = 0; k < idx->size; k++)
        if (I[k] < 0 || I[k] >= H * W) {
            tg_error_set("%s: idx %lld (at position %lld of %s) is outside the %lldx%lld plane", op->name,
                         (long long)I[k], (long long)k, tensor_shape_str(idx, b, sizeof b), (long long)H,
                         (long long)W);
            return -1;
        }
    return 0;
}

tensor *tg_max_pool2d_input_grad(tensor *g, tensor *idx, int64_t H, int64_t W) {
    const op_def *op = OP(MAX_POOL2D_INPUT_GRAD);
    if (pool_index_check(op, g, idx, H, W, true)) return NULL;
    tensor *in[2] = {g, idx};
    const int64_t shape[4] = {g->shape[0], g->shape[1], H, W};
    tape_node *n = tg_node_begin(op, in, 2, g->dtype, 4, shape);
    if (!n) return NULL;
    n->ip[0] = H, n->ip[1] = W;
    return tg_node_finish(n);
}

tensor *tg_max_pool2d_gather(tensor *u, tensor *idx) {
    const op_def *op = OP(MAX_POOL2D_GATHER);
    tensor *in[2] = {u, idx};
    if (tg_op_check_inputs(op, in, 2, 2u)) return NULL;
    if (pool_index_check(op, u, idx, u->ndim == 4 ? u->shape[2] : 1, u->ndim == 4 ? u->shape[3] : 1, false))
        return NULL;
    tape_node *n = tg_node_begin(op, in, 2, u->dtype, 4, idx->shape);
    if (!n) return NULL;
    n->ip[0] = u->shape[2], n->ip[1] = u->shape[3];
    return tg_node_finish(n);
}

/* ------------------------------------------------------------------ samples */
static int relu_input_grad_sample(int k, rng *g, op_sample *s) {
    static const int64_t shapes[3][4] = {{3, 4}, {2, 3, 5}, {2, 2, 2, 3}};
    static const int nds[3] = {2, 3, 4};
    if (k >= 3) return 1;
    const double zero = 0.0;
    s->n_inputs = 2;
    s->no_grad_mask = 2u;
    s->inputs[0] = tg_sample_tensor(g, nds[k], shapes[k], -1.5, 1.5);
    s->inputs[1] = tg_sample_tensor_avoiding(g, nds[k], shapes[k], -1.5, 1.5, &zero, 1, 0.05);
    if (!s->inputs[0] || !s->inputs[1]) return -1;
    char sg[64];
    tg_sample_name(s, "g, x %s (x kept 0.05 from 0)", tensor_shape_str(s->inputs[0], sg, sizeof sg));
    return 0;
}

/* Pools whose argmax offsets the samples draw: window (i, j) of kh x kw at
 * stride sh x sw (unpadded) over H x W, the offset a random tap of it. The
 * 3x3 stride-1 case has overlapping windows, and its first two outputs of
 * plane 0 share an offset (a scatter that must accumulate). */
static const struct {
    const char *what;
    int64_t B, C, H, W, kh, kw, sh, sw;
} pool_cases[] = {
    {"2x2 stride 2", 2, 3, 6, 6, 2, 2, 2, 2},
    {"3x3 stride 1, a shared offset", 1, 2, 5, 5, 3, 3, 1, 1},
    {"2x2 stride 2 over 5x5 (last row and column unused)", 1, 1, 5, 5, 2, 2, 2, 2},
};
#define N_POOL_CASES ((int)(sizeof pool_cases / sizeof pool_cases[0]))

static tensor *sample_index(rng *g, int k) {
    const int64_t OH = (pool_cases[k].H - pool_cases[k].kh) / pool_cases[k].sh + 1;
    const int64_t OW = (pool_cases[k].W - pool_cases[k].kw) / pool_cases[k].sw + 1;
    const int64_t shape[4] = {pool_cases[k].B, pool_cases[k].C, OH, OW};
    tensor *idx = tensor_new(DTYPE_I64, 4, shape);
    if (!idx) return NULL;
    int64_t *I = idx->data;
    for (int64_t p = 0; p < shape[0] * shape[1]; p++)
        for (int64_t i = 0; i < OH; i++)
            for (int64_t j = 0; j < OW; j++) {
                int64_t a = rng_next_u32(g) % (uint32_t)pool_cases[k].kh;
                int64_t b = rng_next_u32(g) % (uint32_t)pool_cases[k].kw;
                I[(p * OH + i) * OW + j] = (i * pool_cases[k].sh + a) * pool_cases[k].W + j * pool_cases[k].sw + b;
            }
    if (pool_cases[k].sh == 1) I[0] = I[1] = 1 * pool_cases[k].W + 2; /* in windows (0,0) and (0,1) */
    return idx;
}

static int pool_sample(int k, rng *g, op_sample *s, bool scatter_op) {
    if (k >= N_POOL_CASES) return 1;
    s->n_inputs = 2;
    s->no_grad_mask = 2u;
    s->inputs[1] = sample_index(g, k);
    if (!s->inputs[1]) return -1;
    const int64_t ushape[4] = {pool_cases[k].B, pool_cases[k].C, pool_cases[k].H, pool_cases[k].W};
    s->inputs[0] = scatter_op ? tg_sample_tensor(g, 4, s->inputs[1]->shape, -1.5, 1.5)
                              : tg_sample_tensor(g, 4, ushape, -1.5, 1.5);
    if (!s->inputs[0]) return -1;
    s->ip[0] = pool_cases[k].H, s->ip[1] = pool_cases[k].W;
    char a[64], b[64];
    tg_sample_name(s, "%s %s, idx %s: %s", scatter_op ? "g" : "u", tensor_shape_str(s->inputs[0], a, sizeof a),
                   tensor_shape_str(s->inputs[1], b, sizeof b), pool_cases[k].what);
    return 0;
}
static int max_pool2d_input_grad_sample(int k, rng *g, op_sample *s) { return pool_sample(k, g, s, true); }
static int max_pool2d_gather_sample(int k, rng *g, op_sample *s) { return pool_sample(k, g, s, false); }

static tensor *relu_input_grad_build(tensor *const *in, const op_sample *s) {
    (void)s;
    return tg_relu_input_grad(in[0], in[1]);
}
static tensor *max_pool2d_input_grad_build(tensor *const *in, const op_sample *s) {
    return tg_max_pool2d_input_grad(in[0], in[1], s->ip[0], s->ip[1]);
}
static tensor *max_pool2d_gather_build(tensor *const *in, const op_sample *s) {
    (void)s;
    return tg_max_pool2d_gather(in[0], in[1]);
}

const op_def tg_ops_grad[] = {
    [RELU_INPUT_GRAD] = {"relu_input_grad", 2, 2u, relu_input_grad_forward, relu_input_grad_vjp,
     relu_input_grad_sample, relu_input_grad_build,
     "internal: relu's differentiable vjp, tg_relu_input_grad(g, x)", "y = g [x > 0] (a select: g's inf or NaN "
     "gives 0 where x <= 0)", "dg = u [x > 0]; no gradient for x",
     "the step at x = 0 is constant on either side; samples keep |x| >= 0.05",
     .vjp_graph = relu_input_grad_vjp_graph, .vjp_fresh = true},
    [MAX_POOL2D_INPUT_GRAD] = {"max_pool2d_input_grad", 2, 2u, max_pool2d_input_grad_forward,
     max_pool2d_input_grad_vjp, max_pool2d_input_grad_sample, max_pool2d_input_grad_build,
     "internal: max_pool2d's differentiable vjp, tg_max_pool2d_input_grad(g, idx, H, W)",
     "y [B,C,H,W] = 0, then y[b,c].flat[idx[b,c,o]] += g[b,c,o] (idx: max_pool2d's argmax offsets)",
     "dg[b,c,o] = u[b,c].flat[idx[b,c,o]] (max_pool2d_gather); no gradient for idx",
     "linear in g; offsets shared by overlapping windows accumulate; an offset outside [0, H W) is an error",
     .vjp_graph = max_pool2d_input_grad_vjp_graph, .vjp_fresh = true},
    [MAX_POOL2D_GATHER] = {"max_pool2d_gather", 2, 2u, max_pool2d_gather_forward, max_pool2d_gather_vjp,
     max_pool2d_gather_sample, max_pool2d_gather_build,
     "internal: the adjoint of max_pool2d_input_grad, tg_max_pool2d_gather(u, idx)",
     "y[b,c,o] = u[b,c].flat[idx[b,c,o]], u [B,C,H,W], y idx's shape",
     "du = max_pool2d_input_grad(g, idx, H, W); no gradient for idx",
     "linear in u; an offset outside [0, H W) is an error",
     .vjp_graph = max_pool2d_gather_vjp_graph, .vjp_fresh = true},
};
const int tg_ops_grad_count = N_GRAD_OPS;
_Static_assert(sizeof tg_ops_grad / sizeof tg_ops_grad[0] == N_GRAD_OPS,
               "tg_ops_grad: one entry per op of its enum");
