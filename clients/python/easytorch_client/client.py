"""HTTP client for easytorchd (see /work/shared/api-contract.md, docs/API.md).

Standard library only. When NumPy is importable, tensors travel as safetensors
(``application/octet-stream``: float32 as F32, integer arrays as I64 indices)
and come back as ``numpy.ndarray``; without NumPy (or with ``binary=False``)
they go as JSON and come back as nested lists (or ndarrays when NumPy is there).
"""

import collections
import http.client
import json
import os
import socket
import time
import urllib.parse

try:  # NumPy is optional: used when present.
    import numpy as _np
except ImportError:  # pragma: no cover - exercised by Client(numpy=False)
    _np = None

from . import _types
from . import _fit, _jobs

if _np is not None:
    from . import _safetensors
else:  # pragma: no cover
    _safetensors = None

OCTET = "application/octet-stream"
ONNX = "application/onnx"

DEFAULT_URL = "http://127.0.0.1:8080"


class EasytorchError(Exception):
    """An error answered by the daemon (``status`` is the HTTP status and
    ``message`` the body's ``"error"``), or ``status`` None when the daemon
    could not be reached or answered something that is not the contract."""

    def __init__(self, status, message, method=None, path=None):
        self.status = status
        self.message = message
        self.method = method
        self.path = path
        where = "%s %s: " % (method, path) if method else ""
        code = "%s " % status if status is not None else ""
        super().__init__("%s%s%s" % (where, code, message))


from ._tensors import (_is_ndarray, encode_tensor, _as_array, _int_or_float,  # noqa: F401
                       _unflatten, _row_count, _take_rows, _slice_rows, wire_arrays,
                       named_outputs, _concat_rows)


class Client:
    """A connection to one easytorchd.

    ``url`` defaults to ``$EASYTORCH_URL`` or http://127.0.0.1:8080 and
    ``token`` to ``$EASYTORCH_TOKEN`` (sent as ``Authorization: Bearer``).
    ``numpy``: True/False forces ndarray/list results; None uses NumPy when
    it is installed. ``binary``: tensors as safetensors (the default when NumPy
    is used) or as JSON (False). A Client keeps one HTTP connection alive and
    is not thread-safe: use one per thread.
    """

    def __init__(self, url=None, token=None, timeout=600.0, numpy=None, binary=None):
        url = url or os.environ.get("EASYTORCH_URL") or DEFAULT_URL
        if "://" not in url:
            url = "http://" + url
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError("url: scheme must be http or https, not %r" % parts.scheme)
        self.url = url.rstrip("/")
        self._scheme = parts.scheme
        self._netloc = parts.netloc
        self._prefix = parts.path.rstrip("/")
        if token is None:
            token = os.environ.get("EASYTORCH_TOKEN") or None
        self.token = token
        self.timeout = timeout
        if numpy and _np is None:
            raise ValueError("numpy=True but NumPy is not installed")
        self.use_numpy = (_np is not None) if numpy is None else bool(numpy)
        if binary and not self.use_numpy:
            raise ValueError("binary=True needs NumPy (numpy=True)")
        self.binary = self.use_numpy if binary is None else bool(binary)
        self._conn = None
        self._types = _types.TypeCache()

    def __repr__(self):
        return "Client(%r)" % self.url

    # -- transport -------------------------------------------------------
    def _connect(self):
        cls = http.client.HTTPSConnection if self._scheme == "https" else http.client.HTTPConnection
        return cls(self._netloc, timeout=self.timeout)

    def close(self):
        """Close the kept-alive connection (a later request reopens one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, method, path, body=None, data=None, content_type=None, raw=False,
                accept="application/json"):
        """Send one request and return the decoded JSON answer (or the bytes
        when ``raw``). ``body`` is sent as JSON, ``data`` as bytes. Raises
        EasytorchError on any non-2xx answer."""
        ctype, payload = self.exchange(method, path, body, data, content_type, accept)
        if raw:
            return payload
        if not payload:
            return {}
        try:
            return json.loads(payload.decode("utf-8"))
        except ValueError:
            raise EasytorchError(None, "answer is not JSON (content-type %s)" % ctype, method, path)

    def exchange(self, method, path, body=None, data=None, content_type=None,
                 accept="application/json"):
        """One request; returns (Content-Type, body bytes) of a 2xx answer, raises
        EasytorchError otherwise."""
        headers = {"Accept": accept}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        if body is not None:
            try:
                data = json.dumps(body, allow_nan=False, separators=(",", ":")).encode("utf-8")
            except ValueError as e:  # NaN/inf are not JSON and the daemon rejects them
                raise ValueError("%s %s: %s (NaN and infinity cannot be sent)" % (method, path, e))
            content_type = "application/json"
        if data is not None:
            headers["Content-Type"] = content_type or "application/octet-stream"
        full = self._prefix + path
        status, ctype, payload = self._send(method, full, data, headers)
        if not 200 <= status < 300:
            message = None
            try:
                message = json.loads(payload.decode("utf-8")).get("error")
            except Exception:
                pass
            if not message:
                message = payload.decode("utf-8", "replace").strip() or http.client.responses.get(status, "error")
            raise EasytorchError(status, message, method, path)
        return ctype, payload

    # -- tensors over the wire ---------------------------------------------
    def tensor_call(self, method, path, tensors, fields=None, answer_tensors=True):
        """Send named tensors (+ other fields) and return (json answer or None,
        {name: ndarray} or None, metadata). Binary (safetensors both ways) when
        self.binary, else JSON."""
        if not self.binary:
            body = dict(fields or {})
            for k, v in tensors.items():
                body[k] = encode_tensor(v)
            return self.request(method, path, body), None, {}
        data = None
        if tensors or fields:
            arrays = wire_arrays(tensors)
            meta = {k: json.dumps(v) for k, v in (fields or {}).items()}
            data = _safetensors.encode(arrays, meta)
        accept = (OCTET + ", application/json;q=0.5") if answer_tensors else "application/json"
        ctype, payload = self.exchange(method, path, data=data,
                                       content_type=OCTET if data is not None else None,
                                       accept=accept)
        if ctype.split(";")[0].strip() == OCTET:
            t, meta = _safetensors.decode(payload)
            return None, {k: v.copy() for k, v in t.items()}, meta
        return (json.loads(payload.decode("utf-8")) if payload else {}), None, {}

    def get_tensors(self, path):
        """GET tensors by name: ({name: tensor} in order, metadata)."""
        if not self.binary:
            return None, None
        ctype, payload = self.exchange("GET", path, accept=OCTET + ", application/json;q=0.5")
        if ctype.split(";")[0].strip() != OCTET:
            return json.loads(payload.decode("utf-8")), None
        t, meta = _safetensors.decode(payload)
        return meta, collections.OrderedDict((k, v.copy()) for k, v in t.items())

    def _send(self, method, path, data, headers):
        for attempt in (0, 1):
            fresh = self._conn is None
            if fresh:
                self._conn = self._connect()
            try:
                try:
                    self._conn.request(method, path, body=data, headers=headers)
                except (BrokenPipeError, ConnectionResetError):
                    # The daemon may answer before reading the whole body (413
                    # for a body over its limit) and close: read that answer.
                    if data is None or len(data) < 65536:
                        raise
                resp = self._conn.getresponse()
                payload = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.close()
                return resp.status, resp.getheader("Content-Type", ""), payload
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.BadStatusLine) as e:
                # A kept-alive connection the daemon closed while idle: retry
                # once on a new one. A fresh connection failing is real.
                self.close()
                if fresh or attempt:
                    raise EasytorchError(None, "connection to %s failed: %s" % (self.url, e), method, path)
            except (OSError, socket.timeout) as e:
                self.close()
                raise EasytorchError(None, "cannot reach %s: %s" % (self.url, e), method, path)

    # -- tensors -----------------------------------------------------------
    def _tensor(self, value):
        """A tensor from the daemon as ndarray (float32, or int64 for integer tensors such
        as BatchNorm's num_batches_tracked) or nested lists."""
        if isinstance(value, dict) and "data" in value and "shape" in value:
            if self.use_numpy:
                return _np.asarray(value["data"], dtype=_int_or_float(value["data"])).reshape(
                    value["shape"])
            return _unflatten(value["data"], value["shape"])
        if self.use_numpy:
            return _np.asarray(value, dtype=_int_or_float(value))
        return value

    def _tensors(self, mapping):
        out = collections.OrderedDict()
        for k, v in mapping.items():
            out[k] = self._tensor(v)
        return out

    # -- daemon ------------------------------------------------------------
    def types(self):
        """GET /v1/types: {"layers"|"losses"|"optimizers"|"schedulers": {type: (fields, ...)}},
        every type the daemon takes with its fields in constructor order (fetched once)."""
        return self._types.get(self)

    def health(self):
        """GET /healthz: the daemon's status dict (raises if it is down)."""
        return self.request("GET", "/healthz")

    def ready(self):
        """True once the daemon has loaded its persisted models."""
        try:
            self.request("GET", "/readyz")
            return True
        except EasytorchError as e:
            if e.status == 503:
                return False
            raise

    def wait_ready(self, timeout=30.0):
        """Poll /readyz until it answers 200; raises EasytorchError after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.ready():
                    return
            except EasytorchError as e:
                if e.status is not None or time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise EasytorchError(503, "daemon not ready after %gs" % timeout)
            time.sleep(0.05)

    # -- models ------------------------------------------------------------
    def create(self, name, layers, loss, optimizer, scheduler=None, seed=None):
        """Define a model on the daemon (POST /v1/models) and return it.

        ``layers``: a list of dicts such as ``{"type": "Linear", "in_features": 1,
        "out_features": 16}`` (see easytorch_client.nn for helpers; a bare
        string like ``"ReLU"`` means a layer without arguments). ``loss``,
        ``optimizer`` and ``scheduler`` are dicts or bare type names
        (easytorch_client.optim has helpers). Raises EasytorchError 409 if the
        name is taken, 400 if the spec is bad."""
        spec = {
            "name": name,
            "layers": [_as_spec(l, self) for l in layers],
            "loss": _as_spec(loss, self),
            "optimizer": _as_spec(optimizer, self),
        }
        if scheduler is not None:
            spec["scheduler"] = _as_spec(scheduler, self)
        if seed is not None:
            spec["seed"] = seed
        self.request("POST", "/v1/models", spec)
        return Model(self, name)

    def create_graph(self, name, inputs, nodes, outputs, loss, optimizer, modules=None,
                     scheduler=None, seed=None, **extra):
        """Define a graph model (POST /v1/models with "inputs", "nodes", "outputs"; docs/API.md)
        and return it: a torch.fx-like graph with named ``inputs`` and ``outputs`` (lists of
        names). ``nodes``: dicts ``{"name", "module" | "op", "args", ...}``, a node's
        ``"module"`` a layer (a dict, an nn helper such as ``nn.Linear(8, 1)``) or the name of
        one of ``modules`` ({name: layer}, shared by the nodes naming it). ``loss``: one loss,
        or for several outputs a list of losses each naming its ``"output"`` and ``"target"``
        (and an optional ``"weight"``). Other spec fields (``batching``, ``keep_versions``...)
        go through ``extra``. predict/train/push/evaluate then take ``{input name: rows}``."""
        def node(n):
            n = dict(n)
            if "module" in n and not isinstance(n["module"], str):
                n["module"] = _as_spec(n["module"], self)
            return n
        spec = {"name": name, "inputs": list(inputs), "nodes": [node(n) for n in nodes],
                "outputs": list(outputs),
                "loss": ([_as_spec(l, self) for l in loss] if isinstance(loss, (list, tuple))
                         else _as_spec(loss, self)),
                "optimizer": _as_spec(optimizer, self)}
        if modules:
            spec["modules"] = {k: _as_spec(v, self) for k, v in modules.items()}
        if scheduler is not None:
            spec["scheduler"] = _as_spec(scheduler, self)
        if seed is not None:
            spec["seed"] = seed
        spec.update(extra)
        self.request("POST", "/v1/models", spec)
        return Model(self, name)

    def events(self, types=None, last_event_id=None, reconnect=True, heartbeat=15, retry_for=30.0):
        """Every model's events (GET /v1/events) as Event(id, type, data) tuples, live for as
        long as the caller iterates (a generator: close() or break ends it). ``types``: the
        names to keep ("step", "job", ...); ``last_event_id``: resume after it (0: all the
        daemon buffers). With ``reconnect`` a stream that ends (dropped, daemon restart) is
        reopened with Last-Event-ID, so no buffered event is missed or seen twice."""
        return _jobs.iter_events(self, "/v1/events", types=types, last_event_id=last_event_id,
                                 reconnect=reconnect, heartbeat=heartbeat, retry_for=retry_for)

    def model(self, name):
        """The existing model ``name`` (raises EasytorchError 404 if there is none)."""
        m = Model(self, name)
        m.info()
        return m

    def models(self):
        """All models the daemon hosts, as Model handles (GET /v1/models)."""
        return [Model(self, m["name"]) for m in self.request("GET", "/v1/models")["models"]]

    def list_models(self):
        """GET /v1/models as the daemon answers it: a list of {"name", "step", "loss"}."""
        return self.request("GET", "/v1/models")["models"]

    def delete(self, name):
        """Delete model ``name`` and its files."""
        Model(self, name).delete()

    def fork(self, name, model, version=None, keep_versions=None):
        """A new model ``name`` from version ``version`` of ``model`` (a name or a Model;
        version None: its current state): spec, parameters, buffers, optimizer and
        scheduler state, step count and loss history. Returns the new Model."""
        src = model.name if isinstance(model, Model) else model
        body = {"name": name, "from": {"model": src}}
        if version is not None:
            body["from"]["version"] = version
        if keep_versions is not None:
            body["keep_versions"] = keep_versions
        self.request("POST", "/v1/models", body)
        return Model(self, name)

    def import_onnx(self, path, name, loss, optimizer, scheduler=None, seed=None,
                    keep_versions=None):
        """A new trainable model ``name`` from an ONNX file (``path``, or the file's bytes),
        as torch.onnx.export writes for the layers the daemon supports: the file is the
        body of POST /v1/models (Content-Type: application/onnx), the rest of the spec its
        query. ``loss``, ``optimizer``, ``scheduler``: dicts or bare type names. Returns
        the Model; EasytorchError 400 names the node and op the daemon cannot import."""
        if isinstance(path, (bytes, bytearray)):
            data = bytes(path)
        else:
            with open(path, "rb") as f:
                data = f.read()
        q = [("name", name), ("loss", json.dumps(_as_spec(loss, self))),
             ("optimizer", json.dumps(_as_spec(optimizer, self)))]
        if scheduler is not None:
            q.append(("scheduler", json.dumps(_as_spec(scheduler, self))))
        if seed is not None:
            q.append(("seed", str(int(seed))))
        if keep_versions is not None:
            q.append(("keep_versions", str(int(keep_versions))))
        self.request("POST", "/v1/models?" + urllib.parse.urlencode(q), data=data,
                     content_type=ONNX)
        return Model(self, name)


def _as_spec(x, client=None):
    if isinstance(x, str):
        return {"type": x}
    if isinstance(x, _types.Spec):
        if x.pending:
            if client is None:
                return x.spec()  # raises with the reason
            return x.resolve(client.types())
        return dict(x)
    if isinstance(x, dict):
        return dict(x)
    if hasattr(x, "spec"):
        return x.spec()
    raise TypeError("expected a dict or a type name, got %r" % (x,))


def _quote(name):
    return urllib.parse.quote(name, safe="")


class Model:
    """A model hosted by the daemon. Every method is one or more HTTP calls;
    the Model object itself holds no state besides its name."""

    def __init__(self, client, name):
        self.client = client
        self.name = name
        self._path = "/v1/models/" + _quote(name)

    def __repr__(self):
        return "Model(%r)" % self.name

    def __eq__(self, other):
        return isinstance(other, Model) and other.name == self.name and other.client is self.client

    def __hash__(self):
        return hash(self.name)

    def _req(self, method, suffix="", body=None, **kw):
        return self.client.request(method, self._path + suffix, body, **kw)

    # -- description ---------------------------------------------------------
    def info(self):
        """GET /v1/models/{name}: {"name", "spec", "parameters", "step", "pending_batches", "loss"}."""
        return self._req("GET")

    @property
    def spec(self):
        return self.info()["spec"]

    @property
    def num_steps(self):
        """Optimizer steps taken so far."""
        return self.info()["step"]

    @property
    def last_loss(self):
        """The last training loss (None before any)."""
        return self.info()["loss"]

    @property
    def num_parameters(self):
        return self.info()["parameters"]

    # -- inference -------------------------------------------------------------
    def predict(self, x, batch_size=None):
        """Outputs for inputs ``x`` ([batch, ...]) in evaluation mode. With
        ``batch_size`` the rows are sent in chunks of that size (and in
        halves when a request is over the daemon's body limit). A graph model's named
        inputs are a dict ``{"user": rows, "item": rows}`` (sliced together) and several
        outputs come back as ``{name: tensor}``."""
        n = _row_count(x)
        if batch_size is None or n <= batch_size:
            try:
                js, t, _ = self.client.tensor_call("POST", self._path + "/predict", {"inputs": x})
                return named_outputs(self.client, js, t)
            except EasytorchError as e:
                if e.status != 413 or n < 2:
                    raise
                batch_size = (n + 1) // 2  # over the body limit: send halves
        parts = []
        for i in range(0, n, batch_size):
            parts.append(self.predict(_slice_rows(x, i, i + batch_size)))
        return _concat_rows(parts, self.client.use_numpy)

    __call__ = predict

    # -- training ----------------------------------------------------------------
    def push(self, x, y):
        """Forward and backward one batch; gradients accumulate until step().
        Returns the batch's loss."""
        js, _, _ = self.client.tensor_call("POST", self._path + "/batches", {"inputs": x, "targets": y},
                                           answer_tensors=False)
        return js["loss"]

    def step(self):
        """Apply the optimizer to the accumulated gradients, zero them and step
        the scheduler. Returns {"step": new step count, "lr": lr used}; raises
        EasytorchError 409 when no batch is pending."""
        return self._req("POST", "/step")

    def train(self, x, y, epochs=1, batch_size=None, shuffle=False):
        """One POST /train: the daemon runs the epochs. Returns {"step", "loss", "losses"}."""
        fields = {"epochs": epochs, "shuffle": bool(shuffle)}
        if batch_size is not None:
            fields["batch_size"] = batch_size
        js, _, _ = self.client.tensor_call("POST", self._path + "/train", {"inputs": x, "targets": y},
                                           fields, answer_tensors=False)
        return js

    def fit(self, x, y, epochs=1, batch_size=32, shuffle=True, seed=None, verbose=True,
            rows_per_request=8192, file=None, validation=None, eval_every=None, metrics=None,
            wait=None):
        """Train like a PyTorch loop: for each epoch, for each minibatch of ``batch_size``
        rows: zero grads, forward, loss, backward, step. Shows a progress bar (epoch, step,
        loss) on stderr unless ``verbose`` is False.

        Without ``validation`` and ``wait``: minibatches (in a fresh random order each epoch
        when ``shuffle``, drawn from ``random.Random(seed)``) are sent a few at a time over
        POST /train; returns {"loss": [mean loss of each epoch], "step": final step count}.

        With ``validation=(xv, yv)`` or ``wait`` given: one training job (POST .../jobs) the
        daemon runs, shuffling with the model's own generator (``seed`` is refused: the
        daemon's generator decides), evaluating ``validation`` every ``eval_every`` steps
        (default once per epoch) with ``metrics``. ``wait=False`` returns the Job at once;
        otherwise (``wait=True`` or None) the job is followed over the event stream (Ctrl-C
        cancels it) and the answer is {"loss": [...], "step", "validation": [evaluations],
        "job": final record}; a job that did not end "done" raises EasytorchError."""
        if validation is None and wait is None:
            return _fit.client_loop(self, x, y, epochs, batch_size, shuffle, seed, verbose,
                                    rows_per_request, file)
        if seed is not None:
            raise ValueError("fit: seed applies to client-side shuffling only; a job shuffles "
                             "with the model's generator (define the model with a seed)")
        return _fit.job_fit(self, x, y, epochs, batch_size, shuffle, verbose, file, validation,
                            eval_every, metrics, wait is None or bool(wait))

    def submit(self, x, y, epochs=1, batch_size=None, shuffle=False, validation=None,
               eval_every=None, metrics=None, k=None):
        """Queue a training job (POST .../jobs): what train(x, y, ...) would do, run by the
        daemon in the background, evaluating ``validation=(xv, yv)`` every ``eval_every``
        steps (default once per epoch) with ``metrics``/``k`` as evaluate(). Returns a Job
        (status(), cancel(), wait(), events())."""
        body = {"inputs": encode_tensor(x), "targets": encode_tensor(y), "epochs": int(epochs),
                "shuffle": bool(shuffle)}
        if batch_size is not None:
            body["batch_size"] = int(batch_size)
        if validation is not None:
            xv, yv = validation
            v = {"inputs": encode_tensor(xv), "targets": encode_tensor(yv)}
            if metrics is not None:
                v["metrics"] = list(metrics)
            if k is not None:
                v["k"] = int(k)
            body["validation"] = v
        elif metrics is not None or k is not None:
            raise ValueError("submit: metrics and k apply to the validation data; give validation")
        if eval_every is not None:
            body["eval_every"] = int(eval_every)
        return _jobs.Job(self, self._req("POST", "/jobs", body))

    def job(self, job_id):
        """Job ``job_id`` of this model (GET .../jobs/{id})."""
        return _jobs.Job(self, self._req("GET", "/jobs/%d" % int(job_id)))

    def jobs(self):
        """The model's jobs, oldest first (the newest 100 are kept), as Job objects."""
        return [_jobs.Job(self, r) for r in self._req("GET", "/jobs")["jobs"]]

    def evaluate(self, x, y, metrics=None, k=None):
        """Loss and metrics on (x, y) in evaluation mode, without gradients; nothing of the
        model changes (POST .../evaluate). ``metrics``: names among loss, accuracy,
        top_k_accuracy, mae, mse, rmse, r2 (default: the loss's usual ones); ``k`` for
        top_k_accuracy. Returns {"step", "rows", "metrics": {name: value or None}, "k"?}."""
        fields = {}
        if metrics is not None:
            fields["metrics"] = list(metrics)
        if k is not None:
            fields["k"] = int(k)
        res, _, _ = self.client.tensor_call("POST", self._path + "/evaluate",
                                            {"inputs": x, "targets": y}, fields,
                                            answer_tensors=False)
        return res

    def set_lr(self, lr):
        """Set every parameter group's learning rate while the model trains (PATCH
        /v1/models/{name}, recorded as a "hyperparameters" marker). Returns the "changes"."""
        return self._req("PATCH", "", {"optimizer": {"lr": float(lr)}})["changes"]

    def events(self, types=None, last_event_id=None, reconnect=True, heartbeat=15, retry_for=30.0):
        """The model's event stream (GET .../events) as Event(id, type, data) tuples,
        following it live for as long as the caller iterates; see Client.events. Ends after
        the model's "deleted" event."""
        return _jobs.iter_events(self.client, self._path + "/events", types=types,
                                 last_event_id=last_event_id, reconnect=reconnect,
                                 heartbeat=heartbeat, retry_for=retry_for)

    def loss_history(self, since=None):
        """[(step, loss), ...] recorded after step ``since`` (all when None)."""
        suffix = "/loss" if since is None else "/loss?since=%d" % int(since)
        return [(int(s), l) for s, l in self._req("GET", suffix)["history"]]

    # -- gradients and parameters ----------------------------------------------------
    def gradients(self, x=None, y=None):
        """Without arguments: the gradients accumulated since the last step,
        {name: tensor}. With a batch ``x, y``: that batch's own gradients
        (nothing accumulates), as {"loss", "gradients", "input_gradient"}."""
        if x is None and y is None:
            meta, t = self.client.get_tensors(self._path + "/gradients")
            if t is not None:
                return t
            res = meta if meta is not None else self._req("GET", "/gradients")
            return self.client._tensors(res["gradients"])
        if x is None or y is None:
            raise ValueError("gradients: give both x and y, or neither")
        res, t, meta = self.client.tensor_call("POST", self._path + "/gradients",
                                               {"inputs": x, "targets": y})
        if t is not None:
            pre = "gradients."
            return {"loss": float(meta["loss"]),
                    "gradients": collections.OrderedDict((k[len(pre):], v) for k, v in t.items()
                                                         if k.startswith(pre)),
                    "input_gradient": t["input_gradient"]}
        out = {"loss": res.get("loss"), "gradients": self.client._tensors(res["gradients"])}
        if "input_gradient" in res:
            out["input_gradient"] = self.client._tensor(res["input_gradient"])
        return out

    def parameters(self):
        """{name: tensor}, named and ordered as torch.nn.Sequential's state_dict ("0.weight",
        ...), buffers included ("3.running_mean", "3.num_batches_tracked" as int64)."""
        meta, t = self.client.get_tensors(self._path + "/parameters")
        if t is not None:
            return t
        res = meta if meta is not None else self._req("GET", "/parameters")
        return self.client._tensors(res["parameters"])

    def state_dict(self):
        """The parameters as an OrderedDict, like torch.nn.Module.state_dict()."""
        return self.parameters()

    def load_state_dict(self, state_dict):
        """Replace every parameter (PUT /parameters). The daemon checks every
        name and shape first and changes nothing if one is wrong. Accepts
        ndarrays, torch tensors or nested lists."""
        if self.client.binary:
            data = _safetensors.encode({k: _as_array(v) for k, v in state_dict.items()})
            self._req("PUT", "/parameters", data=data, content_type=OCTET)
            return
        body = {"parameters": {k: encode_tensor(v) for k, v in state_dict.items()}}
        self._req("PUT", "/parameters", body)

    def safetensors(self):
        """The parameters as the bytes of a safetensors file."""
        return self._req("GET", "/parameters?format=safetensors", raw=True)

    def save(self, path):
        """Download the parameters into a safetensors file at ``path``."""
        data = self.safetensors()
        with open(path, "wb") as f:
            f.write(data)
        return path

    def load(self, path):
        """Replace the parameters from a safetensors file."""
        with open(path, "rb") as f:
            data = f.read()
        self._req("PUT", "/parameters", data=data, content_type="application/octet-stream")

    def export_onnx(self, path=None, version=None, input_shape=None):
        """The model (or version ``version``) as an ONNX file (opset 17, dynamic batch):
        written to ``path`` (returned) or, without a path, returned as bytes.
        ``input_shape``: the input's dimensions after the batch, for convolution models
        ((1, 28, 28)); for a graph model with several inputs one tuple per input, in the
        order of its "inputs" ([(3, 8), (4, 8)]; () for an input of shape [batch])."""
        suffix = "/export" if version is None else "/versions/%d/export" % int(version)
        q = [("format", "onnx")]
        if input_shape is not None:
            shapes = list(input_shape)
            if not shapes or not all(isinstance(v, (list, tuple)) for v in shapes):
                shapes = [shapes]
            q.append(("input_shape", ";".join(",".join(str(int(v)) for v in sh)
                                              for sh in shapes)))
        data = self._req("GET", suffix + "?" + urllib.parse.urlencode(q), raw=True, accept=ONNX)
        if path is None:
            return data
        with open(path, "wb") as f:
            f.write(data)
        return path

    def checkpoint(self):
        """Ask the daemon to make the current state durable (survives kill -9)."""
        return self._req("POST", "/checkpoint")

    def delete(self):
        """Delete the model and its files on the daemon."""
        self._req("DELETE")

    # -- versions ----------------------------------------------------------------
    def freeze(self, label=None, serve=False):
        """Freeze the current state as a new immutable version (POST /versions).
        Returns its description {"version", "step", "loss", "created", "label", "size",
        "serving", "removed"}; ``serve=True`` makes plain predict use it."""
        body = {"serve": bool(serve)}
        if label is not None:
            body["label"] = label
        return self._req("POST", "/versions", body)

    def versions(self):
        """The versions, oldest first: a list of {"version", "step", "loss", "created",
        "label", "size", "serving", "validation"} ("validation": the metrics measured on
        the version's weights, by a job at the freeze or by evaluate_version, or None)."""
        return self._req("GET", "/versions")["versions"]

    def version(self, n):
        """Version ``n``'s description."""
        return self._req("GET", "/versions/%d" % int(n))

    def delete_version(self, n):
        """Remove version ``n`` (409 while it is the serving one)."""
        self._req("DELETE", "/versions/%d" % int(n))

    def predict_version(self, n, x):
        """Outputs of version ``n`` for inputs ``x`` (the live model may be training); named
        inputs and several outputs as predict's."""
        res = self._req("POST", "/versions/%d/predict" % int(n), {"inputs": encode_tensor(x)})
        return named_outputs(self.client, res, None)

    def evaluate_version(self, n, x, y, metrics=None, k=None):
        """Loss and metrics of version ``n`` on (x, y) in eval mode (POST
        /versions/{n}/evaluate), recorded as the version's "validation" in versions().
        Returns {"step", "rows", "metrics": {name: value}, "k"?, "version"}."""
        fields = {}
        if metrics is not None:
            fields["metrics"] = list(metrics)
        if k is not None:
            fields["k"] = int(k)
        res, _, _ = self.client.tensor_call("POST", self._path + "/versions/%d/evaluate" % int(n),
                                            {"inputs": x, "targets": y}, fields,
                                            answer_tensors=False)
        return res

    def serve(self, version="live"):
        """Make plain predict and /v2 infer use ``version`` ("live" or a number)."""
        return self._req("PATCH", "", {"serving": version})

    @property
    def serving(self):
        """"live" or the number of the version plain predict uses."""
        return self.info()["serving"]

    def keep_versions(self, k):
        """Retention: keep at most ``k`` versions (0: all), applied at once."""
        return self._req("PATCH", "", {"keep_versions": int(k)})

    def rollback(self, n):
        """Put the live model back to version ``n``: parameters, buffers, optimizer and
        scheduler state, generator, step count and loss history; pending batches are
        dropped. Returns {"version", "step", "from_step", "discarded_pending_batches",
        "restored"}."""
        return self._req("POST", "/rollback", {"version": int(n)})
