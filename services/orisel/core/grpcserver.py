"""The gRPC server every service uses: asyncio (a stream costs a coroutine, not a thread),
one interceptor mapping domain errors to status codes, health, reflection, shutdown.

The server runs its own event loop on a background thread and is driven through a small
synchronous handle, so launchers and tests start and stop it like any other object.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from orisel.core import auth, metrics
from orisel.core.errors import (
    AlreadyExists,
    DataError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OriselError,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)

log = logging.getLogger(__name__)

# One place maps domain errors to status codes.
STATUS: tuple[tuple[type[OriselError], grpc.StatusCode], ...] = (
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (DataError, grpc.StatusCode.FAILED_PRECONDITION),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
)
# Probes (kubelet, load balancers) carry no credentials: health is open to anyone.
OPEN_SERVICES = frozenset({"grpc.health.v1.Health"})
Authenticate = Callable[[Sequence[tuple[str, Any]], dict[str, Any]], auth.Principal]


@dataclass(frozen=True)
class Security:
    """How a server admits calls: TLS credentials (None: plaintext) and an authenticator
    (None: every caller is the anonymous admin)."""

    credentials: grpc.ServerCredentials | None = None
    authenticate: Authenticate | None = None
    # A plaintext port serving only grpc.health.v1, for probes that speak no TLS (kubelet).
    health_port: int = 0


MAX_MESSAGE_BYTES = 4 * 2**20  # specs and references only: tensors never travel in messages
EXECUTOR_THREADS = 32  # blocking database and store calls, run off the event loop


def status_of(exc: OriselError) -> grpc.StatusCode:
    for cls, code in STATUS:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.INVALID_ARGUMENT


def _code_of(exc: BaseException, context: Any, budget: float | None, elapsed: float) -> Any:
    """The status a call really ended with. A cancelled coroutine is a client that went away,
    or one whose deadline passed (the server cancels slightly ahead of the clock)."""
    if isinstance(exc, asyncio.CancelledError):
        expired = budget is not None and elapsed >= budget - 0.1
        return grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
    code = context.code()
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.INTERNAL


class ErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Authenticates every call (but health) and binds its principal for the handler; turns
    OriselError into its status with the message and any other exception into INTERNAL
    (logged), never UNKNOWN; counts and times every call, streams over their life with the
    code they really ended with (cancelled, deadline)."""

    def __init__(self, authenticate: Authenticate | None = None) -> None:
        self.authenticate = authenticate

    async def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        full_service, _, method = details.method.lstrip("/").rpartition("/")
        service = full_service.rpartition(".")[2]
        check = None if full_service in OPEN_SERVICES else self.authenticate

        @contextlib.asynccontextmanager
        async def observed(kind: str, context: Any) -> AsyncIterator[None]:
            metrics.GRPC_STARTED.labels(service, method, kind).inc()
            t0, code = time.perf_counter(), grpc.StatusCode.OK
            budget = context.time_remaining()
            bound = None
            try:
                if check is not None:
                    principal = await asyncio.to_thread(
                        check, context.invocation_metadata() or (), context.auth_context()
                    )
                    bound = auth.CURRENT.set(principal)
                yield
            except OriselError as exc:
                code = status_of(exc)
                await context.abort(code, str(exc))
            except grpc.aio.AbortError as exc:
                code = _code_of(exc, context, budget, time.perf_counter() - t0)
                raise
            except asyncio.CancelledError as exc:
                code = _code_of(exc, context, budget, time.perf_counter() - t0)
                raise
            except Exception:
                log.exception("%s/%s failed", service, method)
                code = grpc.StatusCode.INTERNAL
                await context.abort(code, "internal error: the server logged it")
            finally:
                if bound is not None:
                    auth.CURRENT.reset(bound)
                metrics.GRPC_HANDLED.labels(service, method, code.name).inc()
                metrics.GRPC_SECONDS.labels(service, method, kind).observe(time.perf_counter() - t0)

        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def unary(request: Any, context: Any) -> Any:
                async with observed("unary", context):
                    return await inner(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
                async with observed("server_stream", context):
                    async for item in inner_stream(request, context):
                        yield item

            return grpc.unary_stream_rpc_method_handler(
                stream, handler.request_deserializer, handler.response_serializer
            )
        if handler.stream_unary is not None:
            inner_upload = handler.stream_unary

            async def upload(requests: Any, context: Any) -> Any:
                async with observed("client_stream", context):
                    return await inner_upload(requests, context)

            return grpc.stream_unary_rpc_method_handler(
                upload, handler.request_deserializer, handler.response_serializer
            )
        return handler


Registration = tuple[Callable[[Any, Any], None], Any, str]  # (add_fn, servicer, name)


class Server:
    """A started grpc.aio server on its own loop thread: `port`, `stop()`, `wait()`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self.health: Any = None
        self.health_port = 0
        self._server: Any = None
        self._probes: Any = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="grpc-loop")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Any, timeout: float | None = 60) -> Any:
        """Run `coro` on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(
        self, services: Sequence[Registration], host: str, port: int, security: Security
    ) -> None:
        self.loop.set_default_executor(futures.ThreadPoolExecutor(EXECUTOR_THREADS, "grpc-io"))
        server = grpc.aio.server(
            interceptors=[ErrorInterceptor(security.authenticate)],
            options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)],
        )
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        names = [reflection.SERVICE_NAME, health.SERVICE_NAME]
        for add, servicer, name in services:
            add(servicer, server)
            names.append(name)
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection(names, server)
        if security.credentials is not None:
            self.port = server.add_secure_port(f"{host}:{port}", security.credentials)
        else:
            self.port = server.add_insecure_port(f"{host}:{port}")
        await server.start()
        self._server = server
        if security.health_port:
            probes = grpc.aio.server()
            health_pb2_grpc.add_HealthServicer_to_server(self.health, probes)
            self.health_port = probes.add_insecure_port(f"{host}:{security.health_port}")
            await probes.start()
            self._probes = probes

    def stop(self, grace: float | None = None) -> None:
        if self._stopped.is_set():
            return
        with contextlib.suppress(Exception):
            self.call(self.health.enter_graceful_shutdown(), timeout=5)
        self.call(self._server.stop(grace), timeout=(grace or 0) + 30)
        if self._probes is not None:
            self.call(self._probes.stop(0), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)


def start_server(
    services: Sequence[Registration],
    host: str = "127.0.0.1",
    port: int = 0,
    security: Security | None = None,
) -> Server:
    """Build and start a server on host:port (0: any free port); see Server.port."""
    handle = Server()
    handle._thread.start()
    handle.call(handle._start(services, host, port, security or Security()))
    log.info("serving %s on %s:%d", ", ".join(n for _, _, n in services), host, handle.port)
    return handle


def serve_until_signal(server: Server, grace_s: float) -> None:
    """Block until SIGTERM/SIGINT; then report NOT_SERVING and stop with a grace period."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(grace_s)
