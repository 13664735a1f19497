"""safetensors bytes <-> NumPy arrays for the binary transport (NumPy only; the format of
github.com/huggingface/safetensors: u64 little-endian header length, a JSON header
{name: {"dtype", "shape", "data_offsets"}, "__metadata__": {str: str}}, then the data)."""

import json
import struct

import numpy as np

_TO_NP = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
          "I8": "i1", "U8": "u1", "BOOL": "?"}


def encode(tensors, metadata=None):
    """{name: ndarray of float32 or int64} (+ {str: str}) -> bytes."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name, a in tensors.items():
        if a.dtype == np.float32:
            dt, a = "F32", a.astype("<f4", copy=False)
        elif a.dtype == np.int64:
            dt, a = "I64", a.astype("<i8", copy=False)
        else:
            raise TypeError("%s: dtype %s (float32 or int64 expected)" % (name, a.dtype))
        b = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return b"".join([struct.pack("<Q", len(h)), h] + blobs)


def decode(buf):
    """bytes -> ({name: ndarray}, metadata); ValueError if they are not a safetensors file."""
    if len(buf) < 8:
        raise ValueError("safetensors: %d bytes is too short" % len(buf))
    (n,) = struct.unpack("<Q", buf[:8])
    if n > len(buf) - 8:
        raise ValueError("safetensors: header length %d past the end" % n)
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    data = memoryview(buf)[8 + n:]
    out = {}
    for name, info in header.items():
        dt = np.dtype(_TO_NP[info["dtype"]])
        b, e = info["data_offsets"]
        shape = tuple(info["shape"])
        count = int(np.prod(shape)) if shape else 1
        if not 0 <= b <= e <= len(data) or e - b != count * dt.itemsize:
            raise ValueError("safetensors: %s: offsets %r do not fit its shape" % (name, (b, e)))
        a = np.frombuffer(data[b:e], dtype=dt).reshape(shape)
        out[name] = a.astype(a.dtype.newbyteorder("="), copy=False)
    return out, meta
