"""Embedded mode: every service, the controller and a worker on one machine, no servers.

The artifact store is a local folder, the job database a SQLite file (the same code and
migrations as PostgreSQL) and Celery's broker its filesystem transport, all under one home
folder; the five gRPC services and JobService share one server on a loopback port, the
controller runs in this process, and one worker process serves every queue. Clients talk
to it exactly as they talk to a deployed stack.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orisel.control.controller import Controller
from orisel.kernel.errors import FailedPrecondition, NotFound
from orisel.rpc.server import Server
from orisel.runtime.local import runtime_file, write_runtime
from orisel.runtime.settings import QUEUES, Settings, settings_env
from orisel.security.auth import USER_CHARS, Tokens

STARTUP_S = 60.0


HOME_MARKER = ".orisel-home"


def check_home(home: Path) -> None:
    """Refuse a home folder that is not new, empty or an earlier `orisel up`'s: embedded mode
    writes its store, database and logs there."""
    if home.exists() and not home.is_dir():
        raise FailedPrecondition(f"--home {home} is a file (left untouched): name a folder")
    ours = (home / HOME_MARKER).is_file() or (home / "jobs.sqlite").is_file()
    if home.is_dir() and any(home.iterdir()) and not ours:
        raise FailedPrecondition(
            f"--home {home} holds files that are not an `orisel up` home (left untouched): name "
            "a new or empty folder, or the --home of an earlier `orisel up`"
        )
    home.mkdir(parents=True, exist_ok=True)
    (home / HOME_MARKER).write_text("the home of `orisel up`: its store, job database, logs\n")


def embedded_database_url(home: Path) -> str:
    return f"sqlite:///{home.resolve() / 'jobs.sqlite'}"


def embedded_settings(base: Settings, home: Path, port: int = 0) -> Settings:
    home = home.resolve()
    return base.model_copy(
        update={
            "store": "local",
            "store_root": home / "store",
            "work_dir": home / "work",
            "database_url": embedded_database_url(home),
            "db_auto_migrate": True,
            "broker_url": "filesystem://",
            "broker_prefix": "",
            "grpc_host": "127.0.0.1",
            "grpc_port": port,
            # Loopback only, and still no call without the owner's token (see Embedded).
            "allow_plaintext": True,
            "auth": "token",
        }
    )


def _local_user() -> str:
    name = "".join(ch if ch in USER_CHARS else "-" for ch in getpass.getuser())[:64]
    return name or "owner"


class Embedded:
    """`with Embedded(settings) as stack:` serves on stack.address until the block ends.

    At start it issues an admin token for the local user, written to <home>/token and to the
    runtime file clients read for this address (both 0600), and revokes it at the end: any
    other local user reaching the port gets UNAUTHENTICATED."""

    def __init__(self, settings: Settings, log: Path | None = None, concurrency: int = 2) -> None:
        self.settings = settings
        self.concurrency = concurrency
        self.log = log
        self.worker: subprocess.Popen[bytes] | None = None
        self.server: Server | None = None
        self.controller: Controller | None = None
        self.address = ""
        self.token = ""
        self._token_id = ""

    def __enter__(self) -> Embedded:
        from orisel.control.controller import CeleryBroker
        from orisel.control.db import open_db
        from orisel.server.launch import start_front_end

        self.settings.store_root.parent.mkdir(parents=True, exist_ok=True)  # the home folder
        # The filesystem broker has no host by design; kombu warns of it on every connection.
        logging.getLogger("kombu.connection").setLevel(logging.ERROR)
        # Tasks sent by the controller must reach the worker: both sides use these settings.
        os.environ.update(settings_env(self.settings))
        from orisel.runtime.settings import get_settings

        get_settings.cache_clear()
        self.server = start_front_end(self.settings, QUEUES)
        self.address = f"127.0.0.1:{self.server.port}"
        db = open_db(
            self.settings.database_url,
            self.settings.max_attempts,
            self.settings.db_idle_in_transaction_s,
        )
        self.token = Tokens(db).create(_local_user(), admin=True)
        self._token_id = self.token.split("_")[1]
        home = self.settings.store_root.parent
        fd = os.open(home / "token", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.token + "\n")
        write_runtime(self.address, self.token, home)
        self.controller = Controller(db, CeleryBroker(self.settings), self.settings).start()
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        # Two single-threaded worker processes: one can advance the pipeline or run a second
        # analysis while the other trains, and together they fill a small machine's cores.
        cmd = [sys.executable, "-m", "orisel", "worker", "--queues", ",".join(QUEUES)]
        cmd += ["--pool", "prefork", "--concurrency", str(self.concurrency)]
        self.worker = subprocess.Popen(
            cmd,
            env={**os.environ, **settings_env(self.settings), "OMP_NUM_THREADS": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + STARTUP_S
        with grpc.insecure_channel(self.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while time.monotonic() < deadline:
                try:
                    if stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status == 1:
                        return
                except grpc.RpcError:
                    time.sleep(0.1)
        raise RuntimeError(f"embedded services did not become healthy on {self.address}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
        if self.controller is not None:
            self.controller.stop()
        if self.server is not None:
            self.server.stop(self.settings.grace_s)
        if self._token_id:
            from orisel.control.db import open_db

            db = open_db(
                self.settings.database_url,
                self.settings.max_attempts,
                self.settings.db_idle_in_transaction_s,
            )
            with contextlib.suppress(NotFound):
                Tokens(db).revoke(self._token_id)
            runtime_file(self.address).unlink(missing_ok=True)
