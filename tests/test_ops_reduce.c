/* test_ops_reduce.c - the reduction family (sum, mean, max, min, var, std,
 * logsumexp, argmax) against hand-computed values and gradients, every error
 * path, the sum fast paths bit for bit against a plain loop, and a central-
 * difference check of every registry sample case. */
#include <string.h>

#include "../autograd/internal.h"
#include "check_main.h"
#include "ops_test.h"

START_TEST(test_reduce_samples_match_central_differences) {
    static const char *ops[] = {"sum", "mean", "max", "min", "var", "std", "logsumexp", "argmax"};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        numeric_check_op(ops[i], 20261125, 1, CHECK_ALL);
    ck_assert_ptr_null(tapegrad_error());
}
END_TEST

/* ----------------------------------------------------------- sum, mean */

/* mean over axis 0 of [[1, 2, 6], [3, -4, 0]] = [2, -1, 3];
 * da = g / 2 broadcast over the rows: g = [2, 4, -6] -> [[1, 2, -3], [1, 2, -3]]. */
START_TEST(test_mean_axis0_forward_and_grad) {
    tensor *a = leaf(SHAPE(2, 3), (double[]){1, 2, 6, 3, -4, 0});
    tensor *y = tensor_mean(a, (int[]){0}, 1, false);
    ck_assert_int_eq(y->ndim, 1);
    ck_assert_tensor(y, ((double[]){2, -1, 3}), 1e-12);
    tensor *g = constant(SHAPE(3), (double[]){2, 4, -6});
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(a->grad, ((double[]){1, 2, -3, 1, 2, -3}), 1e-12);
    tape_reset();
    tensor_free(a);
    tensor_free(g);
}
END_TEST

/* sum over axes {0, 2} of a [2,2,2] with keepdim: shape [1,2,1],
 * y[j] = sum_{i,k} a[i,j,k] = 1+2+5+6 = 14 and 3+4+7+8 = 22; da = g[j]. */
START_TEST(test_sum_two_axes_keepdim_forward_and_grad) {
    tensor *a = leaf(SHAPE(2, 2, 2), (double[]){1, 2, 3, 4, 5, 6, 7, 8});
    tensor *y = tensor_sum(a, (int[]){0, -1}, 2, true);
    ck_assert_int_eq(y->ndim, 3);
    ck_assert_int_eq(y->shape[0], 1);
    ck_assert_int_eq(y->shape[1], 2);
    ck_assert_int_eq(y->shape[2], 1);
    ck_assert_tensor(y, ((double[]){14, 22}), 1e-12);
    tensor *g = constant(SHAPE(1, 2, 1), (double[]){0.5, -2});
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(a->grad, ((double[]){0.5, 0.5, -2, -2, 0.5, 0.5, -2, -2}), 1e-12);
    tape_reset();
    tensor_free(a);
    tensor_free(g);
}
END_TEST

/* The fast paths (last axes, leading axes, middle block) add each output's
 * elements in row-major order, as the plain loop did: float32 results must
 * be identical bit for bit, forward and backward, for every axis subset,
 * on a tensor big enough to take the threaded path. */
static void sum_reference(const float *x, const int64_t *shape, uint32_t mask, float *out,
                          int64_t nout) {
    int64_t n = shape[0] * shape[1] * shape[2];
    if (nout == 1) {
        double acc = 0;
        for (int64_t i = 0; i < n; i++) acc += x[i];
        out[0] = (float)acc;
        return;
    }
    memset(out, 0, (size_t)nout * sizeof *out);
    for (int64_t i = 0; i < n; i++) {
        int64_t c[3] = {i / (shape[1] * shape[2]), i / shape[2] % shape[1], i % shape[2]}, o = 0;
        for (int d = 0; d < 3; d++)
            if (!((mask >> d) & 1)) o = o * shape[d] + c[d];
        out[o] += x[i];
    }
}

START_TEST(test_sum_fast_paths_bit_identical_to_plain_loop) {
    static const int64_t shape[3] = {40, 33, 29};
    rng g;
    rng_seed(&g, 7, 1);
    tensor *x = tensor_rand(&g, DTYPE_F32, 3, shape, -3.0, 3.0);
    float *ref = malloc(sizeof(float) * 40 * 33 * 29);
    for (uint32_t mask = 1; mask < 8; mask++) {
        int axes[3], na = 0;
        for (int d = 0; d < 3; d++)
            if ((mask >> d) & 1) axes[na++] = d;
        tensor *y = tensor_sum(x, axes, na, false);
        ck_assert_ptr_nonnull(y);
        sum_reference(x->data, shape, mask, ref, y->size);
        ck_assert_msg(memcmp(ref, y->data, (size_t)y->size * sizeof(float)) == 0,
                      "sum over mask %u differs from the plain loop", mask);
        tape_reset();
    }
    free(ref);
    tensor_free(x);
}
END_TEST

/* Backward of sum over the leading axis (block path) and over the last
 * axis: every input element receives its output's gradient. */
START_TEST(test_sum_grad_leading_and_last_axis) {
    tensor *a = leaf(SHAPE(3, 2), (double[]){1, 2, 3, 4, 5, 6});
    tensor *y0 = tensor_sum(a, (int[]){0}, 1, false);
    ck_assert_tensor(y0, ((double[]){9, 12}), 1e-12);
    tensor *y1 = tensor_sum(a, (int[]){1}, 1, true);
    ck_assert_tensor(y1, ((double[]){3, 7, 11}), 1e-12);
    tensor *g0 = constant(SHAPE(2), (double[]){1, -1});
    ck_assert_int_eq(tensor_backward_with(y0, g0), 0);
    ck_assert_tensor(a->grad, ((double[]){1, -1, 1, -1, 1, -1}), 1e-12);
    tensor *g1 = constant(SHAPE(3, 1), (double[]){10, 20, 30});
    ck_assert_int_eq(tensor_backward_with(y1, g1), 0);
    ck_assert_tensor(a->grad, ((double[]){11, 9, 21, 19, 31, 29}), 1e-12);
    tape_reset();
    tensor_free(a);
    tensor_free(g0);
    tensor_free(g1);
}
END_TEST

/* ------------------------------------------------------------ max, min */

/* max over axis 1 of [[1, 5, -2], [4, 0.5, 3]] = [5, 4]; g = [2, -3] goes to
 * the arg-maxima (0,1) and (1,0). */
START_TEST(test_max_axis1_forward_and_grad) {
    tensor *a = leaf(SHAPE(2, 3), (double[]){1, 5, -2, 4, 0.5, 3});
    tensor *y = tensor_max(a, (int[]){1}, 1, false);
    ck_assert_tensor(y, ((double[]){5, 4}), 0);
    tensor *g = constant(SHAPE(2), (double[]){2, -3});
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(a->grad, ((double[]){0, 2, 0, -3, 0, 0}), 0);
    tape_reset();
    tensor_free(a);
    tensor_free(g);
}
END_TEST

/* min over axis 0 with keepdim of the same a = [[1, 0.5, -2]], shape [1,3];
 * g = [1, 2, 3] lands on (0,0), (1,1), (0,2). */
START_TEST(test_min_axis0_keepdim_forward_and_grad) {
    tensor *a = leaf(SHAPE(2, 3), (double[]){1, 5, -2, 4, 0.5, 3});
    tensor *y = tensor_min(a, (int[]){0}, 1, true);
    ck_assert_int_eq(y->ndim, 2);
    ck_assert_int_eq(y->shape[0], 1);
    ck_assert_tensor(y, ((double[]){1, 0.5, -2}), 0);
    tensor *g = constant(SHAPE(1, 3), (double[]){1, 2, 3});
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(a->grad, ((double[]){1, 0, 3, 0, 2, 0}), 0);
    tape_reset();
    tensor_free(a);
    tensor_free(g);
}
END_TEST

/* A tie: max([3, 1, 3]) = 3 and the gradient 1 splits evenly, 0.5 each
 * (central differences see exactly this at a tie). */
START_TEST(test_max_tie_splits_gradient_evenly) {
    tensor *a = leaf(SHAPE(3), (double[]){3, 1, 3});
    tensor *y = tensor_max(a, NULL, 0, false);
    ck_assert_close(tensor_item(y), 3, 0);
    ck_assert_int_eq(tensor_backward(y), 0);
    ck_assert_tensor(a->grad, ((double[]){0.5, 0, 0.5}), 0);
    tape_reset();
    tensor_free(a);
}
END_TEST

/* NaN propagates through max and min, and passes no gradient. */
START_TEST(test_max_min_propagate_nan) {
    tensor *a = leaf(SHAPE(3), (double[]){1, NAN, 2});
    tensor *y = tensor_max(a, NULL, 0, false);
    ck_assert(isnan(tensor_item(y)));
    ck_assert(isnan(tensor_item(tensor_min(a, NULL, 0, false))));
    ck_assert_int_eq(tensor_backward(y), 0);
    ck_assert_tensor(a->grad, ((double[]){0, 0, 0}), 0);
    tape_reset();
    tensor_free(a);
}
END_TEST

/* ------------------------------------------------------------ var, std */

/* a = [1, 2, 3, 4]: mean 2.5, sum of squares 5.
 * var(correction 1) = 5/3, da = 2 (a - 2.5) / 3 = [-1, -1/3, 1/3, 1];
 * var(correction 0) = 5/4, da = 2 (a - 2.5) / 4 = [-0.75, -0.25, 0.25, 0.75]. */
START_TEST(test_var_corrections_forward_and_grad) {
    tensor *a = leaf(SHAPE(4), (double[]){1, 2, 3, 4});
    tensor *y = tensor_var(a, NULL, 0, 1, false);
    ck_assert_close(tensor_item(y), 5.0 / 3, 1e-12);
    ck_assert_int_eq(tensor_backward(y), 0);
    ck_assert_tensor(a->grad, ((double[]){-1, -1.0 / 3, 1.0 / 3, 1}), 1e-12);
    tape_reset();
    tensor_zero_grad(a);
    y = tensor_var(a, (int[]){0}, 1, 0, true);
    ck_assert_int_eq(y->ndim, 1);
    ck_assert_close(tensor_item(y), 1.25, 1e-12);
    ck_assert_int_eq(tensor_backward(y), 0);
    ck_assert_tensor(a->grad, ((double[]){-0.75, -0.25, 0.25, 0.75}), 1e-12);
    tape_reset();
    tensor_free(a);
}
END_TEST

/* var over axis 1 of [[1, 3], [2, 6]] (correction 1): means 2 and 4,
 * var = (1 + 1)/1 = 2 and (4 + 4)/1 = 8; g = [1, 0.5]:
 * da = g 2 (a - mean) = [[-2, 2], [-2, 2]]. */
START_TEST(test_var_axis1_rows) {
    tensor *a = leaf(SHAPE(2, 2), (double[]){1, 3, 2, 6});
    tensor *y = tensor_var(a, (int[]){1}, 1, 1, false);
    ck_assert_tensor(y, ((double[]){2, 8}), 1e-12);
    tensor *g = constant(SHAPE(2), (double[]){1, 0.5});
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(a->grad, ((double[]){-2, 2, -2, 2}), 1e-12);
    tape_reset();
    tensor_free(a);
    tensor_free(g);
}
END_TEST

/* std([1, 2, 3, 4], correction 1) = sqrt(5/3);
 * da = (a - 2.5) / (3 std) = [-1.5, -0.5, 0.5, 1.5] / (3 sqrt(5/3)). */
START_TEST(test_std_forward_and_grad) {
    tensor *a = leaf(SHAPE(4), (double[]){1, 2, 3, 4});
    tensor *y = tensor_std(a, NULL, 0, 1, false);
    double s = sqrt(5.0 / 3);
    ck_assert_close(tensor_item(y), s, 1e-12);
    ck_assert_int_eq(tensor_backward(y), 0);
    ck_assert_tensor(a->grad, ((double[]){-1.5 / (3 * s), -0.5 / (3 * s), 0.5 / (3 * s), 1.5 / (3 * s)}),
                     1e-12);
    tape_reset();
    tensor_free(a);
}
END_TEST

/* At zero variance std is 0 and its gradient is defined as 0 (not NaN). */
START_TEST(test_std_zero_variance_grad_is_zero) {
    tensor *a = leaf(SHAPE(3), (double[]){2, 2, 2});
    tensor *y = tensor_std(a, NULL, 0, 1, false);
    ck_assert_close(tensor_item(y), 0, 0);
    ck_assert_int_eq(tensor_backward(y), 0);
    ck_assert_tensor(a->grad, ((double[]){0, 0, 0}), 0);
    tape_reset();
    tensor_free(a);
}
END_TEST

/* ----------------------------------------------------------- logsumexp */

/* logsumexp([0, log 3]) = log 4; da = softmax = [1/4, 3/4]. Over axis 1
 * with keepdim of [[0, log 3], [log 2, log 2]]: [log 4, log 4], g = [1, 2]
 * gives [[1/4, 3/4], [1, 1]]. */
START_TEST(test_logsumexp_forward_and_grad) {
    tensor *a = leaf(SHAPE(2, 2), (double[]){0, log(3.0), log(2.0), log(2.0)});
    tensor *y = tensor_logsumexp(a, (int[]){1}, 1, true);
    ck_assert_int_eq(y->ndim, 2);
    ck_assert_int_eq(y->shape[1], 1);
    ck_assert_tensor(y, ((double[]){log(4.0), log(4.0)}), 1e-12);
    tensor *g = constant(SHAPE(2, 1), (double[]){1, 2});
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(a->grad, ((double[]){0.25, 0.75, 1, 1}), 1e-12);
    tape_reset();
    tensor_free(a);
    tensor_free(g);
}
END_TEST

/* Values near +-1e4, where exp overflows (or underflows to 0) unshifted:
 * logsumexp([1e4, 1e4 - log 3]) = 1e4 + log(4/3), gradient [3/4, 1/4];
 * logsumexp([-1e4, -1e4]) = -1e4 + log 2. Float32 too. */
START_TEST(test_logsumexp_stable_at_1e4) {
    for (int f32 = 0; f32 < 2; f32++) {
        dtype dt = f32 ? DTYPE_F32 : DTYPE_F64;
        tensor *a = tensor_from_doubles(dt, SHAPE(2), (double[]){1e4, 1e4 - log(3.0)});
        tensor_set_requires_grad(a, true);
        tensor *y = tensor_logsumexp(a, NULL, 0, false);
        ck_assert_close(tensor_item(y), 1e4 + log(4.0 / 3), f32 ? 2e-3 : 1e-9);
        ck_assert_int_eq(tensor_backward(y), 0);
        ck_assert_tensor(a->grad, ((double[]){0.75, 0.25}), f32 ? 2e-3 : 1e-9);
        tensor *b = tensor_from_doubles(dt, SHAPE(2), (double[]){-1e4, -1e4});
        ck_assert_close(tensor_item(tensor_logsumexp(b, NULL, 0, false)), -1e4 + log(2.0),
                        f32 ? 2e-3 : 1e-9);
        tape_reset();
        tensor_free(a);
        tensor_free(b);
    }
}
END_TEST

/* All -inf: the result is -inf and the gradient 0 (no NaN from inf - inf). */
START_TEST(test_logsumexp_all_neg_inf) {
    tensor *a = leaf(SHAPE(2), (double[]){-INFINITY, -INFINITY});
    tensor *y = tensor_logsumexp(a, NULL, 0, false);
    ck_assert(isinf(tensor_item(y)) && tensor_item(y) < 0);
    ck_assert_int_eq(tensor_backward(y), 0);
    ck_assert_tensor(a->grad, ((double[]){0, 0}), 0);
    tape_reset();
    tensor_free(a);
}
END_TEST

/* -------------------------------------------------------------- argmax */

/* argmax of [[1, 5, -2], [4, 0.5, 3]]: axis 1 -> [1, 0]; axis 0 with
 * keepdim -> [[1, 0, 1]]; int64, never recorded, no grad. */
START_TEST(test_argmax_axes_keepdim_int64_not_recorded) {
    tensor *a = leaf(SHAPE(2, 3), (double[]){1, 5, -2, 4, 0.5, 3});
    int64_t before = tape_size();
    tensor *i1 = tensor_argmax(a, 1, false);
    ck_assert_int_eq(i1->dtype, DTYPE_I64);
    ck_assert_int_eq(i1->ndim, 1);
    ck_assert_tensor(i1, ((double[]){1, 0}), 0);
    tensor *i0 = tensor_argmax(a, -2, true);
    ck_assert_int_eq(i0->ndim, 2);
    ck_assert_int_eq(i0->shape[0], 1);
    ck_assert_tensor(i0, ((double[]){1, 0, 1}), 0);
    ck_assert(!i1->requires_grad && !i0->requires_grad);
    ck_assert_int_eq(tape_size(), before);
    tape_reset();
    tensor_free(a);
}
END_TEST

/* Ties pick the first maximum in order; NaN counts as the largest. */
START_TEST(test_argmax_tie_first_and_nan) {
    tensor *a = constant(SHAPE(2, 3), (double[]){3, 1, 3, 2, NAN, 7});
    ck_assert_tensor(tensor_argmax(a, 1, false), ((double[]){0, 1}), 0);
    tape_reset();
    tensor_free(a);
}
END_TEST

/* What the checker's argmax case computes, gather(a, axis, argmax(a, axis)),
 * must be max(a, axis, keepdim) on every sample case: this is the check
 * that argmax picks the maximum (a gradient check cannot see it). */
START_TEST(test_argmax_samples_select_the_maximum) {
    const op_def *op = op_find("argmax");
    rng g;
    rng_seed(&g, 11, 2);
    op_sample s;
    for (int k = 0; memset(&s, 0, sizeof s), op->sample(k, &g, &s) == 0; k++) {
        tensor *y = op->build(s.inputs, &s);
        int axis = (int)s.ip[1];
        tensor *m = tensor_max(s.inputs[0], &axis, 1, true);
        ck_assert_msg(y && tensor_same_shape(y, m), "argmax %s", s.name);
        ck_assert_msg(memcmp(y->data, m->data, (size_t)y->size * sizeof(double)) == 0, "argmax %s",
                      s.name);
        tape_reset();
        tensor_free(s.inputs[0]);
    }
}
END_TEST

/* A scalar reduces to itself (over no axes or its axis 0); argmax is 0. */
START_TEST(test_reductions_of_a_scalar) {
    tensor *a = leaf(0, NULL, (double[]){-1.5});
    ck_assert_close(tensor_item(tensor_max(a, NULL, 0, false)), -1.5, 0);
    ck_assert_close(tensor_item(tensor_min(a, (int[]){0}, 1, true)), -1.5, 0);
    ck_assert_close(tensor_item(tensor_logsumexp(a, NULL, 0, false)), -1.5, 1e-15);
    ck_assert_close(tensor_item(tensor_argmax(a, 0, false)), 0, 0);
    tensor *y = tensor_sum(a, (int[]){0}, 1, false);
    ck_assert_int_eq(y->ndim, 0);
    ck_assert_int_eq(tensor_backward(tensor_mul_scalar(y, 3)), 0);
    ck_assert_tensor(a->grad, ((double[]){3}), 0);
    tape_reset();
    tensor_free(a);
}
END_TEST

/* ------------------------------------------------------------- errors */

START_TEST(test_reduce_error_bad_axis) {
    tapegrad_error_clear();
    tensor *a = tensor_zeros(DTYPE_F32, SHAPE(2, 3));
    ck_assert_fails_with(tensor_max(a, (int[]){2}, 1, false),
                         "max: axis 2 out of range for 2 dimensions");
    ck_assert_fails_with(tensor_sum(a, (int[]){-3}, 1, false),
                         "sum: axis -3 out of range for 2 dimensions");
    ck_assert_fails_with(tensor_argmax(a, 5, true), "argmax: axis 5 out of range for 2 dimensions");
    ck_assert_fails_with(tensor_logsumexp(a, (int[]){7}, 1, false),
                         "logsumexp: axis 7 out of range for 2 dimensions");
    tensor_free(a);
}
END_TEST

START_TEST(test_reduce_error_axis_twice_and_bad_list) {
    tapegrad_error_clear();
    tensor *a = tensor_zeros(DTYPE_F64, SHAPE(2, 3));
    ck_assert_fails_with(tensor_var(a, (int[]){1, -1}, 2, 1, false), "var: axis -1 given twice");
    ck_assert_fails_with(tensor_min(a, NULL, 1, false), "min: bad axes list (naxes 1)");
    ck_assert_fails_with(tensor_mean(a, (int[]){0}, -1, false), "mean: bad axes list (naxes -1)");
    tensor_free(a);
}
END_TEST

START_TEST(test_reduce_error_null_input_and_propagation) {
    tapegrad_error_clear();
    ck_assert_fails_with(tensor_logsumexp(NULL, NULL, 0, false), "logsumexp: input 0 is NULL");
    ck_assert_fails_with(tensor_argmax(NULL, 0, false), "argmax: input 0 is NULL");
    ck_assert_fails_with(tensor_std(NULL, NULL, 0, 1, false), "std: input 0 is NULL");
    /* a pending error is kept: NULL flows through like NaN */
    tensor *a = tensor_zeros(DTYPE_F64, SHAPE(2));
    ck_assert_fails_with(tensor_max(tensor_max(a, (int[]){4}, 1, false), NULL, 0, false),
                         "max: axis 4 out of range for 1 dimensions");
    tensor_free(a);
}
END_TEST

START_TEST(test_reduce_error_int64_input) {
    tapegrad_error_clear();
    tensor *a = tensor_zeros(DTYPE_I64, SHAPE(3));
    ck_assert_fails_with(tensor_max(a, NULL, 0, false),
                         "max: input 0 is int64; this op needs float32 or float64");
    ck_assert_fails_with(tensor_argmax(a, 0, false),
                         "argmax: input 0 is int64; this op needs float32 or float64");
    ck_assert_fails_with(tensor_var(a, NULL, 0, 0, false),
                         "var: input 0 is int64; this op needs float32 or float64");
    tensor_free(a);
}
END_TEST

START_TEST(test_var_error_bad_correction) {
    tapegrad_error_clear();
    tensor *a = tensor_zeros(DTYPE_F64, SHAPE(2, 1));
    ck_assert_fails_with(tensor_var(a, NULL, 0, -1, false), "var: correction -1 is negative");
    ck_assert_fails_with(tensor_std(a, (int[]){1}, 1, 1, false),
                         "std: correction 1 leaves no degrees of freedom: 1 elements per output of [2,1]");
    ck_assert_fails_with(tensor_var(a, NULL, 0, 2, false),
                         "var: correction 2 leaves no degrees of freedom: 2 elements per output of [2,1]");
    tensor_free(a);
}
END_TEST

START_TEST(test_extreme_error_empty_reduction) {
    tapegrad_error_clear();
    tensor *a = tensor_zeros(DTYPE_F32, SHAPE(2, 0));
    ck_assert_fails_with(tensor_max(a, (int[]){1}, 1, false),
                         "max: cannot reduce [2,0] over an empty dimension");
    ck_assert_fails_with(tensor_min(a, NULL, 0, false),
                         "min: cannot reduce [2,0] over an empty dimension");
    ck_assert_fails_with(tensor_argmax(a, 1, false),
                         "argmax: cannot reduce [2,0] over an empty dimension");
    /* reducing the non-empty axis of an empty tensor is fine: no outputs */
    tensor *y = tensor_max(a, (int[]){0}, 1, false);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(y->size, 0);
    /* sum over an empty axis is 0 */
    ck_assert_tensor(tensor_sum(a, (int[]){1}, 1, false), ((double[]){0, 0}), 0);
    tape_reset();
    tensor_free(a);
}
END_TEST

/* Reducing the leading axis of [2,0,3]: no outputs, forward or backward. The
 * reduced axis's stride is 0 there (a later dim is empty), which the
 * whole-row fast path must not divide by. */
START_TEST(test_sum_leading_axis_of_empty_tensor) {
    tensor *a = tensor_zeros(DTYPE_F64, SHAPE(2, 0, 3));
    ck_assert_int_eq(tensor_set_requires_grad(a, true), 0);
    tensor *ys[] = {tensor_sum(a, (int[]){0}, 1, false), tensor_mean(a, (int[]){0}, 1, true),
                    tensor_max(a, (int[]){0}, 1, false), tensor_logsumexp(a, (int[]){0}, 1, false)};
    for (int k = 0; k < 4; k++) {
        ck_assert_ptr_nonnull(ys[k]);
        ck_assert_int_eq(ys[k]->size, 0);
        ck_assert_int_eq(ys[k]->shape[ys[k]->ndim - 1], 3);
    }
    tensor *g = tensor_zeros(DTYPE_F64, SHAPE(0, 3));
    ck_assert_int_eq(tensor_backward_with(ys[0], g), 0);
    ck_assert_ptr_nonnull(a->grad);
    ck_assert(tensor_same_shape(a->grad, a));
    tape_reset();
    tensor_free(a);
    tensor_free(g);
}
END_TEST

/* One-input ops have no dtype to mismatch; float32 runs like float64. */
START_TEST(test_reduce_float32_runs) {
    tapegrad_error_clear();
    tensor *a = tensor_from_doubles(DTYPE_F32, SHAPE(3), (double[]){1, 4, 2});
    ck_assert_close(tensor_item(tensor_max(a, NULL, 0, false)), 4, 0);
    ck_assert_close(tensor_item(tensor_var(a, NULL, 0, 1, false)), 7.0 / 3, 1e-6);
    ck_assert_ptr_null(tapegrad_error());
    tape_reset();
    tensor_free(a);
}
END_TEST

Suite *ops_reduce_suite(void) {
    Suite *s = suite_create("ops_reduce");
    TCase *tc = tcase_create("reduce");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_reduce_samples_match_central_differences);
    tcase_add_test(tc, test_mean_axis0_forward_and_grad);
    tcase_add_test(tc, test_sum_two_axes_keepdim_forward_and_grad);
    tcase_add_test(tc, test_sum_fast_paths_bit_identical_to_plain_loop);
    tcase_add_test(tc, test_sum_grad_leading_and_last_axis);
    tcase_add_test(tc, test_max_axis1_forward_and_grad);
    tcase_add_test(tc, test_min_axis0_keepdim_forward_and_grad);
    tcase_add_test(tc, test_max_tie_splits_gradient_evenly);
    tcase_add_test(tc, test_max_min_propagate_nan);
    tcase_add_test(tc, test_var_corrections_forward_and_grad);
    tcase_add_test(tc, test_var_axis1_rows);
    tcase_add_test(tc, test_std_forward_and_grad);
    tcase_add_test(tc, test_std_zero_variance_grad_is_zero);
    tcase_add_test(tc, test_logsumexp_forward_and_grad);
    tcase_add_test(tc, test_logsumexp_stable_at_1e4);
    tcase_add_test(tc, test_logsumexp_all_neg_inf);
    tcase_add_test(tc, test_argmax_axes_keepdim_int64_not_recorded);
    tcase_add_test(tc, test_argmax_tie_first_and_nan);
    tcase_add_test(tc, test_argmax_samples_select_the_maximum);
    tcase_add_test(tc, test_reductions_of_a_scalar);
    tcase_add_test(tc, test_reduce_error_bad_axis);
    tcase_add_test(tc, test_reduce_error_axis_twice_and_bad_list);
    tcase_add_test(tc, test_reduce_error_null_input_and_propagation);
    tcase_add_test(tc, test_reduce_error_int64_input);
    tcase_add_test(tc, test_var_error_bad_correction);
    tcase_add_test(tc, test_extreme_error_empty_reduction);
    tcase_add_test(tc, test_sum_leading_axis_of_empty_tensor);
    tcase_add_test(tc, test_reduce_float32_runs);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ops_reduce_suite)
