#!/usr/bin/env python3
"""Handwritten digits: a small convolutional network trained with Adam on easytorchd.

    python3 digits_cnn.py [CSV.GZ] [--epochs 40] [--url URL] [--token TOKEN]

CSV.GZ defaults to Debian's python3-sklearn copy of the 8x8 digits,
/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz (1797 rows of
64 pixels 0-16 and the label). The rows are split 80/20 in a seeded random order
(random.Random(seed)), pixels scaled to [0, 1] and sent as [N, 1, 8, 8] images:

    Conv2d(1, 16, 3, padding=1) -> ReLU -> MaxPool2d(2) -> Conv2d(16, 32, 3, padding=1)
    -> ReLU -> Flatten -> Linear(512, 10), CrossEntropyLoss, Adam(lr=0.005), batch 32

Standard library only. Ends with `final: test_accuracy=... train_accuracy=... steps=...`
(percent).
"""

import argparse
import csv
import gzip
import os
import random
import sys

try:
    import easytorch_client as et
except ImportError:  # run from a source checkout
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import easytorch_client as et
from easytorch_client import nn, optim

DEFAULT_CSV = "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"


def load(path):
    with gzip.open(path, "rt", newline="") as f:
        rows = [r for r in csv.reader(f) if r]
    images = [[[[int(v) / 16.0 for v in r[8 * i:8 * i + 8]] for i in range(8)]] for r in rows]
    return images, [int(r[64]) for r in rows]


def argmax(row):
    return max(range(len(row)), key=row.__getitem__)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", nargs="?", default=DEFAULT_CSV)
    ap.add_argument("--url", default=os.environ.get("EASYTORCH_URL", et.DEFAULT_URL))
    ap.add_argument("--token", default=os.environ.get("EASYTORCH_TOKEN"))
    ap.add_argument("--name", default="digits")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.005)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the model on the daemon")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args()

    x, y = load(a.csv)
    order = list(range(len(x)))
    random.Random(a.seed).shuffle(order)
    cut = int(0.8 * len(order))
    tr, te = order[:cut], order[cut:]
    print("%d images of 8x8 (%d train, %d test)" % (len(x), len(tr), len(te)))

    client = et.Client(a.url, token=a.token, numpy=False)
    try:
        client.delete(a.name)
    except et.EasytorchError as e:
        if e.status != 404:
            raise
    model = client.create(
        a.name,
        layers=[nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 4 * 4, 10)],
        loss=nn.CrossEntropyLoss(),
        optimizer=optim.Adam(lr=a.lr),
        seed=a.seed,
    )
    print("model %s: %d parameters" % (a.name, model.num_parameters))
    hist = model.fit([x[i] for i in tr], [y[i] for i in tr], epochs=a.epochs,
                     batch_size=a.batch_size, shuffle=True, seed=a.seed, verbose=not a.quiet)

    def accuracy(rows):
        out = model.predict([x[i] for i in rows], batch_size=512)
        return 100.0 * sum(argmax(o) == y[i] for o, i in zip(out, rows)) / len(rows)

    train_acc, test_acc = accuracy(tr), accuracy(te)
    print("last epoch's mean loss %.5g" % hist["loss"][-1])
    if not a.keep:
        model.delete()
    print("final: test_accuracy=%.2f train_accuracy=%.2f steps=%d" % (test_acc, train_acc, hist["step"]))


if __name__ == "__main__":
    try:
        main()
    except et.EasytorchError as e:
        sys.exit("digits_cnn.py: %s" % e)
