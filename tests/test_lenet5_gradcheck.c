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

/* ------------------------------------------------------ gradcheck_model */
/* The user's own loss code, unchanged: it reaches the model through ctx. */
static tensor *lenet5_model_loss(tensor *const *batch, int n, void *ctx) {
    (void)n;
    return nn_lenet5_loss(ctx, batch[0], batch[1]);
}

/* A byte image of everything the check may touch: each state tensor's
 * struct and data, its grad's data, and the model's rng. */
typedef struct {
    tensor head[NN_LENET5_NPARAMS];
    void *data[NN_LENET5_NPARAMS], *grad[NN_LENET5_NPARAMS];
    rng g;
} model_image;

static void image_take(const nn_model *m, model_image *im) {
    for (int i = 0; i < m->n_params; i++) {
        const tensor *t = m->params[i];
        size_t bytes = (size_t)t->size * sizeof(float);
        im->head[i] = *t;
        im->data[i] = malloc(bytes);
        memcpy(im->data[i], t->data, bytes);
        im->grad[i] = malloc(bytes);
        memcpy(im->grad[i], t->grad->data, bytes);
    }
    im->g = m->rng;
}

static void image_assert_same_and_free(const nn_model *m, model_image *im) {
    for (int i = 0; i < m->n_params; i++) {
        const tensor *t = m->params[i];
        size_t bytes = (size_t)t->size * sizeof(float);
        ck_assert_msg(memcmp(&im->head[i], t, sizeof *t) == 0, "%s: tensor struct changed",
                      m->param_names[i]);
        ck_assert_msg(memcmp(im->data[i], t->data, bytes) == 0, "%s: data changed",
                      m->param_names[i]);
        ck_assert_msg(memcmp(im->grad[i], t->grad->data, bytes) == 0, "%s: grad changed",
                      m->param_names[i]);
        free(im->data[i]);
        free(im->grad[i]);
    }
    ck_assert(memcmp(&im->g, &m->rng, sizeof im->g) == 0);
}

/* nn_lenet5_new's float32 model, checked as it is by gradcheck_model in full
 * mode (the ten parameters and the input, 63,274 numbers, in float64), with
 * .grad already holding a training step's gradient: the check passes and
 * the model comes back bit-identical, grads included. */
START_TEST(test_gradcheck_model_lenet5_passes_and_restores_bit_identical) {
    tapegrad_set_threads(1);
    nn_lenet5 *net = nn_lenet5_new(DTYPE_F32, 21);
    ck_assert_ptr_nonnull(net);
    rng g;
    rng_seed(&g, 21, 5);
    tensor *batch[2] = {tensor_rand(&g, DTYPE_F32, SHAPE(2, 1, 28, 28), 0.0, 1.0),
                        tensor_from_doubles(DTYPE_I64, SHAPE(2), (double[]){4, 9})};
    ck_assert_int_eq(tensor_backward(nn_lenet5_loss(net, batch[0], batch[1])), 0);
    tape_reset();
    model_image im;
    image_take(net->model, &im);
    gradcheck_report r;
    ck_assert_int_eq(gradcheck_model(net->model, lenet5_model_loss, net, batch, 2, NULL, &r), 0);
    ck_assert_msg(r.passed, "%s", r.message);
    ck_assert_int_eq(r.n_inputs, NN_LENET5_NPARAMS + 2);
    for (int i = 0; i <= NN_LENET5_NPARAMS; i++)
        ck_assert(r.input[i].checked && r.input[i].passed && !r.input[i].rerun);
    ck_assert(!r.input[NN_LENET5_NPARAMS + 1].checked); /* the labels */
    ck_assert_int_eq(r.evaluations, 2 * 63274 + NN_LENET5_NPARAMS + 1);
    ck_assert_double_le(r.max_abs_err, 1e-8); /* float64 differences, not float32 */
    image_assert_same_and_free(net->model, &im);
    ck_assert_int_eq(batch[0]->dtype, DTYPE_F32);
    gradcheck_report_free(&r);
    tensor_free(batch[0]);
    tensor_free(batch[1]);
    nn_lenet5_free(net);
    tape_release();
}
END_TEST

/* A wrong loss written on top of the model (the logits standardised with a
 * mean taken in a no-grad scope) is caught through the model too, and the
 * model is restored after a failing check as after a passing one. */
static tensor *lenet5_model_loss_nograd(tensor *const *batch, int n, void *ctx) {
    (void)n;
    tensor *logits = nn_lenet5_forward(ctx, batch[0]);
    tape_no_grad_begin();
    tensor *m = tensor_mean_all(logits);
    tape_no_grad_end();
    return tensor_cross_entropy(tensor_mul(tensor_sub(logits, m), m), batch[1], NULL, 0.0,
                                REDUCTION_MEAN);
}

START_TEST(test_gradcheck_model_catches_wrong_loss_and_restores) {
    tapegrad_set_threads(1);
    nn_lenet5 *net = nn_lenet5_new(DTYPE_F32, 22);
    rng g;
    rng_seed(&g, 22, 5);
    tensor *batch[2] = {tensor_rand(&g, DTYPE_F32, SHAPE(1, 1, 28, 28), 0.0, 1.0),
                        tensor_from_doubles(DTYPE_I64, SHAPE(1), (double[]){2})};
    ck_assert_int_eq(tensor_backward(nn_lenet5_loss(net, batch[0], batch[1])), 0);
    tape_reset();
    model_image im;
    image_take(net->model, &im);
    gradcheck_options o = gradcheck_defaults();
    o.fast = true;
    o.check_mask = 1u << (NN_LENET5_NPARAMS - 1); /* f3.bias: cheap to re-run */
    gradcheck_report r;
    ck_assert_int_eq(gradcheck_model(net->model, lenet5_model_loss_nograd, net, batch, 2, &o, &r), 0);
    ck_assert(!r.passed);
    ck_assert_msg(r.input[NN_LENET5_NPARAMS - 1].off_tape, "%s", r.message);
    ck_assert_msg(strstr(r.message, "not recorded (run in a no-grad scope") != NULL, "%s", r.message);
    image_assert_same_and_free(net->model, &im);
    gradcheck_report_free(&r);
    tensor_free(batch[0]);
    tensor_free(batch[1]);
    nn_lenet5_free(net);
    tape_release();
}
END_TEST

START_TEST(test_gradcheck_model_refusals) {
    nn_lenet5 *net = nn_lenet5_new(DTYPE_F32, 23);
    tensor *x = tensor_zeros(DTYPE_F32, SHAPE(1, 1, 28, 28));
    tensor *batch[2] = {x, NULL};
    gradcheck_report r;
    tapegrad_error_clear();
    ck_assert_int_eq(gradcheck_model(NULL, lenet5_model_loss, net, batch, 1, NULL, &r), -1);
    ck_assert_str_eq(tapegrad_error(), "gradcheck_model: model is NULL");
    tapegrad_error_clear();
    ck_assert_int_eq(gradcheck_model(net->model, NULL, net, batch, 1, NULL, &r), -1);
    ck_assert_str_eq(tapegrad_error(), "gradcheck_model: fn is NULL");
    tapegrad_error_clear();
    ck_assert_int_eq(gradcheck_model(net->model, lenet5_model_loss, net, batch, 25, NULL, &r), -1);
    const char *too_many =
        "gradcheck_model: 10 parameters, 0 buffers and 25 batch tensors: 35 inputs (at most 32)";
    ck_assert_str_eq(tapegrad_error(), too_many);
    tapegrad_error_clear();
    batch[1] = tensor_relu(x); /* an op output: the check's tape reset would release it */
    ck_assert_int_eq(gradcheck_model(net->model, lenet5_model_loss, net, batch, 2, NULL, &r), -1);
    ck_assert_str_eq(tapegrad_error(), "gradcheck_model: batch[1] is tape-owned (an op output);"
                                       " the check resets the tape, which would release it: pass"
                                       " a user-owned tensor (tensor_clone)");
    ck_assert_ptr_null(r.message);
    tapegrad_error_clear();
    tape_reset();
    tensor_free(x);
    nn_lenet5_free(net);
}
END_TEST

Suite *lenet5_gradcheck_suite(void) {
    Suite *s = suite_create("lenet5_gradcheck");
    TCase *tc = tcase_create("lenet5_gradcheck");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_lenet5_whole_graph_fast_check);
    tcase_add_test(tc, test_lenet5_reused_parameter_still_checked);
    tcase_add_test(tc, test_gradcheck_model_lenet5_passes_and_restores_bit_identical);
    tcase_add_test(tc, test_gradcheck_model_catches_wrong_loss_and_restores);
    tcase_add_test(tc, test_gradcheck_model_refusals);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(lenet5_gradcheck_suite)
