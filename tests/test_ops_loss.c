/* test_ops_loss.c - the loss family: hand-computed forward values and
 * gradients for every loss, every error path, stability at logits of +-1e4,
 * and a central-difference check of every vjp over the registry's sample
 * cases (float64, eps 1e-6, atol 1e-5, rtol 1e-3, as the checker will). */
#include <string.h>

#include "check_main.h"
#include "ops_test.h"
#include "../autograd/internal.h"

OP_FAMILY(loss)

static tensor *labels(int ndim, const int64_t *shape, const int64_t *v) {
    return tensor_from_data(DTYPE_I64, ndim, shape, v);
}
static void backward_ok(tensor *loss) {
    ck_assert_msg(loss != NULL, "%s", tapegrad_error() ? tapegrad_error() : "NULL loss");
    ck_assert_int_eq(tensor_backward(loss), 0);
}

/* ------------------------------------------------------------ regression */

/* d = pred - target = [0.5, -1, 3]; mean d^2 = (0.25 + 1 + 9) / 3;
 * dpred = 2d / 3 = [1/3, -2/3, 2], dtarget = -dpred. */
START_TEST(test_mse_loss_mean_value_and_grads) {
    tensor *p = leaf(SHAPE(3), (double[]){1.5, -0.5, 2.0});
    tensor *t = leaf(SHAPE(3), (double[]){1.0, 0.5, -1.0});
    tensor *l = tensor_mse_loss(p, t, REDUCTION_MEAN);
    ck_assert_close(tensor_item(l), 10.25 / 3, 1e-12);
    backward_ok(l);
    ck_assert_tensor(p->grad, ((double[]){1.0 / 3, -2.0 / 3, 2.0}), 1e-12);
    ck_assert_tensor(t->grad, ((double[]){-1.0 / 3, 2.0 / 3, -2.0}), 1e-12);
    tape_reset();
    tensor_free(p);
    tensor_free(t);
}
END_TEST

/* d = [0.3, -1.5, -0.5, 1]; sum |d| = 3.3; dpred = sign(d), dtarget = -sign(d). */
START_TEST(test_l1_loss_sum_value_and_grads) {
    tensor *p = leaf(SHAPE(2, 2), (double[]){0.5, -1.0, 2.0, 0.3});
    tensor *t = leaf(SHAPE(2, 2), (double[]){0.2, 0.5, 2.5, -0.7});
    tensor *l = tensor_l1_loss(p, t, REDUCTION_SUM);
    ck_assert_close(tensor_item(l), 3.3, 1e-12);
    backward_ok(l);
    ck_assert_tensor(p->grad, ((double[]){1, -1, -1, 1}), 1e-12);
    ck_assert_tensor(t->grad, ((double[]){-1, 1, 1, -1}), 1e-12);
    tape_reset();
    tensor_free(p);
    tensor_free(t);
}
END_TEST

/* delta 1, d = [0.5, -2, 1.5]: l = [0.5^2/2, 1 (2 - 0.5), 1 (1.5 - 0.5)] =
 * [0.125, 1.5, 1]. Upstream u = [1, 2, -1]: dpred = u clamp(d, -1, 1) =
 * [0.5, -2, -1], dtarget = -dpred. */
START_TEST(test_huber_loss_none_value_and_grads) {
    tensor *p = leaf(SHAPE(3), (double[]){0.5, -1.0, 2.0});
    tensor *t = leaf(SHAPE(3), (double[]){0.0, 1.0, 0.5});
    tensor *u = constant(SHAPE(3), (double[]){1, 2, -1});
    tensor *l = tensor_huber_loss(p, t, 1.0, REDUCTION_NONE);
    ck_assert_int_eq(l->ndim, 1);
    ck_assert_tensor(l, ((double[]){0.125, 1.5, 1.0}), 1e-12);
    ck_assert_int_eq(tensor_backward_with(l, u), 0);
    ck_assert_tensor(p->grad, ((double[]){0.5, -2, -1}), 1e-12);
    ck_assert_tensor(t->grad, ((double[]){-0.5, 2, 1}), 1e-12);
    tape_reset();
    tensor_free(p);
    tensor_free(t);
    tensor_free(u);
}
END_TEST

/* beta 0.5, d = [0.2, -1]: l = [0.2^2 / (2 * 0.5), 1 - 0.25] = [0.04, 0.75],
 * mean 0.395; dpred = [0.2 / 0.5, -1] / 2 = [0.2, -0.5]. */
START_TEST(test_smooth_l1_loss_mean_value_and_grads) {
    tensor *p = leaf(SHAPE(2), (double[]){0.2, 0.0});
    tensor *t = leaf(SHAPE(2), (double[]){0.0, 1.0});
    tensor *l = tensor_smooth_l1_loss(p, t, 0.5, REDUCTION_MEAN);
    ck_assert_close(tensor_item(l), 0.395, 1e-12);
    backward_ok(l);
    ck_assert_tensor(p->grad, ((double[]){0.2, -0.5}), 1e-12);
    ck_assert_tensor(t->grad, ((double[]){-0.2, 0.5}), 1e-12);
    tape_reset();
    tensor_free(p);
    tensor_free(t);
}
END_TEST

/* beta 0 is l1: d = [0.25, -2] gives 2.25 with gradient sign(d). */
START_TEST(test_smooth_l1_loss_beta_zero_is_l1) {
    tensor *p = leaf(SHAPE(2), (double[]){0.25, -1.0});
    tensor *t = constant(SHAPE(2), (double[]){0.0, 1.0});
    tensor *l = tensor_smooth_l1_loss(p, t, 0.0, REDUCTION_SUM);
    ck_assert_close(tensor_item(l), 2.25, 1e-12);
    backward_ok(l);
    ck_assert_tensor(p->grad, ((double[]){1, -1}), 1e-12);
    tape_reset();
    tensor_free(p);
    tensor_free(t);
}
END_TEST

/* hinge, margin 1: y x = [0.5, 2, -0.2], 1 - y x = [0.5, -1, 1.2] -> l = [0.5, 0, 1.2],
 * sum 1.7; active elements 0 and 2: dx = -y = [-1, 0, 1], dy = -x = [-0.5, 0, -0.2]. */
START_TEST(test_hinge_loss_sum_value_and_grads) {
    tensor *x = leaf(SHAPE(3), (double[]){0.5, -2.0, 0.2});
    tensor *y = leaf(SHAPE(3), (double[]){1, -1, -1});
    tensor *l = tensor_hinge_loss(x, y, 1.0, REDUCTION_SUM);
    ck_assert_close(tensor_item(l), 1.7, 1e-12);
    backward_ok(l);
    ck_assert_tensor(x->grad, ((double[]){-1, 0, 1}), 1e-12);
    ck_assert_tensor(y->grad, ((double[]){-0.5, 0, -0.2}), 1e-12);
    tape_reset();
    tensor_free(x);
    tensor_free(y);
}
END_TEST

/* ------------------------------------------------------------ probabilities */

/* p = [0.8, 0.25], t = [1, 0], w = [2, 0.5]:
 * l = -2 log 0.8 - 0.5 log 0.75 = 0.4462871 + 0.1438410 = 0.5901281;
 * dp = w (p - t) / (p (1 - p)) = [2 (-0.2) / 0.16, 0.5 (0.25) / 0.1875] = [-2.5, 2/3];
 * dt = w (log(1 - p) - log p) = [2 log(0.2 / 0.8), 0.5 log 3] = [-2.7725887, 0.5493061].
 * The weight requires grad but, a constant of the loss, receives none. */
START_TEST(test_bce_loss_weighted_sum_value_and_grads) {
    tensor *p = leaf(SHAPE(2), (double[]){0.8, 0.25});
    tensor *t = leaf(SHAPE(2), (double[]){1, 0});
    tensor *w = leaf(SHAPE(2), (double[]){2, 0.5});
    tensor *l = tensor_bce_loss(p, t, w, REDUCTION_SUM);
    ck_assert_close(tensor_item(l), 0.5901281388543098, 1e-12);
    backward_ok(l);
    ck_assert_tensor(p->grad, ((double[]){-2.5, 2.0 / 3}), 1e-12);
    ck_assert_tensor(t->grad, ((double[]){-2.7725887222397816, 0.5493061443340548}), 1e-12);
    ck_assert_ptr_null(w->grad);
    tape_reset();
    tensor_free(p);
    tensor_free(t);
    tensor_free(w);
}
END_TEST

/* p = 0 with t = 1: -log 0 is clamped to 100 (PyTorch), p = 1 with t = 1 gives 0. */
START_TEST(test_bce_loss_log_clamped_at_minus_100) {
    tensor *p = constant(SHAPE(2), (double[]){0.0, 1.0});
    tensor *t = constant(SHAPE(2), (double[]){1.0, 1.0});
    tensor *l = tensor_bce_loss(p, t, NULL, REDUCTION_NONE);
    ck_assert_tensor(l, ((double[]){100.0, 0.0}), 1e-12);
    tape_reset();
    tensor_free(p);
    tensor_free(t);
}
END_TEST

/* x [1,2] = [0.5, -1], t = [1, 0], pos_weight [2] = [3, 2] (per class):
 * l = (1 - t) x + (1 + (pw - 1) t) softplus(-x)
 *   = [3 softplus(-0.5), -1 + softplus(1)] = [1.4222309, 0.3132617], mean 0.8677463;
 * dx = ((1 - t) - (1 + (pw - 1) t) sigmoid(-x)) / 2 = [-3 (0.3775407), 1 - 0.7310586] / 2;
 * dt = (-x + (pw - 1) softplus(-x)) / 2 = [-0.5 + 2 (0.4740770), 1 + 1.3132617] / 2. */
START_TEST(test_bce_with_logits_pos_weight_mean_value_and_grads) {
    tensor *x = leaf(SHAPE(1, 2), (double[]){0.5, -1.0});
    tensor *t = leaf(SHAPE(1, 2), (double[]){1, 0});
    tensor *pw = constant(SHAPE(2), (double[]){3, 2});
    tensor *l = tensor_bce_with_logits(x, t, pw, REDUCTION_MEAN);
    ck_assert_close(tensor_item(l), 0.8677463200292714, 1e-12);
    backward_ok(l);
    ck_assert_tensor(x->grad, ((double[]){-0.566311003197218, 0.13447071068499755}), 1e-12);
    ck_assert_tensor(t->grad, ((double[]){0.2240769841801067, 1.1566308437591113}), 1e-12);
    tape_reset();
    tensor_free(x);
    tensor_free(t);
    tensor_free(pw);
}
END_TEST

/* kl_div, logp = [-1, -2], t = [0.3, 0.7]: sum t log t - t logp
 * = 0.3 log 0.3 + 0.3 + 0.7 log 0.7 + 1.4 = 1.0891357;
 * dlogp = -t, dt = log t + 1 - logp = [log 0.3 + 2, log 0.7 + 3]. */
START_TEST(test_kl_div_sum_value_and_grads) {
    tensor *lp = leaf(SHAPE(2), (double[]){-1, -2});
    tensor *t = leaf(SHAPE(2), (double[]){0.3, 0.7});
    tensor *l = tensor_kl_div(lp, t, REDUCTION_SUM);
    ck_assert_close(tensor_item(l), 1.0891356979451063, 1e-12);
    backward_ok(l);
    ck_assert_tensor(lp->grad, ((double[]){-0.3, -0.7}), 1e-12);
    ck_assert_tensor(t->grad, ((double[]){log(0.3) + 2, log(0.7) + 3}), 1e-12);
    tape_reset();
    tensor_free(lp);
    tensor_free(t);
}
END_TEST

/* kl_div with a zero target: 0 log 0 = 0, so only the other element counts;
 * mean over 2 elements: (0.5 log 0.5 + 0.5) / 2. */
START_TEST(test_kl_div_zero_target_mean) {
    tensor *lp = leaf(SHAPE(2), (double[]){-3, -1});
    tensor *t = constant(SHAPE(2), (double[]){0.0, 0.5});
    tensor *l = tensor_kl_div(lp, t, REDUCTION_MEAN);
    ck_assert_close(tensor_item(l), (0.5 * log(0.5) + 0.5) / 2, 1e-12);
    backward_ok(l);
    ck_assert_tensor(lp->grad, ((double[]){0.0, -0.25}), 1e-12);
    tape_reset();
    tensor_free(lp);
    tensor_free(t);
}
END_TEST

/* focal, alpha 0.25, gamma 2, x = [0.5, -1], t = [1, 0]:
 *   s = sigmoid(x) = [0.6224593, 0.2689414], ce = [-log s0, -log(1 - s1)] = [0.4740770, 0.3132617],
 *   u = 1 - p_t = [1 - s0, s1] = [0.3775407, 0.2689414], a = [0.25, 0.75];
 *   l = a ce u^2 = 0.25 (0.4740770)(0.1425370) + 0.75 (0.3132617)(0.0723295) = 0.0338869.
 *   t = 1: dl/dx = a ((s - 1) u^2 - 2 ce u s (1 - s)) = 0.25 (-u^3 - 2 ce s u^2) = -0.0344842;
 *   t = 0: dl/dx = a (s u^2 + 2 ce u s (1 - s)) = 0.0394358.
 *   dl/dt = a (-x u^2 + 2 ce u (1 - 2s)) + (2 alpha - 1) ce u^2 = [-0.0735220, 0.1013175]. */
START_TEST(test_focal_loss_sum_value_and_grads) {
    tensor *x = leaf(SHAPE(2), (double[]){0.5, -1.0});
    tensor *t = leaf(SHAPE(2), (double[]){1, 0});
    tensor *l = tensor_focal_loss(x, t, 0.25, 2.0, REDUCTION_SUM);
    ck_assert_close(tensor_item(l), 0.0338869157607264, 1e-12);
    backward_ok(l);
    ck_assert_tensor(x->grad, ((double[]){-0.03448424933973071, 0.03943584748339335}), 1e-8);
    ck_assert_tensor(t->grad, ((double[]){-0.0735220451481694, 0.10131748007236041}), 1e-8);
    tape_reset();
    tensor_free(x);
    tensor_free(t);
}
END_TEST

/* gamma 0 with alpha < 0 (no weighting) is bce_with_logits, soft targets included. */
START_TEST(test_focal_loss_gamma0_is_bce_with_logits) {
    tensor *x = leaf(SHAPE(3), (double[]){0.7, -1.3, 2.1});
    tensor *t = constant(SHAPE(3), (double[]){0.2, 1.0, 0.6});
    tensor *u = constant(SHAPE(3), (double[]){1.0, -0.5, 2.0});
    tensor *f = tensor_focal_loss(x, t, -1.0, 0.0, REDUCTION_NONE);
    tensor *b = tensor_bce_with_logits(x, t, NULL, REDUCTION_NONE);
    for (int i = 0; i < 3; i++) ck_assert_close(tensor_get(f, i), tensor_get(b, i), 1e-14);
    ck_assert_int_eq(tensor_backward_with(f, u), 0);
    tensor *gf = tensor_clone(x->grad);
    tensor_zero_grad(x);
    ck_assert_int_eq(tensor_backward_with(b, u), 0);
    for (int i = 0; i < 3; i++) ck_assert_close(tensor_get(gf, i), tensor_get(x->grad, i), 1e-14);
    tape_reset();
    tensor_free(gf);
    tensor_free(x);
    tensor_free(t);
    tensor_free(u);
}
END_TEST

/* x1 rows [1,0], [1,1]; x2 rows [1,1], [-1,0]; y = [1, -1], margin -0.9:
 * cos = [1/sqrt2, -1/sqrt2]; l = [1 - 0.7071068, -0.7071068 + 0.9], sum 0.4857864.
 * Row 0 (dl/dcos = -1, |x1| = 1, |x2| = sqrt2): dx1 = -(x2/sqrt2 - cos x1) = [0, -0.7071068],
 *   dx2 = -(x1/sqrt2 - cos x2 / 2) = [-0.3535534, 0.3535534].
 * Row 1 (cos > margin, dl/dcos = 1, |x1|^2 = 2, |x2| = 1): dx1 = x2/sqrt2 - cos x1 / 2 =
 *   [-0.3535534, 0.3535534], dx2 = x1/sqrt2 - cos x2 = [0, 0.7071068]. */
START_TEST(test_cosine_embedding_loss_sum_value_and_grads) {
    tensor *a = leaf(SHAPE(2, 2), (double[]){1, 0, 1, 1});
    tensor *b = leaf(SHAPE(2, 2), (double[]){1, 1, -1, 0});
    tensor *y = constant(SHAPE(2), (double[]){1, -1});
    tensor *l = tensor_cosine_embedding_loss(a, b, y, -0.9, REDUCTION_SUM);
    const double h = sqrt(0.5);
    ck_assert_close(tensor_item(l), 1 - h + 0.9 - h, 1e-10);
    backward_ok(l);
    ck_assert_tensor(a->grad, ((double[]){0, -h, -h / 2, h / 2}), 1e-10);
    ck_assert_tensor(b->grad, ((double[]){-h / 2, h / 2, 0, h}), 1e-10);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
    tensor_free(y);
}
END_TEST

/* y = -1 with cos below the margin gives 0 and no gradient; NONE keeps [N]. */
START_TEST(test_cosine_embedding_loss_none_inactive_row) {
    tensor *a = leaf(SHAPE(2, 2), (double[]){1, 0, 0, 1});
    tensor *b = constant(SHAPE(2, 2), (double[]){0, 1, 0, 2});
    tensor *y = constant(SHAPE(2), (double[]){-1, -1});
    tensor *l = tensor_cosine_embedding_loss(a, b, y, 0.5, REDUCTION_NONE);
    /* cos = [0, 1]: row 0 below the margin, row 1 gives 1 - 0.5 */
    ck_assert_int_eq(l->ndim, 1);
    ck_assert_tensor(l, ((double[]){0.0, 0.5}), 1e-10);
    tape_reset();
    tensor_free(a);
    tensor_free(b);
    tensor_free(y);
}
END_TEST

/* ------------------------------------------------------------ classes */

/* logits [[1,2,3],[1,0,-1]], labels [2,0]: both rows have lse - x_y =
 * log(1 + e^-1 + e^-2) = 0.4076060; softmax rows [0.0900306, 0.2447285, 0.6652410]
 * and its reverse; dx = (softmax - onehot) / 2. Labels get no gradient. */
START_TEST(test_cross_entropy_mean_value_and_grads) {
    tensor *x = leaf(SHAPE(2, 3), (double[]){1, 2, 3, 1, 0, -1});
    tensor *y = labels(SHAPE(2), (int64_t[]){2, 0});
    tensor *l = tensor_cross_entropy(x, y, NULL, 0.0, REDUCTION_MEAN);
    ck_assert_int_eq(l->ndim, 0);
    ck_assert_close(tensor_item(l), 0.4076059644443806, 1e-12);
    backward_ok(l);
    const double p0 = 0.09003057317038043, p1 = 0.24472847105479759, p2 = 0.6652409557748217;
    ck_assert_tensor(x->grad, ((double[]){p0 / 2, p1 / 2, (p2 - 1) / 2, (p2 - 1) / 2, p1 / 2, p0 / 2}),
                     1e-12);
    ck_assert_ptr_null(y->grad);
    tape_reset();
    tensor_free(x);
    tensor_free(y);
}
END_TEST

/* Same logits, weight [1, 2, 0.5], label smoothing 0.3, mean: per row
 * l = 0.7 w_y (lse - x_y) + 0.1 sum_c w_c (lse - x_c), summed and divided by
 * w_2 + w_0 = 1.5 (PyTorch's weighted mean) = 0.9422070;
 * dx_c = (0.7 w_y (p_c - [c = y]) + 0.1 (3.5 p_c - w_c)) / 1.5. */
START_TEST(test_cross_entropy_weight_and_smoothing_mean) {
    tensor *x = leaf(SHAPE(2, 3), (double[]){1, 2, 3, 1, 0, -1});
    tensor *y = labels(SHAPE(2), (int64_t[]){2, 0});
    tensor *w = leaf(SHAPE(3), (double[]){1, 2, 0.5}); /* requires grad, gets none */
    tensor *l = tensor_cross_entropy(x, y, w, 0.3, REDUCTION_MEAN);
    ck_assert_close(tensor_item(l), 0.9422069585184438, 1e-12);
    backward_ok(l);
    ck_assert_tensor(x->grad,
                     ((double[]){-0.0246523991871558, -0.019126713507761118, 0.043779112694916765,
                                 -0.06766466429095801, 0.037976596405025015, 0.029688067885932968}),
                     1e-12);
    ck_assert_ptr_null(w->grad);
    tape_reset();
    tensor_free(x);
    tensor_free(y);
    tensor_free(w);
}
END_TEST

/* [N, C, d] layout: logits [1, 3, 2] hold column s = 0 [1, 2, 3] and s = 1
 * [3, 2, 1] (stride 2 over C); labels [1, 2] = [[2, 0]]. NONE gives [1, 2],
 * both 0.4076060 (the rows of the first test); upstream [1, 0] leaves
 * column 1's gradient at zero. */
START_TEST(test_cross_entropy_spatial_none) {
    tensor *x = leaf(SHAPE(1, 3, 2), (double[]){1, 3, 2, 2, 3, 1});
    tensor *y = labels(SHAPE(1, 2), (int64_t[]){2, 0});
    tensor *u = constant(SHAPE(1, 2), (double[]){1, 0});
    tensor *l = tensor_cross_entropy(x, y, NULL, 0.0, REDUCTION_NONE);
    ck_assert_int_eq(l->ndim, 2);
    ck_assert_int_eq(l->shape[1], 2);
    ck_assert_tensor(l, ((double[]){0.4076059644443806, 0.4076059644443806}), 1e-12);
    ck_assert_int_eq(tensor_backward_with(l, u), 0);
    const double p0 = 0.09003057317038043, p1 = 0.24472847105479759, p2 = 0.6652409557748217;
    ck_assert_tensor(x->grad, ((double[]){p0, 0, p1, 0, p2 - 1, 0}), 1e-12);
    tape_reset();
    tensor_free(x);
    tensor_free(y);
    tensor_free(u);
}
END_TEST

/* Float32 logits [64, 10] (LeNet-5's shape) agree with float64. */
START_TEST(test_cross_entropy_f32_matches_f64) {
    rng g;
    rng_seed(&g, 5, 1);
    tensor *x64 = tensor_randn(&g, DTYPE_F64, SHAPE(64, 10), 0, 3);
    tensor *x32 = tensor_to_dtype(x64, DTYPE_F32);
    tensor *y = tensor_new(DTYPE_I64, SHAPE(64));
    for (int i = 0; i < 64; i++) tensor_set(y, i, (double)rng_below(&g, 10));
    tensor_set_requires_grad(x64, true);
    tensor_set_requires_grad(x32, true);
    tensor *l64 = tensor_cross_entropy(x64, y, NULL, 0.1, REDUCTION_MEAN);
    tensor *l32 = tensor_cross_entropy(x32, y, NULL, 0.1, REDUCTION_MEAN);
    ck_assert_int_eq(l32->dtype, DTYPE_F32);
    ck_assert_close(tensor_item(l32), tensor_item(l64), 1e-5);
    backward_ok(l64);
    backward_ok(l32);
    for (int64_t i = 0; i < 640; i++)
        ck_assert_close(tensor_get(x32->grad, i), tensor_get(x64->grad, i), 1e-6);
    tape_reset();
    tensor_free(x64);
    tensor_free(x32);
    tensor_free(y);
}
END_TEST

/* logp [[-0.5,-1.2,-2],[-1.5,-0.7,-0.9]], labels [0, 2], weight [1, 2, 3], mean:
 * l = -(1 (-0.5) + 3 (-0.9)) / (1 + 3) = 0.8; dlogp = -w_y / 4 at the labels. */
START_TEST(test_nll_loss_weighted_mean_value_and_grads) {
    tensor *x = leaf(SHAPE(2, 3), (double[]){-0.5, -1.2, -2.0, -1.5, -0.7, -0.9});
    tensor *y = labels(SHAPE(2), (int64_t[]){0, 2});
    tensor *w = constant(SHAPE(3), (double[]){1, 2, 3});
    tensor *l = tensor_nll_loss(x, y, w, REDUCTION_MEAN);
    ck_assert_close(tensor_item(l), 0.8, 1e-12);
    backward_ok(l);
    ck_assert_tensor(x->grad, ((double[]){-0.25, 0, 0, 0, 0, -0.75}), 1e-12);
    tape_reset();
    tensor_free(x);
    tensor_free(y);
    tensor_free(w);
}
END_TEST

/* ------------------------------------------------------------ stability */

static bool all_finite(const tensor *t) {
    for (int64_t i = 0; i < t->size; i++)
        if (!isfinite(tensor_get(t, i))) return false;
    return true;
}

/* Logits of +-1e4 in both dtypes: finite losses and gradients. Cross-entropy
 * of row [1e4, -1e4, 0] with label 1 is exactly 2e4; bce_with_logits of
 * 1e4 with target 0 and of -1e4 with target 1 is 1e4, of -1e4 with target 0 is 0. */
START_TEST(test_losses_finite_for_logits_1e4) {
    for (int dt = DTYPE_F32; dt <= DTYPE_F64; dt++) {
        tensor *x = tensor_from_doubles((dtype)dt, SHAPE(2, 3), (double[]){1e4, -1e4, 0, -1e4, 1e4, 1e4});
        tensor *t = tensor_from_doubles((dtype)dt, SHAPE(2, 3), (double[]){0, 1, 0.5, 0, 1, 0});
        tensor *y = labels(SHAPE(2), (int64_t[]){1, 0});
        tensor *w = tensor_from_doubles((dtype)dt, SHAPE(3), (double[]){1, 2, 0.5});
        tensor_set_requires_grad(x, true);
        tensor_set_requires_grad(t, true);
        tensor *ls[] = {
            tensor_cross_entropy(x, y, NULL, 0.0, REDUCTION_NONE),
            tensor_cross_entropy(x, y, w, 0.2, REDUCTION_MEAN),
            tensor_bce_with_logits(x, t, NULL, REDUCTION_NONE),
            tensor_bce_with_logits(x, t, w, REDUCTION_SUM),
            tensor_focal_loss(x, t, 0.25, 2.0, REDUCTION_NONE),
            tensor_focal_loss(x, t, -1, 0.5, REDUCTION_MEAN),
        };
        for (int k = 0; k < 6; k++) {
            ck_assert_msg(ls[k] && all_finite(ls[k]), "loss %d dtype %d not finite", k, dt);
            tensor *u = tensor_ones((dtype)dt, ls[k]->ndim, ls[k]->shape);
            ck_assert_int_eq(tensor_backward_with(ls[k], u), 0);
            tensor_free(u);
            ck_assert_msg(all_finite(x->grad), "logit gradient of loss %d dtype %d not finite", k, dt);
            tensor_zero_grad(x);
        }
        ck_assert_close(tensor_get(ls[0], 0), 2e4, 1e-12);
        ck_assert_close(tensor_get(ls[2], 0), 1e4, 1e-12);
        ck_assert_close(tensor_get(ls[2], 1), 1e4, 1e-12);
        ck_assert_close(tensor_get(ls[2], 3), 0.0, 1e-12);
        tape_reset();
        tensor_free(x);
        tensor_free(t);
        tensor_free(y);
        tensor_free(w);
    }
}
END_TEST

/* ------------------------------------------------------------ errors */

START_TEST(test_cross_entropy_errors) {
    tensor *x = tensor_zeros(DTYPE_F64, SHAPE(2, 3));
    tensor *y = labels(SHAPE(2), (int64_t[]){0, 2});
    tensor *bad3 = labels(SHAPE(2), (int64_t[]){0, 3});
    tensor *neg = labels(SHAPE(2), (int64_t[]){-1, 0});
    tensor *yf = tensor_zeros(DTYPE_F64, SHAPE(2));
    tensor *y3 = labels(SHAPE(3), (int64_t[]){0, 0, 0});
    tensor *w4 = tensor_ones(DTYPE_F64, SHAPE(4));
    tensor *w32 = tensor_ones(DTYPE_F32, SHAPE(3));
    tensor *xi = labels(SHAPE(2, 3), (int64_t[]){0, 0, 0, 0, 0, 0});
    tapegrad_error_clear();
    ck_assert_ptr_null(tensor_cross_entropy(x, bad3, NULL, 0, REDUCTION_MEAN));
    ck_assert_str_eq(tapegrad_error(), "cross_entropy: label 3 at position 1 out of range [0, 3)");
    ck_assert_fails(tensor_cross_entropy(x, neg, NULL, 0, REDUCTION_MEAN), "label -1 at position 0");
    ck_assert_fails(tensor_nll_loss(x, bad3, NULL, REDUCTION_SUM), "nll_loss: label 3");
    ck_assert_fails(tensor_cross_entropy(x, yf, NULL, 0, REDUCTION_MEAN),
                    "cross_entropy: labels must be int64, got float64");
    ck_assert_fails(tensor_nll_loss(x, yf, NULL, REDUCTION_MEAN), "labels must be int64");
    ck_assert_fails(tensor_cross_entropy(xi, y, NULL, 0, REDUCTION_MEAN), "input 0 is int64");
    ck_assert_fails(tensor_cross_entropy(x, y3, NULL, 0, REDUCTION_MEAN),
                    "shape mismatch: input [2,3] needs labels [N, d...] without C, got [3]");
    ck_assert_fails(tensor_cross_entropy(y, y, NULL, 0, REDUCTION_MEAN), "input 0 is int64");
    ck_assert_fails(tensor_cross_entropy(x, y, w4, 0, REDUCTION_MEAN),
                    "weight must be float64 [C] = [3] for input [2,3], got float64 [4]");
    ck_assert_fails(tensor_nll_loss(x, y, w32, REDUCTION_MEAN), "got float32 [3]");
    ck_assert_fails(tensor_cross_entropy(x, y, NULL, 0, (reduction)3),
                    "cross_entropy: bad reduction 3 (REDUCTION_MEAN, REDUCTION_SUM or REDUCTION_NONE)");
    ck_assert_fails(tensor_cross_entropy(x, y, NULL, -0.1, REDUCTION_MEAN),
                    "label_smoothing must be in [0, 1], got -0.1");
    ck_assert_fails(tensor_cross_entropy(x, y, NULL, 1.5, REDUCTION_MEAN), "got 1.5");
    ck_assert_fails(tensor_cross_entropy(x, y, NULL, NAN, REDUCTION_MEAN), "label_smoothing");
    ck_assert_fails(tensor_cross_entropy(NULL, y, NULL, 0, REDUCTION_MEAN), "cross_entropy: input 0 is NULL");
    ck_assert_fails(tensor_nll_loss(x, NULL, NULL, REDUCTION_MEAN), "nll_loss: input 1 is NULL");
    tensor *x1 = tensor_zeros(DTYPE_F64, SHAPE(3));
    ck_assert_fails(tensor_cross_entropy(x1, y, NULL, 0, REDUCTION_MEAN),
                    "cross_entropy: input must be [N, C] or [N, C, d...], got [3]");
    tensor_free(x1);
    tensor_free(x);
    tensor_free(y);
    tensor_free(bad3);
    tensor_free(neg);
    tensor_free(yf);
    tensor_free(y3);
    tensor_free(w4);
    tensor_free(w32);
    tensor_free(xi);
}
END_TEST

/* A NULL weight while an error is pending is a failed upstream result, not
 * "no weight": the loss returns NULL and the first message stays, as for
 * linear's bias and batch_norm's weight. */
START_TEST(test_loss_null_weight_after_error_propagates) {
    tensor *a = tensor_full(DTYPE_F64, SHAPE(2, 3), 0.5);
    tensor *b = tensor_zeros(DTYPE_F64, SHAPE(3, 2));
    tensor *y = labels(SHAPE(2), (int64_t[]){0, 2});
    const char *first = "mse_loss: shape mismatch: input [2,3] vs target [3,2]";
    tapegrad_error_clear();
    ck_assert_ptr_null(tensor_bce_loss(a, a, tensor_mse_loss(a, b, REDUCTION_NONE), REDUCTION_MEAN));
    ck_assert_ptr_null(tensor_bce_with_logits(a, a, NULL, REDUCTION_SUM));
    ck_assert_ptr_null(tensor_cross_entropy(a, y, NULL, 0, REDUCTION_MEAN));
    ck_assert_ptr_null(tensor_nll_loss(a, y, NULL, REDUCTION_MEAN));
    ck_assert_str_eq(tapegrad_error(), first);
    tapegrad_error_clear();
    /* with no error pending, NULL is simply no weight */
    ck_assert_ptr_nonnull(tensor_bce_loss(a, a, NULL, REDUCTION_MEAN));
    ck_assert_ptr_nonnull(tensor_cross_entropy(a, y, NULL, 0, REDUCTION_MEAN));
    ck_assert_ptr_null(tapegrad_error());
    tape_reset();
    tensor_free(a);
    tensor_free(b);
    tensor_free(y);
}
END_TEST

START_TEST(test_pointwise_loss_errors) {
    tensor *a = tensor_zeros(DTYPE_F64, SHAPE(2, 3));
    tensor *b = tensor_zeros(DTYPE_F64, SHAPE(3, 2));
    tensor *c = tensor_full(DTYPE_F64, SHAPE(2, 3), 0.5);
    tensor *f = tensor_zeros(DTYPE_F32, SHAPE(2, 3));
    tensor *i = labels(SHAPE(2, 3), (int64_t[]){0, 1, 0, 1, 0, 1});
    tensor *w2 = tensor_ones(DTYPE_F64, SHAPE(2));
    tensor *wc = tensor_ones(DTYPE_F64, SHAPE(2, 1));
    tensor *w3 = tensor_ones(DTYPE_F64, SHAPE(1, 2, 3));
    tapegrad_error_clear();
    ck_assert_ptr_null(tensor_mse_loss(a, b, REDUCTION_MEAN));
    ck_assert_str_eq(tapegrad_error(), "mse_loss: shape mismatch: input [2,3] vs target [3,2]");
    tapegrad_error_clear();
    ck_assert_fails(tensor_l1_loss(a, b, REDUCTION_SUM), "l1_loss: shape mismatch");
    ck_assert_fails(tensor_kl_div(a, b, REDUCTION_SUM), "kl_div: shape mismatch");
    ck_assert_fails(tensor_hinge_loss(a, b, 1, REDUCTION_SUM), "hinge_loss: shape mismatch");
    ck_assert_fails(tensor_focal_loss(a, b, 0.25, 2, REDUCTION_SUM), "focal_loss: shape mismatch");
    ck_assert_fails(tensor_bce_with_logits(a, b, NULL, REDUCTION_SUM), "bce_with_logits: shape mismatch");
    ck_assert_fails(tensor_mse_loss(a, f, REDUCTION_MEAN), "dtype mismatch: float64 vs float32");
    ck_assert_fails(tensor_mse_loss(a, i, REDUCTION_MEAN), "input 1 is int64");
    ck_assert_fails(tensor_mse_loss(a, c, (reduction)-1),
                    "mse_loss: bad reduction -1 (REDUCTION_MEAN, REDUCTION_SUM or REDUCTION_NONE)");
    ck_assert_fails(tensor_focal_loss(a, c, 0.25, 2, (reduction)9), "bad reduction 9");
    ck_assert_fails(tensor_huber_loss(a, c, 0.0, REDUCTION_MEAN), "huber_loss: delta must be > 0, got 0");
    ck_assert_fails(tensor_smooth_l1_loss(a, c, -1.0, REDUCTION_MEAN),
                    "smooth_l1_loss: beta must be >= 0, got -1");
    ck_assert_fails(tensor_focal_loss(a, c, 0.25, -2.0, REDUCTION_MEAN), "focal_loss: gamma must be >= 0, got -2");
    ck_assert_fails(tensor_bce_loss(a, c, w2, REDUCTION_MEAN),
                    "bce_loss: weight [2] does not broadcast to input [2,3]");
    ck_assert_fails(tensor_bce_loss(a, c, w3, REDUCTION_MEAN), "weight [1,2,3] does not broadcast");
    ck_assert_fails(tensor_bce_with_logits(a, c, w2, REDUCTION_MEAN),
                    "bce_with_logits: pos_weight [2] does not broadcast to input [2,3]");
    ck_assert_fails(tensor_bce_loss(c, c, f, REDUCTION_MEAN), "bce_loss: weight is float32, input is float64");
    tensor_set(c, 4, 1.5);
    ck_assert_fails(tensor_bce_loss(c, a, NULL, REDUCTION_MEAN),
                    "input must hold probabilities in [0, 1]: element 4 is 1.5");
    /* a broadcast column weight is fine */
    ck_assert_ptr_nonnull(tensor_bce_loss(a, a, wc, REDUCTION_MEAN));
    /* NULL: a message naming the op, or none when an error is already pending */
    ck_assert_fails(tensor_mse_loss(NULL, a, REDUCTION_MEAN), "mse_loss: input 0 is NULL");
    ck_assert_fails(tensor_bce_loss(a, NULL, NULL, REDUCTION_MEAN), "bce_loss: input 1 is NULL");
    ck_assert_fails(tensor_huber_loss(NULL, a, 1, REDUCTION_MEAN), "huber_loss: input 0 is NULL");
    ck_assert_fails(tensor_cosine_embedding_loss(a, a, NULL, 0, REDUCTION_MEAN),
                    "cosine_embedding_loss: input 2 is NULL");
    tapegrad_error_clear();
    ck_assert_ptr_null(tensor_mse_loss(a, b, REDUCTION_MEAN));
    ck_assert_ptr_null(tensor_l1_loss(NULL, a, REDUCTION_MEAN));
    ck_assert_str_eq(tapegrad_error(), "mse_loss: shape mismatch: input [2,3] vs target [3,2]");
    tapegrad_error_clear();
    tape_reset();
    tensor_free(a);
    tensor_free(b);
    tensor_free(c);
    tensor_free(f);
    tensor_free(i);
    tensor_free(w2);
    tensor_free(wc);
    tensor_free(w3);
}
END_TEST

START_TEST(test_cosine_embedding_loss_errors) {
    tensor *a = tensor_ones(DTYPE_F64, SHAPE(2, 3));
    tensor *b = tensor_ones(DTYPE_F64, SHAPE(2, 4));
    tensor *v = tensor_ones(DTYPE_F64, SHAPE(6));
    tensor *y = tensor_ones(DTYPE_F64, SHAPE(2));
    tensor *y3 = tensor_ones(DTYPE_F64, SHAPE(3));
    ck_assert_fails(tensor_cosine_embedding_loss(a, b, y, 0, REDUCTION_MEAN),
                    "cosine_embedding_loss: shape mismatch: needs x1 [N, D], x2 [N, D], y [N], got "
                    "[2,3], [2,4], [2]");
    ck_assert_fails(tensor_cosine_embedding_loss(a, a, y3, 0, REDUCTION_MEAN), "[2,3], [2,3], [3]");
    ck_assert_fails(tensor_cosine_embedding_loss(v, v, y, 0, REDUCTION_MEAN), "shape mismatch");
    ck_assert_fails(tensor_cosine_embedding_loss(a, a, y, 0, (reduction)5), "bad reduction 5");
    tensor_free(a);
    tensor_free(b);
    tensor_free(v);
    tensor_free(y);
    tensor_free(y3);
}
END_TEST

/* ------------------------------------------------------------ every sample case */

static const char *const loss_ops[] = {
    "mse_loss", "l1_loss",    "huber_loss", "smooth_l1_loss", "bce_loss",   "bce_with_logits",
    "cross_entropy", "nll_loss", "kl_div",  "hinge_loss",     "focal_loss", "cosine_embedding_loss",
};
#define N_LOSS_OPS (int)(sizeof loss_ops / sizeof loss_ops[0])

/* Every case of every loss against central differences, and its float32
 * run against float64 (tests/ops_test.h); two tests so that a failure says
 * which of the two properties broke. */
START_TEST(test_loss_vjps_match_central_differences_on_samples) {
    int total = 0;
    for (int o = 0; o < N_LOSS_OPS; o++) {
        int n = numeric_check_op(loss_ops[o], 1000, 1, CHECK_PURE | CHECK_VJP);
        ck_assert_msg(n >= 3, "%s has %d sample cases", loss_ops[o], n);
        total += n;
    }
    ck_assert_int_ge(total, 40);
    ck_assert_int_eq(tg_ops_loss_count, N_LOSS_OPS);
}
END_TEST

/* The float32 kernels agree with float64 on every sample case (loss and
 * gradients, relative 1e-4), so training runs the code the checker verified. */
START_TEST(test_loss_f32_kernels_match_f64_on_samples) {
    for (int o = 0; o < N_LOSS_OPS; o++) numeric_check_op(loss_ops[o], 2000, 1, CHECK_FLOAT32);
}
END_TEST

Suite *ops_loss_suite(void) {
    Suite *s = suite_create("ops_loss");
    TCase *tc = tcase_create("loss");
    tcase_add_test(tc, test_mse_loss_mean_value_and_grads);
    tcase_add_test(tc, test_l1_loss_sum_value_and_grads);
    tcase_add_test(tc, test_huber_loss_none_value_and_grads);
    tcase_add_test(tc, test_smooth_l1_loss_mean_value_and_grads);
    tcase_add_test(tc, test_smooth_l1_loss_beta_zero_is_l1);
    tcase_add_test(tc, test_hinge_loss_sum_value_and_grads);
    tcase_add_test(tc, test_bce_loss_weighted_sum_value_and_grads);
    tcase_add_test(tc, test_bce_loss_log_clamped_at_minus_100);
    tcase_add_test(tc, test_bce_with_logits_pos_weight_mean_value_and_grads);
    tcase_add_test(tc, test_kl_div_sum_value_and_grads);
    tcase_add_test(tc, test_kl_div_zero_target_mean);
    tcase_add_test(tc, test_focal_loss_sum_value_and_grads);
    tcase_add_test(tc, test_focal_loss_gamma0_is_bce_with_logits);
    tcase_add_test(tc, test_cosine_embedding_loss_sum_value_and_grads);
    tcase_add_test(tc, test_cosine_embedding_loss_none_inactive_row);
    tcase_add_test(tc, test_cross_entropy_mean_value_and_grads);
    tcase_add_test(tc, test_cross_entropy_weight_and_smoothing_mean);
    tcase_add_test(tc, test_cross_entropy_spatial_none);
    tcase_add_test(tc, test_cross_entropy_f32_matches_f64);
    tcase_add_test(tc, test_nll_loss_weighted_mean_value_and_grads);
    tcase_add_test(tc, test_losses_finite_for_logits_1e4);
    tcase_add_test(tc, test_cross_entropy_errors);
    tcase_add_test(tc, test_pointwise_loss_errors);
    tcase_add_test(tc, test_loss_null_weight_after_error_propagates);
    tcase_add_test(tc, test_cosine_embedding_loss_errors);
    tcase_add_test(tc, test_loss_vjps_match_central_differences_on_samples);
    tcase_add_test(tc, test_loss_f32_kernels_match_f64_on_samples);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ops_loss_suite)
