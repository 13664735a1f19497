"""Shared pieces of the hardening tests (tests/hardening), Python 3 standard library only.

The daemon helpers come from tests/server/daemon.py (imported from that folder, not copied):
Daemon starts easytorchd on a free loopback port with a temporary data dir and stops it by
its PID; run_tests() prints `N passed, M failed`.  Any easytorchd binary works, including
ASan/UBSan and TSan builds: pass its path as argv[1] (meson does) or set $EASYTORCHD.
Daemon.cleanup() fails the test when a sanitizer wrote a report into the daemon's stderr.
"""
import http.client
import json
import os
import re
import socket
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "server"))
sys.dont_write_bytecode = True

import daemon as dm  # noqa: E402  (tests/server/daemon.py)
from daemon import Daemon, DaemonTestCase, f32, run_tests  # noqa: E402,F401

# A small regression model and a small classifier used across the tests.
REG_SPEC = {
    "layers": [{"type": "Linear", "in_features": 3, "out_features": 8}, {"type": "Tanh"},
               {"type": "Linear", "in_features": 8, "out_features": 2}],
    "loss": "MSELoss",
    "optimizer": {"type": "SGD", "lr": 0.05, "momentum": 0.9},
    "scheduler": {"type": "StepLR", "step_size": 5, "gamma": 0.5},
}
CLS_SPEC = {
    "layers": [{"type": "Linear", "in_features": 4, "out_features": 6}, {"type": "ReLU"},
               {"type": "Linear", "in_features": 6, "out_features": 3}],
    "loss": {"type": "CrossEntropyLoss"},
    "optimizer": {"type": "Adam", "lr": 0.01},
}
ADAM_SPEC = {
    "layers": [{"type": "Linear", "in_features": 3, "out_features": 4}, {"type": "Sigmoid"},
               {"type": "Linear", "in_features": 4, "out_features": 2}],
    "loss": {"type": "HuberLoss", "delta": 0.5},
    "optimizer": {"type": "RMSprop", "lr": 0.01, "momentum": 0.5},
    "scheduler": {"type": "ExponentialLR", "gamma": 0.99},
}


def spec(base, name, seed=0):
    s = json.loads(json.dumps(base))
    s["name"] = name
    s["seed"] = seed
    return s


def reg_batch(k, rows=4):
    """Deterministic regression batch number k (3 inputs, 2 targets per row)."""
    xs = [[((k * 7 + r * 3 + c) % 11) / 10.0 - 0.5 for c in range(3)] for r in range(rows)]
    ys = [[sum(x) * 0.3, x[0] - x[2]] for x in xs]
    return xs, ys


def cls_batch(k, rows=4):
    xs = [[((k * 5 + r * 7 + c * 3) % 13) / 6.0 - 1.0 for c in range(4)] for r in range(rows)]
    ys = [(k + r) % 3 for r in range(rows)]
    return xs, ys


def batch_for(base, k, rows=4):
    return cls_batch(k, rows) if base is CLS_SPEC else reg_batch(k, rows)


def rss_kib(pid):
    """VmRSS of a process in KiB (None if it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def raw_exchange(host, port, data, read_timeout=10.0, shut=True):
    """Sends raw bytes on a new connection and reads until the server closes or the
    timeout passes; returns the bytes received (b"" if the server closed silently)."""
    s = socket.create_connection((host, port), timeout=read_timeout)
    try:
        try:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        s.close()


def parse_raw_response(raw):
    """(status, headers dict, body) of the first HTTP response in raw, or None."""
    m = re.match(rb"HTTP/1\.[01] (\d{3})[^\r\n]*\r\n", raw)
    if not m:
        return None
    head, _, rest = raw.partition(b"\r\n\r\n")
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    n = headers.get("content-length")
    body = rest[:int(n)] if n and n.isdigit() else rest
    return int(m.group(1)), headers, body


class Conn:
    """A keep-alive HTTP/1.1 connection (one per client thread)."""

    def __init__(self, d, timeout=dm.HTTP_TIMEOUT):
        self.d = d
        self.timeout = timeout
        self.c = None

    def request(self, method, path, obj=None):
        if self.c is None:
            self.c = http.client.HTTPConnection(self.d.host, self.d.port, timeout=self.timeout)
        body = json.dumps(obj).encode() if obj is not None else None
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        if self.d.token:
            hdrs["Authorization"] = "Bearer " + self.d.token
        try:
            self.c.request(method, path, body=body, headers=hdrs)
            r = self.c.getresponse()
            data = r.read()
        except Exception:
            self.close()
            raise
        if r.getheader("Connection", "").lower() == "close":
            self.close()
        return dm.Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)

    def close(self):
        if self.c is not None:
            self.c.close()
            self.c = None


def env_int(name, default):
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def wait_until(pred, limit, step=0.05):
    """Polls pred() until true or `limit` seconds pass (a safety net, never a judgement of
    speed); returns pred()'s last value."""
    end = time.monotonic() + limit
    v = pred()
    while not v and time.monotonic() < end:
        time.sleep(step)
        v = pred()
    return v


def sanitizer_build(path=None):
    """Name of the sanitizer the daemon binary was built with ("address", "thread",
    "memory") or None: RSS under ASan/TSan measures their shadow memory and quarantine."""
    path = path or dm.daemon_path()
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    for mark, name in ((b"__asan_init", "address"), (b"__tsan_init", "thread"),
                       (b"__msan_init", "memory")):
        if mark in data:
            return name
    return None
