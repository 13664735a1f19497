#!/usr/bin/python3
"""easytorchd with the layers of issue 13 (convolution, pooling, normalisation, embeddings)
against PyTorch: a CNN and an embedding model trained step by step over HTTP from the same
initial parameters as a torch twin (losses after every step, parameters and BatchNorm buffers
at the end, predictions in eval mode), layer-named shape errors, int64 index inputs exact beyond
2^24, buffers in GET/PUT parameters (torch's flat state_dict names) and across a restart,
train/eval mode (predict never changes running statistics), rollback of running statistics.
Usage: test_layers.py PATH/TO/easytorchd"""

import json
import os
import struct
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import DaemonTestCase  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
RTOL, ATOL = 1e-4, 1e-5
D = None  # the module's daemon, made and started by setUpModule
setUpModule, tearDownModule = dm.module_fixture(globals())


_n = [0]


def fresh(prefix="l"):
    _n[0] += 1
    return "%s%d" % (prefix, _n[0])


def torch_layer(spec):
    """torch.nn module of a spec layer: the spec's keys are the constructor's arguments
    (lists are torch's tuples, null is None)."""
    kw = {k: (tuple(v) if isinstance(v, list) and k != "unflattened_size" else v)
          for k, v in spec.items() if k != "type"}
    return getattr(torch.nn, spec["type"])(**kw)


def torch_net(layers):
    return torch.nn.Sequential(*[torch_layer(l) for l in layers])


def load_state(net, params):
    """GET parameters (flat state_dict names, buffers included) into a torch module."""
    sd = {}
    for k, v in params.items():
        ref = net.state_dict()[k]
        sd[k] = torch.tensor(v, dtype=ref.dtype).reshape(ref.shape)
    net.load_state_dict(sd)


def close(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and np.allclose(a, b, rtol=RTOL, atol=ATOL)


def diff(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return "shape %s vs %s" % (a.shape, b.shape)
    return "max |diff| %.3g" % float(np.abs(a - b).max())


class Base(DaemonTestCase):
    def assertClose(self, got, want, what):
        if not close(got, want):
            self.fail("%s differs from torch: %s" % (what, diff(got, want)))

    def assertStateClose(self, got, net, what):
        sd = net.state_dict()
        self.assertEqual(list(got), list(sd), "%s: state_dict keys and order" % what)
        for k, v in sd.items():
            if v.dtype == torch.int64:
                self.assertEqual(got[k], int(v), "%s: %s" % (what, k))
            else:
                self.assertClose(got[k], v.detach().numpy(), "%s: %s" % (what, k))

    def assertError(self, r, status, *parts):
        self.assertEqual(r.status, status, r)
        msg = r.error()
        for p in parts:
            self.assertIn(p, msg)
        return msg

    def twin(self, layers, loss, optimizer, seed=5):
        """A model and its torch twin, the twin loaded from the model's own initial state."""
        name = fresh()
        D.create({"name": name, "layers": layers, "loss": loss, "optimizer": optimizer,
                  "seed": seed})
        net = torch_net(layers)
        load_state(net, D.params(name))
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in optimizer.items()
              if k != "type"}
        opt = getattr(torch.optim, optimizer["type"])(net.parameters(), **kw)
        return name, net, opt


CNN = [
    {"type": "Conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 3, "padding": 1},
    {"type": "ReLU"},
    {"type": "MaxPool2d", "kernel_size": 2},
    {"type": "Conv2d", "in_channels": 4, "out_channels": 8, "kernel_size": [3, 3]},
    {"type": "ReLU"},
    {"type": "Flatten"},
    {"type": "Linear", "in_features": 32, "out_features": 10},
]

CHAR = [
    {"type": "Embedding", "num_embeddings": 27, "embedding_dim": 10},
    {"type": "Flatten"},
    {"type": "Linear", "in_features": 30, "out_features": 32},
    {"type": "BatchNorm1d", "num_features": 32},
    {"type": "Tanh"},
    {"type": "Linear", "in_features": 32, "out_features": 27},
]


class TestTrainingAgainstTorch(Base):
    def run_steps(self, name, net, opt, batches, use_train):
        loss_fn = torch.nn.CrossEntropyLoss()
        for k, (x, y) in enumerate(batches):
            if use_train:
                r = D.ok("POST", "/v1/models/%s/train" % name,
                         {"inputs": x.tolist(), "targets": y.tolist(), "epochs": 1})
                got = r["losses"][0]
            else:
                got = D.push(name, x.tolist(), y.tolist())["loss"]
                D.step(name)
            net.train()
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            self.assertClose(got, loss.item(), "loss of step %d" % (k + 1))

    def test_cnn_step_by_step(self):
        name, net, opt = self.twin(CNN, "CrossEntropyLoss", {"type": "Adam", "lr": 0.01})
        g = torch.Generator().manual_seed(0)
        batches = [(torch.randn(6, 1, 8, 8, generator=g), torch.randint(0, 10, (6,), generator=g))
                   for _ in range(12)]
        self.run_steps(name, net, opt, batches[:6], use_train=True)
        self.run_steps(name, net, opt, batches[6:], use_train=False)
        self.assertStateClose(D.params(name), net, "CNN state after 12 steps")
        x = torch.randn(3, 1, 8, 8, generator=g)
        net.eval()
        self.assertClose(D.predict(name, x.tolist()), net(x).detach().numpy(), "CNN predict")
        # the {"shape", "data"} form of a rank-4 input gives the same answer
        flat = {"shape": [3, 1, 8, 8], "data": x.reshape(-1).tolist()}
        self.assertClose(D.predict(name, flat), net(x).detach().numpy(), "CNN predict, flat form")

    def test_embedding_batchnorm_step_by_step(self):
        name, net, opt = self.twin(CHAR, "CrossEntropyLoss", {"type": "SGD", "lr": 0.1})
        g = torch.Generator().manual_seed(1)
        batches = [(torch.randint(0, 27, (16, 3), generator=g),
                    torch.randint(0, 27, (16,), generator=g)) for _ in range(10)]
        self.run_steps(name, net, opt, batches[:5], use_train=True)
        self.run_steps(name, net, opt, batches[5:], use_train=False)
        p = D.params(name)
        self.assertEqual(p["3.num_batches_tracked"], 10)
        self.assertStateClose(p, net, "embedding model state after 10 steps")
        # predict runs in eval mode: running statistics, and it changes none of them
        x = torch.randint(0, 27, (5, 3), generator=g)
        net.eval()
        want = net(x).detach().numpy()
        self.assertClose(D.predict(name, x.tolist()), want, "predict (eval mode)")
        self.assertClose(D.predict(name, x[:1].tolist()), want[:1], "predict of one row")
        self.assertEqual(D.params(name), p, "predict changed the state")
        m = D.model(name)
        self.assertEqual(m["buffer_names"], ["3.running_mean", "3.running_var",
                                             "3.num_batches_tracked"])

    def test_layernorm_groupnorm_embeddingbag_models(self):
        cases = [
            ([{"type": "Linear", "in_features": 6, "out_features": 8},
              {"type": "LayerNorm", "normalized_shape": 8}, {"type": "ReLU"},
              {"type": "Unflatten", "dim": 1, "unflattened_size": [4, 2]},
              {"type": "GroupNorm", "num_groups": 2, "num_channels": 4},
              {"type": "Flatten"}, {"type": "Linear", "in_features": 8, "out_features": 3}],
             lambda g: torch.randn(5, 6, generator=g)),
            ([{"type": "EmbeddingBag", "num_embeddings": 12, "embedding_dim": 5, "mode": "max",
               "padding_idx": 0},
              {"type": "Linear", "in_features": 5, "out_features": 3}],
             lambda g: torch.randint(0, 12, (5, 4), generator=g)),
        ]
        for layers, make_x in cases:
            with self.subTest(first=layers[0]["type"]):
                name, net, opt = self.twin(layers, "CrossEntropyLoss", {"type": "SGD", "lr": 0.2})
                g = torch.Generator().manual_seed(2)
                batches = [(make_x(g), torch.randint(0, 3, (5,), generator=g)) for _ in range(4)]
                self.run_steps(name, net, opt, batches, use_train=True)
                self.assertStateClose(D.params(name), net, "state after 4 steps")


class TestErrorsAndInputs(Base):
    def test_shape_errors_name_the_layer(self):
        name = fresh()
        layers = [{"type": "Conv2d", "in_channels": 1, "out_channels": 8, "kernel_size": 3},
                  {"type": "ReLU"}, {"type": "MaxPool2d", "kernel_size": 2},
                  {"type": "Flatten"}, {"type": "Linear", "in_features": 8, "out_features": 2}]
        D.create({"name": name, "layers": layers, "loss": "CrossEntropyLoss",
                  "optimizer": {"type": "SGD", "lr": 0.1}})
        before = D.params(name)
        x = np.zeros((32, 1, 3, 3)).tolist()
        for ep, body in (("predict", {"inputs": x}),
                         ("batches", {"inputs": x, "targets": [0] * 32}),
                         ("train", {"inputs": x, "targets": [0] * 32})):
            with self.subTest(endpoint=ep):
                self.assertError(D.post("/v1/models/%s/%s" % (name, ep), body), 400,
                                 "layers[2] (MaxPool2d): input [32, 8, 1, 1] is smaller than "
                                 "kernel 2")
        self.assertError(D.post("/v1/models/%s/predict" % name,
                                {"inputs": np.zeros((2, 3, 6, 6)).tolist()}), 400,
                         "layers[0] (Conv2d", "3 channels")
        self.assertEqual(D.params(name), before)

    def test_index_inputs_are_int64_and_checked(self):
        name = fresh()
        D.create({"name": name, "optimizer": {"type": "SGD", "lr": 0.1}, "loss": "CrossEntropyLoss",
                  "layers": [{"type": "Embedding", "num_embeddings": 10, "embedding_dim": 2},
                             {"type": "Flatten"},
                             {"type": "Linear", "in_features": 2, "out_features": 3}]})
        p = "/v1/models/%s/predict" % name
        # 2^24 + 1 would read as 2^24 through float32: the message must name the exact index
        self.assertError(D.post(p, {"inputs": [[16777217]]}), 400, "layers[0] (Embedding)",
                         "index 16777217 is out of range")
        self.assertError(D.post(p, {"inputs": [[2.5]]}), 400, "inputs[0][0]", "not an integer")
        self.assertError(D.post(p, {"inputs": [[-1]]}), 400, "index -1")
        self.assertEqual(len(D.predict(name, [[9], [0]])), 2)
        # class targets are whole numbers too
        t = "/v1/models/%s/batches" % name
        self.assertError(D.post(t, {"inputs": [[1], [2]], "targets": [0, 1.5]}), 400,
                         "targets[1]", "not an integer")
        self.assertError(D.post(t, {"inputs": [[1], [2]], "targets": [0, 16777219]}), 400,
                         "targets[1]", "16777219")

    def test_spec_errors_name_the_field(self):
        base = {"loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 0.1}}
        cases = [
            ([{"type": "Linear", "in_features": 3, "out_features": 4},
              {"type": "BatchNorm1d", "num_features": 5}], "layers[1].num_features", "expected 4"),
            ([{"type": "Conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3,
               "stride": 2, "padding": "same"}], "layers[0].padding", "strided"),
            ([{"type": "Conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": [3, 3, 3]}],
             "layers[0].kernel_size", "2 integers"),
            ([{"type": "MaxPool2d", "kernel_size": 2, "return_indices": True},
              {"type": "Linear", "in_features": 1, "out_features": 1}],
             "layers[0].return_indices", None),
            ([{"type": "GroupNorm", "num_groups": 4, "num_channels": 6}], "num_channels",
             "divisible"),
            ([{"type": "Embedding", "num_embeddings": 4, "embedding_dim": 2, "padding_idx": 4}],
             "layers[0].padding_idx", None),
            ([{"type": "Embedding", "num_embeddings": 4, "embedding_dim": 2, "sparse": True}],
             "layers[0].sparse", None),
            ([{"type": "BatchNorm2d", "num_features": 2, "momentun": 0.1}],
             "layers[0].momentun", "did you mean \"momentum\""),
        ]
        for layers, *want in cases:
            with self.subTest(layer=layers[-1]):
                r = D.post("/v1/models", dict(base, name=fresh(), layers=layers))
                self.assertError(r, 400, *[w for w in want if w])


class TestBuffers(Base):
    def make(self, loss="MSELoss"):
        layers = [{"type": "Linear", "in_features": 3, "out_features": 4},
                  {"type": "BatchNorm1d", "num_features": 4, "momentum": None},
                  {"type": "Dropout", "p": 0.5},
                  {"type": "Linear", "in_features": 4, "out_features": 2}]
        name = fresh()
        D.create({"name": name, "layers": layers, "loss": loss,
                  "optimizer": {"type": "SGD", "lr": 0.1}})
        return name, layers

    def test_get_put_safetensors_and_restart(self):
        name, layers = self.make()
        g = torch.Generator().manual_seed(3)
        for _ in range(3):
            D.ok("POST", "/v1/models/%s/train" % name,
                 {"inputs": torch.randn(8, 3, generator=g).tolist(),
                  "targets": torch.randn(8, 2, generator=g).tolist()})
        p = D.params(name)
        self.assertEqual(list(p), ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                                   "1.running_var", "1.num_batches_tracked", "3.weight", "3.bias"])
        self.assertEqual(p["1.num_batches_tracked"], 3)
        self.assertIsInstance(p["1.num_batches_tracked"], int)
        # safetensors: torch's dtypes (I64 for the counter), loadable into torch's module
        r = D.get("/v1/models/%s/parameters?format=safetensors" % name)
        self.assertEqual(r.status, 200)
        (n,) = struct.unpack("<Q", r.body[:8])
        header = json.loads(r.body[8:8 + n])
        self.assertEqual(header["1.num_batches_tracked"]["dtype"], "I64")
        self.assertEqual(header["1.running_var"]["dtype"], "F32")
        net = torch_net(layers)
        load_state(net, p)
        # PUT: every entry, buffers included, named as torch's state_dict
        q = json.loads(json.dumps(p))
        q["1.running_mean"] = [1.0, 2.0, 3.0, 4.0]
        q["1.num_batches_tracked"] = 40000001   # an int64 beyond float32's integers
        D.set_params(name, q)
        got = D.params(name)
        self.assertEqual(got["1.running_mean"], [1.0, 2.0, 3.0, 4.0])
        self.assertEqual(got["1.num_batches_tracked"], 40000001)
        missing = dict(q)
        del missing["1.running_var"]
        self.assertError(D.put("/v1/models/%s/parameters" % name, {"parameters": missing}), 400,
                         "1.running_var", "missing")
        bad = dict(q, **{"1.num_batches_tracked": 2.5})
        self.assertError(D.put("/v1/models/%s/parameters" % name, {"parameters": bad}), 400,
                         "1.num_batches_tracked")
        self.assertEqual(D.params(name), got)
        # the model file keeps the buffers across a restart
        D.restart()
        self.assertEqual(D.params(name), got)

    def test_predict_is_eval_and_rollback_keeps_running_stats(self):
        name, layers = self.make(loss="CrossEntropyLoss")
        x = torch.randn(6, 3, generator=torch.Generator().manual_seed(4)).tolist()
        D.ok("POST", "/v1/models/%s/train" % name, {"inputs": x, "targets": [0, 1, 1, 0, 1, 0]})
        before = D.params(name)
        # eval mode: Dropout is the identity and running statistics are used -> deterministic
        a, b = D.predict(name, x), D.predict(name, x)
        self.assertEqual(a, b)
        net = torch_net(layers)
        load_state(net, before)
        net.eval()
        self.assertClose(a, net(torch.tensor(x)).detach().numpy(), "predict in eval mode")
        self.assertEqual(D.params(name), before)
        # a training call failing in its second minibatch (class 5 of 2) puts the running
        # statistics its first minibatch updated back
        r = D.post("/v1/models/%s/train" % name,
                   {"inputs": x, "targets": [0, 1, 1, 0, 1, 5], "batch_size": 4})
        self.assertError(r, 400, "targets[1]", "minibatch 2")
        self.assertEqual(D.params(name), before)
        # so does a failing batch, and a gradient probe (training mode, changes nothing)
        r = D.post("/v1/models/%s/batches" % name, {"inputs": x, "targets": [0, 1, 1, 0, 1, 5]})
        self.assertError(r, 400, "targets[5]")
        D.ok("POST", "/v1/models/%s/gradients" % name, {"inputs": x, "targets": [0, 1] * 3})
        self.assertEqual(D.params(name), before)


if __name__ == "__main__":
    dm.run_tests()
