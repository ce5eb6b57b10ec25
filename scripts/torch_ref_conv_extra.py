#!/usr/bin/env python3
"""torch_ref_conv_extra.py - prints the PyTorch reference values embedded in
tests/test_ops_conv_extra.c: for each case, the inputs (x, w and b when
given) and upstream gradient g (seeded, non-uniform, float64), y and the
gradients of sum(y * g) with respect to each input. The tests hold the
printed constants and do not need torch to run."""
import torch
import torch.nn.functional as F

torch.manual_seed(1414)
CASES = [
    ("ct_stride2_outpad1", (2, 2, 3, 3), (2, 3, 3, 3), 3,
     lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)),
    ("ct_groups2_dil", (1, 4, 3, 4), (4, 2, 2, 3), 4,
     lambda x, w, b: F.conv_transpose2d(x, w, b, stride=(1, 2), padding=(1, 0),
                                        output_padding=(1, 1), groups=2, dilation=(2, 1))),
    ("c1d_groups2", (2, 4, 9), (6, 2, 3), 6,
     lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1, dilation=2, groups=2)),
    ("c1d_nobias", (1, 3, 7), (2, 3, 2), 0, lambda x, w, b: F.conv1d(x, w, b)),
]


def c_array(name, t):
    vals = ["%.17g" % v for v in t.detach().reshape(-1).tolist()]
    rows = [", ".join(vals[i:i + 4]) for i in range(0, len(vals), 4)]
    return "static const double %s[%d] = {\n    %s};" % (name, t.numel(), ",\n    ".join(rows))


def leaf(shape):
    return (torch.rand(shape, dtype=torch.float64) * 2 - 1).requires_grad_(True)


for name, xs, ws, nb, f in CASES:
    x, w = leaf(xs), leaf(ws)
    b = leaf((nb,)) if nb else None
    y = f(x, w, b)
    g = torch.rand(y.shape, dtype=torch.float64) + 0.5
    (y * g).sum().backward()
    print("/* %s: x %s, w %s, b %s -> y %s */" % (name, list(xs), list(ws), nb, list(y.shape)))
    parts = [("x", x), ("w", w)] + ([("b", b)] if nb else [])
    parts += [("g", g), ("y", y), ("dx", x.grad), ("dw", w.grad)] + ([("db", b.grad)] if nb else [])
    for part, t in parts:
        print(c_array("%s_%s" % (name.upper(), part), t))
