#!/usr/bin/python3
"""The API document and its contract check: /openapi.json is docs/openapi.json, its type
schemas are the daemon's own tables (GET /v1/types), the /docs page is served with its
files, and the contract check (openapi_contract.py, run on every answer of every server
test) really rejects what the document does not describe.
Usage: test_openapi.py PATH/TO/easytorchd"""

import json
import os
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openapi_contract  # noqa: E402
import daemon as dm  # noqa: E402
from daemon import Daemon, DaemonTestCase, run_tests  # noqa: E402
from openapi_contract import ContractError  # noqa: E402

SPEC = {"layers": [{"type": "Linear", "in_features": 2, "out_features": 3}, {"type": "ReLU"},
                   {"type": "Linear", "in_features": 3, "out_features": 1}],
        "loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 0.1}, "seed": 3}


D = None  # the module's daemon, made and started by setUpModule
setUpModule, tearDownModule = dm.module_fixture(globals())


class TestDocument(DaemonTestCase):
    def test_served_document_is_the_repository_file(self):
        r = D.get("/openapi.json", auth=False)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.headers["content-type"], "application/json")
        self.assertEqual(r.body, openapi_contract.contract().raw,
                         "GET /openapi.json differs from docs/openapi.json (rebuild?)")
        doc = r.json()
        self.assertTrue(doc["openapi"].startswith("3.1."))

    def test_version_is_the_daemons(self):
        doc = openapi_contract.contract().doc
        self.assertEqual(doc["info"]["version"], D.ok("GET", "/v2")["version"])

    def test_types_match_the_schemas(self):
        """Every type the daemon takes has its schema, with exactly its fields in its order,
        and the document has no type the daemon does not take."""
        doc = openapi_contract.contract().doc
        schemas = doc["components"]["schemas"]
        types = D.ok("GET", "/v1/types")
        for family, union in (("layers", "Layer"), ("losses", "Loss"),
                              ("optimizers", "Optimizer"), ("schedulers", "Scheduler")):
            documented = {}
            for alt in schemas[union]["oneOf"]:
                s = schemas[alt["$ref"].split("/")[-1]]
                # an optimizer's param_groups is the spec's, not a constructor argument
                documented[s["properties"]["type"]["const"]] = [
                    k for k in s["properties"] if k != "type" and
                    not (family == "optimizers" and k == "param_groups")]
            daemon = {t["type"]: t["fields"] for t in types[family]}
            self.assertEqual(sorted(daemon), sorted(documented),
                             "%s: the daemon's types vs docs/openapi.json's %s schemas"
                             % (family, union))
            for name, fields in daemon.items():
                self.assertEqual(fields, documented[name],
                                 "%s %s: fields (constructor order) in docs/openapi.json"
                                 % (family, name))
            mapping = schemas[union]["discriminator"]["mapping"]
            self.assertEqual(sorted(mapping), sorted(daemon), "%s discriminator mapping" % union)

    def test_docs_page_and_files(self):
        r = D.get("/docs", auth=False)
        self.assertEqual(r.status, 200)
        self.assertTrue(r.headers["content-type"].startswith("text/html"))
        page = r.body.decode()
        for f in ("docs/apidocs.js", "docs/apidocs.css"):
            self.assertIn(f, page)
            a = D.get("/" + f, auth=False)
            self.assertEqual(a.status, 200, f)
            self.assertGreater(len(a.body), 500)
        self.assertNotIn("http://", page.replace("http://www.w3.org", ""),
                         "the page loads nothing from elsewhere")
        self.assertNotIn("https://", page)
        self.assertEqual(D.get("/docs/nope.js", auth=False).status, 404)
        self.assertEqual(D.get("/docs/openapi.json", auth=False).status, 404)


class TestTokenAndDocs(unittest.TestCase):
    def test_document_and_page_need_no_token(self):
        d = Daemon(token="s3cret")
        d.start()
        try:
            for p in ("/openapi.json", "/docs", "/docs/apidocs.js"):
                self.assertEqual(d.get(p, auth=False).status, 200, p)
            r = d.get("/v1/types", auth=False)
            self.assertEqual(r.status, 401)
            self.assertEqual(d.get("/v1/types").status, 200)
        finally:
            d.cleanup()


class TestContractCheck(unittest.TestCase):
    """The checker must fail on what the document does not say (it runs on every answer
    of every server test, so a checker that cannot fail would hide everything)."""

    def setUp(self):
        self.c = openapi_contract.contract()

    def ok(self, method, url, status, body, ct="application/json", req=None, req_ct=None):
        hdrs = {"Content-Type": req_ct} if req_ct else {}
        self.c.check(method, url, hdrs, req, status, {"content-type": ct},
                     body if isinstance(body, bytes) else json.dumps(body).encode())

    def bad(self, *a, **kw):
        with self.assertRaises(ContractError):
            self.ok(*a, **kw)

    def test_accepts_documented_answers(self):
        self.ok("GET", "/healthz", 200, {"status": "ok"})
        self.ok("GET", "/v1/models", 200, {"models": [{"name": "a", "step": 0, "loss": None,
                                                     "status": "ok"}]})
        self.ok("GET", "/v1/models/a", 404, {"error": "no model named \"a\""})
        self.ok("GET", "/nowhere", 404, {"error": "no route GET /nowhere"})
        self.ok("POST", "/v1/models/a/predict", 200, {"outputs": [[1.5, None]]},
                req=b'{"inputs": [[1, 2]]}')
        self.ok("HEAD", "/healthz", 200, b"")

    def test_rejects_undocumented_status(self):
        self.bad("GET", "/healthz", 418, {"error": "teapot"})
        self.bad("GET", "/v1/models", 409, {"error": "x"})

    def test_rejects_wrong_body(self):
        self.bad("GET", "/healthz", 200, {"status": "fine"})
        self.bad("GET", "/v1/models", 200, {"models": [{"name": "a", "step": 0}]})
        self.bad("GET", "/v1/models", 200, {"models": [], "extra": 1})
        self.bad("GET", "/v1/models/a", 404, {"message": "x"})
        self.bad("POST", "/v1/models/a/predict", 200, {"outputs": [[1, "x"]]})
        self.bad("POST", "/v1/models/a/predict", 200, {"outputs": [[True]]})
        self.bad("GET", "/healthz", 200, b"not json")

    def test_rejects_wrong_content_type_and_bodies(self):
        self.bad("GET", "/healthz", 200, {"status": "ok"}, ct="text/plain")
        self.bad("HEAD", "/healthz", 200, b'{"status":"ok"}')

    def test_rejects_undocumented_operation(self):
        self.bad("PATCH", "/v1/models/a", 200, {"name": "a"})
        self.bad("GET", "/v9/thing", 200, {"x": 1})

    def test_rejects_accepted_request_outside_the_schema(self):
        self.bad("POST", "/v1/models/a/predict", 200, {"outputs": [[1]]},
                 req=b'{"inputs": [[1]], "extra": true}')
        self.bad("POST", "/v1/models/a/predict", 200, {"outputs": [[1]]}, req=b'{"inputs": "x"}')
        self.bad("POST", "/v1/models/a/predict", 200, {"outputs": [[1]]}, req=b'{"inputs": [[1]]}',
                 req_ct="text/csv")

    def test_fast_tensor_checks_agree_with_the_schemas(self):
        from jsonschema import Draft202012Validator
        schemas = self.c.doc["components"]["schemas"]
        cases = [1, 1.5, None, [], [1, 2], [[1], [2]], [[None]], [True], ["x"], {"a": 1},
                 [[1, [2]]], [[[]]], True, "s"]
        for name, fast in (("TensorOut", lambda x: openapi_contract._nested(x, True)),
                           ("NestedNumbers", lambda x: openapi_contract._nested(x, False))):
            v = Draft202012Validator({"$ref": "#/components/schemas/" + name},
                                     resolver=self.c.resolver)
            for x in cases:
                self.assertEqual(v.is_valid(x), fast(x), "%s %r" % (name, x))
            self.assertIn(name, schemas)


if __name__ == "__main__":
    run_tests()
