/* test_nn_lenet5.c - LeNet-5 as a whole: PyTorch's parameter names and
 * shapes, gradient flow into every parameter, float64 runs on given
 * parameters, checkpoints, flat memory, and a short training run on 2,000
 * Fashion-MNIST images that learns and repeats bit for bit. */
#include <string.h>
#include <unistd.h>

#include "check_main.h"

#define EPOCHS 5

static const char *const names[10] = {"c1.weight", "c1.bias", "c2.weight", "c2.bias",
                                      "f1.weight", "f1.bias", "f2.weight", "f2.bias",
                                      "f3.weight", "f3.bias"};
static const int64_t shapes[10][4] = {{6, 1, 5, 5}, {6}, {16, 6, 5, 5}, {16}, {120, 400},
                                      {120},        {84, 120}, {84},    {10, 84},    {10}};
static const int ndims[10] = {4, 1, 4, 1, 2, 1, 2, 1, 2, 1};

/* A seeded batch of b images [b, 1, 28, 28] and labels in 0..9. */
static void batch(uint64_t seed, dtype dt, int64_t b, tensor **x, tensor **y) {
    rng g;
    rng_seed(&g, seed, 7);
    *x = tensor_randn(&g, dt, SHAPE(b, 1, 28, 28), 0, 1);
    *y = tensor_zeros(DTYPE_I64, SHAPE(b));
    for (int64_t i = 0; i < b; i++) tensor_set(*y, i, (double)rng_below(&g, 10));
}

START_TEST(test_lenet5_state_dict_names_and_shapes) {
    nn_lenet5 *net = nn_lenet5_new(DTYPE_F32, 0);
    ck_assert_ptr_nonnull(net);
    ck_assert_int_eq(nn_model_state_count(net->model), 10);
    for (int i = 0; i < 10; i++) {
        const char *n;
        tensor *t;
        ck_assert_int_eq(nn_model_state_at(net->model, i, &n, &t), 0);
        ck_assert_str_eq(n, names[i]);
        ck_assert_int_eq(t->ndim, ndims[i]);
        for (int d = 0; d < ndims[i]; d++) ck_assert_int_eq(t->shape[d], shapes[i][d]);
        ck_assert(t->requires_grad);
    }
    /* 156 + 2416 + 48120 + 10164 + 850, as torch counts LeNet-5 */
    ck_assert_int_eq(nn_model_numel(net->model), 61706);
    nn_lenet5_free(net);
}
END_TEST

/* PyTorch's default init: weights and biases U(-1/sqrt(fan_in), ..):
 * c1 fan_in 25 (bound 0.2), f1 fan_in 400 (0.05). The extremes come close
 * to the bound and never pass it. */
START_TEST(test_lenet5_default_init_bounds) {
    nn_lenet5 *net = nn_lenet5_new(DTYPE_F64, 3);
    const double bound[10] = {0.2, 0.2, 1 / sqrt(150.0), 1 / sqrt(150.0), 0.05, 0.05,
                              1 / sqrt(120.0), 1 / sqrt(120.0), 1 / sqrt(84.0), 1 / sqrt(84.0)};
    for (int i = 0; i < 10; i++) {
        tensor *t = net->model->params[i];
        double mx = 0;
        for (int64_t k = 0; k < t->size; k++) mx = fmax(mx, fabs(tensor_get(t, k)));
        ck_assert_msg(mx <= bound[i], "%s max %g over %g", names[i], mx, bound[i]);
        if (t->size >= 100) ck_assert_msg(mx > 0.95 * bound[i], "%s max %g", names[i], mx);
    }
    nn_lenet5_free(net);
}
END_TEST

/* After one backward every parameter holds a gradient of its own shape,
 * finite and not zero anywhere as a whole. */
START_TEST(test_lenet5_gradient_reaches_every_parameter) {
    nn_lenet5 *net = nn_lenet5_new(DTYPE_F32, 1);
    tensor *x, *y;
    batch(1, DTYPE_F32, 8, &x, &y);
    tensor *loss = nn_lenet5_loss(net, x, y);
    ck_assert_ptr_nonnull(loss);
    ck_assert_int_eq(tensor_backward(loss), 0);
    nn_gradflow r;
    ck_assert_int_eq(nn_gradflow_model(net->model, 1e-9, 1e3, &r), 0);
    ck_assert_int_eq(r.n, 10);
    for (int i = 0; i < 10; i++) {
        nn_gradflow_entry *e = &r.entries[i];
        ck_assert_str_eq(e->name, names[i]);
        ck_assert_msg(e->has_grad && e->shape_ok && e->finite && !e->all_zero && e->norm > 1e-6,
                      "%s: grad %d shape %d norm %g", e->name, e->has_grad, e->shape_ok, e->norm);
    }
    ck_assert_int_eq(r.n_problems, 0);
    nn_gradflow_free(&r);
    tape_reset();
    tensor_free(x);
    tensor_free(y);
    nn_lenet5_free(net);
}
END_TEST

/* The model pools before each conv relu; the same network with relu first
 * (PyTorch's order) gives the same loss and the same gradients, bit for bit,
 * in float32 and float64. The relu zeros make many tied windows. */
static tensor *loss_relu_then_pool(tensor *const *p, tensor *x, tensor *y) {
    conv2d_params pad2 = CONV2D_DEFAULT;
    pad2.padding[0] = pad2.padding[1] = 2;
    pool2d_params pool = nn_pool2d_make(2, 2, 0).p;
    tensor *h = tensor_max_pool2d(tensor_relu(tensor_conv2d(x, p[0], p[1], pad2)), pool);
    h = tensor_max_pool2d(tensor_relu(tensor_conv2d(h, p[2], p[3], CONV2D_DEFAULT)), pool);
    h = tensor_reshape(h, 2, (const int64_t[]){h->shape[0], -1});
    h = tensor_relu(tensor_linear(h, p[4], p[5]));
    h = tensor_relu(tensor_linear(h, p[6], p[7]));
    return tensor_cross_entropy(tensor_linear(h, p[8], p[9]), y, NULL, 0.0, REDUCTION_MEAN);
}

START_TEST(test_lenet5_pool_before_relu_is_the_same_function) {
    for (int d = 0; d < 2; d++) {
        dtype dt = d ? DTYPE_F64 : DTYPE_F32;
        nn_lenet5 *net = nn_lenet5_new(dt, 3);
        ck_assert_ptr_nonnull(net);
        tensor *const *p = net->model->params;
        tensor *x, *y, *grads[10];
        batch(3, dt, 4, &x, &y);
        tensor *loss = nn_lenet5_loss(net, x, y);
        ck_assert_int_eq(tensor_backward(loss), 0);
        double model_loss = tensor_get(loss, 0);
        for (int i = 0; i < 10; i++) {
            grads[i] = tensor_clone(p[i]->grad);
            tensor_zero_grad(p[i]);
        }
        tape_reset();
        tensor *ref = loss_relu_then_pool(p, x, y);
        ck_assert_ptr_nonnull(ref);
        ck_assert_int_eq(tensor_backward(ref), 0);
        ck_assert(tensor_get(ref, 0) == model_loss);
        for (int i = 0; i < 10; i++) {
            ck_assert_msg(memcmp(grads[i]->data, p[i]->grad->data,
                                 (size_t)grads[i]->size * (d ? 8 : 4)) == 0,
                          "%s: %s gradients differ", d ? "float64" : "float32", names[i]);
            tensor_free(grads[i]);
        }
        tape_reset();
        tensor_free(x);
        tensor_free(y);
        nn_lenet5_free(net);
    }
}
END_TEST

/* forward_with on float64 copies of the parameters gives the float32
 * model's logits to float32 accuracy, and the mean cross-entropy matches
 * log-sum-exp minus the label's logit computed here by hand. */
START_TEST(test_lenet5_forward_with_float64_params) {
    nn_lenet5 *net = nn_lenet5_new(DTYPE_F32, 2);
    tensor *p64[10];
    for (int i = 0; i < 10; i++) p64[i] = tensor_to_dtype(net->model->params[i], DTYPE_F64);
    tensor *x, *y, *x32;
    batch(2, DTYPE_F64, 3, &x, &y);
    x32 = tensor_to_dtype(x, DTYPE_F32);
    tensor *l64 = nn_lenet5_forward_with(p64, x), *l32 = nn_lenet5_forward(net, x32);
    ck_assert_ptr_nonnull(l64);
    ck_assert_int_eq(l64->dtype, DTYPE_F64);
    ck_assert_int_eq(l64->shape[0], 3);
    ck_assert_int_eq(l64->shape[1], 10);
    double ce = 0;
    for (int i = 0; i < 3; i++) {
        double m = -INFINITY, s = 0;
        for (int j = 0; j < 10; j++) {
            ck_assert_close(tensor_get(l32, i * 10 + j), tensor_get(l64, i * 10 + j), 1e-5);
            m = fmax(m, tensor_get(l64, i * 10 + j));
        }
        for (int j = 0; j < 10; j++) s += exp(tensor_get(l64, i * 10 + j) - m);
        ce += m + log(s) - tensor_get(l64, i * 10 + (int)tensor_get(y, i));
    }
    tensor *loss = nn_lenet5_loss_with(p64, x, y);
    ck_assert_close(tensor_item(loss), ce / 3, 1e-12);
    tape_reset();
    for (int i = 0; i < 10; i++) tensor_free(p64[i]);
    tensor_free(x);
    tensor_free(x32);
    tensor_free(y);
    nn_lenet5_free(net);
}
END_TEST

/* Saved and loaded into a differently seeded model, the logits agree bit
 * for bit. */
START_TEST(test_lenet5_checkpoint_round_trip) {
    char dir[] = "/tmp/tapegrad_nn_lenet_XXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/lenet5.safetensors", dir);
    nn_lenet5 *a = nn_lenet5_new(DTYPE_F32, 4), *b = nn_lenet5_new(DTYPE_F32, 5);
    ck_assert_int_eq(nn_model_save(a->model, path), 0);
    ck_assert_int_eq(nn_model_load(b->model, path), 0);
    tensor *x, *y;
    batch(3, DTYPE_F32, 2, &x, &y);
    tensor *la = nn_lenet5_forward(a, x), *lb = nn_lenet5_forward(b, x);
    ck_assert_mem_eq(la->data, lb->data, 20 * sizeof(float));
    tape_reset();
    tensor_free(x);
    tensor_free(y);
    nn_lenet5_free(a);
    nn_lenet5_free(b);
    unlink(path);
    rmdir(dir);
}
END_TEST

/* tape_reset after every step keeps memory flat: step 40 holds exactly the
 * bytes of step 10. */
START_TEST(test_lenet5_training_memory_flat) {
    nn_lenet5 *net = nn_lenet5_new(DTYPE_F32, 6);
    optim_config c = optim_defaults(OPTIM_ADAM);
    optim *o = optim_new(&c, net->model->params, net->model->n_params);
    tensor *x, *y;
    batch(6, DTYPE_F32, 16, &x, &y);
    int64_t at10 = 0;
    for (int s = 1; s <= 40; s++) {
        optim_zero_grad(o);
        ck_assert_int_eq(tensor_backward(nn_lenet5_loss(net, x, y)), 0);
        optim_step(o);
        tape_reset();
        if (s == 10) at10 = tapegrad_allocated_bytes();
    }
    ck_assert_int_eq(tapegrad_allocated_bytes(), at10);
    optim_free(o);
    tensor_free(x);
    tensor_free(y);
    nn_lenet5_free(net);
}
END_TEST

/* Trains EPOCHS epochs of batch 64 on the first 2,000 training images with Adam
 * lr 1e-3 and 1 thread; records every step's loss; returns the accuracy on
 * the first 1,000 test images. */
static double short_run(const nn_dataset *train, const nn_dataset *test, double *losses,
                        int *n_losses, double *epoch_loss) {
    tapegrad_set_threads(1);
    nn_lenet5 *net = nn_lenet5_new(DTYPE_F32, 11);
    optim_config c = optim_defaults(OPTIM_ADAM);
    optim *o = optim_new(&c, net->model->params, net->model->n_params);
    nn_loader *l = nn_loader_new(train, 64, true, 11);
    tensor *x, *y;
    *n_losses = 0;
    for (int e = 0; e < EPOCHS; e++) {
        double sum = 0;
        if (e) nn_loader_rewind(l);
        while (nn_loader_next(l, &x, &y) == 1) {
            optim_zero_grad(o);
            tensor *loss = nn_lenet5_loss(net, x, y);
            ck_assert_int_eq(tensor_backward(loss), 0);
            optim_step(o);
            losses[(*n_losses)++] = tensor_item(loss);
            sum += tensor_item(loss) * (double)x->shape[0];
            tape_reset();
        }
        epoch_loss[e] = sum / (double)train->n;
    }
    nn_loader *t = nn_loader_new(test, 500, false, 0);
    int64_t right = 0;
    while (nn_loader_next(t, &x, &y) == 1) {
        tensor *logits = nn_lenet5_forward(net, x);
        for (int64_t i = 0; i < logits->shape[0]; i++) {
            int best = 0;
            for (int j = 1; j < 10; j++)
                if (tensor_get(logits, i * 10 + j) > tensor_get(logits, i * 10 + best)) best = j;
            right += best == (int)tensor_get(y, i);
        }
        tape_reset();
    }
    nn_loader_free(t);
    nn_loader_free(l);
    optim_free(o);
    nn_lenet5_free(net);
    return (double)right / (double)test->n;
}

/* Measured: epoch losses 1.78, 1.00, 0.86, 0.80, 0.71 and test accuracy
 * 0.703 on the first 1,000 test images; the bounds leave room for other
 * summation orders in the kernels. */
START_TEST(test_lenet5_short_run_learns_and_repeats) {
    if (access(NN_DATA_DIR_DEFAULT "/train-images-idx3-ubyte.gz", R_OK)) {
        fprintf(stderr, "test_lenet5_short_run_learns_and_repeats: no Fashion-MNIST, skipped\n");
        return;
    }
    nn_dataset *train = nn_dataset_load_dir(NULL, "train");
    nn_dataset *test = nn_dataset_load_dir(NULL, "t10k");
    ck_assert_ptr_nonnull(train);
    ck_assert_ptr_nonnull(test);
    nn_dataset_truncate(train, 2000);
    nn_dataset_truncate(test, 1000);
    static double a[200], b[200];
    int na, nb;
    double ea[EPOCHS], eb[EPOCHS];
    double acc = short_run(train, test, a, &na, ea);
    ck_assert_int_eq(na, EPOCHS * 32);
    for (int e = 1; e < EPOCHS; e++)
        ck_assert_msg(ea[e] < ea[e - 1], "epoch %d loss %g after %g", e, ea[e], ea[e - 1]);
    ck_assert_msg(ea[EPOCHS - 1] < 0.8, "final epoch loss %g", ea[EPOCHS - 1]);
    ck_assert_msg(acc >= 0.66, "test accuracy %g", acc);
    double acc2 = short_run(train, test, b, &nb, eb);
    ck_assert_int_eq(na, nb);
    ck_assert_mem_eq(a, b, (size_t)na * sizeof a[0]);
    ck_assert_double_eq(acc, acc2);
    nn_dataset_free(train);
    nn_dataset_free(test);
}
END_TEST

/* One thread: the figures below are for it, and an oversubscribed machine
 * makes spinning OpenMP threads slow. */
static void one_thread(void) { tapegrad_set_threads(1); }

/* An empty batch runs where PyTorch runs it: logits [0,10] (the flatten
 * gave [0,0] and linear refused it), a NaN mean loss (0/0, as PyTorch) and
 * a backward pass that leaves zero gradients. */
START_TEST(test_lenet5_empty_batch) {
    tapegrad_error_clear();
    nn_lenet5 *net = nn_lenet5_new(DTYPE_F32, 5);
    tensor *x = tensor_zeros(DTYPE_F32, SHAPE(0, 1, 28, 28));
    tensor *lab = tensor_zeros(DTYPE_I64, SHAPE(0));
    tensor *y = nn_lenet5_forward(net, x);
    ck_assert_ptr_nonnull(y);
    ck_assert_int_eq(y->ndim, 2);
    ck_assert_int_eq(y->shape[0], 0);
    ck_assert_int_eq(y->shape[1], 10);
    tensor *loss = nn_lenet5_loss(net, x, lab);
    ck_assert_ptr_nonnull(loss);
    ck_assert(isnan(tensor_item(loss)));
    ck_assert_int_eq(tensor_backward(loss), 0);
    ck_assert_ptr_null(tapegrad_error());
    tape_reset();
    tensor_free(x);
    tensor_free(lab);
    nn_lenet5_free(net);
}
END_TEST

Suite *nn_lenet5_suite(void) {
    Suite *s = suite_create("nn_lenet5");
    TCase *tc = tcase_create("lenet5");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, one_thread, NULL);
    tcase_add_test(tc, test_lenet5_state_dict_names_and_shapes);
    tcase_add_test(tc, test_lenet5_default_init_bounds);
    tcase_add_test(tc, test_lenet5_gradient_reaches_every_parameter);
    tcase_add_test(tc, test_lenet5_pool_before_relu_is_the_same_function);
    tcase_add_test(tc, test_lenet5_forward_with_float64_params);
    tcase_add_test(tc, test_lenet5_checkpoint_round_trip);
    tcase_add_test(tc, test_lenet5_training_memory_flat);
    tcase_add_test(tc, test_lenet5_short_run_learns_and_repeats);
    tcase_add_test(tc, test_lenet5_empty_batch);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(nn_lenet5_suite)
