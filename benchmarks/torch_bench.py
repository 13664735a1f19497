#!/usr/bin/python3
"""PyTorch side of scripts/bench: the same workloads as benchmarks/et_bench.c.

Speaks et_bench's line protocol on stdin/stdout so the driver can alternate
samples of the two sides:

    -> run <workload> <iterations>
    <- ok <wall nanoseconds for all iterations> <value> <CPU nanoseconds>
    <- error <message>

CPU time is the process's (time.process_time_ns), as et_bench's.

Threads: torch.set_num_threads(ET_BENCH_THREADS) (default 1), the same count
the driver gives OpenBLAS on the easytorch side.
"""
import math
import os
import sys
import time

import torch


def tiny_setup():
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    b = torch.tensor([[5.0, 6.0], [7.0, 8.0]], requires_grad=True)
    return a, b


def tiny_run(state, iters):
    a, b = state
    s = None
    for _ in range(iters):
        s = (a * b + a).sum()
        s.backward()   # gradients accumulate, as on the C side
    return s.item()


def mlp_setup(sizes, act, loss, opt, batch):
    g = torch.Generator().manual_seed(0)
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i + 2 < len(sizes):
            layers.append(act())
    net = torch.nn.Sequential(*layers)
    x = torch.randn(batch, sizes[0], generator=g)
    if loss == "ce":
        y = torch.randint(0, sizes[-1], (batch,), generator=g)
        loss_fn = torch.nn.CrossEntropyLoss()
    else:
        y = torch.randn(batch, sizes[-1], generator=g)
        loss_fn = torch.nn.MSELoss()
    if opt == "adam":
        optim = torch.optim.Adam(net.parameters())
    elif opt == "sgd_momentum":
        optim = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    else:
        optim = torch.optim.SGD(net.parameters(), lr=0.01)
    return net, optim, loss_fn, x, y


def mlp_run(state, iters):
    net, optim, loss_fn, x, y = state
    loss = None
    for _ in range(iters):
        optim.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        optim.step()
    return loss.item()


def char_setup():
    """The character model of examples/char_lm (makemore): Embedding(27, 10) -> Flatten ->
    Linear(30, 200) -> BatchNorm1d(200) -> Tanh -> Linear(200, 27), CE, SGD lr 0.1; a step
    draws 32 rows of a fixed 4096-row int64 dataset, as et_bench.c."""
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Embedding(27, 10), torch.nn.Flatten(),
                              torch.nn.Linear(30, 200), torch.nn.BatchNorm1d(200),
                              torch.nn.Tanh(), torch.nn.Linear(200, 27))
    X = torch.randint(0, 27, (4096, 3), generator=g)
    Y = torch.randint(0, 27, (4096,), generator=g)
    optim = torch.optim.SGD(net.parameters(), lr=0.1)
    return net, optim, torch.nn.CrossEntropyLoss(), X, Y, g


def char_run(state, iters):
    net, optim, loss_fn, X, Y, g = state
    loss = None
    for _ in range(iters):
        ix = torch.randint(0, X.shape[0], (32,), generator=g)
        optim.zero_grad()
        loss = loss_fn(net(X[ix]), Y[ix])
        loss.backward()
        optim.step()
    return loss.item()

def optim_setup(*args):
    """An MLP after one backward (every parameter has a gradient): the
    optimizer's step is timed alone."""
    state = mlp_setup(*args)
    mlp_run(state, 1)
    return state


def optim_run(state, iters):
    net, optim = state[0], state[1]
    for _ in range(iters):
        optim.step()
    return float(next(net.parameters()).view(-1)[0])


def lenet_setup():
    """LeNet-5 as benchmarks/bench_conv.c: Conv2d(1,6,5,p2) ReLU MaxPool2d(2) Conv2d(6,16,5)
    ReLU MaxPool2d(2) Flatten Linear(400,120) ReLU Linear(120,84) ReLU Linear(84,10), CE,
    SGD lr 0.01 momentum 0.9, batch 64 of 1x28x28 (convolutions through oneDNN here)."""
    g = torch.Generator().manual_seed(0)
    nn = torch.nn
    net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                        nn.Linear(84, 10))
    x = torch.randn(64, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (64,), generator=g)
    optim = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    return net, optim, nn.CrossEntropyLoss(), x, y


def conv56_setup():
    g = torch.Generator().manual_seed(5)
    return (torch.randn(64, 64, 56, 56, generator=g),
            torch.rand(64, 64, 3, 3, generator=g) * 0.1 - 0.05, torch.randn(64, generator=g))


def conv56_run(state, iters):
    x, w, b = state
    y = None
    with torch.no_grad():
        for _ in range(iters):
            y = torch.nn.functional.conv2d(x, w, b, padding=1)
    return y.flatten()[12345].item()


def encoder_setup():
    """As benchmarks/bench_attention.c: TransformerEncoder(TransformerEncoderLayer(64, 4,
    dim_feedforward=256, dropout=0.1, batch_first=True), 2) on x [16, 32, 64], MSE, Adam."""
    g = torch.Generator().manual_seed(0)
    nn = torch.nn
    layer = nn.TransformerEncoderLayer(64, 4, dim_feedforward=256, dropout=0.1, batch_first=True)
    net = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    x = torch.randn(16, 32, 64, generator=g)
    y = torch.randn(16, 32, 64, generator=g)
    optim = torch.optim.Adam(net.parameters(), lr=1e-3)
    return net, optim, nn.MSELoss(), x, y


class TwoTower(torch.nn.Module):
    """As benchmarks/bench_graph.c: user/item Embedding(10000, 32) -> Linear 32-64, ReLU,
    Linear 64-32 each; score = (u * i).sum(1)."""

    def __init__(self):
        super().__init__()
        nn = torch.nn
        self.user_emb = nn.Embedding(10000, 32)
        self.item_emb = nn.Embedding(10000, 32)
        self.user_mlp = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 32))
        self.item_mlp = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 32))

    def forward(self, user, item):
        u = self.user_mlp(self.user_emb(user))
        i = self.item_mlp(self.item_emb(item))
        return (u * i).sum(1)


def two_tower_setup():
    g = torch.Generator().manual_seed(0)
    net = TwoTower()
    user = torch.randint(0, 10000, (256,), generator=g)
    item = torch.randint(0, 10000, (256,), generator=g)
    label = torch.randint(0, 2, (256,), generator=g).float()
    optim = torch.optim.Adam(net.parameters(), lr=1e-3)
    return net, optim, torch.nn.BCEWithLogitsLoss(), (user, item), label


def two_tower_run(state, iters):
    net, optim, loss_fn, (user, item), label = state
    loss = None
    for _ in range(iters):
        optim.zero_grad()
        loss = loss_fn(net(user, item), label)
        loss.backward()
        optim.step()
    return loss.item()


WORKLOADS = {
    "tiny_backward": (tiny_setup, tiny_run),
    "train_1_5_1": (lambda: mlp_setup([1, 5, 1], torch.nn.Tanh, "mse", "sgd", 256), mlp_run),
    "train_13_64_64_1": (lambda: mlp_setup([13, 64, 64, 1], torch.nn.ReLU, "mse", "adam", 32),
                         mlp_run),
    "train_784_1024_1024_10": (lambda: mlp_setup([784, 1024, 1024, 10], torch.nn.ReLU, "ce",
                                                 "sgd_momentum", 256), mlp_run),
    "train_char_mlp": (char_setup, char_run),
    "train_lenet5_b64": (lenet_setup, mlp_run),
    "train_transformer_enc2": (encoder_setup, mlp_run),
    "train_two_tower": (two_tower_setup, two_tower_run),
    "conv2d_56": (conv56_setup, conv56_run),
    "optim_adam_13_64_64_1": (lambda: optim_setup([13, 64, 64, 1], torch.nn.ReLU, "mse", "adam", 32),
                              optim_run),
    "optim_sgd_784_1024_1024_10": (lambda: optim_setup([784, 1024, 1024, 10], torch.nn.ReLU, "ce",
                                                       "sgd_momentum", 256), optim_run),
}


def main():
    threads = int(os.environ.get("ET_BENCH_THREADS", "1"))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    states = {}
    print(f"ready torch={torch.__version__} threads={torch.get_num_threads()}", flush=True)
    for line in sys.stdin:
        parts = line.split()
        if parts[:1] == ["quit"]:
            break
        if len(parts) != 3 or parts[0] != "run" or parts[1] not in WORKLOADS:
            print(f"error bad command: {line.strip()}", flush=True)
            continue
        name, iters = parts[1], int(parts[2])
        setup, run = WORKLOADS[name]
        try:
            if name not in states:
                states[name] = setup()
            c0, t0 = time.process_time_ns(), time.perf_counter_ns()
            value = run(states[name], iters)
            t1, c1 = time.perf_counter_ns(), time.process_time_ns()
        except Exception as e:  # report, keep serving
            print(f"error {name}: {e}", flush=True)
            continue
        print(f"ok {t1 - t0} {value if math.isfinite(value) else 'nan'} {c1 - c0}", flush=True)


if __name__ == "__main__":
    main()
