/* test_gradcheck_user.c - the checker on user functions written the way
 * people write them. Each wrong one reaches its output through a value the
 * tape does not hold (a no-grad scope, tensor_item, tensor_get, a clone,
 * data edited in place), so replaying the tape differentiates another
 * function than the one written: replay verification (opt.replay AUTO, the
 * default) must notice, name where the value enters, re-run fn instead and
 * fail with the right cause. Correct functions that use no-grad scopes for
 * values that do not depend on the checked inputs must still pass, and
 * correct functions must pass for 100 seeds. */
#include <string.h>

#include "check_main.h"

/* ------------------------------------------------------------ helpers */
/* Tensors a function makes off the tape (user-owned), freed after the check. */
typedef struct {
    tensor *made[4096];
    int n;
} made_list;

static tensor *keep(made_list *l, tensor *t) {
    if (l && l->n < 4096) l->made[l->n++] = t;
    return t;
}

static void made_free(made_list *l) {
    for (int i = 0; i < l->n; i++) tensor_free(l->made[i]);
    l->n = 0;
}

/* Seeded, non-uniform values in [lo, hi), kept at least 0.05 from 0. */
static tensor *values(uint64_t seed, int64_t n, double lo, double hi) {
    rng g;
    rng_seed(&g, seed, 17);
    tensor *t = tensor_new(DTYPE_F64, SHAPE(n));
    for (int64_t i = 0; i < n; i++) {
        double v;
        do v = lo + (hi - lo) * rng_uniform(&g);
        while (fabs(v) < 0.05);
        tensor_set(t, i, v);
    }
    return t;
}

static void assert_has(const gradcheck_report *r, const char *what) {
    ck_assert_msg(strstr(r->message, what) != NULL, "expected \"%s\" in: %s", what, r->message);
}

/* The common verdict of a wrong function: input 0 (x) was found to reach the
 * output off the tape, was re-run, and failed on values; nothing is blamed
 * on a kink; the cause is in the message. */
static void assert_off_tape_failure(const gradcheck_report *r, const char *cause) {
    ck_assert_msg(!r->passed, "a wrong function passed: %s", r->message);
    ck_assert(!r->fn_nondeterministic);
    ck_assert_msg(r->input[0].off_tape && r->input[0].rerun, "%s", r->message);
    ck_assert_int_ge(r->input[0].off_tape_node, 0);
    ck_assert_msg(!r->input[0].passed && !r->input[0].vacuous, "%s", r->message);
    ck_assert_int_ge(r->input[0].worst_index, 0);
    assert_has(r, "input 0 reaches the output off the tape");
    assert_has(r, "input 0 is checked by calling fn for every perturbation");
    assert_has(r, cause);
    ck_assert_msg(strstr(r->message, "kink") == NULL, "%s", r->message);
}

static int check2(gradcheck_fn fn, void *ctx, tensor *x, tensor *w, gradcheck_report *r) {
    tensor *in[2] = {x, w};
    return gradcheck(fn, ctx, in, 2, NULL, r);
}

/* ------------------------------------------------- wrong user functions */
/* L = sum(w * (x - mean(x)) / std(x)) with mean and std computed in a no-grad
 * scope: backward sees w / std only; the true gradient also flows through
 * mean and std. (PyTorch's gradcheck rejects this; replay alone passed it.) */
static tensor *standardise_nograd(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    tape_no_grad_begin();
    tensor *m = tensor_mean_all(in[0]), *s = tensor_std(in[0], NULL, 0, 1, false);
    tape_no_grad_end();
    tensor *y = tensor_div(tensor_sub(in[0], m), s);
    return tensor_sum_all(tensor_mul(y, in[1]));
}

START_TEST(test_standardisation_in_no_grad_scope_fails) {
    tensor *x = values(1, 6, -2, 2), *w = values(2, 6, -1.5, 1.5);
    gradcheck_report r;
    ck_assert_int_eq(check2(standardise_nograd, NULL, x, w, &r), 0);
    assert_off_tape_failure(&r, "the output of an op that was not recorded (run in a no-grad scope");
    /* it enters at the subtraction x - mean, as its second input */
    assert_has(&r, "(sub [6] * []), input 1");
    /* w reaches the output through the tape only: replayed and correct */
    ck_assert(r.input[1].passed && !r.input[1].off_tape && !r.input[1].rerun);
    gradcheck_report_free(&r);
    /* ALWAYS trusts replay: the wrong function passes, as it did before the
     * verification existed (what the option means) */
    gradcheck_options o = gradcheck_defaults();
    o.replay = GRADCHECK_REPLAY_ALWAYS;
    tensor *in[2] = {x, w};
    ck_assert_int_eq(gradcheck(standardise_nograd, NULL, in, 2, &o, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    gradcheck_report_free(&r);
    /* NEVER re-runs fn for every perturbation: fails too, found without probes */
    o.replay = GRADCHECK_REPLAY_NEVER;
    ck_assert_int_eq(gradcheck(standardise_nograd, NULL, in, 2, &o, &r), 0);
    ck_assert(!r.passed && r.input[0].rerun && r.input[1].rerun && !r.input[0].off_tape);
    ck_assert(!r.input[0].passed && r.input[1].passed);
    ck_assert_int_eq(r.fn_calls, 1 + 1 + 2 * 6 * 2); /* record, determinism, 2 per element */
    gradcheck_report_free(&r);
    tensor_free(x);
    tensor_free(w);
}
END_TEST

/* L = sum(w * x / sqrt(tensor_item(sum(x^2)))): the normaliser is a number
 * read from an input-derived value and passed to mul_scalar as a parameter. */
static tensor *item_normaliser(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    double s = tensor_item(tensor_sum_all(tensor_square(in[0])));
    return tensor_sum_all(tensor_mul(tensor_mul_scalar(in[0], 1 / sqrt(s)), in[1]));
}

START_TEST(test_item_normaliser_fails) {
    tensor *x = values(3, 5, -2, 2), *w = values(4, 5, -1.5, 1.5);
    gradcheck_report r;
    ck_assert_int_eq(check2(item_normaliser, NULL, x, w, &r), 0);
    assert_off_tape_failure(&r, "a scalar or integer parameter of the op differs");
    assert_has(&r, "(tensor_item, tensor_get)");
    assert_has(&r, "(mul_scalar [5])");
    ck_assert(r.input[1].passed && !r.input[1].rerun);
    gradcheck_report_free(&r);
    tensor_free(x);
    tensor_free(w);
}
END_TEST

/* Straight-through estimator: y = x + nograd(sign(x) - x), forward sign(x),
 * backward the identity. sign is flat away from 0: the true gradient of
 * sum(w * sign(x)) is 0, the tape's is w. */
static tensor *straight_through(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    tape_no_grad_begin();
    tensor *d = tensor_sub(tensor_sign(in[0]), in[0]);
    tape_no_grad_end();
    return tensor_sum_all(tensor_mul(tensor_add(in[0], d), in[1]));
}

START_TEST(test_straight_through_estimator_fails) {
    tensor *x = values(5, 6, -2, 2), *w = values(6, 6, -1.5, 1.5);
    gradcheck_report r;
    ck_assert_int_eq(check2(straight_through, NULL, x, w, &r), 0);
    assert_off_tape_failure(&r, "not recorded (run in a no-grad scope");
    assert_has(&r, "(add [6] * [6]), input 1");
    /* the re-run's numeric gradient is the true one, 0 */
    ck_assert_close(r.input[0].worst_numeric, 0, 1e-9);
    ck_assert_close(r.input[0].worst_analytic, tensor_get(w, r.input[0].worst_index), 1e-12);
    gradcheck_report_free(&r);
    tensor_free(x);
    tensor_free(w);
}
END_TEST

/* An op's output edited in place: y = x * w, then y[1] = 0.5, L = sum(y^2).
 * The function is constant in x[1] and w[1]; the tape's vjps do not know. */
static tensor *edits_output(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    tensor *y = tensor_mul(in[0], in[1]);
    if (y) ((double *)y->data)[1] = 0.5;
    return tensor_sum_all(tensor_square(y));
}

START_TEST(test_output_edited_in_place_fails_with_the_truth) {
    tensor *x = values(7, 4, -2, 2), *w = values(8, 4, -1.5, 1.5);
    gradcheck_report r;
    ck_assert_int_eq(check2(edits_output, NULL, x, w, &r), 0);
    assert_off_tape_failure(&r, "fn changed the op's output after the op computed it (data edited"
                                " in place)");
    assert_has(&r, "node 0 (mul [4] * [4])");
    ck_assert_int_eq(r.input[0].off_tape_node, 0);
    ck_assert(r.input[1].off_tape && !r.input[1].passed); /* w reaches y[1] too */
    /* element 1 is the wrong one: numeric 0 (constant), analytic 2 * 0.5 * w[1] */
    ck_assert_int_eq(r.input[0].worst_index, 1);
    ck_assert_close(r.input[0].worst_numeric, 0, 1e-9);
    ck_assert_close(r.input[0].worst_analytic, tensor_get(w, 1), 1e-12);
    /* localisation ran (not skipped as a kink) and blames no vjp */
    ck_assert(!r.localized);
    assert_has(&r, "the disagreement comes from the dependence off the tape named below");
    gradcheck_report_free(&r);
    tensor_free(x);
    tensor_free(w);
}
END_TEST

/* A value read with tensor_get and fed back as a constant tensor:
 * h = x * x, L = sum(h * full(h[0])): the tape misses d h[0] / d x[0]. */
static tensor *get_fed_back(tensor *const *in, int n, void *ctx) {
    (void)n;
    tensor *h = tensor_mul(in[0], in[0]);
    tensor *c = keep(ctx, tensor_full(DTYPE_F64, SHAPE(h ? h->size : 1), tensor_get(h, 0)));
    return tensor_sum_all(tensor_mul(tensor_mul(h, c), in[1]));
}

START_TEST(test_value_read_with_get_and_fed_back_fails) {
    made_list *made = calloc(1, sizeof *made);
    tensor *x = values(9, 4, -2, 2), *w = values(10, 4, -1.5, 1.5);
    gradcheck_report r;
    ck_assert_int_eq(check2(get_fed_back, made, x, w, &r), 0);
    assert_off_tape_failure(&r, "a tensor made off the tape (tensor_from_data, tensor_full,"
                                " tensor_clone, ...)");
    assert_has(&r, "(mul [4] * [4]), input 1");
    ck_assert_int_eq(r.input[0].worst_index, 0); /* only x[0] feeds the constant */
    gradcheck_report_free(&r);
    made_free(made);
    free(made);
    tensor_free(x);
    tensor_free(w);
}
END_TEST

/* A detached branch built by cloning: h = tanh(x), L = sum(w * h * clone(h)).
 * The tape sees w * clone(h) * (1 - h^2), the function 2 w h (1 - h^2). */
static tensor *cloned_branch(tensor *const *in, int n, void *ctx) {
    (void)n;
    tensor *h = tensor_tanh(in[0]);
    tensor *d = keep(ctx, tensor_clone(h));
    return tensor_sum_all(tensor_mul(tensor_mul(h, d), in[1]));
}

START_TEST(test_detached_clone_branch_fails) {
    made_list *made = calloc(1, sizeof *made);
    tensor *x = values(11, 5, -1.5, 1.5), *w = values(12, 5, -1.5, 1.5);
    gradcheck_report r;
    ck_assert_int_eq(check2(cloned_branch, made, x, w, &r), 0);
    assert_off_tape_failure(&r, "a tensor made off the tape");
    assert_has(&r, "(mul [5] * [5]), input 1");
    /* analytic is half the numeric gradient at every element */
    ck_assert_close(r.input[0].worst_analytic, r.input[0].worst_numeric / 2, 1e-7);
    ck_assert(r.input[1].passed && !r.input[1].rerun);
    gradcheck_report_free(&r);
    made_free(made);
    free(made);
    tensor_free(x);
    tensor_free(w);
}
END_TEST

/* fn draws a dropout mask from a generator it does not reseed: two calls at
 * the same inputs differ. Its own verdict, naming the dropout node; ALWAYS
 * checks the tape as recorded (one mask) and passes. */
static rng dropout_rng;
static tensor *unseeded_dropout(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    return tensor_sum_all(tensor_mul(tensor_dropout(in[0], 0.5, true, &dropout_rng), in[1]));
}

START_TEST(test_nondeterministic_fn_gets_its_own_verdict) {
    rng_seed(&dropout_rng, 3, 0);
    tensor *x = values(13, 8, -2, 2), *w = values(14, 8, -1.5, 1.5);
    gradcheck_report r;
    ck_assert_int_eq(check2(unseeded_dropout, NULL, x, w, &r), 0);
    ck_assert(!r.passed && r.fn_nondeterministic);
    assert_has(&r, "fn is not deterministic");
    assert_has(&r, "node 0 (dropout [8]): a tensor the op saved differs");
    assert_has(&r, "GRADCHECK_REPLAY_ALWAYS");
    gradcheck_report_free(&r);
    gradcheck_options o = gradcheck_defaults();
    o.replay = GRADCHECK_REPLAY_ALWAYS;
    tensor *in[2] = {x, w};
    ck_assert_int_eq(gradcheck(unseeded_dropout, NULL, in, 2, &o, &r), 0);
    ck_assert_msg(r.passed && !r.fn_nondeterministic, "%s", r.message);
    gradcheck_report_free(&r);
    tensor_free(x);
    tensor_free(w);
}
END_TEST

/* ------------------------------------------------ correct functions pass */
/* No-grad scopes for values that do not depend on the checked inputs: a
 * scale from an unchecked input c, a mask from a constant in ctx, and a
 * number read with tensor_item from c. L = sum(w * x * exp(c) * mask) * k. */
static tensor *nograd_constants(tensor *const *in, int n, void *ctx) {
    (void)n;
    tensor *mask_src = ctx;
    tape_no_grad_begin();
    tensor *scale = tensor_exp(in[2]);
    tensor *mask = tensor_abs(tensor_sign(mask_src)); /* ones and zeros */
    double k = tensor_item(tensor_mean_all(in[2]));
    tape_no_grad_end();
    tensor *y = tensor_mul(tensor_mul(tensor_mul(in[0], in[1]), scale), mask);
    return tensor_mul_scalar(tensor_sum_all(y), 1 + k * k);
}

START_TEST(test_nograd_values_independent_of_checked_inputs_pass) {
    tensor *in[3] = {values(15, 6, -2, 2), values(16, 6, -1.5, 1.5), values(17, 6, -1, 1)};
    tensor *mask_src = tensor_from_doubles(DTYPE_F64, SHAPE(6), (double[]){1, 0, 2, -1, 0, 3});
    gradcheck_options o = gradcheck_defaults();
    o.check_mask = 3; /* x and w; c is a constant of the check */
    gradcheck_report r;
    ck_assert_int_eq(gradcheck(nograd_constants, mask_src, in, 3, &o, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    for (int i = 0; i < 2; i++) ck_assert(!r.input[i].off_tape && !r.input[i].rerun);
    ck_assert_int_eq(r.fn_calls, 1 + 1 + 2 * 3); /* record, determinism, 3 probes per input */
    gradcheck_report_free(&r);
    /* checked as well, c reaches the output off the tape (exp in a no-grad
     * scope): found, re-run, and the check fails as it must */
    o.check_mask = 7;
    ck_assert_int_eq(gradcheck(nograd_constants, mask_src, in, 3, &o, &r), 0);
    ck_assert(!r.passed && r.input[2].off_tape && !r.input[0].off_tape);
    gradcheck_report_free(&r);
    for (int i = 0; i < 3; i++) tensor_free(in[i]);
    tensor_free(mask_src);
}
END_TEST

/* The correct standardisation (mean and std on the tape), a small MLP with a
 * cross-entropy loss, and the no-grad-constants function above: 100 seeds
 * (values and upstream gradient) each, no false alarm and no input sent to
 * re-runs. */
static tensor *standardise(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    tensor *m = tensor_mean_all(in[0]), *s = tensor_std(in[0], NULL, 0, 1, false);
    return tensor_sum_all(tensor_mul(tensor_div(tensor_sub(in[0], m), s), in[1]));
}

static tensor *mlp(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx; /* x [4,3], W1 [3,5], b1 [5], W2 [5,3], labels [4] */
    tensor *h = tensor_tanh(tensor_add(tensor_matmul(in[0], in[1]), in[2]));
    return tensor_cross_entropy(tensor_matmul(h, in[3]), in[4], NULL, 0.0, REDUCTION_MEAN);
}

START_TEST(test_correct_functions_pass_100_seeds) {
    tensor *mask_src = tensor_from_doubles(DTYPE_F64, SHAPE(6), (double[]){1, 0, 2, -1, 0, 3});
    for (uint64_t seed = 0; seed < 100; seed++) {
        gradcheck_options o = gradcheck_defaults();
        o.seed = seed;
        gradcheck_report r;
        tensor *in[5] = {values(seed * 7 + 1, 6, -2, 2), values(seed * 7 + 2, 6, -1.5, 1.5),
                         values(seed * 7 + 3, 6, -1, 1)};
        ck_assert_int_eq(gradcheck(standardise, NULL, in, 2, &o, &r), 0);
        ck_assert_msg(r.passed && !r.input[0].rerun, "standardise seed %llu: %s",
                      (unsigned long long)seed, r.message);
        gradcheck_report_free(&r);
        o.check_mask = 3;
        ck_assert_int_eq(gradcheck(nograd_constants, mask_src, in, 3, &o, &r), 0);
        ck_assert_msg(r.passed && !r.input[0].rerun && !r.input[1].rerun,
                      "nograd_constants seed %llu: %s", (unsigned long long)seed, r.message);
        gradcheck_report_free(&r);
        for (int i = 0; i < 3; i++) tensor_free(in[i]);

        rng g;
        rng_seed(&g, seed, 29);
        in[0] = tensor_randn(&g, DTYPE_F64, SHAPE(4, 3), 0, 1);
        in[1] = tensor_randn(&g, DTYPE_F64, SHAPE(3, 5), 0, 0.7);
        in[2] = tensor_randn(&g, DTYPE_F64, SHAPE(5), 0, 0.3);
        in[3] = tensor_randn(&g, DTYPE_F64, SHAPE(5, 3), 0, 0.7);
        in[4] = tensor_new(DTYPE_I64, SHAPE(4));
        for (int i = 0; i < 4; i++) tensor_set(in[4], i, (double)rng_below(&g, 3));
        o.check_mask = 0;
        ck_assert_int_eq(gradcheck(mlp, NULL, in, 5, &o, &r), 0);
        ck_assert_msg(r.passed, "mlp seed %llu: %s", (unsigned long long)seed, r.message);
        for (int i = 0; i < 4; i++) ck_assert(!r.input[i].rerun && !r.input[i].off_tape);
        gradcheck_report_free(&r);
        for (int i = 0; i < 5; i++) tensor_free(in[i]);
    }
    tensor_free(mask_src);
}
END_TEST

/* The whole LeNet-5 (input and ten parameters, 63,274 numbers) in fast mode
 * for 100 seeds: replay verification sends no input to re-runs and raises no
 * alarm on a correct graph. A seed whose sample crosses a relu or max-pool
 * kink (a failing probe, then a full check whose every failing element sits
 * on a kink) is the sample's verdict, not an alarm: at most a few in 100. */
static tensor *lenet5_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    return nn_lenet5_loss_with(in, in[NN_LENET5_NPARAMS], in[NN_LENET5_NPARAMS + 1]);
}

START_TEST(test_lenet5_replay_verified_without_false_alarm) {
    tapegrad_set_threads(1);
    int kinked = 0;
    for (uint64_t seed = 0; seed < 100; seed++) {
        nn_lenet5 *net = nn_lenet5_new(DTYPE_F64, seed);
        ck_assert_ptr_nonnull(net);
        tensor *in[NN_LENET5_NPARAMS + 2];
        for (int i = 0; i < NN_LENET5_NPARAMS; i++) in[i] = net->model->params[i];
        rng g;
        rng_seed(&g, seed, 31);
        in[NN_LENET5_NPARAMS] = tensor_randn(&g, DTYPE_F64, SHAPE(2, 1, 28, 28), 0, 1);
        in[NN_LENET5_NPARAMS + 1] = tensor_from_doubles(DTYPE_I64, SHAPE(2), (double[]){3, 7});
        gradcheck_options o = gradcheck_defaults();
        o.fast = true;
        o.seed = seed;
        gradcheck_report r;
        ck_assert_int_eq(gradcheck(lenet5_fn, NULL, in, NN_LENET5_NPARAMS + 2, &o, &r), 0);
        bool kink = !r.passed && strstr(r.message, "every failing element sits on a kink");
        kinked += kink;
        ck_assert_msg(r.passed || kink, "seed %llu: %s", (unsigned long long)seed, r.message);
        ck_assert(!r.fn_nondeterministic);
        for (int i = 0; i <= NN_LENET5_NPARAMS; i++) ck_assert(!r.input[i].rerun && !r.input[i].off_tape);
        ck_assert_int_eq(r.fn_calls, 1 + 1 + 3 * (NN_LENET5_NPARAMS + 1));
        gradcheck_report_free(&r);
        tensor_free(in[NN_LENET5_NPARAMS]);
        tensor_free(in[NN_LENET5_NPARAMS + 1]);
        nn_lenet5_free(net);
    }
    printf("LeNet-5, 100 seeds, fast mode: %d seeds on a kink\n", kinked);
    ck_assert_int_le(kinked, 5);
    tape_release();
}
END_TEST

Suite *gradcheck_user_suite(void) {
    Suite *s = suite_create("gradcheck_user");
    TCase *wrong = tcase_create("wrong");
    tcase_add_test(wrong, test_standardisation_in_no_grad_scope_fails);
    tcase_add_test(wrong, test_item_normaliser_fails);
    tcase_add_test(wrong, test_straight_through_estimator_fails);
    tcase_add_test(wrong, test_output_edited_in_place_fails_with_the_truth);
    tcase_add_test(wrong, test_value_read_with_get_and_fed_back_fails);
    tcase_add_test(wrong, test_detached_clone_branch_fails);
    tcase_add_test(wrong, test_nondeterministic_fn_gets_its_own_verdict);
    suite_add_tcase(s, wrong);
    TCase *right = tcase_create("right");
    tcase_set_timeout(right, 120);
    tcase_add_test(right, test_nograd_values_independent_of_checked_inputs_pass);
    tcase_add_test(right, test_correct_functions_pass_100_seeds);
    tcase_add_test(right, test_lenet5_replay_verified_without_false_alarm);
    suite_add_tcase(s, right);
    return s;
}

TEST_MAIN(gradcheck_user_suite)
