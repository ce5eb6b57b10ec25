/* test_reproducible.c - on one thread, training is a function of the seed:
 * two LeNet-5 runs from the same seed give the same loss at every step and
 * the same checkpoint file, bit for bit; another seed gives other losses
 * (so the comparison can fail). */
#include <stdio.h>
#include <unistd.h>

#include "check_main.h"

enum { BATCH = 8, STEPS = 300, CLASSES = 10, PIXELS = 28 * 28 };

/* Trains LeNet-5 with Adam for STEPS steps on synthetic data: each label has
 * a fixed random image and an input is its label's image plus N(0, 1) noise
 * per pixel. The seed draws the initial parameters, the images, the labels
 * and the noise. Stores every step's loss and saves the model to path. */
static void train_run(uint64_t seed, float *losses, const char *path) {
    rng g;
    rng_seed(&g, seed, 1);
    static float protos[CLASSES * PIXELS];
    for (int i = 0; i < CLASSES * PIXELS; i++) protos[i] = (float)rng_normal(&g);
    nn_lenet5 *net = nn_lenet5_new(DTYPE_F32, seed);
    ck_assert_ptr_nonnull(net);
    optim_config c = optim_defaults(OPTIM_ADAM);
    optim *o = optim_new(&c, net->model->params, net->model->n_params);
    tensor *x = tensor_zeros(DTYPE_F32, SHAPE(BATCH, 1, 28, 28));
    tensor *y = tensor_zeros(DTYPE_I64, SHAPE(BATCH));
    ck_assert(o && x && y);
    float *xd = x->data;
    int64_t *yd = y->data;
    for (int s = 0; s < STEPS; s++) {
        for (int b = 0; b < BATCH; b++) {
            yd[b] = (int64_t)rng_below(&g, CLASSES);
            for (int i = 0; i < PIXELS; i++)
                xd[b * PIXELS + i] = protos[yd[b] * PIXELS + i] + (float)rng_normal(&g);
        }
        optim_zero_grad(o);
        tensor *loss = nn_lenet5_loss(net, x, y);
        ck_assert_msg(loss && tensor_backward(loss) == 0 && optim_step(o) == 0, "step %d: %s", s,
                      tapegrad_error());
        losses[s] = *(const float *)loss->data;
        tape_reset();
    }
    ck_assert_msg(nn_model_save(net->model, path) == 0, "%s", tapegrad_error());
    tensor_free(x);
    tensor_free(y);
    optim_free(o);
    nn_lenet5_free(net);
}

/* The whole file at path; *len its size. Caller frees. */
static unsigned char *file_bytes(const char *path, long *len) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    *len = ftell(f);
    ck_assert_int_gt(*len, 0);
    rewind(f);
    unsigned char *buf = malloc((size_t)*len);
    ck_assert_ptr_nonnull(buf);
    ck_assert_int_eq(fread(buf, 1, (size_t)*len, f), (size_t)*len);
    fclose(f);
    return buf;
}

static bool same_file(const char *a, const char *b) {
    long na, nb;
    unsigned char *da = file_bytes(a, &na), *db = file_bytes(b, &nb);
    bool same = na == nb && memcmp(da, db, (size_t)na) == 0;
    free(da);
    free(db);
    return same;
}

/* The checkpoints go to a fresh directory that the (unchecked, so run
 * even when the test fails) teardown removes with them. */
static char dir[] = "/tmp/tapegrad_repro_XXXXXX", pa[64], pb[64], pc[64];

static void make_dir(void) {
    if (!mkdtemp(dir)) dir[0] = 0;
    snprintf(pa, sizeof pa, "%s/a.safetensors", dir);
    snprintf(pb, sizeof pb, "%s/b.safetensors", dir);
    snprintf(pc, sizeof pc, "%s/c.safetensors", dir);
}

static void remove_dir(void) {
    if (!dir[0]) return;
    unlink(pa);
    unlink(pb);
    unlink(pc);
    rmdir(dir);
}

START_TEST(test_reproducible_same_seed_same_bits) {
    ck_assert_msg(dir[0], "no temporary directory");
    static float a[STEPS], b[STEPS], c[STEPS];
    train_run(42, a, pa);
    train_run(42, b, pb);
    train_run(43, c, pc);

    /* The runs trained: every loss finite, the last 50 well below the first
     * 50 (chance level is ln 10 = 2.30). */
    double first = 0, last = 0;
    for (int s = 0; s < STEPS; s++) ck_assert_msg(isfinite(a[s]), "step %d: loss %g", s, a[s]);
    for (int s = 0; s < 50; s++) first += a[s], last += a[STEPS - 1 - s];
    ck_assert_msg(last < first / 2, "mean loss %g over the last 50 steps, %g over the first 50",
                  last / 50, first / 50);

    ck_assert_mem_eq(a, b, sizeof a);
    ck_assert_msg(same_file(pa, pb), "same seed, different checkpoints");
    ck_assert_msg(memcmp(a, c, sizeof a) != 0, "seeds 42 and 43 gave the same losses");
    ck_assert_msg(!same_file(pa, pc), "seeds 42 and 43 gave the same checkpoint");
}
END_TEST

/* One thread: the claim is made for it (docs/nn.md, Reproducibility). */
static void one_thread(void) { tapegrad_set_threads(1); }

Suite *reproducible_suite(void) {
    Suite *s = suite_create("reproducible");
    TCase *tc = tcase_create("reproducible");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, one_thread, NULL);
    tcase_add_unchecked_fixture(tc, make_dir, remove_dir);
    tcase_add_test(tc, test_reproducible_same_seed_same_bits);
    suite_add_tcase(s, tc);
    return s;
}

TEST_MAIN(reproducible_suite)
