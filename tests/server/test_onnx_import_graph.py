#!/usr/bin/python3
"""easytorchd ONNX import of graphs with branches (issue 18) as graph models: files written by
torch.onnx.export (opset 17) in the test -- a residual block, two inputs joined by Concat,
two outputs, BatchNorm on a branch -- predict as PyTorch does and train 20 steps to PyTorch's
losses and parameters from the same weights; the daemon's own graph exports (GET .../export)
import back with the same parameter names and values, buffers (num_batches_tracked too) and
predictions; a DAG with an unsupported node is a 400 naming it.
Usage: test_onnx_import_graph.py PATH/TO/easytorchd"""

import base64
import io
import os
import sys
import unittest
import warnings

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon import Daemon, DaemonTestCase  # noqa: E402
import torch  # noqa: E402
from torchref import close_report  # noqa: E402
import test_graph as tg  # noqa: E402

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
nn = torch.nn


def exported(net, xs, inputs, outputs):
    net.eval()
    b = io.BytesIO()
    torch.onnx.export(net, tuple(xs), b, opset_version=17, input_names=inputs,
                      output_names=outputs,
                      dynamic_axes={n: {0: "batch"} for n in inputs + outputs},
                      training=torch.onnx.TrainingMode.EVAL)
    return base64.b64encode(b.getvalue()).decode()


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 6)
        self.bn = nn.BatchNorm1d(6)
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.fc1(x))) + x)


class TwoIn(nn.Module):
    def __init__(self):
        super().__init__()
        self.fa = nn.Linear(3, 4)
        self.fb = nn.Linear(5, 4)
        self.head = nn.Linear(8, 2)

    def forward(self, a, b):
        return self.head(torch.cat([torch.tanh(self.fa(a)), self.fb(b)], 1))


class TwoOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(4, 6)
        self.p = nn.Linear(6, 3)
        self.q = nn.Linear(6, 1)

    def forward(self, x):
        h = torch.sigmoid(self.body(x))
        return self.p(h), self.q(h)


def setUpModule():
    DaemonTestCase.daemon = Daemon()
    DaemonTestCase.daemon.start()


def tearDownModule():
    DaemonTestCase.daemon.cleanup()


class GraphImport(DaemonTestCase):
    def check(self, name, net, xs, inputs, outputs):
        d = self.daemon
        torch.manual_seed(len(name))
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn_like(p) * 0.5)
        g = torch.Generator().manual_seed(4)
        ys = [torch.randn(o.shape, generator=g) for o in
              (lambda r: r if isinstance(r, tuple) else (r,))(net.eval()(*xs))]
        if len(outputs) == 1:
            loss = "MSELoss"
        else:
            loss = [{"type": "MSELoss", "output": o, "target": "t_" + o} for o in outputs]
        spec = {"name": name, "onnx": exported(net, xs, inputs, outputs), "loss": loss,
                "optimizer": {"type": "SGD", "lr": 0.05}, "seed": 1}
        r = d.ok("POST", "/v1/models", spec, expect=(201,))
        self.assertEqual(r["spec"]["inputs"], inputs)
        self.assertEqual(r["spec"]["outputs"], outputs)
        params = d.params(name)
        theirs = net.state_dict()
        self.assertEqual(sorted(params), sorted(theirs), "parameter names")
        for k, v in theirs.items():
            self.assertIsNone(close_report(params[k], v.tolist()), k)
        body = lambda: {"inputs": {n: x.tolist() for n, x in zip(inputs, xs)}} if len(xs) > 1 \
            else {"inputs": xs[0].tolist()}  # noqa: E731
        as_list = lambda o: o if isinstance(o, tuple) else (o,)  # noqa: E731

        def predicted():
            out = d.ok("POST", "/v1/models/%s/predict" % name, body())["outputs"]
            return [out[o] for o in outputs] if len(outputs) > 1 else [out]

        net.eval()
        with torch.no_grad():
            want = as_list(net(*xs))
        for got, w in zip(predicted(), want):
            self.assertIsNone(close_report(got, w.tolist()), "%s: predictions" % name)
        # 20 steps, full batch, from the same weights (training mode)
        opt = torch.optim.SGD(net.parameters(), lr=0.05)
        net.train()
        want_losses = []
        for _ in range(20):
            opt.zero_grad()
            loss = sum(nn.functional.mse_loss(o, y) for o, y in zip(as_list(net(*xs)), ys))
            loss.backward()
            opt.step()
            want_losses.append(loss.item())
        tb = body()
        tb["targets"] = ys[0].tolist() if len(outputs) == 1 else \
            {"t_" + o: y.tolist() for o, y in zip(outputs, ys)}
        tb["epochs"] = 20
        t = d.ok("POST", "/v1/models/%s/train" % name, tb)
        self.assertIsNone(close_report(t["losses"], want_losses), "%s: the 20 losses" % name)
        params = d.params(name)
        for k, v in net.state_dict().items():
            self.assertIsNone(close_report(params[k], v.tolist()), "%s after 20 steps" % k)
        net.eval()
        with torch.no_grad():
            want = as_list(net(*xs))
        for got, w in zip(predicted(), want):
            self.assertIsNone(close_report(got, w.tolist()), "%s: predictions after" % name)

    def test_torch_dags(self):
        g = torch.Generator().manual_seed(1)
        cases = {
            "dag-residual": (Residual(), [torch.randn(5, 6, generator=g)], ["x"], ["y"]),
            "dag-two-in": (TwoIn(), [torch.randn(5, 3, generator=g), torch.randn(5, 5, generator=g)],
                           ["a", "b"], ["y"]),
            "dag-two-out": (TwoOut(), [torch.randn(5, 4, generator=g)], ["x"], ["p", "q"]),
        }
        for name, (net, xs, ins, outs) in cases.items():
            with self.subTest(case=name):
                self.check(name, net, xs, ins, outs)

    def test_own_graph_exports_round_trip(self):
        """GET .../export of graph models, imported back: same names, values, predictions."""
        d = self.daemon
        for key, graph in (("residual", tg.RESIDUAL), ("resnet", tg.RESNET),
                           ("two", {"inputs": ["a", "b"], "nodes": [
                               {"name": "fa", "module": tg.lin(3, 4), "args": ["a"]},
                               {"name": "fb", "module": tg.lin(3, 4), "args": ["b"]},
                               {"name": "s", "op": "add", "args": ["fa", "fb"]},
                               {"name": "c", "op": "cat", "args": ["s", "fa"], "dim": 1},
                               {"name": "out", "module": tg.lin(8, 1), "args": ["c"]}],
                               "outputs": ["out", "s"]})):
            with self.subTest(case=key):
                src, dst = "rtg-" + key, "rtg-" + key + "-copy"
                loss = "MSELoss" if len(graph["outputs"]) == 1 else \
                    [{"type": "MSELoss", "output": o, "target": o} for o in graph["outputs"]]
                d.create(dict(graph, name=src, loss=loss, optimizer={"type": "SGD", "lr": 0.1},
                              seed=3))
                width = 8 if key != "two" else 3
                x = torch.randn(6, width, generator=torch.Generator().manual_seed(2))
                body = {"inputs": x.tolist()} if key != "two" else \
                    {"inputs": {"a": x.tolist(), "b": (x * 0.5).tolist()}}
                if key == "resnet":  # BatchNorm statistics and counter move
                    d.ok("POST", "/v1/models/%s/train" % src,
                         dict(body, targets=torch.zeros(6, 3).tolist(), epochs=3))
                q = "" if key != "two" else "&input_shape=3;3"
                r = d.get("/v1/models/%s/export?format=onnx%s" % (src, q))
                self.assertEqual(r.status, 200, r.body[:300])
                d.ok("POST", "/v1/models", {"name": dst, "onnx": base64.b64encode(r.body).decode(),
                                            "loss": loss, "optimizer": {"type": "SGD", "lr": 0.1}},
                     expect=(201,))
                ps, pd = d.params(src), d.params(dst)
                self.assertEqual(sorted(ps), sorted(pd), "state names")
                for k in ps:
                    self.assertEqual(ps[k], pd[k], k)
                self.assertEqual(d.ok("GET", "/v1/models/%s" % dst)["spec"]["outputs"],
                                 graph["outputs"])
                a = d.ok("POST", "/v1/models/%s/predict" % src, body)["outputs"]
                b = d.ok("POST", "/v1/models/%s/predict" % dst, body)["outputs"]
                if isinstance(a, dict):
                    self.assertEqual(sorted(a), sorted(b))
                    for k in a:
                        self.assertIsNone(close_report(b[k], a[k]), "predictions " + k)
                else:
                    self.assertIsNone(close_report(b, a), "predictions")


if __name__ == "__main__":
    import daemon as dm
    dm.run_tests()
