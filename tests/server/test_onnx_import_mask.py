#!/usr/bin/python3
"""easytorchd ONNX import of attention called with masks (issue 18): nn.MultiheadAttention
and nn.TransformerEncoderLayer exported by torch.onnx.export (torch 1.13, opset 17) with a
float attn_mask, a bool attn_mask, a causal (bool, upper triangle) mask, a key_padding_mask,
and both, batch_first or not -- the exports' Cast to bool, Where(mask, -inf, zeros),
Reshape/Expand of the padding mask, ConstantOfShape/Equal/Where of shapes, Or -- become
masked_fill / logical_or / expand graph nodes. The masks are inputs of the imported model (a
bool mask takes numbers, nonzero true). Each export is run by onnxruntime (run_ort.mjs) and
must give torch's outputs; the import must predict as torch (and as onnxruntime), and train 20 SGD steps to torch's losses and parameters from
the same weights. The daemon's own export of each import (GET .../export: its mask nodes as
Where / Not / And / Or / Expand) passes onnx.checker, runs in onnxruntime as the daemon
predicts (within 1e-5) and imports again, predicting the same (fuzz_onnx's oracle). A mask the import cannot take (a causal mask built inside forward: a tensor
constant) is a 400 naming the node, and nothing is created.
Usage: test_onnx_import_mask.py PATH/TO/easytorchd"""

import base64
import os
import sys
import unittest
import warnings

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import Daemon, DaemonTestCase  # noqa: E402
import numpy as np  # noqa: E402
import onnx  # noqa: E402
from onnx import checker  # noqa: E402
import torch  # noqa: E402
from torchref import close_report  # noqa: E402
from test_onnx_export import ort_run_bytes  # noqa: E402
import test_onnx_import_ops as tio  # noqa: E402

warnings.filterwarnings("ignore")
torch.set_num_threads(1)
nn = torch.nn
F = nn.functional
L, E = 4, 8


class Att(nn.Module):
    """self-attention with masks as forward arguments: attn (attn_mask), kpm
    (key_padding_mask), or both, then a Linear head"""

    def __init__(self, kind, batch_first, encoder=False):
        super().__init__()
        self.kind = kind
        if encoder:
            self.att = nn.TransformerEncoderLayer(E, 2, 16, dropout=0.0, batch_first=batch_first)
        else:
            self.att = nn.MultiheadAttention(E, 2, batch_first=batch_first)
        self.head = nn.Linear(E, 3)

    def forward(self, x, *m):
        am = m[0] if self.kind in ("attn", "both") else None
        kpm = m[-1] if self.kind in ("kpm", "both") else None
        if isinstance(self.att, nn.TransformerEncoderLayer):
            return self.head(self.att(x, src_mask=am, src_key_padding_mask=kpm))
        return self.head(self.att(x, x, x, attn_mask=am, key_padding_mask=kpm)[0])


def masks(kind, attn_dtype, n, g):
    """the mask arguments for a batch of n: (torch tensors, their names, batch dim of each)"""
    out = []
    if kind in ("attn", "both"):
        if attn_dtype == "float":
            out.append((torch.randn(L, L, generator=g), "am", None))
        elif attn_dtype == "causal":
            out.append((torch.triu(torch.ones(L, L, dtype=torch.bool), 1), "am", None))
        else:
            b = torch.rand(L, L, generator=g) > 0.6
            b[:, 0] = False  # every query may attend somewhere (no all -inf row: NaN)
            out.append((b, "am", None))
    if kind in ("kpm", "both"):
        b = torch.rand(n, L, generator=g) > 0.6
        b[:, 0] = False  # as the attn_mask's: no query left with no key
        out.append((b, "kpm", 0))
    return out


def cases():
    c = {}
    for bf in (True, False):
        sfx = "" if bf else "-seq-first"
        c["mha-float-mask" + sfx] = ("attn", "float", bf, False)
        c["mha-bool-mask" + sfx] = ("attn", "bool", bf, False)
        c["mha-kpm" + sfx] = ("kpm", None, bf, False)
        c["enc-causal-kpm" + sfx] = ("both", "causal", bf, True)
    c["mha-causal"] = ("attn", "causal", True, False)
    c["mha-float-mask-kpm"] = ("both", "float", True, False)
    c["mha-bool-mask-kpm"] = ("both", "bool", False, False)
    c["enc-float-mask"] = ("attn", "float", True, True)
    c["enc-kpm"] = ("kpm", None, False, True)
    return c


def setUpModule():
    DaemonTestCase.daemon = Daemon()
    DaemonTestCase.daemon.start()


def tearDownModule():
    DaemonTestCase.daemon.cleanup()


def feed(t):
    dt = "bool" if t.dtype == torch.bool else "float32"
    return {"dims": list(t.shape), "data": t.reshape(-1).tolist(), "dtype": dt}


class MaskImport(DaemonTestCase):
    match = tio.OpsImport.match

    def check(self, name, kind, attn_dtype, bf, encoder):
        d = self.daemon
        torch.manual_seed(len(name))
        net = Att(kind, bf, encoder)
        with torch.no_grad():  # distinct values, so torch writes every initializer
            for p in net.parameters():
                p.copy_(torch.randn_like(p) * 0.5)
        net.eval()
        g = torch.Generator().manual_seed(3)
        bdim = 0 if bf else 1

        def batch(n):
            x = torch.randn(*((n, L, E) if bf else (L, n, E)), generator=g)
            return x, masks(kind, attn_dtype, n, g)

        # the daemon takes dim 0 of every named input as the batch's rows: an [L, L]
        # attn_mask (no batch) goes with batches of L rows, and so does a sequence-first x
        # (rows: the sequence) with a key_padding_mask (rows: the batch)
        fixed = kind in ("attn", "both") or (kind == "kpm" and not bf)
        x, ms = batch(L)
        names = ["x"] + [m[1] for m in ms]
        dyn = {"x": {bdim: "batch"}, "y": {bdim: "batch"}}
        for _, nm, bd in ms:
            if bd is not None:
                dyn[nm] = {bd: "batch"}
        body = tio.exported_bytes(net, [x] + [m[0] for m in ms], names, ["y"], dyn)

        def inputs(x, ms):  # a bool mask as 0/1 numbers (nonzero true)
            r = {"x": x.tolist()}
            for t, nm, _ in ms:
                r[nm] = t.float().tolist()
            return r

        x2, ms2 = batch(L if fixed else 6)
        with torch.no_grad():
            want = [net(x, *[m[0] for m in ms]), net(x2, *[m[0] for m in ms2])]
        # onnxruntime runs the export as torch does
        got = ort_run_bytes(body, [{"feeds": {"x": feed(xx), **{nm: feed(t) for t, nm, _ in mm}}}
                                   for xx, mm in ((x, ms), (x2, ms2))])
        for res, w in zip(got["results"], want):
            self.assertIsNone(close_report(np.array(res["y"]["data"]).reshape(res["y"]["dims"])
                                           .tolist(), w.tolist()), "%s: onnxruntime" % name)
        spec = {"name": name, "onnx": base64.b64encode(body).decode(),
                "loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 0.05}, "seed": 1}
        r = d.post("/v1/models", spec)
        self.assertEqual(r.status, 201, r.body[:600])
        mapping = self.match(d.params(name), net)
        # the daemon's ONNX export of the import (its mask ops as Where / Not / Or / Expand;
        # the masks float inputs, nonzero true) runs in onnxruntime as the daemon predicts
        dims = ";".join(",".join(str(v) for v in t.shape[1:]) for t in [x] + [m[0] for m in ms])
        r = d.request("GET", "/v1/models/%s/export?format=onnx&input_shape=%s" % (name, dims))
        self.assertEqual(r.status, 200, r.body[:300])
        checker.check_model(onnx.load_from_string(r.body), full_check=True)
        outs = []
        for (xx, mm), w in zip(((x, ms), (x2, ms2)), want):
            out = d.ok("POST", "/v1/models/%s/predict" % name, {"inputs": inputs(xx, mm)})
            self.assertIsNone(close_report(out["outputs"], w.tolist()), "%s: predictions" % name)
            outs.append(np.asarray(out["outputs"], dtype=np.float64))
        got = ort_run_bytes(r.body, [{"feeds": {"x": feed(xx), **{nm: feed(t.float())
                                                                  for t, nm, _ in mm}}}
                                     for xx, mm in ((x, ms), (x2, ms2))])
        for res, o in zip(got["results"], outs):
            ga = np.asarray(res["y"]["data"], dtype=np.float64).reshape(res["y"]["dims"])
            self.assertEqual(ga.shape, o.shape)
            self.assertLessEqual(float(np.max(np.abs(ga - o))), 1e-5, "%s: onnxruntime of the "
                                 "daemon's export vs its predictions" % name)
        # ... and imports again (fuzz_onnx's oracle: the daemon reads what it writes)
        r2 = d.post("/v1/models", dict(spec, name=name + "-re",
                                       onnx=base64.b64encode(r.body).decode()))
        self.assertEqual(r2.status, 201, r2.body[:600])
        for (xx, mm), o in zip(((x, ms), (x2, ms2)), outs):
            out = d.ok("POST", "/v1/models/%s-re/predict" % name, {"inputs": inputs(xx, mm)})
            self.assertIsNone(close_report(out["outputs"], o.tolist()), "%s: re-import" % name)
        d.ok("DELETE", "/v1/models/%s-re" % name)
        y = torch.randn(want[0].shape, generator=g)
        opt = torch.optim.SGD(net.parameters(), lr=0.05)
        net.train()
        losses = []
        for _ in range(20):
            opt.zero_grad()
            lo = F.mse_loss(net(x, *[m[0] for m in ms]), y)
            lo.backward()
            opt.step()
            losses.append(lo.item())
        t = d.ok("POST", "/v1/models/%s/train" % name,
                 {"inputs": inputs(x, ms), "targets": y.tolist(), "epochs": 20})
        self.assertIsNone(close_report(t["losses"], losses), "%s: the 20 losses" % name)
        params = d.params(name)
        for k, p in net.named_parameters():
            dn, tr = mapping[k]
            v = p.detach().t() if tr else p.detach()
            self.assertIsNone(close_report(params[dn], v.tolist()), "%s: %s after 20 steps"
                              % (name, k))
        d.ok("DELETE", "/v1/models/%s" % name)

    def test_masked_attention_imports_predict_and_train_as_torch(self):
        for name, args in cases().items():
            with self.subTest(case=name):
                self.check(name, *args)

    def test_causal_mask_built_in_forward_is_refused(self):
        """generate_square_subsequent_mask inside forward exports as a tensor constant
        (ConstantOfShape(-inf) -> Trilu): a 400 naming the node, nothing created."""
        d = self.daemon

        class Causal(nn.Module):
            def __init__(self):
                super().__init__()
                self.att = nn.MultiheadAttention(E, 2, batch_first=True)

            def forward(self, x):
                m = nn.Transformer.generate_square_subsequent_mask(x.shape[1])
                return self.att(x, x, x, attn_mask=m)[0]

        before = d.ok("GET", "/v1/models")
        body = tio.exported_bytes(Causal(), [torch.randn(3, L, E)], ["x"], ["y"],
                              {"x": {0: "batch"}, "y": {0: "batch"}})
        spec = {"name": "mask-bad", "onnx": base64.b64encode(body).decode(),
                "loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 0.1}}
        msg = self.assertError(d.post("/v1/models", spec), 400)
        self.assertIn("onnx: node \"/Trilu\" (Trilu)", msg)
        self.assertEqual(d.ok("GET", "/v1/models"), before)


if __name__ == "__main__":
    dm.run_tests()
