#!/usr/bin/python3
"""Issue 15's event-stream cost: 100 models training, with one SSE reader per model
(GET /v1/models/{name}/events, read as fast as it comes) vs none, in alternating rounds of
one run. Reports training steps/s (wall) and the daemon's CPU seconds per 1000 steps (its
/proc stat: readers run in this process, not the daemon's), and the load.

    /usr/bin/python3 benchmarks/sse_readers.py BUILD/src/server/easytorchd [--models 100]
        [--rounds 6] [--steps 40]
"""
import argparse
import json
import os
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "server"))
from daemon import Daemon  # noqa: E402
from sse import Stream  # noqa: E402


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("easytorchd")
    ap.add_argument("--models", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--steps", type=int, default=40, help="steps per model per round")
    a = ap.parse_args()
    os.environ["EASYTORCHD"] = a.easytorchd
    d = Daemon(extra_args=["--event-buffer", "65536"])
    d.start()
    try:
        names = ["m%03d" % i for i in range(a.models)]
        for n in names:
            d.create({"name": n, "layers": [{"type": "Linear", "in_features": 16, "out_features": 32},
                                            {"type": "ReLU"},
                                            {"type": "Linear", "in_features": 32, "out_features": 1}],
                      "loss": "MSELoss", "optimizer": {"type": "Adam", "lr": 0.001}, "seed": 1})
        rows = 8 * a.steps
        x = [[((i * 7 + j) % 13) / 13.0 for j in range(16)] for i in range(rows)]
        y = [[(i % 5) / 5.0] for i in range(rows)]
        body = {"inputs": x, "targets": y, "epochs": 1, "batch_size": 8}
        results = {True: [], False: []}
        for r in range(a.rounds):
            with_readers = r % 2 == 1
            readers, threads, got = [], [], [0]
            stop = threading.Event()
            if with_readers:
                for n in names:
                    readers.append(Stream(d.host, d.port, "/v1/models/%s/events" % n))
                for s in readers:
                    s.head()

                def follow(s):
                    try:
                        while not stop.is_set():
                            ev = s.next(timeout=60)
                            if ev is None:
                                return
                            if ev["event"] == "step":
                                got[0] += len(json.loads(ev["data"])["steps"])
                    except Exception:
                        return

                for s in readers:
                    t = threading.Thread(target=follow, args=(s,), daemon=True)
                    t.start()
                    threads.append(t)
                time.sleep(0.5)
            c0, t0 = cpu_seconds(d.proc.pid), time.monotonic()
            steps = 0
            for n in names:
                steps += len(d.ok("POST", "/v1/models/%s/train" % n, body)["losses"])
            wall, cpu = time.monotonic() - t0, cpu_seconds(d.proc.pid) - c0
            time.sleep(0.3)  # the last coalesced step events
            stop.set()
            for s in readers:
                s.close()
            results[with_readers].append((steps / wall, 1000 * cpu / steps))
            print("round %d readers=%-3d steps/s %.0f  daemon CPU s/1000 steps %.4f  events' steps %d"
                  % (r, len(readers), steps / wall, 1000 * cpu / steps, got[0]), flush=True)
        def med(v):
            v = sorted(v)
            return v[len(v) // 2]
        w0, w1 = med([s for s, _ in results[False]]), med([s for s, _ in results[True]])
        c0, c1 = med([c for _, c in results[False]]), med([c for _, c in results[True]])
        print("median: no readers %.0f steps/s, %.4f CPU s/1000 steps; %d readers %.0f steps/s, "
              "%.4f CPU s/1000 steps" % (w0, c0, a.models, w1, c1))
        print("cost of the readers: throughput %+.1f%% (wall), daemon CPU per step %+.1f%% "
              "(target: < 5%% of training throughput)" % (100 * (w1 / w0 - 1), 100 * (c1 / c0 - 1)))
        print("load: " + open("/proc/loadavg").read().strip())
    finally:
        d.cleanup()


if __name__ == "__main__":
    main()
