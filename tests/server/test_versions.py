#!/usr/bin/python3
"""easytorchd model versions (issue 18): freeze, list, describe, delete, serve a version
while the live model trains (/v1 predict and /v2 infer), rollback (checked against PyTorch
continuing from a copy taken at the freeze), fork, keep_versions retention, persistence
across SIGTERM and kill -9, /metrics, and bad input that changes nothing.
A version's validation metrics (a job's evaluation at the step frozen, or POST
.../versions/N/evaluate) are checked against PyTorch run on the version's weights.
Usage: test_versions.py PATH/TO/easytorchd"""

import copy
import math
import os
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import Daemon, DaemonTestCase, f32  # noqa: E402
import torch  # noqa: E402
import torchref  # noqa: E402
from torchref import Reference, build_net, random_params, close_report, dict_close_report  # noqa: E402

MLP = [
    {"type": "Linear", "in_features": 3, "out_features": 6},
    {"type": "Tanh"},
    {"type": "Linear", "in_features": 6, "out_features": 2},
]
BN = [
    {"type": "Linear", "in_features": 3, "out_features": 4},
    {"type": "BatchNorm1d", "num_features": 4},
    {"type": "ReLU"},
    {"type": "Linear", "in_features": 4, "out_features": 2},
]


def spec_for(name, layers=MLP, opt=None, sched=None, **kw):
    s = {"name": name, "layers": layers, "loss": "MSELoss",
         "optimizer": opt or {"type": "Adam", "lr": 0.02}, "seed": 3}
    if sched:
        s["scheduler"] = sched
    s.update(kw)
    return s


def data(seed, n=24):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g).tolist(), torch.randn(n, 2, generator=g).tolist()


torchref._LAYER_ARGS.setdefault("BatchNorm1d", ("num_features",))
X, Y = data(1)
XT = data(2, 5)[0]


def train(d, name, ref, first, last):
    """Steps first..last: two batches each, through the daemon and (if ref) the torch
    reference. -> daemon losses"""
    out = []
    for k in range(first, last + 1):
        i = (k * 4) % (len(X) - 4)
        out.append(d.push(name, X[i:i + 2], Y[i:i + 2])["loss"])
        out.append(d.push(name, X[i + 2:i + 4], Y[i + 2:i + 4])["loss"])
        d.step(name)
        if ref is not None:
            ref.push(X[i:i + 2], Y[i:i + 2])
            ref.push(X[i + 2:i + 4], Y[i + 2:i + 4])
            ref.step()
    return out


def with_ref(d, spec):
    """Define the model with random parameters, and its torch twin."""
    d.create(spec)
    ref = Reference(spec)
    p = random_params(build_net(spec["layers"]), 11)
    p = {k: v for k, v in p.items() if "num_batches" not in k}
    full = d.params(spec["name"])
    for k in full:
        if k in p and "running" not in k:
            full[k] = p[k]
    d.set_params(spec["name"], full)
    ref.set_params({k: v for k, v in full.items()})
    return ref


def setUpModule():
    DaemonTestCase.daemon = Daemon(sync="always")
    DaemonTestCase.daemon.start()


def tearDownModule():
    DaemonTestCase.daemon.cleanup()


class Versions(DaemonTestCase):
    def test_freeze_list_get_delete(self):
        d = self.daemon
        d.create(spec_for("v-basic"))
        self.assertEqual(d.model("v-basic")["serving"], "live")
        self.assertEqual(d.model("v-basic")["versions"], 0)
        train(d, "v-basic", None, 1, 2)
        v1 = d.ok("POST", "/v1/models/v-basic/versions", None, expect=(201,))
        self.assertEqual((v1["version"], v1["step"], v1["label"], v1["serving"], v1["removed"]),
                         (1, 2, None, False, []))
        self.assertGreater(v1["size"], 32)
        train(d, "v-basic", None, 3, 3)
        v2 = d.ok("POST", "/v1/models/v-basic/versions", {"label": "after-3"}, expect=(201,))
        self.assertEqual((v2["version"], v2["step"], v2["label"]), (2, 3, "after-3"))
        lst = d.ok("GET", "/v1/models/v-basic/versions")
        self.assertEqual([v["version"] for v in lst["versions"]], [1, 2])
        self.assertEqual((lst["serving"], lst["keep_versions"]), ("live", 0))
        g = d.ok("GET", "/v1/models/v-basic/versions/2")
        self.assertEqual(g, lst["versions"][1])
        self.assertEqual(d.ok("DELETE", "/v1/models/v-basic/versions/1"),
                         {"model": "v-basic", "deleted": 1})
        self.assertError(d.get("/v1/models/v-basic/versions/1"), 404, "no version 1", "2")
        # numbers are never reused
        v3 = d.ok("POST", "/v1/models/v-basic/versions", {}, expect=(201,))
        self.assertEqual(v3["version"], 3)
        self.assertEqual(d.model("v-basic")["versions"], 2)

    def test_version_serves_frozen_weights_while_live_trains(self):
        d = self.daemon
        ref = with_ref(d, spec_for("v-serve"))
        train(d, "v-serve", ref, 1, 3)
        frozen_params = d.params("v-serve")
        frozen_pred = d.predict("v-serve", XT)
        d.ok("POST", "/v1/models/v-serve/versions", None, expect=(201,))
        train(d, "v-serve", ref, 4, 8)
        live_pred = d.predict("v-serve", XT)
        self.assertNotEqual(f32(live_pred), f32(frozen_pred))
        r = d.ok("POST", "/v1/models/v-serve/versions/1/predict", {"inputs": XT})
        self.assertEqual(r["version"], 1)
        self.assertEqual(f32(r["outputs"]), f32(frozen_pred))  # bit-identical
        # and torch agrees from the frozen parameters
        tnet = build_net(MLP)
        tnet.load_state_dict({k: torch.tensor(v) for k, v in frozen_params.items()})
        with torch.no_grad():
            want = tnet(torch.tensor(XT)).tolist()
        self.assertIsNone(close_report(r["outputs"], want))
        self.assertIsNone(close_report(live_pred, ref.forward(XT).tolist()))
        # "serving": plain predict and OIP infer use the version
        m = d.ok("PATCH", "/v1/models/v-serve", {"serving": 1})
        self.assertEqual((m["serving"], m["versions"]), (1, 1))
        self.assertEqual(f32(d.predict("v-serve", XT)), f32(frozen_pred))
        inf = d.ok("POST", "/v2/models/v-serve/infer", {"inputs": [
            {"name": "input", "datatype": "FP32", "shape": [5, 3], "data": dm.flatten(XT)}]})
        self.assertEqual(inf["model_version"], "1")
        self.assertEqual(f32(inf["outputs"][0]["data"]), f32(dm.flatten(frozen_pred)))
        train(d, "v-serve", ref, 9, 9)  # training goes on; clients still see version 1
        self.assertEqual(f32(d.predict("v-serve", XT)), f32(frozen_pred))
        self.assertError(d.delete("/v1/models/v-serve/versions/1"), 409, "serving")
        d.ok("PATCH", "/v1/models/v-serve", {"serving": "live"})
        self.assertIsNone(close_report(d.predict("v-serve", XT), ref.forward(XT).tolist()))
        # serve: true at the freeze
        v2 = d.ok("POST", "/v1/models/v-serve/versions", {"serve": True}, expect=(201,))
        self.assertTrue(v2["serving"])
        self.assertEqual(d.model("v-serve")["serving"], 2)

    def _rollback_case(self, name, layers, opt, sched):
        d = self.daemon
        spec = spec_for(name, layers, opt, sched)
        ref = with_ref(d, spec)
        train(d, name, ref, 1, 4)
        d.ok("POST", "/v1/models/%s/versions" % name, {"label": "good"}, expect=(201,))
        saved = copy.deepcopy((ref.net.state_dict(), ref.opt.state_dict(),
                               ref.sched.state_dict() if ref.sched else None, ref.step_count))
        train(d, name, None, 5, 9)
        d.push(name, X[:2], Y[:2])  # a pending batch the rollback discards
        r = d.ok("POST", "/v1/models/%s/rollback" % name, {"version": 1})
        self.assertEqual((r["version"], r["step"], r["from_step"], r["discarded_pending_batches"]),
                         (1, 4, 9, 1))
        self.assertIn("optimizer", r["restored"])
        m = d.model(name)
        self.assertEqual((m["step"], m["pending_batches"]), (4, 0))
        hist = d.ok("GET", "/v1/models/%s/loss" % name)["history"]
        self.assertEqual(max(h[0] if isinstance(h, list) else h["step"] for h in hist), 4)
        self.assertIsNone(dict_close_report(d.params(name), ref.params_json()))
        # continuing gives PyTorch's numbers from the frozen state: optimizer moments and
        # scheduler included
        net_sd, opt_sd, sched_sd, steps = saved
        ref.net.load_state_dict(net_sd)
        ref.opt.load_state_dict(opt_sd)
        if ref.sched:
            ref.sched.load_state_dict(sched_sd)
        ref.step_count = steps
        got = train(d, name, ref, 5, 9)
        self.assertEqual(len(got), 10)
        self.assertIsNone(dict_close_report(d.params(name), ref.params_json()),
                          "after rollback + 5 steps")
        self.assertAlmostEqual(d.model(name)["lr"] / ref.opt.param_groups[0]["lr"], 1.0,
                               places=12)

    def test_rollback_adam_steplr(self):
        self._rollback_case("v-rb-adam", MLP, {"type": "Adam", "lr": 0.02},
                            {"type": "StepLR", "step_size": 3, "gamma": 0.5})

    def test_rollback_sgd_momentum_batchnorm(self):
        self._rollback_case("v-rb-sgd", BN, {"type": "SGD", "lr": 0.05, "momentum": 0.9},
                            {"type": "ExponentialLR", "gamma": 0.9})

    def test_fork(self):
        d = self.daemon
        ref = with_ref(d, spec_for("v-src"))
        train(d, "v-src", ref, 1, 3)
        d.ok("POST", "/v1/models/v-src/versions", None, expect=(201,))
        at_freeze = d.params("v-src")
        train(d, "v-src", None, 4, 6)
        f = d.ok("POST", "/v1/models", {"name": "v-fork", "from": {"model": "v-src", "version": 1},
                                         "keep_versions": 3}, expect=(201,))
        self.assertEqual((f["step"], f["spec"], f["versions"], f["keep_versions"]),
                         (3, d.model("v-src")["spec"], 0, 3))
        self.assertEqual(f32(d.params("v-fork")), f32(at_freeze))
        got = train(d, "v-fork", ref, 4, 6)  # continues as torch from the version
        self.assertTrue(all(isinstance(v, float) for v in got))
        self.assertIsNone(dict_close_report(d.params("v-fork"), ref.params_json()))
        # the fork is a model of its own: deleting the source leaves it
        d.ok("DELETE", "/v1/models/v-src")
        self.assertEqual(d.model("v-fork")["step"], 6)
        # fork of the live state
        d.ok("POST", "/v1/models", {"name": "v-fork2", "from": {"model": "v-fork"}},
             expect=(201,))
        self.assertEqual(f32(d.params("v-fork2")), f32(d.params("v-fork")))

    def test_retention(self):
        d = self.daemon
        d.create(spec_for("v-keep", keep_versions=2))
        self.assertEqual(d.model("v-keep")["keep_versions"], 2)
        d.ok("POST", "/v1/models/v-keep/versions", {"label": "first"}, expect=(201,))
        removed = []
        for k in range(4):
            train(d, "v-keep", None, k, k)
            removed += d.ok("POST", "/v1/models/v-keep/versions", None,
                            expect=(201,))["removed"]
        # oldest unlabelled go first: 2, 3, 4; then the labelled 1 stays while 5 is newest
        vs = [v["version"] for v in d.ok("GET", "/v1/models/v-keep/versions")["versions"]]
        self.assertEqual(vs, [1, 5])
        self.assertEqual(removed, [2, 3, 4])
        files = sorted(os.listdir(os.path.join(d.data_dir, "v-keep.versions")))
        self.assertEqual(files, ["1.etm", "5.etm", "index.etm"])
        # lowering keep_versions applies at once, labelled last
        d.ok("PATCH", "/v1/models/v-keep", {"keep_versions": 1})
        vs = [v["version"] for v in d.ok("GET", "/v1/models/v-keep/versions")["versions"]]
        self.assertEqual(vs, [5])
        # the serving version is never removed
        d.ok("PATCH", "/v1/models/v-keep", {"serving": 5})
        d.ok("POST", "/v1/models/v-keep/versions", None, expect=(201,))
        vs = [v["version"] for v in d.ok("GET", "/v1/models/v-keep/versions")["versions"]]
        self.assertEqual(vs, [5, 6])

    def test_metrics(self):
        d = self.daemon
        d.create(spec_for("v-metrics"))
        d.ok("POST", "/v1/models/v-metrics/versions", {"serve": True}, expect=(201,))
        r = d.get("/metrics")
        text = r.body.decode()
        self.assertIn('easytorch_model_versions{model="v-metrics"} 1', text)
        self.assertIn('easytorch_serving_version{model="v-metrics"} 1', text)
        self.assertIn('easytorch_version_step{model="v-metrics",version="1"} 0', text)

    def test_deleting_the_model_removes_its_versions(self):
        d = self.daemon
        d.create(spec_for("v-del"))
        d.ok("POST", "/v1/models/v-del/versions", None, expect=(201,))
        self.assertTrue(os.path.isdir(os.path.join(d.data_dir, "v-del.versions")))
        d.ok("DELETE", "/v1/models/v-del")
        self.assertFalse(os.path.exists(os.path.join(d.data_dir, "v-del.versions")))
        d.create(spec_for("v-del"))  # a new model of that name starts without versions
        self.assertEqual(d.ok("GET", "/v1/models/v-del/versions")["versions"], [])


class BadInput(DaemonTestCase):
    def setUp(self):
        d = self.daemon
        if d.get("/v1/models/v-bad").status == 404:
            d.create(spec_for("v-bad"))
            train(d, "v-bad", None, 1, 1)
            d.ok("POST", "/v1/models/v-bad/versions", {"label": "one"}, expect=(201,))

    def unchanged(self):
        d = self.daemon
        return (d.model("v-bad"), d.params("v-bad"),
                d.ok("GET", "/v1/models/v-bad/versions")["versions"])

    def test_bad_version_numbers(self):
        d = self.daemon
        before = self.unchanged()
        for v in ["0", "-1", "abc", "1.0", "1e3", "01x", "99999999999999999999", "%20"]:
            self.assertError(d.get("/v1/models/v-bad/versions/" + v), 400, "version")
            self.assertError(d.delete("/v1/models/v-bad/versions/" + v), 400, "version")
            self.assertError(d.post("/v1/models/v-bad/versions/%s/predict" % v,
                                    {"inputs": XT}), 400, "version")
        self.assertError(d.get("/v1/models/v-bad/versions/7"), 404, "no version 7", "1")
        self.assertError(d.post("/v1/models/v-bad/versions/7/predict", {"inputs": XT}), 404,
                         "no version 7")
        self.assertError(d.get("/v1/models/nope/versions"), 404, "nope")
        self.assertEqual(self.unchanged(), before)

    def test_bad_bodies(self):
        d = self.daemon
        before = self.unchanged()
        cases = [
            ("POST", "/v1/models/v-bad/versions", {"lable": "x"}, "lable"),
            ("POST", "/v1/models/v-bad/versions", {"label": 3}, "label"),
            ("POST", "/v1/models/v-bad/versions", {"label": "x" * 200}, "label"),
            ("POST", "/v1/models/v-bad/versions", {"serve": "yes"}, "serve"),
            ("POST", "/v1/models/v-bad/versions", [1], "object"),
            ("POST", "/v1/models/v-bad/rollback", {}, "version"),
            ("POST", "/v1/models/v-bad/rollback", {"version": 0}, "version"),
            ("POST", "/v1/models/v-bad/rollback", {"version": "1"}, "version"),
            ("POST", "/v1/models/v-bad/rollback", {"version": 1, "x": 1}, "x"),
            ("POST", "/v1/models/v-bad/versions/1/predict", {"inputs": [[1, 2]]}, "inputs"),
            ("POST", "/v1/models/v-bad/versions/1/predict", {"input": XT}, "input"),
            ("PATCH", "/v1/models/v-bad", {"serving": 0}, "serving"),
            ("PATCH", "/v1/models/v-bad", {"serving": "lve"}, "serving"),
            ("PATCH", "/v1/models/v-bad", {"serving": None}, "serving"),
            ("PATCH", "/v1/models/v-bad", {"keep_versions": -1}, "keep_versions"),
            ("PATCH", "/v1/models/v-bad", {"keep_versions": 1.5}, "keep_versions"),
            ("PATCH", "/v1/models/v-bad", {"step": 3}, "step"),
            ("POST", "/v1/models", {"name": "f", "from": {"model": "v-bad", "version": 0}},
             "from.version"),
            ("POST", "/v1/models", {"name": "f", "from": "v-bad"}, "from"),
            ("POST", "/v1/models", {"name": "f", "from": {"model": "v-bad", "versoin": 1}},
             "versoin"),
            ("POST", "/v1/models", {"name": "f", "from": {"model": "v-bad"}, "layers": []},
             "layers"),
            ("POST", "/v1/models", {"name": "../f", "from": {"model": "v-bad"}}, "name"),
            ("POST", "/v1/models", {"name": "f", "from": {"model": "v-bad"},
                                     "keep_versions": "2"}, "keep_versions"),
            ("POST", "/v1/models", dict(spec_for("f"), keep_versions=-2), "keep_versions"),
        ]
        for method, path, body, word in cases:
            with self.subTest(path=path, body=body):
                self.assertError(d.request(method, path, obj=body), 400, word)
        for method, path, body, word in [
                ("PATCH", "/v1/models/v-bad", {"serving": 9}, "no version 9"),
                ("POST", "/v1/models/v-bad/rollback", {"version": 9}, "no version 9"),
                ("POST", "/v1/models", {"name": "f", "from": {"model": "v-bad", "version": 9}},
                 "no version 9"),
                ("POST", "/v1/models", {"name": "f", "from": {"model": "zz", "version": 1}},
                 "zz")]:
            with self.subTest(path=path, body=body):
                self.assertError(d.request(method, path, obj=body), 404, word)
        self.assertError(d.post("/v1/models", {"name": "v-bad", "from": {"model": "v-bad"}}),
                         409, "exists")
        self.assertEqual(d.get("/v1/models/f").status, 404)
        self.assertEqual(self.unchanged(), before)


def torch_metrics(params, layers, x, y):
    """PyTorch's MSE loss and regression metrics of the net holding params on (x, y)."""
    net = build_net(layers)
    net.load_state_dict({k: torch.tensor(v) for k, v in params.items()}, strict=True)
    net.eval()
    with torch.no_grad():
        o = net(torch.tensor(x)).double()
    t = torch.tensor(y).double()
    mse = ((o - t) ** 2).mean()
    tot = ((t - t.mean(0)) ** 2).sum(0)
    return {"loss": torch.nn.functional.mse_loss(o.float(), t.float()).item(),
            "mae": (o - t).abs().mean().item(), "mse": mse.item(), "rmse": mse.sqrt().item(),
            "r2": (1 - ((t - o) ** 2).sum(0) / tot).mean().item()}


class VersionMetrics(DaemonTestCase):
    def assertMetrics(self, got, want, names):
        self.assertEqual(sorted(got), sorted(names))
        for k in names:
            self.assertTrue(math.isclose(got[k], want[k], rel_tol=1e-4, abs_tol=1e-5),
                            "%s: daemon %r, torch %r" % (k, got[k], want[k]))

    def wait_job(self, d, name, jid):
        deadline = time.monotonic() + 120  # a safety net against hangs, not a speed check
        while True:
            j = d.ok("GET", "/v1/models/%s/jobs/%d" % (name, jid))
            if j["state"] not in ("queued", "running"):
                return j
            self.assertLess(time.monotonic(), deadline, j)
            time.sleep(0.01)

    def test_validation_metrics_of_a_job_and_of_evaluate(self):
        d = Daemon(sync="always")
        d.start()
        try:
            self.check_metrics(d)
        finally:
            d.cleanup()

    def test_metrics_of_weights_changed_at_the_same_step(self):
        """An evaluation measured weights that PUT parameters or a rollback replaced
        without a training step: a version frozen at that step does not take it."""
        d = self.daemon
        name = "v-metrics-put"
        d.create(spec_for(name))
        vx, vy = data(7, 10)
        v0 = d.ok("POST", "/v1/models/%s/versions" % name, None, expect=(201,))
        self.assertEqual(v0["step"], 0)
        r = d.post("/v1/models/%s/jobs" % name,
                   {"inputs": X, "targets": Y, "epochs": 2, "batch_size": 6,
                    "validation": {"inputs": vx, "targets": vy, "metrics": ["loss"]}})
        self.assertEqual(r.status, 202, r)
        self.assertEqual(self.wait_job(d, name, r.json()["id"])["state"], "done")
        hist = d.ok("GET", "/v1/models/%s/loss?series=validation" % name)["validation"]
        self.assertEqual([h["step"] for h in hist], [4, 8])
        # new weights at step 8: the job's step-8 metrics are not theirs
        p = random_params(build_net(MLP), 5)
        d.set_params(name, p)
        v = d.ok("POST", "/v1/models/%s/versions" % name, None, expect=(201,))
        self.assertEqual((v["step"], v["validation"]), (8, None))
        # measured again after the PUT: the version takes that one, equal to torch's
        r = d.post("/v1/models/%s/jobs" % name,
                   {"inputs": X[:6], "targets": Y[:6], "epochs": 1, "batch_size": 6,
                    "validation": {"inputs": vx, "targets": vy, "metrics": ["loss"]}})
        self.assertEqual(self.wait_job(d, name, r.json()["id"])["state"], "done")
        p9 = d.params(name)
        v = d.ok("POST", "/v1/models/%s/versions" % name, None, expect=(201,))
        self.assertEqual((v["step"], v["validation"]["step"]), (9, 9))
        self.assertMetrics(v["validation"]["metrics"], torch_metrics(p9, MLP, vx, vy), ["loss"])
        # back to step 0, then 4 steps: the job's step-4 metrics were a discarded future
        d.ok("POST", "/v1/models/%s/rollback" % name, {"version": v0["version"]})
        train(d, name, None, 1, 4)
        v = d.ok("POST", "/v1/models/%s/versions" % name, None, expect=(201,))
        self.assertEqual((v["step"], v["validation"]), (4, None))

    def check_metrics(self, d):
        name = "v-metrics"
        d.create(spec_for(name))
        vx, vy = data(7, 10)
        # a job validating once per epoch: its last evaluation is at the last step
        r = d.post("/v1/models/%s/jobs" % name,
                   {"inputs": X, "targets": Y, "epochs": 2, "batch_size": 6,
                    "validation": {"inputs": vx, "targets": vy, "metrics": ["loss", "mae", "r2"]}})
        self.assertEqual(r.status, 202, r)
        jid = r.json()["id"]
        self.assertEqual(self.wait_job(d, name, jid)["state"], "done")
        p1 = d.params(name)
        v1 = d.ok("POST", "/v1/models/%s/versions" % name, None, expect=(201,))
        self.assertEqual(v1["step"], 8)
        val = v1["validation"]
        self.assertEqual((val["source"], val["job"], val["step"]), ("job", jid, 8))
        self.assertNotIn("rows", val)
        self.assertMetrics(val["metrics"], torch_metrics(p1, MLP, vx, vy), ["loss", "mae", "r2"])
        hist = d.ok("GET", "/v1/models/%s/loss?series=validation" % name)["validation"]
        self.assertEqual(val["metrics"], hist[-1]["metrics"])  # the job's own entry
        # frozen at a step nobody measured: no metrics
        train(d, name, None, 1, 1)
        p2 = d.params(name)
        v2 = d.ok("POST", "/v1/models/%s/versions" % name, None, expect=(201,))
        self.assertEqual((v2["step"], v2["validation"]), (9, None))
        pred2 = d.ok("POST", "/v1/models/%s/versions/2/predict" % name, {"inputs": XT})["outputs"]
        train(d, name, None, 2, 4)  # the live model moves on
        live = (d.params(name), d.ok("GET", "/v1/models/%s/loss" % name))
        # evaluating a version measures its weights and records the result
        ex, ey = data(8, 7)
        t0 = time.time()
        e = d.ok("POST", "/v1/models/%s/versions/2/evaluate" % name,
                 {"inputs": ex, "targets": ey, "metrics": ["loss", "mse", "rmse"]})
        self.assertEqual((e["version"], e["step"], e["rows"]), (2, 9, 7))
        self.assertMetrics(e["metrics"], torch_metrics(p2, MLP, ex, ey), ["loss", "mse", "rmse"])
        g = d.ok("GET", "/v1/models/%s/versions/2" % name)
        val = g["validation"]
        self.assertEqual((val["source"], val["step"], val["rows"], val["metrics"]),
                         ("evaluate", 9, 7, e["metrics"]))
        self.assertNotIn("job", val)
        self.assertTrue(t0 - 1 <= val["evaluated"] <= time.time() + 1, val)
        # the default metrics of the loss; an evaluation replaces a job's metrics
        e1 = d.ok("POST", "/v1/models/%s/versions/1/evaluate" % name, {"inputs": ex, "targets": ey})
        self.assertMetrics(e1["metrics"], torch_metrics(p1, MLP, ex, ey),
                           ["loss", "mae", "mse", "rmse", "r2"])
        lst = d.ok("GET", "/v1/models/%s/versions" % name)
        self.assertEqual([v["validation"]["source"] for v in lst["versions"]],
                         ["evaluate", "evaluate"])
        self.assertEqual(lst["versions"][0]["validation"]["metrics"], e1["metrics"])
        # nothing of the live model changed
        self.assertEqual((d.params(name), d.ok("GET", "/v1/models/%s/loss" % name)), live)
        # bad requests are 400/404 naming the problem, and change nothing
        for path, body, status, words in [
                ("versions/9/evaluate", {"inputs": ex, "targets": ey}, 404, ["no version 9"]),
                ("versions/x/evaluate", {"inputs": ex, "targets": ey}, 400, ["version"]),
                ("versions/2/evaluate", {"inputs": ex, "targets": ey[:3]}, 400, ["targets", "7"]),
                ("versions/2/evaluate", {"inputs": ex}, 400, ["targets"]),
                ("versions/2/evaluate", {"inputs": ex, "targets": ey, "metrics": ["nope"]}, 400,
                 ["metrics"]),
                ("versions/2/evaluate", {"inputs": [[1.0]], "targets": [[1.0, 2.0]]}, 400,
                 ["inputs"]),
                ("versions/2/evaluate", {"inputs": ex, "targets": ey, "extra": 1}, 400, ["extra"])]:
            with self.subTest(path=path, body=body):
                self.assertError(d.post("/v1/models/%s/%s" % (name, path), body), status, *words)
        self.assertEqual(d.ok("GET", "/v1/models/%s/versions" % name), lst)
        # kept in the version files: restarts (clean and kill -9) list the same
        for hard in (False, True):
            d.restart(hard=hard)
            self.assertEqual(d.ok("GET", "/v1/models/%s/versions" % name), lst)
        # recording metrics rewrote the file's metadata, not its weights
        self.assertEqual(d.ok("POST", "/v1/models/%s/versions/2/predict" % name,
                              {"inputs": XT})["outputs"], pred2)
        d.ok("POST", "/v1/models", {"name": name + "-f", "from": {"model": name, "version": 2}},
             expect=(201,))
        self.assertEqual(d.params(name + "-f"), p2)


class Persistence(unittest.TestCase):
    def test_versions_survive_restart_and_kill9(self):
        d = Daemon(sync="always")
        d.start()
        try:
            d.create(spec_for("v-p", BN))
            train(d, "v-p", None, 1, 2)
            d.ok("POST", "/v1/models/v-p/versions", {"label": "a"}, expect=(201,))
            pred1 = d.ok("POST", "/v1/models/v-p/versions/1/predict", {"inputs": XT})
            train(d, "v-p", None, 3, 4)
            d.ok("POST", "/v1/models/v-p/versions", {"serve": True}, expect=(201,))
            d.ok("PATCH", "/v1/models/v-p", {"keep_versions": 5})
            train(d, "v-p", None, 5, 5)
            before = d.ok("GET", "/v1/models/v-p/versions")
            serving_pred = d.predict("v-p", XT)
            for hard in (False, True):
                d.restart(hard=hard)
                self.assertEqual(d.ok("GET", "/v1/models/v-p/versions"), before)
                self.assertEqual(d.ok("POST", "/v1/models/v-p/versions/1/predict",
                                      {"inputs": XT}), pred1)
                self.assertEqual(d.predict("v-p", XT), serving_pred)
            # the next number continues after a restart
            self.assertEqual(d.ok("POST", "/v1/models/v-p/versions", None,
                                  expect=(201,))["version"], 3)
            # rollback after a restart restores the BatchNorm running statistics too
            r = d.ok("POST", "/v1/models/v-p/rollback", {"version": 1})
            self.assertEqual(r["step"], 2)
            self.assertEqual(f32(d.predict("v-p", XT)), f32(serving_pred))  # still v2 serving
            d.ok("PATCH", "/v1/models/v-p", {"serving": "live"})
            self.assertEqual(f32(d.predict("v-p", XT)), f32(pred1["outputs"]))
            # a corrupt version file is reported and skipped, the rest loads
            vdir = os.path.join(d.data_dir, "v-p.versions")
            with open(os.path.join(vdir, "3.etm"), "r+b") as f:
                f.seek(100)
                b = f.read(1)
                f.seek(100)
                f.write(bytes([b[0] ^ 0xFF]))
            d.restart(hard=True)
            vs = [v["version"] for v in d.ok("GET", "/v1/models/v-p/versions")["versions"]]
            self.assertEqual(vs, [1, 2])
            self.assertIn("skipping version file", d.log())
            self.assertIn("checksum", d.log())
            # and the number of the corrupt file is not reused
            self.assertEqual(d.ok("POST", "/v1/models/v-p/versions", None,
                                  expect=(201,))["version"], 4)
        finally:
            d.cleanup()


if __name__ == "__main__":
    dm.run_tests()
