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
a ratio >= 1 / 1.3.

Where the two processes run (row["pin"], with one compute thread): the
daemon and wrk on the SAME CPU for the verdict ("ours"), and -- reported
beside it -- the daemon on one CPU and wrk on another ("cross").  On this
VM a wake-up of the other CPU costs the waker tens of microseconds of CPU
time when that CPU is idle (docs/performance.md, "Why the daemon_train rows
moved"): unpinned, the rows measured that cost or not depending on whether
other work kept the CPUs busy (5.45x in the quiet full run, 2.2-2.5x rerun
at load 2.5-3.7).  With more compute threads nothing is pinned.

Parts of the daemon's time, also alternating: "dispatch" is the daemon's
whole handling of the request without a socket (etd_bench dispatch_train:
admission, routing, parse, step, history, events, answer, on a registry of
its own), so ours - dispatch is what HTTP and the socket cost."""
import json
import math
import os
import statistics
from pathlib import Path

from .common import BenchError, SideFailed, summarize, with_retry
from .http import check_response, encode_body, http_body, wrk
from .micro import calibrate

TARGET_FACTOR = 1.3


def measure_daemon_train(row, server, workers, plan, tmp, own_pids):
    """row: id, model (the daemon model's name), cols, batch, step_wl (the
    et_bench workload of the same step), pin (see above).  workers: "c"
    (et_bench) and "etd" (etd_bench started with --body <the row's body
    file> --model <its spec>)."""
    body_file = Path(tmp) / f"{row['id']}.json"
    if not body_file.exists():
        raise BenchError(f"{row['id']}: body file {body_file} was not written")
    path = f"/v1/models/{row['model']}/train"

    pin = row.get("pin") and (os.cpu_count() or 1) >= 2
    placements = {"ours": (0, 0), "cross": (0, 1)} if pin else {"ours": (None, None)}

    def http_side(side):
        def run(retry):
            daemon_cpu, wrk_cpu = placements[side]
            server.pin(None if daemon_cpu is None else {daemon_cpu})
            return wrk(server, path, body_file, 1, plan["http_run_s"] * (2 if retry else 1),
                       own_pids, cpu=wrk_cpu)
        return run

    def guarded(side, fn, restart):
        try:
            return with_retry(side, fn, restart)
        except SideFailed as e:
            raise BenchError(str(e)) from e

    guarded("ours", lambda retry: check_response(server, "train", body_file.read_bytes(),
                                                 row["batch"], "json", row["model"]),
            server.ensure_running)
    anchor_sides = {"step": ("c", row["step_wl"]), "parse": ("etd", "parse_train_json"),
                    "dispatch": ("etd", "dispatch_train")}
    iters = {}
    for name, (w, wl) in anchor_sides.items():
        iters[name] = guarded(name, lambda retry, w=w, wl=wl: calibrate(workers[w], wl, plan),
                              workers[w].stop)
    def warm(retry):
        server.pin(None if placements["ours"][0] is None else {placements["ours"][0]})
        return wrk(server, path, body_file, 1, plan["http_warm_s"], own_pids,
                   cpu=placements["ours"][1])
    guarded("ours", warm, server.ensure_running)

    order = list(placements) + list(anchor_sides)
    wall = {k: [] for k in order}
    cpu = {k: [] for k in order}
    for i in range(plan["samples"]):
        for side in (order if i % 2 == 0 else order[::-1]):
            if side in placements:
                r = guarded(side, http_side(side), server.ensure_running)
                wall[side].append(1.0 / r["rps"])
                cpu[side].append(r["cpu_per_request"])
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
            "parts": {k: summarize(main[k]) for k in order if k != "ours"},
            "placement": {k: {"daemon_cpu": d, "wrk_cpu": w} for k, (d, w) in placements.items()},
            "wall": {k: summarize(v) for k, v in wall.items()},
            "cpu": {k: summarize(v) for k, v in cpu.items()},
            "ratio": ratio[clock], "ratio_wall": ratio["wall"], "ratio_cpu": ratio["cpu"],
            "factor": 1.0 / ratio[clock], "target_factor": TARGET_FACTOR, "errors": {},
            "status": "ok" if ok else "MISS"}


def write_spec(row, tmp):
    """The row's model definition (name included), for etd_bench --model."""
    spec_file = Path(tmp) / f"{row['id']}.model.json"
    spec_file.write_text(json.dumps(dict(row["spec"], name=row["model"])))
    return spec_file


def write_body(row, tmp):
    """The row's request body (the contract's nested lists), as the HTTP rows make it."""
    body_file = Path(tmp) / f"{row['id']}.json"
    body_file.write_bytes(encode_body(http_body("train", row["batch"], row["cols"]), "json"))
    return body_file
