"""A TCP proxy on the loopback in front of a real server (PostgreSQL), to cut it off and
bring it back: an outage of the shared database without stopping it for anyone else."""

from __future__ import annotations

import contextlib
import select
import socket
import socketserver
import threading
from types import TracebackType


class Proxy:
    """Forwards `host`:`port` to 127.0.0.1:`target`. cut() refuses new connections and
    drops open ones, as a database host that went away; restore() serves on the same port.
    On another address than the loopback it is how a network namespace reaches a server."""

    def __init__(self, target: int, host: str = "127.0.0.1") -> None:
        self.target = target
        self.host = host
        self.port = 0
        self._server: socketserver.ThreadingTCPServer | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def restore(self) -> None:
        if self._server is not None:
            return
        proxy = self

        class Pump(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                upstream = socket.create_connection(("127.0.0.1", proxy.target))
                with proxy._lock:
                    proxy._open |= {self.request, upstream}
                try:
                    _pump(self.request, upstream)
                finally:
                    upstream.close()

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        server = socketserver.ThreadingTCPServer((self.host, self.port), Pump)
        server.daemon_threads = True
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True, name="proxy").start()
        self._server = server

    def cut(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self._open.clear()

    def __enter__(self) -> Proxy:
        self.restore()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cut()


def _pump(a: socket.socket, b: socket.socket) -> None:
    peers = {a: b, b: a}
    with contextlib.suppress(OSError):  # either side cut: the connection ends
        while True:
            readable, _, _ = select.select(list(peers), [], [])
            for s in readable:
                data = s.recv(65536)
                if not data:
                    return
                peers[s].sendall(data)
