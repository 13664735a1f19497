#!/usr/bin/env python3
"""Run an example and check the `name=value` metrics it prints.

usage: check_metrics.py EXE [ARGS...] -- NAME<=LIMIT|NAME>=LIMIT [...]
Exit 0 when every metric is present, finite and within its limit, 77 when the
example skips itself (exit 77), 1 otherwise.
"""
import math
import subprocess
import sys


def main(argv):
    if "--" not in argv:
        print(__doc__)
        return 2
    cut = argv.index("--")
    cmd, checks = argv[1:cut], argv[cut + 1:]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sys.stdout.write(proc.stdout)
    if proc.returncode == 77:
        return 77
    if proc.returncode != 0:
        print(f"FAIL: {cmd[0]} exited with {proc.returncode}")
        return 1
    metrics = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.isidentifier():
            try:
                metrics[key] = float(value)
            except ValueError:
                pass
    ok = True
    for check in checks:
        op = ">=" if ">=" in check else "<="
        name, _, limit = check.partition(op)
        value = metrics.get(name)
        good = value is not None and math.isfinite(value) and \
            (value >= float(limit) if op == ">=" else value <= float(limit))
        print(f"{'ok  ' if good else 'FAIL'} {name}={value} (limit {op} {limit})")
        ok = ok and good
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
