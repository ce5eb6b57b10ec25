/* tape_overhead.c - what the tape costs per recorded node.
 *
 *   tape_overhead [--nodes 20000] [--size 1] [--reps 7]
 *
 * The graph of ../shared/peers/tape_overhead_torch.py: a chain x = x * a + b
 * of --nodes elementwise nodes on tensors of --size elements, summed, then
 * backward. With size 1 the arithmetic is negligible and the figure is the
 * engine's bookkeeping: node, output allocation, the backward walk. One
 * warm-up run, then the median of --reps runs. One line:
 *   tape_overhead size=S nodes=N fwd_ns=F bwd_ns=B
 * tape_reset() (a pointer reset of the arena) is outside both timings, as
 * the peer's graph release is outside its forward. */
#include <stdlib.h>
#include <string.h>

#include "../include/tapegrad.h"
#include "bench.h"

/* One chain; fills ns per node for forward and backward. Returns 0 or -1. */
static int run(tensor *x, tensor *a, tensor *b, int64_t nodes, double *fwd, double *bwd) {
    tensor_zero_grad(a);
    tensor_zero_grad(b);
    double t0 = bench_now();
    tensor *y = x;
    for (int64_t i = 0; i < nodes / 2; i++) y = tensor_add(tensor_mul(y, a), b);
    tensor *loss = tensor_sum_all(y);
    double t1 = bench_now();
    if (!loss || tensor_backward(loss)) return -1;
    double t2 = bench_now();
    tape_reset();
    *fwd = (t1 - t0) * 1e9 / (double)nodes;
    *bwd = (t2 - t1) * 1e9 / (double)nodes;
    return 0;
}

int main(int argc, char **argv) {
    int64_t nodes = 20000, size = 1;
    int reps = 7;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--nodes") && i + 1 < argc) nodes = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--size") && i + 1 < argc) size = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: tape_overhead [--nodes 20000] [--size 1] [--reps 7]\n");
            return 2;
        }
    }
    if (nodes < 2 || size < 1 || reps < 1 || reps > 99) {
        fprintf(stderr, "tape_overhead: nodes >= 2, size >= 1, reps in 1..99\n");
        return 2;
    }
    tapegrad_set_threads(1); /* the peer's setting: overhead, not parallel arithmetic */
    tensor *a = tensor_full(DTYPE_F32, SHAPE(size), 1.0001);
    tensor *b = tensor_full(DTYPE_F32, SHAPE(size), 0.0001);
    tensor *x = tensor_ones(DTYPE_F32, SHAPE(size));
    if (tensor_set_requires_grad(a, true) || tensor_set_requires_grad(b, true) ||
        tensor_set_requires_grad(x, true)) {
        fprintf(stderr, "tape_overhead: setup: %s\n", tapegrad_error());
        return 1;
    }
    double fwd[100], bwd[100];
    for (int r = 0; r <= reps; r++) /* run 0 warms the arena up */
        if (run(x, a, b, nodes, &fwd[r], &bwd[r])) {
            fprintf(stderr, "tape_overhead: %s\n", tapegrad_error());
            return 1;
        }
    printf("tape_overhead size=%lld nodes=%lld fwd_ns=%.1f bwd_ns=%.1f\n", (long long)size,
           (long long)nodes, bench_median(fwd + 1, reps), bench_median(bwd + 1, reps));
    tensor_free(a);
    tensor_free(b);
    tensor_free(x);
    return 0;
}
