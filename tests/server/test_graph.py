#!/usr/bin/python3
"""easytorchd graph models (issue 14: "inputs", "modules", "nodes", "outputs" in the shape of a
torch.fx graph) against PyTorch: each spec has a torch twin -- an nn.Module with the same named
children registered in the same order (so its state_dict() names are the ones GET parameters
must give, in order) whose forward walks the same nodes with torch's functions -- loaded from
the model's initial parameters and trained side by side for 20 steps over HTTP (losses every
step, parameters and BatchNorm buffers at the end, predictions in eval mode): the issue's
residual example, a ResNet-style block with BatchNorm, a weight-tied model (one module called
twice, the output projection tied to the embedding through an attr node), nested Sequential /
ModuleList.  Bad graphs (cycle, unknown node or module, unused input, width mismatch, a tuple
used as a tensor, a ModuleList called) are 400s naming the node and field and create nothing;
a run-time shape error names the node and changes nothing.
Usage: test_graph.py PATH/TO/easytorchd"""

import operator
import os
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import DaemonTestCase  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(1)
RTOL, ATOL = 1e-4, 1e-5
D = None  # the module's daemon, made and started by setUpModule
setUpModule, tearDownModule = dm.module_fixture(globals())


_n = [0]


def fresh(prefix="g"):
    _n[0] += 1
    return "%s%d" % (prefix, _n[0])


def torch_module(spec):
    t = spec["type"]
    if t == "Sequential":
        return torch.nn.Sequential(*[torch_module(k) for k in spec["layers"]])
    if t == "ModuleList":
        return torch.nn.ModuleList([torch_module(k) for k in spec["modules"]])
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.items() if k != "type"}
    for k in ("encoder_layer", "norm"):  # TransformerEncoder's modules
        if k in kw:
            kw[k] = torch_module(kw[k])
    return getattr(torch.nn, t)(**kw)


def torch_op(n, a):
    op = n["op"]
    if op in ("add", "sub", "mul", "div", "pow"):  # a number may stand on either side
        x, y = a
        return {"add": lambda: x + y, "sub": lambda: x - y, "mul": lambda: x * y,
                "div": lambda: x / y, "pow": lambda: x ** y}[op]()
    if op == "matmul":
        return torch.matmul(*a)
    if op in ("neg", "exp", "log", "sqrt", "erf"):
        return getattr(torch, op)(a[0])
    if op in ("unsqueeze", "squeeze"):
        return getattr(torch, op)(a[0], n["dim"])
    if op == "slice":
        idx = [slice(None)] * a[0].dim()
        idx[n["dim"]] = slice(n.get("start", 0), n.get("end"), n.get("step", 1))
        return a[0][tuple(idx)]
    if op in ("cat", "stack"):
        return getattr(torch, op)(a, dim=n.get("dim", 0))
    if op == "reshape":
        return torch.reshape(a[0], tuple(n["shape"]))
    if op == "flatten":
        return torch.flatten(a[0], n.get("start_dim", 0), n.get("end_dim", -1))
    if op == "transpose":
        return torch.transpose(a[0], n["dim0"], n["dim1"])
    if op == "permute":
        return a[0].permute(*n["dims"])
    if op in ("sum", "mean"):
        if "dim" in n:
            return getattr(torch, op)(a[0], n["dim"], keepdim=n.get("keepdim", False))
        return getattr(torch, op)(a[0])
    if op in ("softmax", "log_softmax"):
        return getattr(torch, op)(a[0], n["dim"])
    if op == "getitem":
        return torch.select(a[0], n["dim"], n["index"]) if "dim" in n else a[0][n["index"]]
    if op == "chunk":
        return torch.chunk(a[0], n["chunks"], n.get("dim", 0))
    if op == "split":
        return torch.split(a[0], n["split_size"], n.get("dim", 0))
    if op == "cosine_similarity":
        return F.cosine_similarity(a[0], a[1], dim=n.get("dim", 1), eps=n.get("eps", 1e-8))
    if op == "linear":
        return F.linear(*a)
    # masks: the daemon's conditions are numbers, nonzero true; its logical ops give 1.0 / 0.0
    if op == "where":
        return torch.where(a[0] != 0, a[1], a[2])
    if op == "masked_fill":
        v = float(n["value"])  # "-inf" / "inf" too
        x = a[0] if torch.is_tensor(a[0]) else torch.full_like(a[1], a[0])
        return x.masked_fill(a[1] != 0, v)
    if op in ("logical_not", "logical_and", "logical_or"):
        return getattr(torch, op)(*a).float()
    if op == "expand":
        return a[0].expand(*n["shape"])
    raise ValueError(op)


class Twin(torch.nn.Module):
    """The equivalent nn.Module: "modules" then the nodes' own modules as named children (in
    the spec's order), forward over the nodes in a topological order."""

    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        for k, m in spec.get("modules", {}).items():
            self.add_module(k, torch_module(m))
        for n in spec["nodes"]:
            if isinstance(n.get("module"), dict):
                self.add_module(n["name"], torch_module(n["module"]))

    def forward(self, *xs):
        env = dict(zip(self.spec["inputs"], xs))
        todo = list(self.spec["nodes"])
        while todo:
            for n in todo:
                if all(isinstance(a, (int, float)) or a in env for a in n.get("args", [])):
                    break
            else:
                raise RuntimeError("cycle")
            todo.remove(n)
            a = [x if isinstance(x, (int, float)) else env[x] for x in n.get("args", [])]
            if "module" in n:
                target = n["name"] if isinstance(n["module"], dict) else n["module"]
                env[n["name"]] = self.get_submodule(target)(*a)
            elif "attr" in n:
                mod, _, p = n["attr"].rpartition(".")
                env[n["name"]] = getattr(self.get_submodule(mod), p)
            else:
                env[n["name"]] = torch_op(n, a)
        outs = [env[o] for o in self.spec["outputs"]]
        return outs[0] if len(outs) == 1 else tuple(outs)


def load_state(net, params):
    sd = {}
    for k, v in params.items():
        ref = net.state_dict()[k]
        sd[k] = torch.tensor(v, dtype=ref.dtype).reshape(ref.shape)
    net.load_state_dict(sd)


def close(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and np.allclose(a, b, rtol=RTOL, atol=ATOL)


def lin(i, o, bias=True):
    return {"type": "Linear", "in_features": i, "out_features": o, "bias": bias}


RESIDUAL = {"inputs": ["x"], "nodes": [
    {"name": "fc1", "module": lin(8, 8), "args": ["x"]},
    {"name": "act", "module": {"type": "ReLU"}, "args": ["fc1"]},
    {"name": "sum", "op": "add", "args": ["act", "x"]},
    {"name": "out", "module": lin(8, 1), "args": ["sum"]}], "outputs": ["out"]}

RESNET = {"inputs": ["x"], "nodes": [
    # listed out of order on purpose: the daemon sorts them
    {"name": "head", "module": lin(8, 3), "args": ["h"]},
    {"name": "fc1", "module": lin(8, 8, False), "args": ["x"]},
    {"name": "bn1", "module": {"type": "BatchNorm1d", "num_features": 8}, "args": ["fc1"]},
    {"name": "relu", "module": {"type": "ReLU"}, "args": ["bn1"]},
    {"name": "fc2", "module": lin(8, 8, False), "args": ["relu"]},
    {"name": "bn2", "module": {"type": "BatchNorm1d", "num_features": 8}, "args": ["fc2"]},
    {"name": "skip", "op": "add", "args": ["bn2", "x"]},
    {"name": "h", "module": "relu", "args": ["skip"]}], "outputs": ["head"]}

TIED = {"inputs": ["tok"], "modules": {"emb": {"type": "Embedding", "num_embeddings": 20,
                                               "embedding_dim": 6}},
        "nodes": [
            {"name": "e", "module": "emb", "args": ["tok"]},
            {"name": "flat", "op": "mean", "args": ["e"], "dim": 1},
            {"name": "enc", "module": lin(6, 6), "args": ["flat"]},
            {"name": "a1", "module": {"type": "Tanh"}, "args": ["enc"]},
            {"name": "enc2", "module": "enc", "args": ["a1"]},
            {"name": "a2", "module": "a1", "args": ["enc2"]},
            {"name": "w", "attr": "emb.weight"},
            {"name": "logits", "op": "linear", "args": ["a2", "w"]}],
        "outputs": ["logits"]}

# the elementwise, scalar-operand, (un)squeeze and slice ops (what ONNX imports map onto)
# the mask ops (what the ONNX import writes for attention's masks), the mask x > 0 (ReLU)
MASKS = {"inputs": ["x"], "nodes": [
    {"name": "fc", "module": lin(6, 6), "args": ["x"]},
    {"name": "m", "module": {"type": "ReLU"}, "args": ["x"]},
    {"name": "nm", "op": "logical_not", "args": ["m"]},
    {"name": "m0", "op": "slice", "args": ["m"], "dim": 1, "end": 1},
    {"name": "z", "op": "masked_fill", "args": [0.0, "m0"], "value": 0.0},
    {"name": "m1", "op": "slice", "args": ["m"], "dim": 1, "start": 1},
    {"name": "mk", "op": "cat", "args": ["z", "m1"], "dim": 1},   # column 0 never masked
    {"name": "mf", "op": "masked_fill", "args": ["fc", "mk"], "value": "-inf"},
    {"name": "sm", "op": "softmax", "args": ["mf"], "dim": 1},
    {"name": "c", "op": "masked_fill", "args": [0.5, "nm"], "value": -2.0},
    {"name": "w", "op": "where", "args": ["m", "fc", "c"]},
    {"name": "lo", "op": "logical_or", "args": ["m", "nm"]},
    {"name": "la", "op": "logical_and", "args": ["m", "fc"]},
    {"name": "u", "op": "unsqueeze", "args": ["fc"], "dim": 1},
    {"name": "ex", "op": "expand", "args": ["u"], "shape": [-1, 3, -1]},
    {"name": "es", "op": "sum", "args": ["ex"], "dim": [1]},
    {"name": "s1", "op": "add", "args": ["sm", "w"]},
    {"name": "s2", "op": "add", "args": ["s1", "es"]},
    {"name": "s3", "op": "mul", "args": ["s2", "lo"]},
    {"name": "s4", "op": "add", "args": ["s3", "la"]},
    {"name": "out", "module": lin(6, 2), "args": ["s4"]}], "outputs": ["out"]}

MATH = {"inputs": ["x"], "nodes": [
    {"name": "fc", "module": lin(6, 6), "args": ["x"]},
    {"name": "sq", "op": "mul", "args": ["fc", "fc"]},
    {"name": "sq1", "op": "add", "args": ["sq", 1.0]},
    {"name": "r", "op": "sqrt", "args": ["sq1"]},
    {"name": "l", "op": "log", "args": ["sq1"]},
    {"name": "half", "op": "mul", "args": [-0.5, "fc"]},
    {"name": "e", "op": "exp", "args": ["half"]},
    {"name": "er", "op": "erf", "args": ["fc"]},
    {"name": "ng", "op": "neg", "args": ["er"]},
    {"name": "p", "op": "pow", "args": ["fc", 2]},
    {"name": "p2", "op": "pow", "args": ["sq1", "e"]},
    {"name": "inv", "op": "div", "args": [1.0, "sq1"]},
    {"name": "rs", "op": "sub", "args": [2.0, "fc"]},
    {"name": "d3", "op": "div", "args": ["p", 3.0]},
    {"name": "s1", "op": "add", "args": ["r", "l"]},
    {"name": "s2", "op": "add", "args": ["s1", "ng"]},
    {"name": "s3", "op": "add", "args": ["s2", "d3"]},
    {"name": "s4", "op": "add", "args": ["s3", "inv"]},
    {"name": "s5", "op": "sub", "args": ["s4", "rs"]},
    {"name": "s6", "op": "add", "args": ["s5", "p2"]},
    {"name": "u", "op": "unsqueeze", "args": ["s6"], "dim": 1},
    {"name": "sl", "op": "slice", "args": ["u"], "dim": 2, "start": 1, "end": 6, "step": 2},
    {"name": "sl2", "op": "slice", "args": ["u"], "dim": -1, "start": -3},
    {"name": "c", "op": "cat", "args": ["sl", "sl2"], "dim": 2},
    {"name": "q", "op": "squeeze", "args": ["c"], "dim": 1},
    {"name": "q2", "op": "squeeze", "args": ["q"], "dim": 1},
    {"name": "out", "module": lin(6, 2), "args": ["q2"]}], "outputs": ["out"]}

NESTED = {"inputs": ["x"],
          "modules": {"blocks": {"type": "ModuleList", "modules": [
              {"type": "Sequential", "layers": [lin(4, 4), {"type": "ReLU"}]},
              {"type": "Sequential", "layers": [lin(4, 4), {"type": "LayerNorm",
                                                            "normalized_shape": 4}]}]}},
          "nodes": [
              {"name": "c", "op": "chunk", "args": ["x"], "chunks": 2, "dim": 1},
              {"name": "c0", "op": "getitem", "args": ["c"], "index": 0},
              {"name": "c1", "op": "getitem", "args": ["c"], "index": 1},
              {"name": "b0", "module": "blocks.0", "args": ["c0"]},
              {"name": "b1", "module": "blocks.1", "args": ["c1"]},
              {"name": "cat", "op": "cat", "args": ["b0", "b1"], "dim": -1},
              {"name": "out", "module": lin(8, 2), "args": ["cat"]}],
          "outputs": ["out"]}


class Base(DaemonTestCase):
    def assertClose(self, got, want, what):
        if not close(got, want):
            a, b = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
            self.fail("%s differs from torch: %s" % (
                what, "shape %s vs %s" % (a.shape, b.shape) if a.shape != b.shape
                else "max |diff| %.3g" % float(np.abs(a - b).max())))

    def assertStateClose(self, got, net, what):
        sd = net.state_dict()
        self.assertEqual(list(got), list(sd), "%s: state_dict keys and order" % what)
        for k, v in sd.items():
            if v.dtype == torch.int64:
                self.assertEqual(got[k], int(v), "%s: %s" % (what, k))
            else:
                self.assertClose(got[k], v.detach().numpy(), "%s: %s" % (what, k))

    def twin(self, graph, loss, optimizer, seed=3):
        name = fresh()
        spec = dict(graph, name=name, loss=loss, optimizer=optimizer, seed=seed)
        D.create(spec)
        net = Twin(graph)
        load_state(net, D.params(name))
        kw = {k: v for k, v in optimizer.items() if k != "type"}
        opt = getattr(torch.optim, optimizer["type"])(net.parameters(), **kw)
        return name, net, opt

    def run_steps(self, name, net, opt, loss_fn, batches, use_train):
        for k, (x, y) in enumerate(batches):
            if use_train:
                got = D.ok("POST", "/v1/models/%s/train" % name,
                           {"inputs": x.tolist(), "targets": y.tolist(), "epochs": 1})["losses"][0]
            else:
                got = D.push(name, x.tolist(), y.tolist())["loss"]
                D.step(name)
            net.train()
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            self.assertClose(got, loss.item(), "loss of step %d" % (k + 1))


class TestGraphsAgainstTorch(Base):
    def train20(self, graph, make_x, make_y, loss, loss_fn, optimizer):
        name, net, opt = self.twin(graph, loss, optimizer)
        self.assertEqual(list(D.params(name)), list(net.state_dict()), "state_dict names")
        g = torch.Generator().manual_seed(11)
        batches = [(make_x(g), make_y(g)) for _ in range(20)]
        self.run_steps(name, net, opt, loss_fn, batches[:10], use_train=True)
        self.run_steps(name, net, opt, loss_fn, batches[10:], use_train=False)
        self.assertStateClose(D.params(name), net, "state after 20 steps")
        x = make_x(g)
        net.eval()
        self.assertClose(D.predict(name, x.tolist()), net(x).detach().numpy(), "predict")
        return name

    def test_residual_example(self):
        name = self.train20(RESIDUAL, lambda g: torch.randn(8, 8, generator=g),
                            lambda g: torch.randn(8, 1, generator=g), "MSELoss",
                            torch.nn.MSELoss(), {"type": "SGD", "lr": 0.05, "momentum": 0.9})
        # the graph comes back from its file after a restart, parameters and answers the same
        x = [[0.5 * i - 1 for i in range(8)]]
        before, answer = D.params(name), D.predict(name, x)
        D.restart()
        self.assertEqual(D.params(name), before)
        self.assertEqual(D.predict(name, x), answer)
        self.assertEqual(D.model(name)["spec"]["nodes"], RESIDUAL["nodes"])

    def test_elementwise_scalar_and_slice_ops(self):
        name = self.train20(MATH, lambda g: torch.randn(8, 6, generator=g) * 0.5,
                            lambda g: torch.randn(8, 2, generator=g), "MSELoss",
                            torch.nn.MSELoss(), {"type": "SGD", "lr": 0.01})
        self.assertEqual(D.model(name)["spec"]["nodes"], MATH["nodes"])
        bad = dict(MATH, name=fresh(), loss="MSELoss", optimizer={"type": "SGD"})
        for nodes, words in [
                ([{"name": "o", "op": "matmul", "args": ["x", 2.0]}], ["args", "names"]),
                ([{"name": "o", "op": "add", "args": [1.0, 2.0]}], ["args[1]"]),
                ([{"name": "o", "op": "slice", "args": ["x"], "dim": 1, "step": 0}], ["step"]),
                ([{"name": "o", "op": "unsqueeze", "args": ["x"]}], ["dim"])]:
            with self.subTest(nodes=nodes):
                r = D.post("/v1/models", dict(bad, nodes=nodes, outputs=["o"]))
                msg = self.assertError(r, 400)
                for w in words:
                    self.assertIn(w, msg)

    def test_mask_ops(self):
        """where, masked_fill (a value of -inf, a number as x), logical_not/and/or, expand:
        20 steps as the torch twin; bad fields are 400s naming them"""
        name = self.train20(MASKS, lambda g: torch.randn(8, 6, generator=g),
                            lambda g: torch.randn(8, 2, generator=g), "MSELoss",
                            torch.nn.MSELoss(), {"type": "SGD", "lr": 0.01})
        self.assertEqual(D.model(name)["spec"]["nodes"], MASKS["nodes"])
        bad = dict(MASKS, name=fresh(), loss="MSELoss", optimizer={"type": "SGD"})
        for nodes, words in [
                ([{"name": "o", "op": "masked_fill", "args": ["x", "x"], "value": "nan"}],
                 ["value", "-inf"]),
                ([{"name": "o", "op": "masked_fill", "args": ["x", "x"]}], ["value"]),
                ([{"name": "o", "op": "masked_fill", "args": ["x", 1.0], "value": 1}],
                 ["args[1]", "the first may be a number"]),
                ([{"name": "o", "op": "where", "args": ["x", "x"]}], ["args", "3"]),
                ([{"name": "o", "op": "expand", "args": ["x"], "shape": [-2, 6]}], ["shape"])]:
            with self.subTest(nodes=nodes):
                r = D.post("/v1/models", dict(bad, nodes=nodes, outputs=["o"]))
                msg = self.assertError(r, 400)
                for w in words:
                    self.assertIn(w, msg)

    def test_resnet_block_with_batchnorm(self):
        name = self.train20(RESNET, lambda g: torch.randn(16, 8, generator=g),
                            lambda g: torch.randint(0, 3, (16,), generator=g),
                            "CrossEntropyLoss", torch.nn.CrossEntropyLoss(),
                            {"type": "Adam", "lr": 0.01})
        p = D.params(name)
        self.assertEqual(p["bn1.num_batches_tracked"], 20)
        self.assertEqual(D.model(name)["buffer_names"][:2], ["bn1.running_mean", "bn1.running_var"])

    def test_weight_tied(self):
        name = self.train20(TIED, lambda g: torch.randint(0, 20, (8, 3), generator=g),
                            lambda g: torch.randint(0, 20, (8,), generator=g),
                            "CrossEntropyLoss", torch.nn.CrossEntropyLoss(),
                            {"type": "SGD", "lr": 0.1})
        # enc is called twice and emb.weight serves twice: each is one parameter
        self.assertEqual(list(D.params(name)), ["emb.weight", "enc.weight", "enc.bias"])

    def test_attention_layers_as_nodes(self):
        enc = {"type": "TransformerEncoderLayer", "d_model": 8, "nhead": 2, "dim_feedforward": 16,
               "dropout": 0.0, "batch_first": True}
        mha = {"type": "MultiheadAttention", "embed_dim": 8, "num_heads": 2, "batch_first": True}
        graph = {"inputs": ["x"], "nodes": [
            {"name": "enc", "module": enc, "args": ["x"]},
            {"name": "att", "module": mha, "args": ["enc", "x", "x"]},
            {"name": "a0", "op": "getitem", "args": ["att"], "index": 0},
            {"name": "pool", "op": "mean", "args": ["a0"], "dim": 1},
            {"name": "out", "module": lin(8, 1), "args": ["pool"]}], "outputs": ["out"]}
        # SGD: the key part of in_proj_bias has a zero gradient in exact arithmetic (softmax
        # ignores a constant per query), which Adam would turn from rounding noise into lr-sized
        # steps on either side
        name, net, opt = self.twin(graph, "MSELoss", {"type": "SGD", "lr": 0.05})
        self.assertEqual(list(D.params(name)), list(net.state_dict()), "state_dict names")
        g = torch.Generator().manual_seed(2)
        batches = [(torch.randn(4, 5, 8, generator=g), torch.randn(4, 1, generator=g))
                   for _ in range(6)]
        self.run_steps(name, net, opt, torch.nn.MSELoss(), batches, use_train=True)
        self.assertStateClose(D.params(name), net, "attention graph after 6 steps")
        r = D.post("/v1/models", dict(graph, name=fresh(), loss="MSELoss",
                                      optimizer={"type": "SGD", "lr": 0.1},
                                      nodes=[dict(graph["nodes"][0],
                                                  module=dict(enc, src_mask="causal"))] +
                                      graph["nodes"][1:]))
        self.assertError(r, 400, "nodes[0] (enc).module", "mask fixed in the spec")

    def test_nested_sequential_modulelist(self):
        name = self.train20(NESTED, lambda g: torch.randn(6, 8, generator=g),
                            lambda g: torch.randn(6, 2, generator=g), "MSELoss",
                            torch.nn.MSELoss(), {"type": "Adam", "lr": 0.01})
        self.assertEqual(list(D.params(name))[:3],
                         ["blocks.0.0.weight", "blocks.0.0.bias", "blocks.1.0.weight"])


def bad(graph, **over):
    spec = dict(graph, loss="MSELoss", optimizer={"type": "SGD", "lr": 0.1})
    spec.update(over)
    return spec


class TestBadGraphs(Base):
    def check(self, spec, *parts):
        name = fresh("bad")
        r = D.post("/v1/models", dict(spec, name=name))
        self.assertEqual(r.status, 400, r)
        msg = r.error()
        for p in parts:
            self.assertIn(p, msg)
        self.assertEqual(D.get("/v1/models/%s" % name).status, 404, "a bad graph made a model")
        return msg

    def nodes(self, *nodes, inputs=("x",), outputs=("out",)):
        return bad({"inputs": list(inputs), "nodes": list(nodes), "outputs": list(outputs)})

    def test_cycle(self):
        self.check(self.nodes({"name": "a", "module": lin(4, 4), "args": ["b"]},
                              {"name": "b", "op": "add", "args": ["a", "x"]},
                              {"name": "out", "module": lin(4, 1), "args": ["b"]}),
                   "is on a cycle", "a -> b -> a")

    def test_unknown_names(self):
        self.check(self.nodes({"name": "out", "module": lin(4, 1), "args": ["y"]}),
                   "nodes[0] (out).args[0]", "\"y\" is no input or node")
        self.check(self.nodes({"name": "out", "module": "fc9", "args": ["x"]}),
                   "nodes[0] (out).module", "\"fc9\" is no module")
        self.check(self.nodes({"name": "out", "module": lin(4, 1), "args": ["x"]},
                              outputs=("nope",)), "outputs[0]", "\"nope\"")
        self.check(self.nodes({"name": "out", "op": "sofmax", "args": ["x"], "dim": 1}),
                   "nodes[0] (out).op", "softmax")

    def test_unused_and_missing(self):
        self.check(self.nodes({"name": "out", "module": lin(4, 1), "args": ["x"]},
                              inputs=("x", "z")), "inputs[1] (z): unused")
        self.check(self.nodes({"name": "out", "module": lin(4, 1), "args": ["x"]},
                              {"name": "dead", "op": "add", "args": ["x", "x"]}),
                   "nodes[1] (dead): unused")
        self.check(bad({"nodes": [{"name": "out", "module": lin(4, 1), "args": ["x"]}],
                        "outputs": ["out"]}), "inputs:")
        self.check(self.nodes({"name": "out", "module": lin(4, 1)}), "nodes[0] (out).args")

    def test_width_mismatch(self):
        self.check(self.nodes({"name": "a", "module": lin(4, 6), "args": ["x"]},
                              {"name": "out", "module": lin(4, 1), "args": ["a"]}),
                   "nodes[1] (out).args[0]", "\"a\" has last dimension 6", "takes 4")
        self.check(self.nodes({"name": "a", "module": lin(4, 6), "args": ["x"]},
                              {"name": "s", "op": "add", "args": ["a", "x"]},
                              {"name": "out", "module": lin(6, 1), "args": ["s"]}),
                   "nodes[1] (s, add)", "do not broadcast")

    def test_fields_and_kinds(self):
        self.check(self.nodes({"name": "out", "module": lin(4, 1), "args": ["x"], "dim": 1}),
                   "nodes[0] (out).dim", "unknown field")
        self.check(self.nodes({"name": "out", "op": "add", "module": lin(4, 1),
                               "args": ["x", "x"]}), "nodes[0] (out)", "exactly one of")
        self.check(self.nodes({"name": "c", "op": "chunk", "args": ["x"], "chunks": 2},
                              {"name": "out", "module": lin(4, 1), "args": ["c"]}),
                   "nodes[1] (out).args[0]", "is a tuple")
        self.check(bad({"inputs": ["x"], "modules": {"l": {"type": "ModuleList",
                                                          "modules": [lin(4, 1)]}},
                        "nodes": [{"name": "out", "module": "l", "args": ["x"]}],
                        "outputs": ["out"]}), "ModuleList", "l.0")
        self.check(bad(RESIDUAL, layers=[lin(8, 1)]), "not both")
        self.check(self.nodes({"name": "out", "module": {"type": "Linear", "in_features": 4},
                               "args": ["x"]}), "nodes[0] (out).module.out_features")
        self.check(self.nodes({"name": "x", "module": lin(4, 1), "args": ["x"]}, outputs=("x",)),
                   "nodes[0] (x).name", "already an input")
        self.check(self.nodes({"name": "w", "attr": "nope.weight"},
                              {"name": "mm", "op": "matmul", "args": ["x", "w"]},
                              {"name": "out", "module": lin(4, 1), "args": ["mm"]}),
                   "nodes[0] (w)", "nope.weight")

    def test_runtime_shape_error_names_the_node(self):
        name = fresh()
        spec = {"name": name, "inputs": ["x"], "nodes": [
            {"name": "t", "op": "transpose", "args": ["x"], "dim0": 0, "dim1": 1},
            {"name": "mm", "op": "matmul", "args": ["x", "t"]},
            {"name": "r", "op": "reshape", "args": ["mm"], "shape": [-1, 4]},
            {"name": "out", "module": lin(4, 1), "args": ["r"]}], "outputs": ["out"],
            "loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 0.1}}
        D.create(spec)
        before = D.params(name)
        r = D.post("/v1/models/%s/predict" % name, {"inputs": [[1, 2, 3]] * 3})
        self.assertError(r, 400, "node 'r' (reshape)")
        r = D.post("/v1/models/%s/train" % name, {"inputs": [[1, 2, 3]] * 3,
                                                   "targets": [[0.0]] * 3})
        self.assertError(r, 400, "node 'r' (reshape)")
        self.assertEqual(D.params(name), before)
        # rows of 4 fit: 4x4 -> 16 / 4 = 4 rows
        self.assertEqual(len(D.predict(name, [[1, 2, 3, 4]] * 4)), 4)


def tower(n):
    return {"type": "Sequential", "layers": [lin(8, 16), {"type": "ReLU"}, lin(16, 8)]}


TWO_TOWER = {"inputs": ["user", "item"],
             "modules": {"user_emb": {"type": "Embedding", "num_embeddings": 30, "embedding_dim": 8},
                         "item_emb": {"type": "Embedding", "num_embeddings": 20, "embedding_dim": 8}},
             "nodes": [
                 {"name": "ue", "module": "user_emb", "args": ["user"]},
                 {"name": "user_tower", "module": tower(8), "args": ["ue"]},
                 {"name": "ie", "module": "item_emb", "args": ["item"]},
                 {"name": "item_tower", "module": tower(8), "args": ["ie"]},
                 {"name": "score", "op": "cosine_similarity", "args": ["user_tower", "item_tower"],
                  "dim": 1},
                 {"name": "cat", "op": "cat", "args": ["user_tower", "item_tower"], "dim": 1},
                 {"name": "logits", "module": lin(16, 3), "args": ["cat"]}],
             "outputs": ["logits", "score"]}


class TestNamedInputsAndLosses(Base):
    """Several inputs, several outputs, loss lists (issue 14), against torch twins."""

    def named_twin(self, graph, loss, optimizer):
        name = fresh("n")
        D.create(dict(graph, name=name, loss=loss, optimizer=optimizer, seed=9))
        net = Twin(graph)
        load_state(net, D.params(name))
        self.assertEqual(list(D.params(name)), list(net.state_dict()), "state_dict names")
        kw = {k: v for k, v in optimizer.items() if k != "type"}
        return name, net, getattr(torch.optim, optimizer["type"])(net.parameters(), **kw)

    def steps(self, name, net, opt, batches, torch_loss, use_train):
        for k, (xs, ys) in enumerate(batches):
            body = {"inputs": {n: v.tolist() for n, v in xs.items()}}
            if ys is not None:
                body["targets"] = {n: v.tolist() for n, v in ys.items()}
            if use_train:
                got = D.ok("POST", "/v1/models/%s/train" % name, dict(body, epochs=1))["losses"][0]
            else:
                got = D.ok("POST", "/v1/models/%s/batches" % name, body)["loss"]
                D.step(name)
            net.train()
            opt.zero_grad()
            out = net(*[xs[n] for n in net.spec["inputs"]])
            loss = torch_loss(out if isinstance(out, tuple) else (out,), ys)
            loss.backward()
            opt.step()
            self.assertClose(got, loss.item(), "loss of step %d" % (k + 1))

    def test_two_tower_two_inputs_two_losses(self):
        loss = [{"type": "CrossEntropyLoss", "output": "logits", "target": "label"},
                {"type": "MSELoss", "output": "score", "target": "rating", "weight": 0.5}]
        name, net, opt = self.named_twin(TWO_TOWER, loss, {"type": "Adam", "lr": 0.01})
        g = torch.Generator().manual_seed(4)

        def batch():
            return ({"user": torch.randint(0, 30, (12,), generator=g),
                     "item": torch.randint(0, 20, (12,), generator=g)},
                    {"label": torch.randint(0, 3, (12,), generator=g),
                     "rating": torch.rand(12, generator=g) * 2 - 1})

        def tl(out, ys):
            return (torch.nn.functional.cross_entropy(out[0], ys["label"]) +
                    0.5 * torch.nn.functional.mse_loss(out[1], ys["rating"]))
        batches = [batch() for _ in range(20)]
        self.steps(name, net, opt, batches[:10], tl, True)
        self.steps(name, net, opt, batches[10:], tl, False)
        self.assertStateClose(D.params(name), net, "two-tower state after 20 steps")
        xs, _ = batch()
        net.eval()
        got = D.ok("POST", "/v1/models/%s/predict" % name,
                   {"inputs": {k: v.tolist() for k, v in xs.items()}})["outputs"]
        want = net(xs["user"], xs["item"])
        self.assertEqual(sorted(got), ["logits", "score"])
        self.assertClose(got["logits"], want[0].detach().numpy(), "predict logits")
        self.assertClose(got["score"], want[1].detach().numpy(), "predict score")
        # named bodies are checked, naming the field; nothing changes
        before = D.params(name)
        r = D.post("/v1/models/%s/predict" % name, {"inputs": {"user": [1, 2]}})
        self.assertError(r, 400, "inputs.item: required field is missing")
        r = D.post("/v1/models/%s/predict" % name, {"inputs": [[1, 2]]})
        self.assertError(r, 400, "inputs: expected an object", "\"user\", \"item\"")
        r = D.post("/v1/models/%s/predict" % name, {"inputs": {"user": [1], "item": [1],
                                                                "movie": [2]}})
        self.assertError(r, 400, "inputs.movie: not one of the model's inputs")
        r = D.post("/v1/models/%s/predict" % name, {"inputs": {"user": [1, 2], "item": [1]}})
        self.assertError(r, 400, "inputs.item: 1 rows, inputs.user has 2")
        r = D.post("/v1/models/%s/batches" % name, {"inputs": {"user": [1], "item": [1]},
                                                    "targets": {"label": [0]}})
        self.assertError(r, 400, "targets.rating: required field is missing")
        r = D.post("/v1/models/%s/batches" % name, {"inputs": {"user": [1], "item": [99]},
                                                    "targets": {"label": [0], "rating": [0.5]}})
        self.assertError(r, 400, "node 'ie'")
        self.assertEqual(D.params(name), before)

    def pair_graph(self):
        return {"inputs": ["a", "b", "c"], "nodes": [
            {"name": "f", "module": lin(4, 3), "args": ["a"]},
            {"name": "fb", "module": "f", "args": ["b"]},
            {"name": "fc", "module": "f", "args": ["c"]},
            {"name": "sa", "op": "sum", "args": ["f"], "dim": 1},
            {"name": "sb", "op": "sum", "args": ["fb"], "dim": 1}],
            "outputs": ["f", "fb", "fc", "sa", "sb"]}

    def test_margin_cosine_triplet_losses(self):
        F_ = torch.nn.functional
        cases = [
            ([{"type": "MarginRankingLoss", "margin": 0.3, "output": ["sa", "sb"],
               "target": "y"}],
             lambda o, ys: F_.margin_ranking_loss(o[3], o[4], ys["y"], margin=0.3)),
            ([{"type": "CosineEmbeddingLoss", "margin": 0.1, "output": ["f", "fb"],
               "target": "y", "reduction": "sum"}],
             lambda o, ys: F_.cosine_embedding_loss(o[0], o[1], ys["y"], margin=0.1,
                                                   reduction="sum")),
            ([{"type": "TripletMarginLoss", "margin": 0.5, "p": 1.0, "swap": True,
               "output": ["f", "fb", "fc"]}],
             lambda o, ys: F_.triplet_margin_loss(o[0], o[1], o[2], margin=0.5, p=1.0,
                                                 swap=True)),
            ([{"type": "TripletMarginLoss", "output": ["f", "fb", "fc"]},
              {"type": "MarginRankingLoss", "output": ["sa", "sb"], "target": "y",
               "weight": 2.0}],
             lambda o, ys: (F_.triplet_margin_loss(o[0], o[1], o[2]) +
                            2.0 * F_.margin_ranking_loss(o[3], o[4], ys["y"]))),
        ]
        for loss, tl in cases:
            with self.subTest(loss=loss[0]["type"]):
                name, net, opt = self.named_twin(self.pair_graph(), loss,
                                                 {"type": "SGD", "lr": 0.1})
                g = torch.Generator().manual_seed(len(name))
                needs_y = any("target" in l for l in loss)
                batches = [({k: torch.randn(6, 4, generator=g) for k in "abc"},
                            {"y": torch.randint(0, 2, (6,), generator=g).float() * 2 - 1}
                            if needs_y else None) for _ in range(6)]
                self.steps(name, net, opt, batches[:3], tl, True)
                self.steps(name, net, opt, batches[3:], tl, False)
                self.assertStateClose(D.params(name), net, "state after 6 steps")

    def test_bad_loss_lists(self):
        g = self.pair_graph()
        for loss, parts in [
                ("MSELoss", ["the model has 5 outputs", "loss list"]),
                ([{"type": "MarginRankingLoss", "output": "sa", "target": "y"}],
                 ["loss[0].output", "list of 2 output names"]),
                ([{"type": "MSELoss", "output": "zz", "target": "y"}],
                 ["loss[0].output", "\"zz\" is not one of the model's outputs"]),
                ([{"type": "TripletMarginLoss", "output": ["f", "fb", "fc"], "target": "y"}],
                 ["loss[0].target", "takes no target"]),
                ([{"type": "MSELoss", "output": "f"}], ["loss[0].target"]),
                ([{"type": "MSELoss", "output": "f", "target": "t", "weight": -1}],
                 ["loss[0].weight"]),
                ([{"type": "MSELoss", "output": "f", "target": "t"},
                  {"type": "CrossEntropyLoss", "output": "f", "target": "t"}],
                 ["loss[1].target", "\"t\" is also the target"])]:
            r = D.post("/v1/models", dict(g, name=fresh("bl"), loss=loss,
                                          optimizer={"type": "SGD", "lr": 0.1}))
            self.assertError(r, 400)
            for p in parts:
                self.assertIn(p, r.error())
        r = D.post("/v1/models", {"name": fresh("bl"), "layers": [lin(2, 1)],
                                  "loss": [{"type": "MSELoss", "output": "x", "target": "y"}],
                                  "optimizer": {"type": "SGD", "lr": 0.1}})
        self.assertError(r, 400, "loss: a list of losses is for graph models")
        r = D.post("/v1/models", {"name": fresh("bl"), "layers": [lin(2, 1)],
                                  "loss": "MarginRankingLoss",
                                  "optimizer": {"type": "SGD", "lr": 0.1}})
        self.assertError(r, 400, "MarginRankingLoss takes 2 outputs")


if __name__ == "__main__":
    dm.run_tests()
