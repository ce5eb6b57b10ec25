/* lenet5_step.c - time one LeNet-5 training step (forward, backward, SGD).
 *
 *   lenet5_step [--batch 64] [--threads 1] [--steps 200]
 *
 * The step of ../shared/peers/lenet5_torch.py: random 1x28x28 images and
 * labels, mean cross-entropy, plain SGD lr 0.01, float32; 20 warm-up steps,
 * then the median of --steps timed steps. One line:
 *   lenet5_step batch=B threads=T ms=M
 * A step is what a training loop pays: zero the grads, forward, backward,
 * the update and the tape reset. */
#include <stdlib.h>
#include <string.h>

#include "../include/tapegrad.h"
#include "bench.h"

int main(int argc, char **argv) {
    int64_t batch = 64;
    int threads = 1, steps = 200;
    if (bench_lenet5_args(argc, argv, "lenet5_step", &batch, &threads, &steps)) return 2;
    tapegrad_set_threads(threads);
    rng g;
    rng_seed(&g, 0, 1);
    nn_lenet5 *net = nn_lenet5_new(DTYPE_F32, 0);
    tensor *x = tensor_randn(&g, DTYPE_F32, SHAPE(batch, 1, 28, 28), 0.0, 1.0);
    tensor *y = tensor_new(DTYPE_I64, SHAPE(batch));
    double *ms = malloc((size_t)steps * sizeof *ms);
    optim *opt = NULL;
    if (net && y) {
        for (int64_t i = 0; i < batch; i++) tensor_set(y, i, (double)rng_below(&g, 10));
        optim_config c = optim_defaults(OPTIM_SGD);
        c.lr = 0.01;
        opt = optim_new(&c, net->model->params, net->model->n_params);
    }
    if (!opt || !x || !ms) {
        fprintf(stderr, "lenet5_step: setup: %s\n", tapegrad_error() ? tapegrad_error() : "out of memory");
        return 1;
    }
    for (int s = 0; s < steps + 20; s++) {
        double t0 = bench_now();
        optim_zero_grad(opt);
        tensor *loss = nn_lenet5_loss(net, x, y);
        if (!loss || tensor_backward(loss) || optim_step(opt)) {
            fprintf(stderr, "lenet5_step: %s\n", tapegrad_error());
            return 1;
        }
        tape_reset();
        if (s >= 20) ms[s - 20] = (bench_now() - t0) * 1e3;
    }
    printf("lenet5_step batch=%lld threads=%d ms=%.3f\n", (long long)batch, threads,
           bench_median(ms, steps));
    free(ms);
    optim_free(opt);
    tensor_free(x);
    tensor_free(y);
    nn_lenet5_free(net);
    return 0;
}
