/* test_ops_ties.c - the tie and edge rules docs/ops.md promises, with exact
 * expected values, in float64 and in float32 (distinct kernels). The
 * registry's samples keep a margin from every tie, kink and clamp, so the
 * numerical checker never sees these points; here each rule is one case with
 * the expected output and gradients derived in its comment.
 *
 * Every case runs in both dtypes and must match to 2 units of the dtype's
 * rounding of the expected value (values like 1/3 and 1e12 are not exact in
 * float32). */
#include "ops_test.h"

#define MAXN 16

typedef struct {
    const char *what;
    int n_in;
    int ndim[3];
    int64_t shape[3][4];
    double x[3][MAXN];
    bool grad[3];                 /* inputs that require grad */
    tensor *(*f)(tensor **in);
    double g[MAXN];               /* upstream gradient (output's size) */
    int n_out;
    double y[MAXN];               /* expected output */
    double dx[3][MAXN];           /* expected gradients of the inputs with grad[i] */
} tie_case;

static bool close_in(dtype dt, double got, double want) {
    if (isnan(want)) return isnan(got);
    if (isinf(want)) return got == want;
    double u = dt == DTYPE_F32 ? 0x1p-24 : 0x1p-53;
    return fabs(got - want) <= 2 * u * fabs(want) + (dt == DTYPE_F32 ? 1e-30 : 1e-300);
}

static void run_case(const tie_case *c, dtype dt) {
    const char *dn = dt == DTYPE_F32 ? "float32" : "float64";
    tensor *in[3] = {NULL};
    for (int i = 0; i < c->n_in; i++) {
        in[i] = tensor_from_doubles(dt, c->ndim[i], c->shape[i], c->x[i]);
        if (c->grad[i]) tensor_set_requires_grad(in[i], true);
    }
    tensor *y = c->f(in);
    ck_assert_msg(y != NULL, "%s (%s): %s", c->what, dn, tapegrad_error());
    ck_assert_int_eq(y->size, c->n_out);
    for (int64_t e = 0; e < y->size; e++)
        ck_assert_msg(close_in(dt, tensor_get(y, e), c->y[e]), "%s (%s): y[%lld] = %.17g, expected %.17g",
                      c->what, dn, (long long)e, tensor_get(y, e), c->y[e]);
    tensor *g = tensor_from_doubles(dt, y->ndim, y->shape, c->g);
    ck_assert_int_eq(tensor_backward_with(y, g), 0);
    for (int i = 0; i < c->n_in; i++) {
        if (!c->grad[i]) continue;
        ck_assert_msg(in[i]->grad != NULL, "%s (%s): input %d has no gradient", c->what, dn, i);
        for (int64_t e = 0; e < in[i]->size; e++)
            ck_assert_msg(close_in(dt, tensor_get(in[i]->grad, e), c->dx[i][e]),
                          "%s (%s): d input %d [%lld] = %.17g, expected %.17g", c->what, dn, i,
                          (long long)e, tensor_get(in[i]->grad, e), c->dx[i][e]);
    }
    tape_reset();
    tensor_free(g);
    for (int i = 0; i < c->n_in; i++) tensor_free(in[i]);
}

static void run_both(const tie_case *c) {
    run_case(c, DTYPE_F64);
    run_case(c, DTYPE_F32);
}

/* ------------------------------------------------------ reductions: max, min */
static tensor *max_all(tensor **in) { return tensor_max(in[0], NULL, 0, false); }
static tensor *min_all(tensor **in) { return tensor_min(in[0], NULL, 0, false); }
static tensor *max_axis0(tensor **in) { return tensor_max(in[0], (int[]){0}, 1, false); }
static tensor *min_axis1_keep(tensor **in) { return tensor_min(in[0], (int[]){1}, 1, true); }

START_TEST(test_max_min_ties_split_evenly) {
    /* max([3, 1, 3, 2]) = 3, two maxima: g 2 splits 1 / 1 */
    run_both(&(tie_case){"max tie of two", 1, {1}, {{4}}, {{3, 1, 3, 2}}, {true}, max_all, {2}, 1,
                         {3}, {{1, 0, 1, 0}}});
    /* three equal maxima share g = 1: 1/3 each */
    run_both(&(tie_case){"max tie of three", 1, {1}, {{3}}, {{-2, -2, -2}}, {true}, max_all, {1}, 1,
                         {-2}, {{1.0 / 3, 1.0 / 3, 1.0 / 3}}});
    /* min over all of [[0.5, -1], [-1, 4]]: -1 twice, g 3 -> 1.5 each */
    run_both(&(tie_case){"min tie", 1, {2}, {{2, 2}}, {{0.5, -1, -1, 4}}, {true}, min_all, {3}, 1,
                         {-1}, {{0, 1.5, 1.5, 0}}});
    /* max over axis 0 of [[1, 5], [1, 2], [0, 5]] = [1, 5], g = [1, 2]:
     * column 0 ties rows 0, 1 (0.5 each), column 1 ties rows 0, 2 (1 each) */
    run_both(&(tie_case){"max axis 0 ties", 1, {2}, {{3, 2}}, {{1, 5, 1, 2, 0, 5}}, {true},
                         max_axis0, {1, 2}, 2, {1, 5}, {{0.5, 1, 0.5, 0, 0, 1}}});
    /* min over axis 1 keepdim of [[2, 2, 7], [4, 1, 1]] = [[2], [1]], g = [4, -2]:
     * row 0 ties columns 0, 1 (2 each), row 1 ties columns 1, 2 (-1 each) */
    run_both(&(tie_case){"min axis 1 keepdim ties", 1, {2}, {{2, 3}}, {{2, 2, 7, 4, 1, 1}}, {true},
                         min_axis1_keep, {4, -2}, 2, {2, 1}, {{2, 2, 0, 0, -1, -1}}});
}
END_TEST

/* NaN propagates and passes no gradient: max([1, NaN, 3]) = NaN, dx = 0. */
START_TEST(test_max_nan_propagates_without_gradient) {
    run_both(&(tie_case){"max with NaN", 1, {1}, {{3}}, {{1, NAN, 3}}, {true}, max_all, {1}, 1,
                         {NAN}, {{0, 0, 0}}});
}
END_TEST

/* ------------------------------------------------------ maximum, minimum */
static tensor *maximum2(tensor **in) { return tensor_maximum(in[0], in[1]); }
static tensor *minimum2(tensor **in) { return tensor_minimum(in[0], in[1]); }

START_TEST(test_maximum_minimum_ties_split_under_broadcasting) {
    /* a [2,2] = [[1, 2], [3, 0]], b [2] = [1, 0] broadcast over rows,
     * g = [[1, 2], [3, 4]]. maximum: (0,0) tie 1 = 1, (0,1) a, (1,0) a, (1,1)
     * tie 0 = 0. da = [[0.5, 2], [3, 2]]; db sums its column shares:
     * [0.5 + 0, 0 + 2] = [0.5, 2]. */
    run_both(&(tie_case){"maximum ties, b broadcast", 2, {2, 1}, {{2, 2}, {2}},
                         {{1, 2, 3, 0}, {1, 0}}, {true, true}, maximum2, {1, 2, 3, 4}, 4,
                         {1, 2, 3, 0}, {{0.5, 2, 3, 2}, {0.5, 2}}});
    /* minimum: (0,0) tie, (0,1) b = 0, (1,0) b = 1, (1,1) tie.
     * da = [[0.5, 0], [0, 2]], db = [0.5 + 3, 2 + 2] = [3.5, 4] */
    run_both(&(tie_case){"minimum ties, b broadcast", 2, {2, 1}, {{2, 2}, {2}},
                         {{1, 2, 3, 0}, {1, 0}}, {true, true}, minimum2, {1, 2, 3, 4}, 4,
                         {1, 0, 1, 0}, {{0.5, 0, 0, 2}, {3.5, 4}}});
}
END_TEST

/* ------------------------------------------------------------- max_pool2d */
static tensor *pool_k2_s1(tensor **in) {
    return tensor_max_pool2d(in[0], (pool2d_params){{2, 2}, {1, 1}, {0, 0}, false});
}
static tensor *pool_k2_s2_p1(tensor **in) {
    return tensor_max_pool2d(in[0], (pool2d_params){{2, 2}, {2, 2}, {1, 1}, false});
}
static tensor *pool_k2_s2(tensor **in) {
    return tensor_max_pool2d(in[0], (pool2d_params){{2, 2}, {2, 2}, {0, 0}, false});
}

START_TEST(test_max_pool2d_ties_go_to_first_in_window_order) {
    /* all-equal [1,1,3,3], 2x2 windows, stride 1 (overlapping): each window's
     * first element in row-major order, its top-left, takes its gradient:
     * g = [1, 2, 3, 4] lands on (0,0), (0,1), (1,0), (1,1) */
    run_both(&(tie_case){"pool ties, overlapping windows", 1, {4}, {{1, 1, 3, 3}},
                         {{7, 7, 7, 7, 7, 7, 7, 7, 7}}, {true}, pool_k2_s1, {1, 2, 3, 4}, 4,
                         {7, 7, 7, 7}, {{1, 2, 0, 3, 4, 0, 0, 0, 0}}});
    /* [1,1,2,4] = [[1, 5, 5, 0], [5, 2, 3, 5]]: window 0 holds 5 at (0,1)
     * and (1,0): the first in row order, (0,1), wins; window 1 holds 5 at
     * (0,2) and (1,3): (0,2) wins. g = [2, 3] */
    run_both(&(tie_case){"pool ties across rows", 1, {4}, {{1, 1, 2, 4}},
                         {{1, 5, 5, 0, 5, 2, 3, 5}}, {true}, pool_k2_s2, {2, 3}, 2, {5, 5},
                         {{0, 2, 3, 0, 0, 0, 0, 0}}});
    /* padding is never a maximum, even above all-negative values: [1,1,2,2]
     * of -1 with pad 1 gives four windows of one real element each, y = -1
     * (not 0) and the gradient goes straight through */
    run_both(&(tie_case){"pool padding never wins", 1, {4}, {{1, 1, 2, 2}}, {{-1, -1, -1, -1}},
                         {true}, pool_k2_s2_p1, {1, 2, 3, 4}, 4, {-1, -1, -1, -1},
                         {{1, 2, 3, 4}}});
}
END_TEST

/* ------------------------------------------------------------- argmax */
START_TEST(test_argmax_first_maximum_in_both_dtypes) {
    for (int d = 0; d < 2; d++) {
        dtype dt = d ? DTYPE_F32 : DTYPE_F64;
        tensor *x = tensor_from_doubles(dt, SHAPE(2, 4), (double[]){1, 4, 4, 0, 2, NAN, 9, NAN});
        tensor *i = tensor_argmax(x, 1, false);
        ck_assert_ptr_nonnull(i);
        ck_assert_int_eq(tensor_get(i, 0), 1); /* the first of the tied 4s */
        ck_assert_int_eq(tensor_get(i, 1), 1); /* the first NaN: NaN counts as largest */
        tape_reset();
        tensor_free(x);
    }
}
END_TEST

/* ------------------------------------------------------- clamp, hardtanh */
static tensor *clamp11(tensor **in) { return tensor_clamp(in[0], -1, 1); }
static tensor *hardtanh11(tensor **in) { return tensor_hardtanh(in[0], -1, 1); }

START_TEST(test_clamp_and_hardtanh_at_their_bounds) {
    /* x = [-1, 1, 0.5, -2, 2], g = [1, 2, 3, 4, 5]. clamp: gradient 1 at a
     * bound and inside, 0 outside: [1, 2, 3, 0, 0]. hardtanh: 0 at a bound:
     * [0, 0, 3, 0, 0]. Both give y = [-1, 1, 0.5, -1, 1]. */
    run_both(&(tie_case){"clamp at bounds", 1, {1}, {{5}}, {{-1, 1, 0.5, -2, 2}}, {true}, clamp11,
                         {1, 2, 3, 4, 5}, 5, {-1, 1, 0.5, -1, 1}, {{1, 2, 3, 0, 0}}});
    run_both(&(tie_case){"hardtanh at bounds", 1, {1}, {{5}}, {{-1, 1, 0.5, -2, 2}}, {true},
                         hardtanh11, {1, 2, 3, 4, 5}, 5, {-1, 1, 0.5, -1, 1}, {{0, 0, 3, 0, 0}}});
}
END_TEST

/* ------------------------------------------------ activations at their kink */
static tensor *relu1(tensor **in) { return tensor_relu(in[0]); }
static tensor *abs1(tensor **in) { return tensor_abs(in[0]); }
static tensor *leaky1(tensor **in) { return tensor_leaky_relu(in[0], 0.25); }
static tensor *elu1(tensor **in) { return tensor_elu(in[0], 0.5); }
static tensor *prelu1(tensor **in) { return tensor_prelu(in[0], in[1]); }

START_TEST(test_activations_at_zero_use_the_documented_branch) {
    /* x = [0, 2, -2], g = [3, 1, 1] */
    /* relu: 0 at 0 -> [0, 1, 0] */
    run_both(&(tie_case){"relu at 0", 1, {1}, {{3}}, {{0, 2, -2}}, {true}, relu1, {3, 1, 1}, 3,
                         {0, 2, 0}, {{0, 1, 0}}});
    /* abs: 0 at 0 -> [0, 1, -1] */
    run_both(&(tie_case){"abs at 0", 1, {1}, {{3}}, {{0, 2, -2}}, {true}, abs1, {3, 1, 1}, 3,
                         {0, 2, 2}, {{0, 1, -1}}});
    /* leaky_relu slope 0.25: the slope at 0 -> [0.75, 1, 0.25] */
    run_both(&(tie_case){"leaky_relu at 0", 1, {1}, {{3}}, {{0, 2, -2}}, {true}, leaky1,
                         {3, 1, 1}, 3, {0, 2, -0.5}, {{0.75, 1, 0.25}}});
    /* elu alpha 0.5: alpha at 0 (left branch, alpha e^0) -> [1.5, 1, 0.5 e^-2] */
    run_both(&(tie_case){"elu at 0", 1, {1}, {{3}}, {{0, 2, -2}}, {true}, elu1, {3, 1, 1}, 3,
                         {0, 2, 0.5 * (exp(-2) - 1)}, {{1.5, 1, 0.5 * exp(-2)}}});
    /* prelu with w [1] = 0.25: the slope branch at 0 -> dx = [0.75, 1, 0.25];
     * dw = sum over x <= 0 of g x = 3 * 0 + 1 * -2 = -2 */
    run_both(&(tie_case){"prelu at 0", 2, {1, 1}, {{3}, {1}}, {{0, 2, -2}, {0.25}}, {true, true},
                         prelu1, {3, 1, 1}, 3, {0, 2, -0.5}, {{0.75, 1, 0.25}, {-2}}});
}
END_TEST

/* ------------------------------------------------------ losses at edges */
static tensor *l1_sum(tensor **in) { return tensor_l1_loss(in[0], in[1], REDUCTION_SUM); }
static tensor *hinge_sum(tensor **in) { return tensor_hinge_loss(in[0], in[1], 1.0, REDUCTION_SUM); }
static tensor *bce_none(tensor **in) { return tensor_bce_loss(in[0], in[1], NULL, REDUCTION_NONE); }
static tensor *bcel_none(tensor **in) { return tensor_bce_with_logits(in[0], in[1], NULL, REDUCTION_NONE); }
static tensor *ce_none(tensor **in) { return tensor_cross_entropy(in[0], in[1], NULL, 0.0, REDUCTION_NONE); }

START_TEST(test_l1_and_hinge_at_their_kinks) {
    /* l1: pred = target in element 0 (gradient 0), d = 1 and -2 elsewhere:
     * dpred = [0, 1, -1], dtarget = -dpred; y = 0 + 1 + 2 = 3 */
    run_both(&(tie_case){"l1 at pred = target", 2, {1, 1}, {{3}, {3}}, {{0.5, 2, -1}, {0.5, 1, 1}},
                         {true, true}, l1_sum, {1}, 1, {3}, {{0, 1, -1}, {0, -1, 1}}});
    /* hinge, margin 1: y x = 1 exactly in element 0 (gradient 0 there: the
     * indicator is margin > y x), y x = 0.5 in element 1 (active), 2 in
     * element 2. loss = [0, 0.5, 0] summed = 0.5; dx = -y [active] = [0, 1, 0]
     * with y = [1, -1, 1], x = [1, -0.5, 2] */
    run_both(&(tie_case){"hinge at the margin", 2, {1, 1}, {{3}, {3}}, {{1, -0.5, 2}, {1, -1, 1}},
                         {true, false}, hinge_sum, {1}, 1, {0.5}, {{0, 1, 0}}});
}
END_TEST

START_TEST(test_bce_at_probabilities_0_and_1) {
    /* p = [0, 0, 1, 1], t = [0, 1, 1, 0], g = 1 each. The log clamps at -100,
     * the denominator p (1 - p) at 1e-12:
     *   loss = -(t max(log p, -100) + (1 - t) max(log(1 - p), -100))
     *        = [0, 100, 0, 100]
     *   dp   = (p - t) / max(p (1 - p), 1e-12) = [0, -1e12, 0, 1e12]
     *   dt   = max(log(1 - p), -100) - max(log p, -100) = [100, 100, -100, -100] */
    run_both(&(tie_case){"bce at p = 0 and 1", 2, {1, 1}, {{4}, {4}}, {{0, 0, 1, 1}, {0, 1, 1, 0}},
                         {true, true}, bce_none, {1, 1, 1, 1}, 4, {0, 100, 0, 100},
                         {{0, -1e12, 0, 1e12}, {100, 100, -100, -100}}});
}
END_TEST

START_TEST(test_bce_with_logits_and_cross_entropy_at_huge_logits) {
    /* x = [1000, -1000, 1000, -1000], t = [1, 1, 0, 0]:
     *   loss = (1 - t) x + softplus(-x) = [0, 1000, 1000, 0]
     *   dx   = (1 - t) - sigmoid(-x)    = [0, -1, 1, 0] */
    run_both(&(tie_case){"bce_with_logits at +-1000", 2, {1, 1}, {{4}, {4}},
                         {{1000, -1000, 1000, -1000}, {1, 1, 0, 0}}, {true, false}, bcel_none,
                         {1, 1, 1, 1}, 4, {0, 1000, 1000, 0}, {{0, -1, 1, 0}}});
}
END_TEST

START_TEST(test_cross_entropy_at_huge_logits) {
    /* logits [[1000, 0, -1000], [1000, 0, -1000]], labels [0, 1]:
     * softmax = [1, 0, 0] (e^-1000 underflows), loss = [0, 1000],
     * dx = softmax - onehot = [[0, 0, 0], [1, -1, 0]] */
    for (int d = 0; d < 2; d++) {
        dtype dt = d ? DTYPE_F32 : DTYPE_F64;
        tensor *x = tensor_from_doubles(dt, SHAPE(2, 3), (double[]){1000, 0, -1000, 1000, 0, -1000});
        tensor *lab = tensor_from_doubles(DTYPE_I64, SHAPE(2), (double[]){0, 1});
        tensor_set_requires_grad(x, true);
        tensor *in[2] = {x, lab};
        tensor *y = ce_none(in);
        ck_assert_ptr_nonnull(y);
        ck_assert_double_eq(tensor_get(y, 0), 0);
        ck_assert_double_eq(tensor_get(y, 1), 1000);
        tensor *g = tensor_from_doubles(dt, SHAPE(2), (double[]){1, 1});
        ck_assert_int_eq(tensor_backward_with(y, g), 0);
        static const double want[6] = {0, 0, 0, 1, -1, 0};
        for (int e = 0; e < 6; e++) ck_assert_double_eq(tensor_get(x->grad, e), want[e]);
        tape_reset();
        tensor_free(g);
        tensor_free(x);
        tensor_free(lab);
    }
}
END_TEST

/* ------------------------------------------- samples at the clamp edges
 * The registry keeps bce's probabilities in (0.05, 0.95) and the logits of
 * bce_with_logits in (-4, 4), away from the clamps and saturations. Copies of
 * the entries with samples at the edges (p within 1e-5 .. 1e-3 of 0 or 1;
 * logits out to +-40, where sigmoid saturates in float32) keep the vjp
 * contract, match float64 in float32, and pass gradcheck (eps 1e-9 for p,
 * since p itself can be 1e-5). */
static int near_edges(rng *g, tensor *t, double lo, double hi) {
    for (int64_t i = 0; i < t->size; i++) {
        double d = lo * pow(hi / lo, rng_uniform(g)); /* log-uniform distance to the edge */
        tensor_set(t, i, (rng_next_u32(g) & 1) ? d : 1 - d);
    }
    return 0;
}
static int bce_edge_sample(int k, rng *g, op_sample *s) {
    static const int64_t shapes[3][2] = {{6, 1}, {3, 4}, {2, 5}};
    if (k >= 3) return 1;
    s->n_inputs = 2;
    s->ip[0] = k; /* mean, sum, none */
    s->inputs[0] = tensor_new(DTYPE_F64, 2, shapes[k]);
    s->inputs[1] = tg_sample_tensor(g, 2, shapes[k], 0, 1);
    near_edges(g, s->inputs[0], 1e-5, 1e-3);
    tg_sample_name(s, "p within 1e-5..1e-3 of 0 or 1, reduction %d", k);
    return 0;
}
static int bcel_edge_sample(int k, rng *g, op_sample *s) {
    static const int64_t shapes[3][2] = {{6, 1}, {3, 4}, {2, 5}};
    if (k >= 3) return 1;
    s->n_inputs = 2;
    s->ip[0] = k;
    s->inputs[0] = tg_sample_tensor_avoiding(g, 2, shapes[k], -40, 40, (double[]){0}, 1, 8);
    s->inputs[1] = tg_sample_tensor(g, 2, shapes[k], 0, 1);
    tg_sample_name(s, "logits 8..40 from 0, reduction %d", k);
    return 0;
}

typedef struct {
    const op_def *op;
    const op_sample *s;
} edge_ctx;
static tensor *edge_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    const edge_ctx *c = ctx;
    return c->op->build(in, c->s);
}

static void check_edge_op(const op_def *op, double eps) {
    op_contract_report r;
    ck_assert_int_eq(tg_op_check_contract(op, 11, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    ck_assert_int_eq(tg_op_check_float32(op, 11, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    for (int k = 0; k < 3; k++) {
        op_sample s;
        memset(&s, 0, sizeof s);
        rng g;
        rng_seed(&g, 11, (uint64_t)k);
        ck_assert_int_eq(op->sample(k, &g, &s), 0);
        gradcheck_options o = gradcheck_defaults();
        o.eps = eps;
        edge_ctx c = {op, &s};
        gradcheck_report gr;
        ck_assert_int_eq(gradcheck(edge_fn, &c, s.inputs, s.n_inputs, &o, &gr), 0);
        ck_assert_msg(gr.passed, "%s case %d: %s", op->name, k, gr.message);
        gradcheck_report_free(&gr);
        for (int i = 0; i < s.n_inputs; i++) tensor_free(s.inputs[i]);
    }
}

START_TEST(test_bce_near_probabilities_0_and_1) {
    op_def bce = *op_find("bce_loss");
    bce.sample = bce_edge_sample;
    check_edge_op(&bce, 1e-9);
}
END_TEST

START_TEST(test_bce_with_logits_at_saturating_logits) {
    op_def bcel = *op_find("bce_with_logits");
    bcel.sample = bcel_edge_sample;
    check_edge_op(&bcel, 1e-6);
}
END_TEST

Suite *ties_suite(void) {
    Suite *s = suite_create("ops_ties");
    TCase *tc = tcase_create("ties");
    tcase_add_test(tc, test_max_min_ties_split_evenly);
    tcase_add_test(tc, test_max_nan_propagates_without_gradient);
    tcase_add_test(tc, test_maximum_minimum_ties_split_under_broadcasting);
    tcase_add_test(tc, test_max_pool2d_ties_go_to_first_in_window_order);
    tcase_add_test(tc, test_argmax_first_maximum_in_both_dtypes);
    tcase_add_test(tc, test_clamp_and_hardtanh_at_their_bounds);
    tcase_add_test(tc, test_activations_at_zero_use_the_documented_branch);
    tcase_add_test(tc, test_l1_and_hinge_at_their_kinks);
    tcase_add_test(tc, test_bce_at_probabilities_0_and_1);
    tcase_add_test(tc, test_bce_with_logits_and_cross_entropy_at_huge_logits);
    tcase_add_test(tc, test_cross_entropy_at_huge_logits);
    tcase_add_test(tc, test_bce_near_probabilities_0_and_1);
    tcase_add_test(tc, test_bce_with_logits_at_saturating_logits);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(ties_suite)
