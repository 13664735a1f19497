#!/usr/bin/python3
"""easytorchd ONNX import (issue 18): POST /v1/models {"name", "onnx": <base64>, "loss",
"optimizer"}, and the file itself as the body (Content-Type: application/onnx, the rest of
the spec in the query), with files written by torch.onnx.export (opset 17) in the test, from
torch.nn.Sequential models of the supported vocabulary. The imported model predicts as
PyTorch and then trains 20 steps as PyTorch does from the same weights. Unsupported nodes
and graphs that are not chains are 400 naming the node and its op; broken files are 400 and
create nothing. Round trip: daemon models exported (GET .../export) and imported again
predict as the original and as PyTorch, and train on identically.
Usage: test_onnx_import.py PATH/TO/easytorchd"""

import base64
import gzip
import io
import json
import os
import random
import sys
import unittest
import urllib.parse
import warnings

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import Daemon, DaemonTestCase  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
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


def post_raw(d, onnx, headers=None, **query):
    """POST /v1/models with the file as the body; query values that are not strings go as
    JSON."""
    q = urllib.parse.urlencode([(k, v if isinstance(v, str) else json.dumps(v))
                                for k, v in query.items()])
    h = {"Content-Type": "application/onnx"}
    h.update(headers or {})
    return d.request("POST", "/v1/models?" + q, body=onnx, headers=h)


class Import(DaemonTestCase):
    def run_case(self, name, net, shape, kind, raw=False):
        d = self.daemon
        x = data(shape, kind, 6, 1)
        with torch.no_grad():
            y = torch.randn(6, net(x).shape[1]) if True else None
        b64 = exported(net, x)
        spec = {"name": "imp-" + name, "onnx": b64, "loss": "MSELoss",
                "optimizer": {"type": "SGD", "lr": 0.05, "momentum": 0.9}, "seed": 1}
        if raw:  # the same, as a Content-Type: application/onnx body
            name += "-raw"
            spec["name"] = "imp-" + name
            r = post_raw(d, base64.b64decode(spec.pop("onnx")), **spec)
            self.assertEqual(r.status, 201, r)
            r = r.json()
        else:
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

    def test_application_onnx_bodies_predict_and_train_as_torch(self):
        for name, (net, shape, kind) in models().items():
            with self.subTest(case=name):
                self.run_case(name, net, shape, kind, raw=True)

    def test_application_onnx_query_fields(self):
        d = self.daemon
        onnx = base64.b64decode(exported(nn.Sequential(nn.Linear(3, 4), nn.Tanh(),
                                                       nn.Linear(4, 2)), torch.randn(2, 3)))
        # bare names; lr goes into the optimizer named
        r = post_raw(d, onnx, name="q-a", loss="MSELoss", optimizer="SGD", lr="0.25")
        self.assertEqual(r.status, 201, r)
        self.assertEqual(r.json()["spec"]["optimizer"], {"type": "SGD", "lr": 0.25})
        # JSON values: objects, numbers; a gzip-compressed body; charset parameters ignored
        sched = {"type": "StepLR", "step_size": 2, "gamma": 0.5}
        r = post_raw(d, gzip.compress(onnx), {"Content-Encoding": "gzip",
                                              "Content-Type": "application/onnx; charset=binary"},
                     name="q-b", loss={"type": "HuberLoss", "delta": 0.5},
                     optimizer={"type": "Adam", "lr": 0.01, "betas": [0.8, 0.9]},
                     scheduler=sched, seed=5, keep_versions=2, nonfinite="rollback")
        self.assertEqual(r.status, 201, r)
        got = r.json()
        self.assertEqual((got["spec"]["loss"], got["spec"]["optimizer"]["betas"],
                          got["spec"]["scheduler"], got["seed"], got["keep_versions"],
                          got["nonfinite"]["policy"]),
                         ({"type": "HuberLoss", "delta": 0.5}, [0.8, 0.9], sched, 5, 2, "rollback"))
        self.assertEqual(d.ok("GET", "/v1/models/q-b")["spec"]["layers"],
                         d.ok("GET", "/v1/models/q-a")["spec"]["layers"])
        before = d.ok("GET", "/v1/models")
        ok = dict(name="q-bad", loss="MSELoss", optimizer="SGD", lr="0.1")
        cases = [
            (onnx, {k: v for k, v in ok.items() if k != "name"}, 400, ["name", "missing"]),
            (onnx, dict(ok, layers="[]"), 400, ["layers", "unknown query parameter"]),
            (onnx, dict(ok, lr="fast"), 400, ["lr", "number"]),
            (onnx, dict(ok, optimizer={"type": "SGD", "lr": 0.1}), 400, ["lr", "twice"]),
            (onnx, {"name": "q-bad", "loss": "MSELoss", "lr": "0.1"}, 400, ["lr", "optimizer"]),
            (onnx, dict(ok, loss="Nope"), 400, ["loss"]),
            (onnx, dict(ok, name="q a"), 400, ["name"]),
            (onnx, dict(ok, seed="-1"), 400, ["seed"]),
            (b"", ok, 400, ["onnx", "empty"]),
            (b"\x08\x07garbage" * 5, ok, 400, ["onnx"]),
            (base64.b64decode(exported(nn.Sequential(nn.Linear(3, 3), nn.ELU()),
                                       torch.randn(2, 3))), ok, 400, ["Elu", "unsupported op"]),
            (onnx, dict(ok, name="q-a"), 409, ["q-a", "exists"]),
        ]
        for body, q, status, words in cases:
            with self.subTest(query=q, body=body[:20]):
                self.assertError(post_raw(d, body, **q), status, *words)
        # a JSON body takes no query; a name twice
        self.assertError(d.request("POST", "/v1/models?name=q-bad", obj={"name": "q-bad"}), 400,
                         "query", "application/onnx")
        self.assertError(d.request("POST", "/v1/models?name=q-bad&name=q-c&loss=MSELoss",
                                   body=onnx, headers={"Content-Type": "application/onnx"}),
                         400, "name", "twice")
        # octet-stream is not ONNX here (415 names what the route takes)
        self.assertError(d.request("POST", "/v1/models?name=q-bad", body=onnx,
                                   headers={"Content-Type": "application/octet-stream"}),
                         415, "application/onnx")
        self.assertEqual(d.ok("GET", "/v1/models"), before)

    def test_export_then_import_round_trip(self):
        """Daemon models -> GET export (application/onnx) -> POST as the body of a new model:
        the same parameters and predictions, and both the copy and PyTorch (loaded with the
        copy's parameters) train 5 steps to the same numbers."""
        d = self.daemon
        L = lambda t, **kw: dict(type=t, **kw)  # noqa: E731
        cases = {
            "mlp": ([L("Linear", in_features=4, out_features=6), L("ReLU"),
                     L("Linear", in_features=6, out_features=5), L("Tanh"),
                     L("Linear", in_features=5, out_features=3), L("Sigmoid")],
                    lambda: nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 5), nn.Tanh(),
                                          nn.Linear(5, 3), nn.Sigmoid()), (4,), "f", None),
            "norms": ([L("Linear", in_features=4, out_features=6),
                       L("BatchNorm1d", num_features=6), L("LeakyReLU", negative_slope=0.2),
                       L("LayerNorm", normalized_shape=6), L("Linear", in_features=6,
                                                             out_features=2),
                       L("LogSoftmax", dim=1)],
                      lambda: nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.LeakyReLU(0.2),
                                            nn.LayerNorm(6), nn.Linear(6, 2), nn.LogSoftmax(1)),
                      (4,), "f", None),
            "conv": ([L("Conv2d", in_channels=1, out_channels=3, kernel_size=3, padding=1),
                      L("BatchNorm2d", num_features=3), L("ReLU"), L("MaxPool2d", kernel_size=2),
                      L("Conv2d", in_channels=3, out_channels=2, kernel_size=3, padding=1),
                      L("Flatten"), L("Linear", in_features=18, out_features=2)],
                     lambda: nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3),
                                           nn.ReLU(), nn.MaxPool2d(2),
                                           nn.Conv2d(3, 2, 3, padding=1), nn.Flatten(),
                                           nn.Linear(18, 2)), (1, 6, 6), "f", "1,6,6"),
            "embedding": ([L("Embedding", num_embeddings=10, embedding_dim=4), L("Flatten"),
                           L("Linear", in_features=12, out_features=3)],
                          lambda: nn.Sequential(nn.Embedding(10, 4), nn.Flatten(),
                                                nn.Linear(12, 3)), (3,), "i", "3"),
            "unflatten": ([L("Linear", in_features=4, out_features=6),
                           L("Unflatten", dim=1, unflattened_size=[2, 3]),
                           L("LayerNorm", normalized_shape=3), L("Flatten"),
                           L("Linear", in_features=6, out_features=2)],
                          lambda: nn.Sequential(nn.Linear(4, 6), nn.Unflatten(1, (2, 3)),
                                                nn.LayerNorm(3), nn.Flatten(), nn.Linear(6, 2)),
                          (4,), "f", None),
        }
        for name, (layers, torch_net, shape, kind, ishape) in cases.items():
            with self.subTest(case=name):
                src, dst = "rt-" + name, "rt-" + name + "-copy"
                opt = {"type": "SGD", "lr": 0.05}
                d.ok("POST", "/v1/models", {"name": src, "layers": layers, "loss": "MSELoss",
                                            "optimizer": opt, "seed": 4}, expect=(201,))
                x = data(shape, kind, 6, 2)
                out_dim = len(d.predict(src, x[:1].tolist())[0])
                y = torch.randn(6, out_dim, generator=torch.Generator().manual_seed(3))
                d.ok("POST", "/v1/models/%s/train" % src,
                     {"inputs": x.tolist(), "targets": y.tolist(), "epochs": 3})
                q = "?format=onnx" + ("&input_shape=" + ishape if ishape else "")
                r = d.request("GET", "/v1/models/%s/export%s" % (src, q),
                              headers={"Accept": "application/onnx"})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.headers.get("content-type"), "application/onnx")
                r_body = r.body
                r = post_raw(d, r.body, name=dst, loss="MSELoss", optimizer=opt)
                self.assertEqual(r.status, 201, r)
                ps, pd = d.params(src), d.params(dst)
                self.assertEqual(list(ps.values()), list(pd.values()), "parameters and buffers")
                # ONNX has no num_batches_tracked: our exporter keeps the counters in
                # metadata_props (3 epochs of one batch: 3), the import restores them
                nbt = {k: v for k, v in ps.items() if "num_batches" in k}
                self.assertEqual(set(nbt.values()), {3} if nbt else set())
                meta = {p.key: p.value for p in onnx.load_from_string(r_body).metadata_props}
                self.assertEqual(json.loads(meta["easytorch.num_batches_tracked"]) if nbt
                                 else meta.get("easytorch.num_batches_tracked"), nbt or None)
                self.assertIsNone(close_report(d.predict(dst, x.tolist()),
                                               d.predict(src, x.tolist())), "predictions")
                # PyTorch from the copy's state
                net = torch_net()
                keys = list(net.state_dict())
                self.assertEqual(len(keys), len(pd))
                net.load_state_dict({k: torch.tensor(v) for k, v in zip(keys, pd.values())})
                self.assertEqual([tuple(v.shape) for v in net.state_dict().values()],
                                 [tuple(torch.tensor(v).shape) for v in pd.values()])
                net.eval()
                with torch.no_grad():
                    self.assertIsNone(close_report(d.predict(dst, x.tolist()), net(x).tolist()),
                                      "predictions vs torch")
                t = d.ok("POST", "/v1/models/%s/train" % dst,
                         {"inputs": x.tolist(), "targets": y.tolist(), "epochs": 5})
                topt = torch.optim.SGD(net.parameters(), lr=0.05)
                net.train()
                want = []
                for _ in range(5):
                    topt.zero_grad()
                    loss = nn.functional.mse_loss(net(x), y)
                    loss.backward()
                    topt.step()
                    want.append(loss.item())
                self.assertIsNone(close_report(t["losses"], want), "5 losses vs torch")
                net.eval()
                with torch.no_grad():
                    self.assertIsNone(close_report(d.predict(dst, x.tolist()), net(x).tolist()),
                                      "predictions after training vs torch")

    def test_refusals_change_nothing(self):
        d = self.daemon
        before = d.ok("GET", "/v1/models")

        class Residual(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.Linear(3, 3)

            def forward(self, x):  # a DAG imports; its ELU does not
                return x + nn.functional.elu(self.a(x))

        cases = [
            (exported(nn.Sequential(nn.Linear(3, 3), nn.ELU()), torch.randn(2, 3)),
             ["Elu", "unsupported op"]),
            (exported(Residual(), torch.randn(2, 3)), ["Elu", "unsupported op"]),
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
        # our exporter's num_batches_tracked counters (metadata_props), malformed
        bnnet = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
        with torch.no_grad():  # distinct values (torch shares equal initializers by Identity)
            for k in ("weight", "bias", "running_mean", "running_var"):
                getattr(bnnet[1], k).copy_(torch.rand(4) + 0.5)
        bn = onnx.load_from_string(base64.b64decode(exported(bnnet, torch.randn(2, 3))))
        for value, words in [("nope", ["JSON object"]), ('{"1.num_batches_tracked": -1}',
                                                           ["1.num_batches_tracked", "integer"]),
                             ('{"1.num_batches_tracked": 2.5}', ["integer"])]:
            with self.subTest(metadata=value):
                del bn.metadata_props[:]
                bn.metadata_props.add(key="easytorch.num_batches_tracked", value=value)
                r = d.post("/v1/models", {"name": "imp-bad", "onnx": base64.b64encode(
                    bn.SerializeToString()).decode(), "loss": "MSELoss",
                    "optimizer": {"type": "SGD", "lr": 0.1}})
                msg = self.assertError(r, 400, "easytorch.num_batches_tracked")
                for w in words:
                    self.assertIn(w, msg)
        # a file from torch has no counters: they start at 0; with ours they are restored
        for value, want in [(None, 0), ('{"1.num_batches_tracked": 17}', 17)]:
            del bn.metadata_props[:]
            if value:
                bn.metadata_props.add(key="easytorch.num_batches_tracked", value=value)
            r = d.post("/v1/models", {"name": "imp-nbt", "onnx": base64.b64encode(
                bn.SerializeToString()).decode(), "loss": "MSELoss",
                "optimizer": {"type": "SGD", "lr": 0.1}})
            self.assertEqual(r.status, 201, r)
            self.assertEqual(d.params("imp-nbt")["1.num_batches_tracked"], want)
            d.ok("DELETE", "/v1/models/imp-nbt")
        self.assertEqual(d.ok("GET", "/v1/models"), before)
        self.assertEqual(d.get("/v1/models/imp-bad").status, 404)

    def test_files_that_crashed_the_importer_are_400(self):
        """tests/fuzz/regress/fuzz_onnx (absent optional strings read as NULL, an Add without
        an output, nesting that overflowed protobuf-c's recursion, ...) through HTTP, plus a
        2.4 MB file nested 200,000 deep: each a 400 naming the problem, the daemon up."""
        d = self.daemon
        before = d.ok("GET", "/v1/models")
        regress = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fuzz",
                               "regress", "fuzz_onnx")
        files = sorted(os.listdir(regress))
        self.assertGreaterEqual(len(files), 9)

        def var(n):
            out = bytearray()
            while True:
                b, n = n & 0x7F, n >> 7
                out.append(b | (0x80 if n else 0))
                if not n:
                    return bytes(out)

        # the prefixes (tag, length) from the innermost out, then joined outside in
        prefixes, inner = [], 0
        for num in [6, 5, 1] * 200000 + [7]:  # AttributeProto.g < NodeProto.attribute <
            p = var(num << 3 | 2) + var(inner)  # GraphProto.node ... < ModelProto.graph
            prefixes.append(p)
            inner += len(p)
        bodies = [(f, open(os.path.join(regress, f), "rb").read()) for f in files]
        bodies.append(("nested-200000", b"".join(reversed(prefixes))))
        for f, body in bodies:
            with self.subTest(file=f):
                r = post_raw(d, body, name="crash", loss="MSELoss", optimizer="SGD", lr="0.1")
                self.assertEqual(r.status, 400, r)
                self.assertTrue(r.error())
        self.assertIn("nested deeper than 64", r.error())
        self.assertEqual(d.get("/healthz").status, 200)
        self.assertEqual(d.ok("GET", "/v1/models"), before)

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
