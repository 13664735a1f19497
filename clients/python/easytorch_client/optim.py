"""Optimizer and scheduler spec helpers named like torch.optim, e.g.
``Adam(lr=1e-3)`` -> ``{"type": "Adam", "lr": 0.001}``. Arguments left out
take PyTorch's defaults on the daemon."""


def _spec(type_, kw):
    d = {"type": type_}
    for k, v in kw.items():
        if v is not None:
            d[k] = list(v) if isinstance(v, tuple) else v
    return d


def SGD(lr=None, momentum=None, dampening=None, weight_decay=None, nesterov=None):
    return _spec("SGD", dict(lr=lr, momentum=momentum, dampening=dampening,
                             weight_decay=weight_decay, nesterov=nesterov))


def Adam(lr=None, betas=None, eps=None, weight_decay=None, amsgrad=None):
    return _spec("Adam", dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))


def AdamW(lr=None, betas=None, eps=None, weight_decay=None, amsgrad=None):
    return _spec("AdamW", dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))


def Adagrad(lr=None, lr_decay=None, weight_decay=None, initial_accumulator_value=None, eps=None):
    return _spec("Adagrad", dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                 initial_accumulator_value=initial_accumulator_value, eps=eps))


def RMSprop(lr=None, alpha=None, eps=None, weight_decay=None, momentum=None, centered=None):
    return _spec("RMSprop", dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                 momentum=momentum, centered=centered))


class lr_scheduler:
    """Scheduler specs, as torch.optim.lr_scheduler."""

    @staticmethod
    def StepLR(step_size, gamma=None):
        return _spec("StepLR", dict(step_size=step_size, gamma=gamma))

    @staticmethod
    def ExponentialLR(gamma):
        return _spec("ExponentialLR", dict(gamma=gamma))

    @staticmethod
    def CosineAnnealingLR(T_max, eta_min=None):
        return _spec("CosineAnnealingLR", dict(T_max=T_max, eta_min=eta_min))
