/* shape.c - reshape, transpose and permute. Outputs are fresh contiguous
 * tensors (no views), so every tensor is row-major and every kernel can use
 * plain loops. */
#include "elementwise.h"

extern const op_def ops_shape[];
enum { RESHAPE, PERMUTE };

/* y = a with a new shape; dy -> da is the same copy. */
static void reshape_forward(tape_node *n) {
    memcpy(n->out->data, n->in[0]->data, (size_t)n->out->size * dtype_size(n->out->dtype));
}
static void reshape_vjp(tape_node *n, tensor *const *gin) {
    if (gin[0]) reduce_to_shape_acc(gin[0], n->out->grad); /* equal sizes: plain += */
}

tensor *tensor_reshape(tensor *a, int ndim, const int64_t *shape) {
    const op_def *op = &ops_shape[RESHAPE];
    tensor *in[1] = {a};
    if (op_check_inputs(op, in, 1, 0)) return NULL;
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS || (ndim > 0 && !shape)) {
        error_set("reshape: bad target rank %d", ndim);
        return NULL;
    }
    int64_t s[TENSOR_MAX_DIMS], known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (s[i] == -1 && infer < 0) {
            infer = i;
        } else if (s[i] < 0) {
            error_set("reshape: bad size %lld in dimension %d", (long long)s[i], i);
            return NULL;
        } else {
            known *= s[i];
        }
    }
    if (infer >= 0) s[infer] = known ? a->size / known : 0;
    char sa[96];
    if (shape_numel(ndim, s) != a->size || (infer >= 0 && known && a->size % known)) {
        tensor target = {.ndim = ndim};
        for (int i = 0; i < ndim; i++) target.shape[i] = shape[i];
        char st[96];
        error_set("reshape: cannot view %s (%lld elements) as %s", tensor_shape_str(a, sa, sizeof sa),
                  (long long)a->size, tensor_shape_str(&target, st, sizeof st));
        return NULL;
    }
    return op_apply(op, in, 1, a->dtype, ndim, s);
}

/* y's dim d is a's dim perm[d] (perm in ip[0..ndim)). Output element i reads
 * a at offset(i) = sum_d idx_d(i) * stride_a[perm[d]]; backward scatters the
 * same map in reverse: da[offset(i)] += g[i]. */
static void permute_strides(const tensor *a, const int64_t *perm, int64_t *ostride) {
    int64_t astride[TENSOR_MAX_DIMS], s = 1;
    for (int d = a->ndim - 1; d >= 0; d--) astride[d] = s, s *= a->shape[d];
    for (int d = 0; d < a->ndim; d++) ostride[d] = astride[perm[d]];
}

#define PERMUTE_LOOPS(T)                                                              \
    static void permute_fwd_##T(const tensor *a, tensor *y, const int64_t *perm) {    \
        int64_t st[TENSOR_MAX_DIMS];                                                  \
        permute_strides(a, perm, st);                                                 \
        const T *A = a->data;                                                         \
        T *Y = y->data;                                                               \
        for (int64_t i = 0; i < y->size; i++) Y[i] = A[bcast_offset(i, y->ndim, y->shape, st)]; \
    }                                                                                 \
    static void permute_bwd_##T(const tensor *a, const tensor *g, tensor *da,         \
                                const int64_t *perm) {                                \
        int64_t st[TENSOR_MAX_DIMS];                                                  \
        permute_strides(a, perm, st);                                                 \
        const T *G = g->data;                                                         \
        T *D = da->data;                                                              \
        for (int64_t i = 0; i < g->size; i++) D[bcast_offset(i, g->ndim, g->shape, st)] += G[i]; \
    }
PERMUTE_LOOPS(float)
PERMUTE_LOOPS(double)

static void permute_forward(tape_node *n) {
    if (n->out->dtype == DTYPE_F32)
        permute_fwd_float(n->in[0], n->out, n->ip);
    else
        permute_fwd_double(n->in[0], n->out, n->ip);
}
static void permute_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0]) return;
    if (n->out->dtype == DTYPE_F32)
        permute_bwd_float(n->in[0], n->out->grad, gin[0], n->ip);
    else
        permute_bwd_double(n->in[0], n->out->grad, gin[0], n->ip);
}

tensor *tensor_permute(tensor *a, const int *perm) {
    const op_def *op = &ops_shape[PERMUTE];
    tensor *in[1] = {a};
    if (op_check_inputs(op, in, 1, 0)) return NULL;
    if (!perm && a->ndim > 0) {
        error_set("permute: perm is NULL");
        return NULL;
    }
    uint32_t seen = 0;
    int64_t shape[TENSOR_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) {
        int p = perm[d] < 0 ? perm[d] + a->ndim : perm[d];
        if (p < 0 || p >= a->ndim || (seen & (1u << p))) {
            char sa[96];
            error_set("permute: entry %d (%d) is not a permutation of the %d dims of %s", d, perm[d],
                      a->ndim, tensor_shape_str(a, sa, sizeof sa));
            return NULL;
        }
        seen |= 1u << p;
        shape[d] = a->shape[p];
    }
    tape_node *n = node_begin(op, in, 1, a->dtype, a->ndim, shape);
    if (!n) return NULL;
    for (int d = 0; d < a->ndim; d++) n->ip[d] = perm[d] < 0 ? perm[d] + a->ndim : perm[d];
    return node_finish(n);
}

tensor *tensor_transpose(tensor *a, int d0, int d1) {
    if (!a) {
        if (!error_pending()) error_set("transpose: input 0 is NULL");
        return NULL;
    }
    int x = axis_normalize("transpose", d0, a->ndim), y = axis_normalize("transpose", d1, a->ndim);
    if (x < 0 || y < 0) return NULL;
    int perm[TENSOR_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) perm[d] = d;
    perm[x] = y;
    perm[y] = x;
    return tensor_permute(a, perm);
}

static int shape_sample(int k, rng *g, op_sample *s) {
    static const int64_t shape[3] = {2, 3, 4};
    if (k >= 2) return 1;
    s->n_inputs = 1;
    s->inputs[0] = sample_tensor(g, 3, shape, -2.0, 2.0);
    sample_name(s, k == 0 ? "[2,3,4] -> [4,-1] / perm (2,0,1)" : "[2,3,4] -> [24] / perm (1,0,2)");
    s->ip[0] = k;
    return s->inputs[0] ? 0 : -1;
}
static tensor *reshape_build(tensor *const *in, const op_sample *s) {
    const int64_t a[2] = {4, -1}, b[1] = {24};
    return s->ip[0] == 0 ? tensor_reshape(in[0], 2, a) : tensor_reshape(in[0], 1, b);
}
static tensor *permute_build(tensor *const *in, const op_sample *s) {
    const int a[3] = {2, 0, 1}, b[3] = {1, 0, 2};
    return tensor_permute(in[0], s->ip[0] == 0 ? a : b);
}

const op_def ops_shape[] = {
    {"reshape", 1, 0, reshape_forward, reshape_vjp, shape_sample, reshape_build,
     "tensor_reshape(a, ndim, shape)", "y = a with a new shape (row-major order kept)",
     "da = reshape(g, shape of a)", "one dimension may be -1 (inferred)"},
    {"permute", 1, 0, permute_forward, permute_vjp, shape_sample, permute_build,
     "tensor_permute(a, perm) / tensor_transpose(a, d0, d1)", "y[i_0..i_n] = a[i_perm^-1...]: y's dim d is a's dim perm[d]",
     "da = permute(g, inverse(perm))", "transpose is permute with two dims swapped"},
};
const int ops_shape_count = sizeof ops_shape / sizeof ops_shape[0];
