#!/usr/bin/python3
"""easytorchd's divergence guard ("nonfinite": skip | rollback | allow) with poisoned batches
on /batches, /step, /train and jobs, compared with PyTorch trained on the batches the policy
keeps; a step that overflows the parameters; the counter and last event in GET; "status":
"diverged" in every read; persistence across a restart.
Usage: test_guard.py PATH/TO/easytorchd"""

import os
import re
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import DaemonTestCase  # noqa: E402
import torch  # noqa: E402
from torchref import Reference, dict_close_report  # noqa: E402


D = None  # the module's daemon, made and started by setUpModule
setUpModule, tearDownModule = dm.module_fixture(globals())


_counter = [0]


def fresh(prefix="g"):
    _counter[0] += 1
    return "%s%d" % (prefix, _counter[0])


def spec(name, policy=None, lr=0.1, opt="SGD", **extra):
    s = {"name": name,
         "layers": [{"type": "Linear", "in_features": 3, "out_features": 4}, {"type": "ReLU"},
                    {"type": "Linear", "in_features": 4, "out_features": 2}],
         "loss": "MSELoss", "optimizer": {"type": opt, "lr": lr}, "seed": 5}
    if policy:
        s["nonfinite"] = policy
    s.update(extra)
    return s


def batch(seed, n=4):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g).tolist(), torch.randn(n, 2, generator=g).tolist()


# A poisoned batch: JSON cannot carry inf, but these finite inputs overflow float32 in the
# first Linear (|x| * |w| summed past 3.4e38), so the loss is inf or NaN.
POISON_X = [[3e38, 3e38, 3e38], [-3e38, 3e38, -3e38]]
POISON_Y = [[0.0, 1.0], [1.0, 0.0]]
LOSS_REASON = re.compile(r"^loss is (NaN|inf|-inf)$")


class Base(DaemonTestCase):
    def make(self, policy=None, **kw):
        name = fresh()
        s = spec(name, policy, **kw)
        D.create(s)
        ref = Reference(s)
        ref.set_params(D.params(name))
        return name, ref

    def nonfinite(self, name):
        return D.model(name)["nonfinite"]

    def assertParams(self, name, ref, what):
        r = dict_close_report(D.params(name), ref.params_json())
        self.assertIsNone(r, "%s: parameters differ from torch's: %s" % (what, r))

    def assertEvent(self, name, count, action, source, reason=LOSS_REASON):
        nf = self.nonfinite(name)
        self.assertEqual(nf["count"], count, nf)
        last = nf["last"]
        self.assertEqual(last["action"], action, nf)
        self.assertEqual(last["source"], source, nf)
        if isinstance(reason, str):
            self.assertIn(reason, last["reason"])
        else:
            self.assertRegex(last["reason"], reason)
        self.assertRegex(last["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        return last

    def push(self, name, x, y):
        return D.ok("POST", "/v1/models/%s/batches" % name, {"inputs": x, "targets": y})

    def train(self, name, x, y, **kw):
        body = {"inputs": x, "targets": y}
        body.update(kw)
        return D.ok("POST", "/v1/models/%s/train" % name, body)


# ============================================================================ policy field
class TestPolicy(Base):
    def test_default_is_skip_and_description_has_the_guard(self):
        name, _ = self.make()
        m = D.model(name)
        self.assertEqual(m["status"], "ok")
        self.assertEqual(m["nonfinite"], {"policy": "skip", "count": 0, "last": None})
        listed = [x for x in D.ok("GET", "/v1/models")["models"] if x["name"] == name]
        self.assertEqual(listed[0]["status"], "ok")

    def test_each_policy_is_accepted_and_kept_in_the_spec(self):
        for p in ("skip", "rollback", "allow"):
            name, _ = self.make(p)
            m = D.model(name)
            self.assertEqual(m["nonfinite"]["policy"], p)
            self.assertEqual(m["spec"]["nonfinite"], p)

    def test_bad_policy_is_400_naming_the_field(self):
        for bad, hint in (("Skip", 'did you mean "skip"'), ("never", "rollback"), (True, "allow"),
                          (1, "skip")):
            r = D.post("/v1/models", spec(fresh(), bad))
            msg = self.assertError(r, 400, "nonfinite")
            self.assertIn(hint, msg)


# ============================================================================ /batches + /step
class TestBatches(Base):
    def test_skip_drops_the_poisoned_batch_only(self):
        name, ref = self.make("skip")
        xa, ya = batch(1)
        ra = self.push(name, xa, ya)
        self.assertNotIn("skipped", ra)
        ref.push(xa, ya)
        rp = self.push(name, POISON_X, POISON_Y)
        self.assertIs(rp["skipped"], True, rp)
        self.assertRegex(rp["reason"], LOSS_REASON)
        self.assertIsNone(rp["loss"])  # not finite: null
        self.assertEqual(rp["pending_batches"], 1)
        self.assertEvent(name, 1, "skipped", "batches")
        # the accumulated gradients are batch A's alone
        g = D.ok("GET", "/v1/models/%s/gradients" % name)["gradients"]
        self.assertIsNone(dict_close_report(g, ref.grads_json()))
        st = D.step(name)
        self.assertNotIn("skipped", st)
        ref.step()
        self.assertParams(name, ref, "after the step")
        self.assertEqual(D.model(name)["status"], "ok")

    def test_rollback_discards_the_pending_batches_too(self):
        name, ref = self.make("rollback")
        xa, ya = batch(2)
        self.push(name, xa, ya)
        D.step(name)
        ref.push(xa, ya)
        ref.step()
        xb, yb = batch(3)
        self.push(name, xb, yb)  # pending since the last finite step ...
        rp = self.push(name, POISON_X, POISON_Y)
        self.assertIs(rp["skipped"], True, rp)
        self.assertEqual(rp["pending_batches"], 0)  # ... discarded with the poisoned one
        self.assertEvent(name, 1, "rolled_back", "batches")
        g = D.ok("GET", "/v1/models/%s/gradients" % name)["gradients"]
        self.assertTrue(all(v == 0 for t in g.values() for row in t
                            for v in (row if isinstance(row, list) else [row])))
        self.assertError(D.post("/v1/models/%s/step" % name), 409, "nothing to step")
        self.assertParams(name, ref, "after the rollback")
        m = D.model(name)
        self.assertEqual((m["step"], m["pending_batches"], m["status"]), (1, 0, "ok"))

    def test_allow_applies_it_and_the_model_reads_diverged(self):
        name, ref = self.make("allow")
        xa, ya = batch(4)
        self.push(name, xa, ya)
        rp = self.push(name, POISON_X, POISON_Y)
        self.assertNotIn("skipped", rp)
        self.assertIsNone(rp["loss"])
        self.assertEqual(rp["pending_batches"], 2)
        self.assertEvent(name, 1, "applied", "batches")
        self.assertEqual(D.model(name)["status"], "ok")  # nothing stepped yet
        st = D.step(name)
        self.assertNotIn("skipped", st)
        # every read says so
        m = D.model(name)
        self.assertEqual(m["status"], "diverged")
        self.assertEqual(m["step"], 1)
        listed = [x for x in D.ok("GET", "/v1/models")["models"] if x["name"] == name]
        self.assertEqual(listed[0]["status"], "diverged")
        self.assertEqual(D.ok("GET", "/v1/models/%s/loss" % name)["status"], "diverged")
        p = D.ok("POST", "/v1/models/%s/predict" % name, {"inputs": xa})
        self.assertEqual(p["status"], "diverged")
        # counted once: the gradient event of the step is the batch's
        self.assertEqual(self.nonfinite(name)["count"], 2)
        self.assertIn("gradient", self.nonfinite(name)["last"]["reason"])
        # finite parameters put back: ok again
        good = Reference(spec("x")).params_json()
        D.set_params(name, good)
        self.assertEqual(D.model(name)["status"], "ok")
        self.assertNotIn("status", D.ok("POST", "/v1/models/%s/predict" % name, {"inputs": xa}))

    def test_overflowing_step_is_undone_under_rollback(self):
        # finite gradients, an lr that takes the parameters past float32
        name, ref = self.make("rollback", lr=3e38)
        x, y = [[50.0, -40.0, 30.0]], [[100.0, -100.0]]
        self.push(name, x, y)
        st = D.step(name)
        self.assertIs(st["skipped"], True, st)
        self.assertRegex(st["reason"], r"^parameter \S+ is not finite \((NaN|inf|-inf) at element "
                                       r"\d+\) after step 1$")
        self.assertEqual(st["step"], 0)
        self.assertParams(name, ref, "after the undone step")
        m = D.model(name)
        self.assertEqual((m["step"], m["pending_batches"], m["status"]), (0, 0, "ok"))
        self.assertEvent(name, 1, "rolled_back", "step", "is not finite")
        self.assertEqual(D.ok("GET", "/v1/models/%s/loss" % name)["history"], [])

    def test_overflowing_step_under_skip_is_reported_as_diverged(self):
        name, _ = self.make("skip", lr=3e38)
        self.push(name, [[50.0, -40.0, 30.0]], [[100.0, -100.0]])
        st = D.step(name)
        self.assertNotIn("skipped", st)  # gradients were finite: skip applies the step
        self.assertEqual(st["step"], 1)
        m = D.model(name)
        self.assertEqual(m["status"], "diverged")
        self.assertEvent(name, 1, "applied", "step", "after step 1")


    def test_skipped_batch_leaves_running_statistics_alone(self):
        # a training-mode forward updates BatchNorm's running statistics: a batch that is
        # not applied must not leave them behind (NaN there would poison every prediction)
        for policy in ("skip", "rollback"):
            name = fresh()
            D.create(spec(name, policy, layers=[
                {"type": "Linear", "in_features": 3, "out_features": 4},
                {"type": "BatchNorm1d", "num_features": 4},
                {"type": "Linear", "in_features": 4, "out_features": 2}]))
            xa, ya = batch(5)
            initial = D.params(name)
            self.push(name, xa, ya)
            # skip keeps batch A's forward; rollback discards it with the pending batch
            before = D.params(name) if policy == "skip" else initial
            r = self.push(name, POISON_X, POISON_Y)
            self.assertIs(r.get("skipped"), True, r)
            after = D.params(name)
            for k in ("1.running_mean", "1.running_var", "1.num_batches_tracked"):
                self.assertEqual(after[k], before[k], "%s: %s changed" % (policy, k))
            t = self.train(name, xa + POISON_X, ya + POISON_Y, batch_size=4)
            self.assertEqual(t["skipped_steps"], 1)
            p = D.params(name)
            self.assertTrue(all(v == v for v in p["1.running_mean"]), p["1.running_mean"])
            self.assertEqual(D.model(name)["status"], "ok")


# ============================================================================ /train
class TestTrain(Base):
    def poisoned_set(self):
        xa, ya = batch(10, 2)
        xb, yb = batch(11, 2)
        return xa + POISON_X + xb, ya + POISON_Y + yb, (xa, ya), (xb, yb)

    def check_kept(self, policy):
        name, ref = self.make(policy)
        x, y, a, b = self.poisoned_set()
        r = self.train(name, x, y, batch_size=2)
        self.assertEqual(len(r["losses"]), 3)
        self.assertIsNone(r["losses"][1])
        self.assertEqual(r["skipped_steps"], 1)
        self.assertIs(r["skipped"], True)
        self.assertRegex(r["reason"], LOSS_REASON)
        self.assertEqual(r["step"], 2)
        want = []
        for bx, by in (a, b):
            want.append(ref.push(bx, by))
            ref.step()
        self.assertAlmostEqual(r["losses"][0], want[0], places=5)
        self.assertAlmostEqual(r["losses"][2], want[1], places=5)
        self.assertParams(name, ref, "train under %s" % policy)
        h = D.ok("GET", "/v1/models/%s/loss" % name)["history"]
        self.assertEqual([s for s, _ in h], [1, 2])
        self.assertEvent(name, 1, "skipped" if policy == "skip" else "rolled_back", "train")
        self.assertEqual(D.model(name)["status"], "ok")

    def test_skip(self):
        self.check_kept("skip")

    def test_rollback(self):
        self.check_kept("rollback")

    def test_allow(self):
        name, _ = self.make("allow")
        x, y, _, _ = self.poisoned_set()
        r = self.train(name, x, y, batch_size=2)
        self.assertNotIn("skipped", r)
        self.assertEqual(r["step"], 3)
        self.assertIsNone(r["losses"][1])
        self.assertIsNone(r["losses"][2])  # diverged from there on
        self.assertEqual(D.model(name)["status"], "diverged")
        self.assertEqual(self.nonfinite(name)["last"]["action"], "applied")

    def test_clean_training_is_unchanged_by_every_policy(self):
        x, y = batch(20, 8)
        results = []
        for p in ("skip", "rollback", "allow"):
            name, ref = self.make(p, opt="Adam", lr=0.01)
            r = self.train(name, x, y, batch_size=3, epochs=2)
            self.assertNotIn("skipped", r)
            for ep in range(2):
                for i in range(0, 8, 3):
                    ref.push(x[i:i + 3], y[i:i + 3])
                    ref.step()
            self.assertParams(name, ref, p)
            results.append(D.params(name))
            self.assertEqual(self.nonfinite(name)["count"], 0)
        self.assertEqual(results[0], results[1])
        self.assertEqual(results[0], results[2])


# ============================================================================ persistence
class TestRestart(Base):
    def test_counter_last_event_and_policy_survive_a_restart(self):
        name, _ = self.make("rollback")
        self.push(name, POISON_X, POISON_Y)
        self.push(name, POISON_X, POISON_Y)
        before = D.model(name)
        D.ok("POST", "/v1/models/%s/checkpoint" % name)
        D.restart()
        after = D.model(name)
        self.assertEqual(after["nonfinite"], before["nonfinite"])
        self.assertEqual(after["nonfinite"]["count"], 2)
        # the rollback image is rebuilt from the loaded state
        xa, ya = batch(30)
        self.push(name, xa, ya)
        r = self.push(name, POISON_X, POISON_Y)
        self.assertEqual((r["skipped"], r["pending_batches"]), (True, 0))

    def test_a_diverged_model_reads_diverged_after_a_restart(self):
        name, _ = self.make("allow")
        self.train(name, POISON_X, POISON_Y)
        self.assertEqual(D.model(name)["status"], "diverged")
        D.ok("POST", "/v1/models/%s/checkpoint" % name)
        D.restart(hard=True)
        self.assertEqual(D.model(name)["status"], "diverged")


if __name__ == "__main__":
    from daemon import run_tests
    run_tests()
