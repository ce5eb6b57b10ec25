/* broadcast.c - NumPy broadcasting of shapes, and its adjoint: summing a
 * gradient back over the broadcast dimensions. */
#include <string.h>

#include "internal.h"

int tg_broadcast_shapes(const char *op, const tensor *a, const tensor *b, int *ndim, int64_t *shape) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < nd; i++) {
        int ia = a->ndim - nd + i, ib = b->ndim - nd + i;
        int64_t da = ia >= 0 ? a->shape[ia] : 1, db = ib >= 0 ? b->shape[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            char sa[96], sb[96];
            tg_error_set("%s: shapes %s and %s do not broadcast (dimension %d: %lld vs %lld)", op,
                      tensor_shape_str(a, sa, sizeof sa), tensor_shape_str(b, sb, sizeof sb), i,
                      (long long)da, (long long)db);
            return -1;
        }
        shape[i] = da == 1 ? db : da;
    }
    *ndim = nd;
    return 0;
}

void tg_broadcast_strides(const tensor *t, int ndim, const int64_t *shape, int64_t *strides) {
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        int it = t->ndim - ndim + i;
        int64_t dim = it >= 0 ? t->shape[it] : 1;
        strides[i] = (dim == 1 && shape[i] != 1) ? 0 : s;
        s *= dim;
    }
}

/* dst += src summed over broadcast dims (dst = ... when write: dst's contents
 * are garbage; each element's sum is then the same, bit for bit, without the
 * leading 0 +). Typical cases are fast paths: same size (plain add), dst a
 * single element, and dst a suffix of src (bias-like: rows of src added into
 * dst). */
#define REDUCE_TO_SHAPE(T)                                                          \
    static void reduce_##T(tensor *dst, const tensor *src, bool write) {            \
        T *d = dst->data;                                                           \
        const T *s = src->data;                                                     \
        if (dst->size == src->size) {                                               \
            if (write) memcpy(d, s, (size_t)src->size * sizeof(T));                 \
            else for (int64_t i = 0; i < src->size; i++) d[i] += s[i];              \
            return;                                                                 \
        }                                                                           \
        if (dst->size == 1) {                                                       \
            T acc = 0;                                                              \
            for (int64_t i = 0; i < src->size; i++) acc += s[i];                    \
            d[0] = write ? acc : d[0] + acc;                                        \
            return;                                                                 \
        }                                                                           \
        int64_t st[TENSOR_MAX_DIMS];                                                \
        tg_broadcast_strides(dst, src->ndim, src->shape, st);                          \
        bool suffix = true; /* dst's dims equal src's trailing dims, lead dims 0 */ \
        int lead = src->ndim - dst->ndim;                                           \
        for (int i = 0; i < dst->ndim; i++)                                         \
            if (dst->shape[i] != src->shape[lead + i]) suffix = false;              \
        if (suffix) {                                                               \
            int64_t inner = dst->size, outer = src->size / inner, o = 0;            \
            if (write && outer > 0) {                                               \
                memcpy(d, s, (size_t)inner * sizeof(T));                            \
                o = 1;                                                              \
            } else if (write) {                                                     \
                memset(d, 0, (size_t)inner * sizeof(T));                            \
            }                                                                       \
            for (; o < outer; o++)                                                  \
                for (int64_t i = 0; i < inner; i++) d[i] += s[o * inner + i];       \
            return;                                                                 \
        }                                                                           \
        if (write) memset(d, 0, (size_t)dst->size * sizeof(T));                     \
        for (int64_t i = 0; i < src->size; i++)                                     \
            d[bcast_offset(i, src->ndim, src->shape, st)] += s[i];                  \
    }
REDUCE_TO_SHAPE(float)
REDUCE_TO_SHAPE(double)

void tg_reduce_to_shape_acc(tensor *dst, const tensor *src) {
    if (dst->dtype == DTYPE_F32)
        reduce_float(dst, src, false);
    else
        reduce_double(dst, src, false);
}

void tg_reduce_to_shape_grad(tensor *dst, const tensor *src) {
    bool write = tg_grad_take_fresh(dst);
    if (dst->dtype == DTYPE_F32)
        reduce_float(dst, src, write);
    else
        reduce_double(dst, src, write);
}

tensor *tg_sum_to_shape(tensor *g, const tensor *like) {
    if (!g) return NULL;
    if (tensor_same_shape(g, like)) return g;
    /* g's leading dims that like lacks, and the dims where like has 1 */
    int axes[TENSOR_MAX_DIMS], na = 0, lead = g->ndim - like->ndim;
    for (int d = 0; d < g->ndim; d++)
        if (d < lead || (like->shape[d - lead] == 1 && g->shape[d] != 1)) axes[na++] = d;
    tensor *s = na ? tensor_sum(g, axes, na, true) : g;
    return s ? tensor_reshape(s, like->ndim, like->shape) : NULL;
}
