"""A TCP proxy on the loopback in front of a real server (PostgreSQL), to cut it off and
bring it back: an outage of the shared database without stopping it for anyone else."""

from __future__ import annotations

import contextlib
import queue
import select
import socket
import socketserver
import threading
import time
from types import TracebackType


class Proxy:
    """Forwards `host`:`port` to 127.0.0.1:`target`. cut() refuses new connections and
    drops open ones, as a database host that went away; restore() serves on the same port.
    On another address than the loopback it is how a network namespace reaches a server;
    delay_s: what the client sends reaches the server that much later (a link's latency one
    way, as netem would add on the client's end; the server's answers pass at once).
    freeze() holds every byte either way while the connections stay open, as a partition
    that drops all traffic does, until thaw()."""

    def __init__(self, target: int, host: str = "127.0.0.1", delay_s: float = 0.0) -> None:
        self.target = target
        self.host = host
        self.delay_s = delay_s
        self.port = 0
        self._server: socketserver.ThreadingTCPServer | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._flowing = threading.Event()
        self._flowing.set()

    def freeze(self) -> None:
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

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
                    if proxy.delay_s:
                        _pump_late(self.request, upstream, proxy.delay_s)
                    else:
                        _pump(self.request, upstream, proxy._flowing)
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


def _pump(a: socket.socket, b: socket.socket, flowing: threading.Event) -> None:
    peers = {a: b, b: a}
    with contextlib.suppress(OSError):  # either side cut: the connection ends
        while True:
            flowing.wait()  # frozen: what either side sends waits in its socket
            readable, _, _ = select.select(list(peers), [], [], 0.05)
            if not flowing.is_set():
                continue
            for s in readable:
                data = s.recv(65536)
                if not data:
                    return
                peers[s].sendall(data)


def _pump_late(client: socket.socket, server: socket.socket, delay_s: float) -> None:
    """As _pump, each chunk from `client` held back `delay_s`, in order, while more arrive."""
    held: queue.Queue[tuple[float, bytes]] = queue.Queue()

    def send_late() -> None:
        with contextlib.suppress(OSError):
            while True:
                due, data = held.get()
                if not data:  # the client ended
                    break
                time.sleep(max(0.0, due - time.monotonic()))
                server.sendall(data)
        with contextlib.suppress(OSError):  # and so does the connection
            server.shutdown(socket.SHUT_RDWR)

    sender = threading.Thread(target=send_late, daemon=True, name="proxy-late")
    sender.start()
    answers = threading.Thread(target=_copy, args=(server, client), daemon=True)
    answers.start()
    with contextlib.suppress(OSError):
        while data := client.recv(65536):
            held.put((time.monotonic() + delay_s, data))
    held.put((0.0, b""))
    sender.join()
    answers.join()


def _copy(a: socket.socket, b: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := a.recv(65536):
            b.sendall(data)
    with contextlib.suppress(OSError):
        b.shutdown(socket.SHUT_RDWR)
