/* gpt_step.c - time one training step of the byte-level GPT.
 *
 *   gpt_step [--threads 1] [--steps 20] [--check-flat N]
 *
 * The step of ../shared/peers/chargpt_torch.py --model gpt --time and of
 * examples/chargpt: batch 16 of 64 bytes, token embedding 256 -> 128 plus a
 * learned position embedding, 2 pre-LayerNorm blocks (causal attention with
 * 4 heads, MLP 128 -> 512 -> 128, GELU tanh form), a final LayerNorm, the
 * head tied to the token embedding, mean cross-entropy, AdamW lr 1e-3,
 * float32. Random bytes stand in for the text (the time does not depend on
 * the values). 3 warm-up steps, then the median of --steps timed steps. One
 * line:
 *   gpt_step batch=16 context=64 threads=T ms=M
 * A step is what a training loop pays: zero the grads, forward, backward,
 * the update and the tape reset.
 *
 * --check-flat N: no timing; after the warm-up, N steps, reading
 * tapegrad_allocated_bytes() after each tape reset. The line
 *   gpt_step check_flat steps=N bytes=B changed_steps=K max_step_delta=D
 * gives the bytes after the last step and how many steps changed them (by
 * at most D bytes), and every 1000 steps the same on stderr; exit status 1
 * when any step changed them (memory is not flat). */
#include <stdlib.h>
#include <string.h>

#include "../include/tapegrad.h"
#include "bench.h"

enum { B = 16, T = 64, VOCAB = 256, D = 128, HEADS = 4, LAYERS = 2, WARMUP = 3 };

int main(int argc, char **argv) {
    int threads = 1, steps = 20;
    bool check_flat = false;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--threads") && a + 1 < argc) threads = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--steps") && a + 1 < argc) steps = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--check-flat") && a + 1 < argc) steps = atoi(argv[++a]), check_flat = true;
        else {
            fprintf(stderr, "usage: gpt_step [--threads 1] [--steps 20] [--check-flat N]\n");
            return 2;
        }
    }
    if (threads < 1 || steps < 1) {
        fprintf(stderr, "gpt_step: threads and steps must be positive\n");
        return 2;
    }
    tapegrad_set_threads(threads);
    nn_model *m = nn_model_new(DTYPE_F32, 0);
    nn_embedding tok;
    nn_pos_embedding pos;
    nn_transformer_block blocks[LAYERS];
    nn_layernorm ln;
    int bad = !m || nn_embedding_init(&tok, m, "tok", VOCAB, D) ||
              nn_pos_embedding_init(&pos, m, "pos", T, D, false);
    for (int b = 0; !bad && b < LAYERS; b++) {
        char name[16];
        snprintf(name, sizeof name, "blocks.%d", b);
        bad = nn_transformer_block_init(&blocks[b], m, name, D, HEADS, true, 0);
    }
    bad = bad || nn_layernorm_init(&ln, m, "ln", 1, (int64_t[]){D}) ||
          !nn_model_add_param(m, "head.weight", tok.weight);
    if (bad) {
        fprintf(stderr, "gpt_step: setup: %s\n", tapegrad_error());
        return 1;
    }
    rng g;
    rng_seed(&g, 0, 1);
    tensor *x = tensor_new(DTYPE_I64, SHAPE(B, T)), *y = tensor_new(DTYPE_I64, SHAPE(B * T));
    double *ms = malloc((size_t)steps * sizeof *ms);
    optim_config c = optim_defaults(OPTIM_ADAMW);
    int n;
    tensor *const *params = nn_model_parameters(m, &n);
    optim *opt = optim_new(&c, params, n);
    if (!x || !y || !ms || !opt) {
        fprintf(stderr, "gpt_step: setup: %s\n", tapegrad_error() ? tapegrad_error() : "out of memory");
        return 1;
    }
    int64_t bytes = 0;
    long long max_delta = 0;
    int changed = 0;
    for (int s = 0; s < steps + WARMUP; s++) {
        for (int64_t i = 0; i < B * T; i++) {
            ((int64_t *)x->data)[i] = (int64_t)rng_below(&g, VOCAB);
            ((int64_t *)y->data)[i] = (int64_t)rng_below(&g, VOCAB);
        }
        double t0 = bench_now();
        optim_zero_grad(opt);
        tensor *h = nn_pos_embedding_forward(&pos, nn_embedding_forward(&tok, x));
        for (int b = 0; b < LAYERS; b++) h = nn_transformer_block_forward(&blocks[b], h, NULL);
        tensor *logits = tensor_linear(nn_layernorm_forward(&ln, h), tok.weight, NULL);
        tensor *loss = tensor_cross_entropy(tensor_reshape(logits, SHAPE(B * T, VOCAB)), y, NULL, 0,
                                            REDUCTION_MEAN);
        if (!loss || tensor_backward(loss) || optim_step(opt)) {
            fprintf(stderr, "gpt_step: %s\n", tapegrad_error());
            return 1;
        }
        tape_reset();
        if (s >= WARMUP) ms[s - WARMUP] = (bench_now() - t0) * 1e3;
        if (check_flat && s >= WARMUP - 1) {
            const int64_t now = tapegrad_allocated_bytes();
            if (s >= WARMUP && now != bytes) {
                changed++;
                if (llabs(now - bytes) > max_delta) max_delta = llabs(now - bytes);
            }
            bytes = now;
            if (s >= WARMUP && (s - WARMUP + 1) % 1000 == 0) /* progress of a long run */
                fprintf(stderr, "gpt_step check_flat: %d steps, bytes=%lld, changed_steps=%d\n",
                        s - WARMUP + 1, (long long)bytes, changed);
        }
    }
    if (check_flat)
        printf("gpt_step check_flat steps=%d bytes=%lld changed_steps=%d max_step_delta=%lld\n", steps,
               (long long)bytes, changed, max_delta);
    else
        printf("gpt_step batch=%d context=%d threads=%d ms=%.3f\n", B, T, tapegrad_threads(),
               bench_median(ms, steps));
    optim_free(opt);
    tensor_free(x);
    tensor_free(y);
    free(ms);
    nn_model_free(m);
    return check_flat && changed ? 1 : 0;
}
