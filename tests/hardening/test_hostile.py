"""Hostile-input corpus: hundreds of malformed requests against easytorchd.

Every request must get the right 4xx with an {"error": "<message>"} body, the daemon must
keep serving, and no model may change: parameters, step, pending batches, accumulated
gradients, loss history, the model list and the data directory are compared before and
after each group of requests.

  /usr/bin/python3 tests/hardening/test_hostile.py BUILD/src/server/easytorchd
"""
import json
import os
import struct
import unittest

from hlib import (CLS_SPEC, REG_SPEC, Daemon, cls_batch, parse_raw_response, raw_exchange,
                  reg_batch, run_tests, spec)

MAX_BODY = 65536
R = "/v1/models/reg"
C = "/v1/models/cls"
SENT = [0]  # hostile requests sent, for the closing summary


def setUpModule():
    d = Daemon(extra_args=["--max-body", str(MAX_BODY), "--max-depth", "32"])
    d.start()
    HostileTest.daemon = d
    d.create(spec(REG_SPEC, "reg", seed=1))
    d.create(spec(CLS_SPEC, "cls", seed=2))
    for k in range(3):
        x, y = reg_batch(k)
        d.ok("POST", R + "/train", {"inputs": x, "targets": y})
        x, y = cls_batch(k)
        d.ok("POST", C + "/train", {"inputs": x, "targets": y})
    # a pending batch: a /step slipped through by a bad request would show
    x, y = reg_batch(9)
    d.push("reg", x, y)


def tearDownModule():
    print("hostile requests sent: %d" % SENT[0])
    HostileTest.daemon.cleanup()


def ensure_models(d):
    """Puts back a model an earlier failing test destroyed, so later groups still run."""
    for name, base, batch in (("reg", REG_SPEC, reg_batch), ("cls", CLS_SPEC, cls_batch)):
        if d.get("/v1/models/" + name).status == 404:
            d.create(spec(base, name, seed=1))
            x, y = batch(0)
            d.ok("POST", "/v1/models/%s/train" % name, {"inputs": x, "targets": y})


def snapshot(d):
    snap = {"list": d.ok("GET", "/v1/models"),
            "files": sorted(f for f in os.listdir(d.data_dir) if not f.startswith("."))}
    for name in ("reg", "cls"):
        base = "/v1/models/" + name
        snap[name] = {"model": d.ok("GET", base), "params": d.ok("GET", base + "/parameters"),
                      "loss": d.ok("GET", base + "/loss"), "grads": d.ok("GET", base + "/gradients")}
    return snap


X1 = [[0.1, 0.2, 0.3]]
Y1 = [[0.5, -0.5]]
VALID = {
    "predict": (R + "/predict", {"inputs": X1}),
    "batches": (R + "/batches", {"inputs": X1, "targets": Y1}),
    "train": (R + "/train", {"inputs": X1, "targets": Y1, "epochs": 1}),
    "gradients": (R + "/gradients", {"inputs": X1, "targets": Y1}),
    "define": ("/v1/models", spec(REG_SPEC, "newmodel")),
    "infer": ("/v2/models/reg/infer", {"inputs": [{"name": "input", "shape": [1, 3],
                                                    "datatype": "FP32", "data": [1, 2, 3]}]}),
}

# Bad values for a tensor field, as JSON text.
BAD_TENSORS = [
    '"x"', '{}', 'true', 'null', '5', '[]', '[[]]', '[[], []]', '[[1, "2", 3]]', '[[1, null, 3]]',
    '[[1, true, 3]]', '[[1, 2, 3], [1, 2]]', '[[1, 2, 3], 4]', '[1, [2, 3, 4]]',
    '[[1, 2, 3], [[1, 2, 3]]]', '[[1, 2]]', '[[1, 2, 3, 4]]', '[[NaN, 2, 3]]', '[[Infinity, 2, 3]]',
    '[[-Infinity, 2, 3]]', '[[1e999, 2, 3]]', '[[-1e999, 2, 3]]', '[[1e39, 2, 3]]',
    '[[3.5e38, 2, 3]]', '[[01, 2, 3]]', '[[1., 2, 3]]', '[[.5, 2, 3]]', '[[+1, 2, 3]]',
    '[[0x10, 2, 3]]', '[[1 2 3]]', '[[1, 2, 3],]', '[[1,, 2, 3]]', '[[1, 2, 3]',
    '{"shape": [1, 3], "data": [1, 2]}', '{"shape": [1, -3], "data": [1, 2, 3]}',
    '{"shape": [1000000000000, 1000000000000], "data": [1]}',
    '{"shape": [2, 3], "data": [1, 2, 3, 4, 5, 6, 7]}', '{"shape": "13", "data": [1, 2, 3]}',
    '{"shape": [1, 3]}', '{"data": [1, 2, 3]}', '{"shape": [1, 3], "data": [1, 2, 3], "x": 1}',
    '{"shape": [1.5, 2], "data": [1, 2, 3]}', '{"shape": [1, 3], "data": [[1, 2, 3]]}',
    '{"shape": [1, 3], "data": [1, "2", 3]}', '{"shape": [1, 3], "data": [1, 1e999, 3]}',
    '{"shape": [1,1,1,1,1,1,1,1,1,1,1,3], "data": [1, 2, 3]}',
    '[' * 9 + '1, 2, 3' + ']' * 9, '[' * 40 + '1' + ']' * 40, '[' * 5000 + ']' * 5000,
]
BAD_CLS_TARGETS = ['[3]', '[-1]', '[1.5]', '["0"]', '[[0]]', '[0, 1]', '[]', '[true]', '0',
                   '[1e999]', '[9007199254740993]',
                   # [[0, 1, 2]] is a valid probability target for 3 classes (torch takes it);
                   # probabilities of the wrong shape are not
                   '[[0, 1]]', '[[0, 1, 2, 3]]', '[[0.5, 0.5, NaN]]']
BAD_REG_TARGETS = ['[[1, 2, 3]]', '[[1]]', '[[1, 2], [3, 4]]', '"y"', '[[1, NaN]]', '[[1, 1e999]]',
                   '[[1, 2]', '{"shape": [1, 2], "data": [1]}']


def j(v):
    return json.dumps(v)


class HostileTest(unittest.TestCase):
    daemon = None

    def setUp(self):
        self.d = type(self).daemon
        ensure_models(self.d)
        self.before = snapshot(self.d)
        self.bad = []

    def tearDown(self):
        self.assertTrue(self.d.alive(), "easytorchd died; log:\n" + self.d.log_tail())

    def send(self, label, method, path, body=None, expect=(400,), ctype="application/json",
             headers=None):
        """One hostile request over http.client; checks status and error body."""
        SENT[0] += 1
        if isinstance(body, str):
            body = body.encode("utf-8", "surrogatepass")
        r = self.d.request(method, path, body=body, content_type=ctype if body is not None
                           else None, headers=headers)
        if r.status not in expect:
            self.bad.append("%s: %s %s -> %d (expected %s): %r" % (label, method, path, r.status,
                                                                 expect, r.body[:200]))
            return r
        try:
            msg = r.error()
            if not msg.strip():
                self.bad.append("%s: empty error message" % label)
        except AssertionError as e:
            self.bad.append("%s: %s" % (label, e))
        if SENT[0] % 25 == 0 and self.d.get("/healthz").status != 200:
            self.bad.append("%s: /healthz failed afterwards" % label)
        return r

    def check(self, n_min):
        """Nothing changed, the daemon serves, no request got a wrong answer."""
        self.assertEqual(self.d.get("/healthz").status, 200)
        after = snapshot(self.d)
        for key in self.before:
            self.assertEqual(self.before[key], after[key], "state of %s changed" % key)
        self.assertFalse(self.bad, "%d wrong answers:\n%s" % (len(self.bad), "\n".join(self.bad[:40])))
        self.assertGreaterEqual(self.sent, n_min)

    # ---------------------------------------------------------------- groups
    def test_truncated_bodies(self):
        self.sent = 0
        for ep, (path, obj) in sorted(VALID.items()):
            text = json.dumps(obj)
            cuts = sorted(set([0, 1, 2] + [len(text) * i // 14 for i in range(1, 14)] +
                              [len(text) - 1]))
            for cut in cuts:
                self.send("%s truncated at %d" % (ep, cut), "POST", path, text[:cut],
                          expect=(400, 404) if ep == "infer" else (400,))
                self.sent += 1
        self.check(80)

    def test_bad_inputs(self):
        self.sent = 0
        for t in BAD_TENSORS:
            for ep in ("predict", "batches", "train", "gradients"):
                path = VALID[ep][0]
                body = '{"inputs": %s%s}' % (t, "" if ep == "predict" else ', "targets": ' + j(Y1))
                self.send("%s inputs=%s" % (ep, t[:40]), "POST", path, body, expect=(400, 413))
                self.sent += 1
        self.check(180)

    def test_bad_targets(self):
        self.sent = 0
        for t in BAD_REG_TARGETS:
            for ep in ("batches", "train", "gradients"):
                body = '{"inputs": %s, "targets": %s}' % (j(X1), t)
                self.send("reg %s targets=%s" % (ep, t), "POST", R + "/" + ep, body)
                self.sent += 1
        x, _ = cls_batch(0, rows=1)
        for t in BAD_CLS_TARGETS:
            for ep in ("batches", "train", "gradients"):
                body = '{"inputs": %s, "targets": %s}' % (j(x), t)
                self.send("cls %s targets=%s" % (ep, t), "POST", C + "/" + ep, body)
                self.sent += 1
        # inputs and targets disagree on the batch size
        x2, y2 = reg_batch(1, rows=3)
        for ep in ("batches", "train", "gradients"):
            self.send("reg %s 3 inputs 2 targets" % ep, "POST", R + "/" + ep,
                      j({"inputs": x2, "targets": y2[:2]}))
            self.send("reg %s 2 inputs 3 targets" % ep, "POST", R + "/" + ep,
                      j({"inputs": x2[:2], "targets": y2}))
            self.sent += 2
        self.check(60)

    def test_bad_fields(self):
        self.sent = 0
        x, y = X1, Y1
        bodies = [
            '{"inputs": %s, "targets": %s, "epochs": 0}', '{"inputs": %s, "targets": %s, "epochs": -1}',
            '{"inputs": %s, "targets": %s, "epochs": 1.5}', '{"inputs": %s, "targets": %s, "epochs": "2"}',
            '{"inputs": %s, "targets": %s, "epochs": true}', '{"inputs": %s, "targets": %s, "epochs": []}',
            '{"inputs": %s, "targets": %s, "epochs": 1e999}',
            '{"inputs": %s, "targets": %s, "epochs": 1000000000000}',
            '{"inputs": %s, "targets": %s, "batch_size": 0}', '{"inputs": %s, "targets": %s, "batch_size": -2}',
            '{"inputs": %s, "targets": %s, "batch_size": 2.5}', '{"inputs": %s, "targets": %s, "batch_size": "1"}',
            '{"inputs": %s, "targets": %s, "shuffle": "yes"}', '{"inputs": %s, "targets": %s, "shuffle": 1}',
            '{"inputs": %s, "targets": %s, "epoch": 1}', '{"inputs": %s, "targets": %s, "lr": 0.1}',
            '{"inputs": %s, "targets": %s, "inputs": [[1, 2, 3]]}',
            '{"inputs": %s, "targets": %s, "targets": [[1, 2]]}',
            '{"inputs": %s, "targets": %s} trailing', '{"inputs": %s, "targets": %s}}',
            '{"inputs": %s, "targets": %s}{}', '{"inputs": %s, "targets": %s},',
            '{"inputs": %s, "targets": %s}\x00', '[{"inputs": %s, "targets": %s}]',
            '{"inputs": %s, "targets": %s, "\\u0000": 1}', '{"inputs": %s, "targets": %s, "k": "\\u0000"}',
            '{"inputs": %s, "targets": %s, "k": "\\ud800"}',
            '{"inputs": %s}', '{"targets": %s}%s', '{"Inputs": %s, "targets": %s}',
        ]
        for b in bodies:
            body = b % (j(x), j(y)) if b.count("%s") == 2 else b % j(x) if b.count("%s") == 1 else b
            if b == '{"targets": %s}%s':
                body = '{"targets": %s}' % j(y)
            for ep in ("train",) if ("epoch" in b or "batch_size" in b or "shuffle" in b) else (
                    "batches", "train", "gradients"):
                self.send("%s %s" % (ep, body[:60]), "POST", R + "/" + ep, body)
                self.sent += 1
        for b in ['{"inputs": %s, "x": 1}' % j(x), '{"inputs": %s, "inputs": %s}' % (j(x), j(x)),
                  '{"input": %s}' % j(x), '{}', '[]', '"inputs"', '42', 'null', 'true', '',
                  '{"inputs": %s} x' % j(x), '\xff\xfe{}', '{"inputs": "\xff"}',
                  '{"inputs": %s, }' % j(x), "{'inputs': [[1, 2, 3]]}"]:
            self.send("predict %s" % b[:60], "POST", R + "/predict", b)
            self.sent += 1
        for b in ['{"x": 1}', 'garbage', '[]', '{"steps": 2}', '{}{}', '{"a":1,"a":1}']:
            self.send("step %s" % b, "POST", R + "/step", b)
            self.sent += 1
        self.check(80)

    def test_bad_specs(self):
        self.sent = 0
        lin = {"type": "Linear", "in_features": 3, "out_features": 2}

        def mk(**kw):
            s = spec(REG_SPEC, "hostile")
            s.update(kw)
            return s

        specs = [
            mk(layers=[{"type": "LSTM", "input_size": 1, "hidden_size": 1}]),
            mk(layers=[{"type": "Conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": 0}]),
            mk(layers=[{"type": "Conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": [3, 3, 3]}]),
            mk(layers=[{"type": "BatchNorm1d", "num_features": 2 ** 40}]),
            mk(layers=[{"type": "Embedding", "num_embeddings": 10 ** 15, "embedding_dim": 10 ** 15}]),
            mk(layers=[{"type": "Embedding", "num_embeddings": 3, "embedding_dim": 2, "padding_idx": 3}]),
            mk(layers=[{"type": "MaxPool2d", "kernel_size": 2, "padding": 2}, lin]),
            mk(layers=[{"type": "linear", "in_features": 3, "out_features": 2}]),
            mk(layers=[dict(lin, foo=1)]), mk(layers=[{"type": "ReLU", "inplace": "yes"}]),
            mk(layers=[]), mk(layers={"0": lin}), mk(layers=[lin, "ReLU"]), mk(layers=[lin, None]),
            mk(layers=[{"in_features": 3, "out_features": 2}]),
            mk(layers=[dict(lin, in_features=0)]), mk(layers=[dict(lin, in_features=-1)]),
            mk(layers=[dict(lin, in_features=1.5)]), mk(layers=[dict(lin, in_features="3")]),
            mk(layers=[dict(lin, in_features=10 ** 15, out_features=10 ** 15)]),
            mk(layers=[dict(lin, in_features=2 ** 40, out_features=2 ** 40)]),
            mk(layers=[dict(lin, in_features=100000, out_features=100000)]),
            mk(layers=[dict(lin, bias="no")]),
            mk(layers=[lin, {"type": "Linear", "in_features": 5, "out_features": 1}]),
            mk(layers=[lin, {"type": "Dropout", "p": 1.5}]), mk(layers=[lin, {"type": "Dropout", "p": -0.1}]),
            mk(layers=[lin, {"type": "LeakyReLU", "negative_slope": "x"}]),
            mk(layers=[lin, {"type": "Softmax", "dim": 1.5}]),
            mk(loss="MSE"), mk(loss="mseloss"), mk(loss={"type": "MSELoss", "bogus": 1}),
            mk(loss={"type": "MSELoss", "reduction": "avg"}), mk(loss=None), mk(loss=5),
            mk(loss={"reduction": "sum"}), mk(loss={"type": "HuberLoss", "delta": -1}),
            mk(optimizer={"type": "sgd", "lr": 0.1}), mk(optimizer={"type": "LBFGS"}),
            mk(optimizer={"type": "SGD", "lr": -1}), mk(optimizer={"type": "SGD", "lr": "0.1"}),
            mk(optimizer={"type": "SGD", "lr": 0.1, "momentum": -0.5}),
            mk(optimizer={"type": "SGD", "lr": 0.1, "nesterov": True}),
            mk(optimizer={"type": "SGD", "lr": 0.1, "foo": 1}),
            mk(optimizer={"type": "Adam", "betas": [0.9]}), mk(optimizer={"type": "Adam", "betas": [1.5, 0.9]}),
            mk(optimizer={"type": "Adam", "betas": "0.9"}), mk(optimizer={"type": "Adam", "eps": -1}),
            mk(optimizer={"type": "RMSprop", "alpha": -0.5}), mk(optimizer={"type": "Adagrad", "lr_decay": -1}),
            mk(optimizer="SGD"), mk(optimizer=None), mk(optimizer=[]),
            mk(scheduler={"type": "OneCycleLR"}), mk(scheduler={"type": "StepLR", "step_size": 0}),
            mk(scheduler={"type": "StepLR"}), mk(scheduler={"type": "StepLR", "step_size": 2, "gamma": "x"}),
            mk(scheduler={"type": "CosineAnnealingLR", "T_max": -5}), mk(scheduler=5),
            mk(seed=-1), mk(seed="x"), mk(seed=1.5), mk(seed=[1]),
            mk(name=""), mk(name="../etc"), mk(name="a/b"), mk(name="a..b"), mk(name=".hidden"),
            mk(name="-x"), mk(name="x" * 65), mk(name="a b"), mk(name=123), mk(name=None),
            mk(name="caf\u00e9"), mk(name="a\\b"), mk(name="a\nb"), mk(name="CON/.."), mk(name="x.etm/.."),
            mk(extra_field=True), [spec(REG_SPEC, "hostile")], "spec",
        ]
        for i, s in enumerate(specs):
            self.send("spec %d %s" % (i, json.dumps(s)[:80]), "POST", "/v1/models", json.dumps(s),
                      expect=(400, 413))
            self.sent += 1
        raw = ['{"name": "hostile", "name": "h2", "layers": [{"type": "ReLU"}], "loss": "MSELoss",'
               ' "optimizer": {"type": "SGD", "lr": 0.1}}',
               '{"name": "h\\u0000", "layers": [{"type": "ReLU"}], "loss": "MSELoss", "optimizer": '
               '{"type": "SGD", "lr": 0.1}}',
               '{"name": "hostile", "layers": [{"type": "Linear", "in_features": 3, "out_features": 2}],'
               ' "loss": "MSELoss", "optimizer": {"type": "SGD", "lr": NaN}}',
               '{"name": "hostile", "layers": [{"type": "Linear", "in_features": 3, "out_features": 2}],'
               ' "loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 1e999}}',
               '{"name": "hostile", "layers": ' + '[' * 50 + ']' * 50 + '}']
        for b in raw:
            self.send("spec raw %s" % b[:60], "POST", "/v1/models", b)
            self.sent += 1
        self.send("name taken", "POST", "/v1/models", json.dumps(spec(REG_SPEC, "reg")), expect=(409,))
        self.sent += 1
        self.check(80)

    def test_nul_in_model_name(self):
        """%00 in a model name must not address the model named by the bytes before it."""
        self.sent = 0
        self.d.create(spec(REG_SPEC, "victim"))
        for method, path in [("GET", "/v1/models/victim%00"), ("GET", "/v1/models/victim%00x"),
                             ("POST", "/v1/models/victim%00/step"),
                             ("GET", "/v1/models/victim%00/parameters"),
                             ("DELETE", "/v1/models/victim%00"), ("DELETE", "/v1/models/victim%00.etm")]:
            self.send("%s %s" % (method, path), method, path, "{}" if method == "POST" else None,
                      expect=(400, 404))
            self.sent += 1
        alive = self.d.get("/v1/models/victim").status == 200
        if alive:
            self.d.ok("DELETE", "/v1/models/victim", expect=(200, 204))
        self.assertTrue(alive, "DELETE /v1/models/victim%00 deleted model \"victim\"")
        self.check(6)

    def test_paths_and_methods(self):
        self.sent = 0
        cases = [
            ("GET", "/v1/models/nonexistent", (404,)), ("GET", "/v1/models/..%2F..%2Fetc%2Fpasswd", (400, 404)),
            ("GET", "/v1/models/..", (400, 404)), ("GET", "/v1/models/%2E%2E", (400, 404)),
            ("GET", "/v1/models/.hidden", (400, 404)), ("GET", "/v1/models/a%2Fb", (400, 404)),
            ("GET", "/v1/models/%00", (400, 404)),
            ("GET", "/v1/models/reg%2F..%2Fcls", (400, 404)), ("GET", "/v1/models/" + "x" * 300, (400, 404)),
            ("GET", "/v1/models/reg/unknown", (404,)), ("GET", "/v1/models/reg/", (404,)),
            ("GET", "/v1/models//predict", (404,)), ("GET", "/v2/models/nonexistent", (404,)),
            ("POST", "/v1/models/nonexistent/predict", (404,)), ("POST", "/v1/models/nonexistent/step", (404,)),
            ("DELETE", "/v1/models/nonexistent", (404,)), ("DELETE", "/v1/models/..", (400, 404)),
            ("DELETE", "/v1/models", (405,)),
            ("PUT", "/v1/models/reg/predict", (405,)), ("PATCH", "/v1/models/reg/predict", (405,)),
            ("PATCH", "/v1/models/reg", (400,)), ("PATCH", "/v1/models", (405,)),
            ("GET", "/v1/models/reg/predict", (405,)), ("GET", "/v1/models/reg/train", (405,)),
            ("GET", "/v1/models/reg/step", (405,)), ("DELETE", "/v1/models/reg/parameters", (405,)),
            ("GET", "/v1/models/reg/loss?since=abc", (400,)), ("GET", "/v1/models/reg/loss?since=1e3", (400,)),
            ("GET", "/v1/models/reg/loss?since=", (400,)),
            ("GET", "/v1/models/reg/parameters?format=xml", (400,)), ("GET", "/nonexistent", (404,)),
            ("GET", "/v1", (404,)), ("POST", "/healthz", (405,)), ("GET", "/v1/models/reg/checkpoint", (405,)),
            ("GET", "/%2e%2e/%2e%2e/etc/passwd", (404,)), ("GET", "/../../etc/passwd", (400, 404)),
            ("GET", "/static/../../etc/passwd", (400, 404)),
            # versions (issue 18): bad numbers, missing versions, bodies that say nothing
            ("GET", "/v1/models/reg/versions/0", (400,)), ("GET", "/v1/models/reg/versions/-1", (400,)),
            ("GET", "/v1/models/reg/versions/%2E%2E", (400,)), ("GET", "/v1/models/reg/versions/%00", (400, 404)),
            ("GET", "/v1/models/reg/versions/1", (404,)), ("DELETE", "/v1/models/reg/versions/1", (404,)),
            ("GET", "/v1/models/reg/versions/" + "9" * 300, (400, 404)),
            ("POST", "/v1/models/reg/versions/1/predict", (404,)), ("POST", "/v1/models/reg/rollback", (400,)),
            ("PUT", "/v1/models/reg/versions", (405,)), ("GET", "/v1/models/reg/rollback", (405,)),
            ("GET", "/v1/models/nonexistent/versions", (404,)), ("POST", "/v1/models/nonexistent/versions", (404,)),
        ]
        for method, path, expect in cases:
            body = "{}" if method in ("POST", "PUT", "PATCH") else None
            self.send("%s %s" % (method, path), method, path, body, expect=expect)
            self.sent += 1
        self.check(48)

    def test_bad_parameters(self):
        self.sent = 0
        p = self.before["reg"]["params"]["parameters"]
        bads = [
            dict(p, **{"9.weight": [[1.0]]}), dict(p, **{"0.weight": [[1.0, 2.0]]}),
            dict(p, **{"0.bias": "x"}), dict(p, **{"0.bias": [1, 2]}), dict(p, **{"0.bias": [[0] * 8]}),
            dict(p, **{"2.bias": [1, None]}), dict(p, **{"2.bias": {"shape": [2], "data": [1]}}),
            dict(p, **{"": [1]}), dict(p, **{"../0.bias": [0] * 8}),
        ]
        for i, b in enumerate(bads):
            self.send("params %d" % i, "PUT", R + "/parameters", json.dumps({"parameters": b}))
            self.send("params unwrapped %d" % i, "PUT", R + "/parameters", json.dumps(b))
            self.sent += 2
        text = json.dumps({"parameters": p})
        for b in [text.replace("]", "", 1), text[:-1], text + "x", '{"parameters": []}',
                  '{"parameters": {}, "extra": 1}', '{"parameters": 5}',
                  text.replace('"2.bias": [', '"2.bias": [1e999, ', 1),
                  text.replace('"2.bias": [', '"2.bias": [NaN, ', 1),
                  '{"parameters": {"0.bias": [0,0,0,0,0,0,0,0], "0.bias": [0,0,0,0,0,0,0,0]}}']:
            self.send("params text %s" % b[:50], "PUT", R + "/parameters", b)
            self.sent += 1
        st = self.d.get(C + "/parameters?format=safetensors").body
        good = self.d.get(R + "/parameters?format=safetensors").body
        hdr_len = struct.unpack("<Q", good[:8])[0]
        cuts = sorted(set([0, 1, 7, 8, 9, hdr_len // 2 + 8, hdr_len + 7, hdr_len + 8, hdr_len + 9,
                           len(good) - 4, len(good) - 1]))
        for cut in cuts:
            self.send("safetensors cut at %d" % cut, "PUT", R + "/parameters", good[:cut],
                      ctype="application/octet-stream")
            self.sent += 1
        for label, b in [("other model", st), ("garbage", b"\x00" * 16),
                         ("huge header length", struct.pack("<Q", 2 ** 62) + b"{}"),
                         ("header says 1e6", struct.pack("<Q", 10 ** 6) + good[8:]),
                         ("trailing bytes", good + b"\x00\x00\x00\x00"),
                         ("json header garbage", struct.pack("<Q", 4) + b"{]}x"),
                         ("offsets out of range", good.replace(b'"data_offsets":[0,', b'"data_offsets":[9,', 1)),
                         ("dtype F64", good.replace(b'"F32"', b'"F64"', 1)),
                         ("dtype I8", good.replace(b'"F32"', b'"I8" ', 1))]:
            self.send("safetensors %s" % label, "PUT", R + "/parameters", b,
                      ctype="application/octet-stream")
            self.sent += 1
        self.check(45)

    def test_kserve_infer(self):
        self.sent = 0
        inp = {"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}
        bads = [
            {"inputs": [dict(inp, datatype="BYTES")]}, {"inputs": [dict(inp, shape=[1, 4])]},
            {"inputs": [dict(inp, shape=[1, -3])]}, {"inputs": [dict(inp, shape=[])]},
            {"inputs": [dict(inp, shape="13")]}, {"inputs": []}, {"inputs": [inp, inp]},
            {"inputs": [{k: v for k, v in inp.items() if k != "data"}]},
            {"inputs": [dict(inp, data=[1, "2", 3])]}, {"inputs": [dict(inp, data=[[1, 2], [3]])]},
            {"inputs": [dict(inp, shape=[1, 2])]}, {"inputs": [dict(inp, name=5)]},
            {"inputs": [dict(inp, extra=1)]}, {"inputs": inp}, {"inputs": [inp], "id": 5},
            {"inputs": [inp], "bogus": 1}, {"inputs": [dict(inp, shape=[10 ** 12, 10 ** 12])]},
            {"inputs": [dict(inp, shape=[1.5, 2])]},
        ]
        for i, b in enumerate(bads):
            self.send("infer %d" % i, "POST", "/v2/models/reg/infer", json.dumps(b))
            self.sent += 1
        self.send("infer unknown model", "POST", "/v2/models/nope/infer",
                  json.dumps({"inputs": [inp]}), expect=(404,))
        self.sent += 1
        self.check(18)

    def test_oversize(self):
        self.sent = 0
        big = '{"inputs": [' + ",".join(["[1, 2, 3]"] * (MAX_BODY // 8)) + ']}'
        self.assertGreater(len(big), MAX_BODY)
        for path in (R + "/predict", R + "/train", "/v1/models", R + "/parameters"):
            method = "PUT" if path.endswith("parameters") else "POST"
            self.send("oversize %s" % path, method, path, big, expect=(413,))
            self.sent += 1
        # Content-Length far over the limit, refused before the body is read
        for n in (MAX_BODY + 1, 10 ** 12, 2 ** 63 - 1):
            SENT[0] += 1
            self.sent += 1
            raw = ("POST %s/train HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   "Content-Length: %d\r\n\r\n{}" % (R, n)).encode()
            r = parse_raw_response(raw_exchange(self.d.host, self.d.port, raw, shut=False,
                                                read_timeout=5))
            if not r or r[0] != 413:
                self.bad.append("Content-Length %d: %r" % (n, r))
        self.check(7)

    def test_raw_protocol(self):
        """Broken HTTP framing: the request never reaches a handler.  libmicrohttpd answers
        these itself (a 4xx, or 505 for an unknown version, with its own short HTML body)
        or closes the connection; the daemon keeps serving and nothing changes.  (Tolerated
        and therefore not listed: bare LF line ends, obs-fold headers and HTTP/1.1 without
        Host, which libmicrohttpd accepts as ordinary requests, and a NUL inside a header
        value, which libmicrohttpd 0.9.75 cuts off before the daemon sees the header: a
        value can only get shorter.)"""
        self.sent = 0
        body = json.dumps({"inputs": X1, "targets": Y1})
        n = len(body)
        cases = [
            ("conflicting Content-Length", "POST %s/train HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
             "Content-Length: %d\r\n\r\n%s" % (R, n, n + 5, body)),
            ("negative Content-Length", "POST %s/train HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n%s"
             % (R, body)),
            ("non-numeric Content-Length", "POST %s/train HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n%s"
             % (R, body)),
            ("Content-Length and chunked", "POST %s/train HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
             "Transfer-Encoding: chunked\r\n\r\n%s" % (R, n, body)),
            ("bad chunk size", "POST %s/train HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
             "zz\r\n%s\r\n0\r\n\r\n" % (R, body)),
            ("truncated chunked", "POST %s/train HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
             "%x\r\n%s" % (R, n, body[:10])),
            ("truncated body", "POST %s/train HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
             % (R, n, body[:n // 2])),
            ("garbage request line", "GARBAGE\r\n\r\n"), ("method only", "GET\r\n\r\n"),
            ("bad version", "GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n"),
            ("NUL in path", "GET /v1/models/re\x00g HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("header without colon", "GET /v1/models/reg HTTP/1.1\r\nHost: x\r\nnocolon\r\n\r\n"),
            ("huge header", "GET /v1/models/reg HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n" % ("a" * 200000)),
            ("huge path", "GET /v1/models/%s HTTP/1.1\r\nHost: x\r\n\r\n" % ("a" * 200000)),
            ("space before colon", "POST %s/train HTTP/1.1\r\nHost: x\r\nContent-Length : %d\r\n\r\n%s"
             % (R, n, body)),
        ]
        for label, raw in cases:
            SENT[0] += 1
            self.sent += 1
            got = raw_exchange(self.d.host, self.d.port, raw.encode("latin-1"), read_timeout=15)
            r = parse_raw_response(got)
            if got and (not r or not (400 <= r[0] < 500 or r[0] == 505)):
                self.bad.append("%s: %r" % (label, got[:200]))
            if not self.d.alive() or self.d.get("/healthz").status != 200:
                self.bad.append("%s: daemon stopped serving" % label)
        self.check(15)


if __name__ == "__main__":
    run_tests()
