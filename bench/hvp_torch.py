#!/usr/bin/env python3
"""Peer of bench/hvp_lenet5.c: a Hessian-vector product of LeNet-5's loss with
respect to all its parameters in PyTorch (CPU, float32), beside one plain
gradient.

The model of ../shared/peers/lenet5_torch.py (the same definition below),
random 1x28x28 images
and labels, mean cross-entropy, a random direction v (N(0, 1)). Timed, each
from the forward on:
  grad: torch.autograd.grad(loss, params);
  hvp:  double backward: g = grad(loss, params, create_graph=True), then
        grad(sum_k <g_k, v_k>, params);
  functional: torch.autograd.functional.hvp on the loss as a function of the
        parameters (functional_call of torch.func, or of torch.nn.utils.stateless
        in older releases), as documented.
5 warm-up rounds, then --steps rounds of each; medians.

Usage: python3 hvp_torch.py [--batch 64] [--steps 50] [--threads 1]
Prints one line: 'torch hvp_lenet5 batch=B threads=T grad_ms=G hvp_ms=H
functional_hvp_ms=F hvp_per_grad=H/G'.
Needs Debian's python3-torch (apt-get install python3-torch).
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
try:
    from torch.func import functional_call
except ImportError:  # torch before 2.0
    from torch.nn.utils.stateless import functional_call
import torch.nn.functional as F


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 6, 5, padding=2)
        self.c2 = nn.Conv2d(6, 16, 5)
        self.f1 = nn.Linear(400, 120)
        self.f2 = nn.Linear(120, 84)
        self.f3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.c1(x)), 2)
        x = F.max_pool2d(F.relu(self.c2(x)), 2)
        x = x.flatten(1)
        x = F.relu(self.f1(x))
        x = F.relu(self.f2(x))
        return self.f3(x)


def timed(fn, steps):
    for _ in range(5):
        fn()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = LeNet5()
    params = tuple(model.parameters())
    names = tuple(n for n, _ in model.named_parameters())
    x = torch.randn(a.batch, 1, 28, 28)
    y = torch.randint(0, 10, (a.batch,))
    v = tuple(torch.randn_like(p) for p in params)

    def grad():
        loss = F.cross_entropy(model(x), y)
        return torch.autograd.grad(loss, params)

    def hvp():
        loss = F.cross_entropy(model(x), y)
        g = torch.autograd.grad(loss, params, create_graph=True)
        dot = sum((gk * vk).sum() for gk, vk in zip(g, v))
        return torch.autograd.grad(dot, params)

    def loss_of(*ps):
        out = functional_call(model, dict(zip(names, ps)), (x,))
        return F.cross_entropy(out, y)

    def functional():
        return torch.autograd.functional.hvp(loss_of, params, v)

    g_ms = timed(grad, a.steps)
    h_ms = timed(hvp, a.steps)
    f_ms = timed(functional, a.steps)
    print(f"torch hvp_lenet5 batch={a.batch} threads={a.threads} grad_ms={g_ms:.3f} "
          f"hvp_ms={h_ms:.3f} functional_hvp_ms={f_ms:.3f} hvp_per_grad={h_ms / g_ms:.3g}")


if __name__ == "__main__":
    main()
