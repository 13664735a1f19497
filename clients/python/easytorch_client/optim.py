"""Optimizer and scheduler spec helpers named like torch.optim, e.g. ``Adam(lr=1e-3)`` ->
``{"type": "Adam", "lr": 0.001}`` and ``lr_scheduler.StepLR(100, gamma=0.5)``. Positional
arguments follow the torch constructor's order after its first one (the parameters, or the
optimizer, which the daemon supplies); arguments left out take PyTorch's defaults on the
daemon. Types the daemon adds later work too (``optim.NAdam(lr=...)``)."""

from . import _types

for _name in _types.OPTIMIZERS:
    globals()[_name] = _types.factory(_name, ("optimizers",))
del _name


def __getattr__(name):
    if name[:1].isupper():
        f = _types.factory(name, ("optimizers",))
        globals()[name] = f
        return f
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


class _Schedulers:
    """lr_scheduler.<TypeName>: the scheduler specs, as torch.optim.lr_scheduler."""

    def __init__(self):
        for n in _types.SCHEDULERS:
            setattr(self, n, _types.factory(n, ("schedulers",)))

    def __getattr__(self, name):
        if name[:1].isupper():
            f = _types.factory(name, ("schedulers",))
            setattr(self, name, f)
            return f
        raise AttributeError("lr_scheduler has no attribute %r" % name)

    def __dir__(self):
        return sorted(set(_types.SCHEDULERS) | set(self.__dict__))


lr_scheduler = _Schedulers()
