/* sequence.c - the ops sequence models add to the elementwise and shape
 * families: sin and cos (sinusoidal position encodings), tril and triu
 * (causal masks), cumsum (running sums), one_hot (categorical inputs), and
 * sort, topk and multinomial (ranking and sampling).
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
    *outer = tg_shape_numel(ax, t->shape);
    *L = t->shape[ax];
    *inner = tg_shape_numel(t->ndim - ax - 1, t->shape + ax + 1);
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

/* ----------------------------------------------------------- sort, topk
 * Each line of x along the axis, seen as [outer, L, inner], is ordered by a
 * stable merge sort of the positions 0..L-1 (ties keep their order; NaN
 * counts as the largest value, as in PyTorch). The first K positions
 * (K = L for sort, k for topk) are the output indices (saved[0], int64) and
 *   y[o, j, i] = x[o, idx[o, j, i], i]      dx[o, idx[o, j, i], i] += g[o, j, i].
 * ip: [0] axis, [1] K, [2] descending. saved[1] is the sort's scratch
 * (2L positions), so the forward allocates nothing when replayed. */
#define SORT_KERNELS(T)                                                                   /* whether a goes strictly before b */                                                static inline bool before_##T(T a, T b, bool desc) {                                      return desc ? (a > b || (a != a && b == b)) : (a < b || (b != b && a == a));      }                                                                                     static void sort_fwd_##T(tape_node *n) {                                                  int64_t outer, L, inner, K = n->ip[1];                                                around(n->in[0], (int)n->ip[0], &outer, &L, &inner);                                  bool desc = n->ip[2];                                                                 const T *X = n->in[0]->data;                                                          T *Y = n->out->data;                                                                  int64_t *IDX = n->saved[0]->data, *buf = n->saved[1]->data;                           for (int64_t o = 0; o < outer; o++)                                                       for (int64_t i = 0; i < inner; i++) {                                                     const T *x = X + o * L * inner + i;                                                   int64_t *src = buf, *dst = buf + L;                                                   for (int64_t j = 0; j < L; j++) src[j] = j;                                           for (int64_t w = 1; w < L; w *= 2) {                                                      for (int64_t lo = 0; lo < L; lo += 2 * w) {                                               int64_t mid = lo + w < L ? lo + w : L;                                                int64_t hi = lo + 2 * w < L ? lo + 2 * w : L;                                         int64_t a = lo, b = mid, t = lo;                                                      while (a < mid && b < hi)                                                                 dst[t++] = before_##T(x[src[b] * inner], x[src[a] * inner], desc)                                            ? src[b++] : src[a++];                                             while (a < mid) dst[t++] = src[a++];                                                  while (b < hi) dst[t++] = src[b++];                                               }                                                                                     int64_t *tmp = src;                                                                   src = dst;                                                                            dst = tmp;                                                                        }                                                                                     for (int64_t j = 0; j < K; j++) {                                                         IDX[(o * K + j) * inner + i] = src[j];                                                Y[(o * K + j) * inner + i] = x[src[j] * inner];                                   }                                                                                 }                                                                             }                                                                                     static void sort_bwd_##T(const tape_node *n, tensor *dx) {                                int64_t outer, L, inner, K = n->ip[1];                                                around(n->in[0], (int)n->ip[0], &outer, &L, &inner);                                  const int64_t *IDX = n->saved[0]->data;                                               const T *G = n->out->grad->data;                                                      T *D = dx->data;                                                                      for (int64_t o = 0; o < outer; o++)                                                       for (int64_t j = 0; j < K; j++)                                                           for (int64_t i = 0; i < inner; i++) {                                                     int64_t p = (o * K + j) * inner + i;                                                  D[(o * L + IDX[p]) * inner + i] += G[p];                                          }                                                                         }
SORT_KERNELS(float)
SORT_KERNELS(double)

static void sort_forward(tape_node *n) {
    if (n->out->dtype == DTYPE_F32) sort_fwd_float(n);
    else sort_fwd_double(n);
}
static void sort_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0]) return;
    if (n->out->dtype == DTYPE_F32) sort_bwd_float(n, gin[0]);
    else sort_bwd_double(n, gin[0]);
}

/* --------------------------------------------------------- multinomial
 * Row r of probs [R, C] (or [C], R = 1) holds weights w_c >= 0 with a
 * positive sum W. Draw d of the row takes its uniform u (saved[0] [R, n],
 * drawn by the builder so that forward is pure) and picks the first c with
 *   cdf(c) = w_0 + .. + w_c > u W          (inverse CDF; w_c = 0 never picked)
 * With replacement the CDF is built once per row (saved[1] holds it) and
 * searched by bisection; without, each pick zeroes its weight (in saved[1])
 * and the next draw scans the rest. Sums run in float64 for both dtypes. */
static double prob_at(const tensor *p, int64_t i) {
    return p->dtype == DTYPE_F32 ? (double)((const float *)p->data)[i]
                                 : ((const double *)p->data)[i];
}

/* The first c with cdf[c] > t; the last category of positive weight when
 * rounding leaves t >= cdf[C-1]. */
static int64_t cdf_search(const double *cdf, int64_t C, double t) {
    int64_t lo = 0, hi = C - 1;
    if (!(t < cdf[C - 1])) {
        while (hi > 0 && cdf[hi] == cdf[hi - 1]) hi--;
        return hi;
    }
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (cdf[mid] > t) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

static void multinomial_forward(tape_node *n) {
    const tensor *p = n->in[0];
    int64_t C = p->shape[p->ndim - 1], R = C ? p->size / C : 0, N = n->ip[0];
    bool replacement = n->ip[1];
    const double *U = n->saved[0]->data;
    double *w = n->saved[1]->data;
    int64_t *Y = n->out->data;
    for (int64_t r = 0; r < R; r++) {
        if (replacement) {
            double acc = 0;
            for (int64_t c = 0; c < C; c++) w[c] = acc += prob_at(p, r * C + c);
            for (int64_t d = 0; d < N; d++)
                Y[r * N + d] = cdf_search(w, C, U[r * N + d] * w[C - 1]);
            continue;
        }
        for (int64_t c = 0; c < C; c++) w[c] = prob_at(p, r * C + c);
        for (int64_t d = 0; d < N; d++) {
            double total = 0, acc = 0;
            int64_t pick = -1;
            for (int64_t c = 0; c < C; c++) total += w[c];
            double t = U[r * N + d] * total;
            for (int64_t c = 0; c < C && pick < 0; c++)
                if (w[c] > 0 && t < (acc += w[c])) pick = c;
            for (int64_t c = C - 1; pick < 0 && c >= 0; c--) /* rounding: the last positive */
                if (w[c] > 0) pick = c;
            Y[r * N + d] = pick;
            w[pick] = 0;
        }
    }
}
/* Never called: probs is declared gradient-free (a draw is not differentiable). */
static void multinomial_vjp(tape_node *n, tensor *const *gin) { (void)n; (void)gin; }

/* ---------------------------------------------------------------- samples */

static int trig_sample(int k, rng *g, op_sample *s) {
    /* three periods' worth: both signs of the slope and of the value */
    return tg_ew_unary_sample(k, g, s, -4.0, 4.0, NULL, 0, 0);
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
    s->inputs[0] = tg_sample_tensor(g, cases[k].nd, cases[k].shape, -2.0, 2.0);
    char sx[64];
    tg_sample_name(s, "%s diagonal %lld", tensor_shape_str(s->inputs[0], sx, sizeof sx),
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
    s->inputs[0] = tg_sample_tensor(g, cases[k].nd, cases[k].shape, -2.0, 2.0);
    char sx[64];
    tg_sample_name(s, "%s axis %lld", tensor_shape_str(s->inputs[0], sx, sizeof sx),
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
    s->inputs[0] = tg_sample_labels(g, cases[k].ni, cases[k].index, cases[k].n);
    s->inputs[1] = tg_sample_tensor(g, 2, (int64_t[]){cases[k].n, cases[k].d}, -2.0, 2.0);
    if (!s->inputs[0] || !s->inputs[1]) return -1;
    if (k == 0) /* a permutation of the 4 classes */
        for (int64_t i = 0; i < 4; i++) tensor_set(s->inputs[0], i, (double)((i + 1) % 4));
    s->ip[0] = cases[k].n;
    char si[64], sw[64];
    tg_sample_name(s, "index %s, n %lld, w %s", tensor_shape_str(s->inputs[0], si, sizeof si),
                (long long)cases[k].n, tensor_shape_str(s->inputs[1], sw, sizeof sw));
    return 0;
}

/* sort / topk: distinct values 0.1 apart (no ties within a perturbation);
 * ip[0] axis, ip[1] k (topk), ip[2] descending / largest. */
static int sort_case(int k, rng *g, op_sample *s, bool topk) {
    static const struct {
        int nd;
        int64_t shape[3], axis, k, desc;
    } cases[] = {{1, {7}, 0, 3, 1}, {2, {3, 5}, 1, 2, 0}, {3, {4, 3, 2}, -2, 1, 1},
                 {2, {2, 6}, -1, 6, 0}, {2, {4, 3}, 0, 2, 1}};
    if (k >= 5) return 1;
    s->n_inputs = 1;
    s->ip[0] = cases[k].axis;
    s->ip[1] = cases[k].k;
    s->ip[2] = cases[k].desc;
    s->inputs[0] = tg_sample_tensor_distinct(g, cases[k].nd, cases[k].shape, -1.2, 0.1);
    char sx[64];
    if (topk)
        tg_sample_name(s, "%s axis %lld, k %lld %s", tensor_shape_str(s->inputs[0], sx, sizeof sx),
                    (long long)cases[k].axis, (long long)cases[k].k,
                    cases[k].desc ? "largest" : "smallest");
    else
        tg_sample_name(s, "%s axis %lld %s", tensor_shape_str(s->inputs[0], sx, sizeof sx),
                    (long long)cases[k].axis, cases[k].desc ? "descending" : "ascending");
    return s->inputs[0] ? 0 : -1;
}
static int sort_sample(int k, rng *g, op_sample *s) { return sort_case(k, g, s, false); }
static int topk_sample(int k, rng *g, op_sample *s) { return sort_case(k, g, s, true); }

/* multinomial: probs (no gradient) and x of probs' shape; the case is
 * gather(x, -1, multinomial(probs, n)), the values at the drawn categories,
 * differentiated in x. ip: [0] n, [1] replacement, [2] the draws' seed.
 * Weights in [0.2, 2) (never 0 here: the zero-weight rule is tested by hand). */
static int multinomial_sample(int k, rng *g, op_sample *s) {
    static const struct {
        int nd;
        int64_t shape[2], n, replacement;
    } cases[] = {{1, {5, 0}, 8, 1}, {2, {3, 4}, 3, 0}, {2, {2, 6}, 10, 1}, {1, {4, 0}, 4, 0}};
    if (k >= 4) return 1;
    s->n_inputs = 2;
    s->no_grad_mask = 1u;
    s->inputs[0] = tg_sample_tensor(g, cases[k].nd, cases[k].shape, 0.2, 2.0);
    s->inputs[1] = tg_sample_tensor(g, cases[k].nd, cases[k].shape, -2.0, 2.0);
    s->ip[0] = cases[k].n;
    s->ip[1] = cases[k].replacement;
    s->ip[2] = (int64_t)rng_below(g, 1u << 30);
    char sp[64];
    tg_sample_name(s, "probs %s, %lld draws %s replacement",
                tensor_shape_str(s->inputs[0], sp, sizeof sp), (long long)cases[k].n,
                cases[k].replacement ? "with" : "without");
    return s->inputs[0] && s->inputs[1] ? 0 : -1;
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
static tensor *sort_build(tensor *const *in, const op_sample *s) {
    return tensor_sort(in[0], (int)s->ip[0], s->ip[2], NULL);
}
static tensor *topk_build(tensor *const *in, const op_sample *s) {
    return tensor_topk(in[0], s->ip[1], (int)s->ip[0], s->ip[2], NULL);
}
static tensor *multinomial_build(tensor *const *in, const op_sample *s) {
    rng g;
    rng_seed(&g, (uint64_t)s->ip[2], 3);
    return tensor_gather(in[1], -1, tensor_multinomial(in[0], s->ip[0], s->ip[1], &g));
}

/* ---------------------------------------------------------- registry */

/* The sequence family: index of each op in tg_ops_sequence, its entry below. */
enum { SIN, COS, TRIL, TRIU, CUMSUM, ONE_HOT, SORT, TOPK, MULTINOMIAL, N_SEQUENCE_OPS };
#define OP(i) (&tg_ops_sequence[i])

const op_def tg_ops_sequence[] = {
    [SIN] = {"sin", 1, 0, sin_forward, sin_vjp, trig_sample, sin_build, "tensor_sin(a)", "y = sin a",
     "da = g * cos a", ""},
    [COS] = {"cos", 1, 0, cos_forward, cos_vjp, trig_sample, cos_build, "tensor_cos(a)", "y = cos a",
     "da = -g * sin a", ""},
    [TRIL] = {"tril", 1, 0, tri_forward, tri_vjp, tri_sample, tril_build, "tensor_tril(a, diagonal)",
     "y[.., r, c] = a[.., r, c] where c - r <= diagonal, else 0 (last two dims)",
     "da = tril(g, diagonal)",
     "a needs at least 2 dims; diagonal 0 is the main diagonal, > 0 above it, < 0 below"},
    [TRIU] = {"triu", 1, 0, tri_forward, tri_vjp, tri_sample, triu_build, "tensor_triu(a, diagonal)",
     "y[.., r, c] = a[.., r, c] where c - r >= diagonal, else 0 (last two dims)",
     "da = triu(g, diagonal)",
     "a needs at least 2 dims; diagonal 0 is the main diagonal, > 0 above it, < 0 below"},
    [CUMSUM] = {"cumsum", 1, 0, cumsum_forward, cumsum_vjp, cumsum_sample, cumsum_build,
     "tensor_cumsum(a, axis)", "y[.., l, ..] = sum over m <= l of a[.., m, ..] along axis",
     "da[.., m, ..] = sum over l >= m of g[.., l, ..] (a reverse cumulative sum)",
     "sums run in the order of the axis, in the input's dtype"},
    [ONE_HOT] = {"one_hot", 1, 1u, one_hot_forward, one_hot_vjp, one_hot_sample, one_hot_build,
     "tensor_one_hot(index, n, dtype)",
     "y[.., c] = 1 if index[..] == c else 0, c in [0, n); y has index's shape and a last dim n",
     "none: the index is int64",
     "index int64 with every value in [0, n); dtype float32 or float64. The checker's case is "
     "matmul(one_hot(index, n), w), differentiated in w"},
    [SORT] = {"sort", 1, 0, sort_forward, sort_vjp, sort_sample, sort_build,
     "tensor_sort(a, axis, descending, &indices)",
     "y = a's values along axis in ascending (or descending) order; indices (int64) = their "
     "positions in a, y = gather(a, axis, indices)",
     "da[.., indices[j], ..] += g[.., j, ..] (g scattered back to where each value came from)",
     "stable: equal values keep their order, and NaN sorts as the largest value (last ascending, "
     "first descending). A tie is a kink (the gradient follows the order chosen); samples keep "
     "values 0.1 apart"},
    [TOPK] = {"topk", 1, 0, sort_forward, sort_vjp, topk_sample, topk_build,
     "tensor_topk(a, k, axis, largest, &indices)",
     "y = the k largest (or smallest) values along axis, largest first (smallest first); "
     "indices (int64) = their positions in a",
     "da[.., indices[j], ..] += g[.., j, ..]; 0 for the values not chosen",
     "the first k of a stable sort, so ties go to the earlier position; samples keep values "
     "0.1 apart"},
    [MULTINOMIAL] = {"multinomial", 1, 1u, multinomial_forward, multinomial_vjp, multinomial_sample,
     multinomial_build, "tensor_multinomial(probs, n, replacement, rng)",
     "y[r, d] = the category of draw d from row r of probs (weights, normalised by their sum): "
     "the first c with w_0 + .. + w_c > u * sum(w), u uniform in [0, 1) from rng (int64 [R, n], "
     "or [n] for 1-D probs)",
     "none: a draw is not differentiable",
     "weights must be finite and >= 0 with a positive row sum; a zero weight is never drawn. "
     "Without replacement each draw removes its category, so n may not exceed the nonzero "
     "weights of a row. The uniforms are drawn when the op is built (row by row), so replaying "
     "it gives the same categories. The checker's case is gather(x, -1, multinomial(probs, n)), "
     "differentiated in x"},
};
const int tg_ops_sequence_count = N_SEQUENCE_OPS;
_Static_assert(sizeof tg_ops_sequence / sizeof tg_ops_sequence[0] == N_SEQUENCE_OPS,
               "tg_ops_sequence: one entry per op of its enum");

/* ---------------------------------------------------------- builders */


tensor *tensor_sin(tensor *a) { return tg_ew_unary_apply(OP(SIN), a, NULL, 0); }
tensor *tensor_cos(tensor *a) { return tg_ew_unary_apply(OP(COS), a, NULL, 0); }

static tensor *tri_apply(const op_def *op, tensor *a, int64_t diagonal, bool upper) {
    tensor *in[1] = {a};
    if (tg_op_check_inputs(op, in, 1, 0)) return NULL;
    if (a->ndim < 2) {
        char sa[96];
        tg_error_set("%s: needs at least 2 dimensions, got %s", op->name,
                  tensor_shape_str(a, sa, sizeof sa));
        return NULL;
    }
    tape_node *n = tg_node_begin(op, in, 1, a->dtype, a->ndim, a->shape);
    if (!n) return NULL;
    n->ip[0] = diagonal;
    n->ip[1] = upper;
    return tg_node_finish(n);
}
tensor *tensor_tril(tensor *a, int64_t diagonal) { return tri_apply(OP(TRIL), a, diagonal, false); }
tensor *tensor_triu(tensor *a, int64_t diagonal) { return tri_apply(OP(TRIU), a, diagonal, true); }

tensor *tensor_cumsum(tensor *a, int axis) {
    const op_def *op = OP(CUMSUM);
    tensor *in[1] = {a};
    if (tg_op_check_inputs(op, in, 1, 0)) return NULL;
    if (a->ndim == 0) {
        tg_error_set("cumsum: needs at least 1 dimension, got a scalar");
        return NULL;
    }
    int ax = tg_axis_normalize("cumsum", axis, a->ndim);
    if (ax < 0) return NULL;
    tape_node *n = tg_node_begin(op, in, 1, a->dtype, a->ndim, a->shape);
    if (!n) return NULL;
    n->ip[0] = ax;
    return tg_node_finish(n);
}

tensor *tensor_one_hot(tensor *index, int64_t n_classes, dtype dt) {
    const op_def *op = OP(ONE_HOT);
    if (!index) {
        if (!tg_error_pending()) tg_error_set("one_hot: input 0 is NULL");
        return NULL;
    }
    if (tg_tensor_check_fresh(op->name, "input 0", index)) return NULL; /* before reading its values */
    char si[96];
    if (index->dtype != DTYPE_I64) {
        tg_error_set("one_hot: index must be int64, got %s", tg_dtype_name(index->dtype));
        return NULL;
    }
    if (dt != DTYPE_F32 && dt != DTYPE_F64) {
        tg_error_set("one_hot: the output dtype must be float32 or float64, got %s", tg_dtype_name(dt));
        return NULL;
    }
    if (n_classes <= 0 || index->ndim >= TENSOR_MAX_DIMS) {
        tg_error_set("one_hot: cannot encode index %s in %lld classes",
                  tensor_shape_str(index, si, sizeof si), (long long)n_classes);
        return NULL;
    }
    const int64_t *I = index->data;
    for (int64_t i = 0; i < index->size; i++) {
        if (I[i] < 0 || I[i] >= n_classes) {
            tg_error_set("one_hot: index %lld (at position %lld of %s) out of range for %lld classes",
                      (long long)I[i], (long long)i, tensor_shape_str(index, si, sizeof si),
                      (long long)n_classes);
            return NULL;
        }
    }
    int64_t shape[TENSOR_MAX_DIMS];
    for (int d = 0; d < index->ndim; d++) shape[d] = index->shape[d];
    shape[index->ndim] = n_classes;
    tensor *in[1] = {index};
    tape_node *n = tg_node_begin(op, in, 1, dt, index->ndim + 1, shape);
    if (!n) return NULL;
    n->ip[0] = n_classes;
    return tg_node_finish(n);
}

/* sort and topk: K of the L values along axis; *indices (when not NULL)
 * receives the TAPE-OWNED int64 positions. */
static tensor *sort_apply(const op_def *op, tensor *a, int axis, int64_t k, bool k_given,
                          bool desc, tensor **indices) {
    if (indices) *indices = NULL;
    tensor *in[1] = {a};
    if (tg_op_check_inputs(op, in, 1, 0)) return NULL;
    if (a->ndim == 0) {
        tg_error_set("%s: needs at least 1 dimension, got a scalar", op->name);
        return NULL;
    }
    int ax = tg_axis_normalize(op->name, axis, a->ndim);
    if (ax < 0) return NULL;
    int64_t L = a->shape[ax], K = k_given ? k : L;
    if (K < 0 || K > L) {
        char sa[96];
        tg_error_set("%s: k = %lld out of range for size %lld of axis %d of %s", op->name,
                  (long long)k, (long long)L, axis, tensor_shape_str(a, sa, sizeof sa));
        return NULL;
    }
    int64_t shape[TENSOR_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) shape[d] = d == ax ? K : a->shape[d];
    tape_node *n = tg_node_begin(op, in, 1, a->dtype, a->ndim, shape);
    if (!n) return NULL;
    n->ip[0] = ax;
    n->ip[1] = K;
    n->ip[2] = desc;
    n->saved[0] = tg_tensor_tape_new(DTYPE_I64, a->ndim, shape);
    n->saved[1] = tg_tensor_tape_new(DTYPE_I64, 1, (int64_t[]){2 * L});
    if (!n->saved[0] || !n->saved[1]) return NULL;
    tensor *y = tg_node_finish(n);
    if (y && indices) *indices = n->saved[0];
    return y;
}

tensor *tensor_sort(tensor *a, int axis, bool descending, tensor **indices) {
    return sort_apply(OP(SORT), a, axis, 0, false, descending, indices);
}
tensor *tensor_topk(tensor *a, int64_t k, int axis, bool largest, tensor **indices) {
    return sort_apply(OP(TOPK), a, axis, k, true, largest, indices);
}

tensor *tensor_multinomial(tensor *probs, int64_t n, bool replacement, rng *g) {
    const op_def *op = OP(MULTINOMIAL);
    tensor *in[1] = {probs};
    if (tg_op_check_inputs(op, in, 1, 0)) return NULL;
    char sp[96];
    tensor_shape_str(probs, sp, sizeof sp);
    if (probs->ndim != 1 && probs->ndim != 2) {
        tg_error_set("multinomial: probs must be 1-D or 2-D, got %s", sp);
        return NULL;
    }
    if (n <= 0) {
        tg_error_set("multinomial: n = %lld draws; need at least 1", (long long)n);
        return NULL;
    }
    if (!g) {
        tg_error_set("multinomial: rng is NULL");
        return NULL;
    }
    int64_t C = probs->shape[probs->ndim - 1], R = probs->ndim == 2 ? probs->shape[0] : 1;
    for (int64_t r = 0; r < R; r++) {
        double sum = 0;
        int64_t positive = 0;
        for (int64_t c = 0; c < C; c++) {
            double w = prob_at(probs, r * C + c);
            if (!(w >= 0) || isinf(w)) {
                tg_error_set("multinomial: weight %g at row %lld, column %lld of %s is negative or "
                          "not finite", w, (long long)r, (long long)c, sp);
                return NULL;
            }
            sum += w;
            positive += w > 0;
        }
        if (!(sum > 0) || isinf(sum)) {
            tg_error_set("multinomial: row %lld of %s sums to %g; need a positive finite sum",
                      (long long)r, sp, sum);
            return NULL;
        }
        if (!replacement && n > positive) {
            tg_error_set("multinomial: cannot draw %lld without replacement from row %lld of %s, "
                      "which has %lld nonzero weights", (long long)n, (long long)r, sp,
                      (long long)positive);
            return NULL;
        }
    }
    int64_t shape[2] = {R, n};
    int nd = probs->ndim;
    tape_node *node = tg_node_begin(op, in, 1, DTYPE_I64, nd, nd == 2 ? shape : shape + 1);
    if (!node) return NULL;
    node->ip[0] = n;
    node->ip[1] = replacement;
    node->saved[0] = tg_tensor_tape_new(DTYPE_F64, 2, shape);
    node->saved[1] = tg_tensor_tape_new(DTYPE_F64, 1, &C);
    if (!node->saved[0] || !node->saved[1]) return NULL;
    double *U = node->saved[0]->data;
    for (int64_t i = 0; i < R * n; i++) U[i] = rng_uniform(g);
    return tg_node_finish(node);
}
