#!/usr/bin/python3
"""easytorchd graph models with several inputs and outputs where a model is served and measured
(issue 14): a version's predict, OIP infer (JSON, the binary tensor extension, requested outputs,
NVIDIA's tritonclient when ../shared/vendor has it), evaluate and a version's evaluate (the loss
list's total and each entry's loss, the metrics of each output), and safetensors bodies with
named inputs and targets ("inputs.<name>", "targets.<name>").  Every number is compared with the
torch twin of test_graph.py loaded from the model's parameters (eval mode), bad bodies are 400s
naming the field that change nothing.
Usage: test_graph_serving.py PATH/TO/easytorchd"""

import os
import sys
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import daemon as dm  # noqa: E402
from daemon import Daemon, DaemonTestCase  # noqa: E402
import numpy as np  # noqa: E402
import safetensors_io as st  # noqa: E402
import test_graph as tg  # noqa: E402
import test_oip  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

torch.set_num_threads(1)
D = None
OCTET = {"Content-Type": "application/octet-stream"}
LOSS = [{"type": "CrossEntropyLoss", "output": "logits", "target": "label"},
        {"type": "MSELoss", "output": "score", "target": "rating", "weight": 0.5}]


def setUpModule():
    global D
    D = Daemon()
    D.start()
    DaemonTestCase.daemon = D


def tearDownModule():
    if D is not None:
        D.cleanup()


_n = [0]


def fresh(prefix="gs"):
    _n[0] += 1
    return "%s%d" % (prefix, _n[0])


def batch(g, n=12):
    return ({"user": torch.randint(0, 30, (n,), generator=g),
             "item": torch.randint(0, 20, (n,), generator=g)},
            {"label": torch.randint(0, 3, (n,), generator=g),
             "rating": torch.rand(n, generator=g) * 2 - 1})


def body(xs, ys=None):
    b = {"inputs": {k: v.tolist() for k, v in xs.items()}}
    if ys is not None:
        b["targets"] = {k: v.tolist() for k, v in ys.items()}
    return b


class Base(DaemonTestCase):
    assertClose = tg.Base.assertClose

    def two_tower(self, steps=3):
        """A trained two-tower model and its torch twin with the same parameters (eval)."""
        name = fresh()
        D.create(dict(tg.TWO_TOWER, name=name, loss=LOSS, optimizer={"type": "Adam", "lr": 0.01},
                      seed=5))
        g = torch.Generator().manual_seed(len(name))
        for _ in range(steps):
            D.ok("POST", "/v1/models/%s/train" % name, dict(body(*batch(g)), epochs=1))
        return name, self.twin_of(name), g

    def twin_of(self, name):
        net = tg.Twin(tg.TWO_TOWER)
        tg.load_state(net, D.params(name))
        net.eval()
        return net

    def torch_outputs(self, net, xs):
        with torch.no_grad():
            lo, sc = net(xs["user"], xs["item"])
        return lo, sc


class TestPredictAndEvaluate(Base):
    def test_version_predict_answers_every_output(self):
        name, net, g = self.two_tower()
        v = D.ok("POST", "/v1/models/%s/versions" % name, {}, expect=(201,))["version"]
        D.ok("POST", "/v1/models/%s/train" % name, dict(body(*batch(g)), epochs=2))
        xs, _ = batch(g, 5)
        got = D.ok("POST", "/v1/models/%s/versions/%d/predict" % (name, v), body(xs))
        self.assertEqual(got["version"], v)
        self.assertEqual(sorted(got["outputs"]), ["logits", "score"])
        lo, sc = self.torch_outputs(net, xs)   # the parameters frozen in version v
        self.assertClose(got["outputs"]["logits"], lo.numpy(), "version logits")
        self.assertClose(got["outputs"]["score"], sc.numpy(), "version score")
        # the live model moved on: its answer differs from the version's
        live = D.ok("POST", "/v1/models/%s/predict" % name, body(xs))["outputs"]
        self.assertFalse(np.allclose(live["logits"], got["outputs"]["logits"]))
        r = D.post("/v1/models/%s/versions/%d/predict" % (name, v), {"inputs": {"user": [1]}})
        self.assertError(r, 400, "inputs.item: required field is missing")

    def expected(self, net, xs, ys):
        lo, sc = self.torch_outputs(net, xs)
        ce = F.cross_entropy(lo, ys["label"])
        mse = F.mse_loss(sc, ys["rating"])
        d = sc.double() - ys["rating"].double()
        t = ys["rating"].double()
        top2 = torch.topk(lo, 2, dim=1).indices
        return {"loss": (ce + 0.5 * mse).item(), "losses": [ce.item(), mse.item()],
                "accuracy": (lo.argmax(1) == ys["label"]).double().mean().item(),
                "top_k_accuracy": (top2 == ys["label"][:, None]).any(1).double().mean().item(),
                "mae": d.abs().mean().item(), "mse": (d * d).mean().item(),
                "rmse": (d * d).mean().sqrt().item(),
                "r2": 1 - (d * d).sum().item() / ((t - t.mean()) ** 2).sum().item()}

    def test_evaluate_the_loss_list_and_each_output(self):
        name, net, g = self.two_tower()
        xs, ys = batch(g, 16)
        want = self.expected(net, xs, ys)
        before = D.params(name)
        got = D.ok("POST", "/v1/models/%s/evaluate" % name, body(xs, ys))
        self.assertEqual(got["rows"], 16)
        self.assertEqual(got["step"], 3)
        self.assertEqual(sorted(got["metrics"]), ["loss"])
        self.assertClose(got["metrics"]["loss"], want["loss"], "total loss")
        self.assertClose(got["losses"], want["losses"], "each loss")
        self.assertEqual(sorted(got["outputs"]), ["logits", "score"])
        self.assertEqual(sorted(got["outputs"]["logits"]), ["accuracy"])
        self.assertClose(got["outputs"]["logits"]["accuracy"], want["accuracy"], "accuracy")
        self.assertEqual(sorted(got["outputs"]["score"]), ["mae", "mse", "r2", "rmse"])
        for k in ("mae", "mse", "rmse", "r2"):
            self.assertClose(got["outputs"]["score"][k], want[k], k)
        # the total is what training on these rows reports (eval mode: no dropout / BatchNorm here)
        self.assertEqual(D.params(name), before, "evaluate changed the model")
        # metrics chosen: each goes to the outputs whose loss it fits
        got = D.ok("POST", "/v1/models/%s/evaluate" % name,
                   dict(body(xs, ys), metrics=["top_k_accuracy", "r2"], k=2))
        self.assertNotIn("loss", got["metrics"])
        self.assertNotIn("losses", got)
        self.assertEqual(got["k"], 2)
        self.assertEqual(got["outputs"], {"logits": {"top_k_accuracy": got["outputs"]["logits"]
                                                     ["top_k_accuracy"]},
                                          "score": {"r2": got["outputs"]["score"]["r2"]}})
        self.assertClose(got["outputs"]["logits"]["top_k_accuracy"], want["top_k_accuracy"], "top2")
        self.assertClose(got["outputs"]["score"]["r2"], want["r2"], "r2")
        got = D.ok("POST", "/v1/models/%s/evaluate" % name, dict(body(xs, ys), metrics=["loss"]))
        self.assertNotIn("outputs", got)
        self.assertClose(got["losses"], want["losses"], "losses only")
        # the version's evaluate measures the frozen weights the same way
        v = D.ok("POST", "/v1/models/%s/versions" % name, {}, expect=(201,))["version"]
        gv = D.ok("POST", "/v1/models/%s/versions/%d/evaluate" % (name, v), body(xs, ys))
        self.assertEqual(gv["version"], v)
        self.assertClose(gv["metrics"]["loss"], want["loss"], "version total loss")
        self.assertClose(gv["outputs"]["logits"]["accuracy"], want["accuracy"], "version acc")
        listed = D.ok("GET", "/v1/models/%s/versions/%d" % (name, v))["validation"]
        self.assertClose(listed["metrics"]["loss"], want["loss"], "recorded validation loss")

    def test_evaluate_errors_name_the_field(self):
        name, net, g = self.two_tower(steps=0)
        xs, ys = batch(g, 4)
        before = D.params(name)
        pair = {"inputs": ["a", "b"], "nodes": [
            {"name": "fa", "module": tg.lin(4, 2), "args": ["a"]},
            {"name": "fb", "module": tg.lin(4, 2), "args": ["b"]}], "outputs": ["fa", "fb"]}
        reg = fresh()
        D.create(dict(pair, name=reg, optimizer={"type": "SGD", "lr": 0.1},
                      loss=[{"type": "MSELoss", "output": "fa", "target": "ya"},
                            {"type": "L1Loss", "output": "fb", "target": "yb"}]))
        r = D.post("/v1/models/%s/evaluate" % reg, {
            "inputs": {"a": [[0, 1, 2, 3]], "b": [[1, 1, 1, 1]]},
            "targets": {"ya": [[0, 0]], "yb": [[1, 1]]}, "metrics": ["accuracy"]})
        self.assertError(r, 400, "metrics: accuracy fits none of the model's outputs")
        b = body(xs, ys)
        b["targets"]["rating"] = [0.5]
        r = D.post("/v1/models/%s/evaluate" % name, b)
        self.assertError(r, 400, "targets.rating: expected 4 rows")
        b = body(xs, ys)
        b["targets"]["label"] = [7, 0, 1, 2]
        r = D.post("/v1/models/%s/evaluate" % name, dict(b, metrics=["accuracy"]))
        self.assertError(r, 400, "outputs.logits (target \"label\")", "class indices in [0, 3)")
        del b["targets"]["rating"]
        r = D.post("/v1/models/%s/evaluate" % name, b)
        self.assertError(r, 400, "targets.rating: required field is missing")
        self.assertEqual(D.params(name), before)


class TestJobs(Base):
    def test_job_validation_on_named_data(self):
        name = fresh()
        D.create(dict(tg.TWO_TOWER, name=name, loss=LOSS, optimizer={"type": "Adam", "lr": 0.01},
                      seed=5))
        net = self.twin_of(name)
        opt = torch.optim.Adam(net.parameters(), lr=0.01)
        g = torch.Generator().manual_seed(3)
        (xs, ys), (vx, vy) = batch(g, 8), batch(g, 6)
        job = D.ok("POST", "/v1/models/%s/jobs" % name,
                   dict(body(xs, ys), epochs=3, validation=body(vx, vy)), expect=(202,))
        self.assertEqual(job["validation"]["rows"], 6)
        for _ in range(600):
            if D.ok("GET", "/v1/models/%s/jobs/%d" % (name, job["id"]))["state"] in (
                    "done", "failed", "cancelled"):
                break
            time.sleep(0.05)
        val = D.ok("GET", "/v1/models/%s/loss" % name)["validation"]
        self.assertEqual([v["step"] for v in val], [1, 2, 3])

        def tl(x, y):
            lo, sc = net(x["user"], x["item"])
            return F.cross_entropy(lo, y["label"]) + 0.5 * F.mse_loss(sc, y["rating"])
        def terms(x, y):
            lo, sc = net(x["user"], x["item"])
            return [F.cross_entropy(lo, y["label"]).item(), F.mse_loss(sc, y["rating"]).item()]
        jv = D.ok("GET", "/v1/models/%s/jobs/%d" % (name, job["id"]))["validation"]["results"]
        for k in range(3):   # torch: a step on the training rows, then the validation loss
            net.train()
            opt.zero_grad()
            tl(xs, ys).backward()
            opt.step()
            net.eval()
            with torch.no_grad():
                self.assertClose(val[k]["metrics"]["loss"], tl(vx, vy).item(),
                                 "validation loss after step %d" % (k + 1))
                # each loss-list entry's own (unweighted) loss beside the total
                want = terms(vx, vy)
                self.assertEqual(len(val[k]["losses"]), 2)
                for i in range(2):
                    self.assertClose(val[k]["losses"][i], want[i],
                                     "validation loss[%d] after step %d" % (i, k + 1))
                self.assertClose(val[k]["losses"][0] + 0.5 * val[k]["losses"][1],
                                 val[k]["metrics"]["loss"], "the total of the terms")
        self.assertEqual(jv, val, "the job's results are the history's entries")
        # persisted with the model: the same entries after a restart
        D.restart()
        self.assertEqual(D.ok("GET", "/v1/models/%s/loss" % name)["validation"], val)
        # a version frozen at the last step takes the evaluation, terms included
        v = D.ok("POST", "/v1/models/%s/versions" % name, {}, expect=(201,))
        self.assertEqual(v["validation"]["losses"], val[-1]["losses"])
        r = D.ok("POST", "/v1/models/%s/versions/%d/evaluate" % (name, v["version"]),
                 body(vx, vy))
        self.assertEqual(r["losses"], D.ok("GET", "/v1/models/%s/versions/%d" % (
            name, v["version"]))["validation"]["losses"])
        b = body(xs, ys)
        b["validation"] = {"inputs": {"user": [1]}, "targets": {}}
        r = D.post("/v1/models/%s/jobs" % name, b)
        self.assertError(r, 400, "validation.inputs.item: required field is missing")


class TestOip(Base):
    def infer(self, name, req, status=200):
        r = D.post("/v2/models/%s/infer" % name, req)
        self.assertEqual(r.status, status, r)
        return r.json()

    def test_metadata_and_infer(self):
        name, net, g = self.two_tower()
        md = D.ok("GET", "/v2/models/%s" % name)
        self.assertEqual(md["inputs"], [{"name": "user", "datatype": "INT64", "shape": [-1]},
                                        {"name": "item", "datatype": "INT64", "shape": [-1]}])
        self.assertEqual(md["outputs"], [{"name": "logits", "datatype": "FP32", "shape": [-1, 3]},
                                         {"name": "score", "datatype": "FP32", "shape": [-1]}])
        xs, _ = batch(g, 6)
        lo, sc = self.torch_outputs(net, xs)
        req = {"inputs": [{"name": "item", "shape": [6], "datatype": "INT64",
                           "data": xs["item"].tolist()},
                          {"name": "user", "shape": [6], "datatype": "INT32",
                           "data": xs["user"].tolist()}]}
        out = self.infer(name, req)["outputs"]
        self.assertEqual([o["name"] for o in out], ["logits", "score"])
        self.assertEqual(out[0]["shape"], [6, 3])
        self.assertEqual(out[1]["shape"], [6])
        self.assertClose(np.reshape(out[0]["data"], (6, 3)), lo.numpy(), "infer logits")
        self.assertClose(out[1]["data"], sc.numpy(), "infer score")
        # bit for bit what predict answers
        pred = D.ok("POST", "/v1/models/%s/predict" % name, body(xs))["outputs"]
        self.assertEqual(np.float32(out[1]["data"]).tolist(), np.float32(pred["score"]).tolist())
        # the requested outputs, in the order asked
        one = self.infer(name, dict(req, outputs=[{"name": "score"}]))["outputs"]
        self.assertEqual([o["name"] for o in one], ["score"])
        self.assertEqual(one[0]["data"], out[1]["data"])
        two = self.infer(name, dict(req, outputs=[{"name": "score"}, {"name": "logits"}]))
        self.assertEqual([o["name"] for o in two["outputs"]], ["score", "logits"])
        # a version's infer serves its weights
        self.assertEqual(self.infer(name, req)["outputs"],
                         D.ok("POST", "/v2/models/%s/versions/1/infer" % name, req)["outputs"])
        # names checked, nothing changes
        before = D.params(name)
        r = D.post("/v2/models/%s/infer" % name, {"inputs": req["inputs"][:1]})
        self.assertError(r, 400, "the input \"user\"", "is missing")
        r = D.post("/v2/models/%s/infer" % name, dict(req, outputs=[{"name": "output"}]))
        self.assertError(r, 400, "has no output \"output\"", "\"logits\", \"score\"")
        r = D.post("/v2/models/%s/infer" % name, {"inputs": [dict(req["inputs"][0], name="input"),
                                                             req["inputs"][1]]})
        self.assertError(r, 400, "has no input \"input\"")
        r = D.post("/v2/models/%s/infer" % name, {"inputs": [req["inputs"][0], dict(
            req["inputs"][1], shape=[5], data=xs["user"].tolist()[:5])]})
        self.assertError(r, 400, "inputs.item: 6 rows, inputs.user has 5")
        self.assertEqual(D.params(name), before)

    def test_binary_extension(self):
        name, net, g = self.two_tower()
        xs, _ = batch(g, 7)
        lo, sc = self.torch_outputs(net, xs)
        js = self.infer(name, {"inputs": [
            {"name": "user", "shape": [7], "datatype": "INT64", "data": xs["user"].tolist()},
            {"name": "item", "shape": [7], "datatype": "INT64", "data": xs["item"].tolist()}]})
        body_, n = test_oip.binary_request(
            [("user", "INT64", xs["user"].numpy().astype("<i8")),
             ("item", "INT32", xs["item"].numpy().astype("<i4"))],
            outputs=[{"name": "logits", "parameters": {"binary_data": True}}, {"name": "score"}])
        r = D.request("POST", "/v2/models/%s/infer" % name, body=body_,
                      headers={"Inference-Header-Content-Length": str(n)},
                      content_type="application/octet-stream")
        self.assertEqual(r.status, 200, r)
        head, data = test_oip.split_binary(r)
        o = head["outputs"]
        self.assertEqual(o[0]["parameters"], {"binary_data_size": 7 * 3 * 4})
        self.assertNotIn("data", o[0])
        got = np.frombuffer(data, "<f4").reshape(7, 3)
        self.assertEqual(got.tolist(), np.float32(js["outputs"][0]["data"]).reshape(7, 3).tolist())
        self.assertClose(got, lo.numpy(), "binary logits")
        self.assertEqual(o[1]["data"], js["outputs"][1]["data"])
        # every output binary: the bytes follow in the answer's order
        body_, n = test_oip.binary_request(
            [("user", "INT64", xs["user"].numpy().astype("<i8")),
             ("item", "INT64", xs["item"].numpy().astype("<i8"))],
            parameters={"binary_data_output": True})
        r = D.request("POST", "/v2/models/%s/infer" % name, body=body_,
                      headers={"Inference-Header-Content-Length": str(n)},
                      content_type="application/octet-stream")
        head, data = test_oip.split_binary(r)
        self.assertEqual(len(data), 7 * 3 * 4 + 7 * 4)
        self.assertEqual(np.frombuffer(data[84:], "<f4").tolist(),
                         np.float32(js["outputs"][1]["data"]).tolist())

    @unittest.skipIf(test_oip.VENDOR is None, "tritonclient not found (../shared/vendor)")
    def test_triton_client(self):
        sys.path.insert(0, test_oip.VENDOR)
        import tritonclient.http as http
        name, net, g = self.two_tower()
        xs, _ = batch(g, 4)
        lo, sc = self.torch_outputs(net, xs)
        c = http.InferenceServerClient(url="%s:%d" % (D.host, D.port))
        try:
            md = c.get_model_metadata(name)
            self.assertEqual([i["name"] for i in md["inputs"]], ["user", "item"])
            for binary in (False, True):
                ins = []
                for k in ("user", "item"):
                    i = http.InferInput(k, [4], "INT64")
                    i.set_data_from_numpy(xs[k].numpy().astype(np.int64), binary_data=binary)
                    ins.append(i)
                outs = [http.InferRequestedOutput("score", binary_data=binary),
                        http.InferRequestedOutput("logits", binary_data=binary)]
                res = c.infer(name, ins, outputs=outs)
                self.assertClose(res.as_numpy("logits"), lo.numpy(), "triton logits")
                self.assertClose(res.as_numpy("score"), sc.numpy(), "triton score")
        finally:
            c.close()


class TestSafetensorsNamed(Base):
    def post_st(self, path, tensors, metadata=None, headers=None):
        h = dict(OCTET)
        h.update(headers or {})
        return D.post(path, body=st.write(tensors, metadata), headers=h)

    def named(self, xs, ys=None):
        t = {"inputs." + k: v.numpy().astype(np.int64) for k, v in xs.items()}
        for k, v in (ys or {}).items():
            t["targets." + k] = v.numpy().astype(np.int64 if k == "label" else np.float32)
        return t

    def test_predict_batches_evaluate(self):
        name, net, g = self.two_tower()
        xs, ys = batch(g, 5)
        js = D.ok("POST", "/v1/models/%s/predict" % name, body(xs))
        r = self.post_st("/v1/models/%s/predict" % name, self.named(xs))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json(), js, "safetensors in, JSON out: the same answer")
        r = self.post_st("/v1/models/%s/predict" % name, self.named(xs),
                         headers={"Accept": "application/octet-stream"})
        t, _ = st.read(r.body)
        self.assertEqual(sorted(t), ["logits", "score"])
        self.assertEqual(t["score"].tolist(), np.float32(js["outputs"]["score"]).tolist())
        ev = D.ok("POST", "/v1/models/%s/evaluate" % name, body(xs, ys))
        r = self.post_st("/v1/models/%s/evaluate" % name, self.named(xs, ys),
                         metadata={"metrics": "[\"loss\", \"accuracy\"]"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["losses"], ev["losses"])
        self.assertEqual(r.json()["outputs"], {"logits": ev["outputs"]["logits"]})
        # batches: the same loss and the same gradients as the JSON body on a twin model
        other = fresh()
        D.create(dict(tg.TWO_TOWER, name=other, loss=LOSS, optimizer={"type": "SGD", "lr": 0.1},
                      seed=1))
        twin = fresh()
        D.create(dict(tg.TWO_TOWER, name=twin, loss=LOSS, optimizer={"type": "SGD", "lr": 0.1},
                      seed=1))
        a = D.ok("POST", "/v1/models/%s/batches" % other, body(xs, ys))
        r = self.post_st("/v1/models/%s/batches" % twin, self.named(xs, ys))
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json()["loss"], a["loss"])
        net = self.twin_of(other)
        lo, sc = net(xs["user"], xs["item"])
        self.assertClose(a["loss"], (F.cross_entropy(lo, ys["label"]) +
                                     0.5 * F.mse_loss(sc, ys["rating"])).item(), "batch loss")
        D.step(other)
        D.step(twin)
        self.assertEqual(D.params(other), D.params(twin))

    def test_errors(self):
        name, net, g = self.two_tower(steps=0)
        xs, ys = batch(g, 3)
        before = D.params(name)
        t = self.named(xs)
        del t["inputs.item"]
        r = self.post_st("/v1/models/%s/predict" % name, t)
        self.assertError(r, 400, "inputs.item: required tensor is missing")
        t = self.named(xs)
        t["inputs.movie"] = np.zeros(3, np.int64)
        r = self.post_st("/v1/models/%s/predict" % name, t)
        self.assertError(r, 400, "inputs.movie: unknown tensor")
        # tensors are named inputs.<name>; the answer lists them (a bare "inputs" tensor is
        # no name of a model with two inputs)
        for bare in ("user", "junk", "inputs"):
            t = self.named(xs)
            t[bare] = t.pop("inputs.user") if bare == "user" else np.zeros(3, np.int64)
            r = self.post_st("/v1/models/%s/predict" % name, t)
            self.assertError(r, 400, "%s: unknown tensor (accepted: inputs.user, inputs.item)"
                             % bare)
        t = self.named(xs, ys)   # train: the targets are named too
        t["targets"] = np.zeros(3, np.int64)
        r = self.post_st("/v1/models/%s/train" % name, t)
        self.assertError(r, 400, "targets: unknown tensor (accepted: ")
        self.assertNotIn("targets,", r.json()["error"])
        for dt, code in ((np.float64, "F64"), (np.int32, "I32"), (np.uint8, "U8"), (bool, "BOOL")):
            t = self.named(xs)
            t["inputs.user"] = t["inputs.user"].astype(dt)
            r = self.post_st("/v1/models/%s/predict" % name, t)
            msg = self.assertError(r, 400, 'tensor "inputs.user" has dtype %s, only F32 and I64 '
                                   'are supported' % code)
            self.assertNotIn("not a valid", msg)   # the file is fine: its dtype is not taken
        t = self.named(xs)   # float32 indices are taken when whole, as torch's .long()
        t["inputs.user"] = t["inputs.user"].astype(np.float32)
        r = self.post_st("/v1/models/%s/predict" % name, t)
        self.assertEqual(r.json(), D.ok("POST", "/v1/models/%s/predict" % name, body(xs)))
        t["inputs.user"] = t["inputs.user"] + np.float32(0.5)
        r = self.post_st("/v1/models/%s/predict" % name, t)
        self.assertError(r, 400, "inputs.user: element 0 (", "is not an integer")
        t = self.named(xs)
        t["inputs.user"] = np.zeros(2, np.int64)
        r = self.post_st("/v1/models/%s/predict" % name, t)
        self.assertError(r, 400, "inputs.item: 3 rows, inputs.user has 2")
        t = self.named(xs, ys)
        t["inputs.user"] = np.float32([0.5, 1, 2])
        r = self.post_st("/v1/models/%s/batches" % name, t)
        self.assertError(r, 400, "inputs.user")
        t = self.named(xs, ys)
        del t["targets.rating"]
        r = self.post_st("/v1/models/%s/batches" % name, t)
        self.assertError(r, 400, "targets.rating: required tensor is missing")
        self.assertEqual(D.params(name), before)


if __name__ == "__main__":
    dm.run_tests()
