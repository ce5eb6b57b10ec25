#!/usr/bin/env python3
"""PyTorch side of bench/kernels.c: the same ops, shapes, FLOP counts.

Usage: python3 kernels_torch.py [--batch 64] [--threads 1] [--iters 50]
Prints per op: 'torch kernel op=NAME batch=B threads=T ms=M gflops=G'.
"""
import argparse, statistics, time
import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--iters", type=int, default=50)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    B = a.batch
    r = lambda *s, g=True: (torch.randn(*s) * 0.1).requires_grad_(g)
    ops = [
        ("conv1", lambda x, w, b: F.conv2d(x, w, b, padding=2),
         (r(B, 1, 28, 28, g=False), r(6, 1, 5, 5), r(6)), 2 * 2.0 * B * 6 * 28 * 28 * 25),
        ("conv2", lambda x, w, b: F.conv2d(x, w, b),
         (r(B, 6, 14, 14), r(16, 6, 5, 5), r(16)), 3 * 2.0 * B * 16 * 10 * 10 * 150),
        ("matmul", lambda x, w: x @ w, (r(B, 400), r(400, 120)), 3 * 2.0 * B * 400 * 120),
    ]
    for name, f, args, flops in ops:
        seed = torch.ones_like(f(*args))
        ms = []
        for i in range(a.iters + 5):
            t0 = time.perf_counter()
            f(*args).backward(seed)
            if i >= 5:
                ms.append((time.perf_counter() - t0) * 1e3)
            for t in args:
                t.grad = None
        m = statistics.median(ms)
        print(f"torch kernel op={name} batch={B} threads={a.threads} ms={m:.4f} gflops={flops / (m * 1e6):.2f}")


if __name__ == "__main__":
    main()
