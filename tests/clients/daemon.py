"""Start a real easytorchd for a client test: a free port on 127.0.0.1, a
fresh data directory, optionally a token. Standard library only."""

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request

LISTEN_RE = re.compile(r"listening on (\S+):(\d+)")


class Daemon:
    """A running easytorchd. Use as a context manager or call stop()."""

    def __init__(self, exe, token=None, extra_args=(), startup_timeout=120.0):
        self.exe = os.path.abspath(exe)
        if not os.access(self.exe, os.X_OK):
            raise RuntimeError("easytorchd not found or not executable: %s" % self.exe)
        self.tmp = tempfile.mkdtemp(prefix="et-clients-")
        self.data_dir = os.path.join(self.tmp, "data")
        os.mkdir(self.data_dir)
        self.log_path = os.path.join(self.tmp, "easytorchd.log")
        self.token = token
        cmd = [self.exe, "--listen", "127.0.0.1:0", "--data-dir", self.data_dir]
        if token:
            tf = os.path.join(self.tmp, "token")
            with open(tf, "w") as f:
                f.write(token + "\n")
            os.chmod(tf, 0o600)
            cmd += ["--token-file", tf]
        cmd += list(extra_args)
        env = dict(os.environ)
        for k in ("EASYTORCH_TOKEN", "EASYTORCH_LISTEN"):
            env.pop(k, None)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env, cwd=self.tmp)
        self._log = open(self.log_path, "wb")
        self._found = threading.Event()
        self.port = None
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        # The deadlines below only turn a hung start into a failure with a log.
        if not self._found.wait(startup_timeout):
            self.stop()
            raise RuntimeError("easytorchd printed no 'listening on 127.0.0.1:PORT':\n" + self.log_tail())
        if self.port is None:
            self.stop()
            raise RuntimeError("easytorchd exited before listening:\n" + self.log_tail())
        self.url = "http://127.0.0.1:%d" % self.port
        self._wait_ready(startup_timeout)

    def _read_stderr(self):
        for line in iter(self.proc.stderr.readline, b""):
            self._log.write(line)
            self._log.flush()
            if self.port is None:
                m = LISTEN_RE.search(line.decode("utf-8", "replace"))
                if m:
                    self.port = int(m.group(2))
                    self._found.set()
        self._found.set()

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=5) as r:
                    if r.status == 200:
                        return
            except urllib.error.HTTPError as e:
                last = e
                if e.code == 404:  # no /readyz: fall back to /healthz
                    try:
                        with urllib.request.urlopen(self.url + "/healthz", timeout=5):
                            return
                    except Exception as e2:  # noqa: BLE001
                        last = e2
            except Exception as e:  # noqa: BLE001
                last = e
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("easytorchd never became ready (%s):\n%s" % (last, self.log_tail()))

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-n:])

    def alive(self):
        return self.proc.poll() is None

    def stop(self, keep_files=False):
        """Stop the daemon (SIGTERM, then SIGKILL) and remove its files (unless
        ``keep_files``: a restart passes ["--data-dir", old.data_dir] to the next one).
        Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        self._log.close()
        rc = self.proc.returncode
        if os.environ.get("ET_KEEP_TMP") != "1" and not keep_files:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return rc

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def summary(passed, failed, skipped=0):
    """The closing line every client test prints."""
    line = "%d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    print(line, flush=True)
