"""Helpers shared by the easytorchd integration tests (Python 3 standard library only).

- Daemon: starts easytorchd on a free loopback port with a temporary data dir, waits for
  /readyz, stops it with SIGTERM or kill -9, restarts it on the same data dir, and talks
  HTTP to it with http.client (one connection per request, so threads may share it).
- run_tests(): runs the calling module's unittest cases, prints `N passed, M failed` and
  exits nonzero on failure.
- The contract check (openapi_contract.py): every answer Daemon.request() receives is
  checked against docs/openapi.json (operation, status, content type, body schema; accepted
  request bodies against the requestBody schema), so every integration test also tests the
  API document. A new endpoint needs its entry there.

The daemon path comes from argv[1] (meson passes easytorchd.full_path()) or $EASYTORCHD.
By hand:  /usr/bin/python3 tests/server/test_api.py BUILD/src/server/easytorchd [-k PATTERN]
(or `meson test -C BUILD --suite server`). Only /usr/bin/python3 has torch.
"""

import http.client
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openapi_contract  # noqa: E402

# Safety nets so a hung daemon fails a test instead of hanging the suite; they are never
# used to judge speed.
START_TIMEOUT = 120.0
HTTP_TIMEOUT = 300.0

DAEMON_PATH = None


def daemon_path():
    if DAEMON_PATH:
        return DAEMON_PATH
    return os.environ.get("EASYTORCHD", "easytorchd")


def _reject_constant(name):
    raise ValueError("response JSON contains the non-standard constant %s" % name)


class Response:
    """One HTTP response: status, headers (lowercase names), body bytes."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        self._json = None

    def json(self):
        if self._json is None:
            try:
                text = self.body.decode("utf-8")
            except UnicodeDecodeError as e:
                raise AssertionError("response body is not UTF-8: %r" % self.body[:200]) from e
            try:
                self._json = json.loads(text, parse_constant=_reject_constant)
            except ValueError as e:
                raise AssertionError("response body is not strict JSON (%s): %r"
                                     % (e, self.body[:300])) from e
        return self._json

    def error(self):
        """The `error` message of an error body (asserts the body has that shape)."""
        obj = self.json()
        if not isinstance(obj, dict) or not isinstance(obj.get("error"), str):
            raise AssertionError("error body is not {\"error\": \"...\"}: %r" % self.body[:300])
        return obj["error"]

    def __repr__(self):
        return "<HTTP %d %r>" % (self.status, self.body[:300])


class Daemon:
    """One easytorchd process with its own temp dir (data dir + stderr log)."""

    def __init__(self, token=None, token_file_newline=False, sync=None, extra_args=(),
                 env=None, data_dir=None, use_listen_flag=True, listen="127.0.0.1:0"):
        self.tmp = tempfile.mkdtemp(prefix="et-stest-")
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.token = token
        self.token_file = None
        if token is not None:
            self.token_file = os.path.join(self.tmp, "token")
            with open(self.token_file, "w") as f:
                f.write(token + ("\n" if token_file_newline else ""))
        self.sync = sync
        self.extra_args = list(extra_args)
        self.env = env
        self.use_listen_flag = use_listen_flag
        self.listen = listen
        self.proc = None
        self.port = None
        self.host = "127.0.0.1"
        self.log_path = None
        self.starts = 0

    # ---------------------------------------------------------------- process control
    def args(self):
        a = [daemon_path()]
        if self.use_listen_flag:
            a += ["--listen", self.listen]
        a += ["--data-dir", self.data_dir]
        if self.token_file:
            a += ["--token-file", self.token_file]
        if self.sync:
            a += ["--sync", self.sync]
        return a + self.extra_args

    def spawn(self):
        """Starts the process without waiting for it (stderr goes to a log file)."""
        self.starts += 1
        self.log_path = os.path.join(self.tmp, "stderr.%d.log" % self.starts)
        env = dict(os.environ)
        for k in [k for k in env if k.startswith("EASYTORCH_")]:
            del env[k]  # hermetic: only what the test sets
        if self.env:
            env.update(self.env)
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL,
                                     stdout=self.log_file, stderr=self.log_file, env=env)
        return self.proc

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def log_tail(self, n=2000):
        return self.log()[-n:]

    def start(self, wait_ready=True):
        """Starts and waits for `listening on` and /readyz. On failure the process is
        killed (and a never-started daemon's temp dir removed) before the error is raised."""
        try:
            return self._start(wait_ready)
        except BaseException:
            if self.alive():
                self.proc.kill()
                self.proc.wait()
            if self.starts == 1:
                shutil.rmtree(self.tmp, ignore_errors=True)
            raise

    def _start(self, wait_ready):
        self.spawn()
        deadline = time.monotonic() + START_TIMEOUT
        pat = re.compile(r"listening on ([0-9.]+|\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):([0-9]+)")
        while True:
            m = pat.search(self.log())
            if m:
                self.host = m.group(1).strip("[]")
                if self.host in ("0.0.0.0", "localhost"):
                    self.host = "127.0.0.1"
                self.port = int(m.group(2))
                break
            if self.proc.poll() is not None:
                raise RuntimeError("easytorchd exited with %s before listening; args %r; log:\n%s"
                                   % (self.proc.returncode, self.args(), self.log_tail()))
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("easytorchd never printed 'listening on HOST:PORT'; log:\n%s"
                                   % self.log_tail())
            time.sleep(0.02)
        if wait_ready:
            self.wait_ready(deadline)
        return self

    def wait_ready(self, deadline=None):
        deadline = deadline or time.monotonic() + START_TIMEOUT
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("easytorchd exited with %s while loading; log:\n%s"
                                   % (self.proc.returncode, self.log_tail()))
            try:
                last = self.get("/readyz", auth=False)
                if last.status == 200:
                    return
            except OSError as e:
                last = e
            time.sleep(0.02)
        raise RuntimeError("easytorchd never became ready (last /readyz: %r); log:\n%s"
                           % (last, self.log_tail()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM):
        """Sends sig and waits for exit; returns the exit status (None if not running)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.log_file.close()
                raise RuntimeError("easytorchd ignored signal %d; killed it" % sig)
        self.log_file.close()
        return self.proc.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)

    def restart(self, hard=False):
        """Stops (SIGTERM, or kill -9 if hard) and starts again on the same data dir."""
        if hard:
            self.kill()
        else:
            self.stop()
        return self.start()

    SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer",
                       "runtime error:", "ERROR: MemorySanitizer")

    def sanitizer_reports(self):
        """Sanitizer findings in any of this daemon's stderr logs (for ASan/TSan/UBSan
        builds; empty for a plain build)."""
        found = []
        for i in range(1, self.starts + 1):
            try:
                with open(os.path.join(self.tmp, "stderr.%d.log" % i), "rb") as f:
                    text = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            for mark in self.SANITIZER_MARKS:
                at = text.find(mark)
                if at >= 0:
                    found.append("start %d: %s" % (i, text[max(0, at - 200):at + 2500]))
                    break
        return found

    def cleanup(self):
        """Stops the daemon gracefully (SIGTERM, so leak checkers run), removes the temp dir,
        and raises if a sanitizer reported anything."""
        reports = []
        try:
            if self.alive():
                try:
                    self.stop()
                except RuntimeError:
                    pass  # ignored SIGTERM: stop() killed it
            reports = self.sanitizer_reports()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if reports:
            raise AssertionError("sanitizer reports in easytorchd's stderr:\n" + "\n---\n".join(reports))

    # ---------------------------------------------------------------- HTTP
    def request(self, method, path, obj=None, body=None, headers=None, auth=True,
                content_type=None, contract=True):
        """Sends one request. obj is JSON-encoded; body is sent as is (bytes or str).
        The answer is checked against docs/openapi.json (contract=False skips that, for
        requests that are not HTTP the document can describe)."""
        hdrs = {}
        if obj is not None:
            body = json.dumps(obj, allow_nan=True).encode()
            hdrs["Content-Type"] = "application/json"
        elif body is not None:
            if isinstance(body, str):
                body = body.encode()
            hdrs["Content-Type"] = content_type or "application/json"
        if content_type:
            hdrs["Content-Type"] = content_type
        if auth and self.token is not None:
            hdrs["Authorization"] = "Bearer " + self.token
        if headers:
            hdrs.update(headers)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=HTTP_TIMEOUT)
        try:
            try:
                conn.request(method, path, body=body, headers=hdrs)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server may answer (e.g. 413) before reading the whole body
            r = conn.getresponse()
            data = r.read()
            resp = Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
        finally:
            conn.close()
        if contract:
            openapi_contract.contract().check(method, path, hdrs, body, resp.status,
                                              resp.headers, resp.body)
        return resp

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, obj=None, **kw):
        return self.request("POST", path, obj=obj, **kw)

    def put(self, path, obj=None, **kw):
        return self.request("PUT", path, obj=obj, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)

    # JSON calls that must succeed: return the parsed body, fail loudly otherwise.
    def ok(self, method, path, obj=None, expect=(200,), **kw):
        r = self.request(method, path, obj=obj, **kw)
        if r.status not in expect:
            raise AssertionError("%s %s -> %d (expected %s): %r"
                                 % (method, path, r.status, expect, r.body[:500]))
        return r.json() if r.body else None

    # Model helpers
    def create(self, spec):
        return self.ok("POST", "/v1/models", spec, expect=(201,))

    def params(self, name):
        return self.ok("GET", "/v1/models/%s/parameters" % name)["parameters"]

    def set_params(self, name, params):
        return self.ok("PUT", "/v1/models/%s/parameters" % name, {"parameters": params},
                       expect=(200, 204))

    def model(self, name):
        return self.ok("GET", "/v1/models/%s" % name)

    def push(self, name, inputs, targets):
        return self.ok("POST", "/v1/models/%s/batches" % name,
                       {"inputs": inputs, "targets": targets})

    def step(self, name):
        return self.ok("POST", "/v1/models/%s/step" % name)

    def predict(self, name, inputs):
        return self.ok("POST", "/v1/models/%s/predict" % name, {"inputs": inputs})["outputs"]


def module_fixture(module_globals, make=None, also=()):
    """setUpModule and tearDownModule for a test module whose tests share one daemon: before
    the module's first test, `make()` (default: Daemon()) is started and set as the module's
    global D (and as D of each module in `also`, whose helpers the tests reuse) and as
    DaemonTestCase.daemon; after the last test it is stopped and its temp dir removed.  The
    daemon is made at set-up, not at import, so importing a test module for its helpers
    starts nothing and leaves nothing behind.

        D = None
        setUpModule, tearDownModule = dm.module_fixture(
            globals(), lambda: Daemon(extra_args=["--job-threads", "2"]))
    """
    def set_up():
        d = (make or Daemon)()
        module_globals["D"] = d
        for m in also:
            m.D = d
        d.start()
        DaemonTestCase.daemon = d

    def tear_down():
        d = module_globals.get("D")
        if d is not None:
            d.cleanup()
    return set_up, tear_down


class DaemonTestCase(unittest.TestCase):
    """Base class: `daemon` is a class attribute set by setUpModule/setUpClass. After each
    test it checks that the daemon is still alive; if a test killed it, that test fails with
    the exit status and log tail, and the daemon is restarted for the tests that follow."""

    daemon = None

    def tearDown(self):
        d = type(self).daemon
        if d is not None and d.proc is not None and not d.alive() and not getattr(
                self, "expect_daemon_stopped", False):
            code = d.proc.returncode
            tail = d.log_tail()
            try:
                d.log_file.close()
                d.start()
            except Exception as e:  # keep going; later tests will report it
                tail += "\n(restart failed: %s)" % e
            self.fail("easytorchd died during this test (exit status %s); log tail:\n%s"
                      % (code, tail))

    def assertError(self, r, status, *names):
        """r has the given status, an {"error": msg} body, and msg names one of `names`
        (case-insensitive) when names are given."""
        if isinstance(status, int):
            status = (status,)
        self.assertIn(r.status, status, "expected HTTP %s, got %r" % (status, r))
        msg = r.error()
        if names:
            low = msg.lower()
            self.assertTrue(any(n.lower() in low for n in names),
                            "error message %r names none of %r" % (msg, names))
        return msg


# --------------------------------------------------------------------------- tensors
def flatten(x):
    if isinstance(x, list):
        out = []
        for e in x:
            out.extend(flatten(e))
        return out
    return [x]


def f32(x):
    """Rounds every number in a nested dict/list to float32: two tensors given in JSON are
    the same float32 tensor iff their f32() are equal (a daemon may print float32 values
    with 9 significant digits rather than the exact double)."""
    if isinstance(x, dict):
        return {k: f32(v) for k, v in x.items()}
    if isinstance(x, list):
        return [f32(v) for v in x]
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return struct.unpack("<f", struct.pack("<f", x))[0]
    return x


def shape_of(x):
    s = []
    while isinstance(x, list):
        s.append(len(x))
        if not x:
            break
        x = x[0]
    return s


# --------------------------------------------------------------------------- runner
class _CountingResult(unittest.TextTestResult):
    successes = 0

    def addSuccess(self, test):
        super().addSuccess(test)
        self.successes += 1


def run_tests(module_name="__main__"):
    """Parses argv (daemon path), runs the module's tests, prints `N passed, M failed`,
    exits 0 only if nothing failed."""
    global DAEMON_PATH
    argv = sys.argv[1:]
    if argv and not argv[0].startswith("-"):
        DAEMON_PATH = os.path.abspath(argv[0])
        argv = argv[1:]
    loader = unittest.defaultTestLoader
    if argv and argv[0] == "-k":
        loader = unittest.TestLoader()
        loader.testNamePatterns = ["*%s*" % p for p in argv[1:]]
    suite = loader.loadTestsFromModule(sys.modules[module_name])
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2,
                                     resultclass=_CountingResult)
    result = runner.run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    skipped = len(result.skipped)
    passed = result.successes
    if skipped:
        print("%d skipped" % skipped)
    print("%d passed, %d failed" % (passed, failed))
    sys.stdout.flush()
    sys.exit(1 if failed or result.testsRun == 0 else 0)
