"""Fault injection for HTTP servers under test: clients that connect and then misbehave.

`silent_clients` opens connections that send nothing (or half a request line) and never
finish, as a half-open or stalled peer does; `closed_within` says whether the server gave up
on such a connection by itself; `raw_request` sends bytes no well-behaved client would.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator


@contextlib.contextmanager
def silent_clients(
    host: str, port: int, count: int, first_bytes: bytes = b""
) -> Iterator[list[socket.socket]]:
    """``count`` connections that send ``first_bytes`` and then nothing, closed on exit."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, port), timeout=30)
            if first_bytes:
                sock.sendall(first_bytes)
            sockets.append(sock)
        yield sockets
    finally:
        for sock in sockets:
            sock.close()


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """True if the server closes ``sock`` (EOF or reset) within ``seconds``."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
    return False


def raw_request(host: str, port: int, data: bytes, timeout: float = 30) -> bytes:
    """Send ``data`` as is; everything the server answers until it closes."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(data)
        chunks = []
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    return b"".join(chunks)


def status_of(answer: bytes) -> int | None:
    """The status code of a raw HTTP answer (None: no answer)."""
    parts = answer.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
