"""mpicluster.py - `mpirun -n N easytorchd --mpi` for the tests (test_mpi.py).

Cluster starts the ranks on free loopback ports (--listen 127.0.0.1:0: each rank
picks its own and prints it; mpirun's --tag-output says whose line it is), waits
until every rank is ready, and stops the job: SIGTERM to mpirun, then SIGKILL
after a bound. rank(r) is a client with daemon.Daemon's request helpers.
"""
import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import daemon

START_TIMEOUT = 60
STOP_TIMEOUT = 30


def mpi_env():
    env = dict(os.environ)
    for k in [k for k in env if k.startswith("EASYTORCH_")]:
        del env[k]
    # Open MPI refuses root without both (containers, CI)
    env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
    env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
    # more ranks than cores (--oversubscribe): yield instead of spinning while idle
    env["OMPI_MCA_mpi_yield_when_idle"] = "1"
    # an ASan build: Open MPI keeps what MPI_Init allocated (in components it dlopens and
    # unloads, whose frames LeakSanitizer cannot name, so no suppression matches them);
    # leaks are reported without failing the exit status, and sanitizer_problems() fails
    # the test on any report that involves our code (or any other sanitizer report)
    env["LSAN_OPTIONS"] = "exitcode=0"
    return env


class RankClient(daemon.Daemon):
    """The request helpers of daemon.Daemon against one rank (no process of its own)."""

    def __init__(self, host, port, pid):  # noqa: super().__init__ would make a data dir
        self.host, self.port, self.pid = host, port, pid
        self.token = None


class Cluster:
    def __init__(self, n, data_dir=None, extra_args=(), mpirun_args=(), prefix=()):
        self.n = n
        self.tmp = tempfile.mkdtemp(prefix="et-mpi-")
        self.data_dir = data_dir or os.path.join(self.tmp, "data")
        self.extra_args = list(extra_args)
        self.mpirun_args = list(mpirun_args)
        self.prefix = list(prefix)
        self.proc = None
        self.ranks = []
        self.starts = 0

    def args(self):
        # each rank's exit status on its own stderr: with --enable-recovery mpirun
        # exits 0 whatever its ranks did
        wrap = ["sh", "-c", '"$0" "$@"; rc=$?; echo "easytorchd exited with status $rc" >&2; '
                'exit $rc']
        return (self.prefix + ["mpirun", "--oversubscribe", "--bind-to", "none", "--tag-output",
                               "-n", str(self.n)] + self.mpirun_args + wrap +
                [daemon.daemon_path(), "--mpi", "--listen", "127.0.0.1:0",
                 "--data-dir", self.data_dir, "--quiet"] + self.extra_args)

    def rank_host(self, r, host):
        return host

    def start(self):
        self.starts += 1
        self.log_path = os.path.join(self.tmp, "mpirun.%d.log" % self.starts)
        self.log_file = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args(), stdin=subprocess.DEVNULL,
                                     stdout=self.log_file, stderr=subprocess.STDOUT,
                                     env=mpi_env(), start_new_session=True)
        deadline = time.time() + START_TIMEOUT
        ports, pids, ready = {}, {}, set()
        while time.time() < deadline:
            text = self.log()
            for r, host, port in re.findall(r"\[\d+,(\d+)\]<stdout>:listening on ([\d.]+):(\d+)",
                                            text):
                ports[int(r)] = (self.rank_host(int(r), host), int(port))
            for r, pid in re.findall(r"\[\d+,(\d+)\]<stderr>:easytorchd: rank \d+ of \d+ "
                                     r"\(pid (\d+)", text):
                pids[int(r)] = int(pid)
            for r in re.findall(r"\[\d+,(\d+)\]<stderr>:easytorchd: ready", text):
                ready.add(int(r))
            if len(ready) == self.n and len(ports) == self.n and len(pids) == self.n:
                self.ranks = [RankClient(ports[r][0], ports[r][1], pids[r])
                              for r in range(self.n)]
                return self
            if self.proc.poll() is not None:
                raise AssertionError("mpirun exited %s before the ranks were ready:\n%s"
                                     % (self.proc.returncode, text[-3000:]))
            time.sleep(0.1)
        self.kill()
        raise AssertionError("the ranks were not ready within %d s:\n%s"
                             % (START_TIMEOUT, self.log()[-3000:]))

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def rank(self, r):
        return self.ranks[r]

    def wait(self, timeout):
        """mpirun's exit status, or None if it still runs after timeout seconds."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self):
        """SIGTERM to every rank (they drain and save), then mpirun's exit status."""
        if not self.proc or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        for rk in self.ranks:
            try:
                os.kill(rk.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        rc = self.wait(STOP_TIMEOUT)
        if rc is None:
            self.kill()
            raise AssertionError("the job did not stop within %d s of SIGTERM:\n%s"
                                 % (STOP_TIMEOUT, self.log()[-3000:]))
        return rc

    def kill(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def sanitizer_problems(self):
        """Sanitizer reports in the ranks' output: errors of any kind, and leaks whose
        stack has a frame of easytorch (src/...)."""
        text = re.sub(r"\[\d+,\d+\]<std\w+>:", "", self.log())
        problems = re.findall(r"(ERROR: AddressSanitizer.*|runtime error:.*)", text)
        for block in re.split(r"\n\s*\n", text):
            # a frame of ours past #0: #0 is the allocator, which a statically linked
            # sanitizer runtime (clang) places in the binary, build/src/server/easytorchd
            if re.search(r"(Direct|Indirect) leak", block) and re.search(
                    r"#[1-9]\d* .*/src/(server|core|nn)/", block):
                problems.append(block.strip()[:2000])
        return problems

    def cleanup(self):
        try:
            self.stop()
        finally:
            self.kill()
            self.log_file.close()
            problems = self.sanitizer_problems()
            shutil.rmtree(self.tmp, ignore_errors=True)
        if problems:
            raise AssertionError("sanitizer reports:\n" + "\n".join(problems[:5]))


@contextlib.contextmanager
def running(test, n, **kw):
    """A started Cluster(n, **kw) for a with-block; afterwards it is stopped and cleaned up,
    and -- when the block ended without an exception -- test asserts it exited 0 (the log's
    tail as the message)."""
    c = Cluster(n, **kw).start()
    try:
        yield c
    finally:
        rc = c.stop()
        log = c.log()
        c.cleanup()
    test.assertEqual(rc, 0, log[-3000:])
