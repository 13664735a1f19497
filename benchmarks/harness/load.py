"""The machine's load during a row.

The benchmark machine is shared, so every row records how busy the machine
was while it ran.  A thread samples, every 100 ms:

- every thread in state R (running or waiting for a CPU) at that instant,
  from one pass over /proc;
- which of those belong to the benchmark: threads of the processes the
  harness started (workers, servers, wrk, nginx) and of their descendants,
  the sampler itself left out; kernel threads (children of kthreadd:
  kworkers, RCU, kdamond) are counted apart as `kernel` -- they run on an
  idle machine too, for a few ms at a time; the rest are other people's.

`others` = the mean number of runnable threads not the benchmark's: what
other people's jobs asked of the CPUs during the row (the commands that
asked most are kept as `others_top` in the JSON).  A row's load per core is
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


def _scan():
    """One pass over /proc: {pid: (ppid, comm, runnable threads)}."""
    procs = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            tasks = os.listdir(f"/proc/{d}/task")
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        n = 0
        for t in tasks:
            try:
                ts = Path(f"/proc/{d}/task/{t}/stat").read_text()
            except OSError:
                continue
            n += ts.rsplit(")", 1)[1].split()[0] == "R"
        procs[int(d)] = (ppid, comm, n)
    return procs


class LoadSampler:
    """Samples the runnable threads while a row runs; `own_pids()` returns the
    root PIDs of the benchmark's processes (their descendants count too).

    Every sample classifies each runnable thread afresh (one pass over
    /proc), so a wrk run that starts between two samples is the benchmark's
    from its first sample on; an earlier version refreshed the benchmark's
    PID set once a second and counted the first second of every wrk run as
    other people's load (it read 1-2 foreign threads on an idle machine)."""

    def __init__(self, own_pids, ncpu, interval=0.1):
        self.own_pids, self.ncpu, self.interval = own_pids, ncpu, interval
        self._stop = threading.Event()
        self._thread = None
        self._samples = []
        self._foreign = {}

    def _sample(self):
        roots = {os.getpid()} | set(self.own_pids())
        procs = _scan()
        own = others = kernel = 0
        for pid, (ppid, comm, n) in procs.items():
            if not n:
                continue
            if pid == 2 or ppid == 2:      # kernel threads (kworker, rcu, kdamond)
                kernel += n
                continue
            p, mine, hops = pid, False, 0
            while p > 1 and hops < 64:
                if p in roots:
                    mine = True
                    break
                p, hops = procs.get(p, (0, "", 0))[0], hops + 1
            if mine:
                own += n
            else:
                others += n
                self._foreign[comm] = self._foreign.get(comm, 0) + n
        # the sampler is running while it reads; it is one of ours
        return max(own - 1, 0), others, kernel

    def _run(self):
        while not self._stop.wait(self.interval):
            self._samples.append(self._sample())

    def start(self):
        self._samples, self._foreign = [], {}
        self._load1_start = _loadavg()[0]
        self._t0 = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self, need):
        """Stop sampling; `need` = CPUs the row uses by design."""
        self._stop.set()
        self._thread.join()
        s = self._samples or [(0, 0, 0)]
        own = sum(a for a, _, _ in s) / len(s)
        others = sum(b for _, b, _ in s) / len(s)
        kernel = sum(c for _, _, c in s) / len(s)
        per_core = (others + need) / self.ncpu
        top = sorted(self._foreign.items(), key=lambda kv: -kv[1])[:5]
        return {"loadavg1": [self._load1_start, _loadavg()[0]], "run_queue": own + others + kernel,
                "kernel": kernel,
                "own": own, "others": others, "need": need, "per_core": per_core,
                "others_top": {c: round(n / len(s), 2) for c, n in top},
                "samples": len(self._samples), "seconds": time.monotonic() - self._t0,
                "noisy": per_core > NOISY_ABOVE}
