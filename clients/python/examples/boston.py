#!/usr/bin/env python3
"""Boston house prices: an MLP trained with Adam on easytorchd.

    python3 boston.py [CSV] [--epochs 300] [--url URL] [--token TOKEN]

CSV defaults to Debian's python3-sklearn copy,
/usr/lib/python3/dist-packages/sklearn/datasets/data/boston_house_prices.csv
(first line "506,13,...", then the column names, then 506 rows of 13 features
and MEDV, the price in $1000s). The rows are split 80/20 in a seeded random
order, features and target standardised with the training rows' mean and
standard deviation, and the test RMSE is reported in $1000s. Standard library
only. Ends with a line `final: test_rmse=... train_rmse=... steps=...`.
"""

import argparse
import csv
import math
import os
import random
import sys

try:
    import easytorch_client as et
except ImportError:  # run from a source checkout
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import easytorch_client as et
from easytorch_client import nn, optim

DEFAULT_CSV = "/usr/lib/python3/dist-packages/sklearn/datasets/data/boston_house_prices.csv"


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    n, nfeat = int(rows[0][0]), int(rows[0][1])
    names = rows[1]
    data = [[float(v) for v in r[:nfeat + 1]] for r in rows[2:] if r]
    if len(data) != n:
        raise ValueError("%s: header says %d rows, found %d" % (path, n, len(data)))
    return names[:nfeat], [r[:nfeat] for r in data], [r[nfeat] for r in data]


def mean_std(cols):
    out = []
    for c in cols:
        m = sum(c) / len(c)
        s = math.sqrt(sum((v - m) ** 2 for v in c) / len(c)) or 1.0
        out.append((m, s))
    return out


def rmse(pred, target):
    return math.sqrt(sum((p - t) ** 2 for p, t in zip(pred, target)) / len(target))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", nargs="?", default=DEFAULT_CSV)
    ap.add_argument("--url", default=os.environ.get("EASYTORCH_URL", et.DEFAULT_URL))
    ap.add_argument("--token", default=os.environ.get("EASYTORCH_TOKEN"))
    ap.add_argument("--name", default="boston")
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=1e-4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the model on the daemon")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args()

    names, x, y = load(a.csv)
    order = list(range(len(x)))
    random.Random(a.seed).shuffle(order)
    cut = int(0.8 * len(order))
    tr, te = order[:cut], order[cut:]
    stats = mean_std([[x[i][j] for i in tr] for j in range(len(names))])
    (ym, ys), = mean_std([[y[i] for i in tr]])

    def feats(i):
        return [(v - m) / s for v, (m, s) in zip(x[i], stats)]

    x_tr, x_te = [feats(i) for i in tr], [feats(i) for i in te]
    y_tr = [[(y[i] - ym) / ys] for i in tr]
    print("%d rows (%d train, %d test), %d features: %s" % (len(x), len(tr), len(te), len(names), " ".join(names)))

    client = et.Client(a.url, token=a.token, numpy=False)
    try:
        client.delete(a.name)
    except et.EasytorchError as e:
        if e.status != 404:
            raise
    h = a.hidden
    model = client.create(
        a.name,
        layers=[nn.Linear(len(names), h), nn.ReLU(), nn.Linear(h, h), nn.ReLU(), nn.Linear(h, 1)],
        loss=nn.MSELoss(),
        optimizer=optim.Adam(lr=a.lr, weight_decay=a.weight_decay),
        seed=a.seed,
    )
    print("model %s: %d parameters, %d-%d-%d-1 ReLU MLP, Adam(lr=%g, weight_decay=%g)"
          % (a.name, model.num_parameters, len(names), h, h, a.lr, a.weight_decay))
    hist = model.fit(x_tr, y_tr, epochs=a.epochs, batch_size=a.batch_size, shuffle=True, seed=a.seed,
                     verbose=not a.quiet)

    def prices(rows):
        return [o[0] * ys + ym for o in model.predict(rows)]

    train_rmse = rmse(prices(x_tr), [y[i] for i in tr])
    test_rmse = rmse(prices(x_te), [y[i] for i in te])
    baseline = rmse([ym] * len(te), [y[i] for i in te])
    print("test RMSE of always predicting the training mean: %.3f" % baseline)
    print("last epoch's mean loss (standardised) %.5g" % hist["loss"][-1])
    if not a.keep:
        model.delete()
    print("final: test_rmse=%.4f train_rmse=%.4f steps=%d" % (test_rmse, train_rmse, hist["step"]))


if __name__ == "__main__":
    try:
        main()
    except et.EasytorchError as e:
        sys.exit("boston.py: %s" % e)
