#!/usr/bin/python3
"""easytorchd event streams: GET /v1/events and GET /v1/models/{name}/events as
text/event-stream -- many readers see the same events, a model's stream has only its
events and ends with its deletion, Last-Event-ID resumes exactly (and an id older than the
buffer gets a reset), a reader that stops reading never slows training and is dropped with
a visible "dropped" event, a client that hangs up is forgotten, heartbeats, type filters,
?access_token=, errors. Usage: test_events.py PATH/TO/easytorchd"""

import json
import os
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import daemon as dm  # noqa: E402
from daemon import Daemon, DaemonTestCase  # noqa: E402
from sse import Stream  # noqa: E402

MLP = [{"type": "Linear", "in_features": 2, "out_features": 4}, {"type": "Tanh"},
       {"type": "Linear", "in_features": 4, "out_features": 1}]


D = None  # the module's daemon, made and started by setUpModule
setUpModule, tearDownModule = dm.module_fixture(
    globals(), lambda: Daemon(extra_args=["--event-buffer", "64"]))


_n = [0]


def fresh(prefix="e"):
    _n[0] += 1
    return "%s%d" % (prefix, _n[0])


def spec(name, **kw):
    s = {"name": name, "layers": MLP, "loss": "MSELoss",
         "optimizer": {"type": "SGD", "lr": 0.05}, "seed": 1}
    s.update(kw)
    return s


def data(n=8):
    return [[i / n, 1 - i / n] for i in range(n)], [[i / n] for i in range(n)]


def metric(d, name):
    for ln in d.get("/metrics").body.decode().splitlines():
        if ln.startswith(name + " "):
            return float(ln.split()[1])
    raise AssertionError("no metric " + name)


def open_stream(d, path, **kw):
    s = Stream(d.host, d.port, path, **kw)
    assert s.head() == 200, s.rest()
    assert s.headers["content-type"].startswith("text/event-stream"), s.headers
    return s


def wait_readers(d, n, timeout=20):
    end = time.monotonic() + timeout
    while metric(d, "easytorch_event_readers") != n:
        if time.monotonic() > end:
            raise AssertionError("event readers: %s, expected %d"
                                 % (metric(d, "easytorch_event_readers"), n))
        time.sleep(0.05)


def until(stream, pred, timeout=30):
    """Events until pred(event) is true (that one included)."""
    out = []
    while True:
        ev = stream.next(timeout)
        if ev is None:
            raise AssertionError("stream ended before the event: %r" % out[-5:])
        out.append(ev)
        if pred(ev):
            return out


def is_(kind, model=None):
    return lambda ev: ev["event"] == kind and (model is None or
                                               json.loads(ev["data"]).get("model") == model)


class TestStreams(DaemonTestCase):
    def test_many_readers_see_the_same_events_in_order(self):
        readers = [open_stream(D, "/v1/events") for _ in range(20)]
        try:
            name = fresh()
            D.create(spec(name))
            x, y = data()
            D.ok("POST", "/v1/models/%s/train" % name,
                 {"inputs": x, "targets": y, "epochs": 3, "batch_size": 4})
            D.ok("PATCH", "/v1/models/%s" % name, {"optimizer": {"lr": 0.01}})
            D.ok("POST", "/v1/models/%s/versions" % name, {"label": "a"}, expect=(201,))
            D.ok("DELETE", "/v1/models/%s" % name)
            seen = [until(r, is_("deleted", name)) for r in readers]
            mine = [[e for e in evs if json.loads(e["data"])["model"] == name] for evs in seen]
            for evs in mine[1:]:
                self.assertEqual(evs, mine[0])
            kinds = [e["event"] for e in mine[0]]
            self.assertEqual(kinds[0], "created")
            self.assertIn("step", kinds)
            self.assertLess(kinds.index("hyperparameters"), kinds.index("version"))
            self.assertEqual(kinds[-1], "deleted")
            ids = [int(e["id"]) for e in mine[0]]
            self.assertEqual(ids, sorted(ids))
            # every step is in the step events, once
            steps = [s for e in mine[0] if e["event"] == "step"
                     for s, _ in json.loads(e["data"])["steps"]]
            self.assertEqual(steps, list(range(1, 7)))
            hp = json.loads(mine[0][kinds.index("hyperparameters")]["data"])
            self.assertEqual(hp["changes"]["lr"], {"from": 0.05, "to": 0.01})
            ver = json.loads(mine[0][kinds.index("version")]["data"])
            self.assertEqual((ver["action"], ver["version"], ver["step"]), ("frozen", 1, 6))
        finally:
            for r in readers:
                r.close()

    def test_a_model_stream_has_its_events_only_and_ends_with_the_deletion(self):
        a, b = fresh(), fresh()
        D.create(spec(a))
        D.create(spec(b))
        s = open_stream(D, "/v1/models/%s/events" % a)
        try:
            x, y = data()
            D.ok("POST", "/v1/models/%s/train" % b, {"inputs": x, "targets": y})
            D.ok("POST", "/v1/models/%s/train" % a, {"inputs": x, "targets": y})
            D.ok("DELETE", "/v1/models/%s" % a)
            evs = []
            while True:
                ev = s.next()
                if ev is None:
                    break
                evs.append(ev)
            self.assertEqual({json.loads(e["data"])["model"] for e in evs}, {a})
            self.assertEqual(evs[-1]["event"], "deleted")
            self.assertTrue(s.ended)
        finally:
            s.close()
        self.assertError(D.get("/v1/models/nope/events"), 404, "nope")

    def test_type_filter_and_errors(self):
        name = fresh()
        s = open_stream(D, "/v1/events?types=created,deleted")
        try:
            D.create(spec(name))
            x, y = data()
            D.ok("POST", "/v1/models/%s/train" % name, {"inputs": x, "targets": y})
            D.ok("DELETE", "/v1/models/%s" % name)
            evs = until(s, is_("deleted", name))
            self.assertEqual({e["event"] for e in evs}, {"created", "deleted"})
        finally:
            s.close()
        self.assertError(D.get("/v1/events?types=stp"), 400, "types", 'did you mean "step"')
        self.assertError(D.get("/v1/events", headers={"Last-Event-ID": "12x"}), 400,
                         "Last-Event-ID")
        self.assertError(D.get("/v1/events?last_event_id=-1"), 400, "last_event_id")
        self.assertError(D.get("/v1/events?heartbeat=0.1"), 400, "heartbeat")
        self.assertError(D.get("/v1/events?since=3"), 400, "since")

    def test_heartbeats_while_nothing_happens(self):
        s = open_stream(D, "/v1/models/%s/events?heartbeat=1" % self.idle_model())
        try:
            end = time.monotonic() + 20
            while s.comments.count("heartbeat") < 2 and time.monotonic() < end:
                try:
                    s.next(timeout=1.5)
                except TimeoutError:
                    pass
            self.assertGreaterEqual(s.comments.count("heartbeat"), 2, s.comments)
        finally:
            s.close()

    def idle_model(self):
        name = fresh("idle")
        D.create(spec(name))
        return name


class TestResume(DaemonTestCase):
    def test_last_event_id_resumes_after_it_exactly(self):
        name = fresh()
        D.create(spec(name))
        s = open_stream(D, "/v1/models/%s/events" % name)
        x, y = data()
        D.ok("PATCH", "/v1/models/%s" % name, {"optimizer": {"lr": 0.02}})
        first = until(s, is_("hyperparameters"))[-1]
        s.close()
        # while nobody listens
        D.ok("PATCH", "/v1/models/%s" % name, {"optimizer": {"lr": 0.03}})
        D.ok("POST", "/v1/models/%s/train" % name, {"inputs": x, "targets": y})
        D.ok("PATCH", "/v1/models/%s" % name, {"optimizer": {"lr": 0.04}})
        # the whole stream for comparison, from a reader resuming at the same id over /v1/events
        r = open_stream(D, "/v1/models/%s/events" % name, headers={"Last-Event-ID": first["id"]})
        got = until(r, lambda ev: ev["event"] == "hyperparameters" and
                    json.loads(ev["data"])["changes"]["lr"]["to"] == 0.04)
        r.close()
        self.assertGreater(int(got[0]["id"]), int(first["id"]))
        kinds = [e["event"] for e in got]
        self.assertEqual(kinds[0], "hyperparameters")
        self.assertEqual(json.loads(got[0]["data"])["changes"]["lr"]["to"], 0.03)
        self.assertIn("step", kinds)
        q = open_stream(D, "/v1/events?last_event_id=%s&types=hyperparameters" % first["id"])
        again = until(q, lambda ev: json.loads(ev["data"])["changes"]["lr"]["to"] == 0.04)
        q.close()
        self.assertEqual([e for e in again if json.loads(e["data"])["model"] == name],
                         [e for e in got if e["event"] == "hyperparameters"])

    def test_an_id_older_than_the_buffer_gets_a_reset_first(self):
        name = fresh()
        D.create(spec(name))
        s = open_stream(D, "/v1/models/%s/events" % name)
        D.ok("PATCH", "/v1/models/%s" % name, {"optimizer": {"lr": 0.02}})
        old = until(s, is_("hyperparameters"))[-1]["id"]
        s.close()
        for i in range(70):  # more than --event-buffer 64
            D.ok("PATCH", "/v1/models/%s" % name, {"optimizer": {"lr": 0.001 * (i + 1)}})
        r = open_stream(D, "/v1/models/%s/events" % name, headers={"Last-Event-ID": old})
        ev = r.next()
        self.assertEqual(ev["event"], "reset")
        self.assertIsNone(ev["id"])  # a reset carries no id: Last-Event-ID stays the reader's
        d = json.loads(ev["data"])
        self.assertEqual(d["last_event_id"], int(old))
        nxt = r.next()
        self.assertGreater(int(nxt["id"]), d["complete_after"])
        r.close()
        # an id from the future (another run): a reset too, then only new events
        r = open_stream(D, "/v1/models/%s/events" % name,
                        headers={"Last-Event-ID": str(2 ** 63)})
        self.assertEqual(r.next()["event"], "reset")
        r.close()


class TestCoalesce(DaemonTestCase):
    """?coalesce=S: one "events" record per S seconds at most, holding the events a plain
    reader gets one by one, in order, with the record's id the last one's."""

    def entries(self, rec):
        self.assertEqual(rec["event"], "events", rec)
        lst = json.loads(rec["data"])
        self.assertIsInstance(lst, list)
        self.assertTrue(lst, rec)
        ids = [x["id"] for x in lst if "id" in x]
        self.assertEqual(rec["id"], ids[-1] if ids else None)
        return lst

    def test_records_hold_what_a_plain_reader_gets(self):
        name = fresh()
        plain = open_stream(D, "/v1/events?types=created,step,hyperparameters,deleted")
        co = open_stream(D, "/v1/events?types=created,step,hyperparameters,deleted&coalesce=0.3")
        t0 = time.monotonic()
        try:
            D.create(spec(name))
            x, y = data()
            for i in range(6):   # steps spread over a second or more: several records
                D.ok("POST", "/v1/models/%s/train" % name,
                     {"inputs": x, "targets": y, "epochs": 20, "batch_size": 2})
                D.ok("PATCH", "/v1/models/%s" % name, {"optimizer": {"lr": 0.01 * (i + 1)}})
                time.sleep(0.1)
            D.ok("DELETE", "/v1/models/%s" % name)
            want = [e for e in until(plain, is_("deleted", name))
                    if json.loads(e["data"])["model"] == name]
            got, records = [], 0
            while not got or got[-1]["event"] != "deleted" or got[-1]["data"]["model"] != name:
                rec = co.next(30)
                self.assertIsNotNone(rec, "the coalesced stream ended")
                records += 1
                got += self.entries(rec)
            elapsed = time.monotonic() - t0
        finally:
            plain.close()
            co.close()
        got = [g for g in got if g["data"]["model"] == name]
        self.assertEqual([(g["event"], g["id"], g["data"]) for g in got],
                         [(w["event"], w["id"], json.loads(w["data"])) for w in want])
        self.assertGreater(len(got), records)   # coalesced: fewer records than events
        # made at least 0.3 s apart (what the reader's timing cannot change: a count)
        self.assertLessEqual(records, elapsed / 0.3 + 1, (records, elapsed))

    def test_resume_errors_and_a_quiet_stream(self):
        name = fresh()
        D.create(spec(name))
        s = open_stream(D, "/v1/models/%s/events?coalesce=0.2" % name)
        D.ok("PATCH", "/v1/models/%s" % name, {"optimizer": {"lr": 0.02}})
        first = self.entries(s.next(30))
        self.assertEqual([e["event"] for e in first], ["hyperparameters"])
        s.close()
        D.ok("PATCH", "/v1/models/%s" % name, {"optimizer": {"lr": 0.03}})
        D.ok("PATCH", "/v1/models/%s" % name, {"optimizer": {"lr": 0.04}})
        # Last-Event-ID = a record's id: the events after it (both held ones go in one record)
        r = open_stream(D, "/v1/models/%s/events?coalesce=0.2" % name,
                        headers={"Last-Event-ID": first[-1]["id"]})
        got = []
        while len(got) < 2:
            got += self.entries(r.next(30))
        r.close()
        self.assertEqual([g["data"]["changes"]["lr"]["to"] for g in got], [0.03, 0.04])
        # an id older than the buffer: the reset is an entry too (without an id)
        r = open_stream(D, "/v1/models/%s/events?coalesce=0.2" % name,
                        headers={"Last-Event-ID": str(2 ** 63)})
        self.assertEqual(self.entries(r.next(30))[0]["event"], "reset")
        r.close()
        for bad in ("-1", "11", "abc", "", "nan", "0.5s"):
            self.assertError(D.get("/v1/events?coalesce=" + bad), 400, "coalesce")
        # coalesce=0: records as without it
        z = open_stream(D, "/v1/models/%s/events?coalesce=0" % name)
        D.ok("PATCH", "/v1/models/%s" % name, {"optimizer": {"lr": 0.05}})
        self.assertEqual(z.next(30)["event"], "hyperparameters")
        z.close()


class TestBackpressure(unittest.TestCase):
    def test_a_reader_that_stops_reading_is_dropped_and_never_slows_training(self):
        d = Daemon(extra_args=["--event-buffer", "32", "--event-interval", "0"])
        d.start()
        try:
            name = fresh("bp")
            d.create(spec(name))
            stalled = Stream(d.host, d.port, "/v1/models/%s/events" % name, rcvbuf=2048)
            # wait for its subscription (it never reads its socket from here on)
            end = time.monotonic() + 20
            while metric(d, "easytorch_event_readers") < 1 and time.monotonic() < end:
                time.sleep(0.05)
            x, y = [[0.5, 0.5]] * 64, [[0.1]] * 64
            # every step is an event (--event-interval 0), ~170 bytes each; 12 calls of 2,560
            # steps are ~5 MB, more than the socket buffers can hold (the kernel grows the
            # sender's up to net.ipv4.tcp_wmem's 4 MB: with one call, a slow daemon could push
            # the whole stream into it, and the reader was never behind).  The training calls
            # never wait for the stalled reader.
            n_steps = 0
            for _ in range(12):
                r = d.ok("POST", "/v1/models/%s/train" % name,
                         {"inputs": x, "targets": y, "epochs": 40, "batch_size": 1})
                n_steps += 40 * 64
                self.assertEqual(r["step"], n_steps)
            self.assertEqual(d.model(name)["step"], n_steps)
            # the stalled reader now reads: what was in flight, then "dropped", then the end
            stalled.sock.settimeout(30)
            evs = []
            while True:
                ev = stalled.next(30)
                if ev is None:
                    break
                evs.append(ev)
            self.assertEqual(evs[-1]["event"], "dropped", [e["event"] for e in evs[-3:]])
            self.assertIn("Last-Event-ID", json.loads(evs[-1]["data"])["reason"])
            self.assertTrue(stalled.ended)
            self.assertGreaterEqual(metric(d, "easytorch_event_readers_dropped_total"), 1)
            # it reconnects where it was: told what it missed (reset), then goes on
            last = stalled.last_id or "1"   # (dropped before its first event: an old id)
            stalled.close()
            again = open_stream(d, "/v1/models/%s/events" % name,
                                headers={"Last-Event-ID": last})
            self.assertEqual(again.next()["event"], "reset")
            again.close()
        finally:
            d.cleanup()

    def test_clients_that_hang_up_are_forgotten(self):
        d = Daemon()
        d.start()
        try:
            base = metric(d, "easytorch_event_readers")
            streams = [open_stream(d, "/v1/events") for _ in range(30)]
            name = fresh("hu")
            d.create(spec(name))
            for s in streams:
                until(s, is_("created", name))
            wait_readers(d, base + 30)
            for s in streams[:20]:
                s.close()
            # parked streams notice within a tick; the others at their next write
            d.ok("PATCH", "/v1/models/%s" % name, {"optimizer": {"lr": 0.01}})
            wait_readers(d, base + 10)
            for s in streams[20:]:
                s.close()
            wait_readers(d, base)
            self.assertTrue(d.alive())
        finally:
            d.cleanup()


class TestAuth(unittest.TestCase):
    def test_access_token_in_the_query_for_event_streams_only(self):
        d = Daemon(token="s3cret")
        d.start()
        try:
            s = Stream(d.host, d.port, "/v1/events")
            self.assertEqual(s.head(), 401)
            s.close()
            s = Stream(d.host, d.port, "/v1/events?access_token=wrong")
            self.assertEqual(s.head(), 401)
            s.close()
            s = open_stream(d, "/v1/events?access_token=s3cret")
            d.create(spec("tok"))
            self.assertEqual(s.next()["event"], "created")
            s.close()
            s = open_stream(d, "/v1/events", headers={"Authorization": "Bearer s3cret"})
            s.close()
            r = d.get("/v1/models?access_token=s3cret", auth=False)
            self.assertEqual(r.status, 401, r)
        finally:
            d.cleanup()


if __name__ == "__main__":
    from daemon import run_tests
    run_tests()
