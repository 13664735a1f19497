#!/usr/bin/env python3
"""A character-level language model of English words (Bengio et al. 2003, as in
makemore) trained on easytorchd, beside the same model in PyTorch.

    /usr/bin/python3 char_lm.py [WORDS] [--steps 20000] [--url URL] [--token TOKEN]

WORDS defaults to Debian's wamerican list, /usr/share/dict/american-english (only its
lowercase a-z words). Vocabulary: '.' (word boundary, 0) and a-z (1-26); each character
of a word, and its closing '.', is predicted from the three before it. The words are
shuffled with splitmix64(seed) and split 80/10/10 (train / validation / test), as
examples/char_lm.c does:

    Embedding(27, 10) -> Flatten -> Linear(30, 200) -> BatchNorm1d(200) -> Tanh ->
    Linear(200, 27), CrossEntropyLoss, SGD(lr=0.1) with StepLR(steps/2, gamma=0.1)

Every step sends one batch of 32 rows (drawn with splitmix64(seed + 1)) to
POST /v1/models/{name}/train. When PyTorch is importable, an nn.Sequential loaded with
the model's initial state_dict takes the same steps on the same batches, and the losses
are printed side by side (batch losses along the way, then the mean cross-entropy over
the whole train and validation splits in eval mode, computed from /predict). Ten words
are sampled through /predict. Needs NumPy. Ends with
`final: train_loss=... val_loss=... [torch_train_loss=... torch_val_loss=...
train_rel_diff=... val_rel_diff=...] steps=...`.
"""

import argparse
import os
import random
import sys

import numpy as np

try:
    import easytorch_client as et
except ImportError:  # run from a source checkout
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import easytorch_client as et
from easytorch_client import nn, optim

try:
    import torch
except ImportError:
    torch = None

M64 = (1 << 64) - 1
CTX, BATCH = 3, 32


def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & M64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return state, z ^ (z >> 31)


def words_of(path, seed):
    with open(path) as f:
        ws = [w.strip() for w in f]
    ws = [w for w in ws if w and all("a" <= c <= "z" for c in w)]
    s = seed
    for i in range(len(ws) - 1, 0, -1):   # Fisher-Yates, as char_lm.c
        s, r = splitmix64(s)
        j = r % (i + 1)
        ws[i], ws[j] = ws[j], ws[i]
    return ws


def examples(ws):
    x, y = [], []
    for w in ws:
        ctx = [0] * CTX
        for ch in w + ".":
            ix = 0 if ch == "." else ord(ch) - ord("a") + 1
            x.append(ctx)
            y.append(ix)
            ctx = ctx[1:] + [ix]
    return np.array(x, dtype=np.int64), np.array(y, dtype=np.int64)


def mean_ce(logits, y):
    m = logits.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
    return float(np.mean(lse - logits[np.arange(len(y)), y]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("words", nargs="?", default="/usr/share/dict/american-english")
    ap.add_argument("--url", default=os.environ.get("EASYTORCH_URL", et.DEFAULT_URL))
    ap.add_argument("--token", default=os.environ.get("EASYTORCH_TOKEN"))
    ap.add_argument("--name", default="char-lm")
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--no-torch", action="store_true", help="do not run the PyTorch twin")
    ap.add_argument("--keep", action="store_true", help="keep the model on the daemon")
    a = ap.parse_args()
    use_torch = torch is not None and not a.no_torch

    ws = words_of(a.words, a.seed)
    n1, n2 = int(0.8 * len(ws)), int(0.9 * len(ws))
    xtr, ytr = examples(ws[:n1])
    xdev, ydev = examples(ws[n1:n2])
    print("words=%d train_examples=%d val_examples=%d" % (len(ws), len(xtr), len(xdev)))

    client = et.Client(a.url, token=a.token)
    try:
        client.delete(a.name)
    except et.EasytorchError as e:
        if e.status != 404:
            raise
    half = max(a.steps // 2, 1)
    model = client.create(
        a.name,
        layers=[nn.Embedding(27, 10), nn.Flatten(), nn.Linear(CTX * 10, 200), nn.BatchNorm1d(200),
                nn.Tanh(), nn.Linear(200, 27)],
        loss=nn.CrossEntropyLoss(),
        optimizer=optim.SGD(lr=0.1),
        scheduler=optim.lr_scheduler.StepLR(step_size=half, gamma=0.1),
        seed=a.seed,
    )
    print("model %s: %d parameters" % (a.name, model.num_parameters))
    if use_torch:
        torch.set_num_threads(1)
        net = torch.nn.Sequential(torch.nn.Embedding(27, 10), torch.nn.Flatten(),
                                  torch.nn.Linear(CTX * 10, 200), torch.nn.BatchNorm1d(200),
                                  torch.nn.Tanh(), torch.nn.Linear(200, 27))
        net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in model.state_dict().items()})
        topt = torch.optim.SGD(net.parameters(), lr=0.1)
        tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=half, gamma=0.1)
        txtr, tytr = torch.from_numpy(xtr), torch.from_numpy(ytr)

    state = (a.seed + 1) & M64
    every = max(a.steps // 10, 1)
    print("%-12s %10s %10s" % ("", "easytorch", "PyTorch" if use_torch else ""))
    for k in range(a.steps):
        ix = []
        for _ in range(BATCH):
            state, r = splitmix64(state)
            ix.append(r % len(xtr))
        r = model.train(xtr[ix], ytr[ix], epochs=1)
        ours = r["losses"][0]
        if use_torch:
            topt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(txtr[ix]), tytr[ix])
            loss.backward()
            topt.step()
            tsched.step()
        if (k + 1) % every == 0:
            print("%-12s %10.4f %10s   (batch loss)" % ("step %d" % (k + 1), ours,
                                                       "%.4f" % loss.item() if use_torch else ""))

    def split_loss(x, y):
        return mean_ce(np.concatenate([model.predict(x[s:s + 8192]) for s in range(0, len(x), 8192)]), y)

    tl, vl = split_loss(xtr, ytr), split_loss(xdev, ydev)
    line = "final: train_loss=%.6f val_loss=%.6f" % (tl, vl)
    if use_torch:
        net.eval()
        with torch.no_grad():
            ttl = mean_ce(np.concatenate([net(txtr[s:s + 8192]).numpy() for s in range(0, len(xtr), 8192)]), ytr)
            tvl = mean_ce(net(torch.from_numpy(xdev)).numpy(), ydev)
        print("%-12s %10.4f %10.4f" % ("train loss", tl, ttl))
        print("%-12s %10.4f %10.4f" % ("val loss", vl, tvl))
        line += " torch_train_loss=%.6f torch_val_loss=%.6f train_rel_diff=%.6f val_rel_diff=%.6f" % (
            ttl, tvl, abs(tl - ttl) / ttl, abs(vl - tvl) / tvl)
    else:
        print("%-12s %10.4f\n%-12s %10.4f" % ("train loss", tl, "val loss", vl))

    # sampling through /predict: the model's next-character distribution, one call a character
    rng = random.Random(a.seed)
    for _ in range(10):
        ctx, out = [0] * CTX, ""
        while len(out) < 40:
            logits = np.asarray(model.predict([ctx])[0], dtype=np.float64)
            p = np.exp(logits - logits.max())
            p /= p.sum()
            ix = min(int(np.searchsorted(np.cumsum(p), rng.random(), side="right")), 26)
            if ix == 0:
                break
            out += chr(ord("a") + ix - 1)
            ctx = ctx[1:] + [ix]
        print("sample: %s" % out)
    if not a.keep:
        model.delete()
    print(line + " steps=%d" % a.steps)


if __name__ == "__main__":
    try:
        main()
    except et.EasytorchError as e:
        sys.exit("char_lm.py: %s" % e)
