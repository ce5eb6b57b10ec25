#!/usr/bin/env python3
"""Peer of examples/burgers_pinn: the same physics-informed network for
Burgers' equation in PyTorch (CPU).

u(x, t): an MLP 2 -> width x layers (tanh) -> 1, Xavier-normal weights, zero
biases; loss = mean f^2 on the collocation points + mean (u(x, 0) + sin(pi x))^2
+ mean u(+-1, t)^2 with f = u_t + u u_x - (0.01 / pi) u_xx, the derivatives by
torch.autograd.grad with create_graph=True; Adam. The points are the
example's, deterministic: collocation points from the Halton sequence (bases
2 and 3, from index 1), initial points x_j = -1 + 2 (j + 1/2) / n0, boundary
points t_k = (k + 1/2) / (nb / 2) on each side.

Usage: python3 burgers_torch.py [--steps 200] [--layers 8] [--width 20]
       [--nf 2000] [--n0 100] [--nb 100] [--lr 1e-3] [--threads 1] [--f64]
       [--time]
Without --time: a line step=S loss=L ... every steps/10 steps. With --time:
one line 'torch burgers_pinn layers=L width=W nf=N threads=T loss=X
step_ms=median' over --steps steps after 5 warm-up steps.
Needs Debian's python3-torch (apt-get install python3-torch).
"""
import argparse
import math
import statistics
import time

import torch

NU = 0.01 / math.pi


def halton(i, b):
    f, r = 1.0, 0.0
    while i > 0:
        f /= b
        r += f * (i % b)
        i //= b
    return r


def points(nf, n0, nb, dt):
    xf = torch.tensor([[-1 + 2 * halton(i + 1, 2)] for i in range(nf)], dtype=dt)
    tf = torch.tensor([[halton(i + 1, 3)] for i in range(nf)], dtype=dt)
    x0 = torch.tensor([[-1 + 2 * (j + 0.5) / n0, 0.0] for j in range(n0)], dtype=dt)
    u0 = -torch.sin(math.pi * x0[:, :1])
    half = nb // 2
    xb = torch.tensor([[-1.0 if k < half else 1.0, ((k % half) + 0.5) / half]
                       for k in range(2 * half)], dtype=dt)
    return xf.requires_grad_(), tf.requires_grad_(), x0, u0, xb


def mlp(layers, width):
    mods = []
    sizes = [2] + [width] * layers + [1]
    for i in range(len(sizes) - 1):
        lin = torch.nn.Linear(sizes[i], sizes[i + 1])
        torch.nn.init.xavier_normal_(lin.weight)
        torch.nn.init.zeros_(lin.bias)
        mods.append(lin)
        if i < len(sizes) - 2:
            mods.append(torch.nn.Tanh())
    return torch.nn.Sequential(*mods)


def loss_fn(net, xf, tf, x0, u0, xb):
    u = net(torch.cat([xf, tf], 1))
    ux, ut = torch.autograd.grad(u.sum(), (xf, tf), create_graph=True)
    uxx, = torch.autograd.grad(ux.sum(), xf, create_graph=True)
    f = ut + u * ux - NU * uxx
    parts = (f.square().mean(), (net(x0) - u0).square().mean(), net(xb).square().mean())
    return parts[0] + parts[1] + parts[2], parts


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--width", type=int, default=20)
    ap.add_argument("--nf", type=int, default=2000)
    ap.add_argument("--n0", type=int, default=100)
    ap.add_argument("--nb", type=int, default=100)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--f64", action="store_true")
    ap.add_argument("--time", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dt = torch.float64 if a.f64 else torch.float32
    net = mlp(a.layers, a.width).to(dt)
    pts = points(a.nf, a.n0, a.nb, dt)
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    warm = 5 if a.time else 0
    every = max(a.steps // 10, 1)
    times = []
    for step in range(1, a.steps + warm + 1):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss, parts = loss_fn(net, *pts)
        loss.backward()
        opt.step()
        t1 = time.perf_counter()
        if a.time:
            if step > warm:
                times.append((t1 - t0) * 1e3)
        elif step % every == 0 or step == a.steps:
            print(f"step={step} loss={loss.item():.6g} residual={parts[0].item():.6g} "
                  f"initial={parts[1].item():.6g} boundary={parts[2].item():.6g}", flush=True)
    if a.time:
        print(f"torch burgers_pinn layers={a.layers} width={a.width} nf={a.nf} "
              f"threads={a.threads} loss={loss.item():.6g} step_ms={statistics.median(times):.3f}")


if __name__ == "__main__":
    main()
