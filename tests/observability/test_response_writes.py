"""gunicorn sends a response's headers with its first body bytes, in one send
(``observability.response_writes``), through a real gunicorn Response on a real socket pair."""

from __future__ import annotations

import socket
from types import SimpleNamespace

from gunicorn.config import Config
from gunicorn.http import wsgi

from fhirportal.observability.response_writes import coalesce


class _Counting:
    """A real socket that counts its sends."""

    def __init__(self, sock):
        self.sock, self.sends = sock, []

    def sendall(self, data):
        self.sends.append(bytes(data))
        self.sock.sendall(data)

    def sendfile(self, *args, **kwargs):
        return self.sock.sendfile(*args, **kwargs)


def _response(sock, method="GET"):
    request = SimpleNamespace(version=(1, 1), method=method, should_close=lambda: False, headers=[])
    return wsgi.Response(request, sock, Config())


def _received(peer) -> bytes:
    peer.settimeout(2)
    data = b""
    try:
        while chunk := peer.recv(65536):
            data += chunk
    except TimeoutError:
        pass
    return data


def test_headers_and_body_leave_in_one_send():
    coalesce()
    coalesce()  # idempotent
    ours, peer = socket.socketpair()
    with ours, peer:
        counting = _Counting(ours)
        response = _response(counting)
        response.start_response("200 OK", [("Content-Type", "application/fhir+json"), ("Content-Length", "11")])
        response.write(b'{"a":"b"}\r\n')
        response.close()
        ours.shutdown(socket.SHUT_WR)
        assert len(counting.sends) == 1 and counting.sends[0].startswith(b"HTTP/1.1 200 OK\r\n")
        assert counting.sends[0].endswith(b'\r\n\r\n{"a":"b"}\r\n')
        assert _received(peer) == counting.sends[0]


def test_a_response_without_body_bytes_still_sends_its_headers_at_the_end():
    coalesce()
    for method, status, length in (("GET", "204 No Content", None), ("HEAD", "200 OK", "11")):
        ours, peer = socket.socketpair()
        with ours, peer:
            response = _response(ours, method)
            response.start_response(status, [("Content-Length", length)] if length else [])
            response.write(b"")
            response.close()
            ours.shutdown(socket.SHUT_WR)
            received = _received(peer)
            assert received.startswith(f"HTTP/1.1 {status}\r\n".encode()) and received.endswith(b"\r\n\r\n")
