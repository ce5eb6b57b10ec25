/* test_nn_layers.c - each layer's names, default init and forward against
 * values worked out by hand; initialiser statistics; layer errors. */
#include <string.h>

#include "check_main.h"

/* The pending message contains want; then clear it. */
#define ck_error_has(want)                                                                    \
    do {                                                                                      \
        const char *_e = tapegrad_error();                                                    \
        ck_assert_msg(_e && strstr(_e, want), "error \"%s\" should contain \"%s\"",           \
                      _e ? _e : "(none)", want);                                              \
        tapegrad_error_clear();                                                               \
    } while (0)

static void fill(tensor *t, const double *v) {
    for (int64_t i = 0; i < t->size; i++) tensor_set(t, i, v[i]);
}

static void state_names(const nn_model *m, const char *const *want, int n) {
    ck_assert_int_eq(nn_model_state_count(m), n);
    for (int i = 0; i < n; i++) {
        const char *name;
        nn_model_state_at(m, i, &name, NULL);
        ck_assert_str_eq(name, want[i]);
    }
}

/* y = x W^T + b: [1, 2] with W = [[1, 0.5], [-1, 2]], b = [0.1, -0.2]
 * gives [1 + 1 + 0.1, -1 + 4 - 0.2] = [2.1, 2.8]. */
START_TEST(test_linear_forward_by_hand) {
    nn_model *m = nn_model_new(DTYPE_F64, 0);
    nn_linear l, nob;
    ck_assert_int_eq(nn_linear_init(&l, m, "fc", 2, 2, true), 0);
    ck_assert_int_eq(nn_linear_init(&nob, m, "head", 2, 3, false), 0);
    ck_assert_ptr_null(nob.bias);
    state_names(m, (const char *[]){"fc.weight", "fc.bias", "head.weight"}, 3);
    fill(l.weight, (double[]){1, 0.5, -1, 2});
    fill(l.bias, (double[]){0.1, -0.2});
    tensor *x = tensor_from_doubles(DTYPE_F64, SHAPE(1, 2), (double[]){1, 2});
    ck_assert_tensor(nn_linear_forward(&l, x), ((double[]){2.1, 2.8}), 1e-12);
    tape_reset();
    tensor_free(x);
    nn_model_free(m);
}
END_TEST

/* 2x2 kernel [[1, 2], [0, -1]], bias 0.5 over x = 1..9 (3x3):
 * y00 = 1 + 4 - 5 + 0.5 = 0.5, y01 = 2 + 6 - 6 + 0.5 = 2.5,
 * y10 = 4 + 10 - 8 + 0.5 = 6.5, y11 = 5 + 12 - 9 + 0.5 = 8.5. */
START_TEST(test_conv2d_forward_by_hand) {
    nn_model *m = nn_model_new(DTYPE_F64, 0);
    nn_conv2d c;
    ck_assert_int_eq(nn_conv2d_init(&c, m, "conv", 1, 1, 2, CONV2D_DEFAULT, true), 0);
    state_names(m, (const char *[]){"conv.weight", "conv.bias"}, 2);
    ck_assert_int_eq(c.weight->ndim, 4);
    fill(c.weight, (double[]){1, 2, 0, -1});
    fill(c.bias, (double[]){0.5});
    tensor *x = tensor_arange(DTYPE_F64, 1, 10, 1);
    tensor *x4 = tensor_from_data(DTYPE_F64, SHAPE(1, 1, 3, 3), x->data);
    ck_assert_tensor(nn_conv2d_forward(&c, x4), ((double[]){0.5, 2.5, 6.5, 8.5}), 1e-12);
    tape_reset();
    tensor_free(x);
    tensor_free(x4);
    nn_model_free(m);
}
END_TEST

/* x = 1..16 as 4x4, 2x2 windows: max [6, 8, 14, 16], mean [3.5, 5.5, 11.5, 13.5]. */
START_TEST(test_pools_forward_by_hand) {
    tensor *r = tensor_arange(DTYPE_F64, 1, 17, 1);
    tensor *x = tensor_from_data(DTYPE_F64, SHAPE(1, 1, 4, 4), r->data);
    nn_pool2d p = nn_pool2d_make(2, 0, 0);
    ck_assert_int_eq(p.p.stride[0], 2);
    ck_assert_tensor(nn_max_pool2d_forward(&p, x), ((double[]){6, 8, 14, 16}), 0);
    ck_assert_tensor(nn_avg_pool2d_forward(&p, x), ((double[]){3.5, 5.5, 11.5, 13.5}), 1e-12);
    tape_reset();
    tensor_free(r);
    tensor_free(x);
}
END_TEST

/* x [2, 1, 1, 2] = [1, 3, 5, 7]: batch mean 4, biased variance 5, so train
 * mode gives (x - 4) / sqrt(5 + 1e-5); running_mean = 0.1 * 4 = 0.4,
 * running_var = 0.9 + 0.1 * 20/3 (unbiased) = 1.566667; eval mode then
 * normalises with those. */
START_TEST(test_batchnorm2d_train_and_eval) {
    nn_model *m = nn_model_new(DTYPE_F64, 0);
    nn_batchnorm2d bn;
    ck_assert_int_eq(nn_batchnorm2d_init(&bn, m, "bn", 1), 0);
    state_names(m, (const char *[]){"bn.weight", "bn.bias", "bn.running_mean", "bn.running_var",
                                    "bn.num_batches_tracked"},
                5);
    ck_assert_int_eq(m->n_params, 2);
    ck_assert_tensor(bn.weight, ((double[]){1}), 0);
    ck_assert_tensor(bn.running_var, ((double[]){1}), 0);
    tensor *x = tensor_from_doubles(DTYPE_F64, SHAPE(2, 1, 1, 2), (double[]){1, 3, 5, 7});
    double s = sqrt(5 + 1e-5);
    ck_assert_tensor(nn_batchnorm2d_forward(&bn, x), ((double[]){-3 / s, -1 / s, 1 / s, 3 / s}),
                     1e-12);
    ck_assert_tensor(bn.running_mean, ((double[]){0.4}), 1e-12);
    ck_assert_tensor(bn.running_var, ((double[]){0.9 + 2.0 / 3}), 1e-12);
    ck_assert_int_eq(((int64_t *)bn.num_batches_tracked->data)[0], 1);
    nn_model_train(m, false);
    double e = sqrt(0.9 + 2.0 / 3 + 1e-5);
    ck_assert_tensor(nn_batchnorm2d_forward(&bn, x),
                     ((double[]){0.6 / e, 2.6 / e, 4.6 / e, 6.6 / e}), 1e-12);
    ck_assert_int_eq(((int64_t *)bn.num_batches_tracked->data)[0], 1);
    tape_reset();
    tensor_free(x);
    nn_model_free(m);
}
END_TEST

/* BatchNorm1d on x [3, 2] (channels in the columns): channel 0 = [1, 2, 6]
 * (mean 3, biased variance 14/3, unbiased 7), channel 1 = [-2, 0, 5] (mean 1,
 * biased 26/3, unbiased 13); on [B, C, L] the statistics run over B and L.
 * Eval mode uses the running statistics; ranks other than 2 and 3 (and
 * other than 4 for BatchNorm2d) are refused with the shape. */
START_TEST(test_batchnorm1d_train_eval_and_ranks) {
    nn_model *m = nn_model_new(DTYPE_F64, 0);
    nn_batchnorm1d bn;
    ck_assert_int_eq(nn_batchnorm1d_init(&bn, m, "bn1", 2), 0);
    state_names(m, (const char *[]){"bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var",
                                    "bn1.num_batches_tracked"},
                5);
    tensor_set(bn.weight, 1, 2.0); /* a non-unit scale on channel 1 */
    tensor_set(bn.bias, 0, 0.5);
    tensor *x = tensor_from_doubles(DTYPE_F64, SHAPE(3, 2), (double[]){1, -2, 2, 0, 6, 5});
    double s0 = sqrt(14.0 / 3 + 1e-5), s1 = sqrt(26.0 / 3 + 1e-5);
    ck_assert_tensor(nn_batchnorm1d_forward(&bn, x),
                     ((double[]){-2 / s0 + 0.5, 2 * -3 / s1, -1 / s0 + 0.5, 2 * -1 / s1,
                                 3 / s0 + 0.5, 2 * 4 / s1}),
                     1e-12);
    ck_assert_tensor(bn.running_mean, ((double[]){0.3, 0.1}), 1e-12);
    ck_assert_tensor(bn.running_var, ((double[]){0.9 + 0.7, 0.9 + 1.3}), 1e-12);
    ck_assert_int_eq(((int64_t *)bn.num_batches_tracked->data)[0], 1);
    /* [B, C, L] = [1, 2, 3]: the same numbers laid along L */
    tensor *x3 = tensor_from_doubles(DTYPE_F64, SHAPE(1, 2, 3), (double[]){1, 2, 6, -2, 0, 5});
    ck_assert_tensor(nn_batchnorm1d_forward(&bn, x3),
                     ((double[]){-2 / s0 + 0.5, -1 / s0 + 0.5, 3 / s0 + 0.5, 2 * -3 / s1, 2 * -1 / s1,
                                 2 * 4 / s1}),
                     1e-12);
    nn_model_train(m, false);
    double e0 = sqrt(0.9 * 1.6 + 0.1 * 7 + 1e-5), mu0 = 0.9 * 0.3 + 0.1 * 3;
    tensor *y = nn_batchnorm1d_forward(&bn, x);
    ck_assert_ptr_nonnull(y);
    ck_assert_double_eq_tol(tensor_get(y, 0), (1 - mu0) / e0 + 0.5, 1e-12);
    tensor *x4 = tensor_zeros(DTYPE_F64, SHAPE(1, 2, 3, 1));
    ck_assert_ptr_null(nn_batchnorm1d_forward(&bn, x4));
    ck_error_has("nn_batchnorm1d_forward: x [1,2,3,1] must have 2 or 3 dimensions ([B, C] or [B, C, L])");
    nn_batchnorm2d bn2;
    ck_assert_int_eq(nn_batchnorm2d_init(&bn2, m, "bn2", 2), 0);
    ck_assert_ptr_null(nn_batchnorm2d_forward(&bn2, x3));
    ck_error_has("nn_batchnorm2d_forward: x [1,2,3] must have 4 dimensions [B, C, H, W]");
    ck_assert_int_eq(nn_batchnorm1d_init(&bn, m, "bn3", -1), -1);
    ck_error_has("nn_batchnorm1d_init: channels must be positive, got -1");
    tape_reset();
    tensor_free(x);
    tensor_free(x3);
    tensor_free(x4);
    nn_model_free(m);
}
END_TEST

/* Row [1, 2, 4]: mean 7/3, variance (16 + 1 + 25) / 27 = 42/27. */
START_TEST(test_layernorm_forward_by_hand) {
    nn_model *m = nn_model_new(DTYPE_F64, 0);
    nn_layernorm ln;
    ck_assert_int_eq(nn_layernorm_init(&ln, m, "ln", 1, (int64_t[]){3}), 0);
    state_names(m, (const char *[]){"ln.weight", "ln.bias"}, 2);
    tensor *x = tensor_from_doubles(DTYPE_F64, SHAPE(1, 3), (double[]){1, 2, 4});
    double s = sqrt(42.0 / 27 + 1e-5);
    ck_assert_tensor(nn_layernorm_forward(&ln, x),
                     ((double[]){-4.0 / 3 / s, -1.0 / 3 / s, 5.0 / 3 / s}), 1e-12);
    tape_reset();
    tensor_free(x);
    nn_model_free(m);
}
END_TEST

/* Train mode keeps about half of 2,000 ones, scaled to 2; eval mode is the
 * identity; the same model seed draws the same mask. */
START_TEST(test_dropout_train_eval_and_seed) {
    tensor *x = tensor_ones(DTYPE_F64, SHAPE(2000));
    double kept[2];
    tensor *first = NULL;
    for (int run = 0; run < 2; run++) {
        nn_model *m = nn_model_new(DTYPE_F64, 9);
        nn_dropout d;
        ck_assert_int_eq(nn_dropout_init(&d, m, 0.5), 0);
        tensor *y = nn_dropout_forward(&d, x);
        kept[run] = 0;
        for (int64_t i = 0; i < y->size; i++) {
            double v = tensor_get(y, i);
            ck_assert(v == 0 || v == 2);
            kept[run] += v == 2;
        }
        if (run == 0) first = tensor_clone(y);
        else ck_assert_mem_eq(first->data, y->data, 2000 * sizeof(double));
        nn_model_train(m, false);
        ck_assert_tensor(nn_dropout_forward(&d, x), ((double[2000]){[0 ... 1999] = 1}), 0);
        tape_reset();
        nn_model_free(m);
    }
    ck_assert(kept[0] > 900 && kept[0] < 1100);
    tensor_free(first);
    tensor_free(x);
}
END_TEST

START_TEST(test_embedding_rows) {
    nn_model *m = nn_model_new(DTYPE_F64, 0);
    nn_embedding e;
    ck_assert_int_eq(nn_embedding_init(&e, m, "emb", 5, 3), 0);
    state_names(m, (const char *[]){"emb.weight"}, 1);
    tensor *idx = tensor_from_doubles(DTYPE_I64, SHAPE(2), (double[]){3, 0});
    tensor *y = nn_embedding_forward(&e, idx);
    ck_assert_ptr_nonnull(y);
    for (int j = 0; j < 3; j++) {
        ck_assert_double_eq(tensor_get(y, j), tensor_get(e.weight, 9 + j));
        ck_assert_double_eq(tensor_get(y, 3 + j), tensor_get(e.weight, j));
    }
    tape_reset();
    tensor_free(idx);
    nn_model_free(m);
}
END_TEST

static void moments(const tensor *t, double *mean, double *var, double *maxabs) {
    double s = 0, ss = 0, mx = 0;
    for (int64_t i = 0; i < t->size; i++) {
        double v = tensor_get(t, i);
        s += v, ss += v * v, mx = fmax(mx, fabs(v));
    }
    *mean = s / (double)t->size;
    *var = ss / (double)t->size - *mean * *mean;
    *maxabs = mx;
}

/* fans of [16, 6, 5, 5]: in 6*25 = 150, out 16*25 = 400. Kaiming uniform
 * (a = 0) on [256, 512]: bound sqrt(6/512), variance 2/512. Kaiming normal
 * fan_out on [512, 256]: variance 2/512. Xavier normal on [300, 200]:
 * variance 2/500; xavier uniform gain 2: bound 2 sqrt(6/500). */
START_TEST(test_initialiser_statistics) {
    rng g;
    rng_seed(&g, 5, 5);
    int64_t fi, fo;
    tensor *conv = tensor_zeros(DTYPE_F32, SHAPE(16, 6, 5, 5));
    ck_assert_int_eq(nn_fans(conv, &fi, &fo), 0);
    ck_assert_int_eq(fi, 150);
    ck_assert_int_eq(fo, 400);
    double mean, var, mx;
    tensor *a = tensor_zeros(DTYPE_F64, SHAPE(256, 512));
    nn_init_kaiming_uniform(a, &g, 0, NN_FAN_IN);
    moments(a, &mean, &var, &mx);
    ck_assert(mx <= sqrt(6.0 / 512) && mx > 0.99 * sqrt(6.0 / 512));
    ck_assert_close(var, 2.0 / 512, 0.03 * 2.0 / 512);
    ck_assert_close(mean, 0, 1e-3);
    tensor *b = tensor_zeros(DTYPE_F64, SHAPE(512, 256));
    nn_init_kaiming_normal(b, &g, 0, NN_FAN_OUT);
    moments(b, &mean, &var, &mx);
    ck_assert_close(var, 2.0 / 512, 0.03 * 2.0 / 512);
    tensor *c = tensor_zeros(DTYPE_F64, SHAPE(300, 200));
    nn_init_xavier_normal(c, &g, 1);
    moments(c, &mean, &var, &mx);
    ck_assert_close(var, 2.0 / 500, 0.03 * 2.0 / 500);
    nn_init_xavier_uniform(c, &g, 2);
    moments(c, &mean, &var, &mx);
    ck_assert(mx <= 2 * sqrt(6.0 / 500) && mx > 0.99 * 2 * sqrt(6.0 / 500));
    nn_init_constant(c, 0.25);
    moments(c, &mean, &var, &mx);
    ck_assert_double_eq(mean, 0.25);
    tensor_free(conv);
    tensor_free(a);
    tensor_free(b);
    tensor_free(c);
}
END_TEST

/* The same seed initialises the same model. */
START_TEST(test_model_init_is_seeded) {
    nn_lenet5 *a = nn_lenet5_new(DTYPE_F32, 42), *b = nn_lenet5_new(DTYPE_F32, 42),
              *c = nn_lenet5_new(DTYPE_F32, 43);
    for (int i = 0; i < 10; i++) {
        tensor *pa = a->model->params[i];
        ck_assert_mem_eq(pa->data, b->model->params[i]->data, (size_t)pa->size * 4);
    }
    ck_assert(memcmp(a->model->params[0]->data, c->model->params[0]->data, 4 * 150) != 0);
    ck_assert_ptr_eq(nn_model_find(a->model, "f2.bias"), a->model->params[7]);
    ck_assert_ptr_null(nn_model_find(a->model, "f4.bias"));
    nn_lenet5_free(a);
    nn_lenet5_free(b);
    nn_lenet5_free(c);
}
END_TEST

START_TEST(test_layer_init_errors) {
    nn_model *m = nn_model_new(DTYPE_F32, 0);
    nn_linear lin;
    nn_conv2d conv;
    nn_batchnorm2d bn;
    nn_layernorm ln;
    nn_dropout dr;
    nn_embedding emb;
    tapegrad_error_clear();
    ck_assert_int_eq(nn_linear_init(&lin, NULL, "f", 2, 2, true), -1);
    ck_error_has("nn_linear_init: layer or model is NULL");
    ck_assert_int_eq(nn_linear_init(&lin, m, "f1", 0, 2, true), -1);
    ck_error_has("nn_linear_init: f1: features must be positive, got in 0, out 2");
    ck_assert_int_eq(nn_conv2d_init(&conv, m, "c1", 3, 4, 3, (conv2d_params){.groups = 2}, true),
                     -1);
    ck_error_has("nn_conv2d_init: c1: bad sizes: in 3, out 4, kernel 3, groups 2");
    ck_assert_int_eq(nn_batchnorm2d_init(&bn, m, "bn", 0), -1);
    ck_error_has("nn_batchnorm2d_init: channels must be positive, got 0");
    ck_assert_int_eq(nn_layernorm_init(&ln, m, "ln", 0, NULL), -1);
    ck_error_has("nn_layernorm_init: normalized shape needs 1 to 8 dimensions");
    ck_assert_int_eq(nn_dropout_init(&dr, m, 1.0), -1);
    ck_error_has("nn_dropout_init: p must be in [0, 1), got 1");
    ck_assert_int_eq(nn_embedding_init(&emb, m, "emb", 10, 0), -1);
    ck_error_has("nn_embedding_init: sizes must be positive, got 10 x 0");
    ck_assert_int_eq(m->n_params, 0);
    nn_model_free(m);
}
END_TEST

START_TEST(test_null_layers_and_models) {
    tensor *x = tensor_zeros(DTYPE_F32, SHAPE(1, 1, 4, 4));
    tapegrad_error_clear();
    ck_assert_ptr_null(nn_linear_forward(NULL, x));
    ck_error_has("nn_linear_forward: layer is NULL or not initialised");
    ck_assert_ptr_null(nn_dropout_forward(&(nn_dropout){0}, x));
    ck_error_has("nn_dropout_forward: layer is NULL or not initialised");
    ck_assert_ptr_null(nn_max_pool2d_forward(NULL, x));
    ck_error_has("nn_max_pool2d_forward: layer is NULL or not initialised");
    ck_assert_ptr_null(nn_lenet5_forward(NULL, x));
    ck_error_has("nn_lenet5_forward: model is NULL");
    ck_assert_ptr_null(nn_lenet5_forward_with(NULL, x));
    ck_error_has("nn_lenet5_forward_with: parameter list is NULL");
    ck_assert_int_eq(nn_model_save(NULL, "/tmp/x"), -1);
    ck_error_has("nn_model_save: model is NULL");
    nn_gradflow r;
    ck_assert_int_eq(nn_gradflow_model(NULL, 1e-8, 1e3, &r), -1);
    ck_error_has("nn_gradflow_model: model is NULL");
    tensor_free(x);
}
END_TEST

Suite *nn_layers_suite(void) {
    Suite *s = suite_create("nn_layers");
    TCase *tc = tcase_create("layers");
    tcase_add_test(tc, test_linear_forward_by_hand);
    tcase_add_test(tc, test_conv2d_forward_by_hand);
    tcase_add_test(tc, test_pools_forward_by_hand);
    tcase_add_test(tc, test_batchnorm2d_train_and_eval);
    tcase_add_test(tc, test_batchnorm1d_train_eval_and_ranks);
    tcase_add_test(tc, test_layernorm_forward_by_hand);
    tcase_add_test(tc, test_dropout_train_eval_and_seed);
    tcase_add_test(tc, test_embedding_rows);
    tcase_add_test(tc, test_initialiser_statistics);
    tcase_add_test(tc, test_model_init_is_seeded);
    tcase_add_test(tc, test_layer_init_errors);
    tcase_add_test(tc, test_null_layers_and_models);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(nn_layers_suite)
