/* test_ops_activation.c - the activation family (relu ... hardtanh):
 * hand-computed values and gradients for every op, finiteness for inputs up
 * to +-1e4, the error paths, and a central-difference check of every vjp over
 * the registry's sample cases. */
#include <string.h>

#include "check_main.h"
#include "ops_test.h"
#include "../autograd/internal.h" /* op_def and op_sample, for the sample-case check */

OP_FAMILY(activation)

/* Ops with their parameters, as one-argument functions. */
static tensor *leaky_relu_01(tensor *a) { return tensor_leaky_relu(a, 0.1); }
static tensor *softmax_last(tensor *a) { return tensor_softmax(a, -1); }
static tensor *log_softmax_last(tensor *a) { return tensor_log_softmax(a, -1); }
static tensor *gelu_erf(tensor *a) { return tensor_gelu(a, false); }
static tensor *gelu_tanh(tensor *a) { return tensor_gelu(a, true); }
static tensor *elu_2(tensor *a) { return tensor_elu(a, 2.0); }
static tensor *elu_1(tensor *a) { return tensor_elu(a, 1.0); }
static tensor *softplus_default(tensor *a) { return tensor_softplus(a, 1.0, 20.0); }
static tensor *softplus_no_threshold(tensor *a) { return tensor_softplus(a, 1.0, INFINITY); }
static tensor *softplus_b2_t15(tensor *a) { return tensor_softplus(a, 2.0, 1.5); }
static tensor *hardtanh_m1_2(tensor *a) { return tensor_hardtanh(a, -1.0, 2.0); }

#define LN3 1.0986122886681098
#define SELU_L 1.0507009873554804934
#define SELU_A 1.6732632423543772848

/* ------------------------------------------------------------ relu family */

/* relu at [-1, 0.5, 2, 0]: [0, 0.5, 2, 0]; g = [1, 2, 3, 4]: dx = [0, 2, 3, 0] (0 at the kink) */
START_TEST(test_relu_forward_and_grad_zero_at_kink) {
    check_unary(tensor_relu, 4, (double[]){-1, 0.5, 2, 0}, (double[]){1, 2, 3, 4},
                (double[]){0, 0.5, 2, 0}, (double[]){0, 2, 3, 0});
}
END_TEST

/* leaky_relu(0.1) at [-2, 0.5, 3]: [-0.2, 0.5, 3]; g = [1, 2, 3]: dx = [0.1, 2, 3] */
START_TEST(test_leaky_relu_forward_and_grad) {
    check_unary(leaky_relu_01, 3, (double[]){-2, 0.5, 3}, (double[]){1, 2, 3},
                (double[]){-0.2, 0.5, 3}, (double[]){0.1, 2, 3});
}
END_TEST

/* prelu on x (N=2, C=2, L=2) = [[[1,-2],[-1,3]], [[-4,0.5],[2,-0.5]]], w = [0.25, -0.5]:
 * y = [1, -0.5, 0.5, 3, -1, 0.5, 2, 0.25]
 * g = [1 .. 8]: dx = g (x > 0 ? 1 : w[c]) = [1, 0.5, -1.5, 4, 1.25, 6, 7, -4]
 * dw[0] = sum_{c=0, x<=0} g x = 2*-2 + 5*-4 = -24;  dw[1] = 3*-1 + 8*-0.5 = -7 */
START_TEST(test_prelu_per_channel_grad_both_inputs) {
    tensor *x = leaf(SHAPE(2, 2, 2), (double[]){1, -2, -1, 3, -4, 0.5, 2, -0.5});
    tensor *w = leaf(SHAPE(2), (double[]){0.25, -0.5});
    tensor *y = tensor_prelu(x, w);
    ck_assert_tensor(y, ((double[]){1, -0.5, 0.5, 3, -1, 0.5, 2, 0.25}), 1e-15);
    backward_g(y, (double[]){1, 2, 3, 4, 5, 6, 7, 8});
    ck_assert_tensor(x->grad, ((double[]){1, 0.5, -1.5, 4, 1.25, 6, 7, -4}), 1e-15);
    ck_assert_tensor(w->grad, ((double[]){-24, -7}), 1e-15);
    tape_reset();
    tensor_free(x);
    tensor_free(w);
}
END_TEST

/* One shared slope w = [0.2] on x = [-2, 1, -0.5]: y = [-0.4, 1, -0.1];
 * g = [1, 2, 3]: dx = [0.2, 2, 0.6]; dw = 1*-2 + 3*-0.5 = -3.5 */
START_TEST(test_prelu_shared_slope) {
    tensor *x = leaf(SHAPE(3), (double[]){-2, 1, -0.5});
    tensor *w = leaf(SHAPE(1), (double[]){0.2});
    tensor *y = tensor_prelu(x, w);
    ck_assert_tensor(y, ((double[]){-0.4, 1, -0.1}), 1e-15);
    backward_g(y, (double[]){1, 2, 3});
    ck_assert_tensor(x->grad, ((double[]){0.2, 2, 0.6}), 1e-15);
    ck_assert_tensor(w->grad, ((double[]){-3.5}), 1e-15);
    tape_reset();
    tensor_free(x);
    tensor_free(w);
}
END_TEST

/* --------------------------------------------------------- sigmoid, tanh */

/* sigmoid at [0, ln 3, -ln 3]: [1/2, 3/4, 1/4]; dx = g y (1 - y), g = [1, 2, 3]:
 * [0.25, 2 * 3/16, 3 * 3/16] */
START_TEST(test_sigmoid_forward_and_grad) {
    check_unary(tensor_sigmoid, 3, (double[]){0, LN3, -LN3}, (double[]){1, 2, 3},
                (double[]){0.5, 0.75, 0.25}, (double[]){0.25, 0.375, 0.5625});
}
END_TEST

/* tanh at [0, ln3 / 2, -ln3 / 2] (atanh(1/2) = ln(3)/2): [0, 1/2, -1/2];
 * dx = g (1 - y^2), g = [1, 2, 3]: [1, 1.5, 2.25] */
START_TEST(test_tanh_forward_and_grad) {
    check_unary(tensor_tanh, 3, (double[]){0, LN3 / 2, -LN3 / 2}, (double[]){1, 2, 3},
                (double[]){0, 0.5, -0.5}, (double[]){1, 1.5, 2.25});
}
END_TEST

/* ------------------------------------------------- softmax, log_softmax */

/* softmax along axis 1 of [[0, ln2, ln3], [ln4 + 5, 5, 5]]:
 * row 0: e^x = [1, 2, 3] -> [1/6, 2/6, 3/6]; row 1: e^(x-5) = [4, 1, 1] -> [4/6, 1/6, 1/6]
 * g = [[1, 0, 0], [0, 1, 2]]: dx = y (g - sum g y)
 *   row 0: sum g y = 1/6:  [1/6 * 5/6, 2/6 * -1/6, 3/6 * -1/6] = [5, -2, -3] / 36
 *   row 1: sum g y = 1/6 + 2/6 = 1/2:  [4/6 * -1/2, 1/6 * 1/2, 1/6 * 3/2] = [-12, 3, 9] / 36
 * (the Jacobian product: elementwise y (1 - y) g would give different numbers) */
START_TEST(test_softmax_rows_forward_and_jacobian_grad) {
    tensor *x = leaf(SHAPE(2, 3), (double[]){0, M_LN2, LN3, log(4) + 5, 5, 5});
    tensor *y = tensor_softmax(x, 1);
    ck_assert_tensor(y, ((double[]){1. / 6, 2. / 6, 3. / 6, 4. / 6, 1. / 6, 1. / 6}), 1e-15);
    backward_g(y, (double[]){1, 0, 0, 0, 1, 2});
    ck_assert_tensor(x->grad, ((double[]){5. / 36, -2. / 36, -3. / 36, -12. / 36, 3. / 36, 9. / 36}),
                     1e-15);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* softmax along axis -2 (the columns) of [[0, ln3], [ln3, 0]]:
 * columns [1, 3] / 4 and [3, 1] / 4: y = [[1/4, 3/4], [3/4, 1/4]]
 * g = [[1, 2], [3, 4]]: column 0: sum g y = 1/4 + 9/4 = 5/2 -> [1/4 * -3/2, 3/4 * 1/2]
 * column 1: sum g y = 6/4 + 4/4 = 5/2 -> [3/4 * -1/2, 1/4 * 3/2] */
START_TEST(test_softmax_negative_axis_columns) {
    tensor *x = leaf(SHAPE(2, 2), (double[]){0, LN3, LN3, 0});
    tensor *y = tensor_softmax(x, -2);
    ck_assert_tensor(y, ((double[]){0.25, 0.75, 0.75, 0.25}), 1e-15);
    backward_g(y, (double[]){1, 2, 3, 4});
    ck_assert_tensor(x->grad, ((double[]){-0.375, -0.375, 0.375, 0.375}), 1e-15);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* log_softmax of [ln1, ln2, ln3] + 100 (the shift cancels): ln([1, 2, 3] / 6);
 * g = [1, 0, 2]: dx = g - softmax * sum g = [1 - 3/6, 0 - 6/6, 2 - 9/6] = [0.5, -1, 0.5] */
START_TEST(test_log_softmax_forward_and_grad) {
    tensor *x = leaf(SHAPE(3), (double[]){100, 100 + M_LN2, 100 + LN3});
    tensor *y = tensor_log_softmax(x, 0);
    ck_assert_tensor(y, ((double[]){log(1. / 6), log(2. / 6), log(3. / 6)}), 1e-13);
    backward_g(y, (double[]){1, 0, 2});
    ck_assert_tensor(x->grad, ((double[]){0.5, -1, 0.5}), 1e-13);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* A 0-d tensor is one row of length 1: softmax 1, log_softmax 0, gradient 0. */
START_TEST(test_softmax_of_scalar_is_one) {
    tensor *x = leaf(0, NULL, (double[]){3.7});
    ck_assert_close(tensor_item(tensor_softmax(x, -1)), 1.0, 0);
    ck_assert_close(tensor_item(tensor_log_softmax(x, 0)), 0.0, 0);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* -------------------------------------------------- smooth activations */

/* gelu = x Phi(x) at [0, 1, -1]: Phi(1) = 0.841344746068543, Phi(-1) = 0.158655253931457,
 * phi(1) = e^-0.5 / sqrt(2 pi) = 0.241970724519143;
 * y = [0, Phi(1), -Phi(-1)]; dx / g = Phi + x phi = [0.5, 1.083315470587686, -0.083315470587686];
 * g = [1, 2, 3] */
START_TEST(test_gelu_erf_forward_and_grad) {
    check_unary(gelu_erf, 3, (double[]){0, 1, -1}, (double[]){1, 2, 3},
                (double[]){0, 0.84134474606854293, -0.15865525393145707},
                (double[]){0.5, 2 * 1.0833154705876864, 3 * -0.083315470587686291});
}
END_TEST

/* tanh form at [1, -2], t = tanh(sqrt(2/pi) (x + 0.044715 x^3)) (values from the closed form):
 * y = x (1 + t) / 2 = [0.841191990608277, -0.045402305912225]
 * dx / g = (1 + t) / 2 + x (1 - t^2) sqrt(2/pi) (1 + 0.134145 x^2) / 2
 *        = [1.082964083845783, -0.086099256623618]; g = [1, 2] */
START_TEST(test_gelu_tanh_forward_and_grad) {
    check_unary(gelu_tanh, 2, (double[]){1, -2}, (double[]){1, 2},
                (double[]){0.84119199060827676, -0.045402305912224938},
                (double[]){1.0829640838457826, 2 * -0.086099256623618253});
}
END_TEST

/* silu = x sigmoid(x) at [0, ln3, -ln3] (sigmoid = [1/2, 3/4, 1/4]):
 * y = [0, 3/4 ln3, -1/4 ln3]; dx / g = s (1 + x (1 - s)) = [1/2, 3/4 (1 + ln3 / 4), 1/4 (1 - 3 ln3 / 4)] */
START_TEST(test_silu_forward_and_grad) {
    check_unary(tensor_silu, 3, (double[]){0, LN3, -LN3}, (double[]){1, 2, 3},
                (double[]){0, 0.75 * LN3, -0.25 * LN3},
                (double[]){0.5, 2 * 0.75 * (1 + LN3 / 4), 3 * 0.25 * (1 - 0.75 * LN3)});
}
END_TEST

/* mish = x tanh(softplus x) at [0, ln3, -ln3]: softplus = [ln2, ln4, ln(4/3)],
 * t = tanh(ln u) = (u^2 - 1) / (u^2 + 1) = [3/5, 15/17, 7/25]
 * y = [0, 15/17 ln3, -7/25 ln3]
 * dx / g = t + x sigmoid(x) (1 - t^2) = [3/5, 15/17 + ln3 * 3/4 * 64/289, 7/25 - ln3 * 1/4 * 576/625] */
START_TEST(test_mish_forward_and_grad) {
    check_unary(tensor_mish, 3, (double[]){0, LN3, -LN3}, (double[]){1, 2, 3},
                (double[]){0, 15. / 17 * LN3, -7. / 25 * LN3},
                (double[]){0.6, 2 * (15. / 17 + LN3 * 48. / 289), 3 * (7. / 25 - LN3 * 144. / 625)});
}
END_TEST

/* elu(alpha 2) at [1.5, -ln4]: y = [1.5, 2 (1/4 - 1)] = [1.5, -1.5];
 * dx = g (x > 0 ? 1 : 2 e^x), g = [2, 3]: [2, 3 * 2/4] = [2, 1.5] */
START_TEST(test_elu_forward_and_grad) {
    check_unary(elu_2, 2, (double[]){1.5, -log(4)}, (double[]){2, 3}, (double[]){1.5, -1.5},
                (double[]){2, 1.5});
}
END_TEST

/* selu at [1, -ln2]: y = [lambda, lambda alpha (1/2 - 1)];
 * dx = g lambda (x > 0 ? 1 : alpha e^x), g = [2, 3]: [2 lambda, 3 lambda alpha / 2] */
START_TEST(test_selu_forward_and_grad) {
    check_unary(tensor_selu, 2, (double[]){1, -M_LN2}, (double[]){2, 3},
                (double[]){SELU_L, -0.5 * SELU_L * SELU_A},
                (double[]){2 * SELU_L, 1.5 * SELU_L * SELU_A});
}
END_TEST

/* softplus(beta 1, threshold 20) at [0, ln3, 25]: [ln2, ln4, 25 (linear above 20)];
 * dx = g (x > 20 ? 1 : sigmoid x), g = [1, 2, 3]: [1/2, 3/2, 3] */
START_TEST(test_softplus_forward_and_grad_linear_above_threshold) {
    check_unary(softplus_default, 3, (double[]){0, LN3, 25}, (double[]){1, 2, 3},
                (double[]){M_LN2, log(4), 25}, (double[]){0.5, 1.5, 3});
}
END_TEST

/* softplus(beta 2, threshold 1.5) at [ln3 / 2, 1]: beta x = [ln3 = 1.0986, 2];
 * y = [ln(1 + 3) / 2, 1 (2 > 1.5: linear)] = [ln2, 1]; dx = g [sigmoid(ln3), 1] = [2 * 3/4, 3] */
START_TEST(test_softplus_beta_and_threshold) {
    check_unary(softplus_b2_t15, 2, (double[]){LN3 / 2, 1}, (double[]){2, 3},
                (double[]){M_LN2, 1}, (double[]){1.5, 3});
}
END_TEST

/* hardtanh(-1, 2) at [-3, -1, 0.5, 2, 2.5]: [-1, -1, 0.5, 2, 2];
 * g = [1 .. 5]: dx = [0, 0, 3, 0, 0] (0 at the bounds, unlike clamp) */
START_TEST(test_hardtanh_forward_and_grad_zero_at_bounds) {
    check_unary(hardtanh_m1_2, 5, (double[]){-3, -1, 0.5, 2, 2.5}, (double[]){1, 2, 3, 4, 5},
                (double[]){-1, -1, 0.5, 2, 2}, (double[]){0, 0, 3, 0, 0});
}
END_TEST

/* ------------------------------------------------------- large inputs */

/* Inputs up to +-1e4, in float32 and float64: outputs and gradients stay
 * finite, and the saturated values are exact. */
static const double big[] = {-1e4, -1000, -100, -20, -0.5, 0.5, 20, 100, 1000, 1e4};
#define NBIG 10

static void check_finite(tensor *(*f)(tensor *), dtype dt, const char *what) {
    tensor *x = tensor_from_doubles(dt, SHAPE(NBIG), big);
    tensor_set_requires_grad(x, true);
    tensor *y = f(x);
    ck_assert_ptr_nonnull(y);
    for (int64_t i = 0; i < y->size; i++)
        ck_assert_msg(isfinite(tensor_get(y, i)), "%s %s: y[%lld] = %g for x = %g", what,
                      dt == DTYPE_F32 ? "f32" : "f64", (long long)i, tensor_get(y, i), big[i]);
    tensor *g = tensor_full(dt, SHAPE(NBIG), 0.75);
    tensor_set(g, 3, -2.0);
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    for (int64_t i = 0; i < x->size; i++)
        ck_assert_msg(isfinite(tensor_get(x->grad, i)), "%s %s: dx[%lld] = %g for x = %g", what,
                      dt == DTYPE_F32 ? "f32" : "f64", (long long)i, tensor_get(x->grad, i), big[i]);
    tape_reset();
    tensor_free(g);
    tensor_free(x);
}

START_TEST(test_large_inputs_give_finite_values_and_grads) {
    static const struct {
        tensor *(*f)(tensor *);
        const char *name;
    } ops[] = {{tensor_sigmoid, "sigmoid"},     {tensor_tanh, "tanh"},
               {softmax_last, "softmax"},       {log_softmax_last, "log_softmax"},
               {softplus_default, "softplus"},  {softplus_no_threshold, "softplus (no threshold)"},
               {tensor_mish, "mish"},           {tensor_silu, "silu"},
               {gelu_erf, "gelu"},              {gelu_tanh, "gelu tanh"},
               {elu_1, "elu"},                  {tensor_selu, "selu"}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        check_finite(ops[i].f, DTYPE_F64, ops[i].name);
        check_finite(ops[i].f, DTYPE_F32, ops[i].name);
    }
}
END_TEST

START_TEST(test_large_inputs_saturate_exactly) {
    tensor *x = tensor_from_doubles(DTYPE_F64, SHAPE(2), (double[]){-1e4, 1e4});
    ck_assert_tensor(tensor_sigmoid(x), ((double[]){0, 1}), 0);
    ck_assert_tensor(softplus_no_threshold(x), ((double[]){0, 1e4}), 0);
    ck_assert_tensor(tensor_silu(x), ((double[]){0, 1e4}), 0);
    ck_assert_tensor(tensor_mish(x), ((double[]){0, 1e4}), 0);
    ck_assert_tensor(log_softmax_last(x), ((double[]){-2e4, 0}), 0);
    ck_assert_tensor(softmax_last(x), ((double[]){0, 1}), 0);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* ---------------------------------------------------- large tensors */

/* Softmax of a [300, 200] tensor (above the threading threshold), along each
 * axis: the same bits with 1 and 2 threads, forward and backward, and rows
 * that sum to 1. */
static void softmax_run_big(int threads, int axis, tensor *x, tensor *g, tensor **y_out,
                            tensor **dx_out) {
    tapegrad_set_threads(threads);
    tensor_zero_grad(x);
    tensor *y = tensor_softmax(x, axis);
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    *y_out = tensor_clone(y);
    *dx_out = tensor_clone(x->grad);
    tape_reset();
}

START_TEST(test_softmax_large_bit_identical_across_threads) {
    rng r;
    rng_seed(&r, 7, 0);
    tensor *x = tensor_randn(&r, DTYPE_F32, SHAPE(300, 200), 0, 3);
    tensor *g = tensor_randn(&r, DTYPE_F32, SHAPE(300, 200), 0, 1);
    tensor_set_requires_grad(x, true);
    int saved = tapegrad_threads();
    for (int axis = 0; axis < 2; axis++) {
        tensor *y1, *d1, *y2, *d2;
        softmax_run_big(1, axis, x, g, &y1, &d1);
        softmax_run_big(2, axis, x, g, &y2, &d2);
        ck_assert(memcmp(y1->data, y2->data, (size_t)y1->size * sizeof(float)) == 0);
        ck_assert(memcmp(d1->data, d2->data, (size_t)d1->size * sizeof(float)) == 0);
        tensor *sums = tensor_sum(y1, &axis, 1, false);
        for (int64_t i = 0; i < sums->size; i++) ck_assert_close(tensor_get(sums, i), 1.0, 1e-5);
        tape_reset();
        tensor_free(y1);
        tensor_free(d1);
        tensor_free(y2);
        tensor_free(d2);
    }
    tapegrad_set_threads(saved);
    tensor_free(x);
    tensor_free(g);
}
END_TEST

/* NaN passes through relu and hardtanh (it is not clamped to a bound). */
START_TEST(test_relu_hardtanh_propagate_nan) {
    tensor *x = tensor_from_doubles(DTYPE_F32, SHAPE(2), (double[]){NAN, -1});
    tensor *r = tensor_relu(x), *h = tensor_hardtanh(x, -0.5, 0.5);
    ck_assert(isnan(tensor_get(r, 0)) && tensor_get(r, 1) == 0);
    ck_assert(isnan(tensor_get(h, 0)) && tensor_get(h, 1) == -0.5);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* ------------------------------------------------------- error paths */

START_TEST(test_activation_errors_int64_null_dtype) {
    tapegrad_error_clear();
    tensor *i64 = tensor_zeros(DTYPE_I64, SHAPE(3));
    ck_assert_fails_with(tensor_sigmoid(i64), "sigmoid: input 0 is int64; this op needs float32 or float64");
    ck_assert_fails_with(tensor_softmax(i64, 0), "softmax: input 0 is int64; this op needs float32 or float64");
    ck_assert_fails_with(tensor_tanh(NULL), "tanh: input 0 is NULL");
    ck_assert_fails_with(tensor_relu(tensor_gelu(NULL, false)), "gelu: input 0 is NULL");
    tensor_free(i64);
}
END_TEST

START_TEST(test_softmax_errors_bad_axis) {
    tapegrad_error_clear();
    tensor *x = tensor_ones(DTYPE_F32, SHAPE(2, 3));
    ck_assert_fails_with(tensor_softmax(x, 2), "softmax: axis 2 out of range for 2 dimensions");
    ck_assert_fails_with(tensor_log_softmax(x, -3), "log_softmax: axis -3 out of range for 2 dimensions");
    tensor_free(x);
}
END_TEST

START_TEST(test_prelu_errors_slope_shape_and_dtype) {
    tapegrad_error_clear();
    tensor *x = tensor_ones(DTYPE_F64, SHAPE(2, 4, 5));
    tensor *w3 = tensor_ones(DTYPE_F64, SHAPE(3));
    tensor *w2d = tensor_ones(DTYPE_F64, SHAPE(1, 4));
    tensor *w32 = tensor_ones(DTYPE_F32, SHAPE(4));
    tensor *v = tensor_ones(DTYPE_F64, SHAPE(6));
    ck_assert_fails_with(tensor_prelu(x, w3),
                         "prelu: slope [3] must be [1] or [C] with C = 4, the size of axis 1 of input [2,4,5]");
    ck_assert_fails_with(tensor_prelu(x, w2d),
                         "prelu: slope [1,4] must be [1] or [C] with C = 4, the size of axis 1 of input [2,4,5]");
    ck_assert_fails_with(tensor_prelu(v, w3),
                         "prelu: slope [3] must be [1] or [C] with C = 1, the size of axis 1 of input [6]");
    ck_assert_fails_with(tensor_prelu(x, w32), "prelu: dtype mismatch: float64 vs float32");
    ck_assert_fails_with(tensor_prelu(x, NULL), "prelu: input 1 is NULL");
    tensor_free(x);
    tensor_free(w3);
    tensor_free(w2d);
    tensor_free(w32);
    tensor_free(v);
}
END_TEST

/* Zero channels ([2,0,3] with slope [0]) or an empty channel ([2,3,0]):
 * an empty output of a's shape, as PyTorch gives, and an empty gradient; the
 * channel count C * L was a divisor (SIGFPE). */
START_TEST(test_prelu_zero_channels_gives_empty_output) {
    tapegrad_error_clear();
    tensor *x = tensor_zeros(DTYPE_F64, SHAPE(2, 0, 3));
    tensor *w = tensor_zeros(DTYPE_F64, SHAPE(0));
    tensor_set_requires_grad(x, true);
    tensor_set_requires_grad(w, true);
    tensor *y = tensor_prelu(x, w);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(y->ndim, 3);
    ck_assert_int_eq(y->shape[1], 0);
    ck_assert_int_eq(y->size, 0);
    ck_assert_int_eq(tensor_backward(tensor_sum(y, NULL, 0, false)), 0);
    tensor *x2 = tensor_zeros(DTYPE_F64, SHAPE(2, 3, 0));
    tensor *w2 = tensor_ones(DTYPE_F64, SHAPE(3));
    tensor *y2 = tensor_prelu(x2, w2);
    ck_assert_ptr_nonnull(y2);
    ck_assert_int_eq(y2->size, 0);
    ck_assert_ptr_null(tapegrad_error());
    tape_reset();
    tensor_free(x);
    tensor_free(w);
    tensor_free(x2);
    tensor_free(w2);
}
END_TEST

START_TEST(test_softplus_hardtanh_errors_bad_params) {
    tapegrad_error_clear();
    tensor *x = tensor_ones(DTYPE_F64, SHAPE(2));
    ck_assert_fails_with(tensor_softplus(x, 0, 20),
                         "softplus: beta must be nonzero and beta, threshold not NaN (beta 0, threshold 20)");
    ck_assert_fails_with(tensor_hardtanh(x, 1, -1),
                         "hardtanh: bounds [1, -1] are not an interval (need lo <= hi, no NaN)");
    tensor_free(x);
}
END_TEST

/* --------------------------------------- sample cases vs differences */

/* Every op of the family, every sample case, four seeds: see tests/ops_test.h. */
START_TEST(test_activation_vjps_match_central_differences) {
    ck_assert_int_eq(tg_ops_activation_count, 14);
    numeric_check_family(tg_ops_activation, tg_ops_activation_count, 1, 4, CHECK_ALL);
}
END_TEST

Suite *ops_activation_suite(void) {
    Suite *s = suite_create("ops_activation");
    TCase *tc = tcase_create("activation");
    tcase_add_test(tc, test_relu_forward_and_grad_zero_at_kink);
    tcase_add_test(tc, test_leaky_relu_forward_and_grad);
    tcase_add_test(tc, test_prelu_per_channel_grad_both_inputs);
    tcase_add_test(tc, test_prelu_shared_slope);
    tcase_add_test(tc, test_sigmoid_forward_and_grad);
    tcase_add_test(tc, test_tanh_forward_and_grad);
    tcase_add_test(tc, test_softmax_rows_forward_and_jacobian_grad);
    tcase_add_test(tc, test_softmax_negative_axis_columns);
    tcase_add_test(tc, test_log_softmax_forward_and_grad);
    tcase_add_test(tc, test_softmax_of_scalar_is_one);
    tcase_add_test(tc, test_gelu_erf_forward_and_grad);
    tcase_add_test(tc, test_gelu_tanh_forward_and_grad);
    tcase_add_test(tc, test_silu_forward_and_grad);
    tcase_add_test(tc, test_mish_forward_and_grad);
    tcase_add_test(tc, test_elu_forward_and_grad);
    tcase_add_test(tc, test_selu_forward_and_grad);
    tcase_add_test(tc, test_softplus_forward_and_grad_linear_above_threshold);
    tcase_add_test(tc, test_softplus_beta_and_threshold);
    tcase_add_test(tc, test_hardtanh_forward_and_grad_zero_at_bounds);
    tcase_add_test(tc, test_large_inputs_give_finite_values_and_grads);
    tcase_add_test(tc, test_large_inputs_saturate_exactly);
    tcase_add_test(tc, test_softmax_large_bit_identical_across_threads);
    tcase_add_test(tc, test_relu_hardtanh_propagate_nan);
    tcase_add_test(tc, test_activation_errors_int64_null_dtype);
    tcase_add_test(tc, test_softmax_errors_bad_axis);
    tcase_add_test(tc, test_prelu_errors_slope_shape_and_dtype);
    tcase_add_test(tc, test_prelu_zero_channels_gives_empty_output);
    tcase_add_test(tc, test_softplus_hardtanh_errors_bad_params);
    tcase_add_test(tc, test_activation_vjps_match_central_differences);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ops_activation_suite)
