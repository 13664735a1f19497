#!/usr/bin/python3
"""easytorchd training against PyTorch: every optimizer and scheduler over 50+ steps,
train == batches+step, accumulated and per-batch gradients, predict, every loss.
Usage: test_training.py PATH/TO/easytorchd"""

import os
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import DaemonTestCase, f32  # noqa: E402
import torch  # noqa: E402
from torchref import (Reference, build_net, random_params, close_report,  # noqa: E402
                      dict_close_report)

D = None  # the module's daemon, made and started by setUpModule
setUpModule, tearDownModule = dm.module_fixture(globals())


_counter = [0]


def fresh(prefix="t"):
    _counter[0] += 1
    return "%s%d" % (prefix, _counter[0])


MLP = [
    {"type": "Linear", "in_features": 4, "out_features": 6},
    {"type": "Tanh"},
    {"type": "Linear", "in_features": 6, "out_features": 5},
    {"type": "Sigmoid"},
    {"type": "Linear", "in_features": 5, "out_features": 3},
]


def data(seed, n, nin=4, nout=3, classes=None, binary=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, nin, generator=g)
    if classes:
        y = torch.randint(0, classes, (n,), generator=g).tolist()
    elif binary:
        y = (torch.rand(n, nout, generator=g) > 0.5).float().tolist()
    else:
        y = torch.randn(n, nout, generator=g).tolist()
    return x.tolist(), y


class Base(DaemonTestCase):
    def assertClose(self, got, want, what):
        r = close_report(got, want)
        if r:
            self.fail("%s differs from torch: %s" % (what, r))

    def assertDictClose(self, got, want, what):
        r = dict_close_report(got, want)
        if r:
            self.fail("%s differ from torch: %s" % (what, r))

    def make(self, layers=MLP, loss="MSELoss", optimizer=None, scheduler=None, seed=11):
        """A daemon model and its torch twin with identical parameters set by PUT."""
        name = fresh()
        spec = {"name": name, "layers": layers, "loss": loss,
                "optimizer": optimizer or {"type": "SGD", "lr": 0.1}}
        if scheduler:
            spec["scheduler"] = scheduler
        D.create(spec)
        ref = Reference(spec)
        p = random_params(ref.net, seed)
        D.set_params(name, p)
        ref.set_params(p)
        self.assertEqual(f32(D.params(name)), f32(p), "PUT parameters then GET must give them back")
        return name, ref


# ============================================================================ optimizers
OPTIMIZER_CASES = {
    "sgd_plain": ({"type": "SGD", "lr": 0.1}, None),
    "sgd_momentum": ({"type": "SGD", "lr": 0.05, "momentum": 0.9}, None),
    "sgd_momentum_dampening": ({"type": "SGD", "lr": 0.05, "momentum": 0.8, "dampening": 0.3}, None),
    "sgd_nesterov": ({"type": "SGD", "lr": 0.05, "momentum": 0.9, "nesterov": True}, None),
    "sgd_weight_decay": ({"type": "SGD", "lr": 0.1, "weight_decay": 0.05}, None),
    "sgd_momentum_weight_decay": ({"type": "SGD", "lr": 0.05, "momentum": 0.5,
                                   "weight_decay": 0.01}, None),
    "adagrad": ({"type": "Adagrad", "lr": 0.1}, None),
    "adagrad_all_options": ({"type": "Adagrad", "lr": 0.1, "lr_decay": 0.01, "weight_decay": 0.01,
                             "initial_accumulator_value": 0.1, "eps": 1e-8}, None),
    "adagrad_defaults": ({"type": "Adagrad"}, None),
    "rmsprop_plain": ({"type": "RMSprop", "lr": 0.005}, None),
    "rmsprop_centered_momentum": ({"type": "RMSprop", "lr": 0.002, "alpha": 0.9,
                                   "centered": True, "momentum": 0.9}, None),
    "rmsprop_weight_decay": ({"type": "RMSprop", "lr": 0.005, "weight_decay": 0.01}, None),
    "rmsprop_defaults": ({"type": "RMSprop"}, None),
    "adam": ({"type": "Adam", "lr": 0.01}, None),
    "adam_betas_eps_weight_decay": ({"type": "Adam", "lr": 0.01, "betas": [0.8, 0.99], "eps": 1e-6,
                                     "weight_decay": 0.01}, None),
    "adam_amsgrad": ({"type": "Adam", "lr": 0.01, "amsgrad": True}, None),
    # a short second-moment memory makes v shrink within the run, where amsgrad differs
    "adam_amsgrad_fast_beta2": ({"type": "Adam", "lr": 0.01, "betas": [0.9, 0.9],
                                 "amsgrad": True}, None),
    "adamw_amsgrad_fast_beta2": ({"type": "AdamW", "lr": 0.01, "betas": [0.85, 0.8],
                                  "weight_decay": 0.05, "amsgrad": True}, None),
    "adam_defaults": ({"type": "Adam"}, None),
    "adamw": ({"type": "AdamW", "lr": 0.01, "weight_decay": 0.1}, None),
    "adamw_defaults_amsgrad": ({"type": "AdamW", "amsgrad": True}, None),
    "sched_steplr_sgd_momentum": ({"type": "SGD", "lr": 0.1, "momentum": 0.9},
                                  {"type": "StepLR", "step_size": 10, "gamma": 0.5}),
    "sched_exponentiallr_adam": ({"type": "Adam", "lr": 0.02}, {"type": "ExponentialLR", "gamma": 0.95}),
    "sched_cosine_sgd": ({"type": "SGD", "lr": 0.1}, {"type": "CosineAnnealingLR", "T_max": 20,
                                                      "eta_min": 0.001}),
    "sched_steplr_default_gamma": ({"type": "SGD", "lr": 0.1}, {"type": "StepLR", "step_size": 7}),
    "sched_cosine_default_eta_min_adam": ({"type": "Adam", "lr": 0.01},
                                          {"type": "CosineAnnealingLR", "T_max": 30}),
}

STEPS = 55
CHECK_AT = (1, 2, 5, 20, 40, STEPS)


class TestOptimizers(Base):
    def run_case(self, opt, sched):
        name, ref = self.make(optimizer=opt, scheduler=sched)
        x, y = data(1, STEPS * 8)
        # large targets first, small later: gradients shrink, so amsgrad's running max and
        # the optimizers' accumulated state visibly matter
        y = [[v * (4.0 if i < 15 * 8 else 0.5) for v in row] for i, row in enumerate(y)]
        for k in range(1, STEPS + 1):
            # two batches of different sizes accumulate before each step
            i = (k - 1) * 8
            step_losses = []
            for lo, hi in ((i, i + 5), (i + 5, i + 8)):
                r = D.push(name, x[lo:hi], y[lo:hi])
                step_losses.append(ref.push(x[lo:hi], y[lo:hi]))
                self.assertClose(r["loss"], step_losses[-1], "loss of batch at step %d" % k)
            self.assertEqual(r["pending_batches"], 2)
            if k in (1, STEPS):
                g = D.ok("GET", "/v1/models/%s/gradients" % name)["gradients"]
                self.assertDictClose(g, ref.grads_json(), "accumulated gradients before step %d" % k)
            s = D.step(name)
            lr = ref.step()
            self.assertEqual(s["step"], k)
            self.assertClose(s["lr"], lr, "lr used at step %d" % k)
            if k in CHECK_AT:
                self.assertDictClose(D.params(name), ref.params_json(), "parameters after step %d" % k)
        m = D.model(name)
        self.assertEqual(m["step"], STEPS)
        # "the last training loss": the last batch's, or (one could argue) the step's
        # total or mean over its batches; the contract does not say which
        last = [step_losses[-1], sum(step_losses), sum(step_losses) / len(step_losses)]
        self.assertTrue(any(close_report(m["loss"], v) is None for v in last),
                        "model's loss %r is none of %r" % (m["loss"], last))


def _make_opt_test(opt, sched):
    def test(self):
        self.run_case(opt, sched)
    return test


for _n, (_o, _s) in OPTIMIZER_CASES.items():
    setattr(TestOptimizers, "test_" + _n, _make_opt_test(_o, _s))


# ============================================================================ train endpoint
class TestTrainEndpoint(Base):
    def test_train_equals_batches_and_step(self):
        opt = {"type": "Adam", "lr": 0.01, "amsgrad": True}
        sched = {"type": "StepLR", "step_size": 4, "gamma": 0.5}
        a, ref = self.make(optimizer=opt, scheduler=sched, seed=5)
        b, _ = self.make(optimizer=opt, scheduler=sched, seed=5)
        x, y = data(2, 10)
        epochs, bs = 3, 4
        r = D.ok("POST", "/v1/models/%s/train" % a,
                 {"inputs": x, "targets": y, "epochs": epochs, "batch_size": bs, "shuffle": False})
        manual, torch_losses = [], []
        for _ in range(epochs):
            for lo in range(0, 10, bs):
                manual.append(D.push(b, x[lo:lo + bs], y[lo:lo + bs])["loss"])
                D.step(b)
                torch_losses.append(ref.push(x[lo:lo + bs], y[lo:lo + bs]))
                ref.step()
        self.assertEqual(r["step"], 9)
        self.assertEqual(D.model(b)["step"], 9)
        self.assertEqual(len(r["losses"]), 9)
        self.assertClose(r["losses"], manual, "train's losses vs batches+step")
        self.assertClose(r["losses"], torch_losses, "train's losses")
        self.assertClose(r["loss"], r["losses"][-1], "train's loss")
        self.assertDictClose(D.params(a), D.params(b), "train vs batches+step parameters")
        self.assertDictClose(D.params(a), ref.params_json(), "parameters after train")
        # and training goes on identically (optimizer and scheduler state match)
        r2 = D.ok("POST", "/v1/models/%s/train" % a, {"inputs": x, "targets": y})
        D.push(b, x, y)
        D.step(b)
        ref.push(x, y)
        ref.step()
        self.assertEqual(r2["step"], 10)
        self.assertDictClose(D.params(a), D.params(b), "parameters after one more step")
        self.assertDictClose(D.params(a), ref.params_json(), "parameters after one more step")

    def test_train_defaults_one_epoch_full_batch(self):
        name, ref = self.make(optimizer={"type": "SGD", "lr": 0.1, "momentum": 0.5})
        x, y = data(3, 7)
        r = D.ok("POST", "/v1/models/%s/train" % name, {"inputs": x, "targets": y})
        want = ref.push(x, y)
        ref.step()
        self.assertEqual(r["step"], 1)
        self.assertClose(r["losses"], [want], "losses")
        self.assertDictClose(D.params(name), ref.params_json(), "parameters")

    def test_train_with_pending_batches_rejected_or_consistent(self):
        # pushing a batch, then train: the contract says train zeroes grads per minibatch,
        # so the pending batch must not leak into train's first step.
        name, ref = self.make()
        x, y = data(4, 6)
        D.push(name, x[:2], y[:2])
        r = D.post("/v1/models/%s/train" % name, {"inputs": x, "targets": y})
        if r.status == 409:
            return  # refusing is a consistent choice
        self.assertEqual(r.status, 200, r)
        ref.push(x, y)
        ref.step()
        self.assertDictClose(D.params(name), ref.params_json(), "parameters")

    def test_train_shuffle_runs_all_minibatches(self):
        name, _ = self.make()
        x, y = data(5, 10)
        r = D.ok("POST", "/v1/models/%s/train" % name,
                 {"inputs": x, "targets": y, "epochs": 2, "batch_size": 3, "shuffle": True})
        self.assertEqual(r["step"], 8)
        self.assertEqual(len(r["losses"]), 8)


# ============================================================================ gradients
class TestGradients(Base):
    def test_get_gradients_accumulate_like_backward(self):
        name, ref = self.make()
        g = D.ok("GET", "/v1/models/%s/gradients" % name)["gradients"]
        self.assertDictClose(g, ref.grads_json(), "gradients before any batch (zeros)")
        x, y = data(6, 9)
        for lo, hi in ((0, 2), (2, 7), (7, 9)):
            D.push(name, x[lo:hi], y[lo:hi])
            ref.push(x[lo:hi], y[lo:hi])
            g = D.ok("GET", "/v1/models/%s/gradients" % name)["gradients"]
            self.assertDictClose(g, ref.grads_json(), "accumulated gradients after batch %d:%d" % (lo, hi))
        self.assertEqual(D.model(name)["pending_batches"], 3)

    def check_post_gradients(self, layers, loss, x, y):
        name, ref = self.make(layers=layers, loss=loss)
        before_params = D.params(name)
        r = D.ok("POST", "/v1/models/%s/gradients" % name, {"inputs": x, "targets": y})
        loss_t, grads_t, xgrad_t = ref.batch_gradients(x, y)
        self.assertClose(r["loss"], loss_t, "loss")
        self.assertDictClose(r["gradients"], grads_t, "parameter gradients")
        self.assertClose(r["input_gradient"], xgrad_t, "input_gradient")
        # nothing accumulated, nothing changed
        zero = D.ok("GET", "/v1/models/%s/gradients" % name)["gradients"]
        self.assertDictClose(zero, ref.grads_json(), "accumulated gradients after POST gradients")
        m = D.model(name)
        self.assertEqual((m["pending_batches"], m["step"]), (0, 0))
        self.assertEqual(D.params(name), before_params)
        # twice gives the same (no accumulation between calls)
        r2 = D.ok("POST", "/v1/models/%s/gradients" % name, {"inputs": x, "targets": y})
        self.assertDictClose(r2["gradients"], r["gradients"], "second POST gradients")

    def test_post_gradients_mse(self):
        x, y = data(7, 6)
        self.check_post_gradients(MLP, "MSELoss", x, y)

    def test_post_gradients_mse_sum(self):
        x, y = data(7, 6)
        self.check_post_gradients(MLP, {"type": "MSELoss", "reduction": "sum"}, x, y)

    def test_post_gradients_cross_entropy_class_indices(self):
        x, y = data(8, 7, classes=3)
        self.check_post_gradients(MLP, "CrossEntropyLoss", x, y)

    def test_post_gradients_cross_entropy_sum(self):
        x, y = data(8, 7, classes=3)
        self.check_post_gradients(MLP, {"type": "CrossEntropyLoss", "reduction": "sum"}, x, y)

    def test_post_gradients_bce_with_logits(self):
        x, y = data(9, 6, binary=True)
        self.check_post_gradients(MLP, "BCEWithLogitsLoss", x, y)

    def test_post_gradients_bce_with_logits_sum(self):
        x, y = data(9, 6, binary=True)
        self.check_post_gradients(MLP, {"type": "BCEWithLogitsLoss", "reduction": "sum"}, x, y)

    def test_post_gradients_l1(self):
        x, y = data(10, 6)
        self.check_post_gradients(MLP, "L1Loss", x, y)

    def test_post_gradients_nll_after_logsoftmax(self):
        x, y = data(11, 6, classes=3)
        self.check_post_gradients(MLP + [{"type": "LogSoftmax", "dim": 1}], "NLLLoss", x, y)

    def test_post_gradients_huber(self):
        x, y = data(12, 8)
        y = [[3 * v for v in row] for row in y]  # both sides of delta=1
        self.check_post_gradients(MLP, "HuberLoss", x, y)

    def test_post_gradients_huber_delta_sum(self):
        x, y = data(12, 8)
        self.check_post_gradients(MLP, {"type": "HuberLoss", "delta": 0.5, "reduction": "sum"}, x, y)

    def test_post_gradients_smooth_l1(self):
        x, y = data(13, 8)
        y = [[3 * v for v in row] for row in y]
        self.check_post_gradients(MLP, "SmoothL1Loss", x, y)

    def test_post_gradients_smooth_l1_beta(self):
        x, y = data(13, 8)
        self.check_post_gradients(MLP, {"type": "SmoothL1Loss", "beta": 0.3}, x, y)

    def test_post_gradients_every_layer(self):
        layers = [{"type": "Linear", "in_features": 4, "out_features": 8},
                  {"type": "ReLU"},
                  {"type": "Linear", "in_features": 8, "out_features": 8, "bias": False},
                  {"type": "LeakyReLU", "negative_slope": 0.1},
                  {"type": "Identity"},
                  {"type": "Linear", "in_features": 8, "out_features": 6},
                  {"type": "LeakyReLU"},
                  {"type": "Softmax", "dim": 1},
                  {"type": "Linear", "in_features": 6, "out_features": 3}]
        x, y = data(14, 6)
        self.check_post_gradients(layers, "MSELoss", x, y)


# ============================================================================ predict
class TestPredict(Base):
    def check_predict(self, layers, x, loss="MSELoss"):
        name, ref = self.make(layers=layers, loss=loss)
        want = ref.forward(x).tolist()
        self.assertClose(D.predict(name, x), want, "predict outputs")
        flat = torch.tensor(x)
        got = D.predict(name, {"shape": list(flat.shape), "data": flat.flatten().tolist()})
        self.assertClose(got, want, "predict outputs ({shape, data} input)")
        return name, ref

    def test_predict_mlp(self):
        x, _ = data(20, 5)
        self.check_predict(MLP, x)

    def test_predict_all_layers_flatten(self):
        layers = [{"type": "Flatten"},
                  {"type": "Linear", "in_features": 6, "out_features": 10},
                  {"type": "ReLU"},
                  {"type": "Dropout", "p": 0.5},
                  {"type": "Linear", "in_features": 10, "out_features": 8, "bias": False},
                  {"type": "LeakyReLU"},
                  {"type": "Dropout"},
                  {"type": "Linear", "in_features": 8, "out_features": 7},
                  {"type": "LeakyReLU", "negative_slope": 0.3},
                  {"type": "Identity"},
                  {"type": "Tanh"},
                  {"type": "Linear", "in_features": 7, "out_features": 4},
                  {"type": "Sigmoid"}]
        g = torch.Generator().manual_seed(21)
        x = torch.randn(5, 2, 3, generator=g).tolist()
        name, ref = self.check_predict(layers, x)
        # predict is in evaluation mode: deterministic despite Dropout
        self.assertEqual(D.predict(name, x), D.predict(name, x))

    def test_predict_softmax_logsoftmax(self):
        for dim in (-1, 1):
            for t in ("Softmax", "LogSoftmax"):
                with self.subTest(layer=t, dim=dim):
                    layers = [{"type": "Linear", "in_features": 4, "out_features": 5},
                              {"type": t, "dim": dim}]
                    x, _ = data(22, 4)
                    self.check_predict(layers, x)
        for t in ("Softmax", "LogSoftmax"):
            layers = [{"type": "Linear", "in_features": 4, "out_features": 5}, {"type": t}]
            x, _ = data(23, 4)
            self.check_predict(layers, x)  # default dim=-1 as the contract says

    def test_predict_after_training_uses_new_parameters(self):
        name, ref = self.make()
        x, y = data(24, 6)
        D.ok("POST", "/v1/models/%s/train" % name, {"inputs": x, "targets": y, "epochs": 3})
        for _ in range(3):
            ref.push(x, y)
            ref.step()
        self.assertClose(D.predict(name, x), ref.forward(x).tolist(), "predict after training")

    def test_dropout_active_in_training_only(self):
        layers = [{"type": "Linear", "in_features": 4, "out_features": 64},
                  {"type": "Dropout", "p": 0.5},
                  {"type": "Linear", "in_features": 64, "out_features": 3}]
        name, ref = self.make(layers=layers)
        x, y = data(25, 16)
        eval_loss = ref.loss_fn(ref.forward(x), torch.tensor(y)).item()
        train_losses = [D.push(name, x, y)["loss"] for _ in range(3)]
        self.assertTrue(any(close_report(l, eval_loss) for l in train_losses),
                        "Dropout(p=0.5) had no effect in training mode")
        self.assertGreater(len(set(train_losses)), 1, "Dropout masks did not change between batches")
        self.assertClose(D.predict(name, x), ref.forward(x).tolist(), "predict (eval mode)")


class TestDropoutTraining(Base):
    def test_dropout_scales_kept_units_by_inverse_keep_probability(self):
        # [Dropout(p), Linear(n, 1, bias=False)] with weights 1 and an L1 sum loss against a
        # target far below: dL/dy = 1, so input_gradient = mask / (1 - p) elementwise.
        n, p = 50, 0.3
        layers = [{"type": "Dropout", "p": p},
                  {"type": "Linear", "in_features": n, "out_features": 1, "bias": False}]
        name = fresh()
        D.create({"name": name, "layers": layers, "loss": {"type": "L1Loss", "reduction": "sum"},
                  "optimizer": {"type": "SGD", "lr": 0.1}})
        D.set_params(name, {"1.weight": [[1.0] * n]})
        x, _ = data(40, 8, nin=n)
        x = [[abs(v) + 0.1 for v in row] for row in x]
        r = D.ok("POST", "/v1/models/%s/gradients" % name, {"inputs": x, "targets": [[-1e6]] * 8})
        ig = [v for row in r["input_gradient"] for v in row]
        kept = [v for v in ig if v != 0]
        self.assertTrue(all(abs(v - 1 / (1 - p)) < 1e-5 for v in kept),
                        "kept units must be scaled by 1/(1-p)=%.6f: %r" % (1 / (1 - p), sorted(set(kept))[:5]))
        frac = 1 - len(kept) / len(ig)
        self.assertTrue(0.15 < frac < 0.45, "dropped fraction %.3f for p=%.1f (400 units)" % (frac, p))
        # the weight gradient uses the same masks as the input gradient
        gw = [sum(x[b][i] * r["input_gradient"][b][i] for b in range(8)) for i in range(n)]
        self.assertClose(r["gradients"]["1.weight"], [gw], "weight gradient under the same mask")
        y_loss = sum(sum(x[b][i] * r["input_gradient"][b][i] for i in range(n)) + 1e6 for b in range(8))
        self.assertClose(r["loss"], y_loss, "L1 loss under the same mask")


class TestTensorForms(Base):
    def test_shape_data_form_everywhere(self):
        def sd(v):
            t = torch.tensor(v)
            return {"shape": list(t.shape), "data": t.flatten().tolist()}
        a, ref = self.make(seed=3)
        b, _ = self.make(seed=3)
        x, y = data(41, 6)
        ra = D.push(a, x, y)
        rb = D.push(b, sd(x), sd(y))
        self.assertEqual(ra["loss"], rb["loss"])
        ga = D.ok("POST", "/v1/models/%s/gradients" % a, {"inputs": x, "targets": y})
        gb = D.ok("POST", "/v1/models/%s/gradients" % b, {"inputs": sd(x), "targets": sd(y)})
        self.assertEqual(ga, gb)
        ta = D.ok("POST", "/v1/models/%s/train" % a, {"inputs": x, "targets": y})
        tb = D.ok("POST", "/v1/models/%s/train" % b, {"inputs": sd(x), "targets": sd(y)})
        self.assertEqual(ta, tb)
        self.assertEqual(D.params(a), D.params(b))
        # class-index targets in the {shape, data} form
        c, ref = self.make(loss="CrossEntropyLoss")
        x, y = data(42, 5, classes=3)
        r = D.ok("POST", "/v1/models/%s/gradients" % c,
                 {"inputs": x, "targets": {"shape": [5], "data": y}})
        self.assertClose(r["loss"], ref.batch_gradients(x, y)[0], "CE loss, {shape,data} targets")

    def test_predict_leaves_no_trace(self):
        name, ref = self.make()
        x, _ = data(43, 4)
        before = (D.params(name), D.ok("GET", "/v1/models/%s/gradients" % name), D.model(name))
        D.predict(name, x)
        after = (D.params(name), D.ok("GET", "/v1/models/%s/gradients" % name), D.model(name))
        self.assertEqual(before, after, "predict changed the model (gradients, step or parameters)")


# ============================================================================ losses
class TestLosses(Base):
    def test_reported_losses_equal_torch(self):
        cases = [("MSELoss", {}), ("L1Loss", {}), ("CrossEntropyLoss", {"classes": 3}),
                 ("BCEWithLogitsLoss", {"binary": True}), ("HuberLoss", {}), ("SmoothL1Loss", {})]
        for loss, kw in cases:
            for red in ("mean", "sum"):
                with self.subTest(loss=loss, reduction=red):
                    name, ref = self.make(loss={"type": loss, "reduction": red})
                    x, y = data(30, 6, **kw)
                    got = D.push(name, x, y)["loss"]
                    self.assertClose(got, ref.push(x, y), "%s(reduction=%s)" % (loss, red))
                    D.step(name)
                    ref.step()
                    got = D.ok("POST", "/v1/models/%s/train" % name, {"inputs": x, "targets": y})
                    want = ref.push(x, y)
                    ref.step()
                    self.assertClose(got["losses"], [want], "train loss %s" % loss)
                    self.assertDictClose(D.params(name), ref.params_json(), "parameters")

    def test_nll_loss_training(self):
        name, ref = self.make(layers=MLP + [{"type": "LogSoftmax", "dim": 1}], loss="NLLLoss",
                              optimizer={"type": "Adam", "lr": 0.01})
        x, y = data(31, 40, classes=3)
        for k in range(20):
            lo = (k * 8) % 40
            self.assertClose(D.push(name, x[lo:lo + 8], y[lo:lo + 8])["loss"],
                             ref.push(x[lo:lo + 8], y[lo:lo + 8]), "NLL loss")
            D.step(name)
            ref.step()
        self.assertDictClose(D.params(name), ref.params_json(), "parameters after 20 NLL steps")

    def test_cross_entropy_training(self):
        name, ref = self.make(loss="CrossEntropyLoss",
                              optimizer={"type": "SGD", "lr": 0.1, "momentum": 0.9, "nesterov": True})
        x, y = data(32, 48, classes=3)
        r = D.ok("POST", "/v1/models/%s/train" % name,
                 {"inputs": x, "targets": y, "epochs": 5, "batch_size": 16})
        losses = []
        for _ in range(5):
            for lo in range(0, 48, 16):
                losses.append(ref.push(x[lo:lo + 16], y[lo:lo + 16]))
                ref.step()
        self.assertClose(r["losses"], losses, "CrossEntropy train losses")
        self.assertDictClose(D.params(name), ref.params_json(), "parameters")


class TestNumericalStability(Base):
    """Logits in the hundreds: softmax, log-softmax, cross-entropy and BCE-with-logits must
    stay finite and equal torch's (log-sum-exp and the stable logistic form)."""
    W = [[300.0, -200.0], [-250.0, 400.0], [100.0, 100.0]]
    B = [0.0, 50.0, -80.0]
    X = [[3.0, -1.0], [-2.0, 4.0], [10.0, 10.0]]
    ZERO = [[0.0, 0.0, 0.0]] * 3
    CASES = [
        ("CrossEntropyLoss", [2, 0, 1], []),
        ({"type": "CrossEntropyLoss", "reduction": "sum"}, [1, 1, 0], []),
        ("BCEWithLogitsLoss", [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]], []),
        ("NLLLoss", [2, 0, 1], [{"type": "LogSoftmax", "dim": 1}]),
        ("MSELoss", ZERO, [{"type": "Softmax", "dim": 1}]),
        ("MSELoss", ZERO, [{"type": "Softmax", "dim": 0}]),
        ("MSELoss", ZERO, [{"type": "LogSoftmax", "dim": 0}]),
        ("MSELoss", ZERO, [{"type": "Sigmoid"}]),
        ("MSELoss", ZERO, [{"type": "Tanh"}]),
    ]

    def test_large_logits(self):
        for loss, y, extra in self.CASES:
            with self.subTest(loss=loss, extra=extra):
                layers = [{"type": "Linear", "in_features": 2, "out_features": 3}] + extra
                name, ref = self.make(layers=layers, loss=loss)
                p = {"0.weight": self.W, "0.bias": self.B}
                D.set_params(name, p)
                ref.set_params(p)
                r = D.ok("POST", "/v1/models/%s/gradients" % name, {"inputs": self.X, "targets": y})
                want_loss, want_g, want_xg = ref.batch_gradients(self.X, y)
                self.assertClose(r["loss"], want_loss, "loss")
                self.assertDictClose(r["gradients"], want_g, "gradients")
                self.assertClose(r["input_gradient"], want_xg, "input_gradient")
                self.assertClose(D.predict(name, self.X), ref.forward(self.X).tolist(), "predict")


class TestParameterLayout(Base):
    def test_names_and_shapes_match_state_dict(self):
        layers = [{"type": "Flatten"},
                  {"type": "Linear", "in_features": 6, "out_features": 5},
                  {"type": "ReLU"}, {"type": "Dropout", "p": 0.1},
                  {"type": "Linear", "in_features": 5, "out_features": 4, "bias": False},
                  {"type": "Tanh"},
                  {"type": "Linear", "in_features": 4, "out_features": 2}]
        name = fresh()
        D.create({"name": name, "layers": layers, "loss": "MSELoss",
                  "optimizer": {"type": "SGD", "lr": 0.1}, "seed": 3})
        got = D.params(name)
        want = build_net(layers).state_dict()
        self.assertEqual(sorted(got), sorted(want), "parameter names")
        for k, v in want.items():
            self.assertEqual(list(torch.tensor(got[k]).shape), list(v.shape), k)
        g = D.ok("GET", "/v1/models/%s/gradients" % name)["gradients"]
        self.assertEqual(sorted(g), sorted(want))


if __name__ == "__main__":
    dm.run_tests()
