/* reduce.c - reductions over all elements or given axes, with keepdim.
 *
 * The reduced axes are kept in the node as a bit mask (ip[0]); ip[1] is
 * keepdim. Input element i maps to output element bcast_offset(i) of the
 * keepdim shape broadcast back to the input shape, which serves forward and
 * backward alike. */
#include "elementwise.h"

/* The keepdim shape of a reduction of t over mask. */
static void kept_shape(const tensor *t, uint32_t mask, int64_t *shape) {
    for (int d = 0; d < t->ndim; d++) shape[d] = (mask >> d) & 1 ? 1 : t->shape[d];
}

/* Validates axes and computes the output shape; returns the mask or -1. */
static int64_t reduce_axes(const char *op, const tensor *t, const int *axes, int naxes,
                           bool keepdim, int *ndim, int64_t *shape) {
    uint32_t mask = 0;
    if (naxes < 0 || (naxes > 0 && !axes)) {
        error_set("%s: bad axes list (naxes %d)", op, naxes);
        return -1;
    }
    if (naxes == 0) mask = t->ndim ? (1u << t->ndim) - 1 : 0;
    for (int i = 0; i < naxes; i++) {
        int a = axis_normalize(op, axes[i], t->ndim);
        if (a < 0) return -1;
        if (mask & (1u << a)) {
            error_set("%s: axis %d given twice", op, axes[i]);
            return -1;
        }
        mask |= 1u << a;
    }
    int nd = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (!((mask >> d) & 1))
            shape[nd++] = t->shape[d];
        else if (keepdim)
            shape[nd++] = 1;
    }
    *ndim = nd;
    return mask;
}

/* Number of input elements folded into each output element. */
static int64_t reduce_count(const tensor *t, uint32_t mask) {
    int64_t c = 1;
    for (int d = 0; d < t->ndim; d++)
        if ((mask >> d) & 1) c *= t->shape[d];
    return c;
}

/* out = scale * sum over the masked axes (accumulated in double). */
#define SUM_FWD(T)                                                                  \
    static void sum_fwd_##T(const tensor *x, tensor *out, uint32_t mask, double scale) { \
        const T *X = x->data;                                                       \
        T *O = out->data;                                                           \
        int64_t per = reduce_count(x, mask), nout = x->size / (per ? per : 1);      \
        if (nout == 1) {                                                            \
            double acc = 0;                                                         \
            for (int64_t i = 0; i < x->size; i++) acc += X[i];                      \
            O[0] = (T)(acc * scale);                                                \
            return;                                                                 \
        }                                                                           \
        int64_t ks[TENSOR_MAX_DIMS], st[TENSOR_MAX_DIMS];                           \
        kept_shape(x, mask, ks);                                                    \
        tensor kept = *out;                                                         \
        kept.ndim = x->ndim;                                                        \
        for (int d = 0; d < x->ndim; d++) kept.shape[d] = ks[d];                    \
        broadcast_strides(&kept, x->ndim, x->shape, st);                            \
        /* forward never allocates (the checker replays it), so partial sums \
         * accumulate in the output itself */                                       \
        for (int64_t o = 0; o < out->size; o++) O[o] = 0;                           \
        for (int64_t i = 0; i < x->size; i++)                                       \
            O[bcast_offset(i, x->ndim, x->shape, st)] += X[i];                      \
        for (int64_t o = 0; o < out->size; o++) O[o] = (T)(O[o] * scale);           \
    }                                                                               \
    static void sum_bwd_##T(const tensor *x, const tensor *gout, tensor *gx,        \
                            uint32_t mask, double scale) {                          \
        const T *G = gout->data;                                                    \
        T *D = gx->data;                                                            \
        if (gout->size == 1) {                                                      \
            const T gs = (T)(G[0] * scale);                                         \
            for (int64_t i = 0; i < x->size; i++) D[i] += gs;                       \
            return;                                                                 \
        }                                                                           \
        int64_t ks[TENSOR_MAX_DIMS], st[TENSOR_MAX_DIMS];                           \
        kept_shape(x, mask, ks);                                                    \
        tensor kept = *gout;                                                        \
        kept.ndim = x->ndim;                                                        \
        for (int d = 0; d < x->ndim; d++) kept.shape[d] = ks[d];                    \
        broadcast_strides(&kept, x->ndim, x->shape, st);                            \
        for (int64_t i = 0; i < x->size; i++)                                       \
            D[i] += (T)(G[bcast_offset(i, x->ndim, x->shape, st)] * scale);         \
    }
SUM_FWD(float)
SUM_FWD(double)

static double reduce_scale(const tape_node *n) {
    return n->fp[0]; /* 1 for sum, 1/N for mean */
}

static void sum_forward(tape_node *n) {
    if (n->out->dtype == DTYPE_F32)
        sum_fwd_float(n->in[0], n->out, (uint32_t)n->ip[0], reduce_scale(n));
    else
        sum_fwd_double(n->in[0], n->out, (uint32_t)n->ip[0], reduce_scale(n));
}

static void sum_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0]) return;
    if (n->out->dtype == DTYPE_F32)
        sum_bwd_float(n->in[0], n->out->grad, gin[0], (uint32_t)n->ip[0], reduce_scale(n));
    else
        sum_bwd_double(n->in[0], n->out->grad, gin[0], (uint32_t)n->ip[0], reduce_scale(n));
}

extern const op_def ops_reduce[];
enum { SUM, MEAN };

static tensor *sum_or_mean(int which, tensor *a, const int *axes, int naxes, bool keepdim) {
    const op_def *op = &ops_reduce[which];
    tensor *in[1] = {a};
    if (op_check_inputs(op, in, 1, 0)) return NULL;
    int nd;
    int64_t shape[TENSOR_MAX_DIMS];
    int64_t mask = reduce_axes(op->name, a, axes, naxes, keepdim, &nd, shape);
    if (mask < 0) return NULL;
    tape_node *n = node_begin(op, in, 1, a->dtype, nd, shape);
    if (!n) return NULL;
    n->ip[0] = mask;
    n->ip[1] = keepdim;
    int64_t cnt = reduce_count(a, (uint32_t)mask);
    n->fp[0] = which == MEAN ? 1.0 / (double)(cnt ? cnt : 1) : 1.0;
    return node_finish(n);
}

tensor *tensor_sum(tensor *a, const int *axes, int naxes, bool keepdim) {
    return sum_or_mean(SUM, a, axes, naxes, keepdim);
}
tensor *tensor_mean(tensor *a, const int *axes, int naxes, bool keepdim) {
    return sum_or_mean(MEAN, a, axes, naxes, keepdim);
}
tensor *tensor_sum_all(tensor *a) { return sum_or_mean(SUM, a, NULL, 0, false); }
tensor *tensor_mean_all(tensor *a) { return sum_or_mean(MEAN, a, NULL, 0, false); }

/* Cases: all elements, one axis, two axes with keepdim, a negative axis. */
static int reduce_sample(int k, rng *g, op_sample *s) {
    static const int64_t shape[3] = {2, 3, 4};
    if (k >= 4) return 1;
    s->n_inputs = 1;
    s->inputs[0] = sample_tensor(g, 3, shape, -2.0, 2.0);
    static const char *names[] = {"[2,3,4] all", "[2,3,4] axis 1", "[2,3,4] axes 0,2 keepdim",
                                  "[2,3,4] axis -1 keepdim"};
    static const int64_t naxes[] = {0, 1, 2, 1}, ax0[] = {0, 1, 0, -1}, ax1[] = {0, 0, 2, 0},
                         keep[] = {0, 0, 1, 1};
    s->ip[0] = naxes[k];
    s->ip[1] = ax0[k];
    s->ip[2] = ax1[k];
    s->ip[3] = keep[k];
    sample_name(s, "%s", names[k]);
    return s->inputs[0] ? 0 : -1;
}
static tensor *sum_build(tensor *const *in, const op_sample *s) {
    int axes[2] = {(int)s->ip[1], (int)s->ip[2]};
    return tensor_sum(in[0], axes, (int)s->ip[0], s->ip[3]);
}
static tensor *mean_build(tensor *const *in, const op_sample *s) {
    int axes[2] = {(int)s->ip[1], (int)s->ip[2]};
    return tensor_mean(in[0], axes, (int)s->ip[0], s->ip[3]);
}

const op_def ops_reduce[] = {
    {"sum", 1, 0, sum_forward, sum_vjp, reduce_sample, sum_build,
     "tensor_sum(a, axes, naxes, keepdim)", "y = sum of a over the axes",
     "da = g broadcast back over the reduced axes", ""},
    {"mean", 1, 0, sum_forward, sum_vjp, reduce_sample, mean_build,
     "tensor_mean(a, axes, naxes, keepdim)", "y = (1/N) sum of a over the axes, N = elements per output",
     "da = g / N broadcast back over the reduced axes", ""},
};
const int ops_reduce_count = sizeof ops_reduce / sizeof ops_reduce[0];
