"""Authentication: with a token configured, every reading and mutating endpoint refuses a
missing or wrong token with 401 and changes nothing; the health endpoints and the
dashboard's files stay open; the token never appears in the daemon's stderr log, in
/metrics or in an error message.  (The comparison itself is constant-time by code review,
see docs/reliability.md; no timing is measured here.)

  /usr/bin/python3 tests/hardening/test_auth.py BUILD/src/server/easytorchd
"""
import base64
import os
import unittest

from hlib import REG_SPEC, Daemon, reg_batch, run_tests, spec

TOKEN = "s3cr3t-T0ken_for-hardening.7f1c9a"
M = "/v1/models/m"
X, Y = reg_batch(0)

# Every route that needs the token: (method, path, body)
PROTECTED = [
    ("GET", "/metrics", None),
    ("GET", "/v1/models", None),
    ("POST", "/v1/models", spec(REG_SPEC, "other")),
    ("GET", M, None),
    ("DELETE", M, None),
    ("POST", M + "/predict", {"inputs": X}),
    ("POST", M + "/batches", {"inputs": X, "targets": Y}),
    ("POST", M + "/step", {}),
    ("POST", M + "/train", {"inputs": X, "targets": Y}),
    ("GET", M + "/gradients", None),
    ("POST", M + "/gradients", {"inputs": X, "targets": Y}),
    ("GET", M + "/parameters", None),
    ("GET", M + "/parameters?format=safetensors", None),
    ("PUT", M + "/parameters", {"parameters": {}}),
    ("GET", M + "/loss", None),
    ("GET", M + "/loss?since=0", None),
    ("POST", M + "/checkpoint", None),
    ("GET", "/v2", None),
    ("GET", "/v2/models/m", None),
    ("GET", "/v2/models/m/ready", None),
    ("POST", "/v2/models/m/infer", {"inputs": [{"name": "input", "shape": [1, 3],
                                                 "datatype": "FP32", "data": [1, 2, 3]}]}),
    ("GET", "/v1/models/nonexistent", None),
    ("DELETE", "/v1/models/nonexistent", None),
]
PUBLIC = ["/healthz", "/readyz", "/v2/health/live", "/v2/health/ready", "/"]

WRONG = [
    None, "", "Bearer", "Bearer ", "Bearer wrong", "Bearer " + TOKEN[:-1], "Bearer " + TOKEN + "x",
    "Bearer x" + TOKEN, "Bearer " + TOKEN.upper(), "Bearer " + TOKEN[:8], "Basic " +
    base64.b64encode(("user:" + TOKEN).encode()).decode(), TOKEN, "Token " + TOKEN,
    "Bearer " + TOKEN + "\t", "Bearer " + TOKEN[::-1], "BearerX " + TOKEN,
]


class AuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(token=TOKEN).start()
        cls.d.create(spec(REG_SPEC, "m", seed=3))
        cls.d.ok("POST", M + "/train", {"inputs": X, "targets": Y})

    @classmethod
    def tearDownClass(cls):
        log = cls.d.log()
        cls.d.cleanup()
        if TOKEN in log:  # after every test's requests, the whole log
            raise AssertionError("the token appears in easytorchd's stderr log")

    def state(self):
        d = self.d
        return (d.ok("GET", "/v1/models"), d.ok("GET", M), d.ok("GET", M + "/parameters"),
                d.ok("GET", M + "/gradients"),
                sorted(f for f in os.listdir(d.data_dir) if not f.startswith(".")))

    def test_missing_or_wrong_token_refused_everywhere(self):
        before = self.state()
        bad = []
        n = 0
        for method, path, body in PROTECTED:
            for auth in WRONG:
                headers = {} if auth is None else {"Authorization": auth}
                r = self.d.request(method, path, obj=body, auth=False, headers=headers)
                n += 1
                if r.status != 401:
                    bad.append("%s %s with %r -> %d" % (method, path, auth, r.status))
                    continue
                try:
                    msg = r.error()
                except AssertionError as e:
                    bad.append("%s %s: %s" % (method, path, e))
                    continue
                if TOKEN in msg or TOKEN[:8] in msg:
                    bad.append("%s %s: error message echoes the token: %r" % (method, path, msg))
                if "bearer" not in r.headers.get("www-authenticate", "").lower():
                    bad.append("%s %s: 401 without WWW-Authenticate: Bearer" % (method, path))
        self.assertFalse(bad, "\n".join(bad[:30]))
        self.assertEqual(before, self.state(), "a refused request changed the daemon's state")
        print("refused %d unauthenticated requests" % n)

    def test_right_token_accepted(self):
        for method, path, body in PROTECTED:
            if method == "DELETE" and path == M:
                continue  # keep the model for the other tests
            r = self.d.request(method, path, obj=body)
            self.assertNotEqual(r.status, 401, "%s %s refused the right token" % (method, path))
        # scheme names are case-insensitive (RFC 7235)
        r = self.d.request("GET", M, auth=False, headers={"Authorization": "bearer " + TOKEN})
        self.assertEqual(r.status, 200)

    def test_health_and_dashboard_need_no_token(self):
        for path in PUBLIC:
            r = self.d.get(path, auth=False)
            self.assertEqual(r.status, 200, "%s without a token -> %r" % (path, r))
            r = self.d.get(path, auth=False, headers={"Authorization": "Bearer wrong"})
            self.assertEqual(r.status, 200, "%s with a wrong token -> %r" % (path, r))

    def test_token_not_in_metrics_or_log(self):
        for _ in range(3):  # wrong tokens that contain the real one
            self.d.request("GET", M, auth=False, headers={"Authorization": "Bearer " + TOKEN + "x"})
        metrics = self.d.get("/metrics").body.decode()
        self.assertNotIn(TOKEN, metrics)
        self.assertNotIn(TOKEN, self.d.log(), "the token appears in easytorchd's stderr")


class TokenSourcesTest(unittest.TestCase):
    def check_daemon(self, d, token):
        try:
            d.start()
            self.assertEqual(d.request("GET", "/v1/models", auth=False).status, 401)
            r = d.request("GET", "/v1/models", auth=False,
                          headers={"Authorization": "Bearer " + token})
            self.assertEqual(r.status, 200, r)
            self.assertNotIn(token, d.log())
        finally:
            d.cleanup()

    def test_env_token(self):
        tok = "env-token-Zq81"
        self.check_daemon(Daemon(env={"EASYTORCH_TOKEN": tok}), tok)

    def test_token_file_with_newline(self):
        tok = "file-token-Pw33"
        d = Daemon(token=tok, token_file_newline=True)
        d.token = None  # send headers by hand
        self.check_daemon(d, tok)


if __name__ == "__main__":
    run_tests()
