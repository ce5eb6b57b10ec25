/* test_nn_resume.c - optimiser state, parameter groups and training
 * checkpoints. The specification: training N steps equals training k steps,
 * saving, loading in a NEW process (this binary run again with --resume) and
 * training N - k, with parameters, optimiser moments and step counts, the
 * model's generator and the loader's shuffle all byte-equal (the two final
 * checkpoints are compared byte for byte). */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check_main.h"

static char dir[64];

static void make_dir(void) {
    snprintf(dir, sizeof dir, "/tmp/tapegrad_nn_resume_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void remove_dir(void) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static const char *in_dir(const char *name) {
    static char p[4][160];
    static int k;
    char *s = p[k++ % 4];
    snprintf(s, 160, "%s/%s", dir, name);
    return s;
}

/* A raw IDX file of unsigned bytes with the given dims. */
static void write_idx(const char *path, int ndim, const int *dims, const uint8_t *data, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    uint8_t magic[4] = {0, 0, 8, (uint8_t)ndim};
    fwrite(magic, 1, 4, f);
    for (int d = 0; d < ndim; d++) {
        uint8_t b[4] = {(uint8_t)(dims[d] >> 24), (uint8_t)(dims[d] >> 16), (uint8_t)(dims[d] >> 8),
                        (uint8_t)dims[d]};
        fwrite(b, 1, 4, f);
    }
    ck_assert_uint_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

/* 36 images 28 x 28 of seeded noise with labels 0..9: with batch 8, five
 * batches an epoch, the last of 4. */
#define N_IMAGES 36
static void write_data(void) {
    static uint8_t img[N_IMAGES * 28 * 28], lab[N_IMAGES];
    rng g;
    rng_seed(&g, 11, 5);
    for (size_t i = 0; i < sizeof img; i++) img[i] = (uint8_t)rng_below(&g, 256);
    for (int i = 0; i < N_IMAGES; i++) lab[i] = (uint8_t)(i % 10);
    write_idx(in_dir("train-images-idx3-ubyte"), 3, (int[]){N_IMAGES, 28, 28}, img, sizeof img);
    write_idx(in_dir("train-labels-idx1-ubyte"), 1, (int[]){N_IMAGES}, lab, sizeof lab);
}

/* LeNet-5, Adam with two parameter groups (convolutions lr 1e-3, the linear
 * layers lr 2e-3 with weight decay), a shuffling loader, and dropout on the
 * logits so that the model's generator is part of the state. */
typedef struct run {
    nn_dataset *d;
    nn_lenet5 *net;
    optim *o;
    nn_loader *l;
} run;

static run run_new(const char *data_dir) {
    tapegrad_set_threads(1);
    run r = {.d = nn_dataset_load_dir(data_dir, "train")};
    r.net = nn_lenet5_new(DTYPE_F32, 7);
    int n;
    tensor *const *ps = nn_model_parameters(r.net->model, &n);
    optim_config c = optim_defaults(OPTIM_ADAM);
    r.o = optim_new(&c, ps, 4);
    c.lr = 2e-3;
    c.weight_decay = 1e-4;
    if (r.o && optim_add_group(r.o, &c, ps + 4, n - 4) != 1) r.o = NULL;
    r.l = nn_loader_new(r.d, 8, true, 3);
    return r;
}

static int run_steps(run *r, int64_t until) {
    tensor *x, *y;
    while (optim_steps(r->o) < until) {
        int rc = nn_loader_next(r->l, &x, &y);
        if (rc < 0) return -1;
        if (rc == 0) {
            nn_loader_rewind(r->l);
            continue;
        }
        optim_zero_grad(r->o);
        tensor *logits = tensor_dropout(nn_lenet5_forward(r->net, x), 0.25, true,
                                        &r->net->model->rng);
        tensor *loss = tensor_cross_entropy(logits, y, NULL, 0, REDUCTION_MEAN);
        if (!loss || tensor_backward(loss) || optim_step(r->o)) return -1;
        tape_reset();
    }
    return 0;
}

static void run_free(run *r) {
    optim_free(r->o);
    nn_loader_free(r->l);
    nn_lenet5_free(r->net);
    nn_dataset_free(r->d);
}

/* The second process: load from, train to step n, save to. */
static int resume_main(const char *data_dir, const char *from, int64_t n, const char *to) {
    run r = run_new(data_dir);
    int rc = !r.o || !r.l || nn_checkpoint_load(from, r.net->model, r.o, r.l) ||
             run_steps(&r, n) || nn_checkpoint_save(to, r.net->model, r.o, r.l);
    if (rc) fprintf(stderr, "resume: %s\n", tapegrad_error() ? tapegrad_error() : "failed");
    run_free(&r);
    return rc;
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc(*n);
    ck_assert_uint_eq(fread(p, 1, *n, f), *n);
    fclose(f);
    return p;
}

/* N = 13 steps: two epochs and three batches; k = 7 stops inside the second
 * epoch, so the resumed run continues a shuffled epoch, then starts one. */
START_TEST(test_resume_in_new_process_is_bitwise) {
    make_dir();
    write_data();
    const int64_t N = 13, k = 7;
    run r = run_new(dir);
    ck_assert_ptr_nonnull(r.o);
    ck_assert_int_eq(run_steps(&r, N), 0);
    ck_assert_int_eq(nn_checkpoint_save(in_dir("straight.safetensors"), r.net->model, r.o, r.l), 0);
    run_free(&r);

    r = run_new(dir);
    ck_assert_int_eq(run_steps(&r, k), 0);
    ck_assert_int_eq(nn_checkpoint_save(in_dir("half.safetensors"), r.net->model, r.o, r.l), 0);
    run_free(&r);

    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char n[16];
        snprintf(n, sizeof n, "%lld", (long long)N);
        execl("/proc/self/exe", "test_nn_resume", "--resume", dir, in_dir("half.safetensors"), n,
              in_dir("resumed.safetensors"), (char *)NULL);
        _exit(127);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 0);

    size_t na, nb, nc;
    char *a = slurp(in_dir("straight.safetensors"), &na);
    char *b = slurp(in_dir("half.safetensors"), &nb);
    char *c = slurp(in_dir("resumed.safetensors"), &nc);
    ck_assert_uint_eq(na, nc);
    ck_assert_msg(!memcmp(a, c, na), "the resumed run differs from the uninterrupted one");
    ck_assert_uint_eq(na, nb);
    ck_assert_msg(memcmp(a, b, na), "k steps and N steps gave the same state");
    free(a), free(b), free(c);

    /* and the optimiser state in it is what an uninterrupted run holds:
     * step counts N for every parameter, the second group's lr */
    r = run_new(dir);
    ck_assert_int_eq(nn_checkpoint_load(in_dir("resumed.safetensors"), r.net->model, r.o, r.l), 0);
    ck_assert_int_eq(optim_steps(r.o), N);
    ck_assert_double_eq(optim_get_group_lr(r.o, 1), 2e-3);
    run_free(&r);
    remove_dir();
}
END_TEST

/* p = [1, -2], g = [0.5, -1] for one Adam step. */
static tensor *param(void) {
    tensor *p = tensor_from_doubles(DTYPE_F64, SHAPE(2), (double[]){1, -2});
    tensor_set_requires_grad(p, true);
    p->grad = tensor_from_doubles(DTYPE_F64, SHAPE(2), (double[]){0.5, -1});
    return p;
}

/* Saving after a step and loading into a fresh optimiser gives the same next
 * step as the original optimiser; lr and groups come back too. */
START_TEST(test_optim_save_load_continues_exactly) {
    make_dir();
    tensor *p = param(), *q = param();
    optim_config c = optim_defaults(OPTIM_ADAMW);
    c.lr = 0.1;
    optim *o = optim_new(&c, &p, 1);
    ck_assert_int_eq(optim_step(o), 0);
    optim_set_lr(o, 0.05);
    ck_assert_int_eq(optim_save(o, in_dir("o.safetensors")), 0);

    optim *o2 = optim_new(&c, &q, 1);
    memcpy(q->data, p->data, 2 * sizeof(double));
    ck_assert_int_eq(optim_load(o2, in_dir("o.safetensors")), 0);
    ck_assert_double_eq(optim_get_lr(o2), 0.05);
    ck_assert_int_eq(optim_steps(o2), 1);
    ck_assert_int_eq(optim_step(o), 0);
    ck_assert_int_eq(optim_step(o2), 0);
    ck_assert_mem_eq(p->data, q->data, 2 * sizeof(double));

    /* an Adam optimiser has the same names but is another kind */
    optim_config ca = optim_defaults(OPTIM_ADAM);
    optim *o3 = optim_new(&ca, &q, 1);
    ck_assert_int_eq(optim_load(o3, in_dir("o.safetensors")), -1);
    char want[256];
    snprintf(want, sizeof want,
             "%s: the file holds the state of an optimiser of kind 2, this one is adam",
             in_dir("o.safetensors"));
    ck_assert_error_is(want);
    /* an SGD one lacks Adam's moments */
    optim_config cs = optim_defaults(OPTIM_SGD);
    optim *o4 = optim_new(&cs, &q, 1);
    ck_assert_int_eq(optim_load(o4, in_dir("o.safetensors")), -1);
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "\"state.0.momentum_buffer\" is missing"));
    tapegrad_error_clear();
    optim_free(o), optim_free(o2), optim_free(o3), optim_free(o4);
    tensor_free(p), tensor_free(q);
    remove_dir();
}
END_TEST

/* Groups: each its own lr and weight decay, in torch's update rule. */
START_TEST(test_optim_groups_own_hyperparameters) {
    tensor *p = param(), *q = param();
    optim_config c = optim_defaults(OPTIM_SGD);
    c.lr = 0.1;
    optim *o = optim_new(&c, &p, 1);
    optim_config c2 = c;
    c2.lr = 0.5;
    c2.weight_decay = 0.25;
    ck_assert_int_eq(optim_add_group(o, &c2, &q, 1), 1);
    ck_assert_int_eq(optim_group_count(o), 2);
    ck_assert_int_eq(optim_step(o), 0);
    /* p -= 0.1 g; q -= 0.5 (g + 0.25 q) */
    ck_assert_tensor(p, ((double[]){1 - 0.05, -2 + 0.1}), 1e-15);
    ck_assert_tensor(q, ((double[]){1 - 0.5 * (0.5 + 0.25), -2 - 0.5 * (-1 - 0.5)}), 1e-15);
    ck_assert_int_eq(optim_set_group_lr(o, 1, 0.25), 0);
    ck_assert_double_eq(optim_get_group_lr(o, 1), 0.25);
    ck_assert_double_eq(optim_get_lr(o), 0.1);
    ck_assert_int_eq(optim_set_group_lr(o, 2, 0.25), -1);
    ck_assert_error_is("optim_set_group_lr: no group 2, or lr 0.25 is not >= 0");
    /* q is in group 1 already; an Adam group in an SGD optimiser */
    ck_assert_int_eq(optim_add_group(o, &c, &q, 1), -1);
    ck_assert_error_is("optim_add_group: parameters 1 and 2 are one tensor (tied?); it would be "
                       "stepped twice: pass each tensor once (nn_model_parameters)");
    optim_config ca = optim_defaults(OPTIM_ADAM);
    tensor *r = param();
    ck_assert_int_eq(optim_add_group(o, &ca, &r, 1), -1);
    ck_assert_error_is("optim_add_group: a group of an sgd optimiser cannot be adam");
    ck_assert_int_eq(optim_add_group(NULL, &ca, &r, 1), -1);
    ck_assert_error_is("optim_add_group: optimiser is NULL");
    ck_assert_int_eq(optim_group_count(o), 2);
    optim_free(o);
    tensor_free(p), tensor_free(q), tensor_free(r);
}
END_TEST

/* The names optim_save writes for one parameter of 2 elements in one Adam
 * group, with their dtypes and shapes, to edit a saved file. */
#define N_OPT 14
static const char *opt_names[N_OPT] = {
    "kind", "steps", "state.0.step", "state.0.exp_avg", "state.0.exp_avg_sq",
    "param_groups.0.params", "param_groups.0.lr", "param_groups.0.momentum",
    "param_groups.0.dampening", "param_groups.0.nesterov", "param_groups.0.weight_decay",
    "param_groups.0.beta1", "param_groups.0.beta2", "param_groups.0.eps"};

static void opt_tensors(tensor **ts) {
    for (int i = 0; i < N_OPT; i++)
        ts[i] = i < 3   ? tensor_zeros(DTYPE_I64, 0, NULL)
                : i < 5 ? tensor_zeros(DTYPE_F64, SHAPE(2))
                : i == 5 ? tensor_zeros(DTYPE_I64, SHAPE(1))
                         : tensor_zeros(DTYPE_F64, 0, NULL);
}

/* Saves o, sets element 0 of entry `which` to v, writes the file back. */
static void edited_file(optim *o, const char *path, int which, double v) {
    tensor *ts[N_OPT];
    opt_tensors(ts);
    ck_assert_int_eq(optim_save(o, path), 0);
    ck_assert_int_eq(nn_safetensors_load(path, opt_names, ts, N_OPT), 0);
    tensor_set(ts[which], 0, v);
    ck_assert_int_eq(nn_safetensors_save(path, opt_names, ts, N_OPT), 0);
    for (int i = 0; i < N_OPT; i++) tensor_free(ts[i]);
}

/* A file with impossible values is refused whole: the optimiser keeps its
 * state and its lr. */
START_TEST(test_optim_load_refuses_bad_values) {
    make_dir();
    tensor *p = param();
    optim_config c = optim_defaults(OPTIM_ADAM);
    optim *o = optim_new(&c, &p, 1);
    ck_assert_int_eq(optim_step(o), 0);
    const char *f = in_dir("bad.safetensors");
    char want[320];

    edited_file(o, f, 2, -1); /* state.0.step */
    ck_assert_int_eq(optim_load(o, f), -1);
    snprintf(want, sizeof want,
             "%s: optimiser step count -1 of \"state.0.step\" is negative or more than the 1 "
             "steps taken",
             f);
    ck_assert_error_is(want);

    edited_file(o, f, 5, 1); /* param_groups.0.params = [1] */
    ck_assert_int_eq(optim_load(o, f), -1);
    snprintf(want, sizeof want,
             "%s: parameter group 0 in the file holds other parameters than the optimiser's "
             "group 0",
             f);
    ck_assert_error_is(want);

    edited_file(o, f, 11, 1.5); /* beta1 */
    ck_assert_int_eq(optim_load(o, f), -1);
    snprintf(want, sizeof want, "%s: parameter group 0 in the file: betas must be in [0, 1)", f);
    ck_assert_error_is(want);

    edited_file(o, f, 6, 0.5); /* lr: fine, and loaded */
    ck_assert_double_eq(optim_get_lr(o), 1e-3);
    ck_assert_int_eq(optim_load(o, f), 0);
    ck_assert_double_eq(optim_get_lr(o), 0.5);

    ck_assert_int_eq(optim_save(NULL, f), -1);
    ck_assert_error_is("optim_save: optimiser is NULL");
    ck_assert_int_eq(optim_load(NULL, f), -1);
    ck_assert_error_is("optim_load: optimiser is NULL");
    optim_free(o);
    tensor_free(p);
    remove_dir();
}
END_TEST

/* A checkpoint's loader and generator parts are checked before use. */
START_TEST(test_checkpoint_refuses_bad_loader_and_rng) {
    make_dir();
    write_data();
    nn_dataset *d = nn_dataset_load_dir(dir, "train");
    ck_assert_ptr_nonnull(d);
    nn_loader *l = nn_loader_new(d, 8, true, 1);
    nn_model *m = nn_model_new(DTYPE_F32, 0);
    nn_model_add_param(m, "w", tensor_zeros(DTYPE_F32, SHAPE(2)));
    const char *f = in_dir("ck.safetensors");
    ck_assert_int_eq(nn_checkpoint_save(f, m, NULL, l), 0);

    const char *names[5] = {"model.w", "rng.model", "loader.order", "loader.rng", "loader.pos"};
    tensor *ts[5] = {tensor_zeros(DTYPE_F32, SHAPE(2)), tensor_zeros(DTYPE_I64, SHAPE(2)),
                     tensor_zeros(DTYPE_I64, SHAPE(N_IMAGES)), tensor_zeros(DTYPE_I64, SHAPE(2)),
                     tensor_zeros(DTYPE_I64, 0, NULL)};
    ck_assert_int_eq(nn_safetensors_load(f, names, ts, 5), 0);
    int64_t good_order0 = ((int64_t *)ts[2]->data)[0];
    ((int64_t *)ts[2]->data)[0] = ((int64_t *)ts[2]->data)[1]; /* an image twice */
    ck_assert_int_eq(nn_safetensors_save(f, names, ts, 5), 0);
    ck_assert_int_eq(nn_checkpoint_load(f, m, NULL, l), -1);
    char want[320];
    snprintf(want, sizeof want,
             "%s: the loader state does not fit this loader: its order is not a permutation of "
             "the 36 images or its position 0 is past them",
             f);
    ck_assert_error_is(want);

    ((int64_t *)ts[2]->data)[0] = good_order0;
    ((int64_t *)ts[1]->data)[1] = 4; /* rng.model's increment even */
    tensor_set(ts[0], 0, 9);
    ck_assert_int_eq(nn_safetensors_save(f, names, ts, 5), 0);
    ck_assert_int_eq(nn_checkpoint_load(f, m, NULL, l), -1);
    snprintf(want, sizeof want,
             "%s: \"rng.model\" is not a generator's state (its increment is even)", f);
    ck_assert_error_is(want);
    ck_assert_double_eq(tensor_get(m->params[0], 0), 0); /* nothing written */

    /* a model checkpoint is not a training checkpoint */
    ck_assert_int_eq(nn_model_save(m, f), 0);
    ck_assert_int_eq(nn_checkpoint_load(f, m, NULL, NULL), -1);
    ck_assert_ptr_nonnull(strstr(tapegrad_error(), "\"model.w\" is missing from the file"));
    tapegrad_error_clear();
    ck_assert_int_eq(nn_checkpoint_save(f, NULL, NULL, NULL), -1);
    ck_assert_error_is("nn_checkpoint_save: model is NULL");
    ck_assert_int_eq(nn_checkpoint_load(f, NULL, NULL, NULL), -1);
    ck_assert_error_is("nn_checkpoint_load: model is NULL");
    for (int i = 0; i < 5; i++) tensor_free(ts[i]);
    nn_model_free(m);
    nn_loader_free(l);
    nn_dataset_free(d);
    remove_dir();
}
END_TEST

/* The example program, beside this test binary's folder (build/examples/);
 * NULL (and the test does nothing) in a build that has no examples, such as
 * make check-asan's. */
static const char *example(void) {
    static char p[4096];
    ssize_t n = readlink("/proc/self/exe", p, sizeof p - 32);
    ck_assert_int_gt(n, 0);
    p[n] = '\0';
    char *slash = strrchr(p, '/');
    *slash = '\0';
    slash = strrchr(p, '/');
    snprintf(slash, 32, "/examples/lenet5");
    if (access(p, X_OK)) {
        fprintf(stderr, "test_nn_resume: %s not built; its tests do nothing here\n", p);
        return NULL;
    }
    return p;
}

/* Runs the example with args in dir's data, output to out; its exit code. */
static int run_example(const char *exe, const char *args, const char *out) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' --data '%s' %s >'%s' 2>&1", exe, dir, args, out);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static bool file_has(const char *path, const char *want) {
    size_t n;
    char *p = slurp(path, &n);
    p = realloc(p, n + 1);
    p[n] = '\0';
    bool has = strstr(p, want) != NULL;
    if (!has) fprintf(stderr, "%s lacks \"%s\":\n%s\n", path, want, p);
    free(p);
    return has;
}

static void write_test_split(void) {
    static uint8_t img[10 * 28 * 28], lab[10];
    for (size_t i = 0; i < sizeof img; i++) img[i] = (uint8_t)(i * 7);
    for (int i = 0; i < 10; i++) lab[i] = (uint8_t)i;
    write_idx(in_dir("t10k-images-idx3-ubyte"), 3, (int[]){10, 28, 28}, img, sizeof img);
    write_idx(in_dir("t10k-labels-idx1-ubyte"), 1, (int[]){10}, lab, sizeof lab);
}

/* examples/lenet5 --resume: 11 steps straight, or 6, a new process resuming
 * to 11 (inside the second epoch of 5 batches), give the same checkpoint. */
START_TEST(test_lenet5_example_resume_is_bitwise) {
    const char *exe = example();
    if (!exe) return;
    make_dir();
    write_data();
    write_test_split();
    char log[160];
    snprintf(log, sizeof log, "%s", in_dir("log"));
    char args[512];
    snprintf(args, sizeof args, "--batch 8 --epochs 5 --steps 11 --checkpoint '%s'",
             in_dir("a.st"));
    ck_assert_int_eq(run_example(exe, args, log), 0);
    snprintf(args, sizeof args, "--batch 8 --epochs 5 --steps 6 --checkpoint '%s'",
             in_dir("b.st"));
    ck_assert_int_eq(run_example(exe, args, log), 0);
    snprintf(args, sizeof args, "--batch 8 --epochs 5 --steps 11 --resume '%s' --checkpoint '%s'",
             in_dir("b.st"), in_dir("c.st"));
    ck_assert_int_eq(run_example(exe, args, log), 0);
    ck_assert(file_has(log, "at step 6 (epoch 2, batch 1)"));
    size_t na, nc;
    char *a = slurp(in_dir("a.st"), &na), *c = slurp(in_dir("c.st"), &nc);
    ck_assert_uint_eq(na, nc);
    ck_assert_msg(!memcmp(a, c, na), "lenet5 --resume differs from an uninterrupted run");
    free(a), free(c);
    remove_dir();
}
END_TEST

/* Nonsense options are refused with a message naming the option (exit 2);
 * a diverging run says why it stopped (exit 1). */
START_TEST(test_lenet5_example_options_and_divergence) {
    const char *exe = example();
    if (!exe) return;
    make_dir();
    write_data();
    write_test_split();
    char log[160];
    snprintf(log, sizeof log, "%s", in_dir("log"));
    static const char *const bad[][2] = {
        {"--subset -5", "lenet5: --subset needs a whole number from 1 to"},
        {"--threads 0", "lenet5: --threads needs a whole number from 1 to 1024, not \"0\""},
        {"--batch 12abc", "lenet5: --batch needs a whole number from 1 to 1000000, not \"12abc\""},
        {"--epochs 99999999999999999999", "lenet5: --epochs needs a whole number"},
        {"--lr nan", "lenet5: --lr needs a finite number above 0, not \"nan\""},
        {"--lr -1", "lenet5: --lr needs a finite number above 0, not \"-1\""},
        {"--seed -3", "lenet5: --seed needs a whole number from 0 to"},
        {"--steps 0", "lenet5: --steps needs a whole number from 1 to"},
        {"stray", "lenet5: unexpected argument \"stray\""},
        {"--load x --resume y", "lenet5: --load and --resume both set the model; give one"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(run_example(exe, bad[i][0], log), 2);
        ck_assert(file_has(log, bad[i][1]));
    }
    ck_assert_int_eq(run_example(exe, "--batch 8 --epochs 1 --lr 1e30", log), 1);
    ck_assert(file_has(log, "lenet5: training diverged: the loss is "));
    ck_assert(file_has(log, "; try a lower --lr"));
    ck_assert_int_eq(run_example(exe, "--resume /nonexistent/ck", log), 1);
    ck_assert(file_has(log, "lenet5: resuming: /nonexistent/ck: cannot open: No such file"));
    remove_dir();
}
END_TEST

Suite *nn_resume_suite(void) {
    Suite *s = suite_create("nn_resume");
    TCase *tc = tcase_create("resume");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_resume_in_new_process_is_bitwise);
    tcase_add_test(tc, test_optim_save_load_continues_exactly);
    tcase_add_test(tc, test_optim_groups_own_hyperparameters);
    tcase_add_test(tc, test_optim_load_refuses_bad_values);
    tcase_add_test(tc, test_checkpoint_refuses_bad_loader_and_rng);
    tcase_add_test(tc, test_lenet5_example_resume_is_bitwise);
    tcase_add_test(tc, test_lenet5_example_options_and_divergence);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) {
    if (argc == 6 && !strcmp(argv[1], "--resume"))
        return resume_main(argv[2], argv[3], strtoll(argv[4], NULL, 10), argv[5]);
    SRunner *sr = srunner_create(nn_resume_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
