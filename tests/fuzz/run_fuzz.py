"""Runs one libFuzzer harness as a bounded test (tests/fuzz/meson.build).

  run_fuzz.py HARNESS --corpus SEEDS [--regress DIR] [--dict FILE] [--seconds N]
              [--keep DIR] [--artifacts DIR]

1. Replays every file in --regress (inputs that once crashed, kept after the fix).
2. Fuzzes for --seconds (default $ET_FUZZ_SECONDS or 30) starting from the seed corpus;
   new inputs go to a temporary directory (or --keep DIR), never into the repository.
Prints the executions and a closing `N passed, M failed`; exits nonzero on any crash.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile


def run(cmd, limit):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = p.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        p.kill()  # this process only, by its handle
        out, _ = p.communicate()
        return 124, out.decode("utf-8", "replace") + "\n(run_fuzz: harness hung; killed)"
    return p.returncode, out.decode("utf-8", "replace")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("harness")
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--regress")
    ap.add_argument("--dict")
    ap.add_argument("--seconds", type=int, default=int(os.environ.get("ET_FUZZ_SECONDS", "30")))
    ap.add_argument("--keep")
    ap.add_argument("--artifacts", default=os.path.join(os.getcwd(), "fuzz-artifacts"))
    a = ap.parse_args()
    name = os.path.basename(a.harness)
    passed = failed = 0
    os.makedirs(a.artifacts, exist_ok=True)
    # UBSan findings stop the run like crashes; ubsan.supp lists filed, not yet fixed ones
    supp = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ubsan.supp")
    os.environ["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1:suppressions=" + supp
    os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    env_opts = ["-rss_limit_mb=3072", "-timeout=30", "-max_len=65536"]

    if a.regress and os.path.isdir(a.regress):
        files = sorted(os.path.join(a.regress, f) for f in os.listdir(a.regress)
                       if not f.startswith("."))
        for f in files:
            rc, out = run([a.harness] + env_opts + [f], 300)
            if rc == 0:
                passed += 1
            else:
                failed += 1
                print("FAIL %s: regression input %s\n%s" % (name, f, out[-4000:]))
        print("%s: %d regression inputs replayed" % (name, len(files)))

    work = a.keep or tempfile.mkdtemp(prefix="et-fuzz-%s-" % name)
    os.makedirs(work, exist_ok=True)
    try:
        cmd = [a.harness] + env_opts + [
            "-max_total_time=%d" % a.seconds, "-print_final_stats=1",
            "-artifact_prefix=%s/%s-" % (a.artifacts, name)]
        if a.dict:
            cmd.append("-dict=%s" % a.dict)
        cmd += [work, a.corpus]
        rc, out = run(cmd, a.seconds * 4 + 300)
        execs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", out)
        cov = re.findall(r"#\d+\s+(?:DONE|pulse|REDUCE|NEW)\s+cov: (\d+) ft: (\d+)", out)
        done = re.findall(r"Done (\d+) runs in (\d+) second", out)
        secs = done[-1][1] if done else "<%d (stopped early)" % a.seconds
        print("%s: %s executions in %s s, final cov/ft %s" % (
            name, execs[-1] if execs else "?", secs, "/".join(cov[-1]) if cov else "?"))
        if rc == 0 and execs:
            passed += 1
        else:
            failed += 1
            print("FAIL %s: fuzzer exited with %d; artifacts in %s\n%s"
                  % (name, rc, a.artifacts, out[-6000:]))
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
