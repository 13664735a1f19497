#!/usr/bin/python3
"""The anchor of the HTTP rows: FastAPI + uvicorn + PyTorch serving the same
endpoints and JSON shapes as easytorchd (docs: /work/shared/api-contract.md).

Implements the part of the contract the benchmark uses: POST/GET/DELETE
/v1/models[/{name}], POST /v1/models/{name}/predict, POST
/v1/models/{name}/train, GET /healthz and /readyz.  Models live in memory.

Binary tensors, as a NumPy user would send them: with `Content-Type:
application/x-npy` the body of predict is the inputs as a .npy file and that
of train the inputs' .npy followed by the targets' (np.load reads them in
turn, torch.from_numpy shares the memory); `Accept: application/x-npy` gets
predict's outputs back as .npy (np.save of the tensor's numpy view).

It is written to be a strong anchor, as a careful engineer would write it:
`async def` handlers (no thread-pool hop), the body parsed with json.loads
instead of per-field pydantic validation, torch.no_grad() + eval() for
predict, no access log.  uvicorn runs one worker (training mutates in-process
state, so a model cannot be spread over worker processes) with its "auto"
choice of event loop and HTTP parser; the choice is printed at start.

uvicorn owns the listening socket, as in a plain `uvicorn.run(app, host,
port)`.  (Until 2026-12 this script bound a socket itself and handed it to
uvicorn: made as socket(AF_INET, SOCK_STREAM) its proto field is 0, so
asyncio's transports skipped TCP_NODELAY on the accepted connections and
every response waited ~40 ms for Nagle's algorithm and the client's delayed
ACK: 23 req/s on one keep-alive connection instead of ~4,000.)

Usage: fastapi_server.py [--listen 127.0.0.1:0] [--threads N] [--reference]
Prints "listening on HOST:PORT" on stderr once the socket is bound.
--reference runs the app with exactly `uvicorn.run(app, host=..., port=...)`
(the port must then be given): scripts/bench's plain reference, against which
it checks this anchor's single-connection latency before timing it.
"""
import argparse
import importlib.util
import io
import json
import sys

import numpy as np

import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

app = FastAPI()
MODELS = {}

LAYERS = {
    "Linear": lambda a: torch.nn.Linear(int(a["in_features"]), int(a["out_features"]),
                                        bool(a.get("bias", True))),
    "ReLU": lambda a: torch.nn.ReLU(),
    "Tanh": lambda a: torch.nn.Tanh(),
    "Sigmoid": lambda a: torch.nn.Sigmoid(),
    "Softmax": lambda a: torch.nn.Softmax(dim=int(a.get("dim", -1))),
    "LogSoftmax": lambda a: torch.nn.LogSoftmax(dim=int(a.get("dim", -1))),
    "LeakyReLU": lambda a: torch.nn.LeakyReLU(float(a.get("negative_slope", 0.01))),
    "Dropout": lambda a: torch.nn.Dropout(float(a.get("p", 0.5))),
    "Flatten": lambda a: torch.nn.Flatten(),
    "Identity": lambda a: torch.nn.Identity(),
}
LOSSES = {
    "MSELoss": torch.nn.MSELoss, "L1Loss": torch.nn.L1Loss,
    "CrossEntropyLoss": torch.nn.CrossEntropyLoss, "NLLLoss": torch.nn.NLLLoss,
    "BCEWithLogitsLoss": torch.nn.BCEWithLogitsLoss, "HuberLoss": torch.nn.HuberLoss,
    "SmoothL1Loss": torch.nn.SmoothL1Loss,
}
OPTIMIZERS = {
    "SGD": torch.optim.SGD, "Adam": torch.optim.Adam, "AdamW": torch.optim.AdamW,
    "Adagrad": torch.optim.Adagrad, "RMSprop": torch.optim.RMSprop,
}


class BadRequest(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def error(status, message):
    return JSONResponse({"error": message}, status_code=status)


def tensor_of(value, field):
    """A contract tensor: nested lists, or {"shape": [..], "data": [..]}."""
    try:
        if isinstance(value, dict):
            return torch.tensor(value["data"], dtype=torch.float32).reshape(value["shape"])
        return torch.tensor(value, dtype=torch.float32)
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise BadRequest(400, f"{field}: not a tensor ({e})")


NPY = "application/x-npy"


def is_npy(request):
    return request.headers.get("content-type", "").split(";")[0].strip() == NPY


async def npy_tensors(request, n):
    """The first n arrays of a body of concatenated .npy files, as tensors."""
    f = io.BytesIO(await request.body())
    try:
        return [torch.from_numpy(np.load(f, allow_pickle=False)) for _ in range(n)]
    except (ValueError, OSError, EOFError) as e:
        raise BadRequest(400, f"body: not {n} .npy array(s) ({e})")


async def body_of(request):
    try:
        body = json.loads(await request.body())
    except ValueError as e:
        raise BadRequest(400, f"body: invalid JSON ({e})")
    if not isinstance(body, dict):
        raise BadRequest(400, "body: expected a JSON object")
    return body


def model_of(name):
    m = MODELS.get(name)
    if m is None:
        raise BadRequest(404, f"model '{name}' not found")
    return m


def describe(m):
    return {"name": m["name"], "spec": m["spec"],
            "parameters": sum(p.numel() for p in m["net"].parameters()),
            "step": m["step"], "pending_batches": 0, "loss": m["loss"]}


@app.exception_handler(BadRequest)
async def bad_request(request, exc):
    return error(exc.status, str(exc))


@app.get("/healthz")
async def healthz():
    return {"status": "ok"}


@app.get("/readyz")
async def readyz():
    return {"status": "ready"}


@app.post("/v1/models", status_code=201)
async def create_model(request: Request):
    spec = await body_of(request)
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise BadRequest(400, "name: required")
    if name in MODELS:
        raise BadRequest(409, f"model '{name}' exists")
    try:
        torch.manual_seed(int(spec.get("seed", 0)))
        net = torch.nn.Sequential(*[LAYERS[l["type"]](l) for l in spec["layers"]])
        loss = spec.get("loss", "MSELoss")
        loss = {"type": loss} if isinstance(loss, str) else dict(loss)
        loss_fn = LOSSES[loss.pop("type")](**loss)
        opt = dict(spec.get("optimizer", {"type": "SGD", "lr": 1e-3}))
        if "betas" in opt:
            opt["betas"] = tuple(opt["betas"])
        optim = OPTIMIZERS[opt.pop("type")](net.parameters(), **opt)
    except (KeyError, TypeError, ValueError) as e:
        raise BadRequest(400, f"spec: {e}")
    MODELS[name] = {"name": name, "spec": spec, "net": net, "loss_fn": loss_fn,
                    "optim": optim, "step": 0, "loss": None}
    return JSONResponse(describe(MODELS[name]), status_code=201)


@app.get("/v1/models")
async def list_models():
    return {"models": [{"name": m["name"], "step": m["step"], "loss": m["loss"]}
                       for m in MODELS.values()]}


@app.get("/v1/models/{name}")
async def get_model(name: str):
    return describe(model_of(name))


@app.delete("/v1/models/{name}")
async def delete_model(name: str):
    model_of(name)
    del MODELS[name]
    return Response(status_code=204)


@app.post("/v1/models/{name}/predict")
async def predict(name: str, request: Request):
    m = model_of(name)
    if is_npy(request):
        (x,) = await npy_tensors(request, 1)
    else:
        body = await body_of(request)
        if "inputs" not in body:
            raise BadRequest(400, "inputs: required")
        x = tensor_of(body["inputs"], "inputs")
    net = m["net"]
    net.eval()
    try:
        with torch.no_grad():
            y = net(x)
    except RuntimeError as e:
        raise BadRequest(400, f"inputs: {e}")
    if NPY in request.headers.get("accept", ""):
        buf = io.BytesIO()
        np.save(buf, y.numpy())
        return Response(buf.getvalue(), media_type=NPY)
    return JSONResponse({"outputs": y.tolist()})


@app.post("/v1/models/{name}/train")
async def train(name: str, request: Request):
    m = model_of(name)
    if is_npy(request):
        x, t = await npy_tensors(request, 2)
        body = {}
    else:
        body = await body_of(request)
        x = tensor_of(body.get("inputs"), "inputs")
        t = tensor_of(body.get("targets"), "targets")
    if isinstance(m["loss_fn"], (torch.nn.CrossEntropyLoss, torch.nn.NLLLoss)):
        t = t.long()
    epochs = int(body.get("epochs", 1))
    bs = int(body.get("batch_size", x.shape[0]))
    if epochs < 1 or bs < 1 or x.shape[0] != t.shape[0]:
        raise BadRequest(400, "epochs/batch_size/targets: invalid")
    net, optim, loss_fn = m["net"], m["optim"], m["loss_fn"]
    net.train()
    losses = []
    for _ in range(epochs):
        order = torch.randperm(x.shape[0]) if body.get("shuffle") else None
        for i in range(0, x.shape[0], bs):
            idx = order[i:i + bs] if order is not None else slice(i, i + bs)
            optim.zero_grad()
            try:
                loss = loss_fn(net(x[idx]), t[idx])
            except RuntimeError as e:
                raise BadRequest(400, f"inputs/targets: {e}")
            loss.backward()
            optim.step()
            m["step"] += 1
            losses.append(loss.item())
    m["loss"] = losses[-1]
    return {"step": m["step"], "loss": m["loss"], "losses": losses}


class _Server(uvicorn.Server):
    """uvicorn's own server, binding the socket itself (port 0 allowed), and
    telling scripts/bench which port the kernel chose."""

    async def startup(self, sockets=None):
        await super().startup(sockets)
        if self.servers and self.servers[0].sockets:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            print(f"listening on {host}:{port}", file=sys.stderr, flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--reference", action="store_true",
                    help="plain uvicorn.run(app, host, port), the sanity reference")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    host, port = args.listen.rsplit(":", 1)
    if args.reference:
        if int(port) == 0:
            ap.error("--reference needs an explicit port")
        print(f"fastapi_server: reference (plain uvicorn.run) torch={torch.__version__} "
              f"threads={torch.get_num_threads()}", file=sys.stderr, flush=True)
        print(f"listening on {host}:{port}", file=sys.stderr, flush=True)
        uvicorn.run(app, host=host, port=int(port), log_level="warning", access_log=False)
        return
    config = uvicorn.Config(app, host=host, port=int(port), log_level="warning",
                            access_log=False, backlog=1024)
    config.load()
    print(f"fastapi_server: uvicorn {uvicorn.__version__} http={config.http_protocol_class.__name__} "
          f"loop={'uvloop' if importlib.util.find_spec('uvloop') else 'asyncio'} "
          f"torch={torch.__version__} threads={torch.get_num_threads()}",
          file=sys.stderr, flush=True)
    _Server(config).run()


if __name__ == "__main__":
    main()
