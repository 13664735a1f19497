"""Cases of test_core_ops.py's differential suite: elementwise binary ops over every
broadcasting pattern, with a scalar, unary ops, exact ties and zeros, reductions, the
softmax family, matmul in all forms, shapes and views, cat / stack, index_select /
gather, comparisons and where.

add_cases(T) runs where these cases stood in test_core_ops.py (the order of
the case list is unchanged) and takes the helpers it uses from T, that module.
"""
import numpy as np


def add_cases(T):
    AWAY, DISTINCT, END, I, IDX, N, S, U, rng_for = (
        T.AWAY, T.DISTINCT, T.END, T.I, T.IDX, T.N, T.S, T.U, T.rng_for)
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
        # rows of 16 and more: whole 16-lane blocks plus a padded partial one
        # (27 = the char model's classes, 32 = attention over seq 32)
        for D in [16, 17, 27, 32, 33, 50]:
            S.add(f"{op}/rows_{D}", [I("a", N(rng, (3, D), 3.0))],
                  [("y", op, ["a"], {"dim": -1})], rng=rng)
        inf, nan = float("inf"), float("nan")
        row = [float(v) for v in N(rng, (27,))]
        # -inf in the tail block / the full block, a NaN in each, +inf, all -inf
        special = [row[:20] + [-inf] + row[21:], [-inf] + row[1:], row[:22] + [nan] + row[23:],
                   [nan] + row[1:], row[:5] + [inf] + row[6:], [-inf] * 27]
        S.add(f"{op}/rows_27_special", [I("a", special, rg=False)],
              [("y", op, ["a"], {"dim": -1})], backward=None, rng=rng)
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

    # used by the cases that follow
    T.UNARY_SHAPES = UNARY_SHAPES
    T.bin_data = bin_data
    T.clamp_data = clamp_data
