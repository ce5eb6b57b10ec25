/* recompute.c - what gradient checkpointing trades: tape memory for time.
 *
 *   recompute [--layers 16] [--width 1024] [--batch 256] [--steps 5] [--threads 1]
 *
 * A deep MLP, h = relu(h W_k^T + b_k) for --layers layers of --width units
 * on a batch of --batch rows, loss mean((h - y)^2) against fixed targets y
 * (tensor_mse_loss), trained plain and with one
 * tape_checkpoint per layer. Per variant: the peak of the tape's bytes in a
 * step (tapegrad_tape_peak_bytes: arena and checkpoint gradient buffers)
 * and the median step time (forward, backward, reset) over --steps steps
 * after one warm-up step, the two variants alternating. The gradients of
 * both are compared bit for bit. One line:
 *   recompute layers=L width=W batch=B threads=T plain_ms=P ckpt_ms=C time_ratio=C/P
 *     plain_peak_mib=.. ckpt_peak_mib=.. mem_ratio=.. identical=1 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../include/tapegrad.h"
#include "bench.h"

typedef struct layer {
    tensor *w, *b;
} layer;

static tensor *layer_fwd(void *ctx, tensor *const *in, int n) {
    (void)n;
    const layer *l = ctx;
    return tensor_relu(tensor_linear(in[0], l->w, l->b));
}

/* One step; fills its time in ms and its peak tape bytes. 0 or -1. */
static int step(layer *ls, int L, tensor *x, tensor *target, bool ckpt, double *ms,
                int64_t *peak) {
    for (int k = 0; k < L; k++) {
        tensor_zero_grad(ls[k].w);
        tensor_zero_grad(ls[k].b);
    }
    double t0 = bench_now();
    tensor *h = x;
    for (int k = 0; k < L; k++) h = ckpt ? tape_checkpoint(layer_fwd, &ls[k], &h, 1) : layer_fwd(&ls[k], &h, 1);
    tensor *loss = tensor_mse_loss(h, target, REDUCTION_MEAN);
    if (!loss || tensor_backward(loss)) return -1;
    *peak = tapegrad_tape_peak_bytes();
    tape_reset();
    *ms = (bench_now() - t0) * 1e3;
    return 0;
}

int main(int argc, char **argv) {
    int L = 16, steps = 5, threads = 1;
    int64_t width = 1024, batch = 256;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--layers") && i + 1 < argc) L = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--width") && i + 1 < argc) width = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: recompute [--layers 16] [--width 1024] [--batch 256] [--steps 5]"
                            " [--threads 1]\n");
            return 2;
        }
    }
    if (L < 1 || L > 256 || width < 1 || batch < 1 || steps < 1 || steps > 99 || threads < 1) {
        fprintf(stderr, "recompute: layers in 1..256, width, batch, threads >= 1, steps in 1..99\n");
        return 2;
    }
    tapegrad_set_threads(threads);
    rng g;
    rng_seed(&g, 2026, 15);
    layer *ls = calloc((size_t)L, sizeof *ls);
    tensor **plain = calloc((size_t)(2 * L), sizeof *plain);
    if (!ls || !plain) return 1;
    const double bound = 1.0 / sqrt((double)width); /* nn.Linear's init */
    for (int k = 0; k < L; k++) {
        ls[k].w = tensor_rand(&g, DTYPE_F32, SHAPE(width, width), -bound, bound);
        ls[k].b = tensor_rand(&g, DTYPE_F32, SHAPE(width), -bound, bound);
        if (!ls[k].w || !ls[k].b || tensor_set_requires_grad(ls[k].w, true) ||
            tensor_set_requires_grad(ls[k].b, true)) {
            fprintf(stderr, "recompute: setup: %s\n", tapegrad_error());
            return 1;
        }
    }
    tensor *x = tensor_randn(&g, DTYPE_F32, SHAPE(batch, width), 0, 1),
           *y = tensor_randn(&g, DTYPE_F32, SHAPE(batch, width), 0, 1);
    if (!x || !y) return 1;
    double *t[2] = {calloc((size_t)steps, sizeof(double)), calloc((size_t)steps, sizeof(double))};
    int64_t peak[2] = {0, 0};
    bool identical = true;
    for (int s = -1; s < steps; s++) {
        for (int v = 0; v < 2; v++) {
            const int which = s >= 0 && (s & 1) ? 1 - v : v; /* warm-up plain first, then alternate */
            double ms;
            if (step(ls, L, x, y, which == 1, &ms, &peak[which])) {
                fprintf(stderr, "recompute: step failed: %s\n", tapegrad_error());
                return 1;
            }
            if (s >= 0) t[which][s] = ms;
            for (int k = 0; s == -1 && k < L; k++) {
                const tensor *gw = ls[k].w->grad, *gb = ls[k].b->grad;
                if (which == 0) {
                    plain[2 * k] = tensor_clone(gw);
                    plain[2 * k + 1] = tensor_clone(gb);
                } else {
                    identical &= !memcmp(gw->data, plain[2 * k]->data, (size_t)gw->size * 4) &&
                                 !memcmp(gb->data, plain[2 * k + 1]->data, (size_t)gb->size * 4);
                }
            }
        }
    }
    const double p = bench_median(t[0], steps), c = bench_median(t[1], steps);
    printf("recompute layers=%d width=%lld batch=%lld threads=%d plain_ms=%.1f ckpt_ms=%.1f "
           "time_ratio=%.3f plain_peak_mib=%.1f ckpt_peak_mib=%.1f mem_ratio=%.3f identical=%d\n",
           L, (long long)width, (long long)batch, threads, p, c, c / p,
           (double)peak[0] / 1048576.0, (double)peak[1] / 1048576.0,
           (double)peak[1] / (double)peak[0], identical);
    for (int k = 0; k < L; k++) {
        tensor_free(ls[k].w);
        tensor_free(ls[k].b);
        tensor_free(plain[2 * k]);
        tensor_free(plain[2 * k + 1]);
    }
    tensor_free(x);
    tensor_free(y);
    free(ls);
    free(plain);
    free(t[0]);
    free(t[1]);
    tape_release();
    return identical ? 0 : 1;
}
