/* test_op_contract.c - every registered op keeps the vjp contract the tape
 * relies on (autograd/opcheck.c): it accumulates, writes nothing but gradient
 * buffers, is deterministic, gives each input the same gradient alone as
 * with the others, and (NaN-filled) fresh gradient buffers end as zeroed
 * ones do (an op with vjp_fresh writes them); and copies of real entries that break one clause each are
 * caught, where the numerical checker passes them. */
#include <string.h>

#include "../autograd/internal.h"
#include "../ops/blas.h"
#include "check_main.h"

/* A copy of the registry entry `name` with its vjp replaced. */
static op_def broken(const char *name, void (*vjp)(tape_node *, tensor *const *)) {
    const op_def *real = op_find(name);
    ck_assert_msg(real != NULL, "op %s is not registered", name);
    op_def b = *real;
    b.vjp = vjp;
    return b;
}

static void assert_breach(const op_def *op, const char *part) {
    op_contract_report r;
    ck_assert_int_eq(tg_op_check_contract(op, 1, &r), 0);
    ck_assert_msg(!r.passed, "%s: a broken vjp kept the contract", op->name);
    ck_assert_msg(strstr(r.message, part) != NULL, "%s: \"%s\" lacks \"%s\"", op->name, r.message,
                  part);
    op_check_report_free(&r);
}

/* ------------------------------------------------------------ the registry */
typedef struct {
    const op_def *op;
    const op_sample *s;
} case_ctx;
static tensor *case_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    const case_ctx *c = ctx;
    return c->op->build(in, c->s);
}

/* Case k of op from seed, checked by gradcheck in float64 with the op's
 * tight tolerances; returns 1 when there is no case k. */
static int tight_case(const op_def *op, int k, uint64_t seed, gradcheck_report *r, char *name,
                      size_t len) {
    op_sample s;
    memset(&s, 0, sizeof s);
    rng g;
    rng_seed(&g, seed, (uint64_t)k);
    int rc = op->sample(k, &g, &s);
    if (rc == 1) return 1;
    ck_assert_int_eq(rc, 0);
    snprintf(name, len, "%s case %d (%s, seed %llu)", op->name, k, s.name, (unsigned long long)seed);
    uint32_t skip = s.no_grad_mask | op->no_grad_inputs, mask = 0;
    for (int i = 0; i < s.n_inputs; i++)
        if (!mask_bit(skip, i) && s.inputs[i] && s.inputs[i]->dtype != DTYPE_I64) mask |= 1u << i;
    r->passed = true;
    r->message = r->bad_node_desc = NULL;
    if (mask) {
        gradcheck_options o = gradcheck_defaults();
        tg_op_tight_tolerances(op, &o.atol, &o.rtol);
        o.seed = seed;
        o.check_mask = mask;
        case_ctx c = {op, &s};
        ck_assert_msg(gradcheck(case_fn, &c, s.inputs, s.n_inputs, &o, r) == 0, "%s: %s", name,
                      tapegrad_error());
    }
    for (int i = 0; i < s.n_inputs; i++) tensor_free(s.inputs[i]);
    return 0;
}

/* Every case of every op, 30 seeds, at atol 1e-8 / rtol 1e-6 (three ops
 * with their measured figures): no false alarm. A vjp off by a factor 1.001
 * now fails wherever its gradient exceeds 1e-5 (test_gradcheck_broken.c). */
START_TEST(test_every_case_passes_tight_tolerances_30_seeds) {
    int cases = 0;
    for (int i = 0; i < op_count(); i++) {
        const op_def *op = op_at(i);
        double atol, rtol;
        tg_op_tight_tolerances(op, &atol, &rtol);
        ck_assert(atol <= 1e-7 && rtol <= 1e-4); /* all far below 1e-5 / 1e-3 */
        for (uint64_t seed = 1; seed <= 30; seed++) {
            for (int k = 0;; k++) {
                gradcheck_report r;
                char name[256];
                if (tight_case(op, k, seed, &r, name, sizeof name)) break;
                ck_assert_msg(r.passed, "%s: %s", name, r.message);
                gradcheck_report_free(&r);
                cases++;
            }
        }
    }
    ck_assert_int_gt(cases, 30 * op_count());
}
END_TEST

START_TEST(test_every_registered_op_keeps_the_vjp_contract) {
    int nodes = 0;
    for (int i = 0; i < op_count(); i++) {
        const op_def *op = op_at(i);
        op_contract_report r;
        ck_assert_msg(tg_op_check_contract(op, 20261204, &r) == 0, "%s: %s", op->name,
                      tapegrad_error());
        ck_assert_msg(r.passed, "%s", r.message);
        ck_assert_msg(r.cases >= 2, "%s: %d cases", op->name, r.cases);
        /* only ops without a gradient (sign, floor_divide, argmax) check no node */
        ck_assert_msg(r.nodes > 0 || op->no_grad_inputs, "%s: no node checked", op->name);
        nodes += r.nodes;
        op_check_report_free(&r);
    }
    ck_assert_int_gt(nodes, 2 * op_count());
}
END_TEST

/* ------------------------------------------------- accumulate: reshape with = */
/* The real reshape vjp does gin += g; this one assigns. With the input used
 * once and its buffer zeroed, as in every graph of the test suite, the two
 * agree, and gradcheck passes it (below). */
static void reshape_vjp_assigns(tape_node *n, tensor *const *gin) {
    if (gin[0])
        memcpy(gin[0]->data, n->out->grad->data, (size_t)n->out->size * tg_dtype_size(n->out->dtype));
}

static op_def bad_reshape;
static tensor *bad_reshape_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    tensor *y = tensor_reshape(tensor_mul(in[0], in[0]), 1, (int64_t[]){12});
    tg_tape_node_at(y->node)->op = &bad_reshape;
    return tensor_sum_all(tensor_mul(y, y));
}

START_TEST(test_reshape_that_assigns_is_caught) {
    bad_reshape = broken("reshape", reshape_vjp_assigns);
    bad_reshape.vjp_fresh = false; /* it ignores the flag: fresh buffers come zeroed */
    /* the numerical checker cannot see it */
    rng g;
    rng_seed(&g, 3, 1);
    tensor *x = tg_sample_tensor(&g, SHAPE(3, 4), -1.5, 1.5);
    gradcheck_report gr;
    ck_assert_int_eq(gradcheck(bad_reshape_fn, NULL, &x, 1, NULL, &gr), 0);
    ck_assert_msg(gr.passed, "%s", gr.message);
    gradcheck_report_free(&gr);
    tensor_free(x);
    /* the contract does */
    assert_breach(&bad_reshape, "does not accumulate into the gradient of input 0");
    assert_breach(&bad_reshape, "float64");
}
END_TEST

/* --------------------------------------------- accumulate: GEMM with beta 0 */
static void matmul_vjp_beta0(tape_node *n, tensor *const *gin) {
    const tensor *a = n->in[0], *b = n->in[1];
    int64_t M = a->shape[a->ndim - 2], K = a->shape[a->ndim - 1], N = b->shape[b->ndim - 1];
    if (a->ndim != 2 || b->ndim != 2) return; /* 2-D cases are enough to show it */
    if (gin[0])
        tg_blas_gemm(n->out->dtype, false, true, M, K, N, n->out->grad->data, N, b->data, N, 0.0,
                  gin[0]->data, K);
    if (gin[1])
        tg_blas_gemm(n->out->dtype, true, false, K, N, M, a->data, K, n->out->grad->data, N, 1.0,
                  gin[1]->data, N);
}

START_TEST(test_matmul_with_beta_zero_is_caught) {
    op_def bad = broken("matmul", matmul_vjp_beta0);
    assert_breach(&bad, "does not accumulate into the gradient of input 0");
}
END_TEST

/* ------------------------------------------------- writes: input as scratch */
static void (*real_vjp)(tape_node *, tensor *const *);
static void mul_vjp_scribbles_on_input(tape_node *n, tensor *const *gin) {
    real_vjp(n, gin);
    tensor_set(n->in[1], 0, 0.0); /* "done with it" */
}

START_TEST(test_vjp_writing_its_input_is_caught) {
    real_vjp = op_find("mul")->vjp;
    op_def bad = broken("mul", mul_vjp_scribbles_on_input);
    assert_breach(&bad, "the vjp wrote into input 1 (element 0 changed)");
}
END_TEST

static void pool_vjp_scribbles_on_indices(tape_node *n, tensor *const *gin) {
    real_vjp(n, gin);
    ((int64_t *)n->saved[0]->data)[n->saved[0]->size - 1] = 0;
}

START_TEST(test_vjp_writing_a_saved_tensor_is_caught) {
    real_vjp = op_find("max_pool2d")->vjp;
    op_def bad = broken("max_pool2d", pool_vjp_scribbles_on_indices);
    assert_breach(&bad, "the vjp wrote into saved tensor 0");
}
END_TEST

static void exp_vjp_scales_upstream(tape_node *n, tensor *const *gin) {
    real_vjp(n, gin);
    tensor_set(n->out->grad, 0, 0.0);
}

START_TEST(test_vjp_writing_its_upstream_gradient_is_caught) {
    real_vjp = op_find("exp")->vjp;
    op_def bad = broken("exp", exp_vjp_scales_upstream);
    assert_breach(&bad, "the vjp wrote into its upstream gradient");
}
END_TEST

static void exp_vjp_writes_output(tape_node *n, tensor *const *gin) {
    real_vjp(n, gin);
    tensor_set(n->out, 1, 0.0);
}

START_TEST(test_vjp_writing_the_output_is_caught) {
    real_vjp = op_find("exp")->vjp;
    op_def bad = broken("exp", exp_vjp_writes_output);
    assert_breach(&bad, "the vjp wrote into the op's output (element 1 changed)");
}
END_TEST

/* ------------------------------------------------------------ determinism */
/* A vjp whose last element depends on how often it ran (as a reduction over
 * a racing thread count would): bit-different between two runs. */
static int runs;
static void sum_vjp_drifts(tape_node *n, tensor *const *gin) {
    real_vjp(n, gin);
    if (gin[0]) {
        double v = tensor_get(gin[0], gin[0]->size - 1);
        tensor_set(gin[0], gin[0]->size - 1, v + 1e-13 * (++runs % 2));
    }
}

START_TEST(test_non_deterministic_vjp_is_caught) {
    real_vjp = op_find("sum")->vjp;
    op_def bad = broken("sum", sum_vjp_drifts);
    assert_breach(&bad, "the vjp is not deterministic: the gradient of input 0 differs");
}
END_TEST

/* ---------------------------------------------- each input alone, the same */
/* db computed only when da is wanted too (a shortcut that shares a
 * temporary, done wrong): alone, input 1 gets nothing. */
static void mul_vjp_db_needs_da(tape_node *n, tensor *const *gin) {
    tensor *g2[2] = {gin[0], gin[0] ? gin[1] : NULL};
    real_vjp(n, g2);
}

START_TEST(test_gradient_depending_on_other_inputs_is_caught) {
    real_vjp = op_find("mul")->vjp;
    op_def bad = broken("mul", mul_vjp_db_needs_da);
    assert_breach(&bad, "the gradient of input 1 depends on which other inputs want one");
}
END_TEST

/* ------------------------------------------------ fresh gradient buffers */
/* softmax's vjp adds (+=); an entry that claims vjp_fresh with it reads the NaN
 * of a fresh buffer. */
START_TEST(test_fresh_op_that_adds_is_caught) {
    op_def bad = broken("softmax", op_find("softmax")->vjp);
    bad.vjp_fresh = true;
    assert_breach(&bad, "does not write a fresh gradient buffer of input 0");
}
END_TEST

/* mul's vjp writes a fresh buffer, but takes (clears) the flag of dA only
 * when it runs: a copy that writes dB without taking its flag leaves it
 * fresh, and tg_vjp_call zeroes it afterwards. */
static void mul_vjp_forgets_take(tape_node *n, tensor *const *gin) {
    bool fresh_b = gin[1] && gin[1]->fresh;
    real_vjp(n, gin);
    if (fresh_b) gin[1]->fresh = true;
}

START_TEST(test_fresh_op_that_leaves_the_flag_is_caught) {
    real_vjp = op_find("mul")->vjp;
    op_def bad = broken("mul", mul_vjp_forgets_take);
    assert_breach(&bad, "does not write a fresh gradient buffer of input 1");
}
END_TEST

/* Without vjp_fresh, tg_vjp_call zeroes the fresh buffers before the vjp
 * adds: mul's real (converted) vjp in an entry without the flag still
 * keeps the contract, and a plain += vjp gets zeros, not NaN. */
START_TEST(test_unflagged_op_gets_zeroed_fresh_buffers) {
    op_def plain = broken("mul", op_find("mul")->vjp);
    plain.vjp_fresh = false;
    op_contract_report r;
    ck_assert_int_eq(tg_op_check_contract(&plain, 1, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    op_check_report_free(&r);
}
END_TEST

/* ------------------------------------------ float32 against float64 */
START_TEST(test_every_op_float32_matches_float64_20_seeds) {
    for (int i = 0; i < op_count(); i++) {
        const op_def *op = op_at(i);
        double worst = 0;
        for (uint64_t seed = 1; seed <= 20; seed++) {
            op_contract_report r;
            ck_assert_msg(tg_op_check_float32(op, seed, &r) == 0, "%s: %s", op->name,
                          tapegrad_error());
            ck_assert_msg(r.passed, "seed %llu: %s", (unsigned long long)seed, r.message);
            ck_assert_int_ge(r.cases, 2);
            worst = fmax(worst, r.f32_worst);
            op_check_report_free(&r);
        }
        /* the bound is not so loose that nothing comes near it */
        ck_assert_msg(worst < 1, "%s", op->name);
    }
}
END_TEST

/* logsumexp of values near 1000 in float32: y rounded to float32 is off by up
 * to 3e-5 (half an ulp of 1000), and the vjp's exp(x - y) used to carry that
 * into every gradient element as a relative error of 3e-5. Here x = 1000 +
 * {0, 0.5, 1, 1.5} (exact in float32), so dx = softmax(x - 1000) and the
 * float32 gradient must agree with it to float32 rounding (2^-24 relative, a
 * few units). */
START_TEST(test_logsumexp_float32_gradient_near_1000) {
    tensor *x = tensor_from_doubles(DTYPE_F32, SHAPE(4), (double[]){1000, 1000.5, 1001, 1001.5});
    tensor_set_requires_grad(x, true);
    tensor *y = tensor_logsumexp(x, NULL, 0, false);
    ck_assert_int_eq(tensor_backward(y), 0);
    double z = 0, e[4];
    for (int i = 0; i < 4; i++) z += e[i] = exp(0.5 * i);
    for (int i = 0; i < 4; i++)
        ck_assert_msg(fabs(tensor_get(x->grad, i) - e[i] / z) <= 4 * 0x1p-24 * (e[i] / z),
                      "dx[%d] = %.9g, expected %.9g", i, tensor_get(x->grad, i), e[i] / z);
    tape_reset();
    tensor_free(x);
}
END_TEST

/* A vjp wrong only in float32 (by a factor 1.001): the float64 checker
 * cannot see it, the float32 comparison does. */
static void conv_vjp_off_in_float32(tape_node *n, tensor *const *gin) {
    if (n->out->dtype != DTYPE_F32) {
        real_vjp(n, gin);
        return;
    }
    tensor *scratch[3] = {NULL};
    for (int j = 0; j < n->n_in; j++)
        if (gin[j]) scratch[j] = tg_tensor_tape_zeros(gin[j]->dtype, gin[j]->ndim, gin[j]->shape);
    real_vjp(n, scratch);
    for (int j = 0; j < n->n_in; j++)
        for (int64_t e = 0; scratch[j] && e < scratch[j]->size; e++)
            tensor_set(gin[j], e, tensor_get(gin[j], e) + 1.001 * tensor_get(scratch[j], e));
}

START_TEST(test_vjp_wrong_only_in_float32_is_caught) {
    real_vjp = op_find("conv2d")->vjp;
    op_def bad = broken("conv2d", conv_vjp_off_in_float32);
    op_contract_report r;
    ck_assert_int_eq(tg_op_check_contract(&bad, 1, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message); /* it accumulates, it is deterministic */
    ck_assert_int_eq(tg_op_check_float32(&bad, 1, &r), 0);
    ck_assert(!r.passed);
    ck_assert_msg(strstr(r.message, "conv2d case 0") && strstr(r.message, "float32 gradient of input"),
                  "%s", r.message);
    op_check_report_free(&r);
}
END_TEST

/* -------------------------------------------- at the sizes training runs
 * The registry's samples are small; the kernels LeNet-5 trains with (conv's
 * direct and tiled paths, OpenMP regions above PARALLEL_MIN_ELEMS) run only
 * on larger inputs. Copies of conv2d, max_pool2d and linear with LeNet-5's
 * shapes at batch 8 keep the contract and match float64 under the same
 * rule, on one thread and on two. */
static int lenet_conv_sample(int k, rng *g, op_sample *s) {
    static const int64_t xs[2][4] = {{8, 1, 28, 28}, {8, 6, 14, 14}}, ws[2][4] = {{6, 1, 5, 5}, {16, 6, 5, 5}};
    if (k >= 2) return 1;
    s->n_inputs = 3;
    s->inputs[0] = tg_sample_tensor(g, 4, xs[k], -1.0, 1.0);
    s->inputs[1] = tg_sample_tensor(g, 4, ws[k], -0.3, 0.3);
    s->inputs[2] = tg_sample_tensor(g, 1, ws[k], -0.1, 0.1);
    const int ip[7] = {1, 1, k == 0 ? 2 : 0, k == 0 ? 2 : 0, 1, 1, 1};
    for (int i = 0; i < 7; i++) s->ip[i] = ip[i];
    tg_sample_name(s, "LeNet-5 conv%d, batch 8", k + 1);
    return 0;
}
static int lenet_pool_sample(int k, rng *g, op_sample *s) {
    static const int64_t xs[2][4] = {{8, 6, 28, 28}, {8, 16, 10, 10}};
    if (k >= 2) return 1;
    s->n_inputs = 1;
    s->inputs[0] = tg_sample_tensor_distinct(g, 4, xs[k], -1.5, 1e-4);
    const int ip[7] = {2, 2, 2, 2, 0, 0, 0};
    for (int i = 0; i < 7; i++) s->ip[i] = ip[i];
    tg_sample_name(s, "LeNet-5 pool%d, batch 8", k + 1);
    return 0;
}
static int lenet_linear_sample(int k, rng *g, op_sample *s) {
    static const int64_t dims[3][2] = {{400, 120}, {120, 84}, {84, 10}};
    if (k >= 3) return 1;
    s->n_inputs = 3;
    s->ip[0] = 1;
    s->inputs[0] = tg_sample_tensor(g, 2, (int64_t[]){8, dims[k][0]}, -1.0, 1.0);
    s->inputs[1] = tg_sample_tensor(g, 2, (int64_t[]){dims[k][1], dims[k][0]}, -0.1, 0.1);
    s->inputs[2] = tg_sample_tensor(g, 1, (int64_t[]){dims[k][1]}, -0.1, 0.1);
    tg_sample_name(s, "LeNet-5 linear%d, batch 8", k + 1);
    return 0;
}

START_TEST(test_lenet5_sized_kernels_keep_the_contract_and_match_float64) {
    op_def conv = *op_find("conv2d"), pool = *op_find("max_pool2d"), lin = *op_find("linear");
    conv.sample = lenet_conv_sample;
    pool.sample = lenet_pool_sample;
    lin.sample = lenet_linear_sample;
    const op_def *ops[3] = {&conv, &pool, &lin};
    for (int threads = 1; threads <= 2; threads++) {
        tapegrad_set_threads(threads);
        for (int i = 0; i < 3; i++) {
            op_contract_report r;
            ck_assert_msg(tg_op_check_contract(ops[i], 7, &r) == 0, "%s", tapegrad_error());
            ck_assert_msg(r.passed, "%d threads: %s", threads, r.message);
            ck_assert_int_ge(r.nodes, 4);
            ck_assert_msg(tg_op_check_float32(ops[i], 7, &r) == 0, "%s", tapegrad_error());
            ck_assert_msg(r.passed, "%d threads: %s", threads, r.message);
            op_check_report_free(&r);
        }
    }
    tapegrad_set_threads(1);
}
END_TEST

/* ------------------------------------------ fresh arena memory is NaN */
/* TEST_MAIN turns the poison on: a block the arena hands out holds NaN
 * (float32 and float64) until written. */
START_TEST(test_fresh_arena_memory_is_nan_in_tests) {
    tape_reset();
    tensor *d = tg_tensor_tape_new(DTYPE_F64, SHAPE(5)), *f = tg_tensor_tape_new(DTYPE_F32, SHAPE(7));
    for (int64_t i = 0; i < d->size; i++) ck_assert(isnan(tensor_get(d, i)));
    for (int64_t i = 0; i < f->size; i++) ck_assert(isnan(tensor_get(f, i)));
    tensor *z = tg_tensor_tape_zeros(DTYPE_F64, SHAPE(5));
    for (int64_t i = 0; i < z->size; i++) ck_assert(tensor_get(z, i) == 0.0);
    tape_reset();
}
END_TEST

/* A vjp that sums into a scratch buffer it never zeroed: on a fresh page
 * (zeros) it is right, so a check on a new arena would pass it; with the
 * poison the gradient is NaN and the checker fails it. */
static void sum_vjp_uninitialised_scratch(tape_node *n, tensor *const *gin) {
    tensor *acc = tg_tensor_tape_new(gin[0]->dtype, gin[0]->ndim, gin[0]->shape);
    double g = tensor_get(n->out->grad, 0);
    for (int64_t i = 0; i < acc->size; i++) tensor_set(acc, i, tensor_get(acc, i) + g);
    for (int64_t i = 0; i < acc->size; i++)
        tensor_set(gin[0], i, tensor_get(gin[0], i) + tensor_get(acc, i));
}
static op_def bad_sum;
static tensor *bad_sum_fn(tensor *const *in, int n, void *ctx) {
    (void)n, (void)ctx;
    tensor *y = tensor_sum_all(tensor_mul(in[0], in[0]));
    tg_tape_node_at(y->node)->op = &bad_sum;
    return y;
}

START_TEST(test_vjp_reading_uninitialised_memory_fails) {
    bad_sum = broken("sum", sum_vjp_uninitialised_scratch);
    bad_sum.vjp_fresh = false; /* it adds: fresh buffers come zeroed */
    rng g;
    rng_seed(&g, 4, 1);
    tensor *x = tg_sample_tensor(&g, SHAPE(3, 4), -1.5, 1.5);
    gradcheck_report gr;
    ck_assert_int_eq(gradcheck(bad_sum_fn, NULL, &x, 1, NULL, &gr), 0);
    ck_assert_msg(!gr.passed, "%s", gr.message);
    ck_assert(isnan(gr.input[0].worst_analytic));
    gradcheck_report_free(&gr);
    tensor_free(x);
}
END_TEST

/* ----------------------------------------------------------------- errors */
static int failing_sample(int k, rng *g, op_sample *s) {
    (void)k, (void)g, (void)s;
    return -1;
}
static tensor *null_build(tensor *const *in, const op_sample *s) {
    (void)in, (void)s;
    return NULL;
}

START_TEST(test_contract_errors) {
    op_contract_report r;
    op_def op = *op_find("exp");
    tapegrad_error_clear();
    ck_assert_int_eq(tg_op_check_contract(NULL, 1, &r), -1);
    ck_assert_error_is("op contract: op is NULL");
    ck_assert_int_eq(tg_op_check_contract(&op, 1, NULL), -1);
    ck_assert_error_is("op contract: report is NULL");
    op.sample = NULL;
    ck_assert_int_eq(tg_op_check_contract(&op, 1, &r), -1);
    ck_assert_error_is("op contract: exp has no sample cases");
    op.sample = failing_sample;
    ck_assert_int_eq(tg_op_check_contract(&op, 1, &r), -1);
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "op contract: exp case 0"));
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "float64: the sample failed"));
    tapegrad_error_clear();
    op = *op_find("exp");
    op.build = null_build;
    ck_assert_int_eq(tg_op_check_contract(&op, 1, &r), -1);
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "float64: the build returned NULL"));
    tapegrad_error_clear();
    ck_assert_int_eq(tg_op_check_float32(&op, 1, &r), -1);
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "): the build returned NULL"));
    tapegrad_error_clear();
    ck_assert_int_eq(tg_op_check_float32(NULL, 1, &r), -1);
    ck_assert_error_is("op contract: op is NULL");
    op.sample = NULL;
    ck_assert_int_eq(tg_op_check_float32(&op, 1, &r), -1);
    ck_assert_error_is("op contract: exp has no sample cases");
    op.sample = failing_sample;
    ck_assert_int_eq(tg_op_check_float32(&op, 1, &r), -1);
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "): the sample failed"));
    tapegrad_error_clear();
}
END_TEST

Suite *contract_suite(void) {
    Suite *s = suite_create("op_contract");
    TCase *tc = tcase_create("contract");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_every_registered_op_keeps_the_vjp_contract);
    tcase_add_test(tc, test_every_case_passes_tight_tolerances_30_seeds);
    tcase_add_test(tc, test_reshape_that_assigns_is_caught);
    tcase_add_test(tc, test_matmul_with_beta_zero_is_caught);
    tcase_add_test(tc, test_vjp_writing_its_input_is_caught);
    tcase_add_test(tc, test_vjp_writing_a_saved_tensor_is_caught);
    tcase_add_test(tc, test_vjp_writing_its_upstream_gradient_is_caught);
    tcase_add_test(tc, test_vjp_writing_the_output_is_caught);
    tcase_add_test(tc, test_non_deterministic_vjp_is_caught);
    tcase_add_test(tc, test_gradient_depending_on_other_inputs_is_caught);
    tcase_add_test(tc, test_fresh_op_that_adds_is_caught);
    tcase_add_test(tc, test_fresh_op_that_leaves_the_flag_is_caught);
    tcase_add_test(tc, test_unflagged_op_gets_zeroed_fresh_buffers);
    tcase_add_test(tc, test_every_op_float32_matches_float64_20_seeds);
    tcase_add_test(tc, test_logsumexp_float32_gradient_near_1000);
    tcase_add_test(tc, test_vjp_wrong_only_in_float32_is_caught);
    tcase_add_test(tc, test_lenet5_sized_kernels_keep_the_contract_and_match_float64);
    tcase_add_test(tc, test_fresh_arena_memory_is_nan_in_tests);
    tcase_add_test(tc, test_vjp_reading_uninitialised_memory_fails);
    tcase_add_test(tc, test_contract_errors);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(contract_suite)
