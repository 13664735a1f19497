#!/usr/bin/python3
"""Where a train call runs (issue 16): a small call on the I/O thread, every other one on a
worker -- counted by /metrics' easytorch_requests_run_total{where=...} -- and the training is
the same either way: as PyTorch's, and bit for bit as a daemon's that sends every call to a
worker (--inline-train-macs 0). Usage: test_inline_train.py PATH/TO/easytorchd"""

import gzip
import json
import os
import re
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import Daemon, DaemonTestCase  # noqa: E402
import torch  # noqa: E402
from torchref import Reference, build_net, random_params, close_report, dict_close_report  # noqa


D = None  # the module's daemon, made and started by setUpModule
setUpModule, tearDownModule = dm.module_fixture(globals())

MLP = [
    {"type": "Linear", "in_features": 4, "out_features": 16},
    {"type": "ReLU"},
    {"type": "Linear", "in_features": 16, "out_features": 3},
]
ADAM = {"type": "Adam", "lr": 0.01}
P0 = random_params(build_net(MLP), 5)


def spec_for(name, layers=MLP, opt=ADAM):
    return {"name": name, "layers": layers, "loss": "MSELoss", "optimizer": opt, "seed": 3}


def data(seed, n, cols=4):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, cols, generator=g).tolist(), torch.randn(n, 3, generator=g).tolist()


def runs(d):
    """(inline, worker) handler counts; the GET /metrics that reads them counts itself."""
    text = d.request("GET", "/metrics").body.decode()
    got = dict(re.findall(r'easytorch_requests_run_total\{where="(\w+)"\} (\d+)', text))
    return int(got["inline"]), int(got["worker"])


def where(d, fn):
    """Which of the two ran the requests fn sends: (inline, worker) counts between two reads
    of /metrics (the second read's own count taken off)."""
    i0, w0 = runs(d)
    out = fn()
    i1, w1 = runs(d)
    return (i1 - i0 - 1, w1 - w0), out


def train_body(x, y, **kw):
    return json.dumps(dict({"inputs": x, "targets": y}, **kw)).encode()


class InlineTrainTest(DaemonTestCase):
    def new_model(self, name, d=None, layers=MLP, params=P0):
        d = d or D
        d.create(spec_for(name, layers))
        if params is not None:
            d.set_params(name, params)

    def train(self, name, body, d=None, headers=None, content_type="application/json"):
        r = (d or D).request("POST", "/v1/models/%s/train" % name, body=body,
                             content_type=content_type, headers=headers)
        self.assertEqual(r.status, 200, r.body[:300])
        return r.json()

    def test_small_call_runs_inline_and_trains_as_torch(self):
        self.new_model("inl_small")
        ref = Reference(spec_for("inl_small"))
        ref.set_params(P0)
        for epochs in (1, 3, 16):  # 16 steps: the most a call on the I/O thread takes
            x, y = data(epochs, 8)
            body = train_body(x, y, epochs=epochs)
            (inl, wrk), r = where(D, lambda: self.train("inl_small", body))
            self.assertEqual((inl, wrk), (1, 0), "epochs %d" % epochs)
            want = []
            for _ in range(epochs):
                want.append(ref.push(x, y))
                ref.step()
            self.assertIsNone(close_report(r["losses"], want), "epochs %d" % epochs)
        self.assertIsNone(dict_close_report(D.params("inl_small"), ref.params_json()))

    def test_other_calls_run_on_a_worker(self):
        self.new_model("inl_bounds")
        x, y = data(7, 8)
        steps = 0
        cases = [
            ("17 steps", train_body(x, y, epochs=17), {}, "application/json", 17),
            ("minibatches of 1 row", train_body(x, y, batch_size=1), {}, "application/json", 8),
            # a key spelt with an escape is not read from the bytes: a worker's parser reads it
            ("escaped key", train_body(x, y).replace(b'"targets"', b'"\\u0074argets"')[:-1] +
             b', "\\u0065pochs": 2}', {}, "application/json", 2),
            # a small gzip body may inflate to a big one
            ("gzip body", gzip.compress(train_body(x, y)), {"Content-Encoding": "gzip"},
             "application/json", 1),
            ("form content type", train_body(x, y), {}, "application/x-www-form-urlencoded", 1),
        ]
        for what, body, headers, ct, n in cases:
            (inl, wrk), r = where(D, lambda: self.train("inl_bounds", body, headers=headers,
                                                        content_type=ct))
            self.assertEqual((inl, wrk), (0, 1), what)
            self.assertEqual(len(r["losses"]), n, what)
            steps += n
            self.assertEqual(r["step"], steps, what)

    def test_big_model_runs_on_a_worker(self):
        big = [{"type": "Linear", "in_features": 256, "out_features": 1024}, {"type": "ReLU"},
               {"type": "Linear", "in_features": 1024, "out_features": 3}]
        self.new_model("inl_big", layers=big, params=None)
        x, y = data(9, 2, cols=256)
        (inl, wrk), r = where(D, lambda: self.train("inl_big", train_body(x, y)))
        self.assertEqual((inl, wrk), (0, 1))
        self.assertEqual(r["step"], 1)

    def test_same_bits_as_on_a_worker(self):
        other = Daemon(extra_args=["--inline-train-macs", "0"])
        other.start()
        try:
            self.new_model("inl_bits")
            self.new_model("inl_bits", d=other)
            calls = [{}, {"epochs": 4}, {"epochs": 2, "batch_size": 1000, "shuffle": True}]
            for k, kw in enumerate(calls):
                x, y = data(20 + k, 6)
                body = train_body(x, y, **kw)
                (inl, _), here = where(D, lambda: self.train("inl_bits", body))
                (inl0, wrk0), there = where(other, lambda: self.train("inl_bits", body, d=other))
                self.assertEqual(inl, 1, kw)
                self.assertEqual((inl0, wrk0), (0, 1), kw)
                self.assertEqual(here, there, kw)  # the answers' float text: the same bits
            self.assertEqual(D.params("inl_bits"), other.params("inl_bits"))
        finally:
            other.cleanup()

    def test_sync_always_runs_on_a_worker(self):
        d = Daemon(sync="always")
        d.start()
        try:
            self.new_model("inl_sync", d=d)
            x, y = data(30, 8)
            (inl, wrk), r = where(d, lambda: self.train("inl_sync", train_body(x, y), d=d))
            self.assertEqual((inl, wrk), (0, 1))
            self.assertEqual(r["step"], 1)
        finally:
            d.cleanup()


if __name__ == "__main__":
    dm.run_tests()
