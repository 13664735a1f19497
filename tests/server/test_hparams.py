#!/usr/bin/python3
"""easytorchd PATCH /v1/models/{name}: optimizer hyperparameters, the scheduler and the
divergence policy changed on a running model, against torch changing param_groups and
constructing a scheduler on the optimizer mid-training (live in this test); invalid changes
are 400 and change nothing; persisted across a restart; applied while a job runs; the lr
series and markers of GET .../loss. Usage: test_hparams.py PATH/TO/easytorchd"""

import copy
import os
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import Daemon, DaemonTestCase  # noqa: E402
import torch  # noqa: E402
from torchref import Reference, build_scheduler, close_report, random_params  # noqa: E402

RTOL, ATOL = 1e-4, 1e-5
MLP = [{"type": "Linear", "in_features": 3, "out_features": 8}, {"type": "Tanh"},
       {"type": "Linear", "in_features": 8, "out_features": 2}]


D = None  # the module's daemon, made and started by setUpModule
setUpModule, tearDownModule = dm.module_fixture(globals())


_counter = [0]


def fresh(prefix="h"):
    _counter[0] += 1
    return "%s%d" % (prefix, _counter[0])


def rand(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def batch(i):
    return rand(1000 + i, 6, 3).tolist(), rand(2000 + i, 6, 2).tolist()


class Base(DaemonTestCase):
    def make(self, optimizer, scheduler=None, **extra):
        name = fresh()
        spec = {"name": name, "layers": MLP, "loss": "MSELoss", "optimizer": optimizer,
                "seed": 5}
        if scheduler:
            spec["scheduler"] = scheduler
        spec.update(extra)
        D.create(spec)
        ref = Reference(spec)
        params = random_params(ref.net, 77)
        D.set_params(name, params)
        ref.set_params(params)
        return name, ref

    def train(self, name, ref, first, n, d=None):
        d = d or D
        for i in range(first, first + n):
            x, y = batch(i)
            d.push(name, x, y)
            d.step(name)
            ref.push(x, y)
            ref.step()

    def same(self, name, ref, d=None):
        d = d or D
        got = d.params(name)
        for k, v in ref.params_json().items():
            rep = close_report(got[k], v, RTOL, ATOL)
            self.assertIsNone(rep, "%s: %s" % (k, rep))

    def patch(self, name, body, expect=200, d=None):
        r = (d or D).request("PATCH", "/v1/models/%s" % name, body)
        self.assertEqual(r.status, expect, r)
        return r.json()

    def torch_lrs(self, ref):
        return [g["lr"] for g in ref.opt.param_groups]


class TestAsTorch(Base):
    def test_lr_and_momentum_with_a_chainable_scheduler(self):
        name, ref = self.make({"type": "SGD", "lr": 0.1, "momentum": 0.5},
                              {"type": "StepLR", "step_size": 3, "gamma": 0.5})
        self.train(name, ref, 0, 4)
        self.same(name, ref)
        r = self.patch(name, {"optimizer": {"lr": 0.03, "momentum": 0.9}})
        for g in ref.opt.param_groups:  # what a torch user writes
            g["lr"], g["momentum"] = 0.03, 0.9
        self.assertEqual(r["step"], 4)
        self.assertEqual(set(r["changes"]), {"lr", "momentum"})
        self.assertEqual(r["changes"]["momentum"], {"from": 0.5, "to": 0.9})
        self.assertAlmostEqual(r["changes"]["lr"]["to"], 0.03)
        self.assertAlmostEqual(r["lr"], 0.03)
        self.assertEqual(r["param_groups"][0]["momentum"], 0.9)
        self.train(name, ref, 4, 7)   # StepLR goes on multiplying the new lr
        self.same(name, ref)
        m = D.model(name)
        self.assertAlmostEqual(m["lr"], self.torch_lrs(ref)[0], places=9)
        self.assertAlmostEqual(m["param_groups"][0]["lr"], self.torch_lrs(ref)[0], places=9)
        # the spec keeps the scheduler's base lr (torch's initial_lr)
        self.assertEqual(m["spec"]["optimizer"]["lr"], 0.1)
        self.assertEqual(m["spec"]["optimizer"]["momentum"], 0.9)

    def test_param_groups_form_and_adam_betas(self):
        name, ref = self.make({"type": "Adam", "lr": 0.01})
        self.train(name, ref, 0, 3)
        r = self.patch(name, {"optimizer": {"type": "Adam", "param_groups": [
            {"betas": [0.8, 0.95], "weight_decay": 0.01, "maximize": False}]}})
        g = ref.opt.param_groups[0]
        g["betas"], g["weight_decay"] = (0.8, 0.95), 0.01
        # (torch 1.13 cannot switch amsgrad on mid-training: its step lacks the state)
        self.assertEqual(set(r["changes"]), {"beta1", "beta2", "weight_decay"})
        self.assertEqual(r["param_groups"][0]["betas"], [0.8, 0.95])
        self.assertIs(r["param_groups"][0]["maximize"], False)
        self.train(name, ref, 3, 5)
        self.same(name, ref)
        self.assertEqual(D.model(name)["spec"]["optimizer"]["betas"], [0.8, 0.95])

    def test_add_replace_remove_the_scheduler(self):
        name, ref = self.make({"type": "SGD", "lr": 0.2})
        self.train(name, ref, 0, 2)
        lin = {"type": "LinearLR", "start_factor": 0.5, "total_iters": 4}
        r = self.patch(name, {"scheduler": lin, "optimizer": {"lr": 0.1}})
        for g in ref.opt.param_groups:
            g["lr"] = 0.1
        ref.sched = build_scheduler(lin, ref.opt)  # constructed mid-training
        self.assertEqual(r["changes"]["scheduler"], {"from": None, "to": lin})
        self.assertAlmostEqual(r["lr"], self.torch_lrs(ref)[0], places=9)
        self.train(name, ref, 2, 6)
        self.same(name, ref)
        cos = {"type": "CosineAnnealingLR", "T_max": 5, "eta_min": 0.001}
        r = self.patch(name, {"scheduler": cos})
        ref.sched = build_scheduler(cos, ref.opt)
        self.assertEqual(r["changes"]["scheduler"], {"from": lin, "to": cos})
        self.train(name, ref, 8, 7)
        self.same(name, ref)
        self.assertAlmostEqual(D.model(name)["lr"], self.torch_lrs(ref)[0], places=9)
        r = self.patch(name, {"scheduler": None})
        ref.sched = None
        self.assertNotIn("scheduler", r["spec"])
        self.train(name, ref, 15, 3)
        self.same(name, ref)
        # the lr series is the lr torch used at each step
        h = D.get("/v1/models/%s/loss?series=lr" % name).json()
        self.assertEqual(sorted(h), ["lr", "status", "step"])
        self.assertEqual([s for s, _ in h["lr"]], list(range(1, 19)))
        self.assertAlmostEqual(h["lr"][0][1], 0.2)
        self.assertAlmostEqual(h["lr"][2][1], 0.05)   # 0.1 * start_factor


class TestErrors(Base):
    def test_invalid_changes_are_400_and_change_nothing(self):
        name, ref = self.make({"type": "SGD", "lr": 0.1, "momentum": 0.5},
                              {"type": "StepLR", "step_size": 3})
        self.train(name, ref, 0, 2)
        cases = [
            ({}, ["nothing to change"]),
            ({"optimizer": {"lr": -1}}, ["optimizer.lr"]),
            ({"optimizer": {"lr": "fast"}}, ["optimizer.lr"]),
            ({"optimizer": {"lrr": 0.1}}, ["optimizer.lrr", 'did you mean "lr"']),
            ({"optimizer": {"betas": [0.9, 0.99]}}, ["optimizer.betas", "unknown field"]),
            ({"optimizer": {"nesterov": True, "dampening": 0.1}}, ["nesterov"]),
            ({"optimizer": {"nesterov": 1}}, ["optimizer.nesterov"]),
            ({"optimizer": {"type": "Adam"}}, ["optimizer.type", "cannot be changed", "SGD"]),
            ({"optimizer": {"param_groups": [{}, {}]}}, ["optimizer.param_groups", "1 object"]),
            ({"optimizer": {"param_groups": [{"momentum": -2}]}}, ["momentum"]),
            ({"optimizer": 0.1}, ["optimizer", "object"]),
            ({"optimizer": {"lr": 0.5}, "scheduler": {"type": "StepLR"}},
             ["scheduler.step_size"]),
            ({"scheduler": {"type": "WarpLR"}}, ["scheduler"]),
            ({"scheduler": 3}, ["scheduler"]),
            ({"nonfinite": "ignore"}, ["nonfinite"]),
            ({"layers": []}, ["layers", "cannot be changed"]),
            ({"seed": 3}, ["seed", "cannot be changed"]),
            ({"name": "other"}, ["name", "cannot be changed"]),
            ({"lr": 0.1}, ["lr", "unknown field"]),
        ]
        before = D.model(name)
        loss_before = D.get("/v1/models/%s/loss" % name).json()
        for body, words in cases:
            r = D.request("PATCH", "/v1/models/%s" % name, body)
            msg = self.assertError(r, 400)
            for w in words:
                self.assertIn(w, msg, "%r -> %r" % (body, msg))
            self.assertEqual(D.model(name), before, body)
            self.assertEqual(D.get("/v1/models/%s/loss" % name).json(), loss_before, body)
        self.assertError(D.request("PATCH", "/v1/models/nope", {"optimizer": {"lr": 1}}), 404,
                         "nope")
        r = D.request("PATCH", "/v1/models/%s" % name, body=b"{", headers={})
        self.assertError(r, 400)
        # and training goes on as torch's
        self.train(name, ref, 2, 3)
        self.same(name, ref)

    def test_a_change_to_the_same_values_is_not_recorded(self):
        name, _ = self.make({"type": "SGD", "lr": 0.1})
        r = self.patch(name, {"optimizer": {"lr": 0.1}})
        self.assertEqual(r["changes"], {})
        self.assertEqual(D.get("/v1/models/%s/loss?series=markers" % name).json()["markers"], [])


class TestPersistence(Base):
    def test_changes_survive_a_restart_and_training_continues_as_torch(self):
        d = Daemon()
        d.start()
        try:
            name, ref = self.make_on(d, {"type": "SGD", "lr": 0.1, "momentum": 0.3},
                                     {"type": "ExponentialLR", "gamma": 0.9})
            self.train(name, ref, 0, 3, d)
            self.patch(name, {"optimizer": {"lr": 0.05, "momentum": 0.8},
                              "nonfinite": "rollback"}, d=d)
            for g in ref.opt.param_groups:
                g["lr"], g["momentum"] = 0.05, 0.8
            self.train(name, ref, 3, 2, d)
            cos = {"type": "CosineAnnealingLR", "T_max": 4}
            self.patch(name, {"scheduler": cos}, d=d)
            ref.sched = build_scheduler(cos, ref.opt)
            self.train(name, ref, 5, 2, d)
            before = d.model(name)
            markers = d.get("/v1/models/%s/loss?series=markers,lr" % name).json()
            d.restart()
            after = d.model(name)
            self.assertEqual(after, before)
            self.assertEqual(after["nonfinite"]["policy"], "rollback")
            self.assertEqual(d.get("/v1/models/%s/loss?series=markers,lr" % name).json(),
                             markers)
            self.assertEqual([m["kind"] for m in markers["markers"]],
                             ["hyperparameters", "hyperparameters"])
            self.train(name, ref, 7, 6, d)   # cosine's restart formula uses the base lr
            self.same(name, ref, d)
        finally:
            d.cleanup()

    def make_on(self, d, optimizer, scheduler):
        name = fresh()
        spec = {"name": name, "layers": MLP, "loss": "MSELoss", "optimizer": optimizer,
                "scheduler": scheduler, "seed": 5}
        d.create(spec)
        ref = Reference(spec)
        params = random_params(ref.net, 78)
        d.set_params(name, params)
        ref.set_params(params)
        return name, ref


class TestWhileTraining(Base):
    def test_patch_applies_between_the_steps_of_a_running_job(self):
        name, _ = self.make({"type": "SGD", "lr": 0.01})
        x, y = rand(1, 256, 3).tolist(), rand(2, 256, 2).tolist()
        job = D.ok("POST", "/v1/models/%s/jobs" % name,
                   {"inputs": x, "targets": y, "epochs": 400, "batch_size": 8},
                   expect=(202,))
        while D.ok("GET", "/v1/models/%s/jobs/%d" % (name, job["id"]))["steps_done"] < 5:
            time.sleep(0.01)
        r = self.patch(name, {"optimizer": {"lr": 0.002}})   # not 409: the job goes on
        at = r["step"]
        rec = D.ok("GET", "/v1/models/%s/jobs/%d" % (name, job["id"]))
        self.assertIn(rec["state"], ("running", "done"))
        # a step after the change before cancelling (the cancel could come first)
        end = time.monotonic() + 60
        while (D.ok("GET", "/v1/models/%s" % name)["step"] <= at and
               time.monotonic() < end):
            time.sleep(0.01)
        D.ok("DELETE", "/v1/models/%s/jobs/%d" % (name, job["id"]))
        h = D.get("/v1/models/%s/loss?series=lr,markers" % name).json()
        lrs = dict((s, lr) for s, lr in h["lr"])
        self.assertTrue(all(abs(lrs[s] - 0.01) < 1e-12 for s in lrs if s <= at), h["lr"][:5])
        self.assertTrue(all(abs(lrs[s] - 0.002) < 1e-12 for s in lrs if s > at))
        self.assertGreater(max(lrs), at)
        mk = [m for m in h["markers"] if m["kind"] == "hyperparameters"]
        self.assertEqual(len(mk), 1)
        self.assertEqual(mk[0]["step"], at)
        self.assertAlmostEqual(mk[0]["changes"]["lr"]["from"], 0.01)


class TestMarkers(Base):
    def test_guard_events_policy_change_and_truncation(self):
        d = Daemon(extra_args=["--max-history", "8"])
        d.start()
        try:
            name = fresh()
            d.create({"name": name, "layers": MLP, "loss": "MSELoss",
                      "optimizer": {"type": "SGD", "lr": 0.01}, "seed": 1})
            x, y = batch(0)
            for _ in range(3):
                d.push(name, x, y)
                d.step(name)
            r = d.post("/v1/models/%s/batches" % name,
                       {"inputs": [[float("1e39"), 0, 0]], "targets": [[0, 0]]})
            self.assertEqual(r.status, 400, r)   # 1e39 is not a float32: refused, no event
            r = d.ok("POST", "/v1/models/%s/batches" % name,
                     {"inputs": [[0, 0, 0]], "targets": [[3e38, 3e38]]})
            self.assertTrue(r["skipped"])
            self.patch(name, {"nonfinite": "allow"}, d=d)
            self.assertEqual(d.model(name)["nonfinite"]["policy"], "allow")
            for _ in range(12):
                d.push(name, x, y)
                d.step(name)
            h = d.get("/v1/models/%s/loss" % name).json()
            kinds = [m["kind"] for m in h["markers"]]
            self.assertEqual(kinds[:2], ["nonfinite", "hyperparameters"])
            self.assertIn("truncated", kinds)
            nf = h["markers"][0]
            self.assertEqual((nf["step"], nf["source"], nf["action"]), (3, "batches", "skipped"))
            self.assertIn("loss is", nf["reason"])
            self.assertEqual(h["markers"][1]["changes"]["nonfinite"],
                             {"from": "skip", "to": "allow"})
            tr = [m for m in h["markers"] if m["kind"] == "truncated"][-1]
            self.assertEqual(tr["first_step"], h["history"][0][0] if tr == h["markers"][-1]
                             else tr["first_step"])
            self.assertGreater(tr["dropped"], 0)
            # since filters markers as it filters the history
            later = d.get("/v1/models/%s/loss?since=4&series=markers" % name).json()
            self.assertTrue(all(m["step"] > 4 for m in later["markers"]))
            self.assertEqual(sorted(later), ["markers", "status", "step"])
            self.assertError(d.get("/v1/models/%s/loss?series=train,lrs" % name), 400,
                             "lrs", 'did you mean "lr"')
        finally:
            d.cleanup()



class TestParamGroups(Base):
    """A spec with param_groups: library group 0 is what no entry selects, then the
    entries; PATCH sets every group or one, as torch's loop over optimizer.param_groups."""

    def test_every_group_then_one_group_as_torch_and_after_a_restart(self):
        d = Daemon()
        d.start()
        try:
            name = fresh("pg")
            opt = {"type": "SGD", "lr": 0.1, "momentum": 0.5,
                   "param_groups": [{"params": ["2."], "lr": 0.02}]}
            spec = {"name": name, "layers": MLP, "loss": "MSELoss", "optimizer": opt,
                    "scheduler": {"type": "StepLR", "step_size": 2, "gamma": 0.5}, "seed": 5}
            d.create(spec)
            ref = Reference(spec)
            params = random_params(ref.net, 79)
            d.set_params(name, params)
            ref.set_params(params)
            self.assertEqual(len(ref.opt.param_groups), 2)
            self.train(name, ref, 0, 3, d)
            # every group: momentum (the entry inherits it), lr (both groups)
            r = self.patch(name, {"optimizer": {"momentum": 0.8, "lr": 0.04}}, d=d)
            for g in ref.opt.param_groups:
                g["momentum"], g["lr"] = 0.8, 0.04
            self.assertEqual(set(r["changes"]), {"momentum", "lr"})
            self.assertEqual([g["momentum"] for g in r["param_groups"]], [0.8, 0.8])
            self.train(name, ref, 3, 3, d)
            self.same(name, ref, d)
            # one group: the rest group's momentum (the entry keeps its own), the entry's lr
            r = self.patch(name, {"optimizer": {"param_groups": [{"momentum": 0.3},
                                                                 {"lr": 0.005}]}}, d=d)
            ref.opt.param_groups[0]["momentum"] = 0.3
            ref.opt.param_groups[1]["lr"] = 0.005
            self.assertEqual(set(r["changes"]), {"param_groups[0].momentum",
                                                 "param_groups[1].lr"})
            self.assertEqual([g["momentum"] for g in r["param_groups"]], [0.3, 0.8])
            sp = r["spec"]["optimizer"]
            self.assertEqual(sp["momentum"], 0.3)
            self.assertEqual(sp["param_groups"][0]["momentum"], 0.8)   # kept, made explicit
            self.assertEqual(sp["param_groups"][0]["params"], ["2."])
            # the spec keeps the scheduler's base lrs (torch's initial_lr)
            self.assertEqual((sp["lr"], sp["param_groups"][0]["lr"]), (0.1, 0.02))
            self.train(name, ref, 6, 3, d)
            self.same(name, ref, d)
            for got, want in zip(d.model(name)["param_groups"], ref.opt.param_groups):
                self.assertAlmostEqual(got["lr"], want["lr"], places=12)
                self.assertEqual(got["momentum"], want["momentum"])
            before = d.model(name)
            d.restart()
            self.assertEqual(d.model(name), before)
            self.train(name, ref, 9, 4, d)
            self.same(name, ref, d)
            # a wrong count names the groups there are
            self.assertError(d.request("PATCH", "/v1/models/%s" % name,
                                       {"optimizer": {"param_groups": [{"lr": 0.1}]}}), 400,
                             "optimizer.param_groups", "2 objects")
            self.assertError(d.request("PATCH", "/v1/models/%s" % name,
                                       {"optimizer": {"param_groups": [{}, {"params": ["0."]}]}}),
                             400, "optimizer.param_groups[1].params")
        finally:
            d.cleanup()


class TestWithVersions(Base):
    """One PATCH takes hyperparameters and serving/keep_versions, validated whole."""

    def test_one_body_validated_whole(self):
        name, ref = self.make({"type": "SGD", "lr": 0.1})
        self.train(name, ref, 0, 2)
        D.ok("POST", "/v1/models/%s/versions" % name, {}, expect=(201,))
        before = D.model(name)
        # a bad hyperparameter: serving does not change either
        self.assertError(D.request("PATCH", "/v1/models/%s" % name,
                                   {"serving": 1, "optimizer": {"lr": -1}}), 400, "optimizer.lr")
        self.assertEqual(D.model(name), before)
        # a version that does not exist: the lr does not change either
        self.assertError(D.request("PATCH", "/v1/models/%s" % name,
                                   {"serving": 9, "optimizer": {"lr": 0.05}}), 404,
                         "no version 9", "serving")
        self.assertEqual(D.model(name), before)
        self.assertError(D.request("PATCH", "/v1/models/%s" % name,
                                   {"keep_versions": -1, "optimizer": {"lr": 0.05}}), 400,
                         "keep_versions")
        self.assertEqual(D.model(name), before)
        def hp_markers():
            return [m for m in D.get("/v1/models/%s/loss?series=markers" % name).json()["markers"]
                    if m["kind"] == "hyperparameters"]
        self.assertEqual(hp_markers(), [])
        # both at once
        r = self.patch(name, {"serving": 1, "keep_versions": 3, "optimizer": {"lr": 0.05}})
        for g in ref.opt.param_groups:
            g["lr"] = 0.05
        self.assertEqual((r["serving"], r["keep_versions"]), (1, 3))
        self.assertEqual(set(r["changes"]), {"lr"})
        self.assertEqual(r["spec"]["optimizer"]["lr"], 0.05)
        # serving only: no hyperparameter marker, an empty changes
        r = self.patch(name, {"serving": "live"})
        self.assertEqual((r["serving"], r["changes"]), ("live", {}))
        self.assertEqual(len(hp_markers()), 1)
        self.train(name, ref, 2, 3)
        self.same(name, ref)
        # version 1 was frozen with lr 0.1: the rollback puts it back (and the spec)
        r = D.ok("POST", "/v1/models/%s/rollback" % name, {"version": 1})
        self.assertEqual(r["step"], 2)
        self.assertIn("hyperparameters", r["restored"])
        m = D.model(name)
        self.assertEqual((m["lr"], m["spec"]["optimizer"]["lr"]), (0.1, 0.1))
        # a rollback to a version with the model's own hyperparameters says nothing of them
        r = D.ok("POST", "/v1/models/%s/rollback" % name, {"version": 1})
        self.assertNotIn("hyperparameters", r["restored"])


class TestRollbackAcrossPatch(Base):
    """A rollback to a version frozen before a PATCH restores the hyperparameters, the
    scheduler and the nonfinite policy in force then, as torch continuing from a copy of
    (model, optimizer, scheduler) taken at the freeze does."""

    def freeze_and_copy(self, name, ref):
        D.ok("POST", "/v1/models/%s/versions" % name, {}, expect=(201,))
        return copy.deepcopy((ref.net.state_dict(), ref.opt.state_dict(),
                              ref.sched.state_dict() if ref.sched else None, ref.step_count))

    def restore(self, ref, saved, sched):
        net_sd, opt_sd, sched_sd, steps = saved
        ref.net.load_state_dict(net_sd)
        ref.opt.load_state_dict(opt_sd)
        ref.sched = sched
        if sched is not None:
            sched.load_state_dict(sched_sd)
        ref.step_count = steps

    def plain_steps(self, name, first, n):  # the daemon alone (what the rollback undoes)
        for i in range(first, first + n):
            x, y = batch(i)
            D.push(name, x, y)
            D.step(name)

    def test_patched_lr_momentum_scheduler_policy_come_back(self):
        name, ref = self.make({"type": "SGD", "lr": 0.1, "momentum": 0.9},
                              {"type": "StepLR", "step_size": 3, "gamma": 0.5})
        self.train(name, ref, 0, 4)
        spec_before = D.model(name)["spec"]
        saved = self.freeze_and_copy(name, ref)
        sched = ref.sched
        r = self.patch(name, {"optimizer": {"lr": 0.03, "momentum": 0.5}, "scheduler": None,
                              "nonfinite": "allow"})
        self.assertEqual(set(r["changes"]), {"lr", "momentum", "scheduler", "nonfinite"})
        self.plain_steps(name, 10, 3)
        r = D.ok("POST", "/v1/models/%s/rollback" % name, {"version": 1})
        self.assertEqual((r["step"], r["from_step"]), (4, 7))
        self.assertIn("hyperparameters", r["restored"])
        self.assertIn("scheduler", r["restored"])
        m = D.model(name)
        self.assertEqual(m["spec"], spec_before)
        self.assertEqual(m["nonfinite"]["policy"], "skip")
        self.restore(ref, saved, sched)
        self.same(name, ref)
        for got, want in zip(m["param_groups"], ref.opt.param_groups):
            self.assertAlmostEqual(got["lr"] / want["lr"], 1.0, places=12)
            self.assertEqual(got["momentum"], want["momentum"])
        # continuing: StepLR halves the lr at its steps again, momentum 0.9
        self.train(name, ref, 4, 5)
        self.same(name, ref)
        self.assertAlmostEqual(D.model(name)["lr"] / self.torch_lrs(ref)[0], 1.0, places=12)

    def test_a_scheduler_added_since_goes(self):
        name, ref = self.make({"type": "Adam", "lr": 0.02})
        self.train(name, ref, 0, 3)
        saved = self.freeze_and_copy(name, ref)
        self.patch(name, {"scheduler": {"type": "LinearLR", "start_factor": 0.5, "total_iters": 4}})
        self.plain_steps(name, 20, 2)
        r = D.ok("POST", "/v1/models/%s/rollback" % name, {"version": 1})
        self.assertIn("hyperparameters", r["restored"])
        self.assertNotIn("scheduler", r["restored"])
        m = D.model(name)
        self.assertNotIn("scheduler", m["spec"])
        self.assertEqual(m["lr"], 0.02)
        self.restore(ref, saved, None)
        self.train(name, ref, 3, 4)  # a constant lr, as before the PATCH
        self.same(name, ref)
        self.assertEqual(D.model(name)["lr"], 0.02)

    def test_survives_a_restart_and_a_scheduler_replaced_since(self):
        name, ref = self.make({"type": "SGD", "lr": 0.05},
                              {"type": "ExponentialLR", "gamma": 0.9})
        self.train(name, ref, 0, 3)
        saved = self.freeze_and_copy(name, ref)
        sched = ref.sched
        self.patch(name, {"scheduler": {"type": "StepLR", "step_size": 1, "gamma": 0.1}})
        self.plain_steps(name, 30, 2)
        D.ok("POST", "/v1/models/%s/rollback" % name, {"version": 1})
        D.restart()
        self.assertEqual(D.model(name)["spec"]["scheduler"], {"type": "ExponentialLR", "gamma": 0.9})
        self.restore(ref, saved, sched)
        self.train(name, ref, 3, 4)
        self.same(name, ref)
        self.assertAlmostEqual(D.model(name)["lr"] / self.torch_lrs(ref)[0], 1.0, places=12)

if __name__ == "__main__":
    from daemon import run_tests
    run_tests()
