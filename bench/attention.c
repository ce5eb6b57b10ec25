/* attention.c - forward + backward times of attention at a GPT's shapes
 * (../shared/peers/chargpt_torch.py: batch 16, T = 64, d = 128, 4 heads,
 * causal, float32):
 *   op=sdpa_fused   tensor_scaled_dot_product_attention on [16, 4, 64, 32]
 *   op=sdpa_naive   the same function from matmul, scaling, masked_fill,
 *                   softmax and matmul (what a user wrote without the op)
 *   op=block        nn_transformer_block on [16, 64, 128]
 * Each line gives the median wall time (ms) and the median CPU time of the
 * process (cpu_ms), which a machine shared with other work disturbs less.
 * bench/attention_torch.py times PyTorch's Block the same way.
 *
 *   attention [--threads 1] [--steps 50]
 * Uses the public header only. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "tapegrad.h"

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    tensor *q, *k, *v, *x, *future;
    nn_transformer_block blk;
} setup;

static tensor *step(const setup *s, const char *op) {
    tensor *y;
    if (!strcmp(op, "sdpa_fused")) {
        y = tensor_scaled_dot_product_attention(s->q, s->k, s->v, NULL, true, 0, NULL);
    } else if (!strcmp(op, "sdpa_naive")) {
        tensor *sc = tensor_mul_scalar(tensor_matmul(s->q, tensor_transpose(s->k, -2, -1)),
                                       1 / sqrt((double)s->q->shape[3]));
        y = tensor_matmul(tensor_softmax(tensor_masked_fill(sc, s->future, -INFINITY), -1), s->v);
    } else {
        y = nn_transformer_block_forward(&s->blk, s->x, NULL);
    }
    return tensor_mean_all(tensor_mul(y, y));
}

int main(int argc, char **argv) {
    int threads = 1, steps = 50;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--threads") && a + 1 < argc) threads = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--steps") && a + 1 < argc) steps = atoi(argv[++a]);
        else {
            fprintf(stderr, "usage: attention [--threads 1] [--steps 50]\n");
            return 2;
        }
    }
    if (threads < 1 || steps < 1 || steps > 10000) {
        fprintf(stderr, "attention: threads and steps (at most 10000) must be positive\n");
        return 2;
    }
    tapegrad_set_threads(threads);
    rng g;
    rng_seed(&g, 1, 1);
    setup s;
    const int64_t qkv[4] = {16, 4, 64, 32}, tt[2] = {64, 64}, x[3] = {16, 64, 128};
    s.q = tensor_randn(&g, DTYPE_F32, 4, qkv, 0, 1);
    s.k = tensor_randn(&g, DTYPE_F32, 4, qkv, 0, 1);
    s.v = tensor_randn(&g, DTYPE_F32, 4, qkv, 0, 1);
    s.x = tensor_randn(&g, DTYPE_F32, 3, x, 0, 1);
    tensor *ones = tensor_ones(DTYPE_F32, 2, tt), *zero = tensor_zeros(DTYPE_F32, 0, NULL);
    s.future = tensor_clone(tensor_eq(tensor_tril(ones, 0), zero)); /* kept past tape_reset */
    tape_reset();
    nn_model *m = nn_model_new(DTYPE_F32, 1);
    if (!s.q || !s.k || !s.v || !s.x || !s.future || !m ||
        nn_transformer_block_init(&s.blk, m, "h.0", 128, 4, true, 0)) {
        fprintf(stderr, "attention: setup: %s\n", tapegrad_error() ? tapegrad_error() : "out of memory");
        return 1;
    }
    tensor *leaves[4] = {s.q, s.k, s.v, s.x};
    for (int i = 0; i < 4; i++) tensor_set_requires_grad(leaves[i], true);
    static const char *ops[3] = {"sdpa_fused", "sdpa_naive", "block"};
    double *wall = malloc(sizeof(double) * (size_t)steps), *cpu = malloc(sizeof(double) * (size_t)steps);
    for (int o = 0; o < 3; o++) {
        for (int r = -3; r < steps; r++) { /* three warm-up steps */
            double w0 = bench_now(), c0 = cpu_now();
            tensor *loss = step(&s, ops[o]);
            if (!loss || tensor_backward(loss)) {
                fprintf(stderr, "attention: %s: %s\n", ops[o], tapegrad_error());
                return 1;
            }
            tape_reset();
            if (r >= 0) wall[r] = bench_now() - w0, cpu[r] = cpu_now() - c0;
        }
        printf("attention op=%s threads=%d ms=%.3f cpu_ms=%.3f\n", ops[o], threads,
               1e3 * bench_median(wall, steps), 1e3 * bench_median(cpu, steps));
    }
    free(wall), free(cpu);
    for (int i = 0; i < 4; i++) tensor_free(leaves[i]);
    tensor_free(ones), tensor_free(zero), tensor_free(s.future);
    nn_model_free(m);
    tape_release();
    return 0;
}
