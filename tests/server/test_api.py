#!/usr/bin/python3
"""easytorchd HTTP contract: every endpoint, every error status, names, all-or-nothing,
auth, body limit, metrics, KServe v2, dashboard. Usage: test_api.py PATH/TO/easytorchd"""

import json
import os
import re
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import Daemon, DaemonTestCase, flatten, shape_of  # noqa: E402

D = None


def setUpModule():
    global D
    D = Daemon()
    D.start()
    DaemonTestCase.daemon = D


def tearDownModule():
    if D is not None:
        D.cleanup()


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


# ============================================================================ bad input
class TestBadInput(Base):
    def test_bad_json(self):
        for body in ['{"name": ', '{name: "x"}', "", "nul", '{"a":1,}', "\xff\xfe"]:
            with self.subTest(body=body):
                r = D.request("POST", "/v1/models", body=body.encode("latin-1"))
                self.assertError(r, 400, "json", "body", "parse")

    def test_trailing_garbage(self):
        name = self.new_model()
        before = self.snapshot(name)
        good = json.dumps({"inputs": X, "targets": Y})
        for tail in [" x", "}", " {}", "\x00", "[1]"]:
            with self.subTest(tail=tail):
                r = D.request("POST", "/v1/models/%s/batches" % name, body=good + tail)
                self.assertError(r, 400, "json", "trailing", "garbage", "body", "parse")
        self.assertUnchanged(name, before)
        r = D.request("POST", "/v1/models", body=json.dumps(mlp_spec(fresh())) + "garbage")
        self.assertError(r, 400, "json", "trailing", "garbage", "body", "parse")

    def test_nan_and_overflow_rejected(self):
        name = self.new_model()
        before = self.snapshot(name)
        cases = [
            ('{"inputs": [[NaN, 1, 2]], "targets": [[0, 0]]}', ("json", "inputs", "nan", "finite")),
            ('{"inputs": [[Infinity, 1, 2]], "targets": [[0, 0]]}', ("json", "inputs", "inf", "finite")),
            ('{"inputs": [[1e999, 1, 2]], "targets": [[0, 0]]}', ("inputs",)),
            ('{"inputs": [[1, 1, 2]], "targets": [[-1e999, 0]]}', ("targets",)),
        ]
        for body, names in cases:
            with self.subTest(body=body):
                r = D.request("POST", "/v1/models/%s/batches" % name, body=body)
                self.assertError(r, 400, *names)
        r = D.request("POST", "/v1/models/%s/predict" % name, body='{"inputs": [[1e999, 0, 0]]}')
        self.assertError(r, 400, "inputs")
        self.assertUnchanged(name, before)
        # a non-finite hyper-parameter
        r = D.request("POST", "/v1/models", body=json.dumps(mlp_spec(fresh())).replace(
            '"lr": 0.1', '"lr": 1e999'))
        self.assertError(r, 400, "lr")

    def test_body_not_an_object(self):
        for body in ["[1, 2]", "3", '"x"', "null"]:
            with self.subTest(body=body):
                self.assertError(D.request("POST", "/v1/models", body=body), 400)

    def test_define_wrong_types(self):
        cases = [
            ({"name": 5}, "name"),
            ({"layers": "Linear"}, "layers"),
            ({"layers": []}, "layers"),
            ({"layers": first({"type": "Linear", "in_features": "3", "out_features": 4})}, "in_features"),
            ({"layers": first({"type": "Linear", "in_features": 3, "out_features": 0})}, "out_features"),
            ({"layers": first({"type": "Linear", "in_features": -3, "out_features": 4})}, "in_features"),
            ({"layers": first({"type": "Linear", "in_features": 2.5, "out_features": 4})}, "in_features"),
            ({"layers": first({"type": "Linear", "in_features": 3})}, "out_features"),
            ({"layers": first({"type": "Linear", "in_features": 3, "out_features": 4, "bias": "yes"})}, "bias"),
            ({"layers": first({"in_features": 3, "out_features": 4})}, "type"),
            ({"layers": middle({"type": "Dropout", "p": 1.5})}, "p"),
            ({"layers": middle({"type": "Dropout", "p": "half"})}, "p"),
            ({"layers": middle({"type": "LeakyReLU", "negative_slope": "x"})}, "negative_slope"),
            ({"layers": middle({"type": "Softmax", "dim": "last"})}, "dim"),
            ({"layers": middle("Tanh")}, "layers"),
            ({"loss": {"type": "MSELoss", "reduction": "median"}}, "reduction"),
            ({"loss": 3}, "loss"),
            ({"optimizer": {"type": "SGD", "lr": "fast"}}, "lr"),
            ({"optimizer": {"type": "SGD", "lr": -0.1}}, "lr"),
            ({"optimizer": {"type": "SGD", "lr": 0.1, "momentum": [0.9]}}, "momentum"),
            ({"optimizer": {"type": "SGD", "lr": 0.1, "nesterov": True}}, "nesterov"),
            ({"optimizer": {"type": "Adam", "betas": [0.9]}}, "betas"),
            ({"optimizer": {"type": "Adam", "betas": [0.9, 1.5]}}, "betas"),
            ({"optimizer": {"type": "Adam", "amsgrad": 1.5}}, "amsgrad"),
            ({"optimizer": "SGD"}, "optimizer", "lr"),
            ({"scheduler": {"type": "StepLR"}}, "step_size"),
            ({"scheduler": {"type": "StepLR", "step_size": "10"}}, "step_size"),
            ({"scheduler": {"type": "CosineAnnealingLR"}}, "T_max"),
            ({"seed": "zero"}, "seed"),
        ]
        for over, *names in cases:
            with self.subTest(over=over):
                name = fresh()
                spec = mlp_spec(name)
                spec.update(over)
                r = D.post("/v1/models", spec)
                self.assertError(r, 400, *names)
                self.assertError(D.get("/v1/models/%s" % name), 404)

    def test_unknown_types(self):
        cases = [
            ({"layers": [{"type": "Conv9d"}]}, "Conv9d"),
            ({"layers": [{"type": "linear", "in_features": 3, "out_features": 2}]}, "linear"),
            ({"loss": {"type": "HingeLossX"}}, "HingeLossX"),
            ({"loss": "HingeLossX"}, "HingeLossX"),
            ({"optimizer": {"type": "LBFGSX", "lr": 1}}, "LBFGSX"),
            ({"scheduler": {"type": "WarpLR"}}, "WarpLR"),
        ]
        for over, bad in cases:
            with self.subTest(over=over):
                r = D.post("/v1/models", mlp_spec(fresh(), **over))
                self.assertError(r, 400, bad)

    def test_missing_required_fields(self):
        for field in ["name", "layers", "loss", "optimizer"]:
            with self.subTest(field=field):
                spec = mlp_spec(fresh())
                del spec[field]
                self.assertError(D.post("/v1/models", spec), 400, field)

    def test_layer_shape_mismatch_at_definition(self):
        r = D.post("/v1/models", mlp_spec(fresh(), layers=[
            {"type": "Linear", "in_features": 3, "out_features": 4}, {"type": "ReLU"},
            {"type": "Linear", "in_features": 5, "out_features": 2}]))
        self.assertError(r, 400, "in_features", "layers")

    def test_shape_mismatch_in_requests(self):
        name = self.new_model()
        before = self.snapshot(name)
        p = "/v1/models/%s/" % name
        cases = [
            ("predict", {"inputs": [[1.0, 2.0]]}, "inputs"),
            ("predict", {"inputs": [1.0, 2.0, 3.0, 4.0]}, "inputs"),
            ("predict", {"inputs": [[1.0, 2.0, 3.0], [1.0]]}, "inputs"),
            ("predict", {"inputs": "abc"}, "inputs"),
            ("predict", {"inputs": [["a", 2.0, 3.0]]}, "inputs"),
            ("predict", {}, "inputs"),
            ("predict", {"inputs": {"shape": [2, 3], "data": [1, 2, 3]}}, "inputs", "data", "shape"),
            ("batches", {"inputs": X, "targets": [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]}, "targets"),
            ("batches", {"inputs": X, "targets": [[1.0, 0.0]]}, "targets"),
            ("batches", {"inputs": X}, "targets"),
            ("batches", {"targets": Y}, "inputs"),
            ("batches", {"inputs": [[1.0, 2.0], [3.0, 4.0]], "targets": Y}, "inputs"),
            ("train", {"inputs": X, "targets": [[1.0], [2.0]]}, "targets"),
            ("train", {"inputs": X, "targets": Y, "epochs": 0}, "epochs"),
            ("train", {"inputs": X, "targets": Y, "epochs": "2"}, "epochs"),
            ("train", {"inputs": X, "targets": Y, "batch_size": 0}, "batch_size"),
            ("train", {"inputs": X, "targets": Y, "batch_size": -1}, "batch_size"),
            ("train", {"inputs": X, "targets": Y, "shuffle": "no"}, "shuffle"),
            ("gradients", {"inputs": X, "targets": [[1.0, 0.0, 0.0]]}, "targets"),
            ("gradients", {"inputs": [[1.0]], "targets": Y}, "inputs"),
        ]
        for ep, body, *names in cases:
            with self.subTest(endpoint=ep, body=body):
                self.assertError(D.post(p + ep, body), 400, *names)
        self.assertUnchanged(name, before)

    def test_class_index_targets_checked(self):
        name = fresh()
        D.create(mlp_spec(name, loss="CrossEntropyLoss"))
        before = self.snapshot(name)
        for t in [[0, 2], [0, -1], [0.5, 1], [0], [[0], [1]]]:
            with self.subTest(targets=t):
                r = D.post("/v1/models/%s/batches" % name, {"inputs": X, "targets": t})
                self.assertError(r, 400, "targets")
        self.assertUnchanged(name, before)

    def test_invalid_names(self):
        bad = ["../evil", "..", "a..b", "a/b", "/abs", "-lead", "_lead", ".hidden", "a b",
               "x" * 65, "", "caf\u00e9", "a\\b", "a\x00b", "a%2Fb"]
        for n in bad:
            with self.subTest(name=n):
                self.assertError(D.post("/v1/models", mlp_spec(n)), 400, "name")
        # nothing was written outside the data dir
        self.assertEqual(sorted(os.listdir(D.tmp)),
                         sorted(f for f in os.listdir(D.tmp) if f == "data" or f.startswith("stderr")))
        self.assertFalse(os.path.exists(os.path.join(D.tmp, "evil")))
        # the limits themselves are allowed
        for n in ["x" * 64, "A", "a.b-c_d", "9lives"]:
            with self.subTest(name=n):
                self.assertEqual(D.create(mlp_spec(n))["name"], n)

    def test_traversal_in_path(self):
        for path in ["/v1/models/../../etc/passwd", "/v1/models/..%2F..%2Fetc",
                     "/v1/models/%2e%2e", "/v1/models/..", "/v1/models/%00x",
                     "/v1/models/" + "y" * 300]:
            with self.subTest(path=path):
                r = D.get(path)
                self.assertIn(r.status, (400, 404), r)
                r.error()


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
        statuses = {s[1].get("status", s[1].get("code", s[1].get("status_code"))) for s in by_status}
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


# ============================================================================ robustness
class TestRobustness(Base):
    def test_deep_nesting_rejected(self):
        name = self.new_model()
        for depth in (100, 100000):
            with self.subTest(depth=depth):
                body = '{"inputs": ' + "[" * depth + "1" + "]" * depth + "}"
                self.assertError(D.request("POST", "/v1/models/%s/predict" % name, body=body),
                                 (400, 413))

    def test_absurd_shapes_rejected(self):
        name = self.new_model()
        before = self.snapshot(name)
        for shape in ([4294967296, 4294967296, 3], [-1, 3], [2 ** 62, 3], [0, 3]):
            with self.subTest(shape=shape):
                r = D.post("/v1/models/%s/predict" % name, {"inputs": {"shape": shape, "data": [1, 2, 3]}})
                self.assertError(r, 400, "inputs", "shape", "data")
        self.assertError(D.post("/v1/models/%s/batches" % name, {"inputs": [], "targets": []}),
                         400, "inputs", "targets", "empty")
        self.assertUnchanged(name, before)

    def test_huge_model_rejected_not_allocated(self):
        r = D.post("/v1/models", mlp_spec(fresh(), layers=[
            {"type": "Linear", "in_features": 1000000, "out_features": 1000000}]))
        self.assertError(r, (400, 413), "in_features", "out_features", "parameters", "large")
        r = D.post("/v1/models", mlp_spec(fresh(), layers=[
            {"type": "Linear", "in_features": 2 ** 40, "out_features": 2 ** 40}]))
        self.assertError(r, (400, 413), "in_features", "out_features", "parameters", "large")
        self.assertEqual(D.get("/healthz").status, 200)

    def test_float32_overflow_rejected(self):
        # 1e300 is a finite JSON number but not a finite float32
        name = self.new_model()
        before = self.snapshot(name)
        r = D.post("/v1/models/%s/batches" % name, {"inputs": [[1e300, 0.0, 0.0]], "targets": [[0.0, 0.0]]})
        self.assertError(r, 400, "inputs")
        r = D.post("/v1/models/%s/batches" % name, {"inputs": [[1.0, 0.0, 0.0]], "targets": [[0.0, -1e39]]})
        self.assertError(r, 400, "targets")
        self.assertUnchanged(name, before)

    def test_diverging_training_still_answers_strict_json(self):
        # lr so large that parameters overflow: every response must still be valid JSON
        # (JSON has no inf/nan) and the daemon must stay up
        name = fresh()
        D.create(mlp_spec(name, optimizer={"type": "SGD", "lr": 1e30}))
        for k in range(6):
            # the default "nonfinite": "skip" answers 200 (a skipped step says so)
            r = D.post("/v1/models/%s/train" % name, {"inputs": X, "targets": Y})
            self.assertEqual(r.status, 200, r)
            if k:
                self.assertIs(r.json().get("skipped"), True, r)
        for path in ("", "/parameters", "/gradients", "/loss"):
            with self.subTest(path=path):
                r = D.get("/v1/models/%s%s" % (name, path))
                self.assertEqual(r.status, 200, r)
                r.json()
        r = D.post("/v1/models/%s/predict" % name, {"inputs": X})
        self.assertEqual(r.status, 200, r)  # the overflowing steps were skipped: finite outputs
        self.assertTrue(all(abs(v) < 3.5e38 for v in flatten(r.json()["outputs"])), r)
        r = D.get("/v1/models")
        self.assertEqual(r.status, 200, r)
        r.json()
        metrics = D.get("/metrics")
        self.assertEqual(metrics.status, 200)
        parse_metrics(metrics.body.decode())

    def test_error_messages_escape_user_text(self):
        for bad in ['Bad"Type', "Bad\nType", "Bad\\Type", "Bad\u2603"]:
            with self.subTest(type=bad):
                r = D.post("/v1/models", mlp_spec(fresh(), layers=[{"type": bad}]))
                msg = self.assertError(r, 400)
                self.assertIn(bad, msg)
        r = D.get('/v1/models/x%22y%0Az')
        self.assertIn(r.status, (400, 404), r)
        r.error()

    def test_keep_alive_connection_reuse(self):
        import http.client
        name = self.new_model()
        conn = http.client.HTTPConnection(D.host, D.port, timeout=dm.HTTP_TIMEOUT)
        try:
            for i in range(30):
                body = json.dumps({"inputs": X})
                conn.request("POST", "/v1/models/%s/predict" % name, body=body,
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                data = r.read()
                self.assertEqual(r.status, 200, data)
                json.loads(data)
                conn.request("GET", "/v1/nothing")
                r = conn.getresponse()
                r.read()
                self.assertEqual(r.status, 404)
        finally:
            conn.close()

    def test_chunked_request_body(self):
        import http.client
        name = self.new_model()
        want = D.predict(name, X)
        body = json.dumps({"inputs": X}).encode()
        conn = http.client.HTTPConnection(D.host, D.port, timeout=dm.HTTP_TIMEOUT)
        try:
            conn.request("POST", "/v1/models/%s/predict" % name,
                         body=iter([body[:7], body[7:20], body[20:]]),
                         headers={"Content-Type": "application/json",
                                  "Transfer-Encoding": "chunked"}, encode_chunked=True)
            r = conn.getresponse()
            data = r.read()
        finally:
            conn.close()
        self.assertEqual(r.status, 200, data)
        self.assertEqual(json.loads(data)["outputs"], want)

    def test_long_url(self):
        r = D.get("/v1/models/" + "a" * 20000)
        self.assertIn(r.status, (400, 404, 414, 431), r)
        self.assertEqual(D.get("/healthz").status, 200)

    def test_metrics_route_labels_are_bounded(self):
        # route labels must be route patterns, not raw paths (else every bad URL or model
        # name becomes a new time series)
        for i in range(5):
            D.get("/no/such/path/%d-zzqq" % i)
            D.get("/v1/models/ghost-zzqq%d" % i)
        text = D.get("/metrics").body.decode()
        self.assertNotIn("zzqq", text)


# ============================================================================ limits, auth
class TestBodyLimit(DaemonTestCase):
    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(extra_args=["--max-body", "4096"]).start()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.cleanup()

    def test_413_over_max_body(self):
        d = self.daemon
        name = fresh()
        d.create(mlp_spec(name))
        before = d.params(name)
        big = {"inputs": [[0.123456789, 0.5, 0.25]] * 400, "targets": [[0.5, 0.5]] * 400}
        self.assertGreater(len(json.dumps(big)), 4096)
        r = d.post("/v1/models/%s/batches" % name, big)
        self.assertError(r, 413)
        self.assertEqual(d.params(name), before)
        self.assertEqual(d.model(name)["pending_batches"], 0)
        # a body just under the limit works
        small = {"inputs": [[0.5, 0.5, 0.25]] * 10, "targets": [[0.5, 0.5]] * 10}
        self.assertEqual(d.post("/v1/models/%s/batches" % name, small).status, 200)
        self.assertEqual(d.get("/healthz").status, 200)


class TestAuth(DaemonTestCase):
    TOKEN = "s3cret-T0ken"

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(token=cls.TOKEN).start()

    @classmethod
    def tearDownClass(cls):
        cls.daemon.cleanup()

    def test_missing_and_wrong_token_401(self):
        d = self.daemon
        name = fresh()
        d.create(mlp_spec(name))
        before = d.params(name)
        for hdrs in [{}, {"Authorization": "Bearer nope"},
                     {"Authorization": "Bearer " + self.TOKEN + "x"},
                     {"Authorization": "Bearer " + self.TOKEN[:-1]},
                     {"Authorization": "Basic " + self.TOKEN},
                     {"Authorization": self.TOKEN}, {"Authorization": "Bearer "}]:
            for method, path, body in [("GET", "/v1/models", None),
                                       ("GET", "/v1/models/%s" % name, None),
                                       ("POST", "/v1/models/%s/predict" % name, {"inputs": X}),
                                       ("PUT", "/v1/models/%s/parameters" % name, {"parameters": {}}),
                                       ("POST", "/v1/models/%s/train" % name, {"inputs": X, "targets": Y}),
                                       ("DELETE", "/v1/models/%s" % name, None),
                                       ("POST", "/v1/models", mlp_spec(fresh())),
                                       ("GET", "/metrics", None), ("GET", "/v2", None),
                                       ("POST", "/v2/models/%s/infer" % name, {"inputs": []}),
                                       ("GET", "/v1/models/nosuch", None)]:
                with self.subTest(headers=hdrs, path=path, method=method):
                    r = d.request(method, path, obj=body, headers=hdrs, auth=False)
                    self.assertError(r, 401, "token", "authorization", "unauthorized")
        self.assertEqual(d.params(name), before)
        self.assertEqual(d.model(name)["step"], 0)

    def test_health_and_dashboard_exempt(self):
        d = self.daemon
        for path in ["/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/"]:
            with self.subTest(path=path):
                self.assertEqual(d.get(path, auth=False).status, 200)
        # the dashboard's static files too (the page itself then calls the API with a token)
        dashboard_assets(d, d.get("/", auth=False).body.decode(), auth=False)

    def test_correct_token_accepted(self):
        d = self.daemon
        self.assertEqual(d.get("/v1/models").status, 200)
        self.assertEqual(d.get("/metrics").status, 200)


class TestStartupOptions(unittest.TestCase):
    def _check_token_daemon(self, d, token):
        try:
            d.start()
            self.assertEqual(d.get("/v1/models", auth=False).status, 401)
            r = d.get("/v1/models", headers={"Authorization": "Bearer " + token}, auth=False)
            self.assertEqual(r.status, 200, r)
        finally:
            d.cleanup()

    def test_token_file_trailing_newline_ignored(self):
        self._check_token_daemon(Daemon(token="abc123", token_file_newline=True), "abc123")

    def test_token_from_env(self):
        self._check_token_daemon(Daemon(env={"EASYTORCH_TOKEN": "envtok"}), "envtok")

    def test_listen_from_env(self):
        d = Daemon(use_listen_flag=False, env={"EASYTORCH_LISTEN": "127.0.0.1:0"})
        try:
            d.start()
            self.assertEqual(d.get("/healthz").status, 200)
        finally:
            d.cleanup()

    def test_refuses_non_loopback_without_token(self):
        d = Daemon(listen="0.0.0.0:0")
        try:
            d.spawn()
            try:
                code = d.proc.wait(timeout=dm.START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.fail("easytorchd kept running on 0.0.0.0 without a token; log:\n" + d.log_tail())
            self.assertNotEqual(code, 0)
            self.assertIn("token", d.log().lower())
        finally:
            d.cleanup()

    def test_non_loopback_with_insecure_starts(self):
        d = Daemon(listen="0.0.0.0:0", extra_args=["--insecure"])
        try:
            d.start()
            self.assertEqual(d.get("/healthz").status, 200)
        finally:
            d.cleanup()

    def test_short_help_and_version_flags(self):
        for flags in (["-h"], ["--help"]):
            p = subprocess.run([dm.daemon_path()] + flags, capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, flags)
            self.assertIn("usage: easytorchd", p.stdout)
            self.assertIn("--max-body", p.stdout)
        for flags in (["-V"], ["--version"]):
            p = subprocess.run([dm.daemon_path()] + flags, capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, flags)
            self.assertRegex(p.stdout, r"^easytorchd \d+\.\d+\.\d+\n$")
        p = subprocess.run([dm.daemon_path(), "-x"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn('unknown argument "-x"', p.stderr)

    def test_startup_lines_say_where_to_go(self):
        d = Daemon()
        try:
            d.start()
            url = "http://127.0.0.1:%d" % d.port
            log = d.log()
            self.assertIn("easytorchd: dashboard %s/\n" % url, log)
            self.assertIn("easytorchd: try  curl -s %s/v1/models\n" % url, log)
            # the curl it suggests works
            p = subprocess.run(["curl", "-s", url + "/v1/models"], capture_output=True, text=True)
            self.assertEqual(p.stdout, '{"models":[]}\n')
        finally:
            d.cleanup()
        d = Daemon(token="t0k")
        try:
            d.start()
            self.assertIn('try  curl -s -H "Authorization: Bearer <token>" http://127.0.0.1:%d/v1/models'
                          % d.port, d.log())
        finally:
            d.cleanup()

    def test_sigterm_exits_zero(self):
        d = Daemon()
        try:
            d.start()
            self.assertEqual(d.stop(), 0)
        finally:
            d.cleanup()


if __name__ == "__main__":
    dm.run_tests()
