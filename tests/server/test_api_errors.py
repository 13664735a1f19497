#!/usr/bin/python3
"""easytorchd at its edges: bad input of every kind (all-or-nothing, the field named),
robustness (hostile requests, diverging training, restarts), the body limit, auth and the
startup options. The endpoints' contract itself is test_api.py, whose helpers this uses.
Usage: test_api_errors.py PATH/TO/easytorchd"""

import json
import os
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import Daemon, DaemonTestCase, flatten  # noqa: E402
import test_api as A  # noqa: E402
from test_api import (Base, X, Y, dashboard_assets, first, fresh, middle,  # noqa: E402
                      mlp_spec, parse_metrics)

D = None  # the module's daemon, made and started by setUpModule (test_api's helpers use it)
setUpModule, tearDownModule = dm.module_fixture(globals(), also=(A,))

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
