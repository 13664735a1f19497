#!/usr/bin/python3
"""easytorchd HTTP contract: every endpoint and its answers, routes, the training API,
metrics, KServe v2, dashboard. Bad input, robustness, the body limit, auth and startup
options are test_api_errors.py (which imports the helpers here).
Usage: test_api.py PATH/TO/easytorchd"""

import json
import os
import re
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import DaemonTestCase, flatten, shape_of  # noqa: E402

D = None  # the module's daemon, made and started by setUpModule
setUpModule, tearDownModule = dm.module_fixture(globals())


def mlp_spec(name, **over):
    spec = {
        "name": name,
        "layers": [
            {"type": "Linear", "in_features": 3, "out_features": 4},
            {"type": "Tanh"},
            {"type": "Linear", "in_features": 4, "out_features": 2},
        ],
        "loss": {"type": "MSELoss"},
        "optimizer": {"type": "SGD", "lr": 0.1},
        "seed": 1,
    }
    spec.update(over)
    return spec


X = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]
Y = [[1.0, 0.0], [0.0, -1.0]]

_counter = [0]


def first(layer):
    """layers of mlp_spec with the first Linear replaced by `layer`"""
    return [layer, {"type": "Tanh"}, {"type": "Linear", "in_features": 4, "out_features": 2}]


def middle(layer):
    """layers of mlp_spec with `layer` inserted after the activation"""
    return [{"type": "Linear", "in_features": 3, "out_features": 4}, {"type": "Tanh"}, layer,
            {"type": "Linear", "in_features": 4, "out_features": 2}]


def is_number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def fresh(prefix="m"):
    _counter[0] += 1
    return "%s%d" % (prefix, _counter[0])


class Base(DaemonTestCase):
    def new_model(self, **over):
        name = fresh()
        D.create(mlp_spec(name, **over))
        return name

    def snapshot(self, name):
        """Everything a bad request must leave unchanged."""
        m = D.model(name)
        return {
            "params": D.params(name),
            "grads": D.ok("GET", "/v1/models/%s/gradients" % name)["gradients"],
            "step": m["step"],
            "pending": m["pending_batches"],
            "loss": m["loss"],
            "history": D.ok("GET", "/v1/models/%s/loss" % name)["history"],
        }

    def assertUnchanged(self, name, before):
        self.assertEqual(self.snapshot(name), before, "a rejected request changed model %s" % name)


# ============================================================================ health
class TestHealth(Base):
    def test_healthz(self):
        r = D.get("/healthz")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["status"], "ok")
        self.assertIn("application/json", r.headers.get("content-type", ""))

    def test_readyz(self):
        r = D.get("/readyz")
        self.assertEqual(r.status, 200, r)

    def test_v2_health(self):
        self.assertEqual(D.get("/v2/health/live").status, 200)
        self.assertEqual(D.get("/v2/health/ready").status, 200)


# ============================================================================ models
class TestModels(Base):
    def test_create_returns_description(self):
        name = fresh()
        spec = mlp_spec(name)
        r = D.post("/v1/models", spec)
        self.assertEqual(r.status, 201, r)
        self.assertIn("application/json", r.headers.get("content-type", ""))
        desc = r.json()
        self.assertEqual(desc["name"], name)
        self.assertIsInstance(desc["spec"], dict)
        self.assertEqual(desc["step"], 0)
        self.assertEqual(desc["pending_batches"], 0)
        self.assertIsNone(desc["loss"])
        # 3*4+4 + 4*2+2 = 26 scalars in 4 tensors; "parameters": <count>
        self.assertIn(desc["parameters"], (26, 4))
        self.assertEqual(D.model(name), desc, "POST's body must equal GET /v1/models/{name}")

    def test_spec_round_trips(self):
        name = fresh()
        spec = mlp_spec(name, scheduler={"type": "StepLR", "step_size": 3, "gamma": 0.5})
        desc = D.create(spec)
        s = desc["spec"]
        self.assertEqual([l["type"] for l in s["layers"]], ["Linear", "Tanh", "Linear"])
        self.assertEqual(s["layers"][0]["in_features"], 3)
        self.assertEqual(s["layers"][2]["out_features"], 2)
        self.assertEqual(s["optimizer"]["type"], "SGD")
        self.assertAlmostEqual(s["optimizer"]["lr"], 0.1, delta=1e-7)
        self.assertEqual(s["scheduler"]["type"], "StepLR")

    def test_name_taken_409(self):
        name = self.new_model()
        before = self.snapshot(name)
        r = D.post("/v1/models", mlp_spec(name, seed=99))
        self.assertError(r, 409, name)
        self.assertUnchanged(name, before)

    def test_loss_as_bare_string(self):
        name = fresh()
        desc = D.create(mlp_spec(name, loss="L1Loss"))
        self.assertEqual(desc["name"], name)
        out = D.post("/v1/models/%s/batches" % name, {"inputs": X, "targets": Y})
        self.assertEqual(out.status, 200, out)

    def test_every_listed_layer_loss_optimizer_scheduler_accepted(self):
        layers = [
            {"type": "Flatten"},
            {"type": "Linear", "in_features": 6, "out_features": 5, "bias": False},
            {"type": "ReLU"}, {"type": "Tanh"}, {"type": "Sigmoid"},
            {"type": "LeakyReLU", "negative_slope": 0.2}, {"type": "Dropout", "p": 0.1},
            {"type": "Identity"}, {"type": "Softmax", "dim": -1}, {"type": "LogSoftmax"},
        ]
        for loss in ["MSELoss", "L1Loss", "CrossEntropyLoss", "NLLLoss", "BCEWithLogitsLoss",
                     "HuberLoss", "SmoothL1Loss"]:
            for red in ["mean", "sum"]:
                with self.subTest(loss=loss, reduction=red):
                    D.create({"name": fresh(), "layers": layers,
                              "loss": {"type": loss, "reduction": red},
                              "optimizer": {"type": "SGD", "lr": 0.1}})
        for opt in [{"type": "SGD", "lr": 0.1, "momentum": 0.9, "dampening": 0.1,
                     "weight_decay": 0.01, "nesterov": False},
                    {"type": "Adagrad", "lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.0,
                     "initial_accumulator_value": 0.1, "eps": 1e-10},
                    {"type": "RMSprop", "lr": 0.01, "alpha": 0.9, "eps": 1e-8,
                     "weight_decay": 0.0, "momentum": 0.5, "centered": True},
                    {"type": "Adam", "lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-8,
                     "weight_decay": 0.0, "amsgrad": True},
                    {"type": "AdamW", "lr": 0.001, "betas": [0.8, 0.9], "eps": 1e-8,
                     "weight_decay": 0.01, "amsgrad": False},
                    {"type": "Adam"}, {"type": "Adagrad"}, {"type": "RMSprop"}]:
            with self.subTest(optimizer=opt):
                D.create({"name": fresh(), "layers": layers, "loss": "MSELoss", "optimizer": opt})
        for sch in [{"type": "StepLR", "step_size": 2}, {"type": "ExponentialLR", "gamma": 0.9},
                    {"type": "CosineAnnealingLR", "T_max": 10, "eta_min": 0.001}]:
            with self.subTest(scheduler=sch):
                D.create({"name": fresh(), "layers": layers, "loss": "MSELoss",
                          "optimizer": {"type": "SGD", "lr": 0.1}, "scheduler": sch})

    def test_list_models(self):
        a = self.new_model()
        b = self.new_model()
        D.ok("POST", "/v1/models/%s/train" % b, {"inputs": X, "targets": Y})
        r = D.get("/v1/models")
        self.assertEqual(r.status, 200)
        models = r.json()["models"]
        by = {m["name"]: m for m in models}
        self.assertIn(a, by)
        self.assertIn(b, by)
        self.assertEqual(by[a]["step"], 0)
        self.assertIsNone(by[a]["loss"])
        self.assertEqual(by[b]["step"], 1)
        self.assertTrue(is_number(by[b]["loss"]))

    def test_delete(self):
        name = "delete-me-unique"
        D.create(mlp_spec(name))
        r = D.delete("/v1/models/%s" % name)
        self.assertIn(r.status, (200, 204), r)
        self.assertError(D.get("/v1/models/%s" % name), 404, name)
        names = [m["name"] for m in D.ok("GET", "/v1/models")["models"]]
        self.assertNotIn(name, names)
        self.assertError(D.delete("/v1/models/%s" % name), 404, name)
        self.assertError(D.post("/v1/models/%s/predict" % name, {"inputs": X}), 404, name)
        # "the model and its files are gone"
        for root, dirs, files in os.walk(D.data_dir):
            for f in dirs + files:
                self.assertNotIn(name, f, "file %s/%s of a deleted model remains" % (root, f))
        # and the name is free again
        D.create(mlp_spec(name))

    def test_seed_determines_init(self):
        a, b, c = fresh(), fresh(), fresh()
        D.create(mlp_spec(a, seed=7))
        D.create(mlp_spec(b, seed=7))
        D.create(mlp_spec(c, seed=8))
        self.assertEqual(D.params(a), D.params(b))
        self.assertNotEqual(D.params(a), D.params(c))

    def test_parameter_names_shapes_and_default_init(self):
        name = fresh()
        D.create(mlp_spec(name, layers=[
            {"type": "Flatten"}, {"type": "Linear", "in_features": 6, "out_features": 40},
            {"type": "ReLU"}, {"type": "Linear", "in_features": 40, "out_features": 3,
                               "bias": False}]))
        p = D.params(name)
        self.assertEqual(sorted(p), ["1.bias", "1.weight", "3.weight"])
        self.assertEqual(shape_of(p["1.weight"]), [40, 6])
        self.assertEqual(shape_of(p["1.bias"]), [40])
        self.assertEqual(shape_of(p["3.weight"]), [3, 40])
        # torch's Linear init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
        for key, fan_in in [("1.weight", 6), ("1.bias", 6), ("3.weight", 40)]:
            v = flatten(p[key])
            bound = fan_in ** -0.5
            self.assertTrue(all(abs(x) <= bound * (1 + 1e-6) for x in v), key)
            self.assertGreater(len(set(v)), len(v) // 2, key)
            self.assertGreater(max(v), bound * 0.5, key)
            self.assertLess(min(v), -bound * 0.5, key)


# ============================================================================ routes
class TestRoutes(Base):
    def test_unknown_model_404(self):
        for method, suffix, body in [("GET", "", None), ("DELETE", "", None),
                                     ("POST", "/predict", {"inputs": X}),
                                     ("POST", "/batches", {"inputs": X, "targets": Y}),
                                     ("POST", "/step", None), ("POST", "/train", {"inputs": X, "targets": Y}),
                                     ("GET", "/gradients", None),
                                     ("POST", "/gradients", {"inputs": X, "targets": Y}),
                                     ("GET", "/parameters", None), ("GET", "/loss", None),
                                     ("PUT", "/parameters", {"parameters": {}}),
                                     ("POST", "/checkpoint", None)]:
            with self.subTest(method=method, suffix=suffix):
                r = D.request(method, "/v1/models/nosuchmodel" + suffix, obj=body)
                self.assertError(r, 404, "nosuchmodel")
        self.assertError(D.get("/v2/models/nosuchmodel"), 404, "nosuchmodel")
        self.assertError(D.get("/v2/models/nosuchmodel/ready"), 404, "nosuchmodel")
        self.assertError(D.post("/v2/models/nosuchmodel/infer", {"inputs": []}), 404, "nosuchmodel")

    def test_unknown_route_404(self):
        name = self.new_model()
        for method, path in [("GET", "/v1/nothing"), ("GET", "/v3"), ("POST", "/v1/models/%s/fly" % name),
                             ("GET", "/v1/models/%s/parameters/extra" % name), ("GET", "/favicon.icox")]:
            with self.subTest(path=path):
                self.assertError(D.request(method, path), 404)

    def test_wrong_method_405(self):
        name = self.new_model()
        cases = [("PUT", "/healthz"), ("POST", "/readyz"), ("DELETE", "/v1/models"),
                 ("PUT", "/v1/models"), ("GET", "/v1/models/%s/predict" % name),
                 ("GET", "/v1/models/%s/batches" % name), ("GET", "/v1/models/%s/step" % name),
                 ("DELETE", "/v1/models/%s/train" % name), ("POST", "/v1/models/%s/parameters" % name),
                 ("DELETE", "/v1/models/%s/parameters" % name), ("POST", "/v1/models/%s/loss" % name),
                 ("PUT", "/v1/models/%s" % name), ("POST", "/metrics"),
                 ("GET", "/v2/models/%s/infer" % name)]
        for method, path in cases:
            with self.subTest(method=method, path=path):
                r = D.request(method, path, body="{}" if method in ("POST", "PUT") else None)
                self.assertError(r, 405)
        self.assertIsNotNone(D.model(name))

    def test_405_has_allow_header(self):
        name = self.new_model()
        r = D.get("/v1/models/%s/predict" % name)
        self.assertEqual(r.status, 405)
        self.assertIn("POST", r.headers.get("allow", ""), "RFC 9110: a 405 carries Allow")

    def test_step_with_nothing_pending_409(self):
        name = self.new_model()
        before = self.snapshot(name)
        self.assertError(D.post("/v1/models/%s/step" % name), 409, "pending", "batch", "nothing")
        self.assertUnchanged(name, before)
        D.push(name, X, Y)
        self.assertEqual(D.step(name)["step"], 1)
        before = self.snapshot(name)
        self.assertError(D.post("/v1/models/%s/step" % name), 409, "pending", "batch", "nothing")
        self.assertUnchanged(name, before)

    def test_error_bodies_are_json(self):
        r = D.get("/v1/nothing")
        self.assertIn("application/json", r.headers.get("content-type", ""))
        r.error()


# ============================================================================ training API
class TestTrainingEndpoints(Base):
    def test_batches_and_step(self):
        name = self.new_model()
        r1 = D.push(name, X, Y)
        self.assertTrue(is_number(r1["loss"]))
        self.assertEqual(r1["pending_batches"], 1)
        r2 = D.push(name, X[:1], Y[:1])
        self.assertEqual(r2["pending_batches"], 2)
        self.assertEqual(D.model(name)["pending_batches"], 2)
        s = D.step(name)
        self.assertEqual(s["step"], 1)
        self.assertAlmostEqual(s["lr"], 0.1, delta=1e-7)
        m = D.model(name)
        self.assertEqual(m["step"], 1)
        self.assertEqual(m["pending_batches"], 0)
        self.assertTrue(is_number(m["loss"]))
        g = D.ok("GET", "/v1/models/%s/gradients" % name)["gradients"]
        self.assertEqual(sorted(g), ["0.bias", "0.weight", "2.bias", "2.weight"])
        for k, v in g.items():
            self.assertTrue(all(x == 0 for x in flatten(v)), "gradients not zeroed after step: " + k)

    def test_train_response(self):
        name = self.new_model()
        r = D.ok("POST", "/v1/models/%s/train" % name,
                 {"inputs": X + X, "targets": Y + Y, "epochs": 3, "batch_size": 3})
        self.assertEqual(r["step"], 6)
        self.assertEqual(len(r["losses"]), 6)
        self.assertEqual(r["loss"], r["losses"][-1])
        self.assertEqual(D.model(name)["step"], 6)
        r = D.ok("POST", "/v1/models/%s/train" % name, {"inputs": X, "targets": Y})
        self.assertEqual(r["step"], 7)
        self.assertEqual(len(r["losses"]), 1)

    def test_shape_data_tensor_form(self):
        name = self.new_model()
        a = D.predict(name, X)
        b = D.predict(name, {"shape": [2, 3], "data": flatten(X)})
        self.assertEqual(a, b)
        self.assertEqual(shape_of(a), [2, 2])

    def test_loss_history_since(self):
        name = self.new_model()
        h = D.ok("GET", "/v1/models/%s/loss" % name)
        self.assertEqual((h["step"], h["history"]), (0, []))
        r = D.ok("POST", "/v1/models/%s/train" % name, {"inputs": X, "targets": Y, "epochs": 4})
        losses = r["losses"]
        h = D.ok("GET", "/v1/models/%s/loss" % name)
        self.assertEqual(h["step"], 4)
        self.assertEqual(h["history"], [[i + 1, losses[i]] for i in range(4)])
        h = D.ok("GET", "/v1/models/%s/loss?since=2" % name)
        self.assertEqual(h["history"], [[3, losses[2]], [4, losses[3]]])
        h = D.ok("GET", "/v1/models/%s/loss?since=0" % name)
        self.assertEqual(len(h["history"]), 4)
        h = D.ok("GET", "/v1/models/%s/loss?since=4" % name)
        self.assertEqual((h["step"], h["history"]), (4, []))
        h = D.ok("GET", "/v1/models/%s/loss?since=100" % name)
        self.assertEqual(h["history"], [])
        for bad in ["abc", "1.5", "", "-x"]:
            with self.subTest(since=bad):
                self.assertError(D.get("/v1/models/%s/loss?since=%s" % (name, bad)), 400, "since")

    def test_put_parameters_roundtrip(self):
        name = self.new_model()
        p = D.params(name)
        newp = {k: [[0.25 * (i + 1) - 0.5 * j for j in range(len(v[0]))] for i in range(len(v))]
                if isinstance(v[0], list) else [0.125 * i for i in range(len(v))]
                for k, v in p.items()}
        D.set_params(name, newp)
        self.assertEqual(D.params(name), newp)
        # the {"shape", "data"} form is accepted too
        flat = {k: {"shape": shape_of(v), "data": flatten(v)} for k, v in p.items()}
        D.set_params(name, flat)
        self.assertEqual(D.params(name), p)

    def test_put_parameters_all_or_nothing(self):
        name = self.new_model()
        D.push(name, X, Y)  # pending gradients must survive a rejected PUT as well
        before = self.snapshot(name)
        p = before["params"]
        changed = {k: [[7.0] * len(r) for r in v] if isinstance(v[0], list) else [7.0] * len(v)
                   for k, v in p.items()}
        cases = []
        c = dict(changed)
        c["2.bias"] = [1.0, 2.0, 3.0]            # wrong shape, after good ones
        cases.append((c, "2.bias"))
        c = dict(changed)
        c["0.weight"] = [[1.0] * 4] * 3          # transposed shape
        cases.append((c, "0.weight"))
        c = dict(changed)
        c["9.weight"] = [[1.0]]                  # unknown name
        cases.append((c, "9.weight"))
        c = dict(changed)
        c["2.weight"] = [[1.0, "x"], [1.0, 2.0]]  # wrong type
        cases.append((c, "2.weight"))
        for c, bad in cases:
            with self.subTest(bad=bad):
                self.assertError(D.put("/v1/models/%s/parameters" % name, {"parameters": c}),
                                 400, bad)
                self.assertUnchanged(name, before)
        body = json.dumps({"parameters": changed}).replace("7.0", "1e999", 1)
        self.assertError(D.request("PUT", "/v1/models/%s/parameters" % name, body=body), 400)
        self.assertError(D.put("/v1/models/%s/parameters" % name, {"parameters": [1, 2]}), 400,
                         "parameters")
        self.assertError(D.put("/v1/models/%s/parameters" % name, {"params": changed}), 400,
                         "parameters")
        self.assertUnchanged(name, before)

    def test_rejected_train_changes_nothing(self):
        name = self.new_model()
        D.ok("POST", "/v1/models/%s/train" % name, {"inputs": X, "targets": Y})
        before = self.snapshot(name)
        bad_tail = X + [[1.0, 2.0]]  # the third sample is short: must be found before any step
        r = D.post("/v1/models/%s/train" % name,
                   {"inputs": bad_tail, "targets": Y + [[0.0, 0.0]], "batch_size": 1})
        self.assertError(r, 400, "inputs")
        r = D.post("/v1/models/%s/train" % name,
                   {"inputs": X + X, "targets": Y + Y[:1], "batch_size": 1})
        self.assertError(r, 400, "targets", "inputs")
        self.assertUnchanged(name, before)

    def test_post_gradients_accumulates_nothing(self):
        name = self.new_model()
        before = self.snapshot(name)
        r = D.ok("POST", "/v1/models/%s/gradients" % name, {"inputs": X, "targets": Y})
        self.assertEqual(sorted(r["gradients"]), sorted(before["params"]))
        self.assertEqual(shape_of(r["input_gradient"]), [2, 3])
        self.assertTrue(is_number(r["loss"]))
        self.assertUnchanged(name, before)

    def test_checkpoint_endpoint(self):
        name = self.new_model()
        D.push(name, X, Y)
        D.step(name)
        r = D.post("/v1/models/%s/checkpoint" % name)
        self.assertIn(r.status, (200, 201, 204), r)


# ============================================================================ metrics
METRIC_LINE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*\})?'
    r' ([-+]?(?:[0-9.]+(?:[eE][-+]?[0-9]+)?|Inf|NaN))( [0-9]+)?$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """-> (types {family: type}, samples [(name, {label: value}, float)]); asserts format."""
    types, samples = {}, []
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 4 and parts[1] == "TYPE":
                types[parts[2]] = parts[3].strip()
            continue
        m = METRIC_LINE.match(line)
        if not m:
            raise AssertionError("not Prometheus text format: %r" % line)
        labels = dict(LABEL.findall(m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    seen = set()
    for name, labels, _ in samples:
        key = (name, tuple(sorted(labels.items())))
        if key in seen:  # Prometheus rejects an exposition with a repeated series
            raise AssertionError("duplicate series %s%s" % (name, dict(key[1])))
        seen.add(key)
    return types, samples


class TestMetrics(Base):
    def test_metrics_series(self):
        name = self.new_model()
        r = D.ok("POST", "/v1/models/%s/train" % name, {"inputs": X, "targets": Y, "epochs": 3})
        D.get("/v1/nothing-here")  # a 404 to count
        # An exchange is counted when it ends, after its answer has gone out (with its
        # latency), so a /metrics read on another connection can come first: read again
        # until the 404 is in (a bounded number of reads, not a time limit).
        for attempt in range(200):
            res = D.get("/metrics")
            self.assertEqual(res.status, 200)
            self.assertIn("text/plain", res.headers.get("content-type", ""))
            types, samples = parse_metrics(res.body.decode())
            # request counts by route and status
            counters = [s for s in samples if types.get(s[0].rsplit("_total", 1)[0]) == "counter"
                        or types.get(s[0]) == "counter"]
            by_status = [s for s in counters
                         if any(k in s[1] for k in ("status", "code", "status_code"))
                         and any(k in s[1] for k in ("route", "path", "handler", "endpoint"))]
            self.assertTrue(by_status, "no counter labelled by route and status")
            statuses = {s[1].get("status", s[1].get("code", s[1].get("status_code")))
                        for s in by_status}
            if "404" in statuses:
                break
            time.sleep(0.01)
        self.assertIn("200", statuses)
        self.assertIn("404", statuses)
        # latency histogram
        hist = [f for f, t in types.items() if t == "histogram"]
        self.assertTrue(hist, "no histogram family")
        h = hist[0]
        buckets = [s for s in samples if s[0] == h + "_bucket"]
        self.assertTrue(buckets and all("le" in s[1] for s in buckets))
        self.assertTrue(any(s[1]["le"] == "+Inf" for s in buckets))
        self.assertTrue(any(s[0] == h + "_sum" for s in samples))
        self.assertTrue(any(s[0] == h + "_count" for s in samples))
        # buckets are cumulative and +Inf equals _count, per label set
        series = {}
        for n_, labels, v in samples:
            if n_ == h + "_bucket":
                key = tuple(sorted((k, x) for k, x in labels.items() if k != "le"))
                series.setdefault(key, []).append((float(labels["le"]), v))
        counts = {tuple(sorted(l.items())): v for n_, l, v in samples if n_ == h + "_count"}
        for key, bs in series.items():
            bs.sort()
            vals = [v for _, v in bs]
            self.assertEqual(vals, sorted(vals), "histogram buckets not cumulative: %r" % (key,))
            self.assertEqual(bs[-1][0], float("inf"))
            self.assertEqual(bs[-1][1], counts.get(key), "+Inf bucket != _count for %r" % (key,))
        # models hosted
        nmodels = len(D.ok("GET", "/v1/models")["models"])
        hosted = [s for s in samples if "model" in s[0] and not s[1] and s[2] == nmodels]
        self.assertTrue(hosted, "no unlabelled *model* gauge equal to %d" % nmodels)
        # optimizer steps and last loss per model
        mine = [s for s in samples if name in s[1].values()]
        self.assertTrue(any("step" in s[0] and s[2] == 3 for s in mine),
                        "no per-model step series equal to 3: %r" % mine)
        self.assertTrue(any("loss" in s[0] and abs(s[2] - r["loss"]) <= 1e-5 + 1e-4 * abs(r["loss"])
                            for s in mine), "no per-model last-loss series: %r" % mine)


# ============================================================================ KServe v2
class TestKServe(Base):
    def test_server_metadata(self):
        r = D.ok("GET", "/v2")
        self.assertIsInstance(r.get("name"), str)
        self.assertIsInstance(r.get("version"), str)
        self.assertIsInstance(r.get("extensions", []), list)

    def test_model_metadata_ready_infer(self):
        name = self.new_model()
        md = D.ok("GET", "/v2/models/%s" % name)
        self.assertEqual(md["name"], name)
        # required by the Open Inference Protocol's model metadata response
        self.assertIsInstance(md["platform"], str)
        (inp,), (outp,) = md["inputs"], md["outputs"]
        self.assertEqual((inp["name"], inp["datatype"], inp["shape"][-1]), ("input", "FP32", 3))
        self.assertEqual((outp["name"], outp["datatype"], outp["shape"][-1]), ("output", "FP32", 2))
        self.assertEqual(D.get("/v2/models/%s/ready" % name).status, 200)
        r = D.ok("POST", "/v2/models/%s/infer" % name, {"inputs": [
            {"name": "input", "shape": [2, 3], "datatype": "FP32", "data": flatten(X)}]})
        self.assertEqual(r["model_name"], name)
        out = r["outputs"][0]
        self.assertEqual(out["name"], "output")
        self.assertEqual(out["datatype"], "FP32")
        self.assertEqual(out["shape"], [2, 2])
        want = flatten(D.predict(name, X))
        got = flatten(out["data"])
        self.assertEqual(len(got), 4)
        for a, b in zip(got, want):
            self.assertAlmostEqual(a, b, delta=1e-5 + 1e-4 * abs(b))
        # a request id comes back in the response
        r3 = D.ok("POST", "/v2/models/%s/infer" % name, {"id": "req-42", "inputs": [
            {"name": "input", "shape": [2, 3], "datatype": "FP32", "data": flatten(X)}]})
        self.assertEqual(r3.get("id"), "req-42")
        # nested data is allowed by the protocol too
        r2 = D.ok("POST", "/v2/models/%s/infer" % name, {"inputs": [
            {"name": "input", "shape": [2, 3], "datatype": "FP32", "data": X}]})
        self.assertEqual(flatten(r2["outputs"][0]["data"]), got)

    def test_infer_errors(self):
        name = self.new_model()
        before = self.snapshot(name)
        p = "/v2/models/%s/infer" % name
        cases = [
            ({"inputs": [{"name": "input", "shape": [2, 3], "datatype": "FP32", "data": [1, 2]}]},
             ("shape", "data")),
            ({"inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": [0] * 8}]},
             ("shape", "input")),
            ({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "BYTES", "data": ["a", "b", "c"]}]},
             ("datatype", "BYTES")),
            ({"inputs": "x"}, ("inputs",)),
            ({}, ("inputs",)),
        ]
        for body, names in cases:
            with self.subTest(body=body):
                self.assertError(D.post(p, body), 400, *names)
        self.assertUnchanged(name, before)


# ============================================================================ dashboard
def dashboard_assets(d, page, auth):
    """Fetches every same-origin asset the page references (script src, link href, img
    src); asserts each answers 200. -> [(path, text)]"""
    out = []
    for src in re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="([^"]+)"', page):
        if re.match(r"^[a-z]+:", src) or src.startswith("//") or src.startswith("#"):
            continue
        path = src if src.startswith("/") else "/" + src
        r = d.get(path, auth=auth)
        if r.status != 200:
            raise AssertionError("dashboard asset %s -> %r" % (path, r))
        out.append((path, r.body.decode("utf-8", "replace")))
    return out


class TestDashboard(Base):
    def test_dashboard_html(self):
        r = D.get("/")
        self.assertEqual(r.status, 200)
        self.assertIn("text/html", r.headers.get("content-type", ""))
        page = r.body.decode("utf-8")
        self.assertIn("<html", page.lower())
        # it polls the loss endpoint with since=K, inline or in a script it loads
        texts = [page]
        for src, body in dashboard_assets(D, page, auth=True):
            texts.append(body)
        blob = "\n".join(texts)
        self.assertIn("/loss", blob)
        self.assertIn("since", blob)
        self.assertIn("/v1/models", blob)


if __name__ == "__main__":
    dm.run_tests()
