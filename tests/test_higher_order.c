/* test_higher_order.c - gradients of gradients: tensor_grad with and without
 * create_graph, tensor_hvp against analytic Hessians, gradgradcheck on
 * functions and on every op with a differentiable vjp, broken second-order
 * vjps caught, and every bad argument refused with a message. */
#include <string.h>

#include "../autograd/internal.h"
#include "check_main.h"

/* ------------------------------------------------------------ helpers */
/* A float64 leaf requiring grad, values uniform in [lo, hi) from seed. */
static tensor *leaf(uint64_t seed, int ndim, const int64_t *shape, double lo, double hi) {
    rng g;
    rng_seed(&g, seed, 7);
    tensor *t = tg_sample_tensor(&g, ndim, shape, lo, hi);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(tensor_set_requires_grad(t, true), 0);
    return t;
}

static void assert_same_values(const tensor *a, const tensor *b, double tol) {
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert(tensor_same_shape(a, b));
    for (int64_t i = 0; i < a->size; i++)
        ck_assert_msg(fabs(tensor_get(a, i) - tensor_get(b, i)) <= tol * (1 + fabs(tensor_get(b, i))),
                      "element %lld: %.17g vs %.17g", (long long)i, tensor_get(a, i), tensor_get(b, i));
}

/* h = tanh(X @ W + b) (b broadcast over rows); L = mean(h^2) + sum(W * W * c) */
static tensor *small_net(tensor *X, tensor *W, tensor *b, tensor *c) {
    tensor *h = tensor_tanh(tensor_add(tensor_matmul(X, W), b));
    return tensor_add(tensor_mean_all(tensor_square(h)), tensor_sum_all(tensor_mul(tensor_square(W), c)));
}

/* ---------------------------------------------------- first order */
/* Without create_graph, tensor_grad gives the numbers tensor_backward
 * accumulates, and leaves every .grad as it was. */
START_TEST(test_grad_matches_backward_and_leaves_grads_alone) {
    tensor *X = leaf(1, SHAPE(4, 3), -1.5, 1.5), *W = leaf(2, SHAPE(3, 2), -1, 1),
           *b = leaf(3, SHAPE(2), -0.5, 0.5), *c = leaf(4, SHAPE(3, 2), 0.2, 0.9);
    tape_reset();
    tensor *L = small_net(X, W, b, c);
    ck_assert_int_eq(tensor_backward(L), 0);
    tensor *ref_W = tensor_clone(W->grad), *ref_b = tensor_clone(b->grad), *ref_X = tensor_clone(X->grad);
    tensor *in[2] = {W, b}, *g[2];
    ck_assert_int_eq(tensor_grad(L, NULL, in, 2, false, g), 0);
    assert_same_values(g[0], ref_W, 1e-15);
    assert_same_values(g[1], ref_b, 1e-15);
    ck_assert(!g[0]->requires_grad && g[0]->tape_owned && !g[0]->is_grad);
    /* the leaves' .grad, those asked for and X, hold one backward's worth */
    assert_same_values(W->grad, ref_W, 0);
    assert_same_values(b->grad, ref_b, 0);
    assert_same_values(X->grad, ref_X, 0);
    /* with create_graph: the same numbers, recorded */
    tensor *gg[2];
    ck_assert_int_eq(tensor_grad(L, NULL, in, 2, true, gg), 0);
    assert_same_values(gg[0], ref_W, 1e-13);
    assert_same_values(gg[1], ref_b, 1e-13);
    ck_assert(gg[0]->requires_grad && gg[1]->requires_grad && !gg[0]->is_grad);
    assert_same_values(W->grad, ref_W, 0);
    tape_reset();
    tensor_free(ref_W), tensor_free(ref_b), tensor_free(ref_X);
    tensor_free(X), tensor_free(W), tensor_free(b), tensor_free(c);
}
END_TEST

/* grad_out for a non-scalar output, and an intermediate as an input:
 * h = a * b (b [3] broadcast over [2,3]), y = h^2; with upstream u,
 * dy/dh = 2 h u and dy/db = sum_rows(2 h u a). */
START_TEST(test_grad_of_nonscalar_output_wrt_intermediate_and_broadcast_operand) {
    tensor *a = leaf(5, SHAPE(2, 3), -2, 2), *b = leaf(6, SHAPE(3), 0.5, 1.5);
    rng gu;
    rng_seed(&gu, 8, 1);
    tensor *u = tg_sample_tensor(&gu, SHAPE(2, 3), -1, 1);
    tape_reset();
    tensor *h = tensor_mul(a, b), *y = tensor_square(h);
    for (int cg = 0; cg < 2; cg++) {
        tensor *in[2] = {h, b}, *g[2];
        ck_assert_int_eq(tensor_grad(y, u, in, 2, cg, g), 0);
        for (int i = 0; i < 2; i++) {
            for (int j = 0; j < 3; j++) {
                double hv = tensor_get(h, i * 3 + j), uv = tensor_get(u, i * 3 + j);
                ck_assert_close(tensor_get(g[0], i * 3 + j), 2 * hv * uv, 1e-14);
            }
        }
        for (int j = 0; j < 3; j++) {
            double want = 0;
            for (int i = 0; i < 2; i++)
                want += 2 * tensor_get(h, i * 3 + j) * tensor_get(u, i * 3 + j) * tensor_get(a, i * 3 + j);
            ck_assert_close(tensor_get(g[1], j), want, 1e-13);
        }
    }
    ck_assert_ptr_null(a->grad);
    tape_reset();
    tensor_free(a), tensor_free(b), tensor_free(u);
}
END_TEST

/* The output itself and a repeated input among the inputs: d out / d out
 * is the seed, and each copy of a repeated input gets the whole gradient. */
START_TEST(test_grad_wrt_output_itself_and_repeated_input) {
    tensor *x = leaf(43, SHAPE(4), -1, 1);
    tape_reset();
    tensor *y = tensor_exp(x), *L = tensor_sum_all(y);
    for (int cg = 0; cg < 2; cg++) {
        tensor *in[3] = {L, x, x}, *g[3];
        ck_assert_int_eq(tensor_grad(L, NULL, in, 3, cg, g), 0);
        ck_assert_close(tensor_item(g[0]), 1.0, 0);
        ck_assert(g[0]->tape_owned);
        assert_same_values(g[1], y, 1e-15);
        assert_same_values(g[2], y, 1e-15);
    }
    tape_reset();
    tensor_free(x);
}
END_TEST

/* ---------------------------------------------------- higher orders */
/* L = sum(x^4): dL/dx = 4 x^3, d/dx sum(4 x^3) = 12 x^2, d/dx sum(12 x^2) =
 * 24 x: three nested tensor_grad calls with create_graph. */
START_TEST(test_third_derivative_by_nested_create_graph) {
    tensor *x = leaf(9, SHAPE(5), -1.5, 1.5);
    tape_reset();
    tensor *L = tensor_sum_all(tensor_pow_scalar(x, 4));
    tensor *g1, *g2, *g3;
    ck_assert_int_eq(tensor_grad(L, NULL, &x, 1, true, &g1), 0);
    ck_assert_int_eq(tensor_grad(tensor_sum_all(g1), NULL, &x, 1, true, &g2), 0);
    ck_assert_int_eq(tensor_grad(tensor_sum_all(g2), NULL, &x, 1, false, &g3), 0);
    for (int i = 0; i < 5; i++) {
        double v = tensor_get(x, i);
        ck_assert_close(tensor_get(g1, i), 4 * v * v * v, 1e-13);
        ck_assert_close(tensor_get(g2, i), 12 * v * v, 1e-13);
        ck_assert_close(tensor_get(g3, i), 24 * v, 1e-12);
    }
    ck_assert(g1->requires_grad && g2->requires_grad && !g3->requires_grad);
    /* the gradients are ordinary tape tensors: tensor_backward through them
     * reaches x.grad like any loss: d/dx sum(g1 * x) = 12 x^3 + 4 x^3 */
    ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_mul(g1, x))), 0);
    for (int i = 0; i < 5; i++) {
        double v = tensor_get(x, i);
        ck_assert_close(tensor_get(x->grad, i), 16 * v * v * v, 1e-12);
    }
    tape_reset();
    tensor_free(x);
}
END_TEST

/* Inside a no-grad scope create_graph is ignored: the same numbers (here
 * through gelu's and tanh's kernel vjps), nothing recorded */
START_TEST(test_create_graph_in_no_grad_scope_gives_constants) {
    tensor *x = leaf(42, SHAPE(5), -1, 1);
    tape_reset();
    tensor *L = tensor_sum_all(tensor_mul(tensor_gelu(x, false), tensor_tanh(x)));
    tensor *g0, *g1;
    ck_assert_int_eq(tensor_grad(L, NULL, &x, 1, false, &g0), 0);
    tape_no_grad_begin();
    int64_t nodes = tape_size();
    ck_assert_int_eq(tensor_grad(L, NULL, &x, 1, true, &g1), 0);
    tape_no_grad_end();
    ck_assert_int_eq(tape_size(), nodes);
    ck_assert(!g1->requires_grad);
    assert_same_values(g1, g0, 0);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* A .grad still cannot be marked as requiring grad; the tensors tensor_grad
 * returns are tape tensors, not .grad fields. */
START_TEST(test_grad_field_still_refused_as_requiring_grad) {
    tensor *x = leaf(10, SHAPE(3), -1, 1);
    tape_reset();
    ck_assert_int_eq(tensor_backward(tensor_sum_all(tensor_square(x))), 0);
    tapegrad_error_clear();
    ck_assert_int_eq(tensor_set_requires_grad(x->grad, true), -1);
    ck_assert_ptr_nonnull(tapegrad_error());
    tapegrad_error_clear();
    tape_reset();
    tensor_free(x);
}
END_TEST

/* --------------------------------------------------------------- hvp */
/* f(x) = sum(tanh(A x)^2), A [3,4], x [4,1]. With t = tanh(A x), the
 * Hessian is A^T diag(d) A, d = d^2/du^2 tanh(u)^2 = 2 (1 - t^2)(1 - 3 t^2),
 * so H v = A^T (d * (A v)). */
START_TEST(test_hvp_tanh_squared_against_analytic_hessian) {
    tensor *A = leaf(11, SHAPE(3, 4), -1, 1), *x = leaf(12, SHAPE(4, 1), -1, 1);
    rng gv;
    rng_seed(&gv, 13, 1);
    tensor *v = tg_sample_tensor(&gv, SHAPE(4, 1), -1, 1);
    tape_reset();
    tensor *f = tensor_sum_all(tensor_square(tensor_tanh(tensor_matmul(A, x))));
    tensor *hv;
    ck_assert_int_eq(tensor_hvp(f, &x, 1, &v, &hv), 0);
    double Av[3], d[3];
    for (int i = 0; i < 3; i++) {
        double u = 0;
        Av[i] = 0;
        for (int j = 0; j < 4; j++) {
            u += tensor_get(A, i * 4 + j) * tensor_get(x, j);
            Av[i] += tensor_get(A, i * 4 + j) * tensor_get(v, j);
        }
        double t = tanh(u);
        d[i] = 2 * (1 - t * t) * (1 - 3 * t * t);
    }
    for (int j = 0; j < 4; j++) {
        double want = 0;
        for (int i = 0; i < 3; i++) want += tensor_get(A, i * 4 + j) * d[i] * Av[i];
        ck_assert_close(tensor_get(hv, j), want, 1e-12);
    }
    ck_assert_ptr_null(x->grad);
    tape_reset();
    tensor_free(A), tensor_free(x), tensor_free(v);
}
END_TEST

/* f(a, b) = sum(a * a * b), a [2,3], b [3] broadcast: the Hessian blocks are
 * d2f/da2 = 2 b (diagonal), d2f/da db = 2 a, d2f/db2 = 0, so
 * (H v)_a = 2 b va + 2 a vb, (H v)_b = sum_rows(2 a va). */
START_TEST(test_hvp_two_inputs_with_broadcasting) {
    tensor *a = leaf(14, SHAPE(2, 3), -2, 2), *b = leaf(15, SHAPE(3), -1, 1);
    rng gv;
    rng_seed(&gv, 16, 1);
    tensor *va = tg_sample_tensor(&gv, SHAPE(2, 3), -1, 1), *vb = tg_sample_tensor(&gv, SHAPE(3), -1, 1);
    tape_reset();
    tensor *f = tensor_sum_all(tensor_mul(tensor_mul(a, a), b));
    tensor *in[2] = {a, b}, *v[2] = {va, vb}, *hv[2];
    ck_assert_int_eq(tensor_hvp(f, in, 2, v, hv), 0);
    for (int j = 0; j < 3; j++) {
        double hb = 0;
        for (int i = 0; i < 2; i++) {
            double av = tensor_get(a, i * 3 + j), vav = tensor_get(va, i * 3 + j);
            ck_assert_close(tensor_get(hv[0], i * 3 + j),
                            2 * tensor_get(b, j) * vav + 2 * av * tensor_get(vb, j), 1e-13);
            hb += 2 * av * vav;
        }
        ck_assert_close(tensor_get(hv[1], j), hb, 1e-13);
    }
    tape_reset();
    tensor_free(a), tensor_free(b), tensor_free(va), tensor_free(vb);
}
END_TEST

/* f(x) = sum(x * (A x)) is a quadratic form: H = A + A^T, whatever x. */
START_TEST(test_hvp_quadratic_form) {
    tensor *A = leaf(17, SHAPE(4, 4), -1, 1), *x = leaf(18, SHAPE(4, 1), -1, 1);
    rng gv;
    rng_seed(&gv, 19, 1);
    tensor *v = tg_sample_tensor(&gv, SHAPE(4, 1), -1, 1);
    tape_reset();
    tensor *f = tensor_sum_all(tensor_mul(x, tensor_matmul(A, x)));
    tensor *hv;
    ck_assert_int_eq(tensor_hvp(f, &x, 1, &v, &hv), 0);
    for (int i = 0; i < 4; i++) {
        double want = 0;
        for (int j = 0; j < 4; j++)
            want += (tensor_get(A, i * 4 + j) + tensor_get(A, j * 4 + i)) * tensor_get(v, j);
        ck_assert_close(tensor_get(hv, i), want, 1e-13);
    }
    tape_reset();
    tensor_free(A), tensor_free(x), tensor_free(v);
}
END_TEST

/* LeNet-5 (conv2d, pools, linear, cross_entropy; float64, batch 2): H v for
 * all ten parameters at once against central differences of the gradient
 * along v, (grad(p + h v) - grad(p - h v)) / 2h, h = 1e-5 (error h^2 f'''
 * ~ 1e-10 and rounding 1e-16 / h ~ 1e-11 on gradients of order 1). */
static void lenet5_params(nn_lenet5 *net, tensor **p) {
    tensor *t[NN_LENET5_NPARAMS] = {net->c1.weight, net->c1.bias, net->c2.weight, net->c2.bias,
                                    net->f1.weight, net->f1.bias, net->f2.weight, net->f2.bias,
                                    net->f3.weight, net->f3.bias};
    memcpy(p, t, sizeof t);
}
static void shift(tensor *const *p, tensor *const *v, double h) {
    for (int k = 0; k < NN_LENET5_NPARAMS; k++)
        for (int64_t i = 0; i < p[k]->size; i++)
            tensor_set(p[k], i, tensor_get(p[k], i) + h * tensor_get(v[k], i));
}
START_TEST(test_hvp_lenet5_against_differences_of_gradients) {
    nn_lenet5 *net = nn_lenet5_new(DTYPE_F64, 21);
    ck_assert_ptr_nonnull(net);
    tensor *p[NN_LENET5_NPARAMS], *v[NN_LENET5_NPARAMS], *hv[NN_LENET5_NPARAMS], *g[NN_LENET5_NPARAMS];
    tensor *plus[NN_LENET5_NPARAMS], *minus[NN_LENET5_NPARAMS];
    lenet5_params(net, p);
    rng gr;
    rng_seed(&gr, 22, 1);
    tensor *x = tensor_rand(&gr, DTYPE_F64, SHAPE(2, 1, 28, 28), 0, 1);
    tensor *y = tg_sample_labels(&gr, SHAPE(2), 10);
    for (int k = 0; k < NN_LENET5_NPARAMS; k++) v[k] = tg_sample_tensor(&gr, p[k]->ndim, p[k]->shape, -1, 1);
    tape_reset();
    ck_assert_int_eq(tensor_hvp(nn_lenet5_loss_with(p, x, y), p, NN_LENET5_NPARAMS, v, hv), 0);
    tensor *hv_kept[NN_LENET5_NPARAMS];
    for (int k = 0; k < NN_LENET5_NPARAMS; k++) hv_kept[k] = tensor_detach(hv[k]);
    const double h = 1e-5;
    for (int side = 0; side < 2; side++) {
        shift(p, v, side ? -2 * h : h);
        tape_reset();
        ck_assert_int_eq(tensor_grad(nn_lenet5_loss_with(p, x, y), NULL, p, NN_LENET5_NPARAMS, false, g), 0);
        for (int k = 0; k < NN_LENET5_NPARAMS; k++) (side ? minus : plus)[k] = tensor_detach(g[k]);
    }
    shift(p, v, h);
    double worst = 0, scale = 0;
    for (int k = 0; k < NN_LENET5_NPARAMS; k++)
        for (int64_t i = 0; i < p[k]->size; i++) {
            double fd = (tensor_get(plus[k], i) - tensor_get(minus[k], i)) / (2 * h);
            worst = fmax(worst, fabs(tensor_get(hv_kept[k], i) - fd));
            scale = fmax(scale, fabs(fd));
        }
    printf("LeNet-5 H v (float64, batch 2): max |H v - differences| %.3g, max |H v| %.3g\n", worst, scale);
    ck_assert_msg(scale > 1e-3, "H v is all but zero (%g): nothing checked", scale);
    ck_assert_msg(worst <= 1e-6 * scale, "H v differs from differences of gradients by %g (scale %g)", worst,
                  scale);
    for (int k = 0; k < NN_LENET5_NPARAMS; k++)
        tensor_free(v[k]), tensor_free(hv_kept[k]), tensor_free(plus[k]), tensor_free(minus[k]);
    tape_reset();
    tensor_free(x), tensor_free(y);
    nn_lenet5_free(net);
}
END_TEST

/* Linear parts have a zero Hessian: f = sum(a c) + sum(b^3) gives
 * (H v)_a = 0 (a leaves the graph of the gradient) and (H v)_b = 6 b vb;
 * f = sum(a c) alone has a constant gradient: H v = 0 for a. */
START_TEST(test_hvp_linear_parts_are_zero) {
    tensor *a = leaf(44, SHAPE(3), -1, 1), *b = leaf(45, SHAPE(3), -1, 1), *c = leaf(46, SHAPE(3), 0.5, 1);
    rng gv;
    rng_seed(&gv, 47, 1);
    tensor *va = tg_sample_tensor(&gv, SHAPE(3), -1, 1), *vb = tg_sample_tensor(&gv, SHAPE(3), -1, 1);
    tensor_set_requires_grad(c, false);
    tape_reset();
    tensor *in[2] = {a, b}, *v[2] = {va, vb}, *hv[2];
    tensor *f = tensor_add(tensor_sum_all(tensor_mul(a, c)), tensor_sum_all(tensor_pow_scalar(b, 3)));
    ck_assert_int_eq(tensor_hvp(f, in, 2, v, hv), 0);
    for (int i = 0; i < 3; i++) {
        ck_assert_close(tensor_get(hv[0], i), 0, 0);
        ck_assert_close(tensor_get(hv[1], i), 6 * tensor_get(b, i) * tensor_get(vb, i), 1e-14);
    }
    ck_assert_int_eq(tensor_hvp(tensor_sum_all(tensor_mul(a, c)), &a, 1, &va, hv), 0);
    for (int i = 0; i < 3; i++) ck_assert_close(tensor_get(hv[0], i), 0, 0);
    tape_reset();
    tensor_free(a), tensor_free(b), tensor_free(c), tensor_free(va), tensor_free(vb);
}
END_TEST

/* ------------------------------------------------------ gradgradcheck */
static tensor *net_fn(tensor *const *in, int n, void *ctx) {
    (void)n, (void)ctx;
    return small_net(in[0], in[1], in[2], in[3]);
}

/* A mix of smooth ops with broadcasting and a non-scalar output:
 * y = log_softmax(softplus(a) / (1 + b^2) + exp(a * 0.3) * sigmoid(b), axis 1)
 *     + mean(pow(a, 3), axis 0) - logsumexp(a, axis 1) (a [3,4], b [4]) */
static tensor *mix_fn(tensor *const *in, int n, void *ctx) {
    (void)n, (void)ctx;
    tensor *a = in[0], *b = in[1];
    int ax0 = 0, ax1 = 1;
    tensor *t = tensor_add(tensor_div(tensor_softplus(a, 1.0, 20.0), tensor_add_scalar(tensor_square(b), 1)),
                           tensor_mul(tensor_exp(tensor_mul_scalar(a, 0.3)), tensor_sigmoid(b)));
    tensor *y = tensor_add(tensor_log_softmax(t, 1), tensor_mean(tensor_pow_scalar(a, 3), &ax0, 1, true));
    return tensor_sub(y, tensor_logsumexp(a, &ax1, 1, true));
}

START_TEST(test_gradgradcheck_passes_on_smooth_functions) {
    tensor *X = leaf(20, SHAPE(4, 3), -1.5, 1.5), *W = leaf(21, SHAPE(3, 2), -1, 1),
           *b = leaf(22, SHAPE(2), -0.5, 0.5), *c = leaf(23, SHAPE(3, 2), 0.2, 0.9);
    tensor *in[4] = {X, W, b, c};
    gradcheck_report r;
    ck_assert_int_eq(gradgradcheck(net_fn, NULL, in, 4, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    /* c enters linearly, but its gradient W^2 still depends on W: no input is vacuous */
    for (int i = 0; i < 4; i++) ck_assert_msg(!r.input[i].vacuous, "input %d: %s", i, r.message);
    gradcheck_report_free(&r);

    tensor *a = leaf(24, SHAPE(3, 4), 0.3, 1.8), *bb = leaf(25, SHAPE(4), -1.2, 1.2);
    tensor *in2[2] = {a, bb};
    ck_assert_int_eq(gradgradcheck(mix_fn, NULL, in2, 2, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    for (int i = 0; i < 2; i++) ck_assert_msg(!r.input[i].vacuous, "input %d: %s", i, r.message);
    gradcheck_report_free(&r);
    tensor_free(X), tensor_free(W), tensor_free(b), tensor_free(c), tensor_free(a), tensor_free(bb);
}
END_TEST

/* -------------------------------------------------- the registry */
typedef struct {
    const op_def *op;
    const op_sample *s;
} case_ctx;

static tensor *case_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    const case_ctx *c = ctx;
    return c->op->build(in, c->s);
}

static uint32_t case_mask(const op_def *op, const op_sample *s) {
    uint32_t skip = s->no_grad_mask | op->no_grad_inputs, mask = 0;
    for (int i = 0; i < s->n_inputs; i++)
        if (!((skip >> i) & 1) && s->inputs[i] && s->inputs[i]->dtype != DTYPE_I64) mask |= 1u << i;
    return mask;
}

/* Every op with a differentiable vjp: it equals the kernel vjp on every
 * sample case, and gradgradcheck passes on every case (an input whose second
 * derivative is zero, e.g. either operand of add, is vacuous there: both
 * sides are 0, which is all there is to check). The counts are printed. */
START_TEST(test_registry_every_graph_vjp_matches_kernel_and_passes_gradgradcheck) {
    int with = 0, without = 0, no_grad = 0, cases = 0, second = 0;
    char missing[4096] = "";
    for (int i = 0; i < op_count(); i++) {
        const op_def *op = op_at(i);
        if (!op->vjp_graph) {
            if (op_differentiable_twice(op)) {
                no_grad++;
            } else {
                without++;
                size_t l = strlen(missing);
                snprintf(missing + l, sizeof missing - l, "%s%s", l ? ", " : "", op->name);
            }
            continue;
        }
        ck_assert(op_differentiable_twice(op));
        with++;
        op_check_report cr;
        ck_assert_msg(gradcheck_op_graph_vjp(op, 1, &cr) == 0, "%s: %s", op->name, tapegrad_error());
        ck_assert_msg(cr.passed, "%s", cr.message);
        ck_assert_msg(cr.cases > 0 && cr.nodes > 0, "%s: nothing compared", op->name);
        op_check_report_free(&cr);
        for (int k = 0;; k++) {
            op_sample s;
            memset(&s, 0, sizeof s);
            rng g;
            rng_seed(&g, 1, (uint64_t)k);
            int rc = op->sample(k, &g, &s);
            ck_assert(rc == 0 || rc == 1);
            if (rc == 1) break;
            gradcheck_options o = gradcheck_defaults();
            o.check_mask = case_mask(op, &s);
            case_ctx ctx = {op, &s};
            gradcheck_report r;
            ck_assert_msg(gradgradcheck(case_fn, &ctx, s.inputs, s.n_inputs, &o, &r) == 0, "%s case %d: %s",
                          op->name, k, tapegrad_error());
            bool any_nonzero = false;
            for (int j = 0; j < s.n_inputs; j++) {
                if (!r.input[j].checked) continue;
                ck_assert_msg(r.input[j].passed || r.input[j].vacuous, "%s case %d (%s): %s", op->name, k,
                              s.name, r.message);
                any_nonzero |= !r.input[j].vacuous;
            }
            ck_assert_msg(!r.localized, "%s case %d: %s", op->name, k, r.message);
            /* ops nonlinear in every input: every case has a second derivative to check */
            static const char *const curved[] = {"mul", "div", "exp", "log", "tanh", "sigmoid", "square",
                                                 "pow_scalar", "pow", "matmul", "softmax", "log_softmax",
                                                 "logsumexp", "softplus", "silu", "mish", "var", "std"};
            for (size_t q = 0; q < sizeof curved / sizeof curved[0]; q++)
                if (strcmp(op->name, curved[q]) == 0)
                    ck_assert_msg(any_nonzero, "%s case %d (%s): the second derivative is vacuous: %s",
                                  op->name, k, s.name, r.message);
            second += any_nonzero;
            cases++;
            gradcheck_report_free(&r);
            for (int j = 0; j < s.n_inputs; j++) tensor_free(s.inputs[j]);
        }
    }
    printf("differentiable twice: %d ops with a differentiable vjp (%d sample cases, %d with a "
           "nonzero second derivative), %d without an input that has a gradient; first order "
           "only: %d (%s)\n",
           with, cases, second, no_grad, without, missing);
    /* every built-in op: differentiable twice, or never recorded */
    ck_assert_msg(without == 0, "first order only: %s", missing);
    ck_assert_int_eq(with + no_grad, op_count());
}
END_TEST

/* ----------------------------------- second order through the newer ops */
/* H v of fn's 1-element output against central differences of its
 * gradient, (grad(x + h v) - grad(x - h v)) / 2h, for float64 leaves in[0..n)
 * and a seeded v; fn is rebuilt from the inputs each time. Returns the
 * largest |H v| and checks that the two agree to 1e-6 of it. */
static double hvp_vs_differences(gradcheck_fn fn, void *ctx, tensor *const *in, int n, uint64_t seed,
                                 const char *what) {
    tensor *v[4], *hv[4], *hv_kept[4], *plus[4], *minus[4], *gr[4];
    rng g;
    rng_seed(&g, seed, 3);
    for (int k = 0; k < n; k++) v[k] = tg_sample_tensor(&g, in[k]->ndim, in[k]->shape, -1, 1);
    tape_reset();
    ck_assert_int_eq(tensor_hvp(fn(in, n, ctx), in, n, v, hv), 0);
    for (int k = 0; k < n; k++) hv_kept[k] = tensor_detach(hv[k]);
    const double h = 1e-5;
    for (int side = 0; side < 2; side++) {
        for (int k = 0; k < n; k++)
            for (int64_t i = 0; i < in[k]->size; i++)
                tensor_set(in[k], i, tensor_get(in[k], i) + (side ? -2 * h : h) * tensor_get(v[k], i));
        tape_reset();
        ck_assert_int_eq(tensor_grad(fn(in, n, ctx), NULL, in, n, false, gr), 0);
        for (int k = 0; k < n; k++) (side ? minus : plus)[k] = tensor_detach(gr[k]);
    }
    for (int k = 0; k < n; k++)
        for (int64_t i = 0; i < in[k]->size; i++)
            tensor_set(in[k], i, tensor_get(in[k], i) + h * tensor_get(v[k], i));
    double worst = 0, scale = 0;
    for (int k = 0; k < n; k++)
        for (int64_t i = 0; i < in[k]->size; i++) {
            double fd = (tensor_get(plus[k], i) - tensor_get(minus[k], i)) / (2 * h);
            worst = fmax(worst, fabs(tensor_get(hv_kept[k], i) - fd));
            scale = fmax(scale, fabs(fd));
        }
    ck_assert_msg(scale > 1e-3, "%s: H v is all but zero (%g): nothing checked", what, scale);
    ck_assert_msg(worst <= 1e-6 * scale, "%s: H v differs from differences of gradients by %g (scale %g)",
                  what, worst, scale);
    for (int k = 0; k < n; k++)
        tensor_free(v[k]), tensor_free(hv_kept[k]), tensor_free(plus[k]), tensor_free(minus[k]);
    tape_reset();
    return scale;
}

/* f = sum(c * y^2), y attention with a causal triangle, a mask that leaves
 * query 2 of batch 1 no key at all, and dropout (the same mask each build:
 * the generator is reseeded). ctx: the mask then c. */
static tensor *attention_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    tensor *const *cm = ctx;
    rng g;
    rng_seed(&g, 91, 1);
    tensor *y = tensor_scaled_dot_product_attention(in[0], in[1], in[2], cm[0], true, 0.25, &g);
    return tensor_sum_all(tensor_mul(tensor_square(y), cm[1]));
}
START_TEST(test_attention_second_order_with_a_fully_masked_row) {
    tensor *in[3] = {leaf(81, SHAPE(2, 4, 3), -1.5, 1.5), leaf(82, SHAPE(2, 5, 3), -1.5, 1.5),
                     leaf(83, SHAPE(2, 5, 2), -1.5, 1.5)};
    tensor *mask = tensor_zeros(DTYPE_I64, SHAPE(2, 4, 5));
    ck_assert_ptr_nonnull(mask);
    for (int64_t e = 0; e < mask->size; e++) tensor_set(mask, e, e % 3 == 1);
    for (int64_t j = 0; j < 5; j++) tensor_set(mask, (1 * 4 + 2) * 5 + j, 1); /* batch 1, query 2 */
    tensor *c = leaf(84, SHAPE(2, 4, 2), 0.5, 1.5);
    tensor *ctx[2] = {mask, c};
    /* the recorded gradient equals the kernel's, and is 0 on the masked row */
    tape_reset();
    tensor *ga[3], *gb[3], *kept[3];
    ck_assert_int_eq(tensor_grad(attention_fn(in, 3, ctx), NULL, in, 3, true, ga), 0);
    for (int k = 0; k < 3; k++) kept[k] = tensor_detach(ga[k]);
    tape_reset();
    ck_assert_int_eq(tensor_grad(attention_fn(in, 3, ctx), NULL, in, 3, false, gb), 0);
    for (int k = 0; k < 3; k++) assert_same_values(kept[k], gb[k], 1e-12);
    for (int64_t d = 0; d < 3; d++) ck_assert(tensor_get(kept[0], (1 * 4 + 2) * 3 + d) == 0.0);
    for (int k = 0; k < 3; k++) tensor_free(kept[k]);
    double scale = hvp_vs_differences(attention_fn, ctx, in, 3, 85, "attention");
    printf("attention H v (causal, mask with an empty row, dropout): max |H v| %.3g\n", scale);
    for (int k = 0; k < 3; k++) tensor_free(in[k]);
    tensor_free(mask), tensor_free(c);
}
END_TEST

/* Inputs that depend on each other: k = 2 q and v = q. The recorded
 * gradient of q sums the three paths once each, as the kernel's does. */
START_TEST(test_attention_graph_vjp_with_inputs_derived_from_each_other) {
    tensor *q = leaf(121, SHAPE(2, 3, 2), -1.5, 1.5), *gr[2], *kept;
    for (int cg = 0; cg < 2; cg++) {
        tape_reset();
        tensor *y = tensor_scaled_dot_product_attention(q, tensor_mul_scalar(q, 2.0), q, NULL, false, 0, NULL);
        ck_assert_int_eq(tensor_grad(tensor_sum_all(tensor_square(y)), NULL, &q, 1, cg == 1, &gr[cg]), 0);
        if (cg == 0) kept = tensor_detach(gr[0]);
    }
    assert_same_values(gr[1], kept, 1e-12);
    tape_reset();
    tensor_free(kept), tensor_free(q);
}
END_TEST

/* Ops whose differentiable vjp is a decomposition (conv_transpose2d, conv2d
 * at stride 2, a two-input loss), with one input computed from the other:
 * the create_graph gradient equals the kernel's. The decomposition's own
 * walk stops at the node it differentiates; walking the inputs' history
 * there as well counted the path from w to x twice (dW 1.5 times the
 * kernel's). */
/* *c: the constant the graph reads (user-owned: freed by the caller once the
 * gradients are taken, since the tape reads it until then) */
static tensor *derived_graph(int which, tensor *w, tensor **c) {
    static const double scale[3] = {0.7, 1.1, 0.9};
    tensor *s = tensor_mul_scalar(tensor_sum_all(w), scale[which]);
    if (which == 0) { /* x [2,4,3,3] = x0 * sum(w): w [4,2,2,2] */
        rng g;
        rng_seed(&g, 131, 1);
        tensor *x0 = tg_sample_tensor(&g, SHAPE(2, 4, 3, 3), -1, 1);
        conv_transpose2d_params p = {{2, 1}, {1, 0}, {1, 0}, {1, 1}, 1};
        tensor *y = tensor_conv_transpose2d(tensor_mul(tensor_tanh(x0), s), w, NULL, p);
        *c = x0;
        return tensor_sum_all(tensor_tanh(y));
    }
    if (which == 1) { /* x [1,2,5,5] from w [3,2,2,2] tiled by a sum; stride 2, padding 1 */
        rng g;
        rng_seed(&g, 132, 1);
        tensor *x0 = tg_sample_tensor(&g, SHAPE(1, 2, 5, 5), -1, 1);
        conv2d_params p = {{2, 2}, {1, 1}, {1, 1}, 1};
        tensor *y = tensor_conv2d(tensor_mul(tensor_sin(x0), s), w, NULL, p);
        *c = x0;
        return tensor_sum_all(tensor_tanh(y));
    }
    /* cosine_embedding_loss(w, 0.5 w + s) with labels 1, -1, 1 */
    tensor *lab = tensor_from_doubles(DTYPE_F64, SHAPE(3), (double[]){1, -1, 1});
    *c = lab;
    return tensor_cosine_embedding_loss(w, tensor_add(tensor_mul_scalar(w, 0.5), s), lab, 0.1,
                                        REDUCTION_MEAN);
}

START_TEST(test_decomposed_graph_vjps_with_an_input_derived_from_another) {
    static const int64_t shapes[3][4] = {{4, 2, 2, 2}, {3, 2, 2, 2}, {3, 4, 0, 0}};
    static const int ndims[3] = {4, 4, 2};
    for (int which = 0; which < 3; which++) {
        tensor *w = leaf(140 + (uint64_t)which, ndims[which], shapes[which], -1, 1), *gr[2], *kept = NULL,
               *consts = NULL;
        for (int cg = 0; cg < 2; cg++) {
            tape_reset();
            tensor *c = NULL;
            tensor *f = derived_graph(which, w, &c);
            ck_assert_msg(f != NULL, "case %d: %s", which, tapegrad_error());
            ck_assert_int_eq(tensor_grad(f, NULL, &w, 1, cg == 1, &gr[cg]), 0);
            if (cg == 0) kept = tensor_detach(gr[0]);
            if (cg == 0) tensor_free(c);
            else consts = c;
        }
        assert_same_values(gr[1], kept, 1e-10);
        tape_reset();
        tensor_free(kept), tensor_free(w), tensor_free(consts);
    }
}
END_TEST

/* f = sum(tanh(conv_transpose2d(x, w, b))): stride 1, dilation 2 and output
 * padding 1 (so conv2d(g, w) has a row and a column past x, cut off), groups 2. */
static tensor *conv_transpose_fn(tensor *const *in, int n, void *ctx) {
    (void)n, (void)ctx;
    conv_transpose2d_params p = {{1, 1}, {1, 0}, {1, 1}, {2, 2}, 2};
    return tensor_sum_all(tensor_tanh(tensor_conv_transpose2d(in[0], in[1], in[2], p)));
}
START_TEST(test_conv_transpose2d_hvp_against_differences) {
    tensor *in[3] = {leaf(101, SHAPE(2, 4, 3, 4), -1, 1), leaf(102, SHAPE(4, 1, 2, 3), -1, 1),
                     leaf(103, SHAPE(2), -0.5, 0.5)};
    hvp_vs_differences(conv_transpose_fn, NULL, in, 3, 104, "conv_transpose2d");
    for (int k = 0; k < 3; k++) tensor_free(in[k]);
}
END_TEST

/* conv2d's gradients as ops give the numbers of conv2d's kernel vjp (the
 * same kernels: equal to rounding), grouped, strided, padded, with a row of
 * x past the last window (7 + 2 - 3 = 6 rows reached of 7 + 2). */
START_TEST(test_conv2d_grad_ops_match_conv2d_backward) {
    tensor *x = leaf(111, SHAPE(2, 4, 7, 6), -1, 1), *w = leaf(112, SHAPE(6, 2, 3, 3), -1, 1);
    conv2d_params p = {{2, 2}, {1, 1}, {1, 1}, 2};
    tensor *y = tensor_conv2d(x, w, NULL, p);
    ck_assert_ptr_nonnull(y);
    rng g;
    rng_seed(&g, 113, 7);
    tensor *gy = tg_sample_tensor(&g, 4, y->shape, -1, 1);
    ck_assert_ptr_nonnull(gy);
    tensor *wrt[2] = {x, w}, *grads[2];
    ck_assert_int_eq(tensor_grad(y, gy, wrt, 2, false, grads), 0);
    assert_same_values(tensor_conv2d_input_grad(gy, w, 7, 6, p), grads[0], 1e-12);
    assert_same_values(tensor_conv2d_weight_grad(x, gy, 3, 3, p), grads[1], 1e-12);
    tape_reset();
    tensor_free(gy), tensor_free(x), tensor_free(w);
}
END_TEST

/* A grouped conv2d's Hessian (its graph vjp is conv2d_input_grad and
 * conv2d_weight_grad, whose own are conv2d and each other). */
static tensor *grouped_conv_fn(tensor *const *in, int n, void *ctx) {
    (void)n, (void)ctx;
    conv2d_params p = {{1, 2}, {1, 0}, {2, 1}, 2};
    return tensor_sum_all(tensor_tanh(tensor_conv2d(in[0], in[1], in[2], p)));
}
START_TEST(test_grouped_conv2d_hvp_against_differences) {
    tensor *in[3] = {leaf(121, SHAPE(2, 4, 6, 7), -1, 1), leaf(122, SHAPE(4, 2, 2, 3), -1, 1),
                     leaf(123, SHAPE(4), -0.5, 0.5)};
    hvp_vs_differences(grouped_conv_fn, NULL, in, 3, 124, "grouped conv2d");
    for (int k = 0; k < 3; k++) tensor_free(in[k]);
}
END_TEST

/* Bad arguments to conv2d's gradient ops: NULL and a message naming the op
 * and the shapes (x [2,3,6,5] * w [4,3,3,3] -> [2,4,4,3]). */
static void expect_error(tensor *r, const char *msg) {
    const char *got = tapegrad_error();
    ck_assert_ptr_null(r);
    ck_assert_msg(got && strstr(got, msg), "expected \"%s\", got %s", msg, got ? got : "(none)");
    tapegrad_error_clear();
}
START_TEST(test_conv2d_grad_ops_errors) {
    tensor *x = leaf(131, SHAPE(2, 3, 6, 5), -1, 1), *w = leaf(132, SHAPE(4, 3, 3, 3), -1, 1);
    tensor *g = leaf(133, SHAPE(2, 4, 4, 3), -1, 1), *g3 = leaf(134, SHAPE(2, 4, 12), -1, 1);
    conv2d_params p = CONV2D_DEFAULT, p2 = {{1, 1}, {0, 0}, {1, 1}, 2};
    expect_error(tensor_conv2d_input_grad(g3, w, 6, 5, p),
                 "conv2d_input_grad: upstream gradient (B, OC, OH, OW) must be 4-D, got [2,4,12]");
    expect_error(tensor_conv2d_input_grad(g, w, 0, 5, p), "conv2d_input_grad: bad input size 0x5");
    expect_error(tensor_conv2d_input_grad(g, w, 7, 5, p),
                 "conv2d_input_grad: upstream gradient [2,4,4,3] is not the output [2,4,5,3] of conv2d of "
                 "input [2,3,7,5] and weight [4,3,3,3]");
    expect_error(tensor_conv2d_input_grad(g, w, 2, 5, p), "conv2d_input_grad: conv2d: kernel [4,3,3,3]");
    expect_error(tensor_conv2d_weight_grad(x, g, 3, 0, p), "conv2d_weight_grad: bad kernel size 3x0");
    expect_error(tensor_conv2d_weight_grad(x, g3, 3, 3, p), "conv2d_weight_grad: upstream gradient");
    expect_error(tensor_conv2d_weight_grad(x, g, 2, 3, p),
                 "conv2d_weight_grad: upstream gradient [2,4,4,3] is not the output [2,4,5,3]");
    expect_error(tensor_conv2d_weight_grad(x, g, 3, 3, p2),
                 "conv2d_weight_grad: conv2d: groups 2 must divide input channels 3");
    expect_error(tensor_conv2d_weight_grad(NULL, g, 3, 3, p), "conv2d_weight_grad: input 0 is NULL");
    tensor_free(x), tensor_free(w), tensor_free(g), tensor_free(g3);
}
END_TEST

/* f = sum(tanh(upsample(x))^2) (bilinear, scale (1.7, 0.6)) + sum(exp(adaptive_avg_pool2d(x, 3, 2))). */
static tensor *resample_fn(tensor *const *in, int n, void *ctx) {
    (void)n, (void)ctx;
    upsample_params p = {{0, 0}, {1.7, 0.6}, UPSAMPLE_BILINEAR, false};
    tensor *u = tensor_sum_all(tensor_square(tensor_tanh(tensor_upsample(in[0], p))));
    return tensor_add(u, tensor_sum_all(tensor_exp(tensor_adaptive_avg_pool2d(in[0], 3, 2))));
}
/* nearest with PyTorch's halving rule (5 -> 10) and align_corners bilinear */
static tensor *resample2_fn(tensor *const *in, int n, void *ctx) {
    (void)n, (void)ctx;
    upsample_params a = {{10, 7}, {0, 0}, UPSAMPLE_NEAREST, false};
    upsample_params b = {{3, 8}, {0, 0}, UPSAMPLE_BILINEAR, true};
    tensor *y = tensor_sum_all(tensor_tanh(tensor_upsample(in[0], a)));
    return tensor_add(y, tensor_sum_all(tensor_square(tensor_sin(tensor_upsample(in[0], b)))));
}
START_TEST(test_resample_hvp_against_differences) {
    tensor *x = leaf(111, SHAPE(2, 2, 5, 6), -1.5, 1.5);
    hvp_vs_differences(resample_fn, NULL, &x, 1, 112, "upsample + adaptive_avg_pool2d");
    hvp_vs_differences(resample2_fn, NULL, &x, 1, 113, "upsample nearest + align_corners");
    tensor_free(x);
}
END_TEST

/* --------------------------------------------- broken second orders */
/* tanh's differentiable vjp with a wrong factor: g (1 - 2 z^2). */
static int tanh_graph_wrong_factor(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    gin[0] = tensor_mul(g, tensor_add_scalar(tensor_mul_scalar(tensor_square(n->out), -2.0), 1.0));
    return tg_graph_vjp_done(n, want, gin);
}
/* tanh's differentiable vjp with the right value but z read off the tape
 * (a constant copy): the second derivative loses d(1 - z^2)/dx. */
static int tanh_graph_detached(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    tensor *z = tg_tensor_tape_new(n->out->dtype, n->out->ndim, n->out->shape);
    if (!z) return -1;
    memcpy(z->data, n->out->data, (size_t)z->size * tg_dtype_size(z->dtype));
    gin[0] = tensor_mul(g, tensor_add_scalar(tensor_neg(tensor_square(z)), 1.0));
    return tg_graph_vjp_done(n, want, gin);
}
static op_def bad_tanh;

/* L = sum(tanh(a * w)^2) with the tanh node's entry swapped for bad_tanh. */
static tensor *bad_fn(tensor *const *in, int n, void *ctx) {
    (void)n, (void)ctx;
    tensor *y = tensor_tanh(tensor_mul(in[0], in[1]));
    if (!y) return NULL;
    tg_tape_node_at(y->node)->op = &bad_tanh;
    return tensor_sum_all(tensor_square(y));
}

START_TEST(test_broken_graph_vjp_wrong_factor_caught_and_localised) {
    bad_tanh = *op_find("tanh");
    bad_tanh.vjp_graph = tanh_graph_wrong_factor;
    op_check_report cr;
    ck_assert_int_eq(gradcheck_op_graph_vjp(&bad_tanh, 1, &cr), 0);
    ck_assert_msg(!cr.passed, "a wrong graph vjp passed");
    ck_assert_msg(strstr(cr.message, "disagrees with its kernel vjp"), "%s", cr.message);
    op_check_report_free(&cr);

    tensor *a = leaf(30, SHAPE(2, 3), -1, 1), *w = leaf(31, SHAPE(3), 0.5, 1.5);
    tensor *in[2] = {a, w};
    gradcheck_report r;
    ck_assert_int_eq(gradgradcheck(bad_fn, NULL, in, 2, NULL, &r), 0);
    ck_assert_msg(!r.passed, "a wrong second order passed: %s", r.message);
    ck_assert_msg(r.localized, "%s", r.message);
    ck_assert_int_eq(r.bad_node, 1); /* mul, then tanh */
    ck_assert_str_eq(r.bad_node_desc, "tanh [2,3]");
    gradcheck_report_free(&r);
    tensor_free(a), tensor_free(w);
}
END_TEST

START_TEST(test_broken_graph_vjp_off_the_tape_caught) {
    bad_tanh = *op_find("tanh");
    bad_tanh.vjp_graph = tanh_graph_detached;
    /* its values are right: the first-order comparison cannot see it */
    op_check_report cr;
    ck_assert_int_eq(gradcheck_op_graph_vjp(&bad_tanh, 1, &cr), 0);
    ck_assert_msg(cr.passed, "%s", cr.message);
    op_check_report_free(&cr);
    tensor *a = leaf(32, SHAPE(2, 3), -1, 1), *w = leaf(33, SHAPE(3), 0.5, 1.5);
    tensor *in[2] = {a, w};
    gradcheck_report r;
    ck_assert_int_eq(gradgradcheck(bad_fn, NULL, in, 2, NULL, &r), 0);
    ck_assert_msg(!r.passed, "a second order off the tape passed: %s", r.message);
    for (int i = 0; i < 2; i++) ck_assert_msg(!r.input[i].vacuous, "%s", r.message);
    gradcheck_report_free(&r);
    /* and the good one passes on the same function */
    bad_tanh = *op_find("tanh");
    ck_assert_int_eq(gradgradcheck(bad_fn, NULL, in, 2, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    gradcheck_report_free(&r);
    tensor_free(a), tensor_free(w);
}
END_TEST

/* ------------------------------------------------------------ errors */
/* A custom op (op_register) has no differentiable vjp: y = x^3, dx = 3 x^2 g. */
static void cube_forward(tensor *const *in, int n, const double *p, tensor *out) {
    (void)n, (void)p;
    for (int64_t i = 0; i < out->size; i++) tensor_set(out, i, pow(tensor_get(in[0], i), 3));
}
static void cube_vjp(tensor *const *in, int n, const double *p, const tensor *out, const tensor *g,
                     tensor *const *gin) {
    (void)n, (void)p, (void)out;
    for (int64_t i = 0; gin[0] && i < g->size; i++) {
        double x = tensor_get(in[0], i);
        tensor_set(gin[0], i, tensor_get(gin[0], i) + 3 * x * x * tensor_get(g, i));
    }
}
static int cube_sample(int k, rng *g, op_case *c) {
    if (k >= 1) return 1;
    c->n_inputs = 1;
    c->inputs[0] = tensor_rand(g, DTYPE_F64, 1, (int64_t[]){4}, -2, 2);
    snprintf(c->name, sizeof c->name, "x[4]");
    return 0;
}
static const op_def *register_cube(void) {
    op_spec sp = {.name = "cube", .arity = 1, .forward = cube_forward, .vjp = cube_vjp,
                  .sample = cube_sample, .signature = "cube(x)", .formula_forward = "y = x^3",
                  .formula_gradient = "dx = 3 x^2 g", .notes = ""};
    const op_def *op = op_register(&sp);
    ck_assert_msg(op != NULL, "%s", tapegrad_error());
    return op;
}

START_TEST(test_create_graph_through_first_order_op_is_refused) {
    const op_def *cube = register_cube();
    ck_assert(!op_differentiable_twice(cube));
    tensor *x = leaf(40, SHAPE(6), -1, 1);
    tape_reset();
    tensor *xs = tensor_mul_scalar(x, 1.5);
    tensor *L = tensor_sum_all(tensor_apply(cube, &xs, 1, NULL));
    int64_t nodes = tape_size();
    tensor *g = (tensor *)1;
    ck_assert_int_eq(tensor_grad(L, NULL, &x, 1, true, &g), -1);
    ck_assert_ptr_null(g);
    ck_assert_error_is("tensor_grad: create_graph through cube: cube has no differentiable vjp (first "
                       "order only)");
    ck_assert_int_eq(tape_size(), nodes); /* nothing recorded */
    /* first order through it is fine, and equals backward's */
    ck_assert_int_eq(tensor_grad(L, NULL, &x, 1, false, &g), 0);
    ck_assert_int_eq(tensor_backward(L), 0);
    assert_same_values(g, x->grad, 1e-15);
    /* and so is create_graph when the op is not between out and the input */
    tensor *y = leaf(41, SHAPE(6), -1, 1);
    tensor *L2 = tensor_add(L, tensor_sum_all(tensor_tanh(y)));
    ck_assert_int_eq(tensor_grad(L2, NULL, &y, 1, true, &g), 0);
    ck_assert(g->requires_grad);
    op_check_report cr;
    ck_assert_int_eq(gradcheck_op_graph_vjp(cube, 1, &cr), -1);
    ck_assert_error_is("gradcheck_op_graph_vjp: cube has no differentiable vjp (first order only)");
    tape_reset();
    tensor_free(x), tensor_free(y);
}
END_TEST

START_TEST(test_errors_bad_arguments) {
    tensor *x = leaf(50, SHAPE(2, 3), -1, 1), *y = leaf(51, SHAPE(3), -1, 1);
    tensor *c = tensor_zeros(DTYPE_F64, SHAPE(3)); /* does not require grad */
    tensor *idx = tensor_zeros(DTYPE_I64, SHAPE(3));
    tape_reset();
    tensor *L = tensor_sum_all(tensor_mul(x, x));
    tensor *Y = tensor_mul(x, x); /* [2,3] */
    tensor *g[2];
    tapegrad_error_clear();
    ck_assert_int_eq(tensor_grad(NULL, NULL, &x, 1, false, g), -1);
    ck_assert_error_is("tensor_grad: output is NULL");
    ck_assert_int_eq(tensor_grad(L, NULL, &x, 0, false, g), -1);
    ck_assert_error_is("tensor_grad: no inputs (inputs given, n = 0); give at least one tensor to "
                       "differentiate with respect to");
    ck_assert_int_eq(tensor_grad(L, NULL, NULL, 1, false, g), -1);
    ck_assert_error_is("tensor_grad: no inputs (inputs NULL, n = 1); give at least one tensor to "
                       "differentiate with respect to");
    ck_assert_int_eq(tensor_grad(L, NULL, &x, 1, false, NULL), -1);
    ck_assert_error_is("tensor_grad: grads is NULL; give an array of n tensor pointers for the results");
    tensor *with_null[2] = {x, NULL};
    ck_assert_int_eq(tensor_grad(L, NULL, with_null, 2, false, g), -1);
    ck_assert_error_is("tensor_grad: input 1 is NULL");
    ck_assert_int_eq(tensor_grad(L, NULL, &c, 1, false, g), -1);
    ck_assert_error_is("tensor_grad: input 0 [3] does not require grad; mark it with "
                       "tensor_set_requires_grad before computing the output");
    ck_assert_int_eq(tensor_grad(L, NULL, &idx, 1, false, g), -1);
    ck_assert_error_is("tensor_grad: input 0 [3] is int64; gradients are taken with respect to float32 "
                       "or float64 tensors");
    ck_assert_int_eq(tensor_grad(L, NULL, &y, 1, false, g), -1);
    ck_assert_error_is("tensor_grad: input 0 [3] is not in the graph of the output []: the output does "
                       "not depend on it through the tape (not used, used in a no-grad scope, or "
                       "through a detached copy)");
    ck_assert_int_eq(tensor_grad(Y, NULL, &x, 1, false, g), -1);
    ck_assert_error_is("tensor_grad: output [2,3] is not a scalar; give grad_out, an upstream "
                       "gradient of its shape");
    ck_assert_int_eq(tensor_grad(Y, c, &x, 1, false, g), -1);
    ck_assert_error_is("tensor_grad: grad_out float64 [3] does not match the output float64 [2,3] "
                       "(same dtype and shape needed)");
    ck_assert_int_eq(tensor_grad(c, NULL, &x, 1, false, g), -1);
    ck_assert_error_is("tensor_grad: output [3] does not require grad (no input requires grad, or it "
                       "was computed in a no-grad scope)");
    /* an error pending: a NULL output propagates without a new message */
    tensor_add(NULL, x);
    ck_assert_int_eq(tensor_grad(NULL, NULL, &x, 1, true, g), -1);
    ck_assert_error_is("add: input 0 is NULL");
    /* stale output and input */
    tensor *h = tensor_mul(x, y);
    tape_reset();
    tensor *L2 = tensor_sum_all(tensor_square(x));
    ck_assert_int_eq(tensor_grad(L, NULL, &x, 1, false, g), -1);
    ck_assert_msg(strstr(tapegrad_error(), "tensor_grad: output [] is stale"), "%s", tapegrad_error());
    tapegrad_error_clear();
    ck_assert_int_eq(tensor_grad(L2, NULL, &h, 1, false, g), -1);
    ck_assert_msg(strstr(tapegrad_error(), "tensor_grad: input 0 [2,3] is stale"), "%s", tapegrad_error());
    tapegrad_error_clear();
    /* tensor_hvp: v must match the inputs */
    tensor *v_bad = tensor_zeros(DTYPE_F64, SHAPE(3, 2));
    ck_assert_int_eq(tensor_hvp(L2, &x, 1, &v_bad, g), -1);
    ck_assert_error_is("tensor_hvp: v[0] float64 [3,2] does not match input 0 float64 [2,3]");
    ck_assert_int_eq(tensor_hvp(L2, &x, 1, NULL, g), -1);
    ck_assert_error_is("tensor_hvp: v is NULL; give one vector per input");
    tape_reset();
    tensor_free(x), tensor_free(y), tensor_free(c), tensor_free(idx), tensor_free(v_bad);
}
END_TEST

/* Graph vjps that break their own contract are refused, naming the op. */
static int graph_fails_silently(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    (void)n, (void)g, (void)want, (void)gin;
    return -1;
}
static int graph_wrong_shape(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    (void)n, (void)want;
    gin[0] = tensor_sum_all(g);
    return gin[0] ? 0 : -1;
}
static int graph_forgets_input(const tape_node *n, tensor *g, const bool *want, tensor **gin) {
    (void)g;
    return tg_graph_vjp_done(n, want, gin);
}

START_TEST(test_errors_from_broken_graph_vjps) {
    tensor *a = leaf(70, SHAPE(2, 3), -1, 1), *w = leaf(71, SHAPE(3), 0.5, 1.5);
    tensor *in[2] = {a, w}, *g[2];
    bad_tanh = *op_find("tanh");
    bad_tanh.vjp_graph = graph_fails_silently;
    tape_reset();
    tapegrad_error_clear();
    ck_assert_int_eq(tensor_grad(bad_fn(in, 2, NULL), NULL, in, 2, true, g), -1);
    ck_assert_error_is("tensor_grad: the graph vjp of tanh failed");
    op_check_report cr;
    ck_assert_int_eq(gradcheck_op_graph_vjp(&bad_tanh, 1, &cr), -1);
    ck_assert_msg(strstr(tapegrad_error(), "tanh case 0 (x[7]): the differentiable vjp failed"), "%s",
                  tapegrad_error());
    tapegrad_error_clear();
    bad_tanh.vjp_graph = graph_wrong_shape;
    tape_reset();
    ck_assert_int_eq(tensor_grad(bad_fn(in, 2, NULL), NULL, in, 2, true, g), -1);
    ck_assert_error_is("tensor_grad: the graph vjp of tanh (tape position 1) gave input 0 a gradient [] for "
                       "an input [2,3]");
    bad_tanh.vjp_graph = graph_forgets_input;
    tape_reset();
    ck_assert_int_eq(tensor_grad(bad_fn(in, 2, NULL), NULL, in, 2, true, g), -1);
    ck_assert_error_is("tensor_grad: the graph vjp of tanh (tape position 1) failed: tanh: the graph vjp "
                       "made no gradient for input 0");
    tape_reset();
    tensor_free(a), tensor_free(w);
}
END_TEST

/* fn returns a constant, then a tensor of another shape on later calls */
static tensor *const_fn(tensor *const *in, int n, void *ctx) {
    (void)n, (void)ctx;
    tape_no_grad_begin();
    tensor *y = tensor_square(in[0]);
    tape_no_grad_end();
    return y;
}
static tensor *shifty_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    int *calls = ctx;
    tensor *y = tensor_mul(in[0], tensor_square(in[0]));
    return (*calls)++ == 0 ? y : tensor_narrow(y, 0, 0, 2);
}

START_TEST(test_gradgradcheck_errors) {
    tensor *x = leaf(60, SHAPE(3), -1, 1);
    gradcheck_report r;
    tapegrad_error_clear();
    ck_assert_int_eq(gradgradcheck(NULL, NULL, &x, 1, NULL, &r), -1);
    ck_assert_error_is("gradgradcheck: fn is NULL");
    ck_assert_int_eq(gradgradcheck(net_fn, NULL, &x, 0, NULL, &r), -1);
    ck_assert_error_is("gradgradcheck: n must be 1..GRADCHECK_MAX_INPUTS");
    tensor *nul = NULL;
    ck_assert_int_eq(gradgradcheck(net_fn, NULL, &nul, 1, NULL, &r), -1);
    ck_assert_error_is("gradgradcheck: input 0 is NULL");
    ck_assert_int_eq(gradgradcheck(const_fn, NULL, &x, 1, NULL, &r), -1);
    ck_assert_msg(strstr(tapegrad_error(), "gradgradcheck: fn's output [3] does not require grad"), "%s",
                  tapegrad_error());
    tapegrad_error_clear();
    int calls = 0;
    gradcheck_options o = gradcheck_defaults();
    o.replay = GRADCHECK_REPLAY_NEVER; /* every perturbation calls fn */
    ck_assert_int_eq(gradgradcheck(shifty_fn, &calls, &x, 1, &o, &r), 0);
    ck_assert(!r.passed);
    ck_assert_msg(strstr(r.message, "gradgradcheck: fn's output changed shape from [3] to [2]"), "%s",
                  r.message);
    gradcheck_report_free(&r);
    tensor *v[1] = {NULL}, *hv[1];
    tape_reset();
    ck_assert_int_eq(tensor_hvp(tensor_sum_all(tensor_square(x)), &x, 1, v, hv), -1);
    ck_assert_error_is("tensor_hvp: v[0] is NULL");
    tape_reset();
    tensor_free(x);
}
END_TEST

static Suite *higher_order_suite(void) {
    Suite *s = suite_create("higher_order");
    TCase *tc = tcase_create("grad");
    tcase_add_test(tc, test_grad_matches_backward_and_leaves_grads_alone);
    tcase_add_test(tc, test_grad_of_nonscalar_output_wrt_intermediate_and_broadcast_operand);
    tcase_add_test(tc, test_grad_wrt_output_itself_and_repeated_input);
    tcase_add_test(tc, test_third_derivative_by_nested_create_graph);
    tcase_add_test(tc, test_grad_field_still_refused_as_requiring_grad);
    tcase_add_test(tc, test_create_graph_in_no_grad_scope_gives_constants);
    tcase_add_test(tc, test_hvp_tanh_squared_against_analytic_hessian);
    tcase_add_test(tc, test_hvp_two_inputs_with_broadcasting);
    tcase_add_test(tc, test_hvp_quadratic_form);
    tcase_add_test(tc, test_hvp_linear_parts_are_zero);
    tcase_add_test(tc, test_hvp_lenet5_against_differences_of_gradients);
    tcase_add_test(tc, test_create_graph_through_first_order_op_is_refused);
    tcase_add_test(tc, test_attention_second_order_with_a_fully_masked_row);
    tcase_add_test(tc, test_attention_graph_vjp_with_inputs_derived_from_each_other);
    tcase_add_test(tc, test_decomposed_graph_vjps_with_an_input_derived_from_another);
    tcase_add_test(tc, test_conv_transpose2d_hvp_against_differences);
    tcase_add_test(tc, test_conv2d_grad_ops_match_conv2d_backward);
    tcase_add_test(tc, test_grouped_conv2d_hvp_against_differences);
    tcase_add_test(tc, test_conv2d_grad_ops_errors);
    tcase_add_test(tc, test_resample_hvp_against_differences);
    tcase_add_test(tc, test_errors_bad_arguments);
    suite_add_tcase(s, tc);
    TCase *ck = tcase_create("gradgradcheck");
    tcase_set_timeout(ck, 120);
    tcase_add_test(ck, test_gradgradcheck_passes_on_smooth_functions);
    tcase_add_test(ck, test_broken_graph_vjp_wrong_factor_caught_and_localised);
    tcase_add_test(ck, test_broken_graph_vjp_off_the_tape_caught);
    tcase_add_test(ck, test_gradgradcheck_errors);
    tcase_add_test(ck, test_errors_from_broken_graph_vjps);
    tcase_add_test(ck, test_registry_every_graph_vjp_matches_kernel_and_passes_gradgradcheck);
    suite_add_tcase(s, ck);
    return s;
}

TEST_MAIN(higher_order_suite)
