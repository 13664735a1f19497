"""The contract check: every HTTP exchange an integration test makes through
daemon.Daemon.request() is checked against docs/openapi.json, the OpenAPI 3.1
document that is the source of truth of easytorchd's API (also served at
/openapi.json).

For each response:
  - the path and method must be an operation of the document (a path the
    document does not know may only answer 400, 404 or 405 with an error body);
  - its status must be listed in the operation's responses (no "default");
  - its Content-Type must be one of that response's media types, and a JSON
    body must validate against the media type's schema (JSON Schema 2020-12,
    python3-jsonschema);
  - HEAD answers carry no body, 204 neither.
For each request that got a 2xx answer, a JSON body must validate against the
operation's requestBody schema (what the daemon accepted, the document must
describe).

A failure raises ContractError (an AssertionError) naming the request, the
status and what does not match, so the test that made the request fails.

Adding an endpoint: give it its path/operation in docs/openapi.json with every
status it can answer (most reuse #/components/responses/...), and the server
suite checks it from then on.
"""

import gzip
import json
import os
import re
import urllib.parse
import zlib

try:
    import jsonschema
    from jsonschema import Draft202012Validator, validators
except ImportError as e:  # python3-jsonschema is in scripts/deps.sh TEST_PKGS
    raise ImportError("the contract check needs python3-jsonschema (apt-get install "
                      "python3-jsonschema): %s" % e)

HERE = os.path.dirname(os.path.abspath(__file__))
DOC_PATH = os.path.join(HERE, "..", "..", "docs", "openapi.json")
METHODS = ("get", "put", "post", "delete", "patch", "options", "head")


class ContractError(AssertionError):
    pass


# ---------------------------------------------------------------- fast tensor checks
# Tensors may hold millions of numbers; jsonschema walks ~10^5 nodes a second,
# so the recursive tensor schemas are checked by these loops instead (the same
# rules as the schemas in the document, which the loops are tested against).
def _is_num(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _nested(x, allow_null):
    stack = [x]
    while stack:
        v = stack.pop()
        if isinstance(v, list):
            stack.extend(v)
        elif not (_is_num(v) or (allow_null and v is None)):
            return False
    return True


FAST = {
    "#/components/schemas/TensorOut": lambda x: _nested(x, True),
    "#/components/schemas/NestedNumbers": lambda x: _nested(x, False),
}


def _ref(validator, ref, instance, schema):
    fast = FAST.get(ref)
    if fast is not None:
        if not fast(instance):
            yield jsonschema.ValidationError("%r is not a %s" % (_short(instance), ref.split("/")[-1]))
        return
    yield from Draft202012Validator.VALIDATORS["$ref"](validator, ref, instance, schema)


_Validator = validators.extend(Draft202012Validator, {"$ref": _ref})


def _short(x):
    s = json.dumps(x)
    return s if len(s) < 120 else s[:117] + "..."


def _base(ct):
    return (ct or "").split(";")[0].strip().lower()


class Contract:
    def __init__(self, path=DOC_PATH):
        with open(path, "rb") as f:
            self.raw = f.read()
        self.doc = json.loads(self.raw)
        self.resolver = jsonschema.RefResolver(base_uri="", referrer=self.doc)
        # templates: concrete segments win over {captures}, as OpenAPI says
        self.templates = []
        for p in self.doc["paths"]:
            rx = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(p)) + "$"
            literal = sum(1 for seg in p.split("/") if seg and not seg.startswith("{"))
            self.templates.append((-literal, p, re.compile(rx)))
        self.templates.sort()
        self.seen = set()  # (method, template, status) checked, for coverage reports

    def resolve(self, x):
        while isinstance(x, dict) and "$ref" in x:
            _, x = self.resolver.resolve(x["$ref"])
        return x

    def template(self, path):
        for _, p, rx in self.templates:
            if rx.match(path):
                return p
        return None

    def validate(self, schema, instance, what):
        v = _Validator(schema, resolver=self.resolver)
        errs = sorted(v.iter_errors(instance), key=lambda e: list(e.absolute_path))
        if errs:
            e = errs[0]
            where = "/".join(str(p) for p in e.absolute_path) or "(root)"
            raise ContractError("%s: at %s: %s (schema path %s)"
                                % (what, where, e.message[:400],
                                   "/".join(str(p) for p in e.absolute_schema_path)))

    def check(self, method, url, req_headers, req_body, status, headers, body):
        """One exchange; headers are lowercase-keyed for the response."""
        path = urllib.parse.urlsplit(url).path
        what = "%s %s -> %d" % (method, url[:120], status)
        tmpl = self.template(path)
        m = method.lower()
        item = self.doc["paths"].get(tmpl) if tmpl else None
        if m == "options":
            return  # CORS preflight: protocol level, described in info.description
        op = None
        if item is not None:
            op = item.get("get" if m == "head" else m)
        if op is None:
            if headers.get("content-encoding"):
                body = gzip.decompress(body) if headers["content-encoding"] == "gzip" else zlib.decompress(body)
            if status not in (400, 404, 405):
                raise ContractError("%s: %s is not an operation of docs/openapi.json (add it)"
                                    % (what, "%s %s" % (method, tmpl or path)))
            self._check_error_body(what, headers, body)
            return
        self.seen.add((m, tmpl, status))
        coding = headers.get("content-encoding")
        if coding and body:
            try:
                body = gzip.decompress(body) if coding == "gzip" else zlib.decompress(body)
            except (OSError, zlib.error, EOFError) as e:
                raise ContractError("%s: Content-Encoding %s but the body does not decode: %s"
                                    % (what, coding, e))
        responses = op.get("responses", {})
        r = responses.get(str(status))
        if r is None:
            raise ContractError("%s: status %d is not documented for %s %s in docs/openapi.json "
                                "(documented: %s)" % (what, status, m.upper(), tmpl,
                                                      ", ".join(sorted(responses))))
        r = self.resolve(r)
        if m == "head" or status == 204:
            if body:
                raise ContractError("%s: a %s answer has a body of %d bytes"
                                    % (what, "HEAD" if m == "head" else "204", len(body)))
        else:
            self._check_content(what, r, headers, body)
        if 200 <= status < 300:
            self._check_request(what, op, req_headers, req_body)

    def _check_error_body(self, what, headers, body):
        if _base(headers.get("content-type")) != "application/json":
            raise ContractError("%s: an error answer is not application/json" % what)
        self.validate({"$ref": "#/components/schemas/Error"}, _json(what, body), what)

    def _check_content(self, what, r, headers, body):
        content = r.get("content")
        if not content:
            if body:
                raise ContractError("%s: the document gives no body for this answer, got %d bytes"
                                    % (what, len(body)))
            return
        ct = headers.get("content-type", "")
        media = None
        for k in content:
            if k == "*/*" or _base(k) == _base(ct):
                media = content[k]
                break
        if media is None:
            raise ContractError("%s: Content-Type %r is not documented (documented: %s)"
                                % (what, ct, ", ".join(content)))
        if _base(ct) == "application/json" and "schema" in media:
            self.validate(media["schema"], _json(what, body), what + " (response body)")
        elif "inference-header-content-length" in headers and "application/json" in content:
            # the OIP binary extension: the JSON header is the JSON answer's shape
            n = int(headers["inference-header-content-length"])
            self.validate(content["application/json"]["schema"], _json(what, body[:n]),
                          what + " (binary answer's JSON header)")

    def _check_request(self, what, op, req_headers, req_body):
        rb = self.resolve(op.get("requestBody")) if op.get("requestBody") else None
        if not req_body:
            if rb and rb.get("required"):
                raise ContractError("%s: accepted without a body, but the document says the "
                                    "body is required" % what)
            return
        if rb is None:
            return  # bodies of routes that take none are read and dropped
        hdrs = {k.lower(): v for k, v in (req_headers or {}).items()}
        if hdrs.get("content-encoding", "identity").lower() != "identity":
            return  # the schema describes the decoded body; the daemon decoded it
        ct = _base(hdrs.get("content-type"))
        content = rb.get("content", {})
        raw = req_body if isinstance(req_body, bytes) else req_body.encode()
        if ct in ("", "application/x-www-form-urlencoded", "text/plain"):
            # read as JSON whatever the type says (curl -d), or as safetensors when the
            # bytes are a safetensors file (the daemon sniffs them)
            sniffed = len(raw) >= 10 and raw[7] == 0 and raw[8:9] == b"{"
            ct = "application/octet-stream" if sniffed else "application/json"
        if ct.endswith("+json"):
            ct = "application/json"  # structured-syntax suffix: JSON (info.description)
        if "inference-header-content-length" in hdrs:
            # the OIP binary extension: its JSON header against the JSON body's schema
            n = int(hdrs["inference-header-content-length"])
            raw, ct = raw[:n], "application/json"
        if ct not in content:
            raise ContractError("%s: accepted a %s body, which the document does not list "
                                "(listed: %s)" % (what, ct, ", ".join(content)))
        media = content[ct]
        if ct == "application/json" and "schema" in media:
            try:
                obj = json.loads(raw.decode("utf-8"))
            except ValueError:
                raise ContractError("%s: the daemon accepted a request body that is not JSON"
                                    % what)
            self.validate(media["schema"], obj, what + " (accepted request body)")


def _json(what, body):
    try:
        return json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ContractError("%s: body is not JSON: %r" % (what, body[:200]))


_CONTRACT = None


def contract():
    global _CONTRACT
    if _CONTRACT is None:
        _CONTRACT = Contract()
    return _CONTRACT
