"""Running a C case runner over a JSON file of cases (test_core_ops.py's core_runner,
test_layers.py's layers_runner): `RUNNER CASES.json START [extra...]` prints one JSON line
per case from START on.  If it dies, the case it was on is recorded as a crash and it is
started again after that case, so one crash costs one case."""
import json
import subprocess


def run_cases(runner, path, cases, extra=()):
    """Write {"cases": cases} to path and run runner until every case has a result.
    Returns ({id: result}, runner invocations); results["__exit__"] says how the last
    run ended when it exited non-zero after the last case (e.g. LeakSanitizer at exit)."""
    with open(path, "w") as f:
        json.dump({"cases": cases}, f)
    results, start, runs = {}, 0, 0
    while start < len(cases):
        runs += 1
        proc = subprocess.run([runner, path, str(start), *extra], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, errors="replace")
        done = 0
        for line in proc.stdout.split("\n"):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except ValueError:
                break
            results[r["id"]] = r
            done += 1
        if start + done >= len(cases):
            if proc.returncode != 0:
                results["__exit__"] = (f"runner exited with status {proc.returncode} after the "
                                       f"last case: {proc.stderr[-600:]}")
            break
        cid = cases[start + done]["id"]
        results[cid] = {"id": cid, "crash": f"runner died with status {proc.returncode} "
                        f"on this case; stderr: {proc.stderr.strip()[-400:]}"}
        start += done + 1
    return results, runs
