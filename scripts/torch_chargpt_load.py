#!/usr/bin/env python3
"""torch_chargpt_load.py BUILD - a chargpt checkpoint written by PyTorch loads.

Builds the GPT of ../shared/peers/chargpt_torch.py (seeded; its causal masks
are torch.bool buffers), writes its state_dict in safetensors as PyTorch's
writers do (torch.bool as BOOL, one byte per element; the tied weight under
both of its names, tok.weight and head.weight), and runs
BUILD/examples/chargpt --load on it with --steps 0, which evaluates the model
and writes it back with --save. Checks that the load succeeded (strictly:
every name, shape, nothing extra), that every parameter comes back bit for
bit, and that the masks come back as the same 0/1 values (written as I64 by
tapegrad, which load_state_dict copies into the boolean buffer). Then the
file tapegrad wrote is loaded into the peer's model with strict=True. Needs
Debian's python3-torch and fortunes; `make check-torch` runs it. Reads and
writes safetensors by hand (8-byte header length, JSON header, raw
little-endian data), so the safetensors module is not needed.
"""
import json, os, struct, subprocess, sys, tempfile

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "..", "shared", "peers"))
import chargpt_torch  # noqa: E402

CODES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.bool: "BOOL"}
TYPES = {v: k for k, v in CODES.items()}


def write_safetensors(path, tensors):
    header, blobs, at = {}, [], 0
    for name, t in tensors.items():
        raw = t.detach().contiguous().numpy().tobytes()  # torch.bool: one byte, 0 or 1
        header[name] = {"dtype": CODES[t.dtype], "shape": list(t.shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-(8 + len(h)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[name] = torch.frombuffer(bytearray(raw[8 + n + b:8 + n + e]),
                                     dtype=TYPES[v["dtype"]]).reshape(v["shape"])
    return out


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else "build"
    torch.manual_seed(7)
    m = chargpt_torch.GPT()
    sd = m.state_dict()
    assert sd["blocks.0.mask"].dtype == torch.bool and "head.weight" in sd and "tok.weight" in sd
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        src, back = os.path.join(tmp, "torch.safetensors"), os.path.join(tmp, "back.safetensors")
        write_safetensors(src, sd)
        r = subprocess.run([os.path.join(build, "examples", "chargpt"), "--steps", "0", "--quiet",
                            "--load", src, "--save", back], capture_output=True, text=True)
        print(r.stdout.strip())
        if r.returncode != 0:
            print(f"torch_chargpt_load: FAILED: chargpt --load refused PyTorch's file: {r.stderr.strip()}")
            sys.exit(1)
        got = read_safetensors(back)
        for name, t in sd.items():
            g = got.get(name)
            if g is None or g.shape != t.shape:
                print(f"torch_chargpt_load: FAILED: {name} missing or reshaped")
                failed += 1
            elif t.dtype == torch.bool:
                if not torch.equal(g.to(torch.int64), t.to(torch.int64)):
                    print(f"torch_chargpt_load: FAILED: mask {name} changed")
                    failed += 1
            elif not torch.equal(g, t):
                print(f"torch_chargpt_load: FAILED: {name} differs by {(g - t).abs().max().item():.3g}")
                failed += 1
        m2 = chargpt_torch.GPT()
        print(m2.load_state_dict(got, strict=True))
    n = len(sd)
    print(f"torch_chargpt_load: PyTorch's chargpt state_dict ({n} names, BOOL masks) loaded by "
          f"examples/chargpt and written back: {n - failed} of {n} tensors equal")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
