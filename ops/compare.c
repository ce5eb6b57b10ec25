/* compare.c - masks: comparisons (eq, ne, lt, le, gt, ge), logical and/or/not
 * on masks, and masked_fill, which applies one.
 *
 * A mask is an int64 tensor of 0 and 1. int64 is the library's integer dtype,
 * which never requires grad, so a mask cannot be differentiated by mistake;
 * every op that reads a mask (where, masked_select, masked_fill and the
 * logical ops) accepts any dtype and reads nonzero as true, so a float mask
 * works as well. Comparisons and logical ops are constants for autograd: all
 * their inputs are declared gradient-free, and their outputs never record a
 * node. Binary ops broadcast like NumPy. */
#include "elementwise.h"

/* Truth of element off of a mask of any dtype (NaN counts as true). */
static inline bool mask_truth(const tensor *t, int64_t off) {
    switch (t->dtype) {
    case DTYPE_F32: return ((const float *)t->data)[off] != 0;
    case DTYPE_F64: return ((const double *)t->data)[off] != 0;
    default: return ((const int64_t *)t->data)[off] != 0;
    }
}

/* ------------------------------------------------------------ comparisons
 * z = (x OP y) as 0/1 int64, with x and y of one dtype; IEEE semantics, so a
 * NaN compares unequal to everything, itself included (ne gives 1, the rest 0). */
#define CMP_LOOP_T(T, EXPR)                                                           \
    do {                                                                              \
        const T *A = n->in[0]->data, *B = n->in[1]->data;                             \
        int64_t *Z = n->out->data;                                                    \
        if (n->in[0]->size == cnt && n->in[1]->size == cnt) {                         \
            EW_FOR(i, cnt, {                                                          \
                const T x = A[i], y = B[i];                                           \
                Z[i] = (EXPR);                                                        \
            });                                                                       \
        } else {                                                                      \
            int nd = n->out->ndim;                                                    \
            const int64_t *sh = n->out->shape;                                        \
            int64_t sa[TENSOR_MAX_DIMS], sb[TENSOR_MAX_DIMS];                         \
            tg_broadcast_strides(n->in[0], nd, sh, sa);                                  \
            tg_broadcast_strides(n->in[1], nd, sh, sb);                                  \
            for (int64_t i = 0; i < cnt; i++) {                                       \
                const T x = A[bcast_offset(i, nd, sh, sa)];                           \
                const T y = B[bcast_offset(i, nd, sh, sb)];                           \
                Z[i] = (EXPR);                                                        \
            }                                                                         \
        }                                                                             \
    } while (0)

#define CMP_FORWARD(name, EXPR)                                                       \
    static void name##_forward(tape_node *n) {                                        \
        int64_t cnt = n->out->size;                                                   \
        switch (n->in[0]->dtype) {                                                    \
        case DTYPE_F32: CMP_LOOP_T(float, EXPR); break;                               \
        case DTYPE_F64: CMP_LOOP_T(double, EXPR); break;                              \
        default: CMP_LOOP_T(int64_t, EXPR); break;                                    \
        }                                                                             \
    }
CMP_FORWARD(eq, x == y)
CMP_FORWARD(ne, x != y)
CMP_FORWARD(lt, x < y)
CMP_FORWARD(le, x <= y)
CMP_FORWARD(gt, x > y)
CMP_FORWARD(ge, x >= y)

/* Never called: every input of these ops is declared gradient-free, so their
 * nodes are never recorded (the registry still wants a vjp to point at). */
static void no_vjp(tape_node *n, tensor *const *gin) { (void)n; (void)gin; }

/* ------------------------------------------------------------ logical ops
 * z = truth(x) AND / OR truth(y), or NOT truth(x), as 0/1 int64; the inputs
 * may have any dtypes, each its own. */
#define LOGICAL_FORWARD(name, EXPR)                                                   \
    static void name##_forward(tape_node *n) {                                        \
        const tensor *a = n->in[0], *b = n->in[1];                                    \
        int nd = n->out->ndim;                                                        \
        const int64_t *sh = n->out->shape, cnt = n->out->size;                        \
        int64_t sa[TENSOR_MAX_DIMS], sb[TENSOR_MAX_DIMS];                             \
        tg_broadcast_strides(a, nd, sh, sa);                                             \
        tg_broadcast_strides(b, nd, sh, sb);                                             \
        bool flat = a->size == cnt && b->size == cnt;                                 \
        int64_t *Z = n->out->data;                                                    \
        for (int64_t i = 0; i < cnt; i++) {                                           \
            bool x = mask_truth(a, flat ? i : bcast_offset(i, nd, sh, sa));           \
            bool y = mask_truth(b, flat ? i : bcast_offset(i, nd, sh, sb));           \
            Z[i] = (EXPR);                                                            \
        }                                                                             \
    }
LOGICAL_FORWARD(logical_and, x && y)
LOGICAL_FORWARD(logical_or, x || y)

static void logical_not_forward(tape_node *n) {
    int64_t *Z = n->out->data;
    for (int64_t i = 0; i < n->out->size; i++) Z[i] = !mask_truth(n->in[0], i);
}

/* ------------------------------------------------------------ masked_fill
 * y = mask ? value : x, mask broadcast to x's shape (value = fp[0]);
 * dx = g where mask is false, and exactly 0 where it is true: the filled
 * positions do not depend on x at all. No gradient for mask. */
#define MASKED_FILL_KERNELS(T)                                                        \
    static void masked_fill_fwd_##T(tape_node *n) {                                   \
        const tensor *m = n->in[1];                                                   \
        const T *X = n->in[0]->data;                                                  \
        T *Y = n->out->data;                                                          \
        const T v = (T)n->fp[0];                                                      \
        int nd = n->out->ndim;                                                        \
        const int64_t *sh = n->out->shape, cnt = n->out->size;                        \
        int64_t sm[TENSOR_MAX_DIMS];                                                  \
        tg_broadcast_strides(m, nd, sh, sm);                                             \
        bool flat = m->size == cnt;                                                   \
        for (int64_t i = 0; i < cnt; i++)                                             \
            Y[i] = mask_truth(m, flat ? i : bcast_offset(i, nd, sh, sm)) ? v : X[i];  \
    }                                                                                 \
    static void masked_fill_bwd_##T(tape_node *n, tensor *dx) {                       \
        const tensor *m = n->in[1];                                                   \
        const T *G = n->out->grad->data;                                              \
        T *D = dx->data;                                                              \
        int nd = n->out->ndim;                                                        \
        const int64_t *sh = n->out->shape, cnt = n->out->size;                        \
        int64_t sm[TENSOR_MAX_DIMS];                                                  \
        tg_broadcast_strides(m, nd, sh, sm);                                             \
        bool flat = m->size == cnt;                                                   \
        for (int64_t i = 0; i < cnt; i++)                                             \
            if (!mask_truth(m, flat ? i : bcast_offset(i, nd, sh, sm))) D[i] += G[i]; \
    }
MASKED_FILL_KERNELS(float)
MASKED_FILL_KERNELS(double)

static void masked_fill_forward(tape_node *n) {
    if (n->out->dtype == DTYPE_F32) masked_fill_fwd_float(n);
    else masked_fill_fwd_double(n);
}
static void masked_fill_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0]) return;
    if (n->out->dtype == DTYPE_F32) masked_fill_bwd_float(n, gin[0]);
    else masked_fill_bwd_double(n, gin[0]);
}

/* ---------------------------------------------------------------- samples
 * A mask has no gradient, so a comparison's or logical op's case checks what
 * it is for: choosing with it, y = where(op(a, b), c, d). a and b (inputs 0
 * and 1) are gradient-free; c and d (inputs 2 and 3) are differentiated, and
 * each receives g exactly where the mask sends it. A wrong mask shows in the
 * value tests; here every case is redrawn until both truth values occur, so
 * neither c nor d has an all-zero gradient. */
enum { EQ, NE, LT, LE, GT, GE, LOGICAL_AND, LOGICAL_OR, LOGICAL_NOT, MASKED_FILL, N_COMPARE_OPS };

/* The reference truth of op on the values x and y. */
static bool ref_truth(int op, double x, double y) {
    switch (op) {
    case EQ: return x == y;
    case NE: return x != y;
    case LT: return x < y;
    case LE: return x <= y;
    case GT: return x > y;
    case GE: return x >= y;
    case LOGICAL_AND: return x != 0 && y != 0;
    case LOGICAL_OR: return x != 0 || y != 0;
    default: return x == 0; /* LOGICAL_NOT */
    }
}

/* Whether op gives both 0 and 1 over the broadcast pairs of a and b. */
static bool both_truths(int op, const tensor *a, const tensor *b) {
    int nd;
    int64_t sh[TENSOR_MAX_DIMS], sa[TENSOR_MAX_DIMS], sb[TENSOR_MAX_DIMS];
    if (tg_broadcast_shapes("sample", a, b, &nd, sh)) return false;
    tg_broadcast_strides(a, nd, sh, sa);
    tg_broadcast_strides(b, nd, sh, sb);
    bool seen[2] = {false, false};
    for (int64_t i = 0, cnt = tg_shape_numel(nd, sh); i < cnt; i++)
        seen[ref_truth(op, tensor_get(a, bcast_offset(i, nd, sh, sa)),
                       tensor_get(b, bcast_offset(i, nd, sh, sb)))] = true;
    return seen[0] && seen[1];
}

/* Values on the grid {-1, -0.5, 0, 0.5, 1}: ties are common (eq, le and ge
 * meet them), and float32 holds every grid value exactly. */
static tensor *grid_tensor(rng *g, int nd, const int64_t *shape) {
    tensor *t = tensor_new(DTYPE_F64, nd, shape);
    for (int64_t i = 0; t && i < t->size; i++) tensor_set(t, i, 0.5 * (double)rng_below(g, 5) - 1.0);
    return t;
}

/* Case k of a mask op: a, b (float64 grid values, or int64 in {0, 1, 2}),
 * then c and d for the where that consumes the mask. */
static int mask_sample(int op, int k, rng *g, op_sample *s) {
    static const struct {
        int na, nb, nc, nd;
        int64_t a[3], b[3], c[3], d[3];
        bool i64;
    } cases[] = {
        {2, 2, 2, 2, {3, 4}, {3, 4}, {3, 4}, {3, 4}, false},
        {1, 2, 2, 0, {3}, {2, 3}, {2, 3}, {0}, false},
        {3, 2, 3, 2, {2, 1, 4}, {3, 1}, {2, 3, 4}, {3, 4}, true},
        {2, 0, 1, 2, {2, 3}, {0}, {3}, {2, 3}, false},
    };
    if (k >= 4) return 1;
    s->n_inputs = 4;
    s->no_grad_mask = 3u;
    for (int tries = 0; tries < 200; tries++) {
        for (int i = 0; i < 4; i++) tensor_free(s->inputs[i]);
        if (cases[k].i64) {
            s->inputs[0] = tg_sample_labels(g, cases[k].na, cases[k].a, 3);
            s->inputs[1] = tg_sample_labels(g, cases[k].nb, cases[k].b, 3);
        } else {
            s->inputs[0] = grid_tensor(g, cases[k].na, cases[k].a);
            s->inputs[1] = grid_tensor(g, cases[k].nb, cases[k].b);
        }
        s->inputs[2] = tg_sample_tensor(g, cases[k].nc, cases[k].c, -2.0, 2.0);
        s->inputs[3] = tg_sample_tensor(g, cases[k].nd, cases[k].d, -2.0, 2.0);
        for (int i = 0; i < 4; i++)
            if (!s->inputs[i]) return -1;
        /* logical_not reads a alone: b stands in as a's own shape */
        if (both_truths(op, s->inputs[0], op == LOGICAL_NOT ? s->inputs[0] : s->inputs[1])) {
            char sa[64], sb[64], sc[64], sd[64];
            tg_sample_name(s, "%s %s, %s ? %s : %s", cases[k].i64 ? "int64" : "float64",
                        tensor_shape_str(s->inputs[0], sa, sizeof sa),
                        tensor_shape_str(s->inputs[1], sb, sizeof sb),
                        tensor_shape_str(s->inputs[2], sc, sizeof sc),
                        tensor_shape_str(s->inputs[3], sd, sizeof sd));
            return 0;
        }
    }
    return -1;
}

#define MASK_SAMPLE(name, OP) \
    static int name##_sample(int k, rng *g, op_sample *s) { return mask_sample(OP, k, g, s); }
MASK_SAMPLE(eq, EQ)
MASK_SAMPLE(ne, NE)
MASK_SAMPLE(lt, LT)
MASK_SAMPLE(le, LE)
MASK_SAMPLE(gt, GT)
MASK_SAMPLE(ge, GE)
MASK_SAMPLE(logical_and, LOGICAL_AND)
MASK_SAMPLE(logical_or, LOGICAL_OR)
MASK_SAMPLE(logical_not, LOGICAL_NOT)

#define MASK_BUILD(name, call)                                                        \
    static tensor *name##_build(tensor *const *in, const op_sample *s) {              \
        (void)s;                                                                      \
        return tensor_where(call, in[2], in[3]);                                      \
    }
MASK_BUILD(eq, tensor_eq(in[0], in[1]))
MASK_BUILD(ne, tensor_ne(in[0], in[1]))
MASK_BUILD(lt, tensor_lt(in[0], in[1]))
MASK_BUILD(le, tensor_le(in[0], in[1]))
MASK_BUILD(gt, tensor_gt(in[0], in[1]))
MASK_BUILD(ge, tensor_ge(in[0], in[1]))
MASK_BUILD(logical_and, tensor_logical_and(in[0], in[1]))
MASK_BUILD(logical_or, tensor_logical_or(in[0], in[1]))
/* in[1] only stands in for a's shape in the shared sample; a stale one is
 * refused like any input the case is given */
static tensor *logical_not_build(tensor *const *in, const op_sample *s) {
    (void)s;
    if (tg_tensor_check_fresh("logical_not", "input 1", in[1])) return NULL;
    return tensor_where(tensor_logical_not(in[0]), in[2], in[3]);
}

/* masked_fill: x, then the mask (int64 0/1, or float64 with nonzero = true),
 * equal to x's shape or broadcast to it; fp[0] the fill value. Both truth
 * values occur, so x keeps some gradient and loses some. */
static int masked_fill_sample(int k, rng *g, op_sample *s) {
    static const struct {
        int nx, nm;
        int64_t x[3], m[3];
        bool float_mask;
        double value;
    } cases[] = {
        {2, 2, {3, 4}, {3, 4}, false, -1.5},
        {3, 2, {2, 3, 3}, {3, 3}, false, 0.0},
        {3, 1, {2, 3, 4}, {4}, true, 2.5},
        {2, 2, {4, 3}, {4, 1}, false, -3.0},
    };
    if (k >= 4) return 1;
    s->n_inputs = 2;
    s->no_grad_mask = 2u;
    s->inputs[0] = tg_sample_tensor(g, cases[k].nx, cases[k].x, -2.0, 2.0);
    s->inputs[1] = cases[k].float_mask ? tg_sample_tensor(g, cases[k].nm, cases[k].m, -2.0, 2.0)
                                       : tg_sample_labels(g, cases[k].nm, cases[k].m, 2);
    if (!s->inputs[0] || !s->inputs[1]) return -1;
    tensor *m = s->inputs[1];
    for (int64_t i = 0; cases[k].float_mask && i < m->size; i++)
        if (tensor_get(m, i) < 0) tensor_set(m, i, 0);
    tensor_set(m, 0, cases[k].float_mask ? 0.75 : 1);
    tensor_set(m, 1, 0);
    s->fp[0] = cases[k].value;
    char sx[64], sm[64];
    tg_sample_name(s, "%s, %s %s mask, value %g", tensor_shape_str(s->inputs[0], sx, sizeof sx),
                cases[k].float_mask ? "float64" : "int64", tensor_shape_str(m, sm, sizeof sm),
                cases[k].value);
    return 0;
}
static tensor *masked_fill_build(tensor *const *in, const op_sample *s) {
    return tensor_masked_fill(in[0], in[1], s->fp[0]);
}

/* ---------------------------------------------------------- registry */

#define CMP(name, sym)                                                                \
    {#name, 2, 3u, name##_forward, no_vjp, name##_sample, name##_build,               \
     "tensor_" #name "(a, b)", "y = (a " sym " b) as int64 0/1 (broadcast)",           \
     "none: a mask is a constant for autograd",                                       \
     "a and b share one dtype (float32, float64 or int64); NaN is unequal to everything. "  \
     "The checker's case is where(" #name "(a, b), c, d) (a, b on a grid with ties), "  \
     "differentiated in c and d"}

const op_def tg_ops_compare[] = {
    [EQ] = CMP(eq, "=="),
    [NE] = CMP(ne, "!="),
    [LT] = CMP(lt, "<"),
    [LE] = CMP(le, "<="),
    [GT] = CMP(gt, ">"),
    [GE] = CMP(ge, ">="),
    [LOGICAL_AND] = {"logical_and", 2, 3u, logical_and_forward, no_vjp, logical_and_sample, logical_and_build,
     "tensor_logical_and(a, b)", "y = (a != 0 and b != 0) as int64 0/1 (broadcast)",
     "none: a mask is a constant for autograd",
     "a and b may have any dtypes, each its own. The checker's case is "
     "where(logical_and(a, b), c, d), differentiated in c and d"},
    [LOGICAL_OR] = {"logical_or", 2, 3u, logical_or_forward, no_vjp, logical_or_sample, logical_or_build,
     "tensor_logical_or(a, b)", "y = (a != 0 or b != 0) as int64 0/1 (broadcast)",
     "none: a mask is a constant for autograd",
     "a and b may have any dtypes, each its own. The checker's case is "
     "where(logical_or(a, b), c, d), differentiated in c and d"},
    [LOGICAL_NOT] = {"logical_not", 1, 1u, logical_not_forward, no_vjp, logical_not_sample, logical_not_build,
     "tensor_logical_not(a)", "y = (a == 0) as int64 0/1", "none: a mask is a constant for autograd",
     "a may have any dtype. The checker's case is where(logical_not(a), c, d), differentiated "
     "in c and d (b is drawn but unused)"},
    [MASKED_FILL] = {"masked_fill", 2, 2u, masked_fill_forward, masked_fill_vjp, masked_fill_sample,
     masked_fill_build, "tensor_masked_fill(x, mask, value)",
     "y = mask ? value : x (mask broadcast to x's shape)",
     "dx = g where mask is false, exactly 0 where it is true; no gradient for mask or value",
     "mask may have any dtype (nonzero = true) and must broadcast to x's shape; value may be "
     "-inf (attention masks before a softmax)"},
};
const int tg_ops_compare_count = N_COMPARE_OPS;
_Static_assert(sizeof tg_ops_compare / sizeof tg_ops_compare[0] == N_COMPARE_OPS,
               "tg_ops_compare: one entry per op of its enum");

/* ---------------------------------------------------------- builders */

#define OP(i) (&tg_ops_compare[i])

/* Every input non-NULL (any dtype). */
static int check_present(const op_def *op, tensor *const *in, int n) {
    for (int i = 0; i < n; i++) {
        if (!in[i]) {
            if (!tg_error_pending()) tg_error_set("%s: input %d is NULL", op->name, i);
            return -1;
        }
        if (tg_op_check_fresh(op, i, in[i])) return -1;
    }
    return 0;
}

/* a and b: non-NULL, one dtype (any of the three); the output has the
 * broadcast shape. */
static tensor *compare_apply(const op_def *op, tensor *a, tensor *b) {
    tensor *in[2] = {a, b};
    if (check_present(op, in, 2)) return NULL;
    if (a->dtype != b->dtype) {
        tg_error_set("%s: dtype mismatch: %s vs %s", op->name, tg_dtype_name(a->dtype),
                  tg_dtype_name(b->dtype));
        return NULL;
    }
    int nd;
    int64_t shape[TENSOR_MAX_DIMS];
    if (tg_broadcast_shapes(op->name, a, b, &nd, shape)) return NULL;
    return tg_op_apply(op, in, 2, DTYPE_I64, nd, shape);
}

tensor *tensor_eq(tensor *a, tensor *b) { return compare_apply(OP(EQ), a, b); }
tensor *tensor_ne(tensor *a, tensor *b) { return compare_apply(OP(NE), a, b); }
tensor *tensor_lt(tensor *a, tensor *b) { return compare_apply(OP(LT), a, b); }
tensor *tensor_le(tensor *a, tensor *b) { return compare_apply(OP(LE), a, b); }
tensor *tensor_gt(tensor *a, tensor *b) { return compare_apply(OP(GT), a, b); }
tensor *tensor_ge(tensor *a, tensor *b) { return compare_apply(OP(GE), a, b); }

static tensor *logical_apply(const op_def *op, tensor *a, tensor *b) {
    tensor *in[2] = {a, b};
    if (check_present(op, in, 2)) return NULL;
    int nd;
    int64_t shape[TENSOR_MAX_DIMS];
    if (tg_broadcast_shapes(op->name, a, b, &nd, shape)) return NULL;
    return tg_op_apply(op, in, 2, DTYPE_I64, nd, shape);
}

tensor *tensor_logical_and(tensor *a, tensor *b) { return logical_apply(OP(LOGICAL_AND), a, b); }
tensor *tensor_logical_or(tensor *a, tensor *b) { return logical_apply(OP(LOGICAL_OR), a, b); }

tensor *tensor_logical_not(tensor *a) {
    tensor *in[1] = {a};
    if (check_present(OP(LOGICAL_NOT), in, 1)) return NULL;
    return tg_op_apply(OP(LOGICAL_NOT), in, 1, DTYPE_I64, a->ndim, a->shape);
}

tensor *tensor_masked_fill(tensor *x, tensor *mask, double value) {
    const op_def *op = OP(MASKED_FILL);
    tensor *in[2] = {x, mask};
    if (check_present(op, in, 2)) return NULL;
    if (x->dtype == DTYPE_I64) {
        tg_error_set("masked_fill: input 0 is int64; this op needs float32 or float64");
        return NULL;
    }
    int nd;
    int64_t shape[TENSOR_MAX_DIMS];
    if (tg_broadcast_shapes(op->name, x, mask, &nd, shape)) return NULL;
    bool same = nd == x->ndim;
    for (int d = 0; same && d < nd; d++) same = shape[d] == x->shape[d];
    if (!same) {
        char sx[96], sm[96];
        tg_error_set("masked_fill: mask %s does not broadcast to x's shape %s",
                  tensor_shape_str(mask, sm, sizeof sm), tensor_shape_str(x, sx, sizeof sx));
        return NULL;
    }
    tape_node *n = tg_node_begin(op, in, 2, x->dtype, x->ndim, x->shape);
    if (!n) return NULL;
    n->fp[0] = value;
    return tg_node_finish(n);
}
