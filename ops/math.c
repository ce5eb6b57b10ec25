/* math.c - elementwise math: exponentials and logarithms, powers, abs/sign,
 * clamp, maximum/minimum, floor_divide/remainder, where and masked_select.
 *
 * Binary ops broadcast like NumPy; a broadcast operand's gradient is summed
 * over the broadcast dimensions. Where an op is not differentiable (kinks,
 * ties, jumps) the gradient used there follows PyTorch and is stated in the
 * op's registry notes; the sample cases keep a margin from those points. */
#include "elementwise.h"

/* ------------------------------------------------------------- unary */

/* z = e^x;  dx = g z */
EW_UNARY_FORWARD(exp, exp(x))
EW_UNARY_VJP(exp, g * z)
/* z = ln x;  dx = g / x */
EW_UNARY_FORWARD(log, log(x))
EW_UNARY_VJP(log, g / x)
/* z = log2 x;  dx = g / (x ln 2) */
EW_UNARY_FORWARD(log2, log2(x))
EW_UNARY_VJP(log2, g / (x * M_LN2))
/* z = log10 x;  dx = g / (x ln 10) */
EW_UNARY_FORWARD(log10, log10(x))
EW_UNARY_VJP(log10, g / (x * M_LN10))
/* z = sqrt x;  dx = g / (2 z) */
EW_UNARY_FORWARD(sqrt, sqrt(x))
EW_UNARY_VJP(sqrt, g / (2 * z))
/* z = |x|;  dx = g sign(x), and 0 at x = 0 (the subgradient PyTorch uses) */
EW_UNARY_FORWARD(abs, fabs(x))
EW_UNARY_VJP(abs, x > 0 ? g : (x < 0 ? -g : 0))
/* z = sign(x) in {-1, 0, 1} (NaN stays NaN);  dx = 0: piecewise constant.
 * The input is declared gradient-free, so this vjp is never reached. */
EW_UNARY_FORWARD(sign, x > 0 ? 1 : (x < 0 ? -1 : x))
static void sign_vjp(tape_node *n, tensor *const *gin) { (void)n; (void)gin; }
/* z = x^2;  dx = 2 g x */
EW_UNARY_FORWARD(square, x * x)
EW_UNARY_VJP(square, 2 * g * x)
/* z = 1 / x;  dx = -g z^2 */
EW_UNARY_FORWARD(reciprocal, 1 / x)
EW_UNARY_VJP(reciprocal, -g * z * z)
/* z = x^p (p = p0);  dx = g p x^(p-1), and 0 when p = 0 (x^0 is constant even at x = 0) */
EW_UNARY_FORWARD(pow_scalar, pow(x, p0))
EW_UNARY_VJP(pow_scalar, p0 == 0 ? 0 : g * p0 * pow(x, p0 - 1))
/* z = min(max(x, lo), hi) (lo = p0, hi = p1; NaN passes through);
 * dx = g on [lo, hi] (bounds included, as PyTorch), 0 outside */
EW_UNARY_FORWARD(clamp, x < p0 ? p0 : (x > p1 ? p1 : x))
EW_UNARY_VJP(clamp, (x >= p0 && x <= p1) ? g : 0)

/* ------------------------------------------------------------ binary */

/* z = x^y;  dx = g y x^(y-1) (0 when y = 0),
 *           dy = g z ln x (0 when x = 0 and y >= 0, where z is 0 or 1 for all nearby y >= 0) */
EW_BINARY_FORWARD(pow, pow(x, y))
EW_BINARY_VJP(pow, y == 0 ? 0 : g * y * pow(x, y - 1),
              (x == 0 && y >= 0) ? 0 : g * z * log(x))
/* z = max(x, y) (NaN in either gives NaN); the gradient goes to the larger
 * operand, and is split 0.5 / 0.5 on ties (as PyTorch) */
EW_BINARY_FORWARD(maximum, (x > y || x != x) ? x : y)
EW_BINARY_VJP(maximum, x > y ? g : (x == y ? 0.5 * g : 0), y > x ? g : (x == y ? 0.5 * g : 0))
/* z = min(x, y); the smaller operand gets the gradient, ties split 0.5 / 0.5 */
EW_BINARY_FORWARD(minimum, (x < y || x != x) ? x : y)
EW_BINARY_VJP(minimum, x < y ? g : (x == y ? 0.5 * g : 0), y < x ? g : (x == y ? 0.5 * g : 0))
/* z = floor(x / y);  piecewise constant: dx = dy = 0 (PyTorch's definition).
 * Both inputs are declared gradient-free, so this vjp is never reached. */
EW_BINARY_FORWARD(floor_divide, floor(x / y))
static void floor_divide_vjp(tape_node *n, tensor *const *gin) { (void)n; (void)gin; }

/* Python's modulo: the result has the sign of the divisor. fmod is exact,
 * unlike x - y floor(x / y). */
static inline double py_remainder(double x, double y) {
    double r = fmod(x, y);
    return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
}
/* z = x - y floor(x / y);  dx = g, dy = -g floor(x / y) */
EW_BINARY_FORWARD(remainder, py_remainder(x, y))
EW_BINARY_VJP(remainder, g, -g * floor(x / y))

/* ------------------------------------------------- where, masked_select */

/* Truth of element off of a condition or mask tensor of any dtype. */
static inline bool truth_at(const tensor *t, int64_t off) {
    switch (t->dtype) {
    case DTYPE_F32: return ((const float *)t->data)[off] != 0;
    case DTYPE_F64: return ((const double *)t->data)[off] != 0;
    default: return ((const int64_t *)t->data)[off] != 0;
    }
}

/* z = cond ? a : b, all three broadcast to z's shape;
 * da = unbroadcast(g [cond]), db = unbroadcast(g [!cond]), no gradient for cond. */
#define WHERE_KERNELS(T)                                                                 \
    static void where_fwd_##T(tape_node *n) {                                            \
        const tensor *c = n->in[0], *a = n->in[1], *b = n->in[2];                        \
        const T *A = a->data, *B = b->data;                                              \
        T *Z = n->out->data;                                                             \
        int nd = n->out->ndim;                                                           \
        const int64_t *sh = n->out->shape, cnt = n->out->size;                           \
        int64_t sc[TENSOR_MAX_DIMS], sa[TENSOR_MAX_DIMS], sb[TENSOR_MAX_DIMS];           \
        tg_broadcast_strides(c, nd, sh, sc);                                                \
        tg_broadcast_strides(a, nd, sh, sa);                                                \
        tg_broadcast_strides(b, nd, sh, sb);                                                \
        bool flat = c->size == cnt && a->size == cnt && b->size == cnt;                  \
        for (int64_t i = 0; i < cnt; i++) {                                              \
            int64_t oc = flat ? i : bcast_offset(i, nd, sh, sc);                         \
            Z[i] = truth_at(c, oc) ? A[flat ? i : bcast_offset(i, nd, sh, sa)]           \
                                   : B[flat ? i : bcast_offset(i, nd, sh, sb)];          \
        }                                                                                \
    }                                                                                    \
    /* which = 1 (a) takes g where cond holds, which = 2 (b) where it does not */        \
    static void where_bwd_##T(tape_node *n, tensor *dst, int which) {                    \
        const tensor *c = n->in[0];                                                      \
        int nd = n->out->ndim;                                                           \
        const int64_t *sh = n->out->shape, cnt = n->out->size;                           \
        tensor *full = dst->size == cnt ? dst : tg_tensor_tape_zeros(dst->dtype, nd, sh);   \
        if (!full) return;                                                               \
        const T *G = n->out->grad->data;                                                 \
        T *D = full->data;                                                               \
        int64_t sc[TENSOR_MAX_DIMS];                                                     \
        tg_broadcast_strides(c, nd, sh, sc);                                                \
        bool want = which == 1, flat = c->size == cnt;                                   \
        for (int64_t i = 0; i < cnt; i++)                                                \
            if (truth_at(c, flat ? i : bcast_offset(i, nd, sh, sc)) == want) D[i] += G[i]; \
        if (full != dst) tg_reduce_to_shape_acc(dst, full);                                 \
    }
WHERE_KERNELS(float)
WHERE_KERNELS(double)

static void where_forward(tape_node *n) {
    if (n->out->dtype == DTYPE_F32)
        where_fwd_float(n);
    else
        where_fwd_double(n);
}

static void where_vjp(tape_node *n, tensor *const *gin) {
    for (int w = 1; w <= 2; w++) {
        if (!gin[w]) continue;
        if (n->out->dtype == DTYPE_F32)
            where_bwd_float(n, gin[w], w);
        else
            where_bwd_double(n, gin[w], w);
    }
}

/* z = a[mask] (1-D, row-major order);  da[mask] += g, 0 elsewhere; no gradient for mask. */
#define MASKED_SELECT_KERNELS(T)                                                         \
    static void masked_select_fwd_##T(tape_node *n) {                                    \
        const tensor *a = n->in[0], *m = n->in[1];                                       \
        const T *A = a->data;                                                            \
        T *Z = n->out->data;                                                             \
        int64_t j = 0;                                                                   \
        for (int64_t i = 0; i < a->size; i++)                                            \
            if (truth_at(m, i)) Z[j++] = A[i];                                           \
    }                                                                                    \
    static void masked_select_bwd_##T(tape_node *n, tensor *dst) {                       \
        const tensor *m = n->in[1];                                                      \
        const T *G = n->out->grad->data;                                                 \
        T *D = dst->data;                                                                \
        int64_t j = 0;                                                                   \
        for (int64_t i = 0; i < dst->size; i++)                                          \
            if (truth_at(m, i)) D[i] += G[j++];                                          \
    }
MASKED_SELECT_KERNELS(float)
MASKED_SELECT_KERNELS(double)

static void masked_select_forward(tape_node *n) {
    if (n->out->dtype == DTYPE_F32)
        masked_select_fwd_float(n);
    else
        masked_select_fwd_double(n);
}

static void masked_select_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0]) return;
    if (n->out->dtype == DTYPE_F32)
        masked_select_bwd_float(n, gin[0]);
    else
        masked_select_bwd_double(n, gin[0]);
}

/* ----------------------------------------------------------- samples */

static const double at_zero[] = {0.0};

static int exp_sample(int k, rng *g, op_sample *s) {
    return tg_ew_unary_sample(k, g, s, -2.0, 2.0, NULL, 0, 0);
}
static int log_sample(int k, rng *g, op_sample *s) {
    /* the domain edge at 0 stays 0.2 away; the slope 1/x is at most 5 */
    return tg_ew_unary_sample(k, g, s, 0.2, 3.0, NULL, 0, 0);
}
static int kink_at_zero_sample(int k, rng *g, op_sample *s) {
    return tg_ew_unary_sample(k, g, s, -2.0, 2.0, at_zero, 1, 0.05);
}
static int reciprocal_sample(int k, rng *g, op_sample *s) {
    return tg_ew_unary_sample(k, g, s, -2.0, 2.0, at_zero, 1, 0.25);
}
/* Exponents: non-integer (x > 0), odd integer (any sign of x), negative non-integer (x > 0). */
static int pow_scalar_sample(int k, rng *g, op_sample *s) {
    static const double p[] = {2.5, 3.0, -1.5}, lo[] = {0.2, -2.0, 0.3};
    if (k >= 3) return 1;
    int r = tg_ew_unary_sample(k, g, s, lo[k], 2.0, at_zero, 1, 0.05);
    s->fp[0] = p[k];
    char sh[64];
    tg_sample_name(s, "x%s ^ %g", tensor_shape_str(s->inputs[0], sh, sizeof sh), p[k]);
    return r;
}
/* Two-sided, one at 0, and one-sided (lo = -inf); values 0.05 from each bound. */
static int clamp_sample(int k, rng *g, op_sample *s) {
    static const double lo[] = {-0.5, 0.0, -INFINITY}, hi[] = {0.8, 1.0, 0.3};
    if (k >= 3) return 1;
    double avoid[2] = {lo[k], hi[k]};
    int r = tg_ew_unary_sample(k, g, s, -2.0, 2.0, avoid, 2, 0.05);
    if (r == 0) /* one value strictly inside, so no case is all-zero gradient */
        ((double *)s->inputs[0]->data)[0] = 0.5 * (fmax(lo[k], -2.0) + hi[k]);
    s->fp[0] = lo[k];
    s->fp[1] = hi[k];
    char sh[64];
    tg_sample_name(s, "x%s in [%g, %g]", tensor_shape_str(s->inputs[0], sh, sizeof sh), lo[k], hi[k]);
    return r;
}

/* v -> lo + (hi - lo) (v - from_lo) / (from_hi - from_lo), in place. */
static void rescale(tensor *t, double from_lo, double from_hi, double lo, double hi) {
    double *p = t->data;
    for (int64_t i = 0; i < t->size; i++)
        p[i] = lo + (hi - lo) * (p[i] - from_lo) / (from_hi - from_lo);
}

/* Bases in [0.3, 2) (ln a defined), exponents in [-2, 2). */
static int pow_sample(int k, rng *g, op_sample *s) {
    int r = tg_ew_binary_sample(k, g, s, 0.3, 2.0, NULL, 0, 0);
    if (r == 0) rescale(s->inputs[1], 0.3, 2.0, -2.0, 2.0);
    return r;
}

/* Calls f(a, b) for every broadcast pair of a sample's two float64 inputs;
 * stops at and returns the first nonzero result. */
static int for_each_pair(const op_sample *s, int (*f)(double a, double b, void *ctx), void *ctx) {
    const tensor *a = s->inputs[0], *b = s->inputs[1];
    int nd;
    int64_t sh[TENSOR_MAX_DIMS], sa[TENSOR_MAX_DIMS], sb[TENSOR_MAX_DIMS];
    if (tg_broadcast_shapes("sample", a, b, &nd, sh)) return -1;
    tg_broadcast_strides(a, nd, sh, sa);
    tg_broadcast_strides(b, nd, sh, sb);
    const double *A = a->data, *B = b->data;
    for (int64_t i = 0, cnt = tg_shape_numel(nd, sh); i < cnt; i++) {
        int r = f(A[bcast_offset(i, nd, sh, sa)], B[bcast_offset(i, nd, sh, sb)], ctx);
        if (r) return r;
    }
    return 0;
}

/* Redraws a binary sample (at most 500 times) until accept() holds. */
static int binary_sample_until(int k, rng *g, op_sample *s, double lo, double hi,
                               const double *avoid, int n_avoid, double margin,
                               void (*shape_values)(op_sample *), bool (*accept)(const op_sample *)) {
    for (int tries = 0; tries < 500; tries++) {
        int r = tg_ew_binary_sample(k, g, s, lo, hi, avoid, n_avoid, margin);
        if (r) return r;
        if (shape_values) shape_values(s);
        if (accept(s)) return 0;
        tensor_free(s->inputs[0]);
        tensor_free(s->inputs[1]);
        s->inputs[0] = s->inputs[1] = NULL;
    }
    return -1;
}

/* Ties are avoided by construction: a's values sit on the grid 0.2 Z + 0.05
 * and b's on 0.2 Z + 0.15, so |a - b| >= 0.1 for every broadcast pair. */
static void snap_to_grids(op_sample *s) {
    for (int w = 0; w < 2; w++) {
        double *p = s->inputs[w]->data;
        for (int64_t i = 0; i < s->inputs[w]->size; i++)
            p[i] = 0.2 * floor(p[i] / 0.2) + (w ? 0.15 : 0.05);
    }
}
static int count_a_larger(double a, double b, void *ctx) {
    int *n = ctx;
    n[a > b]++;
    return 0;
}
/* Each operand is the larger in some pair and the smaller in another, so
 * neither gets an all-zero gradient from maximum or minimum. */
static bool both_operands_win(const op_sample *s) {
    int n[2] = {0, 0};
    return for_each_pair(s, count_a_larger, n) == 0 && n[0] > 0 && n[1] > 0;
}
static int max_min_sample(int k, rng *g, op_sample *s) {
    return binary_sample_until(k, g, s, -2.0, 2.0, NULL, 0, 0, snap_to_grids, both_operands_win);
}

/* Fails (returns 1) on a quotient within 0.02 of an integer; counts the
 * pairs with floor(a/b) != 0 in *ctx. */
static int quotient_off_integers(double a, double b, void *ctx) {
    double q = a / b;
    if (fabs(q - round(q)) < 0.02) return 1;
    *(int *)ctx += floor(q) != 0;
    return 0;
}
static bool quotients_usable(const op_sample *s) {
    int nonzero_floor = 0;
    return for_each_pair(s, quotient_off_integers, &nonzero_floor) == 0 && nonzero_floor > 0;
}
/* floor_divide and remainder jump where a/b is an integer: draws are redone
 * until every quotient is 0.02 from one (a perturbation of 1e-6 moves a/b by
 * under 2e-5 here), and some floor(a/b) is nonzero (else remainder's db is
 * all zero). |b| >= 0.4 keeps away from division by 0. */
static int floor_mod_sample(int k, rng *g, op_sample *s) {
    return binary_sample_until(k, g, s, -2.0, 2.0, at_zero, 1, 0.4, NULL, quotients_usable);
}

/* A condition or mask of the given shape: int64 0/1, or float64 with zeros
 * and arbitrary nonzero values (both count as truth values). */
static tensor *sample_truth(rng *g, int ndim, const int64_t *shape, bool as_float) {
    tensor *t = as_float ? tg_sample_tensor(g, ndim, shape, -2.0, 2.0) : tg_sample_labels(g, ndim, shape, 2);
    if (!t) return NULL;
    for (int64_t i = 0; as_float && i < t->size; i++)
        if (tensor_get(t, i) < 0) tensor_set(t, i, 0);
    /* both truth values occur, so every operand receives some gradient */
    tensor_set(t, 0, as_float ? 1.25 : 1);
    if (t->size > 1) tensor_set(t, 1, 0);
    return t;
}

static int where_sample(int k, rng *g, op_sample *s) {
    /* (cond, a, b) shapes: equal; a and b broadcast; float cond, scalar b; all three broadcast */
    static const struct {
        int nc, na, nb;
        int64_t c[3], a[3], b[3];
        bool float_cond;
    } cases[] = {
        {2, 2, 2, {3, 4}, {3, 4}, {3, 4}, false},
        {2, 1, 2, {3, 4}, {4}, {3, 1}, false},
        {1, 3, 0, {4}, {2, 3, 4}, {0}, true},
        {3, 2, 3, {2, 1, 4}, {3, 1}, {2, 3, 4}, false},
    };
    if (k >= 4) return 1;
    s->n_inputs = 3;
    s->inputs[0] = sample_truth(g, cases[k].nc, cases[k].c, cases[k].float_cond);
    s->inputs[1] = tg_sample_tensor(g, cases[k].na, cases[k].a, -2.0, 2.0);
    s->inputs[2] = tg_sample_tensor(g, cases[k].nb, cases[k].b, -2.0, 2.0);
    s->no_grad_mask = 1u;
    char sc[64], sa[64], sb[64];
    tg_sample_name(s, "%s %s ? %s : %s", cases[k].float_cond ? "float64" : "int64",
                tensor_shape_str(s->inputs[0], sc, sizeof sc),
                tensor_shape_str(s->inputs[1], sa, sizeof sa),
                tensor_shape_str(s->inputs[2], sb, sizeof sb));
    return s->inputs[0] && s->inputs[1] && s->inputs[2] ? 0 : -1;
}

static int masked_select_sample(int k, rng *g, op_sample *s) {
    static const int ndims[] = {2, 3, 1};
    static const int64_t shapes[][3] = {{3, 4}, {2, 3, 4}, {5}};
    if (k >= 3) return 1;
    s->n_inputs = 2;
    s->inputs[0] = tg_sample_tensor(g, ndims[k], shapes[k], -2.0, 2.0);
    s->inputs[1] = sample_truth(g, ndims[k], shapes[k], k == 1);
    s->no_grad_mask = 2u;
    char sa[64];
    tg_sample_name(s, "%s, %s mask", tensor_shape_str(s->inputs[0], sa, sizeof sa),
                k == 1 ? "float64" : "int64");
    return s->inputs[0] && s->inputs[1] ? 0 : -1;
}

/* ------------------------------------------------------------ builds */

#define BUILD1(op, call) \
    static tensor *op##_build(tensor *const *in, const op_sample *s) { (void)s; return call; }
BUILD1(exp, tensor_exp(in[0]))
BUILD1(log, tensor_log(in[0]))
BUILD1(log2, tensor_log2(in[0]))
BUILD1(log10, tensor_log10(in[0]))
BUILD1(sqrt, tensor_sqrt(in[0]))
BUILD1(abs, tensor_abs(in[0]))
BUILD1(sign, tensor_sign(in[0]))
BUILD1(square, tensor_square(in[0]))
BUILD1(reciprocal, tensor_reciprocal(in[0]))
BUILD1(pow_scalar, tensor_pow_scalar(in[0], s->fp[0]))
BUILD1(pow, tensor_pow(in[0], in[1]))
BUILD1(clamp, tensor_clamp(in[0], s->fp[0], s->fp[1]))
BUILD1(maximum, tensor_maximum(in[0], in[1]))
BUILD1(minimum, tensor_minimum(in[0], in[1]))
BUILD1(floor_divide, tensor_floor_divide(in[0], in[1]))
BUILD1(remainder, tensor_remainder(in[0], in[1]))
BUILD1(where, tensor_where(in[0], in[1], in[2]))
BUILD1(masked_select, tensor_masked_select(in[0], in[1]))

/* ------------------------------------------------------- graph vjps
 * The vjps built from ops (op_def.vjp_graph), the formulas above; a
 * broadcast operand's gradient is summed back with tg_sum_to_shape. Choices
 * made by comparisons (which side of a kink, which operand is larger) are
 * constants for autograd. */
#define X (n->in[0])
#define Y (n->in[1])
#define Z (n->out)
#define GRAPH_VJP(name) static int name##_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin)
#define GRAPH_UNARY(name, EXPR)                                  \
    GRAPH_VJP(name) {                                            \
        gin[0] = (EXPR);                                         \
        return tg_graph_vjp_done(n, want, gin);                  \
    }
static tensor *zero_like(const tensor *t) { return tg_tape_scalar(t->dtype, 0); }
GRAPH_UNARY(exp, tensor_mul(g, Z))
GRAPH_UNARY(log, tensor_div(g, X))
GRAPH_UNARY(log2, tensor_div(g, tensor_mul_scalar(X, M_LN2)))
GRAPH_UNARY(log10, tensor_div(g, tensor_mul_scalar(X, M_LN10)))
GRAPH_UNARY(sqrt, tensor_div(g, tensor_mul_scalar(Z, 2.0)))
GRAPH_UNARY(abs, tensor_mul(g, tensor_sign(X)))
GRAPH_UNARY(square, tensor_mul_scalar(tensor_mul(g, X), 2.0))
GRAPH_UNARY(reciprocal, tensor_neg(tensor_mul(g, tensor_square(Z))))
/* dx = g p x^(p-1), 0 when p = 0 */
GRAPH_UNARY(pow_scalar, n->fp[0] == 0 ? tensor_mul_scalar(g, 0.0)
                                      : tensor_mul(g, tensor_mul_scalar(tensor_pow_scalar(X, n->fp[0] - 1),
                                                                        n->fp[0])))
/* dx = g on [lo, hi], 0 outside */
GRAPH_UNARY(clamp, tensor_where(tensor_logical_and(tensor_ge(X, tg_tape_scalar(X->dtype, n->fp[0])),
                                                   tensor_le(X, tg_tape_scalar(X->dtype, n->fp[1]))),
                                g, zero_like(X)))
/* da = g b a^(b-1), db = g z ln a (the samples keep a > 0 and b != 0) */
GRAPH_VJP(pow) {
    if (want[0]) gin[0] = tg_sum_to_shape(tensor_mul(g, tensor_mul(Y, tensor_pow(X, tensor_add_scalar(Y, -1.0)))), X);
    if (want[1]) gin[1] = tg_sum_to_shape(tensor_mul(tensor_mul(g, Z), tensor_log(X)), Y);
    return tg_graph_vjp_done(n, want, gin);
}
/* the operand that wins takes g, ties split it: w = [a > b] + 0.5 [a = b] (constant) */
static int extreme_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin, bool larger) {
    tensor *one = tg_tape_scalar(X->dtype, 1), *half = tg_tape_scalar(X->dtype, 0.5), *zero = zero_like(X);
    tensor *tie = tensor_eq(X, Y);
    tensor *a_wins = larger ? tensor_gt(X, Y) : tensor_lt(X, Y);
    tensor *b_wins = larger ? tensor_gt(Y, X) : tensor_lt(Y, X);
    tensor *tie_w = tensor_where(tie, half, zero);
    if (want[0]) gin[0] = tg_sum_to_shape(tensor_mul(g, tensor_where(a_wins, one, tie_w)), X);
    if (want[1]) gin[1] = tg_sum_to_shape(tensor_mul(g, tensor_where(b_wins, one, tie_w)), Y);
    return tg_graph_vjp_done(n, want, gin);
}
GRAPH_VJP(maximum) { return extreme_graph(n, g, want, gin, true); }
GRAPH_VJP(minimum) { return extreme_graph(n, g, want, gin, false); }
/* da = g, db = -g floor(a / b) (floor_divide: a constant) */
GRAPH_VJP(remainder) {
    if (want[0]) gin[0] = tg_sum_to_shape(g, X);
    if (want[1]) gin[1] = tg_sum_to_shape(tensor_neg(tensor_mul(g, tensor_floor_divide(X, Y))), Y);
    return tg_graph_vjp_done(n, want, gin);
}
/* da = unbroadcast(g [cond]), db = unbroadcast(g [!cond]) */
GRAPH_VJP(where) {
    tensor *c = n->in[0], *zero = zero_like(n->in[1]);
    if (want[1]) gin[1] = tg_sum_to_shape(tensor_where(c, g, zero), n->in[1]);
    if (want[2]) gin[2] = tg_sum_to_shape(tensor_where(c, zero, g), n->in[2]);
    return tg_graph_vjp_done(n, want, gin);
}
/* masked_select: g goes back to the selected positions of a (flattened),
 * the adjoint of a gather of those positions */
GRAPH_VJP(masked_select) {
    const tensor *a = n->in[0], *m = n->in[1];
    int64_t count = n->out->size, N = a->size;
    tensor *idx = tg_tensor_tape_new(DTYPE_I64, 1, &count);
    if (!idx) return -1;
    for (int64_t i = 0, j = 0; i < N; i++)
        if (truth_at(m, i)) ((int64_t *)idx->data)[j++] = i;
    tensor flat = {.ndim = 1, .shape = {N}}; /* a's shape, flattened */
    tensor *t = tg_gather_adjoint(g, 0, idx, &flat);
    gin[0] = tensor_reshape(t, a->ndim, a->shape);
    return tg_graph_vjp_done(n, want, gin);
}
#undef X
#undef Y
#undef Z

/* ---------------------------------------------------------- registry */

#define UNARY(name, sample, sig, fwd, grad, notes) \
    {#name, 1, 0, name##_forward, name##_vjp, sample, name##_build, sig, fwd, grad, notes}
#define BINARY(name, sample, sig, fwd, grad, notes) \
    {#name, 2, 0, name##_forward, name##_vjp, sample, name##_build, sig, fwd, grad, notes}
/* The same, with a differentiable vjp (create_graph goes through it); every
 * such entry's vjp is an EW_*_VJP one, which writes fresh buffers. */
#define UNARY_G(name, sample, sig, fwd, grad, notes) \
    {#name, 1, 0, name##_forward, name##_vjp, sample, name##_build, sig, fwd, grad, notes, \
     .vjp_graph = name##_vjp_graph, .vjp_fresh = true}
#define BINARY_G(name, sample, sig, fwd, grad, notes) \
    {#name, 2, 0, name##_forward, name##_vjp, sample, name##_build, sig, fwd, grad, notes, \
     .vjp_graph = name##_vjp_graph, .vjp_fresh = true}

/* The math family: index of each op in tg_ops_math, its entry below. */
enum {
    EXP, LOG, LOG2, LOG10, SQRT, ABS, SIGN, SQUARE, RECIPROCAL, POW_SCALAR, POW, CLAMP,
    MAXIMUM, MINIMUM, FLOOR_DIVIDE, REMAINDER, WHERE, MASKED_SELECT,
    N_MATH_OPS
};
#define OP(i) (&tg_ops_math[i])

const op_def tg_ops_math[] = {
    [EXP] = UNARY_G(exp, exp_sample, "tensor_exp(a)", "y = e^a", "da = g * y", ""),
    [LOG] = UNARY_G(log, log_sample, "tensor_log(a)", "y = ln a", "da = g / a",
          "defined for a > 0 (a = 0 gives -inf, a < 0 NaN); samples keep a >= 0.2"),
    [LOG2] = UNARY_G(log2, log_sample, "tensor_log2(a)", "y = log2 a", "da = g / (a ln 2)",
          "defined for a > 0; samples keep a >= 0.2"),
    [LOG10] = UNARY_G(log10, log_sample, "tensor_log10(a)", "y = log10 a", "da = g / (a ln 10)",
          "defined for a > 0; samples keep a >= 0.2"),
    [SQRT] = UNARY_G(sqrt, log_sample, "tensor_sqrt(a)", "y = sqrt(a)", "da = g / (2 y)",
          "defined for a >= 0, gradient infinite at a = 0; samples keep a >= 0.2"),
    [ABS] = UNARY_G(abs, kink_at_zero_sample, "tensor_abs(a)", "y = |a|", "da = g * sign(a)",
          "kink at a = 0, where the gradient used is 0 (as PyTorch); samples keep |a| >= 0.05"),
    [SIGN] = {"sign", 1, 1u, sign_forward, sign_vjp, kink_at_zero_sample, sign_build, "tensor_sign(a)",
     "y = sign(a) in {-1, 0, 1}", "none: the output is a constant for autograd (da = 0)",
     "piecewise constant (jump at 0), gradient 0 where it exists: the input is declared "
     "gradient-free, so the output does not require grad and no node is recorded; wherever y "
     "meets other terms this gives PyTorch's zero gradient. NaN stays NaN"},
    [SQUARE] = UNARY_G(square, exp_sample, "tensor_square(a)", "y = a^2", "da = 2 g a", ""),
    [RECIPROCAL] = UNARY_G(reciprocal, reciprocal_sample, "tensor_reciprocal(a)", "y = 1 / a", "da = -g * y^2",
          "pole at a = 0; samples keep |a| >= 0.25"),
    [POW_SCALAR] = UNARY_G(pow_scalar, pow_scalar_sample, "tensor_pow_scalar(a, p)", "y = a^p",
          "da = g * p * a^(p-1); 0 when p = 0",
          "a < 0 with non-integer p gives NaN, and a = 0 with p < 1 an infinite gradient; "
          "samples use p = 2.5 and -1.5 with a >= 0.2, and p = 3 with |a| >= 0.05"),
    [POW] = BINARY_G(pow, pow_sample, "tensor_pow(a, b)", "y = a^b (broadcast)",
           "da = unbroadcast(g * b * a^(b-1)) (0 where b = 0), "
           "db = unbroadcast(g * y * ln a) (0 where a = 0 and b >= 0)",
           "db needs a > 0 (ln a); for a < 0 it is NaN, as in PyTorch. Samples: a in [0.3, 2), "
           "b in [-2, 2)"),
    [CLAMP] = UNARY_G(clamp, clamp_sample, "tensor_clamp(a, lo, hi)", "y = min(max(a, lo), hi)",
          "da = g where lo <= a <= hi, else 0",
          "kinks at lo and hi: the gradient is 1 strictly inside (lo, hi), 0 outside, and 1 "
          "exactly at a bound (PyTorch's choice); lo = -inf or hi = inf clamps one side; "
          "lo > hi or a NaN bound is an error. Samples keep 0.05 from each bound"),
    [MAXIMUM] = BINARY_G(maximum, max_min_sample, "tensor_maximum(a, b)", "y = max(a, b) (broadcast)",
           "da = unbroadcast(g [a > b] + 0.5 g [a = b]), db = unbroadcast(g [b > a] + 0.5 g [a = b])",
           "not differentiable on ties a = b, where the gradient is split 0.5 / 0.5 (as PyTorch); "
           "NaN in either operand gives NaN. Samples keep |a - b| >= 0.1"),
    [MINIMUM] = BINARY_G(minimum, max_min_sample, "tensor_minimum(a, b)", "y = min(a, b) (broadcast)",
           "da = unbroadcast(g [a < b] + 0.5 g [a = b]), db = unbroadcast(g [b < a] + 0.5 g [a = b])",
           "not differentiable on ties a = b, where the gradient is split 0.5 / 0.5 (as PyTorch); "
           "NaN in either operand gives NaN. Samples keep |a - b| >= 0.1"),
    [FLOOR_DIVIDE] = {"floor_divide", 2, 3u, floor_divide_forward, floor_divide_vjp, floor_mod_sample,
     floor_divide_build, "tensor_floor_divide(a, b)", "y = floor(a / b) (broadcast)",
     "none: the output is a constant for autograd (da = db = 0)",
     "piecewise constant with jumps where a/b is an integer, gradient 0 where it exists "
     "(PyTorch's definition): both inputs are declared gradient-free, so the output does not "
     "require grad and no node is recorded. b = 0 gives +-inf or NaN"},
    [REMAINDER] = BINARY_G(remainder, floor_mod_sample, "tensor_remainder(a, b)",
           "y = a - b * floor(a / b) (broadcast; the sign of b, like Python's %)",
           "da = unbroadcast(g), db = unbroadcast(-g * floor(a / b))",
           "jumps where a/b is an integer (the gradient there is that of the piece on the right "
           "of the floor); samples keep a/b 0.02 from integers and |b| >= 0.4"),
    [WHERE] = {"where", 3, 1u, where_forward, where_vjp, where_sample, where_build,
     "tensor_where(cond, a, b)", "y = cond ? a : b (cond nonzero = true; all three broadcast)",
     "da = unbroadcast(g [cond]), db = unbroadcast(g [!cond]); no gradient for cond",
     "cond may be any dtype, int64 included; NaN in cond counts as true. a and b share a "
     "float dtype, which y takes",
     .vjp_graph = where_vjp_graph},
    [MASKED_SELECT] = {"masked_select", 2, 2u, masked_select_forward, masked_select_vjp, masked_select_sample,
     masked_select_build, "tensor_masked_select(a, mask)",
     "y = the elements of a where mask is nonzero, 1-D in row-major order",
     "da = g scattered back to the selected positions, 0 elsewhere; no gradient for mask",
     "mask has a's shape (no broadcasting) and any dtype; the output length is fixed when the "
     "op is built",
     .vjp_graph = masked_select_vjp_graph},
};
const int tg_ops_math_count = N_MATH_OPS;
_Static_assert(sizeof tg_ops_math / sizeof tg_ops_math[0] == N_MATH_OPS,
               "tg_ops_math: one entry per op of its enum");

/* ---------------------------------------------------------- builders */


tensor *tensor_exp(tensor *a) { return tg_ew_unary_apply(OP(EXP), a, NULL, 0); }
tensor *tensor_log(tensor *a) { return tg_ew_unary_apply(OP(LOG), a, NULL, 0); }
tensor *tensor_log2(tensor *a) { return tg_ew_unary_apply(OP(LOG2), a, NULL, 0); }
tensor *tensor_log10(tensor *a) { return tg_ew_unary_apply(OP(LOG10), a, NULL, 0); }
tensor *tensor_sqrt(tensor *a) { return tg_ew_unary_apply(OP(SQRT), a, NULL, 0); }
tensor *tensor_abs(tensor *a) { return tg_ew_unary_apply(OP(ABS), a, NULL, 0); }
tensor *tensor_sign(tensor *a) { return tg_ew_unary_apply(OP(SIGN), a, NULL, 0); }
tensor *tensor_square(tensor *a) { return tg_ew_unary_apply(OP(SQUARE), a, NULL, 0); }
tensor *tensor_reciprocal(tensor *a) { return tg_ew_unary_apply(OP(RECIPROCAL), a, NULL, 0); }
tensor *tensor_pow_scalar(tensor *a, double p) { return tg_ew_unary_apply(OP(POW_SCALAR), a, &p, 1); }
tensor *tensor_pow(tensor *a, tensor *b) { return tg_ew_binary_apply(OP(POW), a, b, NULL, 0); }
tensor *tensor_maximum(tensor *a, tensor *b) { return tg_ew_binary_apply(OP(MAXIMUM), a, b, NULL, 0); }
tensor *tensor_minimum(tensor *a, tensor *b) { return tg_ew_binary_apply(OP(MINIMUM), a, b, NULL, 0); }
tensor *tensor_floor_divide(tensor *a, tensor *b) {
    return tg_ew_binary_apply(OP(FLOOR_DIVIDE), a, b, NULL, 0);
}
tensor *tensor_remainder(tensor *a, tensor *b) {
    return tg_ew_binary_apply(OP(REMAINDER), a, b, NULL, 0);
}

tensor *tensor_clamp(tensor *a, double lo, double hi) {
    if (isnan(lo) || isnan(hi) || lo > hi) {
        tg_error_set("clamp: bounds [%g, %g] are not an interval (need lo <= hi, no NaN)", lo, hi);
        return NULL;
    }
    double fp[2] = {lo, hi};
    return tg_ew_unary_apply(OP(CLAMP), a, fp, 2);
}

/* Checks for ops with one selector input (condition or mask) of any dtype:
 * every input non-NULL, the others float and of one dtype. Messages match
 * tg_op_check_inputs. */
static int check_with_selector(const op_def *op, tensor *const *in, int n, int sel) {
    for (int i = 0; i < n; i++) {
        if (!in[i]) {
            if (!tg_error_pending()) tg_error_set("%s: input %d is NULL", op->name, i);
            return -1;
        }
        if (tg_op_check_fresh(op, i, in[i])) return -1;
    }
    const tensor *first = NULL;
    for (int i = 0; i < n; i++) {
        if (i == sel) continue;
        if (in[i]->dtype == DTYPE_I64) {
            tg_error_set("%s: input %d is int64; this op needs float32 or float64", op->name, i);
            return -1;
        }
        if (first && in[i]->dtype != first->dtype) {
            tg_error_set("%s: dtype mismatch: %s vs %s", op->name, tg_dtype_name(first->dtype),
                      tg_dtype_name(in[i]->dtype));
            return -1;
        }
        first = in[i];
    }
    return 0;
}

tensor *tensor_where(tensor *cond, tensor *a, tensor *b) {
    const op_def *op = OP(WHERE);
    tensor *in[3] = {cond, a, b};
    if (check_with_selector(op, in, 3, 0)) return NULL;
    int nab, nd;
    int64_t sab[TENSOR_MAX_DIMS], shape[TENSOR_MAX_DIMS];
    if (tg_broadcast_shapes(op->name, a, b, &nab, sab)) return NULL;
    tensor ab = {.ndim = nab}; /* a shape-only stand-in for broadcast(a, b) */
    for (int i = 0; i < nab; i++) ab.shape[i] = sab[i];
    if (tg_broadcast_shapes(op->name, cond, &ab, &nd, shape)) return NULL;
    return tg_op_apply(op, in, 3, a->dtype, nd, shape);
}

tensor *tensor_masked_select(tensor *a, tensor *mask) {
    const op_def *op = OP(MASKED_SELECT);
    tensor *in[2] = {a, mask};
    if (check_with_selector(op, in, 2, 1)) return NULL;
    if (!tensor_same_shape(a, mask)) {
        char sa[96], sm[96];
        tg_error_set("masked_select: mask shape %s differs from input shape %s",
                  tensor_shape_str(mask, sm, sizeof sm), tensor_shape_str(a, sa, sizeof sa));
        return NULL;
    }
    int64_t count = 0;
    for (int64_t i = 0; i < mask->size; i++) count += truth_at(mask, i);
    return tg_op_apply(op, in, 2, a->dtype, 1, &count);
}
