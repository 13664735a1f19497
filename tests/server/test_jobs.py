#!/usr/bin/python3
"""easytorchd training jobs: POST/GET/DELETE /v1/models/{name}/jobs against PyTorch and
against /train; validation every N steps; 409 for other training calls while a job runs,
consistent parameters for readers during a job; cancel running and queued jobs; the job
queue bound; delete the model under a job; the divergence guard inside a job; interrupted
records after SIGTERM and kill -9. Usage: test_jobs.py PATH/TO/easytorchd"""

import math
import os
import re
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon import Daemon, DaemonTestCase  # noqa: E402
import torch  # noqa: E402
from torchref import Reference, dict_close_report  # noqa: E402

D = None
POLL = 0.01


def setUpModule():
    global D
    D = Daemon(extra_args=["--job-threads", "2"])
    D.start()
    DaemonTestCase.daemon = D


def tearDownModule():
    if D is not None:
        D.cleanup()


_counter = [0]


def fresh(prefix="j"):
    _counter[0] += 1
    return "%s%d" % (prefix, _counter[0])


def spec(name, opt=None, **extra):
    s = {"name": name,
         "layers": [{"type": "Linear", "in_features": 3, "out_features": 8}, {"type": "Tanh"},
                    {"type": "Linear", "in_features": 8, "out_features": 4}],
         "loss": "CrossEntropyLoss", "optimizer": opt or {"type": "SGD", "lr": 0.05,
                                                          "momentum": 0.9}, "seed": 11}
    s.update(extra)
    return s


def data(seed, n):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g).tolist(), torch.randint(0, 4, (n,), generator=g).tolist()


TIME_RE = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"


def jobs_path(name, jid=None):
    return "/v1/models/%s/jobs%s" % (name, "" if jid is None else "/%s" % jid)


def submit(d, name, x, y, expect=202, **kw):
    body = {"inputs": x, "targets": y}
    body.update(kw)
    r = d.post(jobs_path(name), body)
    if r.status != expect:
        raise AssertionError("POST jobs -> %r (expected %d)" % (r, expect))
    return r


def wait(d, name, jid, until, timeout=120):
    """Polls the job until until(record) holds; returns the record."""
    deadline = time.monotonic() + timeout  # a safety net against hangs, never a speed check
    while True:
        j = d.ok("GET", jobs_path(name, jid))
        if until(j):
            return j
        if time.monotonic() > deadline:
            raise AssertionError("job %s/%s never reached the state: %r" % (name, jid, j))
        time.sleep(POLL)


def over(j):
    return j["state"] not in ("queued", "running")


class Base(DaemonTestCase):
    def make(self, d=None, **kw):
        d = d or D
        name = fresh()
        s = spec(name, **kw)
        d.create(s)
        ref = Reference(s)
        ref.set_params(d.params(name))
        self.specs = getattr(self, "specs", {})
        self.specs[name] = (s, d.params(name))
        return name, ref

    def assertSameAsTwin(self, name, x, y, k, what, d=None):
        """The model's parameters are bit for bit those of a twin (same spec, same initial
        parameters) that a job trained for exactly k steps on the same minibatches in the
        same daemon: the model holds k whole steps, no more, no less.  (A comparison with
        torch after k steps would mix that up with float32 drift: after the 10^4-10^5 steps
        a long job reaches before it is stopped, torch and easytorch part by ~1e-4 --
        test_jobs compares jobs with torch where the step count is fixed.)"""
        d = d or D
        s, init = self.specs[name]
        twin = fresh("twin")
        d.create(dict(s, name=twin))
        d.set_params(twin, init)
        j = wait(d, twin, submit(d, twin, x, y, epochs=k).json()["id"], over)
        self.assertEqual((j["state"], j["steps_done"]), ("done", k), j)
        self.assertEqual(d.params(name), d.params(twin), "%s: not the parameters of %d whole steps"
                         % (what, k))

    def assertParams(self, name, ref, what, d=None):
        r = dict_close_report((d or D).params(name), ref.params_json())
        self.assertIsNone(r, "%s: %s" % (what, r))


def replay(ref, x, y, epochs, bs, steps=None):
    """torch: the job's minibatches (no shuffle), `steps` of them at most; -> losses"""
    losses = []
    for _ in range(epochs):
        for i in range(0, len(x), bs):
            if steps is not None and len(losses) >= steps:
                return losses
            losses.append(ref.push(x[i:i + bs], y[i:i + bs]))
            ref.step()
    return losses


# ============================================================================ running
class TestRun(Base):
    def test_job_trains_as_torch_and_its_record(self):
        name, ref = self.make()
        x, y = data(1, 10)
        r = submit(D, name, x, y, epochs=3, batch_size=4)
        self.assertEqual(r.headers.get("location"), "/v1/models/%s/jobs/1" % name)
        j = r.json()
        self.assertEqual((j["id"], j["model"], j["steps_total"], j["epochs"], j["batch_size"],
                          j["rows"], j["shuffle"]), (1, name, 9, 3, 4, 10, False))
        self.assertIn(j["state"], ("queued", "running", "done"))
        self.assertRegex(j["created"], TIME_RE)
        self.assertIsNone(j["validation"])
        j = wait(D, name, 1, over)
        self.assertEqual(j["state"], "done", j)
        self.assertEqual((j["steps_done"], j["epoch"], j["start_step"], j["error"],
                          j["skipped_steps"]), (9, 3, 0, None, 0))
        self.assertRegex(j["started"], TIME_RE)
        self.assertRegex(j["finished"], TIME_RE)
        self.assertLessEqual(j["created"], j["started"])
        self.assertLessEqual(j["started"], j["finished"])
        losses = replay(ref, x, y, 3, 4)
        self.assertTrue(math.isclose(j["loss"], losses[-1], rel_tol=1e-4, abs_tol=1e-5))
        self.assertEqual(j["lr"], 0.05)
        self.assertParams(name, ref, "after the job")
        m = D.model(name)
        self.assertEqual((m["step"], m["pending_batches"]), (9, 0))
        h = D.ok("GET", "/v1/models/%s/loss" % name)["history"]
        self.assertEqual([s for s, _ in h], list(range(1, 10)))
        for (s, l), w in zip(h, losses):
            self.assertTrue(math.isclose(l, w, rel_tol=1e-4, abs_tol=1e-5), (s, l, w))
        # listed, and ids go on
        self.assertEqual([x["id"] for x in D.ok("GET", jobs_path(name))["jobs"]], [1])
        j2 = submit(D, name, x, y).json()
        self.assertEqual(j2["id"], 2)
        wait(D, name, 2, over)
        self.assertEqual([x["id"] for x in D.ok("GET", jobs_path(name))["jobs"]], [1, 2])

    def test_a_job_equals_the_same_train_call(self):
        # shuffling from the model's generator, Adam, a scheduler: bit-identical to /train
        opt = {"type": "Adam", "lr": 0.01}
        sched = {"type": "StepLR", "step_size": 3, "gamma": 0.5}
        a, _ = self.make(opt=opt, scheduler=sched, layers=[
            {"type": "Linear", "in_features": 3, "out_features": 8}, {"type": "Dropout", "p": 0.3},
            {"type": "Linear", "in_features": 8, "out_features": 4}])
        b = fresh()
        s = spec(b, opt=opt, scheduler=sched, layers=D.model(a)["spec"]["layers"])
        D.create(s)
        x, y = data(2, 13)
        args = {"epochs": 4, "batch_size": 5, "shuffle": True}
        jid = submit(D, a, x, y, **args).json()["id"]
        j = wait(D, a, jid, over)
        t = D.ok("POST", "/v1/models/%s/train" % b, dict(inputs=x, targets=y, **args))
        self.assertEqual(j["state"], "done")
        self.assertEqual(D.params(a), D.params(b))
        self.assertEqual(D.ok("GET", "/v1/models/%s/loss" % a)["history"],
                         D.ok("GET", "/v1/models/%s/loss" % b)["history"])
        self.assertEqual(j["loss"], t["loss"])
        self.assertEqual(D.model(a)["lr"], D.model(b)["lr"])

    def test_validation_every_n_steps_against_torch(self):
        name, ref = self.make()
        x, y = data(3, 12)
        vx, vy = data(4, 9)
        jid = submit(D, name, x, y, epochs=5, batch_size=4, eval_every=4,
                     validation={"inputs": vx, "targets": vy,
                                 "metrics": ["loss", "accuracy", "top_k_accuracy"], "k": 2}
                     ).json()["id"]
        j = wait(D, name, jid, over)
        self.assertEqual(j["state"], "done")
        v = j["validation"]
        self.assertEqual((v["rows"], v["eval_every"], v["metrics"], v["k"]),
                         (9, 4, ["loss", "accuracy", "top_k_accuracy"], 2))
        # steps 4, 8, 12 and the last one (15)
        self.assertEqual([e["step"] for e in v["results"]], [4, 8, 12, 15])
        self.assertEqual(v["evaluations"], 4)
        vxt, vyt = torch.tensor(vx), torch.tensor(vy)
        steps = 0
        want = {}
        for _ in range(5):
            for i in range(0, 12, 4):
                ref.push(x[i:i + 4], y[i:i + 4])
                ref.step()
                steps += 1
                if steps in (4, 8, 12, 15):
                    out = ref.forward(vx)
                    want[steps] = {
                        "loss": torch.nn.functional.cross_entropy(out, vyt).item(),
                        "accuracy": (out.argmax(1) == vyt).double().mean().item(),
                        "top_k_accuracy": (out.topk(2, 1).indices == vyt[:, None]).any(1)
                        .double().mean().item()}
        for e in v["results"]:
            self.assertEqual(e["job"], jid)
            self.assertEqual(e["k"], 2)
            w = want[e["step"]]
            self.assertTrue(math.isclose(e["metrics"]["loss"], w["loss"], rel_tol=1e-4,
                                         abs_tol=1e-5), (e, w))
            self.assertEqual(e["metrics"]["accuracy"], w["accuracy"])
            self.assertEqual(e["metrics"]["top_k_accuracy"], w["top_k_accuracy"])
        # the same entries, next to the training loss
        lv = D.ok("GET", "/v1/models/%s/loss" % name)
        self.assertEqual(lv["validation"], v["results"])
        self.assertEqual(len(lv["history"]), 15)
        self.assertEqual(D.ok("GET", "/v1/models/%s/loss?series=validation&since=8" % name)
                         ["validation"], v["results"][2:])
        # default: once per epoch, with the loss's default metrics
        jid = submit(D, name, x, y, epochs=2, batch_size=5,
                     validation={"inputs": vx, "targets": vy}).json()["id"]
        v = wait(D, name, jid, over)["validation"]
        self.assertEqual((v["eval_every"], v["metrics"]), (3, ["loss", "accuracy"]))
        self.assertEqual([e["step"] for e in v["results"]], [18, 21])

    def test_validation_history_survives_a_restart(self):
        name, _ = self.make()
        x, y = data(5, 6)
        jid = submit(D, name, x, y, epochs=2, validation={"inputs": x, "targets": y}).json()["id"]
        before = wait(D, name, jid, over)
        loss = D.ok("GET", "/v1/models/%s/loss" % name)
        D.restart()
        self.assertEqual(D.ok("GET", jobs_path(name, jid)), before)
        self.assertEqual(D.ok("GET", "/v1/models/%s/loss" % name), loss)
        self.assertEqual(submit(D, name, x, y).json()["id"], jid + 1)  # ids are never reused


# ============================================================================ concurrency
class TestWhileRunning(Base):
    def long_job(self, name, epochs=1000000, **kw):
        x, y = data(6, 2)
        jid = submit(D, name, x, y, epochs=epochs, **kw).json()["id"]
        wait(D, name, jid, lambda j: j["steps_done"] > 0)
        return jid, x, y

    def test_other_training_calls_get_409_predictions_go_on(self):
        name, _ = self.make()
        jid, x, y = self.long_job(name)
        xy = {"inputs": x, "targets": y}
        for method, suffix, body in (("POST", "/train", xy), ("POST", "/batches", xy),
                                     ("POST", "/step", None), ("POST", "/jobs", xy)):
            r = D.request(method, "/v1/models/%s%s" % (name, suffix), obj=body)
            self.assertError(r, 409, "job %d" % jid)
        self.assertError(D.put("/v1/models/%s/parameters" % name,
                               {"parameters": D.params(name)}), 409, "job")
        for _ in range(20):
            self.assertEqual(len(D.ok("POST", "/v1/models/%s/predict" % name,
                                      {"inputs": x})["outputs"]), 2)
        D.ok("POST", "/v1/models/%s/evaluate" % name, xy)
        D.ok("POST", "/v1/models/%s/gradients" % name, xy)  # a probe changes nothing
        D.ok("POST", "/v1/models/%s/checkpoint" % name)
        # other models are not affected
        other, _ = self.make()
        D.ok("POST", "/v1/models/%s/train" % other, xy)
        j = D.ok("DELETE", jobs_path(name, jid))
        self.assertEqual(j["state"], "cancelled")
        D.ok("POST", "/v1/models/%s/train" % name, xy)  # free again

    def test_readers_see_whole_steps_only(self):
        # every parameter set a reader sees during the job is the state after some step
        name, ref = self.make(opt={"type": "SGD", "lr": 0.02})
        x, y = data(7, 4)
        n = 4000
        jid = submit(D, name, x, y, epochs=n, batch_size=4).json()["id"]
        seen, stop = [], []

        def reader():
            while not stop:
                seen.append(D.params(name))

        t = threading.Thread(target=reader)
        t.start()
        j = wait(D, name, jid, over)
        stop.append(1)
        t.join()
        self.assertEqual(j["state"], "done")
        states = [ref.params_json()]
        for _ in range(n):
            ref.push(x, y)
            ref.step()
            states.append(ref.params_json())
        flat = torch.stack([torch.cat([torch.tensor(v).reshape(-1) for v in s.values()])
                            for s in states])
        self.assertGreater(len(seen), 3)
        for p in seen:
            f = torch.cat([torch.tensor(v).reshape(-1) for v in p.values()])
            best = float((flat - f).abs().max(1).values.min())
            self.assertLess(best, 1e-4, "a reader saw parameters of no whole step")

    def test_cancel_a_running_job_keeps_the_steps_done(self):
        name, ref = self.make()
        jid, x, y = self.long_job(name)
        j = D.ok("DELETE", jobs_path(name, jid))
        self.assertEqual(j["state"], "cancelled", j)
        k = j["steps_done"]
        self.assertGreater(k, 0)
        self.assertLess(k, j["steps_total"])
        self.assertRegex(j["error"], r"^cancelled after %d of \d+ steps$" % k)
        self.assertRegex(j["finished"], TIME_RE)
        self.assertEqual(D.model(name)["step"], k)
        self.assertSameAsTwin(name, x, y, k, "after the cancel")
        # cancelling again is harmless, and answers the same record
        self.assertEqual(D.ok("DELETE", jobs_path(name, jid)), j)
        time.sleep(0.05)
        self.assertEqual(D.model(name)["step"], k)  # nothing runs any more

    def test_cancel_a_queued_job(self):
        d = Daemon(extra_args=["--job-threads", "1"])
        d.start()
        try:
            a, b = fresh(), fresh()
            d.create(spec(a))
            d.create(spec(b))
            x, y = data(8, 2)
            ja = submit(d, a, x, y, epochs=1000000).json()["id"]
            wait(d, a, ja, lambda j: j["state"] == "running")
            jb = submit(d, b, x, y).json()
            self.assertEqual(jb["state"], "queued")
            self.assertIsNone(jb["started"])
            self.assertError(d.post("/v1/models/%s/batches" % b, {"inputs": x, "targets": y}),
                             409, "queued")
            c = d.ok("DELETE", jobs_path(b, jb["id"]))
            self.assertEqual((c["state"], c["steps_done"], c["started"]), ("cancelled", 0, None))
            self.assertIn("before it started", c["error"])
            self.assertEqual(d.model(b)["step"], 0)
            d.ok("DELETE", jobs_path(a, ja))
        finally:
            d.cleanup()

    def test_the_job_queue_is_bounded(self):
        d = Daemon(extra_args=["--job-threads", "1", "--max-jobs", "1"])
        d.start()
        try:
            a, b = fresh(), fresh()
            d.create(spec(a))
            d.create(spec(b))
            x, y = data(9, 2)
            ja = submit(d, a, x, y, epochs=1000000).json()["id"]
            r = d.post(jobs_path(b), {"inputs": x, "targets": y})
            self.assertError(r, 503, "--max-jobs")
            self.assertEqual(r.headers.get("retry-after"), "1")
            d.ok("DELETE", jobs_path(a, ja))
            submit(d, b, x, y)  # room again
        finally:
            d.cleanup()

    def test_deleting_the_model_stops_its_job(self):
        name, _ = self.make()
        jid, _, _ = self.long_job(name)
        D.ok("DELETE", "/v1/models/%s" % name)
        self.assertError(D.get(jobs_path(name, jid)), 404, name)
        # the name is free again and a new model gets fresh job ids
        D.create(spec(name))
        self.assertEqual(D.ok("GET", jobs_path(name))["jobs"], [])


# ============================================================================ errors
class TestErrors(Base):
    def test_bad_submissions_change_nothing(self):
        name, _ = self.make()
        x, y = data(10, 4)
        before = D.params(name)
        cases = [
            ({"inputs": x}, ["targets", "missing"]),
            ({"inputs": x, "targets": y, "epochs": 0}, ["epochs"]),
            ({"inputs": x, "targets": y, "batch_size": -1}, ["batch_size"]),
            ({"inputs": x, "targets": y, "shuffle": 1}, ["shuffle"]),
            ({"inputs": x, "targets": y, "eval_every": 2}, ["eval_every", "validation"]),
            ({"inputs": x, "targets": y, "eval_every": 0,
              "validation": {"inputs": x, "targets": y}}, ["eval_every"]),
            ({"inputs": x, "targets": y[:3]}, ["targets", "rows"]),
            ({"inputs": x, "targets": [0, 1, 2, 9]}, ["targets[3]", "out of range"]),
            ({"inputs": [[1.0, 2.0]] * 4, "targets": y}, ["inputs", "[batch, 3]"]),
            ({"inputs": x, "targets": y, "epochs": 10 ** 7}, ["epochs", "--max-steps"]),
            ({"inputs": x, "targets": y, "validation": [1]}, ["validation"]),
            ({"inputs": x, "targets": y, "validation": {"inputs": x}},
             ["validation.targets", "missing"]),
            ({"inputs": x, "targets": y, "validation": {"inputs": x, "targets": y, "x": 1}},
             ["validation.x", "unknown field"]),
            ({"inputs": x, "targets": y, "validation": {"inputs": [[1.0]], "targets": [0]}},
             ["validation.inputs", "[batch, 3]"]),
            ({"inputs": x, "targets": y, "validation": {"inputs": x, "targets": [0, 1, 2, 5]}},
             ["validation.targets[3]"]),
            ({"inputs": x, "targets": y, "validation": {"inputs": x, "targets": y,
                                                        "metrics": ["r3"]}},
             ["validation.metrics[0]", 'did you mean "r2"']),
            ({"inputs": x, "targets": y, "validation": {"inputs": x, "targets": y,
                                                        "metrics": ["mse"]}},
             ["validation.targets", "mse"]),
            ({"inputs": x, "targets": y, "extra": True}, ["extra", "unknown field"]),
        ]
        for body, words in cases:
            r = D.post(jobs_path(name), body)
            self.assertEqual(r.status, 400, "%r -> %r" % (body, r))
            msg = r.error()
            for w in words:
                self.assertIn(w, msg, "%r -> %r" % (body, msg))
        self.assertEqual(D.params(name), before)
        self.assertEqual(D.ok("GET", jobs_path(name))["jobs"], [])
        self.assertEqual(D.model(name)["step"], 0)

    def test_unknown_jobs_and_models(self):
        name, _ = self.make()
        for jid in ("1", "0", "-1", "abc", "01", "99999999999999999999"):
            self.assertError(D.get(jobs_path(name, jid)), 404, "job")
            self.assertError(D.delete(jobs_path(name, jid)), 404, "job")
        self.assertError(D.get(jobs_path("nope")), 404, "nope")
        self.assertError(D.post(jobs_path("nope"), {"inputs": [[1, 2, 3]], "targets": [0]}), 404)
        self.assertError(D.put(jobs_path(name)), 405)
        self.assertError(D.post(jobs_path(name, 1)), 405)


# ============================================================================ the guard in a job
class TestGuardInJob(Base):
    def test_poisoned_minibatches_are_skipped_and_counted(self):
        for policy in ("skip", "rollback"):
            name, ref = self.make(nonfinite=policy,
                                  loss="MSELoss", layers=[{"type": "Linear", "in_features": 3,
                                                           "out_features": 2}])
            g = torch.Generator().manual_seed(12)
            good = torch.randn(4, 3, generator=g).tolist()
            gy = torch.randn(4, 2, generator=g).tolist()
            poison = [[3e38, 3e38, 3e38], [-3e38, 3e38, -3e38]]
            x = good[:2] + poison + good[2:]
            y = gy[:2] + [[0.0, 0.0], [1.0, 1.0]] + gy[2:]
            jid = submit(D, name, x, y, epochs=2, batch_size=2).json()["id"]
            j = wait(D, name, jid, over)
            self.assertEqual((j["state"], j["steps_done"], j["skipped_steps"]), ("done", 6, 2))
            self.assertEqual(D.model(name)["step"], 4)
            for _ in range(2):
                for bx, by in ((good[:2], gy[:2]), (good[2:], gy[2:])):
                    ref.push(bx, by)
                    ref.step()
            self.assertParams(name, ref, policy)
            nf = D.model(name)["nonfinite"]
            self.assertEqual(nf["count"], 2)
            self.assertEqual(nf["last"]["source"], "job %d" % jid)
            self.assertEqual(nf["last"]["action"], "skipped" if policy == "skip" else "rolled_back")

    def test_allow_lets_the_job_diverge(self):
        name, _ = self.make(nonfinite="allow", loss="MSELoss",
                            layers=[{"type": "Linear", "in_features": 3, "out_features": 2}])
        jid = submit(D, name, [[3e38, 3e38, 3e38]], [[0.0, 0.0]], epochs=3).json()["id"]
        j = wait(D, name, jid, over)
        self.assertEqual((j["state"], j["steps_done"], j["skipped_steps"]), ("done", 3, 0))
        self.assertEqual(D.model(name)["status"], "diverged")


# ============================================================================ restarts
class TestRestart(Base):
    def check_interrupted(self, d, name, jid, ref, x, y):
        j = d.ok("GET", jobs_path(name, jid))
        self.assertEqual(j["state"], "interrupted", j)
        self.assertIn("interrupted", j["error"])
        k = j["steps_done"]
        # the record agrees with the model it was saved with
        self.assertEqual(d.model(name)["step"], j["start_step"] + k)
        self.assertIn("%d of %d steps" % (k, j["steps_total"]), j["error"])
        self.assertSameAsTwin(name, x, y, k, "after the restart", d)
        # not running: the model takes training calls and new jobs
        d.ok("POST", "/v1/models/%s/batches" % name, {"inputs": x, "targets": y})
        self.assertEqual(submit(d, name, x, y).json()["id"], jid + 1)
        return k

    def test_sigterm_interrupts_and_saves(self):
        d = Daemon()
        d.start()
        try:
            name, ref = self.make(d)
            x, y = data(13, 2)
            jid = submit(d, name, x, y, epochs=10 ** 6).json()["id"]
            wait(d, name, jid, lambda j: j["steps_done"] > 10)
            self.assertEqual(d.stop(), 0)
            self.assertRegex(d.log(), r"job %d interrupted: interrupted by the daemon's shutdown "
                                      r"after \d+ of 1000000 steps" % jid)
            d.start()
            k = self.check_interrupted(d, name, jid, ref, x, y)
            self.assertGreater(k, 10)
        finally:
            d.cleanup()

    def test_kill_9_leaves_a_consistent_interrupted_record(self):
        d = Daemon(extra_args=["--save-interval", "0.05"])
        d.start()
        try:
            name, ref = self.make(d)
            x, y = data(14, 2)
            jid = submit(d, name, x, y, epochs=10 ** 6).json()["id"]
            wait(d, name, jid, lambda j: j["steps_done"] > 50)
            time.sleep(0.2)  # a few background saves
            d.kill()
            d.start()
            self.check_interrupted(d, name, jid, ref, x, y)
        finally:
            d.cleanup()

    def test_a_queued_job_reads_interrupted_before_it_started(self):
        d = Daemon(extra_args=["--job-threads", "1"])
        d.start()
        try:
            a, b = fresh(), fresh()
            d.create(spec(a))
            d.create(spec(b))
            x, y = data(15, 2)
            submit(d, a, x, y, epochs=10 ** 6)
            jb = submit(d, b, x, y).json()["id"]
            self.assertEqual(d.stop(), 0)
            d.start()
            j = d.ok("GET", jobs_path(b, jb))
            self.assertEqual((j["state"], j["steps_done"]), ("interrupted", 0))
            self.assertIn("before it started", j["error"])
        finally:
            d.cleanup()


if __name__ == "__main__":
    from daemon import run_tests
    run_tests()
