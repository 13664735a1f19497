"""Cases of test_core_ops.py's differential suite: the error cases -- easytorch must fail
where PyTorch fails, at the same node, with the documented status and a message naming
the op and the shapes or index.

add_cases(T) runs where these cases stood in test_core_ops.py (the order of
the case list is unchanged) and takes the helpers it uses from T, that module.
"""
import numpy as np


def add_cases(T):
    ET_ERR_ARG, ET_ERR_GRAD, ET_ERR_INDEX, ET_ERR_SHAPE, ET_ERR_STATE, I, IDX, N, S, rng_for = (
        T.ET_ERR_ARG, T.ET_ERR_GRAD, T.ET_ERR_INDEX, T.ET_ERR_SHAPE, T.ET_ERR_STATE, T.I, T.IDX,
        T.N, T.S, T.rng_for)
    # ---- errors: easytorch must fail where PyTorch fails -------------------------------------

    rng = rng_for("errors")


    def err(cid, inputs, prog, names, codes, backward=None, at=None):
        S.add("error/" + cid, inputs, prog, backward=backward,
              error={"names": names, "codes": sorted(codes), "at": at})


    SH = {ET_ERR_SHAPE}
    IX = {ET_ERR_INDEX}
    a34, b54 = N(rng, (3, 4)), N(rng, (5, 4))
    for op in ["add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq", "lt"]:
        err(f"{op}_shapes", [I("a", a34), I("b", b54)], [("y", op, ["a", "b"], {})],
            [op, "[3,4]", "[5,4]"], SH)
    err("add_rank_mismatch", [I("a", N(rng, (2, 3, 4))), I("b", N(rng, (3, 3)))],
        [("y", "add", ["a", "b"], {})], ["add", "[2,3,4]", "[3,3]"], SH)
    err("matmul_2d", [I("a", a34), I("b", N(rng, (5, 2)))], [("y", "matmul", ["a", "b"], {})],
        ["matmul", "[3,4]", "[5,2]"], SH)
    err("matmul_1d", [I("a", N(rng, (3,))), I("b", N(rng, (4,)))], [("y", "matmul", ["a", "b"], {})],
        ["matmul", "[3]", "[4]"], SH)
    err("matmul_2d_1d", [I("a", a34), I("b", N(rng, (3,)))], [("y", "matmul", ["a", "b"], {})],
        ["matmul", "[3,4]", "[3]"], SH)
    err("matmul_batch", [I("a", N(rng, (2, 3, 4))), I("b", N(rng, (3, 4, 5)))],
        [("y", "matmul", ["a", "b"], {})], ["matmul", "[2,3,4]", "[3,4,5]"], SH)
    err("matmul_0d", [I("a", 2.0), I("b", N(rng, (3,)))], [("y", "matmul", ["a", "b"], {})],
        ["matmul"], {ET_ERR_SHAPE, ET_ERR_ARG})
    err("cat_shapes", [I("a", N(rng, (2, 3))), I("b", N(rng, (2, 4)))], [("y", "cat", ["a", "b"], {"dim": 0})],
        ["cat", "[2,3]", "[2,4]"], SH)
    err("cat_rank", [I("a", N(rng, (2, 3))), I("b", N(rng, (3,)))], [("y", "cat", ["a", "b"], {"dim": 0})],
        ["cat", "[2,3]", "[3]"], SH)
    err("cat_dim_range", [I("a", N(rng, (2, 3))), I("b", N(rng, (2, 3)))],
        [("y", "cat", ["a", "b"], {"dim": 2})], ["cat", "2"], IX)
    err("stack_shapes", [I("a", N(rng, (2, 3))), I("b", N(rng, (3, 2)))],
        [("y", "stack", ["a", "b"], {"dim": 0})], ["stack", "[2,3]", "[3,2]"], SH)
    err("stack_dim_range", [I("a", N(rng, (2, 3))), I("b", N(rng, (2, 3)))],
        [("y", "stack", ["a", "b"], {"dim": 4})], ["stack", "4"], IX)
    err("select_index", [I("a", a34)], [("y", "select", ["a"], {"dim": 0, "index": 3})],
        ["select", "3"], IX)
    err("select_negative_index", [I("a", a34)], [("y", "select", ["a"], {"dim": 1, "index": -5})],
        ["select", "-5"], IX)
    err("select_dim", [I("a", a34)], [("y", "select", ["a"], {"dim": 2, "index": 0})], ["select", "2"], IX)
    err("select_0d", [I("a", 1.0)], [("y", "select", ["a"], {"dim": 0, "index": 0})], ["select"],
        {ET_ERR_INDEX, ET_ERR_SHAPE})
    err("slice_dim", [I("a", a34)], [("y", "slice", ["a"], {"dim": 2, "start": 0, "end": 1, "step": 1})],
        ["slice", "2"], IX)
    err("slice_step_zero", [I("a", a34)], [("y", "slice", ["a"], {"dim": 0, "start": 0, "end": 2, "step": 0})],
        ["slice", "step"], {ET_ERR_ARG})
    err("slice_step_negative", [I("a", a34)],
        [("y", "slice", ["a"], {"dim": 0, "start": 0, "end": 2, "step": -1})], ["slice", "step"], {ET_ERR_ARG})
    err("transpose_dim", [I("a", a34)], [("y", "transpose", ["a"], {"dim0": 0, "dim1": 2})],
        ["transpose", "2"], IX)
    err("transpose_negative_dim", [I("a", a34)], [("y", "transpose", ["a"], {"dim0": -3, "dim1": 0})],
        ["transpose", "-3"], IX)
    err("t_3d", [I("a", N(rng, (2, 3, 4)))], [("y", "t", ["a"], {})], ["t", "[2,3,4]"],
        {ET_ERR_SHAPE, ET_ERR_ARG, ET_ERR_INDEX})
    err("permute_repeated", [I("a", N(rng, (2, 3, 4)))], [("y", "permute", ["a"], {"dims": [0, 0, 1]})],
        ["permute"], {ET_ERR_ARG, ET_ERR_INDEX})
    err("permute_count", [I("a", N(rng, (2, 3, 4)))], [("y", "permute", ["a"], {"dims": [1, 0]})],
        ["permute"], {ET_ERR_ARG, ET_ERR_SHAPE, ET_ERR_INDEX})
    err("permute_range", [I("a", N(rng, (2, 3, 4)))], [("y", "permute", ["a"], {"dims": [0, 1, 3]})],
        ["permute", "3"], {ET_ERR_INDEX, ET_ERR_ARG})
    err("squeeze_dim", [I("a", a34)], [("y", "squeeze", ["a"], {"dim": 2})], ["squeeze", "2"], IX)
    err("unsqueeze_dim", [I("a", a34)], [("y", "unsqueeze", ["a"], {"dim": 3})], ["unsqueeze", "3"], IX)
    err("unsqueeze_negative_dim", [I("a", a34)], [("y", "unsqueeze", ["a"], {"dim": -4})],
        ["unsqueeze", "-4"], IX)
    err("flatten_order", [I("a", N(rng, (2, 3, 4)))],
        [("y", "flatten", ["a"], {"start_dim": 2, "end_dim": 1})], ["flatten"], {ET_ERR_ARG, ET_ERR_INDEX})
    err("flatten_dim", [I("a", N(rng, (2, 3, 4)))],
        [("y", "flatten", ["a"], {"start_dim": 0, "end_dim": 3})], ["flatten", "3"], IX)
    err("reshape_numel", [I("a", a34)], [("y", "reshape", ["a"], {"shape": [5, 2]})],
        ["reshape", "[5,2]", ["[3,4]", "12"]], SH)
    err("reshape_two_minus_one", [I("a", a34)], [("y", "reshape", ["a"], {"shape": [-1, -1]})],
        ["reshape"], {ET_ERR_SHAPE, ET_ERR_ARG})
    err("reshape_minus_one_indivisible", [I("a", a34)], [("y", "reshape", ["a"], {"shape": [5, -1]})],
        ["reshape", "[5,-1]", ["[3,4]", "12"]], SH)
    err("view_numel", [I("a", a34)], [("y", "view", ["a"], {"shape": [13]})], ["view", "[13]", ["[3,4]", "12"]], SH)
    err("view_not_viewable", [I("a", a34)],
        [("at", "t", ["a"], {}), ("y", "view", ["at"], {"shape": [12]})], ["view", "[12]"],
        {ET_ERR_SHAPE, ET_ERR_ARG, ET_ERR_STATE})
    err("expand_shapes", [I("a", N(rng, (2, 3)))], [("y", "expand", ["a"], {"shape": [4, 3]})],
        ["expand", "[2,3]", "[4,3]"], SH)
    err("expand_fewer_dims", [I("a", N(rng, (2, 3)))], [("y", "expand", ["a"], {"shape": [3]})],
        ["expand", "[2,3]", "[3]"], SH)
    err("where_shapes", [I("c", np.ones((3, 4), np.float32), rg=False), I("a", N(rng, (3, 4))),
                         I("b", N(rng, (2, 4)))], [("y", "where", ["c", "a", "b"], {})],
        ["where", "[3,4]", "[2,4]"], SH)
    err("sum_dim", [I("a", a34)], [("y", "sum", ["a"], {"dims": [2], "keepdim": False})], ["sum", "2"], IX)
    err("sum_negative_dim", [I("a", a34)], [("y", "sum", ["a"], {"dims": [-3], "keepdim": False})],
        ["sum", "-3"], IX)
    err("sum_repeated_dim", [I("a", a34)], [("y", "sum", ["a"], {"dims": [1, -1], "keepdim": False})],
        ["sum"], {ET_ERR_ARG, ET_ERR_INDEX})
    err("mean_dim", [I("a", a34)], [("y", "mean", ["a"], {"dims": [5], "keepdim": True})], ["mean", "5"], IX)
    err("max_dim", [I("a", a34)], [("y", "max", ["a"], {"dim": 2, "keepdim": False})], ["max", "2"], IX)
    err("min_dim", [I("a", a34)], [("y", "min", ["a"], {"dim": -3, "keepdim": False})], ["min", "-3"], IX)
    err("argmax_dim", [I("a", a34)], [("y", "argmax", ["a"], {"dim": 2, "keepdim": False})],
        ["argmax", "2"], IX)
    err("softmax_dim", [I("a", a34)], [("y", "softmax", ["a"], {"dim": 2})], ["softmax", "2"], IX)
    err("log_softmax_dim", [I("a", a34)], [("y", "log_softmax", ["a"], {"dim": -3})],
        ["log_softmax", "-3"], IX)
    err("index_select_index", [I("a", N(rng, (3, 4))), IDX("i", [0, 5])],
        [("y", "index_select", ["a", "i"], {"dim": 0})], ["index_select", "5"], IX)
    err("index_select_dim", [I("a", N(rng, (3, 4))), IDX("i", [0])],
        [("y", "index_select", ["a", "i"], {"dim": 2})], ["index_select", "2"], IX)
    err("index_select_2d_index", [I("a", N(rng, (3, 4))), IDX("i", [[0, 1]])],
        [("y", "index_select", ["a", "i"], {"dim": 0})], ["index_select"], {ET_ERR_SHAPE, ET_ERR_ARG})
    err("gather_index", [I("a", N(rng, (3, 4))), IDX("i", [[0, 4]])],
        [("y", "gather", ["a", "i"], {"dim": 1})], ["gather", "4"], IX)
    err("gather_rank", [I("a", N(rng, (3, 4))), IDX("i", [0, 1])],
        [("y", "gather", ["a", "i"], {"dim": 1})], ["gather"], {ET_ERR_SHAPE})
    err("gather_index_too_big", [I("a", N(rng, (3, 4))), IDX("i", np.zeros((4, 2)))],
        [("y", "gather", ["a", "i"], {"dim": 1})], ["gather", "[4,2]", "[3,4]"], SH)
    err("arange_step_zero", [], [("y", "arange", [], {"start": 0, "end": 5, "step": 0})], ["arange"],
        {ET_ERR_ARG})
    err("arange_wrong_sign", [], [("y", "arange", [], {"start": 0, "end": 5, "step": -1})], ["arange"],
        {ET_ERR_ARG})
    err("eye_negative", [], [("y", "eye", [], {"n": -1, "m": 2})], ["eye", "-1"], {ET_ERR_ARG})
    err("zeros_negative", [], [("y", "zeros", [], {"shape": [2, -3]})], ["zeros", "-3"], {ET_ERR_ARG})
    err("cat_0d", [I("a", 1.0), I("b", 2.0)], [("y", "cat", ["a", "b"], {"dim": 0})], ["cat"],
        {ET_ERR_SHAPE, ET_ERR_ARG, ET_ERR_INDEX})
    err("expand_minus_one_new_dim", [I("a", N(rng, (3,)))], [("y", "expand", ["a"], {"shape": [-1, 3]})],
        ["expand"], {ET_ERR_SHAPE, ET_ERR_ARG})
    err("requires_grad_on_non_leaf", [I("a", N(rng, (3,)))],
        [("e", "exp", ["a"], {}), ("_r", "requires_grad_", ["e"], {"on": False})], ["requires_grad"],
        {ET_ERR_GRAD})
    err("get_out_of_range", [I("a", N(rng, (3, 4)), rg=False)], [("y", "get", ["a"], {"index": [1, 4]})],
        ["4"], IX)
    err("item_many_elements", [I("a", N(rng, (2,)), rg=False)], [("y", "item", ["a"], {})], ["item"],
        {ET_ERR_SHAPE, ET_ERR_ARG})
    err("copy_shapes", [I("a", N(rng, (3, 4)), rg=False), I("b", N(rng, (2, 4)), rg=False)],
        [("_c", "copy_", ["a", "b"], {})], ["copy_", "[3,4]", "[2,4]"], SH)
    err("backward_root_without_grad", [I("a", a34, rg=False)], [("y", "sum_all", ["a"], {})], ["backward"],
        {ET_ERR_GRAD}, backward="none", at="backward")
    err("backward_nonscalar_without_grad", [I("a", a34)], [("y", "exp", ["a"], {})], ["backward"],
        {ET_ERR_GRAD}, backward="none", at="backward")
    err("backward_grad_shape", [I("a", a34)], [("y", "exp", ["a"], {})], ["backward", "[4,3]", "[3,4]"],
        {ET_ERR_SHAPE}, backward=N(rng, (4, 3)), at="backward")

    # used by the cases that follow
    T.IX = IX
    T.SH = SH
    T.err = err
