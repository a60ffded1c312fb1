"""Raw HTTP on a socket, for requests no client library would send (slow bodies, bad
framing): the status line of the answer."""

from __future__ import annotations

import socket


def status_of(sock: socket.socket) -> int:
    """The status code of the answer on ``sock`` (0: closed without one); raises on timeout."""
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return 0
        data += chunk
    return int(data.split(b" ", 2)[1])
