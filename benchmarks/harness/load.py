"""The machine's load during a row.

The benchmark machine is shared, so every row records how busy the machine
was while it ran.  A thread samples, every 100 ms:

- the run queue: /proc/loadavg's fourth field ("running/total"), the number
  of threads that are running or waiting for a CPU at that instant, minus
  the sampler itself;
- how many of those belong to the benchmark: threads in state R of the
  processes the harness started (workers, servers, wrk, nginx) and of their
  descendants.

`others` = the mean of (run queue - benchmark threads): what other people's
jobs asked of the CPUs during the row.  A row's load per core is
(others + need) / CPUs, where `need` is what the row itself asks for by
design: its compute threads for an in-process row (the two sides alternate,
so one side runs at a time), every CPU for an HTTP row (wrk and the server
saturate the machine on purpose).  Above 1.0 there were more runnable
threads than CPUs, so the row's processes waited for a CPU part of the time:
the row is marked "noisy" and not judged.  The 1-minute load average at the
start and end of the row is kept too (it lags by about a minute).
"""
import os
import threading
import time
from pathlib import Path

NOISY_ABOVE = 1.0


def _loadavg():
    f = Path("/proc/loadavg").read_text().split()
    return float(f[0]), int(f[3].split("/")[0])


def _children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def _running_threads(pid):
    n = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for t in tasks:
        try:
            state = Path(f"/proc/{pid}/task/{t}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        n += state == "R"
    return n


class LoadSampler:
    """Samples the run queue while a row runs; `own_pids()` returns the
    root PIDs of the benchmark's processes (their descendants count too)."""

    def __init__(self, own_pids, ncpu, interval=0.1):
        self.own_pids, self.ncpu, self.interval = own_pids, ncpu, interval
        self._stop = threading.Event()
        self._thread = None
        self._samples = []

    def _pids(self):
        roots = {os.getpid()} | set(self.own_pids())
        kids = _children_map()
        out, todo = set(), list(roots)
        while todo:
            p = todo.pop()
            if p in out:
                continue
            out.add(p)
            todo.extend(kids.get(p, ()))
        return out

    def _run(self):
        pids, refreshed = self._pids(), time.monotonic()
        while not self._stop.wait(self.interval):
            if time.monotonic() - refreshed > 1.0:   # wrk runs come and go
                pids, refreshed = self._pids(), time.monotonic()
            _, running = _loadavg()
            own = sum(_running_threads(p) for p in pids)
            # the sampler is running while it reads; it is one of ours
            self._samples.append((max(running - 1, 0), max(own - 1, 0)))

    def start(self):
        self._samples = []
        self._load1_start = _loadavg()[0]
        self._t0 = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self, need):
        """Stop sampling; `need` = CPUs the row uses by design."""
        self._stop.set()
        self._thread.join()
        s = self._samples or [(0, 0)]
        queue = sum(a for a, _ in s) / len(s)
        own = sum(b for _, b in s) / len(s)
        others = max(queue - own, 0.0)
        per_core = (others + need) / self.ncpu
        return {"loadavg1": [self._load1_start, _loadavg()[0]], "run_queue": queue,
                "own": own, "others": others, "need": need, "per_core": per_core,
                "samples": len(self._samples), "seconds": time.monotonic() - self._t0,
                "noisy": per_core > NOISY_ABOVE}
