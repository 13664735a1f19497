"""The Python client's event streams: Client.events (GET /v1/events), Model.events
(GET /v1/models/{name}/events), filters, resume with Last-Event-ID, reconnect across a
daemon restart, errors.

Run through test_python_client.py (which sets client_common.EXE).
"""

import threading
import time

import client_common as common
from client_common import et, optim, Daemon, sine_data


class EventTests(common.DaemonCase):
    def sine(self, name=None):
        return self.client.create(name or self.name, layers=common.SINE_LAYERS, loss="MSELoss",
                                  optimizer=optim.SGD(lr=0.1), seed=0)

    def test_model_stream_replays_its_story_and_ends_after_deleted(self):
        x, y = sine_data(4)
        m = self.sine()
        it = m.events(last_event_id=0)
        evs = [next(it)]  # connected (a model's stream is 404 once it is deleted)
        res = m.train(x, y, epochs=3, batch_size=2)
        m.set_lr(0.05)
        m.freeze(label="a")
        losses = dict(m.loss_history())
        m.delete()
        evs += list(it)  # ends by itself after "deleted"
        types = [e.type for e in evs if e.id is not None]
        self.assertEqual(types[0], "created")
        self.assertEqual(types[-3:], ["hyperparameters", "version", "deleted"])
        self.assertTrue(set(types[1:-3]) <= {"step"}, types)
        ids = [e.id for e in evs if e.id is not None]
        self.assertEqual(ids, sorted(set(ids)))  # increasing, none twice
        steps = [tuple(s) for e in evs if e.type == "step" for s in e.data["steps"]]
        self.assertEqual([s for s, _ in steps], list(range(1, 7)))
        self.assertEqual(dict(steps), losses)
        self.assertEqual(steps[-1][1], res["loss"])
        hp = [e for e in evs if e.type == "hyperparameters"][0]
        self.assertEqual(hp.data["changes"], {"lr": {"from": 0.1, "to": 0.05}})
        ver = [e for e in evs if e.type == "version"][0]
        self.assertEqual((ver.data["action"], ver.data["version"], ver.data["step"]), ("frozen", 1, 6))
        self.assertTrue(all(e.data.get("model") == self.name for e in evs if e.id is not None))

    def test_live_events_arrive_while_iterating(self):
        x, y = sine_data(4)
        m = self.sine()
        got = []
        it = m.events(types=["step"])

        def reader():
            for ev in it:
                got.append(ev)
                if ev.data["step"] >= 5:
                    return
        t = threading.Thread(target=reader)
        t.start()
        trainer = et.Model(et.Client(self.daemon.url), self.name)  # a Client per thread
        deadline = time.monotonic() + 60  # only turns a hang into a failure
        while t.is_alive() and time.monotonic() < deadline:
            trainer.train(x, y)
            time.sleep(0.05)
        t.join(10)
        trainer.client.close()
        self.assertFalse(t.is_alive(), "no step event reached the reader")
        self.assertTrue(all(e.type == "step" for e in got))
        self.assertGreaterEqual(got[-1].data["step"], 5)

    def test_resume_with_last_event_id_misses_nothing_and_repeats_nothing(self):
        names = [self.name + "-%d" % i for i in range(5)]
        for n in names[:3]:
            self.sine(n)
        first = []
        for ev in self.client.events(types=["created"], last_event_id=0):
            if ev.type == "created" and ev.data["model"] in names:
                first.append(ev)
                if len(first) == 2:
                    break  # leave the stream after the second
        for n in names[3:]:
            self.sine(n)
        rest = []
        for ev in self.client.events(types=["created"], last_event_id=first[-1].id):
            self.assertEqual(ev.type, "created")  # no reset: everything after the id is buffered
            rest.append(ev)
            if ev.data["model"] == names[-1]:
                break
        self.assertEqual([e.data["model"] for e in first + rest], names)
        self.assertGreater(rest[0].id, first[-1].id)

    def test_bad_types_and_unknown_model(self):
        with self.assertRaises(et.EasytorchError) as cm:
            next(self.client.events(types=["stpe"]))
        self.assertEqual(cm.exception.status, 400)
        self.assertIn("step", cm.exception.message)  # the suggestion
        with self.assertRaises(et.EasytorchError) as cm:
            next(et.Model(self.client, "nope").events())
        self.assertEqual(cm.exception.status, 404)


class RestartTests(common.DaemonCase):
    def test_stream_reconnects_across_a_daemon_restart(self):
        x, y = sine_data(4)
        name = "restart"
        self.client.create(name, layers=common.SINE_LAYERS, loss="MSELoss",
                           optimizer=optim.SGD(lr=0.1), seed=0).train(x, y)
        reader = et.Client(self.daemon.url)
        got, errors = [], []

        def read():
            try:
                for ev in reader.events(types=["step", "created"], last_event_id=0):
                    got.append(ev)
                    if ev.type == "created" and ev.data["model"] == "after":
                        return
            except Exception as e:  # noqa: BLE001 -- reported by the test below
                errors.append(e)
        t = threading.Thread(target=read)
        t.start()
        deadline = time.monotonic() + 30  # only turns a hang into a failure
        while not any(e.type == "step" for e in got) and time.monotonic() < deadline:
            time.sleep(0.02)
        old = self.__class__.daemon
        port = old.port
        old.stop(keep_files=True)
        new = Daemon(common.EXE, extra_args=["--listen", "127.0.0.1:%d" % port,
                                             "--data-dir", old.data_dir])
        self.__class__.daemon = new
        self.client.close()
        self.client.create("after", layers=common.SINE_LAYERS, loss="MSELoss",
                           optimizer=optim.SGD(lr=0.1), seed=0)
        t.join(60)
        reader.close()
        self.assertFalse(t.is_alive(), "the reader did not see the new run's event")
        self.assertEqual(errors, [])
        kinds = [e.type for e in got]
        self.assertIn("shutdown", kinds)  # the old daemon said it stopped
        after = kinds.index("shutdown")
        self.assertEqual(got[-1].data["model"], "after")
        ids = [e.id for e in got if e.id is not None]
        self.assertEqual(ids, sorted(set(ids)))  # ids grow across restarts
        self.assertTrue(all(e.type in ("step", "created", "shutdown", "reset") for e in got[after:]))
