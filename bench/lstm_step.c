/* lstm_step.c - time one training step of the byte-level LSTM language model.
 *
 *   lstm_step [--threads 1] [--steps 20]
 *
 * The step of ../shared/peers/chargpt_torch.py --model lstm --time: batch 16
 * of 64 bytes, embedding 256 -> 128, one LSTM layer of 256 (nn_rnn),
 * linear 256 -> 256, mean cross-entropy, AdamW lr 1e-3, float32. Random
 * bytes stand in for the text (the time does not depend on the values).
 * 3 warm-up steps, then the median of --steps timed steps. One line:
 *   lstm_step batch=16 context=64 threads=T ms=M
 * A step is what a training loop pays: zero the grads, forward, backward,
 * the update and the tape reset. */
#include <stdlib.h>
#include <string.h>

#include "../include/tapegrad.h"
#include "bench.h"

enum { B = 16, T = 64, VOCAB = 256, EMB = 128, HIDDEN = 256, WARMUP = 3 };

int main(int argc, char **argv) {
    int threads = 1, steps = 20;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--threads") && a + 1 < argc) threads = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--steps") && a + 1 < argc) steps = atoi(argv[++a]);
        else {
            fprintf(stderr, "usage: lstm_step [--threads 1] [--steps 20]\n");
            return 2;
        }
    }
    if (threads < 1 || steps < 1) {
        fprintf(stderr, "lstm_step: threads and steps must be positive\n");
        return 2;
    }
    tapegrad_set_threads(threads);
    nn_model *m = nn_model_new(DTYPE_F32, 0);
    nn_embedding emb;
    nn_rnn rnn;
    nn_linear head;
    if (!m || nn_embedding_init(&emb, m, "emb", VOCAB, EMB) ||
        nn_rnn_init(&rnn, m, "rnn", NN_RNN_LSTM, EMB, HIDDEN, true, true) ||
        nn_linear_init(&head, m, "head", HIDDEN, VOCAB, true)) {
        fprintf(stderr, "lstm_step: setup: %s\n", tapegrad_error());
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
        fprintf(stderr, "lstm_step: setup: %s\n", tapegrad_error() ? tapegrad_error() : "out of memory");
        return 1;
    }
    for (int s = 0; s < steps + WARMUP; s++) {
        for (int64_t i = 0; i < B * T; i++) {
            ((int64_t *)x->data)[i] = (int64_t)rng_below(&g, VOCAB);
            ((int64_t *)y->data)[i] = (int64_t)rng_below(&g, VOCAB);
        }
        double t0 = bench_now();
        optim_zero_grad(opt);
        tensor *out;
        tensor *loss = NULL;
        if (!nn_rnn_forward(&rnn, nn_embedding_forward(&emb, x), NULL, NULL, &out, NULL, NULL))
            loss = tensor_cross_entropy(
                tensor_reshape(nn_linear_forward(&head, out), SHAPE(B * T, VOCAB)), y, NULL, 0,
                REDUCTION_MEAN);
        if (!loss || tensor_backward(loss) || optim_step(opt)) {
            fprintf(stderr, "lstm_step: %s\n", tapegrad_error());
            return 1;
        }
        tape_reset();
        if (s >= WARMUP) ms[s - WARMUP] = (bench_now() - t0) * 1e3;
    }
    printf("lstm_step batch=%d context=%d threads=%d ms=%.3f\n", B, T, tapegrad_threads(),
           bench_median(ms, steps));
    optim_free(opt);
    tensor_free(x);
    tensor_free(y);
    free(ms);
    nn_model_free(m);
    return 0;
}
