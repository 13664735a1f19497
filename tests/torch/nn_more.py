"""Differential nn tests added after the first release: the nn items of the
edge-case sweep (BCELoss at 0 and 1, SmoothL1Loss with beta 0, NLLLoss whose
selected weights are all 0, an optimizer given a non-leaf tensor), and the
losses, optimizers and schedulers of issue 14.  Run from test_nn.py's main()
as run(T) with T the test_nn module (its helpers: st_write, st_read, run,
report, compare_all, tmp)."""
import numpy as np
import torch
import torch.nn.functional as F


def loss_case(T, case, name, red, param, x, t, torch_fn, extra=None):
    """One loss through `nn_runner loss`: loss value and input gradient vs torch."""
    try:
        x = x.clone().requires_grad_(True)
        loss = torch_fn(x, t, red)
        gout = torch.randn(loss.shape, generator=torch.Generator().manual_seed(11)) \
            if red == "none" else torch.tensor(1.0)
        loss.backward(gout)
        inputs = {"input": x.detach().numpy(), "target": t.float().numpy(), "gout": gout.numpy()}
        inputs.update(extra or {})
        T.st_write(T.tmp("l_in.st"), inputs)
        T.run("loss", name, red, param, T.tmp("l_in.st"), T.tmp("l_out.st"))
        ours, _ = T.st_read(T.tmp("l_out.st"))
        T.compare_all(case, ours, {"loss": loss, "input_grad": x.grad})
    except Exception as e:  # noqa: BLE001 - any failure is a test failure
        T.report(case, False, repr(e))


def test_sweep(T):
    # BCELoss at probabilities 0 and 1: loss clamped at 100 (log >= -100), gradient divided
    # by max(x (1 - x), 1e-12) -> +-1e12 where the prediction is confidently wrong
    x = torch.tensor([[0.0, 1.0, 0.0, 1.0], [1e-30, 0.5, 1.0 - 1e-7, 0.25]])
    t = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 0.5, 0.0, 1.0]])
    for red in ("mean", "sum", "none"):
        loss_case(T, f"sweep bce at 0 and 1 {red}", "bce", red, 0, x, t,
                  lambda a, b, r: F.binary_cross_entropy(a, b, reduction=r))
    # SmoothL1Loss with beta 0 where input == target: torch's gradient is sign based (-1)
    x = torch.tensor([[0.0, 1.0, 2.0, -1.5], [3.0, 3.0, -2.0, 0.5]])
    t = torch.tensor([[0.0, 1.0, 1.0, -1.5], [3.0, 2.0, -2.0, 0.25]])
    for red in ("mean", "sum", "none"):
        loss_case(T, f"sweep smooth_l1(beta=0) input == target {red}", "smooth_l1", red, 0.0, x, t,
                  lambda a, b, r: F.smooth_l1_loss(a, b, reduction=r, beta=0.0))
    # NLLLoss mean with every selected weight 0: NaN loss and NaN gradient at the picked entries
    g = torch.Generator().manual_seed(12)
    x = F.log_softmax(torch.randn(4, 5, generator=g), dim=1)
    t = torch.tensor([0, 2, 2, 4])
    for wname, w in [("all selected 0", torch.tensor([0.0, 1.0, 0.0, 3.0, 0.0])),
                     ("all 0", torch.zeros(5))]:
        for red in ("mean", "sum", "none"):
            loss_case(T, f"sweep nll(weight {wname}) {red}", "nll_ex", red, 0, x, t,
                      lambda a, b, r, w=w: F.nll_loss(a, b, weight=w, reduction=r),
                      {"weight": w.numpy()})
        # with some targets ignored: their gradient stays 0
        ti = torch.tensor([0, -100, 2, -100])
        loss_case(T, f"sweep nll(weight {wname}, ignored rows) mean", "nll_ex", "mean", 0, x, ti,
                  lambda a, b, r, w=w: F.nll_loss(a, b, weight=w, reduction=r),
                  {"weight": w.numpy()})
        loss_case(T, f"sweep cross_entropy(weight {wname}) mean", "cross_entropy_ex", "mean", 0,
                  torch.randn(4, 5, generator=g), t,
                  lambda a, b, r, w=w: F.cross_entropy(a, b, weight=w, reduction=r),
                  {"weight": w.numpy()})
    # an optimizer given a non-leaf tensor refuses it, as torch
    for name, cls in [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam)]:
        case = f"sweep {name} given a non-leaf tensor"
        try:
            w = torch.ones(3, requires_grad=True)
            try:
                cls([w * 2], lr=0.1)
                want = "accepted"
            except ValueError as e:
                want = str(e)
            got = T.run("nonleaf", name).strip()
            T.report(case, want != "accepted" and got.startswith("error:") and want in got,
                     f"torch: {want!r}, ours: {got!r}")
        except Exception as e:  # noqa: BLE001
            T.report(case, False, repr(e))


def test_activation_modules(T):
    """nn.SiLU, ELU, Mish, Softplus, Hardtanh, ReLU6: forward and input gradient through
    `nn_runner module`, and inside a Sequential between Linear layers."""
    import torch.nn as nn
    g = torch.Generator().manual_seed(21)
    x2 = torch.randn(6, 5, generator=g) * 3
    x3 = torch.randn(2, 3, 4, generator=g) * 2
    cases = [("silu", nn.SiLU(), x2), ("mish", nn.Mish(), x3), ("elu", nn.ELU(), x2),
             ("elu:0.3", nn.ELU(0.3), x3), ("softplus", nn.Softplus(), x2),
             ("softplus:2:1.5", nn.Softplus(2.0, 1.5), x3), ("hardtanh", nn.Hardtanh(), x2),
             ("hardtanh:-0.5:2", nn.Hardtanh(-0.5, 2.0), x3), ("relu6", nn.ReLU6(), x2 * 3)]
    for spec, mod, x in cases:
        case = f"module {spec}"
        try:
            x = x.clone().requires_grad_(True)
            y = mod(x)
            gout = torch.randn(y.shape, generator=g)
            y.backward(gout)
            T.st_write(T.tmp("m_in.st"), {"x": x.detach().numpy(), "gout": gout.numpy()})
            T.run("module", spec, T.tmp("m_in.st"), T.tmp("m_out.st"))
            ours, _ = T.st_read(T.tmp("m_out.st"))
            T.compare_all(case, ours, {"y": y, "x_grad": x.grad})
        except Exception as e:  # noqa: BLE001
            T.report(case, False, repr(e))


def loss2_case(T, case, name, red, tensors, grads, fn, **kw):
    """`nn_runner loss2`: tensors {name: torch tensor}; the ones named in `grads` require
    grad; loss and every gradient vs torch's fn(tensors...)."""
    try:
        ts = {k: (v.clone().requires_grad_(True) if k in grads else v) for k, v in tensors.items()}
        loss = fn(ts, red)
        gout = torch.randn(loss.shape, generator=torch.Generator().manual_seed(31)) \
            if loss.dim() else torch.tensor(1.0)
        loss.backward(gout)
        inputs = {k: v.detach().float().numpy() for k, v in ts.items()}
        inputs["gout"] = gout.numpy()
        T.st_write(T.tmp("l2_in.st"), inputs)
        args = [f"grad={','.join(grads)}"] + [f"{k}={v}" for k, v in kw.items()]
        T.run("loss2", name, red, T.tmp("l2_in.st"), T.tmp("l2_out.st"), *args)
        ours, _ = T.st_read(T.tmp("l2_out.st"))
        want = {"loss": loss}
        want.update({f"grad.{k}": ts[k].grad for k in grads})
        T.compare_all(case, ours, want)
    except Exception as e:  # noqa: BLE001
        T.report(case, False, repr(e))


REDS = ("mean", "sum", "none")


def test_losses(T):
    g = torch.Generator().manual_seed(41)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    # KLDivLoss: log_target both ways, every reduction incl. batchmean, zeros in the target
    for log_target in (False, True):
        for red in REDS + ("batchmean",):
            for shape in ((4, 5), (2, 3, 4)):
                x = F.log_softmax(r(*shape), -1)
                t = F.softmax(r(*shape) * 2, -1)
                if not log_target:
                    t[0, 1] = 0.0   # 0 log 0 = 0
                else:
                    t = t.log()
                loss2_case(T, f"loss kl_div(log_target={log_target}) {list(shape)} {red}", "kl_div",
                           red, {"input": x, "target": t}, ["input", "target"],
                           lambda ts, rd, lt=log_target: F.kl_div(ts["input"], ts["target"],
                                                                  reduction=rd, log_target=lt),
                           log_target=int(log_target))
    # BCEWithLogitsLoss with weight and pos_weight (broadcast), x == 0 and extreme logits
    x = r(6, 4) * 3
    x[0, 0] = 0.0
    x[1, :] = torch.tensor([1e4, -1e4, 30.0, -30.0])
    t = torch.randint(0, 2, (6, 4), generator=g).float()
    t[2, :] = torch.rand(4, generator=g)   # soft labels too
    for wname, w in [("none", None), ("[4]", torch.rand(4, generator=g) + 0.5),
                     ("[6,1]", torch.rand(6, 1, generator=g) + 0.5)]:
        for pname, pw in [("none", None), ("[4]", torch.tensor([0.5, 1.0, 2.0, 3.0]))]:
            for red in REDS:
                ts = {"input": x, "target": t}
                if w is not None:
                    ts["weight"] = w
                if pw is not None:
                    ts["pos_weight"] = pw
                grads = ["input", "target"]   # torch: pos_weight/weight not differentiable
                loss2_case(T, f"loss bce_with_logits(weight={wname}, pos_weight={pname}) {red}",
                           "bce_logits", red, ts, grads,
                           lambda s, rd: F.binary_cross_entropy_with_logits(
                               s["input"], s["target"], weight=s.get("weight"),
                               pos_weight=s.get("pos_weight"), reduction=rd))
    # CrossEntropyLoss: [N, C, d1, ...] inputs, probability targets, with weights, ignore_index,
    # label smoothing; NLLLoss on [N, C, d1, ...]
    for shape in ((4, 5), (3, 4, 2), (2, 3, 2, 3), (5,)):
        C = shape[0] if len(shape) == 1 else shape[1]
        cls_shape = () if len(shape) == 1 else (shape[0],) + shape[2:]
        x = r(*shape) * 2
        cls = torch.randint(0, C, cls_shape, generator=g)
        if len(shape) > 1:
            cls.view(-1)[1] = -100
        prob = F.softmax(r(*shape), 1 if len(shape) > 1 else 0)
        w = torch.rand(C, generator=g) + 0.2
        for weighted in (False, True):
            for ls in (0.0, 0.2):
                for red in REDS:
                    tag = f"{list(shape)} weight={'yes' if weighted else 'no'} ls={ls} {red}"
                    ts = {"input": x, "target": cls.float()}
                    if weighted:
                        ts["weight"] = w
                    loss2_case(T, f"loss cross_entropy(class targets) {tag}", "cross_entropy", red,
                               ts, ["input"],
                               lambda s, rd, ls=ls: F.cross_entropy(s["input"], s["target"].long(),
                                                                    weight=s.get("weight"),
                                                                    reduction=rd, label_smoothing=ls),
                               label_smoothing=ls)
                    tp = {"input": x, "target": prob}
                    if weighted:
                        tp["weight"] = w
                    loss2_case(T, f"loss cross_entropy(probability targets) {tag}", "cross_entropy",
                               red, tp, ["input", "target"],
                               lambda s, rd, ls=ls: F.cross_entropy(s["input"], s["target"],
                                                                    weight=s.get("weight"),
                                                                    reduction=rd, label_smoothing=ls),
                               label_smoothing=ls)
            if len(shape) > 1:
                for red in REDS:
                    ts = {"input": F.log_softmax(x, 1), "target": cls.float()}
                    if weighted:
                        ts["weight"] = w
                    loss2_case(T, f"loss nll {list(shape)} weight={'yes' if weighted else 'no'} {red}",
                               "nll", red, ts, ["input"],
                               lambda s, rd: F.nll_loss(s["input"], s["target"].long(),
                                                        weight=s.get("weight"), reduction=rd))
    # MarginRankingLoss (broadcasting), CosineEmbeddingLoss, TripletMarginLoss
    for margin in (0.0, 0.5):
        for red in REDS:
            y = torch.randint(0, 2, (6,), generator=g).float() * 2 - 1
            loss2_case(T, f"loss margin_ranking(margin={margin}) {red}", "margin_ranking", red,
                       {"input": r(6), "input2": r(6), "y": y}, ["input", "input2"],
                       lambda s, rd, m=margin: F.margin_ranking_loss(s["input"], s["input2"], s["y"],
                                                                     margin=m, reduction=rd),
                       margin=margin)
            yb = torch.randint(0, 2, (3, 4), generator=g).float() * 2 - 1
            loss2_case(T, f"loss margin_ranking(margin={margin}, broadcast) {red}", "margin_ranking",
                       red, {"input": r(3, 1), "input2": r(1, 4), "y": yb}, ["input", "input2"],
                       lambda s, rd, m=margin: F.margin_ranking_loss(s["input"], s["input2"], s["y"],
                                                                     margin=m, reduction=rd),
                       margin=margin)
            yc = torch.tensor([1.0, -1.0, 1.0, -1.0, -1.0])
            loss2_case(T, f"loss cosine_embedding(margin={margin}) {red}", "cosine_embedding", red,
                       {"input": r(5, 4), "input2": r(5, 4), "y": yc}, ["input", "input2"],
                       lambda s, rd, m=margin: F.cosine_embedding_loss(s["input"], s["input2"],
                                                                       s["y"], margin=m,
                                                                       reduction=rd),
                       margin=margin)
        loss2_case(T, f"loss cosine_embedding(margin={margin}, 1-D)", "cosine_embedding", "mean",
                   {"input": r(4), "input2": r(4), "y": torch.tensor(-1.0)}, ["input", "input2"],
                   lambda s, rd, m=margin: F.cosine_embedding_loss(s["input"], s["input2"], s["y"],
                                                                   margin=m, reduction=rd),
                   margin=margin)
    for kw in ({}, {"margin": 0.3}, {"p": 1.0}, {"p": 3.0}, {"swap": 1}, {"eps": 1e-3}):
        for red in REDS:
            for shape in ((5, 4), (4,), (2, 3, 4)):
                ts = {"anchor": r(*shape), "positive": r(*shape), "negative": r(*shape)}
                tkw = {k: (bool(v) if k == "swap" else v) for k, v in kw.items()}
                loss2_case(T, f"loss triplet_margin({kw}) {list(shape)} {red}", "triplet", red, ts,
                           ["anchor", "positive", "negative"],
                           lambda s, rd, tkw=tkw: F.triplet_margin_loss(
                               s["anchor"], s["positive"], s["negative"], reduction=rd, **tkw),
                           **kw)
    # errors named as torch names them
    for case, args, want in [
            ("mse batchmean", ("loss", "mse", "batchmean"), "batchmean"),
            ("cross_entropy prob target with ignore_index", None, "ignore_index")]:
        try:
            if args:
                T.st_write(T.tmp("e_in.st"), {"input": r(3).numpy(), "target": r(3).numpy(),
                                               "gout": r(3).numpy()})
                proc = T.subprocess.run([T.RUNNER, *args, "0", T.tmp("e_in.st"), T.tmp("e_out.st")],
                                        stdout=T.subprocess.PIPE, stderr=T.subprocess.PIPE, text=True)
            else:
                T.st_write(T.tmp("e_in.st"), {"input": r(3, 4).numpy(), "target": r(3, 4).numpy(),
                                               "gout": r(1).numpy()[0], "ignore_index": 1.0})
                proc = T.subprocess.run([T.RUNNER, "loss2", "cross_entropy", "mean", T.tmp("e_in.st"),
                                         T.tmp("e_out.st")], stdout=T.subprocess.PIPE,
                                        stderr=T.subprocess.PIPE, text=True)
            T.report(f"loss error: {case}", proc.returncode != 0 and want in proc.stderr,
                     proc.stderr.strip())
        except Exception as e:  # noqa: BLE001
            T.report(f"loss error: {case}", False, repr(e))


# ------------------------------------------------------------- optimizers and schedulers

TORCH_OPT = {"sgd": torch.optim.SGD, "adagrad": torch.optim.Adagrad, "rmsprop": torch.optim.RMSprop,
             "adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "nadam": torch.optim.NAdam,
             "radam": torch.optim.RAdam, "adamax": torch.optim.Adamax}
BOOL_KEYS = {"nesterov", "maximize", "centered", "amsgrad"}


def torch_kwargs(d):
    """Our flat keys -> torch's (beta1/beta2 -> betas, 0/1 flags -> bools)."""
    kw = {}
    for k, v in d.items():
        if k in ("name", "groups", "sched", "steps", "replay", "params"):
            continue
        kw[k] = bool(v) if k in BOOL_KEYS else v
    if "beta1" in kw or "beta2" in kw:
        kw["betas"] = (kw.pop("beta1", 0.9), kw.pop("beta2", 0.999))
    return kw


def torch_sched(j, opt):
    t, S = j["type"], torch.optim.lr_scheduler
    kw = {k: v for k, v in j.items() if k not in ("type", "schedulers", "metrics", "optimizer",
                                                  "momentum")}
    if t in ("SequentialLR", "ChainedScheduler"):
        kids = [torch_sched(k, opt) for k in j["schedulers"]]
        return S.SequentialLR(opt, kids, j["milestones"]) if t == "SequentialLR" \
            else S.ChainedScheduler(kids)
    if t == "OneCycleLR":
        kw["cycle_momentum"] = bool(kw.get("cycle_momentum", True))
        kw["three_phase"] = bool(kw.get("three_phase", False))
    return getattr(S, t)(opt, **kw)


def step_sched(s, j, e):
    if j["type"] == "ReduceLROnPlateau":
        s.step(j["metrics"][e])
    else:
        s.step()


def torch_run(spec, init, X, Y):
    """torch's trajectory for an optim2 spec: per step the gradients and the parameters."""
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    net.load_state_dict(init)
    named = dict(net.named_parameters())
    groups, taken = [], set()
    for g in spec.get("groups", []):
        ps = [n for n in named if n not in taken and any(n.startswith(p) for p in g["params"])]
        taken.update(ps)
        groups.append((ps, torch_kwargs(g)))
    rest = [n for n in named if n not in taken]
    pgs = ([{"params": [named[n] for n in rest]}] if rest else []) + \
        [dict({"params": [named[n] for n in ps]}, **kw) for ps, kw in groups]
    order = rest + [n for ps, _ in groups for n in ps]
    opt = TORCH_OPT[spec["name"]](pgs, **torch_kwargs(spec))
    sch = torch_sched(spec["sched"], opt) if "sched" in spec else None
    grads, params = [], []
    for step in range(spec.get("steps", 50)):
        opt.zero_grad()
        loss = F.mse_loss(net(X), Y)
        if spec.get("maximize"):
            loss = -loss
        loss.backward()
        grads.append({k: p.grad.detach().clone().numpy() for k, p in net.named_parameters()})
        opt.step()
        if sch:
            step_sched(sch, spec["sched"], step)
        params.append({k: v.clone().numpy() for k, v in net.state_dict().items()})
    return grads, params, order


OPTIM2 = [
    {"name": "nadam"},
    {"name": "nadam", "lr": 0.01, "beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weight_decay": 0.05,
     "momentum_decay": 0.01},
    {"name": "radam"},
    {"name": "radam", "lr": 0.01, "beta1": 0.7, "beta2": 0.9, "weight_decay": 0.02},
    {"name": "radam", "lr": 0.005, "beta2": 0.99},      # rectified from step 6 on
    {"name": "adamax"},
    # (eps 1e-3: with 1e-6 a gradient coordinate near 0 at step 1 makes exp_inf ~ eps and the
    # full loop's last-bit gradient differences grow past the LOOSE tolerance by step 19; the
    # STRICT replay of torch's gradients matches either way)
    {"name": "adamax", "lr": 0.01, "beta1": 0.5, "beta2": 0.9, "eps": 1e-3, "weight_decay": 0.03},
    {"name": "adamax", "lr": 0.005, "maximize": 1},
    # parameter groups: per-group lr, weight_decay, momentum, betas, flags
    {"name": "sgd", "lr": 0.05, "groups": [{"params": ["2."], "lr": 0.01, "momentum": 0.9}]},
    {"name": "sgd", "lr": 0.05, "momentum": 0.5,
     "groups": [{"params": ["0.weight"], "weight_decay": 0.1, "nesterov": 1, "momentum": 0.9},
                {"params": ["0.bias", "2."], "lr": 0.02, "dampening": 0.5}]},
    {"name": "adam", "lr": 0.01, "groups": [{"params": ["0."], "lr": 0.001, "beta1": 0.5},
                                            {"params": ["2."], "amsgrad": 1, "weight_decay": 0.1}]},
    {"name": "adamw", "lr": 0.01, "groups": [{"params": ["2.bias"], "weight_decay": 0.0}]},
    {"name": "rmsprop", "lr": 0.005, "groups": [{"params": ["2."], "centered": 1, "momentum": 0.5}]},
    {"name": "adagrad", "lr": 0.05, "groups": [{"params": ["0."], "lr_decay": 0.01,
                                                "initial_accumulator_value": 0.1}]},
    {"name": "nadam", "lr": 0.005, "groups": [{"params": ["2."], "lr": 0.02, "momentum_decay": 0.1}]},
    {"name": "radam", "lr": 0.005, "groups": [{"params": ["0."], "beta2": 0.99}]},
    {"name": "adamax", "lr": 0.005, "groups": [{"params": ["0.", "2.weight"], "lr": 0.01}]},
    # every group listed: no leftover group 0
    {"name": "sgd", "lr": 0.03, "groups": [{"params": ["2."], "lr": 0.01}, {"params": ["0."]}]},
    # with schedulers: OneCycleLR cycling SGD's momentum / Adam's beta1, plateau on a metric
    {"name": "sgd", "lr": 0.05, "momentum": 0.9,
     "sched": {"type": "OneCycleLR", "max_lr": 0.1, "total_steps": 60}},
    {"name": "adam", "lr": 0.01, "groups": [{"params": ["2."], "lr": 0.003}],
     "sched": {"type": "OneCycleLR", "max_lr": 0.02, "total_steps": 50, "three_phase": 1,
               "anneal_strategy": "linear"}},
    {"name": "nadam", "lr": 0.01,
     "sched": {"type": "SequentialLR", "milestones": [10],
               "schedulers": [{"type": "LinearLR", "start_factor": 0.1, "total_iters": 10},
                              {"type": "CosineAnnealingLR", "T_max": 40}]}},
    {"name": "sgd", "lr": 0.1, "sched": {"type": "ReduceLROnPlateau", "patience": 2, "factor": 0.5,
                                         "metrics": [1.0 - 0.01 * (i % 7) for i in range(50)]}},
]


def test_optimizers(T, steps=50):
    """STRICT replay (torch's gradients fed to our optimizer, rtol 1e-4) and LOOSE full loop
    (rtol 1e-3 / atol 1e-4), parameters compared after every step, as test_nn.py does."""
    import json
    g = torch.Generator().manual_seed(4)
    X = torch.randn(16, 4, generator=g)
    Y = torch.randn(16, 3, generator=g)
    torch.manual_seed(5)
    init = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(),
                               torch.nn.Linear(8, 3)).state_dict()
    for spec in OPTIM2:
        spec = dict(spec, steps=steps)
        desc = json.dumps({k: v for k, v in spec.items() if k not in ("name", "steps")},
                          separators=(",", ":"))
        if "metrics" in desc:
            desc = desc.split(',"metrics"')[0] + "...}}"
        case = f"optim {spec['name']}({desc}) x{steps} steps"
        try:
            grads, params, _ = torch_run(spec, init, X, Y)
            inputs = {"X": X.numpy(), "Y": Y.numpy()}
            inputs.update({"p." + k: v.numpy() for k, v in init.items()})
            for step, gs in enumerate(grads, 1):
                inputs.update({f"g{step}.{k}": v for k, v in gs.items()})
            T.st_write(T.tmp("o2_in.st"), inputs)
            for replay, (rt, at), tag in [(1, (T.RTOL, T.ATOL), "STRICT replay"),
                                          (0, (1e-3, 1e-4), "LOOSE train")]:
                with open(T.tmp("o2.json"), "w") as f:
                    json.dump(dict(spec, replay=replay), f)
                T.run("optim2", T.tmp("o2.json"), T.tmp("o2_in.st"), T.tmp("o2_out.st"))
                ours, _ = T.st_read(T.tmp("o2_out.st"))
                T.compare_trajectory(f"{case} {tag} (rtol {rt} atol {at})", ours, params, rt, at)
        except Exception as e:  # noqa: BLE001
            T.report(case, False, repr(e))


SCHED2 = [
    {"type": "ConstantLR"}, {"type": "ConstantLR", "factor": 0.5, "total_iters": 12},
    {"type": "CosineAnnealingWarmRestarts", "T_0": 10},
    {"type": "CosineAnnealingWarmRestarts", "T_0": 3, "T_mult": 2, "eta_min": 0.001},
    {"type": "OneCycleLR", "max_lr": 0.5, "total_steps": 100},
    {"type": "OneCycleLR", "max_lr": 0.3, "total_steps": 120, "pct_start": 0.25,
     "anneal_strategy": "linear", "three_phase": 1, "div_factor": 10, "final_div_factor": 100},
    {"type": "OneCycleLR", "max_lr": 0.3, "total_steps": 100, "cycle_momentum": 0},
    {"type": "OneCycleLR", "max_lr": 0.2, "total_steps": 100, "optimizer": "adam",
     "base_momentum": 0.8, "max_momentum": 0.9},
    {"type": "ReduceLROnPlateau", "metrics": [1.0 / (1 + i) if i < 30 else 0.03 for i in range(100)]},
    {"type": "ReduceLROnPlateau", "mode": "max", "patience": 3, "factor": 0.5, "cooldown": 2,
     "threshold": 0.01, "threshold_mode": "abs", "min_lr": 0.01,
     "metrics": [min(i, 20) * 0.1 + (0.05 if i % 5 == 0 else 0.0) for i in range(100)]},
    {"type": "SequentialLR", "milestones": [5],
     "schedulers": [{"type": "LinearLR", "start_factor": 0.1, "total_iters": 5},
                    {"type": "ExponentialLR", "gamma": 0.95}]},
    {"type": "SequentialLR", "milestones": [3, 20],
     "schedulers": [{"type": "ConstantLR", "factor": 0.2, "total_iters": 3},
                    {"type": "CosineAnnealingLR", "T_max": 17, "eta_min": 0.01},
                    {"type": "StepLR", "step_size": 10, "gamma": 0.5}]},
    {"type": "SequentialLR", "milestones": [10],
     "schedulers": [{"type": "LinearLR", "start_factor": 0.5, "total_iters": 10},
                    {"type": "MultiStepLR", "milestones": [20, 40], "gamma": 0.3}]},
    {"type": "SequentialLR", "milestones": [8],
     "schedulers": [{"type": "LinearLR", "start_factor": 0.25, "total_iters": 8},
                    {"type": "CosineAnnealingWarmRestarts", "T_0": 12, "T_mult": 2}]},
    {"type": "ChainedScheduler",
     "schedulers": [{"type": "LinearLR", "start_factor": 0.1, "total_iters": 10},
                    {"type": "ExponentialLR", "gamma": 0.97}]},
    {"type": "ChainedScheduler",
     "schedulers": [{"type": "ConstantLR", "factor": 0.5, "total_iters": 4},
                    {"type": "StepLR", "step_size": 7, "gamma": 0.7},
                    {"type": "MultiStepLR", "milestones": [30, 60], "gamma": 0.5}]},
    {"type": "ChainedScheduler",
     "schedulers": [{"type": "LinearLR", "start_factor": 0.2, "total_iters": 5},
                    {"type": "SequentialLR", "milestones": [50],
                     "schedulers": [{"type": "ExponentialLR", "gamma": 0.99},
                                    {"type": "StepLR", "step_size": 5, "gamma": 0.5}]}]},
]


def test_schedulers(T, steps=100):
    """Every group's lr (and the momentum OneCycleLR cycles) over 100 steps, one and two groups."""
    import json
    import warnings
    for spec in SCHED2:
        for groups in (1, 2):
            base = 0.1
            desc = json.dumps({k: v for k, v in spec.items() if k != "metrics"},
                              separators=(",", ":"))
            case = f"sched {desc} groups={groups} x{steps} steps"
            try:
                ps = [torch.zeros(1, requires_grad=True) for _ in range(groups)]
                adam = spec.get("optimizer") == "adam"
                pg = [{"params": [p], "lr": base * (g + 1)} for g, p in enumerate(ps)]
                opt = torch.optim.Adam(pg, lr=base) if adam else \
                    torch.optim.SGD(pg, lr=base, momentum=spec.get("momentum", 0))
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    sch = torch_sched(spec, opt)
                    want = []
                    for e in range(steps + 1):
                        row = [gr["lr"] for gr in opt.param_groups]
                        row += [gr["betas"][0] if adam else gr["momentum"] for gr in opt.param_groups]
                        want.append(row)
                        if e < steps:
                            opt.step()
                            step_sched(sch, spec, e)
                with open(T.tmp("s2.json"), "w") as f:
                    json.dump(spec, f)
                out = T.run("sched2", T.tmp("s2.json"), base, groups, steps).split("\n")
                ours = [[float(v) for v in line.split()[:2 * groups]] for line in out if line.strip()]
                ok = len(ours) == steps + 1 and all(
                    np.allclose(o, w, rtol=1e-9, atol=1e-12) for o, w in zip(ours, want))
                bad = next((e for e, (o, w) in enumerate(zip(ours, want))
                            if not np.allclose(o, w, rtol=1e-9, atol=1e-12)), None)
                T.report(case, ok, f"first difference at epoch {bad}: ours "
                         f"{ours[bad] if bad is not None else ours[-1:]} torch "
                         f"{want[bad] if bad is not None else want[-1]}")
            except Exception as e:  # noqa: BLE001
                T.report(case, False, repr(e))


def run(T):
    test_sweep(T)
    test_activation_modules(T)
    test_losses(T)
    test_optimizers(T)
    test_schedulers(T)
