"""The spec vocabulary: every layer, loss, optimizer and scheduler type with its fields in
constructor order, as the daemon's GET /v1/types lists them. This table only lets the helpers
map positional arguments without a round trip (``nn.Linear(1, 16)``); a type it does not list
still works (``nn.Conv2d(1, 8, 3)``): its positional arguments are mapped with the daemon's
own table when the model is created (tests/clients checks the two tables agree)."""

import threading

LAYERS = {
    "Linear": ("in_features", "out_features", "bias"),
    "ReLU": ("inplace",),
    "Tanh": (),
    "Sigmoid": (),
    "GELU": ("approximate",),
    "Softmax": ("dim",),
    "LogSoftmax": ("dim",),
    "LeakyReLU": ("negative_slope", "inplace"),
    "Dropout": ("p", "inplace"),
    "Flatten": ("start_dim", "end_dim"),
    "Identity": (),
}
LOSSES = {
    "MSELoss": ("reduction",),
    "L1Loss": ("reduction",),
    "CrossEntropyLoss": ("reduction", "label_smoothing"),
    "NLLLoss": ("reduction",),
    "BCELoss": ("reduction",),
    "BCEWithLogitsLoss": ("reduction",),
    "HuberLoss": ("reduction", "delta"),
    "SmoothL1Loss": ("reduction", "beta"),
}
OPTIMIZERS = {
    "SGD": ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"),
    "Adagrad": ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize"),
    "RMSprop": ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize"),
    "Adam": ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"),
    "AdamW": ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"),
}
SCHEDULERS = {
    "StepLR": ("step_size", "gamma"),
    "MultiStepLR": ("milestones", "gamma"),
    "ExponentialLR": ("gamma",),
    "CosineAnnealingLR": ("T_max", "eta_min"),
    "LinearLR": ("start_factor", "end_factor", "total_iters"),
}
BUILTIN = {"layers": LAYERS, "losses": LOSSES, "optimizers": OPTIMIZERS, "schedulers": SCHEDULERS}


class Spec(dict):
    """A spec dict ``{"type": ..., field: value}`` as the daemon takes it. Positional arguments
    of a type the built-in table does not know wait in ``pending`` until ``resolve`` is given
    the daemon's table."""

    def __init__(self, type_, families, args, kwargs):
        super().__init__(type=type_)
        self.families = families      # where to look the type up ("layers", "losses", ...)
        self.pending = ()
        for k, v in kwargs.items():
            if v is not None:
                self[k] = list(v) if isinstance(v, tuple) else v
        if args:
            fields = _fields(BUILTIN, type_, families)
            if fields is None:
                self.pending = tuple(args)
            else:
                self._place(fields, args)

    def _place(self, fields, args):
        t = self["type"]
        if len(args) > len(fields):
            raise TypeError("%s takes at most %d positional arguments (%s), got %d"
                            % (t, len(fields), ", ".join(fields) or "none", len(args)))
        for name, v in zip(fields, args):
            if name in self:
                raise TypeError("%s got multiple values for argument %r" % (t, name))
            if v is not None:
                self[name] = list(v) if isinstance(v, tuple) else v

    def resolve(self, tables):
        """Map pending positional arguments with ``tables`` (GET /v1/types as
        {family: {type: fields}}); returns a plain dict."""
        if self.pending:
            fields = _fields(tables, self["type"], self.families)
            if fields is None:
                raise TypeError("%s: the daemon does not know this type (GET /v1/types); "
                                "it cannot take positional arguments" % self["type"])
            self._place(fields, self.pending)
            self.pending = ()
        return dict(self)

    def spec(self):
        if self.pending:
            raise TypeError("%s: positional arguments need the daemon's type table; pass "
                            "keywords or create the model through a Client" % self["type"])
        return dict(self)

    def __repr__(self):
        if self.pending:
            return "%s(%s, pending positional %r)" % (self["type"], dict.__repr__(self), self.pending)
        return dict.__repr__(self)


def _fields(tables, type_, families):
    for f in families:
        t = tables.get(f) or {}
        if type_ in t:
            return tuple(t[type_])
    return None


def factory(type_, families, doc=None):
    """A helper named like the torch class: positional arguments in constructor order,
    keywords as the daemon's field names, None meaning the daemon's (PyTorch's) default."""
    def make(*args, **kwargs):
        return Spec(type_, families, args, kwargs)
    make.__name__ = make.__qualname__ = type_
    fields = _fields(BUILTIN, type_, families)
    make.__doc__ = doc or ("The %s spec%s." % (type_, " (fields: %s)" % ", ".join(fields)
                                                if fields else ""))
    return make


class TypeCache:
    """GET /v1/types of one daemon, fetched once (thread-safe)."""

    def __init__(self):
        self._tables = None
        self._lock = threading.Lock()

    def get(self, client):
        with self._lock:
            if self._tables is None:
                t = client.request("GET", "/v1/types")
                self._tables = {fam: {e["type"]: tuple(e["fields"]) for e in rows}
                                for fam, rows in t.items()}
            return self._tables
