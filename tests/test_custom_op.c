/* test_custom_op.c - ops of the user's own (op_register, tensor_apply,
 * gradcheck_op): they record on the tape like built-ins, join the registry,
 * and gradcheck_op catches each classic mistake in one, which the tape and a
 * whole-graph check would not all see; a broken one is localised inside a
 * LeNet-5-sized graph. Each test runs in its own process (Check forks), so
 * registrations do not leak between tests. */
#include <math.h>
#include <string.h>

#include "../autograd/internal.h"
#include "check_main.h"

/* ------------------------------------------------ scale_shift(x, b; s)
 * y = s x^2 + b  (x [..], b broadcast from [1]: b's gradient sums g);
 * dx = 2 s x g, db = sum g. params[0] = s. */
static void ss_forward(tensor *const *in, int n, const double *p, tensor *out) {
    (void)n;
    double b = tensor_get(in[1], 0);
    for (int64_t i = 0; i < out->size; i++) {
        double x = tensor_get(in[0], i);
        tensor_set(out, i, p[0] * x * x + b);
    }
}
static void ss_vjp(tensor *const *in, int n, const double *p, const tensor *out, const tensor *g,
                   tensor *const *gin) {
    (void)n, (void)out;
    double gb = 0;
    for (int64_t i = 0; i < g->size; i++) {
        double gi = tensor_get(g, i);
        gb += gi;
        if (gin[0]) tensor_set(gin[0], i, tensor_get(gin[0], i) + 2 * p[0] * tensor_get(in[0], i) * gi);
    }
    if (gin[1]) tensor_set(gin[1], 0, tensor_get(gin[1], 0) + gb);
}
static int ss_sample(int k, rng *g, op_case *c) {
    static const int64_t shapes[2][2] = {{5, 1}, {3, 4}};
    if (k >= 2) return 1;
    c->n_inputs = 2;
    c->inputs[0] = tensor_rand(g, DTYPE_F64, k + 1, shapes[k], -2, 2);
    c->inputs[1] = tensor_rand(g, DTYPE_F64, 1, (int64_t[]){1}, -1, 1);
    c->params[0] = 0.75;
    snprintf(c->name, sizeof c->name, "case %d", k);
    return 0;
}
static op_spec ss_spec(const char *name) {
    return (op_spec){.name = name, .arity = 2, .n_params = 1, .forward = ss_forward,
                     .vjp = ss_vjp, .sample = ss_sample, .signature = "scale_shift(x, b; s)",
                     .formula_forward = "y = s x^2 + b", .formula_gradient = "dx = 2 s x g, db = sum g",
                     .notes = ""};
}

static const op_def *reg(const op_spec *sp) {
    const op_def *op = op_register(sp);
    ck_assert_msg(op != NULL, "%s", tapegrad_error());
    return op;
}

static void assert_check_fails(const op_def *op, const char *part) {
    op_check_report r;
    ck_assert_int_eq(gradcheck_op(op, NULL, &r), 0);
    ck_assert_msg(!r.passed, "a broken custom op passed gradcheck_op");
    ck_assert_msg(strstr(r.message, part) != NULL, "\"%s\" lacks \"%s\"", r.message, part);
    op_check_report_free(&r);
}

/* -------------------------------------------------------- records, joins */
START_TEST(test_custom_op_records_and_joins_the_registry) {
    int before = op_count();
    op_spec sp = ss_spec("scale_shift");
    const op_def *op = reg(&sp);
    ck_assert_int_eq(op_count(), before + 1);
    ck_assert_ptr_eq(op_at(before), op);
    ck_assert_ptr_eq(op_find("scale_shift"), op);
    ck_assert_str_eq(op_name(op), "scale_shift");
    ck_assert_str_eq(op_formula_forward(op), "y = s x^2 + b");
    ck_assert_int_eq(op_arity(op), 2);
    /* x = [1, -2], b = 0.5, s = 3: y = [3.5, 12.5]; loss = sum y,
     * dx = 2 s x = [6, -12], db = 2 */
    tensor *x = tensor_from_doubles(DTYPE_F32, SHAPE(2), (double[]){1, -2});
    tensor *b = tensor_from_doubles(DTYPE_F32, SHAPE(1), (double[]){0.5});
    tensor_set_requires_grad(x, true);
    tensor_set_requires_grad(b, true);
    const double s = 3;
    tensor *y = tensor_apply(op, (tensor *[]){x, b}, 2, &s);
    ck_assert_ptr_nonnull(y);
    ck_assert(y->requires_grad && y->dtype == DTYPE_F32);
    ck_assert_int_eq(tape_size(), 1);
    ck_assert_double_eq(tensor_get(y, 0), 3.5);
    ck_assert_double_eq(tensor_get(y, 1), 12.5);
    ck_assert_int_eq(tensor_backward(tensor_sum_all(y)), 0);
    ck_assert_double_eq(tensor_get(x->grad, 0), 6);
    ck_assert_double_eq(tensor_get(x->grad, 1), -12);
    ck_assert_double_eq(tensor_get(b->grad, 0), 2);
    tape_reset();
    /* in a no-grad scope nothing is recorded */
    tape_no_grad_begin();
    y = tensor_apply(op, (tensor *[]){x, b}, 2, &s);
    tape_no_grad_end();
    ck_assert(!y->requires_grad && tape_size() == 0);
    tape_reset();
    tensor_free(x);
    tensor_free(b);
}
END_TEST

START_TEST(test_correct_custom_op_passes_gradcheck_op) {
    op_spec sp = ss_spec("scale_shift");
    const op_def *op = reg(&sp);
    op_check_report r;
    ck_assert_int_eq(gradcheck_op(op, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    ck_assert_int_eq(r.cases, 2);
    /* and the registry-wide contract sees it among the built-ins */
    ck_assert_int_eq(tg_op_check_contract(op_at(op_count() - 1), 3, &r), 0);
    ck_assert_msg(r.passed && r.nodes == 4, "%s", r.message); /* 2 cases x 2 dtypes */
    op_check_report_free(&r);
}
END_TEST

/* ------------------------------------------------ broken, each way */
static void ss_vjp_wrong_sign(tensor *const *in, int n, const double *p, const tensor *out,
                              const tensor *g, tensor *const *gin) {
    ss_vjp(in, n, p, out, g, gin);
    if (gin[0])
        for (int64_t i = 0; i < gin[0]->size; i++)
            tensor_set(gin[0], i, tensor_get(gin[0], i) - 4 * p[0] * tensor_get(in[0], i) * tensor_get(g, i));
}
START_TEST(test_wrong_vjp_is_caught) {
    op_spec sp = ss_spec("bad_sign");
    sp.vjp = ss_vjp_wrong_sign;
    assert_check_fails(reg(&sp), "bad_sign case 0 (case 0): the vjp disagrees with central differences");
}
END_TEST

/* many_squares(x0..x7; s): y = s sum_j x_j^2 over 8 inputs [3,4]; the vjp
 * has every sign wrong, so gradcheck's verdict has a sentence per input */
static void ms_forward(tensor *const *in, int n, const double *p, tensor *out) {
    for (int64_t i = 0; i < out->size; i++) {
        double y = 0;
        for (int j = 0; j < n; j++) y += tensor_get(in[j], i) * tensor_get(in[j], i);
        tensor_set(out, i, p[0] * y);
    }
}
static void ms_vjp_wrong_sign(tensor *const *in, int n, const double *p, const tensor *out,
                              const tensor *g, tensor *const *gin) {
    (void)out;
    for (int j = 0; j < n; j++)
        if (gin[j])
            for (int64_t i = 0; i < g->size; i++)
                tensor_set(gin[j], i,
                           tensor_get(gin[j], i) - 2 * p[0] * tensor_get(in[j], i) * tensor_get(g, i));
}
static int ms_sample(int k, rng *g, op_case *c) {
    if (k >= 1) return 1;
    c->n_inputs = OP_MAX_INPUTS;
    for (int j = 0; j < OP_MAX_INPUTS; j++) c->inputs[j] = tensor_rand(g, DTYPE_F64, 2, (int64_t[]){3, 4}, 0.5, 1.5);
    c->params[0] = 0.5;
    snprintf(c->name, sizeof c->name, "8 x [3,4]");
    return 0;
}
/* The report is whole: the last input's sentence of the embedded gradcheck
 * verdict survives (the message runs past a thousand characters). */
START_TEST(test_long_failure_report_is_not_cut) {
    op_spec sp = {.name = "bad_many", .arity = OP_MAX_INPUTS, .n_params = 1, .forward = ms_forward,
                  .vjp = ms_vjp_wrong_sign, .sample = ms_sample, .signature = "many_squares(x0..x7; s)",
                  .formula_forward = "y = s sum_j x_j^2", .formula_gradient = "dx_j = 2 s x_j g", .notes = ""};
    op_check_report r;
    ck_assert_int_eq(gradcheck_op(reg(&sp), NULL, &r), 0);
    ck_assert(!r.passed);
    ck_assert_msg(strlen(r.message) > 1024, "%zu: %s", strlen(r.message), r.message);
    ck_assert_msg(strstr(r.message, "input 7: 12 elements failing") != NULL, "%s", r.message);
    op_check_report_free(&r);
    ck_assert_ptr_null(r.message);
}
END_TEST

static void ss_vjp_assigns(tensor *const *in, int n, const double *p, const tensor *out,
                           const tensor *g, tensor *const *gin) {
    for (int j = 0; j < 2; j++)
        if (gin[j]) memset(gin[j]->data, 0, (size_t)gin[j]->size * (gin[j]->dtype == DTYPE_F32 ? 4 : 8));
    ss_vjp(in, n, p, out, g, gin); /* "=": whatever the buffer held is lost */
}
START_TEST(test_overwriting_vjp_is_caught) {
    op_spec sp = ss_spec("bad_assign");
    sp.vjp = ss_vjp_assigns;
    assert_check_fails(reg(&sp), "does not accumulate into the gradient of input 0");
}
END_TEST

static int calls;
static void ss_forward_impure(tensor *const *in, int n, const double *p, tensor *out) {
    ss_forward(in, n, p, out);
    tensor_set(out, 0, tensor_get(out, 0) + 1e-3 * (++calls)); /* a hidden counter */
}
START_TEST(test_impure_forward_is_caught) {
    op_spec sp = ss_spec("bad_impure");
    sp.forward = ss_forward_impure;
    assert_check_fails(reg(&sp), "the primal is not a pure function");
}
END_TEST

static void ss_vjp_writes_input(tensor *const *in, int n, const double *p, const tensor *out,
                                const tensor *g, tensor *const *gin) {
    ss_vjp(in, n, p, out, g, gin);
    tensor_set(in[1], 0, 0.0);
}
START_TEST(test_vjp_writing_an_input_is_caught) {
    op_spec sp = ss_spec("bad_write");
    sp.vjp = ss_vjp_writes_input;
    op_check_report r;
    ck_assert_int_eq(gradcheck_op(reg(&sp), NULL, &r), 0);
    ck_assert(!r.passed); /* central differences may see it first; the contract names it */
    op_check_report_free(&r);
    ck_assert_int_eq(tg_op_check_contract(op_find("bad_write"), 1234, &r), 0);
    ck_assert_msg(strstr(r.message, "the vjp wrote into input 1"), "%s", r.message);
    op_check_report_free(&r);
}
END_TEST

/* input 1 declared without gradient, yet the vjp sets its .grad itself */
static void ss_vjp_grads_declared_input(tensor *const *in, int n, const double *p,
                                        const tensor *out, const tensor *g, tensor *const *gin) {
    ss_vjp(in, n, p, out, g, gin);
    if (in[1]->requires_grad && !in[1]->grad) in[1]->grad = tensor_zeros(in[1]->dtype, 1, in[1]->shape);
}
START_TEST(test_gradient_for_declared_no_grad_input_is_caught) {
    op_spec sp = ss_spec("bad_nograd");
    sp.no_grad_inputs = 1u << 1;
    sp.vjp = ss_vjp_grads_declared_input;
    assert_check_fails(reg(&sp), "input 1 is declared without gradient, yet it got one");
}
END_TEST

/* right in float64, 1.001 off in float32 */
static void ss_vjp_off_in_float32(tensor *const *in, int n, const double *p, const tensor *out,
                                  const tensor *g, tensor *const *gin) {
    double q = out->dtype == DTYPE_F32 ? p[0] * 1.001 : p[0];
    ss_vjp(in, n, &q, out, g, gin);
}
START_TEST(test_vjp_wrong_only_in_float32_is_caught) {
    op_spec sp = ss_spec("bad_f32");
    sp.vjp = ss_vjp_off_in_float32;
    assert_check_fails(reg(&sp), "float32 gradient of input 0");
}
END_TEST

/* ------------------------------- localised inside a LeNet-5-sized graph */
static const op_def *bad_act;
static void act_forward(tensor *const *in, int n, const double *p, tensor *out) {
    (void)n, (void)p;
    for (int64_t i = 0; i < out->size; i++) {
        double x = tensor_get(in[0], i);
        tensor_set(out, i, x * x * x / 3 + x);
    }
}
static void act_vjp_off(tensor *const *in, int n, const double *p, const tensor *out,
                        const tensor *g, tensor *const *gin) {
    (void)n, (void)p, (void)out;
    for (int64_t i = 0; i < g->size; i++) { /* (x^2 + 1) g, but 1.01 x^2 */
        double x = tensor_get(in[0], i);
        tensor_set(gin[0], i, tensor_get(gin[0], i) + (1.01 * x * x + 1) * tensor_get(g, i));
    }
}

static tensor *lenet_fn(tensor *const *in, int n, void *ctx) {
    (void)n, (void)ctx;
    conv2d_params c1 = CONV2D_DEFAULT;
    c1.padding[0] = c1.padding[1] = 2;
    const pool2d_params p2 = {{2, 2}, {2, 2}, {0, 0}, false};
    tensor *h = tensor_relu(tensor_conv2d(in[0], in[1], in[2], c1));
    h = tensor_max_pool2d(h, p2);
    h = tensor_max_pool2d(tensor_relu(tensor_conv2d(h, in[3], in[4], CONV2D_DEFAULT)), p2);
    h = tensor_reshape(h, 2, (int64_t[]){2, -1});
    h = tensor_apply(bad_act, &(tensor *){tensor_linear(h, in[5], in[6])}, 1, NULL);
    h = tensor_relu(tensor_linear(h, in[7], in[8]));
    h = tensor_linear(h, in[9], in[10]);
    return tensor_cross_entropy(h, in[11], NULL, 0.0, REDUCTION_MEAN);
}

START_TEST(test_broken_custom_op_localised_in_lenet5) {
    bad_act = reg(&(op_spec){.name = "cubic_act", .arity = 1, .forward = act_forward,
                             .vjp = act_vjp_off});
    static const int64_t shapes[11][4] = {{2, 1, 28, 28}, {6, 1, 5, 5}, {6}, {16, 6, 5, 5}, {16},
                                          {120, 400}, {120}, {84, 120}, {84}, {10, 84}, {10}};
    static const int nd[11] = {4, 4, 1, 4, 1, 2, 1, 2, 1, 2, 1};
    static const double scale[11] = {1, 0.4, 0.1, 0.16, 0.1, 0.05, 0.1, 0.09, 0.1, 0.11, 0.1};
    rng g;
    rng_seed(&g, 5, 1);
    tensor *in[12];
    for (int i = 0; i < 11; i++) in[i] = tensor_rand(&g, DTYPE_F64, nd[i], shapes[i], -scale[i], scale[i]);
    in[11] = tg_sample_labels(&g, SHAPE(2), 10);
    gradcheck_options o = gradcheck_defaults();
    o.fast = true;
    gradcheck_report r;
    tapegrad_set_threads(1);
    ck_assert_int_eq(gradcheck(lenet_fn, NULL, in, 12, &o, &r), 0);
    ck_assert_msg(!r.passed && r.localized, "%s", r.message);
    /* nodes: conv relu pool conv relu pool reshape linear (7) cubic_act (8) */
    ck_assert_int_eq(r.bad_node, 8);
    ck_assert_msg(strncmp(r.bad_node_desc, "cubic_act", 9) == 0, "%s", r.bad_node_desc);
    ck_assert(r.input[9].passed && r.input[10].passed); /* downstream of it */
    gradcheck_report_free(&r);
    for (int i = 0; i < 12; i++) tensor_free(in[i]);
}
END_TEST

/* ------------------------------------------------- second order
 * scale_shift's vjp written with differentiable ops (op_spec.vjp_graph):
 *   dx = 2 s x g,  db = sum(g) as [1]
 * so that gradients of gradients flow through the op. */
static int ss_graph(tensor *const *in, int n, const double *p, tensor *out, tensor *g, const bool *want,
                    tensor **gin) {
    (void)n, (void)out;
    if (want[0]) gin[0] = tensor_mul_scalar(tensor_mul(in[0], g), 2 * p[0]);
    if (want[1]) gin[1] = tensor_reshape(tensor_sum_all(g), SHAPE(1));
    return (want[0] && !gin[0]) || (want[1] && !gin[1]) ? -1 : 0;
}
/* Broken on purpose: dx = 3 s x g (its kernel vjp says 2 s x g). */
static int ss_graph_wrong_factor(tensor *const *in, int n, const double *p, tensor *out, tensor *g,
                                 const bool *want, tensor **gin) {
    (void)n, (void)out;
    if (want[0]) gin[0] = tensor_mul_scalar(tensor_mul(in[0], g), 3 * p[0]);
    if (want[1]) gin[1] = tensor_reshape(tensor_sum_all(g), SHAPE(1));
    return 0;
}
/* Broken: forgets b's gradient; and fails without a message. */
static int ss_graph_forgets_b(tensor *const *in, int n, const double *p, tensor *out, tensor *g,
                              const bool *want, tensor **gin) {
    (void)n, (void)out;
    if (want[0]) gin[0] = tensor_mul_scalar(tensor_mul(in[0], g), 2 * p[0]);
    return 0;
}
static int ss_graph_fails(tensor *const *in, int n, const double *p, tensor *out, tensor *g,
                          const bool *want, tensor **gin) {
    (void)in, (void)n, (void)p, (void)out, (void)g, (void)want, (void)gin;
    return -1;
}

static const op_def *ss_op; /* the op the functions below apply */

/* L = sum(tanh(ss(a w, b; 0.75))): a [2,3], w [3] (broadcast), b [1];
 * nodes: mul (0), the custom op (1), tanh (2), sum (3). */
static tensor *ss_fn(tensor *const *in, int n, void *ctx) {
    (void)n, (void)ctx;
    const double s = 0.75;
    tensor *h[2] = {tensor_mul(in[0], in[1]), in[2]};
    return tensor_sum_all(tensor_tanh(tensor_apply(ss_op, h, 2, &s)));
}

static void ss_inputs(uint64_t seed, tensor **in) {
    rng g;
    rng_seed(&g, seed, 0);
    in[0] = tensor_rand(&g, DTYPE_F64, SHAPE(2, 3), -1, 1);
    in[1] = tensor_rand(&g, DTYPE_F64, SHAPE(3), 0.5, 1.5);
    in[2] = tensor_rand(&g, DTYPE_F64, SHAPE(1), -0.5, 0.5);
    for (int i = 0; i < 3; i++) tensor_set_requires_grad(in[i], true);
}

START_TEST(test_custom_op_with_graph_vjp_passes_gradgradcheck) {
    op_spec sp = ss_spec("scale_shift2");
    sp.vjp_graph = ss_graph;
    ss_op = reg(&sp);
    ck_assert(op_differentiable_twice(ss_op));
    op_check_report cr;
    ck_assert_int_eq(gradcheck_op_graph_vjp(ss_op, 3, &cr), 0);
    ck_assert_msg(cr.passed, "%s", cr.message);
    op_check_report_free(&cr);
    tensor *in[3];
    ss_inputs(11, in);
    gradcheck_report r;
    ck_assert_int_eq(gradgradcheck(ss_fn, NULL, in, 3, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    for (int i = 0; i < 3; i++) ck_assert_msg(!r.input[i].vacuous, "input %d: %s", i, r.message);
    gradcheck_report_free(&r);
    /* the Hessian-vector product through it: d/dt grad L(x + t v) at t = 0,
     * against central differences of the first-order gradient (h = 1e-5) */
    tape_reset();
    tensor *v[3], *hv[3];
    rng g;
    rng_seed(&g, 12, 0);
    for (int i = 0; i < 3; i++) v[i] = tensor_rand(&g, DTYPE_F64, in[i]->ndim, in[i]->shape, -1, 1);
    double fd[3][6] = {{0}};
    for (int sgn = -1; sgn <= 1; sgn += 2) {
        tensor *moved[3], *gr[3];
        for (int i = 0; i < 3; i++) {
            moved[i] = tensor_clone(in[i]);
            for (int64_t j = 0; j < in[i]->size; j++)
                tensor_set(moved[i], j, tensor_get(in[i], j) + sgn * 1e-5 * tensor_get(v[i], j));
            tensor_set_requires_grad(moved[i], true);
        }
        ck_assert_int_eq(tensor_grad(ss_fn(moved, 3, NULL), NULL, moved, 3, false, gr), 0);
        for (int i = 0; i < 3; i++)
            for (int64_t j = 0; j < in[i]->size; j++) fd[i][j] += sgn * tensor_get(gr[i], j) / 2e-5;
        tape_reset(); /* before the inputs go: the tape points at them */
        for (int i = 0; i < 3; i++) tensor_free(moved[i]);
    }
    ck_assert_int_eq(tensor_hvp(ss_fn(in, 3, NULL), in, 3, v, hv), 0);
    for (int i = 0; i < 3; i++)
        for (int64_t j = 0; j < in[i]->size; j++)
            ck_assert_msg(fabs(tensor_get(hv[i], j) - fd[i][j]) <= 1e-7 * (1 + fabs(fd[i][j])),
                          "hv[%d][%lld] %.12g, central differences %.12g", i, (long long)j,
                          tensor_get(hv[i], j), fd[i][j]);
    tape_reset();
    for (int i = 0; i < 3; i++) tensor_free(in[i]), tensor_free(v[i]);
}
END_TEST

START_TEST(test_create_graph_through_custom_op_without_graph_vjp_is_refused) {
    op_spec sp = ss_spec("scale_shift1");
    ss_op = reg(&sp); /* no vjp_graph: first order only */
    ck_assert(!op_differentiable_twice(ss_op));
    tensor *in[3], *g[3] = {NULL, NULL, NULL};
    ss_inputs(13, in);
    tape_reset();
    tensor *L = ss_fn(in, 3, NULL);
    int64_t nodes = tape_size();
    tapegrad_error_clear();
    ck_assert_int_eq(tensor_grad(L, NULL, in, 3, true, g), -1);
    ck_assert_str_eq(tapegrad_error(), "tensor_grad: create_graph through scale_shift1: scale_shift1 has no "
                                       "differentiable vjp (first order only)");
    tapegrad_error_clear();
    ck_assert_int_eq(tape_size(), nodes); /* refused before anything was recorded */
    ck_assert_int_eq(tensor_grad(L, NULL, in, 3, false, g), 0); /* first order is fine */
    gradcheck_report r;
    ck_assert_int_eq(gradgradcheck(ss_fn, NULL, in, 3, NULL, &r), -1);
    ck_assert_msg(strstr(tapegrad_error(), "scale_shift1 has no differentiable vjp"), "%s", tapegrad_error());
    tapegrad_error_clear();
    gradcheck_report_free(&r);
    tape_reset();
    for (int i = 0; i < 3; i++) tensor_free(in[i]);
}
END_TEST

START_TEST(test_broken_custom_graph_vjp_caught_and_localised) {
    op_spec sp = ss_spec("scale_shift_bad");
    sp.vjp_graph = ss_graph_wrong_factor;
    ss_op = reg(&sp);
    /* the op alone: its graph vjp against its kernel vjp */
    op_check_report cr;
    ck_assert_int_eq(gradcheck_op_graph_vjp(ss_op, 3, &cr), 0);
    ck_assert_msg(!cr.passed, "a wrong graph vjp passed");
    ck_assert_msg(strstr(cr.message, "scale_shift_bad") && strstr(cr.message, "disagrees with its kernel vjp"),
                  "%s", cr.message);
    op_check_report_free(&cr);
    /* inside a graph: the second order fails and the node is named */
    tensor *in[3];
    ss_inputs(14, in);
    gradcheck_report r;
    ck_assert_int_eq(gradgradcheck(ss_fn, NULL, in, 3, NULL, &r), 0);
    ck_assert_msg(!r.passed, "a wrong second order passed: %s", r.message);
    ck_assert_msg(r.localized, "%s", r.message);
    ck_assert_int_eq(r.bad_node, 1);
    ck_assert_str_eq(r.bad_node_desc, "scale_shift_bad [2,3] * [1]"); /* its inputs */
    gradcheck_report_free(&r);
    for (int i = 0; i < 3; i++) tensor_free(in[i]);
}
END_TEST

START_TEST(test_custom_graph_vjp_errors_name_the_op) {
    op_spec sp = ss_spec("ss_forgets");
    sp.vjp_graph = ss_graph_forgets_b;
    const op_def *forgets = reg(&sp);
    sp = ss_spec("ss_fails");
    sp.vjp_graph = ss_graph_fails;
    const op_def *fails = reg(&sp);
    tensor *in[3], *g[3];
    ss_inputs(15, in);
    ss_op = forgets;
    tape_reset();
    tapegrad_error_clear();
    ck_assert_int_eq(tensor_grad(ss_fn(in, 3, NULL), NULL, in, 3, true, g), -1);
    ck_assert_str_eq(tapegrad_error(), "tensor_grad: the graph vjp of ss_forgets (tape position 1) failed: "
                                       "ss_forgets: the graph vjp made no gradient for input 1");
    tapegrad_error_clear();
    ss_op = fails;
    tape_reset();
    ck_assert_int_eq(tensor_grad(ss_fn(in, 3, NULL), NULL, in, 3, true, g), -1);
    ck_assert_str_eq(tapegrad_error(), "tensor_grad: the graph vjp of ss_fails failed");
    tapegrad_error_clear();
    tape_reset();
    for (int i = 0; i < 3; i++) tensor_free(in[i]);
}
END_TEST

/* ----------------------------------------------------------------- errors */
static int refuse_shape(tensor *const *in, int n, const double *p, int *ndim, int64_t *shape) {
    (void)in, (void)n, (void)p, (void)ndim, (void)shape;
    return -1;
}

START_TEST(test_custom_op_errors) {
    tapegrad_error_clear();
    ck_assert_fails_with(op_register(NULL), "op_register: spec is NULL");
    op_spec sp = ss_spec("");
    ck_assert_fails_with(op_register(&sp), "op_register: the spec has no name");
    sp = ss_spec("e1");
    sp.forward = NULL;
    ck_assert_fails_with(op_register(&sp), "op_register: the spec has no forward function");
    sp = ss_spec("e1");
    sp.vjp = NULL;
    ck_assert_fails_with(op_register(&sp), "op_register: the spec has no vjp function");
    sp = ss_spec("e1");
    sp.arity = 9;
    const char *limits = "op_register: e1: name of 2 characters (at most 63), arity 9 (1..8), 1 params (0..4)";
    ck_assert_fails_with(op_register(&sp), limits);
    sp = ss_spec("add");
    ck_assert_fails_with(op_register(&sp), "op_register: an op named add is already registered");
    char names[40][16];
    int i = 0;
    for (;; i++) {
        snprintf(names[i], sizeof names[i], "op%d", i);
        sp = ss_spec(names[i]);
        if (!op_register(&sp)) break;
    }
    ck_assert_int_eq(i, 32);
    ck_assert_error_is("op_register: op32: 32 custom ops are registered already (at most 32)");

    const op_def *op = op_find("op0");
    tensor *x = tensor_from_doubles(DTYPE_F64, SHAPE(2), (double[]){1, 2});
    tensor *l = tensor_from_doubles(DTYPE_I64, SHAPE(1), (double[]){1});
    const double s = 1;
    ck_assert_fails_with(tensor_apply(op_find("add"), (tensor *[]){x, x}, 2, NULL),
                         "tensor_apply: add is not a registered custom op");
    ck_assert_fails_with(tensor_apply(op, (tensor *[]){x}, 1, &s),
                         "tensor_apply: op0 takes 2 inputs, given 1");
    /* a NULL list was reported as "given 0" */
    ck_assert_fails_with(tensor_apply(op, NULL, 2, &s), "tensor_apply: op0: the input list is NULL (n = 2)");
    tensor_free(x);
    tensor_free(l);
}
END_TEST

START_TEST(test_custom_op_apply_and_check_errors) {
    op_spec sp = ss_spec("ints");
    sp.no_grad_inputs = 3; /* both inputs may be int64 */
    const op_def *ints = reg(&sp);
    sp = ss_spec("refuses");
    sp.shape = refuse_shape;
    const op_def *refuses = reg(&sp);
    sp = ss_spec("no_cases");
    sp.sample = NULL;
    const op_def *no_cases = reg(&sp);
    tensor *x = tensor_from_doubles(DTYPE_F64, SHAPE(2), (double[]){1, 2});
    tensor *l = tensor_from_doubles(DTYPE_I64, SHAPE(1), (double[]){1});
    const double s = 1;
    tapegrad_error_clear();
    ck_assert_fails_with(tensor_apply(ints, (tensor *[]){l, l}, 2, &s),
                         "tensor_apply: ints: every input is int64; one must be float");
    ck_assert_fails_with(tensor_apply(refuses, (tensor *[]){x, x}, 2, &s),
                         "tensor_apply: refuses refused the shapes of its inputs");
    op_check_report r;
    ck_assert_int_eq(gradcheck_op(NULL, NULL, &r), -1);
    ck_assert_error_is("gradcheck_op: op is NULL");
    ck_assert_int_eq(gradcheck_op(ints, NULL, NULL), -1);
    ck_assert_error_is("gradcheck_op: report is NULL");
    ck_assert_int_eq(gradcheck_op(no_cases, NULL, &r), 0);
    ck_assert(!r.passed);
    ck_assert_str_eq(r.message, "no_cases: the op has no sample case to check");
    op_check_report_free(&r);
    tensor_free(x);
    tensor_free(l);
}
END_TEST

Suite *custom_suite(void) {
    Suite *s = suite_create("custom_op");
    TCase *tc = tcase_create("custom");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_custom_op_records_and_joins_the_registry);
    tcase_add_test(tc, test_correct_custom_op_passes_gradcheck_op);
    tcase_add_test(tc, test_wrong_vjp_is_caught);
    tcase_add_test(tc, test_long_failure_report_is_not_cut);
    tcase_add_test(tc, test_overwriting_vjp_is_caught);
    tcase_add_test(tc, test_impure_forward_is_caught);
    tcase_add_test(tc, test_vjp_writing_an_input_is_caught);
    tcase_add_test(tc, test_gradient_for_declared_no_grad_input_is_caught);
    tcase_add_test(tc, test_vjp_wrong_only_in_float32_is_caught);
    tcase_add_test(tc, test_broken_custom_op_localised_in_lenet5);
    tcase_add_test(tc, test_custom_op_with_graph_vjp_passes_gradgradcheck);
    tcase_add_test(tc, test_create_graph_through_custom_op_without_graph_vjp_is_refused);
    tcase_add_test(tc, test_broken_custom_graph_vjp_caught_and_localised);
    tcase_add_test(tc, test_custom_graph_vjp_errors_name_the_op);
    tcase_add_test(tc, test_custom_op_errors);
    tcase_add_test(tc, test_custom_op_apply_and_check_errors);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(custom_suite)
