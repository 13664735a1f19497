"""A small text/event-stream client over a raw socket (tests and the SSE bench): the
request, the response head, the chunked body decoded incrementally, events parsed as the
WHATWG EventSource spec does (id:, event:, data:, comments, blank line ends an event)."""

import socket
import time


class Stream:
    def __init__(self, host, port, path, headers=None, rcvbuf=None, timeout=30):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:  # a small window: a reader that stops reading stalls the sender soon
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        h = "".join("%s: %s\r\n" % kv for kv in (headers or {}).items())
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n%s\r\n"
                           % (path, host, h)).encode())
        self.raw = b""          # bytes from the socket, not yet de-chunked
        self.body = b""         # de-chunked, not yet parsed
        self.chunked = False
        self.ended = False
        self.status = None
        self.headers = {}
        self.comments = []
        self.last_id = None

    # ---- bytes
    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            self.ended = True
            return False
        self.raw += d
        return True

    def head(self):
        while b"\r\n\r\n" not in self.raw:
            if not self._fill():
                raise EOFError("connection closed before the response head")
        h, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = h.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        return self.status

    def _dechunk(self):
        if not self.chunked:
            self.body += self.raw
            self.raw = b""
            return
        while True:
            i = self.raw.find(b"\r\n")
            if i < 0:
                return
            size = int(self.raw[:i].split(b";")[0], 16)
            if size == 0:
                self.ended = True
                self.raw = b""
                return
            if len(self.raw) < i + 2 + size + 2:
                return
            self.body += self.raw[i + 2:i + 2 + size]
            self.raw = self.raw[i + 2 + size + 2:]

    def rest(self):
        """The body that is left as text (an error answer's)."""
        while not self.ended:
            if not self._fill():
                break
            self._dechunk()
        self._dechunk()
        return self.body.decode()

    # ---- events
    def next(self, timeout=30):
        """The next event as a dict {id, event, data} (comments are kept in .comments);
        None when the stream ended."""
        if self.status is None:
            self.head()
        deadline = time.monotonic() + timeout
        while True:
            self._dechunk()
            while b"\n\n" in self.body:
                block, self.body = self.body.split(b"\n\n", 1)
                ev = {"event": "message", "data": [], "id": None}
                only_comments = True
                for ln in block.decode().split("\n"):
                    if ln.startswith(":"):
                        self.comments.append(ln[1:].strip())
                        continue
                    k, _, v = ln.partition(":")
                    v = v[1:] if v.startswith(" ") else v
                    if k in ("id", "event", "data", "retry"):
                        only_comments = False
                    if k == "data":
                        ev["data"].append(v)
                    elif k == "id":
                        ev["id"] = v
                        self.last_id = v
                    elif k == "event":
                        ev["event"] = v
                if only_comments or not ev["data"]:
                    continue
                ev["data"] = "\n".join(ev["data"])
                return ev
            if self.ended:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no event within %.0f s" % timeout)
            self.sock.settimeout(left)
            if not self._fill():
                self._dechunk()
                if b"\n\n" not in self.body:
                    return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
