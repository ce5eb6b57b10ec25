/* layer.c - layers as functions: linear (through OpenBLAS GEMM), dropout,
 * dropout2d and embedding.
 *
 * Dropout draws its mask in the builder, from the caller's generator, into a
 * tape-owned saved tensor; forward only multiplies by it, so a replay by the
 * checker sees the same mask. The mask is float64 whatever x's dtype, so a
 * float64 replay of a float32 tape reads it unchanged. */
#include "blas.h"
#include "elementwise.h"

extern const op_def tg_ops_layer[];
enum { LINEAR, DROPOUT, DROPOUT2D, EMBEDDING, N_LAYER_OPS };

/* ------------------------------------------------------------------ linear */

/* x viewed as X (M, IN), y as Y (M, OUT), w is W (OUT, IN), b is [OUT]:
 *   Y = X W^T + b          (b copied into every row of Y, then GEMM with beta 1)
 *   dX += G W   dW += G^T X   db += sum over rows of G (= into fresh buffers) */
static void linear_forward(tape_node *n) {
    const tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    int64_t OUT = w->shape[0], IN = w->shape[1], M = tg_shape_numel(x->ndim - 1, x->shape);
    size_t es = tg_dtype_size(x->dtype), row = (size_t)OUT * es;
    char *Y = n->out->data;
    if (b)
        for (int64_t m = 0; m < M; m++) memcpy(Y + (size_t)m * row, b->data, row);
    else if (IN == 0)
        memset(Y, 0, (size_t)M * row);
    if (IN > 0)
        tg_blas_gemm(x->dtype, false, true, M, OUT, IN, x->data, IN, w->data, IN, b ? 1.0 : 0.0, Y, OUT);
}

/* db = sum over rows of G: into a fresh buffer the first row is written
 * (the same sums, bit for bit, as 0 + row 0 + row 1 ...). Each column is
 * summed in row order, so vectorising across the columns keeps the bits;
 * `omp simd` says D and G do not overlap (the loop was scalar, a load and a
 * store of D[o] per element: 3 % of a GPT step). */
#define LINEAR_BIAS_GRAD(T)                                                     \
    do {                                                                        \
        const T *G = n->out->grad->data;                                        \
        T *D = gin[2]->data;                                                    \
        int64_t m0 = 0;                                                         \
        if (tg_grad_take_fresh(gin[2])) {                                       \
            if (M > 0) memcpy(D, G, (size_t)OUT * sizeof(T)), m0 = 1;           \
            else memset(D, 0, (size_t)OUT * sizeof(T));                         \
        }                                                                       \
        for (int64_t m = m0; m < M; m++) {                                      \
            const T *Gm = G + m * OUT;                                          \
            _Pragma("omp simd")                                                 \
            for (int64_t o = 0; o < OUT; o++) D[o] += Gm[o];                    \
        }                                                                       \
    } while (0)

/* beta of a gradient GEMM into g: 0 when g is fresh (written), else 1; a
 * fresh g that no GEMM writes (an empty inner dimension) is zeroed. */
static double grad_beta(tensor *g, bool written) {
    if (!tg_grad_take_fresh(g)) return 1.0;
    if (!written) memset(g->data, 0, (size_t)g->size * tg_dtype_size(g->dtype));
    return 0.0;
}

static void linear_vjp(tape_node *n, tensor *const *gin) {
    const tensor *x = n->in[0], *w = n->in[1];
    int64_t OUT = w->shape[0], IN = w->shape[1], M = tg_shape_numel(x->ndim - 1, x->shape);
    const void *G = n->out->grad->data;
    /* the buffers are taken in order: x, w or b may be one tensor (then
     * gin[j] are one buffer, written by the first and added to by the rest) */
    if (gin[0]) { /* dX (M, IN) += G (M, OUT) W (OUT, IN) */
        double beta = grad_beta(gin[0], OUT > 0);
        if (OUT > 0)
            tg_blas_gemm(x->dtype, false, false, M, IN, OUT, G, OUT, w->data, IN, beta, gin[0]->data, IN);
    }
    if (gin[1]) { /* dW (OUT, IN) += G^T (OUT, M) X (M, IN) */
        double beta = grad_beta(gin[1], M > 0);
        if (M > 0)
            tg_blas_gemm(x->dtype, true, false, OUT, IN, M, G, OUT, x->data, IN, beta, gin[1]->data, IN);
    }
    if (gin[2]) {
        if (x->dtype == DTYPE_F32)
            LINEAR_BIAS_GRAD(float);
        else
            LINEAR_BIAS_GRAD(double);
    }
}

tensor *tensor_linear(tensor *x, tensor *w, tensor *b) {
    const op_def *op = &tg_ops_layer[LINEAR];
    tensor *req[2] = {x, w};
    if (tg_op_check_inputs(op, req, 2, 0) || op_check_optional(op->name, "bias", b, x)) return NULL;
    char sx[96], sw[96], sb[96];
    if (x->ndim < 1 || w->ndim != 2 || x->shape[x->ndim - 1] != w->shape[1]) {
        tg_error_set("linear: x [.., IN] and w [OUT, IN] do not match: x %s, w %s",
                  tensor_shape_str(x, sx, sizeof sx), tensor_shape_str(w, sw, sizeof sw));
        return NULL;
    }
    if (b && (b->ndim != 1 || b->shape[0] != w->shape[0])) {
        tg_error_set("linear: bias must be [OUT] = [%lld] for w %s, got %s", (long long)w->shape[0],
                  tensor_shape_str(w, sw, sizeof sw), tensor_shape_str(b, sb, sizeof sb));
        return NULL;
    }
    int64_t shape[TENSOR_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 1] = w->shape[0];
    tensor *in[3] = {x, w, b};
    return tg_op_apply(op, in, 3, x->dtype, x->ndim, shape);
}

/* ----------------------------------------------------------------- dropout */

/* y = x * m, with m = keep / (1 - p) drawn per element (dropout) or per
 * channel (dropout2d: m is [B, C], shared by the S = H*W or L positions of a
 * channel);  dx += g * m.  Without a mask (eval, p = 0) y = x and dx += g. */
#define DROPOUT_LOOPS(T)                                                        \
    static void dropout_fwd_##T(const tensor *x, const tensor *m, tensor *y, int64_t S) { \
        const T *X = x->data;                                                   \
        const double *K = m->data;                                              \
        T *Y = y->data;                                                         \
        for (int64_t j = 0; j < m->size; j++)                                   \
            for (int64_t i = j * S; i < (j + 1) * S; i++) Y[i] = (T)(X[i] * K[j]); \
    }                                                                           \
    static void dropout_bwd_##T(const tensor *g, const tensor *m, tensor *dx, int64_t S) { \
        const T *G = g->data;                                                   \
        const double *K = m->data;                                              \
        T *D = dx->data;                                                        \
        if (tg_grad_take_fresh(dx)) {                                           \
            for (int64_t j = 0; j < m->size; j++)                               \
                for (int64_t i = j * S; i < (j + 1) * S; i++) D[i] = (T)(G[i] * K[j]); \
        } else {                                                                \
            for (int64_t j = 0; j < m->size; j++)                               \
                for (int64_t i = j * S; i < (j + 1) * S; i++) D[i] += (T)(G[i] * K[j]); \
        }                                                                       \
    }
DROPOUT_LOOPS(float)
DROPOUT_LOOPS(double)

/* Positions sharing one mask value: 1 for dropout, the spatial size for dropout2d. */
static int64_t dropout_span(const tape_node *n) {
    const tensor *m = n->saved[0];
    return m->size ? n->in[0]->size / m->size : 1;
}

static void dropout_forward(tape_node *n) {
    const tensor *x = n->in[0], *m = n->saved[0];
    if (!m)
        memcpy(n->out->data, x->data, (size_t)x->size * tg_dtype_size(x->dtype));
    else if (x->dtype == DTYPE_F32)
        dropout_fwd_float(x, m, n->out, dropout_span(n));
    else
        dropout_fwd_double(x, m, n->out, dropout_span(n));
}

static void dropout_vjp(tape_node *n, tensor *const *gin) {
    const tensor *m = n->saved[0];
    if (!gin[0]) return;
    if (!m)
        tg_reduce_to_shape_grad(gin[0], n->out->grad); /* equal shapes: plain += (= if fresh) */
    else if (gin[0]->dtype == DTYPE_F32)
        dropout_bwd_float(n->out->grad, m, gin[0], dropout_span(n));
    else
        dropout_bwd_double(n->out->grad, m, gin[0], dropout_span(n));
}

/* Each mask value is kept with probability 1 - p (uniform draw >= p) and then
 * worth 1 / (1 - p); at p = 1 nothing is kept and the scale is never needed. */
static void dropout_draw(tensor *m, double p, rng *g) {
    double scale = p < 1.0 ? 1.0 / (1.0 - p) : 0.0, *M = m->data;
    for (int64_t i = 0; i < m->size; i++) M[i] = rng_uniform(g) >= p ? scale : 0.0;
}

static tensor *dropout_apply(int which, tensor *x, double p, bool training, rng *g) {
    const op_def *op = &tg_ops_layer[which];
    tensor *in[1] = {x};
    if (tg_op_check_inputs(op, in, 1, 0)) return NULL;
    char sx[96];
    if (!(p >= 0.0 && p <= 1.0)) {
        tg_error_set("%s: p must be in [0, 1], got %g", op->name, p);
        return NULL;
    }
    if (which == DROPOUT2D && x->ndim != 3 && x->ndim != 4) {
        tg_error_set("dropout2d: x must be (B, C, H, W) or (B, C, L), got %s",
                  tensor_shape_str(x, sx, sizeof sx));
        return NULL;
    }
    bool masked = training && p > 0.0;
    if (masked && !g) {
        tg_error_set("%s: training with p = %g needs a generator, got NULL", op->name, p);
        return NULL;
    }
    tape_node *n = tg_node_begin(op, in, 1, x->dtype, x->ndim, x->shape);
    if (!n) return NULL;
    n->ip[0] = training;
    n->fp[0] = p;
    if (masked) {
        int nd = which == DROPOUT2D ? 2 : x->ndim;
        n->saved[0] = tg_tensor_tape_new(DTYPE_F64, nd, x->shape);
        if (!n->saved[0]) return NULL;
        dropout_draw(n->saved[0], p, g);
    }
    return tg_node_finish(n);
}

tensor *tensor_dropout(tensor *x, double p, bool training, rng *g) {
    return dropout_apply(DROPOUT, x, p, training, g);
}
tensor *tensor_dropout2d(tensor *x, double p, bool training, rng *g) {
    return dropout_apply(DROPOUT2D, x, p, training, g);
}

/* --------------------------------------------------------------- embedding */

/* index I (any shape, K elements), weight W (N, D), y (.., D):
 *   y[k, :] = W[I[k], :]        dW[I[k], :] += g[k, :]
 * Rows are scattered in index order, so duplicate indices accumulate and the
 * result is the same on every run. */
static void embedding_forward(tape_node *n) {
    const tensor *idx = n->in[0], *w = n->in[1];
    const int64_t *IX = idx->data;
    size_t row = (size_t)w->shape[1] * tg_dtype_size(w->dtype);
    for (int64_t k = 0; k < idx->size; k++)
        memcpy((char *)n->out->data + (size_t)k * row, (const char *)w->data + (size_t)IX[k] * row, row);
}

#define EMBEDDING_SCATTER(T)                                                    \
    do {                                                                        \
        const T *G = n->out->grad->data;                                        \
        T *D = gin[1]->data;                                                    \
        for (int64_t k = 0; k < idx->size; k++)                                 \
            for (int64_t j = 0; j < dim; j++) D[IX[k] * dim + j] += G[k * dim + j]; \
    } while (0)

static void embedding_vjp(tape_node *n, tensor *const *gin) {
    const tensor *idx = n->in[0];
    const int64_t *IX = idx->data;
    int64_t dim = n->in[1]->shape[1];
    if (!gin[1]) return;
    if (gin[1]->dtype == DTYPE_F32)
        EMBEDDING_SCATTER(float);
    else
        EMBEDDING_SCATTER(double);
}

tensor *tensor_embedding(tensor *index, tensor *weight) {
    const op_def *op = &tg_ops_layer[EMBEDDING];
    tensor *in[2] = {index, weight};
    if (tg_op_check_inputs(op, in, 2, 1u)) return NULL;
    char si[96], sw[96];
    if (index->dtype != DTYPE_I64) {
        tg_error_set("embedding: index must be int64, got %s", tg_dtype_name(index->dtype));
        return NULL;
    }
    if (weight->ndim != 2 || index->ndim + 1 > TENSOR_MAX_DIMS) {
        tg_error_set("embedding: weight must be [N, D] and index at most %d-D: index %s, weight %s",
                  TENSOR_MAX_DIMS - 1, tensor_shape_str(index, si, sizeof si),
                  tensor_shape_str(weight, sw, sizeof sw));
        return NULL;
    }
    const int64_t *IX = index->data, N = weight->shape[0];
    for (int64_t k = 0; k < index->size; k++) {
        if (IX[k] < 0 || IX[k] >= N) {
            tg_error_set("embedding: index %lld (at position %lld) is out of range for N = %lld rows",
                      (long long)IX[k], (long long)k, (long long)N);
            return NULL;
        }
    }
    int64_t shape[TENSOR_MAX_DIMS];
    memcpy(shape, index->shape, sizeof(int64_t) * (size_t)index->ndim);
    shape[index->ndim] = weight->shape[1];
    return tg_op_apply(op, in, 2, weight->dtype, index->ndim + 1, shape);
}

/* ----------------------------------------------------------------- samples */

/* Cases: 2-D with bias, batched 3-D without, a single 1-D vector, 4-D with
 * bias. ip[0]: has bias. Inputs x, w[, b]. */
static int linear_sample(int k, rng *g, op_sample *s) {
    static const struct {
        int nx;
        int64_t x[4], out;
        bool bias;
    } cases[] = {
        {2, {3, 4}, 5, true},
        {3, {2, 3, 4}, 2, false},
        {1, {4}, 3, true},
        {4, {2, 2, 2, 3}, 4, true},
    };
    if (k >= (int)(sizeof cases / sizeof cases[0])) return 1;
    int64_t in_dim = cases[k].x[cases[k].nx - 1], ws[2] = {cases[k].out, in_dim};
    s->n_inputs = cases[k].bias ? 3 : 2;
    s->ip[0] = cases[k].bias;
    s->inputs[0] = tg_sample_tensor(g, cases[k].nx, cases[k].x, -1.5, 1.5);
    s->inputs[1] = tg_sample_tensor(g, 2, ws, -1.0, 1.0);
    if (cases[k].bias) s->inputs[2] = tg_sample_tensor(g, 1, ws, -1.0, 1.0);
    char sx[64], sw[64];
    tg_sample_name(s, "x%s w%s%s", tensor_shape_str(s->inputs[0], sx, sizeof sx),
                tensor_shape_str(s->inputs[1], sw, sizeof sw), cases[k].bias ? " + b" : "");
    for (int i = 0; i < s->n_inputs; i++)
        if (!s->inputs[i]) return -1;
    return 0;
}
static tensor *linear_build(tensor *const *in, const op_sample *s) {
    return tensor_linear(in[0], in[1], s->ip[0] ? in[2] : NULL);
}

/* Cases (dropout, then dropout2d): train at two rates, eval, train at p = 0.
 * ip[0]: training, ip[1]: the seed of the mask (fixed per case, chosen so that
 * the mask keeps some values and drops some), fp[0]: p. */
/* True when the mask that seed draws (as the builder does) keeps some of its
 * n values and drops some: an all-dropped case would check nothing. */
static bool dropout_seed_mixed(uint64_t seed, int64_t n, double p) {
    rng r;
    rng_seed(&r, seed, 1);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) kept += rng_uniform(&r) >= p;
    return kept > 0 && kept < n;
}

static const double dropout_ps[] = {0.3, 0.5, 0.3, 0.0};
static const bool dropout_train[] = {true, true, false, true};
static int dropout_case(int k, rng *g, op_sample *s, const int *nd, const int64_t (*shapes)[4],
                        int mask_nd) {
    const double *ps = dropout_ps;
    const bool *train = dropout_train;
    if (k >= 4) return 1;
    s->n_inputs = 1;
    s->inputs[0] = tg_sample_tensor(g, nd[k], shapes[k], -2.0, 2.0);
    s->ip[0] = train[k];
    int64_t n_mask = tg_shape_numel(mask_nd ? mask_nd : nd[k], shapes[k]);
    do
        s->ip[1] = rng_next_u32(g);
    while (train[k] && ps[k] > 0 && !dropout_seed_mixed((uint64_t)s->ip[1], n_mask, ps[k]));
    s->fp[0] = ps[k];
    char sx[64];
    tg_sample_name(s, "x%s p %g %s", tensor_shape_str(s->inputs[0], sx, sizeof sx), ps[k],
                train[k] ? "train" : "eval");
    return s->inputs[0] ? 0 : -1;
}
static int dropout_sample(int k, rng *g, op_sample *s) {
    static const int nd[] = {2, 3, 2, 3};
    static const int64_t shapes[][4] = {{3, 4}, {2, 3, 5}, {4, 3}, {2, 2, 3}};
    return dropout_case(k, g, s, nd, shapes, 0);
}
static int dropout2d_sample(int k, rng *g, op_sample *s) {
    static const int nd[] = {3, 4, 3, 4};
    static const int64_t shapes[][4] = {{2, 4, 5}, {2, 3, 2, 2}, {2, 3, 4}, {2, 3, 2, 3}};
    return dropout_case(k, g, s, nd, shapes, 2); /* one mask value per (B, C) */
}
static tensor *dropout_build(tensor *const *in, const op_sample *s) {
    rng g;
    rng_seed(&g, (uint64_t)s->ip[1], 1);
    return tensor_dropout(in[0], s->fp[0], s->ip[0], &g);
}
static tensor *dropout2d_build(tensor *const *in, const op_sample *s) {
    rng g;
    rng_seed(&g, (uint64_t)s->ip[1], 1);
    return tensor_dropout2d(in[0], s->fp[0], s->ip[0], &g);
}

/* Cases: 1-D index with a forced duplicate, 2-D index, a scalar index. */
static int embedding_sample(int k, rng *g, op_sample *s) {
    static const struct {
        int ni;
        int64_t index[2], w[2];
    } cases[] = {{1, {5, 0}, {4, 3}}, {2, {2, 3}, {5, 2}}, {0, {0, 0}, {3, 4}}};
    if (k >= 3) return 1;
    s->n_inputs = 2;
    s->no_grad_mask = 1u;
    s->inputs[0] = tg_sample_labels(g, cases[k].ni, cases[k].index, cases[k].w[0]);
    s->inputs[1] = tg_sample_tensor(g, 2, cases[k].w, -1.5, 1.5);
    if (!s->inputs[0] || !s->inputs[1]) return -1;
    if (s->inputs[0]->size > 1) /* a repeated row must accumulate */
        tensor_set(s->inputs[0], s->inputs[0]->size - 1, tensor_get(s->inputs[0], 0));
    char si[64], sw[64];
    tg_sample_name(s, "index%s weight%s", tensor_shape_str(s->inputs[0], si, sizeof si),
                tensor_shape_str(s->inputs[1], sw, sizeof sw));
    return 0;
}
static tensor *embedding_build(tensor *const *in, const op_sample *s) {
    (void)s;
    return tensor_embedding(in[0], in[1]);
}

/* ------------------------------------------------------ graph vjps
 * linear's vjp built from ops (op_def.vjp_graph): with x and g flattened to
 * rows, X [R, IN] and G [R, OUT]:  dx = G W,  dW = G^T X,  db = sum_rows G. */
static int linear_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *x = n->in[0], *w = n->in[1];
    const int64_t OUT = w->shape[0], IN = w->shape[1], R = OUT ? g->size / OUT : 0;
    int64_t gs[2] = {R, OUT}, xs[2] = {R, IN};
    int ax0 = 0;
    tensor *G = tensor_reshape(g, 2, gs);
    if (want[0]) gin[0] = tensor_reshape(tensor_matmul(G, w), x->ndim, x->shape);
    if (want[1]) gin[1] = tensor_matmul(tensor_transpose(G, 0, 1), tensor_reshape(x, 2, xs));
    if (n->n_in > 2 && want[2]) gin[2] = tensor_sum(G, &ax0, 1, false);
    return tg_graph_vjp_done(n, want, gin);
}

/* dropout, dropout2d: dx = g m, m the saved mask (float64 [B, C] for
 * dropout2d, x's shape for dropout) as a constant of x's dtype, broadcast
 * over the spatial dims; no mask: dx = g. */
static int dropout_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    const tensor *m = n->saved[0], *x = n->in[0];
    if (!m) {
        gin[0] = g;
        return tg_graph_vjp_done(n, want, gin);
    }
    int64_t shape[TENSOR_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) shape[d] = d < m->ndim ? m->shape[d] : 1;
    tensor *mk = tg_tensor_tape_new(x->dtype, x->ndim, shape);
    if (!mk) return -1;
    for (int64_t i = 0; i < m->size; i++) tensor_set(mk, i, tensor_get(m, i));
    gin[0] = tensor_mul(g, mk);
    return tg_graph_vjp_done(n, want, gin);
}

/* embedding: dW = one_hot(index, N)^T [N, K] @ g [K, D] (K positions;
 * the one-hot matrix is a constant and sums repeated indices) */
static int embedding_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *idx = n->in[0], *w = n->in[1];
    int64_t K = idx->size, gk[2] = {K, w->shape[1]};
    tensor *oh = tensor_one_hot(tensor_reshape(idx, 1, &K), w->shape[0], w->dtype);
    gin[1] = tensor_matmul(tensor_transpose(oh, 0, 1), tensor_reshape(g, 2, gk));
    return tg_graph_vjp_done(n, want, gin);
}

const op_def tg_ops_layer[] = {
    [LINEAR] = {"linear", 3, 0, linear_forward, linear_vjp, linear_sample, linear_build,
     "tensor_linear(x, w, b)", "y = x W^T + b, x [.., IN], W [OUT, IN], b [OUT] or NULL",
     "dx = g W, dW = g^T x (summed over all leading dims of x), db = sum of g over the leading dims",
     "one GEMM each way (ops/blas.c), no copies of x or W; b may be NULL (a NULL b while an error is "
     "pending propagates the error); samples with a bias have inputs x, w, b, without: x, w",
     .vjp_graph = linear_vjp_graph, .vjp_fresh = true},
    [DROPOUT] = {"dropout", 1, 0, dropout_forward, dropout_vjp, dropout_sample, dropout_build,
     "tensor_dropout(x, p, training, g)",
     "training: y = x * m, m = bernoulli(1 - p) / (1 - p) per element; eval or p = 0: y = x",
     "dx = g * m (eval: dx = g)",
     "the mask is drawn from g in the builder and saved, so forward is pure and a replay uses the "
     "same mask; p must be in [0, 1]; p = 1 keeps nothing: y = 0 and dx = 0; training with p > 0 "
     "needs g; eval and p = 0 still record a copy op",
     .vjp_graph = dropout_vjp_graph, .vjp_fresh = true},
    [DROPOUT2D] = {"dropout2d", 1, 0, dropout_forward, dropout_vjp, dropout2d_sample, dropout2d_build,
     "tensor_dropout2d(x, p, training, g)",
     "training: y[b,c,..] = x[b,c,..] * m[b,c], m = bernoulli(1 - p) / (1 - p) per channel; "
     "x (B, C, H, W) or (B, C, L)",
     "dx[b,c,..] = g[b,c,..] * m[b,c] (eval: dx = g)",
     "drops whole channels; mask [B, C] drawn in the builder and saved; same p rules as dropout",
     .vjp_graph = dropout_vjp_graph, .vjp_fresh = true},
    [EMBEDDING] = {"embedding", 2, 1u, embedding_forward, embedding_vjp, embedding_sample, embedding_build,
     "tensor_embedding(index, weight)", "y[.., :] = W[index[..], :], index int64 any shape, W [N, D]",
     "dW[i, :] = sum of g[k, :] over the positions k with index[k] = i; no gradient for index",
     "duplicate indices accumulate; an index outside [0, N) is an error naming it and N",
     .vjp_graph = embedding_vjp_graph},
};
const int tg_ops_layer_count = N_LAYER_OPS;
_Static_assert(sizeof tg_ops_layer / sizeof tg_ops_layer[0] == N_LAYER_OPS,
               "tg_ops_layer: one entry per op of its enum");
