"""Differential tests of the attention layers (nn_attention.h:
MultiheadAttention, TransformerEncoderLayer, TransformerEncoder) and of
F.scaled_dot_product_attention (ops.h) against torch 1.13.  Run from
test_attention.py's main() as run(T), T being the test_nn module (st_write,
st_read, run, report, compare_all, tmp).

Each case builds the layer on both sides from one spec (torch's class name
and keyword arguments), loads torch's state_dict into ours, runs one forward
and one backward (upstream gradients for the output and, with need_weights,
for the attention weights) and compares the output, the weights, the
gradients of query / key / value (or src), of a float attn_mask and of every
parameter at rtol 1e-4 / atol 1e-5.  It also checks that our fresh module
has torch's state_dict keys, in torch's order, with torch's shapes, and that
its initial values follow torch's init (xavier_uniform_ bounds, zero biases,
LayerNorm ones / zeros, copies of one layer in a TransformerEncoder).
Dropout > 0 is compared in eval mode (identity, as torch); in training its
masks are random on both sides, so tests/nn/check_attention.c checks their
structure instead.  Error specs must fail on both sides.
"""
import json
import math
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

SHAPE_ERR, ARG_ERR = 1, 3


def _gen(name):
    return torch.Generator().manual_seed(zlib.crc32(name.encode()))


def _torch_module(spec):
    t = spec["type"]
    if t == "MultiheadAttention":
        kw = {k: spec[k] for k in ("dropout", "bias", "add_bias_kv", "add_zero_attn", "kdim",
                                   "vdim", "batch_first") if k in spec}
        return nn.MultiheadAttention(spec["embed_dim"], spec["num_heads"], **kw)
    kw = {k: spec[k] for k in ("dim_feedforward", "dropout", "activation", "layer_norm_eps",
                               "batch_first", "norm_first") if k in spec}
    layer = nn.TransformerEncoderLayer(spec["d_model"], spec["nhead"], **kw)
    if t == "TransformerEncoderLayer":
        return layer
    norm = nn.LayerNorm(spec["d_model"], eps=spec.get("layer_norm_eps", 1e-5)) \
        if spec.get("final_norm") else None
    return nn.TransformerEncoder(layer, spec["num_layers"], norm=norm, enable_nested_tensor=False)


def _randomize(mod, g):
    """Non-trivial values for every parameter (torch's init zeroes the biases,
    which would leave their gradients' paths untested)."""
    with torch.no_grad():
        for p in mod.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def _mask(g, shape, kind, rows_keep=True):
    """kind "bool": True = masked, with at least one key kept per row;
    "float": additive values with some -inf."""
    if kind == "bool":
        m = torch.rand(shape, generator=g) < 0.35
        m[..., 0] = False          # every query keeps a key: no NaN rows
        return m
    m = torch.randn(shape, generator=g)
    m[torch.rand(shape, generator=g) < 0.2] = float("-inf")
    m[..., 0] = 0.0
    return m


def attention_case(T, name, spec, inputs, expect_error=None, check_init=True):
    """inputs: {"query"/"key"/"value"/"src": shape, "attn_mask"/"mask": (shape, kind),
    "key_padding_mask": (shape, kind)}."""
    case = f"attention {name}"
    g = _gen(name)
    try:
        spec = dict(spec)
        kind = spec["type"]
        mod = None
        torch_err = None
        tensors = {}
        for k, v in inputs.items():
            if k in ("attn_mask", "mask", "key_padding_mask"):
                tensors[k] = _mask(g, v[0], v[1])
                if v[1] == "bool":
                    spec["kpm_bool" if k == "key_padding_mask" else "mask_bool"] = True
                else:
                    tensors[k].requires_grad_(k != "key_padding_mask")
            else:
                tensors[k] = torch.randn(v, generator=g).requires_grad_(True)
        if spec.get("self"):
            tensors["key"] = tensors["value"] = tensors["query"]
        if spec.get("kv_same"):
            tensors["value"] = tensors["key"]
        y = w = None
        try:
            if kind == "sdpa":
                y, w = F._scaled_dot_product_attention(
                    tensors["query"], tensors["key"], tensors["value"],
                    attn_mask=tensors.get("attn_mask"), dropout_p=spec.get("dropout_p", 0.0),
                    need_attn_weights=True, is_causal=spec.get("is_causal", False))
                if not spec.get("need_weights"):
                    w = None
            else:
                mod = _torch_module(spec)
                _randomize(mod, g)
                if not spec.get("train", True):
                    mod.eval()
                if kind == "MultiheadAttention":
                    y, w = mod(tensors["query"], tensors["key"], tensors["value"],
                               key_padding_mask=tensors.get("key_padding_mask"),
                               need_weights=spec.get("need_weights", False),
                               attn_mask=tensors.get("attn_mask"),
                               average_attn_weights=spec.get("average_attn_weights", True))
                elif kind == "TransformerEncoderLayer":
                    y = mod(tensors["src"], src_mask=tensors.get("mask"),
                            src_key_padding_mask=tensors.get("key_padding_mask"))
                else:
                    y = mod(tensors["src"], mask=tensors.get("mask"),
                            src_key_padding_mask=tensors.get("key_padding_mask"))
        except Exception as e:  # noqa: BLE001 - compared with ours below
            torch_err = e
        st = {}
        for k, v in tensors.items():
            st[k] = v.detach().float().numpy()
        if mod is not None:
            for k, v in mod.state_dict().items():
                st["p." + k] = v.float().numpy()
        if torch_err is None:
            gout = torch.randn(y.shape, generator=g)
            loss = (y * gout).sum()
            if w is not None:
                gw = torch.randn(w.shape, generator=g)
                loss = loss + (w * gw).sum()
                st["gw"] = gw.numpy()
            loss.backward()
            st["gout"] = gout.numpy()
        ours = T.run_spec(case, "attention", spec, st, "a", expect_error, torch_err)
        if ours is None:
            return
        want = {"y": y}
        if w is not None:
            want["w"] = w
        seen = set()
        for k, v in tensors.items():
            if id(v) in seen or v.grad is None:
                continue
            seen.add(id(v))
            want[("attn_mask" if k == "mask" else k) + "_grad"] = v.grad
        if mod is not None:
            for pname, p in mod.named_parameters():
                want["grad." + pname] = p.grad
        T.compare_all(case, ours, want)
        if mod is not None and check_init:
            _check_init(T, case, _torch_module(spec), ours)
    except Exception as e:  # noqa: BLE001 - any failure is a test failure
        T.report(case, False, repr(e))


def _check_init(T, case, fresh, ours):
    """Keys in torch's order with its shapes; initial values from torch's init."""
    sd = fresh.state_dict()
    keys = [k[len("init."):] for k in ours if k.startswith("init.")]
    T.report(f"{case} state_dict keys", sorted(keys) == sorted(sd), f"ours {keys}, torch {list(sd)}")
    bad = []
    for k, v in sd.items():
        mine = ours.get("init." + k)
        if mine is None or tuple(mine.shape) != tuple(v.shape):
            bad.append(f"{k}: shape {None if mine is None else mine.shape} vs {tuple(v.shape)}")
            continue
        leaf = k.split(".")[-1]
        if leaf in ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight"):
            bound = math.sqrt(6.0 / (v.shape[0] + v.shape[1]))
            top = float(np.abs(mine).max())
            if not (top <= bound * (1 + 1e-6) and top > 0.8 * bound):
                bad.append(f"{k}: max |v| {top:.4g}, xavier bound {bound:.4g}")
        elif leaf in ("in_proj_bias",) or k.endswith("out_proj.bias"):
            if np.abs(mine).max() != 0:
                bad.append(f"{k}: not zero")
        elif k.endswith("out_proj.weight") or (".linear" in "." + k and leaf in ("weight", "bias")):
            fan_in = v.shape[1] if leaf == "weight" else sd[k[:-4] + "weight"].shape[1]
            bound = 1 / math.sqrt(fan_in)
            if float(np.abs(mine).max()) > bound * (1 + 1e-6):
                bad.append(f"{k}: beyond U(+-{bound:.4g})")
        elif "norm" in k:
            if not np.array_equal(mine, v.numpy()):
                bad.append(f"{k}: not torch's {'ones' if leaf == 'weight' else 'zeros'}")
    # the layers of an encoder start as copies of one layer, as torch's deepcopy
    for k in sd:
        if k.startswith("layers.") and not k.startswith("layers.0."):
            first = "layers.0." + k.split(".", 2)[2]
            if not np.array_equal(ours["init." + k], ours["init." + first]):
                bad.append(f"{k}: differs from {first}")
    T.report(f"{case} init", not bad, "; ".join(bad))


def sdpa_cases(T):
    C = [
        ("sdpa 3d", {"type": "sdpa", "need_weights": True},
         {"query": (2, 5, 4), "key": (2, 6, 4), "value": (2, 6, 3)}),
        ("sdpa 4d broadcast batch", {"type": "sdpa"},
         {"query": (2, 3, 5, 4), "key": (1, 3, 7, 4), "value": (1, 3, 7, 2)}),
        ("sdpa 2d", {"type": "sdpa", "need_weights": True},
         {"query": (5, 4), "key": (3, 4), "value": (3, 6)}),
        ("sdpa causal", {"type": "sdpa", "is_causal": True, "need_weights": True},
         {"query": (2, 6, 4), "key": (2, 6, 4), "value": (2, 6, 4)}),
        ("sdpa causal L<S", {"type": "sdpa", "is_causal": True},
         {"query": (1, 3, 4), "key": (1, 5, 4), "value": (1, 5, 4)}),
        ("sdpa float mask (grad)", {"type": "sdpa", "need_weights": True},
         {"query": (2, 5, 4), "key": (2, 6, 4), "value": (2, 6, 4), "attn_mask": ((2, 5, 6), "float")}),
        ("sdpa float mask broadcast", {"type": "sdpa"},
         {"query": (2, 5, 4), "key": (2, 6, 4), "value": (2, 6, 4), "attn_mask": ((5, 6), "float")}),
        # without the weights: the fused op (sdpa.c), gradients of the mask too
        ("sdpa fused float mask (grad)", {"type": "sdpa"},
         {"query": (2, 5, 4), "key": (2, 6, 4), "value": (2, 6, 4), "attn_mask": ((2, 5, 6), "float")}),
        ("sdpa fused mask broadcast over batch and rows (grad)", {"type": "sdpa"},
         {"query": (2, 3, 5, 8), "key": (2, 3, 7, 8), "value": (2, 3, 7, 3),
          "attn_mask": ((3, 1, 7), "float")}),
        ("sdpa fused 2d", {"type": "sdpa"}, {"query": (5, 4), "key": (3, 4), "value": (3, 6)}),
        ("sdpa fused causal", {"type": "sdpa", "is_causal": True},
         {"query": (2, 6, 4), "key": (2, 6, 4), "value": (2, 6, 4)}),
        ("sdpa fused head dim 5 (scale not a power of two)", {"type": "sdpa"},
         {"query": (3, 9, 5), "key": (3, 11, 5), "value": (3, 11, 5)}),
        ("sdpa fused batch broadcast of q against k, v", {"type": "sdpa"},
         {"query": (1, 4, 6, 4), "key": (2, 1, 7, 4), "value": (2, 4, 7, 5)}),
        ("sdpa fused long rows", {"type": "sdpa"},
         {"query": (2, 33, 16), "key": (2, 40, 16), "value": (2, 40, 16)}),
    ]
    for name, spec, inputs in C:
        attention_case(T, name, spec, inputs)
    # bool masks of SDPA: True = takes part (the opposite of MultiheadAttention)
    name = "sdpa bool mask (True takes part)"
    g = _gen(name)
    q, k, v = (torch.randn(s, generator=g).requires_grad_(True) for s in ((2, 4, 3), (2, 5, 3), (2, 5, 3)))
    keep = torch.rand(2, 4, 5, generator=g) < 0.6
    keep[..., 0] = True
    y, _ = F._scaled_dot_product_attention(q, k, v, attn_mask=keep, need_attn_weights=False)
    gout = torch.randn(y.shape, generator=g)
    y.backward(gout)
    T.st_write(T.tmp("a_in.st"), {"query": q.detach().numpy(), "key": k.detach().numpy(),
                                  "value": v.detach().numpy(), "attn_mask": keep.float().numpy(),
                                  "gout": gout.numpy()})
    got = T.run("attention", json.dumps({"type": "sdpa", "mask_bool": True}), T.tmp("a_in.st"),
                T.tmp("a_out.st")).strip()
    if got.startswith("error:"):
        T.report("attention " + name, False, got)
    else:
        ours, _ = T.st_read(T.tmp("a_out.st"))
        T.compare_all("attention " + name, ours, {"y": y, "query_grad": q.grad, "key_grad": k.grad,
                                                 "value_grad": v.grad})
    for name, spec, inputs, err in [
        ("sdpa E mismatch", {"type": "sdpa"}, {"query": (2, 5, 4), "key": (2, 6, 3), "value": (2, 6, 3)},
         (SHAPE_ERR, ["scaled_dot_product_attention", "[2,5,4]"])),
        ("sdpa causal with mask", {"type": "sdpa", "is_causal": True},
         {"query": (2, 5, 4), "key": (2, 5, 4), "value": (2, 5, 4), "attn_mask": ((5, 5), "float")},
         (ARG_ERR, ["is_causal"])),
    ]:
        attention_case(T, name, spec, inputs, expect_error=err)


def mha_cases(T):
    E, H = 8, 2
    base = {"type": "MultiheadAttention", "embed_dim": E, "num_heads": H}
    L, S, N = 5, 7, 3
    C = [
        ("mha self", {**base, "self": True}, {"query": (L, N, E)}),
        ("mha self need_weights", {**base, "self": True, "need_weights": True}, {"query": (L, N, E)}),
        ("mha per-head weights", {**base, "self": True, "need_weights": True,
                                  "average_attn_weights": False}, {"query": (L, N, E)}),
        ("mha cross kv_same", {**base, "kv_same": True, "need_weights": True},
         {"query": (L, N, E), "key": (S, N, E)}),
        ("mha q k v distinct", {**base, "need_weights": True},
         {"query": (L, N, E), "key": (S, N, E), "value": (S, N, E)}),
        ("mha batch_first", {**base, "batch_first": True, "self": True, "need_weights": True},
         {"query": (N, L, E)}),
        ("mha batch_first cross", {**base, "batch_first": True},
         {"query": (N, L, E), "key": (N, S, E), "value": (N, S, E)}),
        ("mha unbatched", {**base, "need_weights": True},
         {"query": (L, E), "key": (S, E), "value": (S, E)}),
        ("mha unbatched kpm", {**base, "need_weights": True, "self": True},
         {"query": (L, E), "key_padding_mask": ((L,), "bool")}),
        ("mha no bias", {**base, "bias": False, "self": True}, {"query": (L, N, E)}),
        ("mha kdim vdim", {**base, "kdim": 5, "vdim": 3, "need_weights": True},
         {"query": (L, N, E), "key": (S, N, 5), "value": (S, N, 3)}),
        ("mha kdim only", {**base, "kdim": 6, "batch_first": True},
         {"query": (N, L, E), "key": (N, S, 6), "value": (N, S, E)}),
        ("mha one head", {**base, "num_heads": 1, "self": True, "need_weights": True},
         {"query": (L, N, E)}),
        ("mha 4 heads odd sizes", {"type": "MultiheadAttention", "embed_dim": 12, "num_heads": 4,
                                   "need_weights": True},
         {"query": (3, 1, 12), "key": (9, 1, 12), "value": (9, 1, 12)}),
        ("mha bool attn_mask 2d", {**base, "self": True, "need_weights": True},
         {"query": (L, N, E), "attn_mask": ((L, L), "bool")}),
        ("mha float attn_mask 2d (grad)", {**base, "need_weights": True},
         {"query": (L, N, E), "key": (S, N, E), "value": (S, N, E), "attn_mask": ((L, S), "float")}),
        ("mha bool attn_mask 3d", {**base, "self": True},
         {"query": (L, N, E), "attn_mask": ((N * H, L, L), "bool")}),
        ("mha float attn_mask 3d", {**base, "self": True, "need_weights": True},
         {"query": (L, N, E), "attn_mask": ((N * H, L, L), "float")}),
        ("mha key_padding_mask bool", {**base, "kv_same": True, "need_weights": True},
         {"query": (L, N, E), "key": (S, N, E), "key_padding_mask": ((N, S), "bool")}),
        ("mha key_padding_mask float", {**base, "kv_same": True, "need_weights": True},
         {"query": (L, N, E), "key": (S, N, E), "key_padding_mask": ((N, S), "float")}),
        ("mha bool mask + bool kpm", {**base, "self": True, "need_weights": True, "batch_first": True},
         {"query": (N, L, E), "attn_mask": ((L, L), "bool"), "key_padding_mask": ((N, L), "bool")}),
        ("mha float mask + bool kpm", {**base, "self": True, "need_weights": True},
         {"query": (L, N, E), "attn_mask": ((L, L), "float"), "key_padding_mask": ((N, L), "bool")}),
        ("mha add_bias_kv", {**base, "add_bias_kv": True, "need_weights": True},
         {"query": (L, N, E), "key": (S, N, E), "value": (S, N, E),
          "attn_mask": ((L, S), "bool"), "key_padding_mask": ((N, S), "bool")}),
        ("mha add_zero_attn", {**base, "add_zero_attn": True, "self": True, "need_weights": True},
         {"query": (L, N, E), "attn_mask": ((L, L), "float"), "key_padding_mask": ((N, L), "bool")}),
        ("mha bias_kv zero_attn kdim", {**base, "add_bias_kv": True, "add_zero_attn": True,
                                        "kdim": 4, "vdim": 6},
         {"query": (L, N, E), "key": (S, N, 4), "value": (S, N, 6)}),
        ("mha dropout eval", {**base, "dropout": 0.3, "train": False, "self": True,
                              "need_weights": True}, {"query": (L, N, E)}),
        ("mha batch 1", {**base, "self": True, "need_weights": True}, {"query": (L, 1, E)}),
        ("mha seq 1", {**base, "need_weights": True},
         {"query": (1, N, E), "key": (1, N, E), "value": (1, N, E)}),
        # without the weights: the fused attention op, the heads read in place
        ("mha fused float attn_mask 2d (grad)", {**base},
         {"query": (L, N, E), "key": (S, N, E), "value": (S, N, E), "attn_mask": ((L, S), "float")}),
        ("mha fused float attn_mask 3d (grad)", {**base, "self": True},
         {"query": (L, N, E), "attn_mask": ((N * H, L, L), "float")}),
        ("mha fused batch_first self masks", {**base, "batch_first": True, "self": True},
         {"query": (N, L, E), "attn_mask": ((L, L), "bool"), "key_padding_mask": ((N, L), "bool")}),
        ("mha fused float kpm", {**base, "kv_same": True},
         {"query": (L, N, E), "key": (S, N, E), "key_padding_mask": ((N, S), "float")}),
        ("mha fused add_bias_kv", {**base, "add_bias_kv": True, "batch_first": True},
         {"query": (N, L, E), "key": (N, S, E), "value": (N, S, E),
          "attn_mask": ((L, S), "float"), "key_padding_mask": ((N, S), "bool")}),
        ("mha fused unbatched kpm", {**base, "self": True},
         {"query": (L, E), "key_padding_mask": ((L,), "bool")}),
        ("mha fused kdim vdim batch_first", {**base, "kdim": 5, "vdim": 3, "batch_first": True},
         {"query": (N, L, E), "key": (N, S, 5), "value": (N, S, 3)}),
        ("mha fused 4 heads", {"type": "MultiheadAttention", "embed_dim": 12, "num_heads": 4,
                               "batch_first": True, "self": True}, {"query": (2, 9, 12)}),
    ]
    for name, spec, inputs in C:
        attention_case(T, name, spec, inputs)
    for name, spec, inputs, err in [
        ("mha embed_dim not divisible", {**base, "num_heads": 3}, {"query": (L, N, E)},
         (ARG_ERR, ["MultiheadAttention(8, 3)", "divisible"])),
        ("mha wrong embed dim", {**base, "self": True}, {"query": (L, N, 6)},
         (SHAPE_ERR, ["MultiheadAttention(8, 2)", "embedding dimension of 8"])),
        ("mha 4d query", {**base, "self": True}, {"query": (2, L, N, E)},
         (SHAPE_ERR, ["3D", "[2, 5, 3, 8]"])),
        ("mha bad 2d mask", {**base, "self": True}, {"query": (L, N, E), "attn_mask": ((L, L + 1), "bool")},
         (SHAPE_ERR, ["2D attn_mask", "[5, 6]"])),
        ("mha bad 3d mask", {**base, "self": True}, {"query": (L, N, E), "attn_mask": ((N, L, L), "float")},
         (SHAPE_ERR, ["3D attn_mask", "[6, 5, 5]"])),
        ("mha bad kpm", {**base, "self": True}, {"query": (L, N, E), "key_padding_mask": ((N, L + 2), "bool")},
         (SHAPE_ERR, ["key_padding_mask", "[3, 5]"])),
        ("mha key value lengths differ", {**base},
         {"query": (L, N, E), "key": (S, N, E), "value": (S + 1, N, E)}, (SHAPE_ERR, ["key", "value"])),
    ]:
        attention_case(T, name, spec, inputs, expect_error=err)


def transformer_cases(T):
    d, h, L, N = 8, 2, 6, 3
    lay = {"type": "TransformerEncoderLayer", "d_model": d, "nhead": h, "dim_feedforward": 16,
           "dropout": 0.0}
    C = [
        ("encoder layer", lay, {"src": (L, N, d)}),
        ("encoder layer default dropout eval", {**lay, "dropout": 0.1, "train": False}, {"src": (L, N, d)}),
        ("encoder layer norm_first", {**lay, "norm_first": True}, {"src": (L, N, d)}),
        ("encoder layer gelu", {**lay, "activation": "gelu"}, {"src": (L, N, d)}),
        ("encoder layer batch_first", {**lay, "batch_first": True}, {"src": (N, L, d)}),
        ("encoder layer gelu norm_first batch_first eps", {**lay, "activation": "gelu", "norm_first": True,
                                                            "batch_first": True, "layer_norm_eps": 1e-3},
         {"src": (N, L, d)}),
        ("encoder layer masks", {**lay, "batch_first": True},
         {"src": (N, L, d), "mask": ((L, L), "float"), "key_padding_mask": ((N, L), "bool")}),
        ("encoder layer bool mask", lay, {"src": (L, N, d), "mask": ((L, L), "bool")}),
        ("encoder layer unbatched", lay, {"src": (L, d)}),
        ("encoder layer eval", {**lay, "train": False, "batch_first": True},
         {"src": (N, L, d), "key_padding_mask": ((N, L), "bool")}),
        ("encoder 2 layers", {**lay, "type": "TransformerEncoder", "num_layers": 2}, {"src": (L, N, d)}),
        ("encoder 3 layers final norm masks", {**lay, "type": "TransformerEncoder", "num_layers": 3,
                                               "final_norm": True, "norm_first": True, "batch_first": True},
         {"src": (N, L, d), "mask": ((L, L), "float"), "key_padding_mask": ((N, L), "bool")}),
        ("encoder 2 layers gelu eval", {**lay, "type": "TransformerEncoder", "num_layers": 2,
                                        "activation": "gelu", "train": False, "final_norm": True},
         {"src": (L, N, d)}),
        # the issue's performance shape: d_model 64, 4 heads, seq 32, batch 16
        ("encoder bench shape", {"type": "TransformerEncoder", "d_model": 64, "nhead": 4,
                                 "dim_feedforward": 128, "dropout": 0.0, "num_layers": 2,
                                 "batch_first": True}, {"src": (16, 32, 64)}),
    ]
    for name, spec, inputs in C:
        attention_case(T, name, spec, inputs)
    for name, spec, inputs, err in [
        ("encoder layer bad activation", {**lay, "activation": "tanh"}, {"src": (L, N, d)},
         (ARG_ERR, ["relu/gelu"])),
        ("encoder layer wrong width", lay, {"src": (L, N, d + 1)},
         (SHAPE_ERR, ["TransformerEncoderLayer(8, 2)", "embedding dimension of 8"])),
    ]:
        attention_case(T, name, spec, inputs, expect_error=err)


def run(T):
    sdpa_cases(T)
    mha_cases(T)
    transformer_cases(T)
