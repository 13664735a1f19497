"""Cases of test_core_ops.py's differential suite: composite graphs, stride-0 and strided
inputs, ownership (references dropped early), in-place and view semantics, empty and
0-d tensors, larger tensors (vectorised loops, BLAS paths), random programs, the
creation functions and et_to_string() printing.

add_cases(T) runs where these cases stood in test_core_ops.py (the order of
the case list is unchanged) and takes the helpers it uses from T, that module.
"""
import numpy as np
import torch


def add_cases(T):
    AWAY, DISTINCT, END, I, IDX, N, S, TorchFailure, U, bin_data, rng_for, run_torch = (
        T.AWAY, T.DISTINCT, T.END, T.I, T.IDX, T.N, T.S, T.TorchFailure, T.U, T.bin_data,
        T.rng_for, T.run_torch)
    # ---- composite graphs ---------------------------------------------------------------

    rng = rng_for("composite")
    S.add("composite/(a+b+c[0])*(a+b+c[0])",
          [I("a", N(rng, (3, 4))), I("b", N(rng, (3, 4))), I("c", N(rng, (2, 3, 4)))],
          [("c0", "select", ["c"], {"dim": 0, "index": 0}), ("s1", "add", ["a", "b"], {}),
           ("l", "add", ["s1", "c0"], {}), ("c0b", "select", ["c"], {"dim": 0, "index": 0}),
           ("s2", "add", ["a", "b"], {}), ("r", "add", ["s2", "c0b"], {}), ("d", "mul", ["l", "r"], {})],
          rng=rng)
    S.add("composite/e=a+b+c[0];e*e",
          [I("a", N(rng, (3, 4))), I("b", N(rng, (4,))), I("c", N(rng, (2, 3, 4)))],
          [("c0", "select", ["c"], {"dim": 0, "index": 0}), ("s1", "add", ["a", "b"], {}),
           ("e", "add", ["s1", "c0"], {}), ("d", "mul", ["e", "e"], {})], rng=rng)
    S.add("composite/3*a.pow(5)+b", [I("a", N(rng, (3, 4))), I("b", N(rng, (3, 4)))],
          [("p", "pow_scalar", ["a"], {"s": 5.0}), ("m", "mul_scalar", ["p"], {"s": 3.0}),
           ("y", "add", ["m", "b"], {})], rng=rng)
    S.add("composite/(a@b+b).sum()_1d", [I("a", N(rng, (5,))), I("b", N(rng, (5,)))],
          [("ab", "matmul", ["a", "b"], {}), ("s", "add", ["ab", "b"], {}), ("y", "sum_all", ["s"], {})],
          outputs=["ab", "y"], backward="none", rng=rng)
    S.add("composite/(a@b+b).sum(dims)_1d", [I("a", N(rng, (5,))), I("b", N(rng, (5,)))],
          [("ab", "matmul", ["a", "b"], {}), ("s", "add", ["ab", "b"], {}),
           ("y", "sum", ["s"], {"dims": [0], "keepdim": False})], backward="none", rng=rng)
    S.add("composite/x*x*x_same_leaf", [I("a", N(rng, (4,)))],
          [("x2", "mul", ["a", "a"], {}), ("y", "mul", ["x2", "a"], {})], rng=rng)
    # a shared subgraph used many times
    prog = [("s", "mul", ["a", "b"], {}), ("t", "tanh", ["s"], {}), ("acc0", "mul", ["t", "s"], {})]
    for k in range(1, 12):
        prog.append((f"u{k}", "mul_scalar", ["t" if k % 2 else "s"], {"s": float(k) / 4}))
        prog.append((f"acc{k}", "add", [f"acc{k-1}", f"u{k}"], {}))
    prog.append(("e", "exp", ["s"], {}))
    prog.append(("y", "mul", [f"acc{11}", "e"], {}))
    S.add("composite/shared_subgraph_used_many_times", [I("a", N(rng, (3, 4))), I("b", N(rng, (4,)))],
          prog, rng=rng)
    # diamond: two paths that meet again, nested twice
    S.add("composite/double_diamond", [I("a", N(rng, (2, 3)))],
          [("l", "exp", ["a"], {}), ("r", "sigmoid", ["a"], {}), ("m", "mul", ["l", "r"], {}),
           ("l2", "tanh", ["m"], {}), ("r2", "mul", ["m", "a"], {}), ("y", "sub", ["l2", "r2"], {})],
          rng=rng)
    # a deep chain: backward must be iterative (no recursion limit)
    prog = [("x0", "mul_scalar", ["a"], {"s": 1.0})]
    for k in range(1, 3001):
        prog.append((f"x{k}", "add_scalar" if k % 2 else "mul_scalar", [f"x{k-1}"],
                     {"s": 0.001 if k % 2 else 1.0001}))
    prog.append(("y", "mul", ["x3000", "b"], {}))
    S.add("composite/deep_chain_3000", [I("a", N(rng, (3,))), I("b", N(rng, (3,)))], prog, rng=rng)
    # a very deep chain (100k nodes): recursion in backward or in freeing the graph
    # would overflow the stack.  Exact float ops, so no rounding drift.
    prog = [("x0", "mul_scalar", ["a"], {"s": 1.0})]
    for k in range(1, 100001):
        prog.append((f"x{k}", "add_scalar" if k % 2 else "neg", [f"x{k-1}"], {"s": 0.25} if k % 2 else {}))
    prog.append(("y", "mul", ["x100000", "b"], {}))
    S.add("composite/deep_chain_100k", [I("a", N(rng, (3,))), I("b", N(rng, (3,)))], prog, fd=False,
          backward=N(rng, (3,)),
          rng=rng)
    # a small MLP with NLL loss (mean)
    S.add("composite/mlp_nll",
          [I("x", N(rng, (4, 3))), I("w1", N(rng, (3, 5), 0.5)), I("b1", N(rng, (5,), 0.1)),
           I("w2", N(rng, (5, 3), 0.5)), I("b2", N(rng, (3,), 0.1)), IDX("t", [[0], [2], [1], [2]])],
          [("h", "matmul", ["x", "w1"], {}), ("hb", "add", ["h", "b1"], {}),
           ("hr", "tanh", ["hb"], {}), ("o", "matmul", ["hr", "w2"], {}), ("ob", "add", ["o", "b2"], {}),
           ("ls", "log_softmax", ["ob"], {"dim": -1}), ("g", "gather", ["ls", "t"], {"dim": 1}),
           ("m", "mean_all", ["g"], {}), ("loss", "neg", ["m"], {})], backward="none", rng=rng)
    S.add("composite/mse_like", [I("p", N(rng, (5, 1))), I("t", N(rng, (5, 1)), rg=False)],
          [("d", "sub", ["p", "t"], {}), ("sq", "pow_scalar", ["d"], {"s": 2.0}),
           ("y", "mean_all", ["sq"], {})], backward="none", rng=rng)
    S.add("composite/backward_twice_accumulates", [I("a", N(rng, (3,))), I("b", N(rng, (3,)))],
          [("m", "mul", ["a", "b"], {}), ("y", "sum_all", ["m"], {})], backward="none", times=2, rng=rng)
    S.add("composite/backward_three_times_nonscalar", [I("a", N(rng, (2, 3)))],
          [("y", "exp", ["a"], {})], times=3, rng=rng)
    S.add("composite/two_roots_accumulate", [I("a", N(rng, (3, 2))), I("b", N(rng, (2,)))],
          [("m", "mul", ["a", "b"], {}), ("z", "exp", ["a"], {}), ("s", "sum_all", ["z"], {})],
          outputs=["m", "z", "s"], then=["z", "s"], rng=rng)
    S.add("composite/two_roots_shared_subgraph", [I("a", N(rng, (4,))), I("b", N(rng, (4,)))],
          [("h", "tanh", ["a"], {}), ("p", "mul", ["h", "b"], {}), ("q", "matmul", ["h", "b"], {})],
          outputs=["p", "q"], then=["q"], times=2, rng=rng)
    S.add("composite/retain_grad_intermediate", [I("a", N(rng, (3, 4))), I("b", N(rng, (4,)))],
          [("s", "mul", ["a", "b"], {}), ("_r", "retain_grad", ["s"], {}), ("t", "tanh", ["s"], {}),
           ("y", "sum", ["t"], {"dims": [1], "keepdim": False})], retain=["s"], rng=rng)
    S.add("composite/one_element_root_no_grad_arg", [I("a", N(rng, (1, 3))), I("b", N(rng, (3, 1)))],
          [("y", "matmul", ["a", "b"], {})], backward="none", rng=rng)
    S.add("composite/leaf_unused_by_root_has_no_grad", [I("a", N(rng, (3,))), I("b", N(rng, (3,)))],
          [("u", "exp", ["b"], {}), ("y", "exp", ["a"], {})], outputs=["u", "y"], rng=rng)
    S.add("composite/grad_through_cat_stack_and_views",
          [I("a", N(rng, (2, 3))), I("b", N(rng, (3,)))],
          [("bu", "unsqueeze", ["b"], {"dim": 0}), ("c", "cat", ["a", "bu"], {"dim": 0}),
           ("ct", "t", ["c"], {}), ("st", "stack", ["ct", "ct"], {"dim": 0}),
           ("r", "reshape", ["st"], {"shape": [2, -1]}), ("y", "softmax", ["r"], {"dim": 1})], rng=rng)
    S.add("composite/where_relu_like", [I("a", AWAY(rng, (3, 4), 0.05, 2.0))],
          [("z", "mul_scalar", ["a"], {"s": 0.0}), ("c", "gt_scalar", ["a"], {"s": 0.0}),
           ("y", "where", ["c", "a", "z"], {})], rng=rng)
    S.add("composite/detach_blocks_grad", [I("a", N(rng, (3,)))],
          [("d", "detach", ["a"], {}), ("m", "mul", ["a", "d"], {}), ("y", "sum_all", ["m"], {})],
          outputs=["d", "y"], backward="none", fd=False, rng=rng)
    S.add("composite/clone_has_no_graph", [I("a", N(rng, (3,)))],
          [("c", "clone", ["a"], {}), ("m", "mul", ["a", "c"], {}), ("y", "sum_all", ["m"], {})],
          outputs=["c", "y"], backward="none", fd=False, rng=rng)
    S.add("composite/maximum_minimum_norm", [I("a", N(rng, (4, 3))), I("b", N(rng, (3,)))],
          [("mx", "maximum", ["a", "b"], {}), ("mn", "minimum", ["a", "b"], {}),
           ("d", "sub", ["mx", "mn"], {}), ("q", "sqrt", ["d"], {}),
           ("y", "mean", ["q"], {"dims": [0], "keepdim": True})], rng=rng)

    # ---- stride-0 (expanded) inputs, strided index tensors, non-contiguous leaves, no-grad --------

    rng = rng_for("stride0")
    for name, prog in [
            ("sum", [("y", "sum", ["e"], {"dims": [0], "keepdim": False})]),
            ("sum_all", [("y", "sum_all", ["e"], {})]),
            ("softmax", [("y", "softmax", ["e"], {"dim": 0})]),
            ("log_softmax", [("y", "log_softmax", ["e"], {"dim": -1})]),
            ("max", [("y", "max", ["e"], {"dim": 1, "keepdim": True})]),
            ("cat", [("y", "cat", ["e", "e"], {"dim": 1})]),
            ("contiguous", [("y", "contiguous", ["e"], {})]),
            ("reshape", [("y", "reshape", ["e"], {"shape": [-1]})]),
            ("mul_self", [("y", "mul", ["e", "e"], {})]),
            ("matmul", [("et", "t", ["e"], {}), ("y", "matmul", ["e", "et"], {})]),
            ("gather", [("y", "gather", ["e", "gi"], {"dim": 1})]),
            ("index_select", [("y", "index_select", ["e", "ii"], {"dim": 0})]),
            ("exp", [("y", "exp", ["e"], {})])]:
        S.add(f"stride0/expand_then_{name}", [I("a", DISTINCT(rng, (1, 4))), IDX("gi", [[0, 3], [1, 1], [2, 0]]),
                                              IDX("ii", [2, 0])],
              [("e", "expand", ["a"], {"shape": [3, 4]})] + prog, rng=rng,
              fd=(name != "max"))
    S.add("stride0/gather_transposed_index", [I("a", N(rng, (3, 4))), IDX("i", [[0, 1, 2], [3, 3, 0]])],
          [("it", "t", ["i"], {}), ("y", "gather", ["a", "it"], {"dim": 1})], rng=rng)
    S.add("stride0/index_select_strided_index", [I("a", N(rng, (5, 2))), IDX("i", [4, 9, 0, 9, 2, 9])],
          [("is", "slice", ["i"], {"dim": 0, "start": 0, "end": END, "step": 2}),
           ("y", "index_select", ["a", "is"], {"dim": 0})], rng=rng)
    S.add("stride0/where_expanded_cond", [I("c", [[1.0], [0.0], [1.0]], rg=False), I("a", N(rng, (3, 4))),
                                          I("b", N(rng, (3, 4)))],
          [("ce", "expand", ["c"], {"shape": [3, 4]}), ("y", "where", ["ce", "a", "b"], {})], rng=rng)
    S.add("stride0/reshape_strided_slice_copies", [I("a", N(rng, (4, 6)))],
          [("s", "slice", ["a"], {"dim": 1, "start": 0, "end": END, "step": 2}),
           ("y", "reshape", ["s"], {"shape": [3, 4]})], rng=rng)
    S.add("leaf/noncontiguous_leaf_via_detach", [I("x", N(rng, (4, 3)), rg=False), I("b", N(rng, (4,)))],
          [("xt", "t", ["x"], {}), ("w", "detach", ["xt"], {}), ("_r", "requires_grad_", ["w"], {}),
           ("m", "mul", ["w", "b"], {}), ("y", "tanh", ["m"], {})], retain=["w"], fd=False, rng=rng)
    S.add("leaf/root_is_the_leaf_itself", [I("a", N(rng, (2, 3)))],
          [("y", "contiguous", ["a"], {})], rng=rng)
    S.add("leaf/root_is_view_of_leaf", [I("a", N(rng, (2, 3)))],
          [("y", "t", ["a"], {})], times=2, rng=rng)
    S.add("nograd/node_under_no_grad_blocks_gradient", [I("a", N(rng, (3,)))],
          [("e", "exp", ["a"], {"_no_grad": True}), ("y", "mul", ["a", "e"], {})], outputs=["e", "y"],
          fd=False, rng=rng)
    S.add("nograd/everything_under_no_grad", [I("a", N(rng, (3,))), I("b", N(rng, (3,)))],
          [("m", "mul", ["a", "b"], {"_no_grad": True}), ("s", "softmax", ["m"], {"dim": 0, "_no_grad": True}),
           ("y", "matmul", ["s", "b"], {"_no_grad": True})], outputs=["m", "s", "y"], backward=None)
    S.add("ties/pow_tensor_zero_base", [I("a", [0.0, 0.0, 2.0]), I("b", [2.0, 0.0, 3.0])],
          [("y", "pow", ["a", "b"], {})], fd=False, rng=rng)

    # PyTorch 1.13's float32 exact-GELU backward returns garbage when grad_output is
    # non-contiguous (float64 is right); check_diff falls back to float64 there and says so.
    rng = rng_for("oracle")
    S.add("oracle/gelu_backward_noncontiguous_grad_output", [I("a", N(rng, (4, 2)))],
          [("g", "gelu", ["a"], {"approx": False}), ("y", "t", ["g"], {})], rng=rng)

    # ---- ownership: the caller drops its references early (graph/storage keep what they need) ----

    rng = rng_for("free")
    S.add("free/intermediates_before_backward", [I("a", N(rng, (3, 4))), I("b", N(rng, (4,)))],
          [("m", "mul", ["a", "b"], {}), ("e", "tanh", ["m"], {}), ("_", "free", ["m"], {}),
           ("s", "sum", ["e"], {"dims": [1], "keepdim": False}), ("_", "free", ["e"], {}),
           ("y", "mul", ["s", "s"], {})], rng=rng)
    S.add("free/every_intermediate_as_it_goes", [I("a", N(rng, (2, 3))), I("w", N(rng, (3, 2)))],
          [("h", "matmul", ["a", "w"], {}), ("t", "sigmoid", ["h"], {}), ("_", "free", ["h"], {}),
           ("tt", "t", ["t"], {}), ("_", "free", ["t"], {}), ("sl", "slice", ["tt"], {"dim": 1, "start": 0, "end": END, "step": 1}),
           ("_", "free", ["tt"], {}), ("y", "log_softmax", ["sl"], {"dim": 0}), ("_", "free", ["sl"], {})],
          rng=rng)
    S.add("free/constant_input_after_use", [I("a", N(rng, (3,))), I("c", N(rng, (3,)), rg=False)],
          [("d", "sub", ["a", "c"], {}), ("_", "free", ["c"], {}), ("y", "pow_scalar", ["d"], {"s": 2.0})],
          rng=rng)
    S.add("free/base_of_a_view", [I("x", N(rng, (3, 4)), rg=False)],
          [("v", "slice", ["x"], {"dim": 1, "start": 1, "end": END, "step": 2}), ("_", "free", ["x"], {}),
           ("y", "mul_scalar", ["v"], {"s": 2.0})], outputs=["v", "y"], backward=None)
    S.add("free/view_of_leaf_before_backward", [I("a", N(rng, (3, 4)))],
          [("v", "transpose", ["a"], {"dim0": 0, "dim1": 1}), ("e", "expand", ["v"], {"shape": [2, 4, 3]}),
           ("_", "free", ["v"], {}), ("y", "exp", ["e"], {}), ("_", "free", ["e"], {})], times=2, rng=rng)

    # ---- in place and view semantics (forward only: writes through views) -------------------

    rng = rng_for("inplace")
    VS = [
        ("fill_/slice_view_writes_base", [("v", "slice", ["a"], {"dim": 1, "start": 1, "end": END, "step": 2}),
                                          ("_f", "fill_", ["v"], {"value": 7.0})], ["a", "v"]),
        ("fill_/select_of_transpose_writes_base",
         [("t", "transpose", ["a"], {"dim0": 0, "dim1": 1}), ("s", "select", ["t"], {"dim": 0, "index": 2}),
          ("_f", "fill_", ["s"], {"value": -1.0})], ["a", "t"]),
        ("fill_/base_write_visible_in_view",
         [("v", "view", ["a"], {"shape": [2, 6]}), ("p", "permute", ["a"], {"dims": [1, 0]}),
          ("r", "select", ["a"], {"dim": 0, "index": 1}), ("_f", "fill_", ["r"], {"value": 3.0})],
         ["v", "p", "a"]),
        ("copy_/into_view_broadcast", [("v", "view", ["a"], {"shape": [2, 6]}),
                                       ("_c", "copy_", ["v", "b"], {})], ["a"]),
        ("copy_/into_transposed_slice",
         [("t", "t", ["a"], {}), ("s", "slice", ["t"], {"dim": 0, "start": 0, "end": 2, "step": 1}),
          ("_c", "copy_", ["s", "c"], {})], ["a"]),
        ("copy_/from_noncontig_src", [("ct", "t", ["d"], {}), ("_c", "copy_", ["a", "ct"], {})], ["a"]),
        ("fill_/through_detach", [("d", "detach", ["a"], {}), ("_f", "fill_", ["d"], {"value": 2.0})],
         ["a", "d"]),
        ("fill_/clone_is_a_copy", [("c", "clone", ["a"], {}), ("_f", "fill_", ["c"], {"value": 0.0})],
         ["a", "c"]),
        ("fill_/reshape_of_contiguous_is_view",
         [("r", "reshape", ["a"], {"shape": [4, 3]}), ("s", "select", ["r"], {"dim": 0, "index": 0}),
          ("_f", "fill_", ["s"], {"value": 9.0})], ["a"]),
        ("fill_/reshape_of_transposed_is_copy",
         [("t", "t", ["a"], {}), ("r", "reshape", ["t"], {"shape": [12]}),
          ("_f", "fill_", ["r"], {"value": 9.0})], ["a", "r"]),
        ("fill_/unsqueeze_squeeze_flatten_views",
         [("u", "unsqueeze", ["a"], {"dim": 0}), ("q", "squeeze", ["u"], {"dim": 0}),
          ("f", "flatten", ["q"], {"start_dim": 0, "end_dim": -1}),
          ("s", "slice", ["f"], {"dim": 0, "start": 0, "end": END, "step": 5}),
          ("_f", "fill_", ["s"], {"value": -4.0})], ["a", "u"]),
        ("fill_/contiguous_of_contiguous_shares", [("c", "contiguous", ["a"], {}),
                                                   ("_f", "fill_", ["c"], {"value": 1.5})], ["a"]),
        ("fill_/contiguous_of_transposed_copies", [("t", "t", ["a"], {}), ("c", "contiguous", ["t"], {}),
                                                   ("_f", "fill_", ["c"], {"value": 1.5})], ["a", "c"]),
        ("fill_/expand_reads_updated_base", [("e", "expand", ["b"], {"shape": [3, 4]}),
                                             ("_f", "fill_", ["b"], {"value": 0.5})], ["e"]),
    ]
    for vid, prog, outs in VS:
        S.add(vid, [I("a", N(rng, (3, 4)), rg=False), I("b", N(rng, (1, 6)) if "broadcast" in vid else N(rng, (4,)), rg=False),
                    I("c", N(rng, (2, 3)), rg=False), I("d", N(rng, (4, 3)), rg=False)],
              prog, outputs=outs, backward=None)
    # element access and et_copy_from through views
    S.add("get/strided_negative_index", [I("a", N(rng, (3, 4)), rg=False)],
          [("t", "t", ["a"], {}), ("s", "slice", ["t"], {"dim": 1, "start": 0, "end": END, "step": 2}),
           ("y", "get", ["s"], {"index": [-1, 1]})], outputs=["y"], backward=None)
    S.add("get/0d", [I("a", 1.25, rg=False)], [("y", "get", ["a"], {"index": []})], backward=None)
    S.add("item/one_element", [I("a", N(rng, (1, 1)), rg=False)], [("y", "item", ["a"], {})], backward=None)
    S.add("copy_from/through_transposed_slice", [I("a", N(rng, (3, 4)), rg=False)],
          [("t", "t", ["a"], {}), ("s", "slice", ["t"], {"dim": 0, "start": 1, "end": END, "step": 2}),
           ("_c", "copy_from", ["s"], {"data": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})], outputs=["a", "s"],
          backward=None)
    # in-place on a leaf that requires grad (what an optimizer does), then use it
    S.add("fill_/leaf_param_then_forward", [I("w", N(rng, (2, 3))), I("x", N(rng, (3,)), rg=False)],
          [("_f", "fill_", ["w"], {"value": 0.5}), ("y", "matmul", ["w", "x"], {})],
          outputs=["w", "y"], fd=False, rng=rng)
    S.add("copy_/leaf_param_then_forward", [I("w", N(rng, (2, 3))), I("s", N(rng, (3,)), rg=False)],
          [("_c", "copy_", ["w", "s"], {}), ("y", "tanh", ["w"], {})], outputs=["w", "y"], fd=False,
          rng=rng)

    # ---- edge cases: empty tensors and 0-d ----------------------------------------------

    rng = rng_for("edge")
    S.add("edge/sum_all_empty", [I("a", np.zeros((0, 3), np.float32))], [("y", "sum_all", ["a"], {})],
          fd=False, backward="none", rng=rng)
    S.add("edge/sum_dim_empty", [I("a", np.zeros((2, 0), np.float32))],
          [("y", "sum", ["a"], {"dims": [1], "keepdim": False})], fd=False, rng=rng)
    S.add("edge/cat_with_empty", [I("a", N(rng, (2, 3))), I("b", np.zeros((0, 3), np.float32))],
          [("y", "cat", ["a", "b"], {"dim": 0})], fd=False, rng=rng)
    S.add("edge/slice_empty_range", [I("a", N(rng, (4, 3)))],
          [("s", "slice", ["a"], {"dim": 0, "start": 3, "end": 1, "step": 1}),
           ("y", "sum_all", ["s"], {})], outputs=["s", "y"], fd=False, backward="none", rng=rng)
    S.add("edge/add_0d_0d_grad", [I("a", 1.5), I("b", -0.25)],
          [("m", "mul", ["a", "b"], {}), ("y", "exp", ["m"], {})], backward="none", rng=rng)
    S.add("edge/0d_unsqueeze_expand_sum", [I("a", 0.75)],
          [("u", "unsqueeze", ["a"], {"dim": 0}), ("e", "expand", ["u"], {"shape": [2, 3]}),
           ("y", "sum_all", ["e"], {})], backward="none", rng=rng)
    S.add("edge/max_all_0d", [I("a", 2.0)], [("y", "max_all", ["a"], {})], backward="none", rng=rng)
    S.add("edge/matmul_k1", [I("a", N(rng, (3, 1))), I("b", N(rng, (1, 2)))],
          [("y", "matmul", ["a", "b"], {})], rng=rng)

    # ---- larger tensors: vectorised loops, BLAS paths, long reductions (no finite differences) ----

    rng = rng_for("large")
    for sa, sb in [((64, 257), (257,)), ((33, 1, 65), (1, 17, 65)), ((5, 1, 7, 1), (1, 6, 1, 9)),
                   ((2, 3, 1, 5, 1), (3, 4, 1, 6))]:
        for op in ["add", "mul", "div"]:
            a, b = bin_data(op, rng, sa, sb)
            S.add(f"large/{op}/{list(sa)}x{list(sb)}", [I("a", a), I("b", b)],
                  [("y", op, ["a", "b"], {})], fd=False, rng=rng)
    for op, p in [("gelu", {"approx": False}), ("gelu", {"approx": True}), ("tanh", {}),
                  ("sigmoid", {}), ("exp", {}), ("relu", {})]:
        S.add(f"large/{op}{p}/[100,101]", [I("a", AWAY(rng, (100, 101), 0.01, 3.0))],
              [("y", op, ["a"], p)], fd=False, rng=rng)
    for op in ["sum", "mean"]:
        for shp, dims in [((128, 300), [0]), ((128, 300), [1]), ((20, 30, 40), [0, 2]), ((20, 30, 40), [1])]:
            S.add(f"large/{op}/{list(shp)}/dims={dims}", [I("a", N(rng, shp))],
                  [("y", op, ["a"], {"dims": dims, "keepdim": False})], fd=False, rng=rng)
        S.add(f"large/{op}/transposed", [I("a", N(rng, (300, 128)))],
              [("at", "t", ["a"], {}), ("y", op, ["at"], {"dims": [1], "keepdim": True})], fd=False, rng=rng)
        S.add(f"large/{op}_all/[200,300]", [I("a", U(rng, (200, 300), 0.0, 1.0))],
              [("y", op + "_all", ["a"], {})], fd=False, backward="none", rng=rng)
    for sa, sb, tr in [((64, 128), (128, 96), ""), ((4, 33, 65), (65, 17), ""), ((96, 64), (128, 96), "ab"),
                       ((3, 1, 40, 50), (2, 50, 30), ""), ((200,), (200, 7), ""), ((7, 200), (200,), "")]:
        prog, a_in, b_in = [], "a", "b"
        if "a" in tr:
            prog.append(("at", "t", ["a"], {}))
            a_in = "at"
        if "b" in tr:
            prog.append(("bt", "t", ["b"], {}))
            b_in = "bt"
        prog.append(("y", "matmul", [a_in, b_in], {}))
        S.add(f"large/matmul/{list(sa)}@{list(sb)}{'/T' + tr if tr else ''}",
              [I("a", N(rng, sa)), I("b", N(rng, sb))], prog, fd=False, rng=rng)
    for op in ["softmax", "log_softmax"]:
        for dim in [-1, 0]:
            S.add(f"large/{op}/[32,1000]/dim={dim}", [I("a", N(rng, (32, 1000), 3.0))],
                  [("y", op, ["a"], {"dim": dim})], fd=False, rng=rng)
    for op in ["max", "min"]:
        S.add(f"large/{op}/[50,200]/dim=1", [I("a", DISTINCT(rng, (50, 200)))],
              [("y", op, ["a"], {"dim": 1, "keepdim": False})], outputs=["y", "y.indices"], fd=False,
              rng=rng)
    S.add("large/argmax/[50,200]", [I("a", DISTINCT(rng, (50, 200)))],
          [("y", "argmax", ["a"], {"dim": 0, "keepdim": True})], backward=None)
    S.add("large/index_select/[1000,8]", [I("a", N(rng, (1000, 8))), IDX("i", rng.integers(0, 1000, 3000))],
          [("y", "index_select", ["a", "i"], {"dim": 0})], fd=False, rng=rng)
    S.add("large/gather/[64,500]", [I("a", N(rng, (64, 500))), IDX("i", rng.integers(0, 500, (64, 30)))],
          [("y", "gather", ["a", "i"], {"dim": 1})], fd=False, rng=rng)
    S.add("large/cat_stack", [I("a", N(rng, (100, 30))), I("b", N(rng, (100, 30)))],
          [("c", "cat", ["a", "b"], {"dim": 1}), ("s", "stack", ["c", "c"], {"dim": 1}),
           ("y", "permute", ["s"], {"dims": [2, 0, 1]})], fd=False, rng=rng)
    S.add("large/where_maximum", [I("a", N(rng, (80, 90))), I("b", N(rng, (90,)))],
          [("c", "gt", ["a", "b"], {}), ("m", "maximum", ["a", "b"], {}),
           ("y", "where", ["c", "m", "b"], {})], fd=False, rng=rng)

    # ---- random programs: op interplay (fixed seeds, validated by PyTorch while built) ----------

    def _try_shape(case):
        """Shape and values of the last node under PyTorch, or None if PyTorch rejects it."""
        try:
            env, _ = run_torch(case, torch.float32, backward=False)
        except TorchFailure:
            return None
        return env[case["prog"][-1]["out"]].detach()


    def fuzz_case(rng, k):
        base = [int(v) for v in rng.integers(1, 5, rng.integers(1, 4))]
        inputs, avail = [], []

        def new_leaf(shape, rg=True):
            name = f"l{len(inputs)}"
            inputs.append(I(name, N(rng, tuple(shape)), rg=rg))
            return name

        for j in range(int(rng.integers(2, 4))):
            shp = list(base[int(rng.integers(0, len(base))):]) if j else list(base)
            shp = [1 if rng.random() < 0.25 else d for d in shp]
            avail.append(new_leaf(shp))
        prog = []
        steps = int(rng.integers(3, 9))
        tries = 0
        while len(prog) < steps and tries < 200:
            tries += 1
            x = avail[-1] if rng.random() < 0.6 else avail[int(rng.integers(0, len(avail)))]
            y = avail[int(rng.integers(0, len(avail)))]
            cur = _try_shape({"inputs": inputs, "prog": [dict(n) for n in prog] + [
                {"out": "_probe", "op": "contiguous", "in": [x], "p": {}}]})
            if cur is None:
                continue
            nd = cur.dim()
            out = f"v{len(prog)}"
            kind = rng.choice(["unary", "unary", "binary", "binary", "shape", "shape", "reduce",
                               "matmul", "catstack", "index", "where"])
            d = int(rng.integers(-nd, nd)) if nd else 0
            node = None
            if kind == "unary":
                op = rng.choice(["tanh", "sigmoid", "neg", "gelu", "mul_scalar", "add_scalar",
                                 "pow_scalar", "exp", "leaky_relu"])
                p = {"gelu": {"approx": bool(rng.random() < 0.5)}, "mul_scalar": {"s": -1.5},
                     "add_scalar": {"s": 0.5}, "pow_scalar": {"s": 2.0}, "leaky_relu": {"slope": 0.1}
                     }.get(op, {})
                if op == "exp" and float(cur.abs().max()) > 3:
                    continue
                node = (out, op, [x], p)
            elif kind == "binary":
                op = rng.choice(["add", "sub", "mul", "maximum", "minimum", "div"])
                if op == "div":
                    other = _try_shape({"inputs": inputs, "prog": [dict(n) for n in prog] + [
                        {"out": "_probe", "op": "contiguous", "in": [y], "p": {}}]})
                    if other is None or float(other.abs().min()) < 0.3:
                        continue
                node = (out, op, [x, y], {})
            elif kind == "shape" and nd:
                op = rng.choice(["transpose", "permute", "unsqueeze", "squeeze_all", "slice", "select",
                                 "expand", "reshape", "flatten", "t"])
                shp = list(cur.shape)
                if op == "transpose":
                    node = (out, op, [x], {"dim0": d, "dim1": int(rng.integers(-nd, nd))})
                elif op == "permute":
                    node = (out, op, [x], {"dims": [int(v) for v in rng.permutation(nd)]})
                elif op == "unsqueeze":
                    node = (out, op, [x], {"dim": int(rng.integers(-nd - 1, nd + 1))})
                elif op == "squeeze_all":
                    node = (out, op, [x], {})
                elif op == "slice":
                    node = (out, op, [x], {"dim": d, "start": int(rng.integers(-shp[d], shp[d])),
                                           "end": END, "step": int(rng.integers(1, 3))})
                elif op == "select":
                    node = (out, op, [x], {"dim": d, "index": int(rng.integers(-shp[d], shp[d]))})
                elif op == "expand":
                    node = (out, op, [x], {"shape": [int(rng.integers(2, 4))] + [
                        int(rng.integers(2, 4)) if v == 1 else -1 for v in shp]})
                elif op == "reshape":
                    node = (out, op, [x], {"shape": [-1]})
                elif op == "flatten":
                    node = (out, op, [x], {"start_dim": min(d % nd, nd - 1), "end_dim": -1})
                elif op == "t" and nd == 2:
                    node = (out, op, [x], {})
            elif kind == "reduce" and nd:
                op = rng.choice(["sum", "mean", "max", "softmax", "log_softmax", "sum_all", "min"])
                if op in ("sum", "mean"):
                    dims = sorted({int(v) for v in rng.integers(0, nd, int(rng.integers(1, nd + 1)))})
                    node = (out, op, [x], {"dims": dims, "keepdim": bool(rng.random() < 0.5)})
                elif op in ("max", "min"):
                    node = (out, op, [x], {"dim": d, "keepdim": bool(rng.random() < 0.5)})
                elif op == "sum_all":
                    node = (out, op, [x], {})
                else:
                    node = (out, op, [x], {"dim": d})
            elif kind == "matmul" and 1 <= nd <= 4:
                if nd >= 2 and rng.random() < 0.3:   # fresh left operand: w @ x
                    w = new_leaf([int(rng.integers(1, 4)), cur.shape[-2]])
                    node = (out, "matmul", [w, x], {})
                else:
                    w = new_leaf([cur.shape[-1], int(rng.integers(1, 4))] if rng.random() < 0.7
                                 else [cur.shape[-1]])
                    node = (out, "matmul", [x, w], {})
            elif kind == "catstack" and nd:
                if rng.random() < 0.5:
                    node = (out, "cat", [x, x] if rng.random() < 0.5 else [x, new_leaf(list(cur.shape))],
                            {"dim": d})
                else:
                    node = (out, "stack", [x, new_leaf(list(cur.shape))],
                            {"dim": int(rng.integers(-nd - 1, nd + 1))})
            elif kind == "index" and nd:
                size = cur.shape[d]
                if rng.random() < 0.5:
                    idx = IDX(f"i{len(inputs)}", rng.integers(0, size, int(rng.integers(1, 5))))
                    inputs.append(idx)
                    node = (out, "index_select", [x, idx["name"]], {"dim": d})
                else:
                    ishape = [int(rng.integers(1, v + 1)) for v in cur.shape]
                    ishape[d % nd] = int(rng.integers(1, 5))
                    idx = IDX(f"i{len(inputs)}", rng.integers(0, size, tuple(ishape)))
                    inputs.append(idx)
                    node = (out, "gather", [x, idx["name"]], {"dim": d})
            elif kind == "where":
                c = f"c{len(prog)}"
                prog.append({"out": c, "op": "gt", "in": [x, y], "p": {}})
                node = (out, "where", [c, x, y], {})
            if node is None:
                if prog and prog[-1]["op"] == "gt" and kind == "where":
                    prog.pop()
                continue
            cand = prog + [{"out": node[0], "op": node[1], "in": list(node[2]), "p": dict(node[3])}]
            val = _try_shape({"inputs": inputs, "prog": cand})
            if val is None or val.numel() == 0 or val.numel() > 300 or val.dim() > 5 \
                    or not bool(torch.isfinite(val).all()) or float(val.abs().max()) > 50:
                if kind == "where":
                    prog.pop()
                continue
            prog = cand
            avail.append(node[0])
        used = {n for node in prog for n in node["in"]}
        inputs = [i for i in inputs if i["name"] in used]
        tuples = [(n["out"], n["op"], n["in"], n["p"]) for n in prog]
        return inputs, tuples


    rng = rng_for("fuzz")
    for k in range(150):
        fin, fprog = fuzz_case(rng, k)
        if not fprog:
            continue
        if not any(i["requires_grad"] for i in fin):
            continue
        S.add(f"fuzz/{k:03d}:" + ",".join(n[1] for n in fprog), fin, fprog,
              outputs=[fprog[-1][0]], rng=rng)

    # ---- creation functions of tensor.h --------------------------------------------------

    for st, en, sp in [(0, 5, 1), (1, 2, 0.25), (-1, 1, 0.3), (5, 0, -1), (0, 1, 0.1), (0, 0, 1),
                       (0.5, 10, 2.5)]:
        S.add(f"arange/{st},{en},{sp}", [], [("y", "arange", [], {"start": st, "end": en, "step": sp})])
    for st, en, n in [(0, 1, 5), (-2, 2, 1), (3, -3, 7), (0, 1, 0), (0, 1, 11)]:
        S.add(f"linspace/{st},{en},{n}", [], [("y", "linspace", [], {"start": st, "end": en, "steps": n})])
    for n, m in [(3, 3), (2, 4), (4, 2), (1, 1), (0, 2)]:
        S.add(f"eye/{n},{m}", [], [("y", "eye", [], {"n": n, "m": m})])
    for shp in [[2, 3], [], [4]]:
        S.add(f"full/{shp}", [], [("y", "full", [], {"shape": shp, "value": -2.5})])
        S.add(f"zeros/{shp}", [], [("y", "zeros", [], {"shape": shp})])
        S.add(f"ones/{shp}", [], [("y", "ones", [], {"shape": shp})])
    S.add("zeros_like/of_grad_tensor", [I("a", np.ones((2, 3), np.float32))],
          [("z", "zeros_like", ["a"], {}), ("o", "ones_like", ["a"], {})], outputs=["z", "o"],
          backward=None)

    # ---- printing: et_to_string() vs str(torch.Tensor) ------------------------------------------

    rng = rng_for("print")
    PRINT = [
        ("int_like", np.array([[1, 2], [3, -4]], np.float32)),
        ("fixed", N(rng, (2, 3))),
        ("0d", np.float32(3.14159)),
        ("0d_int", np.float32(-2.0)),
        ("sci_small_large", np.array([1e-5, 1e5, 3.0], np.float32)),
        ("large_ints", np.array([1e8, 2.0, -3e9], np.float32)),
        ("tiny", np.array([1e-9, -2e-8], np.float32)),
        ("zeros", np.zeros((2, 2), np.float32)),
        ("negative_zero", np.array([-0.0, 1.5], np.float32)),
        ("nan_inf", np.array([np.nan, np.inf, -np.inf, 1.25], np.float32)),
        ("empty_1d", np.zeros((0,), np.float32)),
        ("empty_2d", np.zeros((2, 0), np.float32)),
        ("3d", N(rng, (2, 2, 3))),
        ("wide_wraps", N(rng, (20,))),
        ("summarized_1d", np.arange(2000, dtype=np.float32)),
        ("summarized_2d", N(rng, (40, 40))),
        ("summarized_3d", U(rng, (12, 10, 10), 0, 1)),
        ("mixed_magnitudes_2d", np.array([[0.001, 1000.0], [12.5, -0.25]], np.float32)),
        ("one_decimal", np.array([0.5, 1.5, 2.5], np.float32)),
        ("long_row", np.array([[123456.7, 0.1, 5.0, 42.0, 1e3, 7.25]], np.float32)),
    ]
    for pid, arr in PRINT:
        S.add(f"print/{pid}", [I("a", arr, rg=False)], [("y", "contiguous", ["a"], {})], backward=None,
              reprs=["a"])
    S.add("print/requires_grad_leaf", [I("a", N(rng, (2, 2)))], [("y", "contiguous", ["a"], {})],
          backward=None, reprs=["a"])
    S.add("print/no_grad_result", [I("a", N(rng, (3,)))], [("y", "exp", ["a"], {"_no_grad": True})],
          backward=None, reprs=["y"])
    S.add("print/view_of_strided", [I("a", N(rng, (3, 4)), rg=False)],
          [("t", "t", ["a"], {}), ("y", "slice", ["t"], {"dim": 0, "start": 0, "end": END, "step": 2})],
          backward=None, reprs=["y"])
    for op in ["add", "mul"]:
        S.add(f"print/grad_fn_{op}", [I("a", N(rng, (2,))), I("b", N(rng, (2,)))],
              [("y", op, ["a", "b"], {})], backward=None, reprs=["y"])
    S.add("print/grad_fn_exp", [I("a", N(rng, (2,)))], [("y", "exp", ["a"], {})], backward=None,
          reprs=["y"])
    S.add("print/grad_fn_sum", [I("a", N(rng, (2,)))], [("y", "sum_all", ["a"], {})], backward=None,
          reprs=["y"])
