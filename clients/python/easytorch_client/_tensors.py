"""Tensors as the client sends and takes them: one tensor (ndarray, torch tensor, nested lists,
number) or, for a graph model with several inputs, targets or outputs, a dict {name: tensor}
(issue 14). JSON encoding, the arrays of the binary transport (safetensors tensors named
``inputs.<name>``/``targets.<name>``), row counts and row slices of either kind."""

try:  # NumPy is optional: used when present.
    import numpy as _np
except ImportError:  # pragma: no cover
    _np = None


def _is_ndarray(x):
    return _np is not None and isinstance(x, _np.ndarray)


def encode_tensor(x):
    """A tensor-like value (ndarray, torch tensor, nested lists, number) as
    JSON-ready data. NumPy arrays use the flat ``{"shape", "data"}`` form; a dict of named
    tensors (a graph's inputs or targets) is encoded name by name."""
    if isinstance(x, dict):
        return {k: encode_tensor(v) for k, v in x.items()}
    if _np is not None and not isinstance(x, (list, tuple, int, float)):
        if hasattr(x, "detach"):  # a torch.Tensor
            x = x.detach().cpu().numpy()
        if _is_ndarray(x) or isinstance(x, _np.generic):
            x = _np.asarray(x)
            if x.dtype.kind in "iub":
                data = x.ravel().tolist()
            else:
                data = x.astype(_np.float64, copy=False).ravel().tolist()
            return {"shape": list(x.shape), "data": data}
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, tuple):
        return [encode_tensor(v) for v in x]
    return x


def _as_array(x):
    """A tensor-like value as the ndarray the binary transport sends: float32, or int64 for
    integer data (class indices, embedding inputs; the daemon takes them as numbers where a
    layer or loss wants floats)."""
    if hasattr(x, "detach"):  # a torch.Tensor
        x = x.detach().cpu().numpy()
    a = _np.asarray(x)
    if a.dtype.kind in "iu":
        return a.astype(_np.int64, copy=False)
    if a.dtype.kind in "fb":
        return a.astype(_np.float32, copy=False)
    raise TypeError("cannot send an array of dtype %s as a tensor" % a.dtype)


def wire_arrays(tensors):
    """{field: tensor or {name: tensor}} as the flat {name: ndarray} of a safetensors body:
    ``inputs`` stays ``inputs``, ``{"inputs": {"user": u}}`` becomes ``inputs.user``."""
    arrays = {}
    for k, v in tensors.items():
        if isinstance(v, dict):
            for n, t in v.items():
                arrays["%s.%s" % (k, n)] = _as_array(t)
        else:
            arrays[k] = _as_array(v)
    return arrays


def named_outputs(client, js, t):
    """A predict answer as one tensor, or {name: tensor} for a graph with several outputs
    (JSON ``"outputs": {name: ...}``; safetensors: one tensor per output name)."""
    if t is not None:
        return t["outputs"] if list(t) == ["outputs"] else dict(t)
    out = js["outputs"]
    if isinstance(out, dict) and not ("data" in out and "shape" in out):
        return {k: client._tensor(v) for k, v in out.items()}
    return client._tensor(out)


def _int_or_float(nested):
    """int64 when the daemon wrote whole numbers without a point (int64 tensors), else float32."""
    while isinstance(nested, list) and nested:
        nested = nested[0]
    if isinstance(nested, int) and not isinstance(nested, bool):
        return _np.int64
    return _np.float32


def _shape_of(nested):
    shape = []
    while isinstance(nested, list):
        shape.append(len(nested))
        if not nested:
            break
        nested = nested[0]
    return shape


def _unflatten(data, shape):
    if not shape:
        return data[0] if isinstance(data, list) else data
    if len(shape) == 1:
        return list(data)
    step = 1
    for d in shape[1:]:
        step *= d
    return [_unflatten(data[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def _row_count(x):
    if isinstance(x, dict):  # named inputs: the daemon checks they have the same number of rows
        if not x:
            raise ValueError("named inputs: the dict is empty")
        return _row_count(next(iter(x.values())))
    if _is_ndarray(x):
        return x.shape[0]
    if hasattr(x, "shape") and hasattr(x, "__getitem__"):
        return int(x.shape[0])
    return len(x)


def _take_rows(x, idx):
    """Rows ``idx`` (a list of ints) of ``x``, keeping its kind (every tensor of a dict)."""
    if isinstance(x, dict):
        return {k: _take_rows(v, idx) for k, v in x.items()}
    if _is_ndarray(x):
        return x[idx]
    if hasattr(x, "detach") and _np is not None:
        return x.detach().cpu().numpy()[idx]
    return [x[i] for i in idx]


def _slice_rows(x, start, stop):
    if isinstance(x, dict):
        return {k: v[start:stop] for k, v in x.items()}
    return x[start:stop]


def _concat_rows(parts, use_numpy):
    """The answers of a predict sent in chunks, joined row-wise (output by output)."""
    if isinstance(parts[0], dict):
        return {k: _concat_rows([p[k] for p in parts], use_numpy) for k in parts[0]}
    if use_numpy:
        return _np.concatenate(parts, axis=0)
    return [row for p in parts for row in p]
