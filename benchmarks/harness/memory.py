"""Report rows: the daemon's RSS idle and with 100 small models, and its
restart time with those 100 models persisted."""
import time
from pathlib import Path

from .common import BenchError, log, summarize
from .http import MLP_SPEC, daemon_server, http_body


def measure_memory_and_startup(easytorchd, env, plan, tmp, results, extra_args):
    """RSS idle, RSS with 100 models, and restarts with those 100 persisted."""
    data_dir = Path(tmp) / "data-100"
    srv = daemon_server(easytorchd, data_dir, env, tmp, extra_args, "easytorchd-rss")
    try:
        srv.start()
        srv.wait_ready()
        time.sleep(0.5)
        idle = srv.rss_kb()
        results["rss_idle"] = {"kind": "report", "ours": idle, "status": "report"}
        train_body = http_body("train", 32)
        for i in range(100):
            name = f"small-{i:03d}"
            status, resp = srv.request("POST", "/v1/models", dict(MLP_SPEC, name=name))
            if status != 201:
                raise BenchError(f"create {name}: HTTP {status}: {resp}")
            status, resp = srv.request("POST", f"/v1/models/{name}/train", train_body)
            if status != 200:
                raise BenchError(f"train {name}: HTTP {status}: {resp}")
        time.sleep(0.5)
        results["rss_100_models"] = {"kind": "report", "ours": srv.rss_kb(), "status": "report"}
    except BenchError as e:
        for rid in ("rss_idle", "rss_100_models", "startup_100_models"):
            results.setdefault(rid, {"status": "error", "error": str(e)})
        return
    finally:
        rc = srv.stop()
    if rc not in (0, None):
        log(f"warning: easytorchd exited with status {rc} on SIGTERM")

    starts, readies, rss = [], [], []
    try:
        for _ in range(plan["restarts"]):
            t0 = time.perf_counter()
            srv = daemon_server(easytorchd, data_dir, env, tmp, extra_args, "easytorchd-restart")
            try:
                starts.append(srv.start())
                srv.wait_ready()
                readies.append(time.perf_counter() - t0)
                status, resp = srv.request("GET", "/v1/models")
                n = len(resp.get("models", [])) if isinstance(resp, dict) else -1
                if status != 200 or n != 100:
                    raise BenchError(f"after restart GET /v1/models: HTTP {status}, {n} models "
                                     f"(expected 100 persisted)")
                rss.append(srv.rss_kb())
            finally:
                srv.stop()
        results["startup_100_models"] = {
            "kind": "report", "status": "report", "unit": "s",
            "ours": summarize(readies), "listening_s": summarize(starts), "rss_after_load": rss,
        }
    except BenchError as e:
        results["startup_100_models"] = {"status": "error", "error": str(e)}
