"""Differential nn tests added after the first release: the nn items of the
edge-case sweep (BCELoss at 0 and 1, SmoothL1Loss with beta 0, NLLLoss whose
selected weights are all 0, an optimizer given a non-leaf tensor), and the
losses, optimizers and schedulers of issue 14.  Run from test_nn.py's main()
as run(T) with T the test_nn module (its helpers: st_write, st_read, run,
report, compare_all, tmp)."""
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


def run(T):
    test_sweep(T)
    test_activation_modules(T)
