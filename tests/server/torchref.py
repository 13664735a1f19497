"""PyTorch side of the server tests: builds torch.nn.Sequential / optimizers / schedulers /
losses from an easytorchd model spec (the contract names them after torch's classes) and
compares JSON tensors with torch tensors at the team's tolerance (rtol 1e-4, atol 1e-5)."""

import sys

import numpy as np
import torch

sys.dont_write_bytecode = True
torch.set_num_threads(1)

RTOL = 1e-4
ATOL = 1e-5

_LAYER_ARGS = {
    "Linear": ("in_features", "out_features", "bias"),
    "ReLU": (), "Tanh": (), "Sigmoid": (), "Identity": (), "Flatten": (),
    "Softmax": ("dim",), "LogSoftmax": ("dim",),
    "LeakyReLU": ("negative_slope",), "Dropout": ("p",),
    "SiLU": (), "Mish": (), "ReLU6": (), "ELU": ("alpha",), "Softplus": ("beta", "threshold"),
    "Hardtanh": ("min_val", "max_val"),
}


def build_net(layers):
    mods = []
    for l in layers:
        t = l["type"]
        # an argument the reference does not pass would leave torch at its default: if the
        # daemon ignored it too, the comparison would pass on a wrong model
        extra = sorted(set(l) - {"type"} - set(_LAYER_ARGS[t]))
        if extra:
            raise ValueError("torchref.build_net: %s %s not passed to torch (add to _LAYER_ARGS)"
                             % (t, extra))
        kw = {k: l[k] for k in _LAYER_ARGS[t] if k in l}
        if t in ("Softmax", "LogSoftmax") and "dim" not in kw:
            kw["dim"] = -1  # the contract's default (torch warns without one)
        mods.append(getattr(torch.nn, t)(**kw))
    return torch.nn.Sequential(*mods)


def build_loss(loss):
    if isinstance(loss, str):
        loss = {"type": loss}
    kw = {k: (torch.tensor(v, dtype=torch.float32) if k in ("weight", "pos_weight") else v)
          for k, v in loss.items() if k != "type"}
    return getattr(torch.nn, loss["type"])(**kw)


def _opt_kw(d):
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()
            if k not in ("type", "param_groups", "params")}


def build_optimizer(opt, params):
    """params: net.parameters(), or net.named_parameters() for "param_groups" (selected by
    state_dict name prefix; the unselected parameters form the first group)."""
    named = list(params)
    if named and isinstance(named[0], tuple):
        groups, taken = [], set()
        for g in opt.get("param_groups", []):
            ps = [n for n, _ in named if n not in taken and any(n.startswith(p) for p in g["params"])]
            taken.update(ps)
            groups.append(dict({"params": [p for n, p in named if n in ps]}, **_opt_kw(g)))
        rest = [p for n, p in named if n not in taken]
        pgs = ([{"params": rest}] if rest else []) + groups
    else:
        pgs = named
    return getattr(torch.optim, opt["type"])(pgs, **_opt_kw(opt))


def build_scheduler(sched, optimizer):
    if not sched:
        return None
    kw = {k: v for k, v in sched.items() if k not in ("type", "schedulers")}
    S = torch.optim.lr_scheduler
    if sched["type"] == "SequentialLR":
        return S.SequentialLR(optimizer, [build_scheduler(k, optimizer) for k in sched["schedulers"]],
                              kw["milestones"])
    if sched["type"] == "ChainedScheduler":
        return S.ChainedScheduler([build_scheduler(k, optimizer) for k in sched["schedulers"]])
    return getattr(S, sched["type"])(optimizer, **kw)


class Reference:
    """A torch model trained exactly as the contract says the daemon trains."""

    def __init__(self, spec):
        self.spec = spec
        self.net = build_net(spec["layers"])
        self.loss_fn = build_loss(spec["loss"])
        self.opt = build_optimizer(spec["optimizer"], self.net.named_parameters())
        self.sched = build_scheduler(spec.get("scheduler"), self.opt)
        self.pending = 0
        self.pending_losses = []
        self.step_count = 0

    def set_params(self, params_json):
        sd = {k: torch.tensor(v, dtype=torch.float32) for k, v in params_json.items()}
        self.net.load_state_dict(sd, strict=True)

    def params_json(self):
        return {k: v.tolist() for k, v in self.net.state_dict().items()}

    def targets(self, y):
        t = torch.tensor(y, dtype=torch.float32)
        if self.spec_loss_type() == "NLLLoss" or (self.spec_loss_type() == "CrossEntropyLoss"
                                                  and t.dim() == 1):
            return t.long()   # class indices (CrossEntropyLoss: else probabilities)
        return t

    def spec_loss_type(self):
        l = self.spec["loss"]
        return l if isinstance(l, str) else l["type"]

    def push(self, x, y):
        """Like POST batches: forward (train mode), loss, backward, accumulate. -> loss"""
        self.net.train()
        if self.pending == 0:
            self.opt.zero_grad(set_to_none=False)
        out = self.net(torch.tensor(x, dtype=torch.float32))
        loss = self.loss_fn(out, self.targets(y))
        loss.backward()
        self.pending += 1
        self.pending_losses.append(loss.item())
        return loss.item()

    def step(self):
        """Like POST step. -> lr used"""
        lr = self.opt.param_groups[0]["lr"]
        self.opt.step()
        self.opt.zero_grad(set_to_none=False)
        if isinstance(self.sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            # the daemon's metric: the step's training loss (the mean over its batches, in float32)
            self.sched.step(float(np.float32(np.mean(np.asarray(self.pending_losses, np.float64)))))
        elif self.sched:
            self.sched.step()
        self.pending = 0
        self.pending_losses = []
        self.step_count += 1
        return lr

    def grads_json(self):
        out = {}
        for k, p in self.net.named_parameters():
            g = p.grad if p.grad is not None else torch.zeros_like(p)
            out[k] = g.tolist()
        return out

    def forward(self, x):
        self.net.eval()
        with torch.no_grad():
            return self.net(torch.tensor(x, dtype=torch.float32))

    def batch_gradients(self, x, y):
        """Like POST gradients: (loss, {name: grad}, input_grad) for this batch alone."""
        self.net.train()
        saved = [None if p.grad is None else p.grad.clone() for p in self.net.parameters()]
        for p in self.net.parameters():
            p.grad = None
        xt = torch.tensor(x, dtype=torch.float32, requires_grad=True)
        loss = self.loss_fn(self.net(xt), self.targets(y))
        loss.backward()
        grads = {k: p.grad.tolist() for k, p in self.net.named_parameters()}
        for p, g in zip(self.net.parameters(), saved):
            p.grad = g
        return loss.item(), grads, xt.grad.tolist()


def random_params(net, seed, scale=0.5):
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.randn(v.shape, generator=g) * scale).tolist()
            for k, v in net.state_dict().items()}


def arr(x):
    return np.asarray(x, dtype=np.float64)


def close_report(got, want, rtol=RTOL, atol=ATOL):
    """None if close, else a message with the worst element."""
    g, w = arr(got), arr(want)
    if g.shape != w.shape:
        return "shape %s != expected %s" % (list(g.shape), list(w.shape))
    if not np.all(np.isfinite(g)):
        return "non-finite values: %s" % g
    if np.allclose(g, w, rtol=rtol, atol=atol):
        return None
    err = np.abs(g - w) - (atol + rtol * np.abs(w))
    i = np.unravel_index(np.argmax(err), err.shape)
    return "max violation at %s: got %r want %r (abs diff %.3g)" % (
        list(i), float(g[i]), float(w[i]), float(abs(g[i] - w[i])))


def dict_close_report(got, want, rtol=RTOL, atol=ATOL):
    if sorted(got) != sorted(want):
        return "names %s != expected %s" % (sorted(got), sorted(want))
    for k in sorted(want):
        r = close_report(got[k], want[k], rtol, atol)
        if r:
            return "%s: %s" % (k, r)
    return None
