#!/usr/bin/python3
"""easytorchd against PyTorch for the vocabulary of issue 14: the activations SiLU, ELU,
Mish, Softplus, Hardtanh, ReLU6; KLDivLoss, BCEWithLogitsLoss weight/pos_weight,
CrossEntropyLoss with probability targets, class weights and ignore_index; NAdam, RAdam,
Adamax; optimizer param_groups selected by parameter-name prefix; the schedulers ConstantLR,
CosineAnnealingWarmRestarts, OneCycleLR (with momentum cycling), ReduceLROnPlateau,
SequentialLR, ChainedScheduler -- each trained over HTTP step by step beside its torch twin
(parameters, losses, lrs), plus their 400/409 errors and a restart in the middle of training.
Usage: test_training_more.py PATH/TO/easytorchd"""

import os
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import Daemon, DaemonTestCase  # noqa: E402
import torch  # noqa: E402
import test_training as tt  # noqa: E402
from torchref import Reference, close_report  # noqa: E402


D = None  # the module's daemon, made and started by setUpModule
setUpModule, tearDownModule = dm.module_fixture(globals(), also=(tt,))


MLP = tt.MLP
STEPS = 40


def train_both(self, name, ref, x, y, steps=STEPS, bs=8, check_at=(1, 2, 5, 20, STEPS)):
    """batches + step on both sides; losses, lr and (at check_at) parameters compared."""
    for k in range(1, steps + 1):
        i = ((k - 1) * bs) % (len(x) - bs + 1)
        r = D.push(name, x[i:i + bs], y[i:i + bs])
        self.assertClose(r["loss"], ref.push(x[i:i + bs], y[i:i + bs]), "loss at step %d" % k)
        s = D.step(name)
        lr = ref.step()
        self.assertClose(s["lr"], lr, "lr used at step %d" % k)
        if k in check_at:
            self.assertDictClose(D.params(name), ref.params_json(), "parameters after step %d" % k)


class TestActivations(tt.Base):
    def test_new_activation_layers_train_like_torch(self):
        layers = [{"type": "Linear", "in_features": 4, "out_features": 8}, {"type": "SiLU"},
                  {"type": "Linear", "in_features": 8, "out_features": 8}, {"type": "ELU", "alpha": 0.7},
                  {"type": "Linear", "in_features": 8, "out_features": 8}, {"type": "Mish"},
                  {"type": "Linear", "in_features": 8, "out_features": 8},
                  {"type": "Softplus", "beta": 2.0, "threshold": 3.0},
                  {"type": "Linear", "in_features": 8, "out_features": 8},
                  {"type": "Hardtanh", "min_val": -0.5, "max_val": 0.8},
                  {"type": "Linear", "in_features": 8, "out_features": 6}, {"type": "ReLU6"},
                  {"type": "Linear", "in_features": 6, "out_features": 3}]
        name, ref = self.make(layers=layers, optimizer={"type": "Adam", "lr": 0.01})
        x, y = tt.data(21, 200)
        y = [[3 * v for v in row] for row in y]
        train_both(self, name, ref, x, y, steps=25)
        out = D.predict(name, x[:5])
        self.assertClose(out, ref.forward(x[:5]).tolist(), "predict")

    def test_activation_defaults_and_errors(self):
        for layer in ({"type": "ELU"}, {"type": "Softplus"}, {"type": "Hardtanh"}):
            name, ref = self.make(layers=[{"type": "Linear", "in_features": 4, "out_features": 3},
                                          layer])
            x, _ = tt.data(22, 6)
            self.assertClose(D.predict(name, x), ref.forward(x).tolist(), "%s defaults" % layer)
        bad = {"name": "badact", "loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 0.1},
               "layers": [{"type": "Linear", "in_features": 4, "out_features": 3},
                          {"type": "Hardtanh", "min_val": 1, "max_val": 0}]}
        self.assertError(D.post("/v1/models", bad), 400, "layers[1].max_val")
        bad["layers"][1] = {"type": "Softplus", "beta": 0}
        self.assertError(D.post("/v1/models", bad), 400, "layers[1].beta")


class TestLosses(tt.Base):
    def check_loss(self, loss, layers, x, y, opt=None):
        name, ref = self.make(layers=layers, loss=loss, optimizer=opt or {"type": "SGD", "lr": 0.05})
        r = D.ok("POST", "/v1/models/%s/gradients" % name, {"inputs": x, "targets": y})
        l, grads, xg = ref.batch_gradients(x, y)
        self.assertClose(r["loss"], l, "%s loss" % loss)
        self.assertDictClose(r["gradients"], grads, "%s gradients" % loss)
        self.assertClose(r["input_gradient"], xg, "%s input gradient" % loss)
        train_both(self, name, ref, x, y, steps=10, check_at=(1, 10))

    def test_kl_div(self):
        x, _ = tt.data(31, 48)
        g = torch.Generator().manual_seed(32)
        p = torch.softmax(torch.randn(48, 3, generator=g) * 2, 1)
        p[0, 1] = 0.0   # 0 log 0 = 0
        for red in ("batchmean", "mean", "sum"):
            self.check_loss({"type": "KLDivLoss", "reduction": red},
                            MLP + [{"type": "LogSoftmax", "dim": 1}], x, p.tolist())
        self.check_loss({"type": "KLDivLoss", "reduction": "batchmean", "log_target": True},
                        MLP + [{"type": "LogSoftmax", "dim": 1}], x, p.clamp_min(1e-6).log().tolist())

    def test_bce_with_logits_weight_pos_weight(self):
        x, y = tt.data(33, 48, binary=True)
        for extra in ({"pos_weight": [0.5, 2.0, 3.0]}, {"weight": [1.0, 0.2, 2.5]},
                      {"weight": [0.5, 1.0, 1.5], "pos_weight": [2.0, 1.0, 0.3], "reduction": "sum"}):
            self.check_loss(dict({"type": "BCEWithLogitsLoss"}, **extra), MLP, x, y)

    def test_cross_entropy_probabilities_weights_ignore_index(self):
        x, _ = tt.data(34, 48)
        g = torch.Generator().manual_seed(35)
        probs = torch.softmax(torch.randn(48, 3, generator=g), 1).tolist()
        self.check_loss("CrossEntropyLoss", MLP, x, probs)
        self.check_loss({"type": "CrossEntropyLoss", "label_smoothing": 0.1,
                         "weight": [1.0, 0.5, 2.0]}, MLP, x, probs)
        cls = torch.randint(0, 3, (48,), generator=g)
        cls[::5] = 2
        self.check_loss({"type": "CrossEntropyLoss", "weight": [0.2, 1.0, 3.0],
                         "ignore_index": 2}, MLP, x, cls.tolist())
        self.check_loss({"type": "NLLLoss", "weight": [2.0, 1.0, 0.5]},
                        MLP + [{"type": "LogSoftmax", "dim": 1}], x, cls.tolist())

    def test_loss_errors(self):
        name, _ = self.make(loss={"type": "BCEWithLogitsLoss", "pos_weight": [1.0, 2.0]})
        x, y = tt.data(36, 4, binary=True)
        self.assertError(D.post("/v1/models/%s/batches" % name, {"inputs": x, "targets": y}),
                         400, "pos_weight")
        name, _ = self.make(loss="NLLLoss")
        self.assertError(D.post("/v1/models/%s/batches" % name,
                                {"inputs": x, "targets": [[0.2, 0.3, 0.5]] * 4}), 400,
                         "class indices", "is not an integer")
        spec = {"name": "badkl", "layers": MLP, "optimizer": {"type": "SGD", "lr": 0.1},
                "loss": {"type": "MSELoss", "reduction": "batchmean"}}
        self.assertError(D.post("/v1/models", spec), 400, "loss.reduction")


# ============================================================================ optimizers
OPTIMIZERS = {
    "nadam_defaults": {"type": "NAdam"},
    "nadam": {"type": "NAdam", "lr": 0.01, "betas": [0.8, 0.99], "weight_decay": 0.01,
              "momentum_decay": 0.01},
    "radam_defaults": {"type": "RAdam"},
    "radam": {"type": "RAdam", "lr": 0.01, "betas": [0.85, 0.99], "eps": 1e-6, "weight_decay": 0.01},
    "adamax_defaults": {"type": "Adamax"},
    "adamax": {"type": "Adamax", "lr": 0.01, "betas": [0.7, 0.95], "weight_decay": 0.02},
    # param_groups by name prefix; the rest is the first group
    "sgd_groups": {"type": "SGD", "lr": 0.05, "momentum": 0.5,
                   "param_groups": [{"params": ["4."], "lr": 0.01, "momentum": 0.9, "nesterov": True},
                                    {"params": ["2.weight"], "weight_decay": 0.1}]},
    "adam_groups": {"type": "Adam", "lr": 0.01,
                    "param_groups": [{"params": ["0."], "lr": 0.002, "betas": [0.5, 0.9]},
                                     {"params": ["2.", "4.bias"], "amsgrad": True}]},
    "adam_all_in_groups": {"type": "Adam", "lr": 0.01,
                           "param_groups": [{"params": ["4."], "lr": 0.003},
                                            {"params": ["0.", "2."]}]},
    "rmsprop_groups": {"type": "RMSprop", "lr": 0.005,
                       "param_groups": [{"params": ["0."], "centered": True, "momentum": 0.5}]},
    "nadam_groups": {"type": "NAdam", "lr": 0.01,
                     "param_groups": [{"params": ["4."], "lr": 0.02, "momentum_decay": 0.05}]},
    "adamax_groups": {"type": "Adamax", "lr": 0.01,
                      "param_groups": [{"params": ["0.weight"], "lr": 0.001}]},
}


class TestOptimizers(tt.Base):
    def run_case(self, opt, sched=None):
        name, ref = self.make(optimizer=opt, scheduler=sched)
        x, y = tt.data(41, STEPS * 8)
        y = [[v * (4.0 if i < 120 else 0.5) for v in row] for i, row in enumerate(y)]
        train_both(self, name, ref, x, y)


for _n, _o in OPTIMIZERS.items():
    setattr(TestOptimizers, "test_" + _n, lambda self, o=_o: self.run_case(o))


class TestParamGroupErrors(tt.Base):
    def spec(self, groups, opt="SGD"):
        return {"name": tt.fresh("pg"), "layers": MLP, "loss": "MSELoss",
                "optimizer": {"type": opt, "lr": 0.1, "param_groups": groups}}

    def test_errors_name_the_group(self):
        before = D.ok("GET", "/v1/models")["models"]
        r = D.post("/v1/models", self.spec([{"params": ["9."]}]))
        self.assertError(r, 400, "optimizer.param_groups[0].params[0]", "0.weight")
        r = D.post("/v1/models", self.spec([{"params": ["0."]}, {"params": ["0.weight"]}]))
        self.assertError(r, 400, "param_groups[1]", "0.weight", "more than one")
        r = D.post("/v1/models", self.spec([{"params": ["0."], "momentum": -1}]))
        self.assertError(r, 400, "optimizer.param_groups[0].momentum")
        r = D.post("/v1/models", self.spec([{"params": ["0."], "amsgrad": True}]))
        self.assertError(r, 400, "optimizer.param_groups[0].amsgrad", "unknown field")
        r = D.post("/v1/models", self.spec([{"params": []}]))
        self.assertError(r, 400, "optimizer.param_groups[0].params")
        self.assertEqual(D.ok("GET", "/v1/models")["models"], before, "nothing created")


# ============================================================================ schedulers
SCHEDULERS = {
    "constantlr": ({"type": "SGD", "lr": 0.1}, {"type": "ConstantLR", "factor": 0.5, "total_iters": 7}),
    "warm_restarts": ({"type": "SGD", "lr": 0.1, "momentum": 0.5},
                      {"type": "CosineAnnealingWarmRestarts", "T_0": 5, "T_mult": 2, "eta_min": 0.001}),
    "onecycle_sgd_momentum": ({"type": "SGD", "lr": 0.05, "momentum": 0.9},
                              {"type": "OneCycleLR", "max_lr": 0.1, "total_steps": STEPS}),
    "onecycle_adam_beta1_three_phase": ({"type": "Adam", "lr": 0.01,
                                         "param_groups": [{"params": ["4."], "lr": 0.002}]},
                                        {"type": "OneCycleLR", "max_lr": 0.02, "epochs": 4,
                                         "steps_per_epoch": 10, "three_phase": True,
                                         "anneal_strategy": "linear"}),
    "plateau": ({"type": "SGD", "lr": 0.1},
                {"type": "ReduceLROnPlateau", "patience": 1, "factor": 0.5, "threshold": 0.05}),
    "plateau_max_cooldown": ({"type": "Adam", "lr": 0.01},
                             {"type": "ReduceLROnPlateau", "mode": "max", "patience": 2,
                              "cooldown": 3, "min_lr": 0.002}),
    "sequential_warmup_cosine": ({"type": "Adam", "lr": 0.02},
                                 {"type": "SequentialLR", "milestones": [5],
                                  "schedulers": [{"type": "LinearLR", "start_factor": 0.1,
                                                  "total_iters": 5},
                                                 {"type": "CosineAnnealingLR", "T_max": 35}]}),
    "chained": ({"type": "SGD", "lr": 0.1, "param_groups": [{"params": ["0."], "lr": 0.05}]},
                {"type": "ChainedScheduler",
                 "schedulers": [{"type": "ConstantLR", "factor": 0.5, "total_iters": 4},
                                {"type": "ExponentialLR", "gamma": 0.95}]}),
}


class TestSchedulers(tt.Base):
    def run_case(self, opt, sched):
        name, ref = self.make(optimizer=opt, scheduler=sched)
        x, y = tt.data(51, STEPS * 8)
        train_both(self, name, ref, x, y)
        return name, ref


for _n, (_o, _s) in SCHEDULERS.items():
    setattr(TestSchedulers, "test_" + _n, lambda self, o=_o, s=_s: self.run_case(o, s))


class TestSchedulerLimits(tt.Base):
    def test_onecycle_refuses_past_total_steps_and_changes_nothing(self):
        name, ref = self.make(optimizer={"type": "SGD", "lr": 0.1, "momentum": 0.9},
                              scheduler={"type": "OneCycleLR", "max_lr": 0.1, "total_steps": 3})
        x, y = tt.data(52, 32)
        train_both(self, name, ref, x, y, steps=3, check_at=(3,))
        before = D.params(name)
        D.push(name, x[:8], y[:8])
        self.assertError(D.post("/v1/models/%s/step" % name), 409, "OneCycleLR")
        self.assertEqual(D.params(name), before)
        self.assertEqual(D.model(name)["step"], 3)

    def test_train_past_total_steps_is_409_and_rolls_back(self):
        name, ref = self.make(optimizer={"type": "Adam", "lr": 0.01},
                              scheduler={"type": "SequentialLR", "milestones": [2],
                                         "schedulers": [{"type": "ConstantLR", "factor": 0.5},
                                                        {"type": "OneCycleLR", "max_lr": 0.05,
                                                         "total_steps": 3}]})
        x, y = tt.data(53, 12)
        before = D.params(name)
        r = D.post("/v1/models/%s/train" % name, {"inputs": x, "targets": y, "batch_size": 2})
        self.assertError(r, 409, "OneCycleLR")
        self.assertEqual(D.params(name), before)
        self.assertEqual(D.model(name)["step"], 0)
        # 2 ConstantLR steps, then OneCycleLR's 3 (SequentialLR restarts it at the milestone)
        r = D.ok("POST", "/v1/models/%s/train" % name, {"inputs": x[:10], "targets": y[:10],
                                                        "batch_size": 2})
        self.assertEqual(r["step"], 5)
        for k in range(5):
            ref.push(x[2 * k:2 * k + 2], y[2 * k:2 * k + 2])
            ref.step()
        self.assertDictClose(D.params(name), ref.params_json(), "parameters after train")
        D.push(name, x[:2], y[:2])
        self.assertError(D.post("/v1/models/%s/step" % name), 409, "OneCycleLR")

    def test_nested_scheduler_errors(self):
        spec = {"name": "badsched", "layers": MLP, "loss": "MSELoss",
                "optimizer": {"type": "Adagrad"},
                "scheduler": {"type": "OneCycleLR", "max_lr": 0.1, "total_steps": 10}}
        self.assertError(D.post("/v1/models", spec), 400, "scheduler", "cycle_momentum")
        spec["scheduler"] = {"type": "SequentialLR", "milestones": [2],
                             "schedulers": [{"type": "ConstantLR"}, {"type": "ReduceLROnPlateau"}]}
        self.assertError(D.post("/v1/models", spec), 400, "scheduler.schedulers[1].type")


class TestRestart(DaemonTestCase):
    """A model with param_groups and stateful schedulers survives a restart mid-training
    and still trains as torch does."""

    def test_restart_keeps_groups_and_scheduler_state(self):
        d = Daemon()
        self.addCleanup(d.cleanup)
        d.start()
        type(self).daemon = d
        for sched in (SCHEDULERS["onecycle_adam_beta1_three_phase"],
                      SCHEDULERS["plateau"], SCHEDULERS["warm_restarts"]):
            name = tt.fresh("rs")
            spec = {"name": name, "layers": MLP, "loss": "MSELoss", "optimizer": sched[0],
                    "scheduler": sched[1]}
            d.create(spec)
            ref = Reference(spec)
            from torchref import random_params
            p = random_params(ref.net, 7)
            d.set_params(name, p)
            ref.set_params(p)
            x, y = tt.data(61, 200)
            for k in range(1, 31):
                if k == 16:
                    d.restart()
                i = (k - 1) * 6
                d.push(name, x[i:i + 6], y[i:i + 6])
                ref.push(x[i:i + 6], y[i:i + 6])
                s = d.step(name)
                lr = ref.step()
                r = close_report(s["lr"], lr)
                self.assertIsNone(r, "%s: lr at step %d after a restart: %s" % (sched[1]["type"], k, r))
            got, want = d.params(name), ref.params_json()
            for kname in want:
                r = close_report(got[kname], want[kname])
                self.assertIsNone(r, "%s: %s after restart differs from torch: %s"
                                  % (sched[1]["type"], kname, r))


if __name__ == "__main__":
    dm.run_tests()
