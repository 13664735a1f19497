#!/usr/bin/python3
"""easytorchd ONNX import (issue 18): POST /v1/models {"name", "onnx": <base64>, "loss",
"optimizer"} with files written by torch.onnx.export (opset 17) in the test, from
torch.nn.Sequential models of the supported vocabulary. The imported model predicts as
PyTorch and then trains 20 steps as PyTorch does from the same weights. Unsupported nodes
and graphs that are not chains are 400 naming the node and its op; broken files are 400 and
create nothing.
Usage: test_onnx_import.py PATH/TO/easytorchd"""

import base64
import io
import os
import random
import sys
import unittest
import warnings

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import Daemon, DaemonTestCase  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchref import close_report  # noqa: E402

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
nn = torch.nn


def exported(net, x):
    net.eval()
    b = io.BytesIO()
    torch.onnx.export(net, x, b, opset_version=17, input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                      training=torch.onnx.TrainingMode.EVAL)
    return base64.b64encode(b.getvalue()).decode()


def models():
    torch.manual_seed(0)
    return {
        "mlp": (nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 6), nn.Tanh(),
                              nn.Linear(6, 2)), (3,), "f"),
        # (Dropout is not part of an eval-mode export: an imported model has none)
        "acts": (nn.Sequential(nn.Linear(4, 6), nn.LeakyReLU(0.2),
                               nn.Linear(6, 6), nn.Sigmoid(), nn.LayerNorm(6),
                               nn.Linear(6, 3), nn.Softmax(dim=1)), (4,), "f"),
        "bn": (nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2)),
               (3,), "f"),
        "conv": (nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                               nn.Conv2d(3, 4, 3, stride=1, padding=1, groups=1),
                               nn.MaxPool2d(3), nn.Flatten(), nn.Linear(4, 2)), (1, 6, 6), "f"),
        "conv1d": (nn.Sequential(nn.Conv1d(2, 3, 3, padding=1), nn.Tanh(),
                                 nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(3, 2)),
                   (2, 8), "f"),
        "embedding": (nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 2)),
                      (3,), "i"),
    }


def data(shape, kind, n, seed):
    g = torch.Generator().manual_seed(seed)
    if kind == "i":
        return torch.randint(0, 10, (n,) + shape, generator=g)
    return torch.randn((n,) + shape, generator=g)


def setUpModule():
    DaemonTestCase.daemon = Daemon()
    DaemonTestCase.daemon.start()


def tearDownModule():
    DaemonTestCase.daemon.cleanup()


class Import(DaemonTestCase):
    def run_case(self, name, net, shape, kind):
        d = self.daemon
        x = data(shape, kind, 6, 1)
        with torch.no_grad():
            y = torch.randn(6, net(x).shape[1]) if True else None
        b64 = exported(net, x)
        spec = {"name": "imp-" + name, "onnx": b64, "loss": "MSELoss",
                "optimizer": {"type": "SGD", "lr": 0.05, "momentum": 0.9}, "seed": 1}
        r = d.ok("POST", "/v1/models", spec, expect=(201,))
        self.assertEqual(r["parameters"], sum(p.numel() for p in net.parameters()))
        net.eval()
        with torch.no_grad():
            want = net(x)
        got = d.predict("imp-" + name, x.tolist())
        self.assertIsNone(close_report(got, want.tolist()), "%s: predictions" % name)
        # 20 steps, full batch, from the same weights, in training mode (BatchNorm batch stats)
        opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9)
        lossf = nn.MSELoss()
        net.train()
        want_losses = []
        for _ in range(20):
            opt.zero_grad()
            loss = lossf(net(x), y)
            loss.backward()
            opt.step()
            want_losses.append(loss.item())
        t = d.ok("POST", "/v1/models/imp-%s/train" % name,
                 {"inputs": x.tolist(), "targets": y.tolist(), "epochs": 20})
        self.assertIsNone(close_report(t["losses"], want_losses), "%s: the 20 losses" % name)
        net.eval()
        with torch.no_grad():
            want = net(x)
        self.assertIsNone(close_report(d.predict("imp-" + name, x.tolist()), want.tolist()),
                          "%s: predictions after 20 steps" % name)
        theirs = [v for k, v in net.state_dict().items() if "num_batches" not in k]
        ours = [v for k, v in d.params("imp-" + name).items() if "num_batches" not in k]
        self.assertEqual(len(ours), len(theirs))
        for a, b in zip(ours, theirs):
            self.assertIsNone(close_report(a, b.tolist()), "%s: parameters after 20 steps" % name)

    def test_torch_exports_predict_and_train_as_torch(self):
        for name, (net, shape, kind) in models().items():
            with self.subTest(case=name):
                self.run_case(name, net, shape, kind)

    def test_refusals_change_nothing(self):
        d = self.daemon
        before = d.ok("GET", "/v1/models")

        class Residual(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.Linear(3, 3)

            def forward(self, x):
                return x + self.a(x)

        cases = [
            (exported(nn.Sequential(nn.Linear(3, 3), nn.ELU()), torch.randn(2, 3)),
             ["Elu", "unsupported op"]),
            (exported(Residual(), torch.randn(2, 3)), ["Add", "sequential"]),
            ("not base64 !!", ["base64"]),
            (base64.b64encode(bytes(random.Random(3).getrandbits(8) for _ in range(300))).decode(),
             ["onnx"]),
            ("", ["onnx"]),
        ]
        for b64, words in cases:
            with self.subTest(words=words):
                r = d.post("/v1/models", {"name": "imp-bad", "onnx": b64, "loss": "MSELoss",
                                          "optimizer": {"type": "SGD", "lr": 0.1}})
                msg = self.assertError(r, 400)
                for w in words:
                    self.assertIn(w.lower(), msg.lower())
        self.assertError(d.post("/v1/models", {"name": "imp-bad", "onnx": 5, "loss": "MSELoss",
                                               "optimizer": {"type": "SGD"}}), 400, "onnx")
        ok = exported(nn.Sequential(nn.Linear(3, 2)), torch.randn(2, 3))
        self.assertError(d.post("/v1/models", {"name": "imp-bad", "onnx": ok, "layers": [],
                                               "loss": "MSELoss", "optimizer": {"type": "SGD"}}),
                         400, "layers")
        self.assertError(d.post("/v1/models", {"name": "imp-bad", "onnx": ok, "loss": "Nope",
                                               "optimizer": {"type": "SGD"}}), 400, "loss")
        self.assertEqual(d.ok("GET", "/v1/models"), before)
        self.assertEqual(d.get("/v1/models/imp-bad").status, 404)

    def test_fuzzed_files_are_refused_cleanly(self):
        """Mutated torch exports: every answer is 201 or a 400 naming what is wrong; the daemon
        stays up (the contract check validates every answer)."""
        d = self.daemon
        raw = bytearray(base64.b64decode(exported(
            nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)), torch.randn(2, 3))))
        rng = random.Random(7)
        created = 0
        for i in range(150):
            b = bytearray(raw)
            for _ in range(rng.randint(1, 8)):
                op = rng.random()
                p = rng.randrange(len(b))
                if op < 0.5:
                    b[p] = rng.getrandbits(8)
                elif op < 0.8:
                    del b[p:p + rng.randint(1, 20)]
                else:
                    b[p:p] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 8)))
            r = d.post("/v1/models", {"name": "fz%d" % i, "onnx": base64.b64encode(bytes(b)).decode(),
                                      "loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 0.1}})
            self.assertIn(r.status, (201, 400), r.body[:200])
            if r.status == 201:
                created += 1
                d.ok("DELETE", "/v1/models/fz%d" % i)
            else:
                self.assertTrue(r.error())
        self.assertEqual(d.get("/healthz").status, 200)
        print("fuzzed imports: %d of 150 still valid models, the rest refused" % created)


if __name__ == "__main__":
    dm.run_tests()
