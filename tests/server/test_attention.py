#!/usr/bin/python3
"""easytorchd's attention layers (MultiheadAttention, TransformerEncoderLayer,
TransformerEncoder) against PyTorch over HTTP: models trained step by step from the same
initial parameters as a torch twin (the loss of every step, every state_dict entry at the end,
predictions in eval mode), with masks fixed in the spec ("causal", float and bool matrices),
batch_first both ways, norm_first, gelu, kdim-free packed projections, add_bias_kv /
add_zero_attn; state_dict names exactly torch's; bad definitions are 400s naming the field;
/v1/types lists them; they export to ONNX; a restart keeps the model.
Usage: test_attention.py PATH/TO/easytorchd"""

import os
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import DaemonTestCase  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as tnn  # noqa: E402

torch.set_num_threads(1)
RTOL, ATOL = 1e-4, 1e-5
D = None  # the module's daemon, made and started by setUpModule
setUpModule, tearDownModule = dm.module_fixture(globals())


_n = [0]


def fresh(prefix="a"):
    _n[0] += 1
    return "%s%d" % (prefix, _n[0])


# ---- the torch twin of a spec: forward arguments fixed in the spec become the
# ---- module's forward call (what a torch user writes in their own forward)

def mask_of(spec, x, batch_first):
    """The spec's fixed mask as torch takes it, for input x."""
    if spec is None:
        return None
    if spec == "causal":
        L = x.shape[1] if batch_first and x.dim() == 3 else x.shape[0]
        return tnn.Transformer.generate_square_subsequent_mask(L)
    if isinstance(spec[0][0], bool):
        return torch.tensor(spec, dtype=torch.bool)
    return torch.tensor(spec, dtype=torch.float32)


class SelfAttention(tnn.MultiheadAttention):
    """nn.MultiheadAttention as a layer-list element: self-attention, attn_output only."""
    fixed = None

    def forward(self, x):
        m = mask_of(self.fixed, x, self.batch_first)
        return super().forward(x, x, x, need_weights=False, attn_mask=m)[0]


class EncoderLayer(tnn.TransformerEncoderLayer):
    fixed = None

    def forward(self, x, src_mask=None, src_key_padding_mask=None):
        if src_mask is None:
            src_mask = mask_of(self.fixed, x, self.self_attn.batch_first)
        return super().forward(x, src_mask=src_mask, src_key_padding_mask=src_key_padding_mask)


class Encoder(tnn.TransformerEncoder):
    fixed = None

    def forward(self, x):
        bf = self.layers[0].self_attn.batch_first
        return super().forward(x, mask=mask_of(self.fixed, x, bf))


def torch_layer(spec):
    kw = {k: v for k, v in spec.items() if k != "type"}
    t = spec["type"]
    if t == "MultiheadAttention":
        mask = kw.pop("attn_mask", None)
        m = SelfAttention(**kw)
    elif t == "TransformerEncoderLayer":
        mask = kw.pop("src_mask", None)
        m = EncoderLayer(**kw)
    elif t == "TransformerEncoder":
        mask = kw.pop("mask", None)
        layer = torch_layer(kw.pop("encoder_layer"))
        norm = kw.pop("norm", None)
        m = Encoder(layer, norm=torch_layer(norm) if norm else None, **kw)
    else:
        return getattr(tnn, t)(**{k: (tuple(v) if isinstance(v, list) else v)
                                  for k, v in kw.items()})
    m.fixed = mask
    return m


def torch_net(layers):
    return tnn.Sequential(*[torch_layer(l) for l in layers])


def load_state(net, params):
    sd = net.state_dict()
    net.load_state_dict({k: torch.tensor(params[k], dtype=v.dtype).reshape(v.shape)
                         for k, v in sd.items()})


def diff(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return "shape %s vs %s" % (a.shape, b.shape)
    return "max |diff| %.3g" % float(np.abs(a - b).max())


def close(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and np.allclose(a, b, rtol=RTOL, atol=ATOL)


def enc_layer(d, h, **kw):
    return dict({"type": "TransformerEncoderLayer", "d_model": d, "nhead": h,
                 "dim_feedforward": 2 * d, "dropout": 0.0}, **kw)


class Base(DaemonTestCase):
    def assertClose(self, got, want, what):
        if not close(got, want):
            self.fail("%s differs from torch: %s" % (what, diff(got, want)))

    def twin(self, layers, loss, optimizer, seed=3):
        name = fresh()
        D.create({"name": name, "layers": layers, "loss": loss, "optimizer": optimizer,
                  "seed": seed})
        net = torch_net(layers)
        got = D.params(name)
        # names and order exactly torch's state_dict
        self.assertEqual(list(got), list(net.state_dict()), "state_dict names")
        load_state(net, got)
        kw = {k: v for k, v in optimizer.items() if k != "type"}
        opt = getattr(torch.optim, optimizer["type"])(net.parameters(), **kw)
        return name, net, opt

    def steps(self, name, net, opt, loss_fn, batches):
        for k, (x, y) in enumerate(batches):
            if k % 2 == 0:
                got = D.ok("POST", "/v1/models/%s/train" % name,
                           {"inputs": x.tolist(), "targets": y.tolist(), "epochs": 1})["losses"][0]
            else:   # the other training path: push a batch, step
                got = D.push(name, x.tolist(), y.tolist())["loss"]
                D.step(name)
            net.train()
            opt.zero_grad()
            loss = loss_fn(net(x), y)
            loss.backward()
            opt.step()
            self.assertClose(got, loss.item(), "loss of step %d" % (k + 1))

    def assertState(self, name, net, what):
        got = D.params(name)
        sd = net.state_dict()
        self.assertEqual(list(got), list(sd), what + ": state_dict names")
        for k, v in sd.items():
            self.assertClose(got[k], v.detach().numpy(), "%s: %s" % (what, k))

    def assertPredict(self, name, net, x, what):
        net.eval()   # grad enabled: torch's regular path, not the inference fast path
        self.assertClose(D.predict(name, x.tolist()), net(x).detach().numpy(), what)


L, V = 6, 11   # sequence length, vocabulary


def char_model(**layer_kw):
    return [
        {"type": "Embedding", "num_embeddings": V, "embedding_dim": 16},
        {"type": "TransformerEncoder", "encoder_layer": enc_layer(16, 4, batch_first=True,
                                                                  **layer_kw),
         "num_layers": 2, "norm": {"type": "LayerNorm", "normalized_shape": 16},
         "mask": "causal"},
        {"type": "Flatten"},
        {"type": "Linear", "in_features": 16 * L, "out_features": V},
    ]


class TestTrainingAgainstTorch(Base):
    def token_batches(self, seed, n=8, rows=5):
        g = torch.Generator().manual_seed(seed)
        return [(torch.randint(0, V, (rows, L), generator=g),
                 torch.randint(0, V, (rows,), generator=g)) for _ in range(n)]

    def test_encoder_causal_postnorm_sgd(self):
        layers = char_model()
        name, net, opt = self.twin(layers, "CrossEntropyLoss", {"type": "SGD", "lr": 0.1,
                                                                 "momentum": 0.9})
        self.assertEqual(list(D.params(name))[:3], ["0.weight", "1.layers.0.self_attn.in_proj_weight",
                                                    "1.layers.0.self_attn.in_proj_bias"])
        self.steps(name, net, opt, tnn.CrossEntropyLoss(), self.token_batches(1))
        self.assertState(name, net, "after 8 steps")
        self.assertPredict(name, net, self.token_batches(9, 1, 3)[0][0], "predict")

    def test_encoder_prenorm_gelu_adam(self):
        layers = char_model(norm_first=True, activation="gelu")
        # the key part of in_proj_bias has a zero gradient in exact arithmetic (softmax does
        # not change when every score of a query moves by q.b_k): Adam normalises whatever
        # rounding leaves there (~1e-9, differently from torch's), eps 1e-5 keeps those
        # updates below the tolerance
        name, net, opt = self.twin(layers, "CrossEntropyLoss", {"type": "Adam", "lr": 0.002,
                                                                 "eps": 1e-5})
        self.steps(name, net, opt, tnn.CrossEntropyLoss(), self.token_batches(2, n=6))
        self.assertState(name, net, "after 6 steps")
        self.assertPredict(name, net, self.token_batches(8, 1, 4)[0][0], "predict")

    def float_batches(self, seed, shape, n=6):
        g = torch.Generator().manual_seed(seed)
        return [(torch.randn(*shape, generator=g), torch.randn(*shape, generator=g))
                for _ in range(n)]

    def test_mha_seq_first_bool_mask_bias_kv(self):
        # [L, N, E] inputs (batch_first false): the request's rows are positions
        mask = [[j > i + 1 for j in range(5)] for i in range(5)]
        layers = [{"type": "Linear", "in_features": 4, "out_features": 8},
                  {"type": "MultiheadAttention", "embed_dim": 8, "num_heads": 2,
                   "add_bias_kv": True, "add_zero_attn": True, "attn_mask": mask},
                  {"type": "Linear", "in_features": 8, "out_features": 4}]
        name, net, opt = self.twin(layers, "MSELoss", {"type": "SGD", "lr": 0.05})
        self.assertIn("1.bias_k", D.params(name))
        self.steps(name, net, opt, tnn.MSELoss(), self.float_batches(3, (5, 3, 4)))
        self.assertState(name, net, "after 6 steps")
        self.assertPredict(name, net, self.float_batches(4, (5, 2, 4), 1)[0][0], "predict")

    def test_mha_batch_first_float_mask_no_bias(self):
        g = torch.Generator().manual_seed(5)
        mask = torch.randn(4, 4, generator=g).tolist()
        layers = [{"type": "MultiheadAttention", "embed_dim": 6, "num_heads": 3, "bias": False,
                   "batch_first": True, "attn_mask": mask}]
        name, net, opt = self.twin(layers, "MSELoss", {"type": "Adam", "lr": 0.01})
        self.steps(name, net, opt, tnn.MSELoss(), self.float_batches(6, (3, 4, 6)))
        self.assertState(name, net, "after 6 steps")

    def test_encoder_layer_alone_prenorm_causal(self):
        layers = [enc_layer(8, 2, norm_first=True, batch_first=True, src_mask="causal"),
                  {"type": "Linear", "in_features": 8, "out_features": 8}]
        name, net, opt = self.twin(layers, "MSELoss", {"type": "SGD", "lr": 0.1})
        self.steps(name, net, opt, tnn.MSELoss(), self.float_batches(7, (4, 5, 8)))
        self.assertState(name, net, "after 6 steps")
        # any sequence length: the causal mask is sized at each forward
        self.assertPredict(name, net, self.float_batches(8, (2, 9, 8), 1)[0][0],
                           "predict of length 9")

    def test_dropout_is_train_mode_only(self):
        # torch's defaults (dropout 0.1, dim_feedforward 2048): predict is eval mode
        layers = [{"type": "TransformerEncoderLayer", "d_model": 8, "nhead": 2},
                  {"type": "Linear", "in_features": 8, "out_features": 2}]
        name = fresh()
        D.create({"name": name, "layers": layers, "loss": "MSELoss",
                  "optimizer": {"type": "SGD", "lr": 0.1}, "seed": 1})
        net = torch_net(layers)
        self.assertEqual(D.model(name)["parameters"],
                         sum(p.numel() for p in net.parameters()))
        load_state(net, D.params(name))
        x = torch.randn(3, 2, 8)
        self.assertPredict(name, net, x, "predict with dropout layers (eval)")
        # a training step runs in training mode: dropout draws, so its loss is not the loss
        # of the eval-mode forward on the same parameters
        y = torch.randn(3, 2, 2)
        got = D.ok("POST", "/v1/models/%s/train" % name,
                   {"inputs": x.tolist(), "targets": y.tolist(), "epochs": 1})["losses"][0]
        self.assertNotAlmostEqual(got, tnn.functional.mse_loss(net(x), y).item(), places=4)


class TestErrorsAndVocabulary(Base):
    def bad(self, layers, status, *parts, loss="MSELoss"):
        r = D.post("/v1/models", {"name": fresh("bad"), "layers": layers, "loss": loss,
                                  "optimizer": {"type": "SGD", "lr": 0.1}})
        self.assertError(r, status, *parts)

    def test_bad_definitions_name_the_field(self):
        self.bad([{"type": "MultiheadAttention", "embed_dim": 6, "num_heads": 4}], 400,
                 "layers[0].num_heads", "must divide embed_dim (6)")
        self.bad([{"type": "MultiheadAttention", "embed_dim": 6}], 400,
                 "layers[0].num_heads", "required")
        self.bad([{"type": "MultiheadAttention", "embed_dim": 6, "num_heads": 2,
                   "dropout": 1.5}], 400, "layers[0].dropout")
        self.bad([{"type": "MultiheadAttention", "embed_dim": 6, "num_heads": 2,
                   "attn_mask": "upper"}], 400, "layers[0].attn_mask", "causal")
        self.bad([{"type": "MultiheadAttention", "embed_dim": 6, "num_heads": 2,
                   "attn_mask": [[0, 1], [0]]}], 400, "layers[0].attn_mask", "row 1")
        self.bad([{"type": "MultiheadAttention", "embed_dim": 6, "num_heads": 2,
                   "attn_mask": [[True, 1]]}], 400, "layers[0].attn_mask", "[0][1]")
        self.bad([{"type": "Linear", "in_features": 3, "out_features": 5},
                  enc_layer(8, 2)], 400, "layers[1].d_model", "5")
        self.bad([enc_layer(8, 2, activation="tanh")], 400, "layers[0].activation", "relu")
        self.bad([enc_layer(8, 2, norm_frist=True)], 400, "layers[0]", "norm_frist")
        self.bad([{"type": "TransformerEncoder", "num_layers": 2}], 400,
                 "layers[0].encoder_layer", "required")
        self.bad([{"type": "TransformerEncoder", "num_layers": 2,
                   "encoder_layer": {"type": "Linear", "in_features": 2, "out_features": 2}}],
                 400, "layers[0].encoder_layer", "TransformerEncoderLayer")
        self.bad([{"type": "TransformerEncoder", "num_layers": 2,
                   "encoder_layer": enc_layer(8, 3)}], 400, "layers[0].encoder_layer.nhead")
        self.bad([{"type": "TransformerEncoder", "num_layers": 0,
                   "encoder_layer": enc_layer(8, 2)}], 400, "layers[0].num_layers")
        self.bad([{"type": "TransformerEncoder", "num_layers": 2, "encoder_layer": enc_layer(8, 2),
                   "norm": {"type": "LayerNorm", "normalized_shape": 7}}], 400,
                 "layers[0].norm")
        self.bad([{"type": "TransformerEncoder", "num_layers": 1,
                   "encoder_layer": enc_layer(8, 2, src_mask="causal")}], 400,
                 "layers[0].encoder_layer", "mask")
        self.bad([{"type": "TransformerEncoder", "num_layers": 2,
                   "encoder_layer": enc_layer(512, 2, dim_feedforward=1 << 20)}], 400,
                 "layers[0]", "parameters")

    def test_runtime_shape_errors_name_the_layer(self):
        name = fresh()
        D.create({"name": name, "loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 0.1},
                  "layers": [{"type": "MultiheadAttention", "embed_dim": 4, "num_heads": 2,
                              "attn_mask": [[0.0] * 3] * 3}]})
        before = D.params(name)
        x = np.zeros((5, 2, 4)).tolist()
        r = D.post("/v1/models/%s/predict" % name, {"inputs": x})
        self.assertError(r, 400, "layers[0] (MultiheadAttention)", "attn_mask")
        r = D.post("/v1/models/%s/train" % name, {"inputs": x, "targets": x})
        self.assertError(r, 400, "layers[0] (MultiheadAttention)")
        self.assertEqual(D.params(name), before)

    def test_types_lists_torch_arguments(self):
        t = {e["type"]: e["fields"] for e in D.ok("GET", "/v1/types")["layers"]}
        self.assertEqual(t["MultiheadAttention"][:9],
                         ["embed_dim", "num_heads", "dropout", "bias", "add_bias_kv",
                          "add_zero_attn", "kdim", "vdim", "batch_first"])
        self.assertEqual(t["TransformerEncoderLayer"][:8],
                         ["d_model", "nhead", "dim_feedforward", "dropout", "activation",
                          "layer_norm_eps", "batch_first", "norm_first"])
        self.assertEqual(t["TransformerEncoder"][:3], ["encoder_layer", "num_layers", "norm"])

    def test_onnx_export(self):
        """(onnxruntime and torch check the file: tests/server/test_onnx_export.py)"""
        name = fresh()
        D.create({"name": name, "layers": char_model(), "loss": "CrossEntropyLoss",
                  "optimizer": {"type": "SGD", "lr": 0.1}})
        r = D.get("/v1/models/%s/export?format=onnx&input_shape=%d" % (name, L))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers["content-type"], "application/onnx")
        # a length the final Linear does not take: 400 naming the layer
        r = D.get("/v1/models/%s/export?format=onnx&input_shape=%d" % (name, L + 1))
        self.assertError(r, 400, "layers[3] (Linear)")

    def test_restart_keeps_the_model(self):
        mask = [[j > i for j in range(3)] for i in range(3)]
        name = fresh()
        D.create({"name": name, "loss": "MSELoss", "optimizer": {"type": "Adam", "lr": 0.1},
                  "seed": 4,
                  "layers": [{"type": "MultiheadAttention", "embed_dim": 4, "num_heads": 2,
                              "batch_first": True, "attn_mask": mask}]})
        x = np.random.default_rng(0).standard_normal((2, 3, 4)).tolist()
        D.ok("POST", "/v1/models/%s/train" % name, {"inputs": x, "targets": x, "epochs": 2})
        want = D.predict(name, x)
        D.restart()
        self.assertEqual(D.predict(name, x), want)


if __name__ == "__main__":
    dm.run_tests()
