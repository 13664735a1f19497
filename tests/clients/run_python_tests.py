"""Install clients/python the way a user does, then run its unit tests with
the installed copy against a real easytorchd.

    /usr/bin/python3 run_python_tests.py --easytorchd PATH --source SRCROOT --work BUILDDIR

1. `python3 -m venv --system-site-packages` in BUILDDIR/clients-venv (Debian 12's
   pip refuses to install into the system Python, PEP 668), then a plain
   `pip install` of a copy of clients/python, as README.md writes it: the build
   backend is in the package (_build/), so nothing comes from the network (the
   test machine has none). Without the venv module it falls back to
   `pip install --target`.
2. test_python_client.py (which runs test_client_*.py) in that environment, from a folder outside the
   source tree, so `import easytorch_client` finds the installed package.
Ends with `N passed, M failed` (the install counts as one test).
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, **kw):
    print("+ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, **kw)


def install(python, src, work):
    """Returns (python to run the tests with, extra env) or raises."""
    venv = os.path.join(work, "clients-venv")
    shutil.rmtree(venv, ignore_errors=True)
    build = tempfile.mkdtemp(prefix="et-pyclient-src-")
    try:
        pkg = os.path.join(build, "python")
        shutil.copytree(os.path.join(src, "clients", "python"), pkg,
                        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        pip_args = ["install", "--no-cache-dir", "--disable-pip-version-check", pkg]
        r = run([python, "-m", "venv", "--system-site-packages", venv])
        if r.returncode == 0:
            vpy = os.path.join(venv, "bin", "python")
            r = run([vpy, "-m", "pip"] + pip_args)
            if r.returncode != 0:
                raise RuntimeError("pip install into the venv failed")
            return vpy, {}
        print("venv unavailable (install python3-venv); falling back to pip install --target", flush=True)
        target = os.path.join(work, "clients-site")
        shutil.rmtree(target, ignore_errors=True)
        r = run([python, "-m", "pip"] + pip_args[:1] + ["--target", target] + pip_args[1:])
        if r.returncode != 0:
            raise RuntimeError("pip install --target failed")
        return python, {"PYTHONPATH": target}
    finally:
        shutil.rmtree(build, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--easytorchd", required=True)
    ap.add_argument("--source", required=True, help="the project's source root")
    ap.add_argument("--work", required=True, help="a build folder for the venv")
    ap.add_argument("tests", nargs="*", help="unittest names to run (default: all)")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    try:
        py, env_extra = install(sys.executable, os.path.abspath(a.source), os.path.abspath(a.work))
    except Exception as e:  # noqa: BLE001
        print("FAIL: install: %s" % e, flush=True)
        print("0 passed, 1 failed", flush=True)
        return 1
    print("ok: pip install ./clients/python", flush=True)
    # Run outside the source tree so the installed package is the one imported.
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update(env_extra)
    outdir = tempfile.mkdtemp(prefix="et-pyclient-run-")
    try:
        for f in sorted(os.listdir(HERE)):  # the runner, its test files and helpers
            if f in ("daemon.py", "client_common.py") or (f.startswith("test_") and f.endswith(".py")):
                shutil.copy(os.path.join(HERE, f), outdir)
        check = subprocess.run([py, "-c", "import easytorch_client, sys; print(easytorch_client.__file__)"],
                               cwd=outdir, env=env, capture_output=True, text=True)
        where = check.stdout.strip()
        if check.returncode != 0 or where.startswith(os.path.join(os.path.abspath(a.source), "clients", "python")):
            print("FAIL: the installed package is not the one imported (exit %d): %s %s" % (check.returncode, where, check.stderr), flush=True)
            print("0 passed, 2 failed", flush=True)
            return 1
        p = subprocess.run([py, os.path.join(outdir, "test_python_client.py"), os.path.abspath(a.easytorchd)] + a.tests,
                           cwd=outdir, env=env, capture_output=True, text=True)
    finally:
        shutil.rmtree(outdir, ignore_errors=True)
    out = p.stdout.rstrip("\n").split("\n")
    sys.stdout.write("\n".join(out[:-1]) + "\n")
    sys.stdout.write(p.stderr)
    last = out[-1] if out else ""
    # Add the install step to the unit tests' own count.
    try:
        parts = last.split(",")
        passed = int(parts[0].split()[0]) + 1
        failed = int(parts[1].split()[0])
        rest = "," + ",".join(parts[2:]) if len(parts) > 2 else ""
    except (IndexError, ValueError):
        print(last)
        print("FAIL: the unit tests printed no summary (exit %d)" % p.returncode)
        print("1 passed, 1 failed")
        return 1
    print("%d passed, %d failed%s" % (passed, failed, rest), flush=True)
    return 0 if p.returncode == 0 and failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
