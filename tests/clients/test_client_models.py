"""The Python client's models: definitions, parameters, predictions, versions, ONNX, spec
helpers, tokens and what needs no daemon.

Run through test_python_client.py (which sets client_common.EXE).
"""

import math
import os
import tempfile
import unittest

import client_common as common
from client_common import et, nn, optim, np, torch, SINE_LAYERS, Daemon  # noqa: F401
from client_common import flat, shape, assert_close, torch_net, safetensors_read


class ModelTests(common.DaemonCase):
    # -- defining and finding models ------------------------------------------------
    def test_create_returns_model_with_description(self):
        m = self.make(seed=3)
        self.assertIsInstance(m, et.Model)
        self.assertEqual(m.name, self.name)
        info = m.info()
        self.assertEqual(info["name"], self.name)
        self.assertEqual(info["step"], 0)
        self.assertIsNone(info["loss"])
        self.assertEqual(info["parameters"], 5 + 5 + 5 + 1)
        self.assertEqual(m.num_parameters, 16)
        self.assertEqual(m.num_steps, 0)
        self.assertEqual([l["type"] for l in m.spec["layers"]], ["Linear", "Tanh", "Linear"])

    def test_create_accepts_bare_type_names(self):
        m = self.client.create(self.name, layers=[nn.Linear(2, 3), "ReLU", {"type": "Linear", "in_features": 3, "out_features": 1}],
                               loss="L1Loss", optimizer="Adam")
        self.assertEqual(m.num_parameters, 2 * 3 + 3 + 3 + 1)

    def test_create_taken_name_is_409(self):
        self.make()
        with self.assertRaises(et.EasytorchError) as cm:
            self.make()
        self.assertEqual(cm.exception.status, 409)
        self.assertTrue(cm.exception.message)
        self.assertIn("409", str(cm.exception))

    def test_create_bad_layer_is_400_naming_it(self):
        with self.assertRaises(et.EasytorchError) as cm:
            self.client.create(self.name, layers=[{"type": "NoSuchLayer"}], loss="MSELoss", optimizer=optim.SGD(lr=0.1))
        self.assertEqual(cm.exception.status, 400)
        self.assertNotIn(self.name, [m.name for m in self.client.models()])

    def test_create_bad_name_is_400(self):
        for bad in ("-starts-with-dash", "has space", "a..b", "x" * 65):
            with self.subTest(name=bad):
                with self.assertRaises(et.EasytorchError) as cm:
                    self.make(name=bad)
                self.assertEqual(cm.exception.status, 400)

    def test_model_unknown_is_404(self):
        with self.assertRaises(et.EasytorchError) as cm:
            self.client.model("no-such-model")
        self.assertEqual(cm.exception.status, 404)

    def test_models_lists_every_model(self):
        self.make(name="list-a")
        self.make(name="list-b")
        names = sorted(m.name for m in self.client.models())
        self.assertEqual(names, ["list-a", "list-b"])
        self.assertEqual(self.client.model("list-b").name, "list-b")
        self.assertEqual(sorted(m["name"] for m in self.client.list_models()), names)

    def test_delete_removes_model(self):
        m = self.make()
        m.delete()
        self.assertNotIn(self.name, [x.name for x in self.client.models()])
        with self.assertRaises(et.EasytorchError) as cm:
            m.info()
        self.assertEqual(cm.exception.status, 404)

    def test_same_seed_gives_same_parameters(self):
        a = self.make(name="seed-a", seed=7).parameters()
        b = self.make(name="seed-b", seed=7).parameters()
        self.assertEqual(list(a), list(b))
        for k in a:
            self.assertEqual(flat(a[k]), flat(b[k]), k)

    # -- parameters --------------------------------------------------------------------
    def test_parameters_named_and_shaped_like_torch(self):
        p = self.make().parameters()
        self.assertEqual({k: shape(v) for k, v in p.items()},
                         {"0.weight": [5, 1], "0.bias": [5], "2.weight": [1, 5], "2.bias": [1]})
        if np is not None:
            self.assertIsInstance(p["0.weight"], np.ndarray)
        # PyTorch's default Linear init: U(-1/sqrt(in), 1/sqrt(in))
        for v in flat(p["2.weight"]):
            self.assertLessEqual(abs(v), 1 / math.sqrt(5) + 1e-6)

    def test_parameters_as_lists_without_numpy(self):
        m = self.lists.create(self.name, layers=SINE_LAYERS, loss="MSELoss", optimizer=optim.SGD(lr=0.1))
        p = m.parameters()
        self.assertIsInstance(p["0.weight"], list)
        self.assertEqual(shape(p["0.weight"]), [5, 1])
        out = m.predict([[0.5], [1.0]])
        self.assertIsInstance(out, list)
        self.assertEqual(shape(out), [2, 1])

    def test_load_state_dict_replaces_parameters(self):
        m = self.make()
        new = {"0.weight": [[0.1 * i] for i in range(5)], "0.bias": [0.0] * 5,
               "2.weight": [[1.0, -1.0, 0.5, 0.25, 2.0]], "2.bias": [0.5]}
        m.load_state_dict(new)
        got = m.state_dict()
        for k in new:
            assert_close(self, got[k], new[k], k)

    def test_load_state_dict_bad_shape_changes_nothing(self):
        m = self.make()
        before = m.parameters()
        bad = {"0.weight": [[1.0]] * 5, "0.bias": [1.0] * 5, "2.weight": [[1.0] * 4], "2.bias": [1.0]}
        with self.assertRaises(et.EasytorchError) as cm:
            m.load_state_dict(bad)
        self.assertEqual(cm.exception.status, 400)
        after = m.parameters()
        for k in before:
            self.assertEqual(flat(before[k]), flat(after[k]), k)

    def test_save_writes_safetensors_of_the_parameters(self):
        m = self.make(seed=1)
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.safetensors")
            self.assertEqual(m.save(path), path)
            with open(path, "rb") as f:
                st = safetensors_read(f.read())
            p = m.parameters()
            self.assertEqual(set(st), set(p))
            for k, (shp, vals) in st.items():
                self.assertEqual(shp, shape(p[k]), k)
                assert_close(self, vals, p[k], k)
            # and load() puts them into another model
            other = self.make(name="other", seed=2)
            other.load(path)
            q = other.parameters()
            for k in p:
                assert_close(self, q[k], p[k], k)

    # -- inference ---------------------------------------------------------------------------
    def test_predict_matches_torch(self):
        m = self.make(seed=5)
        x = [[-2.0], [-0.5], [0.0], [0.3], [2.5]]
        net = torch_net(SINE_LAYERS, m.parameters())
        want = net(torch.tensor(x)).detach().tolist()
        assert_close(self, m.predict(x), want, "predict")
        assert_close(self, m(x), want, "__call__")
        if np is not None:
            out = m.predict(np.array(x, dtype=np.float32))
            self.assertEqual(out.shape, (5, 1))
            assert_close(self, out, want, "predict(ndarray)")
        assert_close(self, m.predict(x, batch_size=2), want, "predict in chunks")

    # -- versions (issue 18) -------------------------------------------------------------
    def test_freeze_serve_rollback_fork(self):
        m = self.make(seed=7, opt=optim.Adam(lr=0.05))
        x = [[-1.0], [0.0], [1.0], [2.0]]
        y = [[-0.8], [0.0], [0.8], [0.9]]
        m.train(x, y, epochs=3)
        v = m.freeze(label="three")
        self.assertEqual((v["version"], v["step"], v["label"], v["serving"]), (1, 3, "three", False))
        frozen = m.parameters()
        want = torch_net(SINE_LAYERS, frozen)(torch.tensor(x)).detach().tolist()
        m.train(x, y, epochs=4)
        assert_close(self, m.predict_version(1, x), want, "predict_version")
        self.assertIsNone(m.versions()[0]["validation"])
        ev = m.evaluate_version(1, x, y, metrics=["loss", "mae"])
        t_out = torch_net(SINE_LAYERS, frozen)(torch.tensor(x)).detach()
        assert_close(self, [ev["metrics"]["loss"], ev["metrics"]["mae"]],
                     [torch.nn.functional.mse_loss(t_out, torch.tensor(y)).item(),
                      (t_out - torch.tensor(y)).abs().double().mean().item()], "evaluate_version")
        self.assertEqual((ev["version"], ev["step"], ev["rows"]), (1, 3, 4))
        self.assertEqual(m.versions()[0]["validation"]["metrics"], ev["metrics"])
        self.assertEqual(m.serving, "live")
        m.serve(1)
        self.assertEqual(m.serving, 1)
        assert_close(self, m.predict(x), want, "predict while serving version 1")
        m.serve("live")
        self.assertEqual([e["version"] for e in m.versions()], [1])
        self.assertEqual(m.version(1)["step"], 3)
        r = m.rollback(1)
        self.assertEqual((r["step"], r["from_step"]), (3, 7))
        self.assertIn("optimizer", r["restored"])
        assert_close(self, m.predict(x), want, "after rollback")
        f = self.client.fork(self.name + "-f", m, version=1, keep_versions=2)
        self.assertEqual(f.num_steps, 3)
        assert_close(self, f.predict(x), want, "fork")
        f.freeze()
        f.keep_versions(1)
        self.assertEqual(len(f.versions()), 1)
        with self.assertRaises(et.EasytorchError) as cm:
            m.rollback(5)
        self.assertEqual(cm.exception.status, 404)
        m.delete_version(1)
        self.assertEqual(m.versions(), [])

    def test_export_onnx_and_import_onnx(self):
        m = self.make(seed=3, opt=optim.SGD(lr=0.1))
        x = [[-1.0], [0.0], [0.5], [2.0]]
        y = [[-0.8], [0.0], [0.4], [0.9]]
        m.train(x, y, epochs=2)
        v = m.freeze()
        m.train(x, y, epochs=2)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "m.onnx")
            self.assertEqual(m.export_onnx(path), path)
            with open(path, "rb") as f:
                data = f.read()
            self.assertEqual(data, m.export_onnx())
            c = self.client.import_onnx(path, self.name + "-i", loss="MSELoss",
                                        optimizer=optim.SGD(lr=0.1), seed=1, keep_versions=3)
            assert_close(self, c.predict(x), m.predict(x), "import_onnx(export_onnx)")
            self.assertEqual(c.info()["keep_versions"], 3)
            # a version's file; bytes instead of a path
            cv = self.client.import_onnx(m.export_onnx(version=v["version"]), self.name + "-v",
                                         "MSELoss", "Adam")
            assert_close(self, cv.predict(x), m.predict_version(v["version"], x), "version")
            # a torch.onnx.export file predicts as torch
            torch.manual_seed(0)
            net = torch.nn.Sequential(torch.nn.Linear(1, 4), torch.nn.ReLU(),
                                      torch.nn.Linear(4, 1)).eval()
            tpath = os.path.join(tmp, "t.onnx")
            torch.onnx.export(net, torch.zeros(2, 1), tpath, opset_version=17,
                              input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
            t = self.client.import_onnx(tpath, self.name + "-t", "MSELoss", optim.SGD(lr=0.1))
            with torch.no_grad():
                assert_close(self, t.predict(x), net(torch.tensor(x)).tolist(), "torch file")
            # a graph model with two inputs: one shape per input
            self.client.request("POST", "/v1/models", {
                "name": self.name + "-g", "inputs": ["a", "b"], "outputs": ["out"],
                "nodes": [{"name": "s", "op": "add", "args": ["a", "b"]},
                          {"name": "out", "module": nn.Linear(3, 1), "args": ["s"]}],
                "loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 0.1}})
            g = et.Model(self.client, self.name + "-g")
            gm = self.client.import_onnx(g.export_onnx(input_shape=[(3,), (3,)]),
                                         self.name + "-gi", "MSELoss", optim.SGD(lr=0.1))
            ab = {"inputs": {"a": [[1.0, 2.0, 3.0]], "b": [[0.5, -1.0, 0.0]]}}
            got, want = (self.client.request("POST", "/v1/models/%s/predict" % n.name, ab)
                         ["outputs"] for n in (gm, g))  # Model.predict sends one tensor
            assert_close(self, got, want, "graph export_onnx(input_shape)")
            with self.assertRaises(et.EasytorchError) as cm:
                self.client.import_onnx(b"not onnx", self.name + "-bad", "MSELoss", "SGD")
            self.assertEqual(cm.exception.status, 400)
            self.assertIn("onnx", str(cm.exception))
        for n in (c, cv, t, g, gm):
            n.delete()

    @unittest.skipIf(np is None, "needs NumPy")
    def test_issue13_layers_train_predict_and_state_dict_like_torch(self):
        layers = [nn.Embedding(11, 4, padding_idx=0), nn.Flatten(), nn.Linear(12, 6),
                  nn.BatchNorm1d(6, momentum=None), nn.Tanh(), nn.Linear(6, 3)]
        self.assertEqual(layers[3]["momentum"], None)
        self.assertNotIn("momentum", nn.BatchNorm1d(6))
        m = self.make(layers=layers, loss="CrossEntropyLoss", seed=2)
        sd = m.state_dict()
        self.assertEqual(list(sd)[5:8], ["3.running_mean", "3.running_var", "3.num_batches_tracked"])
        self.assertEqual(sd["3.num_batches_tracked"].dtype, np.int64)
        net = torch.nn.Sequential(torch.nn.Embedding(11, 4, padding_idx=0), torch.nn.Flatten(),
                                  torch.nn.Linear(12, 6), torch.nn.BatchNorm1d(6, momentum=None),
                                  torch.nn.Tanh(), torch.nn.Linear(6, 3))
        net.load_state_dict({k: torch.tensor(v) for k, v in sd.items()})
        x = np.random.default_rng(0).integers(0, 11, (8, 3))
        y = np.random.default_rng(1).integers(0, 3, 8)
        m.train(x, y, epochs=1)
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(torch.tensor(x)), torch.tensor(y)).backward()
        opt.step()
        net.eval()
        assert_close(self, m.predict(x[:3]), net(torch.tensor(x[:3])).detach().numpy(), "predict")
        sd = m.state_dict()
        self.assertEqual(int(sd["3.num_batches_tracked"]), 1)
        assert_close(self, sd["3.running_var"], net[3].running_var.numpy(), "running_var")
        m.load_state_dict(sd)   # buffers go back as they came
        conv = self.make(name="m-conv", layers=[nn.Conv2d(1, 2, 3, padding="same"), nn.ReLU(),
                                                nn.MaxPool2d((2, 2)), nn.Flatten(), nn.Linear(8, 1)])
        self.assertEqual(conv.predict(np.zeros((2, 1, 4, 4), np.float32)).shape, (2, 1))
        with self.assertRaises(et.EasytorchError) as cm:
            conv.predict(np.zeros((2, 1, 1, 1), np.float32))
        self.assertIn("layers[2] (MaxPool2d)", str(cm.exception))



class SpecHelperTests(unittest.TestCase):
    """The helpers cover every type the daemon knows, map positional arguments in torch's
    constructor order, and work for types this client's table does not list."""

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(common.EXE)
        cls.client = et.Client(cls.daemon.url)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.daemon.stop()

    def test_every_daemon_type_has_a_helper_with_its_fields(self):
        from easytorch_client import _types
        tables = self.client.types()
        where = {"layers": nn, "losses": nn, "optimizers": optim, "schedulers": optim.lr_scheduler}
        for fam, types in tables.items():
            for t, fields in types.items():
                with self.subTest(type=t):
                    helper = getattr(where[fam], t)
                    args = tuple(range(1, len(fields) + 1))
                    spec = helper(*args)
                    self.assertEqual(self.client.types()[fam][t], fields)
                    resolved = et.client._as_spec(spec, self.client)
                    self.assertEqual(resolved, dict({"type": t}, **dict(zip(fields, args))))
                    if t in _types.BUILTIN[fam]:
                        self.assertEqual(_types.BUILTIN[fam][t], fields,
                                         "the client's table of %s differs from the daemon's" % t)

    def test_field_names_are_torch_constructor_arguments(self):
        import inspect
        for fam, types in self.client.types().items():
            mod = {"layers": torch.nn, "losses": torch.nn, "optimizers": torch.optim,
                   "schedulers": torch.optim.lr_scheduler}[fam]
            for t, fields in types.items():
                with self.subTest(type=t):
                    params = list(inspect.signature(getattr(mod, t).__init__).parameters)
                    # layers may fix a forward argument in the spec (MultiheadAttention's
                    # attn_mask): after the constructor's arguments, by the forward's name
                    if fam == "layers":
                        params += list(inspect.signature(getattr(mod, t).forward).parameters)
                    for f in fields:
                        self.assertIn(f, params, "%s.%s is not an argument of torch's %s" % (fam, f, t))

    def test_new_helpers_create_models(self):
        m = self.client.create("helpers", layers=[nn.Flatten(1, -1), nn.Linear(4, 3, True), nn.GELU("tanh"),
                                                  nn.Linear(3, 1), nn.Sigmoid()],
                               loss=nn.BCELoss("sum"), optimizer=optim.SGD(0.1, 0.9, maximize=False),
                               scheduler=optim.lr_scheduler.MultiStepLR([2, 4], 0.5), seed=1)
        spec = m.info()["spec"]
        self.assertEqual(spec["layers"][0], {"type": "Flatten", "start_dim": 1, "end_dim": -1})
        self.assertEqual(spec["layers"][2], {"type": "GELU", "approximate": "tanh"})
        self.assertEqual(spec["loss"], {"type": "BCELoss", "reduction": "sum"})
        self.assertEqual(spec["optimizer"], {"type": "SGD", "lr": 0.1, "momentum": 0.9, "maximize": False})
        self.assertEqual(spec["scheduler"], {"type": "MultiStepLR", "milestones": [2, 4], "gamma": 0.5})
        m.delete()
        m = self.client.create("helpers2", layers=[nn.Linear(2, 1)], loss=nn.HuberLoss(delta=0.5),
                               optimizer=optim.AdamW(0.01, (0.8, 0.9)),
                               scheduler=optim.lr_scheduler.LinearLR(0.5, 1.0, 4))
        self.assertEqual(m.info()["spec"]["scheduler"],
                         {"type": "LinearLR", "start_factor": 0.5, "end_factor": 1.0, "total_iters": 4})
        m.delete()

    def test_a_type_the_client_table_lacks(self):
        """As for a layer added to the daemon after this client was released: the positional
        arguments wait until create() asks the daemon for the type's fields."""
        from easytorch_client import _types
        saved = _types.LAYERS.pop("Dropout")
        try:
            spec = _types.factory("Dropout", ("layers", "losses"))(0.25)
            self.assertEqual(spec.pending, (0.25,))
            with self.assertRaises(TypeError):
                spec.spec()
            m = self.client.create("lazy", layers=[nn.Linear(2, 2), spec, nn.Linear(2, 1)],
                                   loss="MSELoss", optimizer=optim.SGD(lr=0.1))
            self.assertEqual(m.info()["spec"]["layers"][1], {"type": "Dropout", "p": 0.25})
            m.delete()
            kw = nn.SomethingNew(alpha=2)   # any type name: keywords need no table
            self.assertEqual(kw, {"type": "SomethingNew", "alpha": 2})
            with self.assertRaises(et.EasytorchError) as e:
                self.client.create("lazy2", layers=[kw], loss="MSELoss", optimizer=optim.SGD(lr=0.1))
            self.assertEqual(e.exception.status, 400)
            with self.assertRaises(TypeError):
                self.client.create("lazy3", layers=[nn.SomethingNew(1)], loss="MSELoss",
                                   optimizer=optim.SGD(lr=0.1))
        finally:
            _types.LAYERS["Dropout"] = saved

    def test_argument_errors(self):
        with self.assertRaises(TypeError):
            nn.Linear(1, 2, True, 4)
        with self.assertRaises(TypeError):
            nn.Linear(1, 2, in_features=3)


class TokenTests(unittest.TestCase):
    TOKEN = "s3cret-token-for-clients"

    @classmethod
    def setUpClass(cls):
        cls.daemon = Daemon(common.EXE, token=cls.TOKEN)

    @classmethod
    def tearDownClass(cls):
        cls.daemon.stop()

    def test_missing_token_is_401(self):
        with self.assertRaises(et.EasytorchError) as cm:
            et.Client(self.daemon.url, token="").models()  # "" = no token, even if $EASYTORCH_TOKEN is set
        self.assertEqual(cm.exception.status, 401)
        self.assertTrue(cm.exception.message)

    def test_wrong_token_is_401(self):
        with self.assertRaises(et.EasytorchError) as cm:
            et.Client(self.daemon.url, token="wrong").models()
        self.assertEqual(cm.exception.status, 401)

    def test_right_token_works_and_health_needs_none(self):
        c = et.Client(self.daemon.url, token=self.TOKEN)
        m = c.create("tok", layers=SINE_LAYERS, loss="MSELoss", optimizer=optim.SGD(lr=0.1))
        self.assertEqual([x.name for x in c.models()], ["tok"])
        m.delete()
        self.assertEqual(et.Client(self.daemon.url, token="").health().get("status"), "ok")

    def test_token_from_environment(self):
        old = os.environ.get("EASYTORCH_TOKEN")
        os.environ["EASYTORCH_TOKEN"] = self.TOKEN
        try:
            self.assertEqual(et.Client(self.daemon.url).models(), [])
        finally:
            if old is None:
                del os.environ["EASYTORCH_TOKEN"]
            else:
                os.environ["EASYTORCH_TOKEN"] = old



class OfflineTests(unittest.TestCase):
    """What needs no daemon."""

    def test_unreachable_daemon_raises_with_no_status(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        with self.assertRaises(et.EasytorchError) as cm:
            et.Client("http://127.0.0.1:%d" % port).models()
        self.assertIsNone(cm.exception.status)

    def test_url_from_environment_and_default(self):
        old = os.environ.pop("EASYTORCH_URL", None)
        try:
            self.assertEqual(et.Client().url, "http://127.0.0.1:8080")
            os.environ["EASYTORCH_URL"] = "http://127.0.0.1:9999/"
            self.assertEqual(et.Client().url, "http://127.0.0.1:9999")
        finally:
            os.environ.pop("EASYTORCH_URL", None)
            if old is not None:
                os.environ["EASYTORCH_URL"] = old

    def test_encode_tensor_forms(self):
        self.assertEqual(et.encode_tensor([[1, 2]]), [[1, 2]])
        self.assertEqual(et.encode_tensor(2.5), 2.5)
        if np is not None:
            self.assertEqual(et.encode_tensor(np.array([[1.5, 2.0]], dtype=np.float32)),
                             {"shape": [1, 2], "data": [1.5, 2.0]})
            self.assertEqual(et.encode_tensor(np.array([0, 2])), {"shape": [2], "data": [0, 2]})

    def test_spec_helpers_follow_torch_names(self):
        self.assertEqual(nn.Linear(3, 4), {"type": "Linear", "in_features": 3, "out_features": 4})
        self.assertEqual(optim.Adam(lr=0.1, betas=(0.8, 0.9)), {"type": "Adam", "lr": 0.1, "betas": [0.8, 0.9]})
        self.assertEqual(nn.MSELoss(reduction="sum"), {"type": "MSELoss", "reduction": "sum"})
        self.assertEqual(nn.Softplus(beta=2), {"type": "Softplus", "beta": 2})
        self.assertEqual(nn.KLDivLoss(reduction="batchmean", log_target=True),
                         {"type": "KLDivLoss", "reduction": "batchmean", "log_target": True})
        self.assertEqual(optim.SGD(lr=0.1, param_groups=[{"params": "0.", "betas": (0.1, 0.2)}]),
                         {"type": "SGD", "lr": 0.1, "param_groups": [{"params": ["0."], "betas": [0.1, 0.2]}]})
        self.assertEqual(optim.lr_scheduler.SequentialLR([optim.lr_scheduler.ConstantLR()], [3]),
                         {"type": "SequentialLR", "schedulers": [{"type": "ConstantLR"}], "milestones": [3]})

