"""Start orisel's processes: a front end (gRPC only: database and store, no broker, no
torch), the controller (dispatch and reconcile), a Celery worker."""

from __future__ import annotations

import importlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence

from orisel.core import metrics
from orisel.core.grpcserver import Registration, Server, serve_until_signal, start_server
from orisel.core.jobservice import Backends, jobs_registration
from orisel.core.settings import QUEUES, Settings

log = logging.getLogger(__name__)


def prepare_database(settings: Settings) -> None:
    """Bring the schema to head unless a deployment's migration Job owns that step."""
    if settings.db_auto_migrate:
        from orisel.core.migrate import upgrade

        upgrade(settings.database_url)


def registrations(b: Backends, services: Sequence[str]) -> list[Registration]:
    """JobService plus the named domain services, all on the same backends."""
    regs = [jobs_registration(b)]
    for name in services:
        regs.append(importlib.import_module(f"orisel.{name}.servicer").registration(b))
    return regs


def start_front_end(settings: Settings, services: Sequence[str]) -> Server:
    prepare_database(settings)
    return start_server(
        registrations(Backends(settings), services), settings.grpc_host, settings.grpc_port
    )


def serve(settings: Settings, service: str) -> None:
    server = start_front_end(settings, [service])
    sys.stderr.write(f"orisel {service} service on {settings.grpc_host}:{server.port}\n")
    metrics.serve(settings.metrics_port, settings.metrics_host)
    serve_until_signal(server, settings.grace_s)


def run_controller(settings: Settings) -> None:
    """The controller in the foreground until SIGTERM/SIGINT; exports job and queue gauges."""
    from orisel.core.controller import Controller, celery_sender
    from orisel.core.db import open_db

    prepare_database(settings)
    controller = Controller(
        open_db(settings.database_url, settings.max_attempts), celery_sender(settings), settings
    )
    metrics.watch_queues(settings.broker_url, settings.broker_prefix, QUEUES)
    metrics.serve(settings.metrics_port, settings.metrics_host)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    controller.start()
    sys.stderr.write(f"orisel controller on {settings.database_url.split('@')[-1]}\n")
    stop.wait()
    controller.stop()


def run_worker(settings: Settings, queues: Sequence[str], concurrency: int, pool: str) -> None:
    from orisel.core.celery_app import app

    prepare_database(settings)
    # Solo and thread pools run tasks in this process, so its /metrics sees them.
    metrics.serve(settings.metrics_port, settings.metrics_host)
    app.worker_main(
        [
            "worker",
            "--queues",
            ",".join(queues),
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "INFO",
            "--without-gossip",
            "--without-mingle",
            "--pool",
            pool,
        ]
    )
