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
import math
import os
import sys
import tempfile
import zlib

import numpy as np
import torch
import torch.nn.functional as F

import case_runner

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

# The case files, in order (see the end of case construction): the core ops, programs over
# them and the error cases, then further op families.
CASE_MODULES = ["cases_basic", "cases_programs", "cases_errors", "cases_elementwise", "cases_conv",
                "cases_pool", "cases_reduce", "cases_shape", "cases_index"]


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

# ---- the cases: one file per family (tests/torch/cases_*.py) ------------------------------
# Each module's add_cases(T) receives this module and uses its helpers (S, I, N, err, ...),
# adds its ops to TORCH_OPS and OPS_H, and its cases to S.
import importlib  # noqa: E402

for _name in CASE_MODULES:
    importlib.import_module(_name).add_cases(sys.modules[__name__])


# ----------------------------------------------------------------------------
# Running and checking
# ----------------------------------------------------------------------------

def run_runner(runner, cases, tmpdir, extra=()):
    """Run core_runner over all cases (case_runner.py); returns id -> result dict."""
    return case_runner.run_cases(runner, os.path.join(tmpdir, "core_cases.json"), cases, extra)


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
        print(f"FAIL [run] {results['__exit__']}")

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
