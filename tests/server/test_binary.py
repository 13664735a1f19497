#!/usr/bin/python3
"""Binary tensors and compression on /v1: safetensors request bodies (by Content-Type or
sniffed), safetensors answers (Accept), int64 class targets, gzip/deflate request bodies
(with the zip-bomb limit) and compressed answers (Accept-Encoding), 415/406, and that the
binary path gives bit-identical results to the JSON path (which the other suites hold to
PyTorch) -- plus one check against PyTorch directly.
Usage: test_binary.py PATH/TO/easytorchd"""

import gzip
import json
import os
import struct
import sys
import time
import unittest
import zlib

import numpy as np

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io as st  # noqa: E402
from daemon import Daemon, DaemonTestCase, run_tests  # noqa: E402

D = None
OCTET = {"Content-Type": "application/octet-stream"}
WANT_ST = {"Accept": "application/octet-stream"}


def setUpModule():
    global D
    D = Daemon(extra_args=["--max-body", "2M", "--max-elements", "100000"])
    D.start()
    DaemonTestCase.daemon = D


def tearDownModule():
    if D is not None:
        D.cleanup()


_n = [0]


def fresh(prefix="b"):
    _n[0] += 1
    return "%s%d" % (prefix, _n[0])


REG = {"layers": [{"type": "Linear", "in_features": 3, "out_features": 5}, {"type": "Tanh"},
                  {"type": "Linear", "in_features": 5, "out_features": 2}],
       "loss": "MSELoss", "optimizer": {"type": "Adam", "lr": 0.01}, "seed": 7}
CLS = {"layers": [{"type": "Linear", "in_features": 3, "out_features": 4}, {"type": "ReLU"},
                  {"type": "Linear", "in_features": 4, "out_features": 3}],
       "loss": {"type": "CrossEntropyLoss", "label_smoothing": 0.1},
       "optimizer": {"type": "SGD", "lr": 0.1, "momentum": 0.9}, "seed": 11}


def data(n=16, seed=0):
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, 3)).astype(np.float32)
    y = r.standard_normal((n, 2)).astype(np.float32)
    c = r.integers(0, 3, n).astype(np.int64)
    return x, y, c


class Base(DaemonTestCase):
    def model(self, spec=REG):
        name = fresh()
        D.create(dict(spec, name=name))
        return name

    def post_st(self, path, tensors, metadata=None, headers=None, **kw):
        h = dict(OCTET)
        h.update(headers or {})
        return D.post(path, body=st.write(tensors, metadata), headers=h, **kw)

    def params(self, name):
        r = D.get("/v1/models/%s/parameters?format=safetensors" % name)
        self.assertEqual(r.status, 200)
        return st.read(r.body)[0]

    def assertSameParams(self, a, b):
        pa, pb = self.params(a), self.params(b)
        self.assertEqual(list(pa), list(pb))
        for k in pa:
            self.assertTrue(np.array_equal(pa[k], pb[k]), "%s differs" % k)

    def snapshot(self, name):
        m = D.model(name)
        return (json.dumps(D.params(name)), m["step"], m["pending_batches"], m["loss"],
                json.dumps(D.ok("GET", "/v1/models/%s/gradients" % name)))


def shifted(tensors, metadata, shift):
    """A safetensors file whose data starts at an offset of shift mod 8 (the header padded
    with spaces, as the format allows)."""
    raw = st.write(tensors, metadata, align=False)
    n = struct.unpack("<Q", raw[:8])[0]
    h = raw[8:8 + n] + b" " * ((shift - 8 - n) % 8)
    assert (8 + len(h)) % 8 == shift
    return struct.pack("<Q", len(h)) + h + raw[8 + n:]


# ============================================================================ requests
class TestSafetensorsRequests(Base):
    def test_predict_binary_in_json_out_equals_json(self):
        name = self.model()
        x, _, _ = data()
        want = D.ok("POST", "/v1/models/%s/predict" % name, {"inputs": x.tolist()})["outputs"]
        r = self.post_st("/v1/models/%s/predict" % name, {"inputs": x})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["outputs"], want)

    def test_predict_binary_out_is_bitwise_the_json_numbers(self):
        name = self.model()
        x, _, _ = data(33, 1)
        js = D.ok("POST", "/v1/models/%s/predict" % name, {"inputs": x.tolist()})["outputs"]
        r = self.post_st("/v1/models/%s/predict" % name, {"inputs": x}, headers=WANT_ST)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["content-type"], "application/octet-stream")
        t, meta = st.read(r.body)
        self.assertEqual(list(t), ["outputs"])
        self.assertEqual(t["outputs"].dtype, np.float32)
        self.assertEqual(t["outputs"].shape, (33, 2))
        # the JSON numbers are the shortest round-trip of the same float32s
        self.assertTrue(np.array_equal(t["outputs"], np.asarray(js, dtype=np.float32)))
        # JSON in, safetensors out too
        r2 = D.post("/v1/models/%s/predict" % name, {"inputs": x.tolist()}, headers=WANT_ST)
        self.assertTrue(np.array_equal(st.read(r2.body)[0]["outputs"], t["outputs"]))

    def test_accept_negotiation(self):
        name = self.model()
        p = "/v1/models/%s/predict" % name
        body = {"inputs": [[1, 2, 3]]}
        for accept, binary in [("application/octet-stream", True), ("application/json", False),
                               ("*/*", False), ("application/*", False),
                               ("application/octet-stream, application/json", False),
                               ("application/json;q=0.5, application/octet-stream", True),
                               ("application/octet-stream;q=0.9, application/json;q=0.8", True),
                               ("application/octet-stream, */*", True),
                               ("text/html, */*;q=0.1", False), ("", False)]:
            with self.subTest(accept=accept):
                r = D.post(p, body, headers={"Accept": accept})
                self.assertEqual(r.status, 200)
                self.assertEqual(r.headers["content-type"],
                                 "application/octet-stream" if binary else "application/json")
                self.assertIn("Accept", r.headers.get("vary", ""))
        for accept in ("text/html", "application/xml", "application/json;q=0, application/octet-stream;q=0"):
            with self.subTest(accept=accept):
                msg = self.assertError(D.post(p, body, headers={"Accept": accept}), 406,
                                       "application/json")
                self.assertIn("application/octet-stream", msg)

    def test_sniffed_without_content_type(self):
        """curl --data-binary @x.safetensors sends form-urlencoded or nothing: sniffed."""
        name = self.model()
        x, _, _ = data()
        want = D.ok("POST", "/v1/models/%s/predict" % name, {"inputs": x.tolist()})["outputs"]
        for ct in (None, "application/x-www-form-urlencoded"):
            with self.subTest(ct=ct):
                h = {"Content-Type": ct} if ct else {}
                r = D.request("POST", "/v1/models/%s/predict" % name, body=st.write({"inputs": x}),
                              headers=h)
                if ct is None:  # daemon.py defaults to JSON: send none for real
                    r = self._raw("POST", "/v1/models/%s/predict" % name, st.write({"inputs": x}))
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["outputs"], want)

    def _raw(self, method, path, body):
        """The request with a body and no Content-Type (daemon.py always sends one)."""
        import http.client
        from daemon import Response
        c = http.client.HTTPConnection(D.host, D.port, timeout=60)
        try:
            c.putrequest(method, path)
            c.putheader("Content-Length", str(len(body)))
            c.endheaders(body)
            r = c.getresponse()
            return Response(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            c.close()

    def test_batches_step_train_binary_equal_json(self):
        x, y, _ = data(24, 2)
        a, b = self.model(), self.model()
        ra = D.ok("POST", "/v1/models/%s/batches" % a, {"inputs": x.tolist(), "targets": y.tolist()})
        rb = self.post_st("/v1/models/%s/batches" % b, {"inputs": x, "targets": y}).json()
        self.assertEqual(ra, rb)
        self.assertEqual(D.step(a), D.step(b))
        self.assertSameParams(a, b)
        ta = D.ok("POST", "/v1/models/%s/train" % a, {"inputs": x.tolist(), "targets": y.tolist(),
                                                       "epochs": 3, "batch_size": 5, "shuffle": True})
        r = self.post_st("/v1/models/%s/train" % b, {"inputs": x, "targets": y},
                         {"epochs": "3", "batch_size": "5", "shuffle": "true"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), ta)
        self.assertSameParams(a, b)

    def test_unaligned_and_reused_tensors(self):
        """The daemon takes a body's tensors without copying them when their bytes are
        aligned, and copies them when not (the header's padding puts the data at any
        offset): every offset gives the JSON path's bits, for float32 inputs, int64 class
        targets, and inputs used again by each step of a train call."""
        x, y, c = data(20, 5)
        fields = {"epochs": 3, "batch_size": 20, "shuffle": False}
        for shift in range(8):
            a = self.model()
            want = D.ok("POST", "/v1/models/%s/predict" % a, {"inputs": x.tolist()})
            r = D.post("/v1/models/%s/predict" % a, body=shifted({"inputs": x}, None, shift),
                       headers=dict(OCTET, **WANT_ST))
            self.assertEqual(r.status, 200, r)
            out = st.read(r.body)[0]["outputs"]
            self.assertTrue(np.array_equal(out, np.array(want["outputs"], np.float32)), shift)
            for spec, tg in ((REG, y), (CLS, c)):
                j, b = self.model(spec), self.model(spec)
                ta = D.ok("POST", "/v1/models/%s/train" % j,
                          dict(fields, inputs=x.tolist(), targets=tg.tolist()))
                meta = {k: json.dumps(v) for k, v in fields.items()}
                r = D.post("/v1/models/%s/train" % b,
                           body=shifted({"inputs": x, "targets": tg}, meta, shift), headers=OCTET)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json(), ta, (shift, spec["loss"]))
                self.assertSameParams(j, b)
            self.assertEqual(D.post("/v1/models/%s/predict" % a,
                                    body=shifted({"inputs": x}, None, shift),
                                    headers=OCTET).json(), want)

    def test_int64_class_targets(self):
        """CrossEntropyLoss takes int64 targets (torch's dtype for indices) from binary
        bodies, with the same loss and steps as float targets from JSON."""
        x, _, c = data(20, 3)
        a, b = self.model(CLS), self.model(CLS)
        ta = D.ok("POST", "/v1/models/%s/train" % a, {"inputs": x.tolist(),
                                                       "targets": c.astype(float).tolist(),
                                                       "epochs": 4, "batch_size": 8})
        r = self.post_st("/v1/models/%s/train" % b, {"inputs": x, "targets": c},
                         {"epochs": "4", "batch_size": "8"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), ta)
        self.assertSameParams(a, b)
        bad = c.copy()
        bad[3] = 7
        msg = self.assertError(self.post_st("/v1/models/%s/batches" % b,
                                            {"inputs": x, "targets": bad}), 400, "target")
        self.assertIn("7", msg)

    def test_int64_where_numbers_are_taken(self):
        """int64 inputs of a float model and int64 targets of MSELoss are numbers, as the
        same integers in JSON are (torch's .float())."""
        xi = np.arange(12, dtype=np.int64).reshape(4, 3) - 5
        yi = np.arange(8, dtype=np.int64).reshape(4, 2) % 3
        a, b = self.model(), self.model()
        want = D.ok("POST", "/v1/models/%s/batches" % a, {"inputs": xi.tolist(), "targets": yi.tolist()})
        r = self.post_st("/v1/models/%s/batches" % b, {"inputs": xi, "targets": yi})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), want)
        p1 = D.ok("POST", "/v1/models/%s/predict" % a, {"inputs": xi.tolist()})
        self.assertEqual(self.post_st("/v1/models/%s/predict" % b, {"inputs": xi}).json(), p1)

    def test_against_pytorch(self):
        """The binary path against torch itself: int64 targets, CE, SGD momentum."""
        import torch
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import torchref
        x, _, c = data(12, 4)
        name = self.model(CLS)
        ref = torchref.Reference(CLS)
        ref.set_params(D.params(name))
        for _ in range(3):
            r = self.post_st("/v1/models/%s/batches" % name, {"inputs": x, "targets": c})
            self.assertEqual(r.status, 200, r)
            want = ref.push(x.tolist(), c.tolist())
            self.assertAlmostEqual(r.json()["loss"], want, delta=1e-5 + 1e-4 * abs(want))
            D.step(name)
            ref.step()
        got = self.params(name)
        for k, v in ref.net.state_dict().items():
            np.testing.assert_allclose(got[k], v.numpy(), rtol=1e-4, atol=1e-5, err_msg=k)
        out = self.post_st("/v1/models/%s/predict" % name, {"inputs": x}, headers=WANT_ST)
        np.testing.assert_allclose(st.read(out.body)[0]["outputs"], ref.forward(x.tolist()).numpy(),
                                   rtol=1e-4, atol=1e-5)
        del torch

    def test_gradients_binary(self):
        x, y, _ = data(10, 5)
        name = self.model()
        D.ok("POST", "/v1/models/%s/batches" % name, {"inputs": x.tolist(), "targets": y.tolist()})
        js = D.ok("GET", "/v1/models/%s/gradients" % name)
        r = D.get("/v1/models/%s/gradients" % name, headers=WANT_ST)
        self.assertEqual(r.status, 200)
        t, meta = st.read(r.body)
        self.assertEqual(list(t), list(js["gradients"]))
        for k in t:
            self.assertTrue(np.array_equal(t[k], np.asarray(js["gradients"][k], np.float32)), k)
        self.assertEqual(meta, {"pending_batches": "1"})
        pj = D.ok("POST", "/v1/models/%s/gradients" % name, {"inputs": x.tolist(), "targets": y.tolist()})
        r = self.post_st("/v1/models/%s/gradients" % name, {"inputs": x, "targets": y}, headers=WANT_ST)
        self.assertEqual(r.status, 200, r)
        t, meta = st.read(r.body)
        self.assertEqual(sorted(t), sorted(["input_gradient"] + ["gradients." + k for k in pj["gradients"]]))
        self.assertTrue(np.array_equal(t["input_gradient"], np.asarray(pj["input_gradient"], np.float32)))
        for k, v in pj["gradients"].items():
            self.assertTrue(np.array_equal(t["gradients." + k], np.asarray(v, np.float32)), k)
        self.assertEqual(np.float32(meta["loss"]), np.float32(pj["loss"]))

    def test_parameters_put_sniffed_and_typed(self):
        name = self.model()
        blob = D.get("/v1/models/%s/parameters?format=safetensors" % name).body
        other = self.model(dict(REG, seed=99))
        for hdrs in (OCTET, {}):
            r = self._raw_post_put("/v1/models/%s/parameters" % other, blob, hdrs)
            self.assertEqual(r.status, 200, r)
            self.assertSameParams(name, other)
        # declared JSON but binary: the JSON error says what the bytes look like
        msg = self.assertError(D.put("/v1/models/%s/parameters" % other, body=blob,
                                     content_type="application/json"), 400, "NUL")
        self.assertIn("safetensors", msg)
        self.assertIn("application/octet-stream", msg)

    def _raw_post_put(self, path, body, headers):
        if headers:
            return D.put(path, body=body, content_type=headers["Content-Type"])
        return self._raw("PUT", path, body)

    def test_nonfinite_values_pass_in_binary(self):
        """Binary tensors carry NaN/inf as they are (JSON cannot); outputs become null."""
        name = self.model()
        x = np.array([[np.nan, 0, 0], [1, 2, 3]], np.float32)
        r = self.post_st("/v1/models/%s/predict" % name, {"inputs": x})
        self.assertEqual(r.status, 200, r)
        out = r.json()["outputs"]
        self.assertEqual(out[0], [None, None])
        self.assertTrue(all(isinstance(v, float) for v in out[1]))


# ============================================================================ errors
class TestEvaluateAndJobs(Base):
    """POST .../evaluate and .../jobs take safetensors bodies too: the same answers and the
    same trained parameters as the JSON bodies."""

    def wait_job(self, name, jid):
        deadline = time.monotonic() + 120  # a safety net against hangs, never a speed check
        while True:
            j = D.ok("GET", "/v1/models/%s/jobs/%s" % (name, jid))
            if j["state"] not in ("queued", "running"):
                return j
            self.assertLess(time.monotonic(), deadline, j)
            time.sleep(0.02)

    def test_evaluate_binary_equals_json(self):
        x, _, c = data(24, 5)
        name = self.model(CLS)
        want = D.ok("POST", "/v1/models/%s/evaluate" % name,
                    {"inputs": x.tolist(), "targets": c.tolist(),
                     "metrics": ["loss", "accuracy", "top_k_accuracy"], "k": 2})
        r = self.post_st("/v1/models/%s/evaluate" % name, {"inputs": x, "targets": c},
                         {"metrics": json.dumps(["loss", "accuracy", "top_k_accuracy"]), "k": "2"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), want)
        # float class indices (what JSON gives) in binary are the same classes
        r = self.post_st("/v1/models/%s/evaluate" % name, {"inputs": x, "targets": c.astype(np.float32)},
                         {"metrics": json.dumps(["loss", "accuracy", "top_k_accuracy"]), "k": "2"})
        self.assertEqual(r.json(), want)
        self.assertError(self.post_st("/v1/models/%s/evaluate" % name, {"inputs": x, "targets": c},
                                      {"metrics": json.dumps(["los"])}), 400, "metrics[0]")

    def test_job_binary_equals_json(self):
        x, y, _ = data(40, 6)
        vx, vy, _ = data(12, 7)
        a, b = self.model(), self.model()
        ja = D.post("/v1/models/%s/jobs" % a, {
            "inputs": x.tolist(), "targets": y.tolist(), "epochs": 3, "batch_size": 8,
            "eval_every": 5, "validation": {"inputs": vx.tolist(), "targets": vy.tolist(),
                                            "metrics": ["loss", "mae"]}})
        self.assertEqual(ja.status, 202, ja)
        jb = self.post_st("/v1/models/%s/jobs" % b,
                          {"inputs": x, "targets": y, "validation.inputs": vx, "validation.targets": vy},
                          {"epochs": "3", "batch_size": "8", "eval_every": "5",
                           "validation": json.dumps({"metrics": ["loss", "mae"]})})
        self.assertEqual(jb.status, 202, jb)
        ra = self.wait_job(a, ja.json()["id"])
        rb = self.wait_job(b, jb.json()["id"])
        self.assertEqual(ra["state"], "done", ra)
        for k in ("steps_done", "steps_total", "loss", "validation"):
            self.assertEqual(ra[k], rb[k], k)
        self.assertEqual(len(ra["validation"]["results"]), 3)
        self.assertSameParams(a, b)
        # validation tensors alone (no "validation" entry): the default metrics
        c = self.model()
        jc = self.post_st("/v1/models/%s/jobs" % c, {"inputs": x, "targets": y,
                                                     "validation.inputs": vx, "validation.targets": vy})
        self.assertEqual(jc.status, 202, jc)
        self.assertIsNotNone(self.wait_job(c, jc.json()["id"])["validation"])

    def test_job_binary_errors_change_nothing(self):
        x, y, _ = data(8, 8)
        name = self.model()
        before = self.snapshot(name)
        def job(tensors, meta=None):
            return self.post_st("/v1/models/%s/jobs" % name, tensors, meta)
        self.assertError(job({"inputs": x, "targets": y, "validation.inputs": x}), 400,
                         "validation.targets: required")
        self.assertError(job({"inputs": x, "targets": y, "validation.inputs": x, "validation.targets": y},
                             {"validation": json.dumps({"inputs": x.tolist()})}), 400,
                         "validation.inputs: given both")
        self.assertError(job({"inputs": x, "targets": y, "validation.x": x}), 400, "validation.x")
        self.assertError(job({"inputs": x, "targets": y, "validation.inputs": x,
                              "validation.targets": y[:3]}), 400, "")
        self.assertEqual(D.ok("GET", "/v1/models/%s/jobs" % name)["jobs"], [])
        self.assertEqual(self.snapshot(name), before)


class TestSafetensorsErrors(Base):
    def test_bad_files_are_400_and_change_nothing(self):
        name = self.model()
        before = self.snapshot(name)
        x, y, _ = data(4)
        good = st.write({"inputs": x, "targets": y})
        n = struct.unpack("<Q", good[:8])[0]
        hdr = json.loads(good[8:8 + n])
        def with_header(h, tail=None):
            t = json.dumps(h).encode()
            return struct.pack("<Q", len(t)) + t + (good[8 + n:] if tail is None else tail)
        over = dict(hdr)
        over["targets"] = dict(hdr["targets"], data_offsets=[0, hdr["targets"]["data_offsets"][1] - hdr["inputs"]["data_offsets"][1]])
        f64 = st.write({"inputs": x.astype(np.float64), "targets": y})
        cases = [
            (good[:20], "header length"),
            (good[:-4], "cover"),
            (good + b"xxxx", "cover"),
            (struct.pack("<Q", 2 ** 40) + good[8:], "header length"),
            (with_header(over), "start"),
            (with_header(dict(hdr, inputs=dict(hdr["inputs"], shape=[4, 4]))), "inputs"),
            (with_header(dict(hdr, inputs=dict(hdr["inputs"], dtype="Q8"))), "Q8"),
            (f64, "F64"),
            (good[:8] + b"{\"inputs\": [" + good[20:], "safetensors"),
        ]
        for body, word in cases:
            with self.subTest(word=word):
                self.assertError(D.post("/v1/models/%s/batches" % name, body=body,
                                        content_type="application/octet-stream"), 400, word,
                                 "safetensors")
        self.assertEqual(self.snapshot(name), before)

    def test_names_and_fields(self):
        name = self.model()
        x, y, _ = data(4)
        p = "/v1/models/%s/train" % name
        before = self.snapshot(name)
        self.assertError(self.post_st(p, {"inputs": x, "targetz": y}), 400, "targetz", "did you mean")
        self.assertError(self.post_st(p, {"inputs": x}), 400, "targets", "missing")
        self.assertError(self.post_st(p, {"inputs": x, "targets": y, "epochs": np.ones(1, np.float32)}),
                         400, "epochs", "__metadata__")
        self.assertError(self.post_st(p, {"inputs": x, "targets": y}, {"epoch": "2"}), 400,
                         "epoch", "did you mean")
        self.assertError(self.post_st(p, {"inputs": x, "targets": y}, {"epochs": "zero"}), 400,
                         "epochs")
        self.assertError(self.post_st(p, {"inputs": x, "targets": y}, {"targets": "[1]"}), 400,
                         "targets", "both")
        self.assertError(self.post_st("/v1/models/%s/predict" % name, {"inputs": x[:, :2].copy()}),
                         400, "inputs", "shape")
        big = np.zeros((100001, 1), np.float32)
        self.assertError(self.post_st("/v1/models/%s/predict" % name, {"inputs": big}), 400,
                         "inputs", "max-elements")
        # torch's own files carry "format": "pt": not a field, no error
        r = self.post_st("/v1/models/%s/predict" % name, {"inputs": x}, {"format": "pt"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(self.snapshot(name), before)

    def test_a_route_without_tensors_refuses_binary(self):
        x, _, _ = data(2)
        body = st.write({"inputs": x})
        msg = self.assertError(D.post("/v1/models", body=body, content_type="application/octet-stream"),
                               415, "application/json")
        self.assertNotIn("octet-stream (safetensors)", msg)
        name = self.model()
        self.assertError(D.post("/v1/models/%s/step" % name, body=body,
                                content_type="application/octet-stream"), 415, "application/json")

    def test_unknown_content_types(self):
        name = self.model()
        for ct in ("text/csv", "multipart/form-data; boundary=x", "application/xml", "image/png"):
            with self.subTest(ct=ct):
                msg = self.assertError(D.post("/v1/models/%s/predict" % name, body=b'{"inputs": [[1,2,3]]}',
                                              content_type=ct), 415, ct.split(";")[0])
                self.assertIn("application/octet-stream (safetensors)", msg)
        # JSON types with parameters or +json suffixes are JSON
        for ct in ("application/json; charset=utf-8", "application/vnd.x+json", "text/plain"):
            with self.subTest(ct=ct):
                r = D.post("/v1/models/%s/predict" % name, body=b'{"inputs": [[1,2,3]]}', content_type=ct)
                self.assertEqual(r.status, 200, r)


# ============================================================================ compression
class TestCompression(Base):
    def test_gzip_and_deflate_bodies(self):
        name = self.model()
        x, y, _ = data(8)
        js = json.dumps({"inputs": x.tolist()}).encode()
        want = D.ok("POST", "/v1/models/%s/predict" % name, {"inputs": x.tolist()})["outputs"]
        raw_deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        rd = raw_deflate.compress(js) + raw_deflate.flush()
        for coding, body in [("gzip", gzip.compress(js)), ("x-gzip", gzip.compress(js)),
                             ("deflate", zlib.compress(js)), ("deflate", rd),
                             ("gzip", gzip.compress(js[:40]) + gzip.compress(js[40:])),
                             ("identity", js)]:
            with self.subTest(coding=coding, n=len(body)):
                r = D.post("/v1/models/%s/predict" % name, body=body,
                           headers={"Content-Encoding": coding})
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.json()["outputs"], want)
        # safetensors inside gzip
        r = D.post("/v1/models/%s/predict" % name, body=gzip.compress(st.write({"inputs": x})),
                   headers={"Content-Encoding": "gzip", "Content-Type": "application/octet-stream"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["outputs"], want)

    def test_bad_compressed_bodies(self):
        name = self.model()
        before = self.snapshot(name)
        js = json.dumps({"inputs": [[1, 2, 3]], "targets": [[0, 1]]}).encode()
        gz = gzip.compress(js)
        p = "/v1/models/%s/batches" % name
        for body, coding, status, word in [
                (gz[:-12], "gzip", 400, "truncated"),
                (gz[:10] + b"\xff" * 20 + gz[30:], "gzip", 400, "gzip"),
                (gz + b"junk!", "gzip", 400, "after the end"),
                (js, "gzip", 400, "gzip"),
                (gz, "br", 415, "br"),
                (gz, "gzip, gzip", 415, "one coding"),
                (gz, None, 415, "Content-Encoding: gzip")]:
            with self.subTest(coding=coding, word=word):
                h = {"Content-Encoding": coding} if coding else {}
                r = D.post(p, body=body, headers=h, content_type="application/x-www-form-urlencoded")
                self.assertError(r, status, word)
                if status == 415 and coding:
                    self.assertIn("gzip", r.headers.get("accept-encoding", ""))
        self.assertEqual(self.snapshot(name), before)

    def test_zip_bomb_is_413(self):
        """--max-body (2 MiB here) bounds the body once inflated too."""
        name = self.model()
        bomb = gzip.compress(b" " * (64 << 20))   # 64 MiB of spaces in ~64 KiB
        self.assertLess(len(bomb), 200000)
        msg = self.assertError(D.post("/v1/models/%s/predict" % name, body=bomb,
                                      headers={"Content-Encoding": "gzip"}), 413, "decompressed")
        self.assertIn("--max-body", msg)
        ok = gzip.compress(b" " * (1 << 20) + json.dumps({"inputs": [[1, 2, 3]]}).encode())
        self.assertEqual(D.post("/v1/models/%s/predict" % name, body=ok,
                                headers={"Content-Encoding": "gzip"}).status, 200)

    def test_compressed_answers(self):
        name = self.model()
        x, _, _ = data(300)
        want = D.ok("POST", "/v1/models/%s/predict" % name, {"inputs": x.tolist()})
        for ae, coding, dec in [("gzip", "gzip", gzip.decompress),
                                ("deflate", "deflate", zlib.decompress),
                                ("br;q=1, gzip;q=0.5", "gzip", gzip.decompress),
                                ("deflate, gzip;q=0", "deflate", zlib.decompress),
                                ("*", "gzip", gzip.decompress)]:
            with self.subTest(ae=ae):
                r = D.post("/v1/models/%s/predict" % name, {"inputs": x.tolist()},
                           headers={"Accept-Encoding": ae})
                self.assertEqual(r.status, 200)
                self.assertEqual(r.headers.get("content-encoding"), coding)
                self.assertIn("Accept-Encoding", r.headers.get("vary", ""))
                body = dec(r.body)
                self.assertLess(len(r.body), len(body))
                self.assertEqual(json.loads(body), want)
        for ae in ("identity", "br", "gzip;q=0"):
            with self.subTest(ae=ae):
                r = D.post("/v1/models/%s/predict" % name, {"inputs": x.tolist()},
                           headers={"Accept-Encoding": ae})
                self.assertNotIn("content-encoding", r.headers)
                self.assertEqual(r.json(), want)
        # small answers go as they are
        r = D.get("/healthz", headers={"Accept-Encoding": "gzip"})
        self.assertNotIn("content-encoding", r.headers)
        # binary answers compress too
        r = D.post("/v1/models/%s/predict" % name, {"inputs": x.tolist()},
                   headers={"Accept-Encoding": "gzip", "Accept": "application/octet-stream"})
        self.assertEqual(r.headers.get("content-encoding"), "gzip")
        t, _ = st.read(gzip.decompress(r.body))
        self.assertTrue(np.array_equal(t["outputs"], np.asarray(want["outputs"], np.float32)))


if __name__ == "__main__":
    run_tests()
