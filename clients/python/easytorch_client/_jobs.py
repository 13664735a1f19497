"""Event streams (GET /v1/events, /v1/models/{name}/events: text/event-stream) and
training jobs (POST /v1/models/{name}/jobs) for the client. Standard library only."""

import collections
import http.client
import json
import socket
import time
import urllib.parse

Event = collections.namedtuple("Event", "id type data")
Event.__doc__ = """One server-sent event: ``id`` (int, None for reset/dropped/shutdown),
``type`` ("step", "job", "evaluation", "hyperparameters", "version", ...) and ``data`` (the
decoded JSON object, with "model" for the events of a model)."""


def _error(status, message, path):
    from .client import EasytorchError
    return EasytorchError(status, message, "GET", path)


def iter_events(client, path, types=None, last_event_id=None, reconnect=True, heartbeat=15,
                retry_for=30.0, stop=None):
    """Events of ``path`` as Event tuples, for as long as the caller iterates.

    ``types``: event names to keep (the daemon filters; a wrong name is EasytorchError 400).
    ``last_event_id``: resume after that id (0: everything the daemon still buffers).
    With ``reconnect`` a stream that ended (a dropped slow reader, a daemon restart, a broken
    connection) is opened again with ``Last-Event-ID`` = the last id seen, for up to
    ``retry_for`` seconds of failed attempts, so nothing the daemon still buffers is lost (it
    sends a "reset" event, yielded, when it cannot). A model's stream ends after its "deleted"
    event. ``stop()``, when given, is asked at each heartbeat (the stream was quiet for
    ``heartbeat`` seconds): True ends it."""
    query = [("heartbeat", "%g" % heartbeat)]
    if types:
        query.append(("types", ",".join(types)))
    full = client._prefix + path + "?" + urllib.parse.urlencode(query)
    last = None if last_event_id is None else str(int(last_event_id))
    model_stream = path != "/v1/events"
    failing_since = None
    while True:
        headers = {"Accept": "text/event-stream"}
        if client.token:
            headers["Authorization"] = "Bearer " + client.token
        if last is not None:
            headers["Last-Event-ID"] = last
        cls = http.client.HTTPSConnection if client._scheme == "https" else http.client.HTTPConnection
        # three missed heartbeats: the connection is dead
        conn = cls(client._netloc, timeout=3 * heartbeat + 5)
        try:
            try:
                conn.request("GET", full, headers=headers)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                now = time.monotonic()
                failing_since = failing_since or now
                if not reconnect or now - failing_since > retry_for:
                    raise _error(None, "event stream %s: %s" % (path, e), path)
                time.sleep(0.2)
                continue
            if resp.status != 200:
                body = resp.read()
                try:
                    msg = json.loads(body.decode("utf-8")).get("error")
                except Exception:
                    msg = body.decode("utf-8", "replace")
                now = time.monotonic()
                failing_since = failing_since or now
                # 502-504: a daemon shutting down or a proxy without it yet; try again
                if reconnect and resp.status in (502, 503, 504) and now - failing_since <= retry_for:
                    time.sleep(0.2)
                    continue
                raise _error(resp.status, msg, path)
            failing_since = None
            ev = {"id": None, "event": "message", "data": []}
            try:
                while True:
                    line = resp.readline()
                    if not line:
                        break
                    line = line.decode("utf-8").rstrip("\r\n")
                    if line == "":
                        if ev["data"]:
                            data = json.loads("\n".join(ev["data"]))
                            eid = None
                            if ev["id"] is not None:
                                last = ev["id"]
                                eid = int(ev["id"])
                            yield Event(eid, ev["event"], data)
                            if model_stream and ev["event"] == "deleted":
                                return
                        ev = {"id": None, "event": "message", "data": []}
                        continue
                    if line.startswith(":"):  # a comment: the greeting or a heartbeat
                        if line == ": heartbeat" and stop is not None and stop():
                            return
                        continue
                    k, _, v = line.partition(":")
                    v = v[1:] if v.startswith(" ") else v
                    if k == "data":
                        ev["data"].append(v)
                    elif k == "id":
                        ev["id"] = v
                    elif k == "event":
                        ev["event"] = v
            except (OSError, socket.timeout, http.client.HTTPException):
                pass  # a broken connection: reconnect below
            if not reconnect:
                return
        finally:
            conn.close()


class Job:
    """A training job of a model (POST /v1/models/{name}/jobs). ``record`` is the daemon's
    last answer about it: {"id", "state", "steps_done", "steps_total", "loss", ...}."""

    FINAL = ("done", "failed", "cancelled", "interrupted")

    def __init__(self, model, record):
        self.model = model
        self.id = int(record["id"])
        self.record = record

    def __repr__(self):
        return "Job(%r, %d, %s)" % (self.model.name, self.id, self.record.get("state"))

    @property
    def state(self):
        """queued, running, done, failed, cancelled or interrupted (as last read)."""
        return self.record["state"]

    def status(self):
        """GET the record again (GET .../jobs/{id}); returns it."""
        self.record = self.model._req("GET", "/jobs/%d" % self.id)
        return self.record

    refresh = status

    def cancel(self):
        """DELETE .../jobs/{id}: a queued job stops at once, a running one between two steps
        (the steps it took stay). Returns the record; cancelling a job that is over changes
        nothing."""
        self.record = self.model._req("DELETE", "/jobs/%d" % self.id)
        return self.record

    def done(self):
        """True once the job is over (as last read)."""
        return self.record["state"] in self.FINAL

    def _over(self):
        # Asked at each heartbeat (a quiet second): the record again, for a job whose last
        # events are no longer buffered.
        self.status()
        return self.done()

    def events(self, last_event_id=0):
        """This job's events ("step", "evaluation", "job") until it is over: by default
        replayed from the start of what the daemon buffers (so a job that ended before the
        stream opened still tells its whole story, when the buffer holds it), then live."""
        for ev in iter_events(self.model.client, self.model._path + "/events",
                              types=("step", "evaluation", "job"), last_event_id=last_event_id,
                              heartbeat=1, stop=self._over):
            if ev.type == "job":
                if ev.data.get("id") != self.id:
                    continue
                self.record.update({k: v for k, v in ev.data.items() if k != "model"})
            elif ev.data.get("job") != self.id:
                continue
            yield ev
            if self.done():
                break
        self.status()

    def wait(self, progress=None, timeout=None):
        """Follow the job's events until it is over (``progress(event)`` is called for each)
        and return the final record. Ctrl-C (KeyboardInterrupt) cancels the job, then raises.
        ``timeout`` (seconds): TimeoutError if the job is not over by then (it goes on)."""
        if self.done():
            return self.record
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            for ev in self.events():
                if progress is not None:
                    progress(ev)
                if deadline is not None and time.monotonic() > deadline:
                    break
            if not self.done():
                self.status()
        except KeyboardInterrupt:
            self.cancel()
            raise
        if not self.done():
            raise TimeoutError("job %d of %r is still %s after %gs" % (
                self.id, self.model.name, self.state, timeout))
        return self.record
