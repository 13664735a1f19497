#!/usr/bin/python3
"""easytorchd persistence: SIGTERM + restart continues with identical numbers, --sync always
and checkpoint survive kill -9, torn/corrupt files are refused, safetensors in and out.
Usage: test_persistence.py PATH/TO/easytorchd"""

import http.client
import json
import os
import struct
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import Daemon, DaemonTestCase, f32  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchref import Reference, build_net, random_params, close_report  # noqa: E402
import safetensors_io as st  # noqa: E402

MLP = [
    {"type": "Linear", "in_features": 3, "out_features": 5},
    {"type": "Tanh"},
    {"type": "Linear", "in_features": 5, "out_features": 2},
]

OPTIMIZERS = {
    "p-sgdm": ({"type": "SGD", "lr": 0.05, "momentum": 0.9, "nesterov": True},
               {"type": "StepLR", "step_size": 4, "gamma": 0.5}),
    "p-adam": ({"type": "Adam", "lr": 0.01, "amsgrad": True},
               {"type": "ExponentialLR", "gamma": 0.9}),
    "p-adamw": ({"type": "AdamW", "lr": 0.01}, {"type": "CosineAnnealingLR", "T_max": 7}),
    "p-rms": ({"type": "RMSprop", "lr": 0.005, "centered": True, "momentum": 0.5}, None),
    "p-adagrad": ({"type": "Adagrad", "lr": 0.1, "lr_decay": 0.01}, None),
}


def spec_for(name, opt, sched=None, layers=MLP):
    s = {"name": name, "layers": layers, "loss": "MSELoss", "optimizer": opt, "seed": 4}
    if sched:
        s["scheduler"] = sched
    return s


def data(seed, n):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, generator=g).tolist(), torch.randn(n, 2, generator=g).tolist()


def init_params(seed=9):
    return random_params(build_net(MLP), seed)


def train_steps(d, name, x, y, first, last):
    """Steps first..last (1-based), two pushed batches each. -> [(loss1, loss2, step, lr)]"""
    out = []
    for k in range(first, last + 1):
        i = ((k - 1) * 4) % (len(x) - 4)
        l1 = d.push(name, x[i:i + 3], y[i:i + 3])["loss"]
        l2 = d.push(name, x[i + 3:i + 4], y[i + 3:i + 4])["loss"]
        s = d.step(name)
        out.append((l1, l2, s["step"], s["lr"]))
    return out


def state(d, name):
    m = d.model(name)
    return {"step": m["step"], "loss": m["loss"], "spec": m["spec"],
            "params": d.params(name),
            "history": d.ok("GET", "/v1/models/%s/loss" % name)["history"]}


def model_files(data_dir, name):
    found = []
    for root, dirs, files in os.walk(data_dir):
        for f in files:
            p = os.path.join(root, f)
            if name in os.path.relpath(p, data_dir).split(os.sep) or \
                    any(part.startswith(name + ".") or part == name
                        for part in os.path.relpath(p, data_dir).split(os.sep)):
                found.append(p)
    return found


def listing(data_dir):
    out = []
    for root, dirs, files in os.walk(data_dir):
        for f in files:
            p = os.path.join(root, f)
            out.append("%s (%d bytes)" % (os.path.relpath(p, data_dir), os.path.getsize(p)))
    return "\n".join(sorted(out))


# ---------------------------------------------------------------------------- safetensors
def read_safetensors(buf):
    """Parses a safetensors file strictly (safetensors_io.read) -> {name: ndarray}."""
    return st.read(buf)[0]


def write_safetensors(tensors):
    """{name: ndarray} -> bytes of float32 tensors in name order, as the reference writer."""
    return st.write({k: np.asarray(tensors[k], dtype="<f4") for k in sorted(tensors)})


class Base(DaemonTestCase):
    daemons = []

    def new_daemon(self, **kw):
        d = Daemon(**kw)
        self.addCleanup(d.cleanup)
        d.start()
        type(self).daemon = d
        return d

    def assertSameState(self, got, want, what):
        for k in want:
            self.assertEqual(got[k], want[k], "%s: %s differs after restart" % (what, k))


# ============================================================================ restart
class TestRestart(Base):
    def test_sigterm_restart_continues_identically(self):
        a = self.new_daemon()
        b = self.new_daemon()
        x, y = data(1, 64)
        p0 = init_params()
        for d in (a, b):
            for name, (opt, sched) in OPTIMIZERS.items():
                d.create(spec_for(name, opt, sched))
                d.set_params(name, p0)
        before = {}
        log_a = {}
        for name in OPTIMIZERS:
            log_a[name] = train_steps(a, name, x, y, 1, 10)
            before[name] = state(a, name)
        code = a.stop()
        self.assertEqual(code, 0, "SIGTERM should be a clean exit; log:\n" + a.log_tail())
        a.start()
        names = sorted(m["name"] for m in a.ok("GET", "/v1/models")["models"])
        self.assertEqual(names, sorted(OPTIMIZERS))
        for name in OPTIMIZERS:
            self.assertSameState(state(a, name), before[name], name)
            self.assertEqual(a.model(name)["pending_batches"], 0)
            log_a[name] += train_steps(a, name, x, y, 11, 20)
        for name in OPTIMIZERS:
            log_b = train_steps(b, name, x, y, 1, 20)
            with self.subTest(model=name):
                self.assertEqual(log_a[name], log_b,
                                 "%s: losses/steps/lr after a restart differ from an "
                                 "uninterrupted run" % name)
                self.assertEqual(a.params(name), b.params(name),
                                 "%s: parameters after restart + 10 steps differ from an "
                                 "uninterrupted run" % name)
                self.assertEqual(state(a, name)["history"], state(b, name)["history"])

    def test_restart_matches_torch(self):
        # the restarted model is still the torch model (catches state restored wrongly in
        # both daemons the same way)
        a = self.new_daemon()
        opt, sched = OPTIMIZERS["p-adam"]
        spec = spec_for("tref", opt, sched)
        a.create(spec)
        p0 = init_params(3)
        a.set_params("tref", p0)
        ref = Reference(spec)
        ref.set_params(p0)
        x, y = data(2, 64)
        for k in range(1, 13):
            if k == 7:
                a.restart()
            i = ((k - 1) * 4) % 60
            a.push("tref", x[i:i + 4], y[i:i + 4])
            ref.push(x[i:i + 4], y[i:i + 4])
            a.step("tref")
            ref.step()
        want = ref.params_json()
        got = a.params("tref")
        for kname in want:
            r = close_report(got[kname], want[kname])
            self.assertIsNone(r, "%s after restart differs from torch: %s" % (kname, r))

    def test_delete_survives_restart(self):
        a = self.new_daemon()
        a.create(spec_for("gone", {"type": "SGD", "lr": 0.1}))
        a.create(spec_for("kept", {"type": "SGD", "lr": 0.1}))
        r = a.delete("/v1/models/gone")
        self.assertIn(r.status, (200, 204))
        a.restart()
        self.assertEqual(a.get("/v1/models/gone").status, 404)
        self.assertEqual(a.get("/v1/models/kept").status, 200)
        a.restart(hard=True)
        self.assertEqual(a.get("/v1/models/gone").status, 404)
        self.assertEqual(a.get("/v1/models/kept").status, 200)


# ============================================================================ kill -9
class TestCrash(Base):
    def test_sync_always_kill9_after_acknowledged_steps(self):
        a = self.new_daemon(sync="always")
        twin = self.new_daemon()
        opt, sched = OPTIMIZERS["p-sgdm"]
        p0 = init_params(5)
        for d in (a, twin):
            d.create(spec_for("crash", opt, sched))
            d.set_params("crash", p0)
        x, y = data(3, 64)
        done = 0
        for stop_at in (3, 4, 9, 10):
            train_steps(a, "crash", x, y, done + 1, stop_at)
            a.kill()  # right after the last step was acknowledged
            train_steps(twin, "crash", x, y, done + 1, stop_at)
            done = stop_at
            a.start()
            with self.subTest(after_step=stop_at):
                self.assertEqual(a.model("crash")["step"], stop_at)
                self.assertEqual(a.params("crash"), twin.params("crash"),
                                 "parameters after kill -9 are not those of step %d" % stop_at)
                self.assertEqual(len(a.ok("GET", "/v1/models/crash/loss")["history"]), stop_at)
        # and it goes on exactly like the twin (optimizer + scheduler state survived)
        la = train_steps(a, "crash", x, y, done + 1, done + 5)
        lb = train_steps(twin, "crash", x, y, done + 1, done + 5)
        self.assertEqual(la, lb)
        self.assertEqual(a.params("crash"), twin.params("crash"))

    def test_sync_always_kill9_keeps_created_model_and_put_parameters(self):
        a = self.new_daemon(sync="always")
        a.create(spec_for("fresh1", {"type": "SGD", "lr": 0.1}))
        p = init_params(6)
        a.set_params("fresh1", p)
        a.kill()
        a.start()
        self.assertEqual(a.get("/v1/models/fresh1").status, 200)
        self.assertEqual(f32(a.params("fresh1")), f32(p))

    def test_sync_always_kill9_after_train_and_delete(self):
        a = self.new_daemon(sync="always")
        x, y = data(9, 32)
        a.create(spec_for("trained", {"type": "Adam", "lr": 0.01}))
        a.create(spec_for("deleted", {"type": "SGD", "lr": 0.1}))
        r = a.ok("POST", "/v1/models/trained/train",
                 {"inputs": x, "targets": y, "epochs": 3, "batch_size": 8})
        want = state(a, "trained")
        self.assertIn(a.delete("/v1/models/deleted").status, (200, 204))
        a.kill()
        a.start()
        self.assertEqual(r["step"], 12)
        self.assertSameState(state(a, "trained"), want, "trained")
        self.assertEqual(a.get("/v1/models/deleted").status, 404)

    def test_checkpoint_then_kill9(self):
        a = self.new_daemon()
        opt, sched = OPTIMIZERS["p-adam"]
        a.create(spec_for("ckpt", opt, sched))
        a.set_params("ckpt", init_params(7))
        x, y = data(4, 64)
        train_steps(a, "ckpt", x, y, 1, 4)
        r = a.post("/v1/models/ckpt/checkpoint")
        self.assertIn(r.status, (200, 201, 204), r)
        want = state(a, "ckpt")
        a.kill()
        a.start()
        self.assertSameState(state(a, "ckpt"), want, "ckpt")


    def test_kill9_during_continuous_training_sync_always(self):
        # kill -9 lands at an arbitrary point of a step (maybe mid-write): after restart the
        # model is there, at the last acknowledged step or the one in flight, and its
        # parameters are exactly those of that step
        twin = self.new_daemon()
        a = self.new_daemon(sync="always")
        opt, sched = OPTIMIZERS["p-adam"]
        p0 = init_params(8)
        x, y = data(6, 64)
        twin.create(spec_for("busy", opt, sched))
        twin.set_params("busy", p0)
        snaps = [twin.params("busy")]
        for k in range(1, 61):
            train_steps(twin, "busy", x, y, k, k)
            snaps.append(twin.params("busy"))
        a.create(spec_for("busy", opt, sched))
        a.set_params("busy", p0)
        acked = [0]
        stop = threading.Event()

        def trainer():
            for k in range(1, 61):
                if stop.is_set():
                    return
                try:
                    train_steps(a, "busy", x, y, k, k)
                except (OSError, AssertionError, http.client.HTTPException):
                    return  # the daemon died under us
                acked[0] = k

        t = threading.Thread(target=trainer)
        t.start()
        while acked[0] < 7 and t.is_alive():
            time.sleep(0.001)
        a.kill()
        stop.set()
        t.join()
        last = acked[0]
        a.start()
        step = a.model("busy")["step"]
        self.assertIn(step, (last, last + 1), "acknowledged step %d, restarted at %d" % (last, step))
        self.assertEqual(a.params("busy"), snaps[step])
        self.assertEqual(len(a.ok("GET", "/v1/models/busy/loss")["history"]), step)

    def test_sigterm_during_long_train_request(self):
        a = self.new_daemon()
        a.create(spec_for("long", {"type": "SGD", "lr": 0.01}))
        x, y = data(7, 64)
        result = {}

        def trainer():
            try:
                result["r"] = a.post("/v1/models/long/train",
                                     {"inputs": x, "targets": y, "epochs": 400, "batch_size": 4})
            except (OSError, http.client.HTTPException) as e:
                result["e"] = e

        t = threading.Thread(target=trainer)
        t.start()
        time.sleep(0.05)
        code = a.stop()
        t.join()
        self.assertEqual(code, 0, a.log_tail())
        a.start()
        step = a.model("long")["step"]
        r = result.get("r")
        if r is not None and r.status == 200:
            self.assertEqual(step, r.json()["step"], "acknowledged train not persisted on SIGTERM")
        else:
            # not acknowledged: either nothing or everything happened, never half of a
            # request whose response was lost
            self.assertIn(step, (0, 400 * 16), "half-applied train request: step %d (%r)"
                          % (step, r if r is not None else result.get("e")))

    def test_unusual_names_survive_restart(self):
        a = self.new_daemon()
        # including names that look like the daemon's own file names
        names = ["a.b-c_d", "x" * 64, "9lives", "A", "v1.2.3", "x", "x.etm", "x.etm.tmp",
                 "x.tmp", "x.json", "a.", "a-", "LOCK", "index.json"]
        want = {}
        for i, n in enumerate(names):
            s = spec_for(n, {"type": "SGD", "lr": 0.1})
            s["seed"] = 100 + i
            a.create(s)
            want[n] = a.params(n)
        a.restart()
        self.assertEqual(sorted(m["name"] for m in a.ok("GET", "/v1/models")["models"]), sorted(names))
        for n in names:
            self.assertEqual(a.params(n), want[n], n)

    def test_data_dir_created_if_missing(self):
        d = Daemon()
        self.addCleanup(d.cleanup)
        d.data_dir = os.path.join(d.tmp, "not", "yet", "there")
        d.start()
        type(self).daemon = d
        d.create(spec_for("m", {"type": "SGD", "lr": 0.1}))
        want = d.params("m")
        d.restart()
        self.assertEqual(d.params("m"), want)

    def test_stray_files_in_data_dir(self):
        a = self.new_daemon()
        a.create(spec_for("keep", {"type": "SGD", "lr": 0.1}))
        want = a.params("keep")
        a.stop()
        exts = {os.path.splitext(f)[1] for f in os.listdir(a.data_dir)} - {""}
        with open(os.path.join(a.data_dir, "notes.txt"), "w") as f:
            f.write("hello")
        os.mkdir(os.path.join(a.data_dir, "emptydir"))
        for ext in exts:  # garbage wearing the daemon's own file extension
            with open(os.path.join(a.data_dir, "zzjunk" + ext), "wb") as f:
                f.write(os.urandom(300))
        a.start()
        self.assertEqual([m["name"] for m in a.ok("GET", "/v1/models")["models"]], ["keep"])
        self.assertEqual(a.params("keep"), want)


# ============================================================================ torn files
class TestCorruptFiles(Base):
    def test_corrupt_and_truncated_files_are_not_loaded(self):
        a = self.new_daemon()
        x, y = data(5, 64)
        names = ["good", "flipped", "truncated", "emptied"]
        for n in names:
            a.create(spec_for(n, {"type": "Adam", "lr": 0.01}))
            train_steps(a, n, x, y, 1, 3)
        good = state(a, "good")
        self.assertEqual(a.stop(), 0)
        files = {n: model_files(a.data_dir, n) for n in names}
        for n in names:
            self.assertTrue(files[n], "no file named after model %r in the data dir:\n%s"
                            % (n, listing(a.data_dir)))
        for p in files["flipped"]:
            with open(p, "r+b") as f:
                buf = bytearray(f.read())
                for pos in (len(buf) // 3, len(buf) // 2, (2 * len(buf)) // 3, len(buf) - 3):
                    buf[pos] ^= 0x55
                f.seek(0)
                f.write(buf)
        for p in files["truncated"]:
            os.truncate(p, os.path.getsize(p) // 2)
        for p in files["emptied"]:
            os.truncate(p, 0)
        a.start()
        listed = sorted(m["name"] for m in a.ok("GET", "/v1/models")["models"])
        self.assertEqual(listed, ["good"], "only the intact model may be loaded")
        for n in ("flipped", "truncated", "emptied"):
            with self.subTest(model=n):
                self.assertEqual(a.get("/v1/models/%s" % n).status, 404)
                self.assertEqual(a.post("/v1/models/%s/predict" % n, {"inputs": x[:2]}).status, 404)
                log = a.log()
                self.assertTrue(n in log or any(os.path.basename(p) in log for p in files[n]),
                                "the daemon did not report the bad file of %r; log:\n%s"
                                % (n, a.log_tail()))
        self.assertSameState(state(a, "good"), good, "good")
        self.assertEqual(a.post("/v1/models/good/predict", {"inputs": x[:2]}).status, 200)
        self.assertEqual(a.get("/readyz").status, 200)


# ============================================================================ safetensors
class TestSafetensors(Base):
    LAYERS = [{"type": "Flatten"},
              {"type": "Linear", "in_features": 4, "out_features": 5, "bias": False},
              {"type": "ReLU"},
              {"type": "Linear", "in_features": 5, "out_features": 3}]

    def setUp(self):
        self.d = self.new_daemon()
        self.d.create({"name": "st", "layers": self.LAYERS, "loss": "MSELoss",
                       "optimizer": {"type": "SGD", "lr": 0.1}, "seed": 2})

    def download(self):
        r = self.d.get("/v1/models/st/parameters?format=safetensors")
        self.assertEqual(r.status, 200, r)
        return r.body

    def test_download_parses_and_loads_strict(self):
        buf = self.download()
        tensors = read_safetensors(buf)
        net = build_net(self.LAYERS)
        want = net.state_dict()
        self.assertEqual(sorted(tensors), sorted(want))
        for k, v in tensors.items():
            self.assertEqual(list(v.shape), list(want[k].shape), k)
        n = struct.unpack("<Q", buf[:8])[0]
        hdr = json.loads(buf[8:8 + n])
        self.assertTrue(all(hdr[k]["dtype"] == "F32" for k in want))
        net.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, strict=True)
        js = self.d.params("st")
        for k in want:
            self.assertEqual(tensors[k].tolist(), f32(js[k]), "%s: safetensors != JSON parameters" % k)
        g = torch.Generator().manual_seed(1)
        x = torch.randn(3, 2, 2, generator=g)
        with torch.no_grad():
            out = net.eval()(x)
        r = close_report(self.d.predict("st", x.tolist()), out.tolist())
        self.assertIsNone(r, r)

    def test_upload_octet_stream(self):
        net = build_net(self.LAYERS)
        p = random_params(net, 8)
        body = write_safetensors({k: np.array(v, dtype=np.float32) for k, v in p.items()})
        r = self.d.request("PUT", "/v1/models/st/parameters", body=body,
                           content_type="application/octet-stream")
        self.assertIn(r.status, (200, 204), r)
        self.assertEqual(f32(self.d.params("st")), f32(p))
        # and a download of it round-trips bit for bit
        back = read_safetensors(self.download())
        for k in p:
            self.assertEqual(back[k].tolist(), f32(p[k]))

    def upload(self, body):
        return self.d.request("PUT", "/v1/models/st/parameters", body=body,
                              content_type="application/octet-stream")

    def test_upload_with_metadata_and_any_layout_order(self):
        # files written by other tools carry __metadata__ and lay tensors out in their own
        # order: both are valid safetensors
        net = build_net(self.LAYERS)
        p = random_params(net, 9)
        arrs = {k: np.array(v, dtype=np.float32) for k, v in p.items()}
        body = write_safetensors(arrs)
        n = struct.unpack("<Q", body[:8])[0]
        hdr = json.loads(body[8:8 + n])
        hdr["__metadata__"] = {"format": "pt", "note": "from a test"}
        # reverse the data layout
        blobs, off = [], 0
        for k in sorted(arrs, reverse=True):
            b = arrs[k].tobytes()
            hdr[k]["data_offsets"] = [off, off + len(b)]
            blobs.append(b)
            off += len(b)
        h = json.dumps(hdr).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        r = self.upload(struct.pack("<Q", len(h)) + h + b"".join(blobs))
        self.assertIn(r.status, (200, 204), r)
        self.assertEqual(f32(self.d.params("st")), f32(p))

    def test_upload_f64_refused_by_dtype(self):
        before = self.d.params("st")
        net = build_net(self.LAYERS)
        p = random_params(net, 10)
        hdr, blobs, off = {}, [], 0
        for k in sorted(p):
            b = np.array(p[k], dtype="<f8").tobytes()
            hdr[k] = {"dtype": "F64", "shape": list(np.array(p[k]).shape),
                      "data_offsets": [off, off + len(b)]}
            blobs.append(b)
            off += len(b)
        h = json.dumps(hdr).encode()
        r = self.upload(struct.pack("<Q", len(h)) + h + b"".join(blobs))
        # only F32 and I64 are read (nn/serialize.c): F64 is refused and changes nothing
        self.assertError(r, 400, "dtype", "F64")
        self.assertEqual(self.d.params("st"), before)

    def test_unknown_format_400(self):
        self.assertError(self.d.get("/v1/models/st/parameters?format=xml"), 400, "format")

    def test_bad_uploads_change_nothing(self):
        before = self.d.params("st")
        good = {k: np.array(v, dtype=np.float32) + 1 for k, v in before.items()}
        cases = {}
        t = dict(good)
        t["3.bias"] = np.zeros(4, dtype=np.float32)
        cases["wrong shape"] = (write_safetensors(t), "3.bias")
        t = dict(good)
        t["7.weight"] = np.zeros((1, 1), dtype=np.float32)
        cases["unknown name"] = (write_safetensors(t), "7.weight")
        full = write_safetensors(good)
        cases["truncated"] = (full[:len(full) - 7], None)
        cases["header past end"] = (struct.pack("<Q", 10 ** 6) + full[8:], None)
        cases["short"] = (b"\x01\x02", None)
        cases["not json header"] = (struct.pack("<Q", 8) + b"notjson!" + b"\0" * 16, None)
        for what, (body, bad) in cases.items():
            with self.subTest(case=what):
                r = self.d.request("PUT", "/v1/models/st/parameters", body=body,
                                   content_type="application/octet-stream")
                if bad:
                    self.assertError(r, 400, bad)
                else:
                    self.assertError(r, 400)
                self.assertEqual(self.d.params("st"), before)


if __name__ == "__main__":
    dm.run_tests()
