/* test_gradcheck_broken.c - the checker against deliberately wrong vjps.
 *
 * Each broken op is a copy of a real registry entry (same forward, params and
 * saved tensors) whose vjp makes one classic mistake. The graph is built with
 * node_begin/node_finish on the broken entry, or, for ops whose builders
 * allocate saved tensors (conv2d, max_pool2d, dropout, softmax), by the real
 * builder followed by swapping the recorded node's entry for the broken copy.
 * Every mistake must be caught (a failure that is not vacuous), and
 * localisation must name the broken node, also inside a longer chain. */
#include <string.h>

#include "../autograd/internal.h"
#include "check_main.h"

static tensor *rand_leaf(uint64_t seed, int ndim, const int64_t *shape) {
    rng g;
    rng_seed(&g, seed, 99);
    return sample_tensor(&g, ndim, shape, -1.5, 1.5);
}

/* A copy of the real entry `name` with its vjp replaced. */
static op_def broken(const char *name, void (*vjp)(tape_node *, tensor *const *)) {
    const op_def *real = op_find(name);
    ck_assert_msg(real != NULL, "op %s is not registered", name);
    op_def b = *real;
    b.vjp = vjp;
    return b;
}


static tensor *apply2(const op_def *op, tensor *a, tensor *b, int ndim, const int64_t *shape) {
    tensor *in[2] = {a, b};
    tape_node *n = node_begin(op, in, 2, DTYPE_F64, ndim, shape);
    return n ? node_finish(n) : NULL;
}

/* The check must fail on values (not vacuously) and localisation must name
 * node `node` as `desc`. */
static void assert_caught(const gradcheck_report *r, int node, const char *desc) {
    ck_assert_msg(!r->passed, "a broken vjp passed: %s", r->message);
    for (int i = 0; i < r->n_inputs; i++) ck_assert_msg(!r->input[i].vacuous, "%s", r->message);
    ck_assert_msg(r->localized, "not localised: %s", r->message);
    ck_assert_int_eq(r->bad_node, node);
    ck_assert_str_eq(r->bad_node_desc, desc);
    ck_assert_msg(strstr(r->message, "kink") == NULL, "a wrong vjp is not a kink: %s", r->message);
}

/* ------------------------------------------- wrong sign: mul, dA = -g b */
static void mul_vjp_wrong_sign(tape_node *n, tensor *const *gin) {
    const double *a = n->in[0]->data, *b = n->in[1]->data, *g = n->out->grad->data;
    for (int64_t i = 0; i < n->out->size; i++) {
        if (gin[0]) ((double *)gin[0]->data)[i] -= g[i] * b[i];
        if (gin[1]) ((double *)gin[1]->data)[i] += g[i] * a[i];
    }
}
static op_def bad_mul;
static tensor *bad_mul_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    return tensor_sum_all(apply2(&bad_mul, in[0], in[1], in[0]->ndim, in[0]->shape));
}

START_TEST(test_caught_wrong_sign) {
    bad_mul = broken("mul", mul_vjp_wrong_sign);
    tensor *in[2] = {rand_leaf(1, SHAPE(3, 4)), rand_leaf(2, SHAPE(3, 4))};
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(bad_mul_fn, NULL, in, 2, NULL, &r), 0);
    assert_caught(&r, 0, "mul [3,4] * [3,4]");
    ck_assert(!r.input[0].passed);
    ck_assert(r.input[1].passed); /* the other operand's gradient is right */
    /* analytic -b vs numeric b at the worst element */
    ck_assert_close(r.input[0].worst_analytic, -r.input[0].worst_numeric, 1e-8);
    tensor_free(in[0]);
    tensor_free(in[1]);
}
END_TEST

/* Fast mode catches it too, then falls back to the full check for the element. */
START_TEST(test_caught_wrong_sign_fast_mode_falls_back) {
    bad_mul = broken("mul", mul_vjp_wrong_sign);
    tensor *in[2] = {rand_leaf(1, SHAPE(3, 4)), rand_leaf(2, SHAPE(3, 4))};
    gradcheck_options o = gradcheck_defaults();
    o.fast = true;
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(bad_mul_fn, NULL, in, 2, &o, &r), 0);
    assert_caught(&r, 0, "mul [3,4] * [3,4]");
    ck_assert_int_ge(r.input[0].worst_index, 0); /* the fallback names an element */
    ck_assert_int_eq(r.input[1].worst_index, -1); /* input 1 passed its probes */
    ck_assert_ptr_nonnull(strstr(r.message, "fast-mode probe"));
    tensor_free(in[0]);
    tensor_free(in[1]);
}
END_TEST

/* Localisation off: the failure is reported, no node is named. */
START_TEST(test_localize_off_names_no_node) {
    bad_mul = broken("mul", mul_vjp_wrong_sign);
    tensor *in[2] = {rand_leaf(1, SHAPE(3, 4)), rand_leaf(2, SHAPE(3, 4))};
    gradcheck_options o = gradcheck_defaults();
    o.localize = false;
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(bad_mul_fn, NULL, in, 2, &o, &r), 0);
    ck_assert(!r.passed);
    ck_assert(!r.localized);
    ck_assert_int_eq(r.bad_node, -1);
    tensor_free(in[0]);
    tensor_free(in[1]);
}
END_TEST

/* ------------- missing reduction: [2,3] + [3], db takes one row of g only */
static void add_vjp_no_reduction(tape_node *n, tensor *const *gin) {
    const double *g = n->out->grad->data;
    for (int w = 0; w < 2; w++) {
        if (!gin[w]) continue;
        double *d = gin[w]->data;
        for (int64_t i = 0; i < gin[w]->size; i++) d[i] += g[i]; /* should sum over rows */
    }
}
static op_def bad_add;
static tensor *bad_add_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    return tensor_sum_all(apply2(&bad_add, in[0], in[1], in[0]->ndim, in[0]->shape));
}

START_TEST(test_caught_missing_broadcast_reduction) {
    bad_add = broken("add", add_vjp_no_reduction);
    tensor *in[2] = {rand_leaf(3, SHAPE(2, 3)), rand_leaf(4, SHAPE(3))};
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(bad_add_fn, NULL, in, 2, NULL, &r), 0);
    assert_caught(&r, 0, "add [2,3] * [3]");
    ck_assert(r.input[0].passed);
    ck_assert(!r.input[1].passed);
    tensor_free(in[0]);
    tensor_free(in[1]);
}
END_TEST

/* -------------------- matmul, transpose missing: dA = G @ B instead of G @ B^T */
static void matmul_vjp_no_transpose(tape_node *n, tensor *const *gin) {
    const tensor *a = n->in[0], *b = n->in[1];
    int64_t M = a->shape[0], K = a->shape[1], N = b->shape[1];
    const double *A = a->data, *B = b->data, *G = n->out->grad->data;
    if (gin[0]) /* B is square here (K = N), so the wrong product has the right shape */
        for (int64_t i = 0; i < M; i++)
            for (int64_t k = 0; k < K; k++)
                for (int64_t j = 0; j < N; j++)
                    ((double *)gin[0]->data)[i * K + k] += G[i * N + j] * B[j * N + k];
    if (gin[1])
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < N; j++)
                for (int64_t i = 0; i < M; i++)
                    ((double *)gin[1]->data)[k * N + j] += A[i * K + k] * G[i * N + j];
}
static op_def bad_matmul;
static tensor *bad_matmul_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    int64_t shape[2] = {in[0]->shape[0], in[1]->shape[1]};
    return tensor_sum_all(apply2(&bad_matmul, in[0], in[1], 2, shape));
}

START_TEST(test_caught_matmul_missing_transpose) {
    bad_matmul = broken("matmul", matmul_vjp_no_transpose);
    tensor *in[2] = {rand_leaf(5, SHAPE(3, 4)), rand_leaf(6, SHAPE(4, 4))};
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(bad_matmul_fn, NULL, in, 2, NULL, &r), 0);
    assert_caught(&r, 0, "matmul [3,4] * [4,4]");
    ck_assert(!r.input[0].passed);
    ck_assert(r.input[1].passed);
    tensor_free(in[0]);
    tensor_free(in[1]);
}
END_TEST

/* ------------------------------- mean's gradient not divided by N */
static void (*real_mean_vjp)(tape_node *, tensor *const *);
static void mean_vjp_not_divided(tape_node *n, tensor *const *gin) {
    tape_node m = *n;
    m.fp[0] = 1.0; /* the scale 1/N forgotten: sum's gradient */
    real_mean_vjp(&m, gin);
}
static op_def bad_mean;
static tensor *bad_mean_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    tape_node *nd = node_begin(&bad_mean, in, 1, DTYPE_F64, 0, NULL);
    if (!nd) return NULL;
    nd->ip[0] = (1 << in[0]->ndim) - 1; /* all axes, as tensor_mean_all records */
    nd->ip[1] = 0;
    nd->fp[0] = 1.0 / (double)in[0]->size;
    return node_finish(nd);
}

START_TEST(test_caught_mean_not_divided_by_n) {
    real_mean_vjp = op_find("mean")->vjp;
    bad_mean = broken("mean", mean_vjp_not_divided);
    tensor *x = rand_leaf(7, SHAPE(2, 3, 4));
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(bad_mean_fn, NULL, &x, 1, NULL, &r), 0);
    assert_caught(&r, 0, "mean [2,3,4]");
    ck_assert_close(r.input[0].worst_analytic, 1.0, 1e-12);
    ck_assert_close(r.input[0].worst_numeric, 1.0 / 24, 1e-8);
    tensor_free(x);
}
END_TEST

/* ---------------- localisation inside a chain of eleven real ops ----------
 *   node 0  matmul  x [4,5] @ W1 [5,6]
 *   node 1  add     + b1 [6]
 *   node 2  mul     h * h
 *   node 3  mul_scalar 0.5
 *   node 4  BROKEN mul (wrong sign) with node 1's output
 *   node 5  matmul  @ W2 [6,3]
 *   node 6  sub     - c [3]
 *   node 7  neg
 *   node 8  permute (1,0)
 *   node 9  reshape [12]
 *   node 10 mean */
static tensor *chain_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    tensor *h1 = tensor_add(tensor_matmul(in[0], in[1]), in[2]);
    tensor *h = tensor_mul_scalar(tensor_mul(h1, h1), 0.5);
    h = apply2(&bad_mul, h, h1, h->ndim, h->shape);
    h = tensor_neg(tensor_sub(tensor_matmul(h, in[3]), in[4]));
    h = tensor_reshape(tensor_permute(h, (int[]){1, 0}), 1, (int64_t[]){12});
    return tensor_mean_all(h);
}

START_TEST(test_localisation_names_broken_node_in_chain) {
    bad_mul = broken("mul", mul_vjp_wrong_sign);
    tensor *in[5] = {rand_leaf(11, SHAPE(4, 5)), rand_leaf(12, SHAPE(5, 6)), rand_leaf(13, SHAPE(6)),
                     rand_leaf(14, SHAPE(6, 3)), rand_leaf(15, SHAPE(3))};
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(chain_fn, NULL, in, 5, NULL, &r), 0);
    assert_caught(&r, 4, "mul [4,6] * [4,6]");
    ck_assert(r.input[4].passed); /* c only sees nodes after the broken one */
    ck_assert(!r.input[0].passed);
    ck_assert_ptr_nonnull(strstr(r.message, "node 4: mul [4,6] * [4,6]"));
    for (int i = 0; i < 5; i++) tensor_free(in[i]);
}
END_TEST

/* The same chain with the real mul passes: the chain itself is sound. */
static tensor *chain_ok_fn(tensor *const *in, int n, void *ctx) {
    bad_mul = *op_find("mul");
    return chain_fn(in, n, ctx);
}

START_TEST(test_chain_with_real_ops_passes) {
    tensor *in[5] = {rand_leaf(11, SHAPE(4, 5)), rand_leaf(12, SHAPE(5, 6)), rand_leaf(13, SHAPE(6)),
                     rand_leaf(14, SHAPE(6, 3)), rand_leaf(15, SHAPE(3))};
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(chain_ok_fn, NULL, in, 5, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    for (int i = 0; i < 5; i++) tensor_free(in[i]);
}
END_TEST

/* ----------- a correct node on a kink is passed over, the broken one named */
/* relu without a margin: y = max(x, 0), dx = g [x > 0] (right at x = 0 only from the left) */
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
static const op_def relu0_op = {"relu0", 1, 0, relu0_forward, relu0_vjp, NULL, NULL, "", "", "", ""};

/* node 0 relu0 (x has an exact 0: a kink), node 1 broken mul */
static tensor *kink_then_broken_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    tensor *x[1] = {in[0]};
    tape_node *nd = node_begin(&relu0_op, x, 1, DTYPE_F64, in[0]->ndim, in[0]->shape);
    tensor *h = nd ? node_finish(nd) : NULL;
    return tensor_sum_all(apply2(&bad_mul, h, in[1], h->ndim, h->shape));
}

START_TEST(test_localisation_passes_over_a_node_on_a_kink) {
    bad_mul = broken("mul", mul_vjp_wrong_sign);
    tensor *in[2] = {tensor_from_doubles(DTYPE_F64, SHAPE(4), (double[]){0.0, 1.25, -0.5, 2}),
                     rand_leaf(31, SHAPE(4))};
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(kink_then_broken_fn, NULL, in, 2, NULL, &r), 0);
    ck_assert(!r.passed);
    ck_assert(r.localized);
    ck_assert_int_eq(r.bad_node, 1);
    ck_assert_str_eq(r.bad_node_desc, "mul [4] * [4]");
    ck_assert_msg(strstr(r.message, "excused 1 node-level element on a kink") != NULL, "%s",
                  r.message);
    tensor_free(in[0]);
    tensor_free(in[1]);
}
END_TEST

Suite *broken_suite(void) {
    Suite *s = suite_create("gradcheck_broken");
    TCase *tc = tcase_create("broken");
    tcase_add_test(tc, test_caught_wrong_sign);
    tcase_add_test(tc, test_caught_wrong_sign_fast_mode_falls_back);
    tcase_add_test(tc, test_localize_off_names_no_node);
    tcase_add_test(tc, test_caught_missing_broadcast_reduction);
    tcase_add_test(tc, test_caught_matmul_missing_transpose);
    tcase_add_test(tc, test_caught_mean_not_divided_by_n);
    tcase_add_test(tc, test_localisation_names_broken_node_in_chain);
    tcase_add_test(tc, test_chain_with_real_ops_passes);
    tcase_add_test(tc, test_localisation_passes_over_a_node_on_a_kink);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(broken_suite)
