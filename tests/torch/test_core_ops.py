#!/usr/bin/python3
"""Differential test of easytorch's core ops against PyTorch 1.13.

Usage: /usr/bin/python3 test_core_ops.py PATH/TO/core_runner [-k SUBSTRING] [--cases-out FILE] [--pool]
  -k: only cases whose id contains SUBSTRING; --cases-out: keep the case file;
  --pool: the runner runs each case inside et_pool_begin/end (inputs outside,
  gradients read after et_pool_end) instead of freeing every tensor itself.

1. Builds test cases with fixed seeds.  A case is a small straight-line
   program over named tensors (see core_runner.c for the JSON format): inputs
   with shape, data and requires_grad, a list of op nodes, the outputs to
   report, and optionally a backward call with an upstream gradient.
2. Runs core_runner once over all cases (restarting after the crashing case
   if it dies, so one crash costs one case).
3. Interprets the same programs with PyTorch in float32 and compares every
   output (values, shape, requires_grad, is_leaf) and every leaf gradient with
   numpy.allclose(rtol=1e-4, atol=1e-5).  Where PyTorch float32 contradicts
   PyTorch float64 on the same program (a PyTorch bug, see check_diff), the
   float64 result is the reference and a NOTE is printed.
4. For each differentiable case, estimates the gradient by central
   differences in float64 with PyTorch and compares it with easytorch's
   gradient AND with PyTorch's float64 analytic gradient (so a bad test input,
   e.g. a kink, shows up as a failure of the test itself).
5. Error cases: easytorch must fail at the same node as PyTorch, with the
   documented status code and a message naming the op and the shapes/index.

Prints the number of compared cases, the largest errors and a final line
"N passed, M failed"; exits 1 on any failure.
"""
import json
import math
import os
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import torch
import torch.nn.functional as F

RTOL, ATOL = 1e-4, 1e-5
FD_EPS = 1e-6
END = None  # et_slice's ET_END

# et_status values from include/easytorch/error.h
ET_ERR_SHAPE, ET_ERR_INDEX, ET_ERR_ARG, ET_ERR_GRAD, ET_ERR_STATE = 1, 2, 3, 4, 8

# Every op of include/easytorch/ops.h, by the runner's name; main() checks
# that each one is exercised by at least one compared case.
OPS_H = """add sub mul div pow maximum minimum add_scalar sub_scalar rsub_scalar
mul_scalar div_scalar rdiv_scalar pow_scalar rpow_scalar neg exp log sqrt abs tanh
sigmoid relu leaky_relu gelu clamp sum_all mean_all sum mean max min argmax max_all
min_all softmax log_softmax matmul reshape view transpose t permute squeeze
squeeze_all unsqueeze flatten expand select slice cat stack index_select gather eq ne
lt le gt ge gt_scalar lt_scalar where fill_ copy_""".split()

torch.set_num_threads(1)

# Case files of further op families (see the end of case construction).
CASE_MODULES = ["cases_elementwise", "cases_conv", "cases_pool", "cases_reduce", "cases_shape", "cases_index"]


# ----------------------------------------------------------------------------
# PyTorch interpreter for case programs
# ----------------------------------------------------------------------------

def _scalar(p, key="s"):
    v = p[key]
    return float(v)


def _bound(v, default):
    if v is None:
        return None
    if isinstance(v, str):
        return None if v in ("inf", "-inf") else float(v)
    return float(v)


def _sum_like(fn):
    def run(i, p):
        x = i[0]
        dims = p.get("dims") or []
        keep = p.get("keepdim", False)
        if not dims:
            if x.dim() == 0 or not keep:
                return fn(x)
            return fn(x, dim=tuple(range(x.dim())), keepdim=True)
        return fn(x, dim=tuple(dims), keepdim=keep)
    return run


def _slice(i, p):
    x = i[0]
    dim, step = p["dim"], p.get("step", 1)
    sl = slice(p.get("start", 0), p.get("end"), step)
    if dim >= 0:
        key = (slice(None),) * dim + (sl,)
    else:
        key = (Ellipsis, sl) + (slice(None),) * (-dim - 1)
    if step <= 0:
        raise ValueError("slice step must be positive")  # torch says the same
    return x[key]


def _cmp(fn):
    def run(i, p):
        a, b = i
        return fn(a, b).to(torch.result_type(a, b))
    return run


def _inplace_fill(i, p):
    with torch.no_grad():
        i[0].fill_(float(p["value"]))
    return i[0]


def _inplace_copy(i, p):
    with torch.no_grad():
        i[0].copy_(i[1])
    return i[0]


def _retain(i, p):
    if i[0].requires_grad:
        i[0].retain_grad()
    return i[0]


def _minmax(fn):
    def run(i, p):
        v, idx = fn(i[0], p["dim"], p.get("keepdim", False))
        return v, idx
    return run


TORCH_OPS = {
    "add": lambda i, p: i[0] + i[1],
    "sub": lambda i, p: i[0] - i[1],
    "mul": lambda i, p: i[0] * i[1],
    "div": lambda i, p: i[0] / i[1],
    "pow": lambda i, p: torch.pow(i[0], i[1]),
    "maximum": lambda i, p: torch.maximum(i[0], i[1]),
    "minimum": lambda i, p: torch.minimum(i[0], i[1]),
    "add_scalar": lambda i, p: i[0] + _scalar(p),
    "sub_scalar": lambda i, p: i[0] - _scalar(p),
    "rsub_scalar": lambda i, p: _scalar(p) - i[0],
    "mul_scalar": lambda i, p: i[0] * _scalar(p),
    "div_scalar": lambda i, p: i[0] / _scalar(p),
    "rdiv_scalar": lambda i, p: _scalar(p) / i[0],
    "pow_scalar": lambda i, p: torch.pow(i[0], _scalar(p)),
    "rpow_scalar": lambda i, p: torch.pow(_scalar(p), i[0]),
    "neg": lambda i, p: -i[0],
    "exp": lambda i, p: torch.exp(i[0]),
    "log": lambda i, p: torch.log(i[0]),
    "sqrt": lambda i, p: torch.sqrt(i[0]),
    "abs": lambda i, p: torch.abs(i[0]),
    "tanh": lambda i, p: torch.tanh(i[0]),
    "sigmoid": lambda i, p: torch.sigmoid(i[0]),
    "relu": lambda i, p: torch.relu(i[0]),
    "leaky_relu": lambda i, p: F.leaky_relu(i[0], p.get("slope", 0.01)),
    "gelu": lambda i, p: F.gelu(i[0], approximate="tanh" if p.get("approx") else "none"),
    "clamp": lambda i, p: torch.clamp(i[0], _bound(p.get("min"), None), _bound(p.get("max"), None)),
    "sum_all": lambda i, p: i[0].sum(),
    "mean_all": lambda i, p: i[0].mean(),
    "sum": _sum_like(torch.sum),
    "mean": _sum_like(torch.mean),
    "max": _minmax(torch.max),
    "min": _minmax(torch.min),
    "argmax": lambda i, p: torch.argmax(i[0], p["dim"], p.get("keepdim", False)),
    "max_all": lambda i, p: i[0].max(),
    "min_all": lambda i, p: i[0].min(),
    "softmax": lambda i, p: torch.softmax(i[0], p["dim"]),
    "log_softmax": lambda i, p: torch.log_softmax(i[0], p["dim"]),
    "matmul": lambda i, p: torch.matmul(i[0], i[1]),
    "reshape": lambda i, p: i[0].reshape(p["shape"]),
    "view": lambda i, p: i[0].view(p["shape"]),
    "transpose": lambda i, p: i[0].transpose(p["dim0"], p["dim1"]),
    "t": lambda i, p: i[0].t(),
    "permute": lambda i, p: i[0].permute(p["dims"]),
    "squeeze": lambda i, p: i[0].squeeze(p["dim"]),
    "squeeze_all": lambda i, p: i[0].squeeze(),
    "unsqueeze": lambda i, p: i[0].unsqueeze(p["dim"]),
    "flatten": lambda i, p: torch.flatten(i[0], p.get("start_dim", 0), p.get("end_dim", -1)),
    "expand": lambda i, p: i[0].expand(p["shape"]),
    "select": lambda i, p: i[0].select(p["dim"], p["index"]),
    "slice": _slice,
    "cat": lambda i, p: torch.cat(list(i), p["dim"]),
    "stack": lambda i, p: torch.stack(list(i), p["dim"]),
    "index_select": lambda i, p: torch.index_select(i[0], p["dim"], i[1].long()),
    "gather": lambda i, p: torch.gather(i[0], p["dim"], i[1].long()),
    "eq": _cmp(torch.eq), "ne": _cmp(torch.ne), "lt": _cmp(torch.lt),
    "le": _cmp(torch.le), "gt": _cmp(torch.gt), "ge": _cmp(torch.ge),
    "gt_scalar": lambda i, p: (i[0] > _scalar(p)).to(i[0].dtype),
    "lt_scalar": lambda i, p: (i[0] < _scalar(p)).to(i[0].dtype),
    "where": lambda i, p: torch.where(i[0] != 0, i[1], i[2]),
    "fill_": _inplace_fill,
    "copy_": _inplace_copy,
    "contiguous": lambda i, p: i[0].contiguous(),
    "clone": lambda i, p: i[0].detach().clone(),
    "detach": lambda i, p: i[0].detach(),
    "retain_grad": _retain,
    "get": lambda i, p: i[0][tuple(p["index"])].detach().clone(),
    "item": lambda i, p: torch.tensor(i[0].item(), dtype=i[0].dtype),
    "copy_from": lambda i, p: _inplace_copy([i[0], torch.tensor(p["data"], dtype=i[0].dtype).reshape(
        i[0].shape)], p),
    "free": lambda i, p: None,
    "requires_grad_": lambda i, p: i[0].requires_grad_(p.get("on", True)),
    # creation functions of tensor.h
    "arange": lambda i, p: torch.arange(p["start"], p["end"], p["step"], dtype=torch.float32),
    "linspace": lambda i, p: torch.linspace(p["start"], p["end"], p["steps"], dtype=torch.float32),
    "eye": lambda i, p: torch.eye(p["n"], p["m"], dtype=torch.float32),
    "full": lambda i, p: torch.full(p["shape"], float(p["value"]), dtype=torch.float32),
    "zeros": lambda i, p: torch.zeros(p["shape"], dtype=torch.float32),
    "ones": lambda i, p: torch.ones(p["shape"], dtype=torch.float32),
    "zeros_like": lambda i, p: torch.zeros_like(i[0]).detach(),
    "ones_like": lambda i, p: torch.ones_like(i[0]).detach(),
}


class TorchFailure(Exception):
    def __init__(self, at, exc):
        super().__init__(f"{at}: {type(exc).__name__}: {exc}")
        self.at = at
        self.exc = exc


def run_torch(case, dtype, values=None, backward=True):
    """Interpret a case with PyTorch.  `values` overrides leaf data (name ->
    float64 ndarray).  Returns (env, leaves)."""
    env, leaves = {}, {}
    for inp in case["inputs"]:
        data = values[inp["name"]] if values and inp["name"] in values else \
            np.asarray([float(v) for v in inp["data"]], dtype=np.float64).reshape(inp["shape"])
        t = torch.tensor(data, dtype=torch.int64 if inp.get("dtype") == "int64" else dtype)
        if inp["requires_grad"]:
            t.requires_grad_(True)
            leaves[inp["name"]] = t
        env[inp["name"]] = t
    for k, node in enumerate(case["prog"]):
        at = f"node {k} ({node['op']})"
        try:
            p = node.get("p", {})
            with torch.set_grad_enabled(torch.is_grad_enabled() and not p.get("_no_grad", False)):
                r = TORCH_OPS[node["op"]]([env[n] for n in node["in"]], p)
        except Exception as exc:  # noqa: BLE001 - any torch error is the expected kind
            raise TorchFailure(at, exc) from None
        if isinstance(r, dict):   # several results (split): key "" is the node's own name
            for key, v in r.items():
                env[node["out"] + key] = v
        elif isinstance(r, tuple):
            env[node["out"]], env[node["out"] + ".indices"] = r
        else:
            env[node["out"]] = r
    bw = case.get("backward")
    if backward and bw:
        root = env[bw["root"]]
        g = None
        if bw.get("grad") is not None:
            g = torch.tensor(np.asarray(bw["grad"]["data"], dtype=np.float64).reshape(
                bw["grad"]["shape"]), dtype=dtype)
        try:
            for _ in range(bw.get("times", 1)):
                root.backward(g, retain_graph=True)
            for more in bw.get("then", []):
                g2 = None
                if more.get("grad") is not None:
                    g2 = torch.tensor(np.asarray(more["grad"]["data"], dtype=np.float64).reshape(
                        more["grad"]["shape"]), dtype=dtype)
                env[more["root"]].backward(g2, retain_graph=True)
        except Exception as exc:  # noqa: BLE001
            raise TorchFailure("backward", exc) from None
    return env, leaves


# ----------------------------------------------------------------------------
# Case construction
# ----------------------------------------------------------------------------

def rng_for(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


def N(rng, shape, scale=1.0):
    return np.asarray(rng.standard_normal(shape) * scale, dtype=np.float32)


def U(rng, shape, lo, hi):
    return np.asarray(rng.uniform(lo, hi, shape), dtype=np.float32)


def AWAY(rng, shape, lo=0.1, hi=2.0):
    """Values with lo <= |x| <= hi, random sign (away from kinks at 0)."""
    mag = rng.uniform(lo, hi, shape)
    sign = rng.choice([-1.0, 1.0], size=shape)
    return np.asarray(mag * sign, dtype=np.float32)


def DISTINCT(rng, shape):
    """Values separated by >= 0.15 (no ties for max/min)."""
    n = int(np.prod(shape)) if shape else 1
    v = rng.permutation(n) * 0.25 + rng.uniform(0, 0.1, n) - n * 0.125
    return np.asarray(v.reshape(shape), dtype=np.float32)


def _jf(v):
    """A float for the case file: non-finite values as "nan"/"inf"/"-inf" (cJSON has no NaN)."""
    v = float(v)
    return v if math.isfinite(v) else ("nan" if v != v else ("inf" if v > 0 else "-inf"))


def I(name, arr, rg=True):
    arr = np.asarray(arr, dtype=np.float32)
    return {"name": name, "shape": list(arr.shape),
            "data": [_jf(v) for v in arr.ravel()], "requires_grad": bool(rg)}


def IDX(name, values):
    return I(name, np.asarray(values, dtype=np.float32), rg=False)


def IL(name, values):
    """An int64 input (torch.long): indices, exact beyond 2^24."""
    arr = np.asarray(values, dtype=np.int64)
    return {"name": name, "shape": list(arr.shape), "data": [int(v) for v in arr.ravel()],
            "requires_grad": False, "dtype": "int64"}


def tensor_json(arr):
    arr = np.asarray(arr, dtype=np.float32)
    return {"shape": list(arr.shape), "data": [float(v) for v in arr.ravel()]}


class Suite:
    def __init__(self):
        self.cases = []
        self.ids = set()

    def add(self, cid, inputs, prog, outputs=None, backward="rand", fd=True, times=1,
            retain=(), rng=None, error=None, then=(), reprs=()):
        """prog: list of (out, op, [inputs], {params}).
        backward: "rand" (random upstream of the root's shape), "none" (NULL
        upstream: root must have one element), None (no backward), or an array.
        error: None, or dict(names=[substrings], codes={status...}, at=stage)."""
        assert cid not in self.ids, cid
        self.ids.add(cid)
        nodes = [{"out": o, "op": op, "in": list(ins), "p": dict(p or {})}
                 for (o, op, ins, p) in prog]
        last = [n for n in nodes if n["op"] != "free"][-1]["out"]   # default output and root
        case = {"id": cid, "inputs": inputs, "prog": nodes,
                "outputs": list(outputs) if outputs else [last],
                "retain": list(retain)}
        if reprs:
            case["reprs"] = list(reprs)
        any_rg = any(i["requires_grad"] for i in inputs)
        if error is not None:
            case["error"] = error
            if isinstance(backward, np.ndarray):
                case["backward"] = {"root": last, "grad": tensor_json(backward),
                                    "times": 1}
            elif backward == "none":
                case["backward"] = {"root": last, "grad": None, "times": 1}
            case["fd"] = False
            self.cases.append(case)
            return
        if backward is not None and any_rg:
            root = last
            if isinstance(backward, np.ndarray):
                grad = tensor_json(backward)
            elif backward == "none":
                grad = None
            else:
                env, _ = run_torch(case, torch.float32, backward=False)
                shape = tuple(env[root].shape)
                grad = tensor_json(N(rng or rng_for(cid), shape))
            case["backward"] = {"root": root, "grad": grad, "times": times}
            if then:
                env, _ = run_torch(case, torch.float32, backward=False)
                case["backward"]["then"] = [
                    {"root": r, "grad": None if env[r].dim() == 0 else
                     tensor_json(N(rng or rng_for(cid), tuple(env[r].shape)))} for r in then]
            case["fd"] = bool(fd)
        else:
            case["fd"] = False
        self.cases.append(case)


S = Suite()

# ---- elementwise binary, every broadcasting pattern --------------------------

BCAST = [
    ((3, 4), (3, 4)), ((5,), (5,)),
    ((2, 3, 4), (4,)), ((4,), (2, 3, 4)),            # rank mismatch both ways
    ((2, 3, 4), (3, 4)), ((3, 4), (2, 3, 4)),
    ((3, 1), (1, 4)), ((1, 4), (3, 1)),              # size-1 dims on both sides
    ((3, 4), (3, 1)), ((3, 1), (3, 4)),              # size-1 on one side
    ((1, 4), (3, 4)), ((3, 4), (1, 4)),
    ((2, 1, 4), (3, 1)), ((3, 1), (2, 1, 4)),
    ((), (3, 4)), ((3, 4), ()),                      # 0-d either side
    ((1,), (3, 4)), ((3, 4), (1,)),                  # one-element either side
    ((), ()), ((), (1,)), ((1, 1), (5,)),
    ((2, 1, 3, 1), (4, 1, 5)), ((1, 3, 1), (2, 1, 1, 4)),
]


def bin_data(op, rng, sa, sb):
    if op == "div":
        return N(rng, sa), AWAY(rng, sb, 0.5, 2.0)
    if op == "pow":
        return U(rng, sa, 0.5, 2.0), U(rng, sb, -2.0, 2.0)
    return N(rng, sa), N(rng, sb)


for op in ["add", "sub", "mul", "div", "pow", "maximum", "minimum"]:
    rng = rng_for("bin/" + op)
    for k, (sa, sb) in enumerate(BCAST):
        a, b = bin_data(op, rng, sa, sb)
        S.add(f"{op}/bcast{k}:{list(sa)}x{list(sb)}", [I("a", a), I("b", b)],
              [("y", op, ["a", "b"], {})], rng=rng)
    # only one side requires grad
    a, b = bin_data(op, rng, (3, 1), (4,))
    S.add(f"{op}/grad_a_only", [I("a", a), I("b", b, rg=False)], [("y", op, ["a", "b"], {})], rng=rng)
    a, b = bin_data(op, rng, (3, 1), (4,))
    S.add(f"{op}/grad_b_only", [I("a", a, rg=False), I("b", b)], [("y", op, ["a", "b"], {})], rng=rng)
    # non-contiguous operands
    a, _ = bin_data(op, rng, (4, 3), (1,))
    _, b = bin_data(op, rng, (1,), (3, 4))
    S.add(f"{op}/noncontig_transposed_a", [I("a", a), I("b", b)],
          [("at", "transpose", ["a"], {"dim0": 0, "dim1": 1}), ("y", op, ["at", "b"], {})], rng=rng)
    a, b = bin_data(op, rng, (3, 4), (3, 8))
    S.add(f"{op}/noncontig_sliced_b", [I("a", a), I("b", b)],
          [("bs", "slice", ["b"], {"dim": -1, "start": 0, "end": END, "step": 2}),
           ("y", op, ["a", "bs"], {})], rng=rng)
    a, b = bin_data(op, rng, (2, 4, 3), (8,))
    S.add(f"{op}/noncontig_both_bcast", [I("a", a), I("b", b)],
          [("at", "transpose", ["a"], {"dim0": -1, "dim1": -2}),
           ("bs", "slice", ["b"], {"dim": 0, "start": 1, "end": END, "step": 2}),
           ("y", op, ["at", "bs"], {})], rng=rng)
    a, b = bin_data(op, rng, (4, 6), (3, 4))
    S.add(f"{op}/noncontig_slice_then_t", [I("a", a), I("b", b)],
          [("as", "slice", ["a"], {"dim": 1, "start": 0, "end": END, "step": 2}),
           ("at", "t", ["as"], {}), ("y", op, ["at", "b"], {})], rng=rng)

# ---- with a scalar ---------------------------------------------------------

SCALAR_SHAPES = [(), (5,), (3, 4), (2, 3, 4)]
SCALAR_CASES = [
    ("add_scalar", [1.5, -0.25], "n"), ("sub_scalar", [0.75, -2.0], "n"),
    ("rsub_scalar", [2.0, -0.5], "n"), ("mul_scalar", [-1.5, 3.0], "n"),
    ("div_scalar", [4.0, -0.3], "n"), ("rdiv_scalar", [1.5, -2.0], "away"),
    ("pow_scalar", [2.0, 3.0, 5.0, 1.0, 0.0], "n"),
    ("pow_scalar", [0.5, -1.0, -2.5, 1.5], "pos"),
    ("rpow_scalar", [2.0, 0.5, 2.718281828], "n"),
]
for op, scalars, kind in SCALAR_CASES:
    rng = rng_for(f"scalar/{op}/{kind}")
    for s in scalars:
        for shp in SCALAR_SHAPES:
            x = {"n": N, "away": lambda r, sh: AWAY(r, sh, 0.3, 2.0),
                 "pos": lambda r, sh: U(r, sh, 0.3, 2.5)}[kind](rng, shp)
            S.add(f"{op}/s={s}/{list(shp)}", [I("a", x)], [("y", op, ["a"], {"s": s})], rng=rng)
        x = {"n": N, "away": lambda r, sh: AWAY(r, sh, 0.3, 2.0),
             "pos": lambda r, sh: U(r, sh, 0.3, 2.5)}[kind](rng, (4, 3))
        S.add(f"{op}/s={s}/noncontig", [I("a", x)],
              [("at", "t", ["a"], {}), ("y", op, ["at"], {"s": s})], rng=rng)

# ---- elementwise unary -------------------------------------------------------

UNARY = [
    ("neg", {}, lambda r, s: N(r, s)),
    ("exp", {}, lambda r, s: N(r, s)),
    ("log", {}, lambda r, s: U(r, s, 0.2, 3.0)),
    ("sqrt", {}, lambda r, s: U(r, s, 0.2, 3.0)),
    ("abs", {}, lambda r, s: AWAY(r, s, 0.05, 2.0)),
    ("tanh", {}, lambda r, s: N(r, s, 1.5)),
    ("sigmoid", {}, lambda r, s: N(r, s, 2.0)),
    ("relu", {}, lambda r, s: AWAY(r, s, 0.05, 2.0)),
    ("leaky_relu", {"slope": 0.01}, lambda r, s: AWAY(r, s, 0.05, 2.0)),
    ("leaky_relu", {"slope": 0.2}, lambda r, s: AWAY(r, s, 0.05, 2.0)),
    ("gelu", {"approx": False}, lambda r, s: N(r, s, 2.0)),
    ("gelu", {"approx": True}, lambda r, s: N(r, s, 2.0)),
]


def clamp_data(r, s):
    x = U(r, s, -1.0, 1.0)
    near = np.abs(np.abs(x) - 0.5) < 0.02   # keep away from the bounds
    x[near] += np.float32(0.05)
    return x


UNARY += [
    ("clamp", {"min": -0.5, "max": 0.5}, clamp_data),
    ("clamp", {"min": -0.5, "max": None}, clamp_data),
    ("clamp", {"min": None, "max": 0.5}, clamp_data),
]
UNARY_SHAPES = [(), (7,), (3, 4), (2, 3, 4)]
for op, p, gen in UNARY:
    tag = op + "".join(f"/{k}={v}" for k, v in p.items())
    rng = rng_for("unary/" + tag)
    for shp in UNARY_SHAPES:
        S.add(f"{tag}/{list(shp)}", [I("a", gen(rng, shp))], [("y", op, ["a"], p)], rng=rng)
    S.add(f"{tag}/noncontig_t", [I("a", gen(rng, (4, 3)))],
          [("at", "t", ["a"], {}), ("y", op, ["at"], p)], rng=rng)
    S.add(f"{tag}/noncontig_slice", [I("a", gen(rng, (3, 9)))],
          [("as", "slice", ["a"], {"dim": 1, "start": 1, "end": 8, "step": 3}),
           ("y", op, ["as"], p)], rng=rng)

# ---- exact ties and zeros: PyTorch's conventions (no finite differences) ----

rng = rng_for("ties")
Z = np.array([0.0, -1.0, 1.0, 0.0, 2.0, -0.0], np.float32)
for op, p in [("relu", {}), ("abs", {}), ("leaky_relu", {"slope": 0.1}), ("sqrt", {})]:
    x = Z if op != "sqrt" else np.array([0.0, 1.0, 4.0], np.float32)
    S.add(f"ties/{op}_at_zero", [I("a", x)], [("y", op, ["a"], p)], fd=False, rng=rng)
S.add("ties/clamp_at_bounds", [I("a", [-1.0, -0.5, 0.0, 0.5, 1.0, 0.49999997])],
      [("y", "clamp", ["a"], {"min": -0.5, "max": 0.5})], fd=False, rng=rng)
S.add("ties/clamp_min_only_at_bound", [I("a", [-1.0, -0.5, 0.0, 0.5])],
      [("y", "clamp", ["a"], {"min": -0.5, "max": None})], fd=False, rng=rng)
S.add("ties/clamp_max_only_at_bound", [I("a", [-1.0, -0.5, 0.0, 0.5])],
      [("y", "clamp", ["a"], {"min": None, "max": 0.5})], fd=False, rng=rng)
S.add("ties/clamp_min_eq_max", [I("a", [-1.0, 0.25, 1.0])],
      [("y", "clamp", ["a"], {"min": 0.25, "max": 0.25})], fd=False, rng=rng)
for op in ["maximum", "minimum"]:
    S.add(f"ties/{op}_equal_split", [I("a", [1.0, 2.0, 3.0, -1.0]), I("b", [1.0, 3.0, 3.0, -2.0])],
          [("y", op, ["a", "b"], {})], fd=False, rng=rng)
    S.add(f"ties/{op}_equal_bcast", [I("a", [[1.0], [2.0]]), I("b", [1.0, 2.0, 0.0])],
          [("y", op, ["a", "b"], {})], fd=False, rng=rng)
TIE = np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 5.0], [0.0, -1.0, 0.0, -1.0]], np.float32)
for op in ["max", "min"]:
    for dim in [0, 1, -1]:
        S.add(f"ties/{op}_dim{dim}_first_occurrence", [I("a", TIE)],
              [("y", op, ["a"], {"dim": dim, "keepdim": False})], outputs=["y", "y.indices"],
              fd=False, rng=rng)
for dim in [0, 1]:
    S.add(f"ties/argmax_dim{dim}", [I("a", TIE)], [("y", "argmax", ["a"], {"dim": dim})],
          backward=None)
for op in ["max_all", "min_all"]:
    S.add(f"ties/{op}_evenly_distributed", [I("a", TIE)], [("y", op, ["a"], {})], fd=False, rng=rng)
S.add("ties/pow_scalar_zero_base", [I("a", [0.0, 1.0, -2.0])],
      [("y", "pow_scalar", ["a"], {"s": 2.0})], fd=False, rng=rng)
S.add("ties/pow_scalar_exponent_zero_at_zero", [I("a", [0.0, 1.0, -2.0])],
      [("y", "pow_scalar", ["a"], {"s": 0.0})], fd=False, rng=rng)

# ---- reductions --------------------------------------------------------------

RED_DIMS = {
    (5,): [[0], [-1], []],
    (3, 4): [[0], [1], [-1], [0, 1], [-1, -2], []],
    (2, 3, 4): [[1], [0, 2], [-1, 0], [2, 0], [0, 1, 2], [-3], []],
    (2, 3, 2, 3): [[1, 3], [0, -1], [-2]],
}
for op in ["sum", "mean"]:
    rng = rng_for("reduce/" + op)
    for shp, dl in RED_DIMS.items():
        for dims in dl:
            for keep in [False, True]:
                S.add(f"{op}/{list(shp)}/dims={dims}/keepdim={keep}", [I("a", N(rng, shp))],
                      [("y", op, ["a"], {"dims": dims, "keepdim": keep})], rng=rng)
    for dims in [[0], [1], [-1, 0]]:
        S.add(f"{op}/noncontig_t/dims={dims}", [I("a", N(rng, (4, 3)))],
              [("at", "t", ["a"], {}), ("y", op, ["at"], {"dims": dims, "keepdim": True})], rng=rng)
    S.add(f"{op}/noncontig_permuted_3d", [I("a", N(rng, (2, 3, 4)))],
          [("ap", "permute", ["a"], {"dims": [2, 0, 1]}),
           ("y", op, ["ap"], {"dims": [0, 2], "keepdim": False})], rng=rng)
    for shp in [(), (5,), (3, 4), (2, 3, 4)]:
        S.add(f"{op}_all/{list(shp)}", [I("a", N(rng, shp))], [("y", op + "_all", ["a"], {})],
              rng=rng)
    S.add(f"{op}_all/noncontig", [I("a", N(rng, (3, 8)))],
          [("as", "slice", ["a"], {"dim": 1, "start": 1, "end": END, "step": 2}),
           ("y", op + "_all", ["as"], {})], backward="none", rng=rng)

for op in ["max", "min"]:
    rng = rng_for("reduce/" + op)
    for shp, dims in [((5,), [0, -1]), ((3, 4), [0, 1, -1, -2]), ((2, 3, 4), [0, 1, 2, -1])]:
        for dim in dims:
            for keep in [False, True]:
                S.add(f"{op}/{list(shp)}/dim={dim}/keepdim={keep}", [I("a", DISTINCT(rng, shp))],
                      [("y", op, ["a"], {"dim": dim, "keepdim": keep})],
                      outputs=["y", "y.indices"], rng=rng)
    S.add(f"{op}/noncontig_t", [I("a", DISTINCT(rng, (4, 3)))],
          [("at", "t", ["a"], {}), ("y", op, ["at"], {"dim": 1, "keepdim": False})],
          outputs=["y", "y.indices"], rng=rng)
    for shp in [(), (5,), (3, 4), (2, 3, 4)]:
        S.add(f"{op}_all/{list(shp)}", [I("a", DISTINCT(rng, shp))], [("y", op + "_all", ["a"], {})],
              rng=rng)
    S.add(f"{op}_all/noncontig", [I("a", DISTINCT(rng, (4, 3)))],
          [("at", "t", ["a"], {}), ("y", op + "_all", ["at"], {})], rng=rng)

rng = rng_for("reduce/argmax")
for shp, dims in [((5,), [0, -1]), ((3, 4), [0, 1, -1]), ((2, 3, 4), [0, 1, 2, -2])]:
    for dim in dims:
        for keep in [False, True]:
            S.add(f"argmax/{list(shp)}/dim={dim}/keepdim={keep}", [I("a", DISTINCT(rng, shp))],
                  [("y", "argmax", ["a"], {"dim": dim, "keepdim": keep})], backward=None)
S.add("argmax/noncontig_t", [I("a", DISTINCT(rng, (4, 3)))],
      [("at", "t", ["a"], {}), ("y", "argmax", ["at"], {"dim": 0, "keepdim": False})],
      backward=None)

# ---- softmax family ------------------------------------------------------------

for op in ["softmax", "log_softmax"]:
    rng = rng_for("softmax/" + op)
    for shp, dims in [((5,), [0, -1]), ((3, 4), [0, 1, -1]), ((2, 3, 4), [0, 1, 2, -1, -2])]:
        for dim in dims:
            S.add(f"{op}/{list(shp)}/dim={dim}", [I("a", N(rng, shp, 2.0))],
                  [("y", op, ["a"], {"dim": dim})], rng=rng)
    S.add(f"{op}/noncontig_t", [I("a", N(rng, (4, 3)))],
          [("at", "t", ["a"], {}), ("y", op, ["at"], {"dim": -1})], rng=rng)
    S.add(f"{op}/large_1e4", [I("a", 1e4 + N(rng, (3, 5), 3.0))],
          [("y", op, ["a"], {"dim": 1})], rng=rng)
    S.add(f"{op}/large_mixed_pm1e4", [I("a", [[1e4, -1e4, 0.0, 1e4 - 2.0], [-1e4, -1e4 + 1.0, -1e4 + 0.5, -1e4 - 3.0]])],
          [("y", op, ["a"], {"dim": -1})], rng=rng)
    S.add(f"{op}/large_1e4_dim0", [I("a", -1e4 + N(rng, (4, 3)))],
          [("y", op, ["a"], {"dim": 0})], rng=rng)
rng = rng_for("softmax/weighted")
for shp, dim in [((4, 5), -1), ((2, 3, 4), 1)]:
    S.add(f"softmax/weighted_sum/{list(shp)}/dim={dim}", [I("a", N(rng, shp)), I("w", N(rng, shp))],
          [("s", "softmax", ["a"], {"dim": dim}), ("sw", "mul", ["s", "w"], {}),
           ("y", "sum_all", ["sw"], {})], outputs=["s", "y"], backward="none", rng=rng)

# ---- matmul, all forms -----------------------------------------------------

rng = rng_for("matmul")
MM = [((4,), (4,)), ((3,), (3, 5)), ((3, 4), (4,)), ((3, 4), (4, 5)), ((1, 1), (1, 1)),
      ((1, 4), (4, 1)), ((4, 1), (1, 3)),
      ((2, 3, 4), (2, 4, 5)), ((2, 3, 4), (4, 5)), ((3, 4), (2, 4, 5)), ((4,), (2, 4, 5)),
      ((2, 3, 4), (4,)), ((1, 3, 4), (2, 4, 5)), ((2, 3, 4), (1, 4, 2)),
      ((2, 1, 3, 4), (5, 4, 2)), ((2, 2, 3, 4), (2, 2, 4, 3)), ((3, 1, 2, 3), (1, 4, 3, 2)),
      ((4,), (2, 2, 4, 3)), ((2, 2, 3, 4), (4,))]
for sa, sb in MM:
    S.add(f"matmul/{list(sa)}@{list(sb)}", [I("a", N(rng, sa)), I("b", N(rng, sb))],
          [("y", "matmul", ["a", "b"], {})], rng=rng)
# transposed / strided operands
S.add("matmul/aT@b", [I("a", N(rng, (4, 3))), I("b", N(rng, (4, 5)))],
      [("at", "t", ["a"], {}), ("y", "matmul", ["at", "b"], {})], rng=rng)
S.add("matmul/a@bT", [I("a", N(rng, (3, 4))), I("b", N(rng, (5, 4)))],
      [("bt", "t", ["b"], {}), ("y", "matmul", ["a", "bt"], {})], rng=rng)
S.add("matmul/aT@bT", [I("a", N(rng, (4, 3))), I("b", N(rng, (5, 4)))],
      [("at", "t", ["a"], {}), ("bt", "t", ["b"], {}), ("y", "matmul", ["at", "bt"], {})], rng=rng)
S.add("matmul/batched_transposed", [I("a", N(rng, (2, 4, 3))), I("b", N(rng, (2, 5, 4)))],
      [("at", "transpose", ["a"], {"dim0": -1, "dim1": -2}),
       ("bt", "transpose", ["b"], {"dim0": 1, "dim1": 2}), ("y", "matmul", ["at", "bt"], {})], rng=rng)
S.add("matmul/batch_dim_transposed", [I("a", N(rng, (3, 2, 4))), I("b", N(rng, (2, 4, 5)))],
      [("at", "transpose", ["a"], {"dim0": 0, "dim1": 1}), ("y", "matmul", ["at", "b"], {})], rng=rng)
S.add("matmul/sliced_operands", [I("a", N(rng, (3, 8))), I("b", N(rng, (6, 5)))],
      [("as", "slice", ["a"], {"dim": 1, "start": 0, "end": END, "step": 2}),
       ("bs", "slice", ["b"], {"dim": 0, "start": 1, "end": 5, "step": 1}),
       ("y", "matmul", ["as", "bs"], {})], rng=rng)
S.add("matmul/1d_strided", [I("a", N(rng, (8,))), I("b", N(rng, (4, 3)))],
      [("as", "slice", ["a"], {"dim": 0, "start": 1, "end": END, "step": 2}),
       ("y", "matmul", ["as", "b"], {})], rng=rng)
# batched with a shared 2-D right operand: strided / padded / transposed left operands
S.add("matmul/batched_cols_sliced_shared_b", [I("a", N(rng, (2, 3, 8))), I("b", N(rng, (4, 5)))],
      [("as", "slice", ["a"], {"dim": 2, "start": 0, "end": 4, "step": 1}),
       ("y", "matmul", ["as", "b"], {})], rng=rng)
S.add("matmul/batched_rows_sliced_shared_b", [I("a", N(rng, (2, 4, 4))), I("b", N(rng, (4, 5)))],
      [("as", "slice", ["a"], {"dim": 1, "start": 0, "end": 3, "step": 1}),
       ("y", "matmul", ["as", "b"], {})], rng=rng)
S.add("matmul/batch_transposed_shared_b", [I("a", N(rng, (3, 2, 4))), I("b", N(rng, (4, 5)))],
      [("at", "transpose", ["a"], {"dim0": 0, "dim1": 1}), ("y", "matmul", ["at", "b"], {})], rng=rng)
S.add("matmul/batched_aT_shared_b", [I("a", N(rng, (2, 4, 3))), I("b", N(rng, (4, 5)))],
      [("at", "transpose", ["a"], {"dim0": -1, "dim1": -2}), ("y", "matmul", ["at", "b"], {})], rng=rng)
S.add("matmul/4d_shared_bT", [I("a", N(rng, (2, 2, 3, 4))), I("b", N(rng, (5, 4)))],
      [("bt", "t", ["b"], {}), ("y", "matmul", ["a", "bt"], {})], rng=rng)
S.add("matmul/4d_batch_permuted_shared_b", [I("a", N(rng, (2, 3, 2, 4))), I("b", N(rng, (4, 2)))],
      [("ap", "permute", ["a"], {"dims": [2, 0, 1, 3]}), ("y", "matmul", ["ap", "b"], {})], rng=rng)
S.add("matmul/expanded_batch_shared_b", [I("a", N(rng, (1, 3, 4))), I("b", N(rng, (4, 2)))],
      [("ae", "expand", ["a"], {"shape": [3, 3, 4]}), ("y", "matmul", ["ae", "b"], {})], rng=rng)
S.add("matmul/1d_times_batched_transposed", [I("a", N(rng, (4,))), I("b", N(rng, (2, 3, 4)))],
      [("bt", "transpose", ["b"], {"dim0": 1, "dim1": 2}), ("y", "matmul", ["a", "bt"], {})], rng=rng)
S.add("matmul/same_tensor_both_sides", [I("a", N(rng, (3, 3)))],
      [("y", "matmul", ["a", "a"], {})], rng=rng)
S.add("matmul/a@aT", [I("a", N(rng, (3, 4)))],
      [("at", "t", ["a"], {}), ("y", "matmul", ["a", "at"], {})], rng=rng)
S.add("matmul/expanded_operand", [I("a", N(rng, (1, 3, 4))), I("b", N(rng, (2, 4, 2)))],
      [("ae", "expand", ["a"], {"shape": [2, 3, 4]}), ("y", "matmul", ["ae", "b"], {})], rng=rng)

# ---- shapes and views ------------------------------------------------------

rng = rng_for("views")
V = []  # (id, input shape, prog)
for shp, tgt in [((3, 4), [2, 6]), ((3, 4), [-1]), ((2, 3, 4), [4, -1, 2]), ((3, 4), [1, 12, 1]),
                 ((1,), []), ((), [1, 1]), ((2, 3, 4), [24])]:
    V.append((f"reshape/{list(shp)}->{tgt}", shp, [("y", "reshape", ["a"], {"shape": tgt})]))
V.append(("reshape/noncontig_needs_copy", (4, 3),
          [("at", "t", ["a"], {}), ("y", "reshape", ["at"], {"shape": [12]})]))
V.append(("reshape/noncontig_split_dim", (4, 6),
          [("at", "t", ["a"], {}), ("y", "reshape", ["at"], {"shape": [2, 3, -1]})]))
for shp, tgt in [((3, 4), [2, 2, 3]), ((2, 3, 4), [6, -1]), ((6,), [3, 2]), ((1, 5), [5])]:
    V.append((f"view/{list(shp)}->{tgt}", shp, [("y", "view", ["a"], {"shape": tgt})]))
V.append(("view/of_selected_row", (2, 3, 4),
          [("s", "select", ["a"], {"dim": 0, "index": 1}), ("y", "view", ["s"], {"shape": [12]})]))
V.append(("view/of_transposed_compatible", (4, 3),
          [("at", "t", ["a"], {}), ("y", "view", ["at"], {"shape": [3, 2, 2]})]))
for shp, d0, d1 in [((3, 4), 0, 1), ((2, 3, 4), 0, 2), ((2, 3, 4), -1, -2), ((2, 3, 4), 1, -3),
                    ((3, 4), 1, 1)]:
    V.append((f"transpose/{list(shp)}/{d0},{d1}", shp,
              [("y", "transpose", ["a"], {"dim0": d0, "dim1": d1})]))
V.append(("t/[3,4]", (3, 4), [("y", "t", ["a"], {})]))
V.append(("t/twice", (3, 4), [("x", "t", ["a"], {}), ("y", "t", ["x"], {})]))
for shp, dims in [((2, 3, 4), [2, 0, 1]), ((2, 3, 4), [-1, 0, 1]), ((2, 3, 4), [1, 2, 0]),
                  ((2, 3, 1, 2), [3, 1, 0, 2]), ((3, 4), [1, 0])]:
    V.append((f"permute/{list(shp)}/{dims}", shp, [("y", "permute", ["a"], {"dims": dims})]))
for shp, dim in [((3, 1, 4), 1), ((3, 1, 4), -2), ((3, 1, 4), 0), ((1,), 0), ((3, 4, 1), -1)]:
    V.append((f"squeeze/{list(shp)}/dim={dim}", shp, [("y", "squeeze", ["a"], {"dim": dim})]))
for shp in [(1, 3, 1, 4), (1, 1), (3, 4), (1,)]:
    V.append((f"squeeze_all/{list(shp)}", shp, [("y", "squeeze_all", ["a"], {})]))
for shp, dim in [((3, 4), 0), ((3, 4), 1), ((3, 4), 2), ((3, 4), -1), ((3, 4), -3), ((), 0),
                 ((), -1), ((5,), 1)]:
    V.append((f"unsqueeze/{list(shp)}/dim={dim}", shp, [("y", "unsqueeze", ["a"], {"dim": dim})]))
for shp, s, e in [((2, 3, 4), 0, -1), ((2, 3, 4), 1, 2), ((2, 3, 4), 0, 1), ((2, 3, 4), -2, -1),
                  ((2, 3, 4), 1, 1), ((5,), 0, -1), ((2, 1, 3, 2), 1, 3)]:
    V.append((f"flatten/{list(shp)}/{s}..{e}", shp,
              [("y", "flatten", ["a"], {"start_dim": s, "end_dim": e})]))
V.append(("flatten/noncontig", (4, 3, 2),
          [("ap", "permute", ["a"], {"dims": [2, 0, 1]}),
           ("y", "flatten", ["ap"], {"start_dim": 0, "end_dim": 1})]))
for shp, tgt in [((3, 1), [3, 4]), ((1, 4), [3, 4]), ((4,), [2, 3, 4]), ((3, 1), [-1, 4]),
                 ((2, 1, 3), [2, 4, 3]), ((), [2, 3]), ((1,), [5]), ((3, 1), [2, 3, 5]),
                 ((3, 4), [3, 4])]:
    V.append((f"expand/{list(shp)}->{tgt}", shp, [("y", "expand", ["a"], {"shape": tgt})]))
V.append(("expand/transposed_input", (1, 3),
          [("at", "t", ["a"], {}), ("y", "expand", ["at"], {"shape": [2, 3, 4]})]))
for shp, dim, idx in [((3, 4), 0, 1), ((3, 4), 0, -1), ((3, 4), 1, 2), ((3, 4), -1, -4),
                      ((2, 3, 4), 1, 2), ((2, 3, 4), 2, 0), ((2, 3, 4), -2, -3), ((5,), 0, 3),
                      ((5,), 0, -5)]:
    V.append((f"select/{list(shp)}/dim={dim}/index={idx}", shp,
              [("y", "select", ["a"], {"dim": dim, "index": idx})]))
for shp, dim, st, en, sp in [((6, 5), 0, 1, 5, 1), ((6, 5), 0, 0, END, 2), ((6, 5), 1, 1, END, 3),
                             ((6, 5), -1, -3, END, 1), ((6, 5), 0, 2, 100, 2),
                             ((6, 5), 0, 0, -1, 1), ((6, 5), 1, -100, 3, 1),
                             ((6, 5), -2, -4, -1, 2), ((2, 6, 3), 1, 1, 6, 2),
                             ((2, 6, 3), -1, 0, END, 2), ((7,), 0, 0, END, 3)]:
    V.append((f"slice/{list(shp)}/dim={dim}/{st}:{en}:{sp}", shp,
              [("y", "slice", ["a"], {"dim": dim, "start": st, "end": en, "step": sp})]))
V.append(("slice/of_slice", (8, 3),
          [("s1", "slice", ["a"], {"dim": 0, "start": 1, "end": END, "step": 2}),
           ("y", "slice", ["s1"], {"dim": 0, "start": 1, "end": 4, "step": 2})]))
V.append(("chain/transpose_select_slice", (3, 4, 5),
          [("x", "transpose", ["a"], {"dim0": 0, "dim1": 2}),
           ("s", "select", ["x"], {"dim": 1, "index": -1}),
           ("y", "slice", ["s"], {"dim": 1, "start": 0, "end": END, "step": 2})]))
V.append(("chain/permute_reshape_expand", (2, 3, 1),
          [("x", "permute", ["a"], {"dims": [2, 0, 1]}),
           ("r", "reshape", ["x"], {"shape": [1, 6]}),
           ("y", "expand", ["r"], {"shape": [3, 6]})]))
V.append(("contiguous/of_transposed", (3, 4),
          [("at", "t", ["a"], {}), ("y", "contiguous", ["at"], {})]))
V.append(("contiguous/of_contiguous", (3, 4), [("y", "contiguous", ["a"], {})]))
for vid, shp, prog in V:
    S.add(vid, [I("a", N(rng, shp))], prog, rng=rng)
# a view used next to its base: gradients from both paths accumulate
S.add("views/base_and_view_both_used", [I("a", N(rng, (3, 4)))],
      [("v", "select", ["a"], {"dim": 1, "index": 2}), ("vu", "unsqueeze", ["v"], {"dim": 1}),
       ("y", "mul", ["a", "vu"], {})], rng=rng)
S.add("views/expand_then_mul", [I("a", N(rng, (3, 1))), I("b", N(rng, (2, 3, 4)))],
      [("e", "expand", ["a"], {"shape": [2, 3, 4]}), ("y", "mul", ["e", "b"], {})], rng=rng)

# ---- cat / stack -------------------------------------------------------------

rng = rng_for("catstack")
for shapes, dim in [([(2, 3), (4, 3)], 0), ([(3, 2), (3, 4), (3, 1)], 1), ([(3, 2), (3, 4)], -1),
                    ([(3,), (5,)], 0), ([(2, 3, 4), (2, 1, 4), (2, 2, 4)], 1),
                    ([(2, 3, 4), (2, 3, 2)], -1), ([(1, 3, 4), (2, 3, 4)], -3), ([(3, 4)], 0),
                    ([(2, 2), (2, 2), (2, 2), (2, 2)], 1)]:
    names = [f"x{k}" for k in range(len(shapes))]
    S.add(f"cat/{[list(s) for s in shapes]}/dim={dim}",
          [I(n, N(rng, s)) for n, s in zip(names, shapes)],
          [("y", "cat", names, {"dim": dim})], rng=rng)
S.add("cat/noncontig_inputs", [I("a", N(rng, (4, 3))), I("b", N(rng, (3, 8)))],
      [("at", "t", ["a"], {}), ("bs", "slice", ["b"], {"dim": 1, "start": 0, "end": END, "step": 2}),
       ("y", "cat", ["at", "bs"], {"dim": 0})], rng=rng)
S.add("cat/same_tensor_twice", [I("a", N(rng, (2, 3)))],
      [("y", "cat", ["a", "a"], {"dim": 1})], rng=rng)
S.add("cat/grad_one_input_only", [I("a", N(rng, (2, 3))), I("b", N(rng, (1, 3)), rg=False)],
      [("y", "cat", ["a", "b"], {"dim": 0})], rng=rng)
for shp, n, dim in [((3, 4), 3, 0), ((3, 4), 3, 1), ((3, 4), 3, 2), ((3, 4), 2, -1),
                    ((3, 4), 2, -3), ((5,), 2, 0), ((5,), 3, 1), ((), 3, 0), ((2, 1, 3), 2, 2)]:
    names = [f"x{k}" for k in range(n)]
    S.add(f"stack/{n}x{list(shp)}/dim={dim}", [I(nm, N(rng, shp)) for nm in names],
          [("y", "stack", names, {"dim": dim})], rng=rng)
S.add("stack/same_tensor_twice", [I("a", N(rng, (2, 3)))],
      [("y", "stack", ["a", "a"], {"dim": 1})], rng=rng)
S.add("stack/noncontig", [I("a", N(rng, (4, 3))), I("b", N(rng, (3, 4)))],
      [("at", "t", ["a"], {}), ("y", "stack", ["at", "b"], {"dim": -1})], rng=rng)

# ---- index_select / gather ------------------------------------------------------

rng = rng_for("indexing")
for shp, dim, idx in [((5, 3), 0, [0, 2, 2, 4]), ((5, 3), 1, [2, 0]), ((5, 3), -1, [1, 1, 1, 0]),
                      ((2, 3, 4), 1, [2, 2, 0, 1]), ((2, 3, 4), -2, [1]), ((2, 3, 4), 2, [3, 0]),
                      ((6,), 0, [5, 0, 5, 3]), ((5, 3), 0, [])]:
    S.add(f"index_select/{list(shp)}/dim={dim}/{idx}", [I("a", N(rng, shp)), IDX("i", idx)],
          [("y", "index_select", ["a", "i"], {"dim": dim})], rng=rng)
S.add("index_select/noncontig", [I("a", N(rng, (3, 5))), IDX("i", [4, 0, 4])],
      [("at", "t", ["a"], {}), ("y", "index_select", ["at", "i"], {"dim": 0})], rng=rng)
for shp, dim, ishape in [((3, 4), 1, (3, 2)), ((3, 4), 0, (2, 4)), ((3, 4), -1, (3, 6)),
                         ((3, 4), 1, (2, 3)), ((2, 3, 4), 1, (2, 2, 4)), ((2, 3, 4), -1, (1, 3, 2)),
                         ((2, 3, 4), 0, (3, 3, 4)), ((5,), 0, (7,))]:
    size = shp[dim]
    idx = rng.integers(0, size, ishape).astype(np.float32)
    S.add(f"gather/{list(shp)}/dim={dim}/index{list(ishape)}", [I("a", N(rng, shp)), IDX("i", idx)],
          [("y", "gather", ["a", "i"], {"dim": dim})], rng=rng)
S.add("gather/noncontig_input", [I("a", N(rng, (4, 3))), IDX("i", [[0, 3], [2, 2], [1, 0]])],
      [("at", "t", ["a"], {}), ("y", "gather", ["at", "i"], {"dim": 1})], rng=rng)
S.add("gather/log_softmax_nll", [I("x", N(rng, (4, 5))), IDX("t", [[1], [0], [4], [4]])],
      [("ls", "log_softmax", ["x"], {"dim": 1}), ("g", "gather", ["ls", "t"], {"dim": 1}),
       ("m", "mean_all", ["g"], {}), ("y", "neg", ["m"], {})], backward="none", rng=rng)

# ---- comparisons and where --------------------------------------------------------

rng = rng_for("compare")
for op in ["eq", "ne", "lt", "le", "gt", "ge"]:
    for sa, sb in [((3, 4), (3, 4)), ((3, 4), (4,)), ((), (3, 4)), ((3, 1), (1, 4)), ((2, 3), ())]:
        a = rng.integers(-1, 2, sa).astype(np.float32)
        b = rng.integers(-1, 2, sb).astype(np.float32)
        S.add(f"{op}/{list(sa)}x{list(sb)}", [I("a", a), I("b", b)], [("y", op, ["a", "b"], {})],
              backward=None)
    a = rng.integers(-1, 2, (4, 3)).astype(np.float32)
    b = rng.integers(-1, 2, (3, 4)).astype(np.float32)
    S.add(f"{op}/noncontig", [I("a", a), I("b", b)],
          [("at", "t", ["a"], {}), ("y", op, ["at", "b"], {})], backward=None)
for op in ["gt_scalar", "lt_scalar"]:
    for s in [0.0, 0.5]:
        x = np.array([[-1.0, 0.0, 0.5], [1.0, 0.5, 0.25]], np.float32)
        S.add(f"{op}/s={s}", [I("a", x)], [("y", op, ["a"], {"s": s})], backward=None)
        S.add(f"{op}/s={s}/0d", [I("a", 0.5)], [("y", op, ["a"], {"s": s})], backward=None)
for sc, sa, sb in [((3, 4), (3, 4), (3, 4)), ((3, 1), (1, 4), ()), ((), (3, 4), (4,)),
                   ((2, 1, 4), (3, 1), (2, 3, 4)), ((4,), (3, 4), (3, 1))]:
    cond = rng.integers(0, 2, sc).astype(np.float32)
    S.add(f"where/{list(sc)},{list(sa)},{list(sb)}",
          [I("c", cond, rg=False), I("a", N(rng, sa)), I("b", N(rng, sb))],
          [("y", "where", ["c", "a", "b"], {})], rng=rng)
S.add("where/cond_from_gt_grad_does_not_reach_cond_inputs",
      [I("p", N(rng, (3, 4))), I("q", N(rng, (4,))), I("a", N(rng, (3, 4))), I("b", N(rng, (3, 4)))],
      [("c", "gt", ["p", "q"], {}), ("y", "where", ["c", "a", "b"], {})], rng=rng)
S.add("where/cond_float_nonzero", [I("c", [[0.0, 2.5, -1.0]], rg=False), I("a", N(rng, (2, 3))),
                                   I("b", N(rng, (2, 3)))],
      [("y", "where", ["c", "a", "b"], {})], rng=rng)
S.add("where/same_tensor_both_branches", [I("c", [1.0, 0.0, 1.0], rg=False), I("a", N(rng, (3,)))],
      [("y", "where", ["c", "a", "a"], {})], rng=rng)
S.add("where/noncontig", [I("c", rng.integers(0, 2, (4, 3)), rg=False), I("a", N(rng, (4, 3))),
                          I("b", N(rng, (3, 4)))],
      [("ct", "t", ["c"], {}), ("at", "t", ["a"], {}), ("y", "where", ["ct", "at", "b"], {})], rng=rng)
S.add("compare/outputs_do_not_require_grad", [I("a", N(rng, (3,))), I("b", N(rng, (3,)))],
      [("y", "lt", ["a", "b"], {}), ("z", "argmax", ["a"], {"dim": 0})], outputs=["y", "z"],
      backward=None)

# ---- composite graphs ---------------------------------------------------------------

rng = rng_for("composite")
S.add("composite/(a+b+c[0])*(a+b+c[0])",
      [I("a", N(rng, (3, 4))), I("b", N(rng, (3, 4))), I("c", N(rng, (2, 3, 4)))],
      [("c0", "select", ["c"], {"dim": 0, "index": 0}), ("s1", "add", ["a", "b"], {}),
       ("l", "add", ["s1", "c0"], {}), ("c0b", "select", ["c"], {"dim": 0, "index": 0}),
       ("s2", "add", ["a", "b"], {}), ("r", "add", ["s2", "c0b"], {}), ("d", "mul", ["l", "r"], {})],
      rng=rng)
S.add("composite/e=a+b+c[0];e*e",
      [I("a", N(rng, (3, 4))), I("b", N(rng, (4,))), I("c", N(rng, (2, 3, 4)))],
      [("c0", "select", ["c"], {"dim": 0, "index": 0}), ("s1", "add", ["a", "b"], {}),
       ("e", "add", ["s1", "c0"], {}), ("d", "mul", ["e", "e"], {})], rng=rng)
S.add("composite/3*a.pow(5)+b", [I("a", N(rng, (3, 4))), I("b", N(rng, (3, 4)))],
      [("p", "pow_scalar", ["a"], {"s": 5.0}), ("m", "mul_scalar", ["p"], {"s": 3.0}),
       ("y", "add", ["m", "b"], {})], rng=rng)
S.add("composite/(a@b+b).sum()_1d", [I("a", N(rng, (5,))), I("b", N(rng, (5,)))],
      [("ab", "matmul", ["a", "b"], {}), ("s", "add", ["ab", "b"], {}), ("y", "sum_all", ["s"], {})],
      outputs=["ab", "y"], backward="none", rng=rng)
S.add("composite/(a@b+b).sum(dims)_1d", [I("a", N(rng, (5,))), I("b", N(rng, (5,)))],
      [("ab", "matmul", ["a", "b"], {}), ("s", "add", ["ab", "b"], {}),
       ("y", "sum", ["s"], {"dims": [0], "keepdim": False})], backward="none", rng=rng)
S.add("composite/x*x*x_same_leaf", [I("a", N(rng, (4,)))],
      [("x2", "mul", ["a", "a"], {}), ("y", "mul", ["x2", "a"], {})], rng=rng)
# a shared subgraph used many times
prog = [("s", "mul", ["a", "b"], {}), ("t", "tanh", ["s"], {}), ("acc0", "mul", ["t", "s"], {})]
for k in range(1, 12):
    prog.append((f"u{k}", "mul_scalar", ["t" if k % 2 else "s"], {"s": float(k) / 4}))
    prog.append((f"acc{k}", "add", [f"acc{k-1}", f"u{k}"], {}))
prog.append(("e", "exp", ["s"], {}))
prog.append(("y", "mul", [f"acc{11}", "e"], {}))
S.add("composite/shared_subgraph_used_many_times", [I("a", N(rng, (3, 4))), I("b", N(rng, (4,)))],
      prog, rng=rng)
# diamond: two paths that meet again, nested twice
S.add("composite/double_diamond", [I("a", N(rng, (2, 3)))],
      [("l", "exp", ["a"], {}), ("r", "sigmoid", ["a"], {}), ("m", "mul", ["l", "r"], {}),
       ("l2", "tanh", ["m"], {}), ("r2", "mul", ["m", "a"], {}), ("y", "sub", ["l2", "r2"], {})],
      rng=rng)
# a deep chain: backward must be iterative (no recursion limit)
prog = [("x0", "mul_scalar", ["a"], {"s": 1.0})]
for k in range(1, 3001):
    prog.append((f"x{k}", "add_scalar" if k % 2 else "mul_scalar", [f"x{k-1}"],
                 {"s": 0.001 if k % 2 else 1.0001}))
prog.append(("y", "mul", ["x3000", "b"], {}))
S.add("composite/deep_chain_3000", [I("a", N(rng, (3,))), I("b", N(rng, (3,)))], prog, rng=rng)
# a very deep chain (100k nodes): recursion in backward or in freeing the graph
# would overflow the stack.  Exact float ops, so no rounding drift.
prog = [("x0", "mul_scalar", ["a"], {"s": 1.0})]
for k in range(1, 100001):
    prog.append((f"x{k}", "add_scalar" if k % 2 else "neg", [f"x{k-1}"], {"s": 0.25} if k % 2 else {}))
prog.append(("y", "mul", ["x100000", "b"], {}))
S.add("composite/deep_chain_100k", [I("a", N(rng, (3,))), I("b", N(rng, (3,)))], prog, fd=False,
      backward=N(rng, (3,)),
      rng=rng)
# a small MLP with NLL loss (mean)
S.add("composite/mlp_nll",
      [I("x", N(rng, (4, 3))), I("w1", N(rng, (3, 5), 0.5)), I("b1", N(rng, (5,), 0.1)),
       I("w2", N(rng, (5, 3), 0.5)), I("b2", N(rng, (3,), 0.1)), IDX("t", [[0], [2], [1], [2]])],
      [("h", "matmul", ["x", "w1"], {}), ("hb", "add", ["h", "b1"], {}),
       ("hr", "tanh", ["hb"], {}), ("o", "matmul", ["hr", "w2"], {}), ("ob", "add", ["o", "b2"], {}),
       ("ls", "log_softmax", ["ob"], {"dim": -1}), ("g", "gather", ["ls", "t"], {"dim": 1}),
       ("m", "mean_all", ["g"], {}), ("loss", "neg", ["m"], {})], backward="none", rng=rng)
S.add("composite/mse_like", [I("p", N(rng, (5, 1))), I("t", N(rng, (5, 1)), rg=False)],
      [("d", "sub", ["p", "t"], {}), ("sq", "pow_scalar", ["d"], {"s": 2.0}),
       ("y", "mean_all", ["sq"], {})], backward="none", rng=rng)
S.add("composite/backward_twice_accumulates", [I("a", N(rng, (3,))), I("b", N(rng, (3,)))],
      [("m", "mul", ["a", "b"], {}), ("y", "sum_all", ["m"], {})], backward="none", times=2, rng=rng)
S.add("composite/backward_three_times_nonscalar", [I("a", N(rng, (2, 3)))],
      [("y", "exp", ["a"], {})], times=3, rng=rng)
S.add("composite/two_roots_accumulate", [I("a", N(rng, (3, 2))), I("b", N(rng, (2,)))],
      [("m", "mul", ["a", "b"], {}), ("z", "exp", ["a"], {}), ("s", "sum_all", ["z"], {})],
      outputs=["m", "z", "s"], then=["z", "s"], rng=rng)
S.add("composite/two_roots_shared_subgraph", [I("a", N(rng, (4,))), I("b", N(rng, (4,)))],
      [("h", "tanh", ["a"], {}), ("p", "mul", ["h", "b"], {}), ("q", "matmul", ["h", "b"], {})],
      outputs=["p", "q"], then=["q"], times=2, rng=rng)
S.add("composite/retain_grad_intermediate", [I("a", N(rng, (3, 4))), I("b", N(rng, (4,)))],
      [("s", "mul", ["a", "b"], {}), ("_r", "retain_grad", ["s"], {}), ("t", "tanh", ["s"], {}),
       ("y", "sum", ["t"], {"dims": [1], "keepdim": False})], retain=["s"], rng=rng)
S.add("composite/one_element_root_no_grad_arg", [I("a", N(rng, (1, 3))), I("b", N(rng, (3, 1)))],
      [("y", "matmul", ["a", "b"], {})], backward="none", rng=rng)
S.add("composite/leaf_unused_by_root_has_no_grad", [I("a", N(rng, (3,))), I("b", N(rng, (3,)))],
      [("u", "exp", ["b"], {}), ("y", "exp", ["a"], {})], outputs=["u", "y"], rng=rng)
S.add("composite/grad_through_cat_stack_and_views",
      [I("a", N(rng, (2, 3))), I("b", N(rng, (3,)))],
      [("bu", "unsqueeze", ["b"], {"dim": 0}), ("c", "cat", ["a", "bu"], {"dim": 0}),
       ("ct", "t", ["c"], {}), ("st", "stack", ["ct", "ct"], {"dim": 0}),
       ("r", "reshape", ["st"], {"shape": [2, -1]}), ("y", "softmax", ["r"], {"dim": 1})], rng=rng)
S.add("composite/where_relu_like", [I("a", AWAY(rng, (3, 4), 0.05, 2.0))],
      [("z", "mul_scalar", ["a"], {"s": 0.0}), ("c", "gt_scalar", ["a"], {"s": 0.0}),
       ("y", "where", ["c", "a", "z"], {})], rng=rng)
S.add("composite/detach_blocks_grad", [I("a", N(rng, (3,)))],
      [("d", "detach", ["a"], {}), ("m", "mul", ["a", "d"], {}), ("y", "sum_all", ["m"], {})],
      outputs=["d", "y"], backward="none", fd=False, rng=rng)
S.add("composite/clone_has_no_graph", [I("a", N(rng, (3,)))],
      [("c", "clone", ["a"], {}), ("m", "mul", ["a", "c"], {}), ("y", "sum_all", ["m"], {})],
      outputs=["c", "y"], backward="none", fd=False, rng=rng)
S.add("composite/maximum_minimum_norm", [I("a", N(rng, (4, 3))), I("b", N(rng, (3,)))],
      [("mx", "maximum", ["a", "b"], {}), ("mn", "minimum", ["a", "b"], {}),
       ("d", "sub", ["mx", "mn"], {}), ("q", "sqrt", ["d"], {}),
       ("y", "mean", ["q"], {"dims": [0], "keepdim": True})], rng=rng)

# ---- stride-0 (expanded) inputs, strided index tensors, non-contiguous leaves, no-grad --------

rng = rng_for("stride0")
for name, prog in [
        ("sum", [("y", "sum", ["e"], {"dims": [0], "keepdim": False})]),
        ("sum_all", [("y", "sum_all", ["e"], {})]),
        ("softmax", [("y", "softmax", ["e"], {"dim": 0})]),
        ("log_softmax", [("y", "log_softmax", ["e"], {"dim": -1})]),
        ("max", [("y", "max", ["e"], {"dim": 1, "keepdim": True})]),
        ("cat", [("y", "cat", ["e", "e"], {"dim": 1})]),
        ("contiguous", [("y", "contiguous", ["e"], {})]),
        ("reshape", [("y", "reshape", ["e"], {"shape": [-1]})]),
        ("mul_self", [("y", "mul", ["e", "e"], {})]),
        ("matmul", [("et", "t", ["e"], {}), ("y", "matmul", ["e", "et"], {})]),
        ("gather", [("y", "gather", ["e", "gi"], {"dim": 1})]),
        ("index_select", [("y", "index_select", ["e", "ii"], {"dim": 0})]),
        ("exp", [("y", "exp", ["e"], {})])]:
    S.add(f"stride0/expand_then_{name}", [I("a", DISTINCT(rng, (1, 4))), IDX("gi", [[0, 3], [1, 1], [2, 0]]),
                                          IDX("ii", [2, 0])],
          [("e", "expand", ["a"], {"shape": [3, 4]})] + prog, rng=rng,
          fd=(name != "max"))
S.add("stride0/gather_transposed_index", [I("a", N(rng, (3, 4))), IDX("i", [[0, 1, 2], [3, 3, 0]])],
      [("it", "t", ["i"], {}), ("y", "gather", ["a", "it"], {"dim": 1})], rng=rng)
S.add("stride0/index_select_strided_index", [I("a", N(rng, (5, 2))), IDX("i", [4, 9, 0, 9, 2, 9])],
      [("is", "slice", ["i"], {"dim": 0, "start": 0, "end": END, "step": 2}),
       ("y", "index_select", ["a", "is"], {"dim": 0})], rng=rng)
S.add("stride0/where_expanded_cond", [I("c", [[1.0], [0.0], [1.0]], rg=False), I("a", N(rng, (3, 4))),
                                      I("b", N(rng, (3, 4)))],
      [("ce", "expand", ["c"], {"shape": [3, 4]}), ("y", "where", ["ce", "a", "b"], {})], rng=rng)
S.add("stride0/reshape_strided_slice_copies", [I("a", N(rng, (4, 6)))],
      [("s", "slice", ["a"], {"dim": 1, "start": 0, "end": END, "step": 2}),
       ("y", "reshape", ["s"], {"shape": [3, 4]})], rng=rng)
S.add("leaf/noncontiguous_leaf_via_detach", [I("x", N(rng, (4, 3)), rg=False), I("b", N(rng, (4,)))],
      [("xt", "t", ["x"], {}), ("w", "detach", ["xt"], {}), ("_r", "requires_grad_", ["w"], {}),
       ("m", "mul", ["w", "b"], {}), ("y", "tanh", ["m"], {})], retain=["w"], fd=False, rng=rng)
S.add("leaf/root_is_the_leaf_itself", [I("a", N(rng, (2, 3)))],
      [("y", "contiguous", ["a"], {})], rng=rng)
S.add("leaf/root_is_view_of_leaf", [I("a", N(rng, (2, 3)))],
      [("y", "t", ["a"], {})], times=2, rng=rng)
S.add("nograd/node_under_no_grad_blocks_gradient", [I("a", N(rng, (3,)))],
      [("e", "exp", ["a"], {"_no_grad": True}), ("y", "mul", ["a", "e"], {})], outputs=["e", "y"],
      fd=False, rng=rng)
S.add("nograd/everything_under_no_grad", [I("a", N(rng, (3,))), I("b", N(rng, (3,)))],
      [("m", "mul", ["a", "b"], {"_no_grad": True}), ("s", "softmax", ["m"], {"dim": 0, "_no_grad": True}),
       ("y", "matmul", ["s", "b"], {"_no_grad": True})], outputs=["m", "s", "y"], backward=None)
S.add("ties/pow_tensor_zero_base", [I("a", [0.0, 0.0, 2.0]), I("b", [2.0, 0.0, 3.0])],
      [("y", "pow", ["a", "b"], {})], fd=False, rng=rng)

# PyTorch 1.13's float32 exact-GELU backward returns garbage when grad_output is
# non-contiguous (float64 is right); check_diff falls back to float64 there and says so.
rng = rng_for("oracle")
S.add("oracle/gelu_backward_noncontiguous_grad_output", [I("a", N(rng, (4, 2)))],
      [("g", "gelu", ["a"], {"approx": False}), ("y", "t", ["g"], {})], rng=rng)

# ---- ownership: the caller drops its references early (graph/storage keep what they need) ----

rng = rng_for("free")
S.add("free/intermediates_before_backward", [I("a", N(rng, (3, 4))), I("b", N(rng, (4,)))],
      [("m", "mul", ["a", "b"], {}), ("e", "tanh", ["m"], {}), ("_", "free", ["m"], {}),
       ("s", "sum", ["e"], {"dims": [1], "keepdim": False}), ("_", "free", ["e"], {}),
       ("y", "mul", ["s", "s"], {})], rng=rng)
S.add("free/every_intermediate_as_it_goes", [I("a", N(rng, (2, 3))), I("w", N(rng, (3, 2)))],
      [("h", "matmul", ["a", "w"], {}), ("t", "sigmoid", ["h"], {}), ("_", "free", ["h"], {}),
       ("tt", "t", ["t"], {}), ("_", "free", ["t"], {}), ("sl", "slice", ["tt"], {"dim": 1, "start": 0, "end": END, "step": 1}),
       ("_", "free", ["tt"], {}), ("y", "log_softmax", ["sl"], {"dim": 0}), ("_", "free", ["sl"], {})],
      rng=rng)
S.add("free/constant_input_after_use", [I("a", N(rng, (3,))), I("c", N(rng, (3,)), rg=False)],
      [("d", "sub", ["a", "c"], {}), ("_", "free", ["c"], {}), ("y", "pow_scalar", ["d"], {"s": 2.0})],
      rng=rng)
S.add("free/base_of_a_view", [I("x", N(rng, (3, 4)), rg=False)],
      [("v", "slice", ["x"], {"dim": 1, "start": 1, "end": END, "step": 2}), ("_", "free", ["x"], {}),
       ("y", "mul_scalar", ["v"], {"s": 2.0})], outputs=["v", "y"], backward=None)
S.add("free/view_of_leaf_before_backward", [I("a", N(rng, (3, 4)))],
      [("v", "transpose", ["a"], {"dim0": 0, "dim1": 1}), ("e", "expand", ["v"], {"shape": [2, 4, 3]}),
       ("_", "free", ["v"], {}), ("y", "exp", ["e"], {}), ("_", "free", ["e"], {})], times=2, rng=rng)

# ---- in place and view semantics (forward only: writes through views) -------------------

rng = rng_for("inplace")
VS = [
    ("fill_/slice_view_writes_base", [("v", "slice", ["a"], {"dim": 1, "start": 1, "end": END, "step": 2}),
                                      ("_f", "fill_", ["v"], {"value": 7.0})], ["a", "v"]),
    ("fill_/select_of_transpose_writes_base",
     [("t", "transpose", ["a"], {"dim0": 0, "dim1": 1}), ("s", "select", ["t"], {"dim": 0, "index": 2}),
      ("_f", "fill_", ["s"], {"value": -1.0})], ["a", "t"]),
    ("fill_/base_write_visible_in_view",
     [("v", "view", ["a"], {"shape": [2, 6]}), ("p", "permute", ["a"], {"dims": [1, 0]}),
      ("r", "select", ["a"], {"dim": 0, "index": 1}), ("_f", "fill_", ["r"], {"value": 3.0})],
     ["v", "p", "a"]),
    ("copy_/into_view_broadcast", [("v", "view", ["a"], {"shape": [2, 6]}),
                                   ("_c", "copy_", ["v", "b"], {})], ["a"]),
    ("copy_/into_transposed_slice",
     [("t", "t", ["a"], {}), ("s", "slice", ["t"], {"dim": 0, "start": 0, "end": 2, "step": 1}),
      ("_c", "copy_", ["s", "c"], {})], ["a"]),
    ("copy_/from_noncontig_src", [("ct", "t", ["d"], {}), ("_c", "copy_", ["a", "ct"], {})], ["a"]),
    ("fill_/through_detach", [("d", "detach", ["a"], {}), ("_f", "fill_", ["d"], {"value": 2.0})],
     ["a", "d"]),
    ("fill_/clone_is_a_copy", [("c", "clone", ["a"], {}), ("_f", "fill_", ["c"], {"value": 0.0})],
     ["a", "c"]),
    ("fill_/reshape_of_contiguous_is_view",
     [("r", "reshape", ["a"], {"shape": [4, 3]}), ("s", "select", ["r"], {"dim": 0, "index": 0}),
      ("_f", "fill_", ["s"], {"value": 9.0})], ["a"]),
    ("fill_/reshape_of_transposed_is_copy",
     [("t", "t", ["a"], {}), ("r", "reshape", ["t"], {"shape": [12]}),
      ("_f", "fill_", ["r"], {"value": 9.0})], ["a", "r"]),
    ("fill_/unsqueeze_squeeze_flatten_views",
     [("u", "unsqueeze", ["a"], {"dim": 0}), ("q", "squeeze", ["u"], {"dim": 0}),
      ("f", "flatten", ["q"], {"start_dim": 0, "end_dim": -1}),
      ("s", "slice", ["f"], {"dim": 0, "start": 0, "end": END, "step": 5}),
      ("_f", "fill_", ["s"], {"value": -4.0})], ["a", "u"]),
    ("fill_/contiguous_of_contiguous_shares", [("c", "contiguous", ["a"], {}),
                                               ("_f", "fill_", ["c"], {"value": 1.5})], ["a"]),
    ("fill_/contiguous_of_transposed_copies", [("t", "t", ["a"], {}), ("c", "contiguous", ["t"], {}),
                                               ("_f", "fill_", ["c"], {"value": 1.5})], ["a", "c"]),
    ("fill_/expand_reads_updated_base", [("e", "expand", ["b"], {"shape": [3, 4]}),
                                         ("_f", "fill_", ["b"], {"value": 0.5})], ["e"]),
]
for vid, prog, outs in VS:
    S.add(vid, [I("a", N(rng, (3, 4)), rg=False), I("b", N(rng, (1, 6)) if "broadcast" in vid else N(rng, (4,)), rg=False),
                I("c", N(rng, (2, 3)), rg=False), I("d", N(rng, (4, 3)), rg=False)],
          prog, outputs=outs, backward=None)
# element access and et_copy_from through views
S.add("get/strided_negative_index", [I("a", N(rng, (3, 4)), rg=False)],
      [("t", "t", ["a"], {}), ("s", "slice", ["t"], {"dim": 1, "start": 0, "end": END, "step": 2}),
       ("y", "get", ["s"], {"index": [-1, 1]})], outputs=["y"], backward=None)
S.add("get/0d", [I("a", 1.25, rg=False)], [("y", "get", ["a"], {"index": []})], backward=None)
S.add("item/one_element", [I("a", N(rng, (1, 1)), rg=False)], [("y", "item", ["a"], {})], backward=None)
S.add("copy_from/through_transposed_slice", [I("a", N(rng, (3, 4)), rg=False)],
      [("t", "t", ["a"], {}), ("s", "slice", ["t"], {"dim": 0, "start": 1, "end": END, "step": 2}),
       ("_c", "copy_from", ["s"], {"data": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})], outputs=["a", "s"],
      backward=None)
# in-place on a leaf that requires grad (what an optimizer does), then use it
S.add("fill_/leaf_param_then_forward", [I("w", N(rng, (2, 3))), I("x", N(rng, (3,)), rg=False)],
      [("_f", "fill_", ["w"], {"value": 0.5}), ("y", "matmul", ["w", "x"], {})],
      outputs=["w", "y"], fd=False, rng=rng)
S.add("copy_/leaf_param_then_forward", [I("w", N(rng, (2, 3))), I("s", N(rng, (3,)), rg=False)],
      [("_c", "copy_", ["w", "s"], {}), ("y", "tanh", ["w"], {})], outputs=["w", "y"], fd=False,
      rng=rng)

# ---- edge cases: empty tensors and 0-d ----------------------------------------------

rng = rng_for("edge")
S.add("edge/sum_all_empty", [I("a", np.zeros((0, 3), np.float32))], [("y", "sum_all", ["a"], {})],
      fd=False, backward="none", rng=rng)
S.add("edge/sum_dim_empty", [I("a", np.zeros((2, 0), np.float32))],
      [("y", "sum", ["a"], {"dims": [1], "keepdim": False})], fd=False, rng=rng)
S.add("edge/cat_with_empty", [I("a", N(rng, (2, 3))), I("b", np.zeros((0, 3), np.float32))],
      [("y", "cat", ["a", "b"], {"dim": 0})], fd=False, rng=rng)
S.add("edge/slice_empty_range", [I("a", N(rng, (4, 3)))],
      [("s", "slice", ["a"], {"dim": 0, "start": 3, "end": 1, "step": 1}),
       ("y", "sum_all", ["s"], {})], outputs=["s", "y"], fd=False, backward="none", rng=rng)
S.add("edge/add_0d_0d_grad", [I("a", 1.5), I("b", -0.25)],
      [("m", "mul", ["a", "b"], {}), ("y", "exp", ["m"], {})], backward="none", rng=rng)
S.add("edge/0d_unsqueeze_expand_sum", [I("a", 0.75)],
      [("u", "unsqueeze", ["a"], {"dim": 0}), ("e", "expand", ["u"], {"shape": [2, 3]}),
       ("y", "sum_all", ["e"], {})], backward="none", rng=rng)
S.add("edge/max_all_0d", [I("a", 2.0)], [("y", "max_all", ["a"], {})], backward="none", rng=rng)
S.add("edge/matmul_k1", [I("a", N(rng, (3, 1))), I("b", N(rng, (1, 2)))],
      [("y", "matmul", ["a", "b"], {})], rng=rng)

# ---- larger tensors: vectorised loops, BLAS paths, long reductions (no finite differences) ----

rng = rng_for("large")
for sa, sb in [((64, 257), (257,)), ((33, 1, 65), (1, 17, 65)), ((5, 1, 7, 1), (1, 6, 1, 9)),
               ((2, 3, 1, 5, 1), (3, 4, 1, 6))]:
    for op in ["add", "mul", "div"]:
        a, b = bin_data(op, rng, sa, sb)
        S.add(f"large/{op}/{list(sa)}x{list(sb)}", [I("a", a), I("b", b)],
              [("y", op, ["a", "b"], {})], fd=False, rng=rng)
for op, p in [("gelu", {"approx": False}), ("gelu", {"approx": True}), ("tanh", {}),
              ("sigmoid", {}), ("exp", {}), ("relu", {})]:
    S.add(f"large/{op}{p}/[100,101]", [I("a", AWAY(rng, (100, 101), 0.01, 3.0))],
          [("y", op, ["a"], p)], fd=False, rng=rng)
for op in ["sum", "mean"]:
    for shp, dims in [((128, 300), [0]), ((128, 300), [1]), ((20, 30, 40), [0, 2]), ((20, 30, 40), [1])]:
        S.add(f"large/{op}/{list(shp)}/dims={dims}", [I("a", N(rng, shp))],
              [("y", op, ["a"], {"dims": dims, "keepdim": False})], fd=False, rng=rng)
    S.add(f"large/{op}/transposed", [I("a", N(rng, (300, 128)))],
          [("at", "t", ["a"], {}), ("y", op, ["at"], {"dims": [1], "keepdim": True})], fd=False, rng=rng)
    S.add(f"large/{op}_all/[200,300]", [I("a", U(rng, (200, 300), 0.0, 1.0))],
          [("y", op + "_all", ["a"], {})], fd=False, backward="none", rng=rng)
for sa, sb, tr in [((64, 128), (128, 96), ""), ((4, 33, 65), (65, 17), ""), ((96, 64), (128, 96), "ab"),
                   ((3, 1, 40, 50), (2, 50, 30), ""), ((200,), (200, 7), ""), ((7, 200), (200,), "")]:
    prog, a_in, b_in = [], "a", "b"
    if "a" in tr:
        prog.append(("at", "t", ["a"], {}))
        a_in = "at"
    if "b" in tr:
        prog.append(("bt", "t", ["b"], {}))
        b_in = "bt"
    prog.append(("y", "matmul", [a_in, b_in], {}))
    S.add(f"large/matmul/{list(sa)}@{list(sb)}{'/T' + tr if tr else ''}",
          [I("a", N(rng, sa)), I("b", N(rng, sb))], prog, fd=False, rng=rng)
for op in ["softmax", "log_softmax"]:
    for dim in [-1, 0]:
        S.add(f"large/{op}/[32,1000]/dim={dim}", [I("a", N(rng, (32, 1000), 3.0))],
              [("y", op, ["a"], {"dim": dim})], fd=False, rng=rng)
for op in ["max", "min"]:
    S.add(f"large/{op}/[50,200]/dim=1", [I("a", DISTINCT(rng, (50, 200)))],
          [("y", op, ["a"], {"dim": 1, "keepdim": False})], outputs=["y", "y.indices"], fd=False,
          rng=rng)
S.add("large/argmax/[50,200]", [I("a", DISTINCT(rng, (50, 200)))],
      [("y", "argmax", ["a"], {"dim": 0, "keepdim": True})], backward=None)
S.add("large/index_select/[1000,8]", [I("a", N(rng, (1000, 8))), IDX("i", rng.integers(0, 1000, 3000))],
      [("y", "index_select", ["a", "i"], {"dim": 0})], fd=False, rng=rng)
S.add("large/gather/[64,500]", [I("a", N(rng, (64, 500))), IDX("i", rng.integers(0, 500, (64, 30)))],
      [("y", "gather", ["a", "i"], {"dim": 1})], fd=False, rng=rng)
S.add("large/cat_stack", [I("a", N(rng, (100, 30))), I("b", N(rng, (100, 30)))],
      [("c", "cat", ["a", "b"], {"dim": 1}), ("s", "stack", ["c", "c"], {"dim": 1}),
       ("y", "permute", ["s"], {"dims": [2, 0, 1]})], fd=False, rng=rng)
S.add("large/where_maximum", [I("a", N(rng, (80, 90))), I("b", N(rng, (90,)))],
      [("c", "gt", ["a", "b"], {}), ("m", "maximum", ["a", "b"], {}),
       ("y", "where", ["c", "m", "b"], {})], fd=False, rng=rng)

# ---- random programs: op interplay (fixed seeds, validated by PyTorch while built) ----------

def _try_shape(case):
    """Shape and values of the last node under PyTorch, or None if PyTorch rejects it."""
    try:
        env, _ = run_torch(case, torch.float32, backward=False)
    except TorchFailure:
        return None
    return env[case["prog"][-1]["out"]].detach()


def fuzz_case(rng, k):
    base = [int(v) for v in rng.integers(1, 5, rng.integers(1, 4))]
    inputs, avail = [], []

    def new_leaf(shape, rg=True):
        name = f"l{len(inputs)}"
        inputs.append(I(name, N(rng, tuple(shape)), rg=rg))
        return name

    for j in range(int(rng.integers(2, 4))):
        shp = list(base[int(rng.integers(0, len(base))):]) if j else list(base)
        shp = [1 if rng.random() < 0.25 else d for d in shp]
        avail.append(new_leaf(shp))
    prog = []
    steps = int(rng.integers(3, 9))
    tries = 0
    while len(prog) < steps and tries < 200:
        tries += 1
        x = avail[-1] if rng.random() < 0.6 else avail[int(rng.integers(0, len(avail)))]
        y = avail[int(rng.integers(0, len(avail)))]
        cur = _try_shape({"inputs": inputs, "prog": [dict(n) for n in prog] + [
            {"out": "_probe", "op": "contiguous", "in": [x], "p": {}}]})
        if cur is None:
            continue
        nd = cur.dim()
        out = f"v{len(prog)}"
        kind = rng.choice(["unary", "unary", "binary", "binary", "shape", "shape", "reduce",
                           "matmul", "catstack", "index", "where"])
        d = int(rng.integers(-nd, nd)) if nd else 0
        node = None
        if kind == "unary":
            op = rng.choice(["tanh", "sigmoid", "neg", "gelu", "mul_scalar", "add_scalar",
                             "pow_scalar", "exp", "leaky_relu"])
            p = {"gelu": {"approx": bool(rng.random() < 0.5)}, "mul_scalar": {"s": -1.5},
                 "add_scalar": {"s": 0.5}, "pow_scalar": {"s": 2.0}, "leaky_relu": {"slope": 0.1}
                 }.get(op, {})
            if op == "exp" and float(cur.abs().max()) > 3:
                continue
            node = (out, op, [x], p)
        elif kind == "binary":
            op = rng.choice(["add", "sub", "mul", "maximum", "minimum", "div"])
            if op == "div":
                other = _try_shape({"inputs": inputs, "prog": [dict(n) for n in prog] + [
                    {"out": "_probe", "op": "contiguous", "in": [y], "p": {}}]})
                if other is None or float(other.abs().min()) < 0.3:
                    continue
            node = (out, op, [x, y], {})
        elif kind == "shape" and nd:
            op = rng.choice(["transpose", "permute", "unsqueeze", "squeeze_all", "slice", "select",
                             "expand", "reshape", "flatten", "t"])
            shp = list(cur.shape)
            if op == "transpose":
                node = (out, op, [x], {"dim0": d, "dim1": int(rng.integers(-nd, nd))})
            elif op == "permute":
                node = (out, op, [x], {"dims": [int(v) for v in rng.permutation(nd)]})
            elif op == "unsqueeze":
                node = (out, op, [x], {"dim": int(rng.integers(-nd - 1, nd + 1))})
            elif op == "squeeze_all":
                node = (out, op, [x], {})
            elif op == "slice":
                node = (out, op, [x], {"dim": d, "start": int(rng.integers(-shp[d], shp[d])),
                                       "end": END, "step": int(rng.integers(1, 3))})
            elif op == "select":
                node = (out, op, [x], {"dim": d, "index": int(rng.integers(-shp[d], shp[d]))})
            elif op == "expand":
                node = (out, op, [x], {"shape": [int(rng.integers(2, 4))] + [
                    int(rng.integers(2, 4)) if v == 1 else -1 for v in shp]})
            elif op == "reshape":
                node = (out, op, [x], {"shape": [-1]})
            elif op == "flatten":
                node = (out, op, [x], {"start_dim": min(d % nd, nd - 1), "end_dim": -1})
            elif op == "t" and nd == 2:
                node = (out, op, [x], {})
        elif kind == "reduce" and nd:
            op = rng.choice(["sum", "mean", "max", "softmax", "log_softmax", "sum_all", "min"])
            if op in ("sum", "mean"):
                dims = sorted({int(v) for v in rng.integers(0, nd, int(rng.integers(1, nd + 1)))})
                node = (out, op, [x], {"dims": dims, "keepdim": bool(rng.random() < 0.5)})
            elif op in ("max", "min"):
                node = (out, op, [x], {"dim": d, "keepdim": bool(rng.random() < 0.5)})
            elif op == "sum_all":
                node = (out, op, [x], {})
            else:
                node = (out, op, [x], {"dim": d})
        elif kind == "matmul" and 1 <= nd <= 4:
            if nd >= 2 and rng.random() < 0.3:   # fresh left operand: w @ x
                w = new_leaf([int(rng.integers(1, 4)), cur.shape[-2]])
                node = (out, "matmul", [w, x], {})
            else:
                w = new_leaf([cur.shape[-1], int(rng.integers(1, 4))] if rng.random() < 0.7
                             else [cur.shape[-1]])
                node = (out, "matmul", [x, w], {})
        elif kind == "catstack" and nd:
            if rng.random() < 0.5:
                node = (out, "cat", [x, x] if rng.random() < 0.5 else [x, new_leaf(list(cur.shape))],
                        {"dim": d})
            else:
                node = (out, "stack", [x, new_leaf(list(cur.shape))],
                        {"dim": int(rng.integers(-nd - 1, nd + 1))})
        elif kind == "index" and nd:
            size = cur.shape[d]
            if rng.random() < 0.5:
                idx = IDX(f"i{len(inputs)}", rng.integers(0, size, int(rng.integers(1, 5))))
                inputs.append(idx)
                node = (out, "index_select", [x, idx["name"]], {"dim": d})
            else:
                ishape = [int(rng.integers(1, v + 1)) for v in cur.shape]
                ishape[d % nd] = int(rng.integers(1, 5))
                idx = IDX(f"i{len(inputs)}", rng.integers(0, size, tuple(ishape)))
                inputs.append(idx)
                node = (out, "gather", [x, idx["name"]], {"dim": d})
        elif kind == "where":
            c = f"c{len(prog)}"
            prog.append({"out": c, "op": "gt", "in": [x, y], "p": {}})
            node = (out, "where", [c, x, y], {})
        if node is None:
            if prog and prog[-1]["op"] == "gt" and kind == "where":
                prog.pop()
            continue
        cand = prog + [{"out": node[0], "op": node[1], "in": list(node[2]), "p": dict(node[3])}]
        val = _try_shape({"inputs": inputs, "prog": cand})
        if val is None or val.numel() == 0 or val.numel() > 300 or val.dim() > 5 \
                or not bool(torch.isfinite(val).all()) or float(val.abs().max()) > 50:
            if kind == "where":
                prog.pop()
            continue
        prog = cand
        avail.append(node[0])
    used = {n for node in prog for n in node["in"]}
    inputs = [i for i in inputs if i["name"] in used]
    tuples = [(n["out"], n["op"], n["in"], n["p"]) for n in prog]
    return inputs, tuples


rng = rng_for("fuzz")
for k in range(150):
    fin, fprog = fuzz_case(rng, k)
    if not fprog:
        continue
    if not any(i["requires_grad"] for i in fin):
        continue
    S.add(f"fuzz/{k:03d}:" + ",".join(n[1] for n in fprog), fin, fprog,
          outputs=[fprog[-1][0]], rng=rng)

# ---- creation functions of tensor.h --------------------------------------------------

for st, en, sp in [(0, 5, 1), (1, 2, 0.25), (-1, 1, 0.3), (5, 0, -1), (0, 1, 0.1), (0, 0, 1),
                   (0.5, 10, 2.5)]:
    S.add(f"arange/{st},{en},{sp}", [], [("y", "arange", [], {"start": st, "end": en, "step": sp})])
for st, en, n in [(0, 1, 5), (-2, 2, 1), (3, -3, 7), (0, 1, 0), (0, 1, 11)]:
    S.add(f"linspace/{st},{en},{n}", [], [("y", "linspace", [], {"start": st, "end": en, "steps": n})])
for n, m in [(3, 3), (2, 4), (4, 2), (1, 1), (0, 2)]:
    S.add(f"eye/{n},{m}", [], [("y", "eye", [], {"n": n, "m": m})])
for shp in [[2, 3], [], [4]]:
    S.add(f"full/{shp}", [], [("y", "full", [], {"shape": shp, "value": -2.5})])
    S.add(f"zeros/{shp}", [], [("y", "zeros", [], {"shape": shp})])
    S.add(f"ones/{shp}", [], [("y", "ones", [], {"shape": shp})])
S.add("zeros_like/of_grad_tensor", [I("a", np.ones((2, 3), np.float32))],
      [("z", "zeros_like", ["a"], {}), ("o", "ones_like", ["a"], {})], outputs=["z", "o"],
      backward=None)

# ---- printing: et_to_string() vs str(torch.Tensor) ------------------------------------------

rng = rng_for("print")
PRINT = [
    ("int_like", np.array([[1, 2], [3, -4]], np.float32)),
    ("fixed", N(rng, (2, 3))),
    ("0d", np.float32(3.14159)),
    ("0d_int", np.float32(-2.0)),
    ("sci_small_large", np.array([1e-5, 1e5, 3.0], np.float32)),
    ("large_ints", np.array([1e8, 2.0, -3e9], np.float32)),
    ("tiny", np.array([1e-9, -2e-8], np.float32)),
    ("zeros", np.zeros((2, 2), np.float32)),
    ("negative_zero", np.array([-0.0, 1.5], np.float32)),
    ("nan_inf", np.array([np.nan, np.inf, -np.inf, 1.25], np.float32)),
    ("empty_1d", np.zeros((0,), np.float32)),
    ("empty_2d", np.zeros((2, 0), np.float32)),
    ("3d", N(rng, (2, 2, 3))),
    ("wide_wraps", N(rng, (20,))),
    ("summarized_1d", np.arange(2000, dtype=np.float32)),
    ("summarized_2d", N(rng, (40, 40))),
    ("summarized_3d", U(rng, (12, 10, 10), 0, 1)),
    ("mixed_magnitudes_2d", np.array([[0.001, 1000.0], [12.5, -0.25]], np.float32)),
    ("one_decimal", np.array([0.5, 1.5, 2.5], np.float32)),
    ("long_row", np.array([[123456.7, 0.1, 5.0, 42.0, 1e3, 7.25]], np.float32)),
]
for pid, arr in PRINT:
    S.add(f"print/{pid}", [I("a", arr, rg=False)], [("y", "contiguous", ["a"], {})], backward=None,
          reprs=["a"])
S.add("print/requires_grad_leaf", [I("a", N(rng, (2, 2)))], [("y", "contiguous", ["a"], {})],
      backward=None, reprs=["a"])
S.add("print/no_grad_result", [I("a", N(rng, (3,)))], [("y", "exp", ["a"], {"_no_grad": True})],
      backward=None, reprs=["y"])
S.add("print/view_of_strided", [I("a", N(rng, (3, 4)), rg=False)],
      [("t", "t", ["a"], {}), ("y", "slice", ["t"], {"dim": 0, "start": 0, "end": END, "step": 2})],
      backward=None, reprs=["y"])
for op in ["add", "mul"]:
    S.add(f"print/grad_fn_{op}", [I("a", N(rng, (2,))), I("b", N(rng, (2,)))],
          [("y", op, ["a", "b"], {})], backward=None, reprs=["y"])
S.add("print/grad_fn_exp", [I("a", N(rng, (2,)))], [("y", "exp", ["a"], {})], backward=None,
      reprs=["y"])
S.add("print/grad_fn_sum", [I("a", N(rng, (2,)))], [("y", "sum_all", ["a"], {})], backward=None,
      reprs=["y"])

# ---- errors: easytorch must fail where PyTorch fails -------------------------------------

rng = rng_for("errors")


def err(cid, inputs, prog, names, codes, backward=None, at=None):
    S.add("error/" + cid, inputs, prog, backward=backward,
          error={"names": names, "codes": sorted(codes), "at": at})


SH = {ET_ERR_SHAPE}
IX = {ET_ERR_INDEX}
a34, b54 = N(rng, (3, 4)), N(rng, (5, 4))
for op in ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "lt"]:
    err(f"{op}_shapes", [I("a", a34), I("b", b54)], [("y", op, ["a", "b"], {})],
        [op, "[3,4]", "[5,4]"], SH)
err("add_rank_mismatch", [I("a", N(rng, (2, 3, 4))), I("b", N(rng, (3, 3)))],
    [("y", "add", ["a", "b"], {})], ["add", "[2,3,4]", "[3,3]"], SH)
err("matmul_2d", [I("a", a34), I("b", N(rng, (5, 2)))], [("y", "matmul", ["a", "b"], {})],
    ["matmul", "[3,4]", "[5,2]"], SH)
err("matmul_1d", [I("a", N(rng, (3,))), I("b", N(rng, (4,)))], [("y", "matmul", ["a", "b"], {})],
    ["matmul", "[3]", "[4]"], SH)
err("matmul_2d_1d", [I("a", a34), I("b", N(rng, (3,)))], [("y", "matmul", ["a", "b"], {})],
    ["matmul", "[3,4]", "[3]"], SH)
err("matmul_batch", [I("a", N(rng, (2, 3, 4))), I("b", N(rng, (3, 4, 5)))],
    [("y", "matmul", ["a", "b"], {})], ["matmul", "[2,3,4]", "[3,4,5]"], SH)
err("matmul_0d", [I("a", 2.0), I("b", N(rng, (3,)))], [("y", "matmul", ["a", "b"], {})],
    ["matmul"], {ET_ERR_SHAPE, ET_ERR_ARG})
err("cat_shapes", [I("a", N(rng, (2, 3))), I("b", N(rng, (2, 4)))], [("y", "cat", ["a", "b"], {"dim": 0})],
    ["cat", "[2,3]", "[2,4]"], SH)
err("cat_rank", [I("a", N(rng, (2, 3))), I("b", N(rng, (3,)))], [("y", "cat", ["a", "b"], {"dim": 0})],
    ["cat", "[2,3]", "[3]"], SH)
err("cat_dim_range", [I("a", N(rng, (2, 3))), I("b", N(rng, (2, 3)))],
    [("y", "cat", ["a", "b"], {"dim": 2})], ["cat", "2"], IX)
err("stack_shapes", [I("a", N(rng, (2, 3))), I("b", N(rng, (3, 2)))],
    [("y", "stack", ["a", "b"], {"dim": 0})], ["stack", "[2,3]", "[3,2]"], SH)
err("stack_dim_range", [I("a", N(rng, (2, 3))), I("b", N(rng, (2, 3)))],
    [("y", "stack", ["a", "b"], {"dim": 4})], ["stack", "4"], IX)
err("select_index", [I("a", a34)], [("y", "select", ["a"], {"dim": 0, "index": 3})],
    ["select", "3"], IX)
err("select_negative_index", [I("a", a34)], [("y", "select", ["a"], {"dim": 1, "index": -5})],
    ["select", "-5"], IX)
err("select_dim", [I("a", a34)], [("y", "select", ["a"], {"dim": 2, "index": 0})], ["select", "2"], IX)
err("select_0d", [I("a", 1.0)], [("y", "select", ["a"], {"dim": 0, "index": 0})], ["select"],
    {ET_ERR_INDEX, ET_ERR_SHAPE})
err("slice_dim", [I("a", a34)], [("y", "slice", ["a"], {"dim": 2, "start": 0, "end": 1, "step": 1})],
    ["slice", "2"], IX)
err("slice_step_zero", [I("a", a34)], [("y", "slice", ["a"], {"dim": 0, "start": 0, "end": 2, "step": 0})],
    ["slice", "step"], {ET_ERR_ARG})
err("slice_step_negative", [I("a", a34)],
    [("y", "slice", ["a"], {"dim": 0, "start": 0, "end": 2, "step": -1})], ["slice", "step"], {ET_ERR_ARG})
err("transpose_dim", [I("a", a34)], [("y", "transpose", ["a"], {"dim0": 0, "dim1": 2})],
    ["transpose", "2"], IX)
err("transpose_negative_dim", [I("a", a34)], [("y", "transpose", ["a"], {"dim0": -3, "dim1": 0})],
    ["transpose", "-3"], IX)
err("t_3d", [I("a", N(rng, (2, 3, 4)))], [("y", "t", ["a"], {})], ["t", "[2,3,4]"],
    {ET_ERR_SHAPE, ET_ERR_ARG, ET_ERR_INDEX})
err("permute_repeated", [I("a", N(rng, (2, 3, 4)))], [("y", "permute", ["a"], {"dims": [0, 0, 1]})],
    ["permute"], {ET_ERR_ARG, ET_ERR_INDEX})
err("permute_count", [I("a", N(rng, (2, 3, 4)))], [("y", "permute", ["a"], {"dims": [1, 0]})],
    ["permute"], {ET_ERR_ARG, ET_ERR_SHAPE, ET_ERR_INDEX})
err("permute_range", [I("a", N(rng, (2, 3, 4)))], [("y", "permute", ["a"], {"dims": [0, 1, 3]})],
    ["permute", "3"], {ET_ERR_INDEX, ET_ERR_ARG})
err("squeeze_dim", [I("a", a34)], [("y", "squeeze", ["a"], {"dim": 2})], ["squeeze", "2"], IX)
err("unsqueeze_dim", [I("a", a34)], [("y", "unsqueeze", ["a"], {"dim": 3})], ["unsqueeze", "3"], IX)
err("unsqueeze_negative_dim", [I("a", a34)], [("y", "unsqueeze", ["a"], {"dim": -4})],
    ["unsqueeze", "-4"], IX)
err("flatten_order", [I("a", N(rng, (2, 3, 4)))],
    [("y", "flatten", ["a"], {"start_dim": 2, "end_dim": 1})], ["flatten"], {ET_ERR_ARG, ET_ERR_INDEX})
err("flatten_dim", [I("a", N(rng, (2, 3, 4)))],
    [("y", "flatten", ["a"], {"start_dim": 0, "end_dim": 3})], ["flatten", "3"], IX)
err("reshape_numel", [I("a", a34)], [("y", "reshape", ["a"], {"shape": [5, 2]})],
    ["reshape", "[5,2]", ["[3,4]", "12"]], SH)
err("reshape_two_minus_one", [I("a", a34)], [("y", "reshape", ["a"], {"shape": [-1, -1]})],
    ["reshape"], {ET_ERR_SHAPE, ET_ERR_ARG})
err("reshape_minus_one_indivisible", [I("a", a34)], [("y", "reshape", ["a"], {"shape": [5, -1]})],
    ["reshape", "[5,-1]", ["[3,4]", "12"]], SH)
err("view_numel", [I("a", a34)], [("y", "view", ["a"], {"shape": [13]})], ["view", "[13]", ["[3,4]", "12"]], SH)
err("view_not_viewable", [I("a", a34)],
    [("at", "t", ["a"], {}), ("y", "view", ["at"], {"shape": [12]})], ["view", "[12]"],
    {ET_ERR_SHAPE, ET_ERR_ARG, ET_ERR_STATE})
err("expand_shapes", [I("a", N(rng, (2, 3)))], [("y", "expand", ["a"], {"shape": [4, 3]})],
    ["expand", "[2,3]", "[4,3]"], SH)
err("expand_fewer_dims", [I("a", N(rng, (2, 3)))], [("y", "expand", ["a"], {"shape": [3]})],
    ["expand", "[2,3]", "[3]"], SH)
err("where_shapes", [I("c", np.ones((3, 4), np.float32), rg=False), I("a", N(rng, (3, 4))),
                     I("b", N(rng, (2, 4)))], [("y", "where", ["c", "a", "b"], {})],
    ["where", "[3,4]", "[2,4]"], SH)
err("sum_dim", [I("a", a34)], [("y", "sum", ["a"], {"dims": [2], "keepdim": False})], ["sum", "2"], IX)
err("sum_negative_dim", [I("a", a34)], [("y", "sum", ["a"], {"dims": [-3], "keepdim": False})],
    ["sum", "-3"], IX)
err("sum_repeated_dim", [I("a", a34)], [("y", "sum", ["a"], {"dims": [1, -1], "keepdim": False})],
    ["sum"], {ET_ERR_ARG, ET_ERR_INDEX})
err("mean_dim", [I("a", a34)], [("y", "mean", ["a"], {"dims": [5], "keepdim": True})], ["mean", "5"], IX)
err("max_dim", [I("a", a34)], [("y", "max", ["a"], {"dim": 2, "keepdim": False})], ["max", "2"], IX)
err("min_dim", [I("a", a34)], [("y", "min", ["a"], {"dim": -3, "keepdim": False})], ["min", "-3"], IX)
err("argmax_dim", [I("a", a34)], [("y", "argmax", ["a"], {"dim": 2, "keepdim": False})],
    ["argmax", "2"], IX)
err("softmax_dim", [I("a", a34)], [("y", "softmax", ["a"], {"dim": 2})], ["softmax", "2"], IX)
err("log_softmax_dim", [I("a", a34)], [("y", "log_softmax", ["a"], {"dim": -3})],
    ["log_softmax", "-3"], IX)
err("index_select_index", [I("a", N(rng, (3, 4))), IDX("i", [0, 5])],
    [("y", "index_select", ["a", "i"], {"dim": 0})], ["index_select", "5"], IX)
err("index_select_dim", [I("a", N(rng, (3, 4))), IDX("i", [0])],
    [("y", "index_select", ["a", "i"], {"dim": 2})], ["index_select", "2"], IX)
err("index_select_2d_index", [I("a", N(rng, (3, 4))), IDX("i", [[0, 1]])],
    [("y", "index_select", ["a", "i"], {"dim": 0})], ["index_select"], {ET_ERR_SHAPE, ET_ERR_ARG})
err("gather_index", [I("a", N(rng, (3, 4))), IDX("i", [[0, 4]])],
    [("y", "gather", ["a", "i"], {"dim": 1})], ["gather", "4"], IX)
err("gather_rank", [I("a", N(rng, (3, 4))), IDX("i", [0, 1])],
    [("y", "gather", ["a", "i"], {"dim": 1})], ["gather"], {ET_ERR_SHAPE})
err("gather_index_too_big", [I("a", N(rng, (3, 4))), IDX("i", np.zeros((4, 2)))],
    [("y", "gather", ["a", "i"], {"dim": 1})], ["gather", "[4,2]", "[3,4]"], SH)
err("arange_step_zero", [], [("y", "arange", [], {"start": 0, "end": 5, "step": 0})], ["arange"],
    {ET_ERR_ARG})
err("arange_wrong_sign", [], [("y", "arange", [], {"start": 0, "end": 5, "step": -1})], ["arange"],
    {ET_ERR_ARG})
err("eye_negative", [], [("y", "eye", [], {"n": -1, "m": 2})], ["eye", "-1"], {ET_ERR_ARG})
err("zeros_negative", [], [("y", "zeros", [], {"shape": [2, -3]})], ["zeros", "-3"], {ET_ERR_ARG})
err("cat_0d", [I("a", 1.0), I("b", 2.0)], [("y", "cat", ["a", "b"], {"dim": 0})], ["cat"],
    {ET_ERR_SHAPE, ET_ERR_ARG, ET_ERR_INDEX})
err("expand_minus_one_new_dim", [I("a", N(rng, (3,)))], [("y", "expand", ["a"], {"shape": [-1, 3]})],
    ["expand"], {ET_ERR_SHAPE, ET_ERR_ARG})
err("requires_grad_on_non_leaf", [I("a", N(rng, (3,)))],
    [("e", "exp", ["a"], {}), ("_r", "requires_grad_", ["e"], {"on": False})], ["requires_grad"],
    {ET_ERR_GRAD})
err("get_out_of_range", [I("a", N(rng, (3, 4)), rg=False)], [("y", "get", ["a"], {"index": [1, 4]})],
    ["4"], IX)
err("item_many_elements", [I("a", N(rng, (2,)), rg=False)], [("y", "item", ["a"], {})], ["item"],
    {ET_ERR_SHAPE, ET_ERR_ARG})
err("copy_shapes", [I("a", N(rng, (3, 4)), rg=False), I("b", N(rng, (2, 4)), rg=False)],
    [("_c", "copy_", ["a", "b"], {})], ["copy_", "[3,4]", "[2,4]"], SH)
err("backward_root_without_grad", [I("a", a34, rg=False)], [("y", "sum_all", ["a"], {})], ["backward"],
    {ET_ERR_GRAD}, backward="none", at="backward")
err("backward_nonscalar_without_grad", [I("a", a34)], [("y", "exp", ["a"], {})], ["backward"],
    {ET_ERR_GRAD}, backward="none", at="backward")
err("backward_grad_shape", [I("a", a34)], [("y", "exp", ["a"], {})], ["backward", "[4,3]", "[3,4]"],
    {ET_ERR_SHAPE}, backward=N(rng, (4, 3)), at="backward")


# ---- further op families, one file of cases each (tests/torch/cases_*.py) -------------
# Each module's add_cases(T) receives this module and uses its helpers (S, I, N, err, ...),
# adds its ops to TORCH_OPS and OPS_H, and its cases to S.
import importlib  # noqa: E402

for _name in CASE_MODULES:
    importlib.import_module(_name).add_cases(sys.modules[__name__])


# ----------------------------------------------------------------------------
# Running and checking
# ----------------------------------------------------------------------------

def run_runner(runner, cases, tmpdir, extra=()):
    """Run core_runner over all cases; returns id -> result dict.  If it dies,
    the case it was on is recorded as a crash and the runner restarts after it."""
    path = os.path.join(tmpdir, "core_cases.json")
    with open(path, "w") as f:
        json.dump({"cases": cases}, f)
    results, start, runs = {}, 0, 0
    while start < len(cases):
        runs += 1
        proc = subprocess.run([runner, path, str(start), *extra], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, errors="replace")
        done = 0
        for line in proc.stdout.split("\n"):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except ValueError:
                break
            results[r["id"]] = r
            done += 1
        if start + done >= len(cases):
            if proc.returncode != 0:
                print(f"runner exited with status {proc.returncode} after the last case:"
                      f" {proc.stderr[-500:]}")
                results["__exit__"] = proc.returncode
            break
        cid = cases[start + done]["id"]
        results[cid] = {"id": cid, "crash": f"runner died with status {proc.returncode} "
                        f"on this case; stderr: {proc.stderr.strip()[-400:]}"}
        start += done + 1
    return results, runs


class Stats:
    def __init__(self):
        self.max_abs = 0.0
        self.max_rel = 0.0
        self.where_abs = ""
        self.where_rel = ""
        self.values = 0

    def update(self, where, ours, ref):
        both = np.isfinite(ours) & np.isfinite(ref)
        if not both.any():
            return
        d = np.abs(ours[both] - ref[both])
        self.values += int(both.sum())
        m = float(d.max())
        if m > self.max_abs:
            self.max_abs, self.where_abs = m, where
        big = np.abs(ref[both]) >= 1e-3
        if big.any():
            r = float((d[big] / np.abs(ref[both][big])).max())
            if r > self.max_rel:
                self.max_rel, self.where_rel = r, where


DIFF, FD = Stats(), Stats()


def as_array(t):
    """Runner tensor -> float64 array of the exact float32 values ("%.9g" round-trips
    to the same float32, not to the same double); int64 tensors exactly (to 2^53)."""
    if t.get("dtype") == "int64":
        return np.asarray(t["data"], dtype=np.int64).astype(np.float64).reshape(t["shape"])
    return np.asarray(t["data"], dtype=np.float64).astype(np.float32).astype(np.float64).reshape(
        t["shape"])


def dtype_name(t):
    """'int64' for torch.long results, 'float32' for floating ones (float64 runs too)."""
    return "int64" if t.dtype == torch.int64 else ("float32" if t.is_floating_point() else str(t.dtype))


def close(ours, ref):
    if ours.shape != ref.shape:
        return False
    return bool(np.allclose(ours, ref, rtol=RTOL, atol=ATOL, equal_nan=True))


def describe(ours, ref):
    if ours.shape != ref.shape:
        return f"shape {list(ours.shape)} vs expected {list(ref.shape)}"
    d = np.abs(ours - ref)
    d = np.where(np.isnan(d) & ~(np.isnan(ours) & np.isnan(ref)), np.inf, np.nan_to_num(d))
    k = int(np.argmax(d))
    return (f"max |diff| {d.max():.3g} at flat index {k}: got {ours.ravel()[k]:.9g}, "
            f"expected {ref.ravel()[k]:.9g}; got {np.array2string(ours.ravel()[:8], precision=6)}"
            f" expected {np.array2string(ref.ravel()[:8], precision=6)}")


ORACLE_NOTES = []


def torch_results(case, dtype):
    """name -> (array, requires_grad, is_leaf) for outputs; name -> array|None for grads."""
    env, leaves = run_torch(case, dtype)
    outs = {n: (env[n].detach().double().numpy(), env[n].requires_grad, env[n].is_leaf,
                dtype_name(env[n])) for n in case["outputs"]}
    grads = {}
    if case.get("backward"):
        grads = {n: (None if t.grad is None else t.grad.double().numpy()) for n, t in leaves.items()}
        for n in case.get("retain", []):
            grads[n] = None if env[n].grad is None else env[n].grad.double().numpy()
    return outs, grads


def check_diff(case, res):
    """Forward outputs + leaf gradients vs PyTorch float32.  Returns failure texts.

    If a value disagrees with PyTorch float32 while PyTorch float32 itself
    disagrees with PyTorch float64 on the same program (a PyTorch bug, e.g.
    1.13's float32 exact-GELU backward with a non-contiguous grad_output), the
    value is compared with PyTorch float64 instead and the event is reported."""
    outs32, grads32 = torch_results(case, torch.float32)
    ref64 = {}

    def compare(kind, name, ours, ref):
        if close(ours, ref):
            if ours.size:
                DIFF.update(f"{case['id']} {kind} {name}", ours, ref)
            return None
        if not ref64:
            o64, g64 = torch_results(case, torch.float64)
            ref64.update({("output", n): v[0] for n, v in o64.items()})
            ref64.update({("grad", n): v for n, v in g64.items()})
        r64 = ref64.get((kind, name))
        if r64 is not None and not close(ref, r64) and close(ours, r64):
            ORACLE_NOTES.append(f"{case['id']} {kind} {name}: PyTorch float32 disagrees with "
                                f"PyTorch float64 ({describe(ref, r64)}); easytorch matches float64")
            DIFF.update(f"{case['id']} {kind} {name}", ours, r64)
            return None
        return f"{kind} {name}: {describe(ours, ref)}"

    fails = []
    if case.get("reprs"):
        env, _ = run_torch(case, torch.float32, backward=False)
        for name in case["reprs"]:
            want, got = str(env[name]), res.get("reprs", {}).get(name)
            if got != want:
                fails.append(f"et_to_string({name}) = {got!r}, PyTorch str() = {want!r}")
    for name in case["outputs"]:
        ref, rg, leaf, dt = outs32[name]
        o = res["outputs"].get(name)
        if o is None:
            fails.append(f"output {name}: missing")
            continue
        if o.get("dtype", "float32") != dt:
            fails.append(f"output {name}: dtype {o.get('dtype', 'float32')}, PyTorch {dt}")
        f = compare("output", name, as_array(o), ref)
        if f:
            fails.append(f)
        if bool(o.get("requires_grad")) != bool(rg):
            fails.append(f"output {name}: requires_grad {o.get('requires_grad')}, PyTorch {rg}")
        if bool(o.get("is_leaf")) != bool(leaf):
            fails.append(f"output {name}: is_leaf {o.get('is_leaf')}, PyTorch {leaf}")
    for name, g in grads32.items():
        o = res["grads"].get(name, "absent")
        if o == "absent":
            fails.append(f"grad {name}: not reported")
        elif g is None and o is None:
            continue
        elif g is None:
            fails.append(f"grad {name}: got a gradient where PyTorch has none")
        elif o is None:
            fails.append(f"grad {name}: missing (PyTorch has one)")
        else:
            f = compare("grad", name, as_array(o), g)
            if f:
                fails.append(f)
    return fails


def fd_grads(case):
    """Central differences of sum(root * upstream) in float64, per leaf element."""
    bw = case["backward"]
    base = {i["name"]: np.asarray([float(v) for v in i["data"]], dtype=np.float64).reshape(i["shape"])
            for i in case["inputs"]}
    up = None
    if bw.get("grad") is not None:
        up = torch.tensor(as_array(bw["grad"]), dtype=torch.float64)

    ups = [(bw["root"], up, bw.get("times", 1))]
    for more in bw.get("then", []):
        g2 = None if more.get("grad") is None else torch.tensor(as_array(more["grad"]),
                                                                dtype=torch.float64)
        ups.append((more["root"], g2, 1))

    def f(values):
        with torch.no_grad():
            env, _ = run_torch(case, torch.float64, values, backward=False)
            total = 0.0
            for root, u, times in ups:
                r = env[root]
                total += times * (float((r * u).sum()) if u is not None else float(r.sum()))
            return total

    out = {}
    for inp in case["inputs"]:
        if not inp["requires_grad"]:
            continue
        x = base[inp["name"]]
        g = np.zeros_like(x)
        flat = g.reshape(-1)
        for k in range(x.size):
            xp = x.copy().reshape(-1)
            xm = x.copy().reshape(-1)
            h = FD_EPS
            xp[k] += h
            xm[k] -= h
            fp = f({**base, inp["name"]: xp.reshape(x.shape)})
            fm = f({**base, inp["name"]: xm.reshape(x.shape)})
            flat[k] = (fp - fm) / (2 * h)
        out[inp["name"]] = g
    return out


def check_fd(case, res):
    fails = []
    num = fd_grads(case)
    _, leaves64 = run_torch(case, torch.float64)
    for name, g in num.items():
        t64 = leaves64[name].grad
        t64 = np.zeros_like(g) if t64 is None else t64.numpy()
        if not close(t64, g):
            fails.append(f"grad {name}: PyTorch float64 disagrees with finite differences "
                         f"(bad test input?): {describe(t64, g)}")
        o = res["grads"].get(name)
        ours = np.zeros_like(g) if o is None else as_array(o)
        if not close(ours, g):
            fails.append(f"grad {name} vs finite differences: {describe(ours, g)}")
        elif g.size:
            FD.update(f"{case['id']} grad {name}", ours, g)
    return fails


def norm_msg(s):
    return s.replace(" ", "").replace("(", "[").replace(")", "]")


def check_error(case, res):
    fails = []
    spec = case["error"]
    want_at = spec["at"] or f"node {len(case['prog']) - 1} ({case['prog'][-1]['op']})"
    try:
        run_torch(case, torch.float32)
        fails.append("PyTorch did not raise (test case is wrong)")
    except TorchFailure as tf:
        if tf.at != want_at:
            fails.append(f"PyTorch raised at {tf.at}, expected at {want_at} (test case is wrong)")
    if "error" not in res:
        fails.append("easytorch did not fail")
        return fails
    if res.get("at") != want_at:
        fails.append(f"failed at {res.get('at')}, expected at {want_at}: {res['error']}")
    if res.get("code") not in spec["codes"]:
        fails.append(f"status {res.get('code')}, expected one of {spec['codes']}: {res['error']}")
    msg = norm_msg(res["error"])
    # each entry is a substring, or a list of acceptable alternatives
    missing = [n for n in spec["names"]
               if not any(norm_msg(alt) in msg for alt in (n if isinstance(n, list) else [n]))]
    if missing:
        fails.append(f"message {res['error']!r} does not name {missing}")
    return fails


def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__)
        return 2
    runner = os.path.abspath(args[0])
    filt = args[args.index("-k") + 1] if "-k" in args else None
    cases = [c for c in S.cases if filt is None or filt in c["id"]]

    with tempfile.TemporaryDirectory() as tmp:
        results, runs = run_runner(runner, cases, tmp, ["--pool"] if "--pool" in args else [])
        if "--cases-out" in args:   # keep the case file, e.g. to rerun the runner under gdb
            import shutil
            shutil.copy(os.path.join(tmp, "core_cases.json"), args[args.index("--cases-out") + 1])

    passed = failed = 0
    n_diff = n_fd = n_err = 0
    groups = {}
    covered = set()

    def record(kind, case, fails):
        nonlocal passed, failed
        grp = case["id"].split("/")[0]
        gs = groups.setdefault(grp, [0, 0])
        if fails:
            failed += 1
            gs[1] += 1
            print(f"FAIL [{kind}] {case['id']}")
            for f in fails:
                print(f"    {f}")
        else:
            passed += 1
            gs[0] += 1

    for case in cases:
        res = results.get(case["id"])
        if res is None:
            record("run", case, ["no result from the runner"])
            continue
        if "crash" in res:
            record("run", case, [res["crash"]])
            continue
        if case.get("error"):
            n_err += 1
            record("error", case, check_error(case, res))
            continue
        if "error" in res:
            record("diff", case, [f"easytorch failed at {res.get('at')}: "
                                  f"{res['error']} (status {res.get('code')})"])
            if case["fd"]:
                record("fd", case, ["skipped: easytorch failed"])
            continue
        n_diff += 1
        covered.update(n["op"] for n in case["prog"])
        record("diff", case, check_diff(case, res))
        if case["fd"]:
            n_fd += 1
            record("fd", case, check_fd(case, res))

    if filt is None:
        missing = [op for op in OPS_H if op not in covered]
        if missing:
            failed += 1
            print(f"FAIL [coverage] ops of ops.h never compared successfully: {missing}")
        else:
            passed += 1
    if results.get("__exit__"):
        failed += 1
        print("FAIL [run] runner exited non-zero")

    print()
    print("per group (passed/failed checks):")
    for g in sorted(groups):
        print(f"  {g:16s} {groups[g][0]:4d} / {groups[g][1]}")
    print(f"runner invocations: {runs}")
    print(f"compared {n_diff} op x shape cases against PyTorch float32 "
          f"({DIFF.values} values), {n_fd} against float64 finite differences, "
          f"{n_err} error cases")
    print(f"largest abs error vs PyTorch: {DIFF.max_abs:.3g} ({DIFF.where_abs})")
    print(f"largest rel error vs PyTorch (|expected| >= 1e-3): {DIFF.max_rel:.3g} ({DIFF.where_rel})")
    print(f"largest abs error vs finite differences: {FD.max_abs:.3g} ({FD.where_abs})")
    print(f"largest rel error vs finite differences (|expected| >= 1e-3): {FD.max_rel:.3g} "
          f"({FD.where_rel})")
    for note in ORACLE_NOTES:
        print(f"NOTE (PyTorch float32 bug, compared with float64): {note}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
