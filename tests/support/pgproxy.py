"""A TCP proxy in front of PostgreSQL that loses the answer to a commit that has landed.

The commit reaches the server and is applied; the server's `CommandComplete COMMIT` never
reaches the client, whose connection is closed instead. That is what a network partition or a
server-side connection kill at the wrong moment does, and what a client must survive without
doing its work twice. Which commits to lose: those of a transaction whose statements (as the
client sent them) contain `marker`, the first `times` of them.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

COMMIT_DONE = b"C\x00\x00\x00\x0bCOMMIT\x00"  # CommandComplete, tag "COMMIT"
TAIL = len(COMMIT_DONE)


@dataclass
class LosingProxy:
    """Listens on 127.0.0.1:`port`, forwards to `target`; see the module docstring."""

    target: tuple[str, int]
    marker: bytes
    times: int = 1
    lost: int = 0
    port: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _listener: socket.socket | None = None

    def url(self, sqlalchemy_url: str) -> str:
        """`sqlalchemy_url` (on the target) routed through this proxy."""
        host, port = self.target
        return sqlalchemy_url.replace(f"@{host}:{port}/", f"@127.0.0.1:{self.port}/", 1)

    def serve(self) -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        self._listener, self.port = listener, listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            armed = threading.Event()
            threading.Thread(target=self._up, args=(client, server, armed), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, armed), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, armed: threading.Event) -> None:
        """Client to server, watching for the marker."""
        seen = b""
        while chunk := _recv(client):
            if self.marker in seen[-len(self.marker) :] + chunk:
                armed.set()
            seen = chunk
            with suppress(OSError):
                server.sendall(chunk)
        _close(client, server)

    def _down(self, server: socket.socket, client: socket.socket, armed: threading.Event) -> None:
        """Server to client, losing the commit's answer once armed (while `times` lasts)."""
        tail = b""
        while chunk := _recv(server):
            if armed.is_set() and COMMIT_DONE in tail + chunk and self._take():
                _close(client, server)
                return
            tail = (tail + chunk)[-TAIL:]
            with suppress(OSError):
                client.sendall(chunk)
        _close(client, server)

    def _take(self) -> bool:
        with self._lock:
            if self.lost >= self.times:
                return False
            self.lost += 1
            return True


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


@contextmanager
def losing_proxy(target: tuple[str, int], marker: bytes, times: int = 1) -> Iterator[LosingProxy]:
    proxy = LosingProxy(target, marker, times)
    proxy.serve()
    try:
        yield proxy
    finally:
        proxy.close()
