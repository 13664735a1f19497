#!/usr/bin/python3
"""easytorchd ONNX export (issue 18): GET /v1/models/{name}/export?format=onnx and
.../versions/{N}/export for every layer type the daemon hosts. Each exported file must pass
onnx.checker (Debian's python3-onnx) with opset 17, a symbolic batch dimension and the
spec's input/output names, and a real ONNX runtime (onnxruntime-web from npm, run by node:
tests/server/onnx/run_ort.mjs) must give the daemon's predictions within 1e-5 for two batch
sizes (EmbeddingBag's modes and padding_idx; MultiheadAttention's add_bias_kv /
add_zero_attn; key padding masks {"input_equals": PAD} of MultiheadAttention,
TransformerEncoderLayer and TransformerEncoder, batch-first or not). Layers ONNX cannot
express answer 400 naming the layer. The attention layers are
checked against onnxruntime and against PyTorch itself.
Usage: test_onnx_export.py PATH/TO/easytorchd"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import Daemon, DaemonTestCase  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import checker  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ORT = os.path.join(HERE, "onnx", "run_ort.mjs")
NODE = shutil.which("node")
TOL = 1e-5

L = lambda t, **kw: dict(type=t, **kw)  # noqa: E731

# name -> (layers, input dims after the batch or None, input kind)
CASES = {
    "mlp": ([L("Linear", in_features=5, out_features=7), L("ReLU"),
             L("Linear", in_features=7, out_features=6), L("Tanh"),
             L("Linear", in_features=6, out_features=3), L("Sigmoid")], None, "f"),
    "acts": ([L("Linear", in_features=4, out_features=6), L("GELU"),
              L("Linear", in_features=6, out_features=6), L("GELU", approximate="tanh"),
              L("LeakyReLU", negative_slope=0.2), L("Dropout", p=0.3), L("Identity"),
              L("Linear", in_features=6, out_features=5), L("Softmax", dim=1),
              L("Linear", in_features=5, out_features=4), L("LogSoftmax", dim=-1)], None, "f"),
    "acts2": ([L("Linear", in_features=4, out_features=6), L("SiLU"),
               L("Linear", in_features=6, out_features=6), L("Mish"),
               L("Linear", in_features=6, out_features=6), L("ELU", alpha=0.5),
               L("Linear", in_features=6, out_features=6), L("Softplus", beta=2.0, threshold=1.0),
               L("Linear", in_features=6, out_features=6), L("Hardtanh", min_val=-0.5, max_val=0.4),
               L("Linear", in_features=6, out_features=6), L("ReLU6")], None, "f"),
    "norms": ([L("Linear", in_features=6, out_features=8), L("BatchNorm1d", num_features=8),
               L("LayerNorm", normalized_shape=8), L("GroupNorm", num_groups=2, num_channels=8),
               L("LayerNorm", normalized_shape=[8], elementwise_affine=False),
               L("BatchNorm1d", num_features=8, affine=False),
               L("Linear", in_features=8, out_features=2)], None, "f"),
    "linear3d": ([L("Linear", in_features=4, out_features=5), L("LayerNorm", normalized_shape=[3, 5]),
                  L("Linear", in_features=5, out_features=2, bias=False), L("Flatten"),
                  L("Linear", in_features=6, out_features=2)], [3, 4], "f"),
    "conv2d": ([L("Conv2d", in_channels=1, out_channels=4, kernel_size=3, padding=1),
                L("BatchNorm2d", num_features=4), L("ReLU"), L("MaxPool2d", kernel_size=2),
                L("Conv2d", in_channels=4, out_channels=4, kernel_size=3, padding="same",
                  padding_mode="reflect", bias=False),
                L("Conv2d", in_channels=4, out_channels=4, kernel_size=2, padding=1,
                  padding_mode="replicate", groups=2, dilation=1),
                L("AvgPool2d", kernel_size=2, stride=1, padding=1, count_include_pad=False),
                L("Conv2d", in_channels=4, out_channels=2, kernel_size=[3, 2], stride=[2, 1],
                  dilation=[1, 2]),
                L("Flatten"), L("Linear", in_features=16, out_features=3)], [1, 8, 8], "f"),
    "conv1d": ([L("Conv1d", in_channels=2, out_channels=3, kernel_size=3, stride=2, padding=1),
                L("MaxPool1d", kernel_size=2, stride=1, padding=1, dilation=1, ceil_mode=True),
                L("AvgPool1d", kernel_size=2), L("ConstantPad1d", padding=[1, 2], value=0.5),
                L("ReflectionPad1d", padding=1), L("ReplicationPad1d", padding=[0, 2]),
                L("AdaptiveMaxPool1d", output_size=5), L("AdaptiveAvgPool1d", output_size=1),
                L("Flatten"),
                L("Linear", in_features=3, out_features=2)], [2, 10], "f"),
    "convt": ([L("ConvTranspose2d", in_channels=2, out_channels=3, kernel_size=3, stride=2,
                 padding=1, output_padding=1),
               L("GroupNorm", num_groups=3, num_channels=3), L("ZeroPad2d", padding=[1, 0, 2, 1]),
               L("ReflectionPad2d", padding=1), L("ReplicationPad2d", padding=[1, 2, 0, 1]),
               L("ConstantPad2d", padding=1, value=-1.0), L("Dropout2d", p=0.5),
               L("AdaptiveMaxPool2d", output_size=[2, 2]), L("AdaptiveAvgPool2d", output_size=1),
               L("Flatten"), L("Unflatten", dim=1, unflattened_size=[3, 1]), L("Flatten"),
               L("Linear", in_features=3, out_features=2)], [2, 4, 4], "f"),
    "maxpool2d": ([L("MaxPool2d", kernel_size=3, stride=2, padding=1, dilation=1, ceil_mode=True),
                   L("AvgPool2d", kernel_size=[2, 1]), L("AdaptiveMaxPool2d", output_size=1),
                   L("Flatten", start_dim=1), L("Linear", in_features=2, out_features=2)],
                  [2, 7, 6], "f"),
    "embedding": ([L("Embedding", num_embeddings=10, embedding_dim=4, padding_idx=0),
                   L("Flatten"), L("Linear", in_features=12, out_features=3)], [3], "i"),
    # attention (eval, self-attention). batch_first=False: the ONNX batch dimension is the
    # sequence, so batches of 1 and 5 also check a causal mask built at run time
    "mha": ([L("MultiheadAttention", embed_dim=8, num_heads=2),
             L("Linear", in_features=8, out_features=3)], [2, 8], "f"),
    "mha_seq_causal": ([L("MultiheadAttention", embed_dim=8, num_heads=4, bias=False,
                          attn_mask="causal")], [3, 8], "f"),
    "mha_bf_boolmask": ([L("MultiheadAttention", embed_dim=6, num_heads=3, batch_first=True,
                           attn_mask=[[False, True, True], [False, False, True],
                                      [True, False, False]])], [3, 6], "f"),
    "mha_unbatched_floatmask": ([L("Linear", in_features=4, out_features=8),
                                 L("MultiheadAttention", embed_dim=8, num_heads=2,
                                   attn_mask="causal")], None, "f"),
    "enc_layer": ([L("TransformerEncoderLayer", d_model=8, nhead=2, dim_feedforward=16,
                     batch_first=True)], [5, 8], "f"),
    "enc_layer_prenorm_gelu": ([L("TransformerEncoderLayer", d_model=8, nhead=4,
                                  dim_feedforward=12, activation="gelu", norm_first=True,
                                  layer_norm_eps=1e-4, src_mask="causal")], [2, 8], "f"),
    # each row a bag: ReduceSum / ReduceMean / ReduceMax, a padding_idx left out
    "bag_sum": ([L("EmbeddingBag", num_embeddings=10, embedding_dim=4, mode="sum"),
                 L("Linear", in_features=4, out_features=3)], [5], "i"),
    "bag_mean_pad": ([L("EmbeddingBag", num_embeddings=10, embedding_dim=4, padding_idx=0),
                      L("Linear", in_features=4, out_features=3)], [5], "i"),
    "bag_max": ([L("EmbeddingBag", num_embeddings=10, embedding_dim=4, mode="max")], [3], "i"),
    "bag_max_pad": ([L("EmbeddingBag", num_embeddings=10, embedding_dim=4, mode="max",
                       padding_idx=-1)], [3], "i"),
    # add_bias_kv / add_zero_attn (their mask columns too); key padding masks from the tokens
    "mha_bias_kv_zero_attn": ([L("Linear", in_features=4, out_features=8),
                               L("MultiheadAttention", embed_dim=8, num_heads=2, add_bias_kv=True,
                                 add_zero_attn=True, attn_mask="causal")], [3, 4], "f"),
    "mha_bf_bias_kv": ([L("MultiheadAttention", embed_dim=6, num_heads=3, batch_first=True,
                          add_bias_kv=True)], [3, 6], "f"),
    "mha_kpm": ([L("Embedding", num_embeddings=10, embedding_dim=8),
                 L("MultiheadAttention", embed_dim=8, num_heads=2, batch_first=True,
                   add_zero_attn=True, key_padding_mask={"input_equals": 9})], [5], "i"),
    "enc_layer_kpm_seq": ([L("Embedding", num_embeddings=10, embedding_dim=8),
                           L("TransformerEncoderLayer", d_model=8, nhead=2, dim_feedforward=16,
                             src_key_padding_mask={"input_equals": 9})], [3], "i"),
    "encoder_kpm_mask": ([L("Embedding", num_embeddings=10, embedding_dim=8),
                          L("TransformerEncoder",
                            encoder_layer=L("TransformerEncoderLayer", d_model=8, nhead=2,
                                            dim_feedforward=16, batch_first=True),
                            num_layers=2, src_key_padding_mask={"input_equals": 9},
                            mask=[[0.0, -1.0, 0.5, 0.0, 0.0]] * 5)], [5], "i"),
    "encoder": ([L("Embedding", num_embeddings=10, embedding_dim=8),
                 L("TransformerEncoder", encoder_layer=L("TransformerEncoderLayer", d_model=8,
                                                         nhead=2, dim_feedforward=16,
                                                         batch_first=True),
                   num_layers=2, norm=L("LayerNorm", normalized_shape=8), mask="causal"),
                 L("Flatten"), L("Linear", in_features=32, out_features=3)], [4], "i"),
}


def random_state(params, seed):
    """Random parameters of the same shapes (positive running_var)."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, v in params.items():
        a = np.asarray(v)
        if "num_batches" in k:
            out[k] = v
        elif "running_var" in k:
            out[k] = (rng.random(a.shape) + 0.5).tolist()
        else:
            out[k] = (rng.standard_normal(a.shape) * 0.7).tolist()
    return out


def inputs_for(dims, kind, batch, seed):
    rng = np.random.default_rng(seed)
    shape = [batch] + list(dims)
    if kind == "i":
        return rng.integers(0, 10, size=shape).tolist()
    return rng.standard_normal(shape).astype(np.float32).tolist()


ORT_MISSING = []  # set once npm could not install onnxruntime-web (fresh-debian): skip the rest at once


def ort_run(path, cases):
    if ORT_MISSING:
        raise unittest.SkipTest(ORT_MISSING[0])
    if NODE is None:  # a TEST_PKGS package (scripts/deps.sh): missing fails, it does not skip
        raise AssertionError("node (nodejs) is missing: onnxruntime-web cannot check the export")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(cases, f)
        cf = f.name
    try:
        r = subprocess.run([NODE, ORT, path, cf], capture_output=True, text=True, timeout=600)
    finally:
        os.unlink(cf)
    if r.returncode == 77:  # FRESH_DEBIAN=1 and npm cannot install onnxruntime-web there
        ORT_MISSING.append("onnxruntime-web could not be installed in this container")
        raise unittest.SkipTest(ORT_MISSING[0])
    if r.returncode != 0:
        raise AssertionError("onnxruntime failed (%d): %s %s" % (r.returncode, r.stderr[-2000:],
                                                                 r.stdout[-500:]))
    return json.loads(r.stdout.strip().splitlines()[-1])


def setUpModule():
    DaemonTestCase.daemon = Daemon()
    DaemonTestCase.daemon.start()


def tearDownModule():
    DaemonTestCase.daemon.cleanup()


class Export(DaemonTestCase):
    worst = {}

    def export(self, path, expect=200):
        r = self.daemon.get(path)
        self.assertEqual(r.status, expect, r.body[:300])
        return r

    def check_case(self, name, layers, dims, kind):
        d = self.daemon
        spec = {"name": "x-" + name, "layers": layers, "loss": "MSELoss",
                "optimizer": {"type": "SGD", "lr": 0.01}, "seed": 1}
        d.create(spec)
        d.set_params(spec["name"], random_state(d.params(spec["name"]), len(name)))
        q = "?format=onnx" + ("&input_shape=" + ",".join(map(str, dims)) if dims else "")
        r = self.export("/v1/models/%s/export%s" % (spec["name"], q))
        self.assertEqual(r.headers["content-type"], "application/onnx")
        self.assertIn('filename="x-%s.onnx"' % name, r.headers.get("content-disposition", ""))
        model = onnx.load_from_string(r.body)
        checker.check_model(model, full_check=True)
        self.assertEqual([(o.domain, o.version) for o in model.opset_import], [("", 17)])
        self.assertEqual([i.name for i in model.graph.input], ["input"])
        self.assertEqual([o.name for o in model.graph.output], ["output"])
        self.assertEqual(model.graph.input[0].type.tensor_type.shape.dim[0].dim_param, "batch")
        names = {t.name for t in model.graph.initializer}
        for k in d.params(spec["name"]):  # parameters and buffers, named as in the state_dict
            if "num_batches" not in k:
                self.assertIn(k, names, "initializer for %s" % k)
        in_dims = dims if dims else [layers[0]["in_features"]]
        cases, want = [], []
        for batch, seed in ((1, 3), (5, 4)):
            x = inputs_for(in_dims, kind, batch, seed)
            want.append(np.asarray(d.predict(spec["name"], x), dtype=np.float64))
            cases.append({"dims": [batch] + list(in_dims), "data": dm.flatten(x),
                          "dtype": "int64" if kind == "i" else "float32"})
        got = ort_run_bytes(r.body, cases)
        worst = 0.0
        for g, w in zip(got["results"], want):
            self.assertEqual(g["dims"], list(w.shape))
            ga = np.asarray(g["data"], dtype=np.float64).reshape(w.shape)
            worst = max(worst, float(np.max(np.abs(ga - w))) if w.size else 0.0)
            self.assertTrue(np.allclose(ga, w, rtol=TOL, atol=TOL),
                            "%s: onnxruntime differs from the daemon by %g" %
                            (name, float(np.max(np.abs(ga - w)))))
        Export.worst[name] = worst

    def test_every_layer_type(self):
        for name, (layers, dims, kind) in CASES.items():
            with self.subTest(case=name):
                self.check_case(name, layers, dims, kind)
        print("largest |onnxruntime - daemon| per case:",
              ", ".join("%s %.2g" % kv for kv in sorted(Export.worst.items())))
        # every layer type of GET /v1/types is covered by a case or refused by name below
        types = {t["type"] for t in self.daemon.ok("GET", "/v1/types")["layers"]}
        covered = {l["type"] for c in CASES.values() for l in c[0]}
        self.assertEqual(sorted(types - covered), [])

    def test_attention_exports_predict_as_torch(self):
        """The attention cases through onnxruntime against PyTorch itself (the torch twins of
        tests/server/test_attention.py loaded with the daemon's parameters), two sequence
        lengths for the causal ones."""
        import torch
        import test_attention as ta
        d = self.daemon
        for name in ("mha", "mha_seq_causal", "enc_layer_prenorm_gelu", "encoder"):
            with self.subTest(case=name):
                layers, dims, kind = CASES[name]
                mname = "t-" + name
                d.create({"name": mname, "layers": layers, "loss": "MSELoss",
                          "optimizer": {"type": "SGD", "lr": 0.01}, "seed": 5})
                params = random_state(d.params(mname), 7)
                d.set_params(mname, params)
                net = ta.torch_net(layers)
                ta.load_state(net, params)
                net.eval()
                q = "?format=onnx&input_shape=" + ",".join(map(str, dims))
                body = self.export("/v1/models/%s/export%s" % (mname, q)).body
                checker.check_model(onnx.load_from_string(body), full_check=True)
                cases, want = [], []
                for batch, seed in ((2, 8), (6, 9)):
                    x = inputs_for(dims, kind, batch, seed)
                    xt = torch.tensor(x)
                    with torch.no_grad():
                        want.append(net(xt).double().numpy())
                    cases.append({"dims": [batch] + list(dims), "data": dm.flatten(x),
                                  "dtype": "int64" if kind == "i" else "float32"})
                got = ort_run_bytes(body, cases)["results"]
                for g, w in zip(got, want):
                    ga = np.asarray(g["data"], dtype=np.float64).reshape(g["dims"])
                    self.assertEqual(list(ga.shape), list(w.shape))
                    self.assertTrue(np.allclose(ga, w, rtol=TOL, atol=TOL),
                                    "%s: onnxruntime differs from torch by %g" %
                                    (name, float(np.max(np.abs(ga - w)))))

    def test_version_export_and_batch_statistics(self):
        d = self.daemon
        layers = [L("Linear", in_features=3, out_features=4), L("BatchNorm1d", num_features=4),
                  L("ReLU"), L("Linear", in_features=4, out_features=2)]
        d.create({"name": "x-ver", "layers": layers, "loss": "MSELoss",
                  "optimizer": {"type": "Adam", "lr": 0.05}, "seed": 2})
        rng = np.random.default_rng(0)
        xs = rng.standard_normal((8, 3)).tolist()
        ys = rng.standard_normal((8, 2)).tolist()
        d.ok("POST", "/v1/models/x-ver/train", {"inputs": xs, "targets": ys, "epochs": 3})
        d.ok("POST", "/v1/models/x-ver/versions", None, expect=(201,))
        v1 = d.ok("POST", "/v1/models/x-ver/versions/1/predict", {"inputs": xs})["outputs"]
        d.ok("POST", "/v1/models/x-ver/train", {"inputs": xs, "targets": ys, "epochs": 3})
        r = self.export("/v1/models/x-ver/versions/1/export?format=onnx")
        self.assertIn('filename="x-ver.v1.onnx"', r.headers.get("content-disposition", ""))
        checker.check_model(onnx.load_from_string(r.body), full_check=True)
        got = ort_run_bytes(r.body, [{"dims": [8, 3], "data": dm.flatten(xs)}])["results"][0]
        self.assertTrue(np.allclose(np.reshape(got["data"], (8, 2)), v1, rtol=TOL, atol=TOL))
        live = self.export("/v1/models/x-ver/export").body
        self.assertNotEqual(live, r.body)  # the live model trained on

    def test_refusals(self):
        d = self.daemon
        d.create({"name": "x-bag", "layers": [L("EmbeddingBag", num_embeddings=5, embedding_dim=3,
                                                max_norm=1.0),
                                              L("Linear", in_features=3, out_features=1)],
                  "loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 0.1}})
        self.assertError(d.get("/v1/models/x-bag/export?input_shape=4"), 400,
                         "layers[0] (EmbeddingBag)", "max_norm")
        d.create({"name": "x-circ", "layers": [L("Conv1d", in_channels=1, out_channels=1,
                                                 kernel_size=3, padding=1, padding_mode="circular")],
                  "loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 0.1}})
        self.assertError(d.get("/v1/models/x-circ/export?input_shape=1,5"), 400,
                         "layers[0] (Conv1d)", "circular")
        self.assertError(d.get("/v1/models/x-circ/export"), 400, "input_shape")
        for q in ["format=pb", "input_shape=0", "input_shape=a", "input_shape=1,,2",
                  "input_shape=" + ",".join(["2"] * 9), "input_shape=1,99999999999", "shape=1"]:
            self.assertError(d.get("/v1/models/x-circ/export?" + q), 400)
        self.assertError(d.get("/v1/models/x-circ/export?input_shape=2,5"), 400, "layers[0]")
        self.assertError(d.get("/v1/models/nope/export"), 404, "nope")
        self.assertError(d.get("/v1/models/x-circ/versions/3/export?input_shape=1,5"), 404,
                         "no version 3")


def ort_run_bytes(data, cases):
    with tempfile.NamedTemporaryFile(suffix=".onnx", delete=False) as f:
        f.write(data)
        p = f.name
    try:
        return ort_run(p, cases)
    finally:
        os.unlink(p)


if __name__ == "__main__":
    dm.run_tests()
