/* shape.c - ops that move elements without arithmetic: reshape, flatten,
 * permute (transpose), concat, stack, narrow, slice, index_select, gather,
 * pad and expand. Outputs are fresh contiguous tensors (no views), so every
 * tensor is row-major and every kernel can use plain loops.
 *
 * Most of them read their input through a strided map: output element i is
 * a[base + sum_d idx_d(i) * st[d]] (narrow and slice shift base and scale one
 * stride, expand puts 0 on broadcast dims, permute reorders the strides).
 * Their backward writes the same map in reverse with +=, which also sums the
 * gradient of a broadcast element over its copies. */
#include "elementwise.h"

extern const op_def tg_ops_shape[];
enum { RESHAPE, PERMUTE, FLATTEN, CONCAT, STACK, NARROW, SLICE, INDEX_SELECT, GATHER, PAD, EXPAND, N_SHAPE_OPS };

/* Visits the elements of dense tensor t row by row (last dim innermost):
 * BODY sees r*L + j (dense index) and off + j*ls (strided offset). */
#define STRIDED_ROWS(t, base, st, BODY)                                               \
    do {                                                                              \
        int nd_ = (t)->ndim;                                                          \
        int64_t L = nd_ ? (t)->shape[nd_ - 1] : 1, ls = nd_ ? (st)[nd_ - 1] : 0;      \
        int64_t rows = L ? (t)->size / L : 0;                                         \
        for (int64_t r = 0; r < rows; r++) {                                          \
            int64_t off = (base) + (nd_ > 1 ? bcast_offset(r, nd_ - 1, (t)->shape, (st)) : 0); \
            for (int64_t j = 0; j < L; j++) BODY;                                     \
        }                                                                             \
    } while (0)

/* sread: dense (shape of t) =/+= strided source;
 * swrite: strided destination =/+= dense (shape of t). */
#define STRIDED_FNS(T)                                                                \
    static void sread_##T(const void *src, int64_t base, const int64_t *st, const tensor *t, \
                          void *dst, bool add) {                                      \
        const T *S = src;                                                             \
        T *D = dst;                                                                   \
        if (add) STRIDED_ROWS(t, base, st, D[r * L + j] += S[off + j * ls]);          \
        else STRIDED_ROWS(t, base, st, D[r * L + j] = S[off + j * ls]);               \
    }                                                                                 \
    static void swrite_##T(void *dst, int64_t base, const int64_t *st, const tensor *t, \
                           const void *src, bool add) {                               \
        const T *S = src;                                                             \
        T *D = dst;                                                                   \
        if (add) STRIDED_ROWS(t, base, st, D[off + j * ls] += S[r * L + j]);          \
        else STRIDED_ROWS(t, base, st, D[off + j * ls] = S[r * L + j]);               \
    }
STRIDED_FNS(float)
STRIDED_FNS(double)
STRIDED_FNS(int64_t) /* narrow and slice of indices (forward only: no gradient) */

static void sread(dtype dt, const void *src, int64_t base, const int64_t *st, const tensor *t,
                  void *dst, bool add) {
    if (dt == DTYPE_F32) sread_float(src, base, st, t, dst, add);
    else if (dt == DTYPE_F64) sread_double(src, base, st, t, dst, add);
    else sread_int64_t(src, base, st, t, dst, add);
}
static void swrite(dtype dt, void *dst, int64_t base, const int64_t *st, const tensor *t,
                   const void *src, bool add) {
    if (dt == DTYPE_F32) swrite_float(dst, base, st, t, src, add);
    else if (dt == DTYPE_F64) swrite_double(dst, base, st, t, src, add);
    else swrite_int64_t(dst, base, st, t, src, add);
}

static void row_major_strides(int ndim, const int64_t *shape, int64_t *st) {
    int64_t s = 1;
    for (int d = ndim - 1; d >= 0; d--) st[d] = s, s *= shape[d];
}

/* Errors for ops that need a dimension to work along. */
static int axis_of(const char *op, int axis, const tensor *a) {
    if (a->ndim == 0) {
        tg_error_set("%s: needs at least 1 dimension, got a scalar", op);
        return -1;
    }
    return tg_axis_normalize(op, axis, a->ndim);
}

/* ------------------------------------------------------ reshape, flatten
 * y = a with a new shape; da = g with a's shape (the same copy). */
static void reshape_forward(tape_node *n) {
    memcpy(n->out->data, n->in[0]->data, (size_t)n->out->size * tg_dtype_size(n->out->dtype));
}
static void reshape_vjp(tape_node *n, tensor *const *gin) {
    if (gin[0]) tg_reduce_to_shape_grad(gin[0], n->out->grad); /* equal sizes: += (= if fresh) */
}

/* int64 tensors (indices, labels) may be reshaped too; they never need grad. */
tensor *tensor_reshape(tensor *a, int ndim, const int64_t *shape) {
    const op_def *op = &tg_ops_shape[RESHAPE];
    tensor *in[1] = {a};
    if (tg_op_check_inputs(op, in, 1, 1)) return NULL;
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS || (ndim > 0 && !shape)) {
        tg_error_set("reshape: bad target rank %d", ndim);
        return NULL;
    }
    int64_t s[TENSOR_MAX_DIMS], known = 1;
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (s[i] == -1 && infer < 0) {
            infer = i;
        } else if (s[i] < 0) {
            tg_error_set("reshape: bad size %lld in dimension %d", (long long)s[i], i);
            return NULL;
        } else if (i64_mul_overflows(known, s[i], &known)) {
            known = -1; /* overflows int64: matches no tensor's size */
            break;
        }
    }
    if (infer >= 0 && known == 0) {
        /* 0 elements: any size fits the -1 ([0,-1] could be [0,0] or [0,400]),
         * so PyTorch refuses to guess, and so do we */
        tensor target = {.ndim = ndim};
        for (int i = 0; i < ndim; i++) target.shape[i] = shape[i];
        char st[96];
        tg_error_set("reshape: the -1 in %s is ambiguous: the other sizes multiply to 0, so any "
                  "size fits (give it, or use tensor_flatten)",
                  tensor_shape_str(&target, st, sizeof st));
        return NULL;
    }
    if (infer >= 0 && known > 0) s[infer] = a->size / known;
    char sa[96];
    if (known < 0 || tg_shape_numel(ndim, s) != a->size || (infer >= 0 && known && a->size % known)) {
        tensor target = {.ndim = ndim};
        for (int i = 0; i < ndim; i++) target.shape[i] = shape[i];
        char st[96];
        tg_error_set("reshape: cannot view %s (%lld elements) as %s", tensor_shape_str(a, sa, sizeof sa),
                  (long long)a->size, tensor_shape_str(&target, st, sizeof st));
        return NULL;
    }
    return tg_op_apply(op, in, 1, a->dtype, ndim, s);
}

/* Dims start_dim..end_dim (inclusive) merged into one; a scalar becomes [1]. */
tensor *tensor_flatten(tensor *a, int start_dim, int end_dim) {
    const op_def *op = &tg_ops_shape[FLATTEN];
    tensor *in[1] = {a};
    if (tg_op_check_inputs(op, in, 1, 1)) return NULL;
    int nd_dims = a->ndim ? a->ndim : 1; /* a scalar flattens like [1] */
    int s = tg_axis_normalize("flatten", start_dim, nd_dims);
    int e = s < 0 ? -1 : tg_axis_normalize("flatten", end_dim, nd_dims);
    if (e < 0) return NULL;
    if (s > e) {
        tg_error_set("flatten: start_dim %d comes after end_dim %d", start_dim, end_dim);
        return NULL;
    }
    int64_t shape[TENSOR_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < s; d++) shape[nd++] = a->shape[d];
    shape[nd] = 1;
    for (int d = s; d <= e && d < a->ndim; d++) shape[nd] *= a->shape[d];
    nd++;
    for (int d = e + 1; d < a->ndim; d++) shape[nd++] = a->shape[d];
    return tg_op_apply(op, in, 1, a->dtype, nd, shape);
}

/* -------------------------------------------------------------- permute
 * y's dim d is a's dim perm[d] (perm in ip[0..ndim)): y[i] = a[sum_d
 * idx_d(i) * stride_a[perm[d]]], and da scatters the same map back. */
static void permute_strides(const tensor *a, const int64_t *perm, int64_t *ostride) {
    int64_t astride[TENSOR_MAX_DIMS];
    row_major_strides(a->ndim, a->shape, astride);
    for (int d = 0; d < a->ndim; d++) ostride[d] = astride[perm[d]];
}

static void permute_forward(tape_node *n) {
    int64_t st[TENSOR_MAX_DIMS];
    permute_strides(n->in[0], n->ip, st);
    sread(n->out->dtype, n->in[0]->data, 0, st, n->out, n->out->data, false);
}
static void permute_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0]) return;
    int64_t st[TENSOR_MAX_DIMS];
    permute_strides(n->in[0], n->ip, st);
    /* a permutation reaches every element once: a fresh buffer is written */
    swrite(n->out->dtype, gin[0]->data, 0, st, n->out, n->out->grad->data,
           !tg_grad_take_fresh(gin[0]));
}

tensor *tensor_permute(tensor *a, const int *perm) {
    const op_def *op = &tg_ops_shape[PERMUTE];
    tensor *in[1] = {a};
    if (tg_op_check_inputs(op, in, 1, 0)) return NULL;
    if (!perm && a->ndim > 0) {
        tg_error_set("permute: perm is NULL");
        return NULL;
    }
    uint32_t seen = 0;
    int64_t shape[TENSOR_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) {
        int p = perm[d] < 0 ? perm[d] + a->ndim : perm[d];
        if (p < 0 || p >= a->ndim || (seen & (1u << p))) {
            char sa[96];
            tg_error_set("permute: entry %d (%d) is not a permutation of the %d dims of %s", d, perm[d],
                      a->ndim, tensor_shape_str(a, sa, sizeof sa));
            return NULL;
        }
        seen |= 1u << p;
        shape[d] = a->shape[p];
    }
    tape_node *n = tg_node_begin(op, in, 1, a->dtype, a->ndim, shape);
    if (!n) return NULL;
    for (int d = 0; d < a->ndim; d++) n->ip[d] = perm[d] < 0 ? perm[d] + a->ndim : perm[d];
    return tg_node_finish(n);
}

tensor *tensor_transpose(tensor *a, int d0, int d1) {
    if (!a) {
        if (!tg_error_pending()) tg_error_set("transpose: input 0 is NULL");
        return NULL;
    }
    int x = tg_axis_normalize("transpose", d0, a->ndim), y = tg_axis_normalize("transpose", d1, a->ndim);
    if (x < 0 || y < 0) return NULL;
    int perm[TENSOR_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) perm[d] = d;
    perm[x] = y;
    perm[y] = x;
    return tensor_permute(a, perm);
}

/* --------------------------------------------------------- concat, stack
 * Seen as [outer, rest]: outer = product of the dims before the axis (ip[0]).
 * Row o of y is row o of each input in turn: y[o] = (a0[o], a1[o], ...);
 * dak[o] += the matching piece of g[o] (= into a fresh buffer). stack is concat along a new axis of
 * size 1 on each input, so the same kernel serves both. */
#define CAT_LOOPS(T)                                                                  \
    static void cat_bwd_##T(tape_node *n, tensor *const *gin, int64_t outer) {        \
        int64_t row = n->out->size / outer, off = 0;                                  \
        const T *G = n->out->grad->data;                                              \
        for (int k = 0; k < n->n_in; k++) {                                           \
            int64_t blk = n->in[k]->size / outer;                                     \
            if (gin[k] && tg_grad_take_fresh(gin[k])) { /* one input twice: adds */  \
                T *D = gin[k]->data;                                                  \
                for (int64_t o = 0; o < outer; o++)                                   \
                    memcpy(D + o * blk, G + o * row + off, (size_t)blk * sizeof(T));  \
            } else if (gin[k]) {                                                      \
                T *D = gin[k]->data;                                                  \
                for (int64_t o = 0; o < outer; o++)                                   \
                    for (int64_t i = 0; i < blk; i++) D[o * blk + i] += G[o * row + off + i]; \
            }                                                                         \
            off += blk;                                                               \
        }                                                                             \
    }
CAT_LOOPS(float)
CAT_LOOPS(double)

static void cat_forward(tape_node *n) {
    int64_t outer = n->ip[0], off = 0;
    if (outer == 0) return;
    size_t es = tg_dtype_size(n->out->dtype);
    int64_t row = n->out->size / outer;
    char *Y = n->out->data;
    for (int k = 0; k < n->n_in; k++) {
        int64_t blk = n->in[k]->size / outer;
        const char *A = n->in[k]->data;
        for (int64_t o = 0; o < outer; o++)
            memcpy(Y + (size_t)(o * row + off) * es, A + (size_t)(o * blk) * es, (size_t)blk * es);
        off += blk;
    }
}
static void cat_vjp(tape_node *n, tensor *const *gin) {
    int64_t outer = n->ip[0];
    if (outer == 0) return;
    if (n->out->dtype == DTYPE_F32) cat_bwd_float(n, gin, outer);
    else cat_bwd_double(n, gin, outer);
}

/* Shared checks: a list of n >= 1 non-NULL tensors of one dtype; int64
 * lists (indices) join too, and never need a gradient. */
static int cat_check(const op_def *op, tensor *const *ts, int n) {
    if (!ts && n > 0) {
        tg_error_set("%s: the tensor list is NULL (n = %d)", op->name, n);
        return -1;
    }
    if (n <= 0) {
        tg_error_set("%s: needs at least one tensor (n = %d)", op->name, n);
        return -1;
    }
    for (int k = 0; k < n; k++) {
        if (!ts[k]) {
            if (!tg_error_pending()) tg_error_set("%s: input %d is NULL", op->name, k);
            return -1;
        }
        if (tg_op_check_fresh(op, k, ts[k])) return -1;
    }
    for (int k = 1; k < n; k++) {
        if (ts[k]->dtype != ts[0]->dtype) {
            tg_error_set("%s: dtype mismatch: %s vs %s", op->name, tg_dtype_name(ts[0]->dtype),
                      tg_dtype_name(ts[k]->dtype));
            return -1;
        }
    }
    return 0;
}

static tensor *cat_apply(const op_def *op, tensor *const *ts, int n, int nd, const int64_t *shape,
                         int axis) {
    tape_node *node = tg_node_begin(op, ts, n, ts[0]->dtype, nd, shape);
    if (!node) return NULL;
    node->ip[0] = tg_shape_numel(axis, shape);
    return tg_node_finish(node);
}

tensor *tensor_concat(tensor *const *ts, int n, int axis) {
    const op_def *op = &tg_ops_shape[CONCAT];
    if (cat_check(op, ts, n)) return NULL;
    int ax = axis_of("concat", axis, ts[0]);
    if (ax < 0) return NULL;
    int64_t shape[TENSOR_MAX_DIMS];
    for (int d = 0; d < ts[0]->ndim; d++) shape[d] = ts[0]->shape[d];
    shape[ax] = 0;
    for (int k = 0; k < n; k++) {
        bool ok = ts[k]->ndim == ts[0]->ndim;
        for (int d = 0; ok && d < ts[0]->ndim; d++)
            if (d != ax && ts[k]->shape[d] != ts[0]->shape[d]) ok = false;
        if (!ok) {
            char s0[96], sk[96];
            tg_error_set("concat: input %d has shape %s but input 0 has %s; all dims but axis %d "
                      "must match",
                      k, tensor_shape_str(ts[k], sk, sizeof sk), tensor_shape_str(ts[0], s0, sizeof s0),
                      axis);
            return NULL;
        }
        shape[ax] += ts[k]->shape[ax];
    }
    return cat_apply(op, ts, n, ts[0]->ndim, shape, ax);
}

tensor *tensor_stack(tensor *const *ts, int n, int axis) {
    const op_def *op = &tg_ops_shape[STACK];
    if (cat_check(op, ts, n)) return NULL;
    int nd = ts[0]->ndim + 1;
    if (nd > TENSOR_MAX_DIMS) {
        tg_error_set("stack: inputs already have %d dims (at most %d)", ts[0]->ndim, TENSOR_MAX_DIMS);
        return NULL;
    }
    int ax = tg_axis_normalize("stack", axis, nd); /* the new axis may be the last */
    if (ax < 0) return NULL;
    for (int k = 1; k < n; k++) {
        if (!tensor_same_shape(ts[k], ts[0])) {
            char s0[96], sk[96];
            tg_error_set("stack: input %d has shape %s but input 0 has %s; all must match", k,
                      tensor_shape_str(ts[k], sk, sizeof sk), tensor_shape_str(ts[0], s0, sizeof s0));
            return NULL;
        }
    }
    int64_t shape[TENSOR_MAX_DIMS];
    for (int d = 0, s = 0; d < nd; d++) shape[d] = d == ax ? n : ts[0]->shape[s++];
    return cat_apply(op, ts, n, nd, shape, ax);
}

/* ----------------------------------------------- narrow, slice, expand
 * The strided map of the output is in the node: ip[0] = base offset into a,
 * ip[1 + d] = a-stride of output dim d. */
static void strided_forward(tape_node *n) {
    sread(n->out->dtype, n->in[0]->data, n->ip[0], n->ip + 1, n->out, n->out->data, false);
}
static void strided_vjp(tape_node *n, tensor *const *gin) {
    if (gin[0]) swrite(n->out->dtype, gin[0]->data, n->ip[0], n->ip + 1, n->out, n->out->grad->data, true);
}

/* Output: a with dim ax holding len elements start, start+step, ... */
static tensor *subrange(const op_def *op, tensor *a, int ax, int64_t start, int64_t len,
                        int64_t step) {
    int64_t shape[TENSOR_MAX_DIMS], st[TENSOR_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) shape[d] = a->shape[d];
    shape[ax] = len;
    row_major_strides(a->ndim, a->shape, st);
    tensor *in[1] = {a};
    tape_node *n = tg_node_begin(op, in, 1, a->dtype, a->ndim, shape);
    if (!n) return NULL;
    n->ip[0] = len ? start * st[ax] : 0;
    for (int d = 0; d < a->ndim; d++) n->ip[1 + d] = d == ax ? st[d] * step : st[d];
    return tg_node_finish(n);
}

/* y = a[.., start : start + length, ..] along axis; a negative start counts
 * from the end; the range must lie inside the dim. */
tensor *tensor_narrow(tensor *a, int axis, int64_t start, int64_t length) {
    const op_def *op = &tg_ops_shape[NARROW];
    tensor *in[1] = {a};
    if (tg_op_check_inputs(op, in, 1, 1)) return NULL;
    int ax = axis_of("narrow", axis, a);
    if (ax < 0) return NULL;
    int64_t size = a->shape[ax], s = start < 0 ? start + size : start;
    if (s < 0 || s > size || length < 0 || length > size - s) {
        tg_error_set("narrow: start %lld, length %lld out of range for size %lld (axis %d)",
                  (long long)start, (long long)length, (long long)size, axis);
        return NULL;
    }
    return subrange(op, a, ax, s, length, 1);
}

/* Python's a[start:stop:step] along axis: negative bounds count from the
 * end, then bounds are clamped to [0, size] (so INT64_MAX means "to the
 * end"); step must be positive. */
static int64_t py_bound(int64_t v, int64_t size) {
    if (v < 0) v = v < -size ? 0 : v + size;
    return v > size ? size : v;
}

tensor *tensor_slice(tensor *a, int axis, int64_t start, int64_t stop, int64_t step) {
    const op_def *op = &tg_ops_shape[SLICE];
    tensor *in[1] = {a};
    if (tg_op_check_inputs(op, in, 1, 1)) return NULL;
    int ax = axis_of("slice", axis, a);
    if (ax < 0) return NULL;
    if (step <= 0) {
        tg_error_set("slice: step %lld must be positive", (long long)step);
        return NULL;
    }
    int64_t size = a->shape[ax], b = py_bound(start, size), e = py_bound(stop, size);
    int64_t len = e > b ? 1 + (e - b - 1) / step : 0; /* no overflow for any step */
    return subrange(op, a, ax, b, len, step);
}

/* Broadcast a to shape (dims right-aligned; a dim of 1 repeats; -1 keeps
 * a's size). da = g summed over the repeated dims. */
static void expand_vjp(tape_node *n, tensor *const *gin) {
    if (gin[0]) tg_reduce_to_shape_grad(gin[0], n->out->grad);
}

tensor *tensor_expand(tensor *a, int ndim, const int64_t *shape) {
    const op_def *op = &tg_ops_shape[EXPAND];
    tensor *in[1] = {a};
    if (tg_op_check_inputs(op, in, 1, 0)) return NULL;
    char sa[96];
    if (ndim < a->ndim || ndim > TENSOR_MAX_DIMS || (ndim > 0 && !shape)) {
        tg_error_set("expand: cannot expand %s to %d dims", tensor_shape_str(a, sa, sizeof sa), ndim);
        return NULL;
    }
    int64_t out[TENSOR_MAX_DIMS], ast[TENSOR_MAX_DIMS];
    row_major_strides(a->ndim, a->shape, ast);
    int lead = ndim - a->ndim;
    for (int d = 0; d < ndim; d++) {
        int64_t have = d >= lead ? a->shape[d - lead] : 1;
        out[d] = shape[d] == -1 && d >= lead ? have : shape[d];
        if (out[d] < 0 || (have != 1 && have != out[d])) {
            tensor target = {.ndim = ndim};
            for (int i = 0; i < ndim; i++) target.shape[i] = shape[i];
            char st[96];
            tg_error_set("expand: cannot expand %s to %s (dimension %d: %lld to %lld)",
                      tensor_shape_str(a, sa, sizeof sa), tensor_shape_str(&target, st, sizeof st), d,
                      (long long)have, (long long)shape[d]);
            return NULL;
        }
    }
    tape_node *n = tg_node_begin(op, in, 1, a->dtype, ndim, out);
    if (!n) return NULL;
    n->ip[0] = 0;
    for (int d = 0; d < ndim; d++) {
        int64_t have = d >= lead ? a->shape[d - lead] : 1;
        n->ip[1 + d] = have == out[d] && d >= lead ? ast[d - lead] : 0;
    }
    return tg_node_finish(n);
}

/* ------------------------------------------------------------------ pad
 * y = value everywhere, then a copied into the interior at offset
 * (before_0, before_1, ...) (pads in ip[0..2 ndim)); da = g's interior. */
static int64_t pad_geom(const tape_node *n, int64_t *ost) {
    row_major_strides(n->out->ndim, n->out->shape, ost);
    int64_t base = 0;
    for (int d = 0; d < n->out->ndim; d++) base += n->ip[2 * d] * ost[d];
    return base;
}

#define PAD_FILL(T)                                                                   \
    static void pad_fill_##T(tensor *y, double v) {                                   \
        T *Y = y->data;                                                               \
        for (int64_t i = 0; i < y->size; i++) Y[i] = (T)v;                            \
    }
PAD_FILL(float)
PAD_FILL(double)

static void pad_forward(tape_node *n) {
    int64_t ost[TENSOR_MAX_DIMS], base = pad_geom(n, ost);
    if (n->out->dtype == DTYPE_F32) pad_fill_float(n->out, n->fp[0]);
    else pad_fill_double(n->out, n->fp[0]);
    swrite(n->out->dtype, n->out->data, base, ost, n->in[0], n->in[0]->data, false);
}
static void pad_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0]) return;
    int64_t ost[TENSOR_MAX_DIMS], base = pad_geom(n, ost);
    sread(n->out->dtype, n->out->grad->data, base, ost, n->in[0], gin[0]->data, true);
}

tensor *tensor_pad(tensor *a, const int64_t *pads, double value) {
    const op_def *op = &tg_ops_shape[PAD];
    tensor *in[1] = {a};
    if (tg_op_check_inputs(op, in, 1, 0)) return NULL;
    if (!pads && a->ndim > 0) {
        tg_error_set("pad: pads is NULL");
        return NULL;
    }
    int64_t shape[TENSOR_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) {
        const int64_t limit = (int64_t)1 << 40; /* keeps the sum below clear of overflow */
        if (pads[2 * d] < 0 || pads[2 * d + 1] < 0 || pads[2 * d] > limit || pads[2 * d + 1] > limit) {
            tg_error_set("pad: padding (%lld, %lld) for dimension %d must be in [0, 2^40]",
                      (long long)pads[2 * d], (long long)pads[2 * d + 1], d);
            return NULL;
        }
        shape[d] = a->shape[d] + pads[2 * d] + pads[2 * d + 1];
    }
    tape_node *n = tg_node_begin(op, in, 1, a->dtype, a->ndim, shape);
    if (!n) return NULL;
    for (int i = 0; i < 2 * a->ndim; i++) n->ip[i] = pads[i];
    n->fp[0] = value;
    return tg_node_finish(n);
}

/* --------------------------------------------------- index_select, gather
 * index_select, a seen as [outer, A, inner] around axis (ip[0]):
 *   y[o, j, i] = a[o, index[j], i]      da[o, index[j], i] += g[o, j, i]
 * gather, index of a's ndim, along axis:
 *   y[p] = a[p with p_axis replaced by index[p]]   da[that] += g[p]
 * Repeated indices accumulate their gradients. Indices are validated by the
 * builders, so the kernels trust them. */
static void around_axis(const tensor *a, int ax, int64_t *outer, int64_t *inner) {
    *outer = tg_shape_numel(ax, a->shape);
    *inner = tg_shape_numel(a->ndim - ax - 1, a->shape + ax + 1);
}

static void index_select_forward(tape_node *n) {
    const tensor *a = n->in[0];
    const int64_t *I = n->in[1]->data;
    int64_t outer, inner, A = a->shape[n->ip[0]], J = n->in[1]->size;
    around_axis(a, (int)n->ip[0], &outer, &inner);
    size_t es = tg_dtype_size(a->dtype), row = (size_t)inner * es;
    const char *X = a->data;
    char *Y = n->out->data;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t j = 0; j < J; j++)
            memcpy(Y + (size_t)(o * J + j) * row, X + (size_t)(o * A + I[j]) * row, row);
}

#define INDEX_BWD(T)                                                                  \
    static void index_select_bwd_##T(tape_node *n, tensor *da) {                      \
        const int64_t *I = n->in[1]->data;                                            \
        int64_t outer, inner, A = n->in[0]->shape[n->ip[0]], J = n->in[1]->size;      \
        around_axis(n->in[0], (int)n->ip[0], &outer, &inner);                         \
        const T *G = n->out->grad->data;                                              \
        T *D = da->data;                                                              \
        for (int64_t o = 0; o < outer; o++)                                           \
            for (int64_t j = 0; j < J; j++)                                           \
                for (int64_t i = 0; i < inner; i++)                                   \
                    D[(o * A + I[j]) * inner + i] += G[(o * J + j) * inner + i];      \
    }                                                                                 \
    /* st: a's strides with the axis zeroed, laid over index's shape */               \
    static void gather_fwd_##T(tape_node *n, const int64_t *st, int64_t sax) {        \
        const T *X = n->in[0]->data;                                                  \
        const int64_t *I = n->in[1]->data;                                            \
        T *Y = n->out->data;                                                          \
        STRIDED_ROWS(n->out, 0, st, Y[r * L + j] = X[off + j * ls + I[r * L + j] * sax]); \
    }                                                                                 \
    static void gather_bwd_##T(tape_node *n, tensor *da, const int64_t *st, int64_t sax) { \
        const T *G = n->out->grad->data;                                              \
        const int64_t *I = n->in[1]->data;                                            \
        T *D = da->data;                                                              \
        STRIDED_ROWS(n->out, 0, st, D[off + j * ls + I[r * L + j] * sax] += G[r * L + j]); \
    }
INDEX_BWD(float)
INDEX_BWD(double)

static void index_select_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0]) return;
    if (n->out->dtype == DTYPE_F32) index_select_bwd_float(n, gin[0]);
    else index_select_bwd_double(n, gin[0]);
}

static int64_t gather_strides(const tape_node *n, int64_t *st) {
    int ax = (int)n->ip[0];
    row_major_strides(n->in[0]->ndim, n->in[0]->shape, st);
    int64_t sax = st[ax];
    st[ax] = 0;
    return sax;
}
static void gather_forward(tape_node *n) {
    int64_t st[TENSOR_MAX_DIMS], sax = gather_strides(n, st);
    if (n->out->dtype == DTYPE_F32) gather_fwd_float(n, st, sax);
    else gather_fwd_double(n, st, sax);
}
static void gather_vjp(tape_node *n, tensor *const *gin) {
    if (!gin[0]) return;
    int64_t st[TENSOR_MAX_DIMS], sax = gather_strides(n, st);
    if (n->out->dtype == DTYPE_F32) gather_bwd_float(n, gin[0], st, sax);
    else gather_bwd_double(n, gin[0], st, sax);
}

/* Common checks: a float (or int64 for index_select, which copies rows),
 * index int64 of the right rank, axis valid, every index in [0, size).
 * Returns the normalised axis or -1. */
static int index_check(const op_def *op, tensor *a, int axis, tensor *index, int want_ndim) {
    tensor *in[2] = {a, index};
    if (a && index && index->dtype != DTYPE_I64) {
        tg_error_set("%s: index must be int64, got %s", op->name, tg_dtype_name(index->dtype));
        return -1;
    }
    if (tg_op_check_inputs(op, in, 2, op == &tg_ops_shape[INDEX_SELECT] ? 3u : 2u)) return -1;
    int ax = axis_of(op->name, axis, a);
    if (ax < 0) return -1;
    char si[96], sa[96];
    if (index->ndim != want_ndim) {
        tg_error_set("%s: index must have %d dims, got %s", op->name, want_ndim,
                  tensor_shape_str(index, si, sizeof si));
        return -1;
    }
    const int64_t *I = index->data;
    for (int64_t i = 0; i < index->size; i++) {
        if (I[i] < 0 || I[i] >= a->shape[ax]) {
            tg_error_set("%s: index %lld (at position %lld) out of range for size %lld of axis %d of %s",
                      op->name, (long long)I[i], (long long)i, (long long)a->shape[ax], axis,
                      tensor_shape_str(a, sa, sizeof sa));
            return -1;
        }
    }
    return ax;
}

tensor *tensor_index_select(tensor *a, int axis, tensor *index) {
    const op_def *op = &tg_ops_shape[INDEX_SELECT];
    int ax = index_check(op, a, axis, index, 1);
    if (ax < 0) return NULL;
    int64_t shape[TENSOR_MAX_DIMS];
    for (int d = 0; d < a->ndim; d++) shape[d] = d == ax ? index->size : a->shape[d];
    tensor *in[2] = {a, index};
    tape_node *n = tg_node_begin(op, in, 2, a->dtype, a->ndim, shape);
    if (!n) return NULL;
    n->ip[0] = ax;
    return tg_node_finish(n);
}

/* index may be smaller than a in the other dims (like torch.gather). */
tensor *tensor_gather(tensor *a, int axis, tensor *index) {
    const op_def *op = &tg_ops_shape[GATHER];
    int ax = index_check(op, a, axis, index, a ? a->ndim : 0);
    if (ax < 0) return NULL;
    for (int d = 0; d < a->ndim; d++) {
        if (d != ax && index->shape[d] > a->shape[d]) {
            char si[96], sa[96];
            tg_error_set("gather: index %s is larger than a %s in dimension %d",
                      tensor_shape_str(index, si, sizeof si), tensor_shape_str(a, sa, sizeof sa), d);
            return NULL;
        }
    }
    tensor *in[2] = {a, index};
    tape_node *n = tg_node_begin(op, in, 2, a->dtype, index->ndim, index->shape);
    if (!n) return NULL;
    n->ip[0] = ax;
    return tg_node_finish(n);
}

/* ---------------------------------------------------------------- samples
 * One shared generator per op; s->ip holds the op's parameters. */
static tensor *one_input(op_sample *s, rng *g, int nd, const int64_t *shape) {
    s->n_inputs = 1;
    s->inputs[0] = tg_sample_tensor(g, nd, shape, -2.0, 2.0);
    return s->inputs[0];
}

/* reshape / permute: ip[0] picks the target shape or permutation. */
static int reshape_sample(int k, rng *g, op_sample *s) {
    static const int64_t shape[3] = {2, 3, 4};
    static const char *names[] = {"[2,3,4] -> [4,-1]", "[2,3,4] -> [24]", "[2,3,4] -> [6,1,-1]"};
    if (k >= 3) return 1;
    tg_sample_name(s, "%s", names[k]);
    s->ip[0] = k;
    return one_input(s, g, 3, shape) ? 0 : -1;
}
static int permute_sample(int k, rng *g, op_sample *s) {
    static const int64_t shape[3] = {2, 3, 4};
    static const char *names[] = {"[2,3,4] perm (2,0,1)", "[2,3,4] perm (1,0,2)",
                                  "[2,3,4] perm (-1,1,0)"};
    if (k >= 3) return 1;
    tg_sample_name(s, "%s", names[k]);
    s->ip[0] = k;
    return one_input(s, g, 3, shape) ? 0 : -1;
}
static tensor *reshape_build(tensor *const *in, const op_sample *s) {
    const int64_t a[2] = {4, -1}, b[1] = {24}, c[3] = {6, 1, -1};
    switch (s->ip[0]) {
    case 0: return tensor_reshape(in[0], 2, a);
    case 1: return tensor_reshape(in[0], 1, b);
    default: return tensor_reshape(in[0], 3, c);
    }
}
static tensor *permute_build(tensor *const *in, const op_sample *s) {
    static const int perms[3][3] = {{2, 0, 1}, {1, 0, 2}, {-1, 1, 0}};
    return tensor_permute(in[0], perms[s->ip[0]]);
}

static int flatten_sample(int k, rng *g, op_sample *s) {
    static const int64_t shape[4] = {2, 3, 4, 2};
    static const int from[] = {1, 0, -2}, to[] = {2, -1, -1};
    if (k >= 3) return 1;
    s->ip[0] = from[k];
    s->ip[1] = to[k];
    tg_sample_name(s, "[2,3,4,2] dims %d..%d", from[k], to[k]);
    return one_input(s, g, 4, shape) ? 0 : -1;
}
static tensor *flatten_build(tensor *const *in, const op_sample *s) {
    return tensor_flatten(in[0], (int)s->ip[0], (int)s->ip[1]);
}

/* concat / stack: up to three inputs; ip[0] axis. */
static int cat_case(op_sample *s, rng *g, int n, int nd, const int64_t (*shapes)[3], int axis,
                    const char *name) {
    s->n_inputs = n;
    s->ip[0] = axis;
    tg_sample_name(s, "%s", name);
    for (int i = 0; i < n; i++)
        if (!(s->inputs[i] = tg_sample_tensor(g, nd, shapes[i], -2.0, 2.0))) return -1;
    return 0;
}
static int concat_sample(int k, rng *g, op_sample *s) {
    static const int64_t c0[3][3] = {{2, 3}, {2, 2}, {2, 4}}, c1[2][3] = {{1, 3}, {2, 3}},
                         c2[2][3] = {{2, 3, 2}, {2, 1, 2}};
    switch (k) {
    case 0: return cat_case(s, g, 3, 2, c0, 1, "[2,3] [2,2] [2,4] axis 1");
    case 1: return cat_case(s, g, 2, 2, c1, 0, "[1,3] [2,3] axis 0");
    case 2: return cat_case(s, g, 2, 3, c2, -2, "[2,3,2] [2,1,2] axis -2");
    default: return 1;
    }
}
static int stack_sample(int k, rng *g, op_sample *s) {
    static const int64_t m[3][3] = {{2, 3}, {2, 3}, {2, 3}}, v[2][3] = {{3}, {3}};
    switch (k) {
    case 0: return cat_case(s, g, 3, 2, m, 0, "3 x [2,3] axis 0");
    case 1: return cat_case(s, g, 2, 2, m, 2, "2 x [2,3] axis 2 (new last)");
    case 2: return cat_case(s, g, 2, 1, v, -1, "2 x [3] axis -1");
    default: return 1;
    }
}
static tensor *concat_build(tensor *const *in, const op_sample *s) {
    return tensor_concat(in, s->n_inputs, (int)s->ip[0]);
}
static tensor *stack_build(tensor *const *in, const op_sample *s) {
    return tensor_stack(in, s->n_inputs, (int)s->ip[0]);
}

/* narrow: ip axis, start, length; slice: axis, start, stop, step. */
static int narrow_sample(int k, rng *g, op_sample *s) {
    static const int64_t shapes[3][3] = {{4, 5}, {4, 5}, {2, 3, 4}}, nd[] = {2, 2, 3};
    static const int64_t p[3][3] = {{1, 1, 3}, {0, -3, 2}, {2, 0, 4}};
    if (k >= 3) return 1;
    for (int i = 0; i < 3; i++) s->ip[i] = p[k][i];
    tg_sample_name(s, "%s axis %lld start %lld length %lld", k == 2 ? "[2,3,4]" : "[4,5]",
                (long long)p[k][0], (long long)p[k][1], (long long)p[k][2]);
    return one_input(s, g, (int)nd[k], shapes[k]) ? 0 : -1;
}
static tensor *narrow_build(tensor *const *in, const op_sample *s) {
    return tensor_narrow(in[0], (int)s->ip[0], s->ip[1], s->ip[2]);
}
static int slice_sample(int k, rng *g, op_sample *s) {
    static const int64_t shapes[3][3] = {{6, 4}, {3, 7}, {2, 5, 3}}, nd[] = {2, 2, 3};
    static const int64_t p[3][4] = {{0, 1, 6, 2}, {-1, -5, INT64_MAX, 3}, {1, 0, -1, 1}};
    static const char *names[] = {"[6,4] axis 0 [1:6:2]", "[3,7] axis -1 [-5::3]",
                                  "[2,5,3] axis 1 [0:-1]"};
    if (k >= 3) return 1;
    for (int i = 0; i < 4; i++) s->ip[i] = p[k][i];
    tg_sample_name(s, "%s", names[k]);
    return one_input(s, g, (int)nd[k], shapes[k]) ? 0 : -1;
}
static tensor *slice_build(tensor *const *in, const op_sample *s) {
    return tensor_slice(in[0], (int)s->ip[0], s->ip[1], s->ip[2], s->ip[3]);
}

/* index_select / gather: input 1 is the int64 index (no gradient);
 * indices repeat, so gradients accumulate. ip[0] axis. */
static int index_case(op_sample *s, rng *g, int nd, const int64_t *ashape, int ind,
                      const int64_t *ishape, int64_t classes, int axis, const char *name) {
    s->n_inputs = 2;
    s->no_grad_mask = 2;
    s->ip[0] = axis;
    tg_sample_name(s, "%s", name);
    s->inputs[0] = tg_sample_tensor(g, nd, ashape, -2.0, 2.0);
    s->inputs[1] = tg_sample_labels(g, ind, ishape, classes);
    return s->inputs[0] && s->inputs[1] ? 0 : -1;
}
static int index_select_sample(int k, rng *g, op_sample *s) {
    switch (k) {
    case 0: return index_case(s, g, SHAPE(4, 3), SHAPE(6), 4, 0, "[4,3] axis 0, 6 indices");
    case 1: return index_case(s, g, SHAPE(2, 5, 3), SHAPE(7), 5, 1, "[2,5,3] axis 1, 7 indices");
    case 2: return index_case(s, g, SHAPE(3, 4), SHAPE(2), 4, -1, "[3,4] axis -1, 2 indices");
    default: return 1;
    }
}
static int gather_sample(int k, rng *g, op_sample *s) {
    switch (k) {
    case 0: return index_case(s, g, SHAPE(3, 4), SHAPE(3, 2), 4, 1, "[3,4] axis 1, index [3,2]");
    case 1: return index_case(s, g, SHAPE(3, 4), SHAPE(2, 4), 3, 0, "[3,4] axis 0, index [2,4]");
    case 2:
        return index_case(s, g, SHAPE(2, 3, 4), SHAPE(2, 2, 6), 4, -1,
                          "[2,3,4] axis -1, index [2,2,6]");
    default: return 1;
    }
}
static tensor *index_select_build(tensor *const *in, const op_sample *s) {
    return tensor_index_select(in[0], (int)s->ip[0], in[1]);
}
static tensor *gather_build(tensor *const *in, const op_sample *s) {
    return tensor_gather(in[0], (int)s->ip[0], in[1]);
}

/* pad: ip[0..2 ndim) pads, fp[0] value. */
static int pad_sample(int k, rng *g, op_sample *s) {
    static const int64_t shapes[3][3] = {{2, 3}, {2, 3, 4}, {5}}, nd[] = {2, 3, 1};
    static const int64_t pads[3][6] = {{1, 0, 0, 2}, {0, 1, 2, 0, 1, 1}, {2, 3}};
    static const double value[] = {0.5, -1.0, 0.0};
    static const char *names[] = {"[2,3] pads (1,0)(0,2) value 0.5",
                                  "[2,3,4] pads (0,1)(2,0)(1,1) value -1", "[5] pads (2,3)"};
    if (k >= 3) return 1;
    for (int i = 0; i < 6; i++) s->ip[i] = pads[k][i];
    s->fp[0] = value[k];
    tg_sample_name(s, "%s", names[k]);
    return one_input(s, g, (int)nd[k], shapes[k]) ? 0 : -1;
}
static tensor *pad_build(tensor *const *in, const op_sample *s) {
    return tensor_pad(in[0], s->ip, s->fp[0]);
}

/* expand: ip[0] target ndim, ip[1..] target shape. */
static int expand_sample(int k, rng *g, op_sample *s) {
    static const int64_t shapes[4][3] = {{3}, {2, 1, 4}, {1, 3, 1}, {3, 1}}, nd[] = {1, 3, 3, 2};
    static const int64_t targets[4][5] = {{2, 2, 3}, {3, 2, 3, 4}, {4, 4, 1, 3, 2}, {2, -1, 4}};
    static const char *names[] = {"[3] -> [2,3]", "[2,1,4] -> [2,3,4]", "[1,3,1] -> [4,1,3,2]",
                                  "[3,1] -> [-1,4]"};
    if (k >= 4) return 1;
    for (int i = 0; i < 5; i++) s->ip[i] = targets[k][i];
    tg_sample_name(s, "%s", names[k]);
    return one_input(s, g, (int)nd[k], shapes[k]) ? 0 : -1;
}
static tensor *expand_build(tensor *const *in, const op_sample *s) {
    return tensor_expand(in[0], (int)s->ip[0], s->ip + 1);
}

/* ------------------------------------------------------ graph vjps
 * The vjps built from ops (op_def.vjp_graph): each shape op's adjoint is
 * another shape op. */
/* reshape, flatten: da = reshape(g, shape of a) */
static int reshape_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    gin[0] = tensor_reshape(g, n->in[0]->ndim, n->in[0]->shape);
    return tg_graph_vjp_done(n, want, gin);
}
/* permute: da = permute(g, inverse(perm)) */
static int permute_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    int inv[TENSOR_MAX_DIMS];
    for (int d = 0; d < n->in[0]->ndim; d++) inv[n->ip[d]] = d;
    gin[0] = tensor_permute(g, inv);
    return tg_graph_vjp_done(n, want, gin);
}
/* expand: da = g summed over the broadcast dims */
static int expand_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    gin[0] = tg_sum_to_shape(g, n->in[0]);
    return tg_graph_vjp_done(n, want, gin);
}
/* narrow: da = g padded with zeros back to a's size along the narrowed axis
 * (the one whose size changed; start = base offset / the axis's stride) */
static int narrow_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    const tensor *a = n->in[0];
    int64_t st[TENSOR_MAX_DIMS], pads[2 * TENSOR_MAX_DIMS] = {0};
    row_major_strides(a->ndim, a->shape, st);
    for (int d = 0; d < a->ndim; d++) {
        if (n->out->shape[d] == a->shape[d]) continue;
        int64_t start = st[d] ? n->ip[0] / st[d] : 0;
        pads[2 * d] = start;
        pads[2 * d + 1] = a->shape[d] - start - n->out->shape[d];
        break;
    }
    gin[0] = tensor_pad(g, pads, 0.0);
    return tg_graph_vjp_done(n, want, gin);
}
/* concat, stack: g viewed as [outer, row] (outer = ip[0], the elements
 * before the axis); input k is the block of columns [off, off + blk) */
static int cat_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    const int64_t outer = n->ip[0];
    int64_t off = 0, rows[2] = {outer, outer ? n->out->size / outer : 0};
    tensor *g2 = outer ? tensor_reshape(g, 2, rows) : NULL;
    for (int k = 0; k < n->n_in; k++) {
        const tensor *a = n->in[k];
        int64_t blk = outer ? a->size / outer : 0;
        if (want[k])
            gin[k] = outer ? tensor_reshape(tensor_narrow(g2, 1, off, blk), a->ndim, a->shape)
                           : tg_tensor_tape_zeros(a->dtype, a->ndim, a->shape); /* empty */
        off += blk;
    }
    return tg_graph_vjp_done(n, want, gin);
}
/* The adjoint of selecting positions idx (int64 [J]) along axis ax of a
 * dim of size A, built from ops: g's axis moved last and flattened to
 * [M, J], times one_hot(idx, A) [J, A] (a constant), which sums repeats,
 * then the axis moved back. */
static tensor *scatter_axis(tensor *g, int ax, tensor *idx, int64_t A) {
    if (!g || !idx) return NULL;
    const int nd = g->ndim;
    int perm[TENSOR_MAX_DIMS], inv[TENSOR_MAX_DIMS];
    int64_t moved[TENSOR_MAX_DIMS], flat[2] = {1, g->shape[ax]};
    for (int d = 0, k = 0; d < nd; d++)
        if (d != ax) perm[k++] = d;
    perm[nd - 1] = ax;
    for (int d = 0; d < nd; d++) {
        inv[perm[d]] = d;
        moved[d] = g->shape[perm[d]];
        if (d < nd - 1) flat[0] *= moved[d];
    }
    moved[nd - 1] = A;
    tensor *r = tensor_matmul(tensor_reshape(tensor_permute(g, perm), 2, flat), tensor_one_hot(idx, A, g->dtype));
    return tensor_permute(tensor_reshape(r, nd, moved), inv);
}
/* index_select along ip[0]: da = scatter_axis(g) at the index */
static int index_select_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    int ax = (int)n->ip[0];
    gin[0] = scatter_axis(g, ax, n->in[1], n->in[0]->shape[ax]);
    return tg_graph_vjp_done(n, want, gin);
}
/* slice: the positions start, start + step, ... of the axis whose map
 * differs from a's own (base offset ip[0] = start * stride, ip[1 + ax] =
 * stride * step); none differs: the identity */
static int slice_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    const tensor *a = n->in[0];
    int64_t st[TENSOR_MAX_DIMS];
    row_major_strides(a->ndim, a->shape, st);
    int ax = -1;
    for (int d = 0; d < a->ndim && ax < 0; d++)
        if (n->out->shape[d] != a->shape[d] || (a->shape[d] > 1 && n->ip[1 + d] != st[d])) ax = d;
    if (ax < 0) {
        gin[0] = g;
        return tg_graph_vjp_done(n, want, gin);
    }
    const int64_t len = n->out->shape[ax], start = st[ax] ? n->ip[0] / st[ax] : 0,
                  step = st[ax] ? n->ip[1 + ax] / st[ax] : 1;
    tensor *idx = tg_tensor_tape_new(DTYPE_I64, 1, &len);
    if (!idx) return -1;
    for (int64_t k = 0; k < len; k++) ((int64_t *)idx->data)[k] = start + k * step;
    gin[0] = scatter_axis(g, ax, idx, a->shape[ax]);
    return tg_graph_vjp_done(n, want, gin);
}
/* gather along ip[0]: da = g added back at the gathered positions */
static int gather_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    gin[0] = tg_gather_adjoint(g, (int)n->ip[0], n->in[1], n->in[0]);
    return tg_graph_vjp_done(n, want, gin);
}
/* pad: da = the interior of g, narrowed dim by dim */
static int pad_vjp_graph(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *t = g;
    for (int d = 0; d < n->in[0]->ndim && t; d++)
        if (n->ip[2 * d] || n->ip[2 * d + 1]) t = tensor_narrow(t, d, n->ip[2 * d], n->in[0]->shape[d]);
    gin[0] = t;
    return tg_graph_vjp_done(n, want, gin);
}

const op_def tg_ops_shape[] = {
    [RESHAPE] = {"reshape", 1, 0, reshape_forward, reshape_vjp, reshape_sample, reshape_build,
     "tensor_reshape(a, ndim, shape)", "y = a with a new shape (row-major order kept)",
     "da = reshape(g, shape of a)", "one dimension may be -1 (inferred); int64 tensors allowed",
     .vjp_graph = reshape_vjp_graph, .vjp_fresh = true},
    [PERMUTE] = {"permute", 1, 0, permute_forward, permute_vjp, permute_sample, permute_build,
     "tensor_permute(a, perm) / tensor_transpose(a, d0, d1)", "y[i_0..i_n] = a[i_perm^-1...]: y's dim d is a's dim perm[d]",
     "da = permute(g, inverse(perm))", "transpose is permute with two dims swapped",
     .vjp_graph = permute_vjp_graph, .vjp_fresh = true},
    [FLATTEN] = {"flatten", 1, 0, reshape_forward, reshape_vjp, flatten_sample, flatten_build,
     "tensor_flatten(a, start_dim, end_dim)", "y = a with dims start_dim..end_dim merged into one",
     "da = reshape(g, shape of a)", "a reshape; a scalar flattens to [1]; int64 tensors allowed",
     .vjp_graph = reshape_vjp_graph, .vjp_fresh = true},
    [CONCAT] = {"concat", -1, 0, cat_forward, cat_vjp, concat_sample, concat_build,
     "tensor_concat(ts, n, axis)", "y = (a_0, a_1, ..) joined along axis",
     "da_k = the slice of g along axis where a_k was placed",
     "all dims but axis must match; one dtype (int64 lists join too, without gradient)",
     .vjp_graph = cat_vjp_graph, .vjp_fresh = true},
    [STACK] = {"stack", -1, 0, cat_forward, cat_vjp, stack_sample, stack_build, "tensor_stack(ts, n, axis)",
     "y[.., k, ..] = a_k, k along a new dim at position axis (0..ndim)",
     "da_k = g[.., k, ..]",
     "all inputs have one shape and dtype (int64 too, without gradient); concat of the inputs "
     "each given a dim of 1",
     .vjp_graph = cat_vjp_graph, .vjp_fresh = true},
    [NARROW] = {"narrow", 1, 0, strided_forward, strided_vjp, narrow_sample, narrow_build,
     "tensor_narrow(a, axis, start, length)", "y = a[.., start : start + length, ..] along axis",
     "da = g in the narrowed range, 0 elsewhere",
     "a negative start counts from the end; the range must lie inside the dim; int64 tensors "
     "allowed",
     .vjp_graph = narrow_vjp_graph},
    [SLICE] = {"slice", 1, 0, strided_forward, strided_vjp, slice_sample, slice_build,
     "tensor_slice(a, axis, start, stop, step)", "y = a[.., start:stop:step, ..] along axis (Python)",
     "da = g at the selected positions, 0 elsewhere",
     "step > 0; negative bounds count from the end; bounds are clamped to the dim like Python; "
     "int64 tensors allowed",
     .vjp_graph = slice_vjp_graph},
    [INDEX_SELECT] = {"index_select", 2, 2, index_select_forward, index_select_vjp, index_select_sample,
     index_select_build, "tensor_index_select(a, axis, index)",
     "y[.., j, ..] = a[.., index[j], ..] (index int64 1-D)",
     "da[.., index[j], ..] += g[.., j, ..] (repeats accumulate)",
     "index has no gradient; an index outside [0, size) is an error; a may be int64 (no "
     "gradient)",
     .vjp_graph = index_select_vjp_graph},
    [GATHER] = {"gather", 2, 2, gather_forward, gather_vjp, gather_sample, gather_build,
     "tensor_gather(a, axis, index)", "y[p] = a[p with p_axis = index[p]] (index int64, a's ndim)",
     "da[p with p_axis = index[p]] += g[p] (scatter-add; repeats accumulate)",
     "index may be smaller than a in the other dims; an index outside [0, size) is an error",
     .vjp_graph = gather_vjp_graph},
    [PAD] = {"pad", 1, 0, pad_forward, pad_vjp, pad_sample, pad_build, "tensor_pad(a, pads, value)",
     "y = a surrounded by (before_d, after_d) elements of value in each dim d",
     "da = the interior of g", "constant padding only; pads must be >= 0; value has no gradient",
     .vjp_graph = pad_vjp_graph},
    [EXPAND] = {"expand", 1, 0, strided_forward, expand_vjp, expand_sample, expand_build,
     "tensor_expand(a, ndim, shape)", "y = a broadcast to shape (dims right-aligned)",
     "da = g summed over the broadcast dims", "-1 keeps a's size of that dim",
     .vjp_graph = expand_vjp_graph, .vjp_fresh = true},
};
const int tg_ops_shape_count = N_SHAPE_OPS;
_Static_assert(sizeof tg_ops_shape / sizeof tg_ops_shape[0] == N_SHAPE_OPS,
               "tg_ops_shape: one entry per op of its enum");
