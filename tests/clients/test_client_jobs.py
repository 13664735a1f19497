"""The Python client's evaluation and training jobs: Model.evaluate, Model.submit / Job
(status, cancel, wait, events), Model.fit as a job (wait=..., validation=...), set_lr.
PyTorch computes every expected number.

Run through test_python_client.py (which sets client_common.EXE).
"""

import io
import threading
import time

import client_common as common
from client_common import et, nn, optim, torch, flat, assert_close, torch_net, sine_data

CLF_LAYERS = [nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 3)]
CLF_X = [[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [1.0, 1.0], [0.5, -0.5], [-0.3, 0.8]]
CLF_Y = [0, 1, 2, 0, 1, 2]


def torch_metrics(net, x, y):
    """CrossEntropy loss and argmax accuracy of ``net`` in eval mode, as the daemon defines them."""
    net.eval()
    with torch.no_grad():
        out = net(torch.tensor(x))
        loss = torch.nn.functional.cross_entropy(out, torch.tensor(y)).item()
        acc = (out.argmax(1) == torch.tensor(y)).float().mean().item()
    return loss, acc


class JobTests(common.DaemonCase):
    def clf(self, lr=0.5, **kw):
        return self.client.create(self.name, layers=CLF_LAYERS, loss=nn.CrossEntropyLoss(),
                                  optimizer=optim.SGD(lr=lr), seed=0, **kw)

    def wait_state(self, job, states, timeout=60):
        deadline = time.monotonic() + timeout  # only turns a hang into a failure
        while job.status()["state"] not in states:
            self.assertLess(time.monotonic(), deadline, "job stuck in %s" % job.state)
            time.sleep(0.02)

    # -- evaluate ---------------------------------------------------------------
    def test_evaluate_matches_torch_and_changes_nothing(self):
        m = self.clf()
        before = m.parameters()
        res = m.evaluate(CLF_X, CLF_Y)
        loss, acc = torch_metrics(torch_net(CLF_LAYERS, before), CLF_X, CLF_Y)
        self.assertEqual(res["rows"], 6)
        self.assertEqual(res["step"], 0)
        assert_close(self, res["metrics"]["loss"], loss, "loss")
        self.assertAlmostEqual(res["metrics"]["accuracy"], acc, places=6)
        res = m.evaluate(CLF_X, CLF_Y, metrics=["top_k_accuracy"], k=2)
        with torch.no_grad():
            out = torch_net(CLF_LAYERS, before)(torch.tensor(CLF_X))
        top2 = out.topk(2, dim=1).indices
        want = sum(int(CLF_Y[i] in top2[i].tolist()) for i in range(6)) / 6
        self.assertEqual(res["k"], 2)
        self.assertAlmostEqual(res["metrics"]["top_k_accuracy"], want, places=6)
        after = m.parameters()
        self.assertEqual({k: flat(v) for k, v in before.items()}, {k: flat(v) for k, v in after.items()})
        self.assertEqual(m.num_steps, 0)

    def test_evaluate_regression_metrics_like_torch(self):
        x, y = sine_data(12)
        m = self.client.create(self.name, layers=common.SINE_LAYERS, loss="MSELoss",
                               optimizer=optim.SGD(lr=0.1), seed=2)
        res = m.evaluate(x, y, metrics=["loss", "mae", "rmse"])
        with torch.no_grad():
            out = torch_net(common.SINE_LAYERS, m.parameters())(torch.tensor(x))
        t = torch.tensor(y)
        assert_close(self, res["metrics"]["loss"], torch.nn.functional.mse_loss(out, t).item(), "mse")
        assert_close(self, res["metrics"]["mae"], (out - t).abs().mean().item(), "mae")
        assert_close(self, res["metrics"]["rmse"], torch.nn.functional.mse_loss(out, t).sqrt().item(), "rmse")

    def test_evaluate_bad_metric_is_400_naming_it(self):
        m = self.clf()
        with self.assertRaises(et.EasytorchError) as cm:
            m.evaluate(CLF_X, CLF_Y, metrics=["acuracy"])
        self.assertEqual(cm.exception.status, 400)
        self.assertIn("metrics[0]", cm.exception.message)
        self.assertIn("accuracy", cm.exception.message)
        with self.assertRaises(et.EasytorchError) as cm:
            m.evaluate(CLF_X, [0, 1, 2, 0, 1, 7])
        self.assertEqual(cm.exception.status, 400)
        self.assertIn("targets[5]", cm.exception.message)

    # -- fit as a job -------------------------------------------------------------
    def test_fit_as_a_job_matches_a_torch_loop_with_validation(self):
        m = self.clf()
        net = torch_net(CLF_LAYERS, m.parameters())
        xv, yv = [[2.0, 0.0], [0.0, 2.0], [-2.0, -1.0]], [0, 1, 2]
        epochs, bs = 4, 4
        out = io.StringIO()
        hist = m.fit(CLF_X, CLF_Y, epochs=epochs, batch_size=bs, shuffle=False,
                     validation=(xv, yv), eval_every=2, file=out)
        # torch: the same minibatches in order ([0:4], [4:6]) each epoch
        opt = torch.optim.SGD(net.parameters(), lr=0.5)
        means, evals = [], []
        step = 0
        for _ in range(epochs):
            total = 0.0
            for a in range(0, 6, bs):
                xb, yb = torch.tensor(CLF_X[a:a + bs]), torch.tensor(CLF_Y[a:a + bs])
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(net(xb), yb)
                loss.backward()
                opt.step()
                total += loss.item() * len(yb)
                step += 1
                if step % 2 == 0:
                    evals.append((step,) + torch_metrics(net, xv, yv))
                    net.train()
            means.append(total / 6)
        self.assertEqual(hist["step"], 8)
        self.assertEqual(hist["job"]["state"], "done")
        assert_close(self, hist["loss"], means, "per-epoch mean losses")
        got = m.parameters()
        for k, v in net.state_dict().items():
            assert_close(self, got[k], v.tolist(), k)
        self.assertEqual([r["step"] for r in hist["validation"]], [e[0] for e in evals])
        for r, (s, loss, acc) in zip(hist["validation"], evals):
            assert_close(self, r["metrics"]["loss"], loss, "validation loss at %d" % s)
            self.assertAlmostEqual(r["metrics"]["accuracy"], acc, places=6)
        self.assertIn("epoch 4/4", out.getvalue())  # the progress bar (one line per epoch in a file)
        # the same evaluations are in the validation history next to the training loss
        val = m._req("GET", "/loss?series=validation")["validation"]
        self.assertEqual([v["step"] for v in val], [e[0] for e in evals])

    def test_fit_wait_false_returns_a_job(self):
        m = self.clf()
        job = m.fit(CLF_X, CLF_Y, epochs=3, batch_size=3, shuffle=True, wait=False)
        self.assertIsInstance(job, et.Job)
        self.assertIn(job.state, ("queued", "running", "done"))
        rec = job.wait(timeout=120)
        self.assertEqual(rec["state"], "done")
        self.assertEqual(rec["steps_done"], 6)
        self.assertEqual(m.num_steps, 6)
        self.assertEqual([j.id for j in m.jobs()], [job.id])
        self.assertEqual(m.job(job.id).state, "done")
        # the job trained exactly as POST /train with the same body (same generator draws)
        twin = self.client.create(self.name + "-twin", layers=CLF_LAYERS, loss=nn.CrossEntropyLoss(),
                                  optimizer=optim.SGD(lr=0.5), seed=0)
        twin.train(CLF_X, CLF_Y, epochs=3, batch_size=3, shuffle=True)
        a, b = m.parameters(), twin.parameters()
        for k in a:
            self.assertEqual(flat(a[k]), flat(b[k]), k)

    def test_fit_job_refuses_a_client_seed(self):
        m = self.clf()
        with self.assertRaises(ValueError):
            m.fit(CLF_X, CLF_Y, seed=1, wait=True)
        self.assertEqual(m.jobs(), [])

    def test_submit_bad_validation_is_400_and_queues_nothing(self):
        m = self.clf()
        with self.assertRaises(et.EasytorchError) as cm:
            m.submit(CLF_X, CLF_Y, epochs=2, validation=([[1.0, 0.0]], [9]))
        self.assertEqual(cm.exception.status, 400)
        self.assertIn("validation.targets[0]", cm.exception.message)
        self.assertEqual(m.jobs(), [])
        self.assertEqual(m.num_steps, 0)

    # -- status, cancel, Ctrl-C ------------------------------------------------------
    def test_cancel_mid_run_keeps_the_steps_taken(self):
        m = self.clf(lr=0.01)
        x = CLF_X * 200
        y = CLF_Y * 200
        job = m.submit(x, y, epochs=800, batch_size=1)
        self.wait_state(job, ("running",))
        with self.assertRaises(et.EasytorchError) as cm:  # one training call at a time
            m.train(CLF_X, CLF_Y)
        self.assertEqual(cm.exception.status, 409)
        self.assertIn("busy with job %d" % job.id, cm.exception.message)
        rec = job.cancel()
        self.assertEqual(rec["state"], "cancelled")
        self.assertLess(rec["steps_done"], rec["steps_total"])
        self.assertEqual(m.num_steps, rec["start_step"] + rec["steps_done"])
        self.assertTrue(job.done())
        again = job.cancel()  # idempotent
        self.assertEqual((again["state"], again["steps_done"]), ("cancelled", rec["steps_done"]))
        self.assertEqual(job.wait(), again)  # over: returns at once

    def test_ctrl_c_while_waiting_cancels_the_job(self):
        m = self.clf(lr=0.01)
        job = m.submit(CLF_X * 200, CLF_Y * 200, epochs=800, batch_size=1)
        seen = []

        def progress(ev):
            seen.append(ev)
            if ev.type == "step":
                raise KeyboardInterrupt
        with self.assertRaises(KeyboardInterrupt):
            job.wait(progress)
        self.assertEqual(seen[-1].data["job"], job.id)
        self.assertEqual(job.state, "cancelled")
        self.assertEqual(job.status()["state"], "cancelled")

    def test_job_events_are_only_that_jobs_and_end_with_it(self):
        m = self.clf()
        other = self.client.create(self.name + "-other", layers=CLF_LAYERS,
                                   loss=nn.CrossEntropyLoss(), optimizer=optim.SGD(lr=0.5), seed=0)
        job = m.submit(CLF_X, CLF_Y, epochs=30, batch_size=2, validation=(CLF_X, CLF_Y), eval_every=15)
        stop = threading.Event()
        other = et.Model(et.Client(self.daemon.url), other.name)  # a Client per thread

        def noise():  # another model's steps on the same daemon
            while not stop.is_set():
                other.train(CLF_X, CLF_Y)
        t = threading.Thread(target=noise)
        t.start()
        try:
            evs = list(job.events())
        finally:
            stop.set()
            t.join()
            other.client.close()
        self.assertTrue(job.done())
        self.assertEqual(job.state, "done")
        self.assertTrue(evs)
        self.assertTrue(all(e.data["model"] == m.name for e in evs))
        self.assertTrue(all(e.type in ("step", "evaluation", "job") for e in evs))
        steps = [s for e in evs if e.type == "step" for s, _ in e.data["steps"]]
        self.assertEqual(steps, sorted(steps))
        # replayed from the daemon's buffer: the whole story although the job may have ended
        # before the stream opened
        self.assertEqual(steps, list(range(1, 91)))  # 30 epochs of 3 minibatches
        self.assertEqual([e.data["step"] for e in evs if e.type == "evaluation"], [15, 30, 45, 60, 75, 90])
        self.assertEqual([e.data["state"] for e in evs if e.type == "job"][-1], "done")

    # -- live hyperparameters ------------------------------------------------------
    def test_set_lr_changes_the_next_step_like_torch(self):
        x, y = sine_data(8)
        m = self.client.create(self.name, layers=common.SINE_LAYERS, loss="MSELoss",
                               optimizer=optim.SGD(lr=0.1), seed=5)
        net = torch_net(common.SINE_LAYERS, m.parameters())
        changes = m.set_lr(0.02)
        self.assertEqual(changes, {"lr": {"from": 0.1, "to": 0.02}})
        m.train(x, y)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        for g in opt.param_groups:
            g["lr"] = 0.02
        opt.zero_grad()
        torch.nn.functional.mse_loss(net(torch.tensor(x)), torch.tensor(y)).backward()
        opt.step()
        got = m.parameters()
        for k, v in net.state_dict().items():
            assert_close(self, got[k], v.tolist(), k)
        with self.assertRaises(et.EasytorchError) as cm:
            m.set_lr(-1)
        self.assertEqual(cm.exception.status, 400)
        self.assertEqual(m.info()["lr"], 0.02)
