/* kernels.c - GFLOP/s of the GEMM-backed ops at LeNet-5's shapes.
 *
 *   kernels [--batch 64] [--threads 1] [--iters 50] [--op NAME]
 *
 * Forward plus backward of one op as a training step runs it, median of
 * --iters after 5 warm-up iterations. One line per op:
 *   kernel op=conv1 batch=B threads=T ms=M gflops=G
 * op        forward                                   gradients for
 * conv1     [B,1,28,28] * [6,1,5,5], pad 2 -> [B,6,28,28]   w, b (x is data)
 * conv2     [B,6,14,14] * [16,6,5,5] -> [B,16,10,10]         x, w, b
 * matmul    [B,400] @ [400,120] (f1's GEMM)                  both
 * sgemm     the matmul's three products called on OpenBLAS itself (cblas_sgemm,
 *           OpenBLAS's own threads), not through the library: the rate of
 *           the OpenBLAS floor of `make bench` (BENCHMARKS.md)
 * FLOPs count the multiply-adds of the math (2 per MAC): 2 B OC OH OW K for
 * a convolution's forward and as much again for each of dW and dx; 2 M N K
 * for the matmul and for each of its two gradients. Bias terms are left out.
 * ../bench/kernels_torch.py times the same in PyTorch (but sgemm). */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "../include/tapegrad.h"
#include "bench.h"

typedef struct bench_op {
    const char *name;
    tensor *x, *w, *b;   /* user-owned operands; b is NULL for the matmul */
    bool conv;
    conv2d_params p;
    double flops;        /* per forward + backward */
} bench_op;

static tensor *forward(const bench_op *o) {
    return o->conv ? tensor_conv2d(o->x, o->w, o->b, o->p) : tensor_matmul(o->x, o->w);
}

/* Median milliseconds of forward + backward; -1 on error. */
static double time_op(const bench_op *o, int iters) {
    double *ms = malloc((size_t)iters * sizeof *ms), med = -1;
    tensor *seed = NULL;
    if (!ms) return -1;
    for (int i = 0; i < iters + 5; i++) {
        double t0 = bench_now();
        tensor *y = forward(o);
        if (y && !seed) seed = tensor_ones(DTYPE_F32, y->ndim, y->shape); /* untimed: run 0 */
        if (!y || !seed || tensor_backward_with(y, seed)) goto out;
        tape_reset();
        if (i >= 5) ms[i - 5] = (bench_now() - t0) * 1e3;
    }
    med = bench_median(ms, iters);
out:
    tensor_free(seed);
    free(ms);
    return med;
}

/* Median milliseconds of f1's forward and its two gradients as three
 * cblas_sgemm calls on o's operands, Y = X W, dX = dY W^T, dW = X^T dY (dY
 * is Y itself: the values do not change the time); -1 when out of memory. */
static double time_sgemm(const bench_op *o, int iters) {
    const int M = (int)o->x->shape[0], K = (int)o->x->shape[1], N = (int)o->w->shape[1];
    const float *x = o->x->data, *w = o->w->data;
    float *y = malloc((size_t)M * N * sizeof *y), *dx = malloc((size_t)M * K * sizeof *dx);
    float *dw = malloc((size_t)K * N * sizeof *dw);
    double *ms = malloc((size_t)iters * sizeof *ms), med = -1;
    if (y && dx && dw && ms) {
        for (int i = 0; i < iters + 5; i++) {
            double t0 = bench_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1, x, K, w, N, 0, y, N);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, K, N, 1, y, N, w, N, 0, dx, K);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, N, M, 1, x, K, y, N, 0, dw, N);
            if (i >= 5) ms[i - 5] = (bench_now() - t0) * 1e3;
        }
        med = bench_median(ms, iters);
    }
    free(y), free(dx), free(dw), free(ms);
    return med;
}

static tensor *param(rng *g, int ndim, const int64_t *shape, bool grad) {
    tensor *t = tensor_randn(g, DTYPE_F32, ndim, shape, 0.0, 0.1);
    if (t && grad) tensor_set_requires_grad(t, true);
    return t;
}

int main(int argc, char **argv) {
    int64_t B = 64;
    int threads = 1, iters = 50;
    const char *only = NULL; /* --op: time this op alone (for a profile) */
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "--batch") && a + 1 < argc) B = atoll(argv[++a]);
        else if (!strcmp(argv[a], "--threads") && a + 1 < argc) threads = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--iters") && a + 1 < argc) iters = atoi(argv[++a]);
        else if (!strcmp(argv[a], "--op") && a + 1 < argc) only = argv[++a];
        else {
            fprintf(stderr, "usage: kernels [--batch 64] [--threads 1] [--iters 50] [--op conv1|conv2|matmul|sgemm]\n");
            return 2;
        }
    }
    if (B < 1 || threads < 1 || iters < 1) {
        fprintf(stderr, "kernels: batch, threads and iters must be positive\n");
        return 2;
    }
    tapegrad_set_threads(threads);
    rng g;
    rng_seed(&g, 0, 2);
    conv2d_params pad2 = CONV2D_DEFAULT;
    pad2.padding[0] = pad2.padding[1] = 2;
    double B_ = (double)B;
    bench_op ops[] = {
        {"conv1", param(&g, SHAPE(B, 1, 28, 28), false), param(&g, SHAPE(6, 1, 5, 5), true),
         param(&g, SHAPE(6), true), true, pad2, 2 * 2.0 * B_ * 6 * 28 * 28 * 25},
        {"conv2", param(&g, SHAPE(B, 6, 14, 14), true), param(&g, SHAPE(16, 6, 5, 5), true),
         param(&g, SHAPE(16), true), true, CONV2D_DEFAULT, 3 * 2.0 * B_ * 16 * 10 * 10 * 150},
        {"matmul", param(&g, SHAPE(B, 400), true), param(&g, SHAPE(400, 120), true), NULL,
         false, CONV2D_DEFAULT, 3 * 2.0 * B_ * 400 * 120},
        {"sgemm", param(&g, SHAPE(B, 400), false), param(&g, SHAPE(400, 120), false), NULL,
         false, CONV2D_DEFAULT, 3 * 2.0 * B_ * 400 * 120},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        bench_op *o = &ops[i];
        if (only && strcmp(only, o->name)) {
            tensor_free(o->x), tensor_free(o->w), tensor_free(o->b);
            continue;
        }
        double ms = !o->x || !o->w             ? -1
                    : !strcmp(o->name, "sgemm") ? time_sgemm(o, iters)
                                                : time_op(o, iters);
        if (ms < 0) {
            fprintf(stderr, "kernels: %s: %s\n", o->name,
                    tapegrad_error() ? tapegrad_error() : "out of memory");
            rc = 1;
        } else {
            printf("kernel op=%s batch=%lld threads=%d ms=%.4f gflops=%.2f\n", o->name,
                   (long long)B, threads, ms, o->flops / (ms * 1e6));
        }
        tensor_free(o->x);
        tensor_free(o->w);
        tensor_free(o->b);
    }
    return rc;
}
