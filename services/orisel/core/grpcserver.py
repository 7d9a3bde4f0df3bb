"""The gRPC server factory every service uses: interceptor, health, reflection, shutdown."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from orisel.core import metrics
from orisel.core.errors import (
    DataError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OriselError,
)

log = logging.getLogger(__name__)

# One place maps domain errors to status codes.
STATUS: tuple[tuple[type[OriselError], grpc.StatusCode], ...] = (
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (DataError, grpc.StatusCode.FAILED_PRECONDITION),
)
MAX_MESSAGE_BYTES = 4 * 2**20  # specs and references only: tensors never travel in messages


def status_of(exc: OriselError) -> grpc.StatusCode:
    for cls, code in STATUS:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.INVALID_ARGUMENT


class ErrorInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Turns OriselError raised by a servicer into the matching status with its message, and
    counts and times every call (streams over their whole life) for the metrics."""

    def intercept_service(self, continuation: Callable[[Any], Any], details: Any) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        service, _, method = details.method.lstrip("/").rpartition("/")
        service = service.rpartition(".")[2]

        @contextlib.contextmanager
        def observed(kind: str, context: grpc.ServicerContext) -> Iterator[None]:
            metrics.GRPC_STARTED.labels(service, method, kind).inc()
            t0, code = time.perf_counter(), "OK"
            try:
                yield
            except OriselError as exc:
                code = status_of(exc).name
                context.abort(status_of(exc), str(exc))
            except Exception:
                code = context.code().name if context.code() else "UNKNOWN"  # abort() raised
                raise
            finally:
                metrics.GRPC_HANDLED.labels(service, method, code).inc()
                metrics.GRPC_SECONDS.labels(service, method, kind).observe(time.perf_counter() - t0)

        if handler.unary_unary is not None:
            inner = handler.unary_unary

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                with observed("unary", context):
                    return inner(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                with observed("server_stream", context):
                    yield from inner_stream(request, context)

            return grpc.unary_stream_rpc_method_handler(
                stream, handler.request_deserializer, handler.response_serializer
            )
        return handler


Registration = tuple[Callable[[Any, grpc.Server], None], Any, str]  # (add_fn, servicer, name)


def start_server(
    services: Sequence[Registration], host: str = "127.0.0.1", port: int = 0, workers: int = 16,
) -> tuple[grpc.Server, int, health.HealthServicer]:  # fmt: skip
    """Build and start a server; returns (server, bound port, health servicer)."""
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers),
        interceptors=[ErrorInterceptor()],
        options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES)],
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [reflection.SERVICE_NAME, health.SERVICE_NAME]
    for add, servicer, name in services:
        add(servicer, server)
        names.append(name)
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection(names, server)
    bound = server.add_insecure_port(f"{host}:{port}")
    server.start()
    log.info("serving %s on %s:%d", ", ".join(n for _, _, n in services), host, bound)
    return server, bound, health_servicer


def serve_until_signal(
    server: grpc.Server, health_servicer: health.HealthServicer, grace_s: float
) -> None:
    """Block until SIGTERM/SIGINT; then report NOT_SERVING and stop with a grace period."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    health_servicer.enter_graceful_shutdown()
    server.stop(grace_s).wait()
