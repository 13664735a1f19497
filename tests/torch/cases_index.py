"""Cases for index.c (scatter, scatter_value, scatter_add, index_add with
int64 indices) and einsum.c.  Loaded by test_core_ops.py."""
import numpy as np
import torch

TORCH_OPS = {
    "scatter": lambda i, p: torch.scatter(i[0], p["dim"], i[1], i[2]),
    "scatter_value": lambda i, p: torch.scatter(i[0], p["dim"], i[1], float(p["value"])),
    "scatter_add": lambda i, p: torch.scatter_add(i[0], p["dim"], i[1], i[2]),
    "index_add": lambda i, p: torch.index_add(i[0], p["dim"], i[1], i[2], alpha=p.get("alpha", 1)),
    "einsum": lambda i, p: torch.einsum(p["eq"], *i),
}
OPS = "scatter scatter_value scatter_add index_add einsum".split()


def unique_index(rng, ishape, dim, size):
    """An index of shape ishape whose entries along dim are distinct (scatter's
    result is then defined: no two sources for one target)."""
    idx = np.zeros(ishape, np.int64)
    moved = np.moveaxis(idx, dim, -1)
    for pos in np.ndindex(moved.shape[:-1]):
        moved[pos] = rng.permutation(size)[:ishape[dim]]
    return idx


def add_cases(T):
    S, I, IL, N, rng_for = T.S, T.I, T.IL, T.N, T.rng_for
    err, SH, IX, ARG = T.err, T.SH, T.IX, {T.ET_ERR_ARG}
    T.TORCH_OPS.update(TORCH_OPS)
    T.OPS_H.extend(OPS)

    rng = rng_for("scatter")
    for shp, dim, ishape in [((3, 5), 1, (3, 2)), ((3, 5), 0, (2, 5)), ((4, 3), -1, (2, 3)),
                             ((2, 3, 4), 1, (2, 2, 4)), ((2, 3, 4), 2, (1, 3, 4)), ((6,), 0, (4,))]:
        d = dim % len(shp)
        idx = unique_index(rng, ishape, d, shp[d])
        S.add(f"scatter/{list(shp)}/dim={dim}/index{list(ishape)}",
              [I("a", N(rng, shp)), IL("i", idx), I("s", N(rng, ishape))],
              [("y", "scatter", ["a", "i", "s"], {"dim": dim})], rng=rng)
        S.add(f"scatter_value/{list(shp)}/dim={dim}/index{list(ishape)}",
              [I("a", N(rng, shp)), IL("i", idx)],
              [("y", "scatter_value", ["a", "i"], {"dim": dim, "value": -2.5})], rng=rng)
        dup = rng.integers(0, shp[d], ishape)   # duplicates add up
        S.add(f"scatter_add/{list(shp)}/dim={dim}/index{list(ishape)}",
              [I("a", N(rng, shp)), IL("i", dup), I("s", N(rng, ishape))],
              [("y", "scatter_add", ["a", "i", "s"], {"dim": dim})], rng=rng)
    S.add("scatter/src_larger_than_index_forward", [I("a", N(rng, (3, 4)), rg=False),
                                                    IL("i", [[0, 1], [2, 3], [1, 0]]),
                                                    I("s", N(rng, (3, 5)), rg=False)],
          [("y", "scatter", ["a", "i", "s"], {"dim": 1})], backward=None)
    S.add("scatter_add/one_hot_counts", [I("a", np.zeros((2, 4), np.float32), rg=False),
                                         IL("i", [[0, 3, 3, 1, 3], [2, 2, 0, 0, 1]]),
                                         I("s", np.ones((2, 5), np.float32), rg=False)],
          [("y", "scatter_add", ["a", "i", "s"], {"dim": 1})], backward=None)
    S.add("scatter/noncontig", [I("a", N(rng, (5, 3))), IL("i", [[1, 0, 2], [0, 2, 1]]),
                                I("s", N(rng, (3, 2)))],
          [("at", "t", ["a"], {}), ("st", "t", ["s"], {}),
           ("y", "scatter", ["at", "i", "st"], {"dim": 1})], rng=rng)
    for shp, dim, idx in [((5, 3), 0, [0, 4, 0, 2]), ((3, 5), 1, [4, 4, 1]), ((2, 3, 4), 1, [2, 0]),
                          ((2, 3, 4), -1, [3, 3, 3]), ((6,), 0, [5, 1, 5])]:
        d = dim % len(shp)
        sshape = list(shp)
        sshape[d] = len(idx)
        for alpha in [1.0, -0.5]:
            S.add(f"index_add/{list(shp)}/dim={dim}/index={idx}/alpha={alpha}",
                  [I("a", N(rng, shp)), IL("i", idx), I("s", N(rng, tuple(sshape)))],
                  [("y", "index_add", ["a", "i", "s"], {"dim": dim, "alpha": alpha})], rng=rng)
    S.add("index_add/0d_index_and_source", [I("a", N(rng, (5,))), IL("i", 3), I("s", N(rng, ()))],
          [("y", "index_add", ["a", "i", "s"], {"dim": 0})], rng=rng)
    S.add("index_add/noncontig", [I("a", N(rng, (4, 3))), IL("i", [1, 1]), I("s", N(rng, (4, 2)))],
          [("at", "t", ["a"], {}), ("st", "t", ["s"], {}),
           ("y", "index_add", ["at", "i", "st"], {"dim": 0})], rng=rng)
    S.add("index_add/large", [I("a", N(rng, (100, 16))), IL("i", rng.integers(0, 100, 300)),
                              I("s", N(rng, (300, 16)))],
          [("y", "index_add", ["a", "i", "s"], {"dim": 0})], fd=False, rng=rng)
    a34 = N(rng, (3, 4))
    err("scatter_float_index", [I("a", a34), T.IDX("i", [[0, 1]]), I("s", N(rng, (1, 2)))],
        [("y", "scatter", ["a", "i", "s"], {"dim": 1})], ["scatter", "int64"], ARG)
    err("scatter_index_range", [I("a", a34), IL("i", [[0, 4]]), I("s", N(rng, (1, 2)))],
        [("y", "scatter", ["a", "i", "s"], {"dim": 1})], ["scatter", "4"], IX | {T.ET_ERR_ARG})
    err("scatter_add_rank", [I("a", a34), IL("i", [0, 1]), I("s", N(rng, (2,)))],
        [("y", "scatter_add", ["a", "i", "s"], {"dim": 1})], ["scatter_add"], SH)
    err("scatter_index_bigger_than_src", [I("a", a34), IL("i", [[0, 1, 2]]), I("s", N(rng, (1, 2)))],
        [("y", "scatter", ["a", "i", "s"], {"dim": 1})], ["scatter", "[1,3]", "[1,2]"], SH)
    err("index_add_range", [I("a", a34), IL("i", [0, 3]), I("s", N(rng, (2, 4)))],
        [("y", "index_add", ["a", "i", "s"], {"dim": 0})], ["index_add", "3"], IX)
    err("index_add_source_shape", [I("a", a34), IL("i", [0, 1]), I("s", N(rng, (2, 3)))],
        [("y", "index_add", ["a", "i", "s"], {"dim": 0})], ["index_add", "[2,3]"], SH)
    err("index_add_float_index", [I("a", a34), T.IDX("i", [0, 1]), I("s", N(rng, (2, 4)))],
        [("y", "index_add", ["a", "i", "s"], {"dim": 0})], ["index_add", "int"], ARG)

    # ---- einsum ----
    rng = rng_for("einsum")
    EQS = [
        ("ij,jk->ik", [(3, 4), (4, 5)]), ("ij,jk", [(3, 4), (4, 2)]),          # matmul
        ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),                               # batched matmul
        ("bij,bjk->bik", [(1, 3, 4), (2, 4, 5)]),                               # broadcast batch
        ("i,j->ij", [(3,), (4,)]), ("i,j", [(2,), (5,)]),                      # outer
        ("i,i->", [(5,), (5,)]), ("i,i", [(4,), (4,)]),                         # dot
        ("ij->ji", [(3, 4)]), ("ij->j", [(3, 4)]), ("ij->i", [(3, 4)]), ("ij->", [(3, 4)]),
        ("ii->i", [(4, 4)]), ("ii", [(3, 3)]), ("iij->ji", [(3, 3, 2)]),
        ("ij,kj->ik", [(3, 4), (5, 4)]), ("ji,jk->ik", [(4, 3), (4, 5)]),      # transposed
        ("bhqd,bhkd->bhqk", [(2, 2, 3, 4), (2, 2, 5, 4)]),                    # attention scores
        ("bhqk,bhkd->bhqd", [(2, 2, 3, 5), (2, 2, 5, 4)]),
        ("ij,ij->ij", [(3, 4), (3, 4)]), ("ij,ij->", [(3, 4), (1, 4)]),        # elementwise
        ("ij,ij->i", [(3, 4), (3, 4)]),
        ("...ij,...jk->...ik", [(2, 3, 4), (4, 5)]), ("...ij->...ji", [(2, 2, 3, 4)]),
        ("...ij->ij", [(2, 3, 4)]), ("i...->...", [(3, 2, 4)]),
        ("bi,bj,bk->bijk", [(2, 3), (2, 2), (2, 4)]), ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]),
        ("Ab,bA->A", [(2, 3), (3, 2)]), ("bA,cB", [(2, 3), (4, 5)]),
        ("i j , j k -> i k", [(2, 3), (3, 2)]), ("ik,jk->", [(3, 4), (2, 4)]),
        ("ijk,ikl->jl", [(2, 3, 4), (2, 4, 5)]),
    ]
    for eq, shapes in EQS:
        ins = [I(f"x{k}", N(rng, s)) for k, s in enumerate(shapes)]
        S.add(f"einsum/{eq.replace(' ', '_')}/{shapes}", ins,
              [("y", "einsum", [f"x{k}" for k in range(len(shapes))], {"eq": eq})], rng=rng)
    S.add("einsum/noncontig", [I("a", N(rng, (4, 3))), I("b", N(rng, (4, 5)))],
          [("at", "t", ["a"], {}), ("y", "einsum", ["at", "b"], {"eq": "ij,jk->ik"})], rng=rng)
    S.add("einsum/same_operand_twice", [I("a", N(rng, (3, 3)))],
          [("y", "einsum", ["a", "a"], {"eq": "ij,jk->ik"})], rng=rng)
    S.add("einsum/large", [I("a", N(rng, (4, 30, 40))), I("b", N(rng, (4, 40, 20)))],
          [("y", "einsum", ["a", "b"], {"eq": "bij,bjk->bik"})], fd=False, rng=rng)
    EA = {T.ET_ERR_ARG, T.ET_ERR_SHAPE}
    err("einsum_rank", [I("a", N(rng, (3, 4))), I("b", N(rng, (4,)))],
        [("y", "einsum", ["a", "b"], {"eq": "ij,jk->ik"})], ["einsum", "operand 1"], EA)
    err("einsum_sizes", [I("a", N(rng, (3, 4))), I("b", N(rng, (5, 2)))],
        [("y", "einsum", ["a", "b"], {"eq": "ij,jk->ik"})], ["einsum"], EA)
    err("einsum_output_label", [I("a", N(rng, (3, 4)))],
        [("y", "einsum", ["a"], {"eq": "ij->ik"})], ["einsum", "k"], EA)
    err("einsum_operand_count", [I("a", N(rng, (3, 4)))],
        [("y", "einsum", ["a"], {"eq": "ij,jk->ik"})], ["einsum"], EA)
    err("einsum_bad_char", [I("a", N(rng, (3, 4)))],
        [("y", "einsum", ["a"], {"eq": "i1->i"})], ["einsum"], EA)
    err("einsum_repeated_output", [I("a", N(rng, (3, 4)))],
        [("y", "einsum", ["a"], {"eq": "ij->ii"})], ["einsum", "i"], EA)
    err("einsum_diagonal_sizes", [I("a", N(rng, (3, 4)))],
        [("y", "einsum", ["a"], {"eq": "ii->i"})], ["einsum", "3", "4"], EA)
