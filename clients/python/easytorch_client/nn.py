"""Spec helpers named like torch.nn: each returns the JSON dict the daemon
takes, e.g. ``Linear(1, 16)`` -> ``{"type": "Linear", "in_features": 1,
"out_features": 16}``. Arguments left out take PyTorch's defaults on the
daemon. Plain dicts work just as well."""


def _spec(type_, **kw):
    d = {"type": type_}
    d.update({k: v for k, v in kw.items() if v is not None})
    return d


def Linear(in_features, out_features, bias=None):
    return _spec("Linear", in_features=in_features, out_features=out_features, bias=bias)


def ReLU():
    return _spec("ReLU")


def Tanh():
    return _spec("Tanh")


def Sigmoid():
    return _spec("Sigmoid")


def Softmax(dim=None):
    return _spec("Softmax", dim=dim)


def LogSoftmax(dim=None):
    return _spec("LogSoftmax", dim=dim)


def LeakyReLU(negative_slope=None):
    return _spec("LeakyReLU", negative_slope=negative_slope)


def Dropout(p=None):
    return _spec("Dropout", p=p)


def Flatten():
    return _spec("Flatten")


def Identity():
    return _spec("Identity")


def _loss(name):
    def make(reduction=None, **kw):
        return _spec(name, reduction=reduction, **kw)
    make.__name__ = name
    make.__doc__ = "The %s spec (reduction 'mean' by default)." % name
    return make


MSELoss = _loss("MSELoss")
L1Loss = _loss("L1Loss")
CrossEntropyLoss = _loss("CrossEntropyLoss")
NLLLoss = _loss("NLLLoss")
BCEWithLogitsLoss = _loss("BCEWithLogitsLoss")
HuberLoss = _loss("HuberLoss")
SmoothL1Loss = _loss("SmoothL1Loss")
