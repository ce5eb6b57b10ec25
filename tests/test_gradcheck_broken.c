/* test_gradcheck_broken.c - the checker against deliberately wrong vjps.
 *
 * Each broken op is a copy of a real registry entry (same forward, params and
 * saved tensors) whose vjp makes one classic mistake. The graph is built with
 * tg_node_begin/tg_node_finish on the broken entry, or, for ops whose builders
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
    return tg_sample_tensor(&g, ndim, shape, -1.5, 1.5);
}

/* A copy of the real entry `name` with its vjp replaced. */
static op_def broken(const char *name, void (*vjp)(tape_node *, tensor *const *)) {
    const op_def *real = op_find(name);
    ck_assert_msg(real != NULL, "op %s is not registered", name);
    op_def b = *real;
    b.vjp = vjp;
    b.vjp_fresh = false; /* the broken vjps add: fresh buffers come zeroed */
    return b;
}


/* Swaps the entry of the node that produced y for a broken copy. */
static tensor *with_op(const op_def *op, tensor *y) {
    ck_assert_ptr_nonnull(y);
    tape_node *n = tg_tape_node_at(y->node);
    ck_assert_ptr_nonnull(n);
    n->op = op;
    return y;
}

static tensor *apply2(const op_def *op, tensor *a, tensor *b, int ndim, const int64_t *shape) {
    tensor *in[2] = {a, b};
    tape_node *n = tg_node_begin(op, in, 2, DTYPE_F64, ndim, shape);
    return n ? tg_node_finish(n) : NULL;
}

/* The check must fail on values (not vacuously) and localisation must name
 * node `node` as `desc`. */
static void assert_caught(const gradcheck_report *r, int node, const char *desc) {
    ck_assert_msg(!r->passed, "a broken vjp passed: %s", r->message);
    for (int i = 0; i < r->n_inputs; i++) ck_assert_msg(!r->input[i].vacuous, "%s", r->message);
    ck_assert_msg(r->localized, "not localised: %s", r->message);
    ck_assert_int_eq(r->bad_node, node);
    ck_assert_str_eq(r->bad_node_desc, desc);
    /* no element is blamed on a kink (the note on kinks localisation excused is no blame) */
    ck_assert_msg(strstr(r->message, "sits on a kink") == NULL && strstr(r->message, "on a kink)") == NULL,
                  "a wrong vjp is not a kink: %s", r->message);
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
    gradcheck_report_free(&r);
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
    gradcheck_report_free(&r);
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
    gradcheck_report_free(&r);
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
    gradcheck_report_free(&r);
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
    gradcheck_report_free(&r);
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
    tape_node *nd = tg_node_begin(&bad_mean, in, 1, DTYPE_F64, 0, NULL);
    if (!nd) return NULL;
    nd->ip[0] = (1 << in[0]->ndim) - 1; /* all axes, as tensor_mean_all records */
    nd->ip[1] = 0;
    nd->fp[0] = 1.0 / (double)in[0]->size;
    return tg_node_finish(nd);
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
    gradcheck_report_free(&r);
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
    gradcheck_report_free(&r);
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
    gradcheck_report_free(&r);
}
END_TEST


/* ------------- softmax's gradient treated as elementwise: dx = g z (1 - z) */
static void softmax_vjp_elementwise(tape_node *n, tensor *const *gin) {
    const double *z = n->out->data, *g = n->out->grad->data;
    double *d = gin[0]->data;
    for (int64_t i = 0; i < n->out->size; i++) d[i] += g[i] * z[i] * (1 - z[i]); /* the diagonal only */
}
static op_def bad_softmax;
static tensor *bad_softmax_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    return with_op(&bad_softmax, tensor_softmax(in[0], -1));
}

START_TEST(test_caught_softmax_treated_as_elementwise) {
    bad_softmax = broken("softmax", softmax_vjp_elementwise);
    tensor *x = rand_leaf(21, SHAPE(3, 5));
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(bad_softmax_fn, NULL, &x, 1, NULL, &r), 0);
    assert_caught(&r, 0, "softmax [3,5]");
    tensor_free(x);
    gradcheck_report_free(&r);
}
END_TEST

/* ----------------------- dropout's gradient ignoring the mask: dx = g / (1 - p) */
static void dropout_vjp_no_mask(tape_node *n, tensor *const *gin) {
    const double *g = n->out->grad->data, scale = 1.0 / (1.0 - n->fp[0]);
    double *d = gin[0]->data;
    for (int64_t i = 0; i < n->out->size; i++) d[i] += g[i] * scale; /* dropped ones too */
}
static op_def bad_dropout;
static tensor *bad_dropout_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    rng g;
    rng_seed(&g, *(uint64_t *)ctx, 5); /* the same mask on every call of fn */
    return with_op(&bad_dropout, tensor_dropout(in[0], 0.5, true, &g));
}

START_TEST(test_caught_dropout_ignoring_mask) {
    bad_dropout = broken("dropout", dropout_vjp_no_mask);
    tensor *x = rand_leaf(22, SHAPE(4, 6));
    uint64_t mask_seed = 3;
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(bad_dropout_fn, &mask_seed, &x, 1, NULL, &r), 0);
    assert_caught(&r, 0, "dropout [4,6]");
    /* the worst element was dropped: numeric 0, analytic 2 u */
    ck_assert_close(r.input[0].worst_numeric, 0, 1e-8);
    tensor_free(x);
    gradcheck_report_free(&r);
}
END_TEST

/* ----------------------- conv2d's input gradient with the stride ignored */
static void (*real_conv_vjp)(tape_node *, tensor *const *);
static void conv_vjp_stride_ignored(tape_node *n, tensor *const *gin) {
    tape_node m = *n;
    m.ip[0] = m.ip[1] = 1; /* scatter back as if the stride were 1 */
    real_conv_vjp(&m, gin);
}
static op_def bad_conv;
static tensor *bad_conv_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    conv2d_params p = CONV2D_DEFAULT;
    p.stride[0] = p.stride[1] = 2;
    return with_op(&bad_conv, tensor_conv2d(in[0], in[1], in[2], p));
}

START_TEST(test_caught_conv_stride_ignored) {
    real_conv_vjp = op_find("conv2d")->vjp;
    bad_conv = broken("conv2d", conv_vjp_stride_ignored);
    tensor *in[3] = {rand_leaf(23, SHAPE(2, 3, 7, 7)), rand_leaf(24, SHAPE(4, 3, 3, 3)),
                     rand_leaf(25, SHAPE(4))};
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(bad_conv_fn, NULL, in, 3, NULL, &r), 0);
    assert_caught(&r, 0, "conv2d [2,3,7,7] * [4,3,3,3] * [4]");
    ck_assert(!r.input[0].passed); /* dx scattered to the wrong pixels */
    ck_assert(r.input[2].passed);  /* db sums g over pixels: no stride in it */
    for (int i = 0; i < 3; i++) tensor_free(in[i]);
    gradcheck_report_free(&r);
}
END_TEST

/* ------------- max-pool's gradient routed to the wrong element (the next one) */
static void (*real_pool_vjp)(tape_node *, tensor *const *);
static void pool_vjp_wrong_element(tape_node *n, tensor *const *gin) {
    tape_node m = *n;
    const tensor *idx = n->saved[0];
    int64_t plane = n->in[0]->shape[2] * n->in[0]->shape[3];
    m.saved[0] = tg_tensor_tape_new(DTYPE_I64, idx->ndim, idx->shape);
    for (int64_t i = 0; i < idx->size; i++)
        ((int64_t *)m.saved[0]->data)[i] = (((const int64_t *)idx->data)[i] + 1) % plane;
    real_pool_vjp(&m, gin);
}
static op_def bad_pool;
static const pool2d_params pool2 = {{2, 2}, {2, 2}, {0, 0}, false};
static tensor *bad_pool_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    return with_op(&bad_pool, tensor_max_pool2d(in[0], pool2));
}

START_TEST(test_caught_max_pool_wrong_element) {
    real_pool_vjp = op_find("max_pool2d")->vjp;
    bad_pool = broken("max_pool2d", pool_vjp_wrong_element);
    rng g;
    rng_seed(&g, 26, 1);
    tensor *x = tg_sample_tensor_distinct(&g, SHAPE(2, 3, 4, 4), -1.0, 0.02); /* no ties */
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(bad_pool_fn, NULL, &x, 1, NULL, &r), 0);
    assert_caught(&r, 0, "max_pool2d [2,3,4,4]");
    tensor_free(x);
    gradcheck_report_free(&r);
}
END_TEST

/* ------------- localisation inside a LeNet-5 (batch 2, 63,274 numbers) -----
 * conv1 (pad 2) relu pool conv2 relu pool reshape linear relu linear relu linear
 * cross_entropy, with the first max-pool broken (node 2). Fast mode keeps the
 * test short: the probes fail, the full check runs only for the inputs
 * upstream of the broken node, and localisation probes each node. */
static tensor *lenet_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    conv2d_params c1 = CONV2D_DEFAULT;
    c1.padding[0] = c1.padding[1] = 2;
    tensor *h = tensor_relu(tensor_conv2d(in[0], in[1], in[2], c1));
    h = with_op(&bad_pool, tensor_max_pool2d(h, pool2));
    h = tensor_max_pool2d(tensor_relu(tensor_conv2d(h, in[3], in[4], CONV2D_DEFAULT)), pool2);
    h = tensor_reshape(h, 2, (int64_t[]){2, -1});
    h = tensor_relu(tensor_linear(h, in[5], in[6]));
    h = tensor_relu(tensor_linear(h, in[7], in[8]));
    h = tensor_linear(h, in[9], in[10]);
    return tensor_cross_entropy(h, in[11], NULL, 0.0, REDUCTION_MEAN);
}

START_TEST(test_localisation_names_broken_node_in_lenet5) {
    real_pool_vjp = op_find("max_pool2d")->vjp;
    bad_pool = broken("max_pool2d", pool_vjp_wrong_element);
    static const int64_t shapes[11][4] = {{2, 1, 28, 28}, {6, 1, 5, 5}, {6}, {16, 6, 5, 5}, {16},
                                          {120, 400}, {120}, {84, 120}, {84}, {10, 84}, {10}};
    static const int nd[11] = {4, 4, 1, 4, 1, 2, 1, 2, 1, 2, 1};
    static const double scale[11] = {1, 0.4, 0.1, 0.16, 0.1, 0.05, 0.1, 0.09, 0.1, 0.11, 0.1};
    rng g;
    rng_seed(&g, 5, 1);
    tensor *in[12];
    int64_t numbers = 0;
    for (int i = 0; i < 11; i++) {
        in[i] = tg_sample_tensor(&g, nd[i], shapes[i], -scale[i], scale[i]);
        numbers += in[i]->size;
    }
    ck_assert_int_eq(numbers, 63274);
    in[11] = tg_sample_labels(&g, SHAPE(2), 10);
    gradcheck_options o = gradcheck_defaults();
    o.fast = true;
    gradcheck_report r;
    tapegrad_set_threads(1); /* the machine is shared; small kernels gain nothing from threads */
    ck_assert_int_eq(gradcheck(lenet_fn, NULL, in, 12, &o, &r), 0);
    assert_caught(&r, 2, "max_pool2d [2,6,28,28]");
    ck_assert(!r.input[0].passed && !r.input[1].passed); /* upstream of the pool */
    ck_assert(r.input[5].passed && r.input[10].passed); /* downstream of it */
    for (int i = 0; i < 12; i++) tensor_free(in[i]);
    gradcheck_report_free(&r);
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
static const op_def relu0_op = {"relu0", 1, 0, relu0_forward, relu0_vjp, NULL, NULL, "", "", "", "", NULL};

/* node 0 relu0 (x has an exact 0: a kink), node 1 broken mul */
static tensor *kink_then_broken_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    tensor *x[1] = {in[0]};
    tape_node *nd = tg_node_begin(&relu0_op, x, 1, DTYPE_F64, in[0]->ndim, in[0]->shape);
    tensor *h = nd ? tg_node_finish(nd) : NULL;
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
    gradcheck_report_free(&r);
}
END_TEST

/* ======================================================= small errors
 * Each op family gets a vjp wrong by little: a factor 1.001, one element of
 * thousands, only under non-contiguous broadcasting, only with padding, only
 * in float32. The float64 ones are caught by gradcheck at the registry's
 * tight tolerances (tg_op_tight_tolerances: atol 1e-8, rtol 1e-6 for most ops)
 * and localised; the same graph with the real op passes them, so the
 * failure is the error's. The float32 one by tg_op_check_float32. */
static void (*real_vjp)(tape_node *, tensor *const *);
static double wrong_factor = 1.001;
static int64_t wrong_element = -1; /* -1: every element */

/* The real vjp into zeroed scratch, added back with the error applied. */
static void vjp_scaled(tape_node *n, tensor *const *gin) {
    tensor *scratch[8] = {NULL};
    for (int j = 0; j < n->n_in && j < 8; j++)
        if (gin[j]) scratch[j] = tg_tensor_tape_zeros(gin[j]->dtype, gin[j]->ndim, gin[j]->shape);
    real_vjp(n, scratch);
    for (int j = 0; j < n->n_in && j < 8; j++)
        for (int64_t e = 0; scratch[j] && e < scratch[j]->size; e++) {
            double f = wrong_element < 0 || wrong_element == e ? wrong_factor : 1.0;
            tensor_set(gin[j], e, tensor_get(gin[j], e) + f * tensor_get(scratch[j], e));
        }
}

static op_def bad_small;
static const char *small_op;   /* the op the fn records, swapped for bad_small */
static tensor *(*small_graph)(tensor *const *in);
static tensor *small_fn(tensor *const *in, int n, void *ctx) {
    (void)n, (void)ctx;
    tensor *y = small_graph(in);
    for (int64_t j = 0; y && j < tg_tape_node_count(); j++)
        if (strcmp(tg_tape_node_at(j)->op->name, small_op) == 0) tg_tape_node_at(j)->op = &bad_small;
    return y;
}

/* gradcheck of small_graph at the op's tight tolerances, real op then broken:
 * the real one passes, the broken one fails and is localised at node. */
static void check_small(const char *op, tensor *(*graph)(tensor *const *), tensor **in, int n,
                        int node, gradcheck_report *r) {
    small_op = op;
    small_graph = graph;
    gradcheck_options o = gradcheck_defaults();
    tg_op_tight_tolerances(op_find(op), &o.atol, &o.rtol);
    real_vjp = op_find(op)->vjp;
    bad_small = broken(op, real_vjp);
    ck_assert_int_eq(gradcheck(small_fn, NULL, in, n, &o, r), 0);
    ck_assert_msg(r->passed, "the real %s fails the tight check: %s", op, r->message);
    gradcheck_report_free(r);
    bad_small = broken(op, vjp_scaled);
    ck_assert_int_eq(gradcheck(small_fn, NULL, in, n, &o, r), 0);
    ck_assert_msg(!r->passed, "a small error in %s passed: %s", op, r->message);
    ck_assert_msg(r->localized && r->bad_node == node, "%s: %s", op, r->message);
    ck_assert_msg(strstr(r->message, "kink") == NULL, "%s", r->message);
}

static void free_all(tensor **in, int n) {
    for (int i = 0; i < n; i++) tensor_free(in[i]);
}

/* elementwise: mul's gradients 1.001 times too large */
static tensor *mul_graph(tensor *const *in) { return tensor_sum_all(tensor_mul(in[0], in[1])); }
START_TEST(test_caught_factor_1001_elementwise) {
    wrong_factor = 1.001, wrong_element = -1;
    tensor *in[2] = {rand_leaf(41, SHAPE(3, 4)), rand_leaf(42, SHAPE(3, 4))};
    gradcheck_report r;
    check_small("mul", mul_graph, in, 2, 0, &r);
    ck_assert_close(r.input[0].worst_analytic / r.input[0].worst_numeric, 1.001, 1e-6);
    gradcheck_report_free(&r);
    /* gradcheck's defaults (rtol 1e-3) let it through: why the registry runs tight */
    ck_assert_int_eq(gradcheck(small_fn, NULL, in, 2, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    gradcheck_report_free(&r);
    free_all(in, 2);
}
END_TEST

/* reduce: one element of 2000 of sum's gradient off by 0.1 % */
static tensor *sum_graph(tensor *const *in) {
    return tensor_sum_all(tensor_mul(tensor_sum(in[0], (int[]){1}, 1, false), in[1]));
}
START_TEST(test_caught_one_wrong_element_of_2000_reduce) {
    wrong_factor = 1.001, wrong_element = 1234;
    tensor *in[2] = {rand_leaf(43, SHAPE(40, 50)), rand_leaf(44, SHAPE(40))};
    gradcheck_report r;
    check_small("sum", sum_graph, in, 2, 0, &r);
    ck_assert_int_eq(r.input[0].worst_index, 1234);
    ck_assert_msg(strstr(r.message, "input 0: 1 element failing") != NULL, "%s", r.message);
    wrong_element = -1;
    gradcheck_report_free(&r);
    free_all(in, 2);
}
END_TEST

/* shape: one element of a permute's 2400 off by 0.1 % */
static tensor *permute_graph(tensor *const *in) {
    return tensor_sum_all(tensor_mul(tensor_permute(in[0], (int[]){2, 0, 1}), in[1]));
}
START_TEST(test_caught_one_wrong_element_shape) {
    wrong_factor = 1.001, wrong_element = 777;
    tensor *in[2] = {rand_leaf(45, SHAPE(10, 12, 20)), rand_leaf(46, SHAPE(20, 10, 12))};
    gradcheck_report r;
    check_small("permute", permute_graph, in, 2, 0, &r);
    ck_assert_int_eq(r.input[0].worst_index, 777);
    wrong_element = -1;
    gradcheck_report_free(&r);
    free_all(in, 2);
}
END_TEST

/* matmul: 1.001 in both gradients, batched with a broadcast operand */
static tensor *matmul_graph(tensor *const *in) { return tensor_sum_all(tensor_matmul(in[0], in[1])); }
START_TEST(test_caught_factor_1001_matmul) {
    wrong_factor = 1.001, wrong_element = -1;
    tensor *in[2] = {rand_leaf(47, SHAPE(2, 5, 6)), rand_leaf(48, SHAPE(6, 4))};
    gradcheck_report r;
    check_small("matmul", matmul_graph, in, 2, 0, &r);
    gradcheck_report_free(&r);
    free_all(in, 2);
}
END_TEST

/* norm: layer_norm's gradients 1.001 times too large */
static tensor *layer_norm_graph(tensor *const *in) {
    tensor *y = tensor_layer_norm(in[0], 1, in[1], in[2], 1e-5);
    return tensor_sum_all(tensor_mul(y, in[3]));
}
START_TEST(test_caught_factor_1001_norm) {
    wrong_factor = 1.001, wrong_element = -1;
    tensor *in[4] = {rand_leaf(49, SHAPE(4, 8)), rand_leaf(50, SHAPE(8)), rand_leaf(51, SHAPE(8)),
                     rand_leaf(52, SHAPE(4, 8))};
    gradcheck_report r;
    check_small("layer_norm", layer_norm_graph, in, 4, 0, &r);
    gradcheck_report_free(&r);
    free_all(in, 4);
}
END_TEST

/* loss: mse's mean divided by N - 1 instead of N over 1000 elements, a
 * factor 1000 / 999 = 1.001 */
static tensor *mse_graph(tensor *const *in) { return tensor_mse_loss(in[0], in[1], REDUCTION_MEAN); }
START_TEST(test_caught_mean_over_n_minus_1_loss) {
    wrong_factor = 1000.0 / 999.0, wrong_element = -1;
    tensor *in[2] = {rand_leaf(53, SHAPE(10, 100)), rand_leaf(54, SHAPE(10, 100))};
    gradcheck_report r;
    check_small("mse_loss", mse_graph, in, 2, 0, &r);
    wrong_factor = 1.001;
    gradcheck_report_free(&r);
    free_all(in, 2);
}
END_TEST

/* conv/pool: avg_pool2d's gradient always divided by the whole window, right
 * without padding, wrong at the border when padding > 0 (where the window
 * holds fewer real elements and count_include_pad is off) */
static void avg_pool_vjp_counts_padding(tape_node *n, tensor *const *gin) {
    tape_node m = *n;
    m.ip[6] = 1; /* count_include_pad */
    real_vjp(&m, gin);
}
static int64_t pool_pad;
static tensor *avg_pool_graph(tensor *const *in) {
    pool2d_params p = {{3, 3}, {2, 2}, {(int)pool_pad, (int)pool_pad}, false};
    return tensor_sum_all(tensor_mul(tensor_avg_pool2d(in[0], p), in[1]));
}
START_TEST(test_caught_avg_pool_wrong_only_with_padding) {
    real_vjp = op_find("avg_pool2d")->vjp;
    bad_small = broken("avg_pool2d", avg_pool_vjp_counts_padding);
    small_op = "avg_pool2d";
    small_graph = avg_pool_graph;
    gradcheck_report r;
    /* padding 0: [2,3,9,9] -> [2,3,4,4]; the broken vjp is right here */
    pool_pad = 0;
    tensor *in[2] = {rand_leaf(55, SHAPE(2, 3, 9, 9)), rand_leaf(56, SHAPE(2, 3, 4, 4))};
    ck_assert_int_eq(gradcheck(small_fn, NULL, in, 2, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    gradcheck_report_free(&r);
    tensor_free(in[1]);
    /* padding 1: [2,3,9,9] -> [2,3,5,5], border windows hold 4 or 6 of 9 */
    pool_pad = 1;
    in[1] = rand_leaf(57, SHAPE(2, 3, 5, 5));
    ck_assert_int_eq(gradcheck(small_fn, NULL, in, 2, NULL, &r), 0);
    assert_caught(&r, 0, "avg_pool2d [2,3,9,9]");
    ck_assert(r.input[1].passed); /* the pooled values are right */
    gradcheck_report_free(&r);
    free_all(in, 2);
}
END_TEST

/* elementwise under broadcasting: add's gradient reduced as if the smaller
 * operand repeated contiguously (dst[i mod size] += g[i]). Right for a
 * leading broadcast ([3] + [2,3]), wrong for a middle or trailing one. */
static void add_vjp_modulo_reduction(tape_node *n, tensor *const *gin) {
    const tensor *g = n->out->grad;
    for (int w = 0; w < 2; w++) {
        if (!gin[w]) continue;
        for (int64_t i = 0; i < g->size; i++) {
            int64_t d = i % gin[w]->size;
            tensor_set(gin[w], d, tensor_get(gin[w], d) + tensor_get(g, i));
        }
    }
}
static tensor *add_graph(tensor *const *in) {
    return tensor_sum_all(tensor_mul(tensor_add(in[0], in[1]), in[2]));
}
START_TEST(test_caught_add_wrong_only_for_non_contiguous_broadcast) {
    bad_small = broken("add", add_vjp_modulo_reduction);
    small_op = "add";
    small_graph = add_graph;
    gradcheck_report r;
    tensor *lead[3] = {rand_leaf(58, SHAPE(3)), rand_leaf(59, SHAPE(2, 3)), rand_leaf(60, SHAPE(2, 3))};
    ck_assert_int_eq(gradcheck(small_fn, NULL, lead, 3, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    gradcheck_report_free(&r);
    free_all(lead, 3);
    tensor *mid[3] = {rand_leaf(61, SHAPE(2, 1, 4)), rand_leaf(62, SHAPE(3, 1)),
                      rand_leaf(63, SHAPE(2, 3, 4))};
    ck_assert_int_eq(gradcheck(small_fn, NULL, mid, 3, NULL, &r), 0);
    assert_caught(&r, 0, "add [2,1,4] * [3,1]");
    ck_assert(!r.input[0].passed && !r.input[1].passed);
    gradcheck_report_free(&r);
    free_all(mid, 3);
}
END_TEST

/* activation: gelu's gradient 1.001 times too large */
static tensor *gelu_graph(tensor *const *in) { return tensor_sum_all(tensor_mul(tensor_gelu(in[0], false), in[1])); }
START_TEST(test_caught_factor_1001_activation) {
    wrong_factor = 1.001, wrong_element = -1;
    tensor *in[2] = {rand_leaf(64, SHAPE(6, 7)), rand_leaf(65, SHAPE(6, 7))};
    gradcheck_report r;
    check_small("gelu", gelu_graph, in, 2, 0, &r);
    gradcheck_report_free(&r);
    free_all(in, 2);
}
END_TEST

/* math: one element of exp's 1200 off by 0.1 % */
static tensor *exp_graph(tensor *const *in) { return tensor_sum_all(tensor_mul(tensor_exp(in[0]), in[1])); }
START_TEST(test_caught_one_wrong_element_of_1200_math) {
    wrong_factor = 1.001, wrong_element = 917;
    tensor *in[2] = {rand_leaf(66, SHAPE(30, 40)), rand_leaf(67, SHAPE(40))};
    gradcheck_report r;
    check_small("exp", exp_graph, in, 2, 0, &r);
    ck_assert_int_eq(r.input[0].worst_index, 917);
    ck_assert(r.input[1].passed); /* the multiplier's gradient is exp's value, not its vjp */
    wrong_element = -1;
    gradcheck_report_free(&r);
    free_all(in, 2);
}
END_TEST

/* layer: linear's gradients (x, w and b) 1.001 times too large */
static tensor *linear_graph(tensor *const *in) {
    return tensor_sum_all(tensor_mul(tensor_linear(in[0], in[1], in[2]), in[3]));
}
START_TEST(test_caught_factor_1001_layer) {
    wrong_factor = 1.001, wrong_element = -1;
    tensor *in[4] = {rand_leaf(68, SHAPE(4, 6)), rand_leaf(69, SHAPE(3, 6)), rand_leaf(70, SHAPE(3)),
                     rand_leaf(71, SHAPE(4, 3))};
    gradcheck_report r;
    check_small("linear", linear_graph, in, 4, 0, &r);
    ck_assert(!r.input[0].passed && !r.input[1].passed && !r.input[2].passed);
    gradcheck_report_free(&r);
    free_all(in, 4);
}
END_TEST

/* sequence: one element of cumsum's reverse-cumsum gradient off by 0.1 % */
static tensor *cumsum_graph(tensor *const *in) { return tensor_sum_all(tensor_mul(tensor_cumsum(in[0], 1), in[1])); }
START_TEST(test_caught_one_wrong_element_sequence) {
    wrong_factor = 1.001, wrong_element = 45;
    tensor *in[2] = {rand_leaf(72, SHAPE(5, 16)), rand_leaf(73, SHAPE(5, 16))};
    gradcheck_report r;
    check_small("cumsum", cumsum_graph, in, 2, 0, &r);
    ck_assert_int_eq(r.input[0].worst_index, 45);
    wrong_element = -1;
    gradcheck_report_free(&r);
    free_all(in, 2);
}
END_TEST

/* compare: one element of masked_fill's gradient off by 0.1 %, under a mask
 * [4,1] broadcast over the columns of x [4,6] (the mask is a constant) */
static tensor *mask_rows;
static tensor *masked_fill_graph(tensor *const *in) {
    return tensor_sum_all(tensor_mul(tensor_masked_fill(in[0], mask_rows, -2.0), in[1]));
}
START_TEST(test_caught_one_wrong_element_compare) {
    wrong_factor = 1.001, wrong_element = 13; /* row 2, column 1: not masked */
    const int64_t rows[4] = {1, 0, 0, 1};
    mask_rows = tensor_from_data(DTYPE_I64, SHAPE(4, 1), rows);
    ck_assert_ptr_nonnull(mask_rows);
    tensor *in[2] = {rand_leaf(78, SHAPE(4, 6)), rand_leaf(79, SHAPE(4, 6))};
    gradcheck_report r;
    check_small("masked_fill", masked_fill_graph, in, 2, 0, &r);
    ck_assert(!r.input[0].passed && r.input[1].passed);
    ck_assert_int_eq(r.input[0].worst_index, 13);
    wrong_element = -1;
    gradcheck_report_free(&r);
    free_all(in, 2);
    tensor_free(mask_rows);
}
END_TEST

/* conv: conv2d's gradients (input, weight, bias) 1.001 times too large, with
 * stride 2 and padding 1 */
static tensor *conv_small_graph(tensor *const *in) {
    conv2d_params p = {{2, 2}, {1, 1}, {1, 1}, 1};
    return tensor_sum_all(tensor_mul(tensor_conv2d(in[0], in[1], in[2], p), in[3]));
}
START_TEST(test_caught_factor_1001_conv) {
    wrong_factor = 1.001, wrong_element = -1;
    /* [2,3,7,7] * [4,3,3,3] stride 2 pad 1 -> [2,4,4,4] */
    tensor *in[4] = {rand_leaf(74, SHAPE(2, 3, 7, 7)), rand_leaf(75, SHAPE(4, 3, 3, 3)), rand_leaf(76, SHAPE(4)),
                     rand_leaf(77, SHAPE(2, 4, 4, 4))};
    gradcheck_report r;
    check_small("conv2d", conv_small_graph, in, 4, 0, &r);
    ck_assert(!r.input[0].passed && !r.input[1].passed && !r.input[2].passed);
    gradcheck_report_free(&r);
    free_all(in, 4);
}
END_TEST

/* attention: scaled_dot_product_attention's gradients (q, k and v) 1.001
 * times too large, causal with a key-padding mask, inside a chain: q comes
 * through tanh (node 0), so the broken node is node 1 */
static tensor *sdpa_mask;
static tensor *attention_graph(tensor *const *in) {
    tensor *y = tensor_scaled_dot_product_attention(tensor_tanh(in[0]), in[1], in[2], sdpa_mask,
                                                    true, 0, NULL);
    return tensor_sum_all(tensor_mul(y, in[3]));
}
START_TEST(test_caught_factor_1001_attention) {
    wrong_factor = 1.001, wrong_element = -1;
    sdpa_mask = tensor_from_doubles(DTYPE_I64, SHAPE(2, 1, 1, 5), (double[]){0, 0, 0, 1, 1, 0, 0, 1, 0, 0});
    tensor *in[4] = {rand_leaf(78, SHAPE(2, 2, 5, 4)), rand_leaf(79, SHAPE(2, 2, 5, 4)),
                     rand_leaf(80, SHAPE(2, 2, 5, 3)), rand_leaf(81, SHAPE(2, 2, 5, 3))};
    gradcheck_report r;
    check_small("scaled_dot_product_attention", attention_graph, in, 4, 1, &r);
    ck_assert(!r.input[0].passed && !r.input[1].passed && !r.input[2].passed);
    ck_assert_str_eq(r.bad_node_desc,
                     "scaled_dot_product_attention [2,2,5,4] * [2,2,5,4] * [2,2,5,3] * [2,1,1,5]");
    gradcheck_report_free(&r);
    free_all(in, 4);
    tensor_free(sdpa_mask);
    sdpa_mask = NULL;
}
END_TEST

/* attention under dropout: dP scaled by 1 / (1 - p) everywhere instead of by
 * the dropout mask (the dropped weights' gradients let through). Without
 * dropout the broken vjp is the real one and passes; with it, it is caught
 * at the attention node. */
static void sdpa_vjp_dropout_mask_forgotten(tape_node *n, tensor *const *gin) {
    tape_node m = *n;
    const tensor *M = n->saved[1]; /* the dropout mask, NULL without dropout */
    if (M) {
        tensor *all = tg_tensor_tape_new(DTYPE_F64, M->ndim, M->shape);
        for (int64_t e = 0; e < all->size; e++) ((double *)all->data)[e] = 1 / (1 - n->fp[1]);
        m.saved[1] = all;
    }
    real_vjp(&m, gin);
}
static double sdpa_p;
static tensor *attention_dropout_graph(tensor *const *in) {
    rng g;
    rng_seed(&g, 11, 1); /* the same mask on every call */
    tensor *y = tensor_scaled_dot_product_attention(in[0], in[1], in[2], NULL, false, sdpa_p, &g);
    return tensor_sum_all(tensor_mul(y, in[3]));
}
START_TEST(test_caught_attention_ignoring_dropout_mask) {
    real_vjp = op_find("scaled_dot_product_attention")->vjp;
    bad_small = broken("scaled_dot_product_attention", sdpa_vjp_dropout_mask_forgotten);
    small_op = "scaled_dot_product_attention";
    small_graph = attention_dropout_graph;
    tensor *in[4] = {rand_leaf(82, SHAPE(2, 4, 3)), rand_leaf(83, SHAPE(2, 6, 3)),
                     rand_leaf(84, SHAPE(2, 6, 2)), rand_leaf(85, SHAPE(2, 4, 2))};
    gradcheck_report r;
    sdpa_p = 0;
    ck_assert_int_eq(gradcheck(small_fn, NULL, in, 4, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    gradcheck_report_free(&r);
    sdpa_p = 0.3;
    ck_assert_int_eq(gradcheck(small_fn, NULL, in, 4, NULL, &r), 0);
    assert_caught(&r, 0, "scaled_dot_product_attention [2,4,3] * [2,6,3] * [2,6,2]");
    ck_assert(!r.input[0].passed && !r.input[1].passed);
    ck_assert(r.input[2].passed); /* dv uses the saved dropped weights: right */
    gradcheck_report_free(&r);
    free_all(in, 4);
}
END_TEST

/* wrong only in float32: batch_norm's gradients 1.001 times too large in its
 * float32 kernel; float64 (what gradcheck runs) is right */
static void vjp_scaled_in_float32(tape_node *n, tensor *const *gin) {
    if (n->out->dtype == DTYPE_F32)
        vjp_scaled(n, gin);
    else
        real_vjp(n, gin);
}
START_TEST(test_caught_norm_wrong_only_in_float32) {
    wrong_factor = 1.001, wrong_element = -1;
    real_vjp = op_find("batch_norm")->vjp;
    op_def bad = broken("batch_norm", vjp_scaled_in_float32);
    op_contract_report r;
    ck_assert_int_eq(tg_op_check_contract(&bad, 1, &r), 0); /* float64 side and contract: fine */
    ck_assert_msg(r.passed, "%s", r.message);
    ck_assert_int_eq(tg_op_check_float32(&bad, 1, &r), 0);
    ck_assert_msg(!r.passed, "a float32-only error passed");
    ck_assert_msg(strstr(r.message, "batch_norm case 0") && strstr(r.message, "float32 gradient"),
                  "%s", r.message);
    op_check_report_free(&r);
}
END_TEST

Suite *broken_suite(void) {
    Suite *s = suite_create("gradcheck_broken");
    TCase *tc = tcase_create("broken");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_caught_wrong_sign);
    tcase_add_test(tc, test_caught_wrong_sign_fast_mode_falls_back);
    tcase_add_test(tc, test_localize_off_names_no_node);
    tcase_add_test(tc, test_caught_missing_broadcast_reduction);
    tcase_add_test(tc, test_caught_matmul_missing_transpose);
    tcase_add_test(tc, test_caught_mean_not_divided_by_n);
    tcase_add_test(tc, test_localisation_names_broken_node_in_chain);
    tcase_add_test(tc, test_chain_with_real_ops_passes);
    tcase_add_test(tc, test_localisation_passes_over_a_node_on_a_kink);
    tcase_add_test(tc, test_caught_softmax_treated_as_elementwise);
    tcase_add_test(tc, test_caught_dropout_ignoring_mask);
    tcase_add_test(tc, test_caught_conv_stride_ignored);
    tcase_add_test(tc, test_caught_max_pool_wrong_element);
    tcase_add_test(tc, test_localisation_names_broken_node_in_lenet5);
    tcase_add_test(tc, test_caught_factor_1001_elementwise);
    tcase_add_test(tc, test_caught_one_wrong_element_of_2000_reduce);
    tcase_add_test(tc, test_caught_one_wrong_element_shape);
    tcase_add_test(tc, test_caught_factor_1001_matmul);
    tcase_add_test(tc, test_caught_factor_1001_norm);
    tcase_add_test(tc, test_caught_mean_over_n_minus_1_loss);
    tcase_add_test(tc, test_caught_avg_pool_wrong_only_with_padding);
    tcase_add_test(tc, test_caught_add_wrong_only_for_non_contiguous_broadcast);
    tcase_add_test(tc, test_caught_norm_wrong_only_in_float32);
    tcase_add_test(tc, test_caught_factor_1001_activation);
    tcase_add_test(tc, test_caught_one_wrong_element_of_1200_math);
    tcase_add_test(tc, test_caught_factor_1001_layer);
    tcase_add_test(tc, test_caught_one_wrong_element_sequence);
    tcase_add_test(tc, test_caught_one_wrong_element_compare);
    tcase_add_test(tc, test_caught_factor_1001_conv);
    tcase_add_test(tc, test_caught_factor_1001_attention);
    tcase_add_test(tc, test_caught_attention_ignoring_dropout_mask);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(broken_suite)
