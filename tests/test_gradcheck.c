/* test_gradcheck.c - the checker itself: every case of every registered op
 * passes in full and fast mode, correct ops pass for 100 seeds, the options
 * are honoured, and the verdicts beyond pass/fail (vacuous, kink,
 * non-deterministic backward) are given when they apply. */
#include <string.h>

#include "../autograd/internal.h"
#include "check_main.h"

/* ------------------------------------------------------------ helpers */
typedef struct {
    const op_def *op;
    const op_sample *s;
} case_ctx;

static tensor *case_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    const case_ctx *c = ctx;
    return c->op->build(in, c->s);
}

static void sample_free(op_sample *s) {
    for (int i = 0; i < s->n_inputs && i < SAMPLE_MAX_INPUTS; i++) tensor_free(s->inputs[i]);
}

/* The inputs a case can check: float, and not declared gradient-free. */
static uint32_t case_mask(const op_def *op, const op_sample *s) {
    uint32_t skip = s->no_grad_mask | op->no_grad_inputs, mask = 0;
    for (int i = 0; i < s->n_inputs; i++)
        if (!((skip >> i) & 1) && s->inputs[i] && s->inputs[i]->dtype != DTYPE_I64) mask |= 1u << i;
    return mask;
}

/* Runs case k of op with the sample drawn from seed; returns 1 when the op
 * has no case k. The case's name goes to name (for failure messages). */
static int check_case(const op_def *op, int k, uint64_t seed, bool fast, gradcheck_report *r,
                      char *name, size_t len) {
    op_sample s;
    memset(&s, 0, sizeof s);
    rng g;
    rng_seed(&g, seed, (uint64_t)k);
    int rc = op->sample(k, &g, &s);
    ck_assert_msg(rc == 0 || rc == 1, "%s case %d: sample failed: %s", op->name, k,
                  tapegrad_error() ? tapegrad_error() : "");
    if (rc == 1) return 1;
    snprintf(name, len, "%s case %d (%s, seed %llu)", op->name, k, s.name, (unsigned long long)seed);
    uint32_t mask = case_mask(op, &s);
    if (mask == 0) {
        /* nothing differentiable: only legal when the entry says so */
        uint32_t all = s.n_inputs >= 32 ? UINT32_MAX : (1u << s.n_inputs) - 1;
        ck_assert_msg((op->no_grad_inputs & all) == all, "%s: no checkable input", name);
        memset(r, 0, sizeof *r);
        r->passed = true;
        sample_free(&s);
        return 0;
    }
    gradcheck_options o = gradcheck_defaults();
    o.check_mask = mask;
    o.seed = seed;
    o.fast = fast;
    case_ctx ctx = {op, &s};
    ck_assert_msg(gradcheck(case_fn, &ctx, s.inputs, s.n_inputs, &o, r) == 0, "%s: %s", name,
                  tapegrad_error());
    for (int i = 0; i < s.n_inputs; i++)
        ck_assert_msg(!r->input[i].vacuous, "%s: input %d is vacuous: %s", name, i, r->message);
    sample_free(&s);
    return 0;
}

static tensor *leaf(int ndim, const int64_t *shape, const double *v) {
    return tensor_from_doubles(DTYPE_F64, ndim, shape, v);
}

/* --------------------------------------------------------- the registry */
START_TEST(test_registry_every_op_has_sample_and_build) {
    ck_assert_int_gt(op_count(), 0);
    for (int i = 0; i < op_count(); i++) {
        const op_def *op = op_at(i);
        /* a family table indexed by its enum leaves a hole (a zeroed entry)
         * where an op's entry is missing */
        ck_assert_msg(op->name != NULL && op->arity != 0, "registry entry %d (after %s) is empty", i,
                      i > 0 ? op_at(i - 1)->name : "none");
        ck_assert_msg(op->sample != NULL, "op %s has no sample generator", op->name);
        ck_assert_msg(op->build != NULL, "op %s has no build function", op->name);
        ck_assert_msg(op->forward != NULL && op->vjp != NULL, "op %s lacks forward or vjp", op->name);
    }
}
END_TEST

START_TEST(test_registry_every_op_has_formula) {
    for (int i = 0; i < op_count(); i++) {
        const op_def *op = op_at(i);
        ck_assert_msg(op->signature && *op->signature, "op %s has no signature", op->name);
        ck_assert_msg(op->formula_forward && *op->formula_forward, "op %s has no forward formula",
                      op->name);
        ck_assert_msg(op->formula_gradient && *op->formula_gradient,
                      "op %s has no gradient formula", op->name);
        ck_assert_msg(op->notes != NULL, "op %s: notes is NULL (use \"\")", op->name);
    }
}
END_TEST

/* Every case of every op, full mode: passes and is not vacuous. An op with
 * no case at all fails, so coverage cannot drop silently. */
START_TEST(test_registry_every_case_passes_full) {
    int cases = 0;
    for (int i = 0; i < op_count(); i++) {
        const op_def *op = op_at(i);
        if (!op->sample || !op->build) continue; /* failed above */
        int k = 0;
        for (;; k++) {
            gradcheck_report r;
            char name[256];
            if (check_case(op, k, 1, false, &r, name, sizeof name)) break;
            ck_assert_msg(r.passed, "%s: %s", name, r.message);
            gradcheck_report_free(&r);
            cases++;
        }
        ck_assert_msg(k > 0, "op %s yields no sample case", op->name);
    }
    ck_assert_int_gt(cases, 0);
}
END_TEST

START_TEST(test_registry_every_case_passes_fast) {
    for (int i = 0; i < op_count(); i++) {
        const op_def *op = op_at(i);
        if (!op->sample || !op->build) continue;
        for (int k = 0;; k++) {
            gradcheck_report r;
            char name[256];
            if (check_case(op, k, 7, true, &r, name, sizeof name)) break;
            ck_assert_msg(r.passed, "%s (fast): %s", name, r.message);
            gradcheck_report_free(&r);
        }
    }
}
END_TEST

/* No flaky false alarms: 100 seeds (sample values and upstream gradient both
 * change with the seed), every case, for cheap ops and for those with kinks,
 * ties and random masks, where flaky checks come from. */
START_TEST(test_correct_ops_pass_100_seeds) {
    static const char *names[] = {"add",   "mul",        "div",       "matmul",    "sum",
                                  "mean",  "relu",       "abs",       "clamp",     "maximum",
                                  "max",   "max_pool2d", "softmax",   "dropout",   "dropout2d",
                                  "hinge_loss", "cross_entropy", "conv2d",
                                  "scaled_dot_product_attention"};
    for (size_t j = 0; j < sizeof names / sizeof names[0]; j++) {
        const op_def *op = op_find(names[j]);
        ck_assert_msg(op != NULL, "op %s is not registered", names[j]);
        for (uint64_t seed = 100; seed < 200; seed++) {
            for (int k = 0;; k++) {
                gradcheck_report r;
                char name[256];
                if (check_case(op, k, seed, false, &r, name, sizeof name)) break;
                ck_assert_msg(r.passed, "%s: %s", name, r.message);
                gradcheck_report_free(&r);
            }
        }
    }
}
END_TEST

/* ------------------------------------------------------------- options */
/* f(x) = sum(x * x * x) at x = 1: the central difference errs by eps^2 f'''/6
 * = eps^2 per element (f''' = 6). eps 0.1: error 0.01 against a tolerance of
 * 1e-5 + 1e-3 * 3 = 0.003, so it fails; with rtol 0.1 (tolerance 0.3) it
 * passes; with the default eps 1e-6 the error is 1e-12. */
static tensor *cube_sum(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    return tensor_sum_all(tensor_mul(tensor_mul(in[0], in[0]), in[0]));
}

START_TEST(test_options_eps_atol_rtol_respected) {
    tensor *x = leaf(SHAPE(3), (double[]){1, 1, 1});
    gradcheck_report r;
    gradcheck_options o = gradcheck_defaults();
    ck_assert_int_eq(gradcheck(cube_sum, NULL, &x, 1, &o, &r), 0);
    ck_assert(r.passed);
    ck_assert_double_le(r.max_abs_err, 1e-8);
    o.eps = 0.1;
    gradcheck_report_free(&r);
    ck_assert_int_eq(gradcheck(cube_sum, NULL, &x, 1, &o, &r), 0);
    ck_assert(!r.passed);
    ck_assert_close(r.input[0].max_abs_err, 0.01, 1e-9);
    ck_assert_close(r.input[0].worst_analytic, 3.0, 1e-12);
    ck_assert_close(r.input[0].worst_numeric, 3.01, 1e-9);
    o.rtol = 0.1;
    gradcheck_report_free(&r);
    ck_assert_int_eq(gradcheck(cube_sum, NULL, &x, 1, &o, &r), 0);
    ck_assert(r.passed);
    o.rtol = 0;
    o.atol = 0.02;
    gradcheck_report_free(&r);
    ck_assert_int_eq(gradcheck(cube_sum, NULL, &x, 1, &o, &r), 0);
    ck_assert(r.passed);
    tensor_free(x);
    gradcheck_report_free(&r);
}
END_TEST

/* f(x) = sum(exp(x)): central differences err by eps^2 e^x / 6, the
 * five-point stencil by eps^4 e^x / 30. At eps 1e-3 and x up to 1.4 that is
 * 6.8e-7 against 1.4e-13 (plus rounding, 1e-16 * L / eps ~ 1e-12): the
 * stencil measures an error at least 100 times smaller, for 4 evaluations
 * per element instead of 2. */
static tensor *exp_sum(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    return tensor_sum_all(tensor_exp(in[0]));
}

START_TEST(test_five_point_stencil_measures_a_smaller_error) {
    tensor *x = leaf(SHAPE(4), (double[]){-0.7, 0.2, 1.4, 0.9});
    gradcheck_options o = gradcheck_defaults();
    o.eps = 1e-3;
    gradcheck_report central, five;
    ck_assert_int_eq(gradcheck(exp_sum, NULL, &x, 1, &o, &central), 0);
    o.stencil = GRADCHECK_FIVE_POINT;
    ck_assert_int_eq(gradcheck(exp_sum, NULL, &x, 1, &o, &five), 0);
    ck_assert(central.passed && five.passed);
    ck_assert_close(central.max_abs_err, 1e-6 * exp(1.4) / 6, 1e-8);
    ck_assert_double_lt(five.max_abs_err, central.max_abs_err / 100);
    ck_assert_double_lt(five.max_abs_err, 1e-10);
    ck_assert_int_eq(central.evaluations, 2 * 4 + 1);
    ck_assert_int_eq(five.evaluations, 4 * 4 + 1);
    /* fast mode extrapolates its probes the same way */
    o.fast = true;
    gradcheck_report fast;
    ck_assert_int_eq(gradcheck(exp_sum, NULL, &x, 1, &o, &fast), 0);
    ck_assert_msg(fast.passed, "%s", fast.message);
    ck_assert_double_lt(fast.max_abs_err, 1e-10);
    gradcheck_report_free(&central);
    gradcheck_report_free(&five);
    gradcheck_report_free(&fast);
    tensor_free(x);
}
END_TEST

START_TEST(test_defaults_match_documentation) {
    gradcheck_options o = gradcheck_defaults();
    ck_assert_double_eq(o.eps, 1e-6);
    ck_assert_double_eq(o.atol, 1e-5);
    ck_assert_double_eq(o.rtol, 1e-3);
    ck_assert_int_eq(o.probes, 3);
    ck_assert_uint_eq(o.check_mask, 0);
    ck_assert(!o.fast);
    ck_assert_int_eq(o.replay, GRADCHECK_REPLAY_AUTO);
    ck_assert_int_eq(o.stencil, GRADCHECK_CENTRAL);
}
END_TEST

static tensor *mul_sum(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    return tensor_sum_all(tensor_mul(in[0], in[1]));
}

START_TEST(test_check_mask_checks_only_selected_inputs) {
    tensor *in[2] = {leaf(SHAPE(2), (double[]){1.5, -0.5}), leaf(SHAPE(2), (double[]){2, 3})};
    gradcheck_options o = gradcheck_defaults();
    o.check_mask = 2;
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(mul_sum, NULL, in, 2, &o, &r), 0);
    ck_assert(r.passed);
    ck_assert(!r.input[0].checked);
    ck_assert(r.input[1].checked);
    /* d/db sum(a * b) = a: the worst element holds a's value */
    ck_assert_close(fabs(r.input[1].worst_analytic), r.input[1].worst_index == 0 ? 1.5 : 0.5, 1e-12);
    ck_assert_int_eq(r.evaluations, 2 * 2 + 1); /* two elements, two sides, one restore */
    tensor_free(in[0]);
    tensor_free(in[1]);
    gradcheck_report_free(&r);
}
END_TEST

/* The caller's inputs are copied: float32 inputs are checked in float64 and
 * the caller's tensors come back unchanged. */
START_TEST(test_float32_inputs_checked_in_float64_and_untouched) {
    const double va[3] = {0.25, -1.5, 2}, vb[3] = {1, 0.5, -3};
    tensor *in[2] = {tensor_from_doubles(DTYPE_F32, SHAPE(3), va),
                     tensor_from_doubles(DTYPE_F32, SHAPE(3), vb)};
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(mul_sum, NULL, in, 2, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    ck_assert_double_le(r.max_abs_err, 1e-8); /* float32 differences would err by ~1e-2 */
    ck_assert_tensor(in[0], va, 0);
    ck_assert_tensor(in[1], vb, 0);
    ck_assert_ptr_null(in[0]->grad);
    tensor_free(in[0]);
    tensor_free(in[1]);
    gradcheck_report_free(&r);
}
END_TEST

/* int64 inputs reach fn as the caller's own tensors and are never checked. */
static tensor *labels_seen;
static tensor *index_passthrough(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    labels_seen = in[1];
    return tensor_sum_all(tensor_mul(in[0], in[0]));
}

START_TEST(test_int64_inputs_passed_through) {
    tensor *in[2] = {leaf(SHAPE(2), (double[]){1, -2}), tensor_zeros(DTYPE_I64, SHAPE(2))};
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(index_passthrough, NULL, in, 2, NULL, &r), 0);
    ck_assert(r.passed);
    ck_assert_ptr_eq(labels_seen, in[1]);
    ck_assert(!r.input[1].checked);
    tensor_free(in[0]);
    tensor_free(in[1]);
    gradcheck_report_free(&r);
}
END_TEST

START_TEST(test_nothing_to_check_is_not_a_pass) {
    tensor *in[2] = {leaf(SHAPE(2), (double[]){1, -2}), tensor_zeros(DTYPE_I64, SHAPE(2))};
    gradcheck_options o = gradcheck_defaults();
    o.check_mask = 2; /* only the int64 input */
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(index_passthrough, NULL, in, 2, &o, &r), 0);
    ck_assert(!r.passed);
    ck_assert_ptr_nonnull(strstr(r.message, "nothing to check"));
    tensor_free(in[0]);
    tensor_free(in[1]);
    gradcheck_report_free(&r);
}
END_TEST

/* A non-scalar output: u is random, seeded, and printed in the message. */
static tensor *mul_only(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    return tensor_mul(in[0], in[1]);
}

START_TEST(test_nonscalar_output_uses_seeded_upstream) {
    tensor *in[2] = {leaf(SHAPE(2, 2), (double[]){1, 2, 3, 4}), leaf(SHAPE(2), (double[]){-1, 0.5})};
    gradcheck_options o = gradcheck_defaults();
    o.seed = 777;
    gradcheck_report r1, r2;
    ck_assert_int_eq(gradcheck(mul_only, NULL, in, 2, &o, &r1), 0);
    ck_assert_int_eq(gradcheck(mul_only, NULL, in, 2, &o, &r2), 0);
    ck_assert(r1.passed);
    ck_assert_ptr_nonnull(strstr(r1.message, "seed 777"));
    /* same seed, same u: the same analytic value at the same worst element */
    ck_assert_int_eq(r1.input[0].worst_index, r2.input[0].worst_index);
    ck_assert_double_eq(r1.input[0].worst_analytic, r2.input[0].worst_analytic);
    /* u is not all ones: input 1's gradient is not the column sums of a (4, 6) */
    ck_assert(fabs(fabs(r1.input[1].worst_analytic) - 4) > 1e-9 &&
              fabs(fabs(r1.input[1].worst_analytic) - 6) > 1e-9);
    tensor_free(in[0]);
    tensor_free(in[1]);
    gradcheck_report_free(&r2);
    gradcheck_report_free(&r1);
}
END_TEST

/* ------------------------------------------------------------- vacuous */
static tensor *times_zero(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    return tensor_sum_all(tensor_mul_scalar(in[0], 0.0));
}

START_TEST(test_zero_gradient_everywhere_is_vacuous) {
    tensor *x = leaf(SHAPE(3), (double[]){1, 2, 3});
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(times_zero, NULL, &x, 1, NULL, &r), 0);
    ck_assert(r.input[0].vacuous);
    ck_assert(!r.input[0].passed);
    ck_assert(!r.passed);
    ck_assert_ptr_nonnull(strstr(r.message, "VACUOUS"));
    tensor_free(x);
    gradcheck_report_free(&r);
}
END_TEST

static tensor *ignores_second(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    (void)tensor_mul(in[0], in[1]); /* recorded, but the output does not use it */
    return tensor_sum_all(tensor_mul(in[0], in[0]));
}

START_TEST(test_unused_input_is_vacuous) {
    tensor *in[2] = {leaf(SHAPE(2), (double[]){1, 2}), leaf(SHAPE(2), (double[]){3, 4})};
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(ignores_second, NULL, in, 2, NULL, &r), 0);
    ck_assert(r.input[0].passed);
    ck_assert(r.input[1].vacuous);
    ck_assert(!r.passed);
    tensor_free(in[0]);
    tensor_free(in[1]);
    gradcheck_report_free(&r);
}
END_TEST

/* ------------------------------------------- local ops with known faults */
/* relu without a margin: y = max(x, 0), dx = g [x > 0]. */
static void relu0_forward(tape_node *n) {
    const double *x = n->in[0]->data;
    double *y = n->out->data;
    for (int64_t i = 0; i < n->out->size; i++) y[i] = x[i] > 0 ? x[i] : 0;
}
static void relu0_vjp(tape_node *n, tensor *const *gin) {
    const double *x = n->in[0]->data, *g = n->out->grad->data;
    double *d = gin[0]->data;
    for (int64_t i = 0; i < n->out->size; i++) d[i] += x[i] > 0 ? g[i] : 0;
}
static const op_def relu0_op = {"relu0", 1, 0, relu0_forward, relu0_vjp, NULL, NULL, "", "", "", "", NULL};

/* identity whose vjp adds a little more on every call: not deterministic */
static int vjp_calls;
static void ident_forward(tape_node *n) {
    memcpy(n->out->data, n->in[0]->data, (size_t)n->out->size * sizeof(double));
}
static void drift_vjp(tape_node *n, tensor *const *gin) {
    const double *g = n->out->grad->data;
    double *d = gin[0]->data;
    vjp_calls++;
    for (int64_t i = 0; i < n->out->size; i++) d[i] += g[i] * (1 + 1e-15 * vjp_calls);
}
static const op_def drift_op = {"drift", 1, 0, ident_forward, drift_vjp, NULL, NULL, "", "", "", "", NULL};

/* identity that counts its forward calls: shows what replay recomputes */
static int counted_forwards;
static void counted_forward(tape_node *n) {
    counted_forwards++;
    ident_forward(n);
}
static void ident_vjp(tape_node *n, tensor *const *gin) {
    const double *g = n->out->grad->data;
    double *d = gin[0]->data;
    for (int64_t i = 0; i < n->out->size; i++) d[i] += g[i];
}
static const op_def counted_op = {"counted", 1, 0, counted_forward, ident_vjp, NULL, NULL, "", "", "", "", NULL};

/* identity whose forward drifts a little on every call: not pure, so replay
 * cannot be trusted (an op that drew its dropout mask inside forward would
 * behave like this) */
static int impure_calls;
static void impure_forward(tape_node *n) {
    const double *x = n->in[0]->data;
    double *y = n->out->data;
    impure_calls++;
    for (int64_t i = 0; i < n->out->size; i++) y[i] = x[i] * (1 + 1e-12 * impure_calls);
}
static const op_def impure_op = {"impure", 1, 0, impure_forward, ident_vjp, NULL, NULL, "", "", "", "", NULL};

/* y = x + J [x > 0] with the vjp of y = x: a jump of height J (fp[0]) at 0 */
static void step_forward(tape_node *n) {
    const double *x = n->in[0]->data;
    double *y = n->out->data;
    for (int64_t i = 0; i < n->out->size; i++) y[i] = x[i] + (x[i] > 0 ? n->fp[0] : 0);
}
static const op_def step_op = {"step", 1, 0, step_forward, ident_vjp, NULL, NULL, "", "", "", "", NULL};

static tensor *apply_unary(const op_def *op, tensor *x) {
    tensor *in[1] = {x};
    tape_node *n = tg_node_begin(op, in, 1, x->dtype, x->ndim, x->shape);
    return n ? tg_node_finish(n) : NULL;
}

/* relu(x) * x, gradient 2x [x > 0] */
static tensor *relu0_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    return tensor_sum_all(tensor_mul(apply_unary(&relu0_op, in[0]), in[0]));
}

static tensor *relu0_sum(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    return tensor_sum_all(apply_unary(&relu0_op, in[0]));
}

/* sum(relu(x)) at x = [0, 1.5, -2]: element 0 sits on the kink; numeric
 * (eps - 0) / 2 eps = 0.5, analytic 0, one-sided slopes 0 and 1. */
START_TEST(test_kink_is_named_and_fails) {
    tensor *x = leaf(SHAPE(3), (double[]){0, 1.5, -2});
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(relu0_sum, NULL, &x, 1, NULL, &r), 0);
    ck_assert(!r.passed);
    ck_assert_int_eq(r.input[0].worst_index, 0);
    ck_assert_close(r.input[0].worst_numeric, 0.5, 1e-6);
    ck_assert_close(r.input[0].worst_analytic, 0.0, 0);
    ck_assert_msg(strstr(r.message, "one-sided slopes 0 left, 1 right") != NULL, "%s", r.message);
    /* only kink crossings failed: no vjp is suspected, so nothing is localised */
    ck_assert_msg(strstr(r.message, "every failing element sits on a kink") != NULL, "%s", r.message);
    ck_assert(!r.localized);
    tensor_free(x);
    gradcheck_report_free(&r);
}
END_TEST

/* sum(x + J [x > 0]) at x = [0, 1.5, -2]: element 0 sits on a jump. Its
 * one-sided slopes are 1 and 1 + J / eps: with J = 1 the right slope is 1e6 + 1,
 * absurd for a kink; with J = 1e-3 it is 1001, plausible, but it grows to
 * 4001 at eps / 4, as a jump's does and a kink's cannot. Either way the
 * verdict is a jump, never a kink, and localisation is not skipped. */
static double step_height;
static tensor *step_sum(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    tensor *y = apply_unary(&step_op, in[0]);
    tape_node *nd = y ? tg_tape_node_at(y->node) : NULL;
    if (nd) { /* the parameter is set before any replay; the forward above used 0 */
        nd->fp[0] = step_height;
        nd->op->forward(nd);
    }
    return tensor_sum_all(y);
}

START_TEST(test_jump_is_not_called_a_kink) {
    static const double heights[] = {1.0, 1e-3};
    for (int h = 0; h < 2; h++) {
        step_height = heights[h];
        tensor *x = leaf(SHAPE(3), (double[]){0, 1.5, -2});
        gradcheck_report r;
        ck_assert_int_eq(gradcheck(step_sum, NULL, &x, 1, NULL, &r), 0);
        ck_assert(!r.passed);
        ck_assert_int_eq(r.input[0].worst_index, 0);
        ck_assert_close(r.input[0].worst_numeric, 1 + heights[h] / 2e-6, 1e-3);
        ck_assert_msg(strstr(r.message, "the function jumps") != NULL, "%s", r.message);
        ck_assert_msg(strstr(r.message, "sits on a kink") == NULL, "%s", r.message);
        /* localisation ran; the jump of 1 is absurd at the node's own sample
         * too, so the step's vjp is named (the small one passes there for a
         * kink of the node, and the report says the cause is off the tape) */
        if (h == 0) {
            ck_assert_msg(r.localized && r.bad_node == 0, "%s", r.message);
            ck_assert_str_eq(r.bad_node_desc, "step [3]");
        } else {
            ck_assert_msg(strstr(r.message, "outside the tape") != NULL, "%s", r.message);
        }
        gradcheck_report_free(&r);
        tensor_free(x);
    }
}
END_TEST

/* A report is never cut: 24 inputs that all fail (a detached output; the
 * gradient 2x is largest at element 0) give a message that names every one of them, ends with a whole sentence, and is
 * three times longer than the 511 characters the old fixed buffer held. */
static tensor *detached_many(tensor *const *in, int n, void *ctx) {
    (void)ctx;
    tape_no_grad_begin();
    tensor *acc = tensor_square(in[0]);
    for (int i = 1; i < n; i++) acc = tensor_add(acc, tensor_square(in[i]));
    tape_no_grad_end();
    return tensor_sum_all(acc);
}

START_TEST(test_report_message_is_whole) {
    enum { N = 24 };
    tensor *in[N];
    for (int i = 0; i < N; i++) in[i] = leaf(SHAPE(2), (double[]){1 + i, -0.5 - i});
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(detached_many, NULL, in, N, NULL, &r), 0);
    ck_assert(!r.passed);
    size_t len = strlen(r.message);
    ck_assert_uint_gt(len, 1500);
    for (int i = 0; i < N; i++) {
        char want[64];
        snprintf(want, sizeof want, " input %d: 2 elements failing, worst element 0", i);
        ck_assert_msg(strstr(r.message, want) != NULL, "missing \"%s\" in %s", want, r.message);
    }
    ck_assert_msg(r.message[len - 1] == ';' || r.message[len - 1] == '.', "%s", r.message);
    gradcheck_report_free(&r);
    ck_assert_ptr_null(r.message);
    gradcheck_report_free(&r); /* twice is fine */
    gradcheck_report_free(NULL);
    for (int i = 0; i < N; i++) tensor_free(in[i]);
}
END_TEST

/* Away from the kink the same op passes: relu(x) * x has gradient 2x [x > 0]. */
START_TEST(test_kink_op_passes_with_margin) {
    tensor *x = leaf(SHAPE(3), (double[]){0.5, 1.5, -2});
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(relu0_fn, NULL, &x, 1, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    tensor_free(x);
    gradcheck_report_free(&r);
}
END_TEST

static tensor *drift_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    return tensor_sum_all(tensor_mul(apply_unary(&drift_op, in[0]), in[0]));
}

START_TEST(test_nondeterministic_backward_detected) {
    tensor *x = leaf(SHAPE(3), (double[]){0.5, 1.5, -2});
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(drift_fn, NULL, &x, 1, NULL, &r), 0);
    ck_assert(!r.passed);
    ck_assert(r.input[0].passed); /* the values agree within tolerance... */
    ck_assert_msg(strstr(r.message, "not deterministic") != NULL, "%s", r.message); /* ...the bits do not */
    tensor_free(x);
    gradcheck_report_free(&r);
}
END_TEST

/* y = counted(a) * b: perturbing b must not re-run counted's forward. */
static tensor *counted_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    return tensor_sum_all(tensor_mul(apply_unary(&counted_op, in[0]), in[1]));
}

START_TEST(test_replay_skips_nodes_upstream_of_the_perturbed_leaf) {
    tensor *in[2] = {leaf(SHAPE(4), (double[]){1, 2, 3, 4}), leaf(SHAPE(4), (double[]){-1, 0.5, 2, 1})};
    gradcheck_options o = gradcheck_defaults();
    gradcheck_report r;
    o.replay = GRADCHECK_REPLAY_ALWAYS; /* replay alone, unverified */
    counted_forwards = 0;
    o.check_mask = 2;
    ck_assert_int_eq(gradcheck(counted_fn, NULL, in, 2, &o, &r), 0);
    ck_assert(r.passed);
    ck_assert_int_eq(counted_forwards, 1); /* the recording only */
    ck_assert_int_eq(r.fn_calls, 1);
    counted_forwards = 0;
    o.check_mask = 1;
    gradcheck_report_free(&r);
    ck_assert_int_eq(gradcheck(counted_fn, NULL, in, 2, &o, &r), 0);
    ck_assert(r.passed);
    ck_assert_int_eq(counted_forwards, 1 + 2 * 4 + 1); /* record, 2 per element, restore */
    ck_assert_int_eq(r.evaluations, 2 * 4 + 1);
    /* AUTO (the default) verifies replay by calling fn again: once at the
     * recorded point and once per probe (3); those calls record the whole
     * graph, the replays of b's elements still skip counted */
    o.replay = GRADCHECK_REPLAY_AUTO;
    o.check_mask = 2;
    counted_forwards = 0;
    gradcheck_report_free(&r);
    ck_assert_int_eq(gradcheck(counted_fn, NULL, in, 2, &o, &r), 0);
    ck_assert(r.passed && !r.input[1].rerun && !r.input[1].off_tape);
    ck_assert_int_eq(counted_forwards, 1 + 1 + 3);
    ck_assert_int_eq(r.fn_calls, 1 + 1 + 3);
    ck_assert_int_eq(r.evaluations, 2 * 4 + 1);
    tensor_free(in[0]);
    tensor_free(in[1]);
    gradcheck_report_free(&r);
}
END_TEST

static tensor *impure_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    return tensor_sum_all(tensor_mul(apply_unary(&impure_op, in[0]), in[0]));
}

/* The values agree within tolerance, but the replayed output is not the
 * recorded one: the check fails and names the impure node. */
START_TEST(test_impure_forward_detected) {
    tensor *x = leaf(SHAPE(3), (double[]){0.5, 1.5, -2});
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(impure_fn, NULL, &x, 1, NULL, &r), 0);
    ck_assert(!r.passed);
    ck_assert(r.input[0].passed);
    ck_assert_msg(strstr(r.message, "replay is not faithful") != NULL, "%s", r.message);
    ck_assert_msg(strstr(r.message, "node 0 (impure [3]) gives a new output") != NULL, "%s", r.message);
    tensor_free(x);
    gradcheck_report_free(&r);
}
END_TEST

/* ----------------------------------------------- outputs off the tape */
static tensor *returns_input(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    return in[0];
}

/* out = x: no node at all, so the checker re-runs fn; J = I, grad = u. */
START_TEST(test_output_that_is_a_leaf_is_checked_by_rerun) {
    tensor *x = leaf(SHAPE(3), (double[]){1, 2, 3});
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(returns_input, NULL, &x, 1, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    ck_assert_double_ge(fabs(r.input[0].worst_analytic), 0.5); /* u in +-[0.5, 1.5) */
    tensor_free(x);
    gradcheck_report_free(&r);
}
END_TEST

static tensor *detached(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    tape_no_grad_begin();
    tensor *y = tensor_sum_all(tensor_mul(in[0], in[0]));
    tape_no_grad_end();
    return y;
}

/* A no-grad scope hides the dependence from backward: analytic 0, numeric 2x. */
START_TEST(test_detached_output_fails) {
    tensor *x = leaf(SHAPE(2), (double[]){1, -3});
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(detached, NULL, &x, 1, NULL, &r), 0);
    ck_assert(!r.passed);
    ck_assert_int_eq(r.input[0].worst_index, 1);
    ck_assert_close(r.input[0].worst_numeric, -6, 1e-6);
    ck_assert_close(r.input[0].worst_analytic, 0, 0);
    tensor_free(x);
    gradcheck_report_free(&r);
}
END_TEST

/* ----------------------------------------------------------- fast mode */
START_TEST(test_fast_mode_uses_fewer_evaluations) {
    const op_def *op = op_find("matmul");
    gradcheck_report full, fast;
    char name[256];
    ck_assert_int_eq(check_case(op, 2, 3, false, &full, name, sizeof name), 0);
    ck_assert_int_eq(check_case(op, 2, 3, true, &fast, name, sizeof name), 0);
    ck_assert(full.passed && fast.passed);
    ck_assert_int_eq(fast.evaluations, 2 * 3 * 3); /* 2 inputs x 3 probes x (2 + restore) */
    ck_assert_int_gt(full.evaluations, 10 * fast.evaluations);
    ck_assert_int_eq(fast.input[0].worst_index, -1); /* probes have no element */
    gradcheck_report_free(&full);
    gradcheck_report_free(&fast);
}
END_TEST

START_TEST(test_fast_mode_vacuous) {
    tensor *x = leaf(SHAPE(3), (double[]){1, 2, 3});
    gradcheck_options o = gradcheck_defaults();
    o.fast = true;
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(times_zero, NULL, &x, 1, &o, &r), 0);
    ck_assert(r.input[0].vacuous);
    ck_assert(!r.passed);
    tensor_free(x);
    gradcheck_report_free(&r);
}
END_TEST

/* ----------------------------------------------------------- the report */
START_TEST(test_report_print_names_verdicts) {
    tensor *in[2] = {leaf(SHAPE(2), (double[]){1, 2}), leaf(SHAPE(2), (double[]){3, 4})};
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(ignores_second, NULL, in, 2, NULL, &r), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    gradcheck_report_print(f, &r);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(buf, "gradcheck FAILED"));
    ck_assert_ptr_nonnull(strstr(buf, "input 0: ok"));
    ck_assert_ptr_nonnull(strstr(buf, "input 1: VACUOUS"));
    free(buf);
    gradcheck_report_print(NULL, &r); /* ignored, no crash */
    gradcheck_report_print(stdout, NULL);
    tensor_free(in[0]);
    tensor_free(in[1]);
    gradcheck_report_free(&r);
}
END_TEST

/* --------------------------------------------------------- error paths */
static tensor *returns_null(tensor *const *in, int n, void *ctx) {
    (void)in;
    (void)n;
    (void)ctx;
    return NULL;
}
static tensor *bad_matmul(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    return tensor_matmul(in[0], in[0]);
}
static tensor *int_output(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    return in[1];
}

START_TEST(test_errors_bad_arguments) {
    tensor *x = leaf(SHAPE(2), (double[]){1, 2});
    gradcheck_report r;
    gradcheck_options o = gradcheck_defaults();
    tapegrad_error_clear();
    ck_assert_int_eq(gradcheck(NULL, NULL, &x, 1, NULL, &r), -1);
    ck_assert_str_eq(tapegrad_error(), "gradcheck: fn is NULL");
    tapegrad_error_clear();
    ck_assert_int_eq(gradcheck(mul_sum, NULL, &x, 1, NULL, NULL), -1);
    ck_assert_str_eq(tapegrad_error(), "gradcheck: report is NULL");
    tapegrad_error_clear();
    ck_assert_int_eq(gradcheck(mul_sum, NULL, NULL, 1, NULL, &r), -1);
    ck_assert_str_eq(tapegrad_error(), "gradcheck: inputs is NULL");
    tapegrad_error_clear();
    ck_assert_int_eq(gradcheck(mul_sum, NULL, &x, GRADCHECK_MAX_INPUTS + 1, NULL, &r), -1);
    ck_assert_str_eq(tapegrad_error(), "gradcheck: 33 inputs (at most 32)");
    tapegrad_error_clear();
    o.eps = 0;
    ck_assert_int_eq(gradcheck(cube_sum, NULL, &x, 1, &o, &r), -1);
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "gradcheck: bad options: eps 0"));
    tapegrad_error_clear();
    o = gradcheck_defaults();
    o.fast = true;
    o.probes = 0;
    ck_assert_int_eq(gradcheck(cube_sum, NULL, &x, 1, &o, &r), -1);
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "probes 0"));
    tapegrad_error_clear();
    o = gradcheck_defaults();
    o.replay = (gradcheck_replay)3;
    ck_assert_int_eq(gradcheck(cube_sum, NULL, &x, 1, &o, &r), -1);
    ck_assert_str_eq(tapegrad_error(), "gradcheck: bad options: replay 3 (AUTO, ALWAYS or NEVER),"
                                       " stencil 0 (CENTRAL or FIVE_POINT)");
    ck_assert_ptr_null(r.message); /* nothing to free after an error */
    tapegrad_error_clear();
    /* in place (gradcheck_model's entry) the leaves must be float64 already */
    tensor *x32 = tensor_to_dtype(x, DTYPE_F32);
    ck_assert_int_eq(tg_gradcheck_in_place(cube_sum, NULL, &x32, 1, NULL, &r), -1);
    ck_assert_str_eq(tapegrad_error(), "gradcheck: input 0 is a float32 tensor; a check in place"
                                       " needs user-owned float64 leaves");
    tapegrad_error_clear();
    tensor_free(x32);
    tensor_free(x);
}
END_TEST

/* A fn that resets the tape itself destroys the recording the checker replays
 * and compares with; found on the first call again, an error, nothing touched. */
static tensor *resets_tape(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    tape_reset();
    return tensor_sum_all(tensor_mul(in[0], in[0]));
}

START_TEST(test_fn_that_resets_the_tape_is_refused) {
    tensor *x = leaf(SHAPE(3), (double[]){1, -2, 0.5});
    gradcheck_report r;
    static const gradcheck_replay modes[] = {GRADCHECK_REPLAY_AUTO, GRADCHECK_REPLAY_NEVER};
    for (int m = 0; m < 2; m++) {
        gradcheck_options o = gradcheck_defaults();
        o.replay = modes[m];
        tapegrad_error_clear();
        ck_assert_int_eq(gradcheck(resets_tape, NULL, &x, 1, &o, &r), -1);
        ck_assert_str_eq(tapegrad_error(), "gradcheck: fn reset the tape when called again; fn may"
                                           " be called several times and must not call"
                                           " tape_reset() or tape_release() (the checker resets the"
                                           " tape before the first call)");
        ck_assert_ptr_null(r.message);
    }
    tapegrad_error_clear();
    /* trusting replay, fn is called once: it passes */
    gradcheck_options o = gradcheck_defaults();
    o.replay = GRADCHECK_REPLAY_ALWAYS;
    ck_assert_int_eq(gradcheck(resets_tape, NULL, &x, 1, &o, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    gradcheck_report_free(&r);
    tensor_free(x);
}
END_TEST

START_TEST(test_errors_from_fn) {
    tensor *in[2] = {leaf(SHAPE(2, 3), (double[]){1, 2, 3, 4, 5, 6}), tensor_zeros(DTYPE_I64, SHAPE(2))};
    gradcheck_report r;
    tapegrad_error_clear();
    ck_assert_int_eq(gradcheck(returns_null, NULL, in, 2, NULL, &r), -1);
    ck_assert_str_eq(tapegrad_error(), "gradcheck: fn returned NULL");
    tapegrad_error_clear();
    /* the op's own message is kept: it is the cause */
    ck_assert_int_eq(gradcheck(bad_matmul, NULL, in, 2, NULL, &r), -1);
    ck_assert_str_eq(tapegrad_error(), "matmul: inner dimensions differ: [2,3] @ [2,3]");
    tapegrad_error_clear();
    ck_assert_int_eq(gradcheck(int_output, NULL, in, 2, NULL, &r), -1);
    ck_assert_str_eq(tapegrad_error(),
                     "gradcheck: fn returned a int64 output from float64 inputs; the output must be float64");
    tapegrad_error_clear();
    tensor_free(in[0]);
    tensor_free(in[1]);
}
END_TEST


/* ------------------------------------------------ the whole LeNet-5 */
#ifdef NN_LENET5_NPARAMS
static tensor *lenet5_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    return nn_lenet5_loss_with(in + 1, in[0], in[1 + NN_LENET5_NPARAMS]);
}

/* Input (batch 2) and all ten parameters, 63,274 numbers, full mode: passes,
 * nothing vacuous, two replays per number plus one restore per input. */
START_TEST(test_whole_lenet5_full_check_passes) {
    tapegrad_set_threads(1);
    nn_lenet5 *net = nn_lenet5_new(DTYPE_F32, 11);
    ck_assert_ptr_nonnull(net);
    rng g;
    rng_seed(&g, 11, 5);
    tensor *in[NN_LENET5_NPARAMS + 2] = {
        tensor_rand(&g, DTYPE_F32, SHAPE(2, 1, 28, 28), 0.0, 1.0), net->c1.weight, net->c1.bias,
        net->c2.weight, net->c2.bias, net->f1.weight, net->f1.bias, net->f2.weight,
        net->f2.bias, net->f3.weight, net->f3.bias, tg_sample_labels(&g, SHAPE(2), 10)};
    int64_t numbers = 0;
    for (int i = 0; i <= NN_LENET5_NPARAMS; i++) numbers += in[i]->size;
    ck_assert_int_eq(numbers, 63274);
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(lenet5_fn, NULL, in, NN_LENET5_NPARAMS + 2, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    for (int i = 0; i <= NN_LENET5_NPARAMS; i++) ck_assert(r.input[i].checked && !r.input[i].vacuous);
    ck_assert_int_eq(r.evaluations, 2 * 63274 + NN_LENET5_NPARAMS + 1);
    printf("whole LeNet-5 full check: %.3f s\n", r.seconds);
    tensor_free(in[0]);
    tensor_free(in[NN_LENET5_NPARAMS + 1]);
    nn_lenet5_free(net);
    gradcheck_report_free(&r);
}
END_TEST
#endif

Suite *gradcheck_suite(void) {
    Suite *s = suite_create("gradcheck");
    TCase *reg = tcase_create("registry");
    tcase_set_timeout(reg, 60);
    tcase_add_test(reg, test_registry_every_op_has_sample_and_build);
    tcase_add_test(reg, test_registry_every_op_has_formula);
    tcase_add_test(reg, test_registry_every_case_passes_full);
    tcase_add_test(reg, test_registry_every_case_passes_fast);
    tcase_add_test(reg, test_correct_ops_pass_100_seeds);
    suite_add_tcase(s, reg);
    TCase *tc = tcase_create("checker");
    tcase_add_test(tc, test_options_eps_atol_rtol_respected);
    tcase_add_test(tc, test_defaults_match_documentation);
    tcase_add_test(tc, test_five_point_stencil_measures_a_smaller_error);
    tcase_add_test(tc, test_check_mask_checks_only_selected_inputs);
    tcase_add_test(tc, test_float32_inputs_checked_in_float64_and_untouched);
    tcase_add_test(tc, test_int64_inputs_passed_through);
    tcase_add_test(tc, test_nothing_to_check_is_not_a_pass);
    tcase_add_test(tc, test_nonscalar_output_uses_seeded_upstream);
    tcase_add_test(tc, test_zero_gradient_everywhere_is_vacuous);
    tcase_add_test(tc, test_unused_input_is_vacuous);
    tcase_add_test(tc, test_kink_is_named_and_fails);
    tcase_add_test(tc, test_kink_op_passes_with_margin);
    tcase_add_test(tc, test_jump_is_not_called_a_kink);
    tcase_add_test(tc, test_report_message_is_whole);
    tcase_add_test(tc, test_nondeterministic_backward_detected);
    tcase_add_test(tc, test_replay_skips_nodes_upstream_of_the_perturbed_leaf);
    tcase_add_test(tc, test_impure_forward_detected);
    tcase_add_test(tc, test_output_that_is_a_leaf_is_checked_by_rerun);
    tcase_add_test(tc, test_detached_output_fails);
    tcase_add_test(tc, test_fast_mode_uses_fewer_evaluations);
    tcase_add_test(tc, test_fast_mode_vacuous);
    tcase_add_test(tc, test_report_print_names_verdicts);
    tcase_add_test(tc, test_errors_bad_arguments);
    tcase_add_test(tc, test_errors_from_fn);
    tcase_add_test(tc, test_fn_that_resets_the_tape_is_refused);
    suite_add_tcase(s, tc);
#ifdef NN_LENET5_NPARAMS
    TCase *net = tcase_create("lenet5");
    tcase_set_timeout(net, 60);
    tcase_add_test(net, test_whole_lenet5_full_check_passes);
    suite_add_tcase(s, net);
#endif
    return s;
}

TEST_MAIN(gradcheck_suite)
