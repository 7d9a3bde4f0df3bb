"""One way for tests to stand up real orisel stacks: a PostgreSQL database of their own,
a Redis key prefix of their own (never a flush of a shared database), a local store, the
front end and controller, and worker processes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
import redis

from orisel.control.controller import CeleryBroker, Controller
from orisel.control.db import JobDB, open_db
from orisel.rpc.server import Server
from orisel.runtime.settings import QUEUES, Settings
from orisel.server.launch import prepare_database, start_front_end
from tests.procs import env_for, guarded, unique_prefix

PG_ADMIN = os.environ.get("ORISEL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS = "redis://127.0.0.1:6379/0"


@contextlib.contextmanager
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test module; dropped afterwards."""
    name = f"orisel_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True)
    except psycopg.OperationalError:
        pytest.fail("PostgreSQL is not running on 127.0.0.1:5432 (.ci/run starts it)")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://{PG_ADMIN.split('://', 1)[1].rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def require_redis() -> None:
    try:
        redis.Redis.from_url(REDIS, socket_timeout=2).ping()
    except redis.ConnectionError:
        pytest.fail("Redis is not running on 127.0.0.1:6379 (.ci/run starts it)")


@dataclass
class Stack:
    """Settings of one test stack and the processes started for it."""

    settings: Settings
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    server: Server | None = None
    controller: Controller | None = None

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.port}"

    @property
    def db(self) -> JobDB:
        return open_db(self.settings.database_url, self.settings.max_attempts)

    def serve(self, services: tuple[str, ...] = QUEUES) -> str:
        self.server = start_front_end(self.settings, services)
        return self.address

    def start_controller(self) -> Controller:
        prepare_database(self.settings)
        self.controller = Controller(self.db, CeleryBroker(self.settings), self.settings)
        return self.controller.start()

    def worker(
        self,
        queues: str = ",".join(QUEUES),
        pool: str = "solo",
        log: Path | None = None,
        own_group: bool = False,
        threads: int = 1,
    ) -> subprocess.Popen[bytes]:
        """A worker process; own_group: in a process group of its own (to kill it whole)."""
        cmd = [sys.executable, "-m", "orisel", "worker", "--queues", queues, "--pool", pool]
        out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
        proc = subprocess.Popen(
            guarded(cmd),
            env={**env_for(self.settings), "OMP_NUM_THREADS": str(threads)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=own_group,
        )
        self.procs.append(proc)
        return proc

    def stop(self, since: int = 0) -> None:
        """End the processes started after the first `since` (all by default) and forget them:
        a test that failed half-way must not leave a worker to take the next test's jobs."""
        procs, self.procs = self.procs[since:], self.procs[:since]
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def close(self) -> None:
        self.stop()
        if self.controller is not None:
            self.controller.stop()
        if self.server is not None:
            self.server.stop(0)
        self.db.close()
        client = redis.Redis.from_url(self.settings.broker_url)
        keys = list(client.scan_iter(f"{self.settings.broker_prefix}*"))
        if keys:
            client.delete(*keys)


@contextlib.contextmanager
def stack(root: Path, **overrides: object) -> Iterator[Stack]:
    """A stack on its own PostgreSQL database and Redis prefix, under `root`."""
    require_redis()
    with pg_database() as url:
        values: dict[str, object] = {
            "cache_dir": root / "cache",
            "store": "local",
            "store_root": root / "store",
            "work_dir": root / "work",
            "database_url": url,
            "broker_url": REDIS,
            "broker_prefix": unique_prefix(),
            "grpc_port": 0,
            "lease_s": 3.0,
            "controller_interval_s": 0.2,
            "segment_epochs": 1,
            "allow_plaintext": True,
            "auth": "off",
            **overrides,
        }
        s = Stack(Settings(**values))  # type: ignore[arg-type]
        try:
            yield s
        finally:
            s.close()
