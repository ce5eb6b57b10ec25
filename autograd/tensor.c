/* tensor.c - creating, converting, reading and freeing tensors. */
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "internal.h"

size_t tg_dtype_size(dtype dt) { return dt == DTYPE_F32 ? 4 : 8; }

const char *tg_dtype_name(dtype dt) {
    switch (dt) {
    case DTYPE_F32: return "float32";
    case DTYPE_F64: return "float64";
    case DTYPE_I64: return "int64";
    }
    return "unknown";
}

/* The product of the sizes; -1 when one is negative or the product
 * overflows int64 (a shape a user gave, e.g. a reshape's target). */
int64_t tg_shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        if (shape[i] < 0 || i64_mul_overflows(n, shape[i], &n)) return -1;
    return n;
}

/* A tensor's shape is valid when the product of its NONZERO sizes, times 64
 * bytes, fits int64: then every product of some of its sizes (a flatten's
 * merged dimension, a kernel's O * D * I, an element's byte offset) fits too,
 * even where a zero size makes the tensor empty ([0,2^40,2^40] is refused:
 * flattening its last two dimensions would overflow). */
int tg_shape_check(const char *op, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS) {
        tg_error_set("%s: %d dimensions (at most %d)", op, ndim, TENSOR_MAX_DIMS);
        return -1;
    }
    if (ndim > 0 && !shape) {
        tg_error_set("%s: shape is NULL", op);
        return -1;
    }
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            tg_error_set("%s: negative size %lld in dimension %d", op, (long long)shape[i], i);
            return -1;
        }
        if (shape[i] > 0 && (i64_mul_overflows(n, shape[i], &n) || n > INT64_MAX / 64)) {
            tg_error_set("%s: shape too large", op);
            return -1;
        }
    }
    return 0;
}

int tg_axis_normalize(const char *op, int axis, int ndim) {
    int a = axis < 0 ? axis + ndim : axis;
    if (a < 0 || a >= (ndim > 0 ? ndim : 1)) {
        tg_error_set("%s: axis %d out of range for %d dimensions", op, axis, ndim);
        return -1;
    }
    return a;
}

static void tensor_init(tensor *t, dtype dt, int ndim, const int64_t *shape) {
    memset(t, 0, sizeof *t);
    t->dtype = dt;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    t->size = tg_shape_numel(ndim, shape);
    t->node = -1;
}

static bool dtype_valid(const char *op, dtype dt) {
    if (dt != DTYPE_F32 && dt != DTYPE_F64 && dt != DTYPE_I64) {
        tg_error_set("%s: unknown dtype %d", op, (int)dt);
        return false;
    }
    return true;
}

tensor *tensor_new(dtype dt, int ndim, const int64_t *shape) {
    if (!dtype_valid("tensor_new", dt) || tg_shape_check("tensor_new", ndim, shape)) return NULL;
    const char *op = tg_mem_context_op("tensor_new");
    tg_mem_context_tensor(dt, ndim, shape);
    tensor *t = tg_mem_alloc(sizeof *t);
    if (t) {
        tensor_init(t, dt, ndim, shape);
        t->data = tg_mem_calloc((size_t)t->size * tg_dtype_size(dt));
    }
    tg_mem_context_tensor(dt, -1, NULL);
    tg_mem_context_op(op);
    if (!t) return NULL;
    if (!t->data) {
        tg_mem_free(t);
        return NULL;
    }
    return t;
}

tensor *tg_tensor_tape_new(dtype dt, int ndim, const int64_t *shape) {
    tg_mem_context_tensor(dt, ndim, shape);
    tensor *t = tg_tape_header_new();
    if (t) {
        tensor_init(t, dt, ndim, shape);
        t->tape_owned = true;
        t->epoch = tg_tape_epoch();
        t->data = tg_arena_alloc((size_t)t->size * tg_dtype_size(dt));
    }
    tg_mem_context_tensor(dt, -1, NULL);
    return t && t->data ? t : NULL;
}

tensor *tg_tensor_tape_zeros(dtype dt, int ndim, const int64_t *shape) {
    tensor *t = tg_tensor_tape_new(dt, ndim, shape);
    if (t) memset(t->data, 0, (size_t)t->size * tg_dtype_size(dt));
    return t;
}

int tg_tensor_check_fresh(const char *op, const char *what, const tensor *t) {
    if (!tensor_is_stale(t)) return 0;
    char s[96];
    tg_error_set("%s: %s %s is stale: it was computed before the last tape_reset(), which released"
              " it; keep a value across a reset with tensor_detach()",
              op, what, tensor_shape_str(t, s, sizeof s));
    return -1;
}

tensor *tensor_detach(const tensor *t) {
    if (!t) {
        if (!tg_error_pending()) tg_error_set("tensor_detach: tensor is NULL");
        return NULL;
    }
    if (tg_tensor_check_fresh("tensor_detach", "tensor", t)) return NULL;
    return tensor_to_dtype(t, t->dtype);
}

void tensor_free(tensor *t) {
    if (!t || t->tape_owned) return;
    if (t->grad) {
        tg_mem_free(t->grad->data);
        tg_mem_free(t->grad);
    }
    tg_mem_free(t->data);
    tg_mem_free(t);
}

tensor *tensor_zeros(dtype dt, int ndim, const int64_t *shape) {
    return tensor_new(dt, ndim, shape);
}

tensor *tensor_full(dtype dt, int ndim, const int64_t *shape, double value) {
    tensor *t = tensor_new(dt, ndim, shape);
    for (int64_t i = 0; t && i < t->size; i++) tensor_set(t, i, value);
    return t;
}

tensor *tensor_ones(dtype dt, int ndim, const int64_t *shape) {
    return tensor_full(dt, ndim, shape, 1.0);
}

tensor *tensor_arange(dtype dt, double start, double stop, double step) {
    if (step == 0 || !isfinite(start) || !isfinite(stop) || !isfinite(step)) {
        tg_error_set("tensor_arange: step must be nonzero and bounds finite");
        return NULL;
    }
    double n = ceil((stop - start) / step);
    if (!(n < (double)(INT64_MAX / 64))) { /* a cast of a larger double is undefined */
        tg_error_set("tensor_arange: [%g, %g) in steps of %g has too many elements", start, stop,
                  step);
        return NULL;
    }
    int64_t shape[1] = {n > 0 ? (int64_t)n : 0};
    tensor *t = tensor_new(dt, 1, shape);
    for (int64_t i = 0; t && i < t->size; i++) tensor_set(t, i, start + (double)i * step);
    return t;
}

tensor *tensor_from_data(dtype dt, int ndim, const int64_t *shape, const void *data) {
    if (!data) {
        tg_error_set("tensor_from_data: data is NULL");
        return NULL;
    }
    tensor *t = tensor_new(dt, ndim, shape);
    if (t) memcpy(t->data, data, (size_t)t->size * tg_dtype_size(dt));
    return t;
}

tensor *tensor_from_doubles(dtype dt, int ndim, const int64_t *shape, const double *values) {
    if (!values) {
        tg_error_set("tensor_from_doubles: values is NULL");
        return NULL;
    }
    tensor *t = tensor_new(dt, ndim, shape);
    for (int64_t i = 0; t && i < t->size; i++) tensor_set(t, i, values[i]);
    return t;
}

tensor *tensor_rand(rng *g, dtype dt, int ndim, const int64_t *shape, double lo, double hi) {
    if (!g) {
        tg_error_set("tensor_rand: generator is NULL");
        return NULL;
    }
    tensor *t = tensor_new(dt, ndim, shape);
    for (int64_t i = 0; t && i < t->size; i++) tensor_set(t, i, lo + (hi - lo) * rng_uniform(g));
    return t;
}

tensor *tensor_randn(rng *g, dtype dt, int ndim, const int64_t *shape, double mean, double std) {
    if (!g) {
        tg_error_set("tensor_randn: generator is NULL");
        return NULL;
    }
    tensor *t = tensor_new(dt, ndim, shape);
    for (int64_t i = 0; t && i < t->size; i++) tensor_set(t, i, mean + std * rng_normal(g));
    return t;
}

int tensor_copy_data(tensor *dst, const tensor *src) {
    if (!dst || !src) {
        tg_error_set("tensor_copy_data: tensor is NULL");
        return -1;
    }
    if (tg_tensor_check_fresh("tensor_copy_data", "destination", dst) ||
        tg_tensor_check_fresh("tensor_copy_data", "source", src))
        return -1;
    if (!tensor_same_shape(dst, src)) {
        char a[96], b[96];
        tg_error_set("tensor_copy_data: shapes differ: %s vs %s", tensor_shape_str(dst, a, sizeof a),
                  tensor_shape_str(src, b, sizeof b));
        return -1;
    }
    if (dst->dtype == src->dtype) {
        memcpy(dst->data, src->data, (size_t)src->size * tg_dtype_size(src->dtype));
    } else if (dst->dtype == DTYPE_F64 && src->dtype == DTYPE_F32) {
        double *d = dst->data;
        const float *s = src->data;
        for (int64_t i = 0; i < src->size; i++) d[i] = s[i];
    } else if (dst->dtype == DTYPE_F32 && src->dtype == DTYPE_F64) {
        float *d = dst->data;
        const double *s = src->data;
        for (int64_t i = 0; i < src->size; i++) d[i] = (float)s[i];
    } else {
        for (int64_t i = 0; i < src->size; i++) tensor_set(dst, i, tensor_get(src, i));
    }
    return 0;
}

tensor *tensor_to_dtype(const tensor *t, dtype dt) {
    if (!t) {
        if (!tg_error_pending()) tg_error_set("tensor_to_dtype: tensor is NULL");
        return NULL;
    }
    if (tg_tensor_check_fresh("tensor_to_dtype", "tensor", t)) return NULL;
    tensor *r = tensor_new(dt, t->ndim, t->shape);
    if (r && tensor_copy_data(r, t)) {
        tensor_free(r);
        return NULL;
    }
    return r;
}

tensor *tensor_clone(const tensor *t) {
    if (!t) {
        if (!tg_error_pending()) tg_error_set("tensor_clone: tensor is NULL");
        return NULL;
    }
    if (tg_tensor_check_fresh("tensor_clone", "tensor", t)) return NULL;
    return tensor_to_dtype(t, t->dtype);
}

int tensor_set_requires_grad(tensor *t, bool on) {
    if (!t) {
        tg_error_set("tensor_set_requires_grad: tensor is NULL");
        return -1;
    }
    if (tg_tensor_check_fresh("tensor_set_requires_grad", "tensor", t)) return -1;
    if (on && t->is_grad) {
        tg_error_set("tensor_set_requires_grad: this tensor is a gradient (another tensor's .grad);"
                  " gradients of gradients (higher-order) are not supported");
        return -1;
    }
    if (t->node >= 0 && t->tape_owned) {
        tg_error_set("tensor_set_requires_grad: only leaves can be marked (this tensor is an op's output)");
        return -1;
    }
    if (on && t->dtype == DTYPE_I64) {
        tg_error_set("tensor_set_requires_grad: int64 tensors have no gradient");
        return -1;
    }
    t->requires_grad = on;
    return 0;
}

int tensor_zero_grad(tensor *t) {
    if (!t) {
        tg_error_set("tensor_zero_grad: tensor is NULL");
        return -1;
    }
    if (tg_tensor_check_fresh("tensor_zero_grad", "tensor", t)) return -1;
    if (t->grad) memset(t->grad->data, 0, (size_t)t->grad->size * tg_dtype_size(t->grad->dtype));
    return 0;
}

double tensor_get(const tensor *t, int64_t i) {
    if (!t || i < 0 || i >= t->size || tg_tensor_check_fresh("tensor_get", "tensor", t)) return NAN;
    switch (t->dtype) {
    case DTYPE_F32: return ((const float *)t->data)[i];
    case DTYPE_F64: return ((const double *)t->data)[i];
    case DTYPE_I64: return (double)((const int64_t *)t->data)[i];
    }
    return NAN;
}

int tensor_set(tensor *t, int64_t i, double v) {
    if (!t || i < 0 || i >= t->size) {
        tg_error_set("tensor_set: index %lld out of range", (long long)i);
        return -1;
    }
    if (tg_tensor_check_fresh("tensor_set", "tensor", t)) return -1;
    switch (t->dtype) {
    case DTYPE_F32: ((float *)t->data)[i] = (float)v; break;
    case DTYPE_F64: ((double *)t->data)[i] = v; break;
    case DTYPE_I64: ((int64_t *)t->data)[i] = (int64_t)v; break;
    }
    return 0;
}

double tensor_at(const tensor *t, const int64_t *index) {
    if (!t || (t->ndim > 0 && !index) || tg_tensor_check_fresh("tensor_at", "tensor", t)) return NAN;
    int64_t flat = 0;
    for (int d = 0; d < t->ndim; d++) {
        if (index[d] < 0 || index[d] >= t->shape[d]) return NAN;
        flat = flat * t->shape[d] + index[d];
    }
    return tensor_get(t, flat);
}

double tensor_item(const tensor *t) {
    char s[96];
    if (!t) {
        if (!tg_error_pending()) tg_error_set("tensor_item: tensor is NULL");
        return NAN;
    }
    if (tg_tensor_check_fresh("tensor_item", "tensor", t)) return NAN;
    if (t->size != 1) {
        tg_error_set("tensor_item: tensor %s has %lld elements, not 1", tensor_shape_str(t, s, sizeof s),
                  (long long)t->size);
        return NAN;
    }
    return tensor_get(t, 0);
}

bool tensor_same_shape(const tensor *a, const tensor *b) {
    if (!a || !b || a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

char *tensor_shape_str(const tensor *t, char *buf, size_t len) {
    if (!buf || len == 0) return buf;
    if (!t) {
        snprintf(buf, len, "NULL");
        return buf;
    }
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < t->ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, i ? ",%lld" : "%lld", (long long)t->shape[i]);
    if (o < len) snprintf(buf + o, len - o, "]");
    return buf;
}

void tensor_print(FILE *f, const tensor *t, const char *label) {
    char s[128];
    fprintf(f, "%s %s %s", label ? label : "tensor", tg_dtype_name(t ? t->dtype : DTYPE_F32),
            tensor_shape_str(t, s, sizeof s));
    if (!t || tensor_is_stale(t)) {
        fputs(t ? " (stale: computed before the last tape_reset)\n" : "\n", f);
        return;
    }
    fputs(" {", f);
    int64_t n = t->size < 64 ? t->size : 64;
    for (int64_t i = 0; i < n; i++) fprintf(f, i ? ", %.6g" : "%.6g", tensor_get(t, i));
    fputs(t->size > n ? ", ...}\n" : "}\n", f);
}
