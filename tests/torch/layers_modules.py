"""Module cases of test_layers.py: normalisation and embedding layers (and a
Sequential of them, the character model of examples/) built from a spec on
both sides, loaded with the same state dict, run for several train/eval
steps; outputs, input / parameter / per-sample-weight gradients per step and
the final state_dict (read back from the safetensors file easytorch writes,
int64 num_batches_tracked included, keys in order, dtypes compared) must
match PyTorch's."""
import copy
import json
import os
import struct
import zlib

import numpy as np
import torch
import torch.nn as nn

STATE_FILES = {}


def rng_for(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


def spec_tensor(arr, rg=False, t=False, dtype=None):
    if dtype == "int64":
        arr = np.asarray(arr, dtype=np.int64)
        return {"shape": list(arr.shape), "data": [int(v) for v in arr.ravel()], "dtype": "int64"}
    arr = np.asarray(arr, dtype=np.float32)
    store = np.ascontiguousarray(np.swapaxes(arr, -1, -2)) if t else arr
    s = {"shape": list(store.shape), "data": [float(v) for v in store.ravel()]}
    if rg:
        s["requires_grad"] = True
    if t:
        s["t"] = True
    return s


def torch_of(spec, dtype=torch.float32):
    """(leaf, view) torch tensors of a spec."""
    if spec.get("dtype") == "int64":
        x = torch.tensor(spec["data"], dtype=torch.int64).reshape(spec["shape"])
        return x, x
    x = torch.tensor(spec["data"], dtype=dtype).reshape(spec["shape"])
    if spec.get("requires_grad"):
        x.requires_grad_(True)
    return x, (x.transpose(-1, -2) if spec.get("t") else x)


def build(spec):
    t = spec["type"]
    a = {k: v for k, v in spec.items() if k != "type"}
    if t == "Sequential":
        return nn.Sequential(*[build(s) for s in spec["layers"]])
    if t in ("BatchNorm1d", "BatchNorm2d"):
        cls = nn.BatchNorm1d if t == "BatchNorm1d" else nn.BatchNorm2d
        return cls(a["num_features"], eps=a.get("eps", 1e-5), momentum=a.get("momentum", 0.1),
                   affine=a.get("affine", True), track_running_stats=a.get("track_running_stats", True))
    if t == "LayerNorm":
        return nn.LayerNorm(a["normalized_shape"], eps=a.get("eps", 1e-5),
                            elementwise_affine=a.get("elementwise_affine", True))
    if t == "GroupNorm":
        return nn.GroupNorm(a["num_groups"], a["num_channels"], eps=a.get("eps", 1e-5),
                            affine=a.get("affine", True))
    if t == "Embedding":
        return nn.Embedding(a["num_embeddings"], a["embedding_dim"], padding_idx=a.get("padding_idx"),
                            max_norm=a.get("max_norm"), norm_type=a.get("norm_type", 2.0),
                            scale_grad_by_freq=a.get("scale_grad_by_freq", False))
    if t == "EmbeddingBag":
        return nn.EmbeddingBag(a["num_embeddings"], a["embedding_dim"], max_norm=a.get("max_norm"),
                               norm_type=a.get("norm_type", 2.0),
                               scale_grad_by_freq=a.get("scale_grad_by_freq", False),
                               mode=a.get("mode", "mean"),
                               include_last_offset=a.get("include_last_offset", False),
                               padding_idx=a.get("padding_idx"))
    if t == "Linear":
        return nn.Linear(a["in_features"], a["out_features"], bias=a.get("bias", True))
    if t == "Flatten":
        return nn.Flatten(a.get("start_dim", 1), a.get("end_dim", -1))
    if t == "Tanh":
        return nn.Tanh()
    if t == "ReLU":
        return nn.ReLU()
    raise ValueError(t)


def state_spec(mod, r, randomize=True):
    """The module's state with random parameters (and running statistics), as specs."""
    out = {}
    for k, v in mod.state_dict().items():
        if v.dtype == torch.int64:
            out[k] = spec_tensor(v.numpy(), dtype="int64")
            continue
        a = v.numpy().copy()
        if randomize:
            if k.endswith("running_var"):
                a = r.uniform(0.5, 2.0, a.shape)
            elif k.endswith("weight") and a.ndim == 1:
                a = r.standard_normal(a.shape) * 0.5 + 1.0
            else:
                a = r.standard_normal(a.shape) * (0.5 if a.ndim >= 2 else 1.0)
        out[k] = spec_tensor(a)
    return out


def load_state(mod, state):
    sd = {}
    for k, s in state.items():
        dt = torch.int64 if s.get("dtype") == "int64" else torch.float32
        sd[k] = torch.tensor(s["data"], dtype=dt).reshape(s["shape"])
    mod.load_state_dict(sd)


def run_torch(case, dtype=torch.float32):
    mod = build(case["module"])
    if case.get("state"):
        load_state(mod, case["state"])
    mod.to(dtype)
    steps = []
    for st in case["steps"]:
        mod.train(st.get("train", True))
        for p in mod.parameters():
            p.grad = None
        xl, x = torch_of(st["input"], dtype)
        kw = {}
        psw = None
        if "offsets" in st:
            kw["offsets"] = torch_of(st["offsets"])[1]
        if "per_sample_weights" in st:
            psw = torch_of(st["per_sample_weights"], dtype)[0]
            kw["per_sample_weights"] = psw
        y = mod(x, **kw)
        if st.get("grad_out") is not None:
            y.backward(torch_of(st["grad_out"], dtype)[1])
        steps.append({"out": y.detach(), "input_grad": xl.grad if xl.requires_grad else None,
                      "psw_grad": psw.grad if psw is not None and psw.requires_grad else None,
                      "grads": {n: p.grad for n, p in mod.named_parameters()}})
    return steps, mod.state_dict()


def add(cases, tmpdir, cid, spec, make_input, nsteps, train_pattern, r, state=None,
        extra=None, grad=True):
    """make_input(k, r) -> dict(input=spec, [offsets], [per_sample_weights]) for step k."""
    mod = build(spec)
    st = state if state is not None else state_spec(mod, r)
    load_state(mod, st)
    steps = []
    for k in range(nsteps):
        step = dict(make_input(k, r))
        step["train"] = train_pattern(k)
        probe = copy.deepcopy(mod).eval()
        with torch.no_grad():
            kw = {}
            if "offsets" in step:
                kw["offsets"] = torch_of(step["offsets"])[1]
            if "per_sample_weights" in step:
                kw["per_sample_weights"] = torch_of(step["per_sample_weights"])[1]
            shape = tuple(probe(torch_of(step["input"])[1], **kw).shape)
        if grad:
            step["grad_out"] = spec_tensor(r.standard_normal(shape))
        steps.append(step)
    path = os.path.join(tmpdir, f"state_{len(cases)}.safetensors")
    cases.append({"id": cid, "kind": "module", "module": spec, "state": st, "steps": steps,
                  "state_out": path})


def N(r, shape, scale=1.0, shift=0.0):
    return r.standard_normal(shape) * scale + shift


def add_cases(cases, tmpdir):
    first20 = lambda k: k < 20   # noqa: E731 - 20 training steps, then eval
    # ---- BatchNorm: running statistics over 20 training steps, then eval
    bn_variants = [
        ("default", {}),
        ("momentum_None", {"momentum": None}),
        ("momentum0.3_eps1e-3", {"momentum": 0.3, "eps": 1e-3}),
        ("no_affine", {"affine": False}),
        ("no_running_stats", {"track_running_stats": False}),
        ("no_affine_no_stats", {"affine": False, "track_running_stats": False}),
    ]
    for name, kw in bn_variants:
        for shape in ((6, 5), (3, 4, 7), (1, 3, 5)):
            C = shape[1]
            cid = f"BatchNorm1d/{name}/{list(shape)}"
            r = rng_for(cid)
            spec = {"type": "BatchNorm1d", "num_features": C, **kw}
            add(cases, tmpdir, cid, spec,
                lambda k, r, shape=shape: {"input": spec_tensor(N(r, shape, 1.5, 0.7), rg=True,
                                                                t=len(shape) == 3 and k % 3 == 1)},
                23, first20, r)
        cid = f"BatchNorm2d/{name}"
        r = rng_for(cid)
        add(cases, tmpdir, cid, {"type": "BatchNorm2d", "num_features": 3, **kw},
            lambda k, r: {"input": spec_tensor(N(r, (2, 3, 4, 5), 2.0, -1.0), rg=True, t=k % 4 == 2)},
            23, first20, r)
    # |mean| >> std (raw features such as prices): a deviation from a float-rounded mean
    # costs 1e-3 relative in the output, float32 torch's own mean 6e-3; easytorch must
    # match float64 torch (forward and backward)
    for cid, shape in (("BatchNorm1d/mean1000_std0.01/[32, 16]", (32, 16)),
                       ("BatchNorm2d/mean3e4/[4, 3, 2, 5]", (4, 3, 2, 5))):
        r = rng_for(cid)
        scale, shift = (0.01, 1000.0) if len(shape) == 2 else (1.0, 3e4)
        add(cases, tmpdir, cid, {"type": cid.split("/")[0], "num_features": shape[1]},
            lambda k, r, shape=shape, scale=scale, shift=shift:
                {"input": spec_tensor(N(r, shape, scale, shift), rg=True)},
            23, first20, r)
    # resuming counts: loaded num_batches_tracked with cumulative momentum
    cid = "BatchNorm1d/momentum_None/resumed_at_5"
    r = rng_for(cid)
    m = build({"type": "BatchNorm1d", "num_features": 4, "momentum": None})
    st = state_spec(m, r)
    st["num_batches_tracked"] = spec_tensor(np.array(5), dtype="int64")
    add(cases, tmpdir, cid, {"type": "BatchNorm1d", "num_features": 4, "momentum": None},
        lambda k, r: {"input": spec_tensor(N(r, (5, 4)), rg=True)}, 8, lambda k: k != 4, r, state=st)
    # eval first, then train, then eval (mode switches both ways)
    cid = "BatchNorm2d/eval_train_eval"
    r = rng_for(cid)
    add(cases, tmpdir, cid, {"type": "BatchNorm2d", "num_features": 2},
        lambda k, r: {"input": spec_tensor(N(r, (3, 2, 3, 3)), rg=True)}, 9, lambda k: 3 <= k < 6, r)
    # ---- LayerNorm / GroupNorm
    for ns, shape in (([5], (4, 5)), ([3, 4], (2, 3, 4)), ([7], (1, 7))):
        for aff in (True, False):
            cid = f"LayerNorm/{ns}/affine={aff}"
            r = rng_for(cid)
            add(cases, tmpdir, cid, {"type": "LayerNorm", "normalized_shape": ns, "elementwise_affine": aff},
                lambda k, r, shape=shape: {"input": spec_tensor(N(r, shape), rg=True, t=k == 1 and shape[-2] > 1)},
                3, lambda k: k != 2, r)
    for G, C, shape in ((2, 4, (3, 4, 5)), (3, 6, (2, 6, 2, 2)), (1, 3, (1, 3, 4))):
        for aff in (True, False):
            cid = f"GroupNorm/G={G},C={C}/affine={aff}"
            r = rng_for(cid)
            add(cases, tmpdir, cid, {"type": "GroupNorm", "num_groups": G, "num_channels": C, "affine": aff},
                lambda k, r, shape=shape: {"input": spec_tensor(N(r, shape), rg=True)}, 3, lambda k: True, r)
    # ---- Embedding
    emb_variants = [("plain", {}), ("padding_idx", {"padding_idx": 2}), ("padding_idx_neg", {"padding_idx": -1}),
                    ("max_norm", {"max_norm": 1.5}), ("freq", {"scale_grad_by_freq": True})]
    for name, kw in emb_variants:
        for ishape in ((6,), (4, 3)):
            cid = f"Embedding/{name}/idx{list(ishape)}"
            r = rng_for(cid)
            add(cases, tmpdir, cid, {"type": "Embedding", "num_embeddings": 9, "embedding_dim": 4, **kw},
                lambda k, r, ishape=ishape: {"input": spec_tensor(r.integers(0, 9, ishape), dtype="int64")},
                4, lambda k: True, r)
    # ---- EmbeddingBag: 2-D input through et_module_forward, 1-D with offsets (+ weights)
    for mode in ("sum", "mean", "max"):
        cid = f"EmbeddingBag/{mode}/2d"
        r = rng_for(cid)
        add(cases, tmpdir, cid, {"type": "EmbeddingBag", "num_embeddings": 8, "embedding_dim": 3, "mode": mode},
            lambda k, r: {"input": spec_tensor(r.integers(0, 8, (4, 3)), dtype="int64")}, 3, lambda k: True, r)
        cid = f"EmbeddingBag/{mode}/offsets/padding_idx"
        r = rng_for(cid)
        add(cases, tmpdir, cid, {"type": "EmbeddingBag", "num_embeddings": 8, "embedding_dim": 3, "mode": mode,
                                 "padding_idx": 0},
            lambda k, r: {"input": spec_tensor(r.integers(0, 8, 9), dtype="int64"),
                          "offsets": spec_tensor([0, 2, 2, 6], dtype="int64")}, 3, lambda k: True, r)
    cid = "EmbeddingBag/sum/per_sample_weights/include_last_offset"
    r = rng_for(cid)
    add(cases, tmpdir, cid, {"type": "EmbeddingBag", "num_embeddings": 8, "embedding_dim": 3, "mode": "sum",
                             "include_last_offset": True},
        lambda k, r: {"input": spec_tensor(r.integers(0, 8, 7), dtype="int64"),
                      "offsets": spec_tensor([0, 3, 3, 7], dtype="int64"),
                      "per_sample_weights": spec_tensor(N(r, (7,)), rg=True)}, 3, lambda k: True, r)
    # ---- the character model of examples/ (Bengio et al. 2003 / makemore)
    for bs in (32, 1):
        cid = f"Sequential/char_mlp/batch={bs}"
        r = rng_for(cid)
        spec = {"type": "Sequential", "layers": [
            {"type": "Embedding", "num_embeddings": 27, "embedding_dim": 10},
            {"type": "Flatten"},
            {"type": "Linear", "in_features": 30, "out_features": 64},
            {"type": "BatchNorm1d", "num_features": 64},
            {"type": "Tanh"},
            {"type": "Linear", "in_features": 64, "out_features": 27}]}
        # training steps need >= 4 rows: with 2, BatchNorm divides by |x1 - x2| of each unit
        # and float32 torch itself is up to 150x the tolerance from float64 torch in 18 of 40
        # seeds (with 4 rows: at most 0.6x), i.e. the case would test bitwise-equal sgemm
        # rounding, not the layers; the eval steps still run one row
        add(cases, tmpdir, cid, spec,
            lambda k, r, bs=bs: {"input": spec_tensor(r.integers(0, 27, (max(bs, 4) if k < 5 else bs, 3)),
                                                     dtype="int64")},
            7, lambda k: k < 5, r)


# ---------------------------------------------------------------- checking

def st_read(path):
    """safetensors file -> ordered [(name, tensor)] (F32 and I64)."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n].decode())
    header.pop("__metadata__", None)
    data = buf[8 + n:]
    out = []
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        b, t = e["data_offsets"]
        dt = {"F32": "<f4", "I64": "<i8"}[e["dtype"]]
        arr = np.frombuffer(data[b:t], dtype=dt).reshape(e["shape"])
        out.append((name, torch.from_numpy(arr.copy())))
    return out


def check(case, res, compare):
    if "error" in res:
        return [f"easytorch failed at {res['at']}: {res['error']} (status {res['code']})"]
    fails = []
    steps, sd = run_torch(case)
    cache = {}

    def r64(k, kind, name=None):
        """PyTorch float64 reference of one value, computed on first need (the float32
        oracle is unreliable where BatchNorm over 2 values makes gradients cancel)."""
        def f():
            if not cache:
                cache["s"], cache["sd"] = run_torch(case, torch.float64)
            st = cache["s"][k]
            if kind == "grads":
                return st["grads"][name]
            if kind == "state":
                return cache["sd"][name]
            return st[kind]
        return f
    cid = case["id"]
    if len(res["steps"]) != len(steps):
        return [f"{len(res['steps'])} steps reported, {len(steps)} expected"]
    for k, (ours, ref) in enumerate(zip(res["steps"], steps)):
        where = f"{cid} step {k} ({'train' if case['steps'][k]['train'] else 'eval'})"
        f = compare(f"{where}: out", ours["out"], ref["out"], r64(k, "out"))
        if f:
            fails.append(f)
        if ref["input_grad"] is not None:
            f = compare(f"{where}: input grad", ours.get("input_grad"), ref["input_grad"],
                        r64(k, "input_grad"))
            if f:
                fails.append(f)
        if ref["psw_grad"] is not None:
            f = compare(f"{where}: per_sample_weights grad", ours.get("psw_grad"), ref["psw_grad"],
                        r64(k, "psw_grad"))
            if f:
                fails.append(f)
        for name, g in ref["grads"].items():
            o = ours["grads"].get(name, "absent")
            if o == "absent":
                fails.append(f"{where}: grad {name} not reported")
            elif (g is None) != (o is None):
                fails.append(f"{where}: grad {name} {'missing' if o is None else 'unexpected'}")
            elif g is not None:
                f = compare(f"{where}: grad {name}", o, g, r64(k, "grads", name))
                if f:
                    fails.append(f)
    got = st_read(case["state_out"])
    want = list(sd.items())
    if [n for n, _ in got] != [n for n, _ in want]:
        fails.append(f"state_dict keys {[n for n, _ in got]} != torch's {[n for n, _ in want]}")
    else:
        for (n, ours), (_, ref) in zip(got, want):
            if ours.dtype != ref.dtype:
                fails.append(f"{cid}: state {n}: dtype {ours.dtype}, torch {ref.dtype}")
                continue
            spec = {"shape": list(ours.shape), "data": ours.reshape(-1).tolist()}
            if ours.dtype == torch.int64:
                spec["dtype"] = "int64"
            f = compare(f"{cid}: final state {n}", spec, ref, r64(0, "state", n))
            if f:
                fails.append(f)
    return fails
