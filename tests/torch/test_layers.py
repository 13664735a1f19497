#!/usr/bin/python3
"""Differential test of easytorch's layer ops, int64 tensors and layer modules
against PyTorch 1.13.

Usage: /usr/bin/python3 test_layers.py PATH/TO/layers_runner [-k SUBSTRING]

Functional cases ("fn"): batch_norm (training with batch statistics and the
in-place running update, eval with running statistics, affine or not),
layer_norm (1-3 normalised dims), group_norm, embedding (padding_idx,
max_norm, scale_grad_by_freq, any index shape), embedding_bag (sum / mean /
max, offsets, include_last_offset, per_sample_weights, padding_idx), the
class losses and index_select/gather with int64 indices, and chains of views
of int64 tensors (values beyond 2^24, printed like str()).  Each over a grid
of odd sizes, batch 1 and non-contiguous inputs; forward values, every input
and parameter gradient and every in-place update are compared with PyTorch
float32 at rtol 1e-4 / atol 1e-5 (where PyTorch float32 itself disagrees
with PyTorch float64 and easytorch matches float64, float64 is the reference
and a NOTE is printed).  Error cases must fail in both, with the documented
status and a message naming the problem.

Module cases ("module"): modules built from a spec, loaded with a state
dict, run for several train/eval steps (BatchNorm running statistics over 20
training steps, then eval outputs); per step outputs, input and parameter
gradients are compared, and the final state_dict (written by easytorch as
safetensors, int64 num_batches_tracked included) is compared key by key,
dtype included, with torch's state_dict().

Prints case counts, the largest errors and "N passed, M failed"; exits 1 on
any failure.
"""
import os
import struct
import sys
import tempfile
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import case_runner

RTOL, ATOL = 1e-4, 1e-5
torch.set_num_threads(1)

# et_status values (include/easytorch/error.h)
SHAPE, INDEX, ARG = 1, 2, 3

CASES = []
TMPDIR = tempfile.mkdtemp(prefix="et_layers_")


def rng_for(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


def T(arr, rg=False, t=False, dtype=None):
    """Tensor spec.  t: ship the last two dims transposed; the runner (and the
    torch side) transposes back, so the op sees a non-contiguous view."""
    if dtype == "int64":
        arr = np.asarray(arr, dtype=np.int64)
        return {"shape": list(arr.shape), "data": [int(v) for v in arr.ravel()], "dtype": "int64"}
    arr = np.asarray(arr, dtype=np.float32)
    store = np.ascontiguousarray(np.swapaxes(arr, -1, -2)) if t else arr
    spec = {"shape": list(store.shape), "data": [float(v) for v in store.ravel()]}
    if rg:
        spec["requires_grad"] = True
    if t:
        spec["t"] = True
    return spec


def IL(arr):
    return T(arr, dtype="int64")


def add(cid, op, tensors, args=None, grad=True, report=(), error=None):
    assert all(c["id"] != cid for c in CASES), cid
    CASES.append({"id": cid, "kind": "fn", "op": op, "tensors": tensors, "args": args or {},
                  "grad": grad, "report": list(report), "error": error})


# ----------------------------------------------------------------------------
# torch side
# ----------------------------------------------------------------------------

def torch_tensor(spec, dtype):
    """(leaf, view) for a spec, float tensors in `dtype`."""
    if spec.get("dtype") == "int64":
        t = torch.tensor(spec["data"], dtype=torch.int64).reshape(spec["shape"])
        return t, t
    t = torch.tensor(np.asarray(spec["data"], dtype=np.float64).reshape(spec["shape"]), dtype=dtype)
    if spec.get("requires_grad"):
        t.requires_grad_(True)
    return t, (t.transpose(-1, -2) if spec.get("t") else t)


def bag_by_freq(inp, w, offs, mode, last):
    """embedding_bag(scale_grad_by_freq=True) built from F.embedding, whose frequency
    scaling is right: PyTorch's CPU embedding_bag divides by the count of the wrong
    index (pytorch/pytorch#190063, in 1.13 as in 2.x)."""
    e = F.embedding(inp.reshape(-1), w, scale_grad_by_freq=True)
    n = e.shape[0]
    if inp.dim() == 2:
        L = inp.shape[1]
        bounds = [(b * L, (b + 1) * L) for b in range(inp.shape[0])]
    else:
        o = offs.tolist()
        nb = len(o) - 1 if last else len(o)
        bounds = [(o[b], o[b + 1] if b + 1 < len(o) else n) for b in range(nb)]
    rows = []
    for s, t in bounds:
        seg = e[s:t]
        if t <= s:
            rows.append(torch.zeros(w.shape[1], dtype=w.dtype))
        else:
            rows.append(seg.sum(0) if mode == "sum" else seg.mean(0))
    return torch.stack(rows)


INDEX_ARGS = {"embedding": ("input",), "embedding_bag": ("input", "offsets"),
              "index_select": ("index",), "gather": ("index",)}


def torch_fn(op, ts, a):
    def g(n):
        t = ts.get(n)
        # easytorch also takes float32 holding integers as indices; torch wants long
        if t is not None and n in INDEX_ARGS.get(op, ()) and t.is_floating_point() \
                and not a.get("_torch_raw"):
            t = t.long()
        return t
    if op == "batch_norm":
        return F.batch_norm(g("x"), g("running_mean"), g("running_var"), g("weight"), g("bias"),
                            training=a.get("training", True), momentum=a.get("momentum", 0.1),
                            eps=a.get("eps", 1e-5))
    if op == "layer_norm":
        return F.layer_norm(g("x"), tuple(a["normalized_shape"]), g("weight"), g("bias"),
                            eps=a.get("eps", 1e-5))
    if op == "group_norm":
        return F.group_norm(g("x"), a["num_groups"], g("weight"), g("bias"), eps=a.get("eps", 1e-5))
    if op == "embedding":
        return F.embedding(g("input"), g("weight"), padding_idx=a.get("padding_idx"),
                           max_norm=a.get("max_norm"), norm_type=a.get("norm_type", 2.0),
                           scale_grad_by_freq=a.get("scale_grad_by_freq", False))
    if op == "embedding_bag" and a.get("scale_grad_by_freq") and a.get("mode", "mean") != "max":
        return bag_by_freq(g("input"), g("weight"), g("offsets"), a.get("mode", "mean"),
                           a.get("include_last_offset", False))
    if op == "embedding_bag":
        return F.embedding_bag(g("input"), g("weight"), g("offsets"), max_norm=a.get("max_norm"),
                               norm_type=a.get("norm_type", 2.0),
                               scale_grad_by_freq=a.get("scale_grad_by_freq", False),
                               mode=a.get("mode", "mean"), per_sample_weights=g("per_sample_weights"),
                               include_last_offset=a.get("include_last_offset", False),
                               padding_idx=a.get("padding_idx"))
    if op in ("cross_entropy", "nll_loss"):
        kw = dict(weight=g("weight"), ignore_index=a.get("ignore_index", -100),
                  reduction=a.get("reduction", "mean"))
        if op == "cross_entropy":
            return F.cross_entropy(g("input"), g("target"), label_smoothing=a.get("label_smoothing", 0.0), **kw)
        return F.nll_loss(g("input"), g("target"), **kw)
    if op == "index_select":
        return torch.index_select(g("x"), a.get("dim", 0), g("index"))
    if op == "gather":
        return torch.gather(g("x"), a.get("dim", 0), g("index"))
    if op == "views":
        x = g("x")
        for st in a["chain"]:
            name, rest = st[0], st[1:]
            if name == "transpose":
                x = x.transpose(rest[0], rest[1])
            elif name == "slice":
                d, s, e, step = rest
                x = x[(slice(None),) * d + (slice(s, e, step),)]
            elif name == "unsqueeze":
                x = x.unsqueeze(rest[0])
            elif name == "flatten":
                x = x.flatten(rest[0], rest[1])
            elif name == "select":
                x = x.select(rest[0], rest[1])
            elif name == "contiguous":
                x = x.contiguous()
            elif name == "cat":
                x = torch.cat([x, x], rest[0])
            elif name == "to_float":
                x = x.float()
            elif name == "to_int64":
                x = x.long()
            elif name == "reshape":
                x = x.reshape(rest[0])
        return x
    raise ValueError(op)


def run_torch_fn(case, dtype, grad_out):
    leaves, views = {}, {}
    for n, spec in case["tensors"].items():
        leaves[n], views[n] = torch_tensor(spec, dtype)
    out = torch_fn(case["op"], views, case["args"])
    if grad_out is not None:
        out.backward(torch.tensor(grad_out, dtype=dtype).reshape(out.shape))
    grads = {n: (None if t.grad is None else t.grad.detach().double().numpy())
             for n, t in leaves.items() if t.requires_grad}
    report = {n: views[n].detach() for n in case["report"]}
    return out.detach(), grads, report


# ----------------------------------------------------------------------------
# comparison
# ----------------------------------------------------------------------------

class Stats:
    def __init__(self):
        self.max_abs = self.max_rel = 0.0
        self.where_abs = self.where_rel = ""
        self.values = 0

    def update(self, where, ours, ref):
        both = np.isfinite(ours) & np.isfinite(ref)
        if not both.any():
            return
        d = np.abs(ours[both] - ref[both])
        self.values += int(both.sum())
        if d.max() > self.max_abs:
            self.max_abs, self.where_abs = float(d.max()), where
        big = np.abs(ref[both]) >= 1e-3
        if big.any():
            r = float((d[big] / np.abs(ref[both][big])).max())
            if r > self.max_rel:
                self.max_rel, self.where_rel = r, where


STATS = Stats()
NOTES = []


def arr_of(spec):
    if spec.get("dtype") == "int64":
        return np.asarray(spec["data"], dtype=np.int64).reshape(spec["shape"])
    return np.asarray(spec["data"], dtype=np.float64).astype(np.float32).astype(np.float64).reshape(
        spec["shape"])


def close(a, b):
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=RTOL, atol=ATOL, equal_nan=True))


def describe(a, b):
    if a.shape != b.shape:
        return f"shape {list(a.shape)} vs expected {list(b.shape)}"
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    d = np.nan_to_num(d, nan=np.inf)
    k = int(np.argmax(d))
    return (f"max |diff| {d.max():.3g} at flat index {k}: got {a.ravel()[k]!r}, expected "
            f"{b.ravel()[k]!r}")


def compare(where, ours_spec, ref, ref64=None, dtype_check=True):
    """ours_spec: runner tensor; ref: torch tensor or ndarray.  Returns a failure or None."""
    ref_t = ref if isinstance(ref, torch.Tensor) else torch.as_tensor(ref)
    if ours_spec is None:
        return f"{where}: missing"
    want_int = ref_t.dtype == torch.int64
    got_int = ours_spec.get("dtype") == "int64"
    if dtype_check and want_int != got_int:
        return f"{where}: dtype {'int64' if got_int else 'float32'}, PyTorch {ref_t.dtype}"
    ours = arr_of(ours_spec)
    if want_int:
        r = ref_t.numpy()
        if ours.shape != r.shape or not np.array_equal(ours, r):
            return f"{where}: {describe(ours, r)}"
        return None
    r = ref_t.double().numpy()
    if close(ours, r):
        if ours.size:
            STATS.update(where, ours, r)
        return None
    if ref64 is not None:
        r64 = ref64() if callable(ref64) else ref64
        if r64 is not None:
            r64 = r64.double().numpy() if isinstance(r64, torch.Tensor) else r64
            if close(ours, r64) and not close(r, r64):
                NOTES.append(f"{where}: PyTorch float32 disagrees with float64 ({describe(r, r64)}); "
                             f"easytorch matches float64")
                STATS.update(where, ours, r64)
                return None
    return f"{where}: {describe(ours, r)}"


def check_fn(case, res):
    fails = []
    if case.get("error"):
        want = case["error"]
        try:
            run_torch_fn(case, torch.float32, None)
            fails.append("PyTorch did not raise (the test case is wrong)")
        except Exception:  # noqa: BLE001 - any torch error is the expected kind
            pass
        if "error" not in res:
            return fails + ["easytorch did not fail"]
        if res["code"] not in want["codes"]:
            fails.append(f"status {res['code']}, expected {want['codes']}: {res['error']}")
        for s in want["names"]:
            if s not in res["error"]:
                fails.append(f"message {res['error']!r} does not name {s!r}")
        return fails
    if "error" in res:
        return [f"easytorch failed at {res['at']}: {res['error']} (status {res['code']})"]
    go = case.get("_up")
    out32, g32, rep32 = run_torch_fn(case, torch.float32, go)
    cache = {}

    def r64(kind, name=None):
        def f():
            if not cache:
                cache["v"] = run_torch_fn(case, torch.float64, go)
            o, g, r = cache["v"]
            return o if kind == "out" else (g.get(name) if kind == "grad" else r.get(name))
        return f

    cid = case["id"]
    f = compare(f"{cid}: out", res["out"], out32, r64("out"))
    if f:
        fails.append(f)
    if case.get("repr"):
        want = str(out32)
        if res["repr"] != want:
            fails.append(f"et_to_string = {res['repr']!r}, PyTorch str() = {want!r}")
    for name, g in g32.items():
        o = res["grads"].get(name, "absent")
        if o == "absent":
            fails.append(f"grad {name}: not reported")
        elif g is None and o is None:
            continue
        elif g is None or o is None:
            fails.append(f"grad {name}: {'unexpected' if g is None else 'missing'}")
        else:
            f = compare(f"{cid}: grad {name}", o, g, r64("grad", name), dtype_check=False)
            if f:
                fails.append(f)
    for name, want in rep32.items():
        f = compare(f"{cid}: {name} after the op", res["report"].get(name), want,
                    r64("report", name))
        if f:
            fails.append(f)
    return fails


# ----------------------------------------------------------------------------
# cases: normalisation
# ----------------------------------------------------------------------------

def N(r, shape, scale=1.0, shift=0.0):
    return np.asarray(r.standard_normal(shape) * scale + shift, dtype=np.float32)


def bn_cases():
    shapes = [(5, 3), (2, 4), (1, 4, 3), (3, 2, 5), (2, 3, 4, 5), (1, 3, 2, 2), (4, 1, 3), (7, 6, 1)]
    k = 0
    for shp in shapes:
        C = shp[1]
        for training in (True, False):
            for affine in (True, False):
                for stats in ((True, False) if training else (True,)):
                    for mom, eps in ((0.1, 1e-5), (0.7, 1e-3), (1.0, 1e-5)):
                        if (mom, eps) != (0.1, 1e-5) and (not stats or shp not in shapes[:3]):
                            continue
                        k += 1
                        cid = f"batch_norm/{list(shp)}/train={training}/affine={affine}/stats={stats}/m={mom}/eps={eps}"
                        r = rng_for(cid)
                        nc = len(shp) >= 2 and shp[-1] > 1 and k % 2 == 0
                        ts = {"x": T(N(r, shp, 2.0, 0.5), rg=True, t=nc)}
                        if affine:
                            ts["weight"] = T(N(r, (C,), 0.5, 1.0), rg=True)
                            ts["bias"] = T(N(r, (C,)), rg=True)
                        report = []
                        if stats:
                            ts["running_mean"] = T(N(r, (C,)))
                            ts["running_var"] = T(r.uniform(0.5, 2.0, (C,)))
                            report = ["running_mean", "running_var"] if training else []
                        add(cid + ("/noncontig" if nc else ""), "batch_norm", ts,
                            {"training": training, "momentum": mom, "eps": eps}, report=report)
    # weight only / bias only
    r = rng_for("bn/partial")
    add("batch_norm/weight_only", "batch_norm", {"x": T(N(r, (4, 3)), rg=True),
                                                 "weight": T(N(r, (3,)), rg=True)})
    add("batch_norm/bias_only_eval", "batch_norm", {
        "x": T(N(r, (4, 3, 2)), rg=True), "bias": T(N(r, (3,)), rg=True),
        "running_mean": T(N(r, (3,))), "running_var": T(r.uniform(0.5, 2, 3))}, {"training": False})
    add("batch_norm/large_mean", "batch_norm", {"x": T(N(r, (16, 3, 8), 1.0, 100.0), rg=True),
                                                "weight": T(N(r, (3,)), rg=True),
                                                "bias": T(N(r, (3,)), rg=True)})
    # errors
    add("batch_norm/err/one_value_per_channel", "batch_norm", {"x": T(N(r, (1, 3)))},
        error={"codes": [ARG], "names": ["more than 1 value per channel", "[1,3]"]})
    add("batch_norm/err/eval_without_stats", "batch_norm", {"x": T(N(r, (2, 3)))},
        {"training": False}, error={"codes": [ARG], "names": ["running_mean"]})
    add("batch_norm/err/weight_shape", "batch_norm", {"x": T(N(r, (2, 3))), "weight": T(N(r, (4,)))},
        error={"codes": [SHAPE], "names": ["weight", "[4]", "[3]"]})
    add("batch_norm/err/int64_input", "batch_norm", {"x": IL([[1, 2], [3, 4]])},
        error={"codes": [ARG], "names": ["int64"]})
    add("batch_norm/err/1d_input", "batch_norm", {"x": T(N(r, (3,)))},
        error={"codes": [SHAPE], "names": ["[3]"]})


def ln_cases():
    grid = [((4, 5), (5,)), ((3, 4, 5), (4, 5)), ((2, 3, 4, 5), (3, 4, 5)), ((1, 7), (7,)), ((6,), (6,)),
            ((2, 3, 1), (1,)), ((5, 3, 2), (2,))]
    for shp, ns in grid:
        for affine in (True, False):
            for eps in (1e-5, 1e-2):
                for nc in ((False, True) if len(shp) >= 2 and shp[-1] > 1 and shp[-2] > 1 else (False,)):
                    cid = f"layer_norm/{list(shp)}/ns={list(ns)}/affine={affine}/eps={eps}" + \
                        ("/noncontig" if nc else "")
                    r = rng_for(cid)
                    ts = {"x": T(N(r, shp, 1.5, 0.3), rg=True, t=nc)}
                    if affine:
                        ts["weight"] = T(N(r, ns, 0.5, 1.0), rg=True)
                        ts["bias"] = T(N(r, ns), rg=True)
                    add(cid, "layer_norm", ts, {"normalized_shape": list(ns), "eps": eps})
    r = rng_for("ln/err")
    add("layer_norm/err/shape", "layer_norm", {"x": T(N(r, (3, 4)))}, {"normalized_shape": [3]},
        error={"codes": [SHAPE], "names": ["[3,4]", "[3]"]})
    add("layer_norm/err/weight", "layer_norm", {"x": T(N(r, (3, 4))), "weight": T(N(r, (3,)))},
        {"normalized_shape": [4]}, error={"codes": [SHAPE], "names": ["weight"]})


def gn_cases():
    grid = [((4, 6), (1, 2, 3, 6)), ((2, 6, 5), (2, 3)), ((1, 4, 3, 3), (2, 4)), ((3, 6, 2, 2), (3,)),
            ((2, 3, 7), (1, 3))]
    for shp, groups in grid:
        for G in groups:
            for affine in (True, False):
                nc = len(shp) >= 3 and affine
                cid = f"group_norm/{list(shp)}/G={G}/affine={affine}" + ("/noncontig" if nc else "")
                r = rng_for(cid)
                ts = {"x": T(N(r, shp, 1.2, -0.4), rg=True, t=nc)}
                if affine:
                    ts["weight"] = T(N(r, (shp[1],), 0.5, 1.0), rg=True)
                    ts["bias"] = T(N(r, (shp[1],)), rg=True)
                add(cid, "group_norm", ts, {"num_groups": G, "eps": 1e-5})
    r = rng_for("gn/err")
    add("group_norm/err/divisible", "group_norm", {"x": T(N(r, (4, 3, 1)))}, {"num_groups": 2},
        error={"codes": [SHAPE], "names": ["divisible", "[4,3,1]"]})


# ----------------------------------------------------------------------------
# cases: embeddings
# ----------------------------------------------------------------------------

def emb_cases():
    grid = [((7, 3), (4,)), ((11, 5), (2, 3)), ((5, 4), (2, 2, 2)), ((6, 2), ()), ((9, 1), (3, 1)),
            ((4, 6), (10,))]
    for (V, D), ishape in grid:
        for pad in (None, 0, 3, -1):
            for extra in ("", "freq", "max_norm2", "max_norm1", "float_idx", "noncontig_w"):
                if pad not in (None, -1) and extra not in ("", "freq"):
                    continue
                cid = f"embedding/V={V},D={D}/idx{list(ishape)}/pad={pad}/{extra or 'plain'}"
                r = rng_for(cid)
                idx = r.integers(0, V, ishape)
                if pad is not None and np.size(idx) > 1:
                    flat = idx.reshape(-1)
                    flat[0] = pad % V     # make sure the padding row is looked up
                w = N(r, (V, D), 1.0)
                args = {}
                if pad is not None:
                    args["padding_idx"] = pad
                if extra == "freq":
                    args["scale_grad_by_freq"] = True
                if extra.startswith("max_norm"):
                    args["max_norm"] = 0.8
                    args["norm_type"] = 2.0 if extra == "max_norm2" else 1.0
                ts = {"input": T(idx) if extra == "float_idx" else IL(idx),
                      "weight": T(w, rg=True, t=extra == "noncontig_w" and D > 1)}
                add(cid, "embedding", ts, args,
                    report=["weight"] if extra.startswith("max_norm") else ())
    r = rng_for("emb/err")
    w = T(N(r, (5, 3)))
    add("embedding/err/out_of_range", "embedding", {"input": IL([1, 5]), "weight": w},
        error={"codes": [INDEX], "names": ["index 5 is out of range", "size 5"]})
    add("embedding/err/negative", "embedding", {"input": IL([[0, -1]]), "weight": w},
        error={"codes": [INDEX], "names": ["-1"]})
    add("embedding/err/float_not_integer", "embedding", {"input": T([0.5, 1]), "weight": w},
        {"_torch_raw": True},
        error={"codes": [INDEX], "names": ["0.5", "not an integer"]})
    add("embedding/err/weight_1d", "embedding", {"input": IL([0]), "weight": T(N(r, (5,)))},
        error={"codes": [SHAPE], "names": ["2-D"]})
    add("embedding/err/padding_idx", "embedding", {"input": IL([0]), "weight": w}, {"padding_idx": 5},
        error={"codes": [INDEX], "names": ["padding_idx 5"]})


def bag_cases():
    V, D = 10, 3
    # Not here: include_last_offset with a last offset short of the input's length.
    # PyTorch 1.13 gets it wrong ("mean" divides the last bag by len - start, "max",
    # padding_idx and strided weights write out of bounds: heap corruption), so
    # tests/core/check_layers.c checks easytorch's [start, last offset) bags by hand.
    grid = [
        ("1d", np.array([1, 2, 4, 5, 4, 3, 2, 9]), [0, 2, 2, 5], False),
        ("1d_last", np.array([1, 2, 4, 5, 4, 3, 2, 9]), [0, 3, 6, 8], True),
        ("1d_single", np.array([7, 7, 0]), [0], False),
        ("1d_trailing_empty", np.array([3, 1, 1]), [0, 3], False),
        ("2d", np.array([[1, 2, 3], [4, 4, 0], [9, 8, 7], [0, 0, 5]]), None, False),
        ("2d_batch1", np.array([[6, 2, 6, 1, 0]]), None, False),
    ]
    for name, idx, offs, last in grid:
        for mode in ("sum", "mean", "max"):
            for extra in ("", "psw", "pad", "max_norm", "freq", "noncontig_w"):
                if extra == "psw" and mode != "sum":
                    continue
                cid = f"embedding_bag/{name}/{mode}/{extra or 'plain'}"
                r = rng_for(cid)
                ts = {"input": IL(idx), "weight": T(N(r, (V, D)), rg=True, t=extra == "noncontig_w")}
                if offs is not None:
                    ts["offsets"] = IL(offs)
                args = {"mode": mode, "include_last_offset": last}
                if extra == "psw":
                    ts["per_sample_weights"] = T(N(r, idx.shape), rg=True)
                if extra == "pad":
                    args["padding_idx"] = int(idx.reshape(-1)[0])
                if extra == "max_norm":
                    args["max_norm"] = 1.0
                if extra == "freq":
                    args["scale_grad_by_freq"] = True
                err = None
                if extra == "freq" and mode == "max":
                    err = {"codes": [ARG], "names": ["max mode", "frequency"]}
                add(cid, "embedding_bag", ts, args, report=["weight"] if extra == "max_norm" else (),
                    error=err)
    r = rng_for("bag/err")
    w = T(N(r, (5, 2)))
    i = IL([0, 1, 2, 3])
    add("embedding_bag/err/offset0", "embedding_bag", {"input": i, "weight": w, "offsets": IL([1, 2])},
        {"mode": "sum"}, error={"codes": [ARG], "names": ["offsets[0]"]})
    add("embedding_bag/err/decreasing", "embedding_bag", {"input": i, "weight": w,
                                                          "offsets": IL([0, 3, 2])},
        {"mode": "sum"}, error={"codes": [ARG], "names": ["non-decreasing"]})
    add("embedding_bag/err/offset_beyond", "embedding_bag", {"input": i, "weight": w,
                                                             "offsets": IL([0, 7])},
        {"mode": "sum"}, error={"codes": [INDEX], "names": ["7"]})
    add("embedding_bag/err/psw_mean", "embedding_bag", {"input": i, "weight": w, "offsets": IL([0]),
                                                        "per_sample_weights": T(np.ones(4))},
        {"mode": "mean"}, error={"codes": [ARG], "names": ["per_sample_weights", "sum"]})
    add("embedding_bag/err/2d_with_offsets", "embedding_bag", {"input": IL([[0, 1]]), "weight": w,
                                                               "offsets": IL([0])},
        {"mode": "sum"}, error={"codes": [ARG], "names": ["offsets"]})
    add("embedding_bag/err/1d_without_offsets", "embedding_bag", {"input": i, "weight": w},
        {"mode": "sum"}, error={"codes": [ARG], "names": ["offsets"]})
    add("embedding_bag/err/index", "embedding_bag", {"input": IL([[0, 5]]), "weight": w},
        {"mode": "max"}, error={"codes": [INDEX], "names": ["5"]})


# ----------------------------------------------------------------------------
# cases: int64 tensors in the class losses, index ops and views
# ----------------------------------------------------------------------------

def int64_cases():
    for op in ("cross_entropy", "nll_loss"):
        for red in ("mean", "sum", "none"):
            for extra in ("", "weight", "ignore", "smooth"):
                if extra == "smooth" and op == "nll_loss":
                    continue
                cid = f"{op}/int64_target/{red}/{extra or 'plain'}"
                r = rng_for(cid)
                x = N(r, (5, 4))
                if op == "nll_loss":
                    x = np.asarray(torch.log_softmax(torch.tensor(x), 1).numpy(), np.float32)
                tgt = r.integers(0, 4, 5)
                args = {"reduction": red}
                ts = {"input": T(x, rg=True), "target": IL(tgt)}
                if extra == "weight":
                    ts["weight"] = T(r.uniform(0.2, 2, 4))
                if extra == "ignore":
                    tgt[1] = 2
                    ts["target"] = IL(tgt)
                    args["ignore_index"] = 2
                if extra == "smooth":
                    args["label_smoothing"] = 0.2
                add(cid, op, ts, args)
    r = rng_for("int64/err")
    add("cross_entropy/err/int64_target_range", "cross_entropy", {"input": T(N(r, (3, 4))),
                                                                  "target": IL([0, 4, 1])},
        error={"codes": [INDEX], "names": ["target 4 at index 1"]})
    r = rng_for("int64/index")
    add("index_select/int64", "index_select", {"x": T(N(r, (5, 4)), rg=True), "index": IL([4, 0, 4, 2])},
        {"dim": 0})
    add("index_select/int64_dim1_noncontig", "index_select",
        {"x": T(N(r, (3, 5)), rg=True, t=True), "index": IL([1, 1, 0])}, {"dim": 1})
    add("index_select/int64_source", "index_select",
        {"x": IL([[2 ** 40 + 1, 5], [-3, 2 ** 25 + 1]]), "index": IL([1, 1, 0])}, {"dim": 0}, grad=False)
    add("gather/int64", "gather", {"x": T(N(r, (3, 4)), rg=True), "index": IL([[0, 3], [2, 2], [1, 0]])},
        {"dim": 1})
    add("index_select/err/int64_range", "index_select", {"x": T(N(r, (3, 2))), "index": IL([3])},
        {"dim": 0}, error={"codes": [INDEX], "names": ["index 3 is out of range", "size 3"]})
    big = (np.arange(24, dtype=np.int64) * 7919 + 2 ** 40 + 1).reshape(2, 3, 4)
    big[0, 0, 0] = -(2 ** 62)
    chains = {
        "transpose": [["transpose", 0, 2]],
        "slice_step": [["slice", 2, 1, 4, 2]],
        "reshape_copy": [["transpose", 1, 2], ["reshape", [6, 4]]],
        "unsqueeze_flatten": [["unsqueeze", 1], ["flatten", 0, 2]],
        "select": [["select", 1, 2]],
        "contiguous": [["transpose", 0, 1], ["contiguous"]],
        "cat": [["slice", 1, 0, 2, 1], ["cat", 1]],
        "to_float": [["select", 0, 1], ["to_float"]],
        "summarized": [["reshape", [24]], ["unsqueeze", 0], ["cat", 0], ["cat", 1], ["cat", 1],
                       ["cat", 1], ["cat", 1], ["cat", 1], ["cat", 0], ["cat", 0], ["cat", 0]],
        "empty": [["slice", 1, 2, 2, 1]],
        "scalar": [["select", 0, 1], ["select", 0, 2], ["select", 0, 3]],
    }
    for name, chain in chains.items():
        add(f"int64_views/{name}", "views", {"x": IL(big)}, {"chain": chain}, grad=False)
        CASES[-1]["repr"] = True
    r = rng_for("int64/conv")
    add("int64_views/from_float", "views", {"x": T([[3.0, -2.0, 16777216.0], [0.0, 7.0, -1.0]])},
        {"chain": [["to_int64"], ["transpose", 0, 1]]}, grad=False)
    CASES[-1]["repr"] = True


# ----------------------------------------------------------------------------
# running
# ----------------------------------------------------------------------------

def finalize():
    """Upstream gradients from torch's output shapes (float outputs only)."""
    for c in CASES:
        if c["kind"] != "fn" or c.get("error") or not c.get("grad", True):
            continue
        if not any(s.get("requires_grad") for s in c["tensors"].values()):
            continue
        out, _, _ = run_torch_fn(c, torch.float32, None)
        if not out.is_floating_point():
            continue
        r = rng_for(c["id"] + "/up")
        up = N(r, tuple(out.shape))
        c["grad_out"] = {"shape": list(up.shape), "data": [float(v) for v in up.ravel()]}
        c["_up"] = up


def run_runner(runner, cases):
    clean = [{k: v for k, v in c.items() if not k.startswith("_") and k not in ("error", "grad")}
             for c in cases]
    return case_runner.run_cases(runner, os.path.join(TMPDIR, "layer_cases.json"), clean)


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    runner = os.path.abspath(args[0])
    filt = args[args.index("-k") + 1] if "-k" in args else None
    bn_cases()
    ln_cases()
    gn_cases()
    emb_cases()
    bag_cases()
    int64_cases()
    import layers_modules   # module cases (same directory): missing is a failure, not a skip
    layers_modules.add_cases(CASES, TMPDIR)
    cases = [c for c in CASES if filt is None or filt in c["id"]]
    if not cases:
        print(f"FAIL no case matches {filt!r}")
        return 1
    finalize()
    results, runs = run_runner(runner, cases)
    passed = failed = 0
    groups = {}
    n_err = 0
    for c in cases:
        res = results.get(c["id"])
        grp = c["id"].split("/")[0]
        gs = groups.setdefault(grp, [0, 0])
        if res is None:
            fails = ["no result from the runner"]
        elif "crash" in res:
            fails = [res["crash"]]
        elif c["kind"] == "module":
            import layers_modules
            fails = layers_modules.check(c, res, compare)
        else:
            n_err += bool(c.get("error"))
            fails = check_fn(c, res)
        if fails:
            failed += 1
            gs[1] += 1
            print(f"FAIL {c['id']}")
            for f in fails:
                print(f"    {f}")
        else:
            passed += 1
            gs[0] += 1
    if results.get("__exit__"):
        failed += 1
        print(f"FAIL [run] {results['__exit__']}")
    print()
    print("per group (passed/failed cases):")
    for g in sorted(groups):
        print(f"  {g:16s} {groups[g][0]:4d} / {groups[g][1]}")
    print(f"runner invocations: {runs}")
    print(f"compared {len(cases) - n_err} cases ({STATS.values} values) against PyTorch float32, "
          f"{n_err} error cases")
    print(f"largest abs error vs PyTorch: {STATS.max_abs:.3g} ({STATS.where_abs})")
    print(f"largest rel error vs PyTorch (|expected| >= 1e-3): {STATS.max_rel:.3g} ({STATS.where_rel})")
    for n in NOTES:
        print(f"NOTE {n}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
