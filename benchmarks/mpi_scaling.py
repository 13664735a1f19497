"""mpi_scaling.py - the cost of data-parallel training with easytorchd --mpi (issue 19;
docs/distributed.md "Performance").

    /usr/bin/python3 benchmarks/mpi_scaling.py EASYTORCHD [--ranks 1,2,4] [--steps 30]
                     [--batch 64] [--sizes 784-1024-1024-10,784-256-256-10,784-64-10]
                     [--bucket-mb 0,1] [--repeat 1]

For each model size and rank count it starts `mpirun -n N easytorchd --mpi` (loopback,
--oversubscribe), trains `steps` minibatches of `batch` rows per rank (weak scaling: the
global batch is batch x N) and reads from /metrics the wall time spent in the gradient
allreduce and in the broadcast of generator and buffers.  Per step it prints the whole
step (train call time / steps), the allreduce, the broadcast and the rest (compute:
forward, backward, optimizer, JSON), plus the load average: the numbers are of a shared
machine.  The allreduce sizes and times are what docs/distributed.md's cost model is
fitted to.

--bucket-mb takes several --mpi-bucket-mb values (0: one allreduce after the backward) and
measures them side by side, --repeat times each, interleaved (so drifting load hits them
alike); then the allreduce column is the wait the backward did not hide, and "cpu ms" is
the CPU time (user + system, /proc) of all ranks per step -- steadier than wall time on a
shared machine.
"""
import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "server"))
import daemon  # noqa: E402
import mpicluster  # noqa: E402


def spec(sizes):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append({"type": "Linear", "in_features": sizes[i], "out_features": sizes[i + 1]})
        if i < len(sizes) - 2:
            layers.append({"type": "ReLU"})
    return {"name": "m", "layers": layers, "loss": "CrossEntropyLoss",
            "optimizer": {"type": "SGD", "lr": 0.01, "momentum": 0.9}, "seed": 1}


def metric(text, name):
    m = re.search(r"^%s ([0-9.e+-]+)$" % name, text, re.M)
    return float(m.group(1)) if m else 0.0


def cpu_seconds(pids):
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


def run(n, sizes, steps, batch, bucket_mb=0.0):
    c = mpicluster.Cluster(n, extra_args=["--mpi-check-every", "0",
                                          "--mpi-bucket-mb", repr(bucket_mb)]).start()
    try:
        rk = c.rank(0)
        rk.create(spec(sizes))
        rows = batch * n
        x = [[((i * 31 + j * 17) % 97) / 97.0 for j in range(sizes[0])] for i in range(rows)]
        y = [i % sizes[-1] for i in range(rows)]
        body = {"inputs": x, "targets": y, "epochs": 2, "batch_size": rows, "shuffle": False}
        rk.ok("POST", "/v1/models/m/train", body)  # warm-up
        before = rk.get("/metrics").body.decode()
        body["epochs"] = steps
        pids = [c.rank(r).pid for r in range(n)]
        cpu0 = cpu_seconds(pids)
        t0 = time.perf_counter()
        rk.ok("POST", "/v1/models/m/train", body)
        wall = time.perf_counter() - t0
        cpu = cpu_seconds(pids) - cpu0
        after = rk.get("/metrics").body.decode()
        ar = (metric(after, "easytorch_cluster_allreduce_seconds_total") -
              metric(before, "easytorch_cluster_allreduce_seconds_total"))
        bc = (metric(after, "easytorch_cluster_bcast_seconds_total") -
              metric(before, "easytorch_cluster_bcast_seconds_total"))
        nb = (metric(after, "easytorch_cluster_allreduce_bytes_total") -
              metric(before, "easytorch_cluster_allreduce_bytes_total")) / steps
    finally:
        c.stop()
        c.cleanup()
    return wall / steps, ar / steps, bc / steps, nb, cpu / steps


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("easytorchd")
    ap.add_argument("--ranks", default="1,2,4")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--sizes", default="784-1024-1024-10,784-256-256-10,784-64-10")
    ap.add_argument("--bucket-mb", default="0")
    ap.add_argument("--repeat", type=int, default=1)
    a = ap.parse_args()
    daemon.DAEMON_PATH = os.path.abspath(a.easytorchd)
    print("load average before: %s" % " ".join("%.2f" % v for v in os.getloadavg()))
    print("%-18s %5s %7s %10s %10s %12s %10s %10s %10s %9s" % (
        "model", "ranks", "bucket", "params", "MB/step", "step ms", "allred ms", "bcast ms",
        "compute ms", "cpu ms"))
    buckets = [float(v) for v in a.bucket_mb.split(",")]
    for s in a.sizes.split(","):
        sizes = [int(v) for v in s.split("-")]
        params = sum(sizes[i] * sizes[i + 1] + sizes[i + 1] for i in range(len(sizes) - 1))
        for n in [int(v) for v in a.ranks.split(",")]:
            for rep in range(a.repeat):
                for b in buckets:  # interleaved: the same load for each
                    step, ar, bc, nb, cpu = run(n, sizes, a.steps, a.batch, b)
                    print("%-18s %5d %7g %10d %10.2f %12.2f %10.3f %10.3f %10.2f %9.2f" % (
                        s, n, b, params, nb / 1e6, step * 1e3, ar * 1e3, bc * 1e3,
                        (step - ar - bc) * 1e3, cpu * 1e3))
                    sys.stdout.flush()
    print("load average after: %s" % " ".join("%.2f" % v for v in os.getloadavg()))


if __name__ == "__main__":
    main()
