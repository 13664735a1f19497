"""test_mpi_nginx.py - nginx as the balancer in front of easytorchd --mpi (issue 19,
docs/distributed.md "Reads"): 2 ranks, and nginx (Debian nginx-light) started with
docker/nginx-mpi.conf -- the file docs/distributed.md shows (tests/docs checks the excerpt)
-- with only its upstream servers and listen address rewritten to the ports the ranks
and this test picked. Through nginx: a model is defined and trained (ordered: the ranks
order them among themselves), then predictions are asked; both ranks must have served
some (their own /metrics count them), every answer must be the same bits whichever rank
gave it, and equal a single plain daemon's after the same requests (rtol 1e-5, atol 1e-6:
data-parallel training sums in another order).

Skipped only when the build has no MPI; nginx or mpirun missing in an MPI build fails.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon  # noqa: E402
import mpicluster  # noqa: E402
from test_mpi import MPI_BUILD, MODELS, data, settle, close  # noqa: E402

CONF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docker",
                    "nginx-mpi.conf")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def site_conf(ranks, port):
    """docker/nginx-mpi.conf with its upstream servers replaced by the ranks' addresses and
    its listen address by 127.0.0.1:port; everything else as the file has it."""
    with open(CONF) as f:
        text = f.read()
    servers = re.findall(r"^    server 127\.0\.0\.1:\d+;\n", text, re.M)
    assert len(servers) == 4 and "listen 127.0.0.1:9000;" in text, text
    first = text.index(servers[0])
    text = text.replace("".join(servers), "".join(
        "    server %s:%d;\n" % (rk.host, rk.port) for rk in ranks))
    assert text.index("    server %s:%d;" % (ranks[0].host, ranks[0].port)) == first
    return text.replace("listen 127.0.0.1:9000;", "listen 127.0.0.1:%d;" % port)


class Nginx:
    def __init__(self, ranks):
        self.dir = tempfile.mkdtemp(prefix="et-nginx-")
        self.port = free_port()
        with open(os.path.join(self.dir, "easytorch.conf"), "w") as f:
            f.write(site_conf(ranks, self.port))
        d = self.dir
        main = ("daemon off;\nmaster_process off;\npid %s/nginx.pid;\nerror_log %s/error.log;\n"
                "events { worker_connections 64; }\nhttp {\n    access_log off;\n"
                "    client_body_temp_path %s/body;\n    proxy_temp_path %s/proxy;\n"
                "    fastcgi_temp_path %s/fcgi;\n    uwsgi_temp_path %s/uwsgi;\n"
                "    scgi_temp_path %s/scgi;\n    include %s/easytorch.conf;\n}\n"
                % ((d,) * 8))
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write(main)
        self.proc = subprocess.Popen([NGINX, "-p", d, "-e", d + "/error.log", "-c",
                                      d + "/nginx.conf"], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 30
        while True:  # wait until it accepts (a bound against hangs, never a speed check)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise AssertionError("nginx did not start: %s" % self.errors())
                time.sleep(0.05)
        self.client = mpicluster.RankClient("127.0.0.1", self.port, self.proc.pid)

    def errors(self):
        try:
            with open(os.path.join(self.dir, "error.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def predicts_served(rk):
    text = rk.get("/metrics").body.decode()
    return sum(int(v) for v in re.findall(
        r'^easytorch_http_requests_total\{method="POST",route="[^"]*predict",status="200"\} '
        r'(\d+)$', text, re.M))


@unittest.skipUnless(MPI_BUILD, "this build has no MPI (meson -Dmpi=disabled)")
class NginxTest(unittest.TestCase):
    def test_predicts_through_nginx(self):
        self.assertTrue(os.path.exists(NGINX), "nginx not found (apt-get install nginx-light)")
        self.assertTrue(shutil.which("mpirun"), "mpirun not found (apt-get install openmpi-bin)")
        x, y = data("mse")
        train = {"inputs": x, "targets": y, "epochs": 5, "batch_size": 7, "shuffle": True}
        queries = [x[i:i + 3] for i in range(0, 30, 3)]
        d = daemon.Daemon()
        d.start()
        try:
            d.create(dict(MODELS["mse"], name="lb"))
            d.ok("POST", "/v1/models/lb/train", train)
            want = [d.predict("lb", q) for q in queries]
        finally:
            d.stop()
            d.cleanup()
        c = mpicluster.Cluster(2).start()
        ng = None
        try:
            ng = Nginx(c.ranks)
            lb = ng.client
            lb.create(dict(MODELS["mse"], name="lb"))
            last = lb.ok("POST", "/v1/models/lb/train", train)
            settle(c, "lb", last["step"])
            before = [predicts_served(c.rank(r)) for r in range(2)]
            got = {}
            for rnd in range(4):
                for i, q in enumerate(queries):
                    r = lb.post("/v1/models/lb/predict", {"inputs": q})
                    self.assertEqual(r.status, 200, r.body)
                    got.setdefault(i, set()).add(r.body)
            # a request is counted when its exchange ends, after its answer went out: the
            # last answers can reach the client before their counts, so read until all 40
            # are counted (or 200 reads), then judge
            for _ in range(200):
                served = [predicts_served(c.rank(r)) - before[r] for r in range(2)]
                if sum(served) >= 4 * len(queries):
                    break
                time.sleep(0.05)
            print("40 predicts through nginx: rank 0 served %d, rank 1 %d" % tuple(served))
            self.assertEqual(sum(served), 4 * len(queries))
            self.assertTrue(all(k > 0 for k in served), served)
            for i, bodies in got.items():
                self.assertEqual(len(bodies), 1, "query %d: the ranks answered differently" % i)
                close(self, json.loads(next(iter(bodies)))["outputs"], want[i], "query %d" % i)
        finally:
            if ng:
                ng.stop()
            rc = c.stop()
            log = c.log()
            c.cleanup()
        self.assertEqual(rc, 0, log[-3000:])


if __name__ == "__main__":
    daemon.run_tests()
