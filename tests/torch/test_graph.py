#!/usr/bin/python3
"""Differential test of easytorch's graph modules (nn_graph.h) against
torch.fx GraphModules built from the same description (torch 1.13).

Each case describes inputs, named submodules (registered on a plain
nn.Module in order: the "equivalent nn.Module" whose state_dict() names ours
must match, in order), nodes and outputs.  torch builds an fx.Graph from it
(placeholder / call_module / call_function / get_attr / output) and runs the
GraphModule; nn_runner's "graph" command builds ours through the C API with
torch's parameters loaded.  Compared at rtol 1e-4 / atol 1e-5: every output,
the gradients of every parameter and float input after one backward of
sum(out_i * gout_i), and BatchNorm's running statistics.  Error cases must
fail with a message naming the node.

Usage: /usr/bin/python3 test_graph.py PATH/TO/nn_runner"""
import json
import operator
import os
import sys
import tempfile
import zlib

import torch
import torch.fx as fx
import torch.nn as nn
import torch.nn.functional as F

import test_nn as T


def torch_module(s):
    t = s["type"]
    if t == "Linear":
        return nn.Linear(s["in_features"], s["out_features"], bias=s.get("bias", True))
    if t in ("ReLU", "Tanh"):
        return getattr(nn, t)()
    if t == "Dropout":
        return nn.Dropout(s.get("p", 0.5))
    if t == "BatchNorm1d":
        return nn.BatchNorm1d(s["num_features"])
    if t == "LayerNorm":
        return nn.LayerNorm(s["normalized_shape"])
    if t == "Embedding":
        return nn.Embedding(s["num_embeddings"], s["embedding_dim"])
    if t == "MultiheadAttention":
        return nn.MultiheadAttention(s["embed_dim"], s["num_heads"],
                                     batch_first=s.get("batch_first", False))
    if t == "Sequential":
        return nn.Sequential(*[torch_module(k) for k in s["layers"]])
    if t == "ModuleList":
        return nn.ModuleList([torch_module(k) for k in s["modules"]])
    raise ValueError(t)


def call_function(g, n, args):
    op = n["op"]
    if op in ("add", "sub", "mul", "div", "matmul"):
        return g.call_function(getattr(torch, op), tuple(args))
    if op in ("cat", "stack"):
        return g.call_function(getattr(torch, op), (list(args),), {"dim": n.get("dim", 0)})
    if op == "reshape":
        return g.call_function(torch.reshape, (args[0], tuple(n["shape"])))
    if op == "flatten":
        return g.call_function(torch.flatten, (args[0], n.get("start_dim", 1), n.get("end_dim", -1)))
    if op == "transpose":
        return g.call_function(torch.transpose, (args[0], n["dim0"], n["dim1"]))
    if op == "permute":
        return g.call_function(torch.permute, (args[0], tuple(n["dims"])))
    if op in ("sum", "mean"):
        fn = getattr(torch, op)
        if "dim" in n or "dims" in n:
            d = n["dim"] if "dim" in n else tuple(n["dims"])
            return g.call_function(fn, (args[0], d), {"keepdim": n.get("keepdim", False)})
        return g.call_function(fn, (args[0],))
    if op in ("softmax", "log_softmax"):
        return g.call_function(getattr(torch, op), (args[0], n["dim"]))
    if op == "getitem":
        if "dim" in n:
            return g.call_function(torch.select, (args[0], n["dim"], n["index"]))
        return g.call_function(operator.getitem, (args[0], n["index"]))
    if op == "chunk":
        return g.call_function(torch.chunk, (args[0], n["chunks"], n.get("dim", 0)))
    if op == "split":
        return g.call_function(torch.split, (args[0], n["split_size"], n.get("dim", 0)))
    if op == "cosine_similarity":
        return g.call_function(F.cosine_similarity, tuple(args),
                               {"dim": n.get("dim", 1), "eps": n.get("eps", 1e-8)})
    if op == "linear":
        return g.call_function(F.linear, tuple(args))
    raise ValueError(op)


def torch_graph(spec):
    """(root: the equivalent nn.Module with named children, fx.GraphModule)."""
    root = nn.Module()
    for m in spec.get("modules", []):
        setattr(root, m["name"], torch_module(m))
    g = fx.Graph()
    env = {name: g.placeholder(name) for name in spec["inputs"]}
    for n in spec["nodes"]:
        args = [env[a] for a in n.get("args", [])]
        if "module" in n:
            env[n["name"]] = g.call_module(n["module"], tuple(args))
        elif "attr" in n:
            env[n["name"]] = g.get_attr(n["attr"])
        else:
            env[n["name"]] = call_function(g, n, args)
    outs = [env[node] for _, node in spec["outputs"]]
    g.output(tuple(outs))
    return root, fx.GraphModule(root, g)


def graph_case(name, spec, inputs, train=True, float_inputs=True):
    """inputs: {name: tensor} (float; integer-valued floats for Embedding)."""
    case = f"graph {name}"
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()))
    torch.manual_seed(zlib.crc32(name.encode()))
    try:
        root, gm = torch_graph(spec)
        with torch.no_grad():
            for p in root.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        gm.train(train)
        sd = {k: v.clone() for k, v in root.state_dict().items()}
        idx = spec.get("index_inputs", [])
        xs = {k: v.long() if k in idx else v.clone().requires_grad_(float_inputs)
              for k, v in inputs.items()}
        ys = gm(*[xs[k] for k in spec["inputs"]])
        gouts = {f"gout.{o}": torch.randn(y.shape, generator=gen) for (o, _), y in
                 zip(spec["outputs"], ys)}
        total = sum((y * gouts[f"gout.{o}"]).sum() for (o, _), y in zip(spec["outputs"], ys))
        total.backward()
        tin = {f"in.{k}": v.detach() for k, v in inputs.items()}
        tin.update(gouts)
        tin.update({f"p.{k}": v.float() for k, v in sd.items() if v.dtype == torch.float32})
        pin, pout = T.tmp(f"{abs(hash(name))}.in"), T.tmp(f"{abs(hash(name))}.out")
        T.st_write(pin, {k: v.numpy() for k, v in tin.items()})
        s = dict(spec)
        s["train"] = train
        s["input_grad"] = float_inputs
        names = T.run("graph", json.dumps(s), pin, pout).split("\n")
        if names and names[-1] == "":
            names.pop()
        if any(l.startswith("error:") for l in names):
            T.report(case, False, f"easytorch failed: {names}")
            return
        want_names = list(root.state_dict().keys())
        T.report(f"{case} [state_dict names]", names == want_names,
                 f"ours {names} torch {want_names}")
        ours, _ = T.st_read(pout)
        theirs = {f"out.{o}": y for (o, _), y in zip(spec["outputs"], ys)}
        for k, v in xs.items():
            if v.grad is not None:
                theirs[f"ingrad.{k}"] = v.grad
        for k, p in root.named_parameters():
            if p.grad is not None:
                theirs[f"grad.{k}"] = p.grad
        for k, b in root.named_buffers():
            if b.dtype == torch.float32:
                theirs[f"buf.{k}"] = b
        T.compare_all(case, ours, theirs)
    except Exception as ex:  # a harness error is a failure, never a skip
        T.report(case, False, f"{type(ex).__name__}: {ex}")


def error_case(name, spec, inputs, want):
    """Our builder or forward must fail with `want` in the message (and torch
    must fail too when the error is one torch would see at run time)."""
    case = f"graph error {name}"
    try:
        tin = {f"in.{k}": v for k, v in inputs.items()}
        pin, pout = T.tmp(f"e{abs(hash(name))}.in"), T.tmp(f"e{abs(hash(name))}.out")
        T.st_write(pin, {k: v.numpy() for k, v in tin.items()})
        out = T.run("graph", json.dumps(spec), pin, pout)
        err = [l for l in out.split("\n") if l.startswith("error:")]
        T.report(case, bool(err) and want in err[0], f"got {err or out!r}, want {want!r}")
    except Exception as ex:
        T.report(case, False, f"{type(ex).__name__}: {ex}")


def lin(name, i, o, bias=True):
    return {"name": name, "type": "Linear", "in_features": i, "out_features": o, "bias": bias}


def cases():
    g = torch.Generator().manual_seed(7)
    x8 = torch.randn(6, 8, generator=g)
    # the residual example
    res = {"inputs": ["x"], "modules": [lin("fc1", 8, 8), {"name": "act", "type": "ReLU"},
                                        lin("out", 8, 1)],
           "nodes": [{"name": "fc1", "module": "fc1", "args": ["x"]},
                     {"name": "act", "module": "act", "args": ["fc1"]},
                     {"name": "sum", "op": "add", "args": ["act", "x"]},
                     {"name": "out", "module": "out", "args": ["sum"]}],
           "outputs": [["out", "out"]]}
    graph_case("residual", res, {"x": x8})
    # a ResNet-style block with BatchNorm, training (batch statistics, running
    # statistics updated) and eval (running statistics)
    block = {"inputs": ["x"],
             "modules": [lin("fc1", 8, 8, False), {"name": "bn1", "type": "BatchNorm1d",
                                                  "num_features": 8},
                         {"name": "relu", "type": "ReLU"}, lin("fc2", 8, 8, False),
                         {"name": "bn2", "type": "BatchNorm1d", "num_features": 8},
                         lin("head", 8, 3)],
             "nodes": [{"name": "a", "module": "fc1", "args": ["x"]},
                       {"name": "b", "module": "bn1", "args": ["a"]},
                       {"name": "c", "module": "relu", "args": ["b"]},
                       {"name": "d", "module": "fc2", "args": ["c"]},
                       {"name": "e", "module": "bn2", "args": ["d"]},
                       {"name": "f", "op": "add", "args": ["e", "x"]},
                       {"name": "h", "module": "relu", "args": ["f"]},
                       {"name": "logits", "module": "head", "args": ["h"]}],
             "outputs": [["logits", "logits"]]}
    graph_case("resnet block train", block, {"x": x8})
    graph_case("resnet block eval", block, {"x": x8}, train=False)
    # two towers, two inputs, three outputs (cosine, dot, a joint head)
    def tower(p):
        return {"name": p + "_mlp", "type": "Sequential",
                "layers": [{"type": "Linear", "in_features": 8, "out_features": 16},
                           {"type": "ReLU"},
                           {"type": "Linear", "in_features": 16, "out_features": 8}]}
    two = {"inputs": ["user", "item"], "index_inputs": ["user", "item"],
           "modules": [{"name": "user_emb", "type": "Embedding", "num_embeddings": 50,
                        "embedding_dim": 8}, tower("user"),
                       {"name": "item_emb", "type": "Embedding", "num_embeddings": 40,
                        "embedding_dim": 8}, tower("item"), lin("head", 16, 1)],
           "nodes": [{"name": "ue", "module": "user_emb", "args": ["user"]},
                     {"name": "u", "module": "user_mlp", "args": ["ue"]},
                     {"name": "ie", "module": "item_emb", "args": ["item"]},
                     {"name": "i", "module": "item_mlp", "args": ["ie"]},
                     {"name": "cos", "op": "cosine_similarity", "args": ["u", "i"], "dim": 1},
                     {"name": "ui", "op": "mul", "args": ["u", "i"]},
                     {"name": "dot", "op": "sum", "args": ["ui"], "dim": 1},
                     {"name": "cat", "op": "cat", "args": ["u", "i"], "dim": 1},
                     {"name": "logit", "module": "head", "args": ["cat"]}],
           "outputs": [["score", "cos"], ["dot", "dot"], ["logit", "logit"]]}
    users = torch.randint(0, 50, (12,), generator=g).float()
    items = torch.randint(0, 40, (12,), generator=g).float()
    graph_case("two-tower", two, {"user": users, "item": items}, float_inputs=False)
    # weight tying: one module called twice, and the output projection is the
    # embedding's weight (get_attr + F.linear)
    tied = {"inputs": ["tok"], "index_inputs": ["tok"],
            "modules": [{"name": "emb", "type": "Embedding", "num_embeddings": 20,
                         "embedding_dim": 6}, lin("enc", 6, 6), {"name": "act", "type": "Tanh"}],
            "nodes": [{"name": "e", "module": "emb", "args": ["tok"]},
                      {"name": "h1", "module": "enc", "args": ["e"]},
                      {"name": "a1", "module": "act", "args": ["h1"]},
                      {"name": "h2", "module": "enc", "args": ["a1"]},
                      {"name": "a2", "module": "act", "args": ["h2"]},
                      {"name": "w", "attr": "emb.weight"},
                      {"name": "logits", "op": "linear", "args": ["a2", "w"]}],
            "outputs": [["logits", "logits"], ["hidden", "a2"]]}
    graph_case("weight-tied", tied, {"tok": torch.randint(0, 20, (9,), generator=g).float()},
               float_inputs=False)
    # the other ops, a ModuleList target, a nested Sequential, a LayerNorm
    x = torch.randn(4, 6, generator=g)
    y = torch.randn(4, 3, 2, generator=g)
    ops = {"inputs": ["x", "y"],
           "modules": [{"name": "blocks", "type": "ModuleList",
                        "modules": [{"type": "Linear", "in_features": 3, "out_features": 3},
                                    {"type": "Sequential", "layers": [
                                        {"type": "LayerNorm", "normalized_shape": 3},
                                        {"type": "Tanh"}]}]}, lin("proj", 6, 6)],
           "nodes": [{"name": "c", "op": "chunk", "args": ["x"], "chunks": 2, "dim": 1},
                     {"name": "c0", "op": "getitem", "args": ["c"], "index": 0},
                     {"name": "c1", "op": "getitem", "args": ["c"], "index": 1},
                     {"name": "b0", "module": "blocks.0", "args": ["c0"]},
                     {"name": "b1", "module": "blocks.1", "args": ["c1"]},
                     {"name": "d", "op": "sub", "args": ["b0", "b1"]},
                     {"name": "q", "op": "div", "args": ["d", "c1"]},
                     {"name": "st", "op": "stack", "args": ["b0", "q"], "dim": 2},
                     {"name": "fl", "op": "flatten", "args": ["st"], "start_dim": 1},
                     {"name": "p", "module": "proj", "args": ["fl"]},
                     {"name": "r", "op": "reshape", "args": ["p"], "shape": [4, 3, 2]},
                     {"name": "t", "op": "transpose", "args": ["y"], "dim0": 1, "dim1": 2},
                     {"name": "mm", "op": "matmul", "args": ["r", "t"]},
                     {"name": "pm", "op": "permute", "args": ["mm"], "dims": [2, 0, 1]},
                     {"name": "sm", "op": "softmax", "args": ["pm"], "dim": -1},
                     {"name": "ls", "op": "log_softmax", "args": ["pm"], "dim": 0},
                     {"name": "m", "op": "mean", "args": ["ls"], "dims": [0, 2], "keepdim": True},
                     {"name": "sp", "op": "split", "args": ["sm"], "split_size": 2, "dim": 2},
                     {"name": "sp1", "op": "getitem", "args": ["sp"], "index": -1},
                     {"name": "sel", "op": "getitem", "args": ["sp1"], "dim": 1, "index": 2},
                     {"name": "all", "op": "sum", "args": ["sel"]}],
           "outputs": [["m", "m"], ["sel", "sel"], ["all", "all"], ["x_again", "x"]]}
    graph_case("ops, ModuleList, nested Sequential", ops, {"x": x, "y": y})

    # MultiheadAttention is a tuple (attn_output, attn_weights), as torch's forward with
    # need_weights=True; cross-attention with key = value
    att = {"inputs": ["q", "kv"],
           "modules": [{"name": "att", "type": "MultiheadAttention", "embed_dim": 8,
                        "num_heads": 2, "batch_first": True}, lin("head", 8, 2)],
           "nodes": [{"name": "a", "module": "att", "args": ["q", "kv", "kv"]},
                     {"name": "a0", "op": "getitem", "args": ["a"], "index": 0},
                     {"name": "w", "op": "getitem", "args": ["a"], "index": 1},
                     {"name": "self_a", "module": "att", "args": ["q", "q", "q"]},
                     {"name": "s0", "op": "getitem", "args": ["self_a"], "index": 0},
                     {"name": "sum", "op": "add", "args": ["a0", "s0"]},
                     {"name": "out", "module": "head", "args": ["sum"]}],
           "outputs": [["out", "out"], ["weights", "w"]]}
    graph_case("MultiheadAttention tuple", att, {"q": torch.randn(3, 4, 8, generator=g),
                                                  "kv": torch.randn(3, 6, 8, generator=g)})

    # errors name the node (and the field)
    base = {"inputs": ["x"], "modules": [lin("fc", 8, 4)]}
    error_case("unknown arg", dict(base, nodes=[{"name": "a", "module": "fc", "args": ["z"]}],
                                   outputs=[["a", "a"]]), {"x": x8},
               "node 'a': args[0] 'z' is not an input or an earlier node")
    error_case("unknown target", dict(base, nodes=[{"name": "a", "module": "fc9", "args": ["x"]}],
                                      outputs=[["a", "a"]]), {"x": x8}, "target 'fc9'")
    error_case("tuple as tensor", dict(base, nodes=[
        {"name": "c", "op": "chunk", "args": ["x"], "chunks": 2},
        {"name": "a", "module": "fc", "args": ["c"]}], outputs=[["a", "a"]]), {"x": x8},
        "node 'a': args[0] 'c' is a tuple")
    error_case("duplicate name", dict(base, nodes=[{"name": "x", "module": "fc", "args": ["x"]}],
                                      outputs=[["a", "x"]]), {"x": x8}, "the name 'x' is taken")
    error_case("wrong arity", dict(base, nodes=[{"name": "a", "op": "add", "args": ["x"]}],
                                   outputs=[["a", "a"]]), {"x": x8},
               "node 'a' (add): takes 2 arguments, 1 given")
    error_case("shape mismatch at run time", dict(base, nodes=[
        {"name": "a", "module": "fc", "args": ["x"]},
        {"name": "s", "op": "add", "args": ["a", "x"]}], outputs=[["s", "s"]]), {"x": x8},
        "node 's' (add):")
    error_case("getitem out of range", dict(base, nodes=[
        {"name": "c", "op": "chunk", "args": ["x"], "chunks": 2, "dim": 1},
        {"name": "a", "op": "getitem", "args": ["c"], "index": 2}], outputs=[["a", "a"]]),
        {"x": x8}, "node 'a' (getitem): index 2 is out of range of a tuple of 2 pieces")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    T.RUNNER = os.path.abspath(sys.argv[1])
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="et_graph_") as d:
        T.TMP = d
        cases()
    return T.summary()


if __name__ == "__main__":
    sys.exit(main())
