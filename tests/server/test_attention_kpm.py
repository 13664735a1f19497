#!/usr/bin/python3
"""Key padding masks of attention layers in layer lists (issue 14): MultiheadAttention's
"key_padding_mask" and TransformerEncoderLayer / TransformerEncoder's "src_key_padding_mask" as
{"input_equals": PAD} -- torch's key_padding_mask = (tokens == PAD) made from the model's token
input at every forward (batch_first or not) -- against torch 1.13 over HTTP: the losses of every
training step, the parameters after them and predictions in eval mode (the regular path, as
torch takes it with gradients enabled).  Misplaced masks are 400s naming the layer.
Usage: test_attention_kpm.py PATH/TO/easytorchd"""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import DaemonTestCase  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
RTOL, ATOL = 1e-4, 1e-5
PAD = 0


D = None  # the module's daemon, made and started by setUpModule
setUpModule, tearDownModule = dm.module_fixture(globals())


def tokens(g, a, b):
    """[a, b] tokens in 1..19 with PAD tail padding along dim 1 (batch_first rows) but never a
    fully padded sequence (torch gives NaN there)."""
    t = torch.randint(1, 20, (a, b), generator=g)
    for i in range(a):
        keep = int(torch.randint(1, b + 1, (1,), generator=g))
        t[i, keep:] = PAD
    return t


def torch_layer(spec):
    kw = {k: v for k, v in spec.items()
          if k not in ("type", "key_padding_mask", "src_key_padding_mask", "encoder_layer")}
    if spec["type"] == "TransformerEncoder":
        return torch.nn.TransformerEncoder(torch_layer(spec["encoder_layer"]), **kw)
    return getattr(torch.nn, spec["type"])(**kw)


class Twin(torch.nn.Sequential):
    """The layer list in torch, each attention layer given (tokens == PAD) as its mask."""

    def __init__(self, layers):
        super().__init__(*[torch_layer(l) for l in layers])
        self.specs = layers

    def forward(self, x):
        tok = x
        for spec, mod in zip(self.specs, self):
            if spec["type"] == "MultiheadAttention":
                m = tok == PAD if spec.get("batch_first") else (tok == PAD).t()
                x = mod(x, x, x, key_padding_mask=m, need_weights=False)[0]
            elif spec["type"] in ("TransformerEncoderLayer", "TransformerEncoder"):
                bf = (spec.get("batch_first") if spec["type"] == "TransformerEncoderLayer"
                      else spec["encoder_layer"].get("batch_first"))
                x = mod(x, src_key_padding_mask=tok == PAD if bf else (tok == PAD).t())
            else:
                x = mod(x)
        return x


def close(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return a.shape == b.shape and np.allclose(a, b, rtol=RTOL, atol=ATOL)


EMB = {"type": "Embedding", "num_embeddings": 20, "embedding_dim": 8, "padding_idx": PAD}
KPM = {"input_equals": PAD}


class TestKeyPaddingMask(DaemonTestCase):
    def run_case(self, name, layers, make_x, make_y, steps=5):
        D.create({"name": name, "layers": layers, "loss": "MSELoss",
                  "optimizer": {"type": "SGD", "lr": 0.05}, "seed": 4})
        net = Twin(layers)
        sd = net.state_dict()
        got = D.params(name)
        self.assertEqual(list(got), list(sd), "state_dict names")
        net.load_state_dict({k: torch.tensor(v, dtype=sd[k].dtype).reshape(sd[k].shape)
                             for k, v in got.items()})
        opt = torch.optim.SGD(net.parameters(), lr=0.05)
        g = torch.Generator().manual_seed(len(name))
        for k in range(steps):
            x, y = make_x(g), make_y(g)
            loss = D.ok("POST", "/v1/models/%s/train" % name,
                        {"inputs": x.tolist(), "targets": y.tolist(), "epochs": 1})["losses"][0]
            net.train()
            opt.zero_grad()
            want = torch.nn.functional.mse_loss(net(x), y)
            want.backward()
            opt.step()
            self.assertTrue(close(loss, want.item()), "step %d loss %r vs torch %r"
                            % (k + 1, loss, want.item()))
        for k, v in net.state_dict().items():
            self.assertTrue(close(D.params(name)[k], v.detach().numpy()), "parameter " + k)
        net.eval()
        x = make_x(g)
        out = D.predict(name, x.tolist())
        self.assertTrue(close(out, net(x).detach().numpy()), "predict")
        return name

    def test_encoder_layer_batch_first(self):
        enc = {"type": "TransformerEncoderLayer", "d_model": 8, "nhead": 2, "dim_feedforward": 16,
               "dropout": 0.0, "batch_first": True, "src_key_padding_mask": KPM}
        layers = [EMB, enc, {"type": "Flatten", "start_dim": 1},
                  {"type": "Linear", "in_features": 5 * 8, "out_features": 1}]
        self.run_case("kpm1", layers, lambda g: tokens(g, 6, 5), lambda g: torch.randn(6, 1, generator=g))
        # without the mask torch's answer differs: the mask is really applied
        x = tokens(torch.Generator().manual_seed(9), 4, 5)
        net = Twin(layers)
        sd = net.state_dict()
        net.load_state_dict({k: torch.tensor(v, dtype=sd[k].dtype).reshape(sd[k].shape)
                             for k, v in D.params("kpm1").items()})
        net.eval()
        plain = net[3](net[2](net[1](net[0](x)))).detach().numpy()
        self.assertFalse(close(D.predict("kpm1", x.tolist()), plain), "the mask changed nothing")

    def test_encoder_seq_first(self):
        layer = {"type": "TransformerEncoderLayer", "d_model": 8, "nhead": 2,
                 "dim_feedforward": 16, "dropout": 0.0}
        enc = {"type": "TransformerEncoder", "encoder_layer": layer, "num_layers": 2,
               "src_key_padding_mask": KPM}
        # rows are positions: tokens [seq 5, batch 3], padding along the sequence
        layers = [EMB, enc, {"type": "Flatten", "start_dim": 1},
                  {"type": "Linear", "in_features": 3 * 8, "out_features": 1}]
        self.run_case("kpm2", layers, lambda g: tokens(g, 3, 5).t().contiguous(),
                      lambda g: torch.randn(5, 1, generator=g))

    def test_multihead_attention(self):
        mha = {"type": "MultiheadAttention", "embed_dim": 8, "num_heads": 2, "batch_first": True,
               "key_padding_mask": KPM}
        layers = [EMB, mha, {"type": "Flatten", "start_dim": 1},
                  {"type": "Linear", "in_features": 4 * 8, "out_features": 1}]
        self.run_case("kpm3", layers, lambda g: tokens(g, 5, 4), lambda g: torch.randn(5, 1, generator=g))
        r = D.post("/v1/models/kpm3/predict", {"inputs": [1, 2, 3, 4]})
        self.assertError(r, 400, "layers[1] (MultiheadAttention)", "token inputs")
        # the mask exports since 9e4ffca (onnxruntime runs it as the daemon predicts in
        # test_onnx_export's mha_kpm cases): a valid ONNX model here
        r = D.get("/v1/models/kpm3/export?format=onnx&input_shape=4")
        self.assertEqual(r.status, 200, r.body[:300])
        import onnx  # noqa: E402 (python3-onnx; only this check needs it)
        onnx.checker.check_model(onnx.load_from_string(r.body), full_check=True)

    def test_bad_specs(self):
        enc = {"type": "TransformerEncoderLayer", "d_model": 8, "nhead": 2, "dropout": 0.0,
               "batch_first": True, "src_key_padding_mask": KPM}
        base = {"loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 0.1}}
        r = D.post("/v1/models", dict(base, name="kb1", layers=[enc]))
        self.assertError(r, 400, "layers[0] (TransformerEncoderLayer)", "Embedding")
        r = D.post("/v1/models", dict(base, name="kb2", layers=[
            {"type": "Linear", "in_features": 8, "out_features": 8}, enc]))
        self.assertError(r, 400, "layers[1] (TransformerEncoderLayer)", "needs token inputs")
        r = D.post("/v1/models", dict(base, name="kb3", layers=[
            EMB, dict(enc, src_key_padding_mask={"input": 0})]))
        self.assertError(r, 400, "layers[1].src_key_padding_mask")
        r = D.post("/v1/models", dict(base, name="kb4", layers=[
            EMB, dict(enc, src_key_padding_mask=True)]))
        self.assertError(r, 400, "src_key_padding_mask", "input_equals")
        r = D.post("/v1/models", dict(base, name="kb5", layers=[EMB, {
            "type": "TransformerEncoder", "num_layers": 1, "encoder_layer": enc}]))
        self.assertError(r, 400, "encoder_layer", "src_key_padding_mask")
        r = D.post("/v1/models", dict(base, name="kb6", inputs=["x"], nodes=[
            {"name": "e", "module": EMB, "args": ["x"]},
            {"name": "t", "module": enc, "args": ["e"]}], outputs=["t"]))
        self.assertError(r, 400, "nodes[1] (t)", "layer lists")
        for n in ("kb1", "kb2", "kb3", "kb4", "kb5", "kb6"):
            self.assertEqual(D.get("/v1/models/" + n).status, 404)


if __name__ == "__main__":
    dm.run_tests()
