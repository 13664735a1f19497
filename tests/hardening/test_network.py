"""What real networks send (issue 12), against the whole daemon on 127.0.0.1:

- one owner per port and per data dir (a second daemon exits 1 and says why);
- connection limits that hold: --max-connections, --max-connections-per-ip, the header
  deadline (408), the queue bound for model work (503 with Retry-After);
- a request waiting for a busy model costs no thread and does not hold up other models;
- a slowloris + slow-body attack during which a normal client's requests all succeed, after
  which the daemon's threads and memory are back where they were;
- a train call stopped by its client going away, or by --max-train-seconds, between two
  steps: the model is exactly as if that many steps had been asked, saved, and reloads.

Knobs: ET_ATTACK_HEADERS (default 5000), ET_ATTACK_BODIES (1000), ET_ATTACK_SECONDS (12).
Latencies are printed, not judged (tests assert correctness; scripts/bench reports speed).
"""
import http.client
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True

from hlib import REG_SPEC, Daemon, dm, f32, rss_kib, run_tests, spec  # noqa: E402
import attack  # noqa: E402
import rawhttp  # noqa: E402


def threads_of(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def get_json(d, path, conn=None):
    r = d.get(path)
    assert r.status == 200, (path, r)
    return r.json()


def metric(d, name):
    text = d.get("/metrics").body.decode()
    m = re.search(r"^%s (\S+)$" % re.escape(name), text, re.M)
    return float(m.group(1)) if m else None


def sanitizer_build():
    return dm.daemon_path() and ("asan" in dm.daemon_path() or "tsan" in dm.daemon_path())


class ExclusiveTest(unittest.TestCase):
    def test_second_daemon_on_the_port_exits_1(self):
        d1 = Daemon(extra_args=["--quiet"])
        d2 = None
        try:
            d1.start()
            d1.create(spec(REG_SPEC, "m", seed=1))
            d2 = Daemon(listen="127.0.0.1:%d" % d1.port)
            p = d2.spawn()
            self.assertEqual(p.wait(timeout=dm.START_TIMEOUT), 1, d2.log())
            self.assertIn("cannot bind 127.0.0.1:%d: address in use" % d1.port, d2.log())
            # and the first one still answers every request (nothing alternates)
            for _ in range(20):
                self.assertEqual(d1.get("/v1/models/m").status, 200)
        finally:
            if d2:
                d2.log_file.close()
                d2.cleanup()
            d1.cleanup()

    def test_second_daemon_on_the_data_dir_exits_1_naming_the_pid(self):
        d1 = Daemon(extra_args=["--quiet"])
        d2 = None
        try:
            d1.start()
            d2 = Daemon(data_dir=d1.data_dir)
            p = d2.spawn()
            self.assertEqual(p.wait(timeout=dm.START_TIMEOUT), 1, d2.log())
            self.assertIn("in use by another easytorchd (pid %d" % d1.proc.pid, d2.log())
            d2.log_file.close()
            # the lock goes with its holder, also with kill -9
            d1.kill()
            d2.start()
            self.assertEqual(d2.get("/healthz").status, 200)
        finally:
            if d2:
                d2.cleanup()
            d1.cleanup()


class LimitsTest(unittest.TestCase):
    def test_max_connections_503_with_retry_after(self):
        d = Daemon(extra_args=["--quiet", "--max-connections", "20"])
        socks = []
        try:
            d.start()
            for _ in range(20):
                socks.append(socket.create_connection((d.host, d.port)))
            time.sleep(0.3)
            rs, closed = rawhttp.exchange(d.host, d.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(rs[0].status, 503, rs)
            self.assertEqual(rs[0].headers.get("retry-after"), "1")
            self.assertIn("--max-connections", json.loads(rs[0].body)["error"])
            self.assertTrue(closed)
            for s in socks[:5]:
                s.close()
            socks = socks[5:]
            time.sleep(0.3)
            self.assertEqual(d.get("/healthz").status, 200)  # room again
        finally:
            for s in socks:
                s.close()
            d.cleanup()

    def test_max_connections_per_ip(self):
        d = Daemon(extra_args=["--quiet", "--max-connections-per-ip", "3"])
        socks = []
        try:
            d.start()
            for _ in range(3):
                socks.append(socket.create_connection((d.host, d.port)))
            time.sleep(0.3)
            rs, _ = rawhttp.exchange(d.host, d.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(rs[0].status, 503, rs)
            self.assertEqual(rs[0].headers.get("retry-after"), "1")
            self.assertIn("too many connections from 127.0.0.1", json.loads(rs[0].body)["error"])
            # connections handed to libmicrohttpd count too, until they close
            for s in socks:
                s.close()
            socks = []
            time.sleep(0.3)
            keep = [http.client.HTTPConnection(d.host, d.port) for _ in range(3)]
            for c in keep:
                c.request("GET", "/healthz")
                self.assertEqual(c.getresponse().read(), b'{"status":"ok"}\n')
            rs, _ = rawhttp.exchange(d.host, d.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(rs[0].status, 503, rs)
            for c in keep:
                c.close()
            time.sleep(0.3)
            self.assertEqual(d.get("/healthz").status, 200)
        finally:
            for s in socks:
                s.close()
            d.cleanup()

    def test_header_deadline_408(self):
        d = Daemon(extra_args=["--quiet", "--header-timeout", "1"])
        try:
            d.start()
            for first in (True, False):
                pieces = [b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"] if not first else []
                pieces += [b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n", b"X-A: 1\r\n"]
                s = socket.create_connection((d.host, d.port), timeout=30)
                t0 = time.monotonic()
                for p in pieces:
                    s.sendall(p)
                    time.sleep(0.1)
                data = b""
                while True:
                    try:
                        chunk = s.recv(65536)
                    except ConnectionResetError:
                        break
                    if not chunk:
                        break
                    data += chunk
                took = time.monotonic() - t0
                s.close()
                rs, _ = rawhttp.parse_responses(data)
                if first:
                    # the acceptor still holds it: an answer
                    self.assertEqual(len(rs), 1, data)
                    self.assertEqual(rs[0].status, 408)
                    self.assertIn("--header-timeout", json.loads(rs[0].body)["error"])
                else:
                    # libmicrohttpd holds it: cut (it cannot be answered safely mid-parse)
                    self.assertEqual([r.status for r in rs], [200], data)
                print("header deadline 1 s (%s request): closed after %.2f s"
                      % ("first" if first else "second", took))
        finally:
            d.cleanup()

    def test_queue_full_503_with_retry_after(self):
        d = Daemon(extra_args=["--quiet", "--workers", "1", "--max-queue", "1",
                               "--max-steps", "1000000000"])
        long_train = None
        try:
            d.start()
            d.create(spec(REG_SPEC, "a", seed=1))
            d.create(spec(REG_SPEC, "b", seed=2))
            long_train = start_long_train(d, "a")
            wait_steps(d, "a", 1)
            # the only worker trains; one request may wait, the next is refused
            waiting = []

            def get_params():
                waiting.append(d.get("/v1/models/b/parameters"))

            t = threading.Thread(target=get_params)
            t.start()
            time.sleep(0.5)
            r = d.get("/v1/models/b/parameters")
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.headers.get("retry-after"), "1")
            self.assertIn("--max-queue", r.error())
            self.assertEqual(d.get("/healthz").status, 200)  # never queued
            long_train.close()  # the train stops; the waiting request is served
            t.join(timeout=60)
            self.assertEqual(waiting[0].status, 200)
            self.assertGreaterEqual(metric(d, "easytorch_queue_rejected_total"), 1)
        finally:
            if long_train:
                long_train.close()
            d.cleanup()


def start_long_train(d, name, epochs=100000000):
    """A train call of (practically) endless epochs on a raw socket; close it to cancel."""
    xs = [[0.1 * i, -0.2 * i, 0.3] for i in range(4)]
    ys = [[0.5, -0.5]] * 4
    body = json.dumps({"inputs": xs, "targets": ys, "epochs": epochs}).encode()
    s = socket.create_connection((d.host, d.port), timeout=60)
    s.sendall(b"POST /v1/models/%s/train HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (name.encode(), len(body), body))
    return s


def wait_steps(d, name, n, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if d.model(name)["step"] >= n:
            return
        time.sleep(0.02)
    raise AssertionError("model %s never reached step %d" % (name, n))


class WaitingTest(unittest.TestCase):
    def test_requests_waiting_for_a_model_cost_no_thread(self):
        """200 predictions queued behind a train on model a: no thread each, and model b is
        served meanwhile by the worker they do not occupy."""
        d = Daemon(extra_args=["--quiet", "--workers", "2", "--max-steps", "1000000000"])
        train = None
        try:
            d.start()
            d.create(spec(REG_SPEC, "a", seed=1))
            d.create(spec(REG_SPEC, "b", seed=2))
            idle = threads_of(d.proc.pid)
            train = start_long_train(d, "a")
            wait_steps(d, "a", 1)
            results = []
            lock = threading.Lock()

            def predict_a():
                r = d.post("/v1/models/a/predict", {"inputs": [[1, 2, 3]]})
                with lock:
                    results.append(r.status)

            ts = [threading.Thread(target=predict_a) for _ in range(200)]
            for t in ts:
                t.start()
            time.sleep(1.0)
            busy = threads_of(d.proc.pid)
            queued = metric(d, "easytorch_queue_depth")
            # b is served while 200 requests wait for a
            for _ in range(20):
                self.assertEqual(len(d.predict("b", [[1, 2, 3]] * 64)), 64)
                self.assertIn("0.weight", d.params("b"))  # on the worker a's jobs do not hold
            self.assertEqual(results, [], "a prediction ran while its model was training")
            print("idle %d threads; with a train and %d queued predictions: %d threads"
                  % (idle, int(queued), busy))
            self.assertEqual(busy, idle)
            self.assertGreaterEqual(queued, 150)
            train.close()
            for t in ts:
                t.join(timeout=120)
            self.assertEqual(results, [200] * 200)
        finally:
            if train:
                train.close()
            d.cleanup()


class CancelTest(unittest.TestCase):
    def check_as_if_asked(self, d, name, n):
        """Model `name` equals a twin trained with exactly n steps (epochs=n, one step each)."""
        twin = name + "_twin"
        d.create(spec(REG_SPEC, twin, seed=d.model(name)["seed"]))
        xs = [[0.1 * i, -0.2 * i, 0.3] for i in range(4)]
        ys = [[0.5, -0.5]] * 4
        # in calls of at most n steps: under --max-train-seconds the twin's
        # own calls may stop early too (they keep their steps, so the next
        # call goes on from there)
        done = 0
        while done < n:
            r = d.ok("POST", "/v1/models/%s/train" % twin,
                     {"inputs": xs, "targets": ys, "epochs": n - done})
            self.assertGreater(len(r["losses"]), 0)
            done += len(r["losses"])
        self.assertEqual(f32(d.params(name)), f32(d.params(twin)))
        self.assertEqual(d.model(name)["step"], d.model(twin)["step"])
        d.delete("/v1/models/" + twin)

    def test_disconnect_cancels_train_between_two_steps(self):
        d = Daemon(extra_args=["--max-steps", "1000000000"])
        try:
            d.start()
            d.create(spec(REG_SPEC, "m", seed=3))
            s = start_long_train(d, "m")
            wait_steps(d, "m", 50)
            s.close()
            t_close = time.monotonic()
            # the step count stops growing
            last, last_change = d.model("m")["step"], time.monotonic()
            while time.monotonic() - last_change < 1.0:
                time.sleep(0.02)
                now = d.model("m")["step"]
                if now != last:
                    last, last_change = now, time.monotonic()
                self.assertLess(time.monotonic() - t_close, 60, "the train never stopped")
            stopped_after = last_change - t_close
            print("client closed; steps stopped growing %.3f s later, at step %d"
                  % (stopped_after, last))
            n = d.model("m")["step"]
            self.assertEqual(n, last)
            end = time.monotonic() + 10
            while "train cancelled after" not in d.log() and time.monotonic() < end:
                time.sleep(0.05)
            self.assertIn("model m: train cancelled after %d steps" % n, d.log())
            hist = d.ok("GET", "/v1/models/m/loss")["history"]
            self.assertEqual(len(hist), n)
            self.assertEqual(hist[-1][0], n)
            self.assertIn(" 499 ", d.log())  # the access log line of the cancelled call
            params = d.params("m")
            # consistent: exactly what asking for n steps gives; saved; reloads
            self.check_as_if_asked(d, "m", n)
            d.restart()
            self.assertEqual(d.model("m")["step"], n)
            self.assertEqual(d.params("m"), params)
        finally:
            d.cleanup()

    def test_max_train_seconds(self):
        d = Daemon(extra_args=["--quiet", "--max-train-seconds", "1", "--max-steps", "1000000000"])
        try:
            d.start()
            d.create(spec(REG_SPEC, "m", seed=4))
            xs = [[0.1 * i, -0.2 * i, 0.3] for i in range(4)]
            t0 = time.monotonic()
            r = d.ok("POST", "/v1/models/m/train",
                     {"inputs": xs, "targets": [[0.5, -0.5]] * 4, "epochs": 100000000})
            took = time.monotonic() - t0
            n = r["steps"]
            print("--max-train-seconds 1: answered after %.2f s with %d steps" % (took, n))
            self.assertEqual(r["stopped"], "max_train_seconds")
            self.assertEqual(r["requested_steps"], 100000000)
            self.assertEqual(len(r["losses"]), n)
            self.assertEqual(r["step"], n)
            self.assertEqual(d.model("m")["step"], n)
            self.assertIn("by --max-train-seconds 1", d.log())
            self.check_as_if_asked(d, "m", n)
        finally:
            d.cleanup()

    def test_shutdown_stops_a_running_train_keeping_its_steps(self):
        d = Daemon(extra_args=["--quiet", "--drain-timeout", "1", "--max-steps", "1000000000"])
        s = None
        try:
            d.start()
            d.create(spec(REG_SPEC, "m", seed=5))
            s = start_long_train(d, "m")
            wait_steps(d, "m", 20)
            d.proc.send_signal(signal.SIGTERM)
            data = b""
            s.settimeout(60)
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            self.assertEqual(d.proc.wait(timeout=60), 0)
            rs, _ = rawhttp.parse_responses(data)
            self.assertEqual(rs[0].status, 503, data)
            msg = json.loads(rs[0].body)["error"]
            self.assertIn("the server is shutting down", msg)
            n = int(re.search(r"after (\d+) of", msg).group(1))
            d.log_file.close()
            d.start()
            self.assertEqual(d.model("m")["step"], n)  # kept and saved on exit
        finally:
            if s:
                s.close()
            d.cleanup()


class AttackTest(unittest.TestCase):
    def test_slowloris_and_slow_bodies_while_a_client_is_served(self):
        heads = int(os.environ.get("ET_ATTACK_HEADERS", "5000"))
        bodies = int(os.environ.get("ET_ATTACK_BODIES", "1000"))
        seconds = float(os.environ.get("ET_ATTACK_SECONDS", "12"))
        d = Daemon(extra_args=["--quiet", "--request-timeout", "6"])
        att = None
        try:
            d.start()
            d.create(spec(REG_SPEC, "m", seed=1))
            pid = d.proc.pid
            # warm up, then the idle picture
            for _ in range(50):
                d.predict("m", [[1, 2, 3]])
            time.sleep(0.5)
            idle_threads, idle_rss = threads_of(pid), rss_kib(pid)
            att = attack.Attack(d.host, d.port, headers=heads, bodies=bodies,
                                body_path="/v1/models/m/predict").start()
            att.wait_full()
            lat, fails = [], []
            keep = http.client.HTTPConnection(d.host, d.port, timeout=60)
            body = json.dumps({"inputs": [[1, 2, 3]]})
            end = time.monotonic() + seconds
            peak_threads = idle_threads
            while time.monotonic() < end:
                for fresh in (False, True):
                    t0 = time.monotonic()
                    try:
                        if fresh:
                            r = d.post("/v1/models/m/predict", {"inputs": [[1, 2, 3]]})
                            ok = r.status == 200
                        else:
                            keep.request("POST", "/v1/models/m/predict", body,
                                         {"Content-Type": "application/json"})
                            resp = keep.getresponse()
                            ok = resp.status == 200 and b"outputs" in resp.read()
                    except OSError as e:
                        ok = False
                        keep.close()
                        keep = http.client.HTTPConnection(d.host, d.port, timeout=60)
                        fails.append(repr(e))
                    lat.append(time.monotonic() - t0)
                    if not ok:
                        fails.append("status")
                peak_threads = max(peak_threads, threads_of(pid))
            attack_rss = rss_kib(pid)
            att.stop()
            keep.close()
            # back to idle: the attackers' connections are gone
            end = time.monotonic() + 30
            while time.monotonic() < end and (
                    metric(d, 'easytorch_connections{state="served"}') > 1 or
                    metric(d, 'easytorch_connections{state="awaiting_head"}') > 0):
                time.sleep(0.2)
            # memory goes back within a few watchdog ticks (malloc_trim after the crowd)
            end = time.monotonic() + 10
            while time.monotonic() < end and rss_kib(pid) > idle_rss + 4096:
                time.sleep(0.25)
            after_threads, after_rss = threads_of(pid), rss_kib(pid)
            lat.sort()
            p50 = lat[len(lat) // 2] * 1e3
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3
            print("attack: %d header + %d body tricklers (peak %d + %d open; %d opened, %d cut, "
                  "%d answered 408); normal client: %d requests, %d failed, p50 %.1f ms, "
                  "p99 %.1f ms, max %.1f ms; threads idle %d / peak %d / after %d; "
                  "RSS idle %d KiB / under attack %d KiB / after %d KiB; load %s"
                  % (heads, bodies, att.stats["peak_head"], att.stats["peak_body"],
                     att.stats["opened"], att.stats["cut"], att.stats["answered_408"], len(lat),
                     len(fails), p50, p99, lat[-1] * 1e3, idle_threads, peak_threads,
                     after_threads, idle_rss, attack_rss, after_rss,
                     open("/proc/loadavg").read().split()[0]))
            self.assertEqual(fails, [])
            self.assertEqual(att.stats["peak_head"], heads)
            self.assertEqual(att.stats["peak_body"], bodies)
            self.assertEqual(peak_threads, idle_threads, "threads grew under the attack")
            self.assertEqual(after_threads, idle_threads)
            if not sanitizer_build():
                self.assertLessEqual(after_rss, idle_rss + 16384,
                                     "RSS not back to idle: %d -> %d KiB" % (idle_rss, after_rss))
        finally:
            if att:
                att.stop()
            d.cleanup()


if __name__ == "__main__":
    run_tests()
