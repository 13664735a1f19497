"""Spec helpers named like torch.nn: ``nn.Linear(1, 16)`` ->
``{"type": "Linear", "in_features": 1, "out_features": 16}``. Positional arguments follow
the torch constructor's order, keywords are its argument names, and arguments left out take
PyTorch's defaults on the daemon. Every layer and loss type the daemon knows has a helper:
``nn.<TypeName>`` works for types added to the daemon after this client was written too
(their positional arguments are mapped with the daemon's table, GET /v1/types, when the model
is created). Plain dicts work just as well."""

from . import _types

_FAMILIES = ("layers", "losses")

for _name in list(_types.LAYERS) + list(_types.LOSSES):
    globals()[_name] = _types.factory(_name, _FAMILIES)
del _name


def __getattr__(name):
    """nn.<AnyTypeName>: a helper for a type this client's table does not list."""
    if name[:1].isupper():
        f = _types.factory(name, _FAMILIES)
        globals()[name] = f
        return f
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def __dir__():
    return sorted(set(globals()) | set(_types.LAYERS) | set(_types.LOSSES))
