"""Raw HTTP/1.1 over a socket, for tests that must send what http.client refuses to send
(malformed heads, smuggling patterns, trickled bytes) and read every response that comes
back, in order, until the server closes the connection."""
import socket
import time


class RawResponse:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers  # lowercase name -> value (last one wins)
        self.body = body

    def __repr__(self):
        return "<%d %s %r>" % (self.status, self.reason, self.body[:200])


def parse_responses(data):
    """Every complete response in data (Content-Length or chunked bodies); returns
    (responses, leftover bytes)."""
    out = []
    while True:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return out, data
        head = data[:end].decode("latin-1").split("\r\n")
        parts = head[0].split(" ", 2)
        status, reason = int(parts[1]), parts[2] if len(parts) > 2 else ""
        headers = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        rest = data[end + 4:]
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                le = rest.find(b"\r\n")
                if le < 0:
                    return out, data
                size = int(rest[:le].split(b";")[0], 16)
                if len(rest) < le + 2 + size + 2:
                    return out, data
                body += rest[le + 2:le + 2 + size]
                rest = rest[le + 2 + size + 2:]
                if size == 0:
                    break
        else:
            n = int(headers.get("content-length", "0"))
            if len(rest) < n:
                return out, data
            body, rest = rest[:n], rest[n:]
        out.append(RawResponse(status, reason, headers, body))
        data = rest


def exchange(host, port, data, wait=10.0, pieces=None, until_responses=None):
    """Connects, sends data (or each of pieces with a short pause between), then reads until
    the server closes, `until_responses` responses have arrived, or `wait` seconds pass (a
    safety net, not a speed judgement).  Returns (responses, closed_by_server)."""
    s = socket.create_connection((host, port), timeout=wait)
    buf = b""
    closed = False
    try:
        for p in (pieces if pieces is not None else [data]):
            try:
                s.sendall(p)
            except (BrokenPipeError, ConnectionResetError):
                break
            if pieces is not None:
                time.sleep(0.05)
        end = time.monotonic() + wait
        while time.monotonic() < end:
            s.settimeout(max(0.05, end - time.monotonic()))
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not d:
                closed = True
                break
            buf += d
            if until_responses is not None and len(parse_responses(buf)[0]) >= until_responses:
                break
    finally:
        s.close()
    return parse_responses(buf)[0], closed
