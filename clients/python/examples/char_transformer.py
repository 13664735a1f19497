#!/usr/bin/env python3
"""A character-level Transformer of English words trained on easytorchd, beside the same
model in PyTorch.

    /usr/bin/python3 char_transformer.py [WORDS] [--steps 2000] [--url URL] [--token TOKEN]

WORDS defaults to Debian's wamerican list, /usr/share/dict/american-english (its lowercase
a-z words), shuffled and split 80/10/10 as char_lm.py does. Vocabulary: '.' (word boundary,
0) and a-z (1-26); each character of a word, and its closing '.', is predicted from the
eight before it ('.'-padded):

    Embedding(27, 32) -> TransformerEncoder(TransformerEncoderLayer(d_model=32, nhead=4,
    dim_feedforward=64, dropout=0, batch_first=True), num_layers=2, norm=LayerNorm(32)) with
    a causal mask -> Flatten -> Linear(8 * 32, 27), CrossEntropyLoss, Adam(lr=0.003)

(the Flatten + Linear head reads the positions; learned position embeddings added to the
token embeddings need a graph model, not a layer list). Every step sends one batch of 32
rows (drawn with splitmix64(seed + 1)) to POST /v1/models/{name}/train. When PyTorch is
importable, an nn.Sequential loaded with the model's initial state_dict takes the same steps
on the same batches; the batch losses are printed side by side, then the mean cross-entropy
over (the first 20000 examples of) the train and validation splits in eval mode, computed
from /predict. Ten words are sampled through /predict. Needs NumPy. Ends with
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

from char_lm import M64, mean_ce, splitmix64, words_of

try:
    import torch
except ImportError:
    torch = None

CTX, BATCH, D, HEADS, FF, EVAL_ROWS = 8, 32, 32, 4, 64, 20000


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


def layers():
    """The spec (Python client helpers named like torch.nn)."""
    enc = nn.TransformerEncoderLayer(D, HEADS, dim_feedforward=FF, dropout=0.0, batch_first=True)
    return [nn.Embedding(27, D),
            nn.TransformerEncoder(enc, 2, norm=nn.LayerNorm(D), mask="causal"),
            nn.Flatten(), nn.Linear(CTX * D, 27)]


class CausalEncoder(torch.nn.TransformerEncoder if torch else object):
    """torch's TransformerEncoder called with the square subsequent mask, as the spec's
    "mask": "causal" does."""

    def forward(self, x):
        mask = torch.nn.Transformer.generate_square_subsequent_mask(x.shape[1])
        return super().forward(x, mask=mask)


def torch_twin():
    enc = torch.nn.TransformerEncoderLayer(D, HEADS, dim_feedforward=FF, dropout=0.0,
                                           batch_first=True)
    return torch.nn.Sequential(torch.nn.Embedding(27, D),
                               CausalEncoder(enc, 2, norm=torch.nn.LayerNorm(D)),
                               torch.nn.Flatten(), torch.nn.Linear(CTX * D, 27))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("words", nargs="?", default="/usr/share/dict/american-english")
    ap.add_argument("--url", default=os.environ.get("EASYTORCH_URL", et.DEFAULT_URL))
    ap.add_argument("--token", default=os.environ.get("EASYTORCH_TOKEN"))
    ap.add_argument("--name", default="char-transformer")
    ap.add_argument("--steps", type=int, default=2000)
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
    model = client.create(a.name, layers=layers(), loss=nn.CrossEntropyLoss(),
                          optimizer=optim.Adam(lr=0.003), seed=a.seed)
    print("model %s: %d parameters" % (a.name, model.num_parameters))
    if use_torch:
        torch.set_num_threads(1)
        net = torch_twin()
        net.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32))
                             for k, v in model.state_dict().items()})
        topt = torch.optim.Adam(net.parameters(), lr=0.003)
        txtr, tytr = torch.from_numpy(xtr), torch.from_numpy(ytr)

    state = (a.seed + 1) & M64
    every = max(a.steps // 10, 1)
    print("%-12s %10s %10s" % ("", "easytorch", "PyTorch" if use_torch else ""))
    for k in range(a.steps):
        ix = []
        for _ in range(BATCH):
            state, r = splitmix64(state)
            ix.append(r % len(xtr))
        ours = model.train(xtr[ix], ytr[ix], epochs=1)["losses"][0]
        if use_torch:
            net.train()
            topt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(txtr[ix]), tytr[ix])
            loss.backward()
            topt.step()
        if (k + 1) % every == 0:
            print("%-12s %10.4f %10s   (batch loss)" % ("step %d" % (k + 1), ours,
                                                       "%.4f" % loss.item() if use_torch else ""))

    xtr_e, ytr_e = xtr[:EVAL_ROWS], ytr[:EVAL_ROWS]
    xdev_e, ydev_e = xdev[:EVAL_ROWS], ydev[:EVAL_ROWS]

    def split_loss(x, y):
        return mean_ce(np.concatenate([np.asarray(model.predict(x[s:s + 4096]))
                                       for s in range(0, len(x), 4096)]), y)

    tl, vl = split_loss(xtr_e, ytr_e), split_loss(xdev_e, ydev_e)
    line = "final: train_loss=%.6f val_loss=%.6f" % (tl, vl)
    if use_torch:
        net.eval()   # grad enabled: torch's regular path, as the daemon computes it
        ttl = mean_ce(net(torch.from_numpy(xtr_e)).detach().numpy(), ytr_e)
        tvl = mean_ce(net(torch.from_numpy(xdev_e)).detach().numpy(), ydev_e)
        print("%-12s %10.4f %10.4f" % ("train loss", tl, ttl))
        print("%-12s %10.4f %10.4f" % ("val loss", vl, tvl))
        line += " torch_train_loss=%.6f torch_val_loss=%.6f train_rel_diff=%.6f val_rel_diff=%.6f" % (
            ttl, tvl, abs(tl - ttl) / ttl, abs(vl - tvl) / tvl)
    else:
        print("%-12s %10.4f\n%-12s %10.4f" % ("train loss", tl, "val loss", vl))

    # sampling through /predict: the next-character distribution, one call a character
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
        sys.exit("char_transformer.py: %s" % e)
