#!/usr/bin/python3
"""easytorchd: the wall time of each step in the loss history -- GET .../loss's "time"
series ([step, Unix seconds]) is recorded for every way a step is taken (batches + step,
train, a job), is non-decreasing and inside the wall interval of the request that took the
step, follows since= and series= like the other series, is what the step events carry
("time" and "times"), survives a restart (graceful and kill -9 after a checkpoint), and is
bounded by --max-history with the rest of the history.
The checks compare recorded times with the test's own clock readings around each request
(a correctness check of what was recorded, never a speed limit).
Usage: test_history_time.py PATH/TO/easytorchd"""

import json
import math
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import Daemon, DaemonTestCase, run_tests  # noqa: E402
from sse import Stream  # noqa: E402

MLP = [{"type": "Linear", "in_features": 2, "out_features": 4}, {"type": "Tanh"},
       {"type": "Linear", "in_features": 4, "out_features": 1}]
X = [[i / 8, 1 - i / 8] for i in range(8)]
Y = [[i / 8] for i in range(8)]


D = None  # the module's daemon, made and started by setUpModule
setUpModule, tearDownModule = dm.module_fixture(globals())


_n = [0]


def fresh():
    _n[0] += 1
    return "t%d" % _n[0]


def make(d):
    name = fresh()
    d.create({"name": name, "layers": MLP, "loss": "MSELoss",
              "optimizer": {"type": "SGD", "lr": 0.05}, "seed": 1})
    return name


def ms_floor(t):
    return math.floor(t * 1000) / 1000   # the daemon keeps milliseconds (rounded)


def ms_ceil(t):
    return math.ceil(t * 1000) / 1000


def loss(d, name, query=""):
    return d.ok("GET", "/v1/models/%s/loss%s" % (name, query))


def timed(d, fn):
    """fn() -> (result, the wall interval around it, in the daemon's resolution)"""
    t0 = time.time()
    r = fn()
    t1 = time.time()
    return r, (ms_floor(t0), ms_ceil(t1))


def wait_job(d, name, jid):
    deadline = time.monotonic() + 120   # a safety net against hangs, never a speed check
    while True:
        j = d.ok("GET", "/v1/models/%s/jobs/%d" % (name, jid))
        if j["state"] not in ("queued", "running"):
            return j
        if time.monotonic() > deadline:
            raise AssertionError("job never ended: %r" % j)
        time.sleep(0.05)


class TestTimeSeries(DaemonTestCase):
    def assertTimesOf(self, h):
        """the time series is parallel to the history: the same steps, numbers, in order"""
        self.assertEqual([s for s, _ in h["time"]], [s for s, _ in h["history"]])
        ts = [t for _, t in h["time"]]
        for t in ts:
            self.assertIsInstance(t, float)
        self.assertEqual(ts, sorted(ts), "the wall times go back: %r" % ts)
        return ts

    def test_every_kind_of_step_is_timed_within_its_request(self):
        name = make(D)
        self.assertEqual(loss(D, name)["time"], [])
        # train: 2 epochs of 2 minibatches = 4 steps, all inside the call
        _, (a0, a1) = timed(D, lambda: D.ok("POST", "/v1/models/%s/train" % name,
                                            {"inputs": X, "targets": Y, "epochs": 2,
                                             "batch_size": 4}))
        time.sleep(0.02)   # so that the next calls' intervals start after this one ended
        # batches + step: the step's time is the step call's, not the batch's
        D.push(name, X[:2], Y[:2])
        _, (b0, b1) = timed(D, lambda: D.step(name))
        time.sleep(0.02)
        # a job: 3 steps between its submission and its end
        t0 = time.time()
        r = D.post("/v1/models/%s/jobs" % name, {"inputs": X, "targets": Y, "epochs": 3,
                                                  "batch_size": 8})
        self.assertEqual(r.status, 202, r)
        self.assertEqual(wait_job(D, name, r.json()["id"])["state"], "done")
        c0, c1 = ms_floor(t0), ms_ceil(time.time())
        h = loss(D, name)
        ts = self.assertTimesOf(h)
        self.assertEqual([s for s, _ in h["time"]], list(range(1, 9)))
        for i, (lo, hi) in enumerate([(a0, a1)] * 4 + [(b0, b1)] + [(c0, c1)] * 3):
            self.assertTrue(lo <= ts[i] <= hi, "step %d at %r, its request ran in [%r, %r]"
                            % (i + 1, ts[i], lo, hi))
        # the three calls' steps are told apart (they ran 20 ms apart at least)
        self.assertLess(ts[3], ts[4])
        self.assertLess(ts[4], ts[5])

    def test_since_and_series(self):
        name = make(D)
        D.ok("POST", "/v1/models/%s/train" % name, {"inputs": X, "targets": Y, "epochs": 5,
                                                     "batch_size": 8})
        full = loss(D, name)
        self.assertEqual(loss(D, name, "?since=3")["time"], full["time"][3:])
        only = loss(D, name, "?series=time")
        self.assertEqual(sorted(only), ["status", "step", "time"])
        self.assertEqual(only["time"], full["time"])
        self.assertEqual(only["step"], 5)
        self.assertEqual(loss(D, name, "?series=lr,time&since=4")["time"], full["time"][4:])
        self.assertNotIn("time", loss(D, name, "?series=train,lr"))
        r = D.get("/v1/models/%s/loss?series=times" % name)
        msg = self.assertError(r, 400, "series", '"times"')
        self.assertIn("time", msg.split("expected")[1])
        self.assertIn('did you mean "time"', msg)

    def test_step_events_carry_the_history_times(self):
        name = make(D)
        s = Stream(D.host, D.port, "/v1/models/%s/events?types=step" % name)
        try:
            self.assertEqual(s.head(), 200)
            time.sleep(0.2)   # the reader is registered before the first step
            D.ok("POST", "/v1/models/%s/train" % name, {"inputs": X, "targets": Y,
                                                         "epochs": 40, "batch_size": 2})
            steps, times = [], []
            while not steps or steps[-1] < 160:
                ev = s.next(60)
                self.assertIsNotNone(ev, "the stream ended before step 160")
                d = json.loads(ev["data"])
                self.assertEqual(len(d["times"]), len(d["steps"]), d)
                self.assertEqual((d["step"], d["time"]), (d["steps"][-1][0], d["times"][-1]))
                steps += [p[0] for p in d["steps"]]
                times += d["times"]
        finally:
            s.close()
        h = loss(D, name)
        self.assertEqual(steps, list(range(1, 161)))
        self.assertEqual(list(zip(steps, times)), [tuple(p) for p in h["time"]])


class TestKept(DaemonTestCase):
    def test_restart_and_max_history(self):
        d = Daemon(extra_args=["--max-history", "10"])
        d.start()
        try:
            name = make(d)
            for _ in range(3):   # 24 steps in three calls: the oldest half goes twice
                d.ok("POST", "/v1/models/%s/train" % name, {"inputs": X, "targets": Y,
                                                             "epochs": 8, "batch_size": 8})
                time.sleep(0.01)
            h = loss(d, name)
            self.assertLessEqual(len(h["history"]), 10)
            self.assertEqual(h["history"][-1][0], 24)
            self.assertEqual([s for s, _ in h["time"]], [s for s, _ in h["history"]])
            self.assertIn("truncated", [m["kind"] for m in h["markers"]])
            ts = [t for _, t in h["time"]]
            self.assertEqual(ts, sorted(ts))
            d.restart()
            self.assertEqual(loss(d, name), h)
            # one more step after the restart: later than every kept one
            d.push(name, X, Y)
            _, (lo, hi) = timed(d, lambda: d.step(name))
            after = loss(d, name)
            self.assertEqual(after["time"][:-1], h["time"][len(h["time"]) - len(after["time"]) + 1:])
            self.assertEqual(after["time"][-1][0], 25)
            self.assertTrue(max(lo, ts[-1]) <= after["time"][-1][1] <= hi, after["time"][-1])
            # kill -9 after a checkpoint: the checkpointed times are back
            d.ok("POST", "/v1/models/%s/checkpoint" % name)
            d.restart(hard=True)
            self.assertEqual(loss(d, name)["time"], after["time"])
        finally:
            d.cleanup()


if __name__ == "__main__":
    run_tests()
