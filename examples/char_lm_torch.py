#!/usr/bin/python3
"""The run of examples/char_lm.c replayed with PyTorch, printed side by side.

    /usr/bin/python3 char_lm_torch.py PATH/TO/char_lm [WORDS] [--steps N] [--seed S] [--tol 0.01]

Runs `char_lm --dump FILE` (which trains the easytorch model and writes its
initial state_dict, the train/validation splits and its settings to FILE),
then trains the same nn.Sequential in PyTorch from that state, on the same
batches (row k of each batch is splitmix64(seed + 1) % ntrain, as char_lm.c
draws them) with the same SGD schedule, and prints both runs' losses side by
side.  Ends with
    torch_train_loss=... torch_val_loss=...
    train_loss_rel_diff=... val_loss_rel_diff=...
and exits 1 if a relative difference exceeds --tol (default 1%), 77 when
the word list is missing (char_lm skips).
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn

M64 = (1 << 64) - 1


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def st_read(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    meta = header.pop("__metadata__", {})
    data = buf[8 + n:]
    out = {}
    for name, e in header.items():
        b, t = e["data_offsets"]
        dt = {"F32": "<f4", "I64": "<i8"}[e["dtype"]]
        out[name] = torch.from_numpy(np.frombuffer(data[b:t], dtype=dt).reshape(e["shape"]).copy())
    return out, meta


def metrics(text):
    m = {}
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep and k.isidentifier():
            m.setdefault(k, v)
    return m


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("char_lm")
    ap.add_argument("words", nargs="?")
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--tol", type=float, default=0.01)
    a = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "run.safetensors")
        cmd = [a.char_lm, "--steps", str(a.steps), "--seed", str(a.seed), "--dump", path]
        if a.words:
            cmd.insert(1, a.words)
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            return proc.returncode
        t, meta = st_read(path)
    ours = metrics(proc.stdout)
    net = nn.Sequential(nn.Embedding(27, 10), nn.Flatten(), nn.Linear(30, 200), nn.BatchNorm1d(200),
                        nn.Tanh(), nn.Linear(200, 27))
    net.load_state_dict({k[len("model."):]: v for k, v in t.items() if k.startswith("model.")})
    Xtr, Ytr, Xdev, Ydev = t["Xtr"], t["Ytr"], t["Xdev"], t["Ydev"]
    steps, ntr = int(meta["steps"]), Xtr.shape[0]
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    state = (a.seed + 1) & M64
    every = max(steps // 10, 1)
    ours_steps = {}
    for line in proc.stdout.splitlines():
        if line.startswith("step "):
            f = line.split()
            ours_steps[int(f[1].split("/")[0])] = float(f[3])
    torch_steps = {}
    for k in range(steps):
        if k == steps // 2:
            for grp in opt.param_groups:
                grp["lr"] = 0.01
        ix = []
        for _ in range(32):
            state, r = splitmix64(state)
            ix.append(r % ntr)
        ix = torch.tensor(ix)
        opt.zero_grad()
        loss = loss_fn(net(Xtr[ix]), Ytr[ix])
        loss.backward()
        opt.step()
        if (k + 1) % every == 0:
            torch_steps[k + 1] = float(loss)

    @torch.no_grad()
    def split_loss(X, Y):
        net.eval()
        total = sum(float(nn.functional.cross_entropy(net(X[s:s + 8192]), Y[s:s + 8192], reduction="sum"))
                    for s in range(0, X.shape[0], 8192))
        net.train()
        return total / X.shape[0]

    tt, tv = split_loss(Xtr, Ytr), split_loss(Xdev, Ydev)
    et_t, et_v = float(ours["train_loss"]), float(ours["val_loss"])
    print()
    print(f"{'':12s} {'easytorch':>10s} {'PyTorch':>10s}")
    for k in sorted(torch_steps):
        print(f"{'step %d' % k:12s} {ours_steps.get(k, float('nan')):10.4f} {torch_steps[k]:10.4f}"
              "   (batch loss)")
    print(f"{'train loss':12s} {et_t:10.4f} {tt:10.4f}")
    print(f"{'val loss':12s} {et_v:10.4f} {tv:10.4f}")
    print(f"torch_train_loss={tt:.6f}")
    print(f"torch_val_loss={tv:.6f}")
    dt, dv = abs(et_t - tt) / tt, abs(et_v - tv) / tv
    print(f"train_loss_rel_diff={dt:.6f}")
    print(f"val_loss_rel_diff={dv:.6f}")
    ok = dt <= a.tol and dv <= a.tol
    print(f"{'ok' if ok else 'FAIL'}: within {a.tol:.0%} of PyTorch" if ok else
          f"FAIL: easytorch and PyTorch differ by more than {a.tol:.0%}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
