/* test_memory.c - memory stays flat across training steps: the tape's arena
 * is reused, so after warm-up a step allocates nothing new (measured through
 * jemalloc's own stats.allocated). */
#include <unistd.h>

#include "check_main.h"

/* One step of least squares on a linear model: loss = mean((x w + b - t)^2),
 * then w -= lr dw, b -= lr db outside the tape. Returns the loss. */
static double train_step(tensor *x, tensor *w, tensor *b, tensor *t) {
    tensor *d = tensor_sub(tensor_add(tensor_matmul(x, w), b), t);
    tensor *loss = tensor_mean_all(tensor_mul(d, d));
    if (!loss || tensor_backward(loss)) return NAN;
    double value = tensor_item(loss);
    tape_no_grad_begin();
    float *wd = w->data, *gw = w->grad->data, *bd = b->data, *gb = b->grad->data;
    for (int64_t i = 0; i < w->size; i++) wd[i] -= 0.05f * gw[i];
    for (int64_t i = 0; i < b->size; i++) bd[i] -= 0.05f * gb[i];
    tape_no_grad_end();
    tensor_zero_grad(w);
    tensor_zero_grad(b);
    tape_reset();
    return value;
}

START_TEST(test_memory_flat_over_10000_steps) {
    rng g;
    rng_seed(&g, 11, 0);
    tensor *x = tensor_randn(&g, DTYPE_F32, SHAPE(8, 4), 0, 1);
    tensor *t = tensor_randn(&g, DTYPE_F32, SHAPE(8, 3), 0, 1);
    tensor *w = tensor_randn(&g, DTYPE_F32, SHAPE(4, 3), 0, 0.1);
    tensor *b = tensor_zeros(DTYPE_F32, SHAPE(3));
    tensor_set_requires_grad(w, true);
    tensor_set_requires_grad(b, true);
    double first = 0, last = 0;
    for (int i = 0; i < 100; i++) {
        double l = train_step(x, w, b, t);
        if (i == 0) first = l;
    }
    int64_t warm = tapegrad_allocated_bytes();
    ck_assert_int_gt(warm, 0);
    for (int i = 0; i < 10000; i++) last = train_step(x, w, b, t);
    int64_t after = tapegrad_allocated_bytes();
    ck_assert_msg(after == warm, "allocated bytes changed from %lld to %lld over 10,000 steps",
                  (long long)warm, (long long)after);
    ck_assert_msg(isfinite(last) && last < first, "training did not lower the loss: %g -> %g", first,
                  last);
    tensor_free(x);
    tensor_free(t);
    tensor_free(w);
    tensor_free(b);
}
END_TEST

/* 10^12 floats (4 TB) were granted under overcommit and the zeroing brought
 * the OOM killer: a request over the ceiling is refused before the
 * allocator is asked, with the op, dtype and shape, and the library goes on
 * working. The default ceiling is the physical memory. */
START_TEST(test_alloc_over_the_limit_refused_with_op_and_shape) {
    tapegrad_error_clear();
    size_t phys = (size_t)sysconf(_SC_PHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE);
    ck_assert_uint_eq(tapegrad_alloc_limit(), phys);
    ck_assert_ptr_null(tensor_zeros(DTYPE_F32, SHAPE(1000000000000)));
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "tensor_new: out of memory: allocation of "
                                                   "4000000000000 bytes refused for a float32 "
                                                   "[1000000000000] tensor, over the limit of "));
    tapegrad_error_clear();

    tapegrad_set_alloc_limit((size_t)1 << 30);
    ck_assert_uint_eq(tapegrad_alloc_limit(), (size_t)1 << 30);
    ck_assert_fails_with(tensor_zeros(DTYPE_F64, SHAPE(1 << 14, 1 << 14)),
                         "tensor_new: out of memory: allocation of 2147483648 bytes refused for a "
                         "float64 [16384,16384] tensor, over the limit of 1073741824 bytes "
                         "(tapegrad_set_alloc_limit)");
    /* an op's output: [65536,1] + [1,65536] broadcasts to 16 GiB */
    tensor *a = tensor_ones(DTYPE_F32, SHAPE(65536, 1));
    tensor *b = tensor_ones(DTYPE_F32, SHAPE(1, 65536));
    ck_assert_fails_with(tensor_add(a, b),
                         "add: out of memory: allocation of 17179869184 bytes refused for a "
                         "float32 [65536,65536] tensor, over the limit of 1073741824 bytes "
                         "(tapegrad_set_alloc_limit)");
    tensor *c = tensor_add(a, a); /* what fits still works */
    ck_assert_ptr_nonnull(c);
    ck_assert_double_eq(tensor_get(c, 65535), 2.0);
    tape_reset();
    tapegrad_set_alloc_limit(0); /* back to the default */
    ck_assert_uint_eq(tapegrad_alloc_limit(), phys);
    tensor_free(a);
    tensor_free(b);
}
END_TEST

Suite *memory_suite(void) {
    Suite *s = suite_create("memory");
    TCase *tc = tcase_create("memory");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_memory_flat_over_10000_steps);
    tcase_add_test(tc, test_alloc_over_the_limit_refused_with_op_and_shape);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(memory_suite)
