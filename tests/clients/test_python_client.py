"""Unit tests of the Python client (easytorch_client) against a real easytorchd.

    python3 test_python_client.py /path/to/easytorchd

Imports easytorch_client from wherever Python finds it (run_python_tests.py
runs this inside a venv where the package was pip-installed). PyTorch (required:
a missing torch fails) is the oracle for outputs, gradients and optimizer steps.
Ends with `N passed, M failed`.
"""

import io
import json
import math
import os
import random
import struct
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon import Daemon, summary  # noqa: E402

import easytorch_client as et  # noqa: E402
from easytorch_client import nn, optim  # noqa: E402

try:
    import numpy as np
except ImportError:  # the list-only tests still run
    np = None
try:
    import torch
except ImportError:  # the oracle: a missing torch fails, it does not skip comparisons
    sys.exit("test_python_client: PyTorch (python3-torch, /usr/bin/python3) is missing; "
             "scripts/test installs it")

EXE = None
RTOL, ATOL = 1e-4, 1e-5
SINE_LAYERS = [nn.Linear(1, 5), nn.Tanh(), nn.Linear(5, 1)]


def flat(x):
    if hasattr(x, "tolist"):
        x = x.tolist()
    if isinstance(x, list):
        return [v for item in x for v in flat(item)]
    return [x]


def shape(x):
    if hasattr(x, "shape"):
        return list(x.shape)
    s = []
    while isinstance(x, list):
        s.append(len(x))
        x = x[0] if x else None
    return s


def assert_close(tc, got, want, msg=""):
    g, w = flat(got), flat(want)
    tc.assertEqual(len(g), len(w), msg)
    for i, (a, b) in enumerate(zip(g, w)):
        if not abs(a - b) <= ATOL + RTOL * abs(b):
            tc.fail("%s: element %d: %r != %r" % (msg, i, a, b))


def torch_net(spec_layers, params):
    """torch.nn.Sequential for a layer spec, with the given parameters."""
    mods = []
    for l in spec_layers:
        kw = {k: v for k, v in l.items() if k != "type"}
        mods.append(getattr(torch.nn, l["type"])(**kw))
    net = torch.nn.Sequential(*mods)
    net.load_state_dict({k: torch.tensor(flat(v), dtype=torch.float32).reshape(shape(v)) for k, v in params.items()})
    return net


def sine_data(n=16):
    xs = [[-3.0 + 6.0 * i / (n - 1)] for i in range(n)]
    ys = [[math.sin(x[0])] for x in xs]
    return xs, ys


def safetensors_read(data):
    """{name: (shape, [floats])} from safetensors bytes (F32 only)."""
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + hlen].decode("utf-8"))
    out = {}
    base = 8 + hlen
    for k, v in header.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32", v
        a, b = v["data_offsets"]
        n = (b - a) // 4
        out[k] = (v["shape"], list(struct.unpack("<%df" % n, data[base + a:base + b])))
    return out


class ClientTests(unittest.TestCase):
    daemon = None

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(EXE)
        cls.client = et.Client(cls.daemon.url)
        cls.lists = et.Client(cls.daemon.url, numpy=False)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        if cls.daemon:
            rc = cls.daemon.stop()
            if rc not in (0, -15):
                print("easytorchd exited with %s" % rc, file=sys.stderr)

    def setUp(self):
        self.name = self.id().rsplit(".", 1)[-1].replace("test_", "m-")[:60]

    def tearDown(self):
        for m in self.client.list_models():
            self.client.delete(m["name"])

    def make(self, name=None, layers=SINE_LAYERS, loss="MSELoss", opt=None, **kw):
        return self.client.create(name or self.name, layers=layers, loss=loss,
                                  optimizer=opt or optim.SGD(lr=0.1), **kw)

    # -- defining and finding models ------------------------------------------------
    def test_create_returns_model_with_description(self):
        m = self.make(seed=3)
        self.assertIsInstance(m, et.Model)
        self.assertEqual(m.name, self.name)
        info = m.info()
        self.assertEqual(info["name"], self.name)
        self.assertEqual(info["step"], 0)
        self.assertIsNone(info["loss"])
        self.assertEqual(info["parameters"], 5 + 5 + 5 + 1)
        self.assertEqual(m.num_parameters, 16)
        self.assertEqual(m.num_steps, 0)
        self.assertEqual([l["type"] for l in m.spec["layers"]], ["Linear", "Tanh", "Linear"])

    def test_create_accepts_bare_type_names(self):
        m = self.client.create(self.name, layers=[nn.Linear(2, 3), "ReLU", {"type": "Linear", "in_features": 3, "out_features": 1}],
                               loss="L1Loss", optimizer="Adam")
        self.assertEqual(m.num_parameters, 2 * 3 + 3 + 3 + 1)

    def test_create_taken_name_is_409(self):
        self.make()
        with self.assertRaises(et.EasytorchError) as cm:
            self.make()
        self.assertEqual(cm.exception.status, 409)
        self.assertTrue(cm.exception.message)
        self.assertIn("409", str(cm.exception))

    def test_create_bad_layer_is_400_naming_it(self):
        with self.assertRaises(et.EasytorchError) as cm:
            self.client.create(self.name, layers=[{"type": "NoSuchLayer"}], loss="MSELoss", optimizer=optim.SGD(lr=0.1))
        self.assertEqual(cm.exception.status, 400)
        self.assertNotIn(self.name, [m.name for m in self.client.models()])

    def test_create_bad_name_is_400(self):
        for bad in ("-starts-with-dash", "has space", "a..b", "x" * 65):
            with self.subTest(name=bad):
                with self.assertRaises(et.EasytorchError) as cm:
                    self.make(name=bad)
                self.assertEqual(cm.exception.status, 400)

    def test_model_unknown_is_404(self):
        with self.assertRaises(et.EasytorchError) as cm:
            self.client.model("no-such-model")
        self.assertEqual(cm.exception.status, 404)

    def test_models_lists_every_model(self):
        self.make(name="list-a")
        self.make(name="list-b")
        names = sorted(m.name for m in self.client.models())
        self.assertEqual(names, ["list-a", "list-b"])
        self.assertEqual(self.client.model("list-b").name, "list-b")
        self.assertEqual(sorted(m["name"] for m in self.client.list_models()), names)

    def test_delete_removes_model(self):
        m = self.make()
        m.delete()
        self.assertNotIn(self.name, [x.name for x in self.client.models()])
        with self.assertRaises(et.EasytorchError) as cm:
            m.info()
        self.assertEqual(cm.exception.status, 404)

    def test_same_seed_gives_same_parameters(self):
        a = self.make(name="seed-a", seed=7).parameters()
        b = self.make(name="seed-b", seed=7).parameters()
        self.assertEqual(list(a), list(b))
        for k in a:
            self.assertEqual(flat(a[k]), flat(b[k]), k)

    # -- parameters --------------------------------------------------------------------
    def test_parameters_named_and_shaped_like_torch(self):
        p = self.make().parameters()
        self.assertEqual({k: shape(v) for k, v in p.items()},
                         {"0.weight": [5, 1], "0.bias": [5], "2.weight": [1, 5], "2.bias": [1]})
        if np is not None:
            self.assertIsInstance(p["0.weight"], np.ndarray)
        # PyTorch's default Linear init: U(-1/sqrt(in), 1/sqrt(in))
        for v in flat(p["2.weight"]):
            self.assertLessEqual(abs(v), 1 / math.sqrt(5) + 1e-6)

    def test_parameters_as_lists_without_numpy(self):
        m = self.lists.create(self.name, layers=SINE_LAYERS, loss="MSELoss", optimizer=optim.SGD(lr=0.1))
        p = m.parameters()
        self.assertIsInstance(p["0.weight"], list)
        self.assertEqual(shape(p["0.weight"]), [5, 1])
        out = m.predict([[0.5], [1.0]])
        self.assertIsInstance(out, list)
        self.assertEqual(shape(out), [2, 1])

    def test_load_state_dict_replaces_parameters(self):
        m = self.make()
        new = {"0.weight": [[0.1 * i] for i in range(5)], "0.bias": [0.0] * 5,
               "2.weight": [[1.0, -1.0, 0.5, 0.25, 2.0]], "2.bias": [0.5]}
        m.load_state_dict(new)
        got = m.state_dict()
        for k in new:
            assert_close(self, got[k], new[k], k)

    def test_load_state_dict_bad_shape_changes_nothing(self):
        m = self.make()
        before = m.parameters()
        bad = {"0.weight": [[1.0]] * 5, "0.bias": [1.0] * 5, "2.weight": [[1.0] * 4], "2.bias": [1.0]}
        with self.assertRaises(et.EasytorchError) as cm:
            m.load_state_dict(bad)
        self.assertEqual(cm.exception.status, 400)
        after = m.parameters()
        for k in before:
            self.assertEqual(flat(before[k]), flat(after[k]), k)

    def test_save_writes_safetensors_of_the_parameters(self):
        m = self.make(seed=1)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.safetensors")
            self.assertEqual(m.save(path), path)
            with open(path, "rb") as f:
                st = safetensors_read(f.read())
            p = m.parameters()
            self.assertEqual(set(st), set(p))
            for k, (shp, vals) in st.items():
                self.assertEqual(shp, shape(p[k]), k)
                assert_close(self, vals, p[k], k)
            # and load() puts them into another model
            other = self.make(name="other", seed=2)
            other.load(path)
            q = other.parameters()
            for k in p:
                assert_close(self, q[k], p[k], k)

    # -- inference ---------------------------------------------------------------------------
    def test_predict_matches_torch(self):
        m = self.make(seed=5)
        x = [[-2.0], [-0.5], [0.0], [0.3], [2.5]]
        net = torch_net(SINE_LAYERS, m.parameters())
        want = net(torch.tensor(x)).detach().tolist()
        assert_close(self, m.predict(x), want, "predict")
        assert_close(self, m(x), want, "__call__")
        if np is not None:
            out = m.predict(np.array(x, dtype=np.float32))
            self.assertEqual(out.shape, (5, 1))
            assert_close(self, out, want, "predict(ndarray)")
        assert_close(self, m.predict(x, batch_size=2), want, "predict in chunks")

    # -- versions (issue 18) -------------------------------------------------------------
    def test_freeze_serve_rollback_fork(self):
        m = self.make(seed=7, opt=optim.Adam(lr=0.05))
        x = [[-1.0], [0.0], [1.0], [2.0]]
        y = [[-0.8], [0.0], [0.8], [0.9]]
        m.train(x, y, epochs=3)
        v = m.freeze(label="three")
        self.assertEqual((v["version"], v["step"], v["label"], v["serving"]), (1, 3, "three", False))
        frozen = m.parameters()
        want = torch_net(SINE_LAYERS, frozen)(torch.tensor(x)).detach().tolist()
        m.train(x, y, epochs=4)
        assert_close(self, m.predict_version(1, x), want, "predict_version")
        self.assertIsNone(m.versions()[0]["validation"])
        ev = m.evaluate_version(1, x, y, metrics=["loss", "mae"])
        t_out = torch_net(SINE_LAYERS, frozen)(torch.tensor(x)).detach()
        assert_close(self, [ev["metrics"]["loss"], ev["metrics"]["mae"]],
                     [torch.nn.functional.mse_loss(t_out, torch.tensor(y)).item(),
                      (t_out - torch.tensor(y)).abs().double().mean().item()], "evaluate_version")
        self.assertEqual((ev["version"], ev["step"], ev["rows"]), (1, 3, 4))
        self.assertEqual(m.versions()[0]["validation"]["metrics"], ev["metrics"])
        self.assertEqual(m.serving, "live")
        m.serve(1)
        self.assertEqual(m.serving, 1)
        assert_close(self, m.predict(x), want, "predict while serving version 1")
        m.serve("live")
        self.assertEqual([e["version"] for e in m.versions()], [1])
        self.assertEqual(m.version(1)["step"], 3)
        r = m.rollback(1)
        self.assertEqual((r["step"], r["from_step"]), (3, 7))
        self.assertIn("optimizer", r["restored"])
        assert_close(self, m.predict(x), want, "after rollback")
        f = self.client.fork(self.name + "-f", m, version=1, keep_versions=2)
        self.assertEqual(f.num_steps, 3)
        assert_close(self, f.predict(x), want, "fork")
        f.freeze()
        f.keep_versions(1)
        self.assertEqual(len(f.versions()), 1)
        with self.assertRaises(et.EasytorchError) as cm:
            m.rollback(5)
        self.assertEqual(cm.exception.status, 404)
        m.delete_version(1)
        self.assertEqual(m.versions(), [])

    def test_export_onnx_and_import_onnx(self):
        m = self.make(seed=3, opt=optim.SGD(lr=0.1))
        x = [[-1.0], [0.0], [0.5], [2.0]]
        y = [[-0.8], [0.0], [0.4], [0.9]]
        m.train(x, y, epochs=2)
        v = m.freeze()
        m.train(x, y, epochs=2)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.onnx")
            self.assertEqual(m.export_onnx(path), path)
            with open(path, "rb") as f:
                data = f.read()
            self.assertEqual(data, m.export_onnx())
            c = self.client.import_onnx(path, self.name + "-i", loss="MSELoss",
                                        optimizer=optim.SGD(lr=0.1), seed=1, keep_versions=3)
            assert_close(self, c.predict(x), m.predict(x), "import_onnx(export_onnx)")
            self.assertEqual(c.info()["keep_versions"], 3)
            # a version's file; bytes instead of a path
            cv = self.client.import_onnx(m.export_onnx(version=v["version"]), self.name + "-v",
                                         "MSELoss", "Adam")
            assert_close(self, cv.predict(x), m.predict_version(v["version"], x), "version")
            # a torch.onnx.export file predicts as torch
            torch.manual_seed(0)
            net = torch.nn.Sequential(torch.nn.Linear(1, 4), torch.nn.ReLU(),
                                      torch.nn.Linear(4, 1)).eval()
            tpath = os.path.join(tmp, "t.onnx")
            torch.onnx.export(net, torch.zeros(2, 1), tpath, opset_version=17,
                              input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
            t = self.client.import_onnx(tpath, self.name + "-t", "MSELoss", optim.SGD(lr=0.1))
            with torch.no_grad():
                assert_close(self, t.predict(x), net(torch.tensor(x)).tolist(), "torch file")
            with self.assertRaises(et.EasytorchError) as cm:
                self.client.import_onnx(b"not onnx", self.name + "-bad", "MSELoss", "SGD")
            self.assertEqual(cm.exception.status, 400)
            self.assertIn("onnx", str(cm.exception))
        for n in (c, cv, t):
            n.delete()

    @unittest.skipIf(np is None, "needs NumPy")
    def test_issue13_layers_train_predict_and_state_dict_like_torch(self):
        layers = [nn.Embedding(11, 4, padding_idx=0), nn.Flatten(), nn.Linear(12, 6),
                  nn.BatchNorm1d(6, momentum=None), nn.Tanh(), nn.Linear(6, 3)]
        self.assertEqual(layers[3]["momentum"], None)
        self.assertNotIn("momentum", nn.BatchNorm1d(6))
        m = self.make(layers=layers, loss="CrossEntropyLoss", seed=2)
        sd = m.state_dict()
        self.assertEqual(list(sd)[5:8], ["3.running_mean", "3.running_var", "3.num_batches_tracked"])
        self.assertEqual(sd["3.num_batches_tracked"].dtype, np.int64)
        net = torch.nn.Sequential(torch.nn.Embedding(11, 4, padding_idx=0), torch.nn.Flatten(),
                                  torch.nn.Linear(12, 6), torch.nn.BatchNorm1d(6, momentum=None),
                                  torch.nn.Tanh(), torch.nn.Linear(6, 3))
        net.load_state_dict({k: torch.tensor(v) for k, v in sd.items()})
        x = np.random.default_rng(0).integers(0, 11, (8, 3))
        y = np.random.default_rng(1).integers(0, 3, 8)
        m.train(x, y, epochs=1)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.tensor(x)), torch.tensor(y)).backward()
        opt.step()
        net.eval()
        assert_close(self, m.predict(x[:3]), net(torch.tensor(x[:3])).detach().numpy(), "predict")
        sd = m.state_dict()
        self.assertEqual(int(sd["3.num_batches_tracked"]), 1)
        assert_close(self, sd["3.running_var"], net[3].running_var.numpy(), "running_var")
        m.load_state_dict(sd)   # buffers go back as they came
        conv = self.make(name="m-conv", layers=[nn.Conv2d(1, 2, 3, padding="same"), nn.ReLU(),
                                                nn.MaxPool2d((2, 2)), nn.Flatten(), nn.Linear(8, 1)])
        self.assertEqual(conv.predict(np.zeros((2, 1, 4, 4), np.float32)).shape, (2, 1))
        with self.assertRaises(et.EasytorchError) as cm:
            conv.predict(np.zeros((2, 1, 1, 1), np.float32))
        self.assertIn("layers[2] (MaxPool2d)", str(cm.exception))

    def test_predict_wrong_width_is_400_and_model_unchanged(self):
        m = self.make()
        before = m.parameters()
        with self.assertRaises(et.EasytorchError) as cm:
            m.predict([[1.0, 2.0]])
        self.assertEqual(cm.exception.status, 400)
        after = m.parameters()
        for k in before:
            self.assertEqual(flat(before[k]), flat(after[k]))

    def test_nan_input_is_refused_before_sending_as_json(self):
        m = self.make()
        js = et.Client(self.daemon.url, binary=False)
        with self.assertRaises(ValueError):
            et.Model(js, m.name).predict([[float("nan")]])
        js.close()

    @unittest.skipIf(np is None, "needs NumPy")
    def test_nan_input_goes_as_it_is_in_binary(self):
        """safetensors carry NaN (JSON cannot): the daemon computes with it, as torch would."""
        m = self.make()
        out = m.predict(np.array([[np.nan], [0.5]], np.float32))
        self.assertTrue(np.isnan(out[0, 0]))
        self.assertTrue(np.isfinite(out[1, 0]))

    # -- training by hand ------------------------------------------------------------------------
    def test_push_accumulates_gradients_like_backward(self):
        m = self.make(seed=2)
        net = torch_net(SINE_LAYERS, m.parameters())
        x1, y1 = [[0.5], [1.0]], [[0.4], [0.8]]
        x2, y2 = [[-1.0]], [[-0.9]]
        l1 = m.push(x1, y1)
        l2 = m.push(x2, y2)
        lf = torch.nn.MSELoss()
        t1 = lf(net(torch.tensor(x1)), torch.tensor(y1))
        t1.backward()
        t2 = lf(net(torch.tensor(x2)), torch.tensor(y2))
        t2.backward()
        assert_close(self, [l1, l2], [t1.item(), t2.item()], "losses")
        self.assertEqual(m.info()["pending_batches"], 2)
        g = m.gradients()
        for k, p in net.named_parameters():
            assert_close(self, g[k], p.grad.tolist(), k)

    def test_step_applies_sgd_and_zeroes_gradients(self):
        m = self.make(seed=4, opt=optim.SGD(lr=0.1, momentum=0.9))
        net = torch_net(SINE_LAYERS, m.parameters())
        topt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        xs, ys = sine_data(8)
        for i in range(3):
            m.push(xs, ys)
            res = m.step()
            self.assertEqual(res["step"], i + 1)
            assert_close(self, [res["lr"]], [0.1], "lr")
            topt.zero_grad()
            torch.nn.MSELoss()(net(torch.tensor(xs)), torch.tensor(ys)).backward()
            topt.step()
        p = m.parameters()
        for k, v in net.state_dict().items():
            assert_close(self, p[k], v.tolist(), k)
        for k, v in m.gradients().items():
            self.assertEqual(set(flat(v)), {0.0}, k)
        self.assertEqual(m.num_steps, 3)

    def test_new_layers_param_groups_and_onecycle_train_like_torch(self):
        layers = [nn.Linear(1, 6), nn.SiLU(), nn.Linear(6, 6), nn.ELU(alpha=0.5),
                  nn.Linear(6, 6), nn.Mish(), nn.Linear(6, 6), nn.Softplus(beta=2.0),
                  nn.Linear(6, 6), nn.Hardtanh(-0.8, 0.9), nn.Linear(6, 6), nn.GELU(),
                  nn.Linear(6, 6), nn.ReLU6(), nn.Linear(6, 1)]
        opt = optim.NAdam(lr=0.01, betas=(0.85, 0.99),
                          param_groups=[{"params": "14.", "lr": 0.002}])
        sched = optim.lr_scheduler.OneCycleLR(max_lr=0.05, total_steps=6)
        m = self.make(seed=9, layers=layers, opt=opt, scheduler=sched)
        net = torch_net(layers, m.parameters())
        last = [p for k, p in net.named_parameters() if k.startswith("14.")]
        rest = [p for k, p in net.named_parameters() if not k.startswith("14.")]
        topt = torch.optim.NAdam([{"params": rest}, {"params": last, "lr": 0.002}],
                                 lr=0.01, betas=(0.85, 0.99))
        tsched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.05, total_steps=6)
        xs, ys = sine_data(8)
        for i in range(6):
            m.push(xs, ys)
            res = m.step()
            assert_close(self, [res["lr"]], [topt.param_groups[0]["lr"]], "lr at step %d" % (i + 1))
            topt.zero_grad()
            torch.nn.MSELoss()(net(torch.tensor(xs)), torch.tensor(ys)).backward()
            topt.step()
            tsched.step()
        p = m.parameters()
        for k, v in net.state_dict().items():
            assert_close(self, p[k], v.tolist(), k)
        m.push(xs, ys)
        with self.assertRaises(et.EasytorchError) as cm:
            m.step()
        self.assertEqual(cm.exception.status, 409)

    def test_every_new_helper_is_accepted_by_the_daemon(self):
        sch = optim.lr_scheduler
        opts = [optim.NAdam(momentum_decay=0.01), optim.RAdam(eps=1e-6), optim.Adamax(betas=(0.8, 0.9)),
                optim.SGD(lr=0.1, maximize=True, param_groups=[{"params": ["0."], "momentum": 0.5}])]
        scheds = [sch.ConstantLR(factor=0.5, total_iters=3), sch.LinearLR(start_factor=0.2),
                  sch.MultiStepLR([2, 4], gamma=0.3),
                  sch.CosineAnnealingWarmRestarts(T_0=3, T_mult=2), sch.ReduceLROnPlateau(patience=0),
                  sch.OneCycleLR(max_lr=0.1, epochs=2, steps_per_epoch=3),
                  sch.SequentialLR([sch.LinearLR(total_iters=2), sch.ExponentialLR(0.9)], milestones=[2]),
                  sch.ChainedScheduler([sch.ConstantLR(), sch.ExponentialLR(0.9)])]
        losses = [(nn.KLDivLoss(reduction="batchmean"), [[0.2, 0.8]]),
                  (nn.BCEWithLogitsLoss(pos_weight=[2.0, 0.5]), [[1.0, 0.0]]),
                  (nn.BCELoss(), [[1.0, 0.0]]),
                  (nn.CrossEntropyLoss(weight=[1.0, 2.0], label_smoothing=0.1), [[0.3, 0.7]])]
        xs = [[0.5]]
        for i, o in enumerate(opts + [optim.SGD(lr=0.1)] * (len(scheds) - len(opts))):
            s = scheds[i] if i < len(scheds) else None
            l, y = losses[i % len(losses)]
            layers = [nn.Linear(1, 2)] + ([nn.Sigmoid()] if l["type"] == "BCELoss" else []) + \
                     ([nn.LogSoftmax(dim=1)] if l["type"] == "KLDivLoss" else [])
            m = self.make(name="%s-%d" % (self.name, i), layers=layers, loss=l, opt=o, scheduler=s)
            for _ in range(3):
                m.push(xs, y)
                m.step()
            self.assertEqual(m.num_steps, 3)
            m.delete()

    def test_step_without_pending_batch_is_409(self):
        m = self.make()
        with self.assertRaises(et.EasytorchError) as cm:
            m.step()
        self.assertEqual(cm.exception.status, 409)

    def test_scheduler_changes_lr_per_step(self):
        m = self.make(opt=optim.SGD(lr=0.1), scheduler=optim.lr_scheduler.StepLR(step_size=1, gamma=0.5))
        xs, ys = sine_data(4)
        lrs = []
        for _ in range(3):
            m.push(xs, ys)
            lrs.append(m.step()["lr"])
        w = torch.zeros(1, requires_grad=True)
        topt = torch.optim.SGD([w], lr=0.1)
        tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=1, gamma=0.5)
        want = []
        for _ in range(3):  # the lr each step used, as torch's scheduler sets it
            want.append(topt.param_groups[0]["lr"])
            topt.step()
            tsched.step()
        assert_close(self, lrs, want, "StepLR lrs")

    def test_gradients_of_one_batch_match_torch_and_accumulate_nothing(self):
        m = self.make(seed=6)
        net = torch_net(SINE_LAYERS, m.parameters())
        x, y = [[0.25], [-1.5], [2.0]], [[0.2], [-1.0], [0.9]]
        res = m.gradients(x, y)
        tx = torch.tensor(x, requires_grad=True)
        loss = torch.nn.MSELoss()(net(tx), torch.tensor(y))
        loss.backward()
        assert_close(self, [res["loss"]], [loss.item()], "loss")
        for k, p in net.named_parameters():
            assert_close(self, res["gradients"][k], p.grad.tolist(), k)
        assert_close(self, res["input_gradient"], tx.grad.tolist(), "input_gradient")
        self.assertEqual(m.info()["pending_batches"], 0)
        for k, v in m.gradients().items():
            self.assertEqual(set(flat(v)), {0.0}, k)

    def test_gradients_needs_both_x_and_y(self):
        m = self.make()
        with self.assertRaises(ValueError):
            m.gradients([[1.0]])

    # -- fit / train ---------------------------------------------------------------------------------
    def test_fit_matches_a_torch_loop(self):
        for shuffle in (False, True):
            with self.subTest(shuffle=shuffle):
                name = "fit-%s" % shuffle
                m = self.make(name=name, seed=8, opt=optim.Adam(lr=0.01))
                net = torch_net(SINE_LAYERS, m.parameters())
                topt = torch.optim.Adam(net.parameters(), lr=0.01)
                xs, ys = sine_data(10)
                err = io.StringIO()
                hist = m.fit(xs, ys, epochs=3, batch_size=4, shuffle=shuffle, seed=11, file=err)
                # the same loop in torch; the client draws its order from random.Random(seed)
                rng = random.Random(11)
                want_epoch_loss = []
                for _ in range(3):
                    order = list(range(10))
                    if shuffle:
                        rng.shuffle(order)
                    tot = 0.0
                    for i in range(0, 10, 4):
                        idx = order[i:i + 4]
                        topt.zero_grad()
                        l = torch.nn.MSELoss()(net(torch.tensor([xs[j] for j in idx])), torch.tensor([ys[j] for j in idx]))
                        l.backward()
                        topt.step()
                        tot += l.item() * len(idx)
                    want_epoch_loss.append(tot / 10)
                self.assertEqual(hist["step"], 9)
                assert_close(self, hist["loss"], want_epoch_loss, "epoch losses")
                p = m.parameters()
                for k, v in net.state_dict().items():
                    assert_close(self, p[k], v.tolist(), k)
                text = err.getvalue()
                self.assertIn("epoch 3/3", text)
                self.assertIn("step 9", text)
                self.assertIn("loss", text)

    def test_fit_with_ndarrays_in_several_requests(self):
        if np is None:
            self.skipTest("needs NumPy")
        m = self.make(seed=1, opt=optim.Adam(lr=0.01))
        x = np.linspace(-3, 3, 40, dtype=np.float32).reshape(-1, 1)
        y = np.sin(x)
        # 8 rows per request -> 2 minibatches of 4 per POST /train
        hist = m.fit(x, y, epochs=2, batch_size=4, rows_per_request=8, verbose=False)
        self.assertEqual(hist["step"], 20)
        self.assertEqual(len(hist["loss"]), 2)
        self.assertEqual(m.num_steps, 20)

    def test_fit_rejects_mismatched_rows(self):
        m = self.make()
        with self.assertRaises(ValueError):
            m.fit([[1.0], [2.0]], [[1.0]], verbose=False)

    def test_train_runs_epochs_on_the_daemon(self):
        m = self.make(opt=optim.SGD(lr=0.05))
        xs, ys = sine_data(12)
        res = m.train(xs, ys, epochs=2, batch_size=5)
        self.assertEqual(res["step"], 6)  # ceil(12/5) = 3 minibatches x 2 epochs
        self.assertEqual(len(res["losses"]), 6)
        assert_close(self, [res["loss"]], [res["losses"][-1]], "last loss")

    def test_loss_history_and_since(self):
        m = self.make(opt=optim.SGD(lr=0.05))
        xs, ys = sine_data(12)
        res = m.train(xs, ys, epochs=5, batch_size=4)
        hist = m.loss_history()
        self.assertEqual([s for s, _ in hist], list(range(1, 16)))
        assert_close(self, [l for _, l in hist], res["losses"], "history losses")
        self.assertEqual([s for s, _ in m.loss_history(since=12)], [13, 14, 15])
        self.assertEqual(m.loss_history(since=15), [])
        self.assertEqual(m.last_loss, hist[-1][1])

    def test_cross_entropy_takes_class_indices(self):
        m = self.client.create(self.name, layers=[nn.Linear(2, 3)], loss=nn.CrossEntropyLoss(),
                               optimizer=optim.SGD(lr=0.5), seed=0)
        x = [[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]] * 4
        y = [0, 1, 2] * 4
        first = m.train(x, y, epochs=1)["loss"]
        last = m.train(x, y, epochs=50)["loss"]
        self.assertLess(last, first)
        out = m.predict([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
        self.assertEqual([max(range(3), key=lambda j: row[j]) for row in (out.tolist() if hasattr(out, "tolist") else out)], [0, 1, 2])


@unittest.skipIf(np is None, "needs NumPy")
class BinaryTransportTests(unittest.TestCase):
    """With NumPy the client sends and takes tensors as safetensors; the results are the
    ones the JSON transport gives (held to PyTorch by the tests above), bit for bit."""

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(EXE)
        cls.bin = et.Client(cls.daemon.url)
        cls.js = et.Client(cls.daemon.url, binary=False)
        cls.sent = []
        send = cls.bin._send

        def spy(method, path, data, headers):
            cls.sent.append((method, path, headers.get("Content-Type"), headers.get("Accept")))
            return send(method, path, data, headers)
        cls.bin._send = spy

    @classmethod
    def tearDownClass(cls):
        cls.bin.close()
        cls.js.close()
        cls.daemon.stop()

    def pair(self, name, **kw):
        spec = dict(layers=[nn.Linear(3, 8), nn.GELU(), nn.Dropout(0.0), nn.Linear(8, 2)],
                    loss=nn.MSELoss(), optimizer=optim.Adam(lr=0.01, maximize=False), seed=4)
        spec.update(kw)
        return (self.bin.create(name + "-b", **spec), et.Model(self.js, name + "-j")
                if self.js.create(name + "-j", **spec) else None)

    def test_binary_is_used_and_equals_json(self):
        b, j = self.pair("eq")
        r = np.random.default_rng(1)
        x = r.standard_normal((64, 3)).astype(np.float32)
        y = r.standard_normal((64, 2)).astype(np.float32)
        del self.sent[:]
        pb = b.predict(x)
        self.assertIsInstance(pb, np.ndarray)
        self.assertEqual(pb.dtype, np.float32)
        self.assertTrue(np.array_equal(pb, j.predict(x)))
        self.assertIn(("POST", "/v1/models/eq-b/predict", "application/octet-stream"),
                      [s[:3] for s in self.sent])
        self.assertTrue(self.sent[-1][3].startswith("application/octet-stream"))
        self.assertEqual(b.push(x, y), j.push(x, y))
        gb, gj = b.gradients(), j.gradients()
        self.assertEqual(list(gb), list(gj))
        for k in gb:
            self.assertTrue(np.array_equal(gb[k], gj[k]), k)
        self.assertEqual(b.step(), j.step())
        hb = b.fit(x, y, epochs=3, batch_size=16, seed=7, verbose=False)
        hj = j.fit(x, y, epochs=3, batch_size=16, seed=7, verbose=False)
        self.assertEqual(hb, hj)
        tb = b.train(x, y, epochs=2, batch_size=10, shuffle=True)
        self.assertEqual(tb, j.train(x, y, epochs=2, batch_size=10, shuffle=True))
        sb, sj = b.state_dict(), j.state_dict()
        self.assertEqual(list(sb), list(sj))
        for k in sb:
            self.assertTrue(np.array_equal(sb[k], sj[k]), k)
        pr_b, pr_j = b.gradients(x[:5], y[:5]), j.gradients(x[:5], y[:5])
        self.assertEqual(np.float32(pr_b["loss"]), np.float32(pr_j["loss"]))
        self.assertTrue(np.array_equal(pr_b["input_gradient"], pr_j["input_gradient"]))
        for k in pr_j["gradients"]:
            self.assertTrue(np.array_equal(pr_b["gradients"][k], pr_j["gradients"][k]), k)
        # load_state_dict in binary: parameters of one into the other
        other = self.bin.create("eq-other", layers=[nn.Linear(3, 8), nn.GELU(), nn.Dropout(0.0),
                                                     nn.Linear(8, 2)], loss="MSELoss",
                                optimizer=optim.SGD(0.1), seed=99)
        other.load_state_dict(sb)
        self.assertTrue(np.array_equal(other.predict(x), b.predict(x)))
        for m in ("eq-b", "eq-j", "eq-other"):
            self.bin.delete(m)

    def test_integer_class_targets_and_torch_inputs(self):
        b, j = self.pair("ce", loss=nn.CrossEntropyLoss(label_smoothing=0.05),
                         layers=[nn.Linear(3, 3)])
        x = np.random.default_rng(2).standard_normal((30, 3)).astype(np.float32)
        y = np.arange(30) % 3
        self.assertEqual(b.fit(x, y, epochs=2, batch_size=8, seed=1, verbose=False),
                         j.fit(x, y.tolist(), epochs=2, batch_size=8, seed=1, verbose=False))
        if torch is not None:
            self.assertTrue(np.array_equal(b.predict(torch.tensor(x)), j.predict(x)))
        for m in ("ce-b", "ce-j"):
            self.bin.delete(m)


class SpecHelperTests(unittest.TestCase):
    """The helpers cover every type the daemon knows, map positional arguments in torch's
    constructor order, and work for types this client's table does not list."""

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(EXE)
        cls.client = et.Client(cls.daemon.url)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.daemon.stop()

    def test_every_daemon_type_has_a_helper_with_its_fields(self):
        from easytorch_client import _types
        tables = self.client.types()
        where = {"layers": nn, "losses": nn, "optimizers": optim, "schedulers": optim.lr_scheduler}
        for fam, types in tables.items():
            for t, fields in types.items():
                with self.subTest(type=t):
                    helper = getattr(where[fam], t)
                    args = tuple(range(1, len(fields) + 1))
                    spec = helper(*args)
                    self.assertEqual(self.client.types()[fam][t], fields)
                    resolved = et.client._as_spec(spec, self.client)
                    self.assertEqual(resolved, dict({"type": t}, **dict(zip(fields, args))))
                    if t in _types.BUILTIN[fam]:
                        self.assertEqual(_types.BUILTIN[fam][t], fields,
                                         "the client's table of %s differs from the daemon's" % t)

    def test_field_names_are_torch_constructor_arguments(self):
        import inspect
        for fam, types in self.client.types().items():
            mod = {"layers": torch.nn, "losses": torch.nn, "optimizers": torch.optim,
                   "schedulers": torch.optim.lr_scheduler}[fam]
            for t, fields in types.items():
                with self.subTest(type=t):
                    params = list(inspect.signature(getattr(mod, t).__init__).parameters)
                    # layers may fix a forward argument in the spec (MultiheadAttention's
                    # attn_mask): after the constructor's arguments, by the forward's name
                    if fam == "layers":
                        params += list(inspect.signature(getattr(mod, t).forward).parameters)
                    for f in fields:
                        self.assertIn(f, params, "%s.%s is not an argument of torch's %s" % (fam, f, t))

    def test_new_helpers_create_models(self):
        m = self.client.create("helpers", layers=[nn.Flatten(1, -1), nn.Linear(4, 3, True), nn.GELU("tanh"),
                                                  nn.Linear(3, 1), nn.Sigmoid()],
                               loss=nn.BCELoss("sum"), optimizer=optim.SGD(0.1, 0.9, maximize=False),
                               scheduler=optim.lr_scheduler.MultiStepLR([2, 4], 0.5), seed=1)
        spec = m.info()["spec"]
        self.assertEqual(spec["layers"][0], {"type": "Flatten", "start_dim": 1, "end_dim": -1})
        self.assertEqual(spec["layers"][2], {"type": "GELU", "approximate": "tanh"})
        self.assertEqual(spec["loss"], {"type": "BCELoss", "reduction": "sum"})
        self.assertEqual(spec["optimizer"], {"type": "SGD", "lr": 0.1, "momentum": 0.9, "maximize": False})
        self.assertEqual(spec["scheduler"], {"type": "MultiStepLR", "milestones": [2, 4], "gamma": 0.5})
        m.delete()
        m = self.client.create("helpers2", layers=[nn.Linear(2, 1)], loss=nn.HuberLoss(delta=0.5),
                               optimizer=optim.AdamW(0.01, (0.8, 0.9)),
                               scheduler=optim.lr_scheduler.LinearLR(0.5, 1.0, 4))
        self.assertEqual(m.info()["spec"]["scheduler"],
                         {"type": "LinearLR", "start_factor": 0.5, "end_factor": 1.0, "total_iters": 4})
        m.delete()

    def test_a_type_the_client_table_lacks(self):
        """As for a layer added to the daemon after this client was released: the positional
        arguments wait until create() asks the daemon for the type's fields."""
        from easytorch_client import _types
        saved = _types.LAYERS.pop("Dropout")
        try:
            spec = _types.factory("Dropout", ("layers", "losses"))(0.25)
            self.assertEqual(spec.pending, (0.25,))
            with self.assertRaises(TypeError):
                spec.spec()
            m = self.client.create("lazy", layers=[nn.Linear(2, 2), spec, nn.Linear(2, 1)],
                                   loss="MSELoss", optimizer=optim.SGD(lr=0.1))
            self.assertEqual(m.info()["spec"]["layers"][1], {"type": "Dropout", "p": 0.25})
            m.delete()
            kw = nn.SomethingNew(alpha=2)   # any type name: keywords need no table
            self.assertEqual(kw, {"type": "SomethingNew", "alpha": 2})
            with self.assertRaises(et.EasytorchError) as e:
                self.client.create("lazy2", layers=[kw], loss="MSELoss", optimizer=optim.SGD(lr=0.1))
            self.assertEqual(e.exception.status, 400)
            with self.assertRaises(TypeError):
                self.client.create("lazy3", layers=[nn.SomethingNew(1)], loss="MSELoss",
                                   optimizer=optim.SGD(lr=0.1))
        finally:
            _types.LAYERS["Dropout"] = saved

    def test_argument_errors(self):
        with self.assertRaises(TypeError):
            nn.Linear(1, 2, True, 4)
        with self.assertRaises(TypeError):
            nn.Linear(1, 2, in_features=3)


class TokenTests(unittest.TestCase):
    TOKEN = "s3cret-token-for-clients"

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(EXE, token=cls.TOKEN)

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def test_missing_token_is_401(self):
        with self.assertRaises(et.EasytorchError) as cm:
            et.Client(self.daemon.url, token="").models()  # "" = no token, even if $EASYTORCH_TOKEN is set
        self.assertEqual(cm.exception.status, 401)
        self.assertTrue(cm.exception.message)

    def test_wrong_token_is_401(self):
        with self.assertRaises(et.EasytorchError) as cm:
            et.Client(self.daemon.url, token="wrong").models()
        self.assertEqual(cm.exception.status, 401)

    def test_right_token_works_and_health_needs_none(self):
        c = et.Client(self.daemon.url, token=self.TOKEN)
        m = c.create("tok", layers=SINE_LAYERS, loss="MSELoss", optimizer=optim.SGD(lr=0.1))
        self.assertEqual([x.name for x in c.models()], ["tok"])
        m.delete()
        self.assertEqual(et.Client(self.daemon.url, token="").health().get("status"), "ok")

    def test_token_from_environment(self):
        old = os.environ.get("EASYTORCH_TOKEN")
        os.environ["EASYTORCH_TOKEN"] = self.TOKEN
        try:
            self.assertEqual(et.Client(self.daemon.url).models(), [])
        finally:
            if old is None:
                del os.environ["EASYTORCH_TOKEN"]
            else:
                os.environ["EASYTORCH_TOKEN"] = old


class LimitsTests(unittest.TestCase):
    """A daemon with a small body limit and a short idle timeout."""

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(EXE, extra_args=["--max-body", "4k", "--timeout", "1"])
        cls.client = et.Client(cls.daemon.url, numpy=False)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.daemon.stop()

    def test_fit_sends_fewer_rows_per_request_after_413(self):
        m = self.client.create("big-fit", layers=SINE_LAYERS, loss="MSELoss", optimizer=optim.SGD(lr=0.05))
        xs, ys = sine_data(200)  # about 10 kB of JSON: over the limit in one request
        with self.assertRaises(et.EasytorchError) as cm:
            m.train(xs, ys)
        self.assertEqual(cm.exception.status, 413)
        self.assertEqual(m.num_steps, 0)
        hist = m.fit(xs, ys, epochs=2, batch_size=10, shuffle=True, seed=0, verbose=False)
        self.assertEqual(hist["step"], 40)
        self.assertEqual(len(m.loss_history()), 40)
        m.delete()

    def test_body_far_over_the_limit_is_413_not_a_broken_pipe(self):
        m = self.client.create("huge", layers=SINE_LAYERS, loss="MSELoss", optimizer=optim.SGD(lr=0.05))
        rows = [[0.5]] * 400000  # ~5 MB: the daemon answers before reading it all
        for _ in range(2):
            with self.assertRaises(et.EasytorchError) as cm:
                m.train(rows, rows)
            self.assertEqual(cm.exception.status, 413)
        self.assertEqual(m.num_steps, 0)
        m.delete()

    def test_predict_splits_a_body_over_the_limit(self):
        m = self.client.create("big-predict", layers=SINE_LAYERS, loss="MSELoss", optimizer=optim.SGD(lr=0.05))
        xs, _ = sine_data(400)
        out = m.predict(xs)
        self.assertEqual(shape(out), [400, 1])
        assert_close(self, out[:3], m.predict(xs[:3]), "rows")
        m.delete()

    def test_connection_closed_while_idle_is_reopened(self):
        import time
        m = self.client.create("idle", layers=SINE_LAYERS, loss="MSELoss", optimizer=optim.SGD(lr=0.05))
        xs, ys = sine_data(4)
        m.push(xs, ys)
        time.sleep(2.5)  # past the daemon's 1 s idle timeout: it closes the kept-alive connection
        self.assertEqual(m.step()["step"], 1)
        time.sleep(2.5)
        m.push(xs, ys)
        self.assertEqual(m.info()["pending_batches"], 1)  # pushed exactly once
        m.delete()


class OfflineTests(unittest.TestCase):
    """What needs no daemon."""

    def test_unreachable_daemon_raises_with_no_status(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        with self.assertRaises(et.EasytorchError) as cm:
            et.Client("http://127.0.0.1:%d" % port).models()
        self.assertIsNone(cm.exception.status)

    def test_url_from_environment_and_default(self):
        old = os.environ.pop("EASYTORCH_URL", None)
        try:
            self.assertEqual(et.Client().url, "http://127.0.0.1:8080")
            os.environ["EASYTORCH_URL"] = "http://127.0.0.1:9999/"
            self.assertEqual(et.Client().url, "http://127.0.0.1:9999")
        finally:
            os.environ.pop("EASYTORCH_URL", None)
            if old is not None:
                os.environ["EASYTORCH_URL"] = old

    def test_encode_tensor_forms(self):
        self.assertEqual(et.encode_tensor([[1, 2]]), [[1, 2]])
        self.assertEqual(et.encode_tensor(2.5), 2.5)
        if np is not None:
            self.assertEqual(et.encode_tensor(np.array([[1.5, 2.0]], dtype=np.float32)),
                             {"shape": [1, 2], "data": [1.5, 2.0]})
            self.assertEqual(et.encode_tensor(np.array([0, 2])), {"shape": [2], "data": [0, 2]})

    def test_spec_helpers_follow_torch_names(self):
        self.assertEqual(nn.Linear(3, 4), {"type": "Linear", "in_features": 3, "out_features": 4})
        self.assertEqual(optim.Adam(lr=0.1, betas=(0.8, 0.9)), {"type": "Adam", "lr": 0.1, "betas": [0.8, 0.9]})
        self.assertEqual(nn.MSELoss(reduction="sum"), {"type": "MSELoss", "reduction": "sum"})
        self.assertEqual(nn.Softplus(beta=2), {"type": "Softplus", "beta": 2})
        self.assertEqual(nn.KLDivLoss(reduction="batchmean", log_target=True),
                         {"type": "KLDivLoss", "reduction": "batchmean", "log_target": True})
        self.assertEqual(optim.SGD(lr=0.1, param_groups=[{"params": "0.", "betas": (0.1, 0.2)}]),
                         {"type": "SGD", "lr": 0.1, "param_groups": [{"params": ["0."], "betas": [0.1, 0.2]}]})
        self.assertEqual(optim.lr_scheduler.SequentialLR([optim.lr_scheduler.ConstantLR()], [3]),
                         {"type": "SequentialLR", "schedulers": [{"type": "ConstantLR"}], "milestones": [3]})


def main():
    global EXE
    if len(sys.argv) < 2:
        print("usage: test_python_client.py EASYTORCHD [unittest args]", file=sys.stderr)
        return 2
    EXE = sys.argv[1]
    print("easytorch_client from %s; numpy %s; torch %s" % (
        os.path.dirname(et.__file__), np.__version__ if np else "absent", torch.__version__ if torch else "absent"))
    loader = unittest.TestLoader()
    names = sys.argv[2:]
    if names:
        suite = loader.loadTestsFromNames(names, sys.modules[__name__])
    else:
        suite = loader.loadTestsFromModule(sys.modules[__name__])
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    passed = result.testsRun - failed - len(result.skipped)
    summary(passed, failed, len(result.skipped))
    return 1 if failed or result.testsRun == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
