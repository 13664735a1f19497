"""Writes the seed corpora of tests/fuzz (run again after the API or file format changes):

  /usr/bin/python3 tests/fuzz/make_seeds.py BUILD/src/server/easytorchd

fuzz_dispatch, fuzz_json and fuzz_binary seeds are written from the lists below; fuzz_load seeds are
model files made by a real easytorchd (tests/server/daemon.py starts it on loopback), with
one seed per mode byte (0 safetensors payload, 1 payload to wrap, 2 whole file).
"""
import gzip
import hashlib
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "server"))
import daemon as dm  # noqa: E402

AUTH = "Authorization: Bearer fuzz-token\n"
JSON = "Content-Type: application/json\n"
M = "/v1/models/m"

SPEC = {"name": "n", "layers": [{"type": "Linear", "in_features": 2, "out_features": 4},
                                {"type": "Tanh"}, {"type": "Dropout", "p": 0.1},
                                {"type": "Linear", "in_features": 4, "out_features": 1}],
        "loss": {"type": "HuberLoss", "delta": 0.5},
        "optimizer": {"type": "RMSprop", "lr": 0.01, "momentum": 0.5, "centered": True},
        "scheduler": {"type": "CosineAnnealingLR", "T_max": 10}, "seed": 3}


def req(method, path, body=None, headers=AUTH + JSON):
    s = "%s %s\n%s\n" % (method, path, headers)
    if body is not None:
        s += body if isinstance(body, str) else json.dumps(body)
    return s


DISPATCH = [
    req("GET", "/healthz", headers=""),
    req("GET", "/readyz", headers=""),
    req("GET", "/metrics"),
    req("GET", "/v1/models"),
    req("POST", "/v1/models", SPEC),
    req("POST", "/v1/models", {"name": "x", "layers": [{"type": "Linear", "in_features": 3,
                                                          "out_features": 2}, {"type": "LogSoftmax"}],
                               "loss": "NLLLoss", "optimizer": {"type": "Adagrad"}}),
    req("GET", M),
    req("DELETE", M),
    req("POST", M + "/predict", {"inputs": [[1, 2], [3, 4]]}),
    req("POST", M + "/predict", {"inputs": {"shape": [2, 2], "data": [1, 2, 3, 4]}}),
    req("POST", M + "/batches", {"inputs": [[1, 2]], "targets": [[0.5]]}) + "\n%%\n" +
    req("POST", M + "/step", ""),
    req("POST", M + "/train", {"inputs": [[1, 2], [3, 4], [5, 6]], "targets": [[1], [2], [3]],
                               "epochs": 2, "batch_size": 2, "shuffle": True}),
    req("POST", "/v1/models/c/train", {"inputs": [[1, 2, 3, 4]], "targets": [2]}),
    req("GET", M + "/gradients"),
    req("POST", M + "/gradients", {"inputs": [[1, 2]], "targets": [[0.5]]}),
    req("GET", M + "/parameters"),
    req("GET", M + "/parameters?format=safetensors"),
    req("PUT", M + "/parameters", {"parameters": {"0.weight": [[1, 2], [3, 4], [5, 6]],
                                                  "0.bias": [0, 0, 0], "2.weight": [[1, 1, 1]],
                                                  "2.bias": [0]}}),
    req("GET", M + "/loss?since=0"),
    req("POST", M + "/checkpoint"),
    req("GET", "/v2", headers=AUTH),
    req("GET", "/v2/health/live", headers=""),
    req("GET", "/v2/models/m", headers=AUTH),
    req("POST", "/v2/models/m/infer", {"id": "r1", "inputs": [{"name": "input", "shape": [1, 2],
                                                                "datatype": "FP32", "data": [1, 2]}]}),
    req("GET", "/", headers=""),
    req("GET", "/app.js", headers=""),
    req("POST", M + "/predict", '{"inputs": [[1, 2], [3]]}'),
    req("POST", M + "/predict", '{"inputs": [[1e999, 2]]}'),
    req("POST", M + "/predict", '{"inputs": [[1, 2]], "inputs": [[3, 4]]}'),
    req("POST", M + "/train", '{"inputs": [[1, 2]], "targets": [[1]]} trailing'),
    req("GET", M, headers="Authorization: Bearer wrong\n"),
    # versions (issue 18): freeze, list, serve, predict, rollback, fork, retention, delete
    req("POST", M + "/versions", {"label": "a", "serve": True}) + "\n%%\n" +
    req("GET", M + "/versions") + "\n%%\n" +
    req("POST", M + "/versions/1/predict", {"inputs": [[1, 2]]}) + "\n%%\n" +
    req("POST", M + "/predict", {"inputs": [[1, 2]]}) + "\n%%\n" +
    req("PATCH", M, {"serving": "live", "keep_versions": 1}) + "\n%%\n" +
    req("DELETE", M + "/versions/1"),
    req("POST", M + "/versions") + "\n%%\n" +
    req("POST", M + "/train", {"inputs": [[1, 2]], "targets": [[1]], "epochs": 2}) + "\n%%\n" +
    req("POST", M + "/rollback", {"version": 1}) + "\n%%\n" +
    req("POST", "/v1/models", {"name": "f", "from": {"model": "m", "version": 1}}) + "\n%%\n" +
    req("GET", "/v1/models/f/versions/1"),
    req("POST", "/v1/models", {"name": "f", "from": {"model": "m"}, "keep_versions": 2}),
    req("POST", M + "/versions", '{"label": 1, "serve": "x"}'),
    req("POST", M + "/rollback", '{"version": 0}'),
    req("GET", M + "/versions/01"),
    # the layers of issue 13: index inputs, buffers, rank-4 inputs, layer-named errors
    req("POST", "/v1/models/e/train", {"inputs": [[1, 2], [3, 5], [0, 0]], "targets": [0, 2, 1],
                                       "epochs": 2}),
    req("POST", "/v1/models/e/predict", {"inputs": [[5, 4]]}),
    req("POST", "/v1/models/e/predict", '{"inputs": [[16777217, 1]]}'),
    req("POST", "/v1/models/e/batches", '{"inputs": [[1.5, 2]], "targets": [0]}'),
    req("GET", "/v1/models/e/parameters"),
    req("PUT", "/v1/models/e/parameters", {"parameters": {
        "0.weight": [[0, 0]] * 6, "2.weight": [[0] * 4] * 3, "2.bias": [0] * 3,
        "3.weight": [1] * 3, "3.bias": [0] * 3, "3.running_mean": [0] * 3,
        "3.running_var": [1] * 3, "3.num_batches_tracked": 7}}),
    req("POST", "/v1/models/k/predict", {"inputs": {"shape": [1, 1, 4, 4], "data": [0.5] * 16}}),
    req("POST", "/v1/models/k/predict", {"inputs": [[[[1.0]]]]}),
    req("POST", "/v1/models/k/train", {"inputs": {"shape": [2, 1, 4, 4], "data": [0.1] * 32},
                                       "targets": [[0.0, 1.0], [1.0, 0.0]]}),
    req("POST", "/v1/models", {"name": "z", "layers": [
        {"type": "Conv1d", "in_channels": 2, "out_channels": 2, "kernel_size": [3],
         "padding": "same", "padding_mode": "reflect"}, {"type": "AvgPool1d", "kernel_size": 2},
        {"type": "LayerNorm", "normalized_shape": [2]}, {"type": "Flatten"},
        {"type": "Linear", "in_features": 4, "out_features": 1}],
        "loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 0.1}}),
    # evaluation, jobs, the validation series, the divergence guard's policy
    req("POST", M + "/evaluate", {"inputs": [[1, 2], [3, 4]], "targets": [[1], [2]]}),
    req("POST", "/v1/models/c/evaluate", {"inputs": [[1, 2, 3, 4], [0, 1, 0, 1]], "targets": [2, 0],
                                          "metrics": ["loss", "accuracy", "top_k_accuracy"],
                                          "k": 2}),
    req("POST", M + "/evaluate", {"inputs": [[1, 2]], "targets": [[1]], "metrics": ["r2", "mae"]}),
    req("POST", M + "/jobs", {"inputs": [[1, 2], [3, 4], [5, 6]], "targets": [[1], [2], [3]],
                              "epochs": 3, "batch_size": 2, "shuffle": True, "eval_every": 2,
                              "validation": {"inputs": [[1, 1]], "targets": [[1]],
                                             "metrics": ["loss", "mse"]}}) + "\n%%\n" +
    req("GET", M + "/jobs/1") + "\n%%\n" + req("GET", M + "/jobs") + "\n%%\n" +
    req("DELETE", M + "/jobs/1") + "\n%%\n" + req("POST", M + "/train",
                                                   {"inputs": [[1, 2]], "targets": [[1]]}),
    req("GET", M + "/loss?since=0&series=validation"),
    req("GET", M + "/loss?series=train"),
    req("POST", "/v1/models", dict(SPEC, name="g", nonfinite="rollback")) + "\n%%\n" +
    req("POST", "/v1/models/g/batches", {"inputs": [[3e38, 3e38]], "targets": [[1]]}) + "\n%%\n" +
    req("GET", "/v1/models/g"),
    # live hyperparameters, the lr series and the markers
    req("PATCH", M, {"optimizer": {"lr": 0.05, "momentum": 0.9, "centered": False},
                     "scheduler": {"type": "LinearLR", "start_factor": 0.5, "total_iters": 3},
                     "nonfinite": "allow"}) + "\n%%\n" +
    req("POST", M + "/train", {"inputs": [[1, 2]], "targets": [[1]], "epochs": 2}) + "\n%%\n" +
    req("PATCH", M, {"optimizer": {"param_groups": [{"lr": 0.01}]}, "scheduler": None}) +
    "\n%%\n" + req("GET", M + "/loss?series=lr,markers"),
    req("PATCH", M, {"optimizer": {"type": "Adam", "betas": [0.9, 2]}, "layers": []}),
    req("PATCH", M, {"serving": 1, "keep_versions": 2, "optimizer": {"param_groups": [{}]}}),
    # event streams (in-process: what is buffered now, then the end)
    req("POST", M + "/train", {"inputs": [[1, 2]], "targets": [[1]], "epochs": 2}) + "\n%%\n" +
    req("GET", "/v1/events?last_event_id=0&types=step,hyperparameters,version", None,
        AUTH + "Last-Event-ID: 1\n") + "\n%%\n" +
    req("GET", M + "/events?heartbeat=1", None, AUTH),
    req("GET", "/v1/events?access_token=fuzz-token&types=stp", None, ""),
    # coalesced streams ("events" records) and the time series
    req("POST", M + "/train", {"inputs": [[1, 2]], "targets": [[1]], "epochs": 3}) + "\n%%\n" +
    req("GET", "/v1/events?last_event_id=0&coalesce=0.25", None, AUTH) + "\n%%\n" +
    req("GET", M + "/events?coalesce=0&types=step", None, AUTH) + "\n%%\n" +
    req("GET", M + "/loss?series=time&since=1"),
    req("GET", M + "/events?coalesce=11", None, AUTH),
]

# ---- binary bodies (safetensors, OIP binary tensor extension): standard library only
_ST = {"F32": ("<f", 4), "I64": ("<q", 8), "F64": ("<d", 8), "I32": ("<i", 4), "F16": ("<e", 2)}


def safetensors(tensors, meta=None):
    """[(name, dtype, shape, flat values)] -> bytes"""
    header, blobs, off = {}, [], 0
    if meta is not None:
        header["__metadata__"] = meta
    for name, dt, shape, vals in tensors:
        fmt, size = _ST[dt]
        b = struct.pack("<%d%s" % (len(vals), fmt[1]), *vals)
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


_OIP = {"FP32": "f", "FP64": "d", "FP16": "e", "INT8": "b", "INT16": "h", "INT32": "i",
        "INT64": "q", "UINT8": "B", "UINT16": "H", "UINT32": "I", "UINT64": "Q", "BF16": "H"}


def oip_binary(inputs, outputs=None, parameters=None):
    """[(name, datatype, shape, flat values)] -> (json header length, body)"""
    req, blobs = {"inputs": []}, []
    for name, dt, shape, vals in inputs:
        b = struct.pack("<%d%s" % (len(vals), _OIP[dt]), *vals)
        req["inputs"].append({"name": name, "shape": shape, "datatype": dt,
                              "parameters": {"binary_data_size": len(b)}})
        blobs.append(b)
    if outputs is not None:
        req["outputs"] = outputs
    if parameters is not None:
        req["parameters"] = parameters
    js = json.dumps(req).encode()
    return len(js), js + b"".join(blobs)


def bin_req(method, path, body, headers):
    return ("%s %s\n%s\n" % (method, path, headers)).encode() + body


OCT = AUTH + "Content-Type: application/octet-stream\n"
X2 = [("inputs", "F32", [2, 2], [1, 2, 3, 4])]
BINARY_DISPATCH = [
    bin_req("POST", M + "/predict", safetensors(X2), OCT),
    bin_req("POST", M + "/predict", safetensors(X2), OCT + "Accept: application/octet-stream\n"),
    bin_req("POST", M + "/predict", safetensors(X2), AUTH),
    bin_req("POST", M + "/train", safetensors(X2 + [("targets", "F32", [2, 1], [1, 2])],
                                              {"epochs": "2", "batch_size": "1", "shuffle": "true"}), OCT),
    bin_req("POST", "/v1/models/c/batches", safetensors(
        [("inputs", "F32", [2, 4], [1, 2, 3, 4, 5, 6, 7, 8]), ("targets", "I64", [2], [0, 2])]), OCT),
    bin_req("POST", M + "/gradients", safetensors(X2 + [("targets", "F32", [2, 1], [1, 2])]),
            OCT + "Accept: application/octet-stream\n"),
    bin_req("GET", M + "/gradients", b"", AUTH + "Accept: application/octet-stream\n"),
    bin_req("POST", M + "/evaluate", safetensors(X2 + [("targets", "F32", [2, 1], [1, 2])],
                                                 {"metrics": '["loss", "mae"]'}), OCT),
    bin_req("POST", M + "/jobs", safetensors(
        X2 + [("targets", "F32", [2, 1], [1, 2]), ("validation.inputs", "F32", [1, 2], [0, 1]),
              ("validation.targets", "F32", [1, 1], [3])],
        {"epochs": "2", "eval_every": "1", "validation": '{"metrics": ["loss"]}'}), OCT),
    bin_req("POST", M + "/predict", gzip.compress(json.dumps({"inputs": [[1, 2]]}).encode()),
            AUTH + "Content-Encoding: gzip\nAccept-Encoding: gzip\n"),
    bin_req("POST", M + "/predict", gzip.compress(safetensors(X2)),
            OCT + "Content-Encoding: gzip\n"),
    bin_req("POST", M + "/predict", b'{"inputs": [[1, 2]]}', AUTH + "Content-Type: text/csv\n"),
    bin_req("OPTIONS", M + "/predict", b"", "Origin: http://fuzz.example\n"
            "Access-Control-Request-Method: POST\nAccess-Control-Request-Headers: authorization\n"),
    bin_req("GET", "/v1/models", b"", AUTH + "Origin: http://fuzz.example\n"),
    bin_req("GET", "/v1/types", b"", AUTH),
    bin_req("GET", "/openapi.json", b"", "Accept-Encoding: gzip\n"),
    bin_req("GET", "/docs", b"", ""),
    bin_req("GET", "/v2/models/m/versions/1", b"", AUTH),
    bin_req("GET", "/v2/models/m/versions/1/ready", b"", AUTH),
    bin_req("POST", "/v2/repository/index", b'{"ready": true}', AUTH),
]
_hl, _b = oip_binary([("input", "FP32", [1, 2], [1.5, -2])], parameters={"binary_data_output": True})
BINARY_DISPATCH.append(bin_req("POST", "/v2/models/m/versions/1/infer", _b,
                               AUTH + "Inference-Header-Content-Length: %d\n" % _hl))
_hl, _b = oip_binary([("input", "INT64", [2, 2], [1, 2, 3, 4])],
                     outputs=[{"name": "output", "parameters": {"binary_data": True}}])
BINARY_DISPATCH.append(bin_req("POST", "/v2/models/m/infer", _b,
                               AUTH + "Inference-Header-Content-Length: %d\n" % _hl))

BINARY = [b"\x00" + safetensors(X2), b"\x00" + safetensors(X2 + [("targets", "I64", [2], [0, 1])], {"epochs": "3", "x": "not json"}),
          b"\x00" + safetensors([("inputs", "F64", [1], [1.0])]), b"\x00" + safetensors([], {"a": "1"})]
for ins in ([("input", "FP32", [1, 2], [1, 2])], [("input", "FP16", [2], [0.5, -1])],
            [("input", "BF16", [1, 2], [0x3f80, 0x4000])], [("input", "UINT64", [2], [1, 2 ** 63])],
            [("input", "INT8", [3], [-128, 0, 127]), ("other", "FP64", [1], [1e300])]):
    hl, b = oip_binary(ins, outputs=[{"name": "output"}])
    BINARY.append(b"\x01" + struct.pack("<H", hl) + b)
for body in ({"id": "a", "inputs": [{"name": "input", "shape": [1, 2], "datatype": "INT32", "data": [[1, 2]]}]},
             {"inputs": [{"name": "input", "shape": [2], "datatype": "FP64", "data": [1e300, 1.5]}],
              "parameters": {"binary_data_output": True}},
             {"inputs": [{"name": "input", "shape": [1], "datatype": "UINT8", "data": [256]}],
              "outputs": [{"name": "output", "parameters": {"binary_data": False}}]}):
    BINARY.append(b"\x02" + json.dumps(body).encode())

TENSORS = ["[[1,2],[3,4]]", "[1.5,-2e-3,0]", "3.25", "[]", "[[],[]]", "[[[1],[2]],[[3],[4]]]",
           '{"shape":[2,2],"data":[1,2,3,4]}', '{"shape":[],"data":[7]}', '{"shape":[0,3],"data":[]}',
           "[[1,2],[3]]", "[1,[2]]", "[1e39]", '[-0.0, 1e-46, 3.4028235e38]', "[true]", '["1"]',
           "[[1,2] , [3,4] ]", '{"data":[1],"shape":[1]}']
SPECS = [SPEC,
         {"layers": [{"type": "Flatten"}, {"type": "Linear", "in_features": 4, "out_features": 3,
                                           "bias": False}, {"type": "Softmax", "dim": 1}],
          "loss": {"type": "CrossEntropyLoss", "label_smoothing": 0.1, "reduction": "sum"},
          "optimizer": {"type": "AdamW", "lr": 0.001, "betas": [0.8, 0.9], "amsgrad": True},
          "scheduler": {"type": "MultiStepLR", "milestones": [2, 5], "gamma": 0.3}},
         {"layers": [{"type": "Linear", "in_features": 1, "out_features": 1}, {"type": "GELU"},
                     {"type": "LeakyReLU", "negative_slope": 0.2}, {"type": "Sigmoid"}],
          "loss": "BCELoss", "optimizer": {"type": "SGD", "lr": 0.1, "nesterov": True,
                                           "momentum": 0.9},
          "scheduler": {"type": "LinearLR", "start_factor": 0.5, "total_iters": 4}},
         {"layers": [{"type": "Identity"}], "loss": "L1Loss",
          "optimizer": {"type": "Adam"}, "scheduler": {"type": "ExponentialLR", "gamma": 0.9}},
         {"layers": [{"type": "Conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": [3, 2],
                      "stride": [1, 2], "padding": [1, 0], "dilation": 1, "groups": 1, "bias": False,
                      "padding_mode": "replicate"},
                     {"type": "BatchNorm2d", "num_features": 2, "momentum": None, "affine": False},
                     {"type": "ReLU"}, {"type": "MaxPool2d", "kernel_size": 2, "stride": None,
                                        "ceil_mode": True},
                     {"type": "AdaptiveAvgPool2d", "output_size": [1, None]},
                     {"type": "Dropout2d", "p": 0.2}, {"type": "ZeroPad2d", "padding": [1, 0, 0, 1]},
                     {"type": "Flatten"}, {"type": "Unflatten", "dim": 1, "unflattened_size": [2, -1]},
                     {"type": "Flatten"}, {"type": "Linear", "in_features": 4, "out_features": 2},
                     {"type": "GroupNorm", "num_groups": 1, "num_channels": 2}],
          "loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 0.1}},
         {"layers": [{"type": "Embedding", "num_embeddings": 5, "embedding_dim": 4},
                     {"type": "TransformerEncoder", "num_layers": 2, "mask": "causal",
                      "norm": {"type": "LayerNorm", "normalized_shape": 4},
                      "encoder_layer": {"type": "TransformerEncoderLayer", "d_model": 4, "nhead": 2,
                                        "dim_feedforward": 8, "activation": "gelu",
                                        "batch_first": True, "norm_first": True}},
                     {"type": "MultiheadAttention", "embed_dim": 4, "num_heads": 1, "batch_first": True,
                      "add_bias_kv": True, "add_zero_attn": True,
                      "attn_mask": [[False, True], [False, False]]},
                     {"type": "TransformerEncoderLayer", "d_model": 4, "nhead": 4,
                      "src_mask": [[0.0, -1.5], [0.0, 0.0]]},
                     {"type": "Flatten"}, {"type": "Linear", "in_features": 8, "out_features": 5}],
          "loss": "CrossEntropyLoss", "optimizer": {"type": "SGD", "lr": 0.1}},
         {"layers": [{"type": "EmbeddingBag", "num_embeddings": 9, "embedding_dim": 3, "mode": "sum",
                      "padding_idx": -1, "max_norm": 1.5, "norm_type": 1.0},
                     {"type": "LayerNorm", "normalized_shape": 3, "eps": 1e-3},
                     {"type": "Linear", "in_features": 3, "out_features": 2}],
          "loss": "CrossEntropyLoss", "optimizer": {"type": "Adam"}},
         {"layers": [{"type": "Embedding", "num_embeddings": 5, "embedding_dim": 2, "padding_idx": 0,
                      "scale_grad_by_freq": True}, {"type": "Flatten"},
                     {"type": "Linear", "in_features": 6, "out_features": 4},
                     {"type": "BatchNorm1d", "num_features": 4}, {"type": "Tanh"},
                     {"type": "Linear", "in_features": 4, "out_features": 5}],
          "loss": "CrossEntropyLoss", "optimizer": {"type": "SGD", "lr": 0.1}},
         {"layers": [{"type": "ConvTranspose2d", "in_channels": 1, "out_channels": 1, "kernel_size": 2,
                      "stride": 2, "output_padding": 1}, {"type": "ReflectionPad2d", "padding": 1},
                     {"type": "ConstantPad1d", "padding": [0, 1], "value": 2.5},
                     {"type": "AvgPool2d", "kernel_size": 2, "divisor_override": 3},
                     {"type": "AdaptiveMaxPool1d", "output_size": 2}, {"type": "Flatten"},
                     {"type": "Linear", "in_features": 2, "out_features": 1}],
          "loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 0.1}},
         dict(SPEC, nonfinite="allow")]
TENSORS += ["[[1,2,3],[4,5,6]]", "[16777217, 9007199254740992]", "[[2.5]]", "[-0, 1e3]",
            '{"shape":[1,1,2,2],"data":[1,2,3,4]}']


def write(dirname, items):
    """Seeds named by their SHA-1 (already present ones are left alone)."""
    d = os.path.join(HERE, "corpus", dirname)
    os.makedirs(d, exist_ok=True)
    for it in items:
        b = it if isinstance(it, bytes) else it.encode()
        with open(os.path.join(d, hashlib.sha1(b).hexdigest()[:16]), "wb") as f:
            f.write(b)


def model_files(path):
    dm.DAEMON_PATH = os.path.abspath(path)
    d = dm.Daemon(sync="always").start()
    out = []
    try:
        specs = [dict(SPEC, name="m"),
                 {"name": "m", "layers": [{"type": "Linear", "in_features": 3, "out_features": 2}],
                  "loss": "CrossEntropyLoss", "optimizer": {"type": "Adam", "amsgrad": True},
                  "scheduler": {"type": "StepLR", "step_size": 1}, "seed": 1},
                 {"name": "m", "layers": [{"type": "Linear", "in_features": 1, "out_features": 1}],
                  "loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 0.1}, "seed": 2},
                 {"name": "m", "layers": [{"type": "Linear", "in_features": 2, "out_features": 3},
                                          {"type": "BatchNorm1d", "num_features": 3}],
                  "loss": "MSELoss", "optimizer": {"type": "SGD", "lr": 0.1}, "seed": 4}]
        for i, s in enumerate(specs):
            d.create(s)
            nin = s["layers"][0]["in_features"]
            nout = s["layers"][-1].get("out_features", s["layers"][-1].get("num_features"))
            rows = 2   # BatchNorm needs more than one value per channel
            tgt = [1] * rows if s["loss"] == "CrossEntropyLoss" else [[0.5] * nout] * rows
            for _ in range(i + 1):
                d.ok("POST", "/v1/models/m/train",
                     {"inputs": [[0.1 * (r + 1)] * nin for r in range(rows)], "targets": tgt})
            if i == 1:
                d.push("m", [[0.2] * nin, [0.3] * nin], tgt)  # pending gradients in the file
            if i == 2:  # job records, a validation history, a guard event in the file
                d.ok("POST", "/v1/models/m/jobs", {"inputs": [[0.1]], "targets": [[0.5]],
                                                   "epochs": 3, "eval_every": 1,
                                                   "validation": {"inputs": [[0.2]],
                                                                  "targets": [[0.4]]}},
                     expect=(202,))
                while d.ok("GET", "/v1/models/m/jobs/1")["state"] != "done":
                    pass
                d.push("m", [[3e38]], [[0.0]])
            d.ok("POST", "/v1/models/m/checkpoint")
            with open(os.path.join(d.data_dir, "m.etm"), "rb") as f:
                out.append(f.read())
            d.ok("DELETE", "/v1/models/m", expect=(200, 204))
    finally:
        d.cleanup()
    return out


def main():
    write("fuzz_dispatch", DISPATCH + BINARY_DISPATCH)
    write("fuzz_binary", BINARY)
    write("fuzz_json", TENSORS + [json.dumps(s) for s in SPECS])
    if len(sys.argv) > 1:
        load = []
        for f in model_files(sys.argv[1]):
            load += [b"\x00" + f[32:], b"\x01" + f[32:], b"\x02" + f]
        write("fuzz_load", load)
    print("seeds written under", os.path.join(HERE, "corpus"))


if __name__ == "__main__":
    main()
