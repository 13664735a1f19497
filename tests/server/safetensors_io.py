"""safetensors files for the server tests (NumPy only; the format of
github.com/huggingface/safetensors): u64 little-endian header length, a JSON header
{name: {"dtype", "shape", "data_offsets"}, "__metadata__": {str: str}} padded with spaces,
then the little-endian data. read() is strict as the reference loader is."""

import json
import struct

import numpy as np

DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": None, "I64": "<i8", "I32": "<i4",
          "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
_BY_NUMPY = {np.dtype(v).str if v not in (None, "?") else v: k for k, v in DTYPES.items() if v}


def write(tensors, metadata=None, align=True):
    """{name: ndarray} (+ {str: str} metadata) -> bytes, in the given order."""
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, a in tensors.items():
        a = np.ascontiguousarray(a)
        key = a.dtype.newbyteorder("<").str if a.dtype.kind != "b" else "?"
        dt = _BY_NUMPY.get(key) or _BY_NUMPY.get(a.dtype.str)
        if dt is None:
            raise ValueError("no safetensors dtype for %s" % a.dtype)
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    if align:
        h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def read(buf):
    """bytes -> ({name: ndarray}, metadata dict); raises ValueError on anything off."""
    if len(buf) < 8:
        raise ValueError("shorter than the 8-byte header length")
    n = struct.unpack("<Q", buf[:8])[0]
    if 8 + n > len(buf):
        raise ValueError("header length %d runs past the file (%d bytes)" % (n, len(buf)))
    raw = buf[8:8 + n]
    if not raw.startswith(b"{"):
        raise ValueError("header does not start with '{'")
    header = json.loads(raw.decode("utf-8"))
    meta = header.pop("__metadata__", {})
    body = buf[8 + n:]
    out, spans = {}, []
    for name, info in header.items():
        if set(info) != {"dtype", "shape", "data_offsets"}:
            raise ValueError("%s: header entry has keys %s" % (name, sorted(info)))
        dt = np.dtype(DTYPES[info["dtype"]])
        b, e = info["data_offsets"]
        count = int(np.prod(info["shape"])) if info["shape"] else 1
        if not 0 <= b <= e <= len(body) or e - b != count * dt.itemsize:
            raise ValueError("%s: data_offsets %r do not fit shape %r" % (name, (b, e), info["shape"]))
        out[name] = np.frombuffer(body[b:e], dtype=dt).reshape(info["shape"])
        spans.append((b, e))
    pos = 0
    for b, e in sorted(spans):
        if b != pos:
            raise ValueError("data has a hole or overlap at byte %d" % pos)
        pos = e
    if pos != len(body):
        raise ValueError("%d trailing bytes after the last tensor" % (len(body) - pos))
    return out, meta
