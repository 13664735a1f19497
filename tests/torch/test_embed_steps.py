#!/usr/bin/python3
"""Differential test of an Embedding trained over several steps against
torch 1.13: optimizer.zero_grad() (torch 1.13's set_to_none=False), the
lookup's backward and Adam, step after step, so that zero_grad clearing only
the rows the previous backward wrote (src/core/zero_rows.c) must leave the
same gradient as torch's zero_() of the whole table.

The steps mix what can break that record: the first backward (no .grad yet),
a batch with repeated rows and the padding row, a step without zero_grad (the
gradient accumulates), a row written into .grad by the user between backward
and step (et_data; torch: p.grad[r, 0] = 1), the module's zero_grad, and a
weight looked up twice in one forward (two consumers: no sink).  Each step's
.grad (what Adam reads) and the weight after it are compared at the suite
tolerance (test_nn.py: rtol 1e-4 / atol 1e-5); a stale row left by a wrong
zero_grad is off by O(1).

Usage: /usr/bin/python3 test_embed_steps.py PATH/TO/nn_runner"""
import os
import sys
import tempfile

import torch

import test_nn as T

V, D, N = 60, 8, 12


def steps(g, pad):
    """[(flags, idx)]: flags a set of 'acc', 'mod', 'twice', ('poke', r)."""
    def ids(n, hi=V):
        return torch.randint(0, hi, (n,), generator=g)
    dup = ids(N, 6)                     # few distinct rows: repeats
    if pad is not None:
        dup[::3] = pad
    return [(set(), torch.randperm(V, generator=g)[:N]),
            (set(), dup),
            ({"acc"}, ids(N)),
            ({("poke", 59)}, ids(N, 30)),   # row 59 is never looked up here
            (set(), ids(N, 30)),
            ({"mod", "twice"}, ids(N)),
            (set(), ids(N)),
            ({"twice"}, ids(N)),
            (set(), ids(N))]


def case(name, pad):
    g = torch.Generator().manual_seed(3)
    emb = torch.nn.Embedding(V, D, padding_idx=pad)
    with torch.no_grad():
        emb.weight.copy_(torch.randn(V, D, generator=g))
    tin = {"p.weight": emb.weight.detach().clone()}
    opt = torch.optim.Adam(emb.parameters(), lr=0.1)
    theirs = {}
    for k, (flags, idx) in enumerate(steps(g, pad)):
        gout = torch.randn(N, D, generator=g)
        tin[f"idx.{k}"], tin[f"gout.{k}"] = idx.float(), gout
        for f in flags:
            tin[f"{f if isinstance(f, str) else f[0]}.{k}"] = \
                torch.tensor([float(f[1]) if isinstance(f, tuple) else 1.0])
        if "mod" in flags:
            emb.zero_grad(set_to_none=False)
        elif "acc" not in flags:
            opt.zero_grad()
        y = emb(idx)
        if "twice" in flags:
            y = y + emb(idx)
        (y * gout).sum().backward()
        for f in flags:
            if isinstance(f, tuple):
                with torch.no_grad():
                    emb.weight.grad[f[1], 0] = 1.0
        theirs[f"grad.{k}"] = emb.weight.grad.clone()
        opt.step()
        theirs[f"w.{k}"] = emb.weight.detach().clone()
    pin, pout = T.tmp(f"{name}.in"), T.tmp(f"{name}.out")
    T.st_write(pin, {k: v.numpy() for k, v in tin.items()})
    try:
        T.run("embed_steps", "none" if pad is None else pad, pin, pout)
        ours, _ = T.st_read(pout)
    except Exception as ex:  # a harness error is a failure, never a skip
        T.report(f"embed_steps {name}", False, f"{type(ex).__name__}: {ex}")
        return
    T.compare_all(f"embed_steps {name}", ours, theirs)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    T.RUNNER = os.path.abspath(sys.argv[1])
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="et_embed_") as d:
        T.TMP = d
        case("plain", None)
        case("padding_idx 2", 2)
    return T.summary()


if __name__ == "__main__":
    sys.exit(main())
