"""Crash consistency with --sync always.

CrashTest: kill -9 easytorchd at random moments while three models train (train calls,
batches + step pairs, checkpoints), and sometimes while it is still starting; restart it on
the same data dir each time.  After every restart every model loads (none skipped as
corrupt), no acknowledged step or batch is lost (step >= last acknowledged step), and
parameters, loss history and pending gradients equal a reference daemon that replayed the
same sequence without crashes.  ET_CRASH_CYCLES sets the number of kills (default 100).

CorruptFileTest: every truncation length of a small model file, a bit flip at every byte
and random multi-bit flips are all rejected (reported, never loaded) while intact files
next to them load and the daemon starts.

  /usr/bin/python3 tests/hardening/test_crash.py BUILD/src/server/easytorchd
"""
import http.client
import os
import random
import struct
import threading
import time
import unittest
import zlib

from hlib import (ADAM_SPEC, CLS_SPEC, REG_SPEC, Daemon, batch_for, env_int, f32, run_tests,
                  spec)

MODELS = {"a": (REG_SPEC, 11), "b": (ADAM_SPEC, 12), "c": (CLS_SPEC, 13)}
CYCLES = env_int("ET_CRASH_CYCLES", 100)


class Trainer:
    """The protocol both daemons follow for model `name`: the op that makes step k is
    `train` on batch k, except every third step, which is `batches` (batch k) then `step`."""

    def __init__(self, name):
        self.name = name
        self.base = MODELS[name][0]

    def next_ops(self, step, pending):
        k = step + 1
        x, y = batch_for(self.base, k)
        path = "/v1/models/%s/" % self.name
        if k % 3 == 0:
            if pending:
                return [("step", path + "step", None)]
            return [("push", path + "batches", {"inputs": x, "targets": y}),
                    ("step", path + "step", None)]
        return [("train", path + "train", {"inputs": x, "targets": y})]


def state(d, name):
    base = "/v1/models/" + name
    m = d.ok("GET", base)
    return {"step": m["step"], "pending": m["pending_batches"],
            "params": f32(d.ok("GET", base + "/parameters")["parameters"]),
            "history": f32(d.ok("GET", base + "/loss")["history"]),
            "grads": f32(d.ok("GET", base + "/gradients")["gradients"])}


def advance(d, name, to_step, to_pending):
    """Moves the reference daemon's model forward to (to_step, to_pending)."""
    t = Trainer(name)
    while True:
        m = d.ok("GET", "/v1/models/" + name)
        s, p = m["step"], m["pending_batches"]
        if (s, p) == (to_step, to_pending):
            return
        if s > to_step or (s == to_step and p > to_pending):
            raise AssertionError("reference %s is past (%d, %d)" % (name, to_step, to_pending))
        kind, path, body = t.next_ops(s, p)[0]
        d.ok("POST", path, body)


class CrashTest(unittest.TestCase):
    def test_kill9_cycles(self):
        rng = random.Random(20261126)
        d = Daemon(sync="always", extra_args=["--quiet"])
        ref = Daemon(extra_args=["--quiet"])
        acked = {n: (0, 0) for n in MODELS}        # (step, pending) acknowledged
        attempted = {n: (0, 0) for n in MODELS}    # the furthest an in-flight call could reach
        kills = startup_kills = ops_acked = 0
        try:
            ref.start()
            d.start()
            for n, (base, seed) in MODELS.items():
                d.create(spec(base, n, seed))
                ref.create(spec(base, n, seed))
            for cycle in range(CYCLES):
                # ---- kill at a random moment
                if cycle % 10 == 9:  # while starting and loading
                    d.kill()
                    d.spawn()
                    time.sleep(rng.uniform(0.0, 0.05))
                    d.kill()
                    startup_kills += 1
                    d.start()
                timer = threading.Timer(rng.uniform(0.005, 0.2), d.proc.kill)
                timer.start()
                try:
                    ops_acked += self.train_until_killed(d, rng, acked, attempted)
                finally:
                    timer.cancel()
                d.proc.kill()  # by PID (its Popen handle); no-op if the timer did it
                d.proc.wait()
                d.log_file.close()
                kills += 1
                # ---- restart and check every model
                d.start()
                self.assertNotIn("skipping", d.log(), "a model file was rejected after kill -9")
                names = sorted(m["name"] for m in d.ok("GET", "/v1/models")["models"])
                self.assertEqual(names, sorted(MODELS), "cycle %d: models after restart" % cycle)
                for n in MODELS:
                    got = d.ok("GET", "/v1/models/" + n)
                    now = (got["step"], got["pending_batches"])
                    self.assertGreaterEqual(now, acked[n], "cycle %d: model %s lost an acknowledged "
                                            "change: %r < %r" % (cycle, n, now, acked[n]))
                    self.assertLessEqual(now, attempted[n], "cycle %d: model %s is past anything "
                                         "requested: %r > %r" % (cycle, n, now, attempted[n]))
                    advance(ref, n, *now)
                    self.assertEqual(state(d, n), state(ref, n),
                                     "cycle %d: model %s differs from the uncrashed replay at %r"
                                     % (cycle, n, now))
                    acked[n] = attempted[n] = now
            print("kill -9 cycles: %d (%d during startup), acknowledged calls: %d, final steps %s"
                  % (kills, startup_kills, ops_acked, {n: acked[n][0] for n in MODELS}))
        finally:
            try:
                d.cleanup()
            finally:
                ref.cleanup()

    def train_until_killed(self, d, rng, acked, attempted):
        """Runs the protocol round-robin (with checkpoints) until the daemon dies."""
        n_ok = 0
        trainers = {n: Trainer(n) for n in MODELS}
        cur = dict(acked)
        while True:
            n = rng.choice(sorted(MODELS))
            if rng.random() < 0.15:
                calls = [("checkpoint", "/v1/models/%s/checkpoint" % n, None)]
            else:
                calls = trainers[n].next_ops(*cur[n])
            for kind, path, body in calls:
                s, p = cur[n]
                if kind in ("train", "step"):
                    attempted[n] = max(attempted[n], (s + 1, 0))
                elif kind == "push":
                    attempted[n] = max(attempted[n], (s, 1))
                try:
                    r = d.request("POST", path, obj=body)
                except (OSError, AttributeError, http.client.HTTPException):
                    # killed mid-call (http.client raises AttributeError when the socket
                    # is torn down under it)
                    return n_ok
                if r.status not in (200, 201):
                    if not d.alive() or r.status == 503:
                        return n_ok
                    raise AssertionError("%s %s -> %r" % (kind, path, r))
                n_ok += 1
                j = r.json()
                if kind in ("train", "step"):
                    cur[n] = (j["step"], 0)
                elif kind == "push":
                    cur[n] = (s, 1)
                acked[n] = cur[n]


# ------------------------------------------------------------------ corrupt files
def reseal(f, old, new):
    """Model file f with every `old` in its payload replaced by `new` (same length) and
    both CRCs recomputed: a valid file for the model named `new`."""
    assert len(old) == len(new)
    payload = f[32:].replace(old, new)
    head = bytearray(f[:32])
    struct.pack_into("<I", head, 24, zlib.crc32(payload) & 0xffffffff)
    struct.pack_into("<I", head, 28, zlib.crc32(bytes(head[:28])) & 0xffffffff)
    return bytes(head) + payload


class CorruptFileTest(unittest.TestCase):
    def test_truncations_and_bit_flips_rejected(self):
        src = Daemon(extra_args=["--quiet"])
        try:
            src.start()
            src.create(spec(REG_SPEC, "t0000", seed=5))
            for k in range(2):
                x, y = batch_for(REG_SPEC, k)
                src.ok("POST", "/v1/models/t0000/train", {"inputs": x, "targets": y})
            self.assertEqual(src.stop(), 0)
            with open(os.path.join(src.data_dir, "t0000.etm"), "rb") as fh:
                good = fh.read()
        finally:
            src.cleanup()
        self.assertEqual(struct.unpack("<Q", good[16:24])[0], len(good) - 32)
        rng = random.Random(7)
        d = Daemon(extra_args=["--quiet"])
        try:
            files, controls = {}, []
            for i in range(5):  # intact files: the renaming itself is sound
                name = "c%04d" % i
                files[name] = reseal(good, b"t0000", name.encode())
                controls.append(name)
            for cut in range(len(good)):  # every truncation length
                name = "t%04d" % cut
                files[name] = reseal(good, b"t0000", name.encode())[:cut]
            for i in range(len(good)):  # one bit flip at every byte
                name = "f%04d" % i
                b = bytearray(reseal(good, b"t0000", name.encode()))
                b[i] ^= 1 << (i * 5 % 8)
                files[name] = bytes(b)
            for i in range(200):  # 2 to 8 random bit flips
                name = "r%04d" % i
                b = bytearray(reseal(good, b"t0000", name.encode()))
                for _ in range(rng.randint(2, 8)):
                    b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
                files[name] = bytes(b)
            for name, data in files.items():
                with open(os.path.join(d.data_dir, name + ".etm"), "wb") as fh:
                    fh.write(data)
            # odd entries the loader must step over
            os.mkdir(os.path.join(d.data_dir, "dir.etm"))
            open(os.path.join(d.data_dir, ".x.etm.tmp.123"), "wb").close()
            open(os.path.join(d.data_dir, "notes.txt"), "wb").close()
            os.symlink("/dev/zero", os.path.join(d.data_dir, "zero.etm"))
            d.start()
            listed = sorted(m["name"] for m in d.ok("GET", "/v1/models")["models"])
            self.assertEqual(listed, controls, "only the intact files may load")
            for name in controls:
                self.assertEqual(d.ok("GET", "/v1/models/" + name)["step"], 2)
            self.assertEqual(d.get("/v1/models/t%04d" % (len(good) - 1)).status, 404)
            bad = len(files) - len(controls)
            self.assertGreaterEqual(d.log().count("skipping"), bad,
                                    "every rejected file is reported on stderr")
            print("model file of %d bytes: %d corrupt variants rejected, %d intact loaded"
                  % (len(good), bad, len(controls)))
        finally:
            d.cleanup()


if __name__ == "__main__":
    run_tests()
