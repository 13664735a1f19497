"""The real daemon's save path under file-system faults, injected by an LD_PRELOAD shim
(tests/hardening/faultfs.c): ENOSPC, EDQUOT and EIO on write, a short write, a failing
fsync of the file or of the directory, a failing rename.  With --sync always, for each:

  - the request that hits the fault is answered 507 (full disk or quota) or 500 with a
    message naming the model, the file and the reason;
  - the daemon keeps serving, the model is as it was before that request, and the same
    request succeeds once the fault is gone;
  - after kill -9 and a restart (without the shim), the model file loads and holds exactly
    the acknowledged changes: nothing acknowledged is lost, nothing refused is there.

    /usr/bin/python3 tests/hardening/test_faults.py EASYTORCHD FAULTFS_SO
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "server"))
import daemon as dm  # noqa: E402
from daemon import Daemon  # noqa: E402

SHIM = None

SPEC = {"name": "m", "seed": 1,
        "layers": [{"type": "Linear", "in_features": 2, "out_features": 3}, {"type": "ReLU"},
                   {"type": "Linear", "in_features": 3, "out_features": 1}],
        "loss": "MSELoss", "optimizer": {"type": "Adam", "lr": 0.1}}
BATCH = {"inputs": [[1, 2], [3, -1]], "targets": [[0.5], [-1]]}

FAULTS = [  # (control line, status, what the message says)
    ("write ENOSPC", 507, "writing m.etm: No space left on device"),
    ("write EDQUOT", 507, "writing m.etm: Disk quota exceeded"),
    ("write EIO", 500, "writing m.etm: Input/output error"),
    ("short ENOSPC", 507, "writing m.etm: No space left on device"),
    ("fsync EIO", 500, "fsync of m.etm: Input/output error"),
    ("rename EIO", 500, "renaming the temp file to m.etm: Input/output error"),
    ("fsyncdir EIO", 500, "fsync of the data directory after writing m.etm"),
]


class Checks:
    def __init__(self):
        self.passed = self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print("ok: " + name, flush=True)
        else:
            self.failed += 1
            print("FAIL: %s: %s" % (name, detail), flush=True)
        return ok


def main():
    global SHIM
    dm.DAEMON_PATH = os.path.abspath(sys.argv[1])
    SHIM = os.path.abspath(sys.argv[2])
    c = Checks()
    d = Daemon(sync="always")
    data = os.path.realpath(d.data_dir)
    ctl = os.path.join(d.tmp, "fault")
    d.env = {"LD_PRELOAD": SHIM, "ET_FAULT_DIR": data, "ET_FAULT_CTL": ctl,
             # an ASan build wants its runtime first; the shim only wraps three calls
             "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}

    def fault(line):
        with open(ctl, "w") as f:
            f.write(line)

    try:
        d.start()
        r = d.post("/v1/models", SPEC)
        c.check("define", r.status == 201, r)
        acked = 0
        r = d.post("/v1/models/m/batches", BATCH)
        acked += r.status == 200
        for line, status, says in FAULTS:
            before = d.get("/v1/models/m").json()
            params = d.get("/v1/models/m/parameters").json()
            for what, method, path, obj in (("batches", "POST", "/v1/models/m/batches", BATCH),
                                            ("step", "POST", "/v1/models/m/step", None)):
                fault(line)
                r = d.request(method, path, obj=obj)
                fault("")
                msg = r.error() if r.status >= 400 else ""
                c.check("%s under %s: %d and the message" % (what, line, status),
                        r.status == status and 'saving model "m" failed' in msg and says in msg
                        and "the request changed nothing" in msg, "%d %s" % (r.status, r.body[:300]))
                after = d.get("/v1/models/m").json()
                c.check("%s under %s: the model is unchanged" % (what, line),
                        after == before and d.get("/v1/models/m/parameters").json() == params,
                        "%s\nthen %s" % (before, after))
                r = d.request(method, path, obj=obj)
                c.check("%s after %s: works again" % (what, line), r.status == 200, r)
                before = d.get("/v1/models/m").json()
                params = d.get("/v1/models/m/parameters").json()
            # what is acknowledged now: the same number of batches were pushed and stepped
            r = d.post("/v1/models/m/batches", BATCH)
            acked += r.status == 200
        state = d.get("/v1/models/m").json()
        params = d.get("/v1/models/m/parameters").json()
        temp = [f for f in os.listdir(data) if ".tmp." in f]
        c.check("no temp file left", temp == [], temp)
        d.kill()  # kill -9: only what is on disk survives
        d.env = None
        d.start()
        c.check("the file loads after kill -9", "loaded model m" in d.log(), d.log_tail(500))
        got = d.get("/v1/models/m").json()
        c.check("nothing acknowledged lost, nothing refused kept: step %d, pending %d"
                % (got["step"], got["pending_batches"]),
                got == state and d.get("/v1/models/m/parameters").json() == params
                and got["step"] == len(FAULTS) and got["pending_batches"] == 1,
                "%s\nwant %s" % (got, state))
        c.check("the daemon serves", d.post("/v1/models/m/predict", {"inputs": [[1, 2]]}).status == 200)
    except Exception as e:  # noqa: BLE001
        c.check("run", False, "%s: %s\n%s" % (type(e).__name__, e, d.log_tail(1000)))
    finally:
        d.cleanup()
    print("%d passed, %d failed" % (c.passed, c.failed))
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
