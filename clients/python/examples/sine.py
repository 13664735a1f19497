#!/usr/bin/env python3
"""Fit y = sin(x) on [-pi, pi] with an MLP hosted by easytorchd.

    python3 sine.py [--hidden 32] [--epochs 500] [--url URL] [--token TOKEN]

The seed's example is Linear(1,5)-Tanh-Linear(5,1) with MSE and SGD
(`--hidden 5`); a wider hidden layer (the default, 32) gets the test MSE well
under 1e-3. Standard library only (the client uses NumPy when it is there;
this example sticks to lists). Ends with a line
`final: test_mse=... train_mse=... steps=... hidden=...`.
"""

import argparse
import math
import os
import sys

try:
    import easytorch_client as et
except ImportError:  # run from a source checkout
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import easytorch_client as et
from easytorch_client import nn, optim


def grid(n):
    return [-math.pi + 2 * math.pi * i / (n - 1) for i in range(n)]


def mse(pred, target):
    return sum((p[0] - t[0]) ** 2 for p, t in zip(pred, target)) / len(target)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=os.environ.get("EASYTORCH_URL", et.DEFAULT_URL))
    ap.add_argument("--token", default=os.environ.get("EASYTORCH_TOKEN"))
    ap.add_argument("--name", default=None, help="model name (default sine-<hidden>)")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=500)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--momentum", type=float, default=0.9)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the model on the daemon")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    a = ap.parse_args()

    client = et.Client(a.url, token=a.token, numpy=False)
    name = a.name or "sine-%d" % a.hidden
    try:
        client.delete(name)  # start from scratch
    except et.EasytorchError as e:
        if e.status != 404:
            raise

    x_train = [[x] for x in grid(256)]
    y_train = [[math.sin(x[0])] for x in x_train]
    x_test = [[x] for x in grid(1001)]          # points between the training ones too
    y_test = [[math.sin(x[0])] for x in x_test]

    model = client.create(
        name,
        layers=[nn.Linear(1, a.hidden), nn.Tanh(), nn.Linear(a.hidden, 1)],
        loss=nn.MSELoss(),
        optimizer=optim.SGD(lr=a.lr, momentum=a.momentum),
        seed=a.seed,
    )
    print("model %s: %d parameters, Linear(1,%d)-Tanh-Linear(%d,1), SGD(lr=%g, momentum=%g)"
          % (name, model.num_parameters, a.hidden, a.hidden, a.lr, a.momentum))
    print("before training: test MSE %.6g" % mse(model.predict(x_test), y_test))
    hist = model.fit(x_train, y_train, epochs=a.epochs, batch_size=a.batch_size, shuffle=True,
                     seed=a.seed, verbose=not a.quiet)
    train_mse = mse(model.predict(x_train), y_train)
    test_mse = mse(model.predict(x_test), y_test)
    for x in (-math.pi / 2, 0.0, 1.0, math.pi / 2):
        print("  sin(%+.4f) = %+.5f, model %+.5f" % (x, math.sin(x), model.predict([[x]])[0][0]))
    print("last epoch's mean loss %.6g" % hist["loss"][-1])
    if not a.keep:
        model.delete()
    print("final: test_mse=%.6g train_mse=%.6g steps=%d hidden=%d" % (test_mse, train_mse, hist["step"], a.hidden))


if __name__ == "__main__":
    try:
        main()
    except et.EasytorchError as e:
        sys.exit("sine.py: %s" % e)
