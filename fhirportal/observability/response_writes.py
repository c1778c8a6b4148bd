"""One send for a response's headers and its first body bytes, under gunicorn.

gunicorn writes a response's headers and its body with two ``sendall`` calls. A node killed between the
two (a crash, an OOM kill, ``kill -9``) leaves the load balancer holding headers that promise a body
that never comes: HAProxy retries a request on another node only until response headers arrive, so that
client sees a truncated answer however the proxy is set up. With ``coalesce()`` (called by the
repository's ``gunicorn.conf.py``), the headers are held until the first body bytes (or the end of the
response) and go out with them: a node that dies before that point has sent nothing, which HAProxy's
``retry-on empty-response`` sends on to another node.
"""

from __future__ import annotations

from gunicorn.http import wsgi


class _Headers:
    """Stands in for the socket while gunicorn writes the headers: keeps them."""

    def __init__(self):
        self.data = b""

    def sendall(self, data) -> None:
        self.data += bytes(data)


class _Coalescing:
    """The client's socket, with the held headers prepended to the first thing sent."""

    def __init__(self, sock, held: bytes):
        self._sock = sock
        self._held = held

    def flush(self) -> None:
        if self._held:
            held, self._held = self._held, b""
            self._sock.sendall(held)

    def sendall(self, data) -> None:
        if self._held:
            data, self._held = self._held + bytes(data), b""
        self._sock.sendall(data)

    def sendfile(self, *args, **kwargs):
        self.flush()
        return self._sock.sendfile(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def coalesce() -> None:
    """Patch gunicorn's ``Response`` (idempotent)."""
    if getattr(wsgi.Response, "_fhirportal_coalesced", False):
        return
    send_headers, close = wsgi.Response.send_headers, wsgi.Response.close

    def held_send_headers(self) -> None:
        if self.headers_sent:
            return
        sock, headers = self.sock, _Headers()
        self.sock = headers
        try:
            send_headers(self)
        finally:
            self.sock = _Coalescing(sock, headers.data)

    def flushing_close(self) -> None:
        close(self)
        if isinstance(self.sock, _Coalescing):
            self.sock.flush()  # a response without body bytes: its headers go now

    wsgi.Response.send_headers = held_send_headers
    wsgi.Response.close = flushing_close
    wsgi.Response._fhirportal_coalesced = True
