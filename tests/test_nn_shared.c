/* test_nn_shared.c - one tensor under several names (a head tied to an
 * embedding) is one parameter: freed once, stepped once, counted once, saved
 * under both names and loaded consistently; and the names a model accepts are
 * the names a checkpoint can read back. Run under ASan (make check-asan) the
 * double free of a tied tensor shows as a use-after-free. */
#include <string.h>
#include <unistd.h>

#include "check_main.h"

static char dir[64], path[128];

static void make_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/tapegrad_nn_shared_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/tied.safetensors", dir);
}

static void remove_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* emb.weight [4, 3] and head.weight the same tensor, plus a bias [4]. */
static nn_model *tied_model(tensor **w) {
    nn_model *m = nn_model_new(DTYPE_F64, 1);
    *w = nn_model_add_param(m, "emb.weight", tensor_zeros(DTYPE_F64, SHAPE(4, 3)));
    ck_assert_ptr_nonnull(*w);
    nn_init_normal(*w, &m->rng, 0, 1);
    ck_assert_ptr_eq(nn_model_add_param(m, "head.weight", *w), *w);
    ck_assert_ptr_nonnull(nn_model_add_param(m, "head.bias", tensor_zeros(DTYPE_F64, SHAPE(4))));
    ck_assert_ptr_null(tapegrad_error());
    return m;
}

/* The reproduction: before, nn_model_free freed w twice. */
START_TEST(test_tied_parameter_is_one_parameter) {
    tensor *w;
    nn_model *m = tied_model(&w);
    ck_assert_int_eq(m->n_params, 3); /* the state_dict has both names */
    ck_assert_int_eq(nn_model_state_count(m), 3);
    ck_assert_int_eq(nn_model_numel(m), 12 + 4); /* w counted once */
    int n;
    tensor *const *ps = nn_model_parameters(m, &n);
    ck_assert_int_eq(n, 2);
    ck_assert_ptr_eq(ps[0], w);
    ck_assert_ptr_eq(ps[1], m->params[2]);
    ck_assert_ptr_eq(nn_model_find(m, "head.weight"), nn_model_find(m, "emb.weight"));
    nn_model_free(m);
}
END_TEST

/* Re-adding under the same name is refused and must not free the tensor the
 * model still holds (before: freed, and the model kept a dangling pointer). */
START_TEST(test_readd_same_name_keeps_tensor) {
    tensor *w;
    nn_model *m = tied_model(&w);
    ck_assert_ptr_null(nn_model_add_param(m, "emb.weight", w));
    ck_assert_error_is("nn_model_add_param: \"emb.weight\" is already registered under that name");
    ck_assert_ptr_null(nn_model_add_param(m, "head.bias", w));
    ck_assert_error_is("nn_model_add_param: the model already has a tensor named \"head.bias\"");
    /* a held parameter offered as a buffer: refused, still held */
    ck_assert_ptr_null(nn_model_add_buffer(m, "emb.copy", w));
    ck_assert_error_is("nn_model_add_buffer: the tensor for \"emb.copy\" is already one of the "
                       "model's parameters; a tensor is a parameter or a buffer, not both");
    tensor *r = nn_model_add_buffer(m, "running", tensor_zeros(DTYPE_F64, SHAPE(2)));
    ck_assert_ptr_null(nn_model_add_param(m, "running.p", r));
    ck_assert_error_is("nn_model_add_param: the tensor for \"running.p\" is already one of the "
                       "model's buffers; a tensor is a parameter or a buffer, not both");
    /* a buffer may be tied too, and is freed once */
    ck_assert_ptr_eq(nn_model_add_buffer(m, "running.alias", r), r);
    ck_assert_int_eq(m->n_params, 3);
    ck_assert_int_eq(m->n_buffers, 2);
    /* w is still alive: touching it is what ASan watches */
    ck_assert(isfinite(tensor_get(w, 11)));
    ck_assert(w->requires_grad);
    nn_model_free(m);
}
END_TEST

/* loss = sum(emb(x) . head): the tied tensor gets the sum of both uses'
 * gradients, and an optimiser built from nn_model_parameters steps it once:
 * w' = w - lr g exactly. One built from m->params (w twice) is refused. */
START_TEST(test_tied_parameter_stepped_once) {
    tensor *w;
    nn_model *m = tied_model(&w);
    tensor *head_b = m->params[2];
    tensor *idx = tensor_from_data(DTYPE_I64, SHAPE(2), (int64_t[]){1, 3});
    tensor *e = tensor_embedding(idx, w);                                  /* [2, 3] */
    tensor *logits = tensor_add(tensor_matmul(e, tensor_transpose(w, 0, 1)), head_b); /* [2, 4] */
    tensor *loss = tensor_sum(tensor_mul(logits, logits), NULL, 0, false);
    ck_assert_ptr_nonnull(loss);
    ck_assert_int_eq(tensor_backward(loss), 0);
    tensor *before = tensor_clone(w), *g = tensor_clone(w->grad);

    optim_config c = optim_defaults(OPTIM_SGD);
    c.lr = 0.125;
    ck_assert_ptr_null(optim_new(&c, m->params, m->n_params));
    ck_assert_error_is("optim_new: parameters 0 and 1 are one tensor (tied?); it would be stepped "
                       "twice: pass each tensor once (nn_model_parameters)");
    int n;
    tensor *const *ps = nn_model_parameters(m, &n);
    optim *o = optim_new(&c, ps, n);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(optim_step(o), 0);
    for (int64_t i = 0; i < w->size; i++)
        ck_assert_double_eq(tensor_get(w, i), tensor_get(before, i) - 0.125 * tensor_get(g, i));
    /* the gradient of a row used by both the embedding and the head is the
     * sum of both: row 1 is looked up, and every row is a head row */
    ck_assert(tensor_get(g, 1 * 3 + 0) != 0);
    optim_free(o);
    tensor_free(before);
    tensor_free(g);
    tensor_free(idx);
    tape_reset();
    nn_model_free(m);
}
END_TEST

/* A checkpoint holds both names (as PyTorch's state_dict does); loading
 * fills the one tensor, and a file whose two copies differ is refused
 * without touching the model. */
START_TEST(test_tied_checkpoint_round_trip) {
    make_dir();
    tensor *w;
    nn_model *m = tied_model(&w);
    ck_assert_int_eq(nn_model_save(m, path), 0);

    /* both names are in the file, as separate tensors an untied model loads */
    nn_model *plain = nn_model_new(DTYPE_F64, 9);
    tensor *a = nn_model_add_param(plain, "emb.weight", tensor_zeros(DTYPE_F64, SHAPE(4, 3)));
    tensor *b = nn_model_add_param(plain, "head.weight", tensor_zeros(DTYPE_F64, SHAPE(4, 3)));
    nn_model_add_param(plain, "head.bias", tensor_zeros(DTYPE_F64, SHAPE(4)));
    ck_assert_int_eq(nn_model_load(plain, path), 0);
    ck_assert_mem_eq(a->data, w->data, 12 * sizeof(double));
    ck_assert_mem_eq(b->data, w->data, 12 * sizeof(double));

    /* into a fresh tied model */
    tensor *w2;
    nn_model *m2 = tied_model(&w2);
    ck_assert_int_eq(nn_model_load(m2, path), 0);
    ck_assert_mem_eq(w2->data, w->data, 12 * sizeof(double));

    /* an untied file whose copies differ: refused, m2 unchanged */
    tensor_set(b, 5, 42.0);
    ck_assert_int_eq(nn_model_save(plain, path), 0);
    ck_assert_int_eq(nn_model_load(m2, path), -1);
    char want[256];
    snprintf(want, sizeof want,
             "%s: \"emb.weight\" and \"head.weight\" name one tied tensor in the model but hold "
             "different values in the file",
             path);
    ck_assert_error_is(want);
    ck_assert_mem_eq(w2->data, w->data, 12 * sizeof(double));
    nn_model_free(plain);
    nn_model_free(m2);
    nn_model_free(m);
    remove_dir();
}
END_TEST

/* Names a checkpoint could not load back are refused up front, and the
 * refused tensor is freed (the contract), leaving no error behind a success. */
START_TEST(test_add_refuses_names_a_checkpoint_cannot_hold) {
    nn_model *m = nn_model_new(DTYPE_F32, 0);
    ck_assert_ptr_null(nn_model_add_param(m, "bad\xff", tensor_zeros(DTYPE_F32, SHAPE(1))));
    ck_assert_error_is(
        "nn_model_add_param: name refused, not UTF-8 (a checkpoint could not hold it): \"bad\xff\"");
    ck_assert_ptr_null(nn_model_add_param(m, "__metadata__", tensor_zeros(DTYPE_F32, SHAPE(1))));
    ck_assert_error_is("nn_model_add_param: name refused, reserved for the format's metadata (a "
                       "checkpoint could not hold it): \"__metadata__\"");
    char longname[80];
    memset(longname, 'n', 64);
    longname[64] = '\0';
    ck_assert_ptr_null(nn_model_add_buffer(m, longname, tensor_zeros(DTYPE_F32, SHAPE(1))));
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "name refused, longer than 63 bytes"));
    tapegrad_error_clear();
    ck_assert_ptr_null(nn_model_add_param(m, "", tensor_zeros(DTYPE_F32, SHAPE(1))));
    ck_assert_error_is("nn_model_add_param: name refused, empty (a checkpoint could not hold it): "
                       "\"\"");
    /* multi-byte UTF-8 is a name like any other */
    ck_assert_ptr_nonnull(nn_model_add_param(m, "poids.\xc3\xa9", tensor_zeros(DTYPE_F32, SHAPE(1))));
    /* int64: refused cleanly (before: accepted with an error left pending) */
    ck_assert_ptr_null(nn_model_add_param(m, "steps", tensor_zeros(DTYPE_I64, SHAPE(1))));
    ck_assert_error_is("nn_model_add_param: \"steps\" is int64; a parameter is float32 or float64 "
                       "(int64 state is a buffer)");
    ck_assert_ptr_nonnull(nn_model_add_buffer(m, "steps", tensor_zeros(DTYPE_I64, SHAPE(1))));
    ck_assert_ptr_null(tapegrad_error());
    ck_assert_int_eq(m->n_params, 1);
    nn_model_free(m);
}
END_TEST

/* nn_safetensors_save refuses what its loader would refuse: a name over 127
 * bytes, not UTF-8, or __metadata__ (before: written, then unreadable). */
START_TEST(test_save_refuses_names_it_cannot_load) {
    make_dir();
    tensor *t = tensor_zeros(DTYPE_F32, SHAPE(2));
    char longname[160];
    memset(longname, 'x', 128);
    longname[128] = '\0';
    const char *bad[3] = {longname, "w\x80", "__metadata__"};
    const char *why[3] = {"name refused, longer than 127 bytes", "name refused, not UTF-8",
                          "name refused, reserved for the format's metadata"};
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(nn_safetensors_save(path, &bad[i], &t, 1), -1);
        ck_assert_ptr_nonnull(strstr(tapegrad_error(), why[i]));
        ck_assert_ptr_nonnull(strstr(tapegrad_error(), "nn_safetensors_save: "));
        ck_assert_ptr_nonnull(strstr(tapegrad_error(), " (it could not be loaded back): \""));
        tapegrad_error_clear();
        ck_assert_int_eq(access(path, F_OK), -1);
    }
    /* 127 bytes is the longest name, and it loads back */
    longname[127] = '\0';
    const char *ok = longname;
    ck_assert_int_eq(nn_safetensors_save(path, &ok, &t, 1), 0);
    ck_assert_int_eq(nn_safetensors_load(path, &ok, &t, 1), 0);
    tensor_free(t);
    remove_dir();
}
END_TEST

Suite *nn_shared_suite(void) {
    Suite *s = suite_create("nn_shared");
    TCase *tc = tcase_create("shared");
    tcase_add_test(tc, test_tied_parameter_is_one_parameter);
    tcase_add_test(tc, test_readd_same_name_keeps_tensor);
    tcase_add_test(tc, test_tied_parameter_stepped_once);
    tcase_add_test(tc, test_tied_checkpoint_round_trip);
    tcase_add_test(tc, test_add_refuses_names_a_checkpoint_cannot_hold);
    tcase_add_test(tc, test_save_refuses_names_it_cannot_load);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(nn_shared_suite)
