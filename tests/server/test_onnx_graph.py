#!/usr/bin/python3
"""easytorchd ONNX export of graph models (issue 18): GET /v1/models/{name}/export?format=onnx
of models with "inputs"/"modules"/"nodes"/"outputs" -- a residual block, a ResNet block with
BatchNorm (trained, so running statistics and num_batches_tracked are not the initial ones),
shared weights (one module called twice, an output projection tied to the embedding by an
attr node), nested Sequential / ModuleList with chunk + getitem + cat, two inputs and two
outputs (two towers, cosine_similarity), every functional op, attention nodes
(MultiheadAttention self- and cross-attention with getitem 0 and its averaged weights
getitem 1 / -1, batch_first or not; TransformerEncoderLayer; kdim / vdim, add_bias_kv,
add_zero_attn; TransformerEncoderLayer / TransformerEncoder called with 2-D and 3-D masks as
graph values), test_graph's elementwise / scalar / slice ops (neg, exp, log, sqrt, erf, pow,
unsqueeze, squeeze, slice) and mask ops (where, masked_fill with -inf and a number as x,
logical_not/and/or, expand), EmbeddingBag called with offsets (sum, mean, max; padding_idx,
include_last_offset, empty and padding-only bags). Each file passes onnx.checker
(full_check), keeps the spec's input and output names and a symbolic batch, has every
state_dict entry as an initializer of that name, and onnxruntime-web (node, run_ort.mjs)
gives the daemon's predictions AND PyTorch's (test_graph.py's torch twin loaded with the
model's parameters, eval mode) within 1e-5 for batches of 1 and 4 (relative to the largest
output where that exceeds 1).
Usage: test_onnx_graph.py PATH/TO/easytorchd"""

import json
import os
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon import Daemon, DaemonTestCase  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnx.numpy_helper  # noqa: E402
from onnx import checker  # noqa: E402
import torch  # noqa: E402
import test_graph as tg  # noqa: E402
from test_onnx_export import ort_run, random_state  # noqa: E402

TOL = 1e-5
lin = tg.lin

ALL_OPS = {"inputs": ["a", "b"], "nodes": [
    {"name": "pa", "module": lin(6, 6), "args": ["a"]},
    {"name": "s1", "op": "sub", "args": ["pa", "b"]},
    {"name": "m1", "op": "mul", "args": ["s1", "a"]},
    {"name": "d1", "op": "div", "args": ["m1", "pa"]},
    {"name": "st", "op": "stack", "args": ["a", "b", "d1"], "dim": 1},
    {"name": "tr", "op": "transpose", "args": ["st"], "dim0": 1, "dim1": 2},
    {"name": "pm", "op": "permute", "args": ["tr"], "dims": [0, 2, 1]},
    {"name": "mm", "op": "matmul", "args": ["pm", "tr"]},
    {"name": "fl", "op": "flatten", "args": ["mm"], "start_dim": 1},
    {"name": "rs", "op": "reshape", "args": ["fl"], "shape": [-1, 3, 3]},
    {"name": "sm", "op": "softmax", "args": ["rs"], "dim": -1},
    {"name": "ls", "op": "log_softmax", "args": ["rs"], "dim": 1},
    {"name": "su", "op": "sum", "args": ["sm"], "dim": [2]},
    {"name": "me", "op": "mean", "args": ["ls"], "dim": [1], "keepdim": True},
    {"name": "sel", "op": "getitem", "args": ["me"], "dim": 1, "index": 0},
    {"name": "sp", "op": "split", "args": ["b"], "split_size": 4, "dim": 1},
    {"name": "sp1", "op": "getitem", "args": ["sp"], "index": -1},
    {"name": "cs", "op": "cosine_similarity", "args": ["su", "sel"], "dim": 1},
    {"name": "w", "attr": "pa.weight"},
    {"name": "li", "op": "linear", "args": ["a", "w"]},
    {"name": "cat", "op": "cat", "args": ["li", "sp1", "su"], "dim": 1}],
    "outputs": ["cat", "cs"]}

ATTN = {"inputs": ["x"], "nodes": [
    {"name": "att", "module": {"type": "MultiheadAttention", "embed_dim": 8, "num_heads": 2,
                               "batch_first": True}, "args": ["x", "x", "x"]},
    {"name": "a0", "op": "getitem", "args": ["att"], "index": 0},
    {"name": "res", "op": "add", "args": ["a0", "x"]},
    {"name": "enc", "module": {"type": "TransformerEncoderLayer", "d_model": 8, "nhead": 2,
                               "dim_feedforward": 16, "batch_first": True}, "args": ["res"]},
    {"name": "pool", "op": "mean", "args": ["enc"], "dim": [1]},
    {"name": "out", "module": lin(8, 2), "args": ["pool"]}], "outputs": ["out"]}

CROSS = {"inputs": ["q", "kv"], "nodes": [
    {"name": "att", "module": {"type": "MultiheadAttention", "embed_dim": 8, "num_heads": 2,
                               "batch_first": True}, "args": ["q", "kv", "kv"]},
    {"name": "a0", "op": "getitem", "args": ["att"], "index": 0},
    {"name": "w", "op": "getitem", "args": ["att"], "index": 1},
    {"name": "self", "module": {"type": "MultiheadAttention", "embed_dim": 8, "num_heads": 4,
                                "bias": False}, "args": ["a0", "a0", "a0"]},
    {"name": "s0", "op": "getitem", "args": ["self"], "index": 0},
    {"name": "sw", "op": "getitem", "args": ["self"], "index": -1}],
    "outputs": ["s0", "w", "sw"]}

def bag(mode, **kw):
    return dict(type="EmbeddingBag", num_embeddings=10, embedding_dim=4, mode=mode, **kw)


# EmbeddingBag called with offsets: sum, mean and max, a padding_idx, include_last_offset
BAGS = {"inputs": ["idx", "off", "offl"], "nodes": [
    {"name": "s", "module": bag("sum"), "args": ["idx", "off"]},
    {"name": "m", "module": bag("mean", padding_idx=0), "args": ["idx", "off"]},
    {"name": "x", "module": bag("max", padding_idx=0, include_last_offset=True),
     "args": ["idx", "offl"]},
    {"name": "x2", "module": bag("max"), "args": ["idx", "off"]}],
    "outputs": ["s", "m", "x", "x2"]}


def bag_feeds(batch):
    """The daemon takes inputs of one length N, so N offsets: "batch" 1: two indices, a bag
    each (offl: one bag of both); 4: bags [1, 4], [] (empty), [0, 0] (padding only),
    [3, 5, 7, 2, 9] and five empty ones (offl: the first four, its last entry their end)."""
    if batch == 1:
        idx, off, offl = [3, 0], [0, 1], [0, 2]
    else:
        idx, off = [1, 4, 0, 0, 3, 5, 7, 2, 9], [0, 2, 2, 4, 9, 9, 9, 9, 9]
        offl = off
    return {"idx": np.array(idx, dtype=np.int64), "off": np.array(off, dtype=np.float32),
            "offl": np.array(offl, dtype=np.float32)}


def enc(**kw):
    return dict(type="TransformerEncoderLayer", d_model=8, nhead=2, dim_feedforward=16,
                batch_first=True, **kw)


# masks passed to TransformerEncoderLayer / TransformerEncoder as graph values: a 2-D float
# mask (a parameter, through an attr node) and a 3-D [N * H, L, S] one built from an input
ENC_MASKS = {"inputs": ["x", "mb"], "modules": {"mk": lin(4, 4, False)}, "nodes": [
    {"name": "w", "attr": "mk.weight"},
    {"name": "e1", "module": enc(), "args": ["x", "w"]},
    {"name": "m3", "op": "cat", "args": ["mb", "mb"], "dim": 0},
    {"name": "e2", "module": {"type": "TransformerEncoder", "encoder_layer": enc(norm_first=True),
                              "num_layers": 2}, "args": ["e1", "m3"]},
    {"name": "pool", "op": "mean", "args": ["e2"], "dim": [1]},
    {"name": "out", "module": lin(8, 2), "args": ["pool"]}], "outputs": ["out"]}


def mha(**kw):
    return dict(type="MultiheadAttention", embed_dim=8, **kw)


# kdim / vdim other than embed_dim (q/k/v_proj_weight), add_bias_kv, add_zero_attn
MHA_OPTS = {"inputs": ["q", "kv", "v"], "nodes": [
    {"name": "a", "module": mha(num_heads=2, kdim=5, vdim=6, batch_first=True),
     "args": ["q", "kv", "v"]},
    {"name": "a0", "op": "getitem", "args": ["a"], "index": 0},
    {"name": "aw", "op": "getitem", "args": ["a"], "index": 1},
    {"name": "b", "module": mha(num_heads=2, add_bias_kv=True, add_zero_attn=True),
     "args": ["a0", "a0", "a0"]},
    {"name": "b0", "op": "getitem", "args": ["b"], "index": 0},
    {"name": "bw", "op": "getitem", "args": ["b"], "index": 1},
    {"name": "c", "module": mha(num_heads=4, add_zero_attn=True, add_bias_kv=True, kdim=5, vdim=5,
                                batch_first=True, bias=False), "args": ["b0", "kv", "kv"]},
    {"name": "c0", "op": "getitem", "args": ["c"], "index": 0},
    {"name": "cw", "op": "getitem", "args": ["c"], "index": 1}],
    "outputs": ["c0", "aw", "bw", "cw"]}

# name -> (graph, {input: (dims after the batch, kind)} or batch -> {input: array},
#          trained first, ?input_shape)
CASES = {
    "residual": (tg.RESIDUAL, {"x": ([8], "f")}, False, None),
    "resnet_bn": (tg.RESNET, {"x": ([8], "f")}, True, None),
    "tied": (tg.TIED, {"tok": ([5], "i")}, False, "5"),
    "nested": (tg.NESTED, {"x": ([8], "f")}, False, "8"),
    "two_tower": (tg.TWO_TOWER, {"user": ([], "i"), "item": ([], "i")}, False, ";"),
    "all_ops": (ALL_OPS, {"a": ([6], "f"), "b": ([6], "f")}, False, "6;6"),
    "attention": (ATTN, {"x": ([3, 8], "f")}, False, "3,8"),
    # cross-attention and the averaged weights (getitem 1 / -1); batch_first=False on the
    # second: the ONNX batch dimension is its sequence
    "attention_cross": (CROSS, {"q": ([3, 8], "f"), "kv": ([4, 8], "f")}, False, "3,8;4,8"),
    # test_graph's elementwise / scalar / (un)squeeze / slice ops and its mask ops (where,
    # masked_fill with -inf and a number as x, logical_not/and/or, expand)
    "math": (tg.MATH, {"x": ([6], "f")}, False, "6"),
    "masks": (tg.MASKS, {"x": ([6], "f")}, False, "6"),
    "bags": (BAGS, bag_feeds, False, ";;"),
    "enc_masks": (ENC_MASKS, {"x": ([4, 8], "f"), "mb": ([4, 4], "f")}, False, "4,8;4,4"),
    "mha_options": (MHA_OPTS, {"q": ([3, 8], "f"), "kv": ([4, 5], "f"), "v": ([4, 6], "f")},
                    False, "3,8;4,5;4,6"),
}


def feed(dims, kind, batch, seed, high):
    rng = np.random.default_rng(seed)
    shape = [batch] + list(dims)
    if kind == "i":
        return rng.integers(0, high, size=shape)
    return rng.standard_normal(shape).astype(np.float32)


def setUpModule():
    DaemonTestCase.daemon = Daemon()
    DaemonTestCase.daemon.start()


def tearDownModule():
    DaemonTestCase.daemon.cleanup()


class GraphExport(DaemonTestCase):
    def check_case(self, key, graph, ins, train, q):
        d = self.daemon
        name = "og-" + key
        d.create(dict(graph, name=name, loss=tg_loss(graph), optimizer={"type": "SGD", "lr": 0.05},
                      seed=2))
        if not train:
            d.set_params(name, random_state(d.params(name), len(key)))
        high = {"tok": 20, "user": 20, "item": 20}
        if train:  # BatchNorm's statistics and counter move
            x = feed(ins["x"][0], "f", 6, 5, 0).tolist()
            y = np.random.default_rng(6).standard_normal((6, 3)).tolist()
            d.ok("POST", "/v1/models/%s/train" % name, {"inputs": x, "targets": y, "epochs": 3})
        params = d.params(name)
        r = d.get("/v1/models/%s/export?format=onnx%s" % (name, "&input_shape=" + q if q else ""))
        self.assertEqual(r.status, 200, r.body[:400])
        self.assertEqual(r.headers["content-type"], "application/onnx")
        model = onnx.load_from_string(r.body)
        checker.check_model(model, full_check=True)
        self.assertEqual([(o.domain, o.version) for o in model.opset_import], [("", 17)])
        self.assertEqual([i.name for i in model.graph.input], graph["inputs"])
        self.assertEqual([o.name for o in model.graph.output], graph["outputs"])
        for i in model.graph.input:
            self.assertEqual(i.type.tensor_type.shape.dim[0].dim_param, "batch")
        inits = {t.name: t for t in model.graph.initializer}
        self.assertEqual(len(inits), len(model.graph.initializer), "initializers named once")
        for k, v in params.items():  # every state_dict entry, by its name and shape
            if "num_batches" in k:
                continue
            self.assertIn(k, inits, "initializer for %s" % k)
            self.assertEqual(list(inits[k].dims), list(np.asarray(v).shape), k)
            np.testing.assert_array_equal(onnx.numpy_helper.to_array(inits[k]),
                                          np.asarray(v, dtype=np.float32), k)
        nbt = {k: v for k, v in params.items() if "num_batches" in k}
        meta = {p.key: p.value for p in model.metadata_props}
        if nbt:
            self.assertEqual(json.loads(meta["easytorch.num_batches_tracked"]), nbt)
            self.assertEqual(set(nbt.values()), {3})
        # the torch twin with the model's parameters
        net = tg.Twin(graph)
        tg.load_state(net, params)
        net.eval()
        cases, want_d, want_t = [], [], []
        for batch in (1, 4):
            xs = ins(batch) if callable(ins) else \
                {k: feed(dims, kind, batch, batch * 7 + j, high.get(k, 0))
                 for j, (k, (dims, kind)) in enumerate(ins.items())}
            cases.append({"feeds": {k: {"dims": list(v.shape), "data": v.ravel().tolist(),
                                        "dtype": "int64" if v.dtype.kind == "i" else "float32"}
                                    for k, v in xs.items()}})
            body = {"inputs": {k: v.tolist() for k, v in xs.items()}} if len(xs) > 1 else \
                {"inputs": next(iter(xs.values())).tolist()}
            out = d.ok("POST", "/v1/models/%s/predict" % name, body)["outputs"]
            if len(graph["outputs"]) == 1:
                out = {graph["outputs"][0]: out}
            want_d.append(out)
            with torch.no_grad():  # torch's offsets are int64, the daemon's float inputs
                t = net(*[torch.tensor(xs[k]).long() if k.startswith("off") else
                          torch.tensor(xs[k]) for k in graph["inputs"]])
            t = t if isinstance(t, tuple) else (t,)
            want_t.append({o: v.numpy() for o, v in zip(graph["outputs"], t)})
        got = ort_run_bytes(r.body, cases)
        self.assertEqual(got["inputs"], graph["inputs"])
        self.assertEqual(got["outputs"], graph["outputs"])
        for res, wd, wt in zip(got["results"], want_d, want_t):
            for o in graph["outputs"]:
                g = np.asarray(res[o]["data"], dtype=np.float64).reshape(res[o]["dims"])
                for what, w in (("daemon", wd[o]), ("torch", wt[o])):
                    w = np.asarray(w, dtype=np.float64)
                    self.assertEqual(g.shape, w.shape, "%s %s vs %s" % (key, o, what))
                    err = float(np.max(np.abs(g - w))) if g.size else 0.0
                    # 1e-5 for outputs of unit size, relative above: the attention case's
                    # outputs reach ~40, where float32's spacing is 3.8e-6 and a different
                    # summation order (onnxruntime's, oneDNN's under torch) moves a few ulps
                    scale = max(1.0, float(np.max(np.abs(w)))) if w.size else 1.0
                    self.assertLessEqual(err, TOL * scale, "%s output %s: onnxruntime vs %s "
                                         "(max |output| %.3g)" % (key, o, what, scale))

    def test_graph_models_export(self):
        only = os.environ.get("OG_CASE")
        for key, (graph, ins, train, q) in CASES.items():
            if only and key != only:
                continue
            with self.subTest(case=key):
                self.check_case(key, graph, ins, train, q)

    def test_refusals_name_the_node(self):
        d = self.daemon
        cases = [
            ({"inputs": ["x"], "nodes": [
                {"name": "c", "op": "chunk", "args": ["x"], "chunks": 2, "dim": 0},
                {"name": "c0", "op": "getitem", "args": ["c"], "index": 0},
                {"name": "out", "module": lin(4, 1), "args": ["c0"]}], "outputs": ["out"]},
             ["node 'c'", "batch dimension"], "input_shape=4"),
            (tg.RESIDUAL, ["input_shape", "1 input"], None),
        ]
        for i, (graph, words, q) in enumerate(cases):
            with self.subTest(case=i):
                name = "og-bad%d" % i
                d.create(dict(graph, name=name, loss="MSELoss", optimizer={"type": "SGD", "lr": 0.1}))
                before = d.params(name)
                if i == 1:
                    r = d.get("/v1/models/%s/export?format=onnx&input_shape=8" % name)
                    self.assertEqual(r.status, 200, r.body[:300])
                    continue
                path = "/v1/models/%s/export?format=onnx%s" % (name, "&" + q if q else "")
                msg = self.assertError(d.get(path), 400, words[0])
                for w in words:
                    self.assertIn(w, msg)
                self.assertEqual(d.params(name), before)


def tg_loss(graph):
    if len(graph["outputs"]) == 1:
        return "MSELoss"
    return [{"type": "MSELoss", "output": o, "target": o} for o in graph["outputs"]]


def ort_run_bytes(body, cases):
    import tempfile
    with tempfile.NamedTemporaryFile(suffix=".onnx", delete=False) as f:
        f.write(body)
        path = f.name
    try:
        return ort_run(path, cases)
    finally:
        os.unlink(path)


if __name__ == "__main__":
    import daemon as dm
    dm.run_tests()
