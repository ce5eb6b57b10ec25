/* custom_op.c - an op of one's own: swish with a learnable-free slope,
 *   y = x sigmoid(beta x),   dx = g (s + beta x s (1 - s)),  s = sigmoid(beta x)
 * registered with op_register, used through tensor_apply like a built-in,
 * and checked with gradcheck_op (central differences, accumulation, purity,
 * determinism, float32 against float64). Its vjp is also written with
 * differentiable ops (vjp_graph), so gradients of gradients go through it:
 * a Hessian-vector product, and gradgradcheck (second order against
 * central differences of the first). Uses the public header only. */
#include <math.h>
#include <stdio.h>

#include "tapegrad.h"

static double sigmoid(double v) { return 1.0 / (1.0 + exp(-v)); }

/* in[0] = x; params[0] = beta. tensor_get/tensor_set serve float32 and
 * float64 alike (a hot op would loop over x->data per dtype). */
static void swish_forward(tensor *const *in, int n, const double *params, tensor *out) {
    (void)n;
    const double beta = params[0];
    for (int64_t i = 0; i < out->size; i++) {
        double x = tensor_get(in[0], i);
        tensor_set(out, i, x * sigmoid(beta * x));
    }
}

/* Accumulates: gin[0] += g dy/dx. */
static void swish_vjp(tensor *const *in, int n, const double *params, const tensor *out,
                      const tensor *gout, tensor *const *gin) {
    (void)n, (void)out;
    if (!gin[0]) return;
    const double beta = params[0];
    for (int64_t i = 0; i < gin[0]->size; i++) {
        double x = tensor_get(in[0], i), s = sigmoid(beta * x);
        double d = s + beta * x * s * (1 - s);
        tensor_set(gin[0], i, tensor_get(gin[0], i) + tensor_get(gout, i) * d);
    }
}

/* The same vjp with ops, so it is recorded and can be differentiated again:
 *   s = sigmoid(beta x),  gin = g (s + beta x s (1 - s)) */
static int swish_vjp_graph(tensor *const *in, int n, const double *params, tensor *out, tensor *g,
                           const bool *want, tensor **gin) {
    (void)n, (void)out;
    if (!want[0]) return 0;
    const double beta = params[0];
    tensor *x = in[0], *s = tensor_sigmoid(tensor_mul_scalar(x, beta));
    tensor *ds = tensor_mul(s, tensor_add_scalar(tensor_neg(s), 1.0)); /* s (1 - s) */
    tensor *d = tensor_add(s, tensor_mul(tensor_mul_scalar(x, beta), ds));
    gin[0] = tensor_mul(g, d);
    return gin[0] ? 0 : -1;
}

/* Two cases: a vector and a matrix, seeded values in [-3, 3), two slopes. */
static int swish_sample(int k, rng *g, op_case *c) {
    static const int64_t shapes[2][2] = {{7, 1}, {3, 4}};
    if (k >= 2) return 1;
    c->n_inputs = 1;
    c->inputs[0] = tensor_rand(g, DTYPE_F64, k + 1, shapes[k], -3.0, 3.0);
    c->params[0] = k ? 1.702 : 1.0;
    snprintf(c->name, sizeof c->name, "x%s, beta %g", k ? "[3,4]" : "[7]", c->params[0]);
    return c->inputs[0] ? 0 : -1;
}

/* sum(swish(x; beta = 1)^2), for the second-order checks; ctx: the op. */
static tensor *swish_squared(tensor *const *in, int n, void *ctx) {
    (void)n;
    const double beta = 1.0;
    return tensor_sum_all(tensor_square(tensor_apply((const op_def *)ctx, in, 1, &beta)));
}

static const op_spec swish_spec = {
    .name = "swish",
    .arity = 1,
    .n_params = 1,
    .forward = swish_forward,
    .vjp = swish_vjp,
    .vjp_graph = swish_vjp_graph,
    .sample = swish_sample,
    .signature = "tensor_apply(swish, {x}, 1, {beta})",
    .formula_forward = "y = x sigmoid(beta x)",
    .formula_gradient = "dx = g (s + beta x s (1 - s)), s = sigmoid(beta x)",
    .notes = "smooth; beta = 1 is SiLU",
};

int main(void) {
    const op_def *swish = op_register(&swish_spec);
    if (!swish) {
        fprintf(stderr, "op_register: %s\n", tapegrad_error());
        return 1;
    }
    printf("registered %s: op %d of %d, found by name: %s\n", op_name(swish), op_count() - 1,
           op_count(), op_find("swish") == swish ? "yes" : "no");

    /* used like a built-in: loss = sum(swish(x W)) */
    rng g;
    rng_seed(&g, 42, 0);
    tensor *x = tensor_rand(&g, DTYPE_F32, SHAPE(2, 3), -1, 1);
    tensor *w = tensor_rand(&g, DTYPE_F32, SHAPE(3, 4), -1, 1);
    tensor_set_requires_grad(w, true);
    const double beta = 1.0;
    tensor *h = tensor_matmul(x, w);
    tensor *loss = tensor_sum_all(tensor_apply(swish, &h, 1, &beta));
    if (!loss || tensor_backward(loss)) {
        fprintf(stderr, "error: %s\n", tapegrad_error());
        return 1;
    }
    printf("loss %.6f, dloss/dw[0] %.6f\n", tensor_item(loss), tensor_get(w->grad, 0));
    tape_reset();

    /* checked the way the test suite checks the built-ins */
    op_check_report r;
    if (gradcheck_op(swish, NULL, &r)) {
        fprintf(stderr, "gradcheck_op: %s\n", tapegrad_error());
        return 1;
    }
    printf("gradcheck_op(swish): %s over %d cases%s%s\n", r.passed ? "passed" : "FAILED", r.cases,
           r.passed ? "" : ": ", r.passed ? "" : r.message);
    bool ok = r.passed;
    op_check_report_free(&r);

    /* second order: its vjp_graph against its kernel vjp, then the second
     * derivative of sum(swish(x)^2) against central differences */
    if (gradcheck_op_graph_vjp(swish, 1, &r)) {
        fprintf(stderr, "gradcheck_op_graph_vjp: %s\n", tapegrad_error());
        return 1;
    }
    printf("gradcheck_op_graph_vjp(swish): %s\n", r.passed ? "passed" : r.message);
    ok = ok && r.passed;
    op_check_report_free(&r);
    tensor *x64 = tensor_rand(&g, DTYPE_F64, SHAPE(5), -2, 2);
    tensor_set_requires_grad(x64, true);
    gradcheck_report gr;
    if (gradgradcheck(swish_squared, (void *)swish, &x64, 1, NULL, &gr)) {
        fprintf(stderr, "gradgradcheck: %s\n", tapegrad_error());
        return 1;
    }
    printf("gradgradcheck(sum(swish(x)^2)): %s\n", gr.passed ? "passed" : gr.message);
    ok = ok && gr.passed;
    gradcheck_report_free(&gr);

    /* a Hessian-vector product through it: H v for v = e_0 is the first
     * column of the (diagonal) Hessian */
    tensor *v = tensor_zeros(DTYPE_F64, SHAPE(5)), *hv;
    tensor_set(v, 0, 1.0);
    if (tensor_hvp(swish_squared(&x64, 1, (void *)swish), &x64, 1, &v, &hv)) {
        fprintf(stderr, "tensor_hvp: %s\n", tapegrad_error());
        return 1;
    }
    printf("d2/dx0^2 sum(swish(x)^2) at x0 = %.4f: %.6f\n", tensor_get(x64, 0), tensor_get(hv, 0));
    tape_reset();
    tensor_free(v);
    tensor_free(x64);
    tensor_free(x);
    tensor_free(w);
    tape_release();
    return ok ? 0 : 1;
}
