"""Small helpers shared by the harness modules."""
import os
import socket
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
BENCH_DIR = ROOT / "benchmarks"
TORCH_PYTHON = os.environ.get("ET_BENCH_PYTHON", "/usr/bin/python3")


class BenchError(Exception):
    pass


class SideFailed(Exception):
    """One side of a row failed twice (the first failure is retried)."""

    def __init__(self, side, message):
        super().__init__(message)
        self.side = side


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def tail(path, n=15):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def summarize(xs):
    return {"min": min(xs), "median": statistics.median(xs), "max": max(xs), "samples": xs}


def with_retry(side, fn, restart=None):
    """fn(retry), retried once after restart() when it raises BenchError: a
    slow or loaded machine must not fail a row on one hiccup.  SideFailed
    after that."""
    try:
        return fn(False)
    except BenchError as e:
        log(f"bench: {side} side failed ({str(e).splitlines()[0]}); retrying once")
        try:
            if restart:
                restart()
            return fn(True)
        except BenchError as e2:
            raise SideFailed(side, str(e2)) from e2


def free_port():
    """A port the kernel considers free right now (for servers that cannot
    be told to listen on port 0 and report it: nginx, plain uvicorn.run)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_flags():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()
