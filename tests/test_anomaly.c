/* test_anomaly.c - anomaly mode names the first node whose forward output or
 * backward gradient holds a NaN or an Inf. */
#include <string.h>

#include "check_main.h"

/* A small network: h = x W; d = h - h (all zero); q = d / d is 0/0 = NaN.
 * Tape: 0 matmul, 1 sub, 2 div. */
START_TEST(test_anomaly_names_div_zero_by_zero) {
    tensor *x = tensor_from_doubles(DTYPE_F32, SHAPE(2, 2), (double[]){1, 2, 3, 4});
    tensor *w = tensor_from_doubles(DTYPE_F32, SHAPE(2, 2), (double[]){0.5, -1, 2, 0.25});
    tensor_set_requires_grad(w, true);
    tape_reset();
    tapegrad_error_clear();
    tape_set_anomaly(true);
    tensor *h = tensor_matmul(x, w);
    tensor *d = tensor_sub(h, h);
    tensor *q = tensor_div(d, d);
    tensor *loss = tensor_sum_all(q);
    tape_set_anomaly(false);
    ck_assert_ptr_nonnull(h);
    ck_assert_ptr_nonnull(d);
    ck_assert_ptr_null(q);
    ck_assert_ptr_null(loss);
    ck_assert_str_eq(tapegrad_error(),
                     "anomaly: forward of div (tape position 2, inputs [2,2], [2,2]) produced NaN or Inf");
    tapegrad_error_clear();
    /* without anomaly mode the NaN flows silently */
    tensor *q2 = tensor_div(tensor_sub(h, h), tensor_sub(h, h));
    ck_assert_ptr_nonnull(q2);
    ck_assert(isnan(tensor_get(q2, 0)));
    tape_reset();
    tensor_free(x);
    tensor_free(w);
}
END_TEST

/* Finite forward, infinite gradient: y = sum(a / b * 0 + c) has a finite
 * value but with b = 1e-30 in float32 the gradient -g a / b^2 overflows. */
START_TEST(test_anomaly_names_backward_node) {
    tensor *a = tensor_from_doubles(DTYPE_F32, SHAPE(2), (double[]){1, 2});
    tensor *b = tensor_from_doubles(DTYPE_F32, SHAPE(2), (double[]){1e-30, 3});
    tensor_set_requires_grad(a, true);
    tensor_set_requires_grad(b, true);
    tape_reset();
    tapegrad_error_clear();
    tape_set_anomaly(true);
    tensor *r = tensor_div(a, b);              /* 1e30: finite in float32 */
    tensor *loss = tensor_sum_all(tensor_mul_scalar(r, 1e-30));
    ck_assert_ptr_nonnull(loss);
    ck_assert_int_eq(tensor_backward(loss), -1);
    tape_set_anomaly(false);
    ck_assert_str_eq(tapegrad_error(), "anomaly: backward of div (tape position 0, inputs [2], [2]) produced "
                                       "NaN or Inf in the gradient of input 1");
    tapegrad_error_clear();
    tape_reset();
    tensor_free(a);
    tensor_free(b);
}
END_TEST

/* log(0) inside a small network: h = relu(x W) has a zero where x W < 0;
 * log(h) is -inf there. Tape: 0 matmul, 1 relu, 2 log. */
START_TEST(test_anomaly_names_log_of_zero) {
    tensor *x = tensor_from_doubles(DTYPE_F64, SHAPE(2, 2), (double[]){1, 2, 3, 4});
    tensor *w = tensor_from_doubles(DTYPE_F64, SHAPE(2, 3), (double[]){0.5, -1, 2, 0.25, -3, 1});
    tensor_set_requires_grad(w, true);
    tape_reset();
    tapegrad_error_clear();
    tape_set_anomaly(true);
    tensor *h = tensor_relu(tensor_matmul(x, w));
    tensor *y = tensor_log(h);
    tape_set_anomaly(false);
    ck_assert_ptr_nonnull(h);
    ck_assert_ptr_null(y);
    ck_assert_str_eq(tapegrad_error(),
                     "anomaly: forward of log (tape position 2, inputs [2,3]) produced NaN or Inf");
    tapegrad_error_clear();
    tape_reset();
    tensor_free(x);
    tensor_free(w);
}
END_TEST

/* sqrt(0) is finite, its gradient 1/(2 sqrt 0) is not: named in backward. */
START_TEST(test_anomaly_names_sqrt_gradient_at_zero) {
    tensor *a = tensor_from_doubles(DTYPE_F64, SHAPE(3), (double[]){4, 0, 1});
    tensor_set_requires_grad(a, true);
    tape_reset();
    tapegrad_error_clear();
    tape_set_anomaly(true);
    tensor *loss = tensor_sum_all(tensor_sqrt(tensor_mul_scalar(a, 2)));
    ck_assert_ptr_nonnull(loss);
    ck_assert_int_eq(tensor_backward(loss), -1);
    tape_set_anomaly(false);
    ck_assert_str_eq(tapegrad_error(), "anomaly: backward of sqrt (tape position 1, inputs [3]) produced "
                                       "NaN or Inf in the gradient of input 0");
    tapegrad_error_clear();
    tape_reset();
    tensor_free(a);
}
END_TEST

Suite *anomaly_suite(void) {
    Suite *s = suite_create("anomaly");
    TCase *tc = tcase_create("anomaly");
    tcase_add_test(tc, test_anomaly_names_div_zero_by_zero);
    tcase_add_test(tc, test_anomaly_names_backward_node);
    tcase_add_test(tc, test_anomaly_names_log_of_zero);
    tcase_add_test(tc, test_anomaly_names_sqrt_gradient_at_zero);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(anomaly_suite)
