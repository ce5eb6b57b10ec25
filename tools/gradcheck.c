/* gradcheck - the report command: checks every case of every registered op
 * against central differences in float64 and prints one row per case, then
 * the whole-LeNet-5 check (gradcheck_model). The last line is always
 *   gradcheck: N ops, M cases, F failed, T s
 * and the exit status is nonzero when F > 0.
 *
 *   gradcheck [--seed S] [--fast] [--op NAME] [--verbose] [--lenet5]
 *     --lenet5   only the whole-LeNet-5 check (make demo)
 *     --verbose  the full report of every failing case */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../autograd/internal.h"

typedef struct {
    const op_def *op;
    const op_sample *s;
} case_ctx;

static tensor *case_fn(tensor *const *in, int n, void *ctx) {
    (void)n;
    const case_ctx *c = ctx;
    return c->op->build(in, c->s);
}

static uint64_t name_hash(const char *s) { /* FNV-1a: a per-op sample stream */
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static void sample_free(op_sample *s) {
    for (int i = 0; i < s->n_inputs && i < SAMPLE_MAX_INPUTS; i++) tensor_free(s->inputs[i]);
}

typedef enum { CASE_PASS, CASE_FAIL, CASE_VACUOUS, CASE_NO_GRAD, CASE_ERROR, CASE_NONE } verdict;

/* Case k of op: 1 when the op has no case k. */
static verdict run_case(const op_def *op, int k, uint64_t seed, const gradcheck_options *base,
                        op_sample *s, gradcheck_report *r) {
    memset(s, 0, sizeof *s);
    memset(r, 0, sizeof *r);
    rng g;
    rng_seed(&g, seed + (uint64_t)k, name_hash(op->name));
    int rc = op->sample(k, &g, s);
    if (rc != 0) {
        sample_free(s);
        return rc == 1 ? CASE_NONE : CASE_ERROR;
    }
    uint32_t skip = s->no_grad_mask | op->no_grad_inputs, mask = 0;
    for (int i = 0; i < s->n_inputs; i++)
        if (!((skip >> i) & 1) && s->inputs[i] && s->inputs[i]->dtype != DTYPE_I64) mask |= 1u << i;
    verdict v = CASE_NO_GRAD;
    if (mask) {
        gradcheck_options o = *base;
        o.check_mask = mask;
        o.seed = seed + (uint64_t)k;
        case_ctx ctx = {op, s};
        if (gradcheck(case_fn, &ctx, s->inputs, s->n_inputs, &o, r))
            v = CASE_ERROR;
        else
            v = r->passed ? CASE_PASS : CASE_FAIL;
        for (int i = 0; v == CASE_FAIL && i < s->n_inputs; i++)
            if (r->input[i].vacuous) v = CASE_VACUOUS;
    }
    sample_free(s);
    return v;
}

/* ---------------------------------------------------------------------------
 * The whole-LeNet-5 check: the model as nn_lenet5_new builds it (float32,
 * seeded default init) and its own loss code, nn_lenet5_loss, checked by
 * gradcheck_model: the ten parameters and the input (batch 2), 63,274
 * numbers, full mode, in float64; the model comes back bit-identical.
 * Returns 1 when the check failed, 0 when it passed.
 * ------------------------------------------------------------------------- */
static tensor *lenet5_loss(tensor *const *batch, int n, void *ctx) {
    (void)n;
    return nn_lenet5_loss(ctx, batch[0], batch[1]);
}

static int lenet5_check(uint64_t seed, bool fast, int *cases) {
    tapegrad_set_threads(1); /* the figure is for one core */
    nn_lenet5 *net = nn_lenet5_new(DTYPE_F32, seed);
    rng g;
    rng_seed(&g, seed, 5);
    tensor *batch[2] = {tensor_rand(&g, DTYPE_F32, SHAPE(2, 1, 28, 28), 0.0, 1.0),
                        tg_sample_labels(&g, SHAPE(2), 10)};
    int64_t numbers = batch[0] ? batch[0]->size : 0;
    for (int i = 0; net && i < NN_LENET5_NPARAMS; i++) numbers += net->model->params[i]->size;
    gradcheck_options o = gradcheck_defaults();
    o.seed = seed;
    o.fast = fast;
    gradcheck_report r = {0};
    int rc = net ? gradcheck_model(net->model, lenet5_loss, net, batch, 2, &o, &r) : -1;
    (*cases)++;
    if (rc) {
        printf("lenet5: ERROR: %s\n", tapegrad_error());
        tapegrad_error_clear();
    } else {
        printf("lenet5: gradcheck_model on nn_lenet5_new's model, batch 2, %lld numbers, %s mode,"
               " float64: %s, max abs err %.3g, max rel err %.3g, %lld evaluations, %lld calls"
               " of the loss, %.3f s\n",
               (long long)numbers, fast ? "fast" : "full", r.passed ? "pass" : "FAIL",
               r.max_abs_err, r.max_rel_err, (long long)r.evaluations, (long long)r.fn_calls,
               r.seconds);
        printf("  %-10s %7s %11s %11s  %s\n", "tensor", "numbers", "max abs err", "max rel err",
               "verdict");
        for (int i = 0; i <= NN_LENET5_NPARAMS; i++) {
            const char *name = "input";
            tensor *t = batch[0];
            if (i < NN_LENET5_NPARAMS) nn_model_state_at(net->model, i, &name, &t);
            printf("  %-10s %7lld %11.3g %11.3g  %s%s\n", name, (long long)t->size,
                   r.input[i].max_abs_err, r.input[i].max_rel_err,
                   r.input[i].vacuous ? "VACUOUS" : r.input[i].passed ? "pass" : "FAIL",
                   r.input[i].rerun ? " (re-run)" : "");
        }
        if (!r.passed) gradcheck_report_print(stdout, &r);
    }
    tensor_free(batch[0]);
    tensor_free(batch[1]);
    nn_lenet5_free(net);
    bool passed = rc == 0 && r.passed;
    gradcheck_report_free(&r);
    return passed ? 0 : 1;
}

int main(int argc, char **argv) {
    gradcheck_options opt = gradcheck_defaults();
    uint64_t seed = 1;
    const char *only = NULL;
    bool verbose = false, lenet5_only = false;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--seed") && a + 1 < argc)
            seed = strtoull(argv[++a], NULL, 10);
        else if (!strcmp(argv[a], "--fast"))
            opt.fast = true;
        else if (!strcmp(argv[a], "--op") && a + 1 < argc)
            only = argv[++a];
        else if (!strcmp(argv[a], "--verbose"))
            verbose = true;
        else if (!strcmp(argv[a], "--lenet5"))
            lenet5_only = true;
        else {
            fprintf(stderr, "usage: %s [--seed S] [--fast] [--op NAME] [--verbose] [--lenet5]\n",
                    argv[0]);
            return 2;
        }
    }
    tapegrad_set_threads(1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int n_ops = 0, n_cases = 0, n_failed = 0;
    static const char *label[] = {"pass", "FAIL", "VACUOUS", "no grad", "ERROR"};
    if (!lenet5_only) {
        printf("%-16s %-44s %12s %12s  %s\n", "op", "case", "max abs err", "max rel err", "pass");
        for (int i = 0; i < op_count(); i++) {
            const op_def *op = op_at(i);
            if (only && strcmp(op->name, only)) continue;
            n_ops++;
            if (!op->sample || !op->build) {
                printf("%-16s %-44s %12s %12s  FAIL (no sample generator or build)\n", op->name,
                       "-", "-", "-");
                n_failed++;
                continue;
            }
            int k = 0;
            for (;; k++) {
                op_sample s;
                gradcheck_report r;
                verdict v = run_case(op, k, seed, &opt, &s, &r);
                if (v == CASE_NONE) break;
                n_cases++;
                if (v == CASE_FAIL || v == CASE_VACUOUS || v == CASE_ERROR) n_failed++;
                printf("%-16s %-44s %12.3g %12.3g  %s\n", op->name, s.name, r.max_abs_err,
                       r.max_rel_err, label[v]);
                if (v == CASE_ERROR)
                    printf("    error: %s\n", tapegrad_error() ? tapegrad_error() : "sample failed");
                tapegrad_error_clear();
                if (verbose && (v == CASE_FAIL || v == CASE_VACUOUS)) gradcheck_report_print(stdout, &r);
                gradcheck_report_free(&r);
            }
            if (k == 0) {
                printf("%-16s %-44s %12s %12s  FAIL (no sample case)\n", op->name, "-", "-", "-");
                n_failed++;
            }
        }
    }
    if (!only) {
        int l = lenet5_check(seed, opt.fast, &n_cases);
        if (l > 0) n_failed++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("gradcheck: %d ops, %d cases, %d failed, %.2f s\n", n_ops, n_cases, n_failed, secs);
    return n_failed ? 1 : 0;
}
