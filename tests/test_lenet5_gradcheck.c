/* test_lenet5_gradcheck.c - whole-LeNet-5 checks beyond the full-mode one in
 * test_gradcheck.c: fast mode on the whole graph must pass on its probes
 * alone (a probe that fails on a correct graph is a false alarm that costs a
 * full check), and a parameter used twice is checked through both uses. */
#include <string.h>

#include "check_main.h"

/* inputs: the 10 parameters in state_dict order, then x [2,1,28,28], then
 * labels (int64, not checked). */
static tensor *lenet5_loss_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    return nn_lenet5_loss_with(in, in[NN_LENET5_NPARAMS], in[NN_LENET5_NPARAMS + 1]);
}

typedef struct {
    nn_lenet5 *net;
    tensor *in[NN_LENET5_NPARAMS + 2];
} lenet5_case;

static void case_make(lenet5_case *c, uint64_t seed) {
    tapegrad_set_threads(1); /* the check's figure is for one core */
    c->net = nn_lenet5_new(DTYPE_F64, seed);
    ck_assert_ptr_nonnull(c->net);
    for (int i = 0; i < NN_LENET5_NPARAMS; i++) c->in[i] = c->net->model->params[i];
    rng g;
    rng_seed(&g, seed, 7);
    c->in[NN_LENET5_NPARAMS] = tensor_randn(&g, DTYPE_F64, SHAPE(2, 1, 28, 28), 0, 1);
    c->in[NN_LENET5_NPARAMS + 1] = tensor_from_doubles(DTYPE_I64, SHAPE(2), (double[]){3, 7});
}

static void case_free(lenet5_case *c) {
    tensor_free(c->in[NN_LENET5_NPARAMS]);
    tensor_free(c->in[NN_LENET5_NPARAMS + 1]);
    nn_lenet5_free(c->net);
    tape_release();
}


START_TEST(test_lenet5_whole_graph_fast_check) {
    lenet5_case c;
    case_make(&c, 6);
    gradcheck_options opt = gradcheck_defaults();
    opt.fast = true;
    gradcheck_report rep;
    ck_assert_int_eq(gradcheck(lenet5_loss_fn, NULL, c.in, NN_LENET5_NPARAMS + 2, &opt, &rep), 0);
    if (rep.evaluations >= 2000) gradcheck_report_print(stderr, &rep);
    ck_assert_msg(rep.passed, "%s", rep.message);
    ck_assert_int_lt(rep.evaluations, 2000); /* probes only: no fallback to the full check */
    case_free(&c);
    gradcheck_report_free(&rep);
}
END_TEST

/* f3.bias enters the graph twice: inside the network and in a scale factor
 * sum(f3.bias^2) that multiplies the loss. The tape's gradient must sum both
 * paths for the check to pass. */
static tensor *lenet5_loss_scaled_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    (void)ctx;
    tensor *loss = nn_lenet5_loss_with(in, in[NN_LENET5_NPARAMS], in[NN_LENET5_NPARAMS + 1]);
    return tensor_mul(loss, tensor_sum_all(tensor_square(in[NN_LENET5_NPARAMS - 1])));
}

START_TEST(test_lenet5_reused_parameter_still_checked) {
    lenet5_case c;
    case_make(&c, 8);
    gradcheck_options opt = gradcheck_defaults();
    opt.check_mask = 1u << (NN_LENET5_NPARAMS - 1); /* f3.bias only */
    gradcheck_report rep;
    ck_assert_int_eq(gradcheck(lenet5_loss_scaled_fn, NULL, c.in, NN_LENET5_NPARAMS + 2, &opt, &rep), 0);
    ck_assert_msg(rep.passed, "%s", rep.message);
    ck_assert(rep.input[NN_LENET5_NPARAMS - 1].checked);
    ck_assert(!rep.input[0].checked);
    case_free(&c);
    gradcheck_report_free(&rep);
}
END_TEST

Suite *lenet5_gradcheck_suite(void) {
    Suite *s = suite_create("lenet5_gradcheck");
    TCase *tc = tcase_create("lenet5_gradcheck");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_lenet5_whole_graph_fast_check);
    tcase_add_test(tc, test_lenet5_reused_parameter_still_checked);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(lenet5_gradcheck_suite)
