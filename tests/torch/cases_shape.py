"""Cases for sort.c (sort, argsort, topk) and shape_more.c (split, chunk,
unbind, diagonal, expand_as, repeat, flip, roll, tril, triu).  Loaded by
test_core_ops.py."""
import numpy as np
import torch

NAN, INF = float("nan"), float("inf")


def _pieces(ps):
    out = {"": ps[0], ".n": torch.tensor(len(ps))}
    out.update({f".{i}": p for i, p in enumerate(ps) if i})
    return out


def _split(i, p):
    if "sizes" in p:
        return _pieces(torch.split(i[0], list(p["sizes"]), p.get("dim", 0)))
    return _pieces(torch.split(i[0], p["split_size"], p.get("dim", 0)))


def _roll(i, p):
    dims = p.get("dims") or []
    if not dims:
        return torch.roll(i[0], p["shifts"][0])
    return torch.roll(i[0], tuple(p["shifts"]), tuple(dims))


TORCH_OPS = {
    "sort": lambda i, p: tuple(torch.sort(i[0], dim=p.get("dim", -1),
                                          descending=p.get("descending", False), stable=True)),
    "argsort": lambda i, p: torch.sort(i[0], dim=p.get("dim", -1),
                                       descending=p.get("descending", False), stable=True)[1],
    "topk": lambda i, p: tuple(torch.topk(i[0], p["k"], p.get("dim", -1), p.get("largest", True),
                                          p.get("sorted", True))),
    "split": _split,
    "chunk": lambda i, p: _pieces(torch.chunk(i[0], p["chunks"], p.get("dim", 0))),
    "unbind": lambda i, p: _pieces(torch.unbind(i[0], p.get("dim", 0))),
    "diagonal": lambda i, p: torch.diagonal(i[0], p.get("offset", 0), p.get("dim1", 0),
                                            p.get("dim2", 1)),
    "expand_as": lambda i, p: i[0].expand_as(i[1]),
    "repeat": lambda i, p: i[0].repeat(*p["repeats"]) if p["repeats"] else i[0].repeat(()),
    "flip": lambda i, p: torch.flip(i[0], tuple(p.get("dims") or [])),
    "roll": _roll,
    "tril": lambda i, p: torch.tril(i[0], p.get("diagonal", 0)),
    "triu": lambda i, p: torch.triu(i[0], p.get("diagonal", 0)),
}
OPS = "sort argsort topk split chunk unbind diagonal expand_as repeat flip roll tril triu".split()


def add_cases(T):
    S, I, IL, N, DISTINCT, rng_for, END = T.S, T.I, T.IL, T.N, T.DISTINCT, T.rng_for, T.END
    err, SH, IX, ARG = T.err, T.SH, T.IX, {T.ET_ERR_ARG}
    T.TORCH_OPS.update(TORCH_OPS)
    T.OPS_H.extend(OPS)

    # ---- sort / argsort / topk ----
    rng = rng_for("sort")
    for shp, dims in [((7,), [0, -1]), ((3, 5), [0, 1]), ((2, 3, 4), [0, 1, 2])]:
        for dim in dims:
            for desc in [False, True]:
                S.add(f"sort/{list(shp)}/dim={dim}/descending={desc}", [I("a", DISTINCT(rng, shp))],
                      [("y", "sort", ["a"], {"dim": dim, "descending": desc})],
                      outputs=["y", "y.indices"], rng=rng)
                S.add(f"argsort/{list(shp)}/dim={dim}/descending={desc}",
                      [I("a", DISTINCT(rng, shp))],
                      [("y", "argsort", ["a"], {"dim": dim, "descending": desc})], backward=None)
    ties = np.asarray(rng.integers(0, 3, (4, 40)), np.float32)
    for desc in [False, True]:
        S.add(f"sort/stable_ties/descending={desc}", [I("a", ties)],
              [("y", "sort", ["a"], {"dim": 1, "descending": desc})], outputs=["y", "y.indices"],
              fd=False, rng=rng)
        S.add(f"sort/nan_is_largest/descending={desc}", [I("a", [3.0, NAN, 1.0, NAN, -INF, INF, 2.0])],
              [("y", "sort", ["a"], {"dim": 0, "descending": desc})], outputs=["y", "y.indices"],
              fd=False, rng=rng)
    S.add("sort/noncontig", [I("a", DISTINCT(rng, (5, 3)))],
          [("at", "t", ["a"], {}), ("y", "sort", ["at"], {"dim": 1})], outputs=["y", "y.indices"],
          rng=rng)
    S.add("sort/0d", [I("a", 2.5)], [("y", "sort", ["a"], {"dim": 0})], outputs=["y", "y.indices"],
          rng=rng)
    S.add("sort/large", [I("a", DISTINCT(rng, (20, 300)))],
          [("y", "sort", ["a"], {"dim": 1, "descending": True})], outputs=["y", "y.indices"],
          fd=False, rng=rng)
    for shp, dim, k in [((7,), 0, 3), ((3, 6), 1, 2), ((3, 6), 0, 3), ((2, 3, 5), -1, 5),
                        ((2, 3, 5), 1, 1), ((4,), 0, 0)]:
        for largest in [True, False]:
            S.add(f"topk/{list(shp)}/dim={dim}/k={k}/largest={largest}", [I("a", DISTINCT(rng, shp))],
                  [("y", "topk", ["a"], {"k": k, "dim": dim, "largest": largest})],
                  outputs=["y", "y.indices"], rng=rng)
    for k in [0, 1]:   # torch: a 0-d input is its own result, even for k 0
        S.add(f"topk/0d/k={k}", [I("a", 1.5)], [("y", "topk", ["a"], {"k": k, "dim": 0})],
              outputs=["y", "y.indices"], rng=rng)
    S.add("topk/ties_values", [I("a", ties)], [("y", "topk", ["a"], {"k": 5, "dim": 1})],
          outputs=["y"], fd=False, backward=None)
    S.add("topk/nan_is_largest", [I("a", [3.0, NAN, 1.0, 2.0])],
          [("y", "topk", ["a"], {"k": 2, "dim": 0})], outputs=["y", "y.indices"], fd=False, rng=rng)
    S.add("topk/then_loss", [I("a", DISTINCT(rng, (4, 6))), I("w", N(rng, (4, 3)))],
          [("y", "topk", ["a"], {"k": 3, "dim": 1}), ("m", "mul", ["y", "w"], {}),
           ("l", "sum_all", ["m"], {})], outputs=["y", "l"], backward="none", rng=rng)
    err("topk_k_too_big", [I("a", N(rng, (3, 4)))], [("y", "topk", ["a"], {"k": 5, "dim": 1})],
        ["topk", "5"], IX | ARG)
    err("sort_dim", [I("a", N(rng, (3, 4)))], [("y", "sort", ["a"], {"dim": 2})], ["sort", "2"], IX)

    # ---- split / chunk / unbind ----
    rng = rng_for("split")
    for shp, dim, size in [((7, 3), 0, 3), ((7, 3), 0, 7), ((7, 3), 0, 10), ((4, 6), 1, 2),
                           ((2, 5, 3), -2, 2), ((0, 3), 0, 2)]:
        n = max(1, -(-shp[dim] // size)) if shp[dim] else 1
        outs = ["y"] + [f"y.{i}" for i in range(1, n)] + ["y.n"]
        ps = [("y", "split", ["a"], {"split_size": size, "dim": dim})]
        ps.append(("c", "cat", ["y"] + [f"y.{i}" for i in range(n - 1, 0, -1)], {"dim": dim}))
        S.add(f"split/{list(shp)}/dim={dim}/size={size}", [I("a", N(rng, shp))], ps,
              outputs=outs, fd=shp[dim] > 0, rng=rng)
    for shp, dim, sizes in [((7, 3), 0, [2, 5]), ((4, 6), 1, [1, 0, 3, 2]), ((5,), 0, [5])]:
        n = len(sizes)
        outs = ["y"] + [f"y.{i}" for i in range(1, n)] + ["y.n"]
        ps = [("y", "split", ["a"], {"sizes": sizes, "dim": dim}),
              ("c", "cat", [f"y.{i}" for i in range(n - 1, 0, -1)] + ["y"], {"dim": dim})]
        S.add(f"split_sizes/{list(shp)}/dim={dim}/sizes={sizes}", [I("a", N(rng, shp))], ps,
              outputs=outs, rng=rng)
    for shp, dim, chunks in [((6, 4), 0, 4), ((5,), 0, 3), ((3, 8), 1, 2), ((3, 8), -1, 8),
                             ((2, 7, 2), 1, 3), ((5, 0), 1, 3)]:
        D = shp[dim]
        n = chunks if D == 0 else -(-D // -(-D // chunks))
        outs = ["y"] + [f"y.{i}" for i in range(1, n)] + ["y.n"]
        ps = [("y", "chunk", ["a"], {"chunks": chunks, "dim": dim}),
              ("c", "stack", ["y", f"y.{n - 1}"] if n > 1 else ["y"], {"dim": 0})]
        same = n == 1 or D % n == 0
        if not same or D == 0:
            ps = ps[:1]
        S.add(f"chunk/{list(shp)}/dim={dim}/chunks={chunks}", [I("a", N(rng, shp))], ps,
              outputs=outs, fd=D > 0, rng=rng)
    for shp, dim in [((3, 4), 0), ((3, 4), 1), ((2, 3, 2), -1), ((1, 5), 0)]:
        n = shp[dim]
        outs = ["y"] + [f"y.{i}" for i in range(1, n)] + ["y.n"]
        ps = [("y", "unbind", ["a"], {"dim": dim}),
              ("c", "stack", [f"y.{i}" for i in range(n - 1, 0, -1)] + ["y"], {"dim": 0})]
        S.add(f"unbind/{list(shp)}/dim={dim}", [I("a", N(rng, shp))], ps, outputs=outs, rng=rng)
    S.add("split/only_some_pieces_used", [I("a", N(rng, (6, 2)))],
          [("y", "split", ["a"], {"split_size": 2, "dim": 0}), ("m", "mul", ["y.2", "y.2"], {})],
          outputs=["m"], rng=rng)
    S.add("chunk/noncontig", [I("a", N(rng, (4, 6)))],
          [("at", "t", ["a"], {}), ("y", "chunk", ["at"], {"chunks": 3, "dim": 0}),
           ("m", "mul", ["y", "y.2"], {})], outputs=["y", "y.1", "y.2", "m"], rng=rng)
    err("split_size_zero", [I("a", N(rng, (3, 4)))], [("y", "split", ["a"], {"split_size": 0, "dim": 1})],
        ["split", "0"], ARG)
    err("split_sizes_sum", [I("a", N(rng, (5,)))], [("y", "split", ["a"], {"sizes": [2, 2], "dim": 0})],
        ["split_with_sizes", "5"], SH | ARG)
    err("chunk_zero", [I("a", N(rng, (5,)))], [("y", "chunk", ["a"], {"chunks": 0, "dim": 0})],
        ["chunk", "0"], ARG)
    err("unbind_dim", [I("a", N(rng, (3, 4)))], [("y", "unbind", ["a"], {"dim": 2})], ["unbind", "2"], IX)
    err("unbind_0d", [I("a", 1.0)], [("y", "unbind", ["a"], {"dim": 0})], ["unbind"], IX | SH)

    # ---- diagonal, expand_as ----
    rng = rng_for("diagonal")
    for shp, off, d1, d2 in [((4, 4), 0, 0, 1), ((3, 5), 1, 0, 1), ((3, 5), -1, 0, 1),
                             ((5, 3), 2, 1, 0), ((2, 3, 4), 0, 1, 2), ((2, 3, 4), -1, 0, 2),
                             ((3, 3), 5, 0, 1), ((2, 4, 4), 1, -1, -2)]:
        S.add(f"diagonal/{list(shp)}/offset={off}/dims={d1},{d2}", [I("a", N(rng, shp))],
              [("y", "diagonal", ["a"], {"offset": off, "dim1": d1, "dim2": d2})], rng=rng)
    S.add("diagonal/noncontig", [I("a", N(rng, (4, 3)))],
          [("at", "t", ["a"], {}), ("y", "diagonal", ["at"], {"offset": 1})], rng=rng)
    err("diagonal_same_dims", [I("a", N(rng, (3, 3)))],
        [("y", "diagonal", ["a"], {"dim1": 1, "dim2": 1})], ["diagonal"], ARG | IX)
    err("diagonal_1d", [I("a", N(rng, (3,)))], [("y", "diagonal", ["a"], {})], ["diagonal"],
        SH | IX | ARG)
    for sa, so in [((3, 1), (3, 4)), ((4,), (2, 3, 4)), ((), (2, 2)), ((1, 1), (1, 1))]:
        S.add(f"expand_as/{list(sa)}->{list(so)}", [I("a", N(rng, sa)), I("o", N(rng, so), rg=False)],
              [("y", "expand_as", ["a", "o"], {})], rng=rng)
    err("expand_as_shapes", [I("a", N(rng, (3, 2))), I("o", N(rng, (3, 4)), rg=False)],
        [("y", "expand_as", ["a", "o"], {})], ["expand", "[3,2]", "[3,4]"], SH)

    # ---- repeat, flip, roll, tril / triu ----
    rng = rng_for("repeat")
    for shp, reps in [((2, 3), [2, 1]), ((2, 3), [1, 3]), ((3,), [2, 2]), ((2, 1, 2), [1, 3, 2]),
                      ((), [3]), ((2, 3), [2, 0, 1]), ((2,), [2, 1, 3])]:
        S.add(f"repeat/{list(shp)}x{reps}", [I("a", N(rng, shp))],
              [("y", "repeat", ["a"], {"repeats": reps})], fd=0 not in reps, rng=rng)
    S.add("repeat/noncontig", [I("a", N(rng, (3, 2)))],
          [("at", "t", ["a"], {}), ("y", "repeat", ["at"], {"repeats": [2, 2]})], rng=rng)
    S.add("repeat/int64", [IL("a", [[1, 2], [3, 4]])], [("y", "repeat", ["a"], {"repeats": [1, 2]})],
          backward=None)
    err("repeat_fewer_dims", [I("a", N(rng, (2, 3)))], [("y", "repeat", ["a"], {"repeats": [2]})],
        ["repeat", "dimensions"], ARG)
    err("repeat_negative", [I("a", N(rng, (2, 3)))], [("y", "repeat", ["a"], {"repeats": [2, -1]})],
        ["repeat", "negative"], ARG)
    rng = rng_for("flip")
    for shp, dims in [((5,), [0]), ((3, 4), [0]), ((3, 4), [1]), ((3, 4), [0, 1]), ((2, 3, 4), [0, 2]),
                      ((2, 3, 4), [-1]), ((3, 4), [])]:
        S.add(f"flip/{list(shp)}/dims={dims}", [I("a", N(rng, shp))],
              [("y", "flip", ["a"], {"dims": dims})], rng=rng)
    S.add("flip/noncontig_then_flip_again", [I("a", N(rng, (4, 3)))],
          [("at", "t", ["a"], {}), ("f", "flip", ["at"], {"dims": [1]}),
           ("y", "flip", ["f"], {"dims": [0, 1]})], rng=rng)
    S.add("flip/int64", [IL("a", [[1, 2, 3], [4, 5, 6]])], [("y", "flip", ["a"], {"dims": [0, 1]})],
          backward=None)
    err("flip_repeated", [I("a", N(rng, (3, 4)))], [("y", "flip", ["a"], {"dims": [0, -2]})],
        ["flip"], ARG | IX)
    err("flip_dim", [I("a", N(rng, (3, 4)))], [("y", "flip", ["a"], {"dims": [2]})], ["flip", "2"], IX)
    rng = rng_for("roll")
    for shp, shifts, dims in [((5,), [2], [0]), ((5,), [-7], [0]), ((3, 4), [1], []),
                              ((3, 4), [1, -1], [0, 1]), ((3, 4), [5], [1]), ((2, 3, 4), [1, 2], [0, -1]),
                              ((3, 4), [1, 1], [1, 1]), ((2, 3), [-13], [])]:
        S.add(f"roll/{list(shp)}/shifts={shifts}/dims={dims}", [I("a", N(rng, shp))],
              [("y", "roll", ["a"], {"shifts": shifts, "dims": dims})], rng=rng)
    S.add("roll/noncontig", [I("a", N(rng, (4, 3)))],
          [("at", "t", ["a"], {}), ("y", "roll", ["at"], {"shifts": [2], "dims": [1]})], rng=rng)
    err("roll_misaligned", [I("a", N(rng, (2, 3)))], [("y", "roll", ["a"], {"shifts": [1, 2], "dims": [0]})],
        ["roll", "align"], ARG)
    err("roll_dim", [I("a", N(rng, (2, 3)))], [("y", "roll", ["a"], {"shifts": [1], "dims": [2]})],
        ["roll", "2"], IX)
    rng = rng_for("tri")
    for op in ["tril", "triu"]:
        for shp, dg in [((4, 4), 0), ((3, 5), 1), ((3, 5), -1), ((5, 3), 2), ((2, 3, 4), 0),
                        ((2, 3, 4), -2), ((3, 3), 10), ((3, 3), -10)]:
            S.add(f"{op}/{list(shp)}/diagonal={dg}", [I("a", N(rng, shp))],
                  [("y", op, ["a"], {"diagonal": dg})], rng=rng)
        S.add(f"{op}/noncontig", [I("a", N(rng, (4, 3)))],
              [("at", "t", ["a"], {}), ("y", op, ["at"], {"diagonal": 0})], rng=rng)
        S.add(f"{op}/causal_mask_fill", [I("a", N(rng, (4, 4)))],
              [("o", "ones_like", ["a"], {}), ("m", op, ["o"], {"diagonal": 1}),
               ("f", "masked_fill", ["a", "m"], {"value": "-inf"}),
               ("y", "softmax", ["f"], {"dim": -1})], fd=op == "triu", rng=rng)
        err(f"{op}_1d", [I("a", N(rng, (4,)))], [("y", op, ["a"], {})], [op], SH | IX)
