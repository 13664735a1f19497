#!/usr/bin/python3
"""easytorchd ONNX import of the primitives torch.onnx.export (torch 1.13, opset 17) writes
for tensor code and attention (issue 18): Transpose, Softmax/LogSoftmax on any axis,
ReduceMean/ReduceSum, Split (chunk, split), Slice and Gather (slicing, select), Squeeze and
Unsqueeze, Sqrt/Pow/Erf/Neg/Exp/Log and scalar arithmetic, Reshape to a shape computed from
the input's (Shape -> Gather -> ... -> Concat, folded with the batch symbolic), GELU's Erf
form, equal initializers torch writes once (Identity), and the subgraphs of
nn.MultiheadAttention (batch_first or not, with and without need_weights) and
nn.TransformerEncoderLayer (relu and gelu, norm_first or not). Each model is exported in the
test, imported, predicts as PyTorch does at batch sizes other than the export's, and trains
20 SGD steps to PyTorch's losses, parameters and predictions from the same weights.
Usage: test_onnx_import_ops.py PATH/TO/easytorchd"""

import base64
import io
import os
import sys
import unittest
import warnings

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon import Daemon, DaemonTestCase, run_tests  # noqa: E402
import torch  # noqa: E402
from torchref import close_report  # noqa: E402

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
nn = torch.nn
F = nn.functional


def exported_bytes(net, xs, inputs, outputs, dyn):
    net.eval()
    b = io.BytesIO()
    torch.onnx.export(net, tuple(xs), b, opset_version=17, input_names=inputs,
                      output_names=outputs, dynamic_axes=dyn,
                      training=torch.onnx.TrainingMode.EVAL)
    return b.getvalue()


def exported(net, xs, inputs, outputs, batch_dim):
    dyn = {n: {batch_dim: "batch"} for n in inputs + outputs}
    return base64.b64encode(exported_bytes(net, xs, inputs, outputs, dyn)).decode()


def arr(v):
    return torch.tensor(v, dtype=torch.float32)


# ---------------------------------------------------------------- the models

class Permute(nn.Module):  # Transpose, Softmax / LogSoftmax on inner axes
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 6)
        self.b = nn.Linear(3, 2)

    def forward(self, x):  # x: (N, 3, 4)
        h = self.a(x).transpose(1, 2)                 # (N, 6, 3)
        h = torch.softmax(h, dim=1) + torch.log_softmax(h, dim=2)
        return self.b(h.permute(0, 2, 1).permute(0, 2, 1))


class Reduce(nn.Module):  # ReduceMean / ReduceSum with axes and keepdims
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 5)
        self.b = nn.Linear(5, 2)

    def forward(self, x):  # (N, 3, 4)
        h = self.a(x)
        m = h.mean(dim=1)                              # (N, 5)
        s = h.sum(dim=(1, 2), keepdim=True).squeeze(2)  # (N, 1)
        c = h - h.mean(dim=-1, keepdim=True)           # (N, 3, 5)
        return self.b(m + s * 0.1 + c.sum(1))


class Split(nn.Module):  # Split (chunk, unequal split), Slice, Gather (select)
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 8)
        self.b = nn.Linear(6, 3)

    def forward(self, x):  # (N, 3, 4)
        h = self.a(x)
        p, q = h.chunk(2, dim=-1)                      # (N, 3, 4) each
        u, v = torch.split(h, [3, 5], dim=2)
        w = h[:, 1:, ::2]                              # (N, 2, 4)
        z = h[:, 0]                                    # (N, 8)
        t = torch.cat([(p * q)[:, :2, :3], u[:, :2, :].tanh()], dim=2)  # (N, 2, 6)
        return self.b(t + w.sum(-1, keepdim=True)) + z[:, None, :3] + v[:, :2, :3]


class Math(nn.Module):  # Sqrt, Pow, Erf, Neg, Exp, Log, Reciprocal, scalar arithmetic
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 2)

    def forward(self, x):  # (N, 4)
        h = self.a(x)
        g = torch.sqrt(h * h + 1.0) + torch.pow(h, 2) / 3.0 - torch.erf(h)
        g = g + torch.exp(-h * 0.5) + torch.log(h * h + 2.0)
        g = g + 1.0 / (h * h + 1.0) + (2.0 - h) + torch.pow(h * h + 1.0, h * 0.1)
        return self.b(g * 0.05)


class View(nn.Module):  # Reshape to shapes computed from x.shape, Unsqueeze / Squeeze
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(6, 6)
        self.b = nn.Linear(6, 2)

    def forward(self, x):  # (N, 6)
        n = x.shape[0]
        h = self.a(x).view(n, 3, 2).unsqueeze(1)        # (N, 1, 3, 2)
        h = h.reshape(n, -1, 2).squeeze(1) * 2.0        # (N, 3, 2)
        return self.b(h.reshape(n, 6).unsqueeze(0).squeeze(0))


class Mlp(nn.Module):  # GELU (Erf), LayerNorm twice (torch writes the equal weights once)
    def __init__(self, approximate="none"):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4, 8), nn.GELU(approximate), nn.LayerNorm(8),
                                 nn.Linear(8, 8), nn.LayerNorm(8), nn.Linear(8, 2))

    def forward(self, x):
        return self.net(x)


class Mha(nn.Module):
    def __init__(self, batch_first, need_weights, both):
        super().__init__()
        self.att = nn.MultiheadAttention(8, 2, batch_first=batch_first)
        self.need, self.both = need_weights, both
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        o, w = self.att(x, x, x, need_weights=self.need)
        if not self.both:
            return self.head(o)
        # the weights are (N, L, S); sequence-first, the daemon's rows are the sequence
        return self.head(o), w if self.att.batch_first else w.transpose(0, 1)


def cases():
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    c = {
        "op-permute": (Permute(), r(5, 3, 4), 0, ["y"]),
        "op-reduce": (Reduce(), r(5, 3, 4), 0, ["y"]),
        "op-split": (Split(), r(5, 3, 4), 0, ["y"]),
        "op-math": (Math(), r(5, 4), 0, ["y"]),
        "op-view": (View(), r(5, 6), 0, ["y"]),
        "op-gelu": (Mlp(), r(5, 4), 0, ["y"]),
        "op-gelu-tanh": (Mlp("tanh"), r(5, 4), 0, ["y"]),
        "mha-seq-first": (Mha(False, True, False), r(4, 3, 8), 1, ["y"]),
        "mha-seq-first-weights": (Mha(False, True, True), r(4, 3, 8), 1, ["y", "w"]),
        "mha-batch-first": (Mha(True, False, False), r(3, 4, 8), 0, ["y"]),
        "mha-batch-first-weights": (Mha(True, True, True), r(3, 4, 8), 0, ["y", "w"]),
    }
    for act in ("relu", "gelu"):
        for nf in (False, True):
            for bf in (True, False):
                net = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation=act,
                                                 batch_first=bf, norm_first=nf)
                c["enc-%s%s%s" % (act, "-norm-first" if nf else "", "" if bf else "-seq-first")] = \
                    (net, r(3, 4, 8) if bf else r(4, 3, 8), 0 if bf else 1, ["y"])
    return c


def setUpModule():
    DaemonTestCase.daemon = Daemon()
    DaemonTestCase.daemon.start()


def tearDownModule():
    DaemonTestCase.daemon.cleanup()


def same(a, b):
    return a.shape == b.shape and torch.allclose(a, b, rtol=0, atol=0)


class OpsImport(DaemonTestCase):
    def match(self, params, net):
        """torch's parameter name -> (daemon's name, transposed?): by value (a weight the
        exporter folded as its transpose, "onnx::MatMul_12", comes back transposed)."""
        got = {k: arr(v) for k, v in params.items()}
        out = {}
        for k, p in net.named_parameters():
            hits = [(n, False) for n, v in got.items() if same(v, p.detach())] + \
                   [(n, True) for n, v in got.items() if p.dim() == 2 and same(v, p.detach().t())]
            hits = [h for h in hits if h[0] not in [o[0] for o in out.values()]]
            self.assertTrue(hits, "torch's %s is no parameter of the import (%s)" % (k, sorted(got)))
            out[k] = hits[0]
        self.assertEqual(len(out), len(got), "the import has parameters torch has not: %s"
                         % sorted(set(got) - {o[0] for o in out.values()}))
        return out

    def check(self, name, net, x, bdim, outputs):
        d = self.daemon
        torch.manual_seed(len(name))
        with torch.no_grad():  # distinct values, so torch writes every initializer
            for p in net.parameters():
                p.copy_(torch.randn_like(p) * 0.5)
        as_list = lambda o: list(o) if isinstance(o, tuple) else [o]  # noqa: E731
        g = torch.Generator().manual_seed(4)
        net.eval()
        ys = [torch.randn(o.shape, generator=g) for o in as_list(net(x))]
        loss = "MSELoss" if len(outputs) == 1 else \
            [{"type": "MSELoss", "output": o, "target": "t_" + o} for o in outputs]
        spec = {"name": name, "onnx": exported(net, [x], ["x"], outputs, bdim), "loss": loss,
                "optimizer": {"type": "SGD", "lr": 0.05}, "seed": 1}
        r = d.post("/v1/models", spec)
        self.assertEqual(r.status, 201, r.body[:600])
        mapping = self.match(d.params(name), net)

        def predicted(inp):
            out = d.ok("POST", "/v1/models/%s/predict" % name, {"inputs": inp.tolist()})["outputs"]
            return [out[o] for o in outputs] if len(outputs) > 1 else [out]

        # another batch size than the export's: the batch dimension stays symbolic
        x2 = torch.randn(*[s + 2 if i == bdim else s for i, s in enumerate(x.shape)],
                         generator=g)
        with torch.no_grad():
            for inp in (x, x2):
                for got, w in zip(predicted(inp), as_list(net(inp))):
                    self.assertIsNone(close_report(got, w.tolist()), "%s: predictions" % name)
        opt = torch.optim.SGD(net.parameters(), lr=0.05)
        net.train()
        want = []
        for _ in range(20):
            opt.zero_grad()
            lo = sum(F.mse_loss(o, y) for o, y in zip(as_list(net(x)), ys))
            lo.backward()
            opt.step()
            want.append(lo.item())
        tb = {"inputs": x.tolist(), "epochs": 20,
              "targets": ys[0].tolist() if len(outputs) == 1 else
              {"t_" + o: y.tolist() for o, y in zip(outputs, ys)}}
        t = d.ok("POST", "/v1/models/%s/train" % name, tb)
        self.assertIsNone(close_report(t["losses"], want), "%s: the 20 losses" % name)
        params = d.params(name)
        for k, p in net.named_parameters():
            dn, tr = mapping[k]
            v = p.detach().t() if tr else p.detach()
            self.assertIsNone(close_report(params[dn], v.tolist()), "%s: %s after 20 steps"
                              % (name, k))
        net.eval()
        with torch.no_grad():
            for got, w in zip(predicted(x2), as_list(net(x2))):
                self.assertIsNone(close_report(got, w.tolist()), "%s: predictions after" % name)
        d.ok("DELETE", "/v1/models/%s" % name)

    def test_torch_exports_predict_and_train_as_torch(self):
        for name, (net, x, bdim, outs) in cases().items():
            with self.subTest(case=name):
                self.check(name, net, x, bdim, outs)

    def test_refusals_name_op_and_node(self):
        """What the import does not map is a 400 naming the op and the node, and nothing is
        created: a comparison feeding Where (masking), a tensor constant as an operand, a
        learnable scalar as an operand (it would silently stop learning as a constant)."""
        d = self.daemon

        class Where(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.Linear(4, 4)

            def forward(self, x):
                h = self.a(x)
                return torch.where(h > 0, h, h * 0.1)

        class TensorConst(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.Linear(4, 4)

            def forward(self, x):
                return self.a(x) + torch.arange(4.0)

        class Temperature(nn.Module):
            def __init__(self):
                super().__init__()
                self.a = nn.Linear(4, 4)
                self.t = nn.Parameter(torch.tensor(2.0))

            def forward(self, x):
                return self.a(x) * self.t

        before = d.ok("GET", "/v1/models")
        for net, words in [(Where(), ["Greater", "unsupported op", "/Greater"]),
                           (TensorConst(), ["(Add)", "scalar"]),
                           (Temperature(), ["(Mul)", "\"t\"", "parameter"])]:
            with self.subTest(net=type(net).__name__):
                spec = {"name": "op-bad", "onnx": exported(net, [torch.randn(3, 4)], ["x"],
                                                           ["y"], 0),
                        "loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 0.1}}
                msg = self.assertError(d.post("/v1/models", spec), 400)
                for w in words:
                    self.assertIn(w, msg)
        self.assertEqual(d.ok("GET", "/v1/models"), before)

    def test_attention_parameters_keep_torch_names(self):
        """nn.MultiheadAttention's parameters import under torch's names (in_proj_weight,
        in_proj_bias, out_proj.weight, out_proj.bias: a MultiheadAttention in "modules" holds
        them, linear nodes read them), so torch's state_dict PUTs as it is and the model then
        predicts as torch with those weights."""
        d = self.daemon
        g = torch.Generator().manual_seed(7)
        for key, make, x, bdim in [
                ("mha", lambda: Mha(True, False, False), torch.randn(3, 4, 8, generator=g), 0),
                ("mha-seq-first", lambda: Mha(False, True, False),
                 torch.randn(4, 3, 8, generator=g), 1),
                ("enc", lambda: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0,
                                                           batch_first=True),
                 torch.randn(3, 4, 8, generator=g), 0)]:
            with self.subTest(model=key):
                name = "names-" + key
                torch.manual_seed(1)
                net = make()
                spec = {"name": name, "onnx": exported(net, [x], ["x"], ["y"], bdim),
                        "loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 0.1}}
                d.ok("POST", "/v1/models", spec, expect=(201,))
                self.assertEqual(sorted(d.params(name)), sorted(net.state_dict()))
                prefix = "self_attn" if key == "enc" else "att"
                mod = d.model(name)["spec"]["modules"][prefix]
                self.assertEqual((mod["type"], mod["embed_dim"], mod["num_heads"]),
                                 ("MultiheadAttention", 8, 2))
                torch.manual_seed(2)
                other = make().eval()  # other weights, torch's state_dict as it is
                body = {"parameters": {k: v.tolist() for k, v in other.state_dict().items()}}
                d.ok("PUT", "/v1/models/%s/parameters" % name, body)
                with torch.no_grad():
                    want = other(x)
                    want = want[0] if isinstance(want, tuple) else want
                got = d.ok("POST", "/v1/models/%s/predict" % name,
                           {"inputs": x.tolist()})["outputs"]
                self.assertIsNone(close_report(got, want.tolist()))
                if bdim:  # the export probes a batch of 1: dim 0 (the sequence) is fixed here
                    d.ok("DELETE", "/v1/models/%s" % name)
                    continue
                # the daemon's export of it (linear nodes: MatMul by a Transpose of the
                # weight) imports again, attention under the same names, predicting the same
                shape = ",".join(str(v) for v in x.shape[1:])
                r = d.request("GET", "/v1/models/%s/export?format=onnx&input_shape=%s"
                              % (name, shape))
                self.assertEqual(r.status, 200, r.body[:300])
                r = d.request("POST", "/v1/models?name=%s-again&loss=MSELoss&optimizer=SGD&lr=0.1"
                              % name, body=r.body, headers={"Content-Type": "application/onnx"})
                self.assertEqual(r.status, 201, r.body[:300])
                attn = [k for k in net.state_dict() if "_proj" in k]
                self.assertEqual(len(attn), 4)
                self.assertLessEqual(set(attn), set(d.params(name + "-again")))
                again = d.ok("POST", "/v1/models/%s-again/predict" % name,
                             {"inputs": x.tolist()})["outputs"]
                self.assertIsNone(close_report(again, want.tolist()))
                d.ok("DELETE", "/v1/models/%s" % name)
                d.ok("DELETE", "/v1/models/%s-again" % name)

    def test_default_init_shares_initializers(self):
        """Fresh LayerNorms have equal weights (ones) and biases (zeros): torch writes one
        initializer and Identity nodes; the import gives each its own parameter."""
        d = self.daemon
        torch.manual_seed(0)
        net = Mlp()
        x = torch.randn(4, 4)
        spec = {"name": "op-shared", "onnx": exported(net, [x], ["x"], ["y"], 0),
                "loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 0.1}}
        d.ok("POST", "/v1/models", spec, expect=(201,))
        self.assertEqual(len(d.params("op-shared")), len(list(net.parameters())))
        y = torch.randn(4, 2)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        net.train()
        want = []
        for _ in range(5):
            opt.zero_grad()
            lo = F.mse_loss(net(x), y)
            lo.backward()
            opt.step()
            want.append(lo.item())
        t = d.ok("POST", "/v1/models/op-shared/train",
                 {"inputs": x.tolist(), "targets": y.tolist(), "epochs": 5})
        self.assertIsNone(close_report(t["losses"], want))
        d.ok("DELETE", "/v1/models/op-shared")


if __name__ == "__main__":
    run_tests()
