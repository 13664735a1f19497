#!/usr/bin/python3
"""easytorchd POST /v1/models/{name}/evaluate: every metric against the torch / sklearn-style
formula computed by torch in this test, eval mode, nothing changes, every error; the
validation series of GET .../loss. Usage: test_evaluate.py PATH/TO/easytorchd"""

import math
import os
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon import Daemon, DaemonTestCase  # noqa: E402
import torch  # noqa: E402
from torchref import Reference, random_params  # noqa: E402

D = None
RTOL, ATOL = 1e-4, 1e-5


def setUpModule():
    global D
    D = Daemon()
    D.start()
    DaemonTestCase.daemon = D


def tearDownModule():
    if D is not None:
        D.cleanup()


_counter = [0]


def fresh(prefix="e"):
    _counter[0] += 1
    return "%s%d" % (prefix, _counter[0])


def rand(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- the formulas, in torch
def t_accuracy_multiclass(out, y):
    if y.dim() == 2:
        y = y.argmax(1)
    return (out.argmax(1) == y).double().mean().item()


def t_top_k(out, y, k):
    return (out.topk(k, dim=1).indices == y[:, None]).any(1).double().mean().item()


def t_accuracy_binary(out, y, threshold):
    return ((out > threshold).double() == y.double()).all(1).double().mean().item()


def t_regression(out, y):
    o, t = out.double(), y.double()
    mse = ((o - t) ** 2).mean()
    cols_o, cols_t = o.reshape(o.shape[0], -1), t.reshape(t.shape[0], -1)
    res = ((cols_t - cols_o) ** 2).sum(0)
    tot = ((cols_t - cols_t.mean(0)) ** 2).sum(0)
    r2 = torch.where(tot != 0, 1 - res / torch.where(tot != 0, tot, torch.ones_like(tot)),
                     torch.where(res == 0, torch.ones_like(res), torch.zeros_like(res)))
    return {"mae": (o - t).abs().mean().item(), "mse": mse.item(), "rmse": mse.sqrt().item(),
            "r2": r2.mean().item()}


class Base(DaemonTestCase):
    def make(self, layers, loss, seed=3, **extra):
        name = fresh()
        spec = {"name": name, "layers": layers, "loss": loss,
                "optimizer": {"type": "SGD", "lr": 0.1}, "seed": seed}
        spec.update(extra)
        D.create(spec)
        ref = Reference(spec)
        params = random_params(ref.net, seed + 100)
        D.set_params(name, params)
        ref.set_params(params)
        ref.net.eval()
        return name, ref

    def evaluate(self, name, x, y, expect=200, **kw):
        body = {"inputs": x, "targets": y}
        body.update(kw)
        r = D.post("/v1/models/%s/evaluate" % name, body)
        self.assertEqual(r.status, expect, r)
        return r.json()

    def assertClose(self, got, want, what):
        self.assertIsNotNone(got, what)
        self.assertTrue(math.isclose(got, want, rel_tol=RTOL, abs_tol=ATOL),
                        "%s: got %r, torch %r" % (what, got, want))


CLS = [{"type": "Linear", "in_features": 4, "out_features": 8}, {"type": "ReLU"},
       {"type": "Dropout", "p": 0.5}, {"type": "Linear", "in_features": 8, "out_features": 5}]
REG = [{"type": "Linear", "in_features": 3, "out_features": 6}, {"type": "Tanh"},
       {"type": "Linear", "in_features": 6, "out_features": 2}]


# ============================================================================ metrics
class TestClassification(Base):
    def test_loss_accuracy_top_k_against_torch(self):
        name, ref = self.make(CLS, "CrossEntropyLoss")
        x = rand(1, 64, 4)
        y = torch.randint(0, 5, (64,), generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            out = ref.net(x)  # eval mode: dropout off
        for k in (1, 2, 3, 5):
            r = self.evaluate(name, x.tolist(), y.tolist(),
                              metrics=["loss", "accuracy", "top_k_accuracy"], k=k)
            self.assertEqual(r["rows"], 64)
            self.assertEqual(r["k"], k)
            self.assertEqual(sorted(r["metrics"]), ["accuracy", "loss", "top_k_accuracy"])
            self.assertClose(r["metrics"]["loss"],
                             torch.nn.functional.cross_entropy(out, y).item(), "loss")
            self.assertEqual(r["metrics"]["accuracy"], t_accuracy_multiclass(out, y))
            self.assertEqual(r["metrics"]["top_k_accuracy"], t_top_k(out, y, k), "k=%d" % k)
        self.assertEqual(self.evaluate(name, x.tolist(), y.tolist(), metrics=["top_k_accuracy"],
                                       k=5)["metrics"]["top_k_accuracy"], 1.0)

    def test_defaults_are_loss_and_accuracy_for_class_losses(self):
        name, ref = self.make(CLS, "CrossEntropyLoss")
        x = rand(3, 10, 4)
        y = torch.randint(0, 5, (10,), generator=torch.Generator().manual_seed(4))
        r = self.evaluate(name, x.tolist(), y.tolist())
        self.assertEqual(sorted(r["metrics"]), ["accuracy", "loss"])
        self.assertNotIn("k", r)
        # sklearn's default k for top_k_accuracy is 2
        r = self.evaluate(name, x.tolist(), y.tolist(), metrics=["top_k_accuracy"])
        self.assertEqual(r["k"], 2)
        with torch.no_grad():
            self.assertEqual(r["metrics"]["top_k_accuracy"], t_top_k(ref.net(x), y, 2))

    def test_probability_target_rows(self):
        name, ref = self.make(CLS, "CrossEntropyLoss")
        x = rand(5, 12, 4)
        y = torch.softmax(rand(6, 12, 5), 1)
        with torch.no_grad():
            out = ref.net(x)
        r = self.evaluate(name, x.tolist(), y.tolist(), metrics=["accuracy", "top_k_accuracy"],
                          k=2)
        self.assertEqual(r["metrics"]["accuracy"], t_accuracy_multiclass(out, y))
        self.assertEqual(r["metrics"]["top_k_accuracy"], t_top_k(out, y.argmax(1), 2))

    def test_binary_with_logits_and_multilabel(self):
        for nout in (1, 3):
            name, ref = self.make([{"type": "Linear", "in_features": 4, "out_features": nout}],
                                  "BCEWithLogitsLoss")
            x = rand(7, 40, 4)
            y = (torch.rand(40, nout, generator=torch.Generator().manual_seed(8)) > 0.5).float()
            with torch.no_grad():
                out = ref.net(x)
            r = self.evaluate(name, x.tolist(), y.tolist())
            self.assertEqual(sorted(r["metrics"]), ["accuracy", "loss"])
            self.assertEqual(r["metrics"]["accuracy"], t_accuracy_binary(out, y, 0.0))
            self.assertClose(r["metrics"]["loss"],
                             torch.nn.functional.binary_cross_entropy_with_logits(out, y).item(),
                             "loss")

    def test_binary_probabilities_threshold_at_half(self):
        name, ref = self.make([{"type": "Linear", "in_features": 4, "out_features": 2},
                               {"type": "Sigmoid"}], "BCELoss")
        x = rand(9, 30, 4)
        y = (torch.rand(30, 2, generator=torch.Generator().manual_seed(10)) > 0.5).float()
        with torch.no_grad():
            out = ref.net(x)
        r = self.evaluate(name, x.tolist(), y.tolist())
        self.assertEqual(r["metrics"]["accuracy"], t_accuracy_binary(out, y, 0.5))


class TestRegression(Base):
    def test_mae_mse_rmse_r2_against_torch(self):
        name, ref = self.make(REG, "MSELoss")
        x = rand(11, 50, 3)
        y = rand(12, 50, 2)
        with torch.no_grad():
            out = ref.net(x)
        r = self.evaluate(name, x.tolist(), y.tolist())
        self.assertEqual(sorted(r["metrics"]), ["loss", "mae", "mse", "r2", "rmse"])
        want = t_regression(out, y)
        for k, v in want.items():
            self.assertClose(r["metrics"][k], v, k)
        self.assertClose(r["metrics"]["loss"], torch.nn.functional.mse_loss(out, y).item(), "loss")
        r = self.evaluate(name, x.tolist(), y.tolist(), metrics=["r2"])
        self.assertEqual(list(r["metrics"]), ["r2"])

    def test_r2_edge_cases(self):
        name, ref = self.make(REG, "L1Loss")
        x = rand(13, 6, 3)
        # a constant target column: sklearn scores it 0 unless predicted exactly (force_finite)
        y = rand(14, 6, 2)
        y[:, 1] = 0.25
        with torch.no_grad():
            out = ref.net(x)
        r = self.evaluate(name, x.tolist(), y.tolist(), metrics=["r2"])
        self.assertClose(r["metrics"]["r2"], t_regression(out, y)["r2"], "r2")
        # one row: undefined (sklearn warns and gives nan) -> null
        r = self.evaluate(name, x[:1].tolist(), y[:1].tolist(), metrics=["r2", "mae"])
        self.assertIsNone(r["metrics"]["r2"])
        self.assertIsNotNone(r["metrics"]["mae"])

    def test_huber_loss_is_its_own(self):
        name, ref = self.make(REG, {"type": "HuberLoss", "delta": 0.5})
        x, y = rand(15, 20, 3), rand(16, 20, 2)
        with torch.no_grad():
            want = torch.nn.functional.huber_loss(ref.net(x), y, delta=0.5).item()
        self.assertClose(self.evaluate(name, x.tolist(), y.tolist(), metrics=["loss"])
                         ["metrics"]["loss"], want, "loss")


# ============================================================================ no state change
class TestNoStateChange(Base):
    def test_evaluate_changes_nothing(self):
        name, _ = self.make(CLS, "CrossEntropyLoss")
        twin, _ = self.make(CLS, "CrossEntropyLoss")
        x = rand(17, 16, 4)
        y = torch.randint(0, 5, (16,), generator=torch.Generator().manual_seed(18))
        before = (D.params(name), D.model(name))
        for _ in range(3):
            r = self.evaluate(name, x.tolist(), y.tolist())
        self.assertEqual(D.params(name), before[0])
        after = D.model(name)
        for k in ("step", "pending_batches", "loss", "lr"):
            self.assertEqual(after[k], before[1][k])
        self.assertEqual(D.ok("GET", "/v1/models/%s/loss" % name)["history"], [])
        # the generator was not drawn from: training with dropout afterwards equals the twin's
        body = {"inputs": x.tolist(), "targets": y.tolist(), "epochs": 3, "shuffle": True,
                "batch_size": 5}
        D.ok("POST", "/v1/models/%s/train" % name, body)
        D.ok("POST", "/v1/models/%s/train" % twin, body)
        self.assertEqual(D.params(name), D.params(twin))
        self.assertEqual(r["step"], 0)


# ============================================================================ errors
class TestErrors(Base):
    def test_bad_requests_are_400_naming_the_field(self):
        cname, _ = self.make(CLS, "CrossEntropyLoss")
        rname, _ = self.make(REG, "MSELoss")
        r1name, _ = self.make([{"type": "Linear", "in_features": 3, "out_features": 1}], "MSELoss")
        x4, x3 = rand(19, 4, 4).tolist(), rand(20, 4, 3).tolist()
        ycls, yreg = [0, 1, 2, 3], rand(21, 4, 2).tolist()
        cases = [
            (cname, {"inputs": x4, "targets": ycls, "metrics": ["acuracy"]},
             ["metrics[0]", 'did you mean "accuracy"']),
            (cname, {"inputs": x4, "targets": ycls, "metrics": ["loss", "loss"]},
             ["metrics[1]", "twice"]),
            (cname, {"inputs": x4, "targets": ycls, "metrics": []}, ["metrics"]),
            (cname, {"inputs": x4, "targets": ycls, "metrics": "loss"}, ["metrics"]),
            (cname, {"inputs": x4, "targets": ycls, "k": 2}, ["k", "top_k_accuracy"]),
            (cname, {"inputs": x4, "targets": ycls, "metrics": ["top_k_accuracy"], "k": 6},
             ["k", "5 classes"]),
            (cname, {"inputs": x4, "targets": ycls, "metrics": ["top_k_accuracy"], "k": 0}, ["k"]),
            (cname, {"inputs": x4, "targets": [0, 1, 2, 7], "metrics": ["accuracy"]},
             ["targets[3]", "[0, 5)"]),
            (cname, {"inputs": x4, "targets": [0, 1], "metrics": ["accuracy"]}, ["targets"]),
            (cname, {"inputs": x4}, ["targets", "missing"]),
            (cname, {"inputs": x4, "targets": ycls, "extra": 1}, ["extra", "unknown field"]),
            (cname, {"inputs": x3, "targets": ycls}, ["inputs", "[batch, 4]"]),
            (r1name, {"inputs": x3, "targets": [[0.5]] * 4, "metrics": ["accuracy"]},
             ["accuracy", "classification"]),
            (rname, {"inputs": x3, "targets": [[1.0]] * 4, "metrics": ["mse"]},
             ["targets", "mse", "shaped like the outputs"]),
            (rname, {"inputs": [], "targets": []}, ["inputs"]),
            # probability rows reach accuracy (above) but not the class-index loss
            (cname, {"inputs": x4, "targets": [[0.5, 0.5, 0, 0, 0]] * 4},
             ["targets", "class indices", "probability targets are not supported"]),
            (cname, {"inputs": x4, "targets": [0.5, 1, 2, 3]}, ["targets[0]", "not an integer"]),
        ]
        for name, body, words in cases:
            before = D.params(name)
            r = D.post("/v1/models/%s/evaluate" % name, body)
            self.assertEqual(r.status, 400, "%r -> %r" % (body, r))
            msg = self.assertError(r, 400)
            for w in words:
                self.assertIn(w, msg, "%r -> %r" % (body, msg))
            self.assertEqual(D.params(name), before)
        self.assertError(D.post("/v1/models/nope/evaluate", {"inputs": x4, "targets": ycls}), 404,
                         "nope")
        self.assertError(D.get("/v1/models/%s/evaluate" % cname), 405)


# ============================================================================ /loss series
class TestLossSeries(Base):
    def test_series_parameter(self):
        name, _ = self.make(REG, "MSELoss")
        x, y = rand(22, 8, 3).tolist(), rand(23, 8, 2).tolist()
        D.ok("POST", "/v1/models/%s/train" % name, {"inputs": x, "targets": y, "epochs": 2})
        both = D.ok("GET", "/v1/models/%s/loss" % name)
        self.assertEqual(both["step"], 2)
        self.assertEqual([s for s, _ in both["history"]], [1, 2])  # the old shape stays
        self.assertEqual(both["validation"], [])
        self.assertEqual(both["status"], "ok")
        t = D.ok("GET", "/v1/models/%s/loss?series=train" % name)
        self.assertEqual(t["history"], both["history"])
        self.assertNotIn("validation", t)
        v = D.ok("GET", "/v1/models/%s/loss?series=validation&since=0" % name)
        self.assertNotIn("history", v)
        self.assertEqual(v["validation"], [])
        self.assertEqual(D.ok("GET", "/v1/models/%s/loss?series=all" % name)["history"],
                         both["history"])
        msg = self.assertError(D.get("/v1/models/%s/loss?series=validaton" % name), 400, "series")
        self.assertIn('did you mean "validation"', msg)
        self.assertError(D.get("/v1/models/%s/loss?serie=train" % name), 400, "serie")


if __name__ == "__main__":
    from daemon import run_tests
    run_tests()
