#!/usr/bin/python3
"""Dynamic batching (a spec's "batching"): concurrent predict / OIP infer calls on one model
are concatenated row-wise into one forward pass and split back; every caller gets exactly the
bits it gets alone, and PyTorch's numbers. Usage: test_batching.py PATH/TO/easytorchd"""

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


if __name__ == "__main__":
    dm.run_tests()
