"""Differential tests of the image layers (nn_conv.h: Conv1d/2d,
ConvTranspose2d, the pools, the padding layers, Unflatten, Dropout2d)
against torch.nn 1.13.  Run from test_nn.py's main() as run(T), T being
the test_nn module (st_write, st_read, run, report, compare_all, tmp).

Each case builds the layer on both sides from one spec (torch's class name
and keyword arguments), loads torch's parameters into ours, and compares
the output, the input gradient and every parameter gradient; it also checks
that our freshly built layer has torch's state_dict keys and shapes and
that its initial weights follow torch's reset_parameters (U(-b, b),
b = 1/sqrt(fan_in) with torch's own fan_in).  Error specs must fail on both
sides, ours with the layer's name and the input shape in the message.
"""
import zlib

import numpy as np
import torch
import torch.nn as nn

SHAPE_ERR, ARG_ERR = 1, 3


def _kwargs(spec):
    kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in spec.items()
          if k not in ("type", "train", "seed")}
    return kw


def _distinct(g, shape):
    n = int(np.prod(shape))
    v = torch.randperm(n, generator=g).double() * 0.25 - n * 0.125
    return (v + torch.rand(n, generator=g, dtype=torch.float64) * 0.1).float().reshape(shape)


def layer_case(T, name, spec, xshape, distinct=False, expect_error=None, noncontig=False,
               positive=False):
    """positive: input and upstream gradient in [0, 1) -- for layers whose weight
    gradient sums thousands of products, where mixed signs cancel to values whose
    float32 rounding (torch's as much as ours) exceeds atol."""
    case = f"layer {name}"
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    try:
        x = _distinct(g, xshape) if distinct else torch.randn(xshape, generator=g)
        if positive:
            x = torch.rand(xshape, generator=g)
        if noncontig:   # the layer sees a transposed view of a contiguous tensor
            x = x.transpose(-1, -2).contiguous().transpose(-1, -2)
        x = x.clone().requires_grad_(True)
        torch_err, mod = None, None
        try:   # construction or forward may fail (error specs)
            mod = getattr(nn, spec["type"])(**_kwargs(spec))
            if not spec.get("train", True):
                mod.eval()
            y = mod(x)
        except Exception as e:  # noqa: BLE001 - compared with ours below
            torch_err = e
        inputs = {"x": x.detach().numpy()}
        for k, v in (mod.state_dict().items() if mod is not None else []):
            inputs["p." + k] = v.float().numpy()
        if torch_err is None:
            gout = torch.rand(y.shape, generator=g) if positive else torch.randn(y.shape, generator=g)
            if y.requires_grad:
                y.backward(gout)
            inputs["gout"] = gout.numpy()
        ours = T.run_spec(case, "layer", spec, inputs, "c", expect_error, torch_err)
        if ours is None:
            return
        want = {"y": y, "x_grad": x.grad}
        for pname, p in mod.named_parameters():
            want["grad." + pname] = p.grad
        T.compare_all(case, ours, want)
        check_init(T, case, mod, ours)
    except Exception as e:  # noqa: BLE001 - any failure is a test failure
        T.report(case, False, repr(e))


def check_init(T, case, mod, ours):
    """State keys, shapes and the reset_parameters bounds of our fresh layer."""
    sd = mod.state_dict()
    keys = [k[len("init."):] for k in ours if k.startswith("init.")]
    ok = sorted(keys) == sorted(sd)
    T.report(f"{case} state_dict keys", ok, f"ours {keys}, torch {list(sd)}")
    if not ok:
        return
    for k, v in sd.items():
        mine = ours["init." + k]
        if tuple(mine.shape) != tuple(v.shape):
            T.report(f"{case} init {k} shape", False, f"{mine.shape} vs {tuple(v.shape)}")
            continue
        if not hasattr(mod, "weight") or mod.weight is None:
            continue
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(mod.weight)
        bound = 1.0 / np.sqrt(fan_in)
        top = float(np.abs(mine).max()) if mine.size else 0.0
        # within the bound, and spread over it (not a narrower distribution)
        ok = top <= bound * (1 + 1e-6) and (mine.size < 40 or top > 0.8 * bound)
        T.report(f"{case} init {k} ~ U(-{bound:.4g}, {bound:.4g})", ok, f"max |value| {top:.4g}")


def conv_cases(T):
    C = [
        ("conv2d", {"type": "Conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3}, (2, 3, 6, 5)),
        ("conv2d all args", {"type": "Conv2d", "in_channels": 4, "out_channels": 6, "kernel_size": [3, 2],
                             "stride": [2, 1], "padding": [1, 2], "dilation": [1, 2], "groups": 2,
                             "bias": False}, (2, 4, 7, 6)),
        ("conv2d same", {"type": "Conv2d", "in_channels": 2, "out_channels": 3, "kernel_size": 4,
                         "padding": "same"}, (1, 2, 5, 6)),
        ("conv2d valid", {"type": "Conv2d", "in_channels": 2, "out_channels": 3, "kernel_size": 3,
                          "padding": "valid"}, (2, 2, 5, 6)),
        ("conv2d depthwise", {"type": "Conv2d", "in_channels": 3, "out_channels": 6, "kernel_size": 3,
                              "groups": 3, "padding": 1}, (2, 3, 5, 5)),
        ("conv2d reflect", {"type": "Conv2d", "in_channels": 2, "out_channels": 3, "kernel_size": 3,
                            "padding": [1, 2], "padding_mode": "reflect"}, (2, 2, 5, 6)),
        ("conv2d replicate same", {"type": "Conv2d", "in_channels": 2, "out_channels": 2, "kernel_size": [2, 3],
                                   "padding": "same", "padding_mode": "replicate"}, (2, 2, 5, 6)),
        ("conv2d circular", {"type": "Conv2d", "in_channels": 2, "out_channels": 3, "kernel_size": 3,
                             "padding": 1, "padding_mode": "circular", "stride": 2}, (2, 2, 6, 7)),
        ("conv2d unbatched", {"type": "Conv2d", "in_channels": 3, "out_channels": 2, "kernel_size": 3}, (3, 5, 5)),
        ("conv2d noncontig", {"type": "Conv2d", "in_channels": 3, "out_channels": 2, "kernel_size": 2}, (2, 3, 5, 4)),
        ("conv2d lenet1", {"type": "Conv2d", "in_channels": 1, "out_channels": 6, "kernel_size": 5,
                           "padding": 2}, (3, 1, 28, 28)),
        ("conv1d", {"type": "Conv1d", "in_channels": 3, "out_channels": 4, "kernel_size": 3}, (2, 3, 9)),
        ("conv1d all args", {"type": "Conv1d", "in_channels": 4, "out_channels": 2, "kernel_size": 3,
                             "stride": 2, "padding": 2, "dilation": 2, "groups": 2}, (3, 4, 11)),
        ("conv1d same reflect", {"type": "Conv1d", "in_channels": 2, "out_channels": 3, "kernel_size": 4,
                                 "padding": "same", "padding_mode": "reflect"}, (2, 2, 9)),
        ("conv1d circular", {"type": "Conv1d", "in_channels": 2, "out_channels": 2, "kernel_size": 3,
                             "padding": 1, "padding_mode": "circular"}, (2, 2, 7)),
        ("conv1d unbatched no bias", {"type": "Conv1d", "in_channels": 2, "out_channels": 3, "kernel_size": 2,
                                      "bias": False}, (2, 6)),
        ("convtranspose2d", {"type": "ConvTranspose2d", "in_channels": 3, "out_channels": 2,
                             "kernel_size": 3}, (2, 3, 4, 5)),
        ("convtranspose2d all args", {"type": "ConvTranspose2d", "in_channels": 4, "out_channels": 6,
                                      "kernel_size": [3, 2], "stride": [2, 3], "padding": [1, 1],
                                      "output_padding": [1, 2], "groups": 2, "dilation": [1, 2]},
         (2, 4, 3, 4)),
        ("convtranspose2d dcgan", {"type": "ConvTranspose2d", "in_channels": 8, "out_channels": 4,
                                   "kernel_size": 4, "stride": 2, "padding": 1, "bias": False}, (2, 8, 4, 4)),
    ]
    for name, spec, shape in C:
        layer_case(T, name, spec, shape, noncontig="noncontig" in name, positive="lenet" in name)
    # errors: channels, rank, construction arguments
    E = [
        ("conv2d channels", {"type": "Conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3},
         (2, 4, 5, 5), (SHAPE_ERR, ["Conv2d", "[2, 4, 5, 5]", "3 channels"])),
        ("conv2d rank", {"type": "Conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3},
         (3, 5), (SHAPE_ERR, ["Conv2d", "[3, 5]"])),
        ("conv2d kernel too big", {"type": "Conv2d", "in_channels": 1, "out_channels": 1, "kernel_size": 5},
         (1, 1, 3, 3), (SHAPE_ERR, ["Conv2d", "Kernel size"])),
        ("conv1d channels", {"type": "Conv1d", "in_channels": 2, "out_channels": 4, "kernel_size": 3},
         (2, 3, 9), (SHAPE_ERR, ["Conv1d", "[2, 3, 9]"])),
        ("conv2d groups", {"type": "Conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3,
                           "groups": 2}, (2, 3, 5, 5), (ARG_ERR, ["Conv2d", "divisible by groups"])),
        ("conv2d same strided", {"type": "Conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3,
                                 "padding": "same", "stride": 2}, (2, 3, 5, 5), (ARG_ERR, ["Conv2d", "strided"])),
        ("convtranspose2d reflect", {"type": "ConvTranspose2d", "in_channels": 3, "out_channels": 4,
                                     "kernel_size": 3, "padding_mode": "reflect"}, (2, 3, 5, 5),
         (ARG_ERR, ["ConvTranspose2d", "zeros"])),
    ]
    for name, spec, shape, err in E:
        layer_case(T, name, spec, shape, expect_error=err)


def pool_cases(T):
    P = [
        ("maxpool2d", {"type": "MaxPool2d", "kernel_size": 2}, (2, 3, 6, 7)),
        ("maxpool2d all args", {"type": "MaxPool2d", "kernel_size": [3, 2], "stride": [2, 1],
                                "padding": [1, 1], "dilation": [1, 2], "ceil_mode": True}, (2, 2, 7, 8)),
        ("maxpool2d unbatched", {"type": "MaxPool2d", "kernel_size": 3, "stride": 1}, (2, 5, 5)),
        ("maxpool2d ceil tiny input", {"type": "MaxPool2d", "kernel_size": 2, "ceil_mode": True}, (1, 2, 1, 1)),
        ("maxpool1d", {"type": "MaxPool1d", "kernel_size": 3, "stride": 2, "padding": 1}, (2, 3, 10)),
        ("maxpool1d dilation ceil", {"type": "MaxPool1d", "kernel_size": 2, "dilation": 3,
                                     "ceil_mode": True}, (2, 2, 11)),
        ("avgpool2d", {"type": "AvgPool2d", "kernel_size": 2}, (2, 3, 6, 7)),
        ("avgpool2d all args", {"type": "AvgPool2d", "kernel_size": [3, 2], "stride": [2, 1],
                                "padding": [1, 1], "ceil_mode": True, "count_include_pad": False}, (2, 2, 7, 8)),
        ("avgpool2d divisor", {"type": "AvgPool2d", "kernel_size": 3, "padding": 1,
                               "divisor_override": 4}, (2, 2, 6, 6)),
        ("avgpool1d", {"type": "AvgPool1d", "kernel_size": 3, "stride": 2, "padding": 1,
                       "count_include_pad": False}, (2, 3, 10)),
        ("adaptiveavgpool2d", {"type": "AdaptiveAvgPool2d", "output_size": [3, 2]}, (2, 3, 7, 5)),
        ("adaptiveavgpool2d global", {"type": "AdaptiveAvgPool2d", "output_size": 1}, (2, 4, 5, 6)),
        ("adaptiveavgpool2d none", {"type": "AdaptiveAvgPool2d", "output_size": [None, 2]}, (2, 2, 5, 7)),
        ("adaptivemaxpool2d", {"type": "AdaptiveMaxPool2d", "output_size": [2, 3]}, (2, 3, 5, 7)),
        ("adaptiveavgpool1d", {"type": "AdaptiveAvgPool1d", "output_size": 4}, (2, 3, 9)),
        ("adaptivemaxpool1d", {"type": "AdaptiveMaxPool1d", "output_size": 3}, (2, 3, 8)),
    ]
    for name, spec, shape in P:
        layer_case(T, name, spec, shape, distinct="max" in name)
    E = [
        ("maxpool2d too small", {"type": "MaxPool2d", "kernel_size": 2}, (32, 8, 1, 1),
         (SHAPE_ERR, ["MaxPool2d", "input [32, 8, 1, 1] is smaller than kernel 2"])),
        ("avgpool2d too small", {"type": "AvgPool2d", "kernel_size": [3, 2]}, (2, 3, 2, 5),
         (SHAPE_ERR, ["AvgPool2d", "[2, 3, 2, 5]", "kernel 3 x 2"])),
        ("maxpool1d rank", {"type": "MaxPool1d", "kernel_size": 2}, (2, 3, 4, 4),
         (SHAPE_ERR, ["MaxPool1d", "[2, 3, 4, 4]"])),
        ("maxpool2d padding", {"type": "MaxPool2d", "kernel_size": 2, "padding": 2}, (1, 1, 5, 5),
         (ARG_ERR, ["MaxPool2d", "half the kernel"])),
    ]
    for name, spec, shape, err in E:
        layer_case(T, name, spec, shape, expect_error=err)


def misc_cases(T):
    M = [
        ("zeropad2d", {"type": "ZeroPad2d", "padding": [1, 2, 0, 3]}, (2, 3, 4, 5)),
        ("zeropad2d negative", {"type": "ZeroPad2d", "padding": [-1, 2, 1, -2]}, (2, 2, 4, 5)),
        ("constantpad1d", {"type": "ConstantPad1d", "padding": [2, 1], "value": 1.5}, (2, 3, 4)),
        ("constantpad2d", {"type": "ConstantPad2d", "padding": [1, 1, 2, 0], "value": -0.5}, (3, 4, 5)),
        ("reflectionpad1d", {"type": "ReflectionPad1d", "padding": [3, 1]}, (2, 3, 5)),
        ("reflectionpad2d", {"type": "ReflectionPad2d", "padding": [1, 2, 2, 1]}, (2, 2, 4, 5)),
        ("replicationpad1d", {"type": "ReplicationPad1d", "padding": [4, 2]}, (2, 3, 3)),
        ("replicationpad2d", {"type": "ReplicationPad2d", "padding": [2, 2, 1, 3]}, (2, 2, 3, 4)),
        ("unflatten", {"type": "Unflatten", "dim": 1, "unflattened_size": [2, 3, 4]}, (5, 24)),
        ("unflatten negative dim", {"type": "Unflatten", "dim": -1, "unflattened_size": [2, 2]}, (3, 2, 4)),
        ("dropout2d eval", {"type": "Dropout2d", "p": 0.5, "train": False}, (2, 3, 4, 4)),
        ("dropout2d p0", {"type": "Dropout2d", "p": 0.0}, (2, 3, 4, 4)),
        ("dropout2d p1", {"type": "Dropout2d", "p": 1.0}, (2, 3, 4, 4)),
    ]
    for name, spec, shape in M:
        layer_case(T, name, spec, shape)
    E = [
        ("unflatten sizes", {"type": "Unflatten", "dim": 1, "unflattened_size": [2, 5]}, (3, 12),
         (SHAPE_ERR, ["Unflatten", "[2, 5]", "[3, 12]"])),
        ("reflectionpad2d too big", {"type": "ReflectionPad2d", "padding": [4, 0, 0, 0]}, (1, 1, 3, 4),
         (ARG_ERR, ["ReflectionPad2d", "[1,1,3,4]"])),
    ]
    for name, spec, shape, err in E:
        layer_case(T, name, spec, shape, expect_error=err)


def cnn_case(T):
    """A small CNN as one Sequential: state_dict names across children."""
    case = "layer cnn sequential"
    try:
        torch.manual_seed(5)
        net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                            nn.Conv2d(4, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 2 * 2, 5))
        x = torch.randn(3, 1, 8, 8, requires_grad=True)
        y = net(x)
        gout = torch.randn(y.shape)
        y.backward(gout)
        inputs = {"x": x.detach().numpy(), "gout": gout.numpy()}
        for k, v in net.state_dict().items():
            inputs["p." + k] = v.numpy()
        T.st_write(T.tmp("cnn_in.st"), inputs)
        T.run("cnn", T.tmp("cnn_in.st"), T.tmp("cnn_out.st"))
        ours, _ = T.st_read(T.tmp("cnn_out.st"))
        want = {"y": y, "x_grad": x.grad}
        for k, p in net.named_parameters():
            want["grad." + k] = p.grad
        T.compare_all(case, ours, want)
    except Exception as e:  # noqa: BLE001
        T.report(case, False, repr(e))


def run(T):
    conv_cases(T)
    pool_cases(T)
    misc_cases(T)
    cnn_case(T)
