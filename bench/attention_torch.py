#!/usr/bin/env python3
"""attention_torch.py - PyTorch's side of bench/attention.c: forward + backward
of the pre-LN Block of ../shared/peers/chargpt_torch.py on [16, 64, 128]
(float32, causal) and of its attention alone (q k^T / sqrt(d), masked_fill,
softmax, @ v on [16, 4, 64, 32]), loss mean(y * y); median wall and process
CPU time over --steps after three warm-up steps.

  attention_torch.py [--threads 1] [--steps 50]
"""
import argparse, math, os, statistics, sys, time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "peers"))
import chargpt_torch  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=50)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    q, k, v = (torch.randn(16, 4, 64, 32, requires_grad=True) for _ in range(3))
    future = ~torch.tril(torch.ones(64, 64, dtype=torch.bool))
    x = torch.randn(16, 64, 128, requires_grad=True)
    blk = chargpt_torch.Block()

    def sdpa():
        s = (q @ k.transpose(-2, -1)) / math.sqrt(32)
        return s.masked_fill(future, float("-inf")).softmax(-1) @ v

    for name, f in (("sdpa_naive", sdpa), ("block", lambda: blk(x))):
        wall, cpu = [], []
        for r in range(-3, a.steps):
            w0, c0 = time.perf_counter(), time.process_time()
            y = f()
            (y * y).mean().backward()
            if r >= 0:
                wall.append(time.perf_counter() - w0)
                cpu.append(time.process_time() - c0)
        print(f"torch attention op={name} threads={a.threads} ms={1e3 * statistics.median(wall):.3f} "
              f"cpu_ms={1e3 * statistics.median(cpu):.3f}")


if __name__ == "__main__":
    main()
