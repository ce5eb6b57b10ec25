/* matmul.c - batched matrix product through OpenBLAS, and the vector
 * products dot and outer (plain loops: too small to gain from BLAS calls).
 *
 *   C[b] = A[b] @ B[b]      A (.., M, K), B (.., K, N), C (.., M, N)
 *   dA[b] += G[b] @ B[b]^T  dB[b] += A[b]^T @ G[b]
 * Batch dimensions broadcast; a broadcast operand's gradient sums over the
 * batches that shared it (GEMM with beta = 1 into the same slot). */
#include "blas.h"
#include "elementwise.h"

typedef struct {
    int64_t M, K, N, batches;
    int bnd;                                   /* batch dims of the output */
    int64_t bshape[TENSOR_MAX_DIMS], sa[TENSOR_MAX_DIMS], sb[TENSOR_MAX_DIMS];
} mm_geom;

/* Batch offsets (in matrices) of A and B for output batch i. */
static void mm_geom_of(const tape_node *n, mm_geom *m) {
    const tensor *a = n->in[0], *b = n->in[1], *c = n->out;
    m->M = a->shape[a->ndim - 2];
    m->K = a->shape[a->ndim - 1];
    m->N = b->shape[b->ndim - 1];
    m->bnd = c->ndim - 2;
    m->batches = 1;
    for (int d = 0; d < m->bnd; d++) m->bshape[d] = c->shape[d], m->batches *= c->shape[d];
    /* strides of each operand's batch dims, in matrices, 0 where broadcast */
    int64_t s = 1;
    for (int d = m->bnd - 1; d >= 0; d--) {
        int ia = a->ndim - 2 - (m->bnd - d);
        int64_t da = ia >= 0 ? a->shape[ia] : 1;
        m->sa[d] = da == 1 ? 0 : s;
        s *= da;
    }
    s = 1;
    for (int d = m->bnd - 1; d >= 0; d--) {
        int ib = b->ndim - 2 - (m->bnd - d);
        int64_t db = ib >= 0 ? b->shape[ib] : 1;
        m->sb[d] = db == 1 ? 0 : s;
        s *= db;
    }
}

static void matmul_forward(tape_node *n) {
    mm_geom m;
    mm_geom_of(n, &m);
    size_t es = tg_dtype_size(n->out->dtype);
    const char *A = n->in[0]->data, *B = n->in[1]->data;
    char *C = n->out->data;
    for (int64_t i = 0; i < m.batches; i++) {
        int64_t oa = bcast_offset(i, m.bnd, m.bshape, m.sa), ob = bcast_offset(i, m.bnd, m.bshape, m.sb);
        tg_blas_gemm(n->out->dtype, false, false, m.M, m.N, m.K, A + (size_t)(oa * m.M * m.K) * es,
                  m.K, B + (size_t)(ob * m.K * m.N) * es, m.N, 0.0,
                  C + (size_t)(i * m.M * m.N) * es, m.N);
    }
}

/* beta of the first GEMM into gradient buffer g of an operand with `blocks`
 * matrices (its batch dims) over `batches` GEMMs: 0 when g is fresh and each
 * block is written by one GEMM only, else 1 (a fresh g shared by broadcast
 * batches is zeroed first, then added to). */
static double mm_grad_beta(tensor *g, int64_t blocks, int64_t batches) {
    if (!tg_grad_take_fresh(g)) return 1.0;
    if (blocks == batches) return 0.0;
    memset(g->data, 0, (size_t)g->size * tg_dtype_size(g->dtype));
    return 1.0;
}

static void matmul_vjp(tape_node *n, tensor *const *gin) {
    mm_geom m;
    mm_geom_of(n, &m);
    size_t es = tg_dtype_size(n->out->dtype);
    const char *A = n->in[0]->data, *B = n->in[1]->data, *G = n->out->grad->data;
    /* taken in order: with gin[0] == gin[1] (x @ x) dB adds to what dA wrote */
    double beta_a = gin[0] ? mm_grad_beta(gin[0], n->in[0]->size / (m.M * m.K > 0 ? m.M * m.K : 1),
                                          m.batches)
                           : 1.0;
    double beta_b = gin[1] ? mm_grad_beta(gin[1], n->in[1]->size / (m.K * m.N > 0 ? m.K * m.N : 1),
                                          m.batches)
                           : 1.0;
    for (int64_t i = 0; i < m.batches; i++) {
        int64_t oa = bcast_offset(i, m.bnd, m.bshape, m.sa), ob = bcast_offset(i, m.bnd, m.bshape, m.sb);
        const char *g = G + (size_t)(i * m.M * m.N) * es;
        if (gin[0]) /* dA (M,K) += G (M,N) @ B^T (N,K) (= when fresh) */
            tg_blas_gemm(n->out->dtype, false, true, m.M, m.K, m.N, g, m.N,
                      B + (size_t)(ob * m.K * m.N) * es, m.N, beta_a,
                      (char *)gin[0]->data + (size_t)(oa * m.M * m.K) * es, m.K);
        if (gin[1]) /* dB (K,N) += A^T (K,M) @ G (M,N) */
            tg_blas_gemm(n->out->dtype, true, false, m.K, m.N, m.M, A + (size_t)(oa * m.M * m.K) * es,
                      m.K, g, m.N, beta_b, (char *)gin[1]->data + (size_t)(ob * m.K * m.N) * es, m.N);
    }
}

/* The matmul family: index of each op in tg_ops_matmul, its entry below. */
enum { MATMUL, DOT, OUTER, N_MATMUL_OPS };

extern const op_def tg_ops_matmul[];
tensor *tensor_matmul(tensor *a, tensor *b) {
    const op_def *op = &tg_ops_matmul[MATMUL];
    tensor *in[2] = {a, b};
    if (tg_op_check_inputs(op, in, 2, 0)) return NULL;
    char sa[96], sb[96];
    if (a->ndim < 2 || b->ndim < 2) {
        tg_error_set("matmul: operands need at least 2 dimensions: %s @ %s (use tensor_dot or "
                  "tensor_outer for vectors)",
                  tensor_shape_str(a, sa, sizeof sa), tensor_shape_str(b, sb, sizeof sb));
        return NULL;
    }
    if (a->shape[a->ndim - 1] != b->shape[b->ndim - 2]) {
        tg_error_set("matmul: inner dimensions differ: %s @ %s", tensor_shape_str(a, sa, sizeof sa),
                  tensor_shape_str(b, sb, sizeof sb));
        return NULL;
    }
    /* broadcast the batch dims: shapes without their last two dims */
    tensor ba = *a, bb = *b;
    ba.ndim -= 2;
    bb.ndim -= 2;
    int nd;
    int64_t shape[TENSOR_MAX_DIMS];
    if (tg_broadcast_shapes("matmul (batch dimensions)", &ba, &bb, &nd, shape)) return NULL;
    shape[nd] = a->shape[a->ndim - 2];
    shape[nd + 1] = b->shape[b->ndim - 1];
    return tg_op_apply(op, in, 2, a->dtype, nd + 2, shape);
}

static int matmul_sample(int k, rng *g, op_sample *s) {
    static const struct {
        int na, nb;
        int64_t a[4], b[4];
    } cases[] = {
        {2, 2, {3, 4}, {4, 5}},
        {3, 2, {2, 3, 4}, {4, 5}},
        {4, 3, {5, 1, 3, 4}, {2, 4, 6}},
        {3, 3, {2, 3, 4}, {2, 4, 2}},
    };
    if (k >= 4) return 1;
    s->n_inputs = 2;
    s->inputs[0] = tg_sample_tensor(g, cases[k].na, cases[k].a, -1.5, 1.5);
    s->inputs[1] = tg_sample_tensor(g, cases[k].nb, cases[k].b, -1.5, 1.5);
    char sa[64], sb[64];
    tg_sample_name(s, "%s @ %s", tensor_shape_str(s->inputs[0], sa, sizeof sa),
                tensor_shape_str(s->inputs[1], sb, sizeof sb));
    return s->inputs[0] && s->inputs[1] ? 0 : -1;
}
static tensor *matmul_build(tensor *const *in, const op_sample *s) {
    (void)s;
    return tensor_matmul(in[0], in[1]);
}

/* dot: a [N] . b [N] -> y [], accumulated in double.
 *   da[i] += g b[i],  db[i] += g a[i]
 * outer: a [M] x b [N] -> y [M,N], y[i,j] = a[i] b[j].
 *   da[i] += sum_j g[i,j] b[j],  db[j] += sum_i g[i,j] a[i] */
#define VEC_LOOPS(T)                                                                  \
    static void dot_fwd_##T(const T *A, const T *B, T *Y, int64_t n) {               \
        double acc = 0;                                                               \
        for (int64_t i = 0; i < n; i++) acc += (double)A[i] * B[i];                   \
        Y[0] = (T)acc;                                                                \
    }                                                                                 \
    static void dot_bwd_##T(const T *X, T g, T *D, int64_t n) {                       \
        for (int64_t i = 0; i < n; i++) D[i] += g * X[i];                             \
    }                                                                                 \
    static void outer_fwd_##T(const T *A, const T *B, T *Y, int64_t M, int64_t N) {   \
        for (int64_t i = 0; i < M; i++)                                               \
            for (int64_t j = 0; j < N; j++) Y[i * N + j] = A[i] * B[j];               \
    }                                                                                 \
    static void outer_bwd_a_##T(const T *G, const T *B, T *D, int64_t M, int64_t N) { \
        for (int64_t i = 0; i < M; i++) {                                             \
            double acc = 0;                                                           \
            for (int64_t j = 0; j < N; j++) acc += (double)G[i * N + j] * B[j];       \
            D[i] += (T)acc;                                                           \
        }                                                                             \
    }                                                                                 \
    static void outer_bwd_b_##T(const T *G, const T *A, T *D, int64_t M, int64_t N) { \
        for (int64_t i = 0; i < M; i++)                                               \
            for (int64_t j = 0; j < N; j++) D[j] += G[i * N + j] * A[i];              \
    }
VEC_LOOPS(float)
VEC_LOOPS(double)

static void dot_forward(tape_node *n) {
    int64_t len = n->in[0]->size;
    if (n->out->dtype == DTYPE_F32)
        dot_fwd_float(n->in[0]->data, n->in[1]->data, n->out->data, len);
    else
        dot_fwd_double(n->in[0]->data, n->in[1]->data, n->out->data, len);
}
static void dot_vjp(tape_node *n, tensor *const *gin) {
    int64_t len = n->in[0]->size;
    for (int k = 0; k < 2; k++) {
        if (!gin[k]) continue;
        const tensor *other = n->in[1 - k];
        if (n->out->dtype == DTYPE_F32)
            dot_bwd_float(other->data, *(const float *)n->out->grad->data, gin[k]->data, len);
        else
            dot_bwd_double(other->data, *(const double *)n->out->grad->data, gin[k]->data, len);
    }
}

static void outer_forward(tape_node *n) {
    int64_t M = n->in[0]->size, N = n->in[1]->size;
    if (n->out->dtype == DTYPE_F32)
        outer_fwd_float(n->in[0]->data, n->in[1]->data, n->out->data, M, N);
    else
        outer_fwd_double(n->in[0]->data, n->in[1]->data, n->out->data, M, N);
}
static void outer_vjp(tape_node *n, tensor *const *gin) {
    int64_t M = n->in[0]->size, N = n->in[1]->size;
    const void *G = n->out->grad->data;
    bool f32 = n->out->dtype == DTYPE_F32;
    if (gin[0] && f32) outer_bwd_a_float(G, n->in[1]->data, gin[0]->data, M, N);
    if (gin[0] && !f32) outer_bwd_a_double(G, n->in[1]->data, gin[0]->data, M, N);
    if (gin[1] && f32) outer_bwd_b_float(G, n->in[0]->data, gin[1]->data, M, N);
    if (gin[1] && !f32) outer_bwd_b_double(G, n->in[0]->data, gin[1]->data, M, N);
}

/* Both operands 1-D; for dot also of one length. */
static int vec_check(const op_def *op, tensor *a, tensor *b, bool same_len) {
    tensor *in[2] = {a, b};
    if (tg_op_check_inputs(op, in, 2, 0)) return -1;
    char sa[96], sb[96];
    if (a->ndim != 1 || b->ndim != 1 || (same_len && a->size != b->size)) {
        tg_error_set("%s: needs two 1-D tensors%s: %s and %s", op->name,
                  same_len ? " of one length" : "", tensor_shape_str(a, sa, sizeof sa),
                  tensor_shape_str(b, sb, sizeof sb));
        return -1;
    }
    return 0;
}

tensor *tensor_dot(tensor *a, tensor *b) {
    const op_def *op = &tg_ops_matmul[DOT];
    if (vec_check(op, a, b, true)) return NULL;
    tensor *in[2] = {a, b};
    return tg_op_apply(op, in, 2, a->dtype, 0, NULL);
}

tensor *tensor_outer(tensor *a, tensor *b) {
    const op_def *op = &tg_ops_matmul[OUTER];
    if (vec_check(op, a, b, false)) return NULL;
    tensor *in[2] = {a, b};
    int64_t shape[2] = {a->size, b->size};
    return tg_op_apply(op, in, 2, a->dtype, 2, shape);
}

static int vec_sample(int k, rng *g, op_sample *s, bool same_len) {
    static const int64_t la[] = {5, 1, 4}, lb[] = {3, 4, 1};
    if (k >= 3) return 1;
    s->n_inputs = 2;
    int64_t na = la[k], nb = same_len ? la[k] : lb[k];
    s->inputs[0] = tg_sample_tensor(g, 1, &na, -1.5, 1.5);
    s->inputs[1] = tg_sample_tensor(g, 1, &nb, -1.5, 1.5);
    tg_sample_name(s, "[%lld] . [%lld]", (long long)na, (long long)nb);
    return s->inputs[0] && s->inputs[1] ? 0 : -1;
}
static int dot_sample(int k, rng *g, op_sample *s) { return vec_sample(k, g, s, true); }
static int outer_sample(int k, rng *g, op_sample *s) { return vec_sample(k, g, s, false); }
static tensor *dot_build(tensor *const *in, const op_sample *s) {
    (void)s;
    return tensor_dot(in[0], in[1]);
}
static tensor *outer_build(tensor *const *in, const op_sample *s) {
    (void)s;
    return tensor_outer(in[0], in[1]);
}

/* ------------------------------------------------------ graph vjps
 * The vjps built from ops (op_def.vjp_graph). */
static tensor *swap_last(tensor *t) { return t ? tensor_transpose(t, t->ndim - 2, t->ndim - 1) : NULL; }
/* dA = G @ B^T, dB = A^T @ G, each summed to its operand's batch dims */
static int matmul_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *a = n->in[0], *b = n->in[1];
    if (want[0]) gin[0] = tg_sum_to_shape(tensor_matmul(g, swap_last(b)), a);
    if (want[1]) gin[1] = tg_sum_to_shape(tensor_matmul(swap_last(a), g), b);
    return tg_graph_vjp_done(n, want, gin);
}
/* da = g b, db = g a (g a scalar, broadcast) */
static int dot_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    if (want[0]) gin[0] = tensor_mul(n->in[1], g);
    if (want[1]) gin[1] = tensor_mul(n->in[0], g);
    return tg_graph_vjp_done(n, want, gin);
}
/* da = sum_j g[:,j] b[j], db = sum_i g[i,:] a[i] */
static int outer_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    int ax1 = 1, ax0 = 0;
    int64_t col[2] = {n->in[0]->size, 1};
    if (want[0]) gin[0] = tensor_sum(tensor_mul(g, n->in[1]), &ax1, 1, false);
    if (want[1]) gin[1] = tensor_sum(tensor_mul(g, tensor_reshape(n->in[0], 2, col)), &ax0, 1, false);
    return tg_graph_vjp_done(n, want, gin);
}

const op_def tg_ops_matmul[] = {
    [MATMUL] = {"matmul", 2, 0, matmul_forward, matmul_vjp, matmul_sample, matmul_build,
     "tensor_matmul(a, b)", "C[..] = A[..] @ B[..] (batch dims broadcast)",
     "dA = G @ B^T, dB = A^T @ G, each summed over broadcast batch dims", "",
     .vjp_graph = matmul_vjp_graph, .vjp_fresh = true},
    [DOT] = {"dot", 2, 0, dot_forward, dot_vjp, dot_sample, dot_build, "tensor_dot(a, b)",
     "y = sum_i a[i] b[i] (1-D, one length; a scalar)", "da = g b, db = g a",
     "accumulated in double",
     .vjp_graph = dot_vjp_graph},
    [OUTER] = {"outer", 2, 0, outer_forward, outer_vjp, outer_sample, outer_build, "tensor_outer(a, b)",
     "y[i,j] = a[i] b[j]  ([M] x [N] -> [M,N])", "da[i] = sum_j g[i,j] b[j], db[j] = sum_i g[i,j] a[i]",
     "",
     .vjp_graph = outer_vjp_graph},
};
const int tg_ops_matmul_count = N_MATMUL_OPS;
_Static_assert(sizeof tg_ops_matmul / sizeof tg_ops_matmul[0] == N_MATMUL_OPS,
               "tg_ops_matmul: one entry per op of its enum");
