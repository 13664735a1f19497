"""HTTP rows: the servers (easytorchd, the FastAPI anchor, its plain
reference, nginx as the machine's HTTP limit), the anchor sanity check, and
wrk runs that alternate between the servers."""
import http.client
import json
import math
import os
import pwd
import random
import re
import signal
import statistics
import struct
import subprocess
import time
from pathlib import Path

from .common import (BENCH_DIR, TORCH_PYTHON, BenchError, SideFailed, free_port, log,
                     summarize, tail, with_retry)
from .micro import calibrate

LISTENING = re.compile(r"listening on \S+:(\d+)")
_CLK_TCK = os.sysconf("SC_CLK_TCK")
# The anchor is refused when its single-connection latency is more than this
# many times the plain reference's (the Nagle stall was ~70x).
SANE_LATENCY_FACTOR = 2.0
SANITY_ROUNDS = 3

# The model every HTTP server serves (and the 100 "small models" of the RSS rows).
MLP_SPEC = {
    "layers": [
        {"type": "Linear", "in_features": 13, "out_features": 64}, {"type": "ReLU"},
        {"type": "Linear", "in_features": 64, "out_features": 64}, {"type": "ReLU"},
        {"type": "Linear", "in_features": 64, "out_features": 1},
    ],
    "loss": {"type": "MSELoss"},
    "optimizer": {"type": "Adam", "lr": 0.001},
    "seed": 0,
}

# Issue 12's dynamic batching rows: the 784-1024-1024-10 model on easytorchd,
# once batching concurrent predictions and once not (same seed, same bits
# per request alone: the batching one computes batch-invariantly).
MNIST_LAYERS = [
    {"type": "Linear", "in_features": 784, "out_features": 1024}, {"type": "ReLU"},
    {"type": "Linear", "in_features": 1024, "out_features": 1024}, {"type": "ReLU"},
    {"type": "Linear", "in_features": 1024, "out_features": 10},
]
DAEMON_MODELS = {
    "mnist": {"layers": MNIST_LAYERS, "loss": {"type": "CrossEntropyLoss"},
              "optimizer": {"type": "SGD", "lr": 0.01}, "seed": 0},
    "mnist_batched": {"layers": MNIST_LAYERS, "loss": {"type": "CrossEntropyLoss"},
                      "optimizer": {"type": "SGD", "lr": 0.01}, "seed": 0,
                      "batching": {"max_batch_size": 64, "max_delay_us": 500}},
    # the batching ceiling's HTTP exchange: the same 784-number request and
    # 10-number answer, a forward of ~8k multiply-adds (a few tenths of a µs)
    "mnist_tiny": {"layers": [{"type": "Linear", "in_features": 784, "out_features": 10}],
                   "loss": {"type": "CrossEntropyLoss"},
                   "optimizer": {"type": "SGD", "lr": 0.01}, "seed": 0},
}
MODEL_COLS = {"bench": 13, "mnist": 784, "mnist_batched": 784, "mnist_tiny": 784}


class Server:
    """A daemon started with its listen port chosen by the kernel (or given);
    it must print "listening on HOST:PORT" (stdout or stderr, one log)."""

    def __init__(self, name, argv, env, logdir):
        self.name, self.argv, self.env = name, argv, env
        self.logpath = Path(logdir) / f"{name}.stderr"
        self.proc = None
        self.port = None
        self.setup = None   # called with the server after each (re)start

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def argv_now(self):
        return self.argv

    def start(self, timeout=60):
        """Start, wait for the listening line; returns seconds it took."""
        log_start = len(Path(self.logpath).read_text(errors="replace")) if self.logpath.exists() else 0
        t0 = time.perf_counter()
        with open(self.logpath, "ab") as f:
            self.proc = subprocess.Popen(self.argv_now(), stdin=subprocess.DEVNULL,
                                         stdout=f, stderr=f, env=self.env)
        while True:
            m = LISTENING.search(Path(self.logpath).read_text(errors="replace")[log_start:])
            if m:
                self.port = int(m.group(1))
                return time.perf_counter() - t0
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited (status {self.proc.returncode}) "
                                 f"before listening:\n{tail(self.logpath)}")
            if time.perf_counter() - t0 > timeout:
                raise BenchError(f"{self.name}: no 'listening on' line within {timeout} s")
            time.sleep(0.001)

    def ensure_running(self):
        """Restart the server if it died (and run its setup hook again)."""
        if self.proc is not None and self.proc.poll() is None:
            return
        log(f"bench: {self.name} is not running; restarting it")
        self.stop()
        self.start()
        self.wait_ready()
        if self.setup:
            self.setup(self)

    def request(self, method, path, body=None, timeout=30, raw=False, headers=None):
        """(status, parsed JSON body, or the bytes if raw); BenchError when
        the connection fails.  A bytes body is sent as it is, with `headers`
        (its Content-Type, Accept)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, bytes):
                data, hdrs = body, dict(headers or {})
            else:
                data = json.dumps(body).encode() if body is not None else None
                hdrs = dict({"Content-Type": "application/json"} if data else {}, **(headers or {}))
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
        except (OSError, http.client.HTTPException) as e:
            raise BenchError(f"{self.name}: {method} {path}: {e!r}") from e
        finally:
            conn.close()
        if raw:
            return resp.status, payload
        try:
            return resp.status, json.loads(payload) if payload else None
        except ValueError:
            return resp.status, payload.decode(errors="replace")

    def wait_ready(self, timeout=120, path="/readyz"):
        """Poll GET /readyz until 200."""
        t0 = time.perf_counter()
        while True:
            try:
                status, _ = self.request("GET", path, timeout=5)
                if status == 200:
                    return
            except BenchError:
                pass
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited (status {self.proc.returncode}):\n"
                                 f"{tail(self.logpath)}")
            if time.perf_counter() - t0 > timeout:
                raise BenchError(f"{self.name}: {path} not 200 within {timeout} s")
            time.sleep(0.002)

    def pin(self, cpus):
        """Every thread of the server on these CPUs (None: all of them); the
        threads it starts later inherit it."""
        cpus = set(cpus) if cpus is not None else set(range(os.cpu_count() or 1))
        try:
            for t in os.listdir(f"/proc/{self.proc.pid}/task"):
                try:
                    os.sched_setaffinity(int(t), cpus)
                except OSError:
                    pass   # a thread that just ended
        except OSError as e:
            raise BenchError(f"{self.name} is gone: {e}") from e

    def cpu_seconds(self):
        """utime + stime of the server process so far (all its threads)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError as e:
            raise BenchError(f"{self.name} is gone: {e}") from e
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK

    def rss_kb(self):
        fields = {}
        try:
            status = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError as e:
            raise BenchError(f"{self.name} is gone: {e}") from e
        for line in status.splitlines():
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                fields[k] = int(v.split()[0])
        return fields

    def stop(self):
        """SIGTERM (a clean shutdown, which persists), then SIGKILL after 30 s."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                log(f"warning: {self.name} ignored SIGTERM for 30 s; killing it")
                self.proc.kill()
                self.proc.wait()
        rc, self.proc = self.proc.returncode, None
        return rc


class PortServer(Server):
    """A server that cannot report a kernel-chosen port: a free port is
    picked for each start (plain uvicorn.run, nginx)."""

    def __init__(self, name, make_argv, env, logdir):
        super().__init__(name, None, env, logdir)
        self.make_argv = make_argv

    def argv_now(self):
        self.port = free_port()
        return self.make_argv(self.port)

    def start(self, timeout=60):
        for attempt in range(3):   # the picked port may be taken in between
            try:
                return super().start(timeout)
            except BenchError:
                if attempt == 2:
                    raise
                self.stop()
        return None


def daemon_server(easytorchd, data_dir, env, logdir, extra_args, name="easytorchd"):
    return Server(name, [easytorchd, "--listen", "127.0.0.1:0", "--data-dir", str(data_dir),
                         "--quiet"] + list(extra_args), env, logdir)


def fastapi_server(env, logdir, threads, reference=False):
    script = str(BENCH_DIR / "fastapi_server.py")
    if reference:
        return PortServer("fastapi-reference",
                          lambda port: [TORCH_PYTHON, script, "--reference", "--threads",
                                        str(threads), "--listen", f"127.0.0.1:{port}"],
                          env, logdir)
    return Server("fastapi", [TORCH_PYTHON, script, "--threads", str(threads)], env, logdir)


class Nginx(PortServer):
    """nginx (Debian nginx-light) serving static files: the HTTP limit of
    this machine.  A POST to a static file is answered 405 by nginx; the
    `error_page 405 =200 $uri` line serves the file instead, so wrk sends
    exactly the request it sends to the model servers (same body) and gets
    the same response bytes back.  worker_processes auto (one per CPU), no
    access log, keep-alive without a request limit (easytorchd has none)."""

    def __init__(self, env, logdir):
        self.root = Path(logdir) / "nginx"
        self.www = self.root / "www"
        self.www.mkdir(parents=True, exist_ok=True)
        super().__init__("nginx", self._argv, env, logdir)

    def cpu_seconds(self):
        """utime + stime of the master and of its worker processes (its
        children: they are never waited for, so the master's own counts
        leave them out) -- the compute floors' nginx CPU time per request."""
        total = super().cpu_seconds()
        master = str(self.proc.pid)
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue   # gone meanwhile
            if fields[1] == master:
                total += (int(fields[11]) + int(fields[12])) / _CLK_TCK
        return total

    def _argv(self, port):
        r = self.root
        # as root, nginx's workers would switch to nobody, who cannot read
        # the benchmark's private temporary directory
        user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
        conf = f"""
{user}
worker_processes auto;
daemon off;
master_process on;
pid {r}/nginx.pid;
error_log {r}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {r}/body;
  proxy_temp_path {r}/proxy;
  fastcgi_temp_path {r}/fastcgi;
  uwsgi_temp_path {r}/uwsgi;
  scgi_temp_path {r}/scgi;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  client_max_body_size 64m;
  client_body_buffer_size 1m;
  default_type application/json;
  server {{
    listen 127.0.0.1:{port};
    root {self.www};
    location = /readyz {{ return 200 '{{"status":"ready"}}'; }}
    location / {{ error_page 405 =200 $uri; }}
  }}
}}
"""
        (r / "nginx.conf").write_text(conf)
        # nginx logs its start to stderr only on errors: print the line ourselves
        return ["sh", "-c", f'echo "listening on 127.0.0.1:{port}"; exec nginx -p {r} '
                f'-c {r}/nginx.conf -e {r}/error.log']

    def publish(self, name, body):
        """Serve `body` (bytes) at /<name>."""
        (self.www / name).write_bytes(body)
        return f"/{name}"


def json_matrix(rng, rows, cols):
    return [[round(rng.gauss(0, 1), 5) for _ in range(cols)] for _ in range(rows)]


def http_body(route, batch, cols=13):
    rng = random.Random(batch)
    body = {"inputs": json_matrix(rng, batch, cols)}
    if route == "train":
        body["targets"] = json_matrix(rng, batch, 1)
    return body


# Wire formats of a row's request body (and the answer asked for):
# "json" (the contract's nested lists), "safetensors" (easytorchd's binary
# tensors: application/octet-stream both ways) and "npy" (what the FastAPI
# anchor takes as binary: numpy's .npy, the inputs then the targets).
FORMATS = {
    "json": {"Content-Type": "application/json"},
    "safetensors": {"Content-Type": "application/octet-stream",
                    "Accept": "application/octet-stream"},
    "npy": {"Content-Type": "application/x-npy", "Accept": "application/x-npy"},
}


def _f32(nested):
    """float32 bytes (little-endian) and shape of a nested list matrix."""
    rows, cols = len(nested), len(nested[0])
    return struct.pack(f"<{rows * cols}f", *(v for r in nested for v in r)), [rows, cols]


def safetensors_bytes(tensors, metadata=None):
    """A safetensors file of float32 matrices {name: nested list} (the
    format: 8-byte little-endian header length, JSON header, data)."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name, nested in tensors.items():
        data, shape = _f32(nested)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)   # the data 8-byte aligned, as the reference writer does
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def safetensors_parse(raw):
    """(header dict, data bytes) of a safetensors answer; BenchError if malformed."""
    try:
        (n,) = struct.unpack_from("<Q", raw)
        return json.loads(raw[8:8 + n]), raw[8 + n:]
    except (struct.error, ValueError) as e:
        raise BenchError(f"not a safetensors answer ({len(raw)} bytes): {e}") from e


def npy_bytes(nested):
    """numpy's .npy format (version 1.0) of a float32 matrix, written by hand
    so the driver needs no numpy."""
    data, shape = _f32(nested)
    h = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % tuple(shape)
    h = h.encode("latin1")
    h += b" " * (-(10 + len(h) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + data


def npy_shape(raw):
    m = re.search(rb"'shape': \(([0-9, ]*)\)", raw[:256])
    if not raw.startswith(b"\x93NUMPY") or not m:
        raise BenchError(f"not a .npy answer ({len(raw)} bytes): {raw[:60]!r}")
    return [int(d) for d in m.group(1).split(b",") if d.strip()]


def encode_body(body, fmt):
    """The request bytes of a row's body dict in a wire format."""
    if fmt == "json":
        return json.dumps(body, separators=(",", ":")).encode()
    tensors = {k: body[k] for k in ("inputs", "targets") if k in body}
    if fmt == "safetensors":
        return safetensors_bytes(tensors)
    if fmt == "npy":
        return b"".join(npy_bytes(t) for t in tensors.values())
    raise BenchError(f"unknown body format {fmt!r}")


def create_bench_model(server):
    specs = {"bench": MLP_SPEC}
    if server.name == "easytorchd":   # the batching rows' models (easytorchd only)
        specs.update(DAEMON_MODELS)
    for name, spec in specs.items():
        status, resp = server.request("POST", "/v1/models", dict(spec, name=name))
        if status != 201:
            raise BenchError(f"{server.name}: create model {name}: HTTP {status}: {resp}")


def check_response(server, route, body, batch, fmt="json", model="bench"):
    """One request by hand: a server that answers fast with an error must not
    score.  `body` is the request's bytes in format fmt.  Returns the
    response bytes."""
    status, raw = server.request("POST", f"/v1/models/{model}/{route}", body, raw=True,
                                 headers=FORMATS[fmt])
    if status == 200 and route == "predict" and fmt != "json":
        if fmt == "safetensors":
            header, data = safetensors_parse(raw)
            out = header.get("outputs", {})
            shape, size = out.get("shape"), len(data)
        else:
            shape, size = npy_shape(raw), None
        if not shape or shape[0] != batch or (size is not None and size != 4 * math.prod(shape)):
            raise BenchError(f"{server.name} predict ({fmt}): expected {batch} output rows, "
                             f"got {str(raw[:200])}")
        return raw
    try:
        resp = json.loads(raw)
    except ValueError:
        resp = raw.decode(errors="replace")
    if status != 200:
        raise BenchError(f"{server.name} {route}: HTTP {status}: {str(resp)[:200]}")
    if route == "predict":
        out = resp.get("outputs") if isinstance(resp, dict) else None
        if not isinstance(out, list) or len(out) != batch:
            raise BenchError(f"{server.name} predict: expected {batch} outputs, got {str(resp)[:200]}")
    elif not (isinstance(resp, dict) and isinstance(resp.get("loss"), (int, float))
              and math.isfinite(resp["loss"])):
        raise BenchError(f"{server.name} train: no finite loss in {str(resp)[:200]}")
    return raw


def check_static(nginx, path, expect):
    status, raw = nginx.request("POST", path, {"x": 1}, raw=True)
    if status != 200 or raw != expect:
        raise BenchError(f"nginx {path}: HTTP {status}, {len(raw)} bytes (expected 200 and the "
                         f"{len(expect)} response bytes)")


def wrk(server, path, body_file, conns, seconds, own_pids=None, fmt="json", cpu=None):
    """cpu: run wrk on that CPU alone (taskset; the daemon_train rows)."""
    url = f"http://127.0.0.1:{server.port}{path}"
    hdrs = FORMATS[fmt]
    argv = (["taskset", "-c", str(cpu)] if cpu is not None else []) + ["wrk", f"-t{min(2, conns)}", f"-c{conns}", f"-d{seconds}s", "--latency",
            "--timeout", "10s", "-s", str(BENCH_DIR / "wrk_post.lua"), url, "--", str(body_file),
            hdrs["Content-Type"], hdrs.get("Accept", "")]
    cpu0 = server.cpu_seconds()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if own_pids is not None:
        own_pids.add(p.pid)
    try:
        out, err = p.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    finally:
        if own_pids is not None:
            own_pids.discard(p.pid)
    cpu = server.cpu_seconds() - cpu0
    lines = [l for l in out.splitlines() if l.startswith("{")]
    if p.returncode != 0 or not lines:
        raise BenchError(f"wrk against {server.name} failed: {err.strip() or out[-500:]}")
    r = json.loads(lines[-1])
    errors = sum(r["errors"].values())
    if errors:
        raise BenchError(f"{server.name} {path}: wrk counted errors {r['errors']} "
                         f"in {r['requests']} requests")
    if r["requests"] == 0:
        raise BenchError(f"{server.name} {path}: no request completed in {seconds} s")
    return {"rps": r["requests"] / (r["duration_us"] / 1e6), "p50_ms": r["latency_us"]["p50"] / 1000.0,
            "p99_ms": r["latency_us"]["p99"] / 1000.0, "cpu_per_request": cpu / r["requests"]}


def single_connection_latency(server, path, body_file, own_pids, fmt="json"):
    """Median latency of the request on one keep-alive connection (wrk -c1,
    1 s): what the anchor sanity check compares."""
    return wrk(server, path, body_file, 1, 1, own_pids, fmt)


def compute_floor(res, floor_samples, scale, wl):
    """The compute floor of a row (issue 15's b1024 rows), in CPU time per
    request: the request's GEMMs alone (et_bench `wl`, each GEMM the faster
    of our kernels and OpenBLAS, the median of its samples' process CPU
    time) plus nginx's CPU time per request (master and workers) serving our
    response bytes to the same wrk command, both in the same run.  CPU time,
    because the daemon runs requests on several worker threads (--workers,
    default one per CPU) whatever its compute threads: its wall time per
    request under 8 connections is not one request's time, and the wall
    clock of a loaded machine says little.  Adds res["floor"],
    res["floor_fraction"] (the floor / our CPU time per request) and
    res["floor_ceiling"] (the anchor's CPU time per request / the floor:
    the most the CPU ratio can reach on this machine)."""
    if not floor_samples or "limit" not in res:
        res["errors"]["floor"] = "no GEMM samples" if not floor_samples else "no nginx runs"
        return
    gemm_cpu = statistics.median(c for _, c in floor_samples)
    nginx_cpu = res["limit"]["cpu_per_request"]["median"]
    floor_cpu = gemm_cpu + nginx_cpu
    res["floor"] = {"workload": wl, "gemm_cpu_s": summarize([c for _, c in floor_samples]),
                    "gemm_wall_s": summarize([w for w, _ in floor_samples]),
                    "nginx_cpu_s": nginx_cpu, "request_cpu_s": floor_cpu,
                    "rate": scale / floor_cpu}
    ours_cpu = res["ours"]["cpu_per_request"]["median"]
    if ours_cpu > 0:
        res["floor_fraction"] = floor_cpu / ours_cpu
    if "anchor" in res:
        res["floor_ceiling"] = res["anchor"]["cpu_per_request"]["median"] / floor_cpu


def measure_http(row, servers, plan, tmp, failed, own_pids, workers=None):
    """Sanity check, then wrk runs rotating between the servers (ours, the
    anchor, nginx).  A failed check or wrk run is retried once (with a window
    twice as long; the server restarted if it died).  When the anchor (or
    nginx) fails, or the anchor fails the sanity check, the row keeps our
    numbers and that column is "n/a"; `failed` remembers why for the
    following rows.

    Row keys beyond route/batch/conns/unit: `body` (our request's format,
    FORMATS; default json), `anchor_body` (the anchor's), and `anchor`:
    "fastapi" (default) or "self" -- the anchor is easytorchd itself taking
    the request in `anchor_body` (the binary-vs-JSON rows); it is then not
    checked against the plain uvicorn reference.  `model` / `anchor_model`:
    the easytorchd models the two sides ask (default "bench"; the batching
    rows compare a batching model with the same model not batching).
    `exchange_model`: a third easytorchd side in the same rotation (the
    batching row's tiny model: the HTTP exchange alone), and with
    `batch_forward` (its path) the row's ceiling (batching_ceiling).
    `floor_wl`: the et_bench workload of the request's GEMMs (workers["c"]),
    sampled in the same rotation: the row's compute floor (compute_floor)."""
    rid, route, batch, conns = row["id"], row["route"], row["batch"], row["conns"]
    unit = row["unit"]
    model = row.get("model", "bench")
    models = {"ours": model, "anchor": row.get("anchor_model", model), "reference": "bench"}
    body = http_body(route, batch, MODEL_COLS[model])
    fmts = {"ours": row.get("body", "json"), "anchor": row.get("anchor_body", "json"),
            "reference": row.get("anchor_body", "json"), "limit": "json"}
    if row.get("anchor", "fastapi") == "self":
        servers = dict(servers, anchor=servers["ours"])
        servers.pop("reference", None)
    files = {}
    for side, fmt in fmts.items():
        files[side] = Path(tmp) / f"{rid}.{side}.{fmt}"
        files[side].write_bytes(encode_body(body, fmt))
    files["limit"] = files["ours"]   # nginx gets our request's bytes...
    fmts["limit"] = fmts["ours"]
    if row.get("exchange_model"):
        servers = dict(servers, exchange=servers["ours"])
        models["exchange"], files["exchange"], fmts["exchange"] = (
            row["exchange_model"], files["ours"], fmts["ours"])
    paths = {s: f"/v1/models/{models[s]}/{route}" for s in models}

    def attempt(side, fn):
        if side in failed and servers.get(side) is not servers["ours"]:
            return None
        srv = servers[side]
        try:
            return with_retry(side, fn, srv.ensure_running)
        except SideFailed as e:
            if side == "ours" or srv is servers["ours"]:
                raise BenchError(str(e)) from e
            failed[side] = str(e)
            return None

    sides = [s for s in ("ours", "anchor", "limit") if s in servers]
    floor_wl = row.get("floor_wl")
    fw = (workers or {}).get("c") if floor_wl else None
    floor_iters, floor_samples = None, []
    if fw is not None and "floor" not in failed:
        try:
            floor_iters = with_retry("floor", lambda retry: calibrate(fw, floor_wl, plan),
                                     fw.stop)
        except SideFailed as e:
            failed["floor"] = str(e)
    ours_bytes = attempt("ours", lambda retry: check_response(
        servers["ours"], route, files["ours"].read_bytes(), batch, fmts["ours"], models["ours"]))
    for side in ("anchor", "reference", "exchange"):
        if side in servers:
            attempt(side, lambda retry, s=side: check_response(
                servers[s], route, files[s].read_bytes(), batch, fmts[s], models[s]))
    if "limit" in servers:   # ...and answers with our answer's bytes
        paths["limit"] = servers["limit"].publish(rid, ours_bytes)
        attempt("limit", lambda retry: check_static(servers["limit"], paths["limit"], ours_bytes))

    # ---- sanity: single-connection latency of every server, anchor vs reference,
    # in SANITY_ROUNDS alternating rounds (one round on a loaded machine can be 3x off)
    latency, rounds = {}, {}
    checked = sides + (["reference"] if "reference" in servers else [])
    for i in range(SANITY_ROUNDS):
        for side in (checked if i % 2 == 0 else checked[::-1]):
            r = attempt(side, lambda retry, s=side: single_connection_latency(
                servers[s], paths[s], files[s], own_pids, fmts[s]))
            if r is not None:
                rounds.setdefault(side, []).append(r)
    for side, rs in rounds.items():
        latency[side] = {"p50_ms": statistics.median(r["p50_ms"] for r in rs),
                         "rps": statistics.median(r["rps"] for r in rs),
                         "rounds_p50_ms": [r["p50_ms"] for r in rs]}
    insane = None
    if "anchor" in latency and "reference" in latency:
        a, ref = latency["anchor"]["p50_ms"], latency["reference"]["p50_ms"]
        if a > SANE_LATENCY_FACTOR * ref:
            insane = (f"anchor not sane: single-connection latency {a:.3g} ms is more than "
                      f"{SANE_LATENCY_FACTOR:g}x the plain uvicorn.run reference's {ref:.3g} ms")
            log(f"bench: {rid}: {insane}; its runs are kept but the row is not judged against it")
    elif "anchor" in latency and servers["anchor"] is not servers["ours"]:
        insane = "anchor not checked: the plain reference server failed"

    if "exchange" in servers:   # in the rotation, not in the sanity check
        sides.append("exchange")
    floor = batch_floor(row.get("batch_forward"), own_pids) if "exchange" in servers else None
    for side in sides:
        attempt(side, lambda retry, s=side: wrk(servers[s], paths[s], files[s], conns,
                                                plan["http_warm_s"] * (2 if retry else 1),
                                                own_pids, fmts[s]))
    runs = {s: [] for s in sides}
    order = sides + (["floor"] if floor_iters else [])
    for i in range(plan["http_runs"]):
        for side in (order if i % 2 == 0 else order[::-1]):
            if side == "floor":
                if "floor" in failed:
                    continue
                try:
                    t, _, c = with_retry("floor", lambda retry: fw.run(floor_wl, floor_iters),
                                         fw.stop)
                    floor_samples.append((t / floor_iters, c / floor_iters))
                except SideFailed as e:
                    failed["floor"] = str(e)
                continue
            r = attempt(side, lambda retry, s=side: wrk(
                servers[s], paths[s], files[s], conns,
                plan["http_run_s"] * (2 if retry else 1), own_pids, fmts[s]))
            if r is not None:
                runs[side].append(r)
    scale = batch if unit == "rows/s" else 1

    def stats(side):
        return {"rate": summarize([r["rps"] * scale for r in runs[side]]),
                "p99_ms": summarize([r["p99_ms"] for r in runs[side]]),
                "cpu_per_request": summarize([r["cpu_per_request"] for r in runs[side]])}

    res = {"kind": "rate", "unit": unit, "connections": conns, "batch": batch,
           "body_bytes": files["ours"].stat().st_size, "response_bytes": len(ours_bytes),
           "anchor_body_bytes": files["anchor"].stat().st_size,
           "latency_1conn": latency, "target": row.get("target"),
           "p99_limit_ms": row.get("p99"), "limit_target": row.get("limit_target"),
           "errors": {}}
    if servers["anchor"] is servers["ours"]:
        res["anchor_label"] = (f"easytorchd ({fmts['anchor']})" if models["anchor"] == model
                               else f"easytorchd ({models['anchor']})")
    for side in sides:
        if runs[side]:
            res[side] = stats(side)
        else:
            res["errors"][side] = failed.get(side, "no runs")
    ours = res["ours"]
    ok = True
    if row.get("p99") is not None:
        ok = statistics.median(ours["p99_ms"]["samples"]) < row["p99"]
    if "anchor" in res and insane is None:
        res["ratio"] = ours["rate"]["median"] / res["anchor"]["rate"]["median"]
        c_ours = ours["cpu_per_request"]["median"]
        res["ratio_cpu"] = (res["anchor"]["cpu_per_request"]["median"] / c_ours
                            if c_ours > 0 else None)
        if row.get("target") is not None:
            ok = ok and res["ratio"] >= row["target"]
    else:
        ok = None
        if insane:
            res["errors"]["anchor"] = insane
    if "limit" in res:
        res["fraction"] = ours["rate"]["median"] / res["limit"]["rate"]["median"]
        if row.get("limit_target") is not None and ok is not None:
            ok = ok and res["fraction"] >= row["limit_target"]
    if floor_wl:
        compute_floor(res, floor_samples, scale, floor_wl)
        if "floor" in failed:
            res["errors"]["floor"] = failed["floor"]
    res["status"] = "n/a" if ok is None else ("ok" if ok else "MISS")
    if ok is None:
        res["error"] = "; ".join(f"{k}: {v}" for k, v in res["errors"].items())
    if "exchange" in servers:
        res["ceiling"] = batching_ceiling(res, floor)
    return res


def batch_floor(path, own_pids):
    """`batch_forward --floor --json`: the 784-1024-1024-10 forward's cost
    per row at 64-row batches -- ours (batch-invariant, weights packed), the
    same shapes through OpenBLAS, and at the FMA peak measured there; None
    when it is not built or fails."""
    if not path or not os.access(path, os.X_OK):
        return None
    p = subprocess.Popen([path, "--floor", "--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    own_pids.add(p.pid)
    try:
        out, _ = p.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        p.kill()
        return None
    finally:
        own_pids.discard(p.pid)
    lines = [l for l in out.splitlines() if l.startswith("{")]
    return json.loads(lines[-1]) if p.returncode == 0 and lines else None


def batching_ceiling(res, floor):
    """The most the batching ratio can be on this machine, from the same
    run: the unbatched request's daemon CPU time over what a batched request
    cannot go below -- the HTTP exchange of the same request on a tiny model
    (its daemon CPU time) plus the forward's per-row cost at a full 64-row
    batch at the GEMM floor (the lower of OpenBLAS's and ours); and the
    measured ratios' fractions of it.  Also with the FMA peak as the floor."""
    c = {}
    if "anchor" not in res or "exchange" not in res or not floor:
        c["error"] = ("no unbatched side" if "anchor" not in res else
                      "no tiny-model side" if "exchange" not in res else
                      "batch_forward --floor not available")
        return c
    unb = res["anchor"]["cpu_per_request"]["median"] * 1e6
    exch = res["exchange"]["cpu_per_request"]["median"] * 1e6
    c.update(unbatched_us=unb, exchange_us=exch, forward_floor=floor,
             ceiling=unb / (exch + floor["floor_us_per_row"]),
             ceiling_peak=unb / (exch + floor["peak_us_per_row"]))
    if res.get("ratio_cpu"):
        c["fraction_cpu"] = res["ratio_cpu"] / c["ceiling"]
    if res.get("ratio"):
        c["fraction_wall"] = res["ratio"] / c["ceiling"]
    return c
