"""test_mpi_syncbn.py - SyncBatchNorm under easytorchd --mpi ("sync_batchnorm": true,
docs/distributed.md): every BatchNorm layer's training statistics over every rank's rows.

* 2 and 4 ranks (--oversubscribe) trained with the same requests as one plain daemon on the
  same full batches end with the same parameters AND running_mean / running_var /
  num_batches_tracked (rtol 1e-5, atol 1e-6): an MLP with BatchNorm1d + MSE + SGD momentum,
  a CNN with BatchNorm2d + cross-entropy with class weights and ignore_index (a minibatch
  where a rank's share is all ignored) + Adam, a graph with a loss list; minibatches of 2
  rows on 4 ranks leave two ranks without rows. The replicas agree bit for bit.
* The same models without the option (per-shard statistics, DDP's default) do NOT equal
  the plain daemon: the option is what makes the difference.
* That the plain daemon's BatchNorm numbers are torch's over the full batch is checked by
  tests/server/test_layers.py (TestTrainingAgainstTorch: BatchNorm1d, losses, parameters
  and buffers vs torch) and tests/server/test_graph.py (a ResNet-style block with
  BatchNorm); tests/core/check_batch_norm_sync.c checks the core op's shares against the
  whole batch.
* "sync_batchnorm" that is not a boolean is a 400 naming it.
"""
import json
import os
import re
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon  # noqa: E402
import mpicluster  # noqa: E402
from test_mpi import MPI_BUILD, RTOL, ATOL, rows, classes, part, settle, close  # noqa: E402

N = 30
MODELS = {
    "bnmlp": {"layers": [{"type": "Linear", "in_features": 6, "out_features": 16},
                         {"type": "BatchNorm1d", "num_features": 16},
                         {"type": "ReLU"},
                         {"type": "Linear", "in_features": 16, "out_features": 3}],
              "loss": "MSELoss",
              "optimizer": {"type": "SGD", "lr": 0.05, "momentum": 0.9}, "seed": 3},
    # no bias before the BatchNorm: its gradient is zero up to rounding (the mean is taken
    # out), and Adam, which divides by the gradient's size, would step on that noise
    "bncnn": {"layers": [{"type": "Conv2d", "in_channels": 1, "out_channels": 4,
                          "kernel_size": 3, "padding": 1, "bias": False},
                         {"type": "BatchNorm2d", "num_features": 4, "momentum": None},
                         {"type": "ReLU"},
                         {"type": "MaxPool2d", "kernel_size": 2},
                         {"type": "Flatten"},
                         {"type": "Linear", "in_features": 64, "out_features": 4}],
              "loss": {"type": "CrossEntropyLoss", "ignore_index": 2,
                       "weight": [1.0, 2.0, 0.5, 1.5]},
              "optimizer": {"type": "Adam", "lr": 0.01}, "seed": 6},
    "bngraph": {"inputs": ["a"],
                "nodes": [{"name": "h", "module": {"type": "Linear", "in_features": 6,
                                                   "out_features": 8}, "args": ["a"]},
                          {"name": "bn", "module": {"type": "BatchNorm1d", "num_features": 8},
                           "args": ["h"]},
                          {"name": "act", "module": {"type": "Tanh"}, "args": ["bn"]},
                          {"name": "logits", "module": {"type": "Linear", "in_features": 8,
                                                        "out_features": 3}, "args": ["act"]},
                          {"name": "score", "module": {"type": "Linear", "in_features": 8,
                                                       "out_features": 1}, "args": ["act"]},
                          {"name": "sc", "op": "reshape", "args": ["score"], "shape": [-1]}],
                "outputs": ["logits", "sc"],
                "loss": [{"type": "CrossEntropyLoss", "output": "logits", "target": "label",
                          "ignore_index": 1},
                         {"type": "MSELoss", "output": "sc", "target": "value", "weight": 0.5}],
                "optimizer": {"type": "SGD", "lr": 0.05}, "seed": 7},
}


def data(name):
    if name == "bncnn":
        x = [[[r[i * 8:(i + 1) * 8] for i in range(8)]] for r in rows(N, 64, 31)]
        y = classes(N, 4, 32)
        y[0:5] = [2] * 5  # batches of rows 0-10: whole shares of ignored targets
        return x, y
    if name == "bngraph":
        label = classes(N, 3, 33)
        label[0:5] = [1] * 5
        return {"a": rows(N, 6, 34)}, {"label": label, "value": [r[0] for r in rows(N, 1, 35)]}
    return rows(N, 6, 36), rows(N, 3, 37)


def session(d, name, kind=None):
    """train (minibatches of 7: the last of 2 rows), then batches + step; kind: the
    MODELS entry (name's own by default).  4 epochs: a BatchNorm over 2 rows amplifies
    rounding (its 1 / std of two values), by ~10x per epoch here."""
    x, y = data(kind or name)
    d.ok("POST", "/v1/models/%s/train" % name,
         {"inputs": x, "targets": y, "epochs": 4, "batch_size": 7, "shuffle": True})
    d.push(name, part(x, 0, 11), part(y, 0, 11))
    d.push(name, part(x, 11, N), part(y, 11, N))
    return d.step(name)


def session10(d, name, kind):
    """minibatches of 10: every rank's share has 2 rows or more (per-shard statistics can
    run)."""
    x, y = data(kind)
    d.ok("POST", "/v1/models/%s/train" % name,
         {"inputs": x, "targets": y, "epochs": 2, "batch_size": 10, "shuffle": True})


def spec(name, sync):
    return dict(MODELS[name], name=name, sync_batchnorm=sync)


def max_rel(a, b):
    """The largest |a - b| / (atol / rtol + |b|) over nested lists / dicts."""
    if isinstance(a, dict):
        return max(max_rel(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return max([max_rel(u, v) for u, v in zip(a, b)] or [0.0])
    return abs(a - b) / (ATOL / RTOL + abs(b))


@unittest.skipUnless(MPI_BUILD, "this build has no MPI (meson -Dmpi=disabled)")
class SyncBatchNormTest(unittest.TestCase):
    ref = {}

    @classmethod
    def setUpClass(cls):
        if not shutil.which("mpirun"):
            raise AssertionError("mpirun not found (apt-get install openmpi-bin)")
        if cls.ref:
            return
        # the reference: one plain daemon on the full batches (the option changes nothing
        # there: one process holds every row)
        d = daemon.Daemon()
        d.start()
        try:
            for name in MODELS:
                d.create(spec(name, True))
                last = session(d, name)
                plain = name + "-plain"
                d.create(dict(spec(name, False), name=plain))
                session(d, plain, name)
                ten = name + "-10"
                d.create(dict(spec(name, False), name=ten))
                session10(d, ten, name)
                SyncBatchNormTest.ref[name] = (d.params(name), last, d.params(plain),
                                               d.params(ten))
        finally:
            d.stop()
            d.cleanup()

    def check_ranks(self, n):
        c = mpicluster.Cluster(n).start()
        try:
            for i, name in enumerate(MODELS):
                ref_params, ref_last, _, ref10 = self.ref[name]
                c.rank(i % n).create(spec(name, True))
                last = session(c.rank((i + 1) % n), name)
                settle(c, name, ref_last["step"])
                bodies = [c.rank(r).get("/v1/models/%s/parameters" % name).body
                          for r in range(n)]
                for r in range(1, n):
                    self.assertEqual(bodies[r], bodies[0], "%s: rank %d differs" % (name, r))
                got = json.loads(bodies[0])["parameters"]
                self.assertTrue(any("running_var" in k for k in got), sorted(got))
                close(self, got, ref_params, name)
                close(self, last["loss"], ref_last["loss"], name + ".loss")
                # per-shard statistics (the default), as DDP without SyncBatchNorm: a
                # BatchNorm1d share of one row cannot be normalised (torch: "Expected more
                # than 1 value per channel when training"; rank 0's share of 7 rows on 4
                # ranks, of the last 2 rows on 2), and nothing changes
                if name != "bncnn":
                    other = name + "-pershard"
                    c.rank(1 % n).create(dict(spec(name, False), name=other))
                    x, y = data(name)
                    r = c.rank(0).post("/v1/models/%s/train" % other,
                                       {"inputs": x, "targets": y, "epochs": 4,
                                        "batch_size": 7, "shuffle": True})
                    self.assertEqual(r.status, 400, r.body)
                    self.assertIn("more than 1 value per channel", r.error())
                    self.assertEqual(c.rank(0).model(other)["step"], 0)
                # with shares of 2 rows or more it trains, but on other statistics than
                # the whole minibatch's; synchronised, the same model gets them
                for sync in (False, True):
                    m10 = "%s-10-%s" % (name, "sync" if sync else "pershard")
                    c.rank(1 % n).create(dict(spec(name, sync), name=m10))
                    session10(c.rank(0), m10, name)
                    got10 = c.rank(0).params(m10)
                    off = max_rel(got10, ref10)
                    print("%d ranks, %s, minibatches of 10: %s BatchNorm is %.3g (relative) "
                          "from one process" % (n, name, "synchronised" if sync
                                                else "per-shard", off))
                    if sync:
                        close(self, got10, ref10, m10)
                    else:
                        self.assertGreater(off, 1e-3, name)
            text = c.rank(0).get("/metrics").body.decode()
            k = int(re.search(r"^easytorch_cluster_small_allreduce_total (\d+)$", text,
                              re.M).group(1))
            self.assertGreater(k, 0, text[-2000:])
            self.assertIn("easytorch_cluster_checksum_mismatches_total 0", text)
        finally:
            rc = c.stop()
            log = c.log()
            c.cleanup()
        self.assertEqual(rc, 0, log[-3000:])

    def test_two_ranks(self):
        self.check_ranks(2)

    def test_four_ranks(self):
        self.check_ranks(4)

    def test_one_process(self):
        """Without ranks every row is in one process: the option changes no bit."""
        for name, (params, _, plain, _) in self.ref.items():
            self.assertEqual(params, plain, name)

    def test_bad_option(self):
        d = daemon.Daemon()
        d.start()
        try:
            r = d.post("/v1/models", dict(spec("bnmlp", True), sync_batchnorm="yes"))
            self.assertEqual(r.status, 400, r.body)
            self.assertIn("sync_batchnorm", r.error())
            self.assertEqual(d.get("/v1/models/bnmlp").status, 404)
        finally:
            d.stop()
            d.cleanup()


if __name__ == "__main__":
    daemon.run_tests()
