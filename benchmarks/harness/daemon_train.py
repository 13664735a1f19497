"""The daemon_train rows (issue 16): easytorchd's `train` call on a small
model, one request at a time, against what it cannot go below -- the same
training step in-process (et_bench) plus the daemon's own parse of the same
request body (etd_bench: etd_json_parse, the arrays, the tensors), both
measured in the same run, their samples alternating with the daemon's.

Our side: wrk on ONE keep-alive connection (-t1 -c1), so requests never
queue; per request the wall time (1 / req/s: the whole round trip, wrk's
own share included) and the daemon's CPU time (utime + stime of its process
over the run / requests: parsing, the step, the answer, the HTTP and socket
work).  Anchor: step + parse per sample, wall and CPU alike.  The ratio is
anchor / ours (1.0 = the daemon adds nothing); the target is "within 1.3x",
a ratio >= 1 / 1.3."""
import math
import statistics
from pathlib import Path

from .common import BenchError, SideFailed, summarize, with_retry
from .http import check_response, encode_body, http_body, wrk
from .micro import calibrate

TARGET_FACTOR = 1.3


def measure_daemon_train(row, server, workers, plan, tmp, own_pids):
    """row: id, model (the daemon model's name), cols, batch, step_wl (the
    et_bench workload of the same step).  workers: "c" (et_bench) and
    "etd" (etd_bench started with --body <the row's body file>)."""
    body_file = Path(tmp) / f"{row['id']}.json"
    if not body_file.exists():
        raise BenchError(f"{row['id']}: body file {body_file} was not written")
    path = f"/v1/models/{row['model']}/train"

    def ours(retry):
        return wrk(server, path, body_file, 1, plan["http_run_s"] * (2 if retry else 1),
                   own_pids)

    def guarded(side, fn, restart):
        try:
            return with_retry(side, fn, restart)
        except SideFailed as e:
            raise BenchError(str(e)) from e

    guarded("ours", lambda retry: check_response(server, "train", body_file.read_bytes(),
                                                 row["batch"], "json", row["model"]),
            server.ensure_running)
    anchor_sides = {"step": ("c", row["step_wl"]), "parse": ("etd", "parse_train_json")}
    iters = {}
    for name, (w, wl) in anchor_sides.items():
        iters[name] = guarded(name, lambda retry, w=w, wl=wl: calibrate(workers[w], wl, plan),
                              workers[w].stop)
    guarded("ours", lambda retry: wrk(server, path, body_file, 1, plan["http_warm_s"], own_pids),
            server.ensure_running)

    wall = {"ours": [], "step": [], "parse": []}
    cpu = {"ours": [], "step": [], "parse": []}
    order = ["ours", "step", "parse"]
    for i in range(plan["samples"]):
        for side in (order if i % 2 == 0 else order[::-1]):
            if side == "ours":
                r = guarded("ours", ours, server.ensure_running)
                wall["ours"].append(1.0 / r["rps"])
                cpu["ours"].append(r["cpu_per_request"])
                continue
            w, wl = anchor_sides[side]
            t, value, c = guarded(side, lambda retry, w=w, wl=wl: workers[w].run(wl, iters[side]),
                                  workers[w].stop)
            if not math.isfinite(value):
                raise BenchError(f"{side}: result is not finite ({value})")
            wall[side].append(t / iters[side])
            cpu[side].append(c / iters[side])
    for d in (wall, cpu):   # the anchor: sample i of the step + sample i of the parse
        d["anchor"] = [s + p for s, p in zip(d["step"], d["parse"])]
    clock = row["clock"]
    main = cpu if clock == "cpu" else wall
    ratio = {k: statistics.median(d["anchor"]) / statistics.median(d["ours"])
             for k, d in (("wall", wall), ("cpu", cpu))}
    ok = ratio[clock] >= 1.0 / TARGET_FACTOR
    return {"kind": "time", "unit": "s/request", "clock": clock,
            "iterations_per_sample": iters, "body_bytes": body_file.stat().st_size,
            "ours": summarize(main["ours"]), "anchor": summarize(main["anchor"]),
            "parts": {k: summarize(main[k]) for k in ("step", "parse")},
            "wall": {k: summarize(v) for k, v in wall.items()},
            "cpu": {k: summarize(v) for k, v in cpu.items()},
            "ratio": ratio[clock], "ratio_wall": ratio["wall"], "ratio_cpu": ratio["cpu"],
            "factor": 1.0 / ratio[clock], "target_factor": TARGET_FACTOR, "errors": {},
            "status": "ok" if ok else "MISS"}


def write_body(row, tmp):
    """The row's request body (the contract's nested lists), as the HTTP rows make it."""
    body_file = Path(tmp) / f"{row['id']}.json"
    body_file.write_bytes(encode_body(http_body("train", row["batch"], row["cols"]), "json"))
    return body_file
