"""Load and soak: 64 keep-alive connections send mixed predict / train / define / delete /
read traffic for ET_LOAD_SECONDS (default 30).  Zero 5xx (every request here is valid, so
anything but 2xx is a failure); every model's training sequence replayed serially on a
second daemon gives bit-identical parameters; predictions of a model nobody trains equal
the serial ones; the daemon's VmRSS (sampled from /proc/PID/status) stays flat.
SlowClientTest: idle and stalled connections (slowloris) are cut after --timeout while
other clients are served.

  /usr/bin/python3 tests/hardening/test_load.py BUILD/src/server/easytorchd
"""
import json
import random
import socket
import threading
import time
import unittest

from hlib import (ADAM_SPEC, CLS_SPEC, REG_SPEC, Conn, Daemon, env_int, f32, rss_kib,
                  run_tests, sanitizer_build, spec)

CLIENTS = env_int("ET_LOAD_CLIENTS", 64)
SECONDS = env_int("ET_LOAD_SECONDS", 30)
BASES = [REG_SPEC, ADAM_SPEC, CLS_SPEC]


def rand_batch(rng, base, rows):
    nin = base["layers"][0]["in_features"]
    x = [[round(rng.uniform(-1, 1), 3) for _ in range(nin)] for _ in range(rows)]
    if base is CLS_SPEC:
        return x, [rng.randrange(3) for _ in range(rows)]
    return x, [[round(rng.uniform(-1, 1), 3) for _ in range(2)] for _ in range(rows)]


class Client(threading.Thread):
    def __init__(self, d, i, stop, frozen_x, frozen_y):
        super().__init__(daemon=True)
        self.d, self.i, self.stop = d, i, stop
        self.rng = random.Random(1000 + i)
        self.base = BASES[i % 3]
        self.name = "w%d" % i
        self.trained = []          # acknowledged train bodies, in order
        self.errors = []
        self.counts = {}
        self.frozen_x, self.frozen_y = frozen_x, frozen_y

    def call(self, c, kind, method, path, obj=None, expect=(200,)):
        self.counts[kind] = self.counts.get(kind, 0) + 1
        try:
            r = c.request(method, path, obj)
        except Exception as e:  # connection trouble is a failure too
            self.errors.append("%s %s: %s: %s" % (method, path, type(e).__name__, e))
            return None
        if r.status not in expect:
            self.errors.append("%s %s -> %d: %r" % (method, path, r.status, r.body[:200]))
            return None
        return r

    def run(self):
        c = Conn(self.d)
        n = 0
        try:
            while not self.stop.is_set() and len(self.errors) < 5:
                p = self.rng.random()
                if p < 0.40:
                    x, y = rand_batch(self.rng, self.base, self.rng.randint(1, 6))
                    body = {"inputs": x, "targets": y}
                    if self.rng.random() < 0.3:
                        body["epochs"] = 2
                        body["batch_size"] = 2
                    if self.call(c, "train", "POST", "/v1/models/%s/train" % self.name, body):
                        self.trained.append(body)
                elif p < 0.72:
                    r = self.call(c, "predict", "POST", "/v1/models/frozen/predict",
                                  {"inputs": self.frozen_x})
                    if r and f32(r.json()["outputs"]) != self.frozen_y:
                        self.errors.append("frozen model predicted %r, serially %r"
                                           % (r.json()["outputs"], self.frozen_y))
                elif p < 0.84:
                    j = self.rng.randrange(CLIENTS)
                    base = BASES[j % 3]
                    x, _ = rand_batch(self.rng, base, 2)
                    r = self.call(c, "predict", "POST", "/v1/models/w%d/predict" % j, {"inputs": x})
                    if r and len(r.json()["outputs"]) != 2:
                        self.errors.append("predict on w%d: %r" % (j, r.body[:200]))
                elif p < 0.92:
                    tmp = "tmp%d-%d" % (self.i, n)
                    n += 1
                    if self.call(c, "define", "POST", "/v1/models", spec(self.base, tmp, seed=n),
                                 expect=(201,)):
                        x, y = rand_batch(self.rng, self.base, 2)
                        self.call(c, "train", "POST", "/v1/models/%s/train" % tmp,
                                  {"inputs": x, "targets": y})
                        self.call(c, "delete", "DELETE", "/v1/models/" + tmp, expect=(200, 204))
                else:
                    path = self.rng.choice(["/v1/models", "/metrics", "/v1/models/%s/loss" % self.name,
                                            "/v1/models/%s" % self.name, "/healthz",
                                            "/v1/models/%s/parameters" % self.name])
                    self.call(c, "read", "GET", path)
        finally:
            c.close()


class LoadTest(unittest.TestCase):
    def test_mixed_traffic_64_connections(self):
        # a bounded loss history, so that model state stops growing and RSS can be flat
        args = ["--quiet", "--max-history", "1000"]
        d = Daemon(extra_args=args)
        ref = Daemon(extra_args=args)
        rss = []
        try:
            d.start()
            ref.start()
            d.create(spec(REG_SPEC, "frozen", seed=99))
            frozen_x = [[0.25, -0.5, 0.75], [1.0, 0.0, -1.0]]
            frozen_y = f32(d.predict("frozen", frozen_x))
            for i in range(CLIENTS):
                d.create(spec(BASES[i % 3], "w%d" % i, seed=i))
            stop = threading.Event()
            clients = [Client(d, i, stop, frozen_x, frozen_y) for i in range(CLIENTS)]
            t0 = time.monotonic()

            def sample():
                while not stop.is_set():
                    v = rss_kib(d.proc.pid)
                    if v:
                        rss.append((time.monotonic() - t0, v))
                    stop.wait(0.25)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            for c in clients:
                c.start()
            stop.wait(SECONDS)
            stop.set()
            for c in clients:
                c.join(120)
            sampler.join(10)
            self.assertTrue(d.alive(), "easytorchd died under load:\n" + d.log_tail())
            errors = [e for c in clients for e in c.errors]
            counts = {}
            for c in clients:
                for k, v in c.counts.items():
                    counts[k] = counts.get(k, 0) + v
            total = sum(counts.values())
            print("%d clients, %d s: %d requests %s" % (CLIENTS, SECONDS, total, counts))
            self.assertFalse(errors, "%d failed requests, e.g.\n%s" % (len(errors), "\n".join(errors[:20])))
            # serial replay on a second daemon: identical parameters and loss histories.
            # Each model's calls are replayed in order on one connection; models are
            # independent, so eight of them replay side by side.
            mismatches = []

            def replay(group):
                conn = Conn(ref)
                try:
                    for c in group:
                        r = conn.request("POST", "/v1/models", spec(c.base, c.name, seed=c.i))
                        if r.status != 201:
                            mismatches.append("define %s on the reference: %r" % (c.name, r))
                            continue
                        for body in c.trained:
                            r = conn.request("POST", "/v1/models/%s/train" % c.name, body)
                            if r.status != 200:
                                mismatches.append("replay %s: %r" % (c.name, r))
                                break
                        for what in ("parameters", "loss"):
                            got = f32(d.ok("GET", "/v1/models/%s/%s" % (c.name, what)))
                            want = f32(conn.request("GET", "/v1/models/%s/%s" % (c.name, what)).json())
                            if what == "loss":  # wall times are when things happened:
                                for doc in (got, want):  # the markers' and each step's
                                    for mk in doc.get("markers", []):
                                        mk.pop("time", None)
                                    if "time" in doc:  # the same steps, times left out
                                        doc["time"] = [s for s, _ in doc["time"]]
                            if got != want:
                                mismatches.append("%s of %s differ from the serial replay of its "
                                                  "%d train calls" % (what, c.name, len(c.trained)))
                finally:
                    conn.close()

            workers = [threading.Thread(target=replay, args=(clients[k::8],)) for k in range(8)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            self.assertFalse(mismatches, "\n".join(mismatches[:20]))
            names = sorted(m["name"] for m in d.ok("GET", "/v1/models")["models"])
            self.assertEqual(names, sorted(["frozen"] + ["w%d" % i for i in range(CLIENTS)]),
                             "temporary models left behind")
            # RSS flat: the second half of the run never needs much more than the first
            self.assertGreater(len(rss), 8)
            half = rss[-1][0] / 2
            first = max(v for t, v in rss if t <= half)
            second = max(v for t, v in rss if t > half)
            print("VmRSS KiB: start %d, max first half %d, max second half %d, end %d"
                  % (rss[0][1], first, second, rss[-1][1]))
            san = sanitizer_build()
            if san:  # shadow memory and quarantine, not the daemon's own use
                print("(RSS not judged: %s sanitizer build)" % san)
            else:
                self.assertLessEqual(second, first * 1.10 + 8192,
                                     "RSS grows under steady load: %d -> %d KiB" % (first, second))
        finally:
            try:
                d.cleanup()
            finally:
                ref.cleanup()


class SlowClientTest(unittest.TestCase):
    TIMEOUT = 2

    def test_slowloris_cut_while_others_served(self):
        d = Daemon(extra_args=["--quiet", "--timeout", str(self.TIMEOUT)])
        socks = []
        try:
            d.start()
            d.create(spec(REG_SPEC, "m", seed=1))
            kinds = {}
            for i in range(45):
                s = socket.create_connection((d.host, d.port), timeout=30)
                if i % 3 == 1:
                    s.sendall(b"GET /heal")                      # stalls in the request line
                    kinds[s] = "partial request line"
                elif i % 3 == 2:
                    body = json.dumps({"inputs": [[1, 2, 3]]}).encode()
                    s.sendall(b"POST /v1/models/m/predict HTTP/1.1\r\nHost: x\r\n"
                              b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                              % len(body) + body[:5])            # stalls in the body
                    kinds[s] = "partial body"
                else:
                    kinds[s] = "idle"                             # sends nothing
                socks.append(s)
            # meanwhile other clients are served, for longer than the timeout
            served = 0
            end = time.monotonic() + self.TIMEOUT * 2
            while time.monotonic() < end:
                self.assertEqual(d.get("/healthz").status, 200)
                self.assertEqual(len(d.predict("m", [[1, 2, 3]])), 1)
                served += 2
            # and the stalled connections were closed by the server
            still_open = []
            for s in socks:
                s.settimeout(self.TIMEOUT * 10)  # safety net only
                try:
                    data = s.recv(4096)
                    while data:
                        data = s.recv(4096)  # a 408 or similar may come first: read to EOF
                except socket.timeout:
                    still_open.append(kinds[s])
                except OSError:
                    pass  # reset: cut as well
            self.assertFalse(still_open, "not cut after --timeout %d: %r" % (self.TIMEOUT, still_open))
            self.assertEqual(d.get("/healthz").status, 200)
            print("%d slow connections cut; %d requests served meanwhile" % (len(socks), served))
        finally:
            for s in socks:
                s.close()
            d.cleanup()

    def test_drip_fed_request_cut(self):
        """A request that never completes but sends a byte before each idle timeout runs
        out (slowloris proper) must be cut too, or 256 such connections (the connection
        limit) would lock every client out."""
        timeout = 1
        d = Daemon(extra_args=["--quiet", "--timeout", str(timeout)])
        s = None
        try:
            d.start()
            s = socket.create_connection((d.host, d.port), timeout=30)
            head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 1000
            cut = False
            end = time.monotonic() + timeout * 10  # safety net: give up after 10 timeouts
            for b in head:
                try:
                    s.sendall(bytes([b]))
                except OSError:
                    cut = True
                    break
                if time.monotonic() > end:
                    break
                time.sleep(timeout * 0.6)
            self.assertTrue(cut, "a drip-fed request (one byte every %.1f s) was never cut"
                            % (timeout * 0.6))
        finally:
            if s:
                s.close()
            d.cleanup()


if __name__ == "__main__":
    run_tests()
