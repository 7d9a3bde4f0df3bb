"""Start orisel's processes: a front end (gRPC only: database and store, no broker, no
torch), the controller (dispatch and reconcile), a Celery worker."""

from __future__ import annotations

import importlib
import logging
import signal
import sys
import threading
from collections.abc import Sequence

import grpc

from orisel.control.db import JobDB
from orisel.kernel.errors import FailedPrecondition
from orisel.rpc.jobservice import Backends, jobs_registration
from orisel.rpc.server import (
    Registration,
    Security,
    Server,
    serve_until_signal,
    start_server,
)
from orisel.runtime import metrics
from orisel.runtime.settings import QUEUES, Settings
from orisel.security import auth

log = logging.getLogger(__name__)


def prepare_database(settings: Settings) -> None:
    """Bring the schema to head unless a deployment's migration Job owns that step."""
    if settings.db_auto_migrate:
        from orisel.control.migrate import upgrade

        upgrade(settings.database_url)


def registrations(b: Backends, services: Sequence[str]) -> list[Registration]:
    """JobService, ArtifactService and the named domain services, on the same backends."""
    from orisel.artifacts.servicer import registration as artifacts_registration

    regs = [jobs_registration(b), artifacts_registration(b)]
    for name in services:
        regs.append(importlib.import_module(f"orisel.{name}.servicer").registration(b))
    return regs


LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def security(settings: Settings, db: JobDB) -> Security:
    """TLS (mutual when a client CA is set) and authentication as the settings say; plaintext
    and `auth=off` only on a loopback address and only when asked for."""
    loopback = settings.grpc_host in LOOPBACK
    credentials = None
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        client_ca = settings.tls_client_ca_file
        credentials = grpc.ssl_server_credentials(
            [(settings.tls_key_file.read_bytes(), settings.tls_cert_file.read_bytes())],
            root_certificates=client_ca.read_bytes() if client_ca else None,
            require_client_auth=client_ca is not None,
        )
    elif not (settings.allow_plaintext and loopback):
        raise FailedPrecondition(
            f"no TLS for {settings.grpc_host}: set ORISEL_TLS_CERT_FILE and ORISEL_TLS_KEY_FILE "
            "(plaintext only with ORISEL_ALLOW_PLAINTEXT=true on a loopback address)"
        )
    if settings.auth == "off":
        if not loopback:
            raise FailedPrecondition(
                f"ORISEL_AUTH=off serves anyone as admin: only on a loopback address, not "
                f"{settings.grpc_host}"
            )
        return Security(credentials, None, settings.health_port, settings.open_reflection)
    jwts = None
    if settings.oidc_jwks_file is not None:
        config = auth.OidcConfig(
            settings.oidc_jwks_file,
            settings.oidc_issuer,
            settings.oidc_audience,
            settings.oidc_admin_group,
        )
        jwts = auth.Jwts(config)
    authenticate = auth.Authenticator(auth.Tokens(db), jwts)
    return Security(credentials, authenticate, settings.health_port, settings.open_reflection)


def start_front_end(settings: Settings, services: Sequence[str]) -> Server:
    prepare_database(settings)
    backends = Backends(settings)
    return start_server(
        registrations(backends, services),
        settings.grpc_host,
        settings.grpc_port,
        security(settings, backends.db),
        probe=backends.db.ping,
    )


def serve(settings: Settings, service: str) -> None:
    server = start_front_end(settings, [service])
    sys.stderr.write(f"orisel {service} service on {settings.grpc_host}:{server.port}\n")
    metrics.serve(settings.metrics_port, settings.metrics_host)
    serve_until_signal(server, settings.grace_s)


def run_controller(settings: Settings) -> None:
    """The controller in the foreground until SIGTERM/SIGINT; exports job and queue gauges."""
    from orisel.control.controller import CeleryBroker, Controller
    from orisel.control.db import open_db

    prepare_database(settings)
    controller = Controller(
        open_db(settings.database_url, settings.max_attempts, settings.db_idle_in_transaction_s),
        CeleryBroker(settings),
        settings,
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
    from orisel.control.celery_app import make_worker_app

    prepare_database(settings)
    app = make_worker_app(settings)
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
