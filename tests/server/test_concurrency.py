#!/usr/bin/python3
"""easytorchd under concurrent clients: predictions during training always come from one
consistent parameter snapshot, concurrent training of different models equals serial runs,
races on create/step/batches resolve cleanly. Usage: test_concurrency.py PATH/TO/easytorchd"""

import os
import sys
import threading
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import DaemonTestCase, f32  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchref import Reference, build_net, random_params, close_report, dict_close_report  # noqa: E402

D = None  # the module's daemon, made and started by setUpModule
setUpModule, tearDownModule = dm.module_fixture(globals())


MLP = [
    {"type": "Linear", "in_features": 4, "out_features": 16},
    {"type": "Tanh"},
    {"type": "Linear", "in_features": 16, "out_features": 3},
]


def spec_for(name, opt=None, layers=MLP):
    return {"name": name, "layers": layers, "loss": "MSELoss",
            "optimizer": opt or {"type": "SGD", "lr": 0.2, "momentum": 0.5}, "seed": 1}


def data(seed, n):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g).tolist(), (torch.randn(n, 3, generator=g) * 2).tolist()


P0 = random_params(build_net(MLP), 3)


class Workers:
    """Runs callables in threads and collects every exception / unexpected status."""

    def __init__(self):
        self.threads = []
        self.errors = []
        self.lock = threading.Lock()

    def add(self, fn, *args):
        def run():
            try:
                fn(*args)
            except BaseException as e:  # noqa: B902 - report everything
                with self.lock:
                    self.errors.append("%s: %s: %s" % (threading.current_thread().name,
                                                       type(e).__name__, e))
        t = threading.Thread(target=run, name="%s%s" % (fn.__name__, args[:1]))
        self.threads.append(t)

    def run(self):
        for t in self.threads:
            t.start()
        for t in self.threads:
            t.join(dm.HTTP_TIMEOUT * 2)
            if t.is_alive():
                self.errors.append("thread %s never finished" % t.name)
        return self.errors


def serial_train(name, x, y, steps, bs=4):
    for k in range(steps):
        lo = (k * bs) % (len(x) - bs)
        D.push(name, x[lo:lo + bs], y[lo:lo + bs])
        D.step(name)


class TestConcurrency(DaemonTestCase):
    def test_predict_during_training_sees_whole_snapshots(self):
        K = 30
        x, y = data(1, 200)
        probe = data(2, 6)[0]
        # serial reference run: the parameter snapshot after every step
        D.create(spec_for("snapref"))
        D.set_params("snapref", P0)
        snaps = [D.params("snapref")]
        for k in range(K):
            serial_train("snapref", x[k * 4:], y[k * 4:], 1)
            snaps.append(D.params("snapref"))
        nets = []
        for s in snaps:
            net = build_net(MLP)
            net.load_state_dict({k: torch.tensor(v) for k, v in s.items()})
            nets.append(net.eval())
        with torch.no_grad():
            outs = [n(torch.tensor(probe)).numpy().astype(np.float64) for n in nets]
        gaps = [np.abs(outs[i] - outs[j]).max() for i in range(len(outs)) for j in range(i)]
        self.assertGreater(min(gaps), 1e-3, "test setup: snapshots are not distinguishable")
        # other models, trained serially for reference
        ox, oy = data(3, 120)
        for n in ("o1ref", "o2ref"):
            D.create(spec_for(n, {"type": "Adam", "lr": 0.01}))
            D.set_params(n, P0)
        serial_train("o1ref", ox, oy, 25)
        for _ in range(5):
            D.ok("POST", "/v1/models/o2ref/train",
                 {"inputs": ox[:40], "targets": oy[:40], "batch_size": 8, "epochs": 2})
        # the concurrent run
        D.create(spec_for("live"))
        D.set_params("live", P0)
        for n in ("o1", "o2"):
            D.create(spec_for(n, {"type": "Adam", "lr": 0.01}))
            D.set_params(n, P0)
        done = threading.Event()
        seen = {}

        def trainer():
            try:
                for k in range(K):
                    serial_train("live", x[k * 4:], y[k * 4:], 1)
            finally:
                done.set()

        def predictor(i):
            idx = []
            count = 0
            while not done.is_set() or count < 5:
                r = D.post("/v1/models/live/predict", {"inputs": probe})
                if r.status != 200:
                    raise AssertionError("predict -> %r" % r)
                got = np.asarray(r.json()["outputs"], dtype=np.float64)
                match = [j for j, o in enumerate(outs)
                         if got.shape == o.shape and np.allclose(got, o, rtol=1e-4, atol=1e-5)]
                if not match:
                    near = min(range(len(outs)), key=lambda j: np.abs(got - outs[j]).max())
                    raise AssertionError(
                        "prediction #%d matches no parameter snapshot (nearest: step %d, "
                        "max diff %.3g)" % (count, near, np.abs(got - outs[near]).max()))
                idx.append(match[0])
                count += 1
            seen[i] = idx

        def other1():
            serial_train("o1", ox, oy, 25)

        def other2():
            for _ in range(5):
                D.ok("POST", "/v1/models/o2/train",
                     {"inputs": ox[:40], "targets": oy[:40], "batch_size": 8, "epochs": 2})

        def reader():
            while not done.is_set():
                for path in ("/v1/models", "/v1/models/live", "/v1/models/live/loss?since=3",
                             "/metrics", "/v1/models/live/gradients", "/v2/models/live"):
                    r = D.get(path)
                    if r.status != 200:
                        raise AssertionError("GET %s -> %r" % (path, r))

        w = Workers()
        w.add(trainer)
        for i in range(3):
            w.add(predictor, i)
        w.add(other1)
        w.add(other2)
        w.add(reader)
        errors = w.run()
        self.assertEqual(errors, [])
        for i, idx in seen.items():
            self.assertEqual(idx, sorted(idx), "predictor %d saw parameters go back in time" % i)
        self.assertEqual(D.model("live")["step"], K)
        self.assertEqual(D.params("live"), snaps[-1], "concurrent run != serial run (live)")
        self.assertEqual(D.params("o1"), D.params("o1ref"), "concurrent run != serial run (o1)")
        self.assertEqual(D.params("o2"), D.params("o2ref"), "concurrent run != serial run (o2)")
        self.assertEqual(D.ok("GET", "/v1/models/live/loss")["history"],
                         D.ok("GET", "/v1/models/snapref/loss")["history"])

    def test_put_parameters_is_atomic_for_readers(self):
        D.create(spec_for("atomic"))
        pa = random_params(build_net(MLP), 10)
        pb = random_params(build_net(MLP), 11)
        probe = data(4, 5)[0]
        want = []
        for p in (pa, pb):
            net = build_net(MLP)
            net.load_state_dict({k: torch.tensor(v) for k, v in p.items()})
            with torch.no_grad():
                want.append(net.eval()(torch.tensor(probe)).numpy())
        D.set_params("atomic", pa)
        done = threading.Event()

        def writer():
            try:
                for i in range(30):
                    D.set_params("atomic", pb if i % 2 == 0 else pa)
            finally:
                done.set()

        def predictor():
            n = 0
            while not done.is_set() or n < 3:
                got = D.predict("atomic", probe)
                if all(close_report(got, w_) for w_ in want):
                    raise AssertionError("a prediction mixed two parameter sets")
                n += 1

        def param_reader():
            while not done.is_set():
                got = f32(D.params("atomic"))
                if got != f32(pa) and got != f32(pb):
                    raise AssertionError("GET parameters returned a mix of two PUTs")

        w = Workers()
        w.add(writer)
        w.add(predictor)
        w.add(predictor)
        w.add(param_reader)
        self.assertEqual(w.run(), [])

    def test_concurrent_batches_accumulate_all(self):
        spec = spec_for("acc")
        D.create(spec)
        D.set_params("acc", P0)
        ref = Reference(spec)
        ref.set_params(P0)
        x, y = data(5, 80)
        chunks = [(x[i:i + 4], y[i:i + 4]) for i in range(0, 80, 4)]

        def pusher(t):
            for c in chunks[t::4]:
                r = D.post("/v1/models/acc/batches", {"inputs": c[0], "targets": c[1]})
                if r.status != 200:
                    raise AssertionError("batches -> %r" % r)

        w = Workers()
        for t in range(4):
            w.add(pusher, t)
        self.assertEqual(w.run(), [])
        self.assertEqual(D.model("acc")["pending_batches"], 20)
        for cx, cy in chunks:
            ref.push(cx, cy)
        r = dict_close_report(D.ok("GET", "/v1/models/acc/gradients")["gradients"], ref.grads_json())
        self.assertIsNone(r, "accumulated gradients of 20 concurrent batches: %s" % r)
        D.step("acc")
        ref.step()
        r = dict_close_report(D.params("acc"), ref.params_json())
        self.assertIsNone(r, "parameters after stepping 20 concurrent batches: %s" % r)

    def test_racing_steps_exactly_one_wins(self):
        D.create(spec_for("race"))
        x, y = data(6, 4)
        D.push("race", x, y)
        statuses = []
        lock = threading.Lock()
        barrier = threading.Barrier(6)

        def stepper():
            barrier.wait()
            r = D.post("/v1/models/race/step")
            with lock:
                statuses.append(r.status)

        w = Workers()
        for _ in range(6):
            w.add(stepper)
        self.assertEqual(w.run(), [])
        self.assertEqual(sorted(statuses), [200] + [409] * 5)
        self.assertEqual(D.model("race")["step"], 1)

    def test_racing_creates_one_name(self):
        statuses = []
        lock = threading.Lock()
        barrier = threading.Barrier(8)

        def creator(i):
            barrier.wait()
            r = D.post("/v1/models", spec_for("dup", {"type": "SGD", "lr": 0.01 * (i + 1)}))
            with lock:
                statuses.append(r.status)

        w = Workers()
        for i in range(8):
            w.add(creator, i)
        self.assertEqual(w.run(), [])
        self.assertEqual(sorted(statuses), [201] + [409] * 7)
        names = [m["name"] for m in D.ok("GET", "/v1/models")["models"]]
        self.assertEqual(names.count("dup"), 1)

    def test_create_use_delete_in_parallel(self):
        x, y = data(7, 8)

        def churn(t):
            for i in range(5):
                n = "churn-%d-%d" % (t, i)
                D.create(spec_for(n))
                D.ok("POST", "/v1/models/%s/train" % n, {"inputs": x, "targets": y})
                D.predict(n, x)
                r = D.delete("/v1/models/%s" % n)
                if r.status not in (200, 204):
                    raise AssertionError("DELETE %s -> %r" % (n, r))
                r = D.get("/v1/models/%s" % n)
                if r.status != 404:
                    raise AssertionError("GET deleted %s -> %r" % (n, r))

        def lister():
            for _ in range(30):
                D.ok("GET", "/v1/models")
                r = D.get("/metrics")
                if r.status != 200:
                    raise AssertionError("GET /metrics -> %r" % r)

        w = Workers()
        for t in range(3):
            w.add(churn, t)
        w.add(lister)
        self.assertEqual(w.run(), [])
        left = [m["name"] for m in D.ok("GET", "/v1/models")["models"] if m["name"].startswith("churn")]
        self.assertEqual(left, [])
        self.assertEqual(D.get("/healthz").status, 200)


class TestSameModelContention(DaemonTestCase):
    def test_concurrent_trains_on_one_model_all_count(self):
        D.create(spec_for("shared", {"type": "Adam", "lr": 0.01}))
        x, y = data(8, 40)

        def trainer(t):
            for _ in range(5):
                r = D.post("/v1/models/shared/train",
                           {"inputs": x, "targets": y, "batch_size": 20})
                if r.status != 200:
                    raise AssertionError("train -> %r" % r)

        w = Workers()
        for t in range(4):
            w.add(trainer, t)
        self.assertEqual(w.run(), [])
        m = D.model("shared")
        self.assertEqual(m["step"], 4 * 5 * 2)
        h = D.ok("GET", "/v1/models/shared/loss")["history"]
        self.assertEqual([e[0] for e in h], list(range(1, 41)))

    def test_concurrent_batches_and_steps_on_one_model(self):
        D.create(spec_for("mixed"))
        x, y = data(9, 8)
        ok_steps = []
        lock = threading.Lock()

        def worker(t):
            for _ in range(10):
                r = D.post("/v1/models/mixed/batches", {"inputs": x, "targets": y})
                if r.status != 200:
                    raise AssertionError("batches -> %r" % r)
                r = D.post("/v1/models/mixed/step")
                if r.status not in (200, 409):
                    raise AssertionError("step -> %r" % r)
                if r.status == 200:
                    with lock:
                        ok_steps.append(r.json()["step"])

        w = Workers()
        for t in range(4):
            w.add(worker, t)
        self.assertEqual(w.run(), [])
        m = D.model("mixed")
        self.assertEqual(sorted(ok_steps), list(range(1, len(ok_steps) + 1)),
                         "step numbers handed out twice or skipped")
        self.assertEqual(m["step"], len(ok_steps))
        self.assertGreater(len(ok_steps), 0)

    def test_delete_while_training_and_predicting(self):
        x, y = data(10, 16)
        for round_ in range(3):
            name = "doomed%d" % round_
            D.create(spec_for(name))
            started = threading.Event()

            def trainer():
                for i in range(200):
                    r = D.post("/v1/models/%s/train" % name, {"inputs": x, "targets": y})
                    started.set()
                    if r.status == 404:
                        return
                    if r.status != 200:
                        raise AssertionError("train -> %r" % r)
                raise AssertionError("model never disappeared")

            def predictor():
                started.wait(dm.HTTP_TIMEOUT)
                while True:
                    r = D.post("/v1/models/%s/predict" % name, {"inputs": x})
                    if r.status == 404:
                        return
                    if r.status != 200:
                        raise AssertionError("predict -> %r" % r)

            def deleter():
                started.wait(dm.HTTP_TIMEOUT)
                r = D.delete("/v1/models/%s" % name)
                if r.status not in (200, 204):
                    raise AssertionError("delete -> %r" % r)

            w = Workers()
            w.add(trainer)
            w.add(predictor)
            w.add(deleter)
            self.assertEqual(w.run(), [])
            self.assertEqual(D.get("/v1/models/%s" % name).status, 404)
        self.assertEqual(D.get("/healthz").status, 200)


if __name__ == "__main__":
    dm.run_tests()
