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


def Flatten(start_dim=None, end_dim=None):
    return _spec("Flatten", start_dim=start_dim, end_dim=end_dim)


def Identity():
    return _spec("Identity")


# ---- the layers of convolutional, normalised and embedding models ----------
# "int or tuple" arguments take an int or a tuple/list (sent as a JSON list).

_UNSET = object()   # "not given": None means torch's None where it has a meaning


def _tuple(v):
    return list(v) if isinstance(v, tuple) else v


def Conv1d(in_channels, out_channels, kernel_size, stride=None, padding=None, dilation=None,
           groups=None, bias=None, padding_mode=None):
    return _spec("Conv1d", in_channels=in_channels, out_channels=out_channels,
                 kernel_size=_tuple(kernel_size), stride=_tuple(stride), padding=_tuple(padding),
                 dilation=_tuple(dilation), groups=groups, bias=bias, padding_mode=padding_mode)


def Conv2d(in_channels, out_channels, kernel_size, stride=None, padding=None, dilation=None,
           groups=None, bias=None, padding_mode=None):
    """``padding`` may also be "same" or "valid", as in torch."""
    return _spec("Conv2d", in_channels=in_channels, out_channels=out_channels,
                 kernel_size=_tuple(kernel_size), stride=_tuple(stride), padding=_tuple(padding),
                 dilation=_tuple(dilation), groups=groups, bias=bias, padding_mode=padding_mode)


def ConvTranspose2d(in_channels, out_channels, kernel_size, stride=None, padding=None,
                    output_padding=None, groups=None, bias=None, dilation=None):
    return _spec("ConvTranspose2d", in_channels=in_channels, out_channels=out_channels,
                 kernel_size=_tuple(kernel_size), stride=_tuple(stride), padding=_tuple(padding),
                 output_padding=_tuple(output_padding), groups=groups, bias=bias,
                 dilation=_tuple(dilation))


def _pool(name, max_pool, two_d):
    def make(kernel_size, stride=None, padding=None, dilation=None, ceil_mode=None,
             count_include_pad=None, divisor_override=None):
        kw = dict(kernel_size=_tuple(kernel_size), stride=_tuple(stride), padding=_tuple(padding),
                  ceil_mode=ceil_mode)
        if max_pool:
            kw["dilation"] = _tuple(dilation)
        else:
            kw["count_include_pad"] = count_include_pad
            if two_d:
                kw["divisor_override"] = divisor_override
        return _spec(name, **kw)
    make.__name__ = name
    make.__doc__ = "The %s spec (stride None = kernel_size, as torch)." % name
    return make


MaxPool1d = _pool("MaxPool1d", True, False)
MaxPool2d = _pool("MaxPool2d", True, True)
AvgPool1d = _pool("AvgPool1d", False, False)
AvgPool2d = _pool("AvgPool2d", False, True)


def _adaptive(name):
    def make(output_size):
        """``output_size``: an int, or (2-d) a pair whose entries may be None."""
        return {"type": name, "output_size": _tuple(output_size)}
    make.__name__ = name
    return make


AdaptiveAvgPool1d = _adaptive("AdaptiveAvgPool1d")
AdaptiveAvgPool2d = _adaptive("AdaptiveAvgPool2d")
AdaptiveMaxPool1d = _adaptive("AdaptiveMaxPool1d")
AdaptiveMaxPool2d = _adaptive("AdaptiveMaxPool2d")


def _padding(name, with_value):
    def make(padding, value=None):
        d = {"type": name, "padding": _tuple(padding)}
        if with_value:
            d["value"] = value
        return d
    make.__name__ = name
    return make


ZeroPad2d = _padding("ZeroPad2d", False)
ConstantPad1d = _padding("ConstantPad1d", True)
ConstantPad2d = _padding("ConstantPad2d", True)
ReflectionPad1d = _padding("ReflectionPad1d", False)
ReflectionPad2d = _padding("ReflectionPad2d", False)
ReplicationPad1d = _padding("ReplicationPad1d", False)
ReplicationPad2d = _padding("ReplicationPad2d", False)


def Unflatten(dim, unflattened_size):
    return {"type": "Unflatten", "dim": dim, "unflattened_size": list(unflattened_size)}


def Dropout2d(p=None):
    return _spec("Dropout2d", p=p)


def _batch_norm(name):
    def make(num_features, eps=None, momentum=_UNSET, affine=None, track_running_stats=None):
        """``momentum=None`` is torch's cumulative moving average (sent as null)."""
        d = _spec(name, num_features=num_features, eps=eps, affine=affine,
                  track_running_stats=track_running_stats)
        if momentum is not _UNSET:
            d["momentum"] = momentum
        return d
    make.__name__ = name
    return make


BatchNorm1d = _batch_norm("BatchNorm1d")
BatchNorm2d = _batch_norm("BatchNorm2d")


def LayerNorm(normalized_shape, eps=None, elementwise_affine=None):
    return _spec("LayerNorm", normalized_shape=_tuple(normalized_shape), eps=eps,
                 elementwise_affine=elementwise_affine)


def GroupNorm(num_groups, num_channels, eps=None, affine=None):
    return _spec("GroupNorm", num_groups=num_groups, num_channels=num_channels, eps=eps,
                 affine=affine)


def Embedding(num_embeddings, embedding_dim, padding_idx=None, max_norm=None, norm_type=None,
              scale_grad_by_freq=None):
    """Its model takes int64 indices: send integers (lists or integer ndarrays)."""
    return _spec("Embedding", num_embeddings=num_embeddings, embedding_dim=embedding_dim,
                 padding_idx=padding_idx, max_norm=max_norm, norm_type=norm_type,
                 scale_grad_by_freq=scale_grad_by_freq)


def EmbeddingBag(num_embeddings, embedding_dim, max_norm=None, norm_type=None,
                 scale_grad_by_freq=None, mode=None, include_last_offset=None, padding_idx=None):
    """Inputs [bags, indices per bag]: each row is one bag."""
    return _spec("EmbeddingBag", num_embeddings=num_embeddings, embedding_dim=embedding_dim,
                 max_norm=max_norm, norm_type=norm_type, scale_grad_by_freq=scale_grad_by_freq,
                 mode=mode, include_last_offset=include_last_offset, padding_idx=padding_idx)


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
