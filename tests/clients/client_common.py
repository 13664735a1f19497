"""What the Python client's tests share: imports, the PyTorch oracle's helpers and a
test case with its own daemon. EXE (the easytorchd to start) is set by test_python_client.py.
"""


import json
import math
import os
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon import Daemon  # noqa: E402

import easytorch_client as et  # noqa: E402
from easytorch_client import nn, optim  # noqa: E402

try:
    import numpy as np
except ImportError:  # the list-only tests still run
    np = None
try:
    import torch
except ImportError:  # the oracle: a missing torch fails, it does not skip comparisons
    sys.exit("tests/clients: PyTorch (python3-torch, /usr/bin/python3) is missing; "
             "scripts/test installs it")

EXE = None
RTOL, ATOL = 1e-4, 1e-5
SINE_LAYERS = [nn.Linear(1, 5), nn.Tanh(), nn.Linear(5, 1)]


def flat(x):
    if hasattr(x, "tolist"):
        x = x.tolist()
    if isinstance(x, list):
        return [v for item in x for v in flat(item)]
    return [x]


def shape(x):
    if hasattr(x, "shape"):
        return list(x.shape)
    s = []
    while isinstance(x, list):
        s.append(len(x))
        x = x[0] if x else None
    return s


def assert_close(tc, got, want, msg=""):
    g, w = flat(got), flat(want)
    tc.assertEqual(len(g), len(w), msg)
    for i, (a, b) in enumerate(zip(g, w)):
        if not abs(a - b) <= ATOL + RTOL * abs(b):
            tc.fail("%s: element %d: %r != %r" % (msg, i, a, b))


def torch_net(spec_layers, params):
    """torch.nn.Sequential for a layer spec, with the given parameters."""
    mods = []
    for l in spec_layers:
        kw = {k: v for k, v in l.items() if k != "type"}
        mods.append(getattr(torch.nn, l["type"])(**kw))
    net = torch.nn.Sequential(*mods)
    net.load_state_dict({k: torch.tensor(flat(v), dtype=torch.float32).reshape(shape(v)) for k, v in params.items()})
    return net


def sine_data(n=16):
    xs = [[-3.0 + 6.0 * i / (n - 1)] for i in range(n)]
    ys = [[math.sin(x[0])] for x in xs]
    return xs, ys


def safetensors_read(data):
    """{name: (shape, [floats])} from safetensors bytes (F32 only)."""
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + hlen].decode("utf-8"))
    out = {}
    base = 8 + hlen
    for k, v in header.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", v
        a, b = v["data_offsets"]
        n = (b - a) // 4
        out[k] = (v["shape"], list(struct.unpack("<%df" % n, data[base + a:base + b])))
    return out


class DaemonCase(unittest.TestCase):
    """One daemon per test class (a plain one); every model is deleted after each test."""
    daemon = None

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(EXE)
        cls.client = et.Client(cls.daemon.url)
        cls.lists = et.Client(cls.daemon.url, numpy=False)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        if cls.daemon:
            rc = cls.daemon.stop()
            if rc not in (0, -15):
                print("easytorchd exited with %s" % rc, file=sys.stderr)

    def setUp(self):
        self.name = self.id().rsplit(".", 1)[-1].replace("test_", "m-")[:60]

    def tearDown(self):
        for m in self.client.list_models():
            self.client.delete(m["name"])

    def make(self, name=None, layers=SINE_LAYERS, loss="MSELoss", opt=None, **kw):
        return self.client.create(name or self.name, layers=layers, loss=loss,
                                  optimizer=opt or optim.SGD(lr=0.1), **kw)

