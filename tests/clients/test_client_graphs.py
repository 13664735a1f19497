"""The Python client's graph models (issue 14): Client.create_graph, named inputs and targets as
dicts ({"user": rows, "feat": rows}: lists, ndarrays or torch tensors; int64 indices for the
Embedding kept integers), several outputs answered as {name: tensor}, over JSON and the binary
transport (safetensors "inputs.<name>" / "targets.<name>"), predict's batch_size slicing every
input. PyTorch is the oracle: the same graph as an nn.Module loaded with the model's parameters.

Run through test_python_client.py (which sets client_common.EXE).
"""

import unittest

import client_common as common
from client_common import et, nn, np, torch, assert_close  # noqa: F401

F = torch.nn.functional
ROWS = 6
LR = 0.01
# user (indices) -> emb, feat (floats) -> f; their sum through ReLU feeds two heads.
NODES = [{"name": "u", "module": "emb", "args": ["user"]},
         {"name": "f", "module": nn.Linear(3, 4), "args": ["feat"]},
         {"name": "h", "op": "add", "args": ["u", "f"]},
         {"name": "act", "module": nn.ReLU(), "args": ["h"]},
         {"name": "logits", "module": nn.Linear(4, 3), "args": ["act"]},
         {"name": "score", "module": nn.Linear(4, 1), "args": ["act"]}]
LOSS = [{"type": "CrossEntropyLoss", "output": "logits", "target": "label"},
        {"type": "MSELoss", "output": "score", "target": "rating", "weight": 0.5}]


class Twin(torch.nn.Module):
    """The graph above in PyTorch; its state_dict names are the model's parameter names."""

    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(30, 4)
        self.f = torch.nn.Linear(3, 4)
        self.logits = torch.nn.Linear(4, 3)
        self.score = torch.nn.Linear(4, 1)

    def forward(self, user, feat):
        act = torch.relu(self.emb(user) + self.f(feat))
        return self.logits(act), self.score(act)


def torch_loss(out, ys):
    return F.cross_entropy(out[0], ys["label"]) + 0.5 * F.mse_loss(out[1], ys["rating"])


def batch(g, n=ROWS):
    return ({"user": torch.randint(0, 30, (n,), generator=g),
             "feat": torch.rand(n, 3, generator=g) * 2 - 1},
            {"label": torch.randint(0, 3, (n,), generator=g),
             "rating": torch.rand(n, 1, generator=g) * 2 - 1})


def as_kind(d, kind):
    """The same named tensors as torch tensors, ndarrays or nested lists."""
    if kind == "torch":
        return dict(d)
    if kind == "numpy":
        return {k: v.numpy() for k, v in d.items()}
    return {k: v.tolist() for k, v in d.items()}


class GraphTests(common.DaemonCase):
    def clients(self):
        """(label, client): binary (safetensors both ways), JSON with ndarrays, JSON with lists."""
        return [("binary", self.client),
                ("json", et.Client(self.daemon.url, binary=False)),
                ("lists", self.lists)]

    def graph(self, name, seed=3):
        m = self.client.create_graph(name, inputs=["user", "feat"], nodes=NODES,
                                     outputs=["logits", "score"], loss=LOSS,
                                     optimizer={"type": "Adam", "lr": LR},
                                     modules={"emb": nn.Embedding(30, 4)}, seed=seed)
        net = Twin()
        params = m.parameters()
        self.assertEqual(list(params), list(net.state_dict()), "parameter names")
        net.load_state_dict({k: torch.tensor(np.asarray(v, dtype=np.float32))
                             for k, v in params.items()})
        return m, net

    def assert_outputs(self, got, net, xs, what):
        self.assertIsInstance(got, dict, what)
        self.assertEqual(sorted(got), ["logits", "score"], what)
        with torch.no_grad():
            lo, sc = net.eval()(xs["user"], xs["feat"])
        assert_close(self, got["logits"], lo, what + ": logits")
        assert_close(self, got["score"], sc, what + ": score")
        self.assertEqual(common.shape(got["score"]), [len(xs["user"]), 1], what)

    def test_create_graph_describes_the_graph(self):
        m, _ = self.graph(self.name)
        spec = m.spec
        self.assertEqual(spec["inputs"], ["user", "feat"])
        self.assertEqual(spec["outputs"], ["logits", "score"])
        self.assertEqual([n["name"] for n in spec["nodes"]], [n["name"] for n in NODES])
        self.assertEqual(m.num_parameters, 30 * 4 + 3 * 4 + 4 + 4 * 3 + 3 + 4 + 1)
        with self.assertRaises(et.EasytorchError) as cm:  # a bad graph is the daemon's 400
            self.client.create_graph("bad", ["user", "feat"], NODES[:1], ["u"], "MSELoss", "SGD",
                                     modules={"emb": nn.Embedding(30, 4)})
        self.assertEqual(cm.exception.status, 400)
        self.assertIn("feat", cm.exception.message)
        self.assertNotIn("bad", [x.name for x in self.client.models()])

    def test_predict_named_inputs_every_kind_and_transport(self):
        m, net = self.graph(self.name)
        g = torch.Generator().manual_seed(1)
        xs, _ = batch(g, 5)
        for label, c in self.clients():
            for kind in ("torch", "numpy", "lists"):
                what = "%s client, %s inputs" % (label, kind)
                mc = et.Model(c, m.name)
                self.assert_outputs(mc.predict(as_kind(xs, kind)), net, xs, what)
                # batch_size=2: chunks of 2, 2, 1 rows of both inputs, joined output by output
                self.assert_outputs(mc.predict(as_kind(xs, kind), batch_size=2), net, xs,
                                    what + ", batch_size 2")
        got = m.predict(xs)
        self.assertEqual(got["logits"].dtype, np.float32)
        v = m.freeze()["version"]  # a version's predict takes and answers the same
        for label, c in self.clients():
            self.assert_outputs(et.Model(c, m.name).predict_version(v, xs), net, xs,
                                "%s client, predict_version" % label)
        with self.assertRaises(et.EasytorchError) as cm:  # a missing input names it
            m.predict({"user": xs["user"]})
        self.assertEqual(cm.exception.status, 400)
        self.assertIn("inputs.feat", cm.exception.message)

    def train_like_torch(self, label, c, use_push):
        name = "%s-%s-%s" % (self.name[:40], label, "push" if use_push else "train")
        m, net = self.graph(name)
        m = et.Model(c, name)
        opt = torch.optim.Adam(net.parameters(), lr=LR)
        g = torch.Generator().manual_seed(7)
        for k in range(5):
            xs, ys = batch(g)
            kind = ("torch", "numpy", "lists")[k % 3]
            if use_push:
                got = m.push(as_kind(xs, kind), as_kind(ys, kind))
                m.step()
            else:
                res = m.train(as_kind(xs, kind), as_kind(ys, kind), epochs=1)
                self.assertEqual(res["step"], k + 1)
                got = res["losses"][0]
            net.train()
            opt.zero_grad()
            loss = torch_loss(net(xs["user"], xs["feat"]), ys)
            loss.backward()
            opt.step()
            assert_close(self, got, loss.item(), "%s: loss of step %d" % (name, k + 1))
        sd = net.state_dict()
        for k, v in m.parameters().items():
            assert_close(self, v, sd[k].detach(), "%s: %s after 5 steps" % (name, k))
        xs, ys = batch(g)
        self.assert_outputs(m.predict(xs), net, xs, name + ": predict after training")
        ev = m.evaluate(xs, ys)
        with torch.no_grad():
            out = net.eval()(xs["user"], xs["feat"])
        assert_close(self, ev["metrics"]["loss"], torch_loss(out, ys).item(), name + ": evaluate")
        assert_close(self, ev["losses"], [F.cross_entropy(out[0], ys["label"]).item(),
                                          F.mse_loss(out[1], ys["rating"]).item()],
                     name + ": each loss")
        self.assertEqual(ev["rows"], ROWS)

    def test_train_five_steps_like_torch(self):
        for label, c in self.clients():
            with self.subTest(client=label):
                self.train_like_torch(label, c, use_push=False)

    def test_push_and_step_five_steps_like_torch(self):
        for label, c in self.clients():
            with self.subTest(client=label):
                self.train_like_torch(label, c, use_push=True)

    def test_integer_inputs_stay_integers_on_the_wire(self):
        from easytorch_client import _tensors
        xs = {"user": torch.tensor([3, 7]), "feat": np.zeros((2, 3))}
        arrays = _tensors.wire_arrays({"inputs": xs, "targets": {"label": [1, 0]}})
        self.assertEqual(sorted(arrays), ["inputs.feat", "inputs.user", "targets.label"])
        self.assertEqual(arrays["inputs.user"].dtype, np.int64)
        self.assertEqual(arrays["targets.label"].dtype, np.int64)
        self.assertEqual(arrays["inputs.feat"].dtype, np.float32)
        js = et.encode_tensor(xs)
        self.assertEqual(js["user"], {"shape": [2], "data": [3, 7]})
        self.assertTrue(all(isinstance(v, int) for v in js["user"]["data"]))


if __name__ == "__main__":
    unittest.main()
