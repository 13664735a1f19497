"""The Python client's training: push/step, train, fit (client-side), gradients, loss
history, the binary transport and the daemon's body limits.

Run through test_python_client.py (which sets client_common.EXE).
"""

import io
import random
import unittest

import client_common as common
from client_common import et, nn, optim, np, torch, SINE_LAYERS, Daemon  # noqa: F401
from client_common import flat, shape, assert_close, torch_net, sine_data


class TrainingTests(common.DaemonCase):
    def test_predict_wrong_width_is_400_and_model_unchanged(self):
        m = self.make()
        before = m.parameters()
        with self.assertRaises(et.EasytorchError) as cm:
            m.predict([[1.0, 2.0]])
        self.assertEqual(cm.exception.status, 400)
        after = m.parameters()
        for k in before:
            self.assertEqual(flat(before[k]), flat(after[k]))

    def test_nan_input_is_refused_before_sending_as_json(self):
        m = self.make()
        js = et.Client(self.daemon.url, binary=False)
        with self.assertRaises(ValueError):
            et.Model(js, m.name).predict([[float("nan")]])
        js.close()

    @unittest.skipIf(np is None, "needs NumPy")
    def test_nan_input_goes_as_it_is_in_binary(self):
        """safetensors carry NaN (JSON cannot): the daemon computes with it, as torch would."""
        m = self.make()
        out = m.predict(np.array([[np.nan], [0.5]], np.float32))
        self.assertTrue(np.isnan(out[0, 0]))
        self.assertTrue(np.isfinite(out[1, 0]))

    # -- training by hand ------------------------------------------------------------------------
    def test_push_accumulates_gradients_like_backward(self):
        m = self.make(seed=2)
        net = torch_net(SINE_LAYERS, m.parameters())
        x1, y1 = [[0.5], [1.0]], [[0.4], [0.8]]
        x2, y2 = [[-1.0]], [[-0.9]]
        l1 = m.push(x1, y1)
        l2 = m.push(x2, y2)
        lf = torch.nn.MSELoss()
        t1 = lf(net(torch.tensor(x1)), torch.tensor(y1))
        t1.backward()
        t2 = lf(net(torch.tensor(x2)), torch.tensor(y2))
        t2.backward()
        assert_close(self, [l1, l2], [t1.item(), t2.item()], "losses")
        self.assertEqual(m.info()["pending_batches"], 2)
        g = m.gradients()
        for k, p in net.named_parameters():
            assert_close(self, g[k], p.grad.tolist(), k)

    def test_step_applies_sgd_and_zeroes_gradients(self):
        m = self.make(seed=4, opt=optim.SGD(lr=0.1, momentum=0.9))
        net = torch_net(SINE_LAYERS, m.parameters())
        topt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
        xs, ys = sine_data(8)
        for i in range(3):
            m.push(xs, ys)
            res = m.step()
            self.assertEqual(res["step"], i + 1)
            assert_close(self, [res["lr"]], [0.1], "lr")
            topt.zero_grad()
            torch.nn.MSELoss()(net(torch.tensor(xs)), torch.tensor(ys)).backward()
            topt.step()
        p = m.parameters()
        for k, v in net.state_dict().items():
            assert_close(self, p[k], v.tolist(), k)
        for k, v in m.gradients().items():
            self.assertEqual(set(flat(v)), {0.0}, k)
        self.assertEqual(m.num_steps, 3)

    def test_new_layers_param_groups_and_onecycle_train_like_torch(self):
        layers = [nn.Linear(1, 6), nn.SiLU(), nn.Linear(6, 6), nn.ELU(alpha=0.5),
                  nn.Linear(6, 6), nn.Mish(), nn.Linear(6, 6), nn.Softplus(beta=2.0),
                  nn.Linear(6, 6), nn.Hardtanh(-0.8, 0.9), nn.Linear(6, 6), nn.GELU(),
                  nn.Linear(6, 6), nn.ReLU6(), nn.Linear(6, 1)]
        opt = optim.NAdam(lr=0.01, betas=(0.85, 0.99),
                          param_groups=[{"params": "14.", "lr": 0.002}])
        sched = optim.lr_scheduler.OneCycleLR(max_lr=0.05, total_steps=6)
        m = self.make(seed=9, layers=layers, opt=opt, scheduler=sched)
        net = torch_net(layers, m.parameters())
        last = [p for k, p in net.named_parameters() if k.startswith("14.")]
        rest = [p for k, p in net.named_parameters() if not k.startswith("14.")]
        topt = torch.optim.NAdam([{"params": rest}, {"params": last, "lr": 0.002}],
                                 lr=0.01, betas=(0.85, 0.99))
        tsched = torch.optim.lr_scheduler.OneCycleLR(topt, max_lr=0.05, total_steps=6)
        xs, ys = sine_data(8)
        for i in range(6):
            m.push(xs, ys)
            res = m.step()
            assert_close(self, [res["lr"]], [topt.param_groups[0]["lr"]], "lr at step %d" % (i + 1))
            topt.zero_grad()
            torch.nn.MSELoss()(net(torch.tensor(xs)), torch.tensor(ys)).backward()
            topt.step()
            tsched.step()
        p = m.parameters()
        for k, v in net.state_dict().items():
            assert_close(self, p[k], v.tolist(), k)
        m.push(xs, ys)
        with self.assertRaises(et.EasytorchError) as cm:
            m.step()
        self.assertEqual(cm.exception.status, 409)

    def test_every_new_helper_is_accepted_by_the_daemon(self):
        sch = optim.lr_scheduler
        opts = [optim.NAdam(momentum_decay=0.01), optim.RAdam(eps=1e-6), optim.Adamax(betas=(0.8, 0.9)),
                optim.SGD(lr=0.1, maximize=True, param_groups=[{"params": ["0."], "momentum": 0.5}])]
        scheds = [sch.ConstantLR(factor=0.5, total_iters=3), sch.LinearLR(start_factor=0.2),
                  sch.MultiStepLR([2, 4], gamma=0.3),
                  sch.CosineAnnealingWarmRestarts(T_0=3, T_mult=2), sch.ReduceLROnPlateau(patience=0),
                  sch.OneCycleLR(max_lr=0.1, epochs=2, steps_per_epoch=3),
                  sch.SequentialLR([sch.LinearLR(total_iters=2), sch.ExponentialLR(0.9)], milestones=[2]),
                  sch.ChainedScheduler([sch.ConstantLR(), sch.ExponentialLR(0.9)])]
        losses = [(nn.KLDivLoss(reduction="batchmean"), [[0.2, 0.8]]),
                  (nn.BCEWithLogitsLoss(pos_weight=[2.0, 0.5]), [[1.0, 0.0]]),
                  (nn.BCELoss(), [[1.0, 0.0]]),
                  (nn.CrossEntropyLoss(weight=[1.0, 2.0], label_smoothing=0.1), [[0.3, 0.7]])]
        xs = [[0.5]]
        for i, o in enumerate(opts + [optim.SGD(lr=0.1)] * (len(scheds) - len(opts))):
            s = scheds[i] if i < len(scheds) else None
            l, y = losses[i % len(losses)]
            layers = [nn.Linear(1, 2)] + ([nn.Sigmoid()] if l["type"] == "BCELoss" else []) + \
                     ([nn.LogSoftmax(dim=1)] if l["type"] == "KLDivLoss" else [])
            m = self.make(name="%s-%d" % (self.name, i), layers=layers, loss=l, opt=o, scheduler=s)
            for _ in range(3):
                m.push(xs, y)
                m.step()
            self.assertEqual(m.num_steps, 3)
            m.delete()

    def test_step_without_pending_batch_is_409(self):
        m = self.make()
        with self.assertRaises(et.EasytorchError) as cm:
            m.step()
        self.assertEqual(cm.exception.status, 409)

    def test_scheduler_changes_lr_per_step(self):
        m = self.make(opt=optim.SGD(lr=0.1), scheduler=optim.lr_scheduler.StepLR(step_size=1, gamma=0.5))
        xs, ys = sine_data(4)
        lrs = []
        for _ in range(3):
            m.push(xs, ys)
            lrs.append(m.step()["lr"])
        w = torch.zeros(1, requires_grad=True)
        topt = torch.optim.SGD([w], lr=0.1)
        tsched = torch.optim.lr_scheduler.StepLR(topt, step_size=1, gamma=0.5)
        want = []
        for _ in range(3):  # the lr each step used, as torch's scheduler sets it
            want.append(topt.param_groups[0]["lr"])
            topt.step()
            tsched.step()
        assert_close(self, lrs, want, "StepLR lrs")

    def test_gradients_of_one_batch_match_torch_and_accumulate_nothing(self):
        m = self.make(seed=6)
        net = torch_net(SINE_LAYERS, m.parameters())
        x, y = [[0.25], [-1.5], [2.0]], [[0.2], [-1.0], [0.9]]
        res = m.gradients(x, y)
        tx = torch.tensor(x, requires_grad=True)
        loss = torch.nn.MSELoss()(net(tx), torch.tensor(y))
        loss.backward()
        assert_close(self, [res["loss"]], [loss.item()], "loss")
        for k, p in net.named_parameters():
            assert_close(self, res["gradients"][k], p.grad.tolist(), k)
        assert_close(self, res["input_gradient"], tx.grad.tolist(), "input_gradient")
        self.assertEqual(m.info()["pending_batches"], 0)
        for k, v in m.gradients().items():
            self.assertEqual(set(flat(v)), {0.0}, k)

    def test_gradients_needs_both_x_and_y(self):
        m = self.make()
        with self.assertRaises(ValueError):
            m.gradients([[1.0]])

    # -- fit / train ---------------------------------------------------------------------------------
    def test_fit_matches_a_torch_loop(self):
        for shuffle in (False, True):
            with self.subTest(shuffle=shuffle):
                name = "fit-%s" % shuffle
                m = self.make(name=name, seed=8, opt=optim.Adam(lr=0.01))
                net = torch_net(SINE_LAYERS, m.parameters())
                topt = torch.optim.Adam(net.parameters(), lr=0.01)
                xs, ys = sine_data(10)
                err = io.StringIO()
                hist = m.fit(xs, ys, epochs=3, batch_size=4, shuffle=shuffle, seed=11, file=err)
                # the same loop in torch; the client draws its order from random.Random(seed)
                rng = random.Random(11)
                want_epoch_loss = []
                for _ in range(3):
                    order = list(range(10))
                    if shuffle:
                        rng.shuffle(order)
                    tot = 0.0
                    for i in range(0, 10, 4):
                        idx = order[i:i + 4]
                        topt.zero_grad()
                        l = torch.nn.MSELoss()(net(torch.tensor([xs[j] for j in idx])), torch.tensor([ys[j] for j in idx]))
                        l.backward()
                        topt.step()
                        tot += l.item() * len(idx)
                    want_epoch_loss.append(tot / 10)
                self.assertEqual(hist["step"], 9)
                assert_close(self, hist["loss"], want_epoch_loss, "epoch losses")
                p = m.parameters()
                for k, v in net.state_dict().items():
                    assert_close(self, p[k], v.tolist(), k)
                text = err.getvalue()
                self.assertIn("epoch 3/3", text)
                self.assertIn("step 9", text)
                self.assertIn("loss", text)

    def test_fit_with_ndarrays_in_several_requests(self):
        if np is None:
            self.skipTest("needs NumPy")
        m = self.make(seed=1, opt=optim.Adam(lr=0.01))
        x = np.linspace(-3, 3, 40, dtype=np.float32).reshape(-1, 1)
        y = np.sin(x)
        # 8 rows per request -> 2 minibatches of 4 per POST /train
        hist = m.fit(x, y, epochs=2, batch_size=4, rows_per_request=8, verbose=False)
        self.assertEqual(hist["step"], 20)
        self.assertEqual(len(hist["loss"]), 2)
        self.assertEqual(m.num_steps, 20)

    def test_fit_rejects_mismatched_rows(self):
        m = self.make()
        with self.assertRaises(ValueError):
            m.fit([[1.0], [2.0]], [[1.0]], verbose=False)

    def test_train_runs_epochs_on_the_daemon(self):
        m = self.make(opt=optim.SGD(lr=0.05))
        xs, ys = sine_data(12)
        res = m.train(xs, ys, epochs=2, batch_size=5)
        self.assertEqual(res["step"], 6)  # ceil(12/5) = 3 minibatches x 2 epochs
        self.assertEqual(len(res["losses"]), 6)
        assert_close(self, [res["loss"]], [res["losses"][-1]], "last loss")

    def test_loss_history_and_since(self):
        m = self.make(opt=optim.SGD(lr=0.05))
        xs, ys = sine_data(12)
        res = m.train(xs, ys, epochs=5, batch_size=4)
        hist = m.loss_history()
        self.assertEqual([s for s, _ in hist], list(range(1, 16)))
        assert_close(self, [l for _, l in hist], res["losses"], "history losses")
        self.assertEqual([s for s, _ in m.loss_history(since=12)], [13, 14, 15])
        self.assertEqual(m.loss_history(since=15), [])
        self.assertEqual(m.last_loss, hist[-1][1])

    def test_cross_entropy_takes_class_indices(self):
        m = self.client.create(self.name, layers=[nn.Linear(2, 3)], loss=nn.CrossEntropyLoss(),
                               optimizer=optim.SGD(lr=0.5), seed=0)
        x = [[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]] * 4
        y = [0, 1, 2] * 4
        first = m.train(x, y, epochs=1)["loss"]
        last = m.train(x, y, epochs=50)["loss"]
        self.assertLess(last, first)
        out = m.predict([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
        self.assertEqual([max(range(3), key=lambda j: row[j]) for row in (out.tolist() if hasattr(out, "tolist") else out)], [0, 1, 2])


@unittest.skipIf(np is None, "needs NumPy")
class BinaryTransportTests(unittest.TestCase):
    """With NumPy the client sends and takes tensors as safetensors; the results are the
    ones the JSON transport gives (held to PyTorch by the tests above), bit for bit."""

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(common.EXE)
        cls.bin = et.Client(cls.daemon.url)
        cls.js = et.Client(cls.daemon.url, binary=False)
        cls.sent = []
        send = cls.bin._send

        def spy(method, path, data, headers):
            cls.sent.append((method, path, headers.get("Content-Type"), headers.get("Accept")))
            return send(method, path, data, headers)
        cls.bin._send = spy

    @classmethod
    def tearDownClass(cls):
        cls.bin.close()
        cls.js.close()
        cls.daemon.stop()

    def pair(self, name, **kw):
        spec = dict(layers=[nn.Linear(3, 8), nn.GELU(), nn.Dropout(0.0), nn.Linear(8, 2)],
                    loss=nn.MSELoss(), optimizer=optim.Adam(lr=0.01, maximize=False), seed=4)
        spec.update(kw)
        return (self.bin.create(name + "-b", **spec), et.Model(self.js, name + "-j")
                if self.js.create(name + "-j", **spec) else None)

    def test_binary_is_used_and_equals_json(self):
        b, j = self.pair("eq")
        r = np.random.default_rng(1)
        x = r.standard_normal((64, 3)).astype(np.float32)
        y = r.standard_normal((64, 2)).astype(np.float32)
        del self.sent[:]
        pb = b.predict(x)
        self.assertIsInstance(pb, np.ndarray)
        self.assertEqual(pb.dtype, np.float32)
        self.assertTrue(np.array_equal(pb, j.predict(x)))
        self.assertIn(("POST", "/v1/models/eq-b/predict", "application/octet-stream"),
                      [s[:3] for s in self.sent])
        self.assertTrue(self.sent[-1][3].startswith("application/octet-stream"))
        self.assertEqual(b.push(x, y), j.push(x, y))
        gb, gj = b.gradients(), j.gradients()
        self.assertEqual(list(gb), list(gj))
        for k in gb:
            self.assertTrue(np.array_equal(gb[k], gj[k]), k)
        self.assertEqual(b.step(), j.step())
        hb = b.fit(x, y, epochs=3, batch_size=16, seed=7, verbose=False)
        hj = j.fit(x, y, epochs=3, batch_size=16, seed=7, verbose=False)
        self.assertEqual(hb, hj)
        tb = b.train(x, y, epochs=2, batch_size=10, shuffle=True)
        self.assertEqual(tb, j.train(x, y, epochs=2, batch_size=10, shuffle=True))
        sb, sj = b.state_dict(), j.state_dict()
        self.assertEqual(list(sb), list(sj))
        for k in sb:
            self.assertTrue(np.array_equal(sb[k], sj[k]), k)
        pr_b, pr_j = b.gradients(x[:5], y[:5]), j.gradients(x[:5], y[:5])
        self.assertEqual(np.float32(pr_b["loss"]), np.float32(pr_j["loss"]))
        self.assertTrue(np.array_equal(pr_b["input_gradient"], pr_j["input_gradient"]))
        for k in pr_j["gradients"]:
            self.assertTrue(np.array_equal(pr_b["gradients"][k], pr_j["gradients"][k]), k)
        # load_state_dict in binary: parameters of one into the other
        other = self.bin.create("eq-other", layers=[nn.Linear(3, 8), nn.GELU(), nn.Dropout(0.0),
                                                     nn.Linear(8, 2)], loss="MSELoss",
                                optimizer=optim.SGD(0.1), seed=99)
        other.load_state_dict(sb)
        self.assertTrue(np.array_equal(other.predict(x), b.predict(x)))
        for m in ("eq-b", "eq-j", "eq-other"):
            self.bin.delete(m)

    def test_integer_class_targets_and_torch_inputs(self):
        b, j = self.pair("ce", loss=nn.CrossEntropyLoss(label_smoothing=0.05),
                         layers=[nn.Linear(3, 3)])
        x = np.random.default_rng(2).standard_normal((30, 3)).astype(np.float32)
        y = np.arange(30) % 3
        self.assertEqual(b.fit(x, y, epochs=2, batch_size=8, seed=1, verbose=False),
                         j.fit(x, y.tolist(), epochs=2, batch_size=8, seed=1, verbose=False))
        if torch is not None:
            self.assertTrue(np.array_equal(b.predict(torch.tensor(x)), j.predict(x)))
        for m in ("ce-b", "ce-j"):
            self.bin.delete(m)



class LimitsTests(unittest.TestCase):
    """A daemon with a small body limit and a short idle timeout."""

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(common.EXE, extra_args=["--max-body", "4k", "--timeout", "1"])
        cls.client = et.Client(cls.daemon.url, numpy=False)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.daemon.stop()

    def test_fit_sends_fewer_rows_per_request_after_413(self):
        m = self.client.create("big-fit", layers=SINE_LAYERS, loss="MSELoss", optimizer=optim.SGD(lr=0.05))
        xs, ys = sine_data(200)  # about 10 kB of JSON: over the limit in one request
        with self.assertRaises(et.EasytorchError) as cm:
            m.train(xs, ys)
        self.assertEqual(cm.exception.status, 413)
        self.assertEqual(m.num_steps, 0)
        hist = m.fit(xs, ys, epochs=2, batch_size=10, shuffle=True, seed=0, verbose=False)
        self.assertEqual(hist["step"], 40)
        self.assertEqual(len(m.loss_history()), 40)
        m.delete()

    def test_body_far_over_the_limit_is_413_not_a_broken_pipe(self):
        m = self.client.create("huge", layers=SINE_LAYERS, loss="MSELoss", optimizer=optim.SGD(lr=0.05))
        rows = [[0.5]] * 400000  # ~5 MB: the daemon answers before reading it all
        for _ in range(2):
            with self.assertRaises(et.EasytorchError) as cm:
                m.train(rows, rows)
            self.assertEqual(cm.exception.status, 413)
        self.assertEqual(m.num_steps, 0)
        m.delete()

    def test_predict_splits_a_body_over_the_limit(self):
        m = self.client.create("big-predict", layers=SINE_LAYERS, loss="MSELoss", optimizer=optim.SGD(lr=0.05))
        xs, _ = sine_data(400)
        out = m.predict(xs)
        self.assertEqual(shape(out), [400, 1])
        assert_close(self, out[:3], m.predict(xs[:3]), "rows")
        m.delete()

    def test_connection_closed_while_idle_is_reopened(self):
        import time
        m = self.client.create("idle", layers=SINE_LAYERS, loss="MSELoss", optimizer=optim.SGD(lr=0.05))
        xs, ys = sine_data(4)
        m.push(xs, ys)
        time.sleep(2.5)  # past the daemon's 1 s idle timeout: it closes the kept-alive connection
        self.assertEqual(m.step()["step"], 1)
        time.sleep(2.5)
        m.push(xs, ys)
        self.assertEqual(m.info()["pending_batches"], 1)  # pushed exactly once
        m.delete()

