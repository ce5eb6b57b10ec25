#!/usr/bin/env python3
"""Loads a checkpoint of examples/chargpt (or charlstm) into the PyTorch peer's model with strict=True
and evaluates it with the peer's own validation (50 batches of 16 held-out windows, generator seeded
12345): the check that the file is the peer's state_dict, and the loss on the peer's windows.

  /usr/bin/python3 scripts/chargpt_peer_eval.py FILE [--model gpt|lstm] [--peers ../shared/peers]

Needs Debian's python3-torch and fortunes. Reads safetensors by hand (8-byte header length, JSON
header, raw little-endian data), so the safetensors module is not needed."""
import argparse, importlib.util, json, math, os, statistics, struct

import torch
import torch.nn.functional as F

DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64}


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, v in header.items():
        if name == "__metadata__":
            continue
        b, e = v["data_offsets"]
        out[name] = torch.frombuffer(bytearray(raw[base + b:base + e]), dtype=DTYPES[v["dtype"]]).reshape(v["shape"])
    return out


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--model", choices=["gpt", "lstm"], default="gpt")
    ap.add_argument("--peers", default=os.path.join(root, "..", "shared", "peers"))
    a = ap.parse_args()
    spec = importlib.util.spec_from_file_location("peer", os.path.join(a.peers, "chargpt_torch.py"))
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    m = peer.GPT() if a.model == "gpt" else peer.LSTM()
    print(m.load_state_dict(read_safetensors(a.file), strict=True))
    if a.model == "gpt":
        assert m.head.weight is m.tok.weight, "the head is no longer tied"
        tril = torch.tril(torch.ones(peer.T, peer.T, dtype=torch.bool))
        assert all(bool((b.mask == tril).all()) for b in m.blocks), "a mask is not the causal one"
    _, val = peer.corpus()
    m.eval()
    gv = torch.Generator().manual_seed(12345)
    with torch.no_grad():
        vl = statistics.fmean(F.cross_entropy(m(x).reshape(-1, 256), y.reshape(-1)).item()
                              for x, y in (peer.batch(val, gv) for _ in range(50)))
    print(f"peer evaluation of {a.file}: val_loss={vl:.4f} val_bpb={vl / math.log(2):.4f}")


if __name__ == "__main__":
    main()
