/* test_ops_compare.c - the mask family (comparisons, logical ops,
 * masked_fill): hand-computed masks and gradients, the error paths, and a
 * central-difference check of every registry sample case. */
#include <string.h>

#include "../autograd/internal.h"
#include "check_main.h"
#include "ops_test.h"

OP_FAMILY(compare)

static void assert_mask(const tensor *m, int ndim, const int64_t *shape, const double *expected) {
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m->dtype, DTYPE_I64);
    ck_assert(!m->requires_grad);
    ck_assert_int_eq(m->ndim, ndim);
    for (int d = 0; d < ndim; d++) ck_assert_int_eq(m->shape[d], shape[d]);
    ck_assert_tensor(m, expected, 0);
}

/* a = [1, 2, NaN, -0.5], b = [2, 2, 1, -1]: pair by pair
 *   eq [0,1,0,0]  ne [1,0,1,1]  lt [1,0,0,0]  le [1,1,0,0]  gt [0,0,0,1]  ge [0,1,0,1]
 * (NaN: every comparison false but ne). Inputs that require grad record no
 * node: a mask is a constant for autograd. */
START_TEST(test_comparisons_values_nan_and_no_node) {
    tensor *a = leaf(SHAPE(4), (double[]){1, 2, NAN, -0.5});
    tensor *b = leaf(SHAPE(4), (double[]){2, 2, 1, -1});
    assert_mask(tensor_eq(a, b), SHAPE(4), (double[]){0, 1, 0, 0});
    assert_mask(tensor_ne(a, b), SHAPE(4), (double[]){1, 0, 1, 1});
    assert_mask(tensor_lt(a, b), SHAPE(4), (double[]){1, 0, 0, 0});
    assert_mask(tensor_le(a, b), SHAPE(4), (double[]){1, 1, 0, 0});
    assert_mask(tensor_gt(a, b), SHAPE(4), (double[]){0, 0, 0, 1});
    assert_mask(tensor_ge(a, b), SHAPE(4), (double[]){0, 1, 0, 1});
    ck_assert_int_eq(tape_size(), 0);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
}
END_TEST

/* a [2,1] = [1, 3] against b [3] = [0, 2, 4]: gt row 0 (1 > 0, 2, 4) = [1,0,0],
 * row 1 (3 > 0, 2, 4) = [1,1,0]; le is its complement. */
START_TEST(test_comparison_broadcast) {
    tensor *a = constant(SHAPE(2, 1), (double[]){1, 3});
    tensor *b = constant(SHAPE(3), (double[]){0, 2, 4});
    assert_mask(tensor_gt(a, b), SHAPE(2, 3), (double[]){1, 0, 0, 1, 1, 0});
    assert_mask(tensor_le(b, a), SHAPE(2, 3), (double[]){1, 0, 0, 1, 1, 0});
    assert_mask(tensor_le(a, b), SHAPE(2, 3), (double[]){0, 1, 1, 0, 0, 1});
    tape_reset();
    tensor_free(a);
    tensor_free(b);
}
END_TEST

/* int64 predictions against int64 labels: eq [1,0,1,0], lt [0,0,0,1]; and
 * float32 against a float32 scalar 0: ge [1,0,1]. */
START_TEST(test_comparison_int64_and_float32) {
    tensor *p = tensor_from_data(DTYPE_I64, SHAPE(4), (int64_t[]){0, 2, 1, 1});
    tensor *l = tensor_from_data(DTYPE_I64, SHAPE(4), (int64_t[]){0, 1, 1, 2});
    assert_mask(tensor_eq(p, l), SHAPE(4), (double[]){1, 0, 1, 0});
    assert_mask(tensor_lt(p, l), SHAPE(4), (double[]){0, 0, 0, 1});
    tensor *f = tensor_from_doubles(DTYPE_F32, SHAPE(3), (double[]){0.25, -1, 3});
    tensor *z = tensor_zeros(DTYPE_F32, 0, (int64_t[]){0}); /* a scalar */
    assert_mask(tensor_ge(f, z), SHAPE(3), (double[]){1, 0, 1});
    tape_reset();
    tensor_free(p);
    tensor_free(l);
    tensor_free(f);
    tensor_free(z);
}
END_TEST

/* and/or of the int64 mask [1,0,1,0] with float [0.5, 0, 0, -2] (nonzero is
 * true): and [1,0,0,0], or [1,0,1,1]; not of [0, 2, NaN, -0.0] = [1,0,0,1]
 * (NaN is true, -0 is zero). Broadcast: [2,1] = [1,0] or [3] = [0,1,0] gives
 * [[1,1,1],[0,1,0]]. */
START_TEST(test_logical_ops_any_dtype_and_broadcast) {
    tensor *m = tensor_from_data(DTYPE_I64, SHAPE(4), (int64_t[]){1, 0, 1, 0});
    tensor *f = constant(SHAPE(4), (double[]){0.5, 0, 0, -2});
    assert_mask(tensor_logical_and(m, f), SHAPE(4), (double[]){1, 0, 0, 0});
    assert_mask(tensor_logical_or(m, f), SHAPE(4), (double[]){1, 0, 1, 1});
    tensor *n = tensor_from_doubles(DTYPE_F32, SHAPE(4), (double[]){0, 2, NAN, -0.0});
    assert_mask(tensor_logical_not(n), SHAPE(4), (double[]){1, 0, 0, 1});
    tensor *c = tensor_from_data(DTYPE_I64, SHAPE(2, 1), (int64_t[]){1, 0});
    tensor *r = tensor_from_data(DTYPE_I64, SHAPE(3), (int64_t[]){0, 1, 0});
    assert_mask(tensor_logical_or(c, r), SHAPE(2, 3), (double[]){1, 1, 1, 0, 1, 0});
    assert_mask(tensor_logical_and(c, r), SHAPE(2, 3), (double[]){0, 1, 0, 0, 0, 0});
    /* a comparison's mask feeds the logical ops: 0 < x < 2 for x = [-1, 1, 3] */
    tensor *x = constant(SHAPE(3), (double[]){-1, 1, 3});
    tensor *lo = constant(0, (int64_t[]){0}, (double[]){0}), *hi = constant(0, (int64_t[]){0}, (double[]){2});
    assert_mask(tensor_logical_and(tensor_gt(x, lo), tensor_lt(x, hi)), SHAPE(3),
                (double[]){0, 1, 0});
    tape_reset();
    tensor_free(m);
    tensor_free(f);
    tensor_free(n);
    tensor_free(c);
    tensor_free(r);
    tensor_free(x);
    tensor_free(lo);
    tensor_free(hi);
}
END_TEST

/* x [2,3] = 1..6, mask [3] = [0,1,0] broadcast over rows, value -7:
 * y = [1,-7,3, 4,-7,6]; g = [1..6]: dx = [1,0,3, 4,0,6], the zeros exact. */
START_TEST(test_masked_fill_forward_and_grad_zero_at_masked) {
    tensor *x = leaf(SHAPE(2, 3), (double[]){1, 2, 3, 4, 5, 6});
    tensor *m = tensor_from_data(DTYPE_I64, SHAPE(3), (int64_t[]){0, 1, 0});
    tensor *y = tensor_masked_fill(x, m, -7);
    ck_assert_tensor(y, ((double[]){1, -7, 3, 4, -7, 6}), 0);
    backward_g(y, (double[]){1, 2, 3, 4, 5, 6});
    ck_assert_tensor(x->grad, ((double[]){1, 0, 3, 4, 0, 6}), 0);
    ck_assert(m->grad == NULL);
    tape_reset();
    tensor_free(x);
    tensor_free(m);
}
END_TEST

/* The attention use: scores [2,2] with the upper triangle masked by -inf
 * (mask = gt(col, row)), then softmax over rows. Row 0 = [s00, -inf] gives
 * [1, 0]; row 1 = softmax(0.5, -0.5) = [1/(1+e^-1), e^-1/(1+e^-1)]. The
 * masked score gets exactly 0 gradient (not NaN), and so does row 0 as a
 * whole: its output is the constant 1. For L = sum(p * w), w = [1,2,3,4],
 * row 1's gradient is p (w - p.w): p1 = [q, 1-q], dL/ds1j = p1j (w1j - (3q + 4(1-q))). */
START_TEST(test_masked_fill_neg_inf_before_softmax) {
    tensor *s = leaf(SHAPE(2, 2), (double[]){0.3, 0.9, 0.5, -0.5});
    tensor *row = tensor_from_data(DTYPE_I64, SHAPE(2, 1), (int64_t[]){0, 1});
    tensor *col = tensor_from_data(DTYPE_I64, SHAPE(2), (int64_t[]){0, 1});
    tensor *p = tensor_softmax(tensor_masked_fill(s, tensor_gt(col, row), -INFINITY), -1);
    double q = 1 / (1 + exp(-1.0));
    ck_assert_tensor(p, ((double[]){1, 0, q, 1 - q}), 1e-15);
    backward_g(p, (double[]){1, 2, 3, 4});
    double pw = 3 * q + 4 * (1 - q);
    ck_assert_tensor(s->grad, ((double[]){0, 0, q * (3 - pw), (1 - q) * (4 - pw)}), 1e-15);
    ck_assert(s->grad && tensor_get(s->grad, 1) == 0.0);
    tape_reset();
    tensor_free(s);
    tensor_free(row);
    tensor_free(col);
}
END_TEST

/* A float mask (nonzero = true) of x's own shape, in float32. */
START_TEST(test_masked_fill_float_mask_float32) {
    tensor *x = leaf_dt(DTYPE_F32, SHAPE(4), (double[]){1, 2, 3, 4});
    tensor *m = tensor_from_doubles(DTYPE_F32, SHAPE(4), (double[]){0.5, 0, -1, 0});
    tensor *y = tensor_masked_fill(x, m, 0.25);
    ck_assert_int_eq(y->dtype, DTYPE_F32);
    ck_assert_tensor(y, ((double[]){0.25, 2, 0.25, 4}), 0);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_tensor(x->grad, ((double[]){0, 1, 0, 1}), 0);
    tape_reset();
    tensor_free(x);
    tensor_free(m);
}
END_TEST

START_TEST(test_compare_errors) {
    tapegrad_error_clear();
    tensor *f64 = tensor_ones(DTYPE_F64, SHAPE(3));
    tensor *f64b = tensor_ones(DTYPE_F64, SHAPE(4));
    tensor *f32 = tensor_ones(DTYPE_F32, SHAPE(3));
    tensor *i64 = tensor_zeros(DTYPE_I64, SHAPE(3));
    tensor *x = tensor_ones(DTYPE_F64, SHAPE(2, 3));
    tensor *m3 = tensor_zeros(DTYPE_I64, SHAPE(2, 2, 3));
    tensor *m4 = tensor_zeros(DTYPE_I64, SHAPE(4));
    ck_assert_fails_with(tensor_eq(f64, f32), "eq: dtype mismatch: float64 vs float32");
    ck_assert_fails_with(tensor_lt(i64, f64), "lt: dtype mismatch: int64 vs float64");
    ck_assert_fails_with(tensor_ge(f64, i64), "ge: dtype mismatch: float64 vs int64");
    ck_assert_fails_with(tensor_gt(f64, f64b),
                         "gt: shapes [3] and [4] do not broadcast (dimension 0: 3 vs 4)");
    ck_assert_fails_with(tensor_ne(NULL, f64), "ne: input 0 is NULL");
    ck_assert_fails_with(tensor_le(f64, NULL), "le: input 1 is NULL");
    ck_assert_fails_with(tensor_logical_and(f64, f64b),
                         "logical_and: shapes [3] and [4] do not broadcast (dimension 0: 3 vs 4)");
    ck_assert_fails_with(tensor_logical_or(f64, NULL), "logical_or: input 1 is NULL");
    ck_assert_fails_with(tensor_logical_not(NULL), "logical_not: input 0 is NULL");
    ck_assert_fails_with(tensor_masked_fill(i64, i64, 0),
                         "masked_fill: input 0 is int64; this op needs float32 or float64");
    ck_assert_fails_with(tensor_masked_fill(x, m3, 0),
                         "masked_fill: mask [2,2,3] does not broadcast to x's shape [2,3]");
    ck_assert_fails_with(tensor_masked_fill(x, m4, 0),
                         "masked_fill: shapes [2,3] and [4] do not broadcast (dimension 1: 3 vs 4)");
    ck_assert_fails_with(tensor_masked_fill(x, NULL, 0), "masked_fill: input 1 is NULL");
    /* NULL propagates: the first cause is kept */
    ck_assert_fails_with(tensor_masked_fill(x, tensor_eq(NULL, f64), 0), "eq: input 0 is NULL");
    tensor_free(f64);
    tensor_free(f64b);
    tensor_free(f32);
    tensor_free(i64);
    tensor_free(x);
    tensor_free(m3);
    tensor_free(m4);
}
END_TEST

/* Every op of the family, every sample case, four seeds: see tests/ops_test.h. */
START_TEST(test_compare_samples_match_central_differences) {
    ck_assert_int_eq(tg_ops_compare_count, 10);
    ck_assert_int_ge(numeric_check_family(tg_ops_compare, tg_ops_compare_count, 1, 4, CHECK_ALL), 160);
}
END_TEST

Suite *ops_compare_suite(void) {
    Suite *s = suite_create("ops_compare");
    TCase *tc = tcase_create("compare");
    tcase_add_test(tc, test_comparisons_values_nan_and_no_node);
    tcase_add_test(tc, test_comparison_broadcast);
    tcase_add_test(tc, test_comparison_int64_and_float32);
    tcase_add_test(tc, test_logical_ops_any_dtype_and_broadcast);
    tcase_add_test(tc, test_masked_fill_forward_and_grad_zero_at_masked);
    tcase_add_test(tc, test_masked_fill_neg_inf_before_softmax);
    tcase_add_test(tc, test_masked_fill_float_mask_float32);
    tcase_add_test(tc, test_compare_errors);
    tcase_add_test(tc, test_compare_samples_match_central_differences);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ops_compare_suite)
