"""Cases for ops_unary.c: more elementwise math, the activations of
torch.nn.functional, predicates and logic, masked_fill, elementwise binary
cross entropy and in-place arithmetic; plus the core items of the edge-case
sweep (relu at NaN, clamp with a NaN bound, cat with the legacy empty
tensor, permute with a NULL dims list).  Loaded by test_core_ops.py."""
import numpy as np
import torch
import torch.nn.functional as F

NAN, INF = float("nan"), float("inf")


def _bound(v):
    if v is None:
        return None
    if isinstance(v, str):
        return None if v in ("inf", "-inf") else float(v)
    return float(v)


TORCH_OPS = {
    "sign": lambda i, p: torch.sign(i[0]),
    "floor": lambda i, p: torch.floor(i[0]),
    "ceil": lambda i, p: torch.ceil(i[0]),
    "round": lambda i, p: torch.round(i[0]),
    "reciprocal": lambda i, p: torch.reciprocal(i[0]),
    "rsqrt": lambda i, p: torch.rsqrt(i[0]),
    "log1p": lambda i, p: torch.log1p(i[0]),
    "expm1": lambda i, p: torch.expm1(i[0]),
    "sin": lambda i, p: torch.sin(i[0]),
    "cos": lambda i, p: torch.cos(i[0]),
    "erf": lambda i, p: torch.erf(i[0]),
    "softplus": lambda i, p: F.softplus(i[0], p.get("beta", 1), p.get("threshold", 20)),
    "elu": lambda i, p: F.elu(i[0], p.get("alpha", 1.0)),
    "silu": lambda i, p: F.silu(i[0]),
    "mish": lambda i, p: F.mish(i[0]),
    "hardtanh": lambda i, p: F.hardtanh(i[0], p.get("min_val", -1.0), p.get("max_val", 1.0)),
    "isnan": lambda i, p: torch.isnan(i[0]).to(i[0].dtype),
    "isfinite": lambda i, p: torch.isfinite(i[0]).to(i[0].dtype),
    "logical_and": lambda i, p: torch.logical_and(i[0], i[1]).to(torch.result_type(i[0], i[1])),
    "logical_or": lambda i, p: torch.logical_or(i[0], i[1]).to(torch.result_type(i[0], i[1])),
    "logical_not": lambda i, p: torch.logical_not(i[0]).to(i[0].dtype),
    "masked_fill": lambda i, p: torch.masked_fill(i[0], i[1] != 0, float(p["value"])),
    "binary_cross_entropy": lambda i, p: F.binary_cross_entropy(i[0], i[1], reduction="none"),
    # in place: grad mode as the node's "_no_grad" says (run_torch applies it)
    "add_": lambda i, p: i[0].add_(i[1], alpha=p.get("alpha", 1)),
    "mul_": lambda i, p: i[0].mul_(i[1]),
    "add_scalar_": lambda i, p: i[0].add_(float(p["s"])),
    "mul_scalar_": lambda i, p: i[0].mul_(float(p["s"])),
    "clamp_": lambda i, p: i[0].clamp_(_bound(p.get("min")), _bound(p.get("max"))),
    "permute_null": lambda i, p: i[0].permute(None),
}

OPS = """sign floor ceil round reciprocal rsqrt log1p expm1 sin cos erf softplus elu silu
mish hardtanh isnan isfinite logical_and logical_or logical_not masked_fill
binary_cross_entropy add_ mul_ add_scalar_ mul_scalar_ clamp_""".split()


def add_cases(T):
    S, I, N, U, AWAY, rng_for, END = T.S, T.I, T.N, T.U, T.AWAY, T.rng_for, T.END
    err, SH = T.err, T.SH
    T.TORCH_OPS.update(TORCH_OPS)
    T.OPS_H.extend(OPS)

    def away_int(r, s):   # away from the jumps of floor/ceil/round (integers, halves)
        x = r.uniform(-3, 3, s)
        frac = x - np.floor(x)
        x = np.where(np.abs(frac - 0.5) < 0.1, x + 0.2, x)
        x = np.where((frac < 0.1) | (frac > 0.9), x + 0.3, x)
        return np.asarray(x, np.float32)

    UNARY = [
        ("sign", {}, lambda r, s: AWAY(r, s, 0.05, 2.0)),
        ("floor", {}, away_int), ("ceil", {}, away_int), ("round", {}, away_int),
        ("reciprocal", {}, lambda r, s: AWAY(r, s, 0.3, 2.0)),
        ("rsqrt", {}, lambda r, s: U(r, s, 0.2, 3.0)),
        ("log1p", {}, lambda r, s: U(r, s, -0.8, 3.0)),
        ("expm1", {}, lambda r, s: N(r, s)),
        ("sin", {}, lambda r, s: N(r, s, 2.0)),
        ("cos", {}, lambda r, s: N(r, s, 2.0)),
        ("erf", {}, lambda r, s: N(r, s, 1.5)),
        ("softplus", {}, lambda r, s: N(r, s, 3.0)),
        ("softplus", {"beta": 2.0, "threshold": 3.0}, lambda r, s: AWAY(r, s, 0.05, 3.0)),
        ("softplus", {"beta": 0.5, "threshold": 1.0}, lambda r, s: N(r, s, 3.0)),
        ("elu", {}, lambda r, s: AWAY(r, s, 0.05, 3.0)),
        ("elu", {"alpha": 0.4}, lambda r, s: AWAY(r, s, 0.05, 3.0)),
        ("silu", {}, lambda r, s: N(r, s, 3.0)),
        ("mish", {}, lambda r, s: N(r, s, 3.0)),
        ("hardtanh", {}, lambda r, s: T.clamp_data(r, s) * 2.0),
        ("hardtanh", {"min_val": -0.5, "max_val": 2.0}, lambda r, s: U(r, s, -1.0, 1.0) * 2.7),
    ]
    for op, p, gen in UNARY:
        tag = op + "".join(f"/{k}={v}" for k, v in p.items())
        rng = rng_for("unary2/" + tag)
        for shp in T.UNARY_SHAPES:
            x = gen(rng, shp)
            if op == "hardtanh":   # keep away from the bounds (kinks)
                lo, hi = p.get("min_val", -1.0), p.get("max_val", 1.0)
                x = np.where(np.abs(x - lo) < 0.05, x + 0.1, x)
                x = np.where(np.abs(x - hi) < 0.05, x - 0.1, x).astype(np.float32)
            S.add(f"{tag}/{list(shp)}", [I("a", x)], [("y", op, ["a"], p)], rng=rng)
        S.add(f"{tag}/noncontig_t", [I("a", gen(rng, (4, 3)))],
              [("at", "t", ["a"], {}), ("y", op, ["at"], p)], rng=rng)
        S.add(f"{tag}/large", [I("a", gen(rng, (40, 53)))], [("y", op, ["a"], p)], fd=False,
              rng=rng)

    rng = rng_for("unary2/special")
    # exact values where torch has conventions: halves round to even, sign of 0/NaN,
    # softplus at the threshold, elu/hardtanh at 0 and at the bounds
    S.add("round/half_to_even", [I("a", [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, 3.5])],
          [("y", "round", ["a"], {})], fd=False, rng=rng)
    S.add("sign/zero_nan_inf", [I("a", [0.0, -0.0, NAN, INF, -INF, 1e-40])],
          [("y", "sign", ["a"], {})], fd=False, rng=rng)
    S.add("floor_ceil/exact_integers", [I("a", [-2.0, 0.0, 3.0, -0.0])],
          [("f", "floor", ["a"], {}), ("c", "ceil", ["a"], {})], outputs=["f", "c"], fd=False,
          rng=rng)
    S.add("softplus/at_threshold", [I("a", [20.0, 19.999, 20.001, -30.0, 100.0])],
          [("y", "softplus", ["a"], {})], fd=False, rng=rng)
    S.add("softplus/beta_at_threshold", [I("a", [1.5, 1.4999, 1.5001, -100.0])],
          [("y", "softplus", ["a"], {"beta": 2.0, "threshold": 3.0})], fd=False, rng=rng)
    S.add("elu/at_zero_and_large", [I("a", [0.0, -0.0, -100.0, 50.0, -1e-8])],
          [("y", "elu", ["a"], {"alpha": 1.5})], fd=False, rng=rng)
    S.add("hardtanh/at_bounds", [I("a", [-1.0, 1.0, -1.5, 1.5, 0.0, NAN])],
          [("y", "hardtanh", ["a"], {})], fd=False, rng=rng)
    S.add("silu_mish/large_magnitudes", [I("a", [-100.0, -20.0, 0.0, 20.0, 100.0, 90.0])],
          [("s", "silu", ["a"], {}), ("m", "mish", ["a"], {})], outputs=["s", "m"], fd=False,
          backward=None, rng=rng)
    for op in ["silu", "mish"]:
        S.add(f"{op}/large_magnitudes_grad", [I("a", [-100.0, -20.0, 0.0, 20.0, 100.0])],
              [("y", op, ["a"], {})], fd=False, rng=rng)
    S.add("reciprocal_rsqrt/zero_inf", [I("a", [0.0, INF, 4.0])],
          [("r", "reciprocal", ["a"], {}), ("q", "rsqrt", ["a"], {})], outputs=["r", "q"],
          fd=False, backward=None, rng=rng)
    S.add("log1p_expm1/tiny", [I("a", [1e-8, -1e-8, 1e-20, 0.0])],
          [("l", "log1p", ["a"], {}), ("e", "expm1", ["a"], {})], outputs=["l", "e"], fd=False,
          backward=None, rng=rng)

    # ---- predicates and logic ----
    rng = rng_for("logic")
    SPECIAL = np.array([[0.0, NAN, INF], [-INF, 1.5, -0.0]], np.float32)
    for op in ["isnan", "isfinite", "logical_not"]:
        S.add(f"{op}/specials", [I("a", SPECIAL, rg=False)], [("y", op, ["a"], {})],
              backward=None)
        S.add(f"{op}/noncontig", [I("a", SPECIAL, rg=False)],
              [("at", "t", ["a"], {}), ("y", op, ["at"], {})], backward=None)
        S.add(f"{op}/of_grad_tensor", [I("a", N(rng, (3,)))], [("y", op, ["a"], {})],
              backward=None)
    for op in ["logical_and", "logical_or"]:
        for sa, sb in [((3, 4), (3, 4)), ((3, 1), (1, 4)), ((), (2, 3)), ((2, 3), (3,))]:
            a = rng.integers(-1, 2, sa).astype(np.float32)
            b = rng.integers(0, 2, sb).astype(np.float32)
            S.add(f"{op}/{list(sa)}x{list(sb)}", [I("a", a, rg=False), I("b", b, rg=False)],
                  [("y", op, ["a", "b"], {})], backward=None)
        S.add(f"{op}/nan_is_true", [I("a", [NAN, 0.0, NAN], rg=False),
                                     I("b", [1.0, NAN, 0.0], rg=False)],
              [("y", op, ["a", "b"], {})], backward=None)
    err("logical_and_shapes", [I("a", N(rng, (3, 4)), rg=False), I("b", N(rng, (2, 4)), rg=False)],
        [("y", "logical_and", ["a", "b"], {})], ["logical_and", "[3,4]", "[2,4]"], SH)

    # ---- masked_fill ----
    rng = rng_for("masked_fill")
    for sa, sm in [((3, 4), (3, 4)), ((3, 4), (4,)), ((3, 4), (3, 1)), ((3, 1), (1, 4)),
                   ((2, 3, 4), (3, 1)), ((), (2, 2)), ((4,), ())]:
        m = rng.integers(0, 2, sm).astype(np.float32)
        for v in [0.0, -1e9]:
            S.add(f"masked_fill/{list(sa)}x{list(sm)}/value={v}", [I("a", N(rng, sa)), I("m", m, rg=False)],
                  [("y", "masked_fill", ["a", "m"], {"value": v})], rng=rng, fd=v == 0.0)
    S.add("masked_fill/neg_inf_then_softmax", [I("a", N(rng, (3, 5))),
                                               I("m", np.triu(np.ones((3, 5)), 1), rg=False)],
          [("f", "masked_fill", ["a", "m"], {"value": "-inf"}),
           ("y", "softmax", ["f"], {"dim": -1})], rng=rng)
    S.add("masked_fill/noncontig", [I("a", N(rng, (4, 3))), I("m", rng.integers(0, 2, (3, 4)), rg=False)],
          [("at", "t", ["a"], {}), ("y", "masked_fill", ["at", "m"], {"value": 2.5})], rng=rng)
    S.add("masked_fill/nan_value", [I("a", N(rng, (2, 3))), I("m", [[1, 0, 0], [0, 0, 1]], rg=False)],
          [("y", "masked_fill", ["a", "m"], {"value": "nan"})], fd=False, rng=rng)
    err("masked_fill_shapes", [I("a", N(rng, (3, 4))), I("m", np.ones((2, 4)), rg=False)],
        [("y", "masked_fill", ["a", "m"], {"value": 0.0})], ["masked_fill", "[3,4]", "[2,4]"], SH)

    # ---- elementwise binary cross entropy (the BCELoss edge cases live in test_nn.py) ----
    rng = rng_for("bce")
    for shp in [(5,), (3, 4), ()]:
        S.add(f"binary_cross_entropy/{list(shp)}", [I("x", U(rng, shp, 0.05, 0.95)),
                                                    I("y", U(rng, shp, 0.0, 1.0))],
              [("l", "binary_cross_entropy", ["x", "y"], {})], rng=rng)
    S.add("binary_cross_entropy/at_0_and_1_clamped_at_100",
          [I("x", [0.0, 1.0, 0.0, 1.0, 1e-30, 0.5]), I("y", [1.0, 0.0, 0.0, 1.0, 1.0, 0.5])],
          [("l", "binary_cross_entropy", ["x", "y"], {})], fd=False, rng=rng)
    S.add("binary_cross_entropy/input_grad_at_0_and_1",
          [I("x", [0.0, 1.0, 1e-30, 0.3]), I("y", [1.0, 0.0, 1.0, 0.0], rg=False)],
          [("l", "binary_cross_entropy", ["x", "y"], {})], fd=False, rng=rng)
    S.add("binary_cross_entropy/noncontig", [I("x", U(rng, (4, 3), 0.05, 0.95)),
                                             I("y", U(rng, (3, 4), 0.0, 1.0))],
          [("xt", "t", ["x"], {}), ("l", "binary_cross_entropy", ["xt", "y"], {})], rng=rng)
    err("binary_cross_entropy_range", [I("x", [0.5, 1.5]), I("y", [1.0, 0.0])],
        [("l", "binary_cross_entropy", ["x", "y"], {})], ["binary_cross_entropy", "between 0 and 1"],
        {T.ET_ERR_ARG})

    # ---- in place (no grad) ----
    rng = rng_for("inplace2")
    for op, p, sb in [("add_", {}, (3, 4)), ("add_", {"alpha": -0.5}, (4,)), ("mul_", {}, (3, 1)),
                      ("add_", {"alpha": 2.0}, ()), ("mul_", {}, (1, 4))]:
        S.add(f"{op}/{p}/{list(sb)}", [I("a", N(rng, (3, 4)), rg=False), I("b", N(rng, sb), rg=False)],
              [("_i", op, ["a", "b"], p)], outputs=["a"], backward=None)
        S.add(f"{op}/{p}/{list(sb)}/through_view",
              [I("a", N(rng, (4, 3)), rg=False), I("b", N(rng, sb), rg=False)],
              [("at", "t", ["a"], {}), ("_i", op, ["at", "b"], p)], outputs=["a", "at"], backward=None)
    for op, s in [("add_scalar_", 1.5), ("mul_scalar_", -2.0)]:
        S.add(f"{op}/s={s}", [I("a", N(rng, (3, 4)), rg=False)], [("_i", op, ["a"], {"s": s})],
              outputs=["a"], backward=None)
        S.add(f"{op}/s={s}/strided", [I("a", N(rng, (3, 8)), rg=False)],
              [("v", "slice", ["a"], {"dim": 1, "start": 1, "end": END, "step": 2}),
               ("_i", op, ["v"], {"s": s})], outputs=["a"], backward=None)
    for mn, mx in [(-0.5, 0.5), (0.0, None), (None, 0.25), (1.0, -1.0)]:
        S.add(f"clamp_/{mn},{mx}", [I("a", N(rng, (3, 4)), rg=False)],
              [("_i", "clamp_", ["a"], {"min": mn if mn is not None else "-inf",
                                        "max": mx if mx is not None else "inf"})],
              outputs=["a"], backward=None)
    S.add("mul_/by_a_copy_of_own_row", [I("a", N(rng, (3, 3)), rg=False)],
          [("r", "select", ["a"], {"dim": 0, "index": 1}), ("rc", "clone", ["r"], {}),
           ("_i", "mul_", ["a", "rc"], {})], outputs=["a"], backward=None)
    S.add("add_/under_no_grad_on_param_then_forward", [I("w", N(rng, (2, 3))), I("d", N(rng, (2, 3)), rg=False),
                                                       I("x", N(rng, (3,)), rg=False)],
          [("_i", "add_", ["w", "d"], {"alpha": -0.1, "_no_grad": True}), ("y", "matmul", ["w", "x"], {})],
          outputs=["w", "y"], fd=False, rng=rng)
    err("mul__after_use_fails_backward_like_torch", [I("a", N(rng, (3,))), I("b", N(rng, (3,)), rg=False)],
        [("e", "exp", ["a"], {}), ("_i", "mul_", ["e", "b"], {"_no_grad": True}),
         ("y", "sum_all", ["e"], {})], ["in-place"], {T.ET_ERR_GRAD}, backward="none", at="backward")
    err("add__on_leaf_requiring_grad", [I("a", N(rng, (3,))), I("b", N(rng, (3,)), rg=False)],
        [("_i", "add_", ["a", "b"], {})], ["add_", "leaf", "in-place"], {T.ET_ERR_GRAD})
    err("clamp__on_leaf_requiring_grad", [I("a", N(rng, (3,)))],
        [("_i", "clamp_", ["a"], {"min": 0.0, "max": 1.0})], ["clamp_", "leaf"], {T.ET_ERR_GRAD})
    err("add__shape", [I("a", N(rng, (3,)), rg=False), I("b", N(rng, (2, 3)), rg=False)],
        [("_i", "add_", ["a", "b"], {"_no_grad": True})], ["add_", "[3]", "[2,3]"], SH)
    err("mul__broadcast_shapes", [I("a", N(rng, (3, 4)), rg=False), I("b", N(rng, (5,)), rg=False)],
        [("_i", "mul_", ["a", "b"], {"_no_grad": True})], ["mul_", "[3,4]", "[5]"], SH)

    # ---- edge-case sweep: relu at NaN, clamp with NaN bounds, cat of legacy empties, permute(NULL) ----
    rng = rng_for("sweep")
    S.add("sweep/relu_backward_at_nan_passes_gradient", [I("a", [NAN, 1.0, -1.0, 0.0, NAN])],
          [("y", "relu", ["a"], {})], fd=False, rng=rng)
    S.add("sweep/relu_nan_in_mlp", [I("a", [[NAN, 0.5], [2.0, -1.0]]), I("w", N(rng, (2, 2)))],
          [("h", "matmul", ["a", "w"], {}), ("y", "relu", ["h"], {})], fd=False, rng=rng)
    for mn, mx in [("nan", 0.5), (-0.5, "nan"), ("nan", "nan"), ("nan", "inf"), ("-inf", "nan")]:
        S.add(f"sweep/clamp_nan_bound/{mn},{mx}", [I("a", N(rng, (2, 3)))],
              [("y", "clamp", ["a"], {"min": mn, "max": mx})], fd=False, rng=rng)
        S.add(f"sweep/clamp__nan_bound/{mn},{mx}", [I("a", N(rng, (2, 3)), rg=False)],
              [("_i", "clamp_", ["a"], {"min": mn, "max": mx})], outputs=["a"], backward=None)
    S.add("sweep/clamp_nan_input", [I("a", [NAN, 2.0, -2.0, 0.1])],
          [("y", "clamp", ["a"], {"min": -0.5, "max": 0.5})], fd=False, rng=rng)
    E = np.zeros((0,), np.float32)
    for dim in [0, 1, -1]:
        S.add(f"sweep/cat_legacy_empty_after/dim={dim}", [I("a", N(rng, (2, 3))), I("e", E)],
              [("y", "cat", ["a", "e"], {"dim": dim})], fd=False, rng=rng)
        S.add(f"sweep/cat_legacy_empty_before/dim={dim}", [I("e", E), I("a", N(rng, (2, 3)))],
              [("y", "cat", ["e", "a"], {"dim": dim})], fd=False, rng=rng)
    S.add("sweep/cat_legacy_empty_between", [I("a", N(rng, (2, 3))), I("e", E), I("b", N(rng, (1, 3)))],
          [("y", "cat", ["a", "e", "b", "e"], {"dim": 0})], fd=False, rng=rng)
    S.add("sweep/cat_only_legacy_empties", [I("e", E), I("f", E)],
          [("y", "cat", ["e", "f"], {"dim": 0})], fd=False, rng=rng)
    S.add("sweep/cat_legacy_empty_with_1d", [I("e", E), I("a", N(rng, (4,)))],
          [("y", "cat", ["e", "a"], {"dim": 0})], rng=rng)
    S.add("sweep/cat_3d_legacy_empty", [I("a", N(rng, (2, 1, 3))), I("e", E), I("b", N(rng, (2, 2, 3)))],
          [("y", "cat", ["a", "e", "b"], {"dim": 1})], rng=rng)
    err("sweep_cat_empty_2d_is_not_legacy", [I("a", N(rng, (2, 3))), I("e", np.zeros((0, 2), np.float32))],
        [("y", "cat", ["a", "e"], {"dim": 0})], ["cat", "[0,2]", "[2,3]"], SH)
    err("sweep_permute_null_dims", [I("a", N(rng, (2, 3)))],
        [("y", "permute_null", ["a"], {"ndims": 2})], ["permute", "NULL"], {T.ET_ERR_ARG})
