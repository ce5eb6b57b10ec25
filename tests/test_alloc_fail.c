/* test_alloc_fail.c - allocation failure anywhere in a small training step
 * gives a clean error: no crash, no leak. The test hook tg_mem_fail_after(k)
 * makes the k-th allocation from now fail; the test walks k = 0, 1, 2, ...
 * until a step completes without reaching the failing allocation. */
#include <string.h>

#include "../autograd/internal.h"
#include "check_main.h"

/* Creates a linear model and data, runs forward + backward, frees all.
 * Returns 0 on success, -1 on a reported error. */
static int small_step(void) {
    int rc = -1;
    tensor *x = tensor_from_doubles(DTYPE_F32, SHAPE(2, 3), (double[]){1, 2, 3, -1, 0.5, 2});
    tensor *w = tensor_from_doubles(DTYPE_F32, SHAPE(3, 2), (double[]){0.1, -0.2, 0.3, 0.4, -0.5, 0.6});
    tensor *b = tensor_zeros(DTYPE_F32, SHAPE(2));
    if (x && w && b && tensor_set_requires_grad(w, true) == 0 && tensor_set_requires_grad(b, true) == 0) {
        tensor *y = tensor_add(tensor_matmul(x, w), b);
        tensor *loss = tensor_mean_all(tensor_mul(y, tensor_transpose(tensor_permute(y, (int[]){1, 0}), 0, 1)));
        if (loss && tensor_backward(loss) == 0) rc = 0;
    }
    tensor_free(x);
    tensor_free(w);
    tensor_free(b);
    tape_release();
    return rc;
}

START_TEST(test_every_allocation_of_a_step_can_fail_cleanly) {
    /* A first full step lets OpenBLAS, OpenMP and the allocator's own
     * statistics make their one-time allocations before the baseline. */
    ck_assert_int_eq(small_step(), 0);
    int64_t baseline = tapegrad_allocated_bytes();
    int failures_seen = 0, in_vjp = 0;
    for (int64_t k = 0; k < 1000; k++) {
        tapegrad_error_clear();
        tg_mem_fail_after(k);
        int rc = small_step();
        tg_mem_fail_after(-1);
        if (rc == 0) break; /* the step needed fewer than k + 1 allocations */
        failures_seen++;
        ck_assert_ptr_nonnull(tapegrad_error());
        ck_assert_msg(strstr(tapegrad_error(), "out of memory: allocation of "), "allocation %lld: '%s'", (long long)k,
                      tapegrad_error());
        if (strstr(tapegrad_error(), "tensor_backward: the vjp of ")) in_vjp++;
        ck_assert_msg(tapegrad_allocated_bytes() == baseline,
                      "allocation %lld failing leaked %lld bytes", (long long)k,
                      (long long)(tapegrad_allocated_bytes() - baseline));
    }
    tapegrad_error_clear();
    /* Tensors, arena chunks, tape nodes and leaf grads: a real count. */
    ck_assert_int_ge(failures_seen, 8);
    /* the hook reaches arena blocks, so allocations inside vjps fail too and
     * backward reports them, naming the op */
    ck_assert_int_ge(in_vjp, 1);
    ck_assert_int_eq(small_step(), 0);
    ck_assert_int_eq(tapegrad_allocated_bytes(), baseline);
}
END_TEST

Suite *alloc_fail_suite(void) {
    Suite *s = suite_create("alloc_fail");
    TCase *tc = tcase_create("alloc_fail");
    tcase_add_test(tc, test_every_allocation_of_a_step_can_fail_cleanly);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(alloc_fail_suite)
