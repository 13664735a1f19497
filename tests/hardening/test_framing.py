"""HTTP framing as a strict server reads it (RFC 9112), on raw sockets.

Every case is sent twice: as the first request of a new connection (checked on its raw
bytes by the daemon's acceptor before libmicrohttpd sees the socket) and as the second
request of a keep-alive connection (parsed by libmicrohttpd, then checked by the daemon's
request check).  Each must get the status the RFC asks for with an {"error": ...} JSON body,
and the connection must be closed where the RFC says so.  The few cases libmicrohttpd
0.9.75 answers itself on a later request (a header line without a colon, an HTTP/2 request
line, a malformed Content-Length or chunked body) keep libmicrohttpd's status and HTML page:
those are checked as what they are and documented in docs/server.md ("HTTP framing").
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True

from hlib import REG_SPEC, Daemon, run_tests, spec  # noqa: E402
import rawhttp  # noqa: E402
import unittest  # noqa: E402

GOOD = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"

# (name, request bytes, expected status, connection closed after it, JSON on a later request)
CASES = [
    ("no Host", b"GET /healthz HTTP/1.1\r\n\r\n", 400, True, True),
    ("two Host lines", b"GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, True, True),
    ("space before the colon", b"GET /healthz HTTP/1.1\r\nHost : a\r\n\r\n", 400, True, True),
    ("invalid Host value", b"GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n", 400, True, True),
    ("Host with a path", b"GET /healthz HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, True, True),
    ("gzip, chunked", b"POST /v1/models/m/predict HTTP/1.1\r\nHost: x\r\n"
     b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501, True, True),
    ("xchunked", b"POST /v1/models/m/predict HTTP/1.1\r\nHost: x\r\n"
     b"Transfer-Encoding: xchunked\r\n\r\n", 400, True, True),
    ("chunked twice", b"POST /v1/models/m/predict HTTP/1.1\r\nHost: x\r\n"
     b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400, True, True),
    ("chunked not last", b"POST /v1/models/m/predict HTTP/1.1\r\nHost: x\r\n"
     b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400, True, True),
    ("Content-Length twice, different", b"POST /v1/models/m/predict HTTP/1.1\r\nHost: x\r\n"
     b"Content-Length: 3\r\nContent-Length: 4\r\n\r\n{}  ", 400, True, True),
    ("control byte in a value", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n",
     400, True, True),
    ("target too long", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, True, True),
    ("head too long", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 17000 + b"\r\n\r\n",
     431, True, True),
    # libmicrohttpd answers these itself on a later request (its status, its HTML page)
    ("no colon", b"GET /healthz HTTP/1.1\r\nHost: x\r\nNoColonHere\r\n\r\n", 400, True, False),
    ("HTTP/2.0 request line", b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505, True, False),
    ("Content-Length not a number", b"POST /v1/models/m/predict HTTP/1.1\r\nHost: x\r\n"
     b"Content-Length: 12abc\r\n\r\n", 400, True, False),
]

FIRST_ONLY = [
    ("HTTP/0.9 request line", b"GET /healthz\r\n\r\n", 400),
    ("obsolete line folding", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),
    ("TE in HTTP/1.0", b"POST /v1/models/m/predict HTTP/1.0\r\nTransfer-Encoding: chunked\r\n"
     b"\r\n0\r\n\r\n", 400),
    ("relative target", b"GET healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("bare CR in the request line", b"GET /health\rz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
]


class FramingTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(extra_args=["--quiet"])
        cls.d.start()
        cls.d.create(spec(REG_SPEC, "m", seed=1))

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()

    def send(self, data, n=None):
        return rawhttp.exchange(self.d.host, self.d.port, data, wait=10, until_responses=n)

    def assertJsonError(self, r, status, what):
        self.assertEqual(r.status, status, "%s: %r" % (what, r))
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"),
                        "%s: %r" % (what, r.headers))
        obj = json.loads(r.body)
        self.assertIsInstance(obj.get("error"), str, what)
        self.assertEqual(r.headers.get("connection", "").lower(), "close", what)

    def test_cases_as_first_request(self):
        for name, data, status, closes, _ in CASES:
            with self.subTest(name):
                rs, closed = self.send(data + GOOD)
                self.assertEqual(len(rs), 1, "%s: %r (the pipelined request must not be "
                                 "answered after a refusal)" % (name, rs))
                self.assertJsonError(rs[0], status, name)
                self.assertTrue(closed, name)
        for name, data, status in FIRST_ONLY:
            with self.subTest(name):
                rs, closed = self.send(data)
                self.assertEqual(len(rs), 1, name)
                self.assertJsonError(rs[0], status, name)
                self.assertTrue(closed, name)

    def test_cases_as_second_request(self):
        for name, data, status, closes, json_body in CASES:
            with self.subTest(name):
                rs, closed = self.send(GOOD + data + GOOD)
                self.assertGreaterEqual(len(rs), 2, "%s: %r" % (name, rs))
                self.assertEqual(rs[0].status, 200, name)
                self.assertEqual(rs[1].status, status, "%s: %r" % (name, rs[1]))
                if json_body:
                    self.assertJsonError(rs[1], status, name)
                else:  # libmicrohttpd's own page (docs/server.md, "HTTP framing")
                    self.assertIn(b"<html>", rs[1].body, name)
                self.assertEqual(len(rs), 2, "%s: answered after the refusal: %r" % (name, rs))
                self.assertTrue(closed, name)

    def test_content_length_with_transfer_encoding_answered_then_closed(self):
        body = json.dumps({"inputs": [[1, 2, 3]]}).encode()
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        req = (b"POST /v1/models/m/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
               b"\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
        for first in (True, False):
            with self.subTest("first" if first else "second"):
                rs, closed = self.send((b"" if first else GOOD) + req + GOOD)
                if not first:
                    self.assertEqual(rs[0].status, 200)
                    rs = rs[1:]
                # served by the transfer coding (the body read as chunked), then closed:
                # the pipelined request after it is never answered (RFC 9112 6.3)
                self.assertEqual(len(rs), 1, rs)
                self.assertEqual(rs[0].status, 200, rs[0])
                self.assertEqual(len(json.loads(rs[0].body)["outputs"]), 1)
                self.assertEqual(rs[0].headers.get("connection", "").lower(), "close")
                self.assertTrue(closed)

    def test_absolute_form_routed_by_path(self):
        d = self.d
        for first in (True, False):
            for target, expect in ((b"http://127.0.0.1:%d/healthz" % d.port, 200),
                                   (b"HTTP://example.com/v1/models/m", 200),
                                   (b"http://example.com/v1/models/m/loss?since=0", 200),
                                   (b"http://example.com", 200),  # path "/": the dashboard
                                   (b"http://example.com/nowhere", 404)):
                with self.subTest(target=target, first=first):
                    req = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    rs, _ = self.send((b"" if first else GOOD) + req)
                    r = rs[-1]
                    self.assertEqual(r.status, expect, r)
                    if target.endswith(b".com"):
                        self.assertIn(b"<html", r.body)
                    else:
                        json.loads(r.body)

    def test_http10_needs_no_host(self):
        rs, _ = self.send(b"GET /healthz HTTP/1.0\r\n\r\n")
        self.assertEqual(rs[0].status, 200)
        self.assertEqual(json.loads(rs[0].body), {"status": "ok"})

    def test_well_formed_pipeline_all_answered(self):
        rs, _ = self.send(GOOD * 5 + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        self.assertEqual([r.status for r in rs], [200] * 6)

    def test_malformed_chunked_body_is_refused(self):
        """A chunked body with a bad chunk size: libmicrohttpd refuses it (400, its page)."""
        req = (b"POST /v1/models/m/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
               b"\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
        rs, closed = self.send(req)
        self.assertEqual(rs[0].status, 400, rs)
        self.assertTrue(closed)

    def test_daemon_survives(self):
        self.assertEqual(self.d.get("/healthz").status, 200)
        self.assertTrue(self.d.alive())


if __name__ == "__main__":
    run_tests()
