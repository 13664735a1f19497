#!/usr/bin/python3
"""Dynamic batching (a spec's "batching"): concurrent predict / OIP infer calls on one model
are concatenated row-wise into one forward pass and split back; every caller gets exactly the
bits it gets alone, and PyTorch's numbers.  Graph models (several named inputs, int64 indices
and floats, several outputs; also a version's predict) likewise, against their torch twin
(test_graph.Twin); graphs that mix rows are refused naming the node.
Usage: test_batching.py PATH/TO/easytorchd"""

import os
import re
import sys
import threading

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import Daemon, DaemonTestCase, f32  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchref import build_net, random_params, close_report  # noqa: E402
import test_graph as tg  # noqa: E402

D = None
CLIENTS = 64

LAYERS = [
    {"type": "Linear", "in_features": 20, "out_features": 48}, {"type": "ReLU"},
    {"type": "Linear", "in_features": 48, "out_features": 48}, {"type": "Tanh"},
    {"type": "Linear", "in_features": 48, "out_features": 5},
]


def setUpModule():
    global D
    D = Daemon()
    D.start()
    DaemonTestCase.daemon = D


def tearDownModule():
    if D is not None:
        D.cleanup()


def spec(name, batching, layers=LAYERS):
    s = {"name": name, "layers": layers, "loss": "MSELoss",
         "optimizer": {"type": "SGD", "lr": 0.1}, "seed": 3}
    if batching is not None:
        s["batching"] = batching
    return s


def metric(text, name, model):
    m = re.search(r"^%s\{model=\"%s\"\} (\S+)$" % (re.escape(name), re.escape(model)), text, re.M)
    return float(m.group(1)) if m else None


class BatchingTest(DaemonTestCase):
    def setUp(self):
        self.params = random_params(build_net(LAYERS), 11)
        self.net = build_net(LAYERS)
        self.net.load_state_dict({k: torch.tensor(v) for k, v in self.params.items()})
        self.net.eval()

    def make(self, name, batching):
        D.create(spec(name, batching))
        D.set_params(name, self.params)
        self.addCleanup(lambda: D.delete("/v1/models/" + name))

    def inputs(self, seed, rows):
        g = torch.Generator().manual_seed(seed)
        return (torch.randn(rows, 20, generator=g) * 2).tolist()

    def predict(self, name, x):
        return D.ok("POST", "/v1/models/%s/predict" % name, {"inputs": x})["outputs"]

    def infer(self, name, x):
        body = {"id": "r", "inputs": [{"name": "input", "datatype": "FP32",
                                       "shape": [len(x), 20], "data": x}]}
        r = D.ok("POST", "/v2/models/%s/infer" % name, body)
        out = r["outputs"][0]
        self.assertEqual(out["shape"], [len(x), 5])
        self.assertEqual(r["id"], "r")
        return np.array(out["data"], dtype=np.float32).reshape(len(x), 5).tolist()

    def torch_out(self, x):
        with torch.no_grad():
            return self.net(torch.tensor(x)).tolist()

    def concurrent(self, name, rounds):
        """CLIENTS threads, each `rounds` requests of 1-3 rows (every fourth an OIP infer),
        started together; returns [(inputs, outputs)] and the errors."""
        results, errors, lock = [], [], threading.Lock()
        barrier = threading.Barrier(CLIENTS)

        def client(i):
            try:
                barrier.wait(timeout=60)
                for k in range(rounds):
                    x = self.inputs(1000 * i + k, 1 + (i + k) % 3)
                    y = self.infer(name, x) if (i + k) % 4 == 0 else self.predict(name, x)
                    with lock:
                        results.append((x, y))
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(repr(e))

        ts = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return results, errors

    def test_concurrent_rows_equal_alone_and_torch(self):
        self.make("b", {"max_batch_size": 64, "max_delay_us": 20000})
        results, errors = self.concurrent("b", 4)
        self.assertEqual(errors, [])
        self.assertEqual(len(results), CLIENTS * 4)
        # batches did form: more rows than forward passes
        text = D.get("/metrics").body.decode()
        batches = metric(text, "easytorch_batch_size_count", "b")
        rows = metric(text, "easytorch_batch_size_sum", "b")
        print("%d requests, %d rows in %d forward passes (%.1f rows each)"
              % (len(results), rows, batches, rows / batches))
        self.assertEqual(metric(text, "easytorch_batch_requests_total", "b"), len(results))
        self.assertGreater(rows / batches, 2.0, "no batch formed: nothing was tested")
        self.assertEqual(metric(text, "easytorch_batch_queue_depth", "b"), 0)
        for x, y in results:
            # alone (a batch of one request), bit for bit
            self.assertEqual(f32(y), f32(self.predict("b", x)), "batched rows differ from alone")
            rep = close_report(y, self.torch_out(x))
            self.assertIsNone(rep, rep)

    def test_requests_over_the_maximum_and_row_invariance(self):
        self.make("m", {"max_batch_size": 8, "max_delay_us": 1000})
        x = self.inputs(5, 30)  # more rows than a batch: runs alone
        y = self.predict("m", x)
        self.assertIsNone(close_report(y, self.torch_out(x)))
        for i in (0, 7, 8, 29):  # each row alone gives its bits in the 30-row call
            self.assertEqual(f32([y[i]]), f32(self.predict("m", [x[i]])), "row %d" % i)
        self.assertEqual(f32(self.infer("m", x)), f32(y))

    def test_bad_requests_are_refused_alone(self):
        self.make("e", {"max_batch_size": 16, "max_delay_us": 2000})
        errors, lock = [], threading.Lock()

        def bad():
            r = D.post("/v1/models/e/predict", {"inputs": [[1.0] * 19]})
            with lock:
                errors.append((r.status, r.json()["error"]))

        def good(i):
            x = self.inputs(i, 2)
            y = self.predict("e", x)
            with lock:
                errors.append((200, close_report(y, self.torch_out(x))))

        ts = [threading.Thread(target=bad) for _ in range(4)] + \
             [threading.Thread(target=good, args=(i,)) for i in range(12)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(sorted(s for s, _ in errors), [200] * 12 + [400] * 4)
        for s, msg in errors:
            if s == 400:
                self.assertIn("inputs", msg)
            else:
                self.assertIsNone(msg)

    def test_training_between_batches(self):
        """A train call on a batching model waits for the running batch, and later
        predictions see the new parameters."""
        self.make("t", {"max_batch_size": 32, "max_delay_us": 2000})
        x = self.inputs(9, 4)
        before = self.predict("t", x)
        D.ok("POST", "/v1/models/t/train", {"inputs": x, "targets": [[0.0] * 5] * 4, "epochs": 3})
        after = self.predict("t", x)
        self.assertNotEqual(f32(before), f32(after))
        results, errors = self.concurrent("t", 1)
        self.assertEqual(errors, [])
        p = D.params("t")
        self.net.load_state_dict({k: torch.tensor(v) for k, v in p.items()})
        for xs, ys in results:
            self.assertIsNone(close_report(ys, self.torch_out(xs)))

    def test_packed_weights_never_stale(self):
        """A batching model keeps its Linear weights packed for the many-row kernel between
        batches (et_pack_cache, dropped when the model's lock was held exclusive): after each
        way the daemon writes parameters (train, the small inline train, step, PUT parameters)
        a 40-row predict -- the cached panels -- still gives every row the bits it gets alone
        (one row: the few-row kernel, which reads the weights in place) and torch's numbers."""
        self.make("pc", {"max_batch_size": 64, "max_delay_us": 1000})
        x = self.inputs(21, 40)

        def check(what, prev):
            y = self.predict("pc", x)
            for i in (0, 17, 39):
                self.assertEqual(f32([y[i]]), f32(self.predict("pc", [x[i]])),
                                 "%s: row %d differs in 40 rows and alone" % (what, i))
            self.net.load_state_dict({k: torch.tensor(v) for k, v in D.params("pc").items()})
            rep = close_report(y, self.torch_out(x))
            self.assertIsNone(rep, "%s: %s" % (what, rep))
            if prev is not None:
                self.assertNotEqual(f32(y), prev, "%s changed nothing: nothing was tested" % what)
            return f32(y)

        y = check("first", None)
        self.assertEqual(check("again", None), y)
        zeros = [[0.0] * 5] * 40
        D.ok("POST", "/v1/models/pc/train", {"inputs": x, "targets": zeros, "epochs": 2})
        y = check("train", y)
        D.ok("POST", "/v1/models/pc/train", {"inputs": x[:2], "targets": zeros[:2]})
        y = check("one small train", y)
        D.push("pc", x, zeros)
        D.step("pc")
        y = check("step", y)
        D.set_params("pc", random_params(build_net(LAYERS), 12))
        check("PUT parameters", y)

    def test_spec(self):
        r = D.post("/v1/models", spec("bad", {"max_batch_size": 0}))
        self.assertEqual(r.status, 400)
        self.assertIn("batching", r.json()["error"])
        r = D.post("/v1/models", spec("bad", {"max_batch_size": 4},
                                      layers=[{"type": "Linear", "in_features": 3,
                                               "out_features": 2},
                                              {"type": "BatchNorm1d", "num_features": 2}]))
        self.assertEqual(r.status, 400)
        self.assertIn("cannot be batched", r.json()["error"])


# --------------------------------------------------------------------------- graph models
def lin(i, o):
    return {"type": "Linear", "in_features": i, "out_features": o}


# three inputs (two of indices), three outputs; every op keeps the rows apart
GRAPH = {"inputs": ["user", "item", "x"],
         "modules": {"user_emb": {"type": "Embedding", "num_embeddings": 40, "embedding_dim": 8},
                     "item_emb": {"type": "Embedding", "num_embeddings": 30, "embedding_dim": 8}},
         "nodes": [
             {"name": "ue", "module": "user_emb", "args": ["user"]},
             {"name": "ie", "module": "item_emb", "args": ["item"]},
             {"name": "feat", "module": lin(6, 8), "args": ["x"]},
             {"name": "fa", "module": {"type": "Tanh"}, "args": ["feat"]},
             {"name": "mix", "op": "mul", "args": ["ue", "fa"]},
             {"name": "h", "op": "cat", "args": ["mix", "ie"], "dim": 1},
             {"name": "tower", "module": {"type": "Sequential", "layers": [
                 lin(16, 16), {"type": "ReLU"}, lin(16, 3)]}, "args": ["h"]},
             {"name": "probs", "op": "softmax", "args": ["tower"], "dim": -1},
             {"name": "score", "op": "cosine_similarity", "args": ["ue", "ie"], "dim": 1}],
         "outputs": ["tower", "probs", "score"],
         "loss": [{"type": "CrossEntropyLoss", "output": "tower", "target": "label"},
                  {"type": "MSELoss", "output": "score", "target": "rating"}]}

# [batch] ids beside [batch, seq] tokens: requests of other seq lengths never mix
SEQ = {"inputs": ["user", "tokens"],
       "modules": {"user_emb": {"type": "Embedding", "num_embeddings": 40, "embedding_dim": 8},
                   "tok_emb": {"type": "Embedding", "num_embeddings": 50, "embedding_dim": 8}},
       "nodes": [
           {"name": "ue", "module": "user_emb", "args": ["user"]},
           {"name": "te", "module": "tok_emb", "args": ["tokens"]},
           {"name": "tm", "op": "mean", "args": ["te"], "dim": 1},
           {"name": "h", "op": "add", "args": ["ue", "tm"]},
           {"name": "out", "module": lin(8, 2), "args": ["h"]}],
       "outputs": ["out"], "loss": "MSELoss"}


class GraphBatchingTest(DaemonTestCase):
    def make(self, name, graph, batching):
        s = dict(graph, name=name, optimizer={"type": "SGD", "lr": 0.1}, seed=4)
        if batching is not None:
            s["batching"] = batching
        D.create(s)
        self.addCleanup(lambda: D.delete("/v1/models/" + name))
        net = tg.Twin(graph)
        params = random_params(net, 17)
        for k in params:   # the embeddings' tables as torch draws them, not scaled noise
            if k.endswith("_emb.weight"):
                params[k] = (np.array(params[k]) * 2).tolist()
        D.set_params(name, params)
        tg.load_state(net, D.params(name))
        net.eval()
        return net

    def inputs(self, seed, rows):
        g = torch.Generator().manual_seed(seed)
        return {"user": torch.randint(0, 40, (rows,), generator=g).tolist(),
                "item": torch.randint(0, 30, (rows,), generator=g).tolist(),
                "x": (torch.randn(rows, 6, generator=g) * 2).tolist()}

    def torch_out(self, net, x):
        with torch.no_grad():
            ys = net(*[torch.tensor(x[k]) for k in net.spec["inputs"]])
        ys = ys if isinstance(ys, tuple) else (ys,)
        return dict(zip(net.spec["outputs"], [y.tolist() for y in ys]))

    def predict(self, path, x):
        return D.ok("POST", path, {"inputs": x})["outputs"]

    def infer(self, name, x):
        n = len(x["user"])
        body = {"inputs": [{"name": "user", "datatype": "INT64", "shape": [n], "data": x["user"]},
                           {"name": "item", "datatype": "INT64", "shape": [n], "data": x["item"]},
                           {"name": "x", "datatype": "FP32", "shape": [n, 6],
                            "data": x["x"]}]}
        r = D.ok("POST", "/v2/models/%s/infer" % name, body)
        out = {}
        for o in r["outputs"]:
            self.assertEqual(o["shape"][0], n)
            out[o["name"]] = np.array(o["data"], dtype=np.float32).reshape(o["shape"]).tolist()
        return out

    def concurrent(self, call, rounds, clients=CLIENTS):
        results, errors, lock = [], [], threading.Lock()
        barrier = threading.Barrier(clients)

        def client(i):
            try:
                barrier.wait(timeout=60)
                for k in range(rounds):
                    x, y, how = call(i, k)
                    with lock:
                        results.append((x, y, how))
            except Exception as e:  # noqa: BLE001 - reported below
                with lock:
                    errors.append(repr(e))

        ts = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        return results, errors

    def test_concurrent_graph_rows_equal_alone_and_torch(self):
        net = self.make("g", GRAPH, {"max_batch_size": 64, "max_delay_us": 20000})
        D.ok("POST", "/v1/models/g/versions", {}, expect=(201,))
        paths = {"predict": "/v1/models/g/predict", "version": "/v1/models/g/versions/1/predict"}

        def call(i, k):
            x = self.inputs(1000 * i + k, 1 + (i + k) % 3)
            how = ["predict", "infer", "predict", "version"][(i + k) % 4]
            y = self.infer("g", x) if how == "infer" else self.predict(paths[how], x)
            return x, y, how
        results, errors = self.concurrent(call, 4)
        self.assertEqual(errors, [])
        self.assertEqual(len(results), CLIENTS * 4)
        text = D.get("/metrics").body.decode()
        batches = metric(text, "easytorch_batch_size_count", "g")
        rows = metric(text, "easytorch_batch_size_sum", "g")
        live = sum(1 for _, _, how in results if how != "version")
        print("graph: %d requests on the live model, %d rows in %d forward passes (%.1f each)"
              % (live, rows, batches, rows / batches))
        self.assertEqual(metric(text, "easytorch_batch_requests_total", "g"), live)
        self.assertGreater(rows / batches, 2.0, "no batch formed: nothing was tested")
        self.assertEqual(metric(text, "easytorch_batch_queue_depth", "g"), 0)
        for x, y, how in results:
            self.assertEqual(sorted(y), ["probs", "score", "tower"], how)
            alone = self.predict(paths["predict"], x)
            self.assertEqual(f32(y), f32(alone), "%s: batched rows differ from alone" % how)
            want = self.torch_out(net, x)
            for k in want:
                rep = close_report(y[k], want[k])
                self.assertIsNone(rep, "%s %s: %s" % (how, k, rep))

    def test_binary_requests_batch_too(self):
        import safetensors_io as st
        net = self.make("gb", GRAPH, {"max_batch_size": 64, "max_delay_us": 20000})
        octet = {"Content-Type": "application/octet-stream", "Accept": "application/octet-stream"}

        def call(i, k):
            x = self.inputs(77 * i + k, 1 + i % 2)
            t = {"inputs.user": np.int64(x["user"]), "inputs.item": np.int64(x["item"]),
                 "inputs.x": np.float32(x["x"])}
            r = D.post("/v1/models/gb/predict", body=st.write(t), headers=octet)
            if r.status != 200:
                raise AssertionError(repr(r))
            return x, {k: v.tolist() for k, v in st.read(r.body)[0].items()}, "binary"
        results, errors = self.concurrent(call, 2, clients=32)
        self.assertEqual(errors, [])
        for x, y, _ in results:
            self.assertEqual(f32(y), f32(self.predict("/v1/models/gb/predict", x)))
            want = self.torch_out(net, x)
            for k in want:
                self.assertIsNone(close_report(y[k], want[k]), k)

    def test_trailing_shapes_never_mix(self):
        net = self.make("gs", SEQ, {"max_batch_size": 64, "max_delay_us": 20000})

        def call(i, k):
            g = torch.Generator().manual_seed(31 * i + k)
            n, L = 1 + (i + k) % 2, 2 + (i + k) % 3
            x = {"user": torch.randint(0, 40, (n,), generator=g).tolist(),
                 "tokens": torch.randint(0, 50, (n, L), generator=g).tolist()}
            return x, self.predict("/v1/models/gs/predict", x), "predict"
        results, errors = self.concurrent(call, 3, clients=48)
        self.assertEqual(errors, [])
        text = D.get("/metrics").body.decode()
        self.assertGreater(metric(text, "easytorch_batch_size_sum", "gs") /
                           metric(text, "easytorch_batch_size_count", "gs"), 2.0)
        for x, y, _ in results:
            self.assertEqual(f32(y), f32(self.predict("/v1/models/gs/predict", x)))
            self.assertIsNone(close_report(y, self.torch_out(net, x)["out"]))

    def test_ranks_that_mix_rows_run_alone(self):
        """tokens of rank 3 make "h" broadcast the ids' [batch, 8] rows against dim 1 of the
        tokens' [batch, 3, 8] (rows mixed: such requests run alone, and give torch's numbers);
        rank-1 tokens are refused by torch and by the daemon alike."""
        net = self.make("gr", SEQ, {"max_batch_size": 64, "max_delay_us": 2000})

        def call(i, k):
            g = torch.Generator().manual_seed(7 * i + k)
            x = {"user": torch.randint(0, 40, (2,), generator=g).tolist(),
                 "tokens": (torch.randint(0, 50, (2,), generator=g).tolist() if i % 2 else
                            torch.randint(0, 50, (2, 3, 2), generator=g).tolist())}
            try:
                return x, self.predict("/v1/models/gr/predict", x), "predict"
            except AssertionError as e:
                return x, str(e), "error"
        results, errors = self.concurrent(call, 2, clients=16)
        self.assertEqual(errors, [])
        for x, y, how in results:
            with torch.no_grad():
                try:
                    want = self.torch_out(net, x)["out"]
                except RuntimeError as e:   # torch refuses it too: so must the daemon
                    self.assertEqual(how, "error", "torch: %s" % e)
                    continue
            self.assertEqual(how, "predict", y)
            self.assertEqual(f32(y), f32(self.predict("/v1/models/gr/predict", x)))
            self.assertIsNone(close_report(y, want))

    def test_graphs_that_mix_rows_are_refused(self):
        def spec(nodes, outputs, loss="MSELoss"):
            return {"name": "bad", "inputs": ["x"], "batching": {"max_batch_size": 8},
                    "nodes": [{"name": "fc", "module": lin(4, 3), "args": ["x"]}] + nodes,
                    "outputs": outputs, "loss": loss, "optimizer": {"type": "SGD", "lr": 0.1}}
        cases = [
            ([{"name": "total", "op": "sum", "args": ["fc"]}], "nodes[1] (total, sum): reduces "
             "over every dim, the batch too"),
            ([{"name": "m", "op": "mean", "args": ["fc"], "dim": 0}], "nodes[1] (m, mean): "
             "reduces over dim 0"),
            ([{"name": "sm", "op": "softmax", "args": ["fc"], "dim": 0}], "nodes[1] (sm, softmax)"),
            # rank tracking: [batch] after the sum, so dim -1 is the batch
            ([{"name": "s", "op": "sum", "args": ["fc"], "dim": 1},
              {"name": "sm", "op": "softmax", "args": ["s"], "dim": -1}],
             "nodes[2] (sm, softmax): over dim -1: the batch dimension"),
            ([{"name": "r", "op": "reshape", "args": ["fc"], "shape": [-1]}], "nodes[1] (r, "
             "reshape)"),
            ([{"name": "t", "op": "transpose", "args": ["fc"], "dim0": 0, "dim1": 1}],
             "nodes[1] (t, transpose): moves the batch dimension"),
            ([{"name": "bn", "module": {"type": "BatchNorm1d", "num_features": 3},
               "args": ["fc"]}], "nodes[1] (bn, BatchNorm1d)"),
            ([{"name": "w", "attr": "fc.weight"},
              {"name": "g", "op": "matmul", "args": ["w", "fc"]}], "nodes[2] (g, matmul)"),
        ]
        for nodes, msg in cases:
            outs = [nodes[-1]["name"]]
            r = D.post("/v1/models", spec(nodes, outs))
            self.assertError(r, 400, msg)
            self.assertIn("batching", r.error())
            self.assertEqual(D.get("/v1/models/bad").status, 404)
        # the same graphs without batching are fine (they are served unbatched)
        r = D.post("/v1/models", dict(spec(cases[0][0], ["total"]), batching=None))
        self.assertEqual(r.status, 201, r)
        D.delete("/v1/models/bad")


if __name__ == "__main__":
    dm.run_tests()
