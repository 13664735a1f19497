"""Cases for conv.h (convolution, pooling, padding, unfold/fold) in the
differential suite of test_core_ops.py (CASE_MODULES), which calls
add_cases(its own namespace) after its own cases: the torch lambdas join
TORCH_OPS, the runner names (core_runner_conv.c) join OPS_H, so the
coverage check covers them, and the cases go through the same S.add / err
machinery (values, gradients, flags and float64 finite differences against
PyTorch 1.13).

Every convolution case runs twice, once per algorithm ("algo": "im2col" and
"onednn", see et_set_conv_algo), so both ways of computing a convolution are
held to PyTorch; finite differences run on the im2col copy (the gradient
formulas are the same code above the two backends).
"""
import warnings

import numpy as np
import torch.nn.functional as F

# padding="same" with an even kernel: torch warns that it pads a copy (we test that case)
warnings.filterwarnings("ignore", message="Using padding='same'")

OPS = ["conv1d", "conv2d", "conv_transpose2d", "unfold", "fold"]


def _opt(i):
    return i[2] if len(i) > 2 else None


def _tup(p, key, default):
    v = p.get(key)
    if v is None:
        return default
    return tuple(v) if isinstance(v, list) else v


def _conv(fn, nd):
    one = (1,) * nd
    zero = (0,) * nd

    def run(i, p):
        return fn(i[0], i[1], _opt(i), stride=_tup(p, "stride", one),
                  padding=_tup(p, "padding", zero), dilation=_tup(p, "dilation", one),
                  groups=p.get("groups", 1))
    return run


def _conv_t(i, p):
    return F.conv_transpose2d(i[0], i[1], _opt(i), stride=_tup(p, "stride", (1, 1)),
                              padding=_tup(p, "padding", (0, 0)),
                              output_padding=_tup(p, "output_padding", (0, 0)),
                              groups=p.get("groups", 1), dilation=_tup(p, "dilation", (1, 1)))


def _fold_args(p):
    return dict(kernel_size=_tup(p, "kernel_size", None), dilation=_tup(p, "dilation", 1),
                padding=_tup(p, "padding", 0), stride=_tup(p, "stride", 1))


TORCH_OPS = {
    "unfold": lambda i, p: F.unfold(i[0], **_fold_args(p)),
    "fold": lambda i, p: F.fold(i[0], _tup(p, "output_size", None), **_fold_args(p)),
    "conv1d": _conv(F.conv1d, 1),
    "conv2d": _conv(F.conv2d, 2),
    "conv_transpose2d": _conv_t,
}

ALGOS = ["im2col", "onednn"]


def add_cases(h):
    """Register the ops and add every case to h.S (h: test_core_ops' namespace)."""
    h.TORCH_OPS.update(TORCH_OPS)
    h.OPS_H.extend(o for o in OPS if o not in h.OPS_H)
    _conv_cases(h)
    _conv_errors(h)
    _fold_cases(h)


# ---------------------------------------------------------------- convolution

def _conv_case(h, cid, op, x, w, b, p, pre=(), rg=(True, True, True), fd=True, algos=ALGOS,
               backward="rand"):
    """One config, once per algorithm.  pre: extra nodes (views of x/w) run
    first; they must define "xi" and "wi" (the op's operands)."""
    for algo in algos:
        inputs = [h.I("x", x, rg=rg[0]), h.I("w", w, rg=rg[1])]
        ins = ["x" if not pre else "xi", "w" if not pre else "wi"]
        if b is not None:
            inputs.append(h.I("b", b, rg=rg[2]))
            ins.append("b")
        prog = list(pre) + [("y", op, ins, dict(p, algo=algo))]
        h.S.add(f"{cid}/{algo}", inputs, prog, fd=fd and algo == "im2col",
                rng=h.rng_for(cid + algo), backward=backward)


def _conv_cases(h):
    N = h.N
    rng = h.rng_for("conv2d")
    # (id, N, C, H, W, O, kH, kW, params, bias); the rest of the grid varies one
    # argument at a time around small odd sizes, then some combinations.
    grid = [
        ("base_3x3", 2, 3, 5, 6, 4, 3, 3, {}, True),
        ("batch1", 1, 3, 5, 5, 2, 3, 3, {}, True),
        ("batch3_odd", 3, 2, 7, 5, 3, 3, 2, {}, True),
        ("k1x1", 2, 4, 3, 5, 3, 1, 1, {}, True),
        ("k5x5_lenet2", 2, 6, 9, 9, 4, 5, 5, {}, True),
        ("k3x1", 2, 3, 6, 4, 2, 3, 1, {}, False),
        ("kernel_eq_input", 2, 2, 4, 3, 3, 4, 3, {}, True),
        ("no_bias", 2, 3, 5, 5, 4, 3, 3, {}, False),
        ("stride2", 2, 3, 7, 7, 4, 3, 3, {"stride": [2, 2]}, True),
        ("stride2x1", 2, 3, 7, 6, 2, 3, 3, {"stride": [2, 1]}, True),
        ("stride3x2_uneven", 2, 2, 8, 9, 3, 2, 3, {"stride": [3, 2]}, True),
        ("stride_gt_kernel", 1, 2, 9, 9, 2, 2, 2, {"stride": [3, 3]}, True),
        ("pad1", 2, 3, 5, 5, 4, 3, 3, {"padding": [1, 1]}, True),
        ("pad2x0", 2, 3, 4, 6, 2, 3, 3, {"padding": [2, 0]}, True),
        ("pad_gt_half_kernel", 1, 2, 3, 3, 2, 3, 3, {"padding": [2, 3]}, True),
        ("same_odd_kernel", 2, 3, 5, 6, 4, 3, 3, {"padding": "same"}, True),
        ("same_even_kernel", 2, 3, 5, 6, 2, 4, 2, {"padding": "same"}, True),
        ("same_dilated_even", 2, 2, 7, 6, 3, 2, 4, {"padding": "same", "dilation": [3, 1]}, True),
        ("valid", 2, 3, 5, 6, 4, 3, 3, {"padding": "valid"}, True),
        ("dilation2", 2, 3, 7, 7, 2, 3, 3, {"dilation": [2, 2]}, True),
        ("dilation1x3", 2, 2, 5, 9, 3, 2, 3, {"dilation": [1, 3]}, True),
        ("dilation_pad_stride", 2, 3, 9, 8, 4, 3, 2,
         {"dilation": [2, 2], "padding": [2, 1], "stride": [2, 3]}, True),
        ("groups2", 2, 4, 5, 5, 6, 3, 3, {"groups": 2}, True),
        ("groups3_stride", 2, 6, 7, 6, 3, 3, 3, {"groups": 3, "stride": [2, 2]}, True),
        ("depthwise", 2, 4, 6, 5, 4, 3, 3, {"groups": 4, "padding": [1, 1]}, True),
        ("depthwise_multiplier2", 2, 3, 5, 6, 6, 3, 3, {"groups": 3}, True),
        ("depthwise_same_dilated", 1, 3, 7, 7, 3, 3, 3,
         {"groups": 3, "padding": "same", "dilation": [2, 2]}, False),
        ("groups_all_args", 3, 4, 9, 8, 6, 3, 2,
         {"groups": 2, "stride": [2, 1], "padding": [1, 2], "dilation": [1, 2]}, True),
        ("one_channel", 3, 1, 6, 6, 2, 5, 5, {"padding": [2, 2]}, True),
        ("out_1x1", 2, 3, 3, 3, 4, 3, 3, {}, True),
        ("width1", 2, 2, 5, 1, 3, 3, 1, {"padding": [1, 0]}, True),
    ]
    for gid, n, c, hh, ww, o, kh, kw, p, bias in grid:
        G = p.get("groups", 1)
        x = N(rng, (n, c, hh, ww))
        w = N(rng, (o, c // G, kh, kw), 0.5)
        b = N(rng, (o,)) if bias else None
        _conv_case(h, f"conv2d/{gid}", "conv2d", x, w, b, p)

    # which operands require grad
    x, w, b = N(rng, (2, 3, 5, 5)), N(rng, (4, 3, 3, 3), 0.5), N(rng, (4,))
    _conv_case(h, "conv2d/grad_x_only", "conv2d", x, w, b, {"padding": [1, 1]}, rg=(True, False, False))
    _conv_case(h, "conv2d/grad_w_only", "conv2d", x, w, b, {"stride": [2, 2]}, rg=(False, True, False))
    _conv_case(h, "conv2d/grad_b_only", "conv2d", x, w, b, {}, rg=(False, False, True))
    _conv_case(h, "conv2d/no_grad", "conv2d", x, w, b, {}, rg=(False, False, False))
    _conv_case(h, "conv2d/no_grad_mode", "conv2d", x, w, b, {"_no_grad": True}, backward=None)

    # unbatched [C, H, W]
    _conv_case(h, "conv2d/unbatched", "conv2d", N(rng, (3, 6, 5)), N(rng, (2, 3, 3, 3), 0.5),
               N(rng, (2,)), {"padding": [1, 0], "stride": [1, 2]})
    # batch of zero: empty output, zero gradients for w and b
    _conv_case(h, "conv2d/batch0", "conv2d", np.zeros((0, 3, 5, 5), np.float32),
               N(rng, (2, 3, 3, 3)), N(rng, (2,)), {}, fd=False)

    # non-contiguous operands
    xt = N(rng, (2, 5, 6, 3))          # NHWC memory, permuted to NCHW
    _conv_case(h, "conv2d/noncontig_nhwc_input", "conv2d", xt, N(rng, (4, 3, 3, 3), 0.5),
               N(rng, (4,)), {"padding": [1, 1]},
               pre=[("xi", "permute", ["x"], {"dims": [0, 3, 1, 2]}),
                    ("wi", "contiguous", ["w"], {})])
    _conv_case(h, "conv2d/noncontig_strided_input", "conv2d", N(rng, (2, 3, 7, 10)),
               N(rng, (2, 3, 2, 3), 0.5), None, {"stride": [1, 2]},
               pre=[("xi", "slice", ["x"], {"dim": 3, "start": 0, "end": None, "step": 2}),
                    ("wi", "contiguous", ["w"], {})])
    _conv_case(h, "conv2d/noncontig_weight", "conv2d", N(rng, (2, 3, 5, 5)),
               N(rng, (3, 3, 3, 4), 0.5), N(rng, (4,)), {},
               pre=[("xi", "contiguous", ["x"], {}),
                    ("wi", "permute", ["w"], {"dims": [3, 0, 1, 2]})])
    for algo in ALGOS:   # the gradient reaching the convolution is a transposed view
        h.S.add(f"conv2d/noncontig_upstream_grad/{algo}",
                [h.I("x", N(rng, (2, 3, 5, 5))), h.I("w", N(rng, (4, 3, 3, 3), 0.5)),
                 h.I("b", N(rng, (4,)))],
                [("c", "conv2d", ["x", "w", "b"], {"algo": algo}),
                 ("y", "transpose", ["c"], {"dim0": 1, "dim1": 3})],
                fd=algo == "im2col", rng=h.rng_for("conv2d/upstream" + algo))
    # the same input feeding two convolutions (gradients accumulate)
    for algo in ALGOS:
        x = N(rng, (2, 3, 5, 5))
        h.S.add(f"conv2d/shared_input_two_convs/{algo}",
                [h.I("x", x), h.I("w1", N(rng, (2, 3, 3, 3), 0.5)), h.I("w2", N(rng, (2, 3, 1, 1)))],
                [("a", "conv2d", ["x", "w1"], {"padding": [1, 1], "algo": algo}),
                 ("c", "conv2d", ["x", "w2"], {}), ("y", "mul", ["a", "c"], {})],
                fd=algo == "im2col", rng=h.rng_for("conv2d/shared" + algo))
        # conv -> relu -> conv: a small CNN graph
        h.S.add(f"conv2d/stacked_relu/{algo}",
                [h.I("x", N(rng, (2, 1, 8, 8))), h.I("w1", N(rng, (3, 1, 3, 3), 0.5)),
                 h.I("b1", N(rng, (3,))), h.I("w2", N(rng, (2, 3, 3, 3), 0.5))],
                [("a", "conv2d", ["x", "w1", "b1"], {"algo": algo}), ("r", "tanh", ["a"], {}),
                 ("y", "conv2d", ["r", "w2"], {"stride": [2, 2]})],
                fd=algo == "im2col", rng=h.rng_for("conv2d/stacked" + algo))

    # larger: the unchunked im2col path (output plane >= 1024), the
    # batched-chunk path with a ragged last chunk, and oneDNN's blocked
    # kernels on wider channels (no finite differences: too many elements).
    # Inputs and upstream gradients are positive: a weight gradient sums
    # thousands of products, and with mixed signs their cancellation leaves
    # elements near zero whose float32 rounding (PyTorch's as much as ours)
    # exceeds atol 1e-5; with one sign the relative error stays ~1e-6.
    big = [("large_plane_34x34", 2, 3, 34, 34, 4, 3, 3, {"padding": [1, 1]}),
           ("chunked_ragged_batch", 13, 3, 9, 9, 5, 3, 3, {}),
           ("wide_channels", 2, 32, 10, 10, 48, 3, 3, {"padding": [1, 1]}),
           ("wide_grouped", 2, 32, 8, 8, 32, 3, 3, {"groups": 4, "stride": [2, 2]}),
           ("wide_depthwise", 2, 32, 9, 9, 32, 5, 5, {"groups": 32, "padding": "same"}),
           ("lenet_conv1_b8", 8, 1, 28, 28, 6, 5, 5, {"padding": [2, 2]}),
           ("lenet_conv2_b8", 8, 6, 14, 14, 16, 5, 5, {})]
    for gid, n, c, hh, ww, o, kh, kw, p in big:
        G = p.get("groups", 1)
        x = h.U(rng, (n, c, hh, ww), 0.0, 1.0)
        w = N(rng, (o, c // G, kh, kw), 0.3)
        up = TORCH_OPS["conv2d"]([F.torch.tensor(x), F.torch.tensor(w)], p)
        _conv_case(h, f"conv2d/{gid}", "conv2d", x, w, N(rng, (o,)), p, fd=False,
                   backward=h.U(rng, tuple(up.shape), 0.0, 1.0))

    # ---- conv1d
    rng = h.rng_for("conv1d")
    grid1 = [
        ("base", 2, 3, 9, 4, 3, {}, True),
        ("batch1_k1", 1, 4, 5, 2, 1, {}, True),
        ("stride2_pad1", 3, 2, 10, 3, 3, {"stride": [2], "padding": [1]}, True),
        ("dilation3", 2, 3, 11, 2, 3, {"dilation": [3]}, False),
        ("same_even", 2, 2, 7, 3, 4, {"padding": "same"}, True),
        ("same_dilated", 2, 2, 8, 3, 3, {"padding": "same", "dilation": [2]}, True),
        ("valid", 2, 2, 7, 3, 4, {"padding": "valid"}, True),
        ("groups2", 2, 4, 8, 6, 3, {"groups": 2}, True),
        ("depthwise", 2, 5, 9, 5, 3, {"groups": 5, "padding": [1]}, True),
        ("all_args", 3, 4, 13, 4, 3, {"groups": 2, "stride": [3], "padding": [2], "dilation": [2]}, True),
        ("long_signal", 2, 3, 1100, 4, 5, {"padding": [2]}, True),
    ]
    for gid, n, c, L, o, k, p, bias in grid1:
        G = p.get("groups", 1)
        x = N(rng, (n, c, L)) if L < 100 else h.U(rng, (n, c, L), 0.0, 1.0)
        _conv_case(h, f"conv1d/{gid}", "conv1d", x, N(rng, (o, c // G, k), 0.5),
                   N(rng, (o,)) if bias else None, p, fd=L < 100)
    _conv_case(h, "conv1d/unbatched", "conv1d", N(rng, (3, 7)), N(rng, (2, 3, 3), 0.5),
               N(rng, (2,)), {"padding": [1]})
    _conv_case(h, "conv1d/noncontig_input", "conv1d", N(rng, (2, 9, 3)), N(rng, (4, 3, 3), 0.5),
               N(rng, (4,)), {},
               pre=[("xi", "transpose", ["x"], {"dim0": 1, "dim1": 2}),
                    ("wi", "contiguous", ["w"], {})])

    # ---- conv_transpose2d
    rng = h.rng_for("conv_transpose2d")
    gridt = [
        ("base", 2, 3, 4, 5, 2, 3, 3, {}, True),
        ("batch1", 1, 2, 3, 3, 3, 2, 2, {}, True),
        ("stride2", 2, 3, 4, 4, 2, 3, 3, {"stride": [2, 2]}, True),
        ("stride2_outpad1", 2, 3, 4, 3, 2, 3, 3, {"stride": [2, 2], "output_padding": [1, 1]}, True),
        ("stride3x2_outpad", 2, 2, 3, 4, 3, 2, 3, {"stride": [3, 2], "output_padding": [2, 1]}, True),
        ("pad1", 2, 3, 5, 5, 2, 3, 3, {"padding": [1, 1]}, True),
        ("pad_stride_outpad", 2, 3, 4, 5, 4, 4, 4,
         {"stride": [2, 2], "padding": [1, 1], "output_padding": [1, 0]}, True),
        ("outpad_gt_pad", 2, 2, 3, 3, 2, 3, 3, {"stride": [3, 3], "output_padding": [2, 2]}, True),
        ("dilation2", 2, 2, 4, 4, 3, 3, 3, {"dilation": [2, 2]}, True),
        ("dilation_outpad", 2, 2, 4, 4, 3, 3, 3,
         {"dilation": [2, 2], "stride": [1, 1], "output_padding": [1, 1]}, False),
        ("groups2", 2, 4, 4, 4, 6, 3, 3, {"groups": 2}, True),
        ("depthwise", 2, 3, 4, 5, 3, 3, 3, {"groups": 3, "stride": [2, 1]}, True),
        ("all_args", 3, 4, 3, 4, 6, 3, 2,
         {"groups": 2, "stride": [2, 3], "padding": [1, 1], "output_padding": [1, 2],
          "dilation": [1, 2]}, True),
        ("k1x1", 2, 3, 3, 4, 5, 1, 1, {}, False),
    ]
    for gid, n, c, hh, ww, o, kh, kw, p, bias in gridt:
        G = p.get("groups", 1)
        _conv_case(h, f"conv_transpose2d/{gid}", "conv_transpose2d", N(rng, (n, c, hh, ww)),
                   N(rng, (c, o // G, kh, kw), 0.5), N(rng, (o,)) if bias else None, p)
    _conv_case(h, "conv_transpose2d/unbatched", "conv_transpose2d", N(rng, (3, 4, 4)),
               N(rng, (3, 2, 3, 3), 0.5), N(rng, (2,)), {"stride": [2, 2]})
    _conv_case(h, "conv_transpose2d/noncontig_input", "conv_transpose2d", N(rng, (2, 4, 5, 3)),
               N(rng, (3, 2, 3, 3), 0.5), N(rng, (2,)), {"stride": [2, 2], "padding": [1, 1]},
               pre=[("xi", "permute", ["x"], {"dims": [0, 3, 1, 2]}),
                    ("wi", "contiguous", ["w"], {})])
    x, w, p = h.U(rng, (4, 16, 8, 8), 0.0, 1.0), N(rng, (16, 8, 4, 4), 0.3), {"stride": [2, 2], "padding": [1, 1]}
    up = _conv_t([F.torch.tensor(x), F.torch.tensor(w)], p)
    _conv_case(h, "conv_transpose2d/large_dcgan_like", "conv_transpose2d", x, w, N(rng, (8,)), p,
               fd=False, backward=h.U(rng, tuple(up.shape), 0.0, 1.0))


def _conv_errors(h):
    N, I, err = h.N, h.I, h.err
    SH, ARG = {h.ET_ERR_SHAPE}, {h.ET_ERR_ARG}
    rng = h.rng_for("conv_errors")
    x, w = N(rng, (2, 3, 5, 5)), N(rng, (4, 3, 3, 3))

    def e(cid, xs, ws, bs, p, names, codes, op="conv2d"):
        inputs = [I("x", N(rng, xs)), I("w", N(rng, ws))]
        ins = ["x", "w"]
        if bs is not None:
            inputs.append(I("b", N(rng, bs)))
            ins.append("b")
        err(f"{op}_{cid}", inputs, [("y", op, ins, p)], names, codes)

    e("input_rank", (5, 5), (4, 3, 3, 3), None, {}, ["conv2d", "[5,5]"], SH)
    e("input_rank5", (1, 2, 3, 5, 5), (4, 3, 3, 3), None, {}, ["conv2d", "[1,2,3,5,5]"], SH)
    e("weight_rank", (2, 3, 5, 5), (4, 3, 3), None, {}, ["conv2d", "[4,3,3]"], SH)
    e("channels", (2, 4, 5, 5), (4, 3, 3, 3), None, {}, ["conv2d", "[4,3,3,3]", "[2,4,5,5]", "3 channels"], SH)
    e("groups_weight", (2, 4, 5, 5), (3, 2, 3, 3), None, {"groups": 2}, ["conv2d", "groups=2", "[3,2,3,3]"], SH)
    e("groups_channels", (2, 5, 5, 5), (4, 2, 3, 3), None, {"groups": 2}, ["conv2d", "[2,5,5,5]"], SH)
    e("bias_size", (2, 3, 5, 5), (4, 3, 3, 3), (3,), {}, ["conv2d", "bias", "[3]"], SH)
    e("bias_rank", (2, 3, 5, 5), (4, 3, 3, 3), (4, 1), {}, ["conv2d", "bias", "[4,1]"], SH)
    e("kernel_too_big", (2, 3, 2, 5), (4, 3, 3, 3), None, {}, ["conv2d", "Kernel size", "[2,3,2,5]"], SH)
    e("dilated_kernel_too_big", (2, 3, 5, 5), (4, 3, 3, 3), None, {"dilation": [3, 1]},
      ["conv2d", "Kernel size"], SH)
    e("same_strided", (2, 3, 5, 5), (4, 3, 3, 3), None, {"padding": "same", "stride": [2, 2]},
      ["conv2d", "same", "strided"], ARG)
    e("negative_padding", (2, 3, 5, 5), (4, 3, 3, 3), None, {"padding": [-1, 0]},
      ["conv2d", "padding", "-1"], ARG)
    e("zero_stride", (2, 3, 5, 5), (4, 3, 3, 3), None, {"stride": [0, 1]}, ["conv2d", "stride"], ARG)
    e("zero_dilation", (2, 3, 5, 5), (4, 3, 3, 3), None, {"dilation": [1, 0]}, ["conv2d", "dilation"], ARG)
    e("zero_groups", (2, 3, 5, 5), (4, 3, 3, 3), None, {"groups": 0}, ["conv2d", "groups"], ARG)
    e("channels", (2, 4, 9), (4, 3, 3), None, {}, ["conv1d", "[4,3,3]", "[2,4,9]"], SH, op="conv1d")
    e("kernel_too_big", (2, 3, 2), (4, 3, 3), None, {}, ["conv1d", "Kernel size"], SH, op="conv1d")
    e("weight_rank", (2, 3, 9), (4, 3, 3, 3), None, {}, ["conv1d", "[4,3,3,3]"], SH, op="conv1d")
    e("channels", (2, 4, 5, 5), (3, 2, 3, 3), None, {}, ["conv_transpose2d", "[3,2,3,3]", "[2,4,5,5]"],
      SH, op="conv_transpose2d")
    e("output_padding", (2, 3, 5, 5), (3, 2, 3, 3), None, {"output_padding": [1, 1]},
      ["conv_transpose2d", "output padding"], ARG, op="conv_transpose2d")
    e("bias_size", (2, 3, 5, 5), (3, 2, 3, 3), (3,), {}, ["conv_transpose2d", "bias", "[3]"], SH,
      op="conv_transpose2d")
    e("groups_weight", (2, 3, 5, 5), (3, 2, 3, 3), None, {"groups": 2},
      ["conv_transpose2d", "groups=2", "[3,2,3,3]"], SH, op="conv_transpose2d")


# ------------------------------------------------------------- unfold / fold

def _fold_cases(h):
    N, I, err = h.N, h.I, h.err
    rng = h.rng_for("unfold")
    grid = [  # (id, C, H, W, params)
        ("k2", 3, 5, 6, {"kernel_size": [2, 2]}),
        ("k3_pad1", 2, 5, 5, {"kernel_size": [3, 3], "padding": [1, 1]}),
        ("stride2", 2, 7, 6, {"kernel_size": [3, 2], "stride": [2, 2]}),
        ("dilation", 2, 7, 8, {"kernel_size": [2, 3], "dilation": [2, 2]}),
        ("all_args", 3, 9, 8, {"kernel_size": [3, 2], "dilation": [1, 2], "padding": [1, 0],
                               "stride": [2, 3]}),
        ("k1", 4, 3, 3, {"kernel_size": [1, 1]}),
    ]
    for gid, c, hh, ww, p in grid:
        x = N(rng, (2, c, hh, ww))
        h.S.add(f"unfold/{gid}", [I("x", x)], [("y", "unfold", ["x"], p)], rng=rng)
        # fold: its input is what unfold makes of an image of that size
        cols = TORCH_OPS["unfold"]([F.torch.tensor(x)], p)
        h.S.add(f"fold/{gid}", [I("x", N(rng, tuple(cols.shape)))],
                [("y", "fold", ["x"], dict(p, output_size=[hh, ww]))], rng=rng)
    x = N(rng, (3, 5, 4))
    h.S.add("unfold/unbatched", [I("x", x)], [("y", "unfold", ["x"], {"kernel_size": [2, 2]})], rng=rng)
    h.S.add("fold/unbatched", [I("x", N(rng, (12, 12)))],
            [("y", "fold", ["x"], {"kernel_size": [2, 2], "output_size": [5, 4]})], rng=rng)
    h.S.add("unfold/noncontig", [I("x", N(rng, (2, 5, 6, 3)))],
            [("xt", "permute", ["x"], {"dims": [0, 3, 1, 2]}),
             ("y", "unfold", ["xt"], {"kernel_size": [2, 3], "padding": [1, 1]})], rng=rng)
    # fold(unfold(x)) counts each pixel's blocks; unfold -> matmul is a convolution
    h.S.add("unfold/then_matmul_is_conv", [I("x", N(rng, (2, 3, 5, 5))), I("w", N(rng, (4, 27)))],
            [("u", "unfold", ["x"], {"kernel_size": [3, 3]}), ("y", "matmul", ["w", "u"], {})], rng=rng)
    h.S.add("fold/of_unfold", [I("x", N(rng, (1, 2, 4, 5)))],
            [("u", "unfold", ["x"], {"kernel_size": [2, 2]}),
             ("y", "fold", ["u"], {"kernel_size": [2, 2], "output_size": [4, 5]})], rng=rng)
    SH = {h.ET_ERR_SHAPE}
    err("unfold_too_small", [I("x", N(rng, (1, 2, 5, 5)))], [("y", "unfold", ["x"], {"kernel_size": [6, 6]})],
        ["unfold", "sliding blocks", "at least one"], SH)
    err("unfold_rank", [I("x", N(rng, (1, 1, 2, 5, 5)))], [("y", "unfold", ["x"], {"kernel_size": [2, 2]})],
        ["unfold", "[1,1,2,5,5]"], SH)
    err("fold_not_divisible", [I("x", N(rng, (1, 5, 9)))],
        [("y", "fold", ["x"], {"kernel_size": [2, 2], "output_size": [4, 4]})],
        ["fold", "divisible by the product of kernel_size", "[1,5,9]"], SH)
    err("fold_blocks", [I("x", N(rng, (1, 8, 8)))],
        [("y", "fold", ["x"], {"kernel_size": [2, 2], "output_size": [4, 4]})],
        ["fold", "3 * 3 = 9", "input.size(2)=8"], SH)
