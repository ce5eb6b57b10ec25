/* test_ops_math.c - the math family (exp ... masked_select): hand-computed
 * values and gradients for every op, the error paths, and a central-difference
 * check of every vjp over the registry's sample cases. */
#include <string.h>

#include "check_main.h"
#include "ops_test.h"
#include "../autograd/internal.h" /* op_def and op_sample, for the sample-case check */

OP_FAMILY(math)

/* ------------------------------------------------------------ unary */

/* y = e^x: [1, e, e^-2]; dx = g y with g = [1, 2, -1]: [1, 2e, -e^-2] */
START_TEST(test_exp_forward_and_grad) {
    check_unary(tensor_exp, 3, (double[]){0, 1, -2}, (double[]){1, 2, -1},
                (double[]){1, M_E, exp(-2)}, (double[]){1, 2 * M_E, -exp(-2)});
}
END_TEST

/* y = ln x at [1, e, 0.5]: [0, 1, -ln 2]; dx = g / x with g = [1, 2, 3]: [1, 2/e, 6] */
START_TEST(test_log_forward_and_grad) {
    check_unary(tensor_log, 3, (double[]){1, M_E, 0.5}, (double[]){1, 2, 3},
                (double[]){0, 1, -M_LN2}, (double[]){1, 2 / M_E, 6});
}
END_TEST

/* log2 at [1, 8, 0.5]: [0, 3, -1]; dx = g / (x ln 2), g = [1, 1, 2]: [1/ln2, 1/(8 ln2), 4/ln2] */
START_TEST(test_log2_forward_and_grad) {
    check_unary(tensor_log2, 3, (double[]){1, 8, 0.5}, (double[]){1, 1, 2},
                (double[]){0, 3, -1}, (double[]){1 / M_LN2, 1 / (8 * M_LN2), 4 / M_LN2});
}
END_TEST

/* log10 at [1, 100, 0.1]: [0, 2, -1]; dx = g / (x ln 10), g = [1, 3, 1]:
 * [1/ln10, 3/(100 ln10), 10/ln10] */
START_TEST(test_log10_forward_and_grad) {
    check_unary(tensor_log10, 3, (double[]){1, 100, 0.1}, (double[]){1, 3, 1},
                (double[]){0, 2, -1}, (double[]){1 / M_LN10, 0.03 / M_LN10, 10 / M_LN10});
}
END_TEST

/* sqrt at [4, 0.25, 9]: [2, 0.5, 3]; dx = g / (2 y), g = [1, 2, 3]: [0.25, 2, 0.5] */
START_TEST(test_sqrt_forward_and_grad) {
    check_unary(tensor_sqrt, 3, (double[]){4, 0.25, 9}, (double[]){1, 2, 3},
                (double[]){2, 0.5, 3}, (double[]){0.25, 2, 0.5});
}
END_TEST

/* |x| at [-1.5, 2, 0]: [1.5, 2, 0]; dx = g sign(x), g = [1, 2, 3]: [-1, 2, 0] (0 at the kink) */
START_TEST(test_abs_forward_and_grad_zero_at_kink) {
    check_unary(tensor_abs, 3, (double[]){-1.5, 2, 0}, (double[]){1, 2, 3},
                (double[]){1.5, 2, 0}, (double[]){-1, 2, 0});
}
END_TEST

/* sign at [-1.5, 2, 0.5, 0]: [-1, 1, 1, 0]. It is a constant for autograd: its
 * output does not require grad, and y = sum(sign(x) * x) = sum |x| has
 * dy/dx = sign(x) = [-1, 1, 1, 0] (the sign factor contributes 0). */
START_TEST(test_sign_forward_is_constant_for_autograd) {
    tensor *a = leaf(SHAPE(4), (double[]){-1.5, 2, 0.5, 0});
    tensor *s = tensor_sign(a);
    ck_assert_tensor(s, ((double[]){-1, 1, 1, 0}), 0);
    ck_assert(!s->requires_grad);
    tensor *y = tensor_sum_all(tensor_mul(s, a));
    ck_assert_close(tensor_item(y), 4.0, 0);
    ck_assert_int_eq(tensor_backward(y), 0);
    ck_assert_tensor(a->grad, ((double[]){-1, 1, 1, 0}), 0);
    tape_reset();
    tensor_free(a);
}
END_TEST

/* x^2 at [-1.5, 2, 0.5]: [2.25, 4, 0.25]; dx = 2 g x, g = [1, 2, 3]: [-3, 8, 3] */
START_TEST(test_square_forward_and_grad) {
    check_unary(tensor_square, 3, (double[]){-1.5, 2, 0.5}, (double[]){1, 2, 3},
                (double[]){2.25, 4, 0.25}, (double[]){-3, 8, 3});
}
END_TEST

/* 1/x at [2, -0.5, 4]: [0.5, -2, 0.25]; dx = -g y^2, g = [1, 2, 3]: [-0.25, -8, -0.1875] */
START_TEST(test_reciprocal_forward_and_grad) {
    check_unary(tensor_reciprocal, 3, (double[]){2, -0.5, 4}, (double[]){1, 2, 3},
                (double[]){0.5, -2, 0.25}, (double[]){-0.25, -8, -0.1875});
}
END_TEST

/* x^2.5 at [4, 1, 0.25]: [32, 1, 1/32]; dx = 2.5 g x^1.5, g = [1, 2, 3]:
 * [2.5 * 8, 2 * 2.5, 3 * 2.5 / 8] = [20, 5, 0.9375] */
START_TEST(test_pow_scalar_forward_and_grad) {
    tensor *a = leaf(SHAPE(3), (double[]){4, 1, 0.25});
    tensor *y = tensor_pow_scalar(a, 2.5);
    ck_assert_tensor(y, ((double[]){32, 1, 0.03125}), 1e-12);
    backward_g(y, (double[]){1, 2, 3});
    ck_assert_tensor(a->grad, ((double[]){20, 5, 0.9375}), 1e-12);
    tape_reset();
    tensor_free(a);
}
END_TEST

/* x^0 = 1 everywhere, x = 0 included, and its gradient is 0 (not 0 * 0^-1 = NaN) */
START_TEST(test_pow_scalar_zero_exponent_grad_is_zero) {
    tensor *a = leaf(SHAPE(2), (double[]){0, 3});
    tensor *y = tensor_pow_scalar(a, 0);
    ck_assert_tensor(y, ((double[]){1, 1}), 0);
    backward_g(y, (double[]){1, 1});
    ck_assert_tensor(a->grad, ((double[]){0, 0}), 0);
    tape_reset();
    tensor_free(a);
}
END_TEST

/* clamp to [-0.5, 1] at [-2, -0.5, 0.3, 1, 3]: [-0.5, -0.5, 0.3, 1, 1];
 * g = [1, 2, 3, 4, 5]: dx = [0, 2, 3, 4, 0] (1 inside and at the bounds, 0 outside) */
START_TEST(test_clamp_forward_and_grad_bounds_inclusive) {
    tensor *a = leaf(SHAPE(5), (double[]){-2, -0.5, 0.3, 1, 3});
    tensor *y = tensor_clamp(a, -0.5, 1);
    ck_assert_tensor(y, ((double[]){-0.5, -0.5, 0.3, 1, 1}), 0);
    backward_g(y, (double[]){1, 2, 3, 4, 5});
    ck_assert_tensor(a->grad, ((double[]){0, 2, 3, 4, 0}), 0);
    tape_reset();
    tensor_free(a);
}
END_TEST

/* One-sided: clamp to [-inf, 0.5] is min(x, 0.5). */
START_TEST(test_clamp_one_sided_infinite_bound) {
    tensor *a = leaf(SHAPE(3), (double[]){-100, 0.25, 2});
    tensor *y = tensor_clamp(a, -INFINITY, 0.5);
    ck_assert_tensor(y, ((double[]){-100, 0.25, 0.5}), 0);
    backward_g(y, (double[]){1, 2, 3});
    ck_assert_tensor(a->grad, ((double[]){1, 2, 0}), 0);
    tape_reset();
    tensor_free(a);
}
END_TEST

/* ----------------------------------------------------------- binary */

/* a^b at a = [2, 9, 0.5], b = [3, 0.5, -1]: [8, 3, 2]; g = [1, 2, 3]:
 * da = g b a^(b-1) = [3 * 4, 2 * 0.5 / 3, 3 * -1 * 4] = [12, 1/3, -12]
 * db = g y ln a    = [8 ln 2, 6 ln 9, 6 ln 0.5] */
START_TEST(test_pow_forward_and_grad_both_operands) {
    tensor *a = leaf(SHAPE(3), (double[]){2, 9, 0.5});
    tensor *b = leaf(SHAPE(3), (double[]){3, 0.5, -1});
    tensor *y = tensor_pow(a, b);
    ck_assert_tensor(y, ((double[]){8, 3, 2}), 1e-12);
    backward_g(y, (double[]){1, 2, 3});
    ck_assert_tensor(a->grad, ((double[]){12, 1.0 / 3, -12}), 1e-12);
    ck_assert_tensor(b->grad, ((double[]){8 * M_LN2, 6 * log(9), -6 * M_LN2}), 1e-12);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
}
END_TEST

/* [1, 2, 4] ^ [2] (b broadcast): y = [1, 4, 16]; g = 1:
 * da = 2 a = [2, 4, 8]; db = sum y ln a = 0 + 4 ln 2 + 16 ln 4 = 36 ln 2 */
START_TEST(test_pow_grad_broadcast_exponent_sums) {
    tensor *a = leaf(SHAPE(3), (double[]){1, 2, 4});
    tensor *b = leaf(SHAPE(1), (double[]){2});
    tensor *y = tensor_pow(a, b);
    ck_assert_tensor(y, ((double[]){1, 4, 16}), 1e-12);
    backward_g(y, (double[]){1, 1, 1});
    ck_assert_tensor(a->grad, ((double[]){2, 4, 8}), 1e-12);
    ck_assert_tensor(b->grad, ((double[]){36 * M_LN2}), 1e-12);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
}
END_TEST

/* 0^2 = 0: d/db is taken as 0 there (z ln a would be 0 * -inf = NaN); da = 2 * 0 = 0;
 * and 3^0 = 1 with da = 0, db = ln 3 */
START_TEST(test_pow_grad_at_zero_base_is_finite) {
    tensor *a = leaf(SHAPE(2), (double[]){0, 3});
    tensor *b = leaf(SHAPE(2), (double[]){2, 0});
    tensor *y = tensor_pow(a, b);
    ck_assert_tensor(y, ((double[]){0, 1}), 0);
    backward_g(y, (double[]){1, 1});
    ck_assert_tensor(a->grad, ((double[]){0, 0}), 0);
    ck_assert_tensor(b->grad, ((double[]){0, log(3)}), 1e-15);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
}
END_TEST

/* a = [1, -2, 3, 0.5], b = [0, 4, 3, -1], g = [1, 2, 3, 4]:
 * maximum = [1, 4, 3, 0.5]; da = [1, 0, 1.5, 4], db = [0, 2, 1.5, 0] (the tie splits)
 * minimum = [0, -2, 3, -1]; da = [0, 2, 1.5, 0], db = [1, 0, 1.5, 4] */
START_TEST(test_maximum_minimum_grad_ties_split) {
    double av[] = {1, -2, 3, 0.5}, bv[] = {0, 4, 3, -1}, g[] = {1, 2, 3, 4};
    tensor *a = leaf(SHAPE(4), av), *b = leaf(SHAPE(4), bv);
    tensor *y = tensor_maximum(a, b);
    ck_assert_tensor(y, ((double[]){1, 4, 3, 0.5}), 0);
    backward_g(y, g);
    ck_assert_tensor(a->grad, ((double[]){1, 0, 1.5, 4}), 0);
    ck_assert_tensor(b->grad, ((double[]){0, 2, 1.5, 0}), 0);
    tape_reset();
    tensor_zero_grad(a);
    tensor_zero_grad(b);
    y = tensor_minimum(a, b);
    ck_assert_tensor(y, ((double[]){0, -2, 3, -1}), 0);
    backward_g(y, g);
    ck_assert_tensor(a->grad, ((double[]){0, 2, 1.5, 0}), 0);
    ck_assert_tensor(b->grad, ((double[]){1, 0, 1.5, 4}), 0);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
}
END_TEST

/* a [2,2] = [[1, 5], [-1, 0]], b [2] = [0.5, 2]: max = [[1, 5], [0.5, 2]];
 * g = [1, 2, 3, 4]: da = [1, 2, 0, 0]; db sums its column: [3, 4] */
START_TEST(test_maximum_grad_broadcast_row) {
    tensor *a = leaf(SHAPE(2, 2), (double[]){1, 5, -1, 0});
    tensor *b = leaf(SHAPE(2), (double[]){0.5, 2});
    tensor *y = tensor_maximum(a, b);
    ck_assert_tensor(y, ((double[]){1, 5, 0.5, 2}), 0);
    backward_g(y, (double[]){1, 2, 3, 4});
    ck_assert_tensor(a->grad, ((double[]){1, 2, 0, 0}), 0);
    ck_assert_tensor(b->grad, ((double[]){3, 4}), 0);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
}
END_TEST

START_TEST(test_maximum_propagates_nan) {
    tensor *a = tensor_from_doubles(DTYPE_F64, SHAPE(2), (double[]){NAN, 1});
    tensor *b = tensor_from_doubles(DTYPE_F64, SHAPE(2), (double[]){0, NAN});
    tensor *y = tensor_maximum(a, b), *z = tensor_minimum(a, b);
    ck_assert(isnan(tensor_get(y, 0)) && isnan(tensor_get(y, 1)));
    ck_assert(isnan(tensor_get(z, 0)) && isnan(tensor_get(z, 1)));
    tape_reset();
    tensor_free(a);
    tensor_free(b);
}
END_TEST

/* NaN passes through clamp, sign and abs. */
START_TEST(test_clamp_sign_abs_propagate_nan) {
    tensor *x = tensor_from_doubles(DTYPE_F64, SHAPE(1), (double[]){NAN});
    ck_assert(isnan(tensor_item(tensor_clamp(x, -1, 1))));
    ck_assert(isnan(tensor_item(tensor_sign(x))));
    ck_assert(isnan(tensor_item(tensor_abs(x))));
    tape_reset();
    tensor_free(x);
}
END_TEST

/* floor(a / b) at a = [7, -7, 7.5], b = [2, 2, -2]: [3, -4, -4]. A constant for
 * autograd: y = sum(floor_divide(a, b) * a) has da = floor(a / b) = [3, -4, -4],
 * and b, reached only through floor_divide, gets no gradient at all. */
START_TEST(test_floor_divide_forward_is_constant_for_autograd) {
    tensor *a = leaf(SHAPE(3), (double[]){7, -7, 7.5});
    tensor *b = leaf(SHAPE(3), (double[]){2, 2, -2});
    tensor *q = tensor_floor_divide(a, b);
    ck_assert_tensor(q, ((double[]){3, -4, -4}), 0);
    ck_assert(!q->requires_grad);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_mul(q, a))), 0);
    ck_assert_tensor(a->grad, ((double[]){3, -4, -4}), 0);
    ck_assert_ptr_null(b->grad);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
}
END_TEST

/* a mod b with the sign of b, a = [7, -7, 7.5, -1.5], b = [2, 2, -2, -4]:
 * floor(a/b) = [3, -4, -4, 0], y = a - b floor(a/b) = [1, 1, -0.5, -1.5];
 * g = [1, 2, 3, 4]: da = g; db = -g floor(a/b) = [-3, 8, 12, 0] */
START_TEST(test_remainder_forward_and_grad_both_operands) {
    tensor *a = leaf(SHAPE(4), (double[]){7, -7, 7.5, -1.5});
    tensor *b = leaf(SHAPE(4), (double[]){2, 2, -2, -4});
    tensor *y = tensor_remainder(a, b);
    ck_assert_tensor(y, ((double[]){1, 1, -0.5, -1.5}), 0);
    backward_g(y, (double[]){1, 2, 3, 4});
    ck_assert_tensor(a->grad, ((double[]){1, 2, 3, 4}), 0);
    ck_assert_tensor(b->grad, ((double[]){-3, 8, 12, 0}), 0);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
}
END_TEST

/* ------------------------------------------------- where, masked_select */

/* cond int64 [2,1] = [[1], [0]], a [3] = [1, 2, 3], b [2,3] = [10 .. 15]:
 * y = [[1, 2, 3], [13, 14, 15]]; g = [1 .. 6]: da = row 0 of g = [1, 2, 3]
 * (row 1 is not taken), db = [0, 0, 0, 4, 5, 6] */
START_TEST(test_where_int64_cond_broadcast_all_three) {
    int64_t cv[] = {1, 0};
    tensor *c = tensor_from_data(DTYPE_I64, SHAPE(2, 1), cv);
    tensor *a = leaf(SHAPE(3), (double[]){1, 2, 3});
    tensor *b = leaf(SHAPE(2, 3), (double[]){10, 11, 12, 13, 14, 15});
    tensor *y = tensor_where(c, a, b);
    ck_assert_int_eq(y->ndim, 2);
    ck_assert_tensor(y, ((double[]){1, 2, 3, 13, 14, 15}), 0);
    backward_g(y, (double[]){1, 2, 3, 4, 5, 6});
    ck_assert_tensor(a->grad, ((double[]){1, 2, 3}), 0);
    ck_assert_tensor(b->grad, ((double[]){0, 0, 0, 4, 5, 6}), 0);
    tape_reset();
    tensor_free(c);
    tensor_free(a);
    tensor_free(b);
}
END_TEST

/* A float32 condition with float64 operands: nonzero (-0.5, NaN) is true.
 * cond = [0, -0.5, NaN], a = [1, 2, 3], b = [-1] (scalar-like):
 * y = [-1, 2, 3]; g = [1, 2, 4]: da = [0, 2, 4], db = 1 */
START_TEST(test_where_float_cond_nonzero_is_true) {
    tensor *c = tensor_from_doubles(DTYPE_F32, SHAPE(3), (double[]){0, -0.5, NAN});
    tensor *a = leaf(SHAPE(3), (double[]){1, 2, 3});
    tensor *b = leaf(SHAPE(1), (double[]){-1});
    tensor *y = tensor_where(c, a, b);
    ck_assert_tensor(y, ((double[]){-1, 2, 3}), 0);
    backward_g(y, (double[]){1, 2, 4});
    ck_assert_tensor(a->grad, ((double[]){0, 2, 4}), 0);
    ck_assert_tensor(b->grad, ((double[]){1}), 0);
    tape_reset();
    tensor_free(c);
    tensor_free(a);
    tensor_free(b);
}
END_TEST

/* a [2,3] = [0.5 .. 3], mask [[1, 0, 1], [0, 0, 1]]: y = [0.5, 1.5, 3];
 * g = [1, 2, 3]: da = [1, 0, 2, 0, 0, 3] */
START_TEST(test_masked_select_forward_and_grad) {
    int64_t mv[] = {1, 0, 1, 0, 0, 1};
    tensor *m = tensor_from_data(DTYPE_I64, SHAPE(2, 3), mv);
    tensor *a = leaf(SHAPE(2, 3), (double[]){0.5, 1, 1.5, 2, 2.5, 3});
    tensor *y = tensor_masked_select(a, m);
    ck_assert_int_eq(y->ndim, 1);
    ck_assert_int_eq(y->size, 3);
    ck_assert_tensor(y, ((double[]){0.5, 1.5, 3}), 0);
    backward_g(y, (double[]){1, 2, 3});
    ck_assert_tensor(a->grad, ((double[]){1, 0, 2, 0, 0, 3}), 0);
    tape_reset();
    tensor_free(m);
    tensor_free(a);
}
END_TEST

START_TEST(test_masked_select_empty_mask_gives_empty_vector) {
    tensor *m = tensor_zeros(DTYPE_F32, SHAPE(2, 2));
    tensor *a = tensor_ones(DTYPE_F32, SHAPE(2, 2));
    tensor *y = tensor_masked_select(a, m);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(y->ndim, 1);
    ck_assert_int_eq(y->shape[0], 0);
    tape_reset();
    tensor_free(m);
    tensor_free(a);
}
END_TEST

/* float32 kernels agree with the float64 ones (the checker runs float64 only) */
START_TEST(test_float32_remainder_and_where) {
    tensor *a = tensor_from_doubles(DTYPE_F32, SHAPE(3), (double[]){7, -7, 5.5});
    tensor *b = tensor_from_doubles(DTYPE_F32, SHAPE(1), (double[]){-2});
    tensor *r = tensor_remainder(a, b);
    ck_assert_int_eq(r->dtype, DTYPE_F32);
    ck_assert_tensor(r, ((double[]){-1, -1, -0.5}), 0);
    int64_t cv[] = {0, 1, 1};
    tensor *c = tensor_from_data(DTYPE_I64, SHAPE(3), cv);
    ck_assert_tensor(tensor_where(c, a, b), ((double[]){-2, -7, 5.5}), 0);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
    tensor_free(c);
}
END_TEST

/* ------------------------------------------------------- error paths */

START_TEST(test_math_errors_dtype_int64_broadcast_null) {
    tapegrad_error_clear();
    tensor *f32 = tensor_ones(DTYPE_F32, SHAPE(3));
    tensor *f64 = tensor_ones(DTYPE_F64, SHAPE(3));
    tensor *f64b = tensor_ones(DTYPE_F64, SHAPE(4));
    tensor *i64 = tensor_zeros(DTYPE_I64, SHAPE(3));
    ck_assert_fails_with(tensor_pow(f32, f64), "pow: dtype mismatch: float32 vs float64");
    ck_assert_fails_with(tensor_remainder(f64, f32), "remainder: dtype mismatch: float64 vs float32");
    ck_assert_fails_with(tensor_exp(i64), "exp: input 0 is int64; this op needs float32 or float64");
    ck_assert_fails_with(tensor_floor_divide(f64, i64),
                         "floor_divide: input 1 is int64; this op needs float32 or float64");
    ck_assert_fails_with(tensor_maximum(f64, f64b),
                         "maximum: shapes [3] and [4] do not broadcast (dimension 0: 3 vs 4)");
    ck_assert_fails_with(tensor_minimum(f64b, f64),
                         "minimum: shapes [4] and [3] do not broadcast (dimension 0: 4 vs 3)");
    ck_assert_fails_with(tensor_log(NULL), "log: input 0 is NULL");
    ck_assert_fails_with(tensor_pow(f64, NULL), "pow: input 1 is NULL");
    /* NULL propagates without a new message: the first cause is kept */
    ck_assert_fails_with(tensor_sqrt(tensor_abs(tensor_log(NULL))), "log: input 0 is NULL");
    tensor_free(f32);
    tensor_free(f64);
    tensor_free(f64b);
    tensor_free(i64);
}
END_TEST

START_TEST(test_clamp_errors_bad_bounds) {
    tapegrad_error_clear();
    tensor *a = tensor_ones(DTYPE_F64, SHAPE(2));
    ck_assert_fails_with(tensor_clamp(a, 2, 1),
                         "clamp: bounds [2, 1] are not an interval (need lo <= hi, no NaN)");
    ck_assert_fails_with(tensor_clamp(a, NAN, 1),
                         "clamp: bounds [nan, 1] are not an interval (need lo <= hi, no NaN)");
    tensor_free(a);
}
END_TEST

START_TEST(test_where_errors) {
    tapegrad_error_clear();
    tensor *c = tensor_zeros(DTYPE_I64, SHAPE(5));
    tensor *a = tensor_ones(DTYPE_F64, SHAPE(3, 4));
    tensor *b = tensor_ones(DTYPE_F64, SHAPE(4));
    tensor *b32 = tensor_ones(DTYPE_F32, SHAPE(4));
    tensor *i64 = tensor_zeros(DTYPE_I64, SHAPE(4));
    tensor *b3 = tensor_ones(DTYPE_F64, SHAPE(3));
    ck_assert_fails_with(tensor_where(c, a, b),
                         "where: shapes [5] and [3,4] do not broadcast (dimension 1: 5 vs 4)");
    ck_assert_fails_with(tensor_where(b, a, b3),
                         "where: shapes [3,4] and [3] do not broadcast (dimension 1: 4 vs 3)");
    ck_assert_fails_with(tensor_where(b, a, b32), "where: dtype mismatch: float64 vs float32");
    ck_assert_fails_with(tensor_where(b, i64, a),
                         "where: input 1 is int64; this op needs float32 or float64");
    ck_assert_fails_with(tensor_where(NULL, a, b), "where: input 0 is NULL");
    ck_assert_fails_with(tensor_where(b, a, NULL), "where: input 2 is NULL");
    tensor_free(c);
    tensor_free(a);
    tensor_free(b);
    tensor_free(b32);
    tensor_free(i64);
    tensor_free(b3);
}
END_TEST

START_TEST(test_masked_select_errors) {
    tapegrad_error_clear();
    tensor *a = tensor_ones(DTYPE_F64, SHAPE(2, 3));
    tensor *m = tensor_ones(DTYPE_I64, SHAPE(3, 2));
    tensor *i64 = tensor_ones(DTYPE_I64, SHAPE(2, 3));
    ck_assert_fails_with(tensor_masked_select(a, m),
                         "masked_select: mask shape [3,2] differs from input shape [2,3]");
    ck_assert_fails_with(tensor_masked_select(i64, i64),
                         "masked_select: input 0 is int64; this op needs float32 or float64");
    ck_assert_fails_with(tensor_masked_select(a, NULL), "masked_select: input 1 is NULL");
    tensor_free(a);
    tensor_free(m);
    tensor_free(i64);
}
END_TEST

/* --------------------------------------- sample cases vs differences */

/* Every op of the family, every sample case, four seeds: see tests/ops_test.h. */
START_TEST(test_math_vjps_match_central_differences) {
    ck_assert_int_eq(tg_ops_math_count, 18);
    numeric_check_family(tg_ops_math, tg_ops_math_count, 1, 4, CHECK_ALL);
}
END_TEST

Suite *ops_math_suite(void) {
    Suite *s = suite_create("ops_math");
    TCase *tc = tcase_create("math");
    tcase_add_test(tc, test_exp_forward_and_grad);
    tcase_add_test(tc, test_log_forward_and_grad);
    tcase_add_test(tc, test_log2_forward_and_grad);
    tcase_add_test(tc, test_log10_forward_and_grad);
    tcase_add_test(tc, test_sqrt_forward_and_grad);
    tcase_add_test(tc, test_abs_forward_and_grad_zero_at_kink);
    tcase_add_test(tc, test_sign_forward_is_constant_for_autograd);
    tcase_add_test(tc, test_square_forward_and_grad);
    tcase_add_test(tc, test_reciprocal_forward_and_grad);
    tcase_add_test(tc, test_pow_scalar_forward_and_grad);
    tcase_add_test(tc, test_pow_scalar_zero_exponent_grad_is_zero);
    tcase_add_test(tc, test_clamp_forward_and_grad_bounds_inclusive);
    tcase_add_test(tc, test_clamp_one_sided_infinite_bound);
    tcase_add_test(tc, test_pow_forward_and_grad_both_operands);
    tcase_add_test(tc, test_pow_grad_broadcast_exponent_sums);
    tcase_add_test(tc, test_pow_grad_at_zero_base_is_finite);
    tcase_add_test(tc, test_maximum_minimum_grad_ties_split);
    tcase_add_test(tc, test_maximum_grad_broadcast_row);
    tcase_add_test(tc, test_maximum_propagates_nan);
    tcase_add_test(tc, test_clamp_sign_abs_propagate_nan);
    tcase_add_test(tc, test_floor_divide_forward_is_constant_for_autograd);
    tcase_add_test(tc, test_remainder_forward_and_grad_both_operands);
    tcase_add_test(tc, test_where_int64_cond_broadcast_all_three);
    tcase_add_test(tc, test_where_float_cond_nonzero_is_true);
    tcase_add_test(tc, test_masked_select_forward_and_grad);
    tcase_add_test(tc, test_masked_select_empty_mask_gives_empty_vector);
    tcase_add_test(tc, test_float32_remainder_and_where);
    tcase_add_test(tc, test_math_errors_dtype_int64_broadcast_null);
    tcase_add_test(tc, test_clamp_errors_bad_bounds);
    tcase_add_test(tc, test_where_errors);
    tcase_add_test(tc, test_masked_select_errors);
    tcase_add_test(tc, test_math_vjps_match_central_differences);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ops_math_suite)
