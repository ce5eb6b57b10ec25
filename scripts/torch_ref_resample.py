#!/usr/bin/env python3
"""torch_ref_resample.py - prints the PyTorch reference values embedded in
tests/test_ops_resample.c: for each case, the input x and upstream gradient g
(seeded, non-uniform, float64), y = op(x) and dx = d sum(y * g) / dx.
The tests hold the printed constants and do not need torch to run."""
import torch
import torch.nn.functional as F

torch.manual_seed(14)
CASES = [
    ("adaptive_5x7_to_3x4", (1, 2, 5, 7), lambda x: F.adaptive_avg_pool2d(x, (3, 4))),
    ("adaptive_4x3_to_6x2", (1, 1, 4, 3), lambda x: F.adaptive_avg_pool2d(x, (6, 2))),
    ("nearest_scale_1p7_2p5", (1, 2, 3, 4),
     lambda x: F.interpolate(x, scale_factor=(1.7, 2.5), mode="nearest")),
    ("nearest_size_5x3", (1, 1, 4, 7), lambda x: F.interpolate(x, size=(5, 3), mode="nearest")),
    ("bilinear_scale_1p5_2", (1, 1, 3, 4),
     lambda x: F.interpolate(x, scale_factor=(1.5, 2.0), mode="bilinear", align_corners=False)),
    ("bilinear_align_size_4x6", (1, 1, 3, 4),
     lambda x: F.interpolate(x, size=(4, 6), mode="bilinear", align_corners=True)),
    ("bilinear_size_2x3_down", (1, 1, 5, 6),
     lambda x: F.interpolate(x, size=(2, 3), mode="bilinear", align_corners=False)),
]


def c_array(name, t):
    vals = ["%.17g" % v for v in t.detach().reshape(-1).tolist()]
    rows = [", ".join(vals[i:i + 4]) for i in range(0, len(vals), 4)]
    return "static const double %s[%d] = {\n    %s};" % (name, t.numel(), ",\n    ".join(rows))


for name, shape, f in CASES:
    x = (torch.rand(shape, dtype=torch.float64) * 3 - 1.5).requires_grad_(True)
    y = f(x)
    g = torch.rand(y.shape, dtype=torch.float64) + 0.5
    (y * g).sum().backward()
    print("/* %s: x %s -> y %s */" % (name, list(shape), list(y.shape)))
    for part, t in (("x", x), ("g", g), ("y", y), ("dx", x.grad)):
        print(c_array("%s_%s" % (name.upper(), part), t))
