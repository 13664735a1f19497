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
    "BatchNorm1d": ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    "BatchNorm2d": ("num_features", "eps", "momentum", "affine", "track_running_stats"),
    "LayerNorm": ("normalized_shape", "eps", "elementwise_affine"),
    "GroupNorm": ("num_groups", "num_channels", "eps", "affine"),
    "Embedding": ("num_embeddings", "embedding_dim", "padding_idx", "max_norm", "norm_type", "scale_grad_by_freq", "sparse"),
    "EmbeddingBag": ("num_embeddings", "embedding_dim", "max_norm", "norm_type", "scale_grad_by_freq", "mode", "sparse", "include_last_offset", "padding_idx"),
    "Conv1d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias", "padding_mode"),
    "Conv2d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias", "padding_mode"),
    "ConvTranspose2d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding", "groups", "bias", "dilation", "padding_mode"),
    "MaxPool1d": ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode"),
    "MaxPool2d": ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode"),
    "AvgPool1d": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad"),
    "AvgPool2d": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
    "AdaptiveAvgPool1d": ("output_size",),
    "AdaptiveAvgPool2d": ("output_size",),
    "AdaptiveMaxPool1d": ("output_size", "return_indices"),
    "AdaptiveMaxPool2d": ("output_size", "return_indices"),
    "ZeroPad2d": ("padding",),
    "ConstantPad1d": ("padding", "value"),
    "ConstantPad2d": ("padding", "value"),
    "ReflectionPad1d": ("padding",),
    "ReflectionPad2d": ("padding",),
    "ReplicationPad1d": ("padding",),
    "ReplicationPad2d": ("padding",),
    "Unflatten": ("dim", "unflattened_size"),
    "Dropout2d": ("p", "inplace"),
    "SiLU": ("inplace",),
    "Mish": ("inplace",),
    "ELU": ("alpha", "inplace"),
    "Softplus": ("beta", "threshold"),
    "Hardtanh": ("min_val", "max_val", "inplace"),
    "ReLU6": ("inplace",),
    "MultiheadAttention": ("embed_dim", "num_heads", "dropout", "bias", "add_bias_kv", "add_zero_attn", "kdim", "vdim", "batch_first", "attn_mask", "key_padding_mask"),
    "TransformerEncoderLayer": ("d_model", "nhead", "dim_feedforward", "dropout", "activation", "layer_norm_eps", "batch_first", "norm_first", "src_mask", "src_key_padding_mask"),
    "TransformerEncoder": ("encoder_layer", "num_layers", "norm", "enable_nested_tensor", "mask_check", "mask", "src_key_padding_mask"),
}
LOSSES = {
    "MSELoss": ("reduction",),
    "L1Loss": ("reduction",),
    "CrossEntropyLoss": ("weight", "ignore_index", "reduction", "label_smoothing"),
    "NLLLoss": ("weight", "ignore_index", "reduction"),
    "BCELoss": ("reduction",),
    "BCEWithLogitsLoss": ("weight", "reduction", "pos_weight"),
    "HuberLoss": ("reduction", "delta"),
    "SmoothL1Loss": ("reduction", "beta"),
    "KLDivLoss": ("reduction", "log_target"),
}
OPTIMIZERS = {
    "SGD": ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize"),
    "Adagrad": ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps", "maximize"),
    "RMSprop": ("lr", "alpha", "eps", "weight_decay", "momentum", "centered", "maximize"),
    "Adam": ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"),
    "AdamW": ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"),
    "NAdam": ("lr", "betas", "eps", "weight_decay", "momentum_decay"),
    "RAdam": ("lr", "betas", "eps", "weight_decay"),
    "Adamax": ("lr", "betas", "eps", "weight_decay", "maximize"),
}
SCHEDULERS = {
    "StepLR": ("step_size", "gamma"),
    "MultiStepLR": ("milestones", "gamma"),
    "ExponentialLR": ("gamma",),
    "CosineAnnealingLR": ("T_max", "eta_min"),
    "LinearLR": ("start_factor", "end_factor", "total_iters"),
    "ConstantLR": ("factor", "total_iters"),
    "CosineAnnealingWarmRestarts": ("T_0", "T_mult", "eta_min"),
    "OneCycleLR": ("max_lr", "total_steps", "epochs", "steps_per_epoch", "pct_start",
                   "anneal_strategy", "cycle_momentum", "base_momentum", "max_momentum",
                   "div_factor", "final_div_factor", "three_phase"),
    "ReduceLROnPlateau": ("mode", "factor", "patience", "threshold", "threshold_mode",
                          "cooldown", "min_lr", "eps"),
    "SequentialLR": ("schedulers", "milestones"),
    "ChainedScheduler": ("schedulers",),
}
BUILTIN = {"layers": LAYERS, "losses": LOSSES, "optimizers": OPTIMIZERS, "schedulers": SCHEDULERS}

# Fields where torch gives None a meaning of its own (not the default): an explicit None is
# sent as JSON null. Everywhere else None means "not given" (the daemon's default).
NULLABLE = {("BatchNorm1d", "momentum"), ("BatchNorm2d", "momentum")}


class Spec(dict):
    """A spec dict ``{"type": ..., field: value}`` as the daemon takes it. Positional arguments
    of a type the built-in table does not know wait in ``pending`` until ``resolve`` is given
    the daemon's table."""

    def __init__(self, type_, families, args, kwargs):
        super().__init__(type=type_)
        self.families = families      # where to look the type up ("layers", "losses", ...)
        self.pending = ()
        for k, v in kwargs.items():
            if v is not None or (type_, k) in NULLABLE:
                self[k] = _jsonable(v)
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
            if v is not None or (t, name) in NULLABLE:
                self[name] = _jsonable(v)

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


def _jsonable(v):
    """tuples (torch's int-or-tuple arguments, betas) as lists; dicts (param_groups,
    nested specs) element-wise, a parameter group's "params" given as one prefix as a list"""
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict) and not isinstance(v, Spec):
        d = {k: _jsonable(x) for k, x in v.items()}
        if isinstance(d.get("params"), str):
            d["params"] = [d["params"]]
        return d
    return v


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
