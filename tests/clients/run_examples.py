"""The client examples end to end against a real easytorchd, checking their
final metrics: clients/python/examples/{sine,boston,digits_cnn,char_lm,char_transformer}.py, or with --curl the
curl client (clients/curl/sine.sh and the commands of clients/curl/README.md).

    /usr/bin/python3 run_examples.py --easytorchd PATH --source SRCROOT [--curl] [--work DIR]

Targets: sine test MSE < 1e-3 with a hidden layer of 32 (the seed's 1-5-1 net
is run and its MSE printed too, checked only to have learnt something);
Boston test RMSE <= 4.0; digits CNN test accuracy >= 97%; the character model's train and
validation losses within 1% of PyTorch's twin. Ends with `N passed, M failed`.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemon import Daemon, summary  # noqa: E402

TOKEN = "examples-token-0123"


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
            print("ok: %s%s" % (name, " (%s)" % detail if detail else ""), flush=True)
        else:
            self.failed += 1
            print("FAIL: %s%s" % (name, ": %s" % detail if detail else ""), flush=True)
        return ok


def run(cmd, env_extra=None, cwd=None, show=True):
    env = dict(os.environ)
    env.pop("EASYTORCH_TOKEN", None)
    env.pop("EASYTORCH_URL", None)
    env.update(env_extra or {})
    print("+ " + " ".join(["%s=%s" % kv for kv in (env_extra or {}).items() if kv[0] != "PYTHONPATH"] + cmd),
          flush=True)
    p = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    if show:
        for line in p.stdout.splitlines():
            print("  | " + line)
        if p.returncode != 0:
            for line in p.stderr.splitlines()[-20:]:
                print("  ! " + line)
    sys.stdout.flush()
    return p


def metrics(stdout):
    """{key: float} from the `final: k=v ...` line."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("final:"):
            return {k: float(v) for k, v in re.findall(r"(\w+)=([-+0-9.eE]+|nan|inf)", line)}
    return {}


def before_mse(stdout):
    m = re.search(r"before training: test MSE ([-+0-9.eE]+)", stdout)
    return float(m.group(1)) if m else None


def python_examples(c, d, tokd, src):
    py = sys.executable
    ex = os.path.join(src, "clients", "python", "examples")
    env = {"PYTHONPATH": os.path.join(src, "clients", "python")}

    p = run([py, os.path.join(ex, "sine.py"), "--url", d.url, "--hidden", "32"], env)
    m = metrics(p.stdout)
    mse = m.get("test_mse", float("nan"))
    c.check("sine.py hidden 32: test MSE < 1e-3", p.returncode == 0 and mse < 1e-3, "test MSE %.3g" % mse)
    c.check("sine.py shows a progress bar with epoch, step and loss",
            "epoch 500/500" in p.stderr and "step 4000" in p.stderr and "loss" in p.stderr,
            p.stderr.strip().splitlines()[-1] if p.stderr.strip() else "no stderr")

    p = run([py, os.path.join(ex, "sine.py"), "--url", d.url, "--hidden", "5", "--quiet"], env)
    m = metrics(p.stdout)
    mse, mse0 = m.get("test_mse", float("nan")), before_mse(p.stdout)
    print("   the seed's Linear(1,5)-Tanh-Linear(5,1) with SGD reaches test MSE %.3g in %d steps (%.3g before training)"
          % (mse, int(m.get("steps", 0)), mse0 or float("nan")))
    c.check("sine.py hidden 5 (the seed's net) learns", p.returncode == 0 and mse0 is not None and mse < mse0 / 10,
            "test MSE %.3g, %.3g before" % (mse, mse0 or float("nan")))

    p = run([py, os.path.join(ex, "boston.py"), "--url", d.url, "--quiet"], env)
    m = metrics(p.stdout)
    r = m.get("test_rmse", float("nan"))
    c.check("boston.py: test RMSE <= 4.0", p.returncode == 0 and r <= 4.0, "test RMSE %.3f" % r)

    p = run([py, os.path.join(ex, "boston.py"), "/nonexistent/boston.csv", "--url", d.url, "--quiet"], env, show=False)
    c.check("boston.py with a missing CSV fails", p.returncode != 0)

    # the layers of issue 13: a CNN over HTTP, and the character model beside PyTorch
    p = run([py, os.path.join(ex, "digits_cnn.py"), "--url", d.url, "--quiet"], env)
    acc = metrics(p.stdout).get("test_accuracy", float("nan"))
    c.check("digits_cnn.py: test accuracy >= 97%", p.returncode == 0 and acc >= 97.0,
            "test accuracy %.2f%%" % acc)
    p = run(["/usr/bin/python3", os.path.join(ex, "char_lm.py"), "--url", d.url, "--steps", "3000"], env)
    m = metrics(p.stdout)
    samples = [l for l in p.stdout.splitlines() if l.startswith("sample: ")]
    c.check("char_lm.py: train and validation loss within 1% of PyTorch's (same init and batches)",
            p.returncode == 0 and m.get("train_rel_diff", 1) <= 0.01 and m.get("val_rel_diff", 1) <= 0.01
            and m.get("val_loss", 9) < 2.5,
            "train %.4f vs %.4f, val %.4f vs %.4f" % (m.get("train_loss", float("nan")),
                                                     m.get("torch_train_loss", float("nan")),
                                                     m.get("val_loss", float("nan")),
                                                     m.get("torch_val_loss", float("nan"))))
    c.check("char_lm.py samples ten words through predict", len(samples) == 10, str(samples[:3]))
    # issue 14: the character-level Transformer beside PyTorch
    p = run(["/usr/bin/python3", os.path.join(ex, "char_transformer.py"), "--url", d.url,
             "--steps", "400"], env)
    m = metrics(p.stdout)
    samples = [l for l in p.stdout.splitlines() if l.startswith("sample: ")]
    c.check("char_transformer.py: train and validation loss within 1% of PyTorch's (same init and "
            "batches)",
            p.returncode == 0 and m.get("train_rel_diff", 1) <= 0.01 and m.get("val_rel_diff", 1) <= 0.01
            and m.get("val_loss", 9) < 2.6,
            "train %.4f vs %.4f, val %.4f vs %.4f" % (m.get("train_loss", float("nan")),
                                                     m.get("torch_train_loss", float("nan")),
                                                     m.get("val_loss", float("nan")),
                                                     m.get("torch_val_loss", float("nan"))))
    c.check("char_transformer.py samples ten words through predict", len(samples) == 10,
            str(samples[:3]))

    # with a token: from the environment, and refused without it
    p = run([py, os.path.join(ex, "sine.py"), "--url", tokd.url, "--epochs", "3", "--quiet"],
            dict(env, EASYTORCH_TOKEN=TOKEN))
    c.check("sine.py with $EASYTORCH_TOKEN on a daemon with a token", p.returncode == 0 and "final:" in p.stdout)
    p = run([py, os.path.join(ex, "sine.py"), "--url", tokd.url, "--epochs", "3", "--quiet"], env, show=False)
    c.check("sine.py without the token is refused with 401", p.returncode != 0 and "401" in p.stderr,
            p.stderr.strip()[-200:])
    c.check("examples leave no model behind", d_models(d) == [], str(d_models(d)))


def d_models(d):
    import json
    import urllib.request
    with urllib.request.urlopen(d.url + "/v1/models") as r:
        return [m["name"] for m in json.load(r)["models"]]


def readme_blocks(path):
    text = open(path).read()
    return re.findall(r"```sh\n(.*?)```", text, re.S)


def curl_examples(c, d, tokd, src, work):
    sh = shutil.which("bash")
    script = os.path.join(src, "clients", "curl", "sine.sh")
    os.makedirs(work, exist_ok=True)
    out = os.path.join(work, "sine.safetensors")

    p = run([sh, script], {"EASYTORCH_URL": d.url, "OUT": out})
    m = metrics(p.stdout)
    mse = m.get("mse", float("nan"))
    print("   the seed's Linear(1,5)-Tanh-Linear(5,1) with SGD reaches MSE %.3g in %d steps over curl"
          % (mse, int(m.get("steps", 0))))
    c.check("sine.sh (1-5-1, SGD) runs and learns", p.returncode == 0 and mse < 0.05, "MSE %.3g" % mse)
    c.check("sine.sh pushes batches, steps, reads gradients, parameters and the loss",
            "pending" not in p.stderr and "batch 8: loss" in p.stdout and "0.weight: [" in p.stdout
            and "== parameter 2.bias" in p.stdout and "new points" in p.stdout)
    ok = os.path.isfile(out) and os.path.getsize(out) > 8
    c.check("sine.sh downloads the safetensors file", ok and '"0.weight":[5,1]' in p.stdout,
            "%s, %d bytes" % (out, os.path.getsize(out) if ok else -1))

    p = run([sh, script], {"EASYTORCH_URL": d.url, "HIDDEN": "32", "EPOCHS": "500", "NAME": "sine-wide",
                           "OUT": os.path.join(work, "sine-wide.safetensors")})
    mse = metrics(p.stdout).get("mse", float("nan"))
    c.check("sine.sh HIDDEN=32: MSE < 1e-3", p.returncode == 0 and mse < 1e-3, "MSE %.3g" % mse)

    p = run([sh, script], {"EASYTORCH_URL": tokd.url, "EASYTORCH_TOKEN": TOKEN, "EPOCHS": "2",
                           "OUT": os.path.join(work, "tok.safetensors")}, show=False)
    c.check("sine.sh with $EASYTORCH_TOKEN on a daemon with a token", p.returncode == 0 and "final:" in p.stdout,
            p.stderr.strip()[-300:])
    p = run([sh, script], {"EASYTORCH_URL": tokd.url, "EPOCHS": "2", "OUT": os.path.join(work, "x.safetensors")},
            show=False)
    c.check("sine.sh without the token stops on the 401", p.returncode != 0 and "401" in p.stderr,
            p.stderr.strip()[-200:])

    # README.md: paste every block after the first (which starts a daemon), in
    # order, on a daemon without the model "sine" that sine.sh left behind
    run(["curl", "-sS", "-X", "DELETE", d.url + "/v1/models/sine"], show=False)
    blocks = readme_blocks(os.path.join(src, "clients", "curl", "README.md"))
    prelude = ("set -e -o pipefail\n"
               "curl() { command curl --fail-with-body \"$@\"; }\n")
    body = prelude + "\n".join(blocks[1:])
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "readme.sh")
        with open(path, "w") as f:
            f.write(body)
        p = run([sh, path], {"EASYTORCH_URL": d.url}, cwd=tmp, show=False)
        tail = (p.stdout + p.stderr).strip().splitlines()[-12:]
        c.check("the commands of clients/curl/README.md run as pasted (%d blocks)" % (len(blocks) - 1),
                p.returncode == 0 and len(blocks) > 5, "\n".join(tail) if p.returncode else "")
    c.check("README's clean-up deleted its model", "sine" not in d_models(d), str(d_models(d)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--easytorchd", required=True)
    ap.add_argument("--source", required=True)
    ap.add_argument("--curl", action="store_true", help="the curl client instead of the Python examples")
    ap.add_argument("--work", default=None, help="folder for downloaded files (default: a temp folder)")
    a = ap.parse_args()
    c = Checks()
    work = a.work or tempfile.mkdtemp(prefix="et-examples-")
    try:
        with Daemon(a.easytorchd) as d, Daemon(a.easytorchd, token=TOKEN) as tokd:
            if a.curl:
                curl_examples(c, d, tokd, os.path.abspath(a.source), os.path.join(work, "curl"))
            else:
                python_examples(c, d, tokd, os.path.abspath(a.source))
            c.check("the daemon is still up", d.alive() and tokd.alive(), d.log_tail(10))
    except Exception as e:  # noqa: BLE001
        c.check("run", False, "%s: %s" % (type(e).__name__, e))
    finally:
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)
    summary(c.passed, c.failed)
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
