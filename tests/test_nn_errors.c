/* test_nn_errors.c - every error path of nn/ that the data, checkpoint and
 * optimiser tests do not reach: NULL and out-of-range arguments, bad layer
 * sizes, unreadable files. Each test asserts the message a user sees. */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "check_main.h"

/* The pending message contains want; then clear it. */
#define ck_error_has(want)                                                                    \
    do {                                                                                      \
        const char *_e = tapegrad_error();                                                    \
        ck_assert_msg(_e && strstr(_e, want), "error \"%s\" should contain \"%s\"",           \
                      _e ? _e : "(none)", want);                                              \
        tapegrad_error_clear();                                                               \
    } while (0)

static char dir[64];

static void make_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/tapegrad_nn_err_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *write_file(const char *name, const void *bytes, size_t n) {
    static char path[2][128];
    static int k;
    char *p = path[k++ % 2];
    snprintf(p, 128, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
    return p;
}

START_TEST(test_model_errors) {
    tapegrad_error_clear();
    ck_assert_ptr_null(nn_model_new(DTYPE_I64, 0));
    ck_assert_str_eq(tapegrad_error(),
                     "nn_model_new: parameters must be float32 or float64, not int64");
    tapegrad_error_clear();
    nn_model *m = nn_model_new(DTYPE_F64, 0);
    ck_assert_ptr_null(nn_model_add_param(NULL, "a", tensor_zeros(DTYPE_F64, SHAPE(1))));
    ck_error_has("nn_model_add_param: model, name or tensor is NULL");
    ck_assert_ptr_null(nn_model_add_buffer(m, "", tensor_zeros(DTYPE_F64, SHAPE(1))));
    ck_error_has("nn_model_add_buffer: name refused, empty (a checkpoint could not hold it)");
    tensor *a = tensor_ones(DTYPE_F64, SHAPE(1));
    tensor_set_requires_grad(a, true);
    ck_assert_ptr_null(nn_model_add_param(m, "sum", tensor_add(a, a)));
    ck_error_has("nn_model_add_param: \"sum\" is tape-owned; a model keeps user-owned tensors only");
    tape_reset();
    tensor_free(a);
    nn_model_free(m);
}
END_TEST

/* kaiming of [3, 0]: fan_in 0; xavier of [0, 0]: both fans 0. */
START_TEST(test_init_errors) {
    rng g;
    rng_seed(&g, 1, 1);
    tapegrad_error_clear();
    ck_assert_int_eq(nn_init_uniform(NULL, &g, 0, 1), -1);
    ck_error_has("nn_init_uniform: tensor or generator is NULL");
    tensor *i = tensor_zeros(DTYPE_I64, SHAPE(2, 2));
    ck_assert_int_eq(nn_init_normal(i, &g, 0, 1), -1);
    ck_error_has("nn_init_normal: tensor is int64; initialisers fill float tensors");
    ck_assert_int_eq(nn_fans(NULL, NULL, NULL), -1);
    ck_error_has("nn_fans: tensor is NULL");
    tensor *v = tensor_zeros(DTYPE_F32, SHAPE(4));
    ck_assert_int_eq(nn_init_xavier_uniform(v, &g, 1), -1);
    ck_error_has("nn_fans: fan in and fan out need at least 2 dimensions, got [4]");
    tensor *e = tensor_zeros(DTYPE_F32, SHAPE(3, 0));
    ck_assert_int_eq(nn_init_kaiming_normal(e, &g, 0, NN_FAN_IN), -1);
    ck_error_has("nn_init_kaiming_normal: fan is 0 for an empty tensor");
    tensor *z = tensor_zeros(DTYPE_F32, SHAPE(0, 0));
    ck_assert_int_eq(nn_init_xavier_normal(z, &g, 1), -1);
    ck_error_has("nn_init_xavier_normal: fan is 0 for an empty tensor");
    tensor_free(i);
    tensor_free(v);
    tensor_free(e);
    tensor_free(z);
}
END_TEST

START_TEST(test_null_model_errors) {
    tapegrad_error_clear();
    ck_assert_int_eq(nn_model_save(NULL, "/tmp/x"), -1);
    ck_error_has("nn_model_save: model is NULL");
    ck_assert_int_eq(nn_model_load(NULL, "/tmp/x"), -1);
    ck_error_has("nn_model_load: model is NULL");
    nn_gradflow r;
    ck_assert_int_eq(nn_gradflow_model(NULL, 1e-8, 1e3, &r), -1);
    ck_error_has("nn_gradflow_model: model is NULL");
}
END_TEST

START_TEST(test_optim_argument_errors) {
    optim_config c = optim_defaults(OPTIM_SGD);
    tensor *p = tensor_zeros(DTYPE_F32, SHAPE(2)), *none = NULL;
    tapegrad_error_clear();
    ck_assert_ptr_null(optim_new(NULL, &p, 1));
    ck_error_has("optim_new: config or parameter list missing");
    ck_assert_ptr_null(optim_new(&c, &none, 1));
    ck_error_has("optim_new: parameter 0 is NULL");
    ck_assert_int_eq(optim_step(NULL), -1);
    ck_error_has("optim_step: optimiser is NULL");
    ck_assert(optim_clip_grad_norm(&p, 1, -1) < 0);
    ck_error_has("optim_clip_grad_norm: n = 1 and max_norm -1 must not be negative (nor NaN)");
    ck_assert_int_eq(optim_clip_grad_value(&p, -2, 1), -1);
    ck_error_has("optim_clip_grad_value: n = -2 and clip 1 must not be negative (nor NaN)");
    /* a NULL list was reported as "bad parameter list or clip value" */
    ck_assert(optim_clip_grad_norm(NULL, 3, 1) < 0);
    ck_error_has("optim_clip_grad_norm: the parameter list is NULL (n = 3)");
    ck_assert_int_eq(optim_clip_grad_value(NULL, 1, 1), -1);
    ck_error_has("optim_clip_grad_value: the parameter list is NULL (n = 1)");
    tensor_free(p);
}
END_TEST

START_TEST(test_gradflow_argument_errors) {
    nn_gradflow r;
    tensor *none = NULL;
    tapegrad_error_clear();
    ck_assert_int_eq(nn_gradflow_check(NULL, NULL, 1, 1e-8, 1e3, &r), -1);
    ck_error_has("nn_gradflow_check: report or parameter list missing");
    ck_assert_int_eq(nn_gradflow_check(NULL, &none, 1, 1e-8, 1e3, &r), -1);
    ck_error_has("nn_gradflow_check: parameter 0 is NULL");
}
END_TEST

/* A gradient-flow report on hand-set grads: missing, zero, vanishing,
 * exploding and healthy parameters are told apart. */
START_TEST(test_gradflow_flags) {
    tensor *p[5];
    for (int i = 0; i < 5; i++) p[i] = tensor_zeros(DTYPE_F64, SHAPE(2));
    p[1]->grad = tensor_zeros(DTYPE_F64, SHAPE(2));
    p[2]->grad = tensor_from_doubles(DTYPE_F64, SHAPE(2), (double[]){3e-12, 4e-12});
    p[3]->grad = tensor_from_doubles(DTYPE_F64, SHAPE(2), (double[]){3e6, -4e6});
    p[4]->grad = tensor_from_doubles(DTYPE_F64, SHAPE(2), (double[]){0.3, -0.4});
    const char *names[5] = {"a", "b", "c", "d", "e"};
    nn_gradflow r;
    ck_assert_int_eq(nn_gradflow_check(names, p, 5, 1e-8, 1e3, &r), 0);
    ck_assert(!r.entries[0].has_grad);
    ck_assert(r.entries[1].all_zero);
    ck_assert(r.entries[2].vanishing);
    ck_assert_close(r.entries[2].norm, 5e-12, 1e-24);
    ck_assert(r.entries[3].exploding);
    ck_assert_close(r.entries[4].norm, 0.5, 1e-15);
    ck_assert_close(r.entries[4].max_abs, 0.4, 1e-15);
    ck_assert(!r.entries[4].vanishing && !r.entries[4].exploding && !r.entries[4].all_zero);
    ck_assert_int_eq(r.n_problems, 4);
    char out[2048] = {0};
    FILE *f = fmemopen(out, sizeof out - 1, "w");
    nn_gradflow_print(f, &r);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(out, "4 with problems"));
    ck_assert_ptr_nonnull(strstr(out, "NO GRADIENT"));
    ck_assert_ptr_nonnull(strstr(out, "EXPLODING"));
    nn_gradflow_free(&r);
    for (int i = 0; i < 5; i++) tensor_free(p[i]);
}
END_TEST

START_TEST(test_idx_argument_and_header_errors) {
    make_dir();
    tapegrad_error_clear();
    ck_assert_ptr_null(nn_idx_load(NULL));
    ck_error_has("nn_idx_load: path is NULL");
    const char *p = write_file("d0", (unsigned char[]){0, 0, 8, 0}, 4);
    ck_assert_ptr_null(nn_idx_load(p));
    ck_error_has(": 0 dimensions (1 to 4 supported)");
    /* [4294967295, 4294967295, 4294967295] cannot be real */
    p = write_file("huge", (unsigned char[]){0, 0, 8, 3, 255, 255, 255, 255, 255, 255, 255, 255,
                                             255, 255, 255, 255},
                   16);
    ck_assert_ptr_null(nn_idx_load(p));
    ck_error_has(": dimensions claim more than 8589934592 bytes of data");
    ck_assert_ptr_null(nn_dataset_load(NULL, p));
    ck_error_has("nn_dataset_load: a path is NULL");
    remove_dir();
}
END_TEST

/* A gzip stream whose compressed bytes are damaged: zlib reports a data
 * error, which names the file. */
START_TEST(test_idx_corrupt_gzip_read_error) {
    make_dir();
    char path[128];
    snprintf(path, sizeof path, "%s/bad.gz", dir);
    unsigned char raw[16 + 2000];
    memcpy(raw, (unsigned char[]){0, 0, 8, 2, 0, 0, 0, 40, 0, 0, 0, 50}, 12);
    for (int i = 12; i < (int)sizeof raw; i++) raw[i] = (unsigned char)(i * 2654435761u >> 13);
    gzFile g = gzopen(path, "wb");
    gzwrite(g, raw, 12 + 2000);
    gzclose(g);
    FILE *f = fopen(path, "r+b");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    for (long k = 20; k < n - 12; k += 7) { /* scramble the deflate blocks */
        fseek(f, k, SEEK_SET);
        fputc(0xff, f);
    }
    fclose(f);
    tapegrad_error_clear();
    ck_assert_ptr_null(nn_idx_load(path));
    ck_error_has(": read error: ");
    remove_dir();
}
END_TEST

START_TEST(test_dataset_and_loader_errors) {
    make_dir();
    static const unsigned char img[] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 5, 6};
    static const unsigned char lbl[] = {0, 0, 8, 1, 0, 0, 0, 2, 1, 0};
    const char *pi = write_file("img", img, sizeof img), *pl = write_file("lbl", lbl, sizeof lbl);
    tapegrad_error_clear();
    ck_assert_ptr_null(nn_dataset_load(pi, pi));
    ck_error_has(": labels need 1 dimension [N], the file has 3");
    ck_assert_ptr_null(nn_dataset_load(pl, pl));
    ck_error_has(": images need 3 dimensions [N, rows, cols], the file has 1");
    nn_dataset *d = nn_dataset_load(pi, pl);
    ck_assert_ptr_nonnull(d);
    ck_assert_ptr_null(nn_loader_new(NULL, 2, false, 0));
    ck_error_has("nn_loader_new: dataset is NULL");
    ck_assert_ptr_null(nn_loader_new(d, 0, false, 0));
    ck_error_has("nn_loader_new: batch size must be positive, got 0");
    ck_assert_int_eq(nn_loader_next(NULL, NULL, NULL), -1);
    ck_error_has("nn_loader_next: loader or output pointer is NULL");
    nn_dataset_free(d);
    remove_dir();
}
END_TEST

START_TEST(test_safetensors_argument_errors) {
    make_dir();
    tensor *t = tensor_zeros(DTYPE_F32, SHAPE(2)), *none = NULL;
    const char *names[2] = {"w", "w"}, *noname = NULL;
    tensor *ts[2] = {t, t};
    char path[128];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    tapegrad_error_clear();
    ck_assert_int_eq(nn_safetensors_save(NULL, names, ts, 1), -1);
    ck_error_has("nn_safetensors_save: path, names or tensors missing");
    ck_assert_int_eq(nn_safetensors_save(path, &noname, ts, 1), -1);
    ck_error_has("nn_safetensors_save: entry 0 has no name or no tensor");
    ck_assert_int_eq(nn_safetensors_save(path, names, ts, 2), -1);
    ck_error_has("nn_safetensors_save: name \"w\" appears twice");
    ck_assert_int_eq(nn_safetensors_load(NULL, names, ts, 1), -1);
    ck_error_has("nn_safetensors_load: path, names or tensors missing");
    ck_assert_int_eq(nn_safetensors_load(path, names, &none, 1), -1);
    ck_error_has("nn_safetensors_load: entry 0 has no name or no tensor");
    char longp[5000];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = '\0';
    ck_assert_int_eq(nn_safetensors_save(longp, names, ts, 1), -1);
    /* the path is shown cut in the middle, so the reason still fits */
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "aaaa...aaaa"));
    ck_error_has("aaaa: cannot write the checkpoint (following its symlinks): File name too long");
    ck_assert_int_eq(nn_safetensors_save("/nonexistent/m.safetensors", names, ts, 1), -1);
    ck_error_has("/nonexistent/m.safetensors: cannot write the checkpoint (creating a temporary "
                 "file beside it): No such file or directory");
    ck_assert_int_eq(nn_safetensors_load("/nonexistent/m.safetensors", names, ts, 1), -1);
    ck_error_has("/nonexistent/m.safetensors: cannot open: No such file or directory");
    ck_assert_int_eq(nn_safetensors_load(dir, names, ts, 1), -1);
    ck_error_has(": not a regular file");
    tensor_free(t);
    remove_dir();
}
END_TEST

Suite *nn_errors_suite(void) {
    Suite *s = suite_create("nn_errors");
    TCase *tc = tcase_create("errors");
    tcase_add_test(tc, test_model_errors);
    tcase_add_test(tc, test_init_errors);
    tcase_add_test(tc, test_null_model_errors);
    tcase_add_test(tc, test_optim_argument_errors);
    tcase_add_test(tc, test_gradflow_argument_errors);
    tcase_add_test(tc, test_gradflow_flags);
    tcase_add_test(tc, test_idx_argument_and_header_errors);
    tcase_add_test(tc, test_idx_corrupt_gzip_read_error);
    tcase_add_test(tc, test_dataset_and_loader_errors);
    tcase_add_test(tc, test_safetensors_argument_errors);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(nn_errors_suite)
