/* test_core.c - tensors, the tape, backward, broadcasting and the first ops,
 * against hand-computed values. */
#include <string.h>

#include "check_main.h"

static tensor *leaf(int ndim, const int64_t *shape, const double *v) {
    tensor *t = tensor_from_doubles(DTYPE_F64, ndim, shape, v);
    tensor_set_requires_grad(t, true);
    return t;
}

/* y = sum(a * b + a), a = [1.5, -2, 0.25], b = [3, 0.5, -4]:
 * dy/da = b + 1 = [4, 1.5, -3], dy/db = a. The value a is used twice. */
START_TEST(test_mul_add_grad_value_used_twice) {
    tensor *a = leaf(SHAPE(3), (double[]){1.5, -2, 0.25});
    tensor *b = leaf(SHAPE(3), (double[]){3, 0.5, -4});
    tensor *y = tensor_sum_all(tensor_add(tensor_mul(a, b), a));
    ck_assert_ptr_nonnull(y);
    ck_assert_close(tensor_item(y), 4.5 - 1 - 1 + 1.5 - 2 + 0.25, 1e-12);
    ck_assert_int_eq(tensor_backward(y), 0);
    ck_assert_tensor(a->grad, ((double[]){4, 1.5, -3}), 1e-12);
    ck_assert_tensor(b->grad, ((double[]){1.5, -2, 0.25}), 1e-12);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
}
END_TEST

/* [3] + [2,3]: the [3] operand's gradient sums over the broadcast rows. */
START_TEST(test_add_grad_broadcast_row) {
    tensor *a = leaf(SHAPE(3), (double[]){1, 2, 3});
    tensor *b = leaf(SHAPE(2, 3), (double[]){0.5, -1, 2, 4, 0.25, -3});
    tensor *w = tensor_from_doubles(DTYPE_F64, SHAPE(2, 3), (double[]){1, 2, 3, 4, 5, 6});
    tensor *y = tensor_sum_all(tensor_mul(tensor_add(a, b), w));
    ck_assert_int_eq(tensor_backward(y), 0);
    ck_assert_tensor(a->grad, ((double[]){5, 7, 9}), 1e-12);
    ck_assert_tensor(b->grad, ((double[]){1, 2, 3, 4, 5, 6}), 1e-12);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
    tensor_free(w);
}
END_TEST

/* matmul [2,3] @ [3,2] by hand; dA = G B^T, dB = A^T G with G = ones. */
START_TEST(test_matmul_forward_and_grad) {
    tensor *a = leaf(SHAPE(2, 3), (double[]){1, 2, 3, 4, 5, 6});
    tensor *b = leaf(SHAPE(3, 2), (double[]){0.5, -1, 2, 0, -3, 1});
    tensor *c = tensor_matmul(a, b);
    ck_assert_tensor(c, ((double[]){-4.5, 2, -6, 2}), 1e-12);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(c)), 0);
    ck_assert_tensor(a->grad, ((double[]){-0.5, 2, -2, -0.5, 2, -2}), 1e-12);
    ck_assert_tensor(b->grad, ((double[]){5, 5, 7, 7, 9, 9}), 1e-12);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
}
END_TEST

START_TEST(test_matmul_error_names_shapes) {
    tapegrad_error_clear();
    tensor *a = tensor_zeros(DTYPE_F32, SHAPE(3, 4));
    tensor *b = tensor_zeros(DTYPE_F32, SHAPE(5, 2));
    ck_assert_ptr_null(tensor_matmul(a, b));
    ck_assert_str_eq(tapegrad_error(), "matmul: inner dimensions differ: [3,4] @ [5,2]");
    tapegrad_error_clear();
    tensor_free(a);
    tensor_free(b);
}
END_TEST

Suite *core_suite(void) {
    Suite *s = suite_create("core");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_mul_add_grad_value_used_twice);
    tcase_add_test(tc, test_add_grad_broadcast_row);
    tcase_add_test(tc, test_matmul_forward_and_grad);
    tcase_add_test(tc, test_matmul_error_names_shapes);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(core_suite)
