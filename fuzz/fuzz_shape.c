/* fuzz_shape.c - libFuzzer target for the shape logic: broadcasting,
 * reshape (with -1), permute, reductions over axes and matmul, on shapes read
 * from the input. Every call must either succeed with the shape the rules
 * give or fail with a message; nothing may crash, leak or trip a sanitizer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tapegrad.h"

typedef struct {
    const uint8_t *p;
    size_t n;
} reader;

static int next(reader *r) {
    if (r->n == 0) return 0;
    r->n--;
    return *r->p++;
}

/* A shape of up to 9 dims (one more than allowed, to reach the error) with
 * sizes 0..4, and up to 64 elements so tensors stay small. */
static int read_shape(reader *r, int64_t *shape) {
    int nd = next(r) % 10;
    int64_t total = 1;
    for (int i = 0; i < nd; i++) {
        shape[i] = next(r) % 5;
        if (total * (shape[i] ? shape[i] : 1) > 64) shape[i] = 1;
        total *= shape[i] ? shape[i] : 1;
    }
    return nd;
}

static void must_have_error(const tensor *t) {
    if (!t && !tapegrad_error()) abort(); /* a failure without a message */
    tapegrad_error_clear();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    reader r = {data, size};
    int64_t sa[10], sb[10];
    int na = read_shape(&r, sa), nb = read_shape(&r, sb);
    tensor *a = tensor_new(DTYPE_F64, na, sa);
    must_have_error(a);
    tensor *b = tensor_new(DTYPE_F64, nb, sb);
    must_have_error(b);
    if (a && b) {
        tensor_set_requires_grad(a, true);
        tensor *s = tensor_add(a, b);
        if (s && s->ndim != (na > nb ? na : nb)) abort();
        must_have_error(s);
        tensor *m = tensor_matmul(a, b);
        must_have_error(m);
        int64_t target[10];
        int nt = read_shape(&r, target);
        if (nt > 0 && next(&r) % 2) target[next(&r) % nt] = -1;
        tensor *re = tensor_reshape(a, nt, target);
        if (re && re->size != a->size) abort();
        must_have_error(re);
        int perm[10], axes[10];
        for (int i = 0; i < 10; i++) perm[i] = (next(&r) % 12) - 2, axes[i] = (next(&r) % 12) - 6;
        must_have_error(tensor_permute(a, perm));
        tensor *sum = tensor_sum(a, axes, next(&r) % 4, next(&r) % 2);
        must_have_error(sum);
        if (sum && sum->requires_grad && sum->size == 1) {
            if (tensor_backward(sum) != 0) abort();
        }
    }
    tensor_free(a);
    tensor_free(b);
    tape_release();
    return 0;
}
