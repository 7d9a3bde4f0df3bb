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
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from orisel.kernel.errors import (
    AlreadyExists,
    DataError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OriselError,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from orisel.runtime import metrics
from orisel.security import auth

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
    (ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),
)
# Probes (kubelet, load balancers) carry no credentials: health is open to anyone.
# Reflection describes every method: behind authentication unless a deployment opens it.
OPEN_SERVICES = frozenset({health.SERVICE_NAME})
# gRPC's own pushback trailer: a client with a retry policy waits this long, not its backoff.
RETRY_HEADER = "grpc-retry-pushback-ms"
RETRY_AFTER_MS = 2000
READINESS_POLL_S = 2.0
# A health entry that reads SERVING for as long as the process serves at all, for liveness
# probes: a database outage makes the services NOT_SERVING (not ready), and restarting the
# process would not bring the database back.
LIVENESS = "liveness"
Authenticate = Callable[[Sequence[tuple[str, Any]], dict[str, Any]], auth.Principal]


@dataclass(frozen=True)
class Security:
    """How a server admits calls: TLS credentials (None: plaintext) and an authenticator
    (None: every caller is the anonymous admin)."""

    credentials: grpc.ServerCredentials | None = None
    authenticate: Authenticate | None = None
    # A plaintext port serving only grpc.health.v1, for probes that speak no TLS (kubelet).
    health_port: int = 0
    # Reflection answers anyone (grpcurl without a token), as health does.
    open_reflection: bool = False

    @property
    def open_services(self) -> frozenset[str]:
        return OPEN_SERVICES | {reflection.SERVICE_NAME} if self.open_reflection else OPEN_SERVICES


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


def _decoder(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    """The handler's own deserializer, run inside the interceptor: a message that does not
    decode (bad UTF-8, a truncated varint, nesting past protobuf's limit) is the caller's
    mistake, INVALID_ARGUMENT, not the UNKNOWN gRPC answers when decoding fails before any
    interceptor runs."""
    if deserialize is None:
        return lambda raw: raw
    cls = getattr(deserialize, "__self__", None)
    type_name = cls.DESCRIPTOR.full_name if cls is not None else "request"

    def decode(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except DecodeError as exc:
            reason = str(exc).rpartition(": ")[2] or "it does not decode"
            raise InvalidArgument(
                "request", f"a well-formed {type_name} message ({reason})", f"{len(raw)} bytes"
            ) from exc

    return decode


class ErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Authenticates every call of every handler kind (but the open services) and binds its
    principal for the handler; decodes the request itself (see _decoder); turns OriselError
    into its status with the message and any other exception into INTERNAL (logged), never
    UNKNOWN; counts and times every call, streams over their life with the code they really
    ended with (cancelled, deadline). An UNAVAILABLE answer carries a retry hint and asks
    `readiness` to look again at once."""

    def __init__(
        self,
        authenticate: Authenticate | None = None,
        open_services: frozenset[str] = OPEN_SERVICES,
        readiness: Readiness | None = None,
    ) -> None:
        self.authenticate = authenticate
        self.open_services = open_services
        self.readiness = readiness

    async def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        full_service, _, method = details.method.lstrip("/").rpartition("/")
        service = full_service.rpartition(".")[2]
        check = None if full_service in self.open_services else self.authenticate
        decode = _decoder(handler.request_deserializer)
        readiness = self.readiness

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
                trailers: tuple[tuple[str, str], ...] = ()
                if code == grpc.StatusCode.UNAVAILABLE:
                    trailers = ((RETRY_HEADER, str(RETRY_AFTER_MS)),)
                    if readiness is not None:
                        readiness.kick()
                await context.abort(code, str(exc), trailers)
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

        async def requests_of(raw: AsyncIterator[bytes]) -> AsyncIterator[Any]:
            async for item in raw:
                yield decode(item)

        serialize = handler.response_serializer
        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def unary(request: bytes, context: Any) -> Any:
                async with observed("unary", context):
                    return await inner(decode(request), context)

            return grpc.unary_unary_rpc_method_handler(unary, None, serialize)
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            async def stream(request: bytes, context: Any) -> AsyncIterator[Any]:
                async with observed("server_stream", context):
                    async for item in inner_stream(decode(request), context):
                        yield item

            return grpc.unary_stream_rpc_method_handler(stream, None, serialize)
        if handler.stream_unary is not None:
            inner_upload = handler.stream_unary

            async def upload(requests: AsyncIterator[bytes], context: Any) -> Any:
                async with observed("client_stream", context):
                    return await inner_upload(requests_of(requests), context)

            return grpc.stream_unary_rpc_method_handler(upload, None, serialize)
        inner_bidi = handler.stream_stream

        async def bidi(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[Any]:
            async with observed("bidi_stream", context):
                async for item in inner_bidi(requests_of(requests), context):
                    yield item

        return grpc.stream_stream_rpc_method_handler(bidi, None, serialize)


class Readiness:
    """Health follows the server's dependencies: every service reads NOT_SERVING while
    `probe` fails (the job database is away), so a load balancer or kubelet routes calls to
    replicas that can answer them, and SERVING again once it passes. Polled, and at once
    after a call met an outage."""

    def __init__(
        self, servicer: Any, names: Sequence[str], probe: Callable[[], None], interval: float
    ) -> None:
        self.servicer = servicer
        self.names = names
        self.probe = probe
        self.interval = interval
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def kick(self) -> None:
        self._wake.set()

    async def _watch(self) -> None:
        serving = True
        while True:
            try:
                await asyncio.to_thread(self.probe)
                ready = True
            except Exception as exc:
                if serving:
                    log.warning("not ready: %s", exc)
                ready = False
            if ready != serving:
                serving = ready
                status = health_pb2.HealthCheckResponse.SERVING
                if not ready:
                    status = health_pb2.HealthCheckResponse.NOT_SERVING
                for name in self.names:
                    await self.servicer.set(name, status)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)
            self._wake.clear()


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
        self._readiness: Readiness | None = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="grpc-loop")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Any, timeout: float | None = 60) -> Any:
        """Run `coro` on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(
        self,
        services: Sequence[Registration],
        host: str,
        port: int,
        security: Security,
        probe: Callable[[], None] | None,
    ) -> None:
        self.loop.set_default_executor(futures.ThreadPoolExecutor(EXECUTOR_THREADS, "grpc-io"))
        self.health = health.aio.HealthServicer()
        served = ["", *(name for _, _, name in services)]
        readiness = None
        if probe is not None:
            readiness = Readiness(self.health, served, probe, READINESS_POLL_S)
        interceptor = ErrorInterceptor(security.authenticate, security.open_services, readiness)
        server = grpc.aio.server(
            interceptors=[interceptor],
            options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)],
        )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        for add, servicer, _ in services:
            add(servicer, server)
        for name in (*served, LIVENESS):
            await self.health.set(name, health_pb2.HealthCheckResponse.SERVING)
        reflection.enable_server_reflection(
            [reflection.SERVICE_NAME, health.SERVICE_NAME, *served[1:]], server
        )
        if readiness is not None:
            readiness.start()
            self._readiness = readiness
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
        if self._readiness is not None:
            self.call(self._readiness.stop(), timeout=5)
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
    probe: Callable[[], None] | None = None,
) -> Server:
    """Build and start a server on host:port (0: any free port); see Server.port. `probe`
    raises while a dependency is away: health reads NOT_SERVING meanwhile (Readiness)."""
    handle = Server()
    handle._thread.start()
    handle.call(handle._start(services, host, port, security or Security(), probe))
    log.info("serving %s on %s:%d", ", ".join(n for _, _, n in services), host, handle.port)
    return handle


def serve_until_signal(server: Server, grace_s: float) -> None:
    """Block until SIGTERM/SIGINT; then report NOT_SERVING and stop with a grace period."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    server.stop(grace_s)
