"""test_mpi_failures.py - easytorchd --mpi (issue 19, docs/distributed.md "A rank failing
on its own"): one rank fails where the others do not (EASYTORCHD_TEST_DP_FAIL=POINT@RANK,
a test hook: each point fires the first time that rank gets there, as out of memory).

* Before a data-parallel collective (a train call's or a minibatch's snapshot, the
  gradients' buffers, the broadcast after the step, a batch, a step, a job's step): the
  call fails on every rank with a clear error, nothing hangs and nothing changes anywhere;
  afterwards training goes on as one plain daemon's.
* After the gradients' sum, in a job's step: the step is all or nothing -- every rank
  takes it back (a snapshot per step under --mpi), the replicas stay equal.
* A --sync always save failing on one rank at the end of a train call: every rank
  answers 500 and the ranks that saved take the call back, in memory and in the file.
* Applying an ordered request, before its handler (apply_train, apply_patch): every rank
  reports how it applied the request (cluster/agree.c).  A train call then fails on every
  rank, before it changed anything; a PATCH that one rank could not apply and the other
  did stops both ranks (exit 3) naming the rank, instead of leaving the replicas
  different.  Without the agreement the train call hangs (rank 0 waits in the call's
  first collective for ever: the test runs into its meson timeout).
"""
import json
import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon  # noqa: E402
import mpicluster  # noqa: E402
from test_mpi import MPI_BUILD, MODELS, data, settle, wait_job, close  # noqa: E402


@unittest.skipUnless(MPI_BUILD, "this build has no MPI (meson -Dmpi=disabled)")
class MPIFailureTest(unittest.TestCase):
    def test_local_failures(self):
        """A replica failing on its own (out of memory: EASYTORCHD_TEST_DP_FAIL) before a
        collective -- a train call's or a minibatch's snapshot, the gradients' buffers, the
        broadcast after the step, a batch, a step, a job's step -- fails the call on every
        rank with a clear error, nothing hangs and nothing changes anywhere (the ranks keep
        equal parameters); afterwards training goes on as one plain daemon's."""
        points = ["train", "minibatch", "backward", "sync", "batch", "step", "job"]
        fault = ",".join("%s@1" % p for p in points)  # each fires once, on rank 1
        x, y = data("mse")
        train = {"inputs": x, "targets": y, "epochs": 2, "batch_size": 7, "shuffle": True}
        before = "another replica ran out of memory before the gradients' sum (1 of 2"
        after = "another replica ran out of memory after the gradients' sum (1 of 2"

        def mine(point):
            return "out of memory (EASYTORCHD_TEST_DP_FAIL %s@1) (1 of 2" % point

        with mpicluster.running(self, 2, mpirun_args=[
                "-x", "EASYTORCHD_TEST_DP_FAIL=" + fault]) as c:
            c.rank(0).create(dict(MODELS["mse"], name="f"))

            def state():
                settle(c, "f", c.rank(0).model("f")["step"])
                got = [(c.rank(r).get("/v1/models/f/parameters").body,
                        c.rank(r).model("f")["pending_batches"]) for r in range(2)]
                self.assertEqual(got[1], got[0])
                return got[0]

            def fails(rank, method, path, body, msg):
                start = state()
                r = c.rank(rank).request(method, path, body)
                self.assertEqual(r.status, 500, r.body)
                self.assertIn(msg, r.error())
                self.assertEqual(state(), start, path)  # nothing changed, on either rank

            fails(0, "POST", "/v1/models/f/train", train, before)     # rank 1: train@1
            fails(1, "POST", "/v1/models/f/train", train, mine("minibatch"))
            fails(0, "POST", "/v1/models/f/train", train, before)     # backward@1
            fails(0, "POST", "/v1/models/f/train", train, after)      # sync@1: rank 0 stepped
            batch = {"inputs": x, "targets": y}
            fails(1, "POST", "/v1/models/f/batches", batch, mine("batch"))
            c.rank(1).ok("POST", "/v1/models/f/batches", batch)
            fails(0, "POST", "/v1/models/f/step", None, after)         # step@1
            c.rank(1).ok("POST", "/v1/models/f/step")
            start = state()
            jid = c.rank(0).ok("POST", "/v1/models/f/jobs", train, expect=(202,))["id"]
            recs = [wait_job(c.rank(r), "f", jid) for r in range(2)]
            self.assertEqual([j["state"] for j in recs], ["failed", "failed"])
            self.assertIn(before, recs[0]["error"])
            self.assertIn(mine("job"), recs[1]["error"])
            self.assertEqual(state(), start)
            # the failed calls drew shuffles from the generator, as on one daemon: the
            # numbers are compared without one, the ranks' generators with one
            c.rank(0).ok("POST", "/v1/models/f/train", dict(train, shuffle=False))
            got = state()[0]
            c.rank(1).ok("POST", "/v1/models/f/train", train)
            state()
        d = daemon.Daemon()
        d.start()
        try:  # the calls that were answered 2xx
            d.create(dict(MODELS["mse"], name="f"))
            d.ok("POST", "/v1/models/f/batches", batch)
            d.ok("POST", "/v1/models/f/step")
            d.ok("POST", "/v1/models/f/train", dict(train, shuffle=False))
            close(self, json.loads(got)["parameters"], d.params("f"), "f")
        finally:
            d.stop()
            d.cleanup()

    def test_job_step_all_or_nothing(self):
        """Rank 1 of 2 fails a job's step after the gradients' sum and the optimizer step
        (sync@1: before the broadcast): the job fails on both ranks and BOTH take the step
        back -- the parameters, step and record are the ones before it (the steps before
        it are kept), equal on both ranks."""
        x, y = data("mse")
        job = {"inputs": x, "targets": y, "epochs": 2, "batch_size": 7, "shuffle": True}
        with mpicluster.running(self, 2, mpirun_args=[
                "-x", "EASYTORCHD_TEST_DP_FAIL=sync@1"]) as c:
            c.rank(0).create(dict(MODELS["mse"], name="j"))
            start = [c.rank(r).get("/v1/models/j/parameters").body for r in range(2)]
            self.assertEqual(start[1], start[0])
            jid = c.rank(1).ok("POST", "/v1/models/j/jobs", job, expect=(202,))["id"]
            recs = [wait_job(c.rank(r), "j", jid) for r in range(2)]
            self.assertEqual([j["state"] for j in recs], ["failed", "failed"])
            self.assertIn("another replica ran out of memory after the gradients' sum",
                          recs[0]["error"])
            self.assertIn("EASYTORCHD_TEST_DP_FAIL sync@1", recs[1]["error"])
            self.assertEqual([j["steps_done"] for j in recs], [0, 0])
            for r in range(2):
                self.assertEqual(c.rank(r).model("j")["step"], 0)
                self.assertEqual(c.rank(r).get("/v1/models/j/parameters").body, start[0],
                                 "rank %d kept the failed step" % r)

    def test_failed_save_fails_everywhere(self):
        """--sync always, rank 1 of 2 fails the save at the end of a train call (save@1):
        both ranks answer 500, rank 0 -- which had saved -- takes the call back in memory
        and in its file, so both ranks and a restart from rank 0's files have the
        parameters from before the call."""
        tmp = daemon.tempfile.mkdtemp(prefix="et-mpi-save-")
        data_dir = os.path.join(tmp, "data")
        x, y = data("mse")
        train = {"inputs": x, "targets": y, "epochs": 2, "batch_size": 7, "shuffle": True}
        try:
            with mpicluster.running(self, 2, data_dir=data_dir, extra_args=["--sync", "always"],
                                    mpirun_args=["-x", "EASYTORCHD_TEST_DP_FAIL=save@1"]) as c:
                c.rank(0).create(dict(MODELS["mse"], name="s"))
                start = c.rank(0).get("/v1/models/s/parameters").body
                r = c.rank(0).request("POST", "/v1/models/s/train", train)
                self.assertEqual(r.status, 500, r.body)
                # the hook fails as out of memory; a disk error says "failed saving"
                self.assertIn("another replica ran out of memory saving (1 of 2 replicas "
                              "failed)", r.error())
                for rk in range(2):
                    settle(c, "s", 0)
                    self.assertEqual(c.rank(rk).get("/v1/models/s/parameters").body, start,
                                     "rank %d kept the call" % rk)
            c2 = mpicluster.Cluster(2, data_dir=data_dir).start()
            try:
                for rk in range(2):
                    self.assertEqual(c2.rank(rk).model("s")["step"], 0)
                    self.assertEqual(c2.rank(rk).get("/v1/models/s/parameters").body, start)
            finally:
                c2.stop()
                c2.cleanup()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def test_apply_failures(self):
        """Rank 1 of 2 fails applying a train call before its handler (apply_train@1): both
        ranks answer 500, neither changed anything, training then gives one plain daemon's
        numbers.  Then it fails applying a PATCH that rank 0 applied (apply_patch@1): both
        ranks stop, exit 3, naming rank 1's failure -- no hang, no silent difference."""
        x, y = data("mse")
        train = {"inputs": x, "targets": y, "epochs": 2, "batch_size": 7, "shuffle": True}
        c = mpicluster.Cluster(2, mpirun_args=[
            "-x", "EASYTORCHD_TEST_DP_FAIL=apply_train@1,apply_patch@1"]).start()
        try:
            c.rank(0).create(dict(MODELS["mse"], name="a"))

            def state():
                settle(c, "a", c.rank(0).model("a")["step"])
                got = [c.rank(r).get("/v1/models/a/parameters").body for r in range(2)]
                self.assertEqual(got[1], got[0])
                return got[0]

            start = state()
            r = c.rank(0).request("POST", "/v1/models/a/train", train)
            self.assertEqual(r.status, 500, r.body)
            self.assertIn("another replica could not apply the request (rank 1: 500)",
                          r.error())
            self.assertEqual(state(), start)  # nothing changed, on either rank (the
            c.rank(1).ok("POST", "/v1/models/a/train", train)  # generator too: the
            got = state()  # numbers below are a plain daemon's first train call
            try:  # rank 0 applies it, rank 1 cannot: both stop before answering
                c.rank(0).request("PATCH", "/v1/models/a", {"keep_versions": 3},
                                  contract=False)
            except OSError:
                pass
            rc = c.wait(None)  # bounded by meson's timeout: without the agreement, a hang
            log = c.log()
        finally:
            c.kill()
            c.cleanup()
        self.assertNotEqual(rc, 0, log[-3000:])
        for r in (0, 1):
            self.assertRegex(log, r"\[\d+,%d\]<stderr>:easytorchd: rank %d: PATCH /v1/models/a "
                             r"was applied on some ranks only \(rank 0: 200, rank 1: 500\)"
                             % (r, r), log[-3000:])
            self.assertRegex(log, r"\[\d+,%d\]<stderr>:easytorchd exited with status 3" % r,
                             log[-3000:])
        d = daemon.Daemon()
        d.start()
        try:  # the calls that were answered 2xx
            d.create(dict(MODELS["mse"], name="a"))
            d.ok("POST", "/v1/models/a/train", train)
            close(self, json.loads(got)["parameters"], d.params("a"), "a")
        finally:
            d.stop()
            d.cleanup()


if __name__ == "__main__":
    daemon.run_tests()
