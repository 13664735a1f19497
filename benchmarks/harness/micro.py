"""In-process rows: workers speaking the `run <workload> <iters>` line
protocol (benchmarks/et_bench.c, benchmarks/torch_bench.py), calibration,
and samples that alternate between the sides of a row."""
import math
import select
import statistics
import subprocess
from pathlib import Path

from .common import BenchError, SideFailed, summarize, tail, with_retry


class Worker:
    """A process speaking the `run <workload> <iters>` line protocol."""

    def __init__(self, name, argv, env, logdir):
        self.name, self.argv, self.env = name, argv, env
        self.logpath = Path(logdir) / f"{name}.stderr"
        self.proc = None
        self.banner = ""

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def start(self):
        self.stop()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=open(self.logpath, "ab"), env=self.env, text=True,
                                     bufsize=1)
        line = self._readline(120)
        if not line.startswith("ready"):
            raise BenchError(f"{self.name} did not start: {line!r}\n{tail(self.logpath)}")
        self.banner = line[len("ready"):].strip()

    def _readline(self, timeout):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.proc.kill()
            raise BenchError(f"{self.name}: no answer within {timeout:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            rc = self.proc.wait()
            why = f"signal {-rc}" if rc < 0 else f"status {rc}"
            raise BenchError(f"{self.name} exited ({why})\n{tail(self.logpath)}")
        return line.strip()

    def ensure(self):
        if self.proc is None or self.proc.poll() is not None:
            self.start()

    def run(self, workload, iters, timeout=300):
        """Wall seconds for `iters` repetitions, the value of the last one, and
        the CPU seconds the process spent on them."""
        self.ensure()
        self.proc.stdin.write(f"run {workload} {iters}\n")
        self.proc.stdin.flush()
        line = self._readline(timeout)
        if not line.startswith("ok "):
            raise BenchError(f"{self.name} {workload}: {line}")
        _, ns, value, cpu_ns = line.split()
        value = float(value)
        if not math.isfinite(value):
            raise BenchError(f"{self.name} {workload}: result is not finite ({value})")
        return float(ns) / 1e9, value, float(cpu_ns) / 1e9

    def query(self, command, timeout=60):
        """One line answer to a non-timing command (e.g. `info <workload>`)."""
        self.ensure()
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        line = self._readline(timeout)
        if not line.startswith("ok"):
            raise BenchError(f"{self.name} {command}: {line}")
        return line[2:].strip()

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def calibrate(worker, workload, plan):
    """Warm up for plan.warm_s; return iterations per sample of about sample_s."""
    iters, spent, per = 1, 0.0, None
    while True:
        t, _, _ = worker.run(workload, iters)
        spent += t
        per = t / iters
        if spent >= plan["warm_s"]:
            break
        iters = max(1, min(iters * 10, int(plan["warm_s"] / 4 / max(per, 1e-9))))
    return max(1, round(plan["sample_s"] / max(per, 1e-9)))


def measure_micro(row, workers, plan, clock):
    """Samples rotate between the sides (ours, anchor, limit; the order
    reversed every other round), each the mean time of a batch of
    iterations in wall-clock and process CPU time.  When only the anchor or
    the limit fails, our side is still measured and that column is "n/a"."""
    sides = {"ours": row["ours"], "anchor": row.get("anchor_wl"), "limit": row.get("limit_wl")}
    sides = {k: v for k, v in sides.items() if v is not None}
    failed = {}

    def attempt(side, fn):
        if side in failed:
            return None
        w = sides[side][0]
        try:
            return with_retry(side, lambda _retry: fn(), workers[w].stop)
        except SideFailed as e:
            if side == "ours":
                raise BenchError(str(e)) from e
            failed[side] = str(e)
            return None

    iters = {}
    for side, (w, wl) in sides.items():
        iters[side] = attempt(side, lambda w=w, wl=wl: calibrate(workers[w], wl, plan))
    wall = {s: [] for s in sides}
    cpu = {s: [] for s in sides}
    values = {}
    names = list(sides)
    for i in range(plan["samples"]):
        for side in (names if i % 2 == 0 else names[::-1]):
            w, wl = sides[side]
            r = attempt(side, lambda w=w, wl=wl, n=iters.get(side): workers[w].run(wl, n))
            if r is None:
                continue
            t, values[side], c = r
            wall[side].append(t / iters[side])
            cpu[side].append(c / iters[side])
    main = wall if clock == "wall" else cpu
    res = {"kind": "time", "unit": "s/iter", "clock": clock, "iterations_per_sample": iters,
           "ours": summarize(main["ours"]), "wall": {"ours": summarize(wall["ours"])},
           "cpu": {"ours": summarize(cpu["ours"])}, "last_value": values,
           "target": row.get("target"), "limit_target": row.get("limit_target"),
           "errors": {}}
    ok = True
    for side in ("anchor", "limit"):
        if side not in sides:
            continue
        if side in failed or not main[side]:
            res["errors"][side] = failed.get(side, "no samples")
            continue
        res[side] = summarize(main[side])
        res["wall"][side] = summarize(wall[side])
        res["cpu"][side] = summarize(cpu[side])
    if "anchor" in res:
        ratio = {k: statistics.median(d["anchor"]) / statistics.median(d["ours"])
                 for k, d in (("wall", wall), ("cpu", cpu))}
        res.update(ratio=ratio[clock], ratio_wall=ratio["wall"], ratio_cpu=ratio["cpu"])
        if row.get("target") is not None:
            ok = ok and ratio[clock] >= row["target"]
    elif "anchor" in sides:
        ok = None
    if "limit" in res:
        # fraction of the limit: limit time / our time (1.0 = at the limit)
        res["fraction"] = res["limit"]["median"] / res["ours"]["median"]
        if row.get("limit_target") is not None:
            ok = ok and res["fraction"] >= row["limit_target"] if ok is not None else ok
    elif "limit" in sides and row.get("limit_target") is not None:
        ok = None
    res["status"] = "n/a" if ok is None else ("ok" if ok else "MISS")
    if ok is None:
        res["error"] = "; ".join(f"{k} failed: {v}" for k, v in res["errors"].items())
    return res
