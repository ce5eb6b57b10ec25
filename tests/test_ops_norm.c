/* test_ops_norm.c - batch_norm and layer_norm against hand-computed values
 * and gradients, PyTorch's running-statistics update, every error path, and a
 * central difference check of every registry sample case. */
#include <string.h>

#include "../autograd/internal.h"
#include "check_main.h"
#include "ops_test.h"

/* ------------------------------------------------------------- batch norm */

/* x (B, C, S) = (2, 2, 2), flat [3, -3, -0.5, 0.5, 5, 3, 3.5, 0.5]:
 *   channel 0 = x[:, 0, :] = [3, -3, 5, 3]: mean 2, devs [1, -5, 3, 1],
 *     biased var (1 + 25 + 9 + 1) / 4 = 9, s = 1/3, xh = [1, -5, 3, 1] / 3
 *   channel 1 = x[:, 1, :] = [-0.5, 0.5, 3.5, 0.5]: mean 1, devs [-1.5, -0.5, 2.5, -0.5],
 *     biased var (2.25 + 0.25 + 6.25 + 0.25) / 4 = 2.25, s = 2/3, xh = [-1, -1/3, 5/3, -1/3]
 * eps = 0, w = [2, -1], b = [0.5, 1]:
 *   y0 = 2 xh + 0.5 = [7/6, -17/6, 5/2, 7/6]     y1 = -xh + 1 = [2, 4/3, -2/3, 4/3]
 * upstream g flat [1, 2, -1, 0.5, 0, -2, 3, 1]: g0 = [1, 2, 0, -2], g1 = [-1, 0.5, 3, 1]
 *   db = sum g = [1, 3.5]
 *   dw = sum g xh = [(1 - 10 + 0 - 2) / 3, 1 - 1/6 + 5 - 1/3] = [-11/3, 11/2]
 *   dx = w s (g - mean g - xh mean(g xh)):
 *     c0: w s = 2/3, mean g = 1/4, mean(g xh) = -11/12
 *         [2/3 (1 - 1/4 + 11/36), 2/3 (2 - 1/4 - 55/36),
 *          2/3 (0 - 1/4 + 11/12), 2/3 (-2 - 1/4 + 11/36)]
 *         = [19/27, 4/27, 4/9, -35/27]
 *     c1: w s = -2/3, mean g = 7/8, mean(g xh) = 11/8
 *         [-2/3 (-1 - 7/8 + 11/8), -2/3 (1/2 - 7/8 + 11/24),
 *          -2/3 (3 - 7/8 - 55/24), -2/3 (1 - 7/8 + 11/24)]
 *         = [1/3, -1/18, 1/9, -7/18]
 * In flat order (b0c0, b0c1, b1c0, b1c1 pairs): */
static const double bn_x[] = {3, -3, -0.5, 0.5, 5, 3, 3.5, 0.5};
static const double bn_g[] = {1, 2, -1, 0.5, 0, -2, 3, 1};
static const double bn_y[] = {7.0 / 6, -17.0 / 6, 2, 4.0 / 3, 2.5, 7.0 / 6, -2.0 / 3, 4.0 / 3};
static const double bn_dx[] = {19.0 / 27, 4.0 / 27, 1.0 / 3, -1.0 / 18,
                               4.0 / 9,   -35.0 / 27, 1.0 / 9, -7.0 / 18};

START_TEST(test_batch_norm_train_forward_and_grad) {
    tensor *x = leaf(SHAPE(2, 2, 2), bn_x);
    tensor *w = leaf(SHAPE(2), (double[]){2, -1});
    tensor *b = leaf(SHAPE(2), (double[]){0.5, 1});
    tensor *g = tensor_from_doubles(DTYPE_F64, SHAPE(2, 2, 2), bn_g);
    tensor *y = tensor_batch_norm(x, w, b, NULL, NULL, true, 0.1, 0.0);
    ck_assert_tensor(y, bn_y, 1e-12);
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(x->grad, bn_dx, 1e-12);
    ck_assert_tensor(w->grad, ((double[]){-11.0 / 3, 5.5}), 1e-12);
    ck_assert_tensor(b->grad, ((double[]){1, 3.5}), 1e-12);
    tape_reset();
    tensor_free(x);
    tensor_free(w);
    tensor_free(b);
    tensor_free(g);
}
END_TEST

/* The same case in float32 agrees to float32 precision. */
START_TEST(test_batch_norm_train_f32) {
    tensor *x = leaf_dt(DTYPE_F32, SHAPE(2, 2, 2), bn_x);
    tensor *w = leaf_dt(DTYPE_F32, SHAPE(2), (double[]){2, -1});
    tensor *b = tensor_from_doubles(DTYPE_F32, SHAPE(2), (double[]){0.5, 1});
    tensor *g = tensor_from_doubles(DTYPE_F32, SHAPE(2, 2, 2), bn_g);
    tensor *y = tensor_batch_norm(x, w, b, NULL, NULL, true, 0.1, 0.0);
    ck_assert_int_eq(y->dtype, DTYPE_F32);
    ck_assert_tensor(y, bn_y, 1e-5);
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(x->grad, bn_dx, 1e-5);
    ck_assert_tensor(w->grad, ((double[]){-11.0 / 3, 5.5}), 1e-5);
    tape_reset();
    tensor_free(x);
    tensor_free(w);
    tensor_free(b);
    tensor_free(g);
}
END_TEST

/* Without weight and bias y = xh: c0 xh = [1, -5, 3, 1] / 3, c1 xh = [-1, -1/3, 5/3, -1/3];
 * dx = s (g - mean g - xh mean(g xh)), the case above with w = 1: c0 = half of
 * bn_dx's c0 entries (w was 2), c1 = minus bn_dx's c1 entries (w was -1). */
START_TEST(test_batch_norm_train_without_affine) {
    tensor *x = leaf(SHAPE(2, 2, 2), bn_x);
    tensor *g = tensor_from_doubles(DTYPE_F64, SHAPE(2, 2, 2), bn_g);
    tensor *y = tensor_batch_norm(x, NULL, NULL, NULL, NULL, true, 0.1, 0.0);
    ck_assert_tensor(y, ((double[]){1.0 / 3, -5.0 / 3, -1, -1.0 / 3, 1, 1.0 / 3, 5.0 / 3, -1.0 / 3}),
                     1e-12);
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    double want[8];
    for (int i = 0; i < 8; i++) want[i] = ((i / 2) % 2 == 0) ? bn_dx[i] / 2 : -bn_dx[i];
    ck_assert_tensor(x->grad, want, 1e-12);
    tape_reset();
    tensor_free(x);
    tensor_free(g);
}
END_TEST

/* One training step updates the running statistics like PyTorch, momentum 0.1:
 *   running_mean = 0.9 [1, -1] + 0.1 [2, 1]                  = [1.1, -0.8]
 *   running_var  = 0.9 [16, 0.25] + 0.1 [9 * 4/3, 2.25 * 4/3] = 0.9 [16, 0.25] + 0.1 [12, 3]
 *                = [14.4 + 1.2, 0.225 + 0.3]                   = [15.6, 0.525]
 * (unbiased variance: the biased 9 and 2.25 times N / (N - 1) = 4/3). The
 * output still uses the batch statistics (bn_y). */
START_TEST(test_batch_norm_running_stats_update_like_pytorch) {
    tensor *x = leaf(SHAPE(2, 2, 2), bn_x);
    tensor *w = tensor_from_doubles(DTYPE_F64, SHAPE(2), (double[]){2, -1});
    tensor *b = tensor_from_doubles(DTYPE_F64, SHAPE(2), (double[]){0.5, 1});
    tensor *rm = tensor_from_doubles(DTYPE_F64, SHAPE(2), (double[]){1, -1});
    tensor *rv = tensor_from_doubles(DTYPE_F64, SHAPE(2), (double[]){16, 0.25});
    tensor *y = tensor_batch_norm(x, w, b, rm, rv, true, 0.1, 0.0);
    ck_assert_tensor(y, bn_y, 1e-12);
    ck_assert_tensor(rm, ((double[]){1.1, -0.8}), 1e-12);
    ck_assert_tensor(rv, ((double[]){15.6, 0.525}), 1e-12);
    ck_assert_ptr_null(rm->grad);
    /* a replay of forward (the checker's) leaves them alone */
    tape_node *n = tg_tape_node_at(tape_size() - 1);
    n->op->forward(n);
    n->op->forward(n);
    ck_assert_tensor(rm, ((double[]){1.1, -0.8}), 1e-12);
    ck_assert_tensor(rv, ((double[]){15.6, 0.525}), 1e-12);
    /* and they are updated even when nothing is recorded, like PyTorch */
    tape_no_grad_begin();
    ck_assert_ptr_nonnull(tensor_batch_norm(x, w, b, rm, rv, true, 0.5, 0.0));
    tape_no_grad_end();
    ck_assert_tensor(rm, ((double[]){0.5 * 1.1 + 0.5 * 2, 0.5 * -0.8 + 0.5 * 1}), 1e-12);
    ck_assert_tensor(rv, ((double[]){0.5 * 15.6 + 0.5 * 12, 0.5 * 0.525 + 0.5 * 3}), 1e-12);
    tape_reset();
    tensor *all[] = {x, w, b, rm, rv};
    for (int i = 0; i < 5; i++) tensor_free(all[i]);
}
END_TEST

/* Eval: running_mean [1, -1], running_var [16, 0.25], eps 0: s = [1/4, 2]
 *   c0: xh = ([3, -3, 5, 3] - 1) / 4 = [1/2, -1, 1, 1/2], y = 2 xh + 0.5 = [1.5, -1.5, 2.5, 1.5]
 *   c1: xh = ([-0.5, 0.5, 3.5, 0.5] + 1) 2 = [1, 3, 9, 3],  y = -xh + 1 = [0, -2, -8, -2]
 *   dx = w s g: c0 = g0 / 2 = [0.5, 1, 0, -1], c1 = -2 g1 = [2, -1, -6, -2]
 *   dw = sum g xh = [0.5 - 2 + 0 - 1, -1 + 1.5 + 27 + 3] = [-2.5, 30.5], db = [1, 3.5]
 * The running statistics are not changed in eval. */
START_TEST(test_batch_norm_eval_forward_and_grad) {
    tensor *x = leaf(SHAPE(2, 2, 2), bn_x);
    tensor *w = leaf(SHAPE(2), (double[]){2, -1});
    tensor *b = leaf(SHAPE(2), (double[]){0.5, 1});
    tensor *rm = tensor_from_doubles(DTYPE_F64, SHAPE(2), (double[]){1, -1});
    tensor *rv = tensor_from_doubles(DTYPE_F64, SHAPE(2), (double[]){16, 0.25});
    tensor *g = tensor_from_doubles(DTYPE_F64, SHAPE(2, 2, 2), bn_g);
    tensor *y = tensor_batch_norm(x, w, b, rm, rv, false, 0.1, 0.0);
    ck_assert_tensor(y, ((double[]){1.5, -1.5, 0, -2, 2.5, 1.5, -8, -2}), 1e-12);
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(x->grad, ((double[]){0.5, 1, 2, -1, 0, -1, -6, -2}), 1e-12);
    ck_assert_tensor(w->grad, ((double[]){-2.5, 30.5}), 1e-12);
    ck_assert_tensor(b->grad, ((double[]){1, 3.5}), 1e-12);
    ck_assert_tensor(rm, ((double[]){1, -1}), 0);
    ck_assert_tensor(rv, ((double[]){16, 0.25}), 0);
    tape_reset();
    tensor *all[] = {x, w, b, rm, rv, g};
    for (int i = 0; i < 6; i++) tensor_free(all[i]);
}
END_TEST

/* eps enters under the root: x (2, 1) = [1, -1] has mean 0 and var 1; with
 * eps 3, s = 1/2 and y = [0.5, -0.5]. 2-D x (B, C) has no spatial dims. */
START_TEST(test_batch_norm_eps_2d) {
    tensor *x = tensor_from_doubles(DTYPE_F64, SHAPE(2, 1), (double[]){1, -1});
    ck_assert_tensor(tensor_batch_norm(x, NULL, NULL, NULL, NULL, true, 0.1, 3.0),
                     ((double[]){0.5, -0.5}), 1e-12);
    tape_reset();
    tensor_free(x);
}
END_TEST

START_TEST(test_batch_norm_errors) {
    tensor *x = tensor_zeros(DTYPE_F64, SHAPE(2, 3, 4));
    tensor *c3 = tensor_ones(DTYPE_F64, SHAPE(3));
    tensor *c4 = tensor_ones(DTYPE_F64, SHAPE(4));
    tensor *c13 = tensor_ones(DTYPE_F64, SHAPE(1, 3));
    tensor *ci = tensor_zeros(DTYPE_I64, SHAPE(3));
    tensor *cf = tensor_zeros(DTYPE_F32, SHAPE(3));
    tensor *xi = tensor_zeros(DTYPE_I64, SHAPE(2, 3, 4));
    tensor *x1 = tensor_zeros(DTYPE_F64, SHAPE(3));
    tensor *one = tensor_zeros(DTYPE_F64, SHAPE(1, 3, 1));
    ck_assert_fails(tensor_batch_norm(x, c4, NULL, NULL, NULL, true, 0.1, 1e-5),
                    "batch_norm: weight must be [C] = [3] for x [2,3,4], got [4]");
    ck_assert_fails(tensor_batch_norm(x, NULL, c13, NULL, NULL, true, 0.1, 1e-5),
                    "batch_norm: bias must be [C] = [3] for x [2,3,4], got [1,3]");
    ck_assert_fails(tensor_batch_norm(x, NULL, NULL, c4, c3, true, 0.1, 1e-5),
                    "batch_norm: running_mean must be [C] = [3]");
    ck_assert_fails(tensor_batch_norm(x, NULL, NULL, c3, c4, false, 0.1, 1e-5),
                    "batch_norm: running_var must be [C] = [3]");
    ck_assert_fails(tensor_batch_norm(x, NULL, NULL, c3, NULL, true, 0.1, 1e-5),
                    "batch_norm: give both running_mean and running_var, or neither");
    ck_assert_fails(tensor_batch_norm(x, c3, c3, NULL, NULL, false, 0.1, 1e-5),
                    "batch_norm: eval mode needs running_mean and running_var, got NULL");
    ck_assert_fails(tensor_batch_norm(one, NULL, NULL, NULL, NULL, true, 0.1, 1e-5),
                    "batch_norm: training needs more than 1 value per channel, x [1,3,1]");
    ck_assert_fails(tensor_batch_norm(x1, NULL, NULL, NULL, NULL, true, 0.1, 1e-5),
                    "batch_norm: x must be (B, C, ...) with at least 2 dims, got [3]");
    ck_assert_fails(tensor_batch_norm(x, NULL, NULL, NULL, NULL, true, 1.5, 1e-5),
                    "batch_norm: momentum must be in [0, 1], got 1.5");
    ck_assert_fails(tensor_batch_norm(x, NULL, NULL, NULL, NULL, true, -0.1, 1e-5),
                    "batch_norm: momentum must be in [0, 1], got -0.1");
    ck_assert_fails(tensor_batch_norm(x, NULL, NULL, NULL, NULL, true, 0.1, -1.0),
                    "batch_norm: eps must be finite and >= 0, got -1");
    ck_assert_fails(tensor_batch_norm(x, NULL, NULL, NULL, NULL, true, 0.1, NAN),
                    "batch_norm: eps must be finite and >= 0, got nan");
    ck_assert_fails(tensor_batch_norm(xi, NULL, NULL, NULL, NULL, true, 0.1, 1e-5),
                    "batch_norm: input 0 is int64");
    ck_assert_fails(tensor_batch_norm(x, ci, NULL, NULL, NULL, true, 0.1, 1e-5),
                    "batch_norm: weight is int64; it must have the dtype of x (float64)");
    ck_assert_fails(tensor_batch_norm(x, NULL, NULL, c3, ci, true, 0.1, 1e-5),
                    "batch_norm: running_var is int64");
    ck_assert_fails(tensor_batch_norm(x, NULL, cf, NULL, NULL, true, 0.1, 1e-5),
                    "batch_norm: bias is float32; it must have the dtype of x (float64)");
    ck_assert_fails(tensor_batch_norm(NULL, c3, c3, NULL, NULL, true, 0.1, 1e-5),
                    "batch_norm: input 0 is NULL");
    /* a failed op given as the weight propagates its first error unchanged */
    tapegrad_error_clear();
    ck_assert_ptr_null(tensor_batch_norm(x, tensor_batch_norm(x, c4, NULL, NULL, NULL, true, 0.1, 1e-5),
                                         NULL, NULL, NULL, true, 0.1, 1e-5));
    ck_assert_msg(strstr(tapegrad_error(), "got [4]"), "first error kept: %s", tapegrad_error());
    tapegrad_error_clear();
    /* nothing was updated by the failed calls */
    ck_assert_tensor(c3, ((double[]){1, 1, 1}), 0);
    tensor *all[] = {x, c3, c4, c13, ci, cf, xi, x1, one};
    for (int i = 0; i < 9; i++) tensor_free(all[i]);
}
END_TEST

START_TEST(test_batch_norm_samples_numerically) { numeric_check_op("batch_norm", 1000, 1, CHECK_ALL); }
END_TEST

/* ------------------------------------------------------------- layer norm */

/* x (2, 4): row 0 = [3, -3, 5, 3] (mean 2, var 9, s = 1/3, xh = [1, -5, 3, 1] / 3),
 *           row 1 = [-0.5, 0.5, 3.5, 0.5] (mean 1, var 2.25, s = 2/3, xh = [-1, -1/3, 5/3, -1/3]),
 * eps 0, w = [1, 2, -1, 0.5], b = [0, 1, 0.5, -1]:
 *   y0 = xh w + b = [1/3, -10/3 + 1, -1 + 0.5, 1/6 - 1] = [1/3, -7/3, -1/2, -5/6]
 *   y1 = [-1, -2/3 + 1, -5/3 + 0.5, -1/6 - 1]            = [-1, 1/3, -7/6, -7/6]
 * upstream g0 = [1, 2, -1, 0.5], g1 = [0, -2, 3, 1]; gw = g w:
 *   gw0 = [1, 4, 1, 1/4]: mean 25/16, mean(gw xh) = (1/3 - 20/3 + 3 + 1/12) / 4 = -21/16
 *     dx0 = s (gw - 25/16 + xh 21/16) = [-1/24, 1/12, 1/4, -7/24]
 *   gw1 = [0, -4, -3, 1/2]: mean -13/8, mean(gw xh) = (0 + 4/3 - 5 - 1/6) / 4 = -23/24
 *     dx1 = 2/3 (gw + 13/8 + xh 23/24) = [4/9, -97/54, 4/27, 65/54]
 *   dw = sum over rows g xh = [1/3 + 0, -10/3 + 2/3, -1 + 5, 1/6 - 1/3] = [1/3, -8/3, 4, -1/6]
 *   db = g0 + g1 = [1, 0, 2, 1.5] */
START_TEST(test_layer_norm_forward_and_grad) {
    tensor *x = leaf(SHAPE(2, 4), bn_x);
    tensor *w = leaf(SHAPE(4), (double[]){1, 2, -1, 0.5});
    tensor *b = leaf(SHAPE(4), (double[]){0, 1, 0.5, -1});
    tensor *g = tensor_from_doubles(DTYPE_F64, SHAPE(2, 4), (double[]){1, 2, -1, 0.5, 0, -2, 3, 1});
    /* bn_x in (2, 4) is [3, -3, -0.5, 0.5 | 5, 3, 3.5, 0.5]; reorder to the rows above */
    static const double rows[] = {3, -3, 5, 3, -0.5, 0.5, 3.5, 0.5};
    for (int i = 0; i < 8; i++) tensor_set(x, i, rows[i]);
    tensor *y = tensor_layer_norm(x, 1, w, b, 0.0);
    ck_assert_tensor(y, ((double[]){1.0 / 3, -7.0 / 3, -0.5, -5.0 / 6, -1, 1.0 / 3, -7.0 / 6, -7.0 / 6}),
                     1e-12);
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    ck_assert_tensor(x->grad, ((double[]){-1.0 / 24, 1.0 / 12, 0.25, -7.0 / 24, 4.0 / 9, -97.0 / 54,
                                          4.0 / 27, 65.0 / 54}),
                     1e-12);
    ck_assert_tensor(w->grad, ((double[]){1.0 / 3, -8.0 / 3, 4, -1.0 / 6}), 1e-12);
    ck_assert_tensor(b->grad, ((double[]){1, 0, 2, 1.5}), 1e-12);
    tape_reset();
    tensor_free(x);
    tensor_free(w);
    tensor_free(b);
    tensor_free(g);
}
END_TEST

/* Over the last 2 dims of (1, 2, 2) = [[1, -1], [1, -1]]: mean 0, var 1; with
 * eps 3, s = 1/2 and y = x / 2. Without weight and bias, float32. */
START_TEST(test_layer_norm_two_dims_eps_f32) {
    tensor *x = tensor_from_doubles(DTYPE_F32, SHAPE(1, 2, 2), (double[]){1, -1, 1, -1});
    ck_assert_tensor(tensor_layer_norm(x, 2, NULL, NULL, 3.0), ((double[]){0.5, -0.5, 0.5, -0.5}), 1e-7);
    tape_reset();
    tensor_free(x);
}
END_TEST

START_TEST(test_layer_norm_errors) {
    tensor *x = tensor_zeros(DTYPE_F64, SHAPE(2, 3, 4));
    tensor *w4 = tensor_ones(DTYPE_F64, SHAPE(4));
    tensor *w3 = tensor_ones(DTYPE_F64, SHAPE(3));
    tensor *w34 = tensor_ones(DTYPE_F64, SHAPE(3, 4));
    tensor *wi = tensor_zeros(DTYPE_I64, SHAPE(4));
    tensor *wf = tensor_zeros(DTYPE_F32, SHAPE(4));
    tensor *xi = tensor_zeros(DTYPE_I64, SHAPE(2, 4));
    ck_assert_fails(tensor_layer_norm(x, 1, w3, NULL, 1e-5),
                    "layer_norm: weight must be [4] (the last 1 dims of x [2,3,4]), got [3]");
    ck_assert_fails(tensor_layer_norm(x, 2, w34, w4, 1e-5),
                    "layer_norm: bias must be [3,4] (the last 2 dims of x [2,3,4]), got [4]");
    ck_assert_fails(tensor_layer_norm(x, 0, NULL, NULL, 1e-5),
                    "layer_norm: normalized_ndim 0 out of range for x [2,3,4] (1 to 3)");
    ck_assert_fails(tensor_layer_norm(x, 4, NULL, NULL, 1e-5), "normalized_ndim 4 out of range");
    ck_assert_fails(tensor_layer_norm(x, 1, NULL, NULL, -1e-5), "layer_norm: eps must be finite and >= 0, got -1e-05");
    ck_assert_fails(tensor_layer_norm(x, 1, NULL, NULL, INFINITY), "eps must be finite");
    ck_assert_fails(tensor_layer_norm(xi, 1, NULL, NULL, 1e-5), "layer_norm: input 0 is int64");
    ck_assert_fails(tensor_layer_norm(x, 1, wi, NULL, 1e-5), "layer_norm: weight is int64");
    ck_assert_fails(tensor_layer_norm(x, 1, NULL, wf, 1e-5), "layer_norm: bias is float32");
    ck_assert_fails(tensor_layer_norm(NULL, 1, w4, w4, 1e-5), "layer_norm: input 0 is NULL");
    tensor *all[] = {x, w4, w3, w34, wi, wf, xi};
    for (int i = 0; i < 7; i++) tensor_free(all[i]);
}
END_TEST

START_TEST(test_layer_norm_samples_numerically) { numeric_check_op("layer_norm", 1000, 1, CHECK_ALL); }
END_TEST

/* Above PARALLEL_MIN_ELEMS the channel (row) loops run on several threads;
 * each channel is reduced by one thread in a fixed order, so outputs and
 * gradients are bit-identical for 1 and 2 threads. */
static void norms_run(int threads, tensor *x, tensor *w, tensor *g, tensor **out) {
    tapegrad_set_threads(threads);
    tensor_zero_grad(x);
    tensor_zero_grad(w);
    tensor *y = tensor_add(tensor_batch_norm(x, w, NULL, NULL, NULL, true, 0.1, 1e-5),
                           tensor_layer_norm(x, 2, NULL, NULL, 1e-5));
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    out[0] = tensor_clone(y);
    out[1] = tensor_clone(x->grad);
    out[2] = tensor_clone(w->grad);
    tape_reset();
}

START_TEST(test_norms_bit_identical_across_threads) {
    rng r;
    rng_seed(&r, 11, 0);
    tensor *x = tensor_randn(&r, DTYPE_F32, SHAPE(16, 8, 16, 16), 0.5, 2.0);
    tensor *w = tensor_rand(&r, DTYPE_F32, SHAPE(8), 0.5, 1.5);
    tensor *g = tensor_randn(&r, DTYPE_F32, SHAPE(16, 8, 16, 16), 0.0, 1.0);
    tensor_set_requires_grad(x, true);
    tensor_set_requires_grad(w, true);
    tensor *one[3], *two[3];
    norms_run(1, x, w, g, one);
    norms_run(2, x, w, g, two);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(memcmp(one[i]->data, two[i]->data, (size_t)one[i]->size * sizeof(float)), 0);
        tensor_free(one[i]);
        tensor_free(two[i]);
    }
    tapegrad_set_threads(1);
    tensor_free(x);
    tensor_free(w);
    tensor_free(g);
}
END_TEST

Suite *ops_norm_suite(void) {
    Suite *s = suite_create("ops_norm");
    TCase *tc = tcase_create("norm");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_batch_norm_train_forward_and_grad);
    tcase_add_test(tc, test_batch_norm_train_f32);
    tcase_add_test(tc, test_batch_norm_train_without_affine);
    tcase_add_test(tc, test_batch_norm_running_stats_update_like_pytorch);
    tcase_add_test(tc, test_batch_norm_eval_forward_and_grad);
    tcase_add_test(tc, test_batch_norm_eps_2d);
    tcase_add_test(tc, test_batch_norm_errors);
    tcase_add_test(tc, test_batch_norm_samples_numerically);
    tcase_add_test(tc, test_layer_norm_forward_and_grad);
    tcase_add_test(tc, test_layer_norm_two_dims_eps_f32);
    tcase_add_test(tc, test_layer_norm_errors);
    tcase_add_test(tc, test_layer_norm_samples_numerically);
    tcase_add_test(tc, test_norms_bit_identical_across_threads);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ops_norm_suite)
