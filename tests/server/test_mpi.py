"""test_mpi.py - easytorchd --mpi (issue 19, docs/distributed.md): N ranks under mpirun.

* 1, 2 and 4 ranks (--oversubscribe) trained with the same requests as one plain
  daemon on the same full batches end with the same parameters (rtol 1e-5, atol
  1e-6: only the order of the sums differs) for MSE + SGD momentum, cross-entropy
  with class weights and ignore_index + Adam, a sum reduction, a CNN, a graph model with
  two inputs and a loss list (weighted CE with ignore_index, MSE, margin ranking),
  batches + step;
  the replicas agree bit for bit with each other after 100 steps, and their
  checksums in /metrics say so.
* Training jobs: the same as one plain daemon's jobs, bit for bit across ranks, a cancel
  through another rank stops every replica after the same step, and so does SIGTERM.
* Definitions sent to different ranks at once end identical everywhere.
* A local failure on one rank (EASYTORCHD_TEST_DP_FAIL): tests/server/test_mpi_failures.py.
* kill -9 of one rank: the others exit within the timeout naming it; a restart
  resumes from rank 0's data dir and continues with the numbers of a daemon that
  was never interrupted.

Skipped only when the build has no MPI (ET_MPI_BUILD=0 from meson); mpirun missing
in an MPI build fails.
"""
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon  # noqa: E402
import mpicluster  # noqa: E402

MPI_BUILD = os.environ.get("ET_MPI_BUILD", "1") == "1"
RTOL, ATOL = 1e-5, 1e-6


def rows(n, d, seed):
    """Deterministic pseudo-random floats (no numpy needed), n x d."""
    x, out = seed * 2654435761 % 2**32, []
    for _ in range(n):
        r = []
        for _ in range(d):
            x = (1103515245 * x + 12345) % 2**31
            r.append(round((x / 2**31) * 2 - 1, 4))
        out.append(r)
    return out


def classes(n, k, seed):
    return [int((v[0] + 1) / 2 * k) % k for v in rows(n, 1, seed)]


N = 30  # rows: not a multiple of 4; batch_size 7 leaves a last minibatch of 2
MODELS = {
    "mse": {"layers": [{"type": "Linear", "in_features": 6, "out_features": 16},
                       {"type": "ReLU"},
                       {"type": "Linear", "in_features": 16, "out_features": 3}],
            "loss": "MSELoss",
            "optimizer": {"type": "SGD", "lr": 0.05, "momentum": 0.9}, "seed": 3},
    "ce": {"layers": [{"type": "Linear", "in_features": 6, "out_features": 16},
                      {"type": "Tanh"},
                      {"type": "Linear", "in_features": 16, "out_features": 5}],
           "loss": {"type": "CrossEntropyLoss", "ignore_index": 2,
                    "weight": [1.0, 2.0, 0.5, 1.0, 3.0]},
           "optimizer": {"type": "Adam", "lr": 0.01}, "seed": 4},
    "sum": {"layers": [{"type": "Linear", "in_features": 6, "out_features": 3}],
            "loss": {"type": "L1Loss", "reduction": "sum"},
            "optimizer": {"type": "SGD", "lr": 0.002}, "seed": 5},
    "cnn": {"layers": [{"type": "Conv2d", "in_channels": 1, "out_channels": 4,
                        "kernel_size": 3, "padding": 1},
                       {"type": "ReLU"},
                       {"type": "MaxPool2d", "kernel_size": 2},
                       {"type": "Flatten"},
                       {"type": "Linear", "in_features": 64, "out_features": 4}],
            "loss": "CrossEntropyLoss",
            "optimizer": {"type": "SGD", "lr": 0.05, "momentum": 0.5}, "seed": 6},
    # a graph: two inputs, four outputs, a loss list whose terms have their own
    # normalisers (class weights + ignore_index; a weighted MSE; a margin ranking)
    "graph": {"inputs": ["a", "b"],
              "nodes": [{"name": "ha", "module": {"type": "Linear", "in_features": 6,
                                                  "out_features": 8}, "args": ["a"]},
                        {"name": "hb", "module": {"type": "Linear", "in_features": 6,
                                                  "out_features": 8}, "args": ["b"]},
                        {"name": "s", "op": "add", "args": ["ha", "hb"]},
                        {"name": "act", "module": {"type": "Tanh"}, "args": ["s"]},
                        {"name": "logits", "module": {"type": "Linear", "in_features": 8,
                                                      "out_features": 4}, "args": ["act"]},
                        {"name": "score", "module": {"type": "Linear", "in_features": 8,
                                                     "out_features": 1}, "args": ["act"]},
                        {"name": "sc", "op": "reshape", "args": ["score"], "shape": [-1]},
                        {"name": "pa", "op": "sum", "args": ["ha"], "dim": 1},
                        {"name": "pb", "op": "sum", "args": ["hb"], "dim": 1}],
              "outputs": ["logits", "sc", "pa", "pb"],
              "loss": [{"type": "CrossEntropyLoss", "output": "logits", "target": "label",
                        "ignore_index": 1, "weight": [1.0, 2.0, 0.5, 1.0]},
                       {"type": "MSELoss", "output": "sc", "target": "value", "weight": 0.5},
                       {"type": "MarginRankingLoss", "output": ["pa", "pb"], "target": "pref",
                        "margin": 0.1, "weight": 0.3}],
              "optimizer": {"type": "Adam", "lr": 0.01}, "seed": 7},
}


def part(v, lo, hi):
    """Rows lo:hi of a list, or of every entry of a named body."""
    return {k: w[lo:hi] for k, w in v.items()} if isinstance(v, dict) else v[lo:hi]


def data(name):
    if name == "graph":
        label = classes(N, 4, 23)
        label[0:4] = [1, 1, 1, 1]  # a whole share of ignored targets on some ranks
        return ({"a": rows(N, 6, 21), "b": rows(N, 6, 22)},
                {"label": label, "value": [r[0] for r in rows(N, 1, 24)],
                 "pref": [1.0 if v[0] > 0 else -1.0 for v in rows(N, 1, 25)]})
    if name == "cnn":
        x = [[[r[i * 8:(i + 1) * 8] for i in range(8)]] for r in rows(N, 64, 11)]
        return x, classes(N, 4, 12)
    x = rows(N, 6, 13)
    if name == "ce":
        y = classes(N, 5, 14)
        y[0:4] = [2, 2, 2, 2]  # a whole share of ignored targets on some ranks
        return x, y
    return x, rows(N, 3, 15)


def session(d, name):
    """The same requests for every server: 100 steps of train, then batches + step."""
    x, y = data(name)
    d.ok("POST", "/v1/models/%s/train" % name,
         {"inputs": x, "targets": y, "epochs": 20, "batch_size": 7, "shuffle": True})
    d.push(name, part(x, 0, 11), part(y, 0, 11))
    d.push(name, part(x, 11, N), part(y, 11, N))
    return d.step(name)


def settle(c, name, step, n=None):
    """Waits until every rank has applied the requests up to step of model name: a rank
    answers reads from its own replica, which applies the order as it arrives (the
    rank that answered a change has applied it; the others within moments)."""
    deadline = time.time() + 30
    for r in range(n or c.n):
        while c.rank(r).model(name)["step"] != step:
            if time.time() > deadline:
                raise AssertionError("rank %d: model %s at step %d, expected %d"
                                     % (r, name, c.rank(r).model(name)["step"], step))
            time.sleep(0.02)


def get_applied(d, path, deadline):
    """GET path on rank d once d has applied the request that made it: a job submitted
    through another rank is a 404 here until this rank applies it (docs/distributed.md:
    a Location followed to another rank can 404 for a moment)."""
    while True:
        r = d.get(path)
        if r.status != 404 or time.time() > deadline:
            return d.ok("GET", path) if r.status != 200 else r.json()
        time.sleep(0.02)


def wait_job(d, name, jid):
    """Polls job jid of model name on d until its record is final; returns it."""
    deadline = time.time() + 120  # a safety net against hangs, never a speed check
    while True:
        j = get_applied(d, "/v1/models/%s/jobs/%d" % (name, jid), deadline)
        if j["state"] not in ("queued", "running"):
            return j
        if time.time() > deadline:
            raise AssertionError("job %s/%d never ended: %r" % (name, jid, j))
        time.sleep(0.02)


def applied(rk):
    text = rk.get("/metrics").body.decode()
    return int(re.search(r"^easytorch_cluster_requests_applied_total (\d+)$", text, re.M).group(1))


def quiesce(c):
    """Waits until every rank has applied every ordered request (the counts are equal and
    stay so): nothing more is coming once every client has its answer."""
    deadline, last = time.time() + 30, None
    while time.time() < deadline:
        counts = [applied(c.rank(r)) for r in range(c.n)]
        if len(set(counts)) == 1 and counts == last:
            return counts[0]
        last = counts
        time.sleep(0.05)
    raise AssertionError("the ranks did not settle: %r" % last)


def close(test, a, b, path=""):
    if isinstance(a, list):
        test.assertEqual(len(a), len(b), path)
        for i, (u, v) in enumerate(zip(a, b)):
            close(test, u, v, "%s[%d]" % (path, i))
    elif isinstance(a, dict):
        test.assertEqual(sorted(a), sorted(b), path)
        for k in a:
            close(test, a[k], b[k], "%s.%s" % (path, k))
    else:
        if abs(a - b) > ATOL + RTOL * abs(b):
            test.fail("%s: %r vs %r (rtol %g, atol %g)" % (path, a, b, RTOL, ATOL))


@unittest.skipUnless(MPI_BUILD, "this build has no MPI (meson -Dmpi=disabled)")
class MPITest(unittest.TestCase):
    ref = {}

    @classmethod
    def setUpClass(cls):
        if not shutil.which("mpirun"):
            raise AssertionError("mpirun not found (apt-get install openmpi-bin)")
        if cls.ref:
            return
        # the reference: one plain daemon, the same requests on the full batches
        d = daemon.Daemon()
        d.start()
        try:
            for name, spec in MODELS.items():
                d.create(dict(spec, name=name))
                last = session(d, name)
                MPITest.ref[name] = (d.params(name), last)
        finally:
            d.stop()
            d.cleanup()

    def check_ranks(self, n, args=()):
        """Returns each model's parameters (rank 0's JSON)."""
        c = mpicluster.Cluster(n, extra_args=args).start()
        bodies = {}
        try:
            for i, (name, spec) in enumerate(MODELS.items()):
                c.rank(i % n).create(dict(spec, name=name))
                # the requests go to different ranks; the order makes them one sequence
                last = session(c.rank((i + 1) % n), name)
                ref_params, ref_last = self.ref[name]
                settle(c, name, ref_last["step"])
                per_rank = [c.rank(r).get("/v1/models/%s/parameters" % name).body
                            for r in range(n)]
                for r in range(1, n):  # bit for bit: the same JSON (shortest round trip)
                    self.assertEqual(per_rank[r], per_rank[0],
                                     "%s: rank %d differs from rank 0" % (name, r))
                close(self, json.loads(per_rank[0])["parameters"], ref_params, name)
                bodies[name] = per_rank[0]
                self.assertEqual(last["step"], ref_last["step"])
                close(self, last["loss"], ref_last["loss"], name + ".loss")
            # the checksums every 10 steps: present on every rank, equal, agreeing
            sums = []
            for r in range(n):
                text = c.rank(r).get("/metrics").body.decode()
                got = re.findall(r'easytorch_cluster_checksum_step\{model="mse",checksum="'
                                 r'([0-9a-f]+)",agree="(\w+)"\} (\d+)', text)
                self.assertEqual(len(got), 1, text[-2000:])
                sums.append(got[0])
                self.assertIn("easytorch_cluster_checksum_mismatches_total 0", text)
                self.assertIn("easytorch_cluster_size %d" % n, text)
                bodies["allreduces"] = int(re.search(
                    r"^easytorch_cluster_allreduce_total (\d+)$", text, re.M).group(1))
            self.assertEqual(sums[0][1:], ("true", "100"))
            self.assertEqual(len(set(sums)), 1, sums)
        finally:
            rc = c.stop()
            log = c.log()
            c.cleanup()
        self.assertEqual(rc, 0, log[-3000:])
        return bodies

    def test_buckets(self):
        """--mpi-bucket-mb: the gradients summed in buckets while the backward runs give
        the bits of the single allreduce after it (each element is the same sum), on 2
        and 4 ranks; buckets of 52 bytes make several per model (one per parameter
        here, a few small ones together)."""
        for n in (2, 4):
            one = self.check_ranks(n)
            got = self.check_ranks(n, ["--mpi-bucket-mb", "0.00005"])
            for name in MODELS:
                self.assertEqual(got[name], one[name], "%d ranks, %s" % (n, name))
            print("%d ranks: %d gradient sums in buckets, %d without" % (
                n, got["allreduces"], one["allreduces"]))
            self.assertGreater(got["allreduces"], 2 * one["allreduces"])

    def test_one_rank(self):
        self.check_ranks(1)

    def test_two_ranks(self):
        self.check_ranks(2)

    def test_four_ranks(self):
        self.check_ranks(4)

    def test_concurrent_definitions(self):
        """Creates, PUT parameters, PATCH and deletes sent to all ranks at once, from
        several threads: every rank ends with the same models and the same numbers."""
        n = 3
        c = mpicluster.Cluster(n).start()
        try:
            spec = MODELS["mse"]

            def work(i):
                rk = c.rank(i % n)
                name = "m%d" % i
                rk.create(dict(spec, name=name, seed=100 + i))
                other = c.rank((i + 1) % n)
                p = rk.params(name)  # reads: the answering rank has applied it
                p["0.bias"] = [float(i)] * 16
                other.set_params(name, p)
                other.ok("POST", "/v1/models/%s/versions" % name, {"label": "v%d" % i},
                         expect=(200, 201))
                c.rank((i + 2) % n).ok("PATCH", "/v1/models/" + name, {"keep_versions": 5 + i})
                if i % 3 == 0:
                    rk.ok("DELETE", "/v1/models/" + name, expect=(200, 204))
                return name

            with concurrent.futures.ThreadPoolExecutor(8) as ex:
                list(ex.map(work, range(12)))
            # 12 creates, PUTs, versions, PATCHes and 4 deletes
            self.assertEqual(quiesce(c), 4 * 12 + 4)
            lists = [sorted(m["name"] for m in c.rank(r).ok("GET", "/v1/models")["models"])
                     for r in range(n)]
            self.assertEqual(lists[0], sorted("m%d" % i for i in range(12) if i % 3))
            for r in range(1, n):
                self.assertEqual(lists[r], lists[0])
            for name in lists[0]:
                bodies = [c.rank(r).get("/v1/models/%s/parameters" % name).body
                          for r in range(n)]
                descr = [c.rank(r).model(name) for r in range(n)]
                for r in range(1, n):
                    self.assertEqual(bodies[r], bodies[0], name)
                    self.assertEqual(descr[r], descr[0], name)
                i = int(name[1:])
                self.assertEqual(json.loads(bodies[0])["parameters"]["0.bias"], [float(i)] * 16)
                self.assertEqual(descr[0]["keep_versions"], 5 + i)
                self.assertEqual(descr[0]["versions"], 1)
        finally:
            rc = c.stop()
            log = c.log()
            c.cleanup()
        self.assertEqual(rc, 0, log[-3000:])

    def test_jobs(self):
        """POST .../jobs under --mpi: every rank runs the job's steps on its share of the
        rows, at the same place in the order; the result equals one plain daemon's job on
        the same data, the replicas agree bit for bit, and a cancel sent to another rank
        stops every replica after the same step."""
        n = 3
        jobs = {}
        for name in ("mse", "ce", "graph"):
            x, y = data(name)
            jobs[name] = {"inputs": x, "targets": y, "epochs": 6, "batch_size": 7,
                          "shuffle": True}
        ref = {}
        d = daemon.Daemon()
        d.start()
        try:
            for name, body in jobs.items():
                d.create(dict(MODELS[name], name=name))
                jid = d.ok("POST", "/v1/models/%s/jobs" % name, body, expect=(202,))["id"]
                # (the graph's cross-entropy has a minibatch whose targets are all
                # ignored: torch's NaN, a skipped step, on both sides)
                ref[name] = (wait_job(d, name, jid), d.params(name), d.model(name)["step"])
        finally:
            d.stop()
            d.cleanup()
        c = mpicluster.Cluster(n).start()
        try:
            for i, (name, body) in enumerate(jobs.items()):
                c.rank(i % n).create(dict(MODELS[name], name=name))
            # both jobs at once, sent to different ranks: they step one after the other
            ids = {name: c.rank((i + 1) % n).ok("POST", "/v1/models/%s/jobs" % name, body,
                                                expect=(202,))["id"]
                   for i, (name, body) in enumerate(jobs.items())}
            for name in jobs:
                ref_job, ref_params, ref_step = ref[name]
                recs = [wait_job(c.rank(r), name, ids[name]) for r in range(n)]
                for r in range(n):
                    self.assertEqual(recs[r]["state"], "done", recs[r])
                    self.assertEqual(recs[r]["steps_done"], ref_job["steps_done"])
                    self.assertEqual(recs[r]["loss"], recs[0]["loss"])
                close(self, recs[0]["loss"], ref_job["loss"], name + ".loss")
                self.assertEqual(recs[0]["skipped_steps"], ref_job["skipped_steps"])
                settle(c, name, ref_step)
                per_rank = [c.rank(r).get("/v1/models/%s/parameters" % name).body
                            for r in range(n)]
                for r in range(1, n):
                    self.assertEqual(per_rank[r], per_rank[0],
                                     "%s: rank %d differs from rank 0" % (name, r))
                close(self, json.loads(per_rank[0])["parameters"], ref_params, name)
            # a long job cancelled through another rank: every replica stops after the
            # same step, with the same record and the same numbers
            x, y = data("mse")
            r = c.rank(0).post("/v1/models/mse/jobs",
                               {"inputs": x, "targets": y, "epochs": 100000, "batch_size": 7})
            self.assertEqual(r.status, 202, r.body)
            jid = r.json()["id"]
            # an ordered 202 carries its Location as on one daemon; another rank follows it
            self.assertEqual(r.headers.get("location"), "/v1/models/mse/jobs/%d" % jid)
            base = ref["mse"][2]
            deadline = time.time() + 30
            for rk in (c.rank(1), c.rank(2)):
                get_applied(rk, r.headers["location"], deadline)
            lag = []
            while c.rank(2).model("mse")["step"] < base + 12 and time.time() < deadline:
                # the job's record moves with the model's step: read the model first,
                # then the job, and the job is never behind it
                for rk in (c.rank(1), c.rank(2)):
                    step = rk.model("mse")["step"]
                    j = rk.ok("GET", r.headers["location"])
                    done = j["steps_done"] - j["skipped_steps"]
                    if j["start_step"] is not None and j["start_step"] + done < step:
                        lag.append((step, j["start_step"], j["steps_done"]))
            self.assertEqual(lag, [], "a job's record behind its model's step")
            # a training call meanwhile is refused alike everywhere (the job is active)
            r = c.rank(1).post("/v1/models/mse/train", {"inputs": x, "targets": y})
            self.assertEqual(r.status, 409, r.body)
            got = c.rank(2).ok("DELETE", "/v1/models/mse/jobs/%d" % jid)
            self.assertEqual(got["state"], "cancelled", got)
            k = got["steps_done"]
            self.assertGreater(k, 0)
            self.assertLess(k, got["steps_total"])
            settle(c, "mse", base + k)
            recs = [wait_job(c.rank(r), "mse", jid) for r in range(n)]
            strip = lambda j: {f: v for f, v in j.items()  # noqa: E731
                               if f not in ("created", "started", "finished")}
            for r in range(n):
                self.assertEqual(strip(recs[r]), strip(got), "rank %d" % r)
            time.sleep(0.2)  # nothing steps any more
            bodies = [c.rank(r).get("/v1/models/mse/parameters").body for r in range(n)]
            for r in range(n):
                self.assertEqual(c.rank(r).model("mse")["step"], base + k)
                self.assertEqual(bodies[r], bodies[0], "rank %d" % r)
            # free again: a train call on any rank keeps the replicas together
            c.rank(1).ok("POST", "/v1/models/mse/train", {"inputs": x, "targets": y})
            settle(c, "mse", base + k + 1)
            bodies = [c.rank(r).get("/v1/models/mse/parameters").body for r in range(n)]
            for r in range(1, n):
                self.assertEqual(bodies[r], bodies[0], "rank %d" % r)
            text = c.rank(1).get("/metrics").body.decode()
            self.assertIn("easytorch_cluster_checksum_mismatches_total 0", text)
            steps = int(re.search(r"^easytorch_cluster_job_steps_total (\d+)$", text,
                                  re.M).group(1))
            print("jobs: %d steps granted in the order; the cancel came after %d" % (steps, k))
            self.assertGreaterEqual(steps, sum(ref[name][0]["steps_done"] for name in jobs) + k)
        finally:
            rc = c.stop()
            log = c.log()
            c.cleanup()
        self.assertEqual(rc, 0, log[-3000:])

    def test_stop_during_a_job(self):
        """SIGTERM to every rank while a job runs: the stop goes through the order, so
        every rank interrupts the job after the same step, exits 0, and a restart finds
        the interrupted record and that step everywhere."""
        tmp = daemon.tempfile.mkdtemp(prefix="et-mpi-stop-")
        data_dir = os.path.join(tmp, "data")
        x, y = data("mse")
        try:
            c = mpicluster.Cluster(3, data_dir=data_dir).start()
            try:
                c.rank(0).create(dict(MODELS["mse"], name="s"))
                jid = c.rank(1).ok("POST", "/v1/models/s/jobs",
                                   {"inputs": x, "targets": y, "epochs": 100000,
                                    "batch_size": 7}, expect=(202,))["id"]
                deadline = time.time() + 30
                while c.rank(2).model("s")["step"] < 20 and time.time() < deadline:
                    time.sleep(0.02)
            finally:
                rc = c.stop()
                log = c.log()
                c.cleanup()
            self.assertEqual(rc, 0, log[-3000:])
            got = {int(r): int(k) for r, k in re.findall(
                r"\[\d+,(\d+)\]<stderr>:easytorchd: model s: job %d interrupted: interrupted by "
                r"the daemon's shutdown after (\d+) of" % jid, log)}
            self.assertEqual(sorted(got), [0, 1, 2], log[-3000:])
            self.assertEqual(len(set(got.values())), 1, got)
            k = got[0]
            self.assertGreaterEqual(k, 20)
            c2 = mpicluster.Cluster(3, data_dir=data_dir).start()
            try:
                for r in range(3):
                    self.assertEqual(c2.rank(r).model("s")["step"], k)
                    j = c2.rank(r).ok("GET", "/v1/models/s/jobs/%d" % jid)
                    self.assertEqual((j["state"], j["steps_done"]), ("interrupted", k))
            finally:
                rc = c2.stop()
                c2.cleanup()
            self.assertEqual(rc, 0)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_kill_and_resume(self):
        """kill -9 of rank 2 during a train call: ranks 0 and 1 exit 3 within the
        timeout naming rank 2; the restarted job resumes from rank 0's files (--sync
        always: every answered call is on disk) and continues exactly as one daemon
        that saw the same answered calls."""
        tmp = daemon.tempfile.mkdtemp(prefix="et-mpi-kill-")
        data_dir = os.path.join(tmp, "data")
        args = ["--sync", "always", "--mpi-timeout", "3"]
        x, y = data("mse")
        train = {"inputs": x, "targets": y, "epochs": 4, "batch_size": 7, "shuffle": True}
        long_train = dict(train, epochs=100000)
        try:
            c = mpicluster.Cluster(3, data_dir=data_dir, extra_args=args,
                                   mpirun_args=["--enable-recovery"]).start()
            try:
                c.rank(0).create(dict(MODELS["mse"], name="k"))
                c.rank(1).ok("POST", "/v1/models/k/train", train)
                def long_call():
                    try:
                        c.rank(0).request("POST", "/v1/models/k/train", long_train,
                                          contract=False)
                    except OSError:
                        pass  # rank 0 goes too: no answer

                t = threading.Thread(target=long_call, daemon=True)
                t.start()
                deadline = time.time() + 30
                while c.rank(1).model("k")["step"] == 20 and time.time() < deadline:
                    time.sleep(0.05)  # the published step moves: the long call runs
                os.kill(c.rank(2).pid, 9)
                t0 = time.time()
                rc = c.wait(30)
                took = time.time() - t0
                log = c.log()
                self.assertIsNotNone(rc, "the job still runs 30 s after kill -9:\n" + log[-3000:])
                for r in (0, 1):
                    self.assertRegex(log, r"\[\d+,%d\]<stderr>:easytorchd: rank %d: lost rank 2"
                                     % (r, r), log[-3000:])
                    self.assertRegex(log, r"\[\d+,%d\]<stderr>:easytorchd exited with status 3"
                                     % r, log[-3000:])
                print("kill -9 of rank 2: ranks 0 and 1 exited 3 naming it; the job ended "
                      "%.1f s after the kill (--mpi-timeout 3)" % took)
            finally:
                c.kill()
            # restart: the long call was never answered, so the state is the first call's
            c2 = mpicluster.Cluster(3, data_dir=data_dir, extra_args=args).start()
            try:
                for r in range(3):
                    self.assertEqual(c2.rank(r).model("k")["step"], 20)
                c2.rank(2).ok("POST", "/v1/models/k/train", train)
                got = [c2.rank(r).get("/v1/models/k/parameters").body for r in range(3)]
                self.assertEqual(got[1], got[0])
                self.assertEqual(got[2], got[0])
                # without --enable-recovery mpirun itself ends the job: non-zero, naming the rank
                os.kill(c2.rank(2).pid, 9)
                rc = c2.wait(30)
                self.assertIsNotNone(rc, c2.log()[-3000:])
                self.assertNotEqual(rc, 0, c2.log()[-3000:])
                self.assertRegex(c2.log(), r"\[\d+,2\]<stderr>:easytorchd exited with status 137")
            finally:
                c2.kill()
                c2.cleanup()
            d = daemon.Daemon()
            d.start()
            try:
                d.create(dict(MODELS["mse"], name="k"))
                d.ok("POST", "/v1/models/k/train", train)
                d.ok("POST", "/v1/models/k/train", train)
                close(self, json.loads(got[0])["parameters"], d.params("k"), "k")
            finally:
                d.stop()
                d.cleanup()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


class NamespaceCluster(mpicluster.Cluster):
    """Two "hosts": rank 0 in this network namespace, rank 1 in another, joined by a veth
    pair; Open MPI's TCP transport between them (no shared memory: btl tcp,self), PMIx
    over the veth too."""

    def __init__(self, ns, net):
        super().__init__(2, extra_args=["--insecure"])
        self.ns, self.net = ns, net

    def rank_host(self, r, host):
        return "127.0.0.1" if r == 0 else self.net + ".2"

    def args(self):
        d = [daemon.daemon_path(), "--mpi", "--listen", "0.0.0.0:0", "--data-dir",
             self.data_dir, "--quiet"] + self.extra_args
        return (["mpirun", "--oversubscribe", "--bind-to", "none", "--tag-output",
                 "--mca", "btl", "tcp,self", "--mca", "btl_tcp_if_include", self.net + ".0/24",
                 "-n", "1"] + d + [":", "-n", "1", "ip", "netns", "exec", self.ns] + d)


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


@unittest.skipUnless(MPI_BUILD, "this build has no MPI (meson -Dmpi=disabled)")
class NamespaceTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        MPITest.setUpClass()

    def test_two_namespaces_tcp(self):
        ns = "etmpi%d" % os.getpid()
        net = "10.231.%d" % (os.getpid() % 200 + 20)
        va, vb = "eta%d" % os.getpid(), "etb%d" % os.getpid()
        r = run("ip", "netns", "add", ns)
        if r.returncode != 0 and ("Permission" in r.stderr or "not permitted" in r.stderr):
            self.skipTest("no permission to create a network namespace: " + r.stderr.strip())
        self.assertEqual(r.returncode, 0, r.stderr)
        old = {k: os.environ.get(k) for k in ("PMIX_MCA_ptl_tcp_if_include",
                                              "PMIX_MCA_ptl_tcp_remote_connections")}
        try:
            for cmd in (["ip", "link", "add", va, "type", "veth", "peer", "name", vb],
                        ["ip", "link", "set", vb, "netns", ns],
                        ["ip", "addr", "add", net + ".1/24", "dev", va],
                        ["ip", "link", "set", va, "up"],
                        ["ip", "netns", "exec", ns, "ip", "addr", "add", net + ".2/24", "dev", vb],
                        ["ip", "netns", "exec", ns, "ip", "link", "set", vb, "up"],
                        ["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"]):
                r = run(*cmd)
                self.assertEqual(r.returncode, 0, "%s: %s" % (" ".join(cmd), r.stderr))
            # the ranks reach mpirun's PMIx server over the veth (loopback is not shared)
            os.environ["PMIX_MCA_ptl_tcp_if_include"] = net + ".0/24"
            os.environ["PMIX_MCA_ptl_tcp_remote_connections"] = "1"
            c = NamespaceCluster(ns, net).start()
            try:
                for name in ("mse", "ce", "cnn"):
                    c.rank(1).create(dict(MODELS[name], name=name))
                    last = session(c.rank(0), name)
                    ref_params, ref_last = MPITest.ref[name]
                    settle(c, name, ref_last["step"])
                    got = [c.rank(r).get("/v1/models/%s/parameters" % name).body
                           for r in range(2)]
                    self.assertEqual(got[1], got[0], name)
                    close(self, json.loads(got[0])["parameters"], ref_params, name)
                    close(self, last["loss"], ref_last["loss"], name + ".loss")
                text = c.rank(1).get("/metrics").body.decode()
                self.assertIn("easytorch_cluster_checksum_mismatches_total 0", text)
            finally:
                rc = c.stop()
                log = c.log()
                c.cleanup()
            self.assertEqual(rc, 0, log[-3000:])
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
            run("ip", "link", "del", va)
            run("ip", "netns", "del", ns)


if __name__ == "__main__":
    daemon.run_tests()
