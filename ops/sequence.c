/* sequence.c - the ops sequence models add to the elementwise and shape
 * families: sin and cos (sinusoidal position encodings), tril and triu
 * (causal masks), cumsum (running sums), and one_hot (categorical inputs).
 *
 * Dimensions are named like the shape family's: an axis splits a tensor into
 * [outer, L, inner], and tril/triu work on the last two dims [.., R, C]. */
#include "elementwise.h"

/* ----------------------------------------------------------- sin, cos */

/* z = sin x;  dx = g cos x */
EW_UNARY_FORWARD(sin, sin(x))
EW_UNARY_VJP(sin, g * cos(x))
/* z = cos x;  dx = -g sin x */
EW_UNARY_FORWARD(cos, cos(x))
EW_UNARY_VJP(cos, -g * sin(x))

/* ---------------------------------------------------------- tril, triu
 * Over the last two dims [R, C] of every matrix of x, with k = ip[0]:
 *   tril keeps x[r, c] where c - r <= k,  triu where c - r >= k  (ip[1] = 1);
 * the rest is 0. The op is linear and its own adjoint: dx = the same
 * triangle of g, 0 elsewhere. */
#define TRI_KERNEL(T)                                                                 \
    /* dst (=, or += when add) src on the kept triangle; 0 (or nothing) elsewhere */  \
    static void tri_##T(const tape_node *n, const T *src, T *dst, bool add) {         \
        int nd = n->out->ndim;                                                        \
        int64_t R = n->out->shape[nd - 2], C = n->out->shape[nd - 1];                 \
        int64_t mats = R * C != 0 ? n->out->size / (R * C) : 0, k = n->ip[0];              \
        bool upper = n->ip[1];                                                        \
        for (int64_t m = 0; m < mats; m++)                                            \
            for (int64_t r = 0; r < R; r++) {                                         \
                const T *S = src + (m * R + r) * C;                                   \
                T *D = dst + (m * R + r) * C;                                         \
                for (int64_t c = 0; c < C; c++) {                                     \
                    bool keep = upper ? c - r >= k : c - r <= k;                      \
                    if (add) D[c] += keep ? S[c] : 0;                                 \
                    else D[c] = keep ? S[c] : 0;                                      \
                }                                                                     \
            }                                                                         \
    }
TRI_KERNEL(float)
TRI_KERNEL(double)

static void tri_forward(tape_node *n) {
    if (n->out->dtype == DTYPE_F32) tri_float(n, n->in[0]->data, n->out->data, false);
    else tri_double(n, n->in[0]->data, n->out->data, false);
}
static void tri_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0]) return;
    if (n->out->dtype == DTYPE_F32) tri_float(n, n->out->grad->data, gin[0]->data, true);
    else tri_double(n, n->out->grad->data, gin[0]->data, true);
}

/* -------------------------------------------------------------- cumsum
 * x seen as [outer, L, inner] around the axis (ip[0]):
 *   y[o, l, i] = sum_{m <= l} x[o, m, i]
 *   dx[o, m, i] += sum_{l >= m} g[o, l, i]   (the reverse cumulative sum of g) */
static void around(const tensor *t, int ax, int64_t *outer, int64_t *L, int64_t *inner) {
    *outer = shape_numel(ax, t->shape);
    *L = t->shape[ax];
    *inner = shape_numel(t->ndim - ax - 1, t->shape + ax + 1);
}

#define CUMSUM_KERNELS(T)                                                             \
    static void cumsum_fwd_##T(const tape_node *n) {                                  \
        int64_t outer, L, inner;                                                      \
        around(n->in[0], (int)n->ip[0], &outer, &L, &inner);                          \
        const T *X = n->in[0]->data;                                                  \
        T *Y = n->out->data;                                                          \
        for (int64_t o = 0; o < outer; o++) {                                         \
            const T *x = X + o * L * inner;                                           \
            T *y = Y + o * L * inner;                                                 \
            for (int64_t i = 0; i < inner && L > 0; i++) y[i] = x[i];                 \
            for (int64_t l = 1; l < L; l++)                                           \
                for (int64_t i = 0; i < inner; i++)                                   \
                    y[l * inner + i] = y[(l - 1) * inner + i] + x[l * inner + i];     \
        }                                                                             \
    }                                                                                 \
    static void cumsum_bwd_##T(const tape_node *n, tensor *dx) {                      \
        int64_t outer, L, inner;                                                      \
        around(n->in[0], (int)n->ip[0], &outer, &L, &inner);                          \
        const T *G = n->out->grad->data;                                              \
        T *D = dx->data;                                                              \
        for (int64_t o = 0; o < outer; o++)                                           \
            for (int64_t i = 0; i < inner; i++) {                                     \
                T acc = 0;                                                            \
                for (int64_t l = L - 1; l >= 0; l--) {                                \
                    acc += G[(o * L + l) * inner + i];                                \
                    D[(o * L + l) * inner + i] += acc;                                \
                }                                                                     \
            }                                                                         \
    }
CUMSUM_KERNELS(float)
CUMSUM_KERNELS(double)

static void cumsum_forward(tape_node *n) {
    if (n->out->dtype == DTYPE_F32) cumsum_fwd_float(n);
    else cumsum_fwd_double(n);
}
static void cumsum_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0]) return;
    if (n->out->dtype == DTYPE_F32) cumsum_bwd_float(n, gin[0]);
    else cumsum_bwd_double(n, gin[0]);
}

/* ------------------------------------------------------------- one_hot
 * y[p, c] = (index[p] == c) for c in [0, n) (n = ip[0]), in a float dtype;
 * index is int64, so there is no gradient. Indices are validated by the
 * builder. */
#define ONE_HOT_KERNEL(T)                                                             \
    static void one_hot_##T(const tape_node *n) {                                     \
        const int64_t *I = n->in[0]->data, C = n->ip[0];                              \
        T *Y = n->out->data;                                                          \
        memset(Y, 0, (size_t)n->out->size * sizeof(T));                               \
        for (int64_t p = 0; p < n->in[0]->size; p++) Y[p * C + I[p]] = 1;            \
    }
ONE_HOT_KERNEL(float)
ONE_HOT_KERNEL(double)

static void one_hot_forward(tape_node *n) {
    if (n->out->dtype == DTYPE_F32) one_hot_float(n);
    else one_hot_double(n);
}
/* Never called: the index is int64 and declared gradient-free. */
static void one_hot_vjp(tape_node *n, tensor *const *gin) { (void)n; (void)gin; }

/* ---------------------------------------------------------------- samples */

static int trig_sample(int k, rng *g, op_sample *s) {
    /* three periods' worth: both signs of the slope and of the value */
    return ew_unary_sample(k, g, s, -4.0, 4.0, NULL, 0, 0);
}

/* tril / triu: ip[0] diagonal; square, wide, tall and batched matrices. */
static int tri_sample(int k, rng *g, op_sample *s) {
    static const struct {
        int nd;
        int64_t shape[3], diag;
    } cases[] = {{2, {4, 4}, 0}, {2, {3, 5}, 1}, {3, {2, 4, 3}, -1}, {2, {5, 2}, -2}};
    if (k >= 4) return 1;
    s->n_inputs = 1;
    s->ip[0] = cases[k].diag;
    s->inputs[0] = sample_tensor(g, cases[k].nd, cases[k].shape, -2.0, 2.0);
    char sx[64];
    sample_name(s, "%s diagonal %lld", tensor_shape_str(s->inputs[0], sx, sizeof sx),
                (long long)cases[k].diag);
    return s->inputs[0] ? 0 : -1;
}

/* cumsum: ip[0] axis. */
static int cumsum_sample(int k, rng *g, op_sample *s) {
    static const struct {
        int nd;
        int64_t shape[3], axis;
    } cases[] = {{1, {6}, 0}, {2, {3, 4}, 1}, {3, {2, 3, 4}, -2}, {2, {4, 3}, 0}};
    if (k >= 4) return 1;
    s->n_inputs = 1;
    s->ip[0] = cases[k].axis;
    s->inputs[0] = sample_tensor(g, cases[k].nd, cases[k].shape, -2.0, 2.0);
    char sx[64];
    sample_name(s, "%s axis %lld", tensor_shape_str(s->inputs[0], sx, sizeof sx),
                (long long)cases[k].axis);
    return s->inputs[0] ? 0 : -1;
}

/* one_hot: an int64 index (no gradient) and a table w [n, D]; the case is
 * matmul(one_hot(index, n), w), the embedding lookup one_hot stands for,
 * differentiated in w. Every class occurs in case 0, so every row of w
 * receives gradient there; the others repeat classes, which accumulate. */
static int one_hot_sample(int k, rng *g, op_sample *s) {
    static const struct {
        int ni;
        int64_t index[2], n, d;
    } cases[] = {{1, {4, 0}, 4, 3}, {2, {2, 3}, 5, 2}, {1, {7, 0}, 3, 4}};
    if (k >= 3) return 1;
    s->n_inputs = 2;
    s->no_grad_mask = 1u;
    s->inputs[0] = sample_labels(g, cases[k].ni, cases[k].index, cases[k].n);
    s->inputs[1] = sample_tensor(g, 2, (int64_t[]){cases[k].n, cases[k].d}, -2.0, 2.0);
    if (!s->inputs[0] || !s->inputs[1]) return -1;
    if (k == 0) /* a permutation of the 4 classes */
        for (int64_t i = 0; i < 4; i++) tensor_set(s->inputs[0], i, (double)((i + 1) % 4));
    s->ip[0] = cases[k].n;
    char si[64], sw[64];
    sample_name(s, "index %s, n %lld, w %s", tensor_shape_str(s->inputs[0], si, sizeof si),
                (long long)cases[k].n, tensor_shape_str(s->inputs[1], sw, sizeof sw));
    return 0;
}

static tensor *sin_build(tensor *const *in, const op_sample *s) { (void)s; return tensor_sin(in[0]); }
static tensor *cos_build(tensor *const *in, const op_sample *s) { (void)s; return tensor_cos(in[0]); }
static tensor *tril_build(tensor *const *in, const op_sample *s) { return tensor_tril(in[0], s->ip[0]); }
static tensor *triu_build(tensor *const *in, const op_sample *s) { return tensor_triu(in[0], s->ip[0]); }
static tensor *cumsum_build(tensor *const *in, const op_sample *s) {
    return tensor_cumsum(in[0], (int)s->ip[0]);
}
static tensor *one_hot_build(tensor *const *in, const op_sample *s) {
    return tensor_matmul(tensor_one_hot(in[0], s->ip[0], in[1]->dtype), in[1]);
}

/* ---------------------------------------------------------- registry */

const op_def ops_sequence[] = {
    {"sin", 1, 0, sin_forward, sin_vjp, trig_sample, sin_build, "tensor_sin(a)", "y = sin a",
     "da = g * cos a", ""},
    {"cos", 1, 0, cos_forward, cos_vjp, trig_sample, cos_build, "tensor_cos(a)", "y = cos a",
     "da = -g * sin a", ""},
    {"tril", 1, 0, tri_forward, tri_vjp, tri_sample, tril_build, "tensor_tril(a, diagonal)",
     "y[.., r, c] = a[.., r, c] where c - r <= diagonal, else 0 (last two dims)",
     "da = tril(g, diagonal)",
     "a needs at least 2 dims; diagonal 0 is the main diagonal, > 0 above it, < 0 below"},
    {"triu", 1, 0, tri_forward, tri_vjp, tri_sample, triu_build, "tensor_triu(a, diagonal)",
     "y[.., r, c] = a[.., r, c] where c - r >= diagonal, else 0 (last two dims)",
     "da = triu(g, diagonal)",
     "a needs at least 2 dims; diagonal 0 is the main diagonal, > 0 above it, < 0 below"},
    {"cumsum", 1, 0, cumsum_forward, cumsum_vjp, cumsum_sample, cumsum_build,
     "tensor_cumsum(a, axis)", "y[.., l, ..] = sum over m <= l of a[.., m, ..] along axis",
     "da[.., m, ..] = sum over l >= m of g[.., l, ..] (a reverse cumulative sum)",
     "sums run in the order of the axis, in the input's dtype"},
    {"one_hot", 1, 1u, one_hot_forward, one_hot_vjp, one_hot_sample, one_hot_build,
     "tensor_one_hot(index, n, dtype)",
     "y[.., c] = 1 if index[..] == c else 0, c in [0, n); y has index's shape and a last dim n",
     "none: the index is int64",
     "index int64 with every value in [0, n); dtype float32 or float64. The checker's case is "
     "matmul(one_hot(index, n), w), differentiated in w"},
};
const int ops_sequence_count = sizeof ops_sequence / sizeof ops_sequence[0];

/* ---------------------------------------------------------- builders */

enum { SIN, COS, TRIL, TRIU, CUMSUM, ONE_HOT };
#define OP(i) (&ops_sequence[i])

tensor *tensor_sin(tensor *a) { return ew_unary_apply(OP(SIN), a, NULL, 0); }
tensor *tensor_cos(tensor *a) { return ew_unary_apply(OP(COS), a, NULL, 0); }

static tensor *tri_apply(const op_def *op, tensor *a, int64_t diagonal, bool upper) {
    tensor *in[1] = {a};
    if (op_check_inputs(op, in, 1, 0)) return NULL;
    if (a->ndim < 2) {
        char sa[96];
        error_set("%s: needs at least 2 dimensions, got %s", op->name,
                  tensor_shape_str(a, sa, sizeof sa));
        return NULL;
    }
    tape_node *n = node_begin(op, in, 1, a->dtype, a->ndim, a->shape);
    if (!n) return NULL;
    n->ip[0] = diagonal;
    n->ip[1] = upper;
    return node_finish(n);
}
tensor *tensor_tril(tensor *a, int64_t diagonal) { return tri_apply(OP(TRIL), a, diagonal, false); }
tensor *tensor_triu(tensor *a, int64_t diagonal) { return tri_apply(OP(TRIU), a, diagonal, true); }

tensor *tensor_cumsum(tensor *a, int axis) {
    const op_def *op = OP(CUMSUM);
    tensor *in[1] = {a};
    if (op_check_inputs(op, in, 1, 0)) return NULL;
    if (a->ndim == 0) {
        error_set("cumsum: needs at least 1 dimension, got a scalar");
        return NULL;
    }
    int ax = axis_normalize("cumsum", axis, a->ndim);
    if (ax < 0) return NULL;
    tape_node *n = node_begin(op, in, 1, a->dtype, a->ndim, a->shape);
    if (!n) return NULL;
    n->ip[0] = ax;
    return node_finish(n);
}

tensor *tensor_one_hot(tensor *index, int64_t n_classes, dtype dt) {
    const op_def *op = OP(ONE_HOT);
    if (!index) {
        if (!error_pending()) error_set("one_hot: input 0 is NULL");
        return NULL;
    }
    char si[96];
    if (index->dtype != DTYPE_I64) {
        error_set("one_hot: index must be int64, got %s", dtype_name(index->dtype));
        return NULL;
    }
    if (dt != DTYPE_F32 && dt != DTYPE_F64) {
        error_set("one_hot: the output dtype must be float32 or float64, got %s", dtype_name(dt));
        return NULL;
    }
    if (n_classes <= 0 || index->ndim >= TENSOR_MAX_DIMS) {
        error_set("one_hot: cannot encode index %s in %lld classes",
                  tensor_shape_str(index, si, sizeof si), (long long)n_classes);
        return NULL;
    }
    const int64_t *I = index->data;
    for (int64_t i = 0; i < index->size; i++) {
        if (I[i] < 0 || I[i] >= n_classes) {
            error_set("one_hot: index %lld (at position %lld of %s) out of range for %lld classes",
                      (long long)I[i], (long long)i, tensor_shape_str(index, si, sizeof si),
                      (long long)n_classes);
            return NULL;
        }
    }
    int64_t shape[TENSOR_MAX_DIMS];
    for (int d = 0; d < index->ndim; d++) shape[d] = index->shape[d];
    shape[index->ndim] = n_classes;
    tensor *in[1] = {index};
    tape_node *n = node_begin(op, in, 1, dt, index->ndim + 1, shape);
    if (!n) return NULL;
    n->ip[0] = n_classes;
    return node_finish(n);
}
