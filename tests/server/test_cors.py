#!/usr/bin/python3
"""CORS: --cors-origin (repeatable, or EASYTORCH_CORS_ORIGIN) lets browser scripts from those
origins call the API: preflight OPTIONS answered 204 before authentication, the allowed origin
echoed on every answer (errors included, so scripts can read them), nothing for other origins
or without the flag; bad origins refused at startup. (A real browser doing this is in
tests/clients/test_apidocs.mjs.)  Usage: test_cors.py PATH/TO/easytorchd"""

import os
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import Daemon, run_tests  # noqa: E402

A = "http://app.example:3000"
B = "https://b.example"
SPEC = {"name": "m", "layers": [{"type": "Linear", "in_features": 2, "out_features": 1}],
        "loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 0.1}, "seed": 1}


class CorsCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(token="tok", extra_args=["--cors-origin", A, "--cors-origin", B])
        cls.d.start()
        cls.d.create(SPEC)

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def preflight(self, path, origin, method="POST", req_headers="authorization, content-type",
                  d=None):
        h = {"Origin": origin, "Access-Control-Request-Method": method}
        if req_headers:
            h["Access-Control-Request-Headers"] = req_headers
        return (d or self.d).request("OPTIONS", path, headers=h, auth=False)

    def test_preflight_allowed_origin_needs_no_token(self):
        for origin in (A, B):
            r = self.preflight("/v1/models/m/predict", origin)
            self.assertEqual(r.status, 204, r)
            self.assertEqual(r.body, b"")
            self.assertEqual(r.headers["access-control-allow-origin"], origin)
            self.assertIn("POST", r.headers["access-control-allow-methods"])
            self.assertEqual(r.headers["access-control-allow-headers"], "authorization, content-type")
            self.assertEqual(r.headers["access-control-max-age"], "600")
            self.assertIn("Origin", r.headers["vary"])
        r = self.preflight("/v1/models/m", A, method="DELETE", req_headers=None)
        self.assertEqual(r.status, 204)
        self.assertEqual(r.headers["allow"], "GET, DELETE, PATCH, OPTIONS")
        self.assertIn("Authorization", r.headers["access-control-allow-headers"])

    def test_preflight_other_origin_gets_no_cors_headers(self):
        for origin in ("http://evil.example", "http://app.example:3001", "null", A + "/"):
            with self.subTest(origin=origin):
                r = self.preflight("/v1/models/m/predict", origin)
                self.assertEqual(r.status, 204)
                self.assertNotIn("access-control-allow-origin", r.headers)
                self.assertNotIn("access-control-allow-methods", r.headers)

    def test_answers_carry_the_origin(self):
        r = self.d.get("/v1/models", headers={"Origin": A})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["access-control-allow-origin"], A)
        self.assertIn("Inference-Header-Content-Length", r.headers["access-control-expose-headers"])
        self.assertIn("Origin", r.headers["vary"])
        # errors too, so the page can show them
        for method, path, auth, status in [("GET", "/v1/models", False, 401),
                                           ("GET", "/v1/models/nope", True, 404),
                                           ("GET", "/nowhere", True, 404),
                                           ("PATCH", "/v1/models", True, 405),
                                           ("POST", "/v1/models/m/predict", True, 400)]:
            with self.subTest(path=path, status=status):
                r = self.d.request(method, path, headers={"Origin": B}, auth=auth,
                                   body=b"{" if method == "POST" else None)
                self.assertEqual(r.status, status)
                self.assertEqual(r.headers["access-control-allow-origin"], B)
        r = self.d.get("/v1/models", headers={"Origin": "http://evil.example"})
        self.assertEqual(r.status, 200)
        self.assertNotIn("access-control-allow-origin", r.headers)
        r = self.d.get("/v1/models")
        self.assertNotIn("access-control-allow-origin", r.headers)

    def test_options_on_unknown_path(self):
        r = self.preflight("/v1/nothing", A)
        self.assertEqual(r.status, 404)
        self.assertEqual(r.headers["access-control-allow-origin"], A)


class CorsConfig(unittest.TestCase):
    def test_without_the_flag_no_cors_at_all(self):
        d = Daemon()
        d.start()
        try:
            r = d.request("OPTIONS", "/v1/models", headers={
                "Origin": A, "Access-Control-Request-Method": "GET"})
            self.assertEqual(r.status, 204)
            self.assertEqual(r.headers["allow"], "GET, POST, OPTIONS")
            self.assertNotIn("access-control-allow-origin", r.headers)
            self.assertNotIn("vary", r.headers)
            r = d.get("/v1/models", headers={"Origin": A})
            self.assertNotIn("access-control-allow-origin", r.headers)
        finally:
            d.cleanup()

    def test_star_and_environment(self):
        d = Daemon(env={"EASYTORCH_CORS_ORIGIN": "%s, %s" % (A, B)})
        d.start()
        try:
            for o in (A, B):
                self.assertEqual(d.get("/healthz", headers={"Origin": o})
                                 .headers.get("access-control-allow-origin"), o)
        finally:
            d.cleanup()
        d = Daemon(extra_args=["--cors-origin", "*"])
        d.start()
        try:
            r = d.request("OPTIONS", "/v1/models", headers={
                "Origin": "http://anything.example", "Access-Control-Request-Method": "POST"})
            self.assertEqual(r.headers["access-control-allow-origin"], "*")
            self.assertEqual(d.get("/v1/models", headers={"Origin": "http://x.example"})
                             .headers["access-control-allow-origin"], "*")
        finally:
            d.cleanup()

    def test_bad_origins_are_refused(self):
        for o in ("app.example", "http://x/", "ftp://x", "https://a.example/path", ""):
            with self.subTest(origin=o):
                p = subprocess.run([dm.daemon_path(), "--cors-origin", o, "--listen", "127.0.0.1:0",
                                    "--data-dir", "/nonexistent/never-created"],
                                   capture_output=True, text=True, timeout=60)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn("origin", p.stderr)


if __name__ == "__main__":
    run_tests()
