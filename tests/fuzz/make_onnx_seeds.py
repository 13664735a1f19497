"""Writes the seed corpus of fuzz_onnx (tests/fuzz/corpus/fuzz_onnx): real ONNX files, run
again when the importer's vocabulary grows:

  /usr/bin/python3 tests/fuzz/make_onnx_seeds.py BUILD/src/server/easytorchd

Seeds are files torch.onnx.export writes (opset 17, dynamic batch, eval mode) for
torch.nn.Sequential models of the vocabulary the importer reads, a few it refuses (an
unsupported op, a residual graph), the primitives and attention subgraphs of
tests/server/test_onnx_import_ops.py, attention with masks of test_onnx_import_mask.py, and
the daemon's own exports of models of every layer
family (tests/server/daemon.py starts a real easytorchd on loopback). Each file is named by
its SHA-1, so running this again adds new files and keeps the old ones.
"""
import base64
import hashlib
import io
import os
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "server"))
import daemon as dm  # noqa: E402
import torch  # noqa: E402

warnings.filterwarnings("ignore")
nn = torch.nn
OUT = os.path.join(HERE, "corpus", "fuzz_onnx")
MAX = 65536  # run_fuzz.py's -max_len


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 3)

    def forward(self, x):
        return x + self.a(x)


def torch_files():
    torch.manual_seed(0)
    cases = [
        (nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2)), torch.randn(2, 3)),
        (nn.Sequential(nn.Linear(4, 6), nn.LeakyReLU(0.2), nn.Linear(6, 6), nn.Sigmoid(),
                       nn.LayerNorm(6), nn.Linear(6, 3), nn.Softmax(dim=1)), torch.randn(2, 4)),
        (nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 2),
                       nn.LogSoftmax(dim=1)), torch.randn(2, 3)),
        (nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                       nn.Conv2d(3, 2, 3, padding=1), nn.BatchNorm2d(2), nn.AvgPool2d(3),
                       nn.Flatten(), nn.Linear(2, 2)), torch.randn(2, 1, 6, 6)),
        (nn.Sequential(nn.Conv1d(2, 3, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool1d(1),
                       nn.Flatten(), nn.Linear(3, 2)), torch.randn(2, 2, 8)),
        (nn.Sequential(nn.Embedding(10, 4), nn.Flatten(), nn.Linear(12, 2)),
         torch.randint(0, 10, (2, 3))),
        (nn.Sequential(nn.Linear(3, 3), nn.ELU()), torch.randn(2, 3)),  # refused: Elu
        (Residual(), torch.randn(2, 3)),  # refused: not a chain
    ]
    for net, x in cases:
        net.eval()
        b = io.BytesIO()
        torch.onnx.export(net, x, b, opset_version=17, input_names=["input"],
                          output_names=["output"],
                          dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                          training=torch.onnx.TrainingMode.EVAL)
        yield b.getvalue()


L = lambda t, **kw: dict(type=t, **kw)  # noqa: E731
DAEMON_MODELS = [
    ([L("Linear", in_features=3, out_features=4), L("GELU"), L("Linear", in_features=4,
                                                               out_features=2)], None),
    ([L("Linear", in_features=4, out_features=6), L("BatchNorm1d", num_features=6),
      L("LayerNorm", normalized_shape=6), L("Unflatten", dim=1, unflattened_size=[2, 3]),
      L("Flatten"), L("Linear", in_features=6, out_features=2), L("LogSoftmax", dim=1)], None),
    ([L("Conv2d", in_channels=1, out_channels=2, kernel_size=3, padding=1),
      L("BatchNorm2d", num_features=2), L("ReLU"), L("MaxPool2d", kernel_size=2),
      L("Flatten"), L("Linear", in_features=8, out_features=2)], "1,4,4"),
    ([L("Conv1d", in_channels=2, out_channels=2, kernel_size=3, padding=1), L("Tanh"),
      L("AvgPool1d", kernel_size=2), L("Flatten"), L("Linear", in_features=4, out_features=1)],
     "2,4"),
    ([L("Embedding", num_embeddings=6, embedding_dim=3), L("Flatten"),
      L("Linear", in_features=6, out_features=2)], "2"),
]


def daemon_files(exe):
    os.environ["EASYTORCHD"] = exe
    d = dm.Daemon()
    d.start()
    try:
        for i, (layers, shape) in enumerate(DAEMON_MODELS):
            name = "s%d" % i
            d.create({"name": name, "layers": layers, "loss": "MSELoss",
                      "optimizer": {"type": "SGD", "lr": 0.1}, "seed": i})
            q = "?format=onnx" + ("&input_shape=" + shape if shape else "")
            r = d.request("GET", "/v1/models/%s/export%s" % (name, q))
            if r.status != 200:
                raise SystemExit("export of %s: %r" % (name, r))
            yield r.body
    finally:
        d.cleanup()


def graph_files():
    """The primitives and attention subgraphs of tests/server/test_onnx_import_ops.py
    (Transpose, Reduce*, Split, Slice, shape chains, MultiheadAttention,
    TransformerEncoderLayer), exported as that test does."""
    import test_onnx_import_ops as ops
    for name, (net, x, bdim, outs) in ops.cases().items():
        if name.startswith("enc-") and "gelu-norm-first" not in name and name != "enc-relu":
            continue  # two encoder layers cover the subgraph; the rest repeat it
        yield base64.b64decode(ops.exported(net, [x], ["x"], outs, bdim))


def mask_files():
    """Attention called with masks (tests/server/test_onnx_import_mask.py): Cast to bool,
    Where, Expand, ConstantOfShape, Equal, Or -- a float, a bool and a causal attn_mask, a
    key_padding_mask, both."""
    import test_onnx_import_mask as mk
    for name, (kind, attn_dtype, bf, encoder) in mk.cases().items():
        if name.endswith("-seq-first") or name.startswith("enc-") and name != "enc-causal-kpm":
            continue  # the batch-first MultiheadAttention cases and one encoder cover them
        torch.manual_seed(0)
        net = mk.Att(kind, bf, encoder)
        g = torch.Generator().manual_seed(3)
        x = torch.randn(mk.L, mk.L, mk.E, generator=g)
        ms = mk.masks(kind, attn_dtype, mk.L, g)
        dyn = {"x": {0: "batch"}, "y": {0: "batch"}}
        dyn.update({nm: {0: "batch"} for _, nm, bd in ms if bd is not None})
        yield mk.tio.exported_bytes(net, [x] + [m[0] for m in ms], ["x"] + [m[1] for m in ms],
                                    ["y"], dyn)


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    os.makedirs(OUT, exist_ok=True)
    n = 0
    for data in (list(torch_files()) + list(graph_files()) + list(mask_files()) +
                 list(daemon_files(sys.argv[1]))):
        if len(data) > MAX:
            raise SystemExit("a seed of %d bytes is over -max_len %d" % (len(data), MAX))
        with open(os.path.join(OUT, hashlib.sha1(data).hexdigest()), "wb") as f:
            f.write(data)
        n += 1
    print("fuzz_onnx: %d seeds in %s" % (n, OUT))


if __name__ == "__main__":
    main()
