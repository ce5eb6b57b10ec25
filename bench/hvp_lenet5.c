/* hvp_lenet5.c - time a Hessian-vector product of LeNet-5's loss with respect
 * to all its parameters, beside one plain gradient of the same loss.
 *
 *   hvp_lenet5 [--batch 64] [--threads 1] [--steps 50]
 *
 * The model and data of lenet5_step (random 1x28x28 images and labels, mean
 * cross-entropy, float32) and a random direction v (N(0, 1), one tensor per
 * parameter). Timed, each as a whole from the forward to the tape reset:
 *   grad: forward, tensor_grad without create_graph (the kernel vjps);
 *   hvp:  forward, tensor_hvp (the gradient recorded with create_graph, its
 *         inner product with v, and a backward walk over that).
 * 5 warm-up rounds, then --steps rounds alternating the two; the median of
 * each. One line:
 *   hvp_lenet5 batch=B threads=T grad_ms=G hvp_ms=H hvp_per_grad=H/G
 * The PyTorch peer is bench/hvp_torch.py. */
#include <stdlib.h>
#include <string.h>

#include "../include/tapegrad.h"
#include "bench.h"

int main(int argc, char **argv) {
    int64_t batch = 64;
    int threads = 1, steps = 50;
    if (bench_lenet5_args(argc, argv, "hvp_lenet5", &batch, &threads, &steps)) return 2;
    tapegrad_set_threads(threads);
    rng g;
    rng_seed(&g, 0, 1);
    nn_lenet5 *net = nn_lenet5_new(DTYPE_F32, 0);
    tensor *x = tensor_randn(&g, DTYPE_F32, SHAPE(batch, 1, 28, 28), 0.0, 1.0);
    tensor *y = tensor_new(DTYPE_I64, SHAPE(batch));
    double *gms = malloc((size_t)steps * sizeof *gms), *hms = malloc((size_t)steps * sizeof *hms);
    tensor *p[NN_LENET5_NPARAMS], *v[NN_LENET5_NPARAMS] = {0}, *out[NN_LENET5_NPARAMS];
    int ok = net && x && y && gms && hms;
    if (ok) {
        tensor *t[NN_LENET5_NPARAMS] = {net->c1.weight, net->c1.bias, net->c2.weight, net->c2.bias,
                                        net->f1.weight, net->f1.bias, net->f2.weight, net->f2.bias,
                                        net->f3.weight, net->f3.bias};
        memcpy(p, t, sizeof t);
        for (int64_t i = 0; i < batch; i++) tensor_set(y, i, (double)rng_below(&g, 10));
        for (int k = 0; k < NN_LENET5_NPARAMS; k++)
            ok = ok && (v[k] = tensor_randn(&g, DTYPE_F32, p[k]->ndim, p[k]->shape, 0.0, 1.0));
    }
    if (!ok) {
        fprintf(stderr, "hvp_lenet5: setup: %s\n", tapegrad_error() ? tapegrad_error() : "out of memory");
        return 1;
    }
    double check = 0;
    for (int s = 0; s < steps + 5; s++) {
        for (int which = 0; which < 2; which++) {
            double t0 = bench_now();
            tensor *loss = nn_lenet5_loss_with(p, x, y);
            int rc = which ? tensor_hvp(loss, p, NN_LENET5_NPARAMS, v, out)
                           : tensor_grad(loss, NULL, p, NN_LENET5_NPARAMS, false, out);
            if (!loss || rc) {
                fprintf(stderr, "hvp_lenet5: %s\n", tapegrad_error());
                return 1;
            }
            if (which && s == 0) check = tensor_get(out[0], 0); /* used: not optimised away */
            tape_reset();
            if (s >= 5) (which ? hms : gms)[s - 5] = (bench_now() - t0) * 1e3;
        }
    }
    double gm = bench_median(gms, steps), hm = bench_median(hms, steps);
    printf("hvp_lenet5 batch=%lld threads=%d hv0=%.4g grad_ms=%.3f hvp_ms=%.3f hvp_per_grad=%.3g\n",
           (long long)batch, threads, check, gm, hm, hm / gm);
    free(gms), free(hms);
    for (int k = 0; k < NN_LENET5_NPARAMS; k++) tensor_free(v[k]);
    tensor_free(x);
    tensor_free(y);
    nn_lenet5_free(net);
    return 0;
}
