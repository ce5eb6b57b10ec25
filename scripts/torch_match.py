#!/usr/bin/env python3
"""torch_match.py BUILD - the LeNet-5 training step agrees with PyTorch's.

Runs BUILD/examples/lenet5 from one initial checkpoint for one SGD step and
for three Adam steps on the first 64 Fashion-MNIST training images (one
batch, so the shuffle order does not matter), repeats the same steps in
PyTorch on the model of ../shared/peers/lenet5_torch.py loaded from the same
checkpoint, and compares every parameter. A checkpoint written here by
PyTorch's tensors is then loaded by lenet5 and saved again unchanged, which
must reproduce it bit for bit: checkpoints go both ways.

The two sides differ only in float32 rounding (summation order in GEMM and
convolution), so a parameter may differ by a small fraction (REL_TOL) of
how far the steps moved it. Every element is compared after SGD; after
Adam only the elements whose gradient stayed well above eps (ILL_GRAD):
Adam divides by sqrt(v) + eps, so for a gradient as small as eps it turns a
rounding difference into a change of the step of up to lr, whichever engine
is right. The line of each tensor says how many elements it compared. Prints one line per comparison and
exits 1 if any fails. Needs Debian's python3-torch (a peer for comparison,
not a dependency of the library); `make check-torch` runs it.
"""
import gzip, json, os, struct, subprocess, sys, tempfile

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "..", "shared", "peers"))
from lenet5_torch import LeNet5  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530
# A parameter may differ by this fraction of how far the steps moved it.
REL_TOL = 1e-3
# Adam's step lr * m / (sqrt(v) + eps) has derivative lr * eps / (|g| + eps)^2
# in g: at |g| near eps (1e-8) a float32 rounding difference of g (1e-9 here)
# moves the step by up to lr, so those elements say nothing about agreement.
# From |g| >= 1e-5 the derivative is below 0.1 and a rounding difference of
# g moves the step by under 1e-10.
ILL_GRAD = 1e-5


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header, base = json.loads(raw[8:8 + n]), 8 + n
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", f"{path}: {name} is {e['dtype']}"
        s, t = e["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(raw[base + s:base + t], np.float32)
                                     .reshape(e["shape"]).copy())
    return out


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        b = t.detach().contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def idx(path):
    raw = gzip.open(path).read()
    nd = raw[3]
    dims = struct.unpack(">" + "I" * nd, raw[4:4 + 4 * nd])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * nd).reshape(dims)


def lenet5(build, *args):
    subprocess.run([os.path.join(build, "examples", "lenet5"), *args], check=True,
                   stdout=subprocess.DEVNULL)


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    torch.set_num_threads(1)
    x = ((torch.from_numpy(idx(f"{DATA}/train-images-idx3-ubyte.gz")[:64].copy()).float() / 255
          - MEAN) / STD).unsqueeze(1)
    y = torch.from_numpy(idx(f"{DATA}/train-labels-idx1-ubyte.gz")[:64].copy()).long()
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        p = lambda name: os.path.join(tmp, name)
        lenet5(build, "--epochs", "0", "--seed", "5", "--save", p("init.st"))
        init = read_safetensors(p("init.st"))
        runs = [("sgd", "0.1", 1, lambda ps: torch.optim.SGD(ps, lr=0.1)),
                ("adam", "0.001", 3, lambda ps: torch.optim.Adam(ps, lr=1e-3))]
        for optim, lr, steps, make in runs:
            lenet5(build, "--epochs", str(steps), "--subset", "64", "--batch", "64", "--optim", optim,
                   "--lr", lr, "--load", p("init.st"), "--save", p(optim + ".st"))
            ours = read_safetensors(p(optim + ".st"))
            m = LeNet5()
            m.load_state_dict(init)
            opt = make(m.parameters())
            smallest = {n: torch.full_like(q, float("inf")) for n, q in m.named_parameters()}
            for _ in range(steps):
                opt.zero_grad()
                F.cross_entropy(m(x), y).backward()
                for n, q in m.named_parameters():
                    smallest[n] = torch.minimum(smallest[n], q.grad.abs())
                opt.step()
            for name, t in m.state_dict().items():
                # Elements whose step is well conditioned: all of them for SGD;
                # for Adam those whose gradient stayed above ILL_GRAD.
                keep = smallest[name] >= ILL_GRAD if optim == "adam" else torch.ones_like(t, dtype=bool)
                moved = (t - init[name]).abs().max().item()
                diff = (t - ours[name])[keep].abs().max().item() if keep.any() else 0.0
                ok = moved > 0 and keep.any() and diff <= REL_TOL * moved
                failed += not ok
                print(f"torch_match {optim} steps={steps} {name} moved={moved:.3e} "
                      f"diff={diff:.3e} compared={int(keep.sum())}/{t.numel()} "
                      f"{'ok' if ok else 'FAILED'}")
        torch.manual_seed(1)
        write_safetensors(p("torch.st"), LeNet5().state_dict())
        lenet5(build, "--epochs", "0", "--load", p("torch.st"), "--save", p("back.st"))
        theirs, back = read_safetensors(p("torch.st")), read_safetensors(p("back.st"))
        same = theirs.keys() == back.keys() and all(torch.equal(theirs[k], back[k]) for k in theirs)
        failed += not same
        print(f"torch_match checkpoint torch->lenet5->file tensors={len(theirs)} "
              f"{'bit-identical' if same else 'FAILED'}")
    print(f"torch_match: {'all agree' if not failed else f'{failed} FAILED'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
