/*
 * test_dist.c - the dist layer under mpirun (make check-mpi runs it with
 * -np 2; it also passes with -np 1). Plain asserts rather than Check: Check
 * forks a child per test, and an MPI process must not fork.
 *   test_dist DIR          the tests; DIR is a scratch directory all ranks share
 *   test_dist DIR --fail   rank 1 fails after its third step and calls
 *                          dist_abort: the job must end, naming rank 1
 *   test_dist DIR --crash  rank 1 is killed after its third step: the job
 *                          must end all the same
 *
 * Equivalence: every rank also trains the one-process reference itself
 * (batch B, no MPI) and compares with the data-parallel run (batch B/N per
 * rank). The loss is a batch mean, so the averaged gradient is the
 * reference's up to the order of the additions: each per-rank gradient is a
 * sum over B/N samples divided by B/N, then the ranks' values are summed and
 * divided by N, where the reference sums B samples and divides by B.
 * Reordering n terms changes a float sum by at most about n * eps * sum|terms|
 * (eps = 2^-24 for float32, 2^-53 for float64), so after one SGD step with
 * learning rate lr the parameters differ by lr * that: far below 1e-5 of a
 * parameter for float32 with lr 0.05 and gradients of order 1. Over many
 * steps the differences grow with the dynamics: the float64 run shows the
 * two trainings stay together at rounding level over 200 steps (1e-9
 * relative; 5e-15 measured). Float32 is checked after one step only: over
 * tens of steps a float32 LeNet-5 run amplifies ANY rounding difference (the
 * one-process float32 run leaves the float64 one by 2.6e-3 in loss by step
 * 30), so a longer float32 comparison measures training's sensitivity to
 * rounding, not the reduction (docs/distributed.md gives the figures).
 *
 * The GPT of examples/dist/chargpt (examples/chargpt.h, the example's own
 * model and loop) is held to the same: np x B/np windows against one
 * process's B windows after one AdamW step, the ranks equal after steps of
 * the example's loop, and two runs of that loop bit-identical.
 */
#include <math.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tapegrad_dist.h"
/* the GPT and training loop of examples/dist/chargpt; its option parsing,
 * corpus reading, validation and sampler are not used here */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "../../examples/chargpt.h"
#pragma GCC diagnostic pop

static int rank, size, failures, checks;

#define CHECK(cond, ...)                                                              \
    do {                                                                              \
        checks++;                                                                     \
        if (!(cond)) {                                                                \
            failures++;                                                               \
            fprintf(stderr, "rank %d: %s:%d: check failed: %s: ", rank, __FILE__,     \
                    __LINE__, #cond);                                                 \
            fprintf(stderr, __VA_ARGS__);                                             \
            fprintf(stderr, " (error: %s)\n", tapegrad_error() ? tapegrad_error() : "none"); \
        }                                                                             \
    } while (0)

/* A synthetic image set: pixels from a fixed generator, labels the image's
 * index mod 10 (or the index itself for the sharding test). */
static nn_dataset *make_data(int64_t n, bool label_is_index) {
    nn_dataset *d = calloc(1, sizeof *d);
    d->n = n;
    d->rows = d->cols = 28;
    d->n_classes = label_is_index ? 256 : 10;
    d->images = malloc((size_t)n * 784);
    d->labels = malloc((size_t)n);
    uint64_t s = 0x9e3779b97f4a7c15ULL;
    for (int64_t i = 0; i < n * 784; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        d->images[i] = (uint8_t)(s >> 24);
    }
    for (int64_t i = 0; i < n; i++) d->labels[i] = (uint8_t)(label_is_index ? i : (i * 7 + i / 3) % 10);
    return d;
}

static void free_data(nn_dataset *d) {
    free(d->images);
    free(d->labels);
    free(d);
}

typedef struct run {
    nn_lenet5 *net;
    optim *opt;
    nn_loader *ld;
} run;

static run run_new(const nn_dataset *d, dtype dt, int64_t batch, bool dist, uint64_t seed) {
    run r = {0};
    r.net = nn_lenet5_new(dt, seed);
    int n;
    tensor *const *p = nn_model_parameters(r.net->model, &n);
    optim_config c = optim_defaults(OPTIM_SGD);
    c.lr = 0.05;
    c.momentum = 0.9;
    r.opt = optim_new(&c, p, n);
    r.ld = nn_loader_new(d, batch, true, 9);
    nn_loader_set_dtype(r.ld, dt);
    if (dist) nn_loader_set_shard(r.ld, rank, size);
    return r;
}

static void run_free(run *r) {
    optim_free(r->opt);
    nn_loader_free(r->ld);
    nn_lenet5_free(r->net);
}

/* One step; the loss returned is the global batch's mean (the ranks' mean
 * when dist). Returns NAN on an error. */
static double step(run *r, bool dist) {
    tensor *x, *y;
    int rc = nn_loader_next(r->ld, &x, &y);
    if (rc == 0) {
        nn_loader_rewind(r->ld);
        rc = nn_loader_next(r->ld, &x, &y);
    }
    if (rc != 1) return NAN;
    optim_zero_grad(r->opt);
    tensor *loss = nn_lenet5_loss(r->net, x, y);
    if (!loss || tensor_backward(loss)) return NAN;
    double l = tensor_item(loss);
    tape_reset();
    if (dist) {
        if (dist_allreduce_grads(r->net->model)) return NAN;
        MPI_Allreduce(MPI_IN_PLACE, &l, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        l /= size;
    }
    return optim_step(r->opt) ? NAN : l;
}

/* Largest |a - b| / max(|b|, 1) over the two models' parameters. */
static double max_rel(const nn_model *a, const nn_model *b) {
    int n, nb;
    tensor *const *pa = nn_model_parameters(a, &n), *const *pb = nn_model_parameters(b, &nb);
    double worst = n == nb ? 0 : INFINITY;
    for (int i = 0; i < n && i < nb; i++)
        for (int64_t j = 0; j < pa[i]->size; j++) {
            double u = tensor_get(pa[i], j), v = tensor_get(pb[i], j);
            double e = fabs(u - v) / fmax(fabs(v), 1.0);
            if (!(e <= worst)) worst = e; /* a NaN sticks */
        }
    return worst;
}

static size_t esize(dtype dt) {
    return dt == DTYPE_F64 ? 8 : 4;
}

static bool bit_equal(const nn_model *a, const nn_model *b) {
    int n, nb;
    tensor *const *pa = nn_model_parameters(a, &n), *const *pb = nn_model_parameters(b, &nb);
    if (n != nb) return false;
    for (int i = 0; i < n; i++)
        if (pa[i]->size != pb[i]->size ||
            memcmp(pa[i]->data, pb[i]->data, (size_t)pa[i]->size * (pa[i]->dtype == DTYPE_F64 ? 8 : 4)))
            return false;
    return true;
}

static void test_not_initialised(void) {
    CHECK(!dist_initialized(), "initialised before dist_init");
    CHECK(dist_rank() == -1, "rank before init");
    tapegrad_error_clear();
    nn_model *m = nn_model_new(DTYPE_F32, 1);
    CHECK(dist_allreduce_grads(m) == -1, "allreduce before init succeeded");
    CHECK(tapegrad_error() &&
              strstr(tapegrad_error(), "dist_allreduce_grads: dist_init has not been called"),
          "wrong message");
    tapegrad_error_clear();
    CHECK(dist_broadcast_model(m) == -1 && strstr(tapegrad_error(), "dist_init has not been called"),
          "broadcast before init");
    tapegrad_error_clear();
    CHECK(dist_sync_buffers(m) == -1 && strstr(tapegrad_error(), "dist_sync_buffers: dist_init has not been called"),
          "buffer sync before init");
    tapegrad_error_clear();
    nn_model_free(m);
}

/* Different seeds per rank; after the broadcast every rank holds rank 0's. */
static void test_broadcast(void) {
    nn_lenet5 *a = nn_lenet5_new(DTYPE_F32, 100 + (uint64_t)rank), *ref = nn_lenet5_new(DTYPE_F32, 100);
    if (size > 1) {
        CHECK(dist_check_params(a->model) == -1, "different initialisations not detected");
        CHECK(tapegrad_error() && strstr(tapegrad_error(), "dist_check_params: the parameters of rank(s) 1"),
              "wrong message");
        tapegrad_error_clear();
    }
    CHECK(dist_broadcast_model(a->model) == 0, "broadcast failed");
    CHECK(bit_equal(a->model, ref->model), "parameters are not rank 0's after the broadcast");
    CHECK(dist_check_params(a->model) == 0, "ranks differ after the broadcast");
    nn_lenet5_free(a);
    nn_lenet5_free(ref);
}

/* Bad arguments: an error on every rank (all pass the same), no hang. */
static void test_bad_arguments(void) {
    CHECK(dist_broadcast_model(NULL) == -1 && strstr(tapegrad_error(), "dist_broadcast_model: model is NULL"),
          "a NULL model broadcast");
    tapegrad_error_clear();
    CHECK(dist_allreduce_grads(NULL) == -1 && strstr(tapegrad_error(), "dist_allreduce_grads: model is NULL"),
          "a NULL model reduced");
    tapegrad_error_clear();
    nn_model *m = nn_model_new(DTYPE_F32, 1);
    nn_model_add_param(m, "a", tensor_zeros(DTYPE_F32, SHAPE(3)));
    nn_model_add_param(m, "b", tensor_zeros(DTYPE_F64, SHAPE(2)));
    CHECK(dist_allreduce_grads(m) == -1 && strstr(tapegrad_error(), "dist_allreduce_grads: parameters mix float32 and float64; one dtype is needed"),
          "mixed dtypes reduced");
    tapegrad_error_clear();
    nn_model_free(m);
}

/* dist_sum: each rank's values summed; a negative count refused on all. */
static void test_sum(void) {
    double v[3] = {rank + 1.0, -0.5 * rank, 1e300};
    CHECK(dist_sum(v, 2) == 0, "sum");
    CHECK(v[0] == size * (size + 1) / 2.0 && v[1] == -0.25 * size * (size - 1) && v[2] == 1e300,
          "sums %g %g %g", v[0], v[1], v[2]);
    CHECK(dist_sum(v, 0) == 0, "empty sum");
    CHECK(dist_sum(v, -1) == -1 && strstr(tapegrad_error(), "dist_sum: -1 values at "), "a count of -1 summed");
    tapegrad_error_clear();
}

/* dist_all_ok: every rank learns which failed and the first one's error;
 * a rank that failed too also sees its own. */
static void test_all_ok(void) {
    CHECK(dist_all_ok(0, "nothing") == 0, "all succeeded");
    nn_loader_set_shard(NULL, 0, 1); /* a known message on every rank */
    CHECK(dist_all_ok(-1, "both") == -1, "all failed, yet ok");
    const char *e = tapegrad_error() ? tapegrad_error() : "";
    if (size == 1)
        CHECK(!strcmp(e, "both failed on rank(s) 0 of 1; rank 0: nn_loader_set_shard: loader is NULL"), "%s", e);
    else if (size == 2 && rank == 0)
        CHECK(!strcmp(e, "both failed on rank(s) 0, 1 of 2; rank 0: nn_loader_set_shard: loader is NULL"), "%s", e);
    else if (size == 2)
        CHECK(!strcmp(e, "both failed on rank(s) 0, 1 of 2; rank 0: nn_loader_set_shard: loader is NULL; here (rank 1): nn_loader_set_shard: loader is NULL"), "%s", e);
    tapegrad_error_clear();
}

/* Rank 1 has one parameter more: an error on every rank, no hang. */
static void test_mismatch(void) {
    if (size < 2) return;
    nn_lenet5 *a = nn_lenet5_new(DTYPE_F32, 3);
    if (rank == 1) nn_model_add_param(a->model, "extra", tensor_zeros(DTYPE_F32, SHAPE(5)));
    CHECK(dist_broadcast_model(a->model) == -1, "mismatched models broadcast");
    CHECK(tapegrad_error() && strstr(tapegrad_error(), "dist_broadcast_model: the ranks' models differ"),
          "wrong message");
    tapegrad_error_clear();
    CHECK(dist_allreduce_grads(a->model) == -1, "mismatched gradient lengths reduced");
    CHECK(tapegrad_error() && strstr(tapegrad_error(), "the gradient length (elements) ranges from"),
          "wrong message");
    tapegrad_error_clear();
    nn_lenet5_free(a);
}

/* Each rank's shard of one epoch; together every image exactly once. */
static void test_sharding(void) {
    int64_t n = 200 - 200 % size; /* a multiple of the ranks: no position left out */
    nn_dataset *d = make_data(n, true);
    nn_loader *l = nn_loader_new(d, 16, true, 5);
    CHECK(nn_loader_set_shard(l, rank, size) == 0, "set_shard");
    int count[256] = {0};
    tensor *x, *y;
    int64_t seen = 0;
    while (nn_loader_next(l, &x, &y) == 1) {
        for (int64_t i = 0; i < y->shape[0]; i++) count[((int64_t *)y->data)[i]]++;
        seen += y->shape[0];
        tape_reset();
    }
    CHECK(seen == n / size, "shard of %lld images, want %lld", (long long)seen, (long long)(n / size));
    MPI_Allreduce(MPI_IN_PLACE, count, 256, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int bad = 0;
    for (int64_t i = 0; i < 256; i++) bad += count[i] != (i < n ? 1 : 0);
    CHECK(bad == 0, "%d images not seen exactly once in the epoch", bad);
    nn_loader_free(l);
    free_data(d);
    /* n = 201 on N ranks: every rank takes floor(201 / N) images (the same
     * step count everywhere), no image twice, 201 mod N left out this epoch */
    d = make_data(201, true);
    l = nn_loader_new(d, 16, true, 5);
    nn_loader_set_shard(l, rank, size);
    memset(count, 0, sizeof count);
    seen = 0;
    for (int e = 0; e < 2; e++) {
        while (nn_loader_next(l, &x, &y) == 1) {
            for (int64_t i = 0; i < y->shape[0]; i++) count[((int64_t *)y->data)[i]]++;
            seen += y->shape[0];
            tape_reset();
        }
        CHECK(seen == (e + 1) * (201 / size), "epoch %d: %lld images", e, (long long)seen);
        if (e == 0) {
            MPI_Allreduce(MPI_IN_PLACE, count, 256, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
            int twice = 0, once = 0;
            for (int i = 0; i < 256; i++) twice += count[i] > 1, once += count[i] == 1;
            CHECK(twice == 0 && once == 201 - 201 % size, "epoch of 201: %d seen twice, %d once", twice, once);
            memset(count, 0, sizeof count);
        }
        nn_loader_rewind(l);
    }
    nn_loader_free(l);
    free_data(d);
}

/* N ranks with batch 64/N against one process with batch 64. */
static void test_equivalence(dtype dt, int steps, double tol_one, double tol_end, double tol_loss) {
    /* Fashion-MNIST when installed (scripts/deps.sh installs it): on the
     * synthetic set's random labels training is chaotic and float32 runs
     * part after some tens of steps, which says nothing of the reduction. */
    nn_dataset *fm = nn_dataset_load_dir(NULL, "train");
    tapegrad_error_clear();
    if (fm) nn_dataset_truncate(fm, 64 * 200);
    nn_dataset *syn = fm ? NULL : make_data(1024, false), *d = fm ? fm : syn;
    run ref = run_new(d, dt, 64, false, 11), dp = run_new(d, dt, 64 / size, true, 11 + (uint64_t)rank);
    CHECK(dist_broadcast_model(dp.net->model) == 0, "broadcast");
    double worst_loss = 0;
    for (int s = 0; s < steps; s++) {
        double lr = step(&ref, false), ld = step(&dp, true);
        if (!(fabs(lr - ld) <= worst_loss)) worst_loss = fabs(lr - ld);
        if (s == 0) {
            double e = max_rel(dp.net->model, ref.net->model);
            CHECK(e <= tol_one, "%s after one step: max relative difference %.3g > %.3g",
                  dt == DTYPE_F64 ? "float64" : "float32", e, tol_one);
        }
    }
    double e = max_rel(dp.net->model, ref.net->model);
    CHECK(e <= tol_end, "%s after %d steps: max relative difference %.3g > %.3g",
          dt == DTYPE_F64 ? "float64" : "float32", steps, e, tol_end);
    CHECK(worst_loss <= tol_loss, "losses differ by %.3g > %.3g over %d steps", worst_loss, tol_loss, steps);
    CHECK(dist_check_params(dp.net->model) == 0, "ranks diverged");
    if (rank == 0)
        printf("  %s, %d steps: params after one step within %.3g, after %d within %.3g; losses within %.3g\n",
               dt == DTYPE_F64 ? "float64" : "float32", steps, tol_one, steps, e, worst_loss);
    run_free(&ref);
    run_free(&dp);
    if (syn) free_data(syn);
    nn_dataset_free(fm);
}

/* Two runs at the same rank count: bit-identical parameters. */
static void test_determinism(void) {
    nn_dataset *d = make_data(512, false);
    run a = run_new(d, DTYPE_F32, 64 / size, true, 21), b = run_new(d, DTYPE_F32, 64 / size, true, 21);
    dist_broadcast_model(a.net->model);
    dist_broadcast_model(b.net->model);
    for (int s = 0; s < 12; s++) {
        step(&a, true);
        step(&b, true);
    }
    CHECK(bit_equal(a.net->model, b.net->model), "two runs differ");
    run_free(&a);
    run_free(&b);
    free_data(d);
}

/* --------------------------------------------------------- the GPT */

/* A text of n bytes from a fixed generator: words of 1-8 letters with
 * spaces and newlines, enough structure for a language model's loss. */
static unsigned char *gpt_text(int64_t n) {
    unsigned char *t = malloc((size_t)n);
    rng g;
    rng_seed(&g, 5, 0);
    for (int64_t i = 0; i < n;) {
        int w = 1 + (int)rng_below(&g, 8);
        for (int k = 0; k < w && i < n; k++) t[i++] = (unsigned char)('a' + rng_below(&g, 26));
        if (i < n) t[i++] = rng_below(&g, 10) ? ' ' : '\n';
    }
    return t;
}

static optim *gpt_optim(const net *n, optim_kind kind) {
    int np;
    tensor *const *p = nn_model_parameters(n->m, &np);
    optim_config c = optim_defaults(kind);
    if (kind == OPTIM_SGD) c.lr = 0.05;
    return optim_new(&c, p, np);
}

/* Largest |a - b| over a parameter's gradient elements, relative to the
 * largest |b| of that gradient (a gradient's rounding is relative to its
 * terms, not to each element, which may be a cancellation near 0). */
static double grad_rel(const nn_model *a, const nn_model *b) {
    int n, nb;
    tensor *const *pa = nn_model_parameters(a, &n), *const *pb = nn_model_parameters(b, &nb);
    double worst = n == nb ? 0 : INFINITY;
    for (int i = 0; i < n && i < nb; i++) {
        if (!pa[i]->grad || !pb[i]->grad) return INFINITY;
        double scale = 0, d = 0;
        for (int64_t j = 0; j < pb[i]->size; j++) {
            double u = tensor_get(pa[i]->grad, j), v = tensor_get(pb[i]->grad, j);
            scale = fmax(scale, fabs(v));
            if (!(fabs(u - v) <= d)) d = fabs(u - v);
        }
        double e = d / fmax(scale, 1e-30);
        if (!(e <= worst)) worst = e;
    }
    return worst;
}

/* One step of the example's GPT on B = 4 windows: rank r of N takes
 * windows [r B/N, (r+1) B/N) and averages gradients with the others; every
 * rank also takes the one-process step on all 4 and compares. The
 * gradients differ by the order of their sums only (a mean of B/N then of
 * N, against a mean of B): within 1e-5 of each gradient's largest element
 * (float32 rounding of sums of a few hundred terms), and after an SGD step
 * (lr 0.05) the parameters within 1e-5 of max(|p|, 1). With the example's
 * AdamW the parameters are compared too but only reported: its first step
 * is lr g / (|g| + eps) per element, so an element whose gradient cancels
 * to near eps (1e-8) moves by a visible part of lr on a rounding
 * difference of g (measured: 1.2e-4 of a parameter at lr 1e-3). */
static void test_gpt_equivalence(optim_kind kind) {
    enum { B = 4 };
    const char *oname = kind == OPTIM_SGD ? "SGD" : "AdamW";
    if (B % size) {
        if (rank == 0) printf("  GPT equivalence: skipped (%d ranks do not divide %d windows)\n", size, B);
        return;
    }
    int64_t len = 20000, per = B / size;
    unsigned char *text = gpt_text(len);
    tensor *x = tensor_zeros(DTYPE_I64, SHAPE(B, CTX)), *y = tensor_zeros(DTYPE_I64, SHAPE(B * CTX));
    rng g;
    rng_seed(&g, 17, 0);
    charlm_draw(text, len, CTX, &g, x, y);
    tensor *xs = tensor_narrow(x, 0, rank * per, per), *ys = tensor_narrow(y, 0, rank * per * CTX, per * CTX);
    CHECK(xs && ys, "narrowing the batch");
    tensor *xr = xs ? tensor_detach(xs) : NULL, *yr = ys ? tensor_detach(ys) : NULL;
    tape_reset();
    net ref, dp;
    CHECK(chargpt_net_init(&ref, 3) == 0 && chargpt_net_init(&dp, 3) == 0, "building the GPT");
    optim *oref = gpt_optim(&ref, kind), *odp = gpt_optim(&dp, kind);
    CHECK(dist_broadcast_model(dp.m) == 0, "broadcast");
    /* the one-process step on all B windows */
    optim_zero_grad(oref);
    tensor *l = chargpt_loss(&ref, x, y);
    CHECK(l && tensor_backward(l) == 0, "reference backward");
    double lref = l ? tensor_item(l) : NAN;
    tape_reset();
    /* this rank's share, averaged */
    optim_zero_grad(odp);
    l = xr && yr ? chargpt_loss(&dp, xr, yr) : NULL;
    CHECK(l && tensor_backward(l) == 0, "backward");
    double ldp = l ? tensor_item(l) : NAN;
    tape_reset();
    CHECK(dist_allreduce_grads(dp.m) == 0, "allreduce");
    CHECK(dist_sum(&ldp, 1) == 0, "loss sum");
    ldp /= size;
    double eg = grad_rel(dp.m, ref.m);
    CHECK(eg <= 1e-5, "GPT gradients: max relative difference %.3g > 1e-5", eg);
    CHECK(optim_step(oref) == 0 && optim_step(odp) == 0, "step");
    double e = max_rel(dp.m, ref.m);
    if (kind == OPTIM_SGD) CHECK(e <= 1e-5, "GPT after one SGD step: max relative difference %.3g > 1e-5", e);
    CHECK(fabs(ldp - lref) <= 1e-5 * fabs(lref), "GPT losses %.9g (ranks' mean) and %.9g (one process)", ldp, lref);
    CHECK(dist_check_params(dp.m) == 0, "ranks diverged");
    if (rank == 0)
        printf("  GPT, %d x %lld windows vs 1 x %d: gradients within %.3g, params after one %s step within "
               "%.3g, loss within %.3g\n",
               size, (long long)per, B, eg, oname, e, fabs(ldp - lref));
    optim_free(oref);
    optim_free(odp);
    nn_model_free(ref.m);
    nn_model_free(dp.m);
    tensor_free(x), tensor_free(y), tensor_free(xr), tensor_free(yr);
    free(text);
}

/* The example's loop (examples/chargpt.h) with the dist layer: 3 steps of
 * 2 windows per rank comparing the ranks' parameters after every step, and
 * two runs bit-identical. */
static void test_gpt_loop(void) {
    int64_t len = 20000;
    unsigned char *text = gpt_text(len);
    options o = {.steps = 3, .batch = 2, .lr = 1e-3, .check_every = 1, .seed = 4, .quiet = true};
    chargpt_par par = {rank, size, dist_allreduce_grads, dist_check_params, dist_sum};
    net a, b;
    CHECK(chargpt_net_init(&a, 4) == 0 && chargpt_net_init(&b, 4) == 0, "building the GPT");
    optim *oa = gpt_optim(&a, OPTIM_ADAMW), *ob = gpt_optim(&b, OPTIM_ADAMW);
    CHECK(dist_broadcast_model(a.m) == 0 && dist_broadcast_model(b.m) == 0, "broadcast");
    const char *what = "";
    CHECK(chargpt_train(&a, oa, &o, &par, text, len, "test_dist", &what) == 0, "first run: %s", what);
    CHECK(chargpt_train(&b, ob, &o, &par, text, len, "test_dist", &what) == 0, "second run: %s", what);
    CHECK(optim_steps(oa) == 3, "%lld steps", (long long)optim_steps(oa));
    CHECK(bit_equal(a.m, b.m), "two runs of the GPT loop differ");
    CHECK(dist_check_params(a.m) == 0, "ranks diverged");
    /* a rank whose copy moved is caught by the loop's check */
    if (rank == size - 1 && size > 1) ((float *)a.tok.weight->data)[7] += 1e-3f;
    o.steps = 1;
    int rc = chargpt_train(&a, oa, &o, &par, text, len, "test_dist", &what);
    if (size > 1) {
        CHECK(rc == -1 && !strcmp(what, "divergence check") && tapegrad_error() &&
                  strstr(tapegrad_error(), "differ from rank 0's"),
              "a moved copy was not caught: rc %d, %s", rc, what);
        tapegrad_error_clear();
    }
    optim_free(oa);
    optim_free(ob);
    nn_model_free(a.m);
    nn_model_free(b.m);
    free(text);
}

/* Checkpoint from rank 0 after 5 steps, 5 more steps; a fresh run loaded
 * from the checkpoint and stepped 5 times matches bit for bit. A missing
 * file on one rank fails the load on every rank, naming it. */
static void test_checkpoint_resume(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/dist_resume.safetensors", dir);
    nn_dataset *d = make_data(512, false);
    run a = run_new(d, DTYPE_F32, 64 / size, true, 31);
    dist_broadcast_model(a.net->model);
    for (int s = 0; s < 5; s++) step(&a, true);
    CHECK(dist_checkpoint_save(path, a.net->model, a.opt, a.ld) == 0, "save");
    for (int s = 0; s < 5; s++) step(&a, true);
    run b = run_new(d, DTYPE_F32, 64 / size, true, 77); /* other init: the load must replace it */
    CHECK(dist_checkpoint_load(path, b.net->model, b.opt, b.ld) == 0, "load");
    for (int s = 0; s < 5; s++) step(&b, true);
    CHECK(bit_equal(a.net->model, b.net->model), "resumed run differs from the uninterrupted one");
    CHECK(optim_steps(a.opt) == optim_steps(b.opt), "step counts differ");
    if (size > 1) {
        char bad[4200];
        snprintf(bad, sizeof bad, "%s/no_such_checkpoint.safetensors", dir);
        CHECK(dist_checkpoint_load(rank == 1 ? bad : path, b.net->model, b.opt, b.ld) == -1,
              "a missing file on rank 1 loaded");
        /* every rank, rank 0 included, learns rank 1's own error */
        CHECK(tapegrad_error() && strstr(tapegrad_error(), "dist_checkpoint_load failed on rank(s) 1 of") &&
                  strstr(tapegrad_error(), "rank 1: ") && strstr(tapegrad_error(), "no_such_checkpoint"),
              "wrong message");
        tapegrad_error_clear();
    }
    snprintf(path, sizeof path, "%s/no_dir/x.safetensors", dir);
    CHECK(dist_checkpoint_save(path, a.net->model, a.opt, a.ld) == -1, "save into a missing directory");
    CHECK(tapegrad_error() && strstr(tapegrad_error(), "rank 0 could not write the checkpoint"),
          "wrong message");
    tapegrad_error_clear();
    run_free(&a);
    run_free(&b);
    free_data(d);
}

/* Buckets: the gradients of one backward, averaged in one bucket and in
 * many small ones (cut inside parameters too), come out bit-identical: a
 * bucket is a slice of the same flat buffer and each element's sum has the
 * same operands. A cap that differs between ranks is an error on all. */
static void test_buckets(dtype dt) {
    nn_dataset *d = make_data(256, false);
    run a = run_new(d, dt, 64 / size, true, 51);
    CHECK(dist_broadcast_model(a.net->model) == 0, "broadcast");
    tensor *x, *y;
    nn_loader_next(a.ld, &x, &y);
    tensor *loss = nn_lenet5_loss(a.net, x, y);
    CHECK(loss && tensor_backward(loss) == 0, "backward");
    tape_reset();
    int n;
    tensor *const *p = nn_model_parameters(a.net->model, &n);
    tensor **local = calloc((size_t)n, sizeof *local), **one = calloc((size_t)n, sizeof *one);
    for (int i = 0; i < n; i++) local[i] = tensor_clone(p[i]->grad);
    CHECK(dist_allreduce_grads(a.net->model) == 0 && dist_buckets() == 1, "one bucket (%d)", dist_buckets());
    for (int i = 0; i < n; i++) {
        one[i] = tensor_clone(p[i]->grad);
        memcpy(p[i]->grad->data, local[i]->data, (size_t)p[i]->size * esize(dt));
    }
    /* 1000 bytes: 250 float32 or 125 float64 elements per bucket, so most
     * parameters are cut and the 61,706 elements make 247 or 494 buckets */
    int64_t per = 1000 / (int64_t)esize(dt), want = (nn_model_numel(a.net->model) + per - 1) / per;
    CHECK(dist_set_bucket_bytes(1000) == 0, "set bucket bytes");
    CHECK(dist_allreduce_grads(a.net->model) == 0 && dist_buckets() == want, "%d buckets, want %lld",
          dist_buckets(), (long long)want);
    bool same = true;
    for (int i = 0; i < n; i++)
        same = same && !memcmp(p[i]->grad->data, one[i]->data, (size_t)p[i]->size * esize(dt));
    CHECK(same, "%s: many buckets differ from one", dt == DTYPE_F64 ? "float64" : "float32");
    if (size > 1) {
        CHECK(dist_set_bucket_bytes(rank == 1 ? 2000 : 1000) == 0, "set bucket bytes");
        CHECK(dist_allreduce_grads(a.net->model) == -1, "different bucket caps reduced");
        CHECK(tapegrad_error() && strstr(tapegrad_error(), "the elements per bucket (dist_set_bucket_bytes) ranges"),
              "wrong message");
        tapegrad_error_clear();
    }
    CHECK(dist_set_bucket_bytes(4) == -1 && strstr(tapegrad_error(), "dist_set_bucket_bytes: a bucket of 4 bytes"),
          "a 4-byte bucket accepted");
    tapegrad_error_clear();
    dist_set_bucket_bytes((size_t)25 << 20);
    for (int i = 0; i < n; i++) {
        tensor_free(local[i]);
        tensor_free(one[i]);
    }
    free(local);
    free(one);
    run_free(&a);
    free_data(d);
}

/* Batch-norm running statistics: per rank after a forward on each rank's
 * own data, equal to the ranks' mean after dist_sync_buffers (each rank
 * gathers every rank's statistics to compute the mean itself), and synced by
 * dist_allreduce_grads once dist_set_sync_buffers(true) is set. */
static void test_sync_buffers(void) {
    nn_model *m = nn_model_new(DTYPE_F32, 61);
    nn_batchnorm2d bn;
    CHECK(nn_batchnorm2d_init(&bn, m, "bn", 3) == 0, "batch norm");
    CHECK(dist_broadcast_model(m) == 0, "broadcast");
    rng g;
    rng_seed(&g, 1000 + (uint64_t)rank, 0);
    tensor *x = tensor_randn(&g, DTYPE_F32, SHAPE(4, 3, 5, 5), 0.5 * rank, 1.0 + rank);
    CHECK(nn_batchnorm2d_forward(&bn, x) != NULL, "forward");
    tape_reset();
    float mine[6], all[64 * 6];
    memcpy(mine, bn.running_mean->data, 3 * sizeof(float));
    memcpy(mine + 3, bn.running_var->data, 3 * sizeof(float));
    MPI_Allgather(mine, 6, MPI_FLOAT, all, 6, MPI_FLOAT, MPI_COMM_WORLD);
    if (size > 1) CHECK(memcmp(all, all + 6, sizeof mine) != 0, "running statistics equal before the sync");
    CHECK(dist_sync_buffers(m) == 0, "sync");
    float worst = 0;
    for (int j = 0; j < 6; j++) {
        float sum = 0;
        for (int r = 0; r < size; r++) sum += all[r * 6 + j];
        float got = j < 3 ? ((float *)bn.running_mean->data)[j] : ((float *)bn.running_var->data)[j - 3];
        worst = fmaxf(worst, fabsf(got - sum / (float)size));
    }
    CHECK(worst <= 1e-6f, "synced statistics are %g from the ranks' mean", worst);
    CHECK(dist_check_params(m) == 0, "parameters differ");
    /* the option: the sync rides on the gradient allreduce */
    tensor *l = tensor_mean(nn_batchnorm2d_forward(&bn, x), NULL, 0, false);
    CHECK(l && tensor_backward(l) == 0, "backward");
    tape_reset();
    dist_set_sync_buffers(true);
    CHECK(dist_allreduce_grads(m) == 0, "allreduce with sync");
    dist_set_sync_buffers(false);
    memcpy(mine, bn.running_mean->data, 3 * sizeof(float));
    memcpy(mine + 3, bn.running_var->data, 3 * sizeof(float));
    MPI_Allgather(mine, 6, MPI_FLOAT, all, 6, MPI_FLOAT, MPI_COMM_WORLD);
    bool equal = true;
    for (int r = 1; r < size; r++) equal = equal && !memcmp(all, all + 6 * r, sizeof mine);
    CHECK(equal, "running statistics differ after dist_allreduce_grads with the sync option");
    /* a batch counter that differs (one rank ran one forward more) */
    if (size > 1) {
        if (rank == 1) {
            CHECK(nn_batchnorm2d_forward(&bn, x) != NULL, "forward");
            tape_reset();
        }
        CHECK(dist_sync_buffers(m) == -1, "different batch counters synced");
        CHECK(tapegrad_error() && strstr(tapegrad_error(), "the checksum of the integer buffers"),
              "wrong message");
        tapegrad_error_clear();
    }
    CHECK(dist_sync_buffers(NULL) == -1 && strstr(tapegrad_error(), "dist_sync_buffers failed on rank(s) 0") &&
              strstr(tapegrad_error(), "dist_sync_buffers: model is NULL"),
          "a NULL model synced");
    tapegrad_error_clear();
    tensor_free(x);
    nn_model_free(m);
}

/* A model with dropout: the generator is broadcast with the parameters and
 * saved in rank 0's checkpoint, so a resumed run draws the masks the
 * uninterrupted one draws, on every rank. */
typedef struct drop_net {
    nn_model *m;
    nn_linear l1, l2;
    nn_dropout dr;
    optim *opt;
} drop_net;

static drop_net drop_new(uint64_t seed) {
    drop_net d = {.m = nn_model_new(DTYPE_F32, seed)};
    nn_linear_init(&d.l1, d.m, "l1", 8, 16, true);
    nn_dropout_init(&d.dr, d.m, 0.5);
    nn_linear_init(&d.l2, d.m, "l2", 16, 1, true);
    int n;
    tensor *const *p = nn_model_parameters(d.m, &n);
    optim_config c = optim_defaults(OPTIM_ADAM);
    c.lr = 1e-2;
    d.opt = optim_new(&c, p, n);
    return d;
}

static void drop_step(drop_net *d, int s) {
    rng g;
    rng_seed(&g, (uint64_t)(s * 64 + rank), 7); /* this rank's batch of step s */
    tensor *x = tensor_randn(&g, DTYPE_F32, SHAPE(6, 8), 0, 1), *t = tensor_randn(&g, DTYPE_F32, SHAPE(6, 1), 0, 1);
    optim_zero_grad(d->opt);
    tensor *h = nn_dropout_forward(&d->dr, tensor_relu(nn_linear_forward(&d->l1, x)));
    tensor *l = tensor_mse_loss(nn_linear_forward(&d->l2, h), t, REDUCTION_MEAN);
    CHECK(l && tensor_backward(l) == 0, "dropout net backward");
    tape_reset();
    CHECK(dist_allreduce_grads(d->m) == 0 && optim_step(d->opt) == 0, "dropout net step");
    tensor_free(x);
    tensor_free(t);
}

static void test_dropout_resume(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/dist_dropout.safetensors", dir);
    drop_net a = drop_new(5 + (uint64_t)rank);
    CHECK(dist_broadcast_model(a.m) == 0, "broadcast");
    CHECK(dist_check_params(a.m) == 0, "generators differ after the broadcast");
    for (int s = 0; s < 4; s++) drop_step(&a, s);
    CHECK(dist_checkpoint_save(path, a.m, a.opt, NULL) == 0, "save");
    for (int s = 4; s < 8; s++) drop_step(&a, s);
    drop_net b = drop_new(99);
    CHECK(dist_checkpoint_load(path, b.m, b.opt, NULL) == 0, "load");
    for (int s = 4; s < 8; s++) drop_step(&b, s);
    CHECK(bit_equal(a.m, b.m), "resumed dropout run differs from the uninterrupted one");
    CHECK(a.m->rng.state == b.m->rng.state, "generators differ after the resume");
    CHECK(dist_check_params(b.m) == 0, "ranks differ");
    /* a rank that draws one mask more has diverged: its generator moved */
    if (size > 1) {
        if (rank == 1) rng_next_u32(&b.m->rng);
        CHECK(dist_check_params(b.m) == -1, "a generator that moved on one rank was not detected");
        tapegrad_error_clear();
    }
    optim_free(a.opt);
    optim_free(b.opt);
    nn_model_free(a.m);
    nn_model_free(b.m);
}

/* Rank 1 fails after three steps and aborts while rank 0 waits in the
 * next allreduce: mpirun must end the job (the caller checks the time and
 * the message). With crash, rank 1 dies instead (SIGKILL: no message of its
 * own, as from the kernel's OOM killer), and mpirun must still end the job
 * and name it. */
static int fail_mode(bool crash) {
    nn_dataset *d = make_data(512, false);
    run a = run_new(d, DTYPE_F32, 32, true, 41);
    dist_broadcast_model(a.net->model);
    for (int s = 0; s < 6; s++) {
        if (rank == 1 && s == 3 && crash) raise(SIGKILL);
        if (rank == 1 && s == 3) {
            tapegrad_error_clear();
            nn_loader_set_shard(NULL, 0, 1); /* a real error from the library */
            dist_abort("step 3");
        }
        step(&a, true);
    }
    run_free(&a);
    free_data(d);
    return 0; /* not reached on rank 0 when rank 1 aborts */
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s DIR [--fail]\n", argv[0]);
        return 2;
    }
    tapegrad_set_threads(1);
    test_not_initialised();
    if (dist_init(&argc, &argv)) {
        fprintf(stderr, "dist_init: %s\n", tapegrad_error());
        return 1;
    }
    rank = dist_rank();
    size = dist_size();
    CHECK(dist_init(NULL, NULL) == -1 && tapegrad_error() &&
              !strcmp(tapegrad_error(),
                      "dist_init: MPI is already initialised (dist_init is called once per process)"),
          "second dist_init");
    tapegrad_error_clear();
    if (argc > 2 && (!strcmp(argv[2], "--fail") || !strcmp(argv[2], "--crash"))) {
        fail_mode(!strcmp(argv[2], "--crash"));
        dist_finalize();
        return 1;
    }
    if (rank == 0) printf("test_dist: %d rank(s)\n", size);
    test_broadcast();
    test_bad_arguments();
    test_sum();
    test_mismatch();
    test_all_ok();
    test_sharding();
    test_equivalence(DTYPE_F64, 200, 1e-12, 1e-9, 1e-9);
    test_equivalence(DTYPE_F32, 1, 1e-5, 1e-5, 1e-6);
    test_determinism();
    test_gpt_equivalence(OPTIM_SGD);
    test_gpt_equivalence(OPTIM_ADAMW);
    test_gpt_loop();
    test_checkpoint_resume(argv[1]);
    test_buckets(DTYPE_F32);
    test_buckets(DTYPE_F64);
    test_sync_buffers();
    test_dropout_resume(argv[1]);
    int all[2] = {failures, checks};
    MPI_Allreduce(MPI_IN_PLACE, all, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) printf("test_dist: %d checks on %d rank(s), %d failed\n", all[1], size, all[0]);
    dist_finalize();
    return all[0] ? 1 : 0;
}
