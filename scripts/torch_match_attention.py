#!/usr/bin/env python3
"""torch_match_attention.py BUILD - the transformer layers agree with PyTorch's.

Builds, in float64 with random weights (biases and LayerNorm affines too, so
that no parameter is left at a trivial value), PyTorch's
nn.MultiheadAttention(16, 4, batch_first=True) and the pre-LN Block of
../shared/peers/chargpt_torch.py (d = 128, 4 heads, causal, GELU tanh), writes
their state_dicts in safetensors under the names tapegrad's layers register
("mha.in_proj_weight", "blk.qkv.weight", ...; the Block's causal-mask buffer
is left out: tapegrad's block takes causality as a flag), and runs
BUILD/tools/attention_match, which loads them strictly (every name present
with its shape, nothing extra). It compares:
  - causal self-attention (attn_mask = the strict upper triangle): the output,
    and the gradients of x and in_proj_weight of sum(y * w);
  - attention with a key-padding mask ([B, Tk], True = excluded);
  - the Block: the output and the gradients of x and qkv.weight.
The two sides differ by float64 rounding only. Prints one line per
comparison and exits 1 if any exceeds TOL. Needs Debian's python3-torch;
`make check-torch` runs it.
"""
import json, os, struct, subprocess, sys, tempfile

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "..", "shared", "peers"))
import chargpt_torch  # noqa: E402

TOL = 1e-10
DT = {"F64": np.float64, "I64": np.int64}


def write(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        a = t.detach().contiguous().numpy()
        kind = "I64" if a.dtype == np.int64 else "F64"
        b = a.astype("<i8" if kind == "I64" else "<f8").tobytes()
        header[name] = {"dtype": kind, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header, base = json.loads(raw[8:8 + n]), 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        s, t = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(raw[base + s:base + t], DT[e["dtype"]])
                                     .reshape(e["shape"]).copy())
    return out


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(16, 4, batch_first=True).double()
    blk = chargpt_torch.Block().double()
    with torch.no_grad():
        for p in list(mha.parameters()) + list(blk.parameters()):
            p.uniform_(-0.5, 0.5)
    model = {"mha." + k: v for k, v in mha.state_dict().items()}
    model.update({"blk." + k: v for k, v in blk.state_dict().items() if k != "mask"})
    x = torch.rand(2, 5, 16, dtype=torch.float64) * 3 - 1.5
    w = torch.rand(2, 5, 16, dtype=torch.float64) * 3 - 1.5
    pad = torch.tensor([[0, 0, 1, 0, 1], [0, 1, 0, 0, 0]], dtype=torch.int64)
    xb = torch.rand(2, 64, 128, dtype=torch.float64) * 3 - 1.5
    wb = torch.rand(2, 64, 128, dtype=torch.float64) * 3 - 1.5
    with tempfile.TemporaryDirectory() as d:
        mp, dp, op = (os.path.join(d, f) for f in ("model.st", "data.st", "out.st"))
        write(mp, model)
        write(dp, {"x": x, "w": w, "pad": pad.view(2, 1, 1, 5), "xb": xb, "wb": wb})
        subprocess.run([os.path.join(build, "tools", "attention_match"), mp, dp, op], check=True)
        got = read(op)

    x1 = x.clone().requires_grad_(True)
    causal = torch.triu(torch.ones(5, 5, dtype=torch.bool), 1)
    y1 = mha(x1, x1, x1, attn_mask=causal, need_weights=False)[0]
    (y1 * w).sum().backward()
    y2 = mha(x, x, x, key_padding_mask=pad.bool(), need_weights=False)[0]
    xb1 = xb.clone().requires_grad_(True)
    y3 = blk(xb1)
    (y3 * wb).sum().backward()
    want = {"y1": y1, "dx1": x1.grad, "d_in_proj_weight1": mha.in_proj_weight.grad, "y2": y2,
            "y3": y3, "dxb3": xb1.grad, "d_qkv_weight3": blk.qkv.weight.grad}
    bad = 0
    for name, t in want.items():
        err = (got[name] - t.detach()).abs().max().item()
        ok = err <= TOL
        bad += not ok
        print(f"attention torch-match {name} {list(t.shape)}: max abs diff {err:.3g} "
              f"{'ok' if ok else 'FAIL'}")
    print(f"attention torch-match: {len(want) - bad} of {len(want)} agree within {TOL:g}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
