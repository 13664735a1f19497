"""Cases for reduce.c (logsumexp, var/std, prod, cumsum, norm, amax/amin) and
argmin / int64 argmax.  Loaded by test_core_ops.py."""
import numpy as np
import torch

NAN, INF = float("nan"), float("inf")


def _dims(x, p):
    d = p.get("dims") or []
    return tuple(d) if d else tuple(range(x.dim()))


def _p(v):
    return float(v)   # "inf" / "-inf" strings too


def _vn(i, p):
    x = i[0]
    d = p.get("dims") or []
    return torch.linalg.vector_norm(x, _p(p.get("p", 2)), dim=tuple(d) if d else None,
                                    keepdim=p.get("keepdim", False))


def _var(fn):
    def run(i, p):
        x = i[0]
        d = p.get("dims") or []
        return fn(x, dim=tuple(d) if d else None, correction=int(p.get("correction", 1)),
                  keepdim=p.get("keepdim", False))
    return run


TORCH_OPS = {
    "logsumexp": lambda i, p: torch.logsumexp(i[0], _dims(i[0], p) or 0, p.get("keepdim", False)),
    "var": _var(torch.var),
    "std": _var(torch.std),
    "prod": lambda i, p: i[0].prod(p["dim"], p.get("keepdim", False)),
    "prod_all": lambda i, p: i[0].prod(),
    "cumsum": lambda i, p: i[0].cumsum(p["dim"]),
    "norm": _vn,
    "amax": lambda i, p: i[0].amax(_dims(i[0], p), p.get("keepdim", False)),
    "amin": lambda i, p: i[0].amin(_dims(i[0], p), p.get("keepdim", False)),
    "argmin": lambda i, p: torch.argmin(i[0], p["dim"], p.get("keepdim", False)),
}
OPS = "logsumexp var std prod prod_all cumsum norm amax amin argmin".split()


def add_cases(T):
    S, I, N, U, AWAY, DISTINCT, rng_for = T.S, T.I, T.N, T.U, T.AWAY, T.DISTINCT, T.rng_for
    err, IX, END = T.err, T.IX, T.END
    T.TORCH_OPS.update(TORCH_OPS)
    T.OPS_H.extend(OPS)

    RED = {
        (5,): [[0], [-1], []],
        (3, 4): [[0], [1], [0, 1], [-1, -2], []],
        (2, 3, 4): [[1], [0, 2], [-1, 0], [0, 1, 2], []],
        (2, 3, 2, 3): [[1, 3], [0, -1], [-2]],
    }
    gens = {"logsumexp": lambda r, s: N(r, s, 2.0), "var": N, "std": N,
            "amax": DISTINCT, "amin": DISTINCT}
    for op in ["logsumexp", "var", "std", "amax", "amin"]:
        rng = rng_for("reduce2/" + op)
        for shp, dl in RED.items():
            for dims in dl:
                for keep in [False, True]:
                    S.add(f"{op}/{list(shp)}/dims={dims}/keepdim={keep}", [I("a", gens[op](rng, shp))],
                          [("y", op, ["a"], {"dims": dims, "keepdim": keep})], rng=rng)
        S.add(f"{op}/noncontig_t", [I("a", gens[op](rng, (4, 3)))],
              [("at", "t", ["a"], {}), ("y", op, ["at"], {"dims": [1], "keepdim": False})], rng=rng)
        S.add(f"{op}/noncontig_permuted", [I("a", gens[op](rng, (2, 3, 4)))],
              [("ap", "permute", ["a"], {"dims": [2, 0, 1]}),
               ("y", op, ["ap"], {"dims": [0, 2], "keepdim": True})], rng=rng)
        S.add(f"{op}/large", [I("a", gens[op](rng, (30, 70)))],
              [("y", op, ["a"], {"dims": [1], "keepdim": False})], fd=False, rng=rng)
        # (var/std of one element: torch's 2/0 * (x - mean) backward is an artefact, not compared)
        S.add(f"{op}/0d", [I("a", gens[op](rng, ()))], [("y", op, ["a"], {"dims": [0]})],
              backward=None if op in ("var", "std") else "rand", rng=rng)

    # var / std: corrections, single elements, constants
    rng = rng_for("reduce2/var_special")
    for op in ["var", "std"]:
        for c in [0, 2]:
            S.add(f"{op}/correction={c}", [I("a", N(rng, (3, 5)))],
                  [("y", op, ["a"], {"dims": [1], "correction": c})], rng=rng)
        S.add(f"{op}/correction_exceeds_n", [I("a", N(rng, (3, 2)))],
              [("y", op, ["a"], {"dims": [1], "correction": 3})], fd=False, rng=rng)
        S.add(f"{op}/one_element_unbiased_is_nan", [I("a", N(rng, (3, 1)))],
              [("y", op, ["a"], {"dims": [1]})], fd=False, rng=rng)
        S.add(f"{op}/constant_rows", [I("a", np.full((2, 4), 1.5, np.float32))],
              [("y", op, ["a"], {"dims": [1]})], fd=False, rng=rng)
        # values only: at 1e4 the gradient's x - mean is within float32 rounding of itself
        S.add(f"{op}/large_offset", [I("a", 1e4 + N(rng, (4, 6)))],
              [("y", op, ["a"], {"dims": [0], "keepdim": True})], backward=None, rng=rng)
    # logsumexp: infinities and big values
    rng = rng_for("reduce2/lse_special")
    S.add("logsumexp/-inf_rows", [I("a", [[-INF, -INF, -INF], [0.0, -INF, 1.0]])],
          [("y", "logsumexp", ["a"], {"dims": [1]})], fd=False, rng=rng)
    S.add("logsumexp/+inf", [I("a", [[INF, 1.0], [2.0, 3.0]])],
          [("y", "logsumexp", ["a"], {"dims": [1]})], fd=False, rng=rng)
    # vs torch only: exp(x - result) in float32 at 1e4 is off float64 differences by ~1e-4
    S.add("logsumexp/large_1e4", [I("a", 1e4 + N(rng, (3, 5), 3.0))],
          [("y", "logsumexp", ["a"], {"dims": [1]})], fd=False, rng=rng)
    S.add("logsumexp/nan", [I("a", [[NAN, 1.0], [2.0, 3.0]])],
          [("y", "logsumexp", ["a"], {"dims": [1]})], fd=False, backward=None, rng=rng)
    # amax / amin: ties share the gradient; NaN propagates
    TIE = np.array([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 5.0], [0.0, -1.0, 0.0, -1.0]], np.float32)
    for op in ["amax", "amin"]:
        for dims in [[0], [1], [0, 1]]:
            S.add(f"{op}/ties/dims={dims}", [I("a", TIE)],
                  [("y", op, ["a"], {"dims": dims})], fd=False, rng=rng)
        S.add(f"{op}/nan", [I("a", [[NAN, 1.0], [2.0, 3.0]])],
              [("y", op, ["a"], {"dims": [1]})], fd=False, backward=None, rng=rng)
    # prod and cumsum over one dim
    for op, gen in [("prod", lambda r, s: AWAY(r, s, 0.5, 1.5)), ("cumsum", N)]:
        rng = rng_for("reduce2/" + op)
        for shp, dims in [((5,), [0, -1]), ((3, 4), [0, 1, -1]), ((2, 3, 4), [0, 1, 2, -2])]:
            for dim in dims:
                keeps = [False, True] if op == "prod" else [False]
                for keep in keeps:
                    p = {"dim": dim, "keepdim": keep} if op == "prod" else {"dim": dim}
                    S.add(f"{op}/{list(shp)}/dim={dim}" + (f"/keepdim={keep}" if op == "prod" else ""),
                          [I("a", gen(rng, shp))], [("y", op, ["a"], p)], rng=rng)
        S.add(f"{op}/noncontig_t", [I("a", gen(rng, (4, 3)))],
              [("at", "t", ["a"], {}), ("y", op, ["at"], {"dim": 1})], rng=rng)
        S.add(f"{op}/0d", [I("a", gen(rng, ()))], [("y", op, ["a"], {"dim": 0})], rng=rng)
        S.add(f"{op}/large", [I("a", gen(rng, (20, 40)))], [("y", op, ["a"], {"dim": 1})],
              fd=False, rng=rng)
    rng = rng_for("reduce2/prod_all")
    for shp in [(), (5,), (3, 4), (2, 3, 2)]:
        S.add(f"prod_all/{list(shp)}", [I("a", AWAY(rng, shp, 0.5, 1.5))],
              [("y", "prod_all", ["a"], {})], rng=rng)
    S.add("prod_all/noncontig", [I("a", AWAY(rng, (4, 3), 0.5, 1.5))],
          [("at", "t", ["a"], {}), ("y", "prod_all", ["at"], {})], rng=rng)
    for name, row in [("one_zero", [2.0, 0.0, 3.0, 4.0]), ("two_zeros", [2.0, 0.0, 3.0, 0.0]),
                      ("all_zero", [0.0, 0.0, 0.0])]:
        S.add(f"prod_all/{name}", [I("a", row)], [("y", "prod_all", ["a"], {})], fd=False, rng=rng)
        S.add(f"prod/{name}", [I("a", [row, [1.5] * len(row)])],
              [("y", "prod", ["a"], {"dim": 1})], fd=False, rng=rng)
    S.add("prod/zero_in_column", [I("a", [[2.0, 3.0], [0.0, 4.0], [5.0, 0.5]])],
          [("y", "prod", ["a"], {"dim": 0, "keepdim": True})], fd=False, rng=rng)
    S.add("cumsum/empty_dim", [I("a", np.zeros((2, 0), np.float32))],
          [("y", "cumsum", ["a"], {"dim": 1})], fd=False, rng=rng)
    # norm: p = 2, 1, inf, -inf, 0, 3, 0.5, -1 over dims
    rng = rng_for("reduce2/norm")
    for pv in [2, 1, "inf", "-inf", 3, 0.5, -1.5]:
        for shp, dl in [((5,), [[0], []]), ((3, 4), [[1], [0], [0, 1], []]),
                        ((2, 3, 4), [[0, 2], [1], []])]:
            for dims in dl:
                for keep in [False, True]:
                    x = AWAY(rng, shp, 0.3, 2.0) if pv not in ("inf", "-inf") else DISTINCT(rng, shp)
                    S.add(f"norm/p={pv}/{list(shp)}/dims={dims}/keepdim={keep}", [I("a", x)],
                          [("y", "norm", ["a"], {"p": pv, "dims": dims, "keepdim": keep})], rng=rng)
        S.add(f"norm/p={pv}/noncontig", [I("a", AWAY(rng, (4, 3), 0.3, 2.0))],
              [("at", "t", ["a"], {}), ("y", "norm", ["at"], {"p": pv, "dims": [1]})], rng=rng)
        S.add(f"norm/p={pv}/zero_row", [I("a", [[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]])],
              [("y", "norm", ["a"], {"p": pv, "dims": [1]})], fd=False, rng=rng)
    S.add("norm/p=0/counts_nonzero_no_grad", [I("a", [[0.0, 1.5, -2.0], [0.0, 0.0, 3.0]])],
          [("y", "norm", ["a"], {"p": 0, "dims": [1]})], fd=False, rng=rng)
    for pv in ["inf", "-inf"]:
        S.add(f"norm/p={pv}/ties_share_gradient", [I("a", [[3.0, -3.0, 1.0], [2.0, 2.0, -2.0]])],
              [("y", "norm", ["a"], {"p": pv, "dims": [1]})], fd=False, rng=rng)
    S.add("norm/p=2/large", [I("a", N(rng, (50, 60)))],
          [("y", "norm", ["a"], {"dims": [0]})], fd=False, rng=rng)
    S.add("norm/p=1/at_zero_sign_gradient", [I("a", [[0.0, 1.0, -1.0]])],
          [("y", "norm", ["a"], {"p": 1, "dims": [1]})], fd=False, rng=rng)
    # argmin (and argmax) return int64, first occurrence on ties, NaN wins
    rng = rng_for("reduce2/argmin")
    for shp, dims in [((5,), [0, -1]), ((3, 4), [0, 1, -1]), ((2, 3, 4), [0, 1, 2, -2])]:
        for dim in dims:
            for keep in [False, True]:
                S.add(f"argmin/{list(shp)}/dim={dim}/keepdim={keep}", [I("a", DISTINCT(rng, shp))],
                      [("y", "argmin", ["a"], {"dim": dim, "keepdim": keep})], backward=None)
    S.add("argmin/ties_first_occurrence", [I("a", TIE)],
          [("y", "argmin", ["a"], {"dim": 1})], backward=None)
    S.add("argmin/nan_wins", [I("a", [[1.0, NAN, -3.0], [2.0, 0.0, NAN]])],
          [("y", "argmin", ["a"], {"dim": 1}), ("z", "argmax", ["a"], {"dim": 1})],
          outputs=["y", "z"], backward=None)
    S.add("argmin/noncontig", [I("a", DISTINCT(rng, (4, 3)))],
          [("at", "t", ["a"], {}), ("y", "argmin", ["at"], {"dim": 0})], backward=None)

    # errors
    rng = rng_for("reduce2/errors")
    a34 = N(rng, (3, 4))
    for op in ["logsumexp", "var", "std", "norm", "amax", "amin"]:
        err(f"{op}_dim", [I("a", a34)], [("y", op, ["a"], {"dims": [2]})], [op, "2"], IX)
        err(f"{op}_repeated_dim", [I("a", a34)], [("y", op, ["a"], {"dims": [1, -1]})], [op],
            {T.ET_ERR_ARG, T.ET_ERR_INDEX})
    for op in ["prod", "cumsum", "argmin"]:
        err(f"{op}_dim", [I("a", a34)], [("y", op, ["a"], {"dim": -3})], [op, "-3"], IX)
    err("amax_empty_dim", [I("a", np.zeros((2, 0), np.float32))],
        [("y", "amax", ["a"], {"dims": [1]})], ["amax"], {T.ET_ERR_INDEX, T.ET_ERR_ARG})
    err("argmin_empty_dim", [I("a", np.zeros((2, 0), np.float32))],
        [("y", "argmin", ["a"], {"dim": 1})], ["argmin"], {T.ET_ERR_INDEX, T.ET_ERR_ARG})
