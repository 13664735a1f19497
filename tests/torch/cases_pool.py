"""Cases for pooling and padding (conv.h; src/core/pool.c, pad.c) in the
differential suite of test_core_ops.py (CASE_MODULES): max/avg pools (1-d
and 2-d: kernel, stride, padding, dilation, ceil_mode, count_include_pad,
divisor_override, returned int64 indices), adaptive avg/max pools and
F.pad in its four modes, against PyTorch 1.13 with gradients and float64
finite differences.  Max-pool inputs are DISTINCT (no ties) wherever
finite differences run; ties, NaN and -inf get their own cases."""
import numpy as np
import torch
import torch.nn.functional as F

OPS = ["max_pool1d", "max_pool2d", "avg_pool1d", "avg_pool2d", "adaptive_avg_pool1d",
       "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d", "pad"]


def _t(p, key, default=None):
    v = p.get(key)
    if v is None:
        return default
    return tuple(v) if isinstance(v, list) else v


def _max_pool(fn, nd):
    def run(i, p):
        return fn(i[0], _t(p, "kernel_size"), stride=_t(p, "stride"),
                  padding=_t(p, "padding", (0,) * nd), dilation=_t(p, "dilation", (1,) * nd),
                  ceil_mode=p.get("ceil_mode", False), return_indices=True)
    return run


def _avg_pool2d(i, p):
    return F.avg_pool2d(i[0], _t(p, "kernel_size"), stride=_t(p, "stride"),
                        padding=_t(p, "padding", (0, 0)), ceil_mode=p.get("ceil_mode", False),
                        count_include_pad=p.get("count_include_pad", True),
                        divisor_override=p.get("divisor_override") or None)


def _avg_pool1d(i, p):
    return F.avg_pool1d(i[0], _t(p, "kernel_size"), stride=_t(p, "stride"),
                        padding=_t(p, "padding", (0,)), ceil_mode=p.get("ceil_mode", False),
                        count_include_pad=p.get("count_include_pad", True))


def _osize(p):
    return tuple(None if v == -1 else v for v in p["output_size"])


def _pad(i, p):
    mode = p.get("mode", "constant")
    if mode == "constant":
        return F.pad(i[0], tuple(p["pad"]), value=p.get("value", 0.0))
    if "value" in p:
        return F.pad(i[0], tuple(p["pad"]), mode=mode, value=p["value"])
    return F.pad(i[0], tuple(p["pad"]), mode=mode)


TORCH_OPS = {
    "max_pool2d": _max_pool(F.max_pool2d, 2),
    "max_pool1d": _max_pool(F.max_pool1d, 1),
    "avg_pool2d": _avg_pool2d,
    "avg_pool1d": _avg_pool1d,
    "adaptive_avg_pool2d": lambda i, p: F.adaptive_avg_pool2d(i[0], _osize(p)),
    "adaptive_avg_pool1d": lambda i, p: F.adaptive_avg_pool1d(i[0], _osize(p)),
    "adaptive_max_pool2d": lambda i, p: F.adaptive_max_pool2d(i[0], _osize(p), return_indices=True),
    "adaptive_max_pool1d": lambda i, p: F.adaptive_max_pool1d(i[0], _osize(p), return_indices=True),
    "pad": _pad,
}


def add_cases(h):
    h.TORCH_OPS.update(TORCH_OPS)
    h.OPS_H.extend(o for o in OPS if o not in h.OPS_H)
    _max_pool_cases(h)
    _avg_pool_cases(h)
    _adaptive_cases(h)
    _pad_cases(h)
    _errors(h)


def _one(h, cid, op, x, p, pre=(), indices=False, fd=True, backward="rand", rg=True):
    prog = list(pre) + [("y", op, ["xi" if pre else "x"], p)]
    h.S.add(cid, [h.I("x", x, rg=rg)], prog, outputs=["y", "y.indices"] if indices else None,
            fd=fd, rng=h.rng_for(cid), backward=backward)


# ---------------------------------------------------------------- max pools

def _max_pool_cases(h):
    rng = h.rng_for("max_pool2d")
    D = h.DISTINCT
    grid = [  # (id, shape, params)
        ("k2", (2, 3, 6, 6), {"kernel_size": [2, 2]}),
        ("k2_odd_input", (2, 2, 7, 5), {"kernel_size": [2, 2]}),
        ("k3_s1", (1, 2, 5, 6), {"kernel_size": [3, 3], "stride": [1, 1]}),
        ("k3_s2_pad1", (2, 2, 7, 7), {"kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1]}),
        ("k2x3_s2x1", (2, 3, 6, 7), {"kernel_size": [2, 3], "stride": [2, 1]}),
        ("k1", (2, 2, 3, 4), {"kernel_size": [1, 1]}),
        ("stride_gt_kernel", (1, 2, 9, 9), {"kernel_size": [2, 2], "stride": [3, 3]}),
        ("pad_half_kernel", (2, 2, 5, 5), {"kernel_size": [4, 2], "padding": [2, 1]}),
        ("dilation2", (2, 2, 7, 8), {"kernel_size": [3, 2], "dilation": [2, 2]}),
        ("dilation_pad_stride", (2, 3, 9, 8),
         {"kernel_size": [3, 3], "dilation": [2, 1], "padding": [1, 1], "stride": [2, 2]}),
        ("ceil_mode", (2, 2, 7, 7), {"kernel_size": [2, 2], "ceil_mode": True}),
        ("ceil_mode_pad_drops_last", (2, 2, 5, 5),
         {"kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1], "ceil_mode": True}),
        ("ceil_mode_stride3", (1, 2, 8, 10), {"kernel_size": [3, 2], "stride": [3, 3], "ceil_mode": True}),
        ("whole_plane", (3, 2, 4, 5), {"kernel_size": [4, 5]}),
        ("batch1_c1", (1, 1, 6, 6), {"kernel_size": [2, 2]}),
        ("unbatched", (3, 6, 5), {"kernel_size": [2, 2], "stride": [1, 2]}),
    ]
    for gid, shape, p in grid:
        _one(h, f"max_pool2d/{gid}", "max_pool2d", D(rng, shape), p, indices=True)
    _one(h, "max_pool2d/noncontig_nhwc", "max_pool2d", D(rng, (2, 6, 6, 3)),
         {"kernel_size": [2, 2]}, pre=[("xi", "permute", ["x"], {"dims": [0, 3, 1, 2]})],
         indices=True)
    _one(h, "max_pool2d/noncontig_strided", "max_pool2d", D(rng, (2, 2, 6, 12)),
         {"kernel_size": [3, 3], "stride": [1, 1]},
         pre=[("xi", "slice", ["x"], {"dim": 3, "start": 1, "end": None, "step": 2})], indices=True)
    _one(h, "max_pool2d/no_grad_input", "max_pool2d", D(rng, (2, 2, 4, 4)), {"kernel_size": [2, 2]},
         indices=True, rg=False, backward=None)
    _one(h, "max_pool2d/larger_64x6x28x28", "max_pool2d", D(rng, (8, 6, 28, 28)),
         {"kernel_size": [2, 2]}, indices=True, fd=False)
    _one(h, "max_pool2d/batch0", "max_pool2d", np.zeros((0, 2, 4, 4), np.float32),
         {"kernel_size": [2, 2]}, indices=True, fd=False)
    # overlapping windows: the gradient of a shared maximum accumulates
    _one(h, "max_pool2d/overlap_accumulates", "max_pool2d", D(rng, (1, 1, 5, 5)),
         {"kernel_size": [3, 3], "stride": [1, 1]}, indices=True)
    # ties (first element of the window), NaN (wins), -inf (first index): no FD
    ties = np.array([[[[1, 1, 2, 2], [1, 1, 2, 2], [3, 0, 0, 3], [0, 3, 3, 0]]]], np.float32)
    _one(h, "max_pool2d/ties_first", "max_pool2d", ties, {"kernel_size": [2, 2]}, indices=True, fd=False)
    _one(h, "max_pool2d/ties_overlap", "max_pool2d", ties, {"kernel_size": [2, 2], "stride": [1, 1]},
         indices=True, fd=False)
    nan = np.array([[[[1, np.nan, 2, 5], [0, 3, np.nan, np.nan], [-np.inf, -np.inf, 4, 1],
                      [-np.inf, -np.inf, 2, 9]]]], np.float32)
    _one(h, "max_pool2d/nan_and_neg_inf", "max_pool2d", nan, {"kernel_size": [2, 2]}, indices=True,
         fd=False)
    _one(h, "max_pool2d/nan_generic_window", "max_pool2d", nan, {"kernel_size": [3, 3], "padding": [1, 1]},
         indices=True, fd=False)

    rng = h.rng_for("max_pool1d")
    grid1 = [
        ("k2", (2, 3, 8), {"kernel_size": [2]}),
        ("k3_s1_pad1", (2, 2, 7), {"kernel_size": [3], "stride": [1], "padding": [1]}),
        ("dilation3", (2, 2, 11), {"kernel_size": [3], "dilation": [3]}),
        ("ceil_mode", (1, 3, 9), {"kernel_size": [2], "ceil_mode": True}),
        ("stride3_ceil", (2, 2, 10), {"kernel_size": [2], "stride": [3], "ceil_mode": True}),
        ("unbatched", (3, 9), {"kernel_size": [3], "stride": [2]}),
    ]
    for gid, shape, p in grid1:
        _one(h, f"max_pool1d/{gid}", "max_pool1d", D(rng, shape), p, indices=True)
    _one(h, "max_pool1d/noncontig", "max_pool1d", D(rng, (2, 9, 3)), {"kernel_size": [2]},
         pre=[("xi", "transpose", ["x"], {"dim0": 1, "dim1": 2})], indices=True)


# ---------------------------------------------------------------- avg pools

def _avg_pool_cases(h):
    rng = h.rng_for("avg_pool2d")
    N = h.N
    grid = [
        ("k2", (2, 3, 6, 6), {"kernel_size": [2, 2]}),
        ("k3_s1", (2, 2, 5, 6), {"kernel_size": [3, 3], "stride": [1, 1]}),
        ("k2x3_s2x1", (2, 3, 6, 7), {"kernel_size": [2, 3], "stride": [2, 1]}),
        ("pad1_include", (2, 2, 5, 5), {"kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1]}),
        ("pad1_exclude", (2, 2, 5, 5),
         {"kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1], "count_include_pad": False}),
        ("pad_asym_exclude", (1, 2, 6, 5),
         {"kernel_size": [2, 3], "padding": [1, 1], "count_include_pad": False}),
        ("ceil_include", (2, 2, 7, 7), {"kernel_size": [3, 3], "stride": [2, 2], "ceil_mode": True}),
        ("ceil_exclude", (2, 2, 7, 7),
         {"kernel_size": [3, 3], "stride": [2, 2], "ceil_mode": True, "count_include_pad": False}),
        ("ceil_pad_include", (2, 2, 6, 6),
         {"kernel_size": [3, 3], "stride": [2, 2], "padding": [1, 1], "ceil_mode": True}),
        ("ceil_pad_exclude", (1, 2, 6, 7),
         {"kernel_size": [3, 2], "stride": [2, 2], "padding": [1, 1], "ceil_mode": True,
          "count_include_pad": False}),
        ("divisor_override", (2, 2, 6, 6), {"kernel_size": [2, 2], "divisor_override": 3}),
        ("divisor_override_pad", (2, 2, 5, 5),
         {"kernel_size": [3, 3], "padding": [1, 1], "divisor_override": 2}),
        ("whole_plane", (3, 2, 4, 5), {"kernel_size": [4, 5]}),
        ("unbatched", (3, 6, 5), {"kernel_size": [2, 2], "stride": [1, 2]}),
    ]
    for gid, shape, p in grid:
        _one(h, f"avg_pool2d/{gid}", "avg_pool2d", N(rng, shape), p)
    _one(h, "avg_pool2d/noncontig_nhwc", "avg_pool2d", N(rng, (2, 6, 6, 3)), {"kernel_size": [3, 3]},
         pre=[("xi", "permute", ["x"], {"dims": [0, 3, 1, 2]})])
    _one(h, "avg_pool2d/larger", "avg_pool2d", N(rng, (8, 6, 28, 28)), {"kernel_size": [2, 2]}, fd=False)

    rng = h.rng_for("avg_pool1d")
    grid1 = [
        ("k2", (2, 3, 8), {"kernel_size": [2]}),
        ("k3_s1_pad1", (2, 2, 7), {"kernel_size": [3], "stride": [1], "padding": [1]}),
        ("pad_exclude", (2, 2, 7), {"kernel_size": [3], "padding": [1], "count_include_pad": False}),
        ("ceil_mode", (1, 3, 9), {"kernel_size": [2], "ceil_mode": True}),
        ("ceil_pad_exclude", (2, 2, 10),
         {"kernel_size": [4], "stride": [3], "padding": [2], "ceil_mode": True, "count_include_pad": False}),
        ("unbatched", (3, 9), {"kernel_size": [3], "stride": [2]}),
    ]
    for gid, shape, p in grid1:
        _one(h, f"avg_pool1d/{gid}", "avg_pool1d", N(rng, shape), p)


# ------------------------------------------------------------------ adaptive

def _adaptive_cases(h):
    rng = h.rng_for("adaptive")
    N, D = h.N, h.DISTINCT
    sizes2 = [
        ("divides", (2, 3, 6, 8), [3, 4]),
        ("uneven_7_to_3", (2, 2, 7, 5), [3, 2]),
        ("global", (2, 4, 5, 6), [1, 1]),
        ("upsample", (1, 2, 3, 2), [5, 4]),
        ("same_size", (2, 2, 4, 4), [4, 4]),
        ("none_keeps_h", (2, 2, 5, 6), [-1, 2]),
        ("none_keeps_w", (2, 2, 5, 6), [3, -1]),
        ("unbatched", (3, 7, 6), [2, 4]),
        ("resnet_head", (2, 8, 7, 7), [1, 1]),
    ]
    for gid, shape, o in sizes2:
        _one(h, f"adaptive_avg_pool2d/{gid}", "adaptive_avg_pool2d", N(rng, shape), {"output_size": o})
        _one(h, f"adaptive_max_pool2d/{gid}", "adaptive_max_pool2d", D(rng, shape), {"output_size": o},
             indices=True)
    sizes1 = [("divides", (2, 3, 8), [4]), ("uneven", (2, 2, 7), [3]), ("global", (2, 3, 5), [1]),
              ("upsample", (1, 2, 3), [7]), ("unbatched", (3, 10), [4])]
    for gid, shape, o in sizes1:
        _one(h, f"adaptive_avg_pool1d/{gid}", "adaptive_avg_pool1d", N(rng, shape), {"output_size": o})
        _one(h, f"adaptive_max_pool1d/{gid}", "adaptive_max_pool1d", D(rng, shape), {"output_size": o},
             indices=True)
    _one(h, "adaptive_avg_pool2d/noncontig", "adaptive_avg_pool2d", N(rng, (2, 5, 6, 3)),
         {"output_size": [2, 3]}, pre=[("xi", "permute", ["x"], {"dims": [0, 3, 1, 2]})])
    _one(h, "adaptive_max_pool2d/noncontig", "adaptive_max_pool2d", D(rng, (2, 5, 6, 3)),
         {"output_size": [2, 3]}, pre=[("xi", "permute", ["x"], {"dims": [0, 3, 1, 2]})],
         indices=True)
    _one(h, "adaptive_max_pool2d/nan", "adaptive_max_pool2d",
         np.array([[[[1, np.nan, 2], [0, 3, -np.inf], [5, 1, np.nan]]]], np.float32),
         {"output_size": [2, 2]}, indices=True, fd=False)
    _one(h, "adaptive_avg_pool2d/output_zero", "adaptive_avg_pool2d", N(rng, (2, 2, 3, 3)),
         {"output_size": [0, 2]}, fd=False, backward=None)   # torch's backward refuses empty grads


# ---------------------------------------------------------------------- pad

def _pad_cases(h):
    rng = h.rng_for("pad")
    N = h.N
    const = [
        ("last_dim", (2, 3, 4), [1, 2], 0.0),
        ("two_dims_value", (2, 3, 4), [1, 0, 2, 1], 1.5),
        ("three_dims", (2, 3, 4), [0, 1, 1, 0, 2, 2], -2.0),
        ("all_dims_4d", (2, 2, 3, 2), [1, 1, 0, 1, 1, 0, 1, 2], 0.25),
        ("negative_crops", (2, 3, 6), [-1, -2], 0.0),
        ("mixed_sign", (2, 5, 6), [2, -1, -1, 3], 0.5),
        ("zero_pads", (3, 4), [0, 0], 0.0),
        ("1d_input", (5,), [2, 3], 7.0),
        ("crop_to_empty", (2, 4), [-2, -2], 0.0),
    ]
    for gid, shape, pad, v in const:
        _one(h, f"pad/constant_{gid}", "pad", N(rng, shape), {"pad": pad, "value": v},
             fd="empty" not in gid)
    modes = [
        ("reflect", "1d_batched", (2, 3, 6), [2, 3]),
        ("reflect", "1d_unbatched", (3, 6), [1, 2]),
        ("reflect", "1d_max", (2, 2, 4), [3, 3]),
        ("reflect", "2d_batched", (2, 2, 5, 6), [1, 2, 3, 1]),
        ("reflect", "2d_unbatched", (2, 4, 5), [2, 2, 1, 3]),
        ("reflect", "3d", (1, 2, 3, 4, 5), [1, 1, 2, 0, 1, 2]),
        ("reflect", "negative", (2, 2, 6), [-1, 2]),
        ("replicate", "1d_batched", (2, 3, 4), [3, 5]),
        ("replicate", "1d_unbatched", (3, 4), [2, 0]),
        ("replicate", "2d_batched", (2, 2, 3, 4), [2, 1, 0, 3]),
        ("replicate", "2d_unbatched", (2, 3, 3), [4, 4, 4, 4]),
        ("replicate", "3d", (1, 2, 3, 3, 2), [1, 2, 1, 0, 2, 1]),
        ("replicate", "negative", (2, 2, 6), [2, -2]),
        ("circular", "1d", (2, 3, 5), [2, 3]),
        ("circular", "1d_full_wrap", (2, 2, 3), [3, 3]),
        ("circular", "2d", (2, 2, 4, 5), [1, 2, 3, 1]),
        ("circular", "3d", (1, 2, 3, 3, 4), [1, 1, 1, 2, 0, 1]),
        ("circular", "negative", (2, 2, 6), [-1, 2]),
        ("circular", "negative_left_wrap", (2, 2, 5), [2, -1]),
    ]
    for mode, gid, shape, pad in modes:
        _one(h, f"pad/{mode}_{gid}", "pad", N(rng, shape), {"pad": pad, "mode": mode})
    _one(h, "pad/reflect_noncontig", "pad", N(rng, (2, 5, 3, 4)), {"pad": [1, 2, 2, 1], "mode": "reflect"},
         pre=[("xi", "transpose", ["x"], {"dim0": 1, "dim1": 3})])
    _one(h, "pad/constant_noncontig", "pad", N(rng, (4, 3)), {"pad": [1, 1, 2, 0], "value": 1.0},
         pre=[("xi", "t", ["x"], {})])
    _one(h, "pad/replicate_larger", "pad", N(rng, (4, 8, 30, 30)), {"pad": [2, 2, 2, 2], "mode": "replicate"},
         fd=False)


# -------------------------------------------------------------------- errors

def _errors(h):
    N, I, err = h.N, h.I, h.err
    SH, ARG = {h.ET_ERR_SHAPE}, {h.ET_ERR_ARG}
    rng = h.rng_for("pool_errors")

    def e(cid, shape, op, p, names, codes):
        err(f"{op}_{cid}", [I("x", N(rng, shape))], [("y", op, ["x"], p)], names, codes)

    e("rank", (4, 4), "max_pool2d", {"kernel_size": [2, 2]}, ["max_pool2d", "[4,4]"], SH)
    e("rank", (1, 2, 3, 4, 4), "avg_pool2d", {"kernel_size": [2, 2]}, ["avg_pool2d", "[1,2,3,4,4]"], SH)
    e("too_small", (32, 8, 1, 1), "max_pool2d", {"kernel_size": [2, 2]},
      ["max_pool2d", "[32,8,1,1]", "kernel 2"], SH)
    e("too_small", (2, 3, 1), "max_pool1d", {"kernel_size": [2]}, ["max_pool1d", "[2,3,1]"], SH)
    e("too_small", (2, 3, 2, 2), "avg_pool2d", {"kernel_size": [3, 3]}, ["avg_pool2d", "[2,3,2,2]"], SH)
    e("pad_gt_half", (1, 1, 5, 5), "max_pool2d", {"kernel_size": [2, 2], "padding": [2, 2]},
      ["max_pool2d", "half of kernel"], ARG)
    e("pad_gt_half", (1, 1, 5, 5), "avg_pool2d", {"kernel_size": [3, 3], "padding": [2, 0]},
      ["avg_pool2d", "half of kernel"], ARG)
    e("zero_kernel", (1, 1, 5, 5), "max_pool2d", {"kernel_size": [0, 2]}, ["max_pool2d", "kernel_size"], ARG)
    e("zero_stride", (1, 1, 5, 5), "avg_pool2d", {"kernel_size": [2, 2], "stride": [0, 1]},
      ["avg_pool2d", "stride"], ARG)
    e("zero_dilation", (1, 1, 5, 5), "max_pool2d", {"kernel_size": [2, 2], "dilation": [1, 0]},
      ["max_pool2d", "dilation"], ARG)
    e("empty_plane", (1, 2, 0, 4), "max_pool2d", {"kernel_size": [1, 1]}, ["max_pool2d", "[1,2,0,4]"], SH)
    e("rank", (5,), "adaptive_avg_pool1d", {"output_size": [2]}, ["adaptive_avg_pool1d", "[5]"], SH)
    e("negative_size", (1, 2, 5, 5), "adaptive_max_pool2d", {"output_size": [-2, 2]},
      ["adaptive_max_pool2d", "output_size"], ARG)
    e("odd_length", (2, 3), "pad", {"pad": [1, 1, 1]}, ["pad", "divisible by 2"], ARG)
    e("too_long", (2, 3), "pad", {"pad": [1, 1, 1, 1, 1, 1]}, ["pad", "too large"], ARG)
    e("reflect_too_big", (1, 2, 3), "pad", {"pad": [3, 0], "mode": "reflect"},
      ["pad", "less than the corresponding input dimension", "[1,2,3]"], ARG)
    e("reflect_1d_input", (5,), "pad", {"pad": [1, 1], "mode": "reflect"}, ["pad", "reflect", "[5]"], ARG)
    e("reflect_4d_one_dim", (1, 2, 3, 5), "pad", {"pad": [1, 1], "mode": "reflect"},
      ["pad", "reflect", "[1,2,3,5]"], ARG)
    e("circular_unbatched", (2, 5), "pad", {"pad": [1, 1], "mode": "circular"}, ["pad", "circular"], ARG)
    e("circular_wraps_twice", (1, 2, 3), "pad", {"pad": [4, 0], "mode": "circular"},
      ["pad", "wrapping around more than once"], ARG)
    e("value_with_reflect", (1, 2, 5), "pad", {"pad": [1, 1], "mode": "reflect", "value": 1.0},
      ["pad", "value"], ARG)
    e("crop_negative_size", (2, 5), "pad", {"pad": [-3, -3]}, ["pad", "[2,5]"], SH)
