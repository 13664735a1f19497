#!/usr/bin/python3
"""Open Inference Protocol (KServe v2) completeness: versioned routes, the model repository
index, datatypes FP32/FP64/INT32/INT64 (and the other numeric ones) converted, requested
outputs by name, input names checked, and the binary tensor extension (both directions) --
over raw HTTP, and with the real OIP client, NVIDIA's tritonclient (../shared/vendor, run
unchanged; the test says it skipped where that folder is absent).
Usage: test_oip.py PATH/TO/easytorchd"""

import gzip
import json
import os
import struct
import sys
import unittest

import numpy as np

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from daemon import Daemon, DaemonTestCase, run_tests  # noqa: E402

D = None
SPEC = {"layers": [{"type": "Linear", "in_features": 3, "out_features": 4}, {"type": "Tanh"},
                   {"type": "Linear", "in_features": 4, "out_features": 2}],
        "loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 0.1}, "seed": 5}


def vendor_dir():
    """../shared/vendor beside the checkout (CI), or where $EASYTORCH_SHARED points."""
    root = os.path.abspath(os.path.join(HERE, "..", ".."))
    for d in (os.environ.get("EASYTORCH_SHARED"), os.path.join(root, "..", "shared"),
              os.path.join(root, "..", "..", "shared")):
        if d and os.path.isdir(os.path.join(d, "vendor", "tritonclient")):
            return os.path.join(d, "vendor")
    return None


def setUpModule():
    global D
    D = Daemon(extra_args=["--max-elements", "100000"])
    D.start()
    DaemonTestCase.daemon = D
    D.create(dict(SPEC, name="m"))


def tearDownModule():
    if D is not None:
        D.cleanup()


X = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75], [0.0, 3.0, 1.0]], np.float32)


def predict(x):
    return np.asarray(D.predict("m", np.asarray(x, np.float32).tolist()), np.float32)


def binary_request(inputs, outputs=None, parameters=None, extra=b""):
    """(body, header length) of an OIP request with binary inputs [(name, dtype, ndarray)]."""
    req = {"inputs": []}
    blobs = []
    for name, dt, a in inputs:
        b = np.ascontiguousarray(a).tobytes()
        req["inputs"].append({"name": name, "shape": list(a.shape), "datatype": dt,
                              "parameters": {"binary_data_size": len(b)}})
        blobs.append(b)
    if outputs is not None:
        req["outputs"] = outputs
    if parameters is not None:
        req["parameters"] = parameters
    js = json.dumps(req).encode()
    return js + b"".join(blobs) + extra, len(js)


def split_binary(r):
    """(json header, bytes) of a binary answer."""
    n = int(r.headers["inference-header-content-length"])
    return json.loads(r.body[:n]), r.body[n:]


class TestRoutes(DaemonTestCase):
    def test_server_metadata_lists_the_binary_extension(self):
        self.assertIn("binary_tensor_data", D.ok("GET", "/v2")["extensions"])

    def test_versions(self):
        md = D.ok("GET", "/v2/models/m")
        self.assertEqual(md["versions"], ["1"])
        for v in md["versions"]:
            self.assertEqual(D.ok("GET", "/v2/models/m/versions/%s" % v), md)
            self.assertEqual(D.ok("GET", "/v2/models/m/versions/%s/ready" % v),
                             {"name": "m", "ready": True})
            r = D.ok("POST", "/v2/models/m/versions/%s/infer" % v, {"inputs": [
                {"name": "input", "shape": [3, 3], "datatype": "FP32", "data": X.ravel().tolist()}]})
            self.assertEqual(r["model_version"], v)
            self.assertTrue(np.array_equal(np.asarray(r["outputs"][0]["data"], np.float32),
                                           predict(X).ravel()))
        for p in ("/v2/models/m/versions/2", "/v2/models/m/versions/2/ready",
                  "/v2/models/m/versions/0"):
            with self.subTest(p=p):
                msg = self.assertError(D.get(p), 404, "version")
                self.assertIn("versions: 1", msg)
        self.assertError(D.post("/v2/models/m/versions/2/infer", {"inputs": []}), 404, "version")
        self.assertError(D.get("/v2/models/nope/versions/1"), 404, "nope")

    def test_repository_index(self):
        for body in (None, {}, {"ready": True}, {"ready": False}):
            with self.subTest(body=body):
                r = D.ok("POST", "/v2/repository/index", body)
                self.assertIn({"name": "m", "version": "1", "state": "READY", "reason": ""}, r)
                names = [e["name"] for e in r]
                self.assertEqual(sorted(names), sorted(m["name"] for m in D.ok("GET", "/v1/models")["models"]))
        self.assertError(D.post("/v2/repository/index", {"ready": "yes"}), 400, "ready")
        self.assertError(D.post("/v2/repository/index", {"redy": True}), 400, "redy")


class TestJsonInfer(DaemonTestCase):
    def infer(self, body, status=200):
        r = D.post("/v2/models/m/infer", body)
        self.assertEqual(r.status, status, r)
        return r

    def test_datatypes_are_converted(self):
        want = predict(np.round(X)).ravel()
        xi = np.round(X).astype(np.int64)
        for dt in ("FP32", "FP64", "FP16", "BF16", "INT8", "INT16", "INT32", "INT64"):
            with self.subTest(dt=dt):
                r = self.infer({"inputs": [{"name": "input", "shape": [3, 3], "datatype": dt,
                                            "data": xi.tolist()}]}).json()
                self.assertTrue(np.array_equal(np.asarray(r["outputs"][0]["data"], np.float32), want))
        r = self.infer({"inputs": [{"name": "input", "shape": [3, 3], "datatype": "UINT8",
                                    "data": [0, 1, 2, 3, 4, 5, 6, 7, 255]}]})
        self.assertEqual(r.json()["outputs"][0]["shape"], [3, 2])

    def test_values_outside_their_datatype(self):
        base = {"name": "input", "shape": [1, 3]}
        for dt, data, word in [("INT32", [1, 2.5, 3], "INT32"), ("INT8", [1, 300, 3], "INT8"),
                               ("UINT8", [-1, 0, 0], "UINT8"), ("FP16", [1e5, 0, 0], "FP16"),
                               ("FP64", [1e300, 0, 0], "float32"), ("BOOL", [True, False, True], "BOOL"),
                               ("BYTES", ["a", "b", "c"], "BYTES"), ("FP8", [1, 2, 3], "datatype"),
                               ("FP32", [1, "x", 3], "number")]:
            with self.subTest(dt=dt):
                self.assertError(D.post("/v2/models/m/infer", {"inputs": [dict(base, datatype=dt, data=data)]}),
                                 400, word)

    def test_names_are_checked(self):
        d = X.ravel().tolist()
        inp = {"name": "input", "shape": [3, 3], "datatype": "FP32", "data": d}
        cases = [
            ({"inputs": [dict(inp, name="inputs")]}, ("inputs", "did you mean")),
            ({"inputs": [{k: v for k, v in inp.items() if k != "name"}]}, ("name", "missing")),
            ({"inputs": [inp, inp]}, ("twice",)),
            ({"inputs": [inp], "outputs": [{"name": "out"}]}, ("out", "outputs")),
            ({"inputs": [inp], "outputs": [{"name": "output"}, {"name": "output"}]}, ("twice",)),
            ({"inputs": [inp], "outputs": [{"name": "output", "parameters": {"classification": 2}}]},
             ("classification",)),
            ({"inputs": [inp], "outputs": [{"nam": "output"}]}, ("nam",)),
            ({"inputs": [dict(inp, shape=[3, 2])]}, ("shape",)),
            ({"inputs": [dict(inp, shape=[9])]}, ("input", "shape")),
            ({"inputs": [dict(inp, data=d[:5])]}, ("shape", "data")),
            ({"inputs": [dict(inp, data=[d[:3], d[3:6], d[6:8]])]}, ("depth", "elements")),
            ({"inputs": [dict(inp, data=[d[:3], d[3:6]])]}, ("depth", "elements")),
            ({"inputs": [dict(inp, data=[[[1], [2], [3]]] * 3)]}, ("deeper",)),
            ({"inputs": [dict(inp, data=[d[:3], 4, d[6:]])]}, ("nested",)),
            ({"inputs": [dict(inp, parameters={"binary_data_size": 36})]}, ("Inference-Header-Content-Length",)),
            ({"inputs": [inp], "parameters": {"binary_data_output": "yes"}}, ("binary_data_output",)),
            ({"inputs": []}, ("inputs",)),
            ({"inputs": [inp], "extra": 1}, ("extra",)),
        ]
        for body, words in cases:
            with self.subTest(body=json.dumps(body)[:90]):
                self.assertError(D.post("/v2/models/m/infer", body), 400, *words)

    def test_requested_outputs(self):
        inp = {"name": "input", "shape": [3, 3], "datatype": "FP32", "data": X.tolist()}
        r = self.infer({"inputs": [inp], "outputs": [{"name": "output"}]}).json()
        self.assertEqual([o["name"] for o in r["outputs"]], ["output"])
        self.assertIn("data", r["outputs"][0])


class TestBinaryExtension(DaemonTestCase):
    def post(self, body, hlen, headers=None, **kw):
        h = {"Inference-Header-Content-Length": str(hlen)}
        h.update(headers or {})
        return D.request("POST", "/v2/models/m/infer", body=body, headers=h,
                         content_type="application/octet-stream", **kw)

    def test_binary_in_and_out(self):
        want = predict(X)
        body, n = binary_request([("input", "FP32", X)], parameters={"binary_data_output": True})
        r = self.post(body, n)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["content-type"], "application/octet-stream")
        head, data = split_binary(r)
        out = head["outputs"][0]
        self.assertEqual(out["parameters"], {"binary_data_size": want.nbytes})
        self.assertNotIn("data", out)
        self.assertEqual(out["shape"], [3, 2])
        self.assertTrue(np.array_equal(np.frombuffer(data, "<f4").reshape(3, 2), want))
        # binary in, JSON out
        body, n = binary_request([("input", "FP32", X)])
        r = self.post(body, n)
        self.assertEqual(r.headers["content-type"], "application/json")
        self.assertNotIn("inference-header-content-length", r.headers)
        self.assertTrue(np.array_equal(np.asarray(r.json()["outputs"][0]["data"], np.float32),
                                       want.ravel()))
        # JSON in, binary out per output
        js = json.dumps({"inputs": [{"name": "input", "shape": [3, 3], "datatype": "FP32",
                                     "data": X.tolist()}],
                         "outputs": [{"name": "output", "parameters": {"binary_data": True}}]}).encode()
        r = self.post(js, len(js))
        head, data = split_binary(r)
        self.assertTrue(np.array_equal(np.frombuffer(data, "<f4").reshape(3, 2), want))
        # binary_data_output overridden per output
        body, n = binary_request([("input", "FP32", X)], outputs=[
            {"name": "output", "parameters": {"binary_data": False}}],
            parameters={"binary_data_output": True})
        self.assertIn("data", self.post(body, n).json()["outputs"][0])

    def test_binary_datatypes(self):
        xr = np.round(X)
        want = predict(xr)
        for dt, a in [("FP64", xr.astype("<f8")), ("FP16", xr.astype("<f2")),
                      ("INT32", xr.astype("<i4")), ("INT64", xr.astype("<i8")),
                      ("INT8", xr.astype("i1")), ("INT16", xr.astype("<i2")),
                      ("UINT8", np.abs(xr).astype("u1")), ("UINT16", np.abs(xr).astype("<u2")),
                      ("UINT32", np.abs(xr).astype("<u4")), ("UINT64", np.abs(xr).astype("<u8")),
                      ("BF16", (xr.astype("<f4").view("<u4") >> 16).astype("<u2"))]:
            with self.subTest(dt=dt):
                body, n = binary_request([("input", dt, a)])
                r = self.post(body, n)
                self.assertEqual(r.status, 200, r)
                w = want if not dt.startswith("UINT") else predict(np.abs(xr))
                self.assertTrue(np.array_equal(np.asarray(r.json()["outputs"][0]["data"], np.float32),
                                               w.ravel()), dt)

    def test_fp16_subnormals_and_specials(self):
        h = np.array([[6e-8, -6e-5, 65504.0]], "<f2")
        body, n = binary_request([("input", "FP16", h)])
        r = self.post(body, n)
        want = predict(h.astype(np.float32))
        self.assertTrue(np.array_equal(np.asarray(r.json()["outputs"][0]["data"], np.float32), want.ravel()))

    def test_nan_passes_as_in_fp32(self):
        a = np.array([[np.nan, 0, 0]], "<f4")
        body, n = binary_request([("input", "FP32", a)])
        r = self.post(body, n)
        self.assertEqual(r.json()["outputs"][0]["data"], [None, None])

    def test_framing_errors(self):
        body, n = binary_request([("input", "FP32", X)])
        js = body[:n]
        cases = [
            (body, str(len(body) + 1), "Inference-Header-Content-Length"),
            (body, "-1", "Inference-Header-Content-Length"),
            (body, "12abc", "Inference-Header-Content-Length"),
            (body, "", "Inference-Header-Content-Length"),
            (body, str(n - 5), "JSON"),
            (body[:-4], str(n), "binary_data_size"),
            (body + b"\0\0\0\0", str(n), "binary data after"),
            (js.replace(b'"binary_data_size": 36', b'"binary_data_size": 32') + body[n:], str(n - 0), "need"),
        ]
        for b, hl, word in cases:
            with self.subTest(hl=hl, word=word):
                r = D.request("POST", "/v2/models/m/infer", body=b,
                              headers={"Inference-Header-Content-Length": hl},
                              content_type="application/octet-stream")
                self.assertError(r, 400, word)
        both = json.loads(js)
        both["inputs"][0]["data"] = X.ravel().tolist()
        b2 = json.dumps(both).encode()
        self.assertError(self.post(b2 + body[n:], len(b2)), 400, "not both")
        ints = np.array([[1, 2, 3]], "<i8")
        for dt, a, word in [("FP64", np.array([[1e300, 0, 0]], "<f8"), "float32"),
                            ("BOOL", np.array([[1, 0, 1]], "u1"), "BOOL")]:
            b3, n3 = binary_request([("input", dt, a)])
            self.assertError(self.post(b3, n3), 400, word)
        del ints

    def test_compressed_binary(self):
        body, n = binary_request([("input", "FP32", X)], parameters={"binary_data_output": True})
        r = self.post(gzip.compress(body), n, headers={"Content-Encoding": "gzip",
                                                       "Accept-Encoding": "gzip"})
        self.assertEqual(r.status, 200, r)
        plain = gzip.decompress(r.body) if r.headers.get("content-encoding") == "gzip" else r.body
        hl = int(r.headers["inference-header-content-length"])
        self.assertTrue(np.array_equal(np.frombuffer(plain[hl:], "<f4").reshape(3, 2), predict(X)))


VENDOR = vendor_dir()


@unittest.skipIf(VENDOR is None, "tritonclient not found (../shared/vendor): skipped")
class TestTritonClient(DaemonTestCase):
    """NVIDIA's Triton HTTP client, unchanged, as an OIP user would run it."""

    @classmethod
    def setUpClass(cls):
        sys.path.insert(0, VENDOR)
        import tritonclient.http as httpclient
        cls.http = httpclient
        cls.c = httpclient.InferenceServerClient(url="%s:%d" % (D.host, D.port))

    @classmethod
    def tearDownClass(cls):
        cls.c.close()

    def test_health_and_metadata(self):
        c = self.c
        self.assertTrue(c.is_server_live())
        self.assertTrue(c.is_server_ready())
        self.assertIn("binary_tensor_data", c.get_server_metadata()["extensions"])
        md = c.get_model_metadata("m")
        self.assertEqual(md["inputs"][0]["name"], "input")
        self.assertEqual(md["outputs"][0]["shape"], [-1, 2])
        for v in md["versions"]:
            self.assertEqual(c.get_model_metadata("m", model_version=v), md)
            self.assertTrue(c.is_model_ready("m", model_version=v))
        self.assertTrue(c.is_model_ready("m"))
        idx = c.get_model_repository_index()
        self.assertIn({"name": "m", "version": "1", "state": "READY", "reason": ""}, idx)

    def test_json_and_binary_infer(self):
        http = self.http
        want = predict(X)
        for bin_in in (False, True):
            for bin_out in (False, True):
                with self.subTest(bin_in=bin_in, bin_out=bin_out):
                    inp = http.InferInput("input", list(X.shape), "FP32")
                    inp.set_data_from_numpy(X, binary_data=bin_in)
                    out = http.InferRequestedOutput("output", binary_data=bin_out)
                    r = self.c.infer("m", [inp], outputs=[out], request_id="q7")
                    got = r.as_numpy("output")
                    self.assertEqual(got.dtype, np.float32)
                    self.assertTrue(np.array_equal(got, want))
                    self.assertEqual(r.get_response()["id"], "q7")
        # no outputs named: the client asks for all, binary
        inp = http.InferInput("input", list(X.shape), "FP32")
        inp.set_data_from_numpy(X)
        r = self.c.infer("m", [inp], model_version="1")
        self.assertTrue(np.array_equal(r.as_numpy("output"), want))
        self.assertEqual(r.get_response()["model_version"], "1")

    def test_datatypes(self):
        http = self.http
        xr = np.round(X)
        want = predict(xr)
        for dt, a in [("FP64", xr.astype(np.float64)), ("INT32", xr.astype(np.int32)),
                      ("INT64", xr.astype(np.int64)), ("FP16", xr.astype(np.float16))]:
            for binary in (False, True):
                with self.subTest(dt=dt, binary=binary):
                    inp = http.InferInput("input", list(a.shape), dt)
                    inp.set_data_from_numpy(a, binary_data=binary)
                    r = self.c.infer("m", [inp])
                    self.assertTrue(np.array_equal(r.as_numpy("output"), want))

    def test_compression(self):
        http = self.http
        big = np.random.default_rng(0).standard_normal((500, 3)).astype(np.float32)
        want = predict(big)
        for alg in ("gzip", "deflate"):
            with self.subTest(alg=alg):
                inp = http.InferInput("input", list(big.shape), "FP32")
                inp.set_data_from_numpy(big, binary_data=True)
                r = self.c.infer("m", [inp], request_compression_algorithm=alg,
                                 response_compression_algorithm=alg)
                self.assertTrue(np.array_equal(r.as_numpy("output"), want))

    def test_errors_come_back_as_exceptions(self):
        http = self.http
        from tritonclient.utils import InferenceServerException
        inp = http.InferInput("inputt", list(X.shape), "FP32")
        inp.set_data_from_numpy(X)
        with self.assertRaises(InferenceServerException) as e:
            self.c.infer("m", [inp])
        self.assertIn("did you mean", str(e.exception))
        inp = http.InferInput("input", list(X.shape), "FP32")
        inp.set_data_from_numpy(X)
        with self.assertRaises(InferenceServerException) as e:
            self.c.infer("m", [inp], outputs=[http.InferRequestedOutput("logits")])
        self.assertIn("logits", str(e.exception))
        with self.assertRaises(InferenceServerException) as e:
            self.c.get_model_metadata("m", model_version="9")
        self.assertIn("version", str(e.exception))
        with self.assertRaises(InferenceServerException):
            self.c.get_model_metadata("nope")

    def test_async_client(self):
        import asyncio
        import tritonclient.http.aio as aioclient

        async def go():
            c = aioclient.InferenceServerClient(url="%s:%d" % (D.host, D.port))
            try:
                inp = aioclient.InferInput("input", list(X.shape), "FP32")
                inp.set_data_from_numpy(X, binary_data=True)
                r = await c.infer("m", [inp])
                return r.as_numpy("output"), await c.get_model_metadata("m", "1")
            finally:
                await c.close()
        out, md = asyncio.run(go())
        self.assertTrue(np.array_equal(out, predict(X)))
        self.assertEqual(md["name"], "m")


if __name__ == "__main__":
    if VENDOR is None:
        print("SKIP: tritonclient (../shared/vendor) is absent: the TestTritonClient cases "
              "are skipped")
    run_tests()
