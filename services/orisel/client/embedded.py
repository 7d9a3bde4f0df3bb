"""Embedded mode: every service and a worker on one machine, with no servers to install.

The artifact store is a local folder, Celery's broker is its filesystem transport and its
result backend a SQLite file, all under one home folder; the five gRPC services share one
server on a loopback port, and one worker process serves every queue. Clients talk to it
exactly as they talk to a deployed stack.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orisel.core.grpcserver import start_server
from orisel.core.settings import QUEUES, Settings, settings_env

SERVICES = ("training", "extraction", "scoring", "ablation", "pipeline")
STARTUP_S = 60.0


def embedded_settings(base: Settings, home: Path, port: int = 0) -> Settings:
    home = home.resolve()
    return base.model_copy(
        update={
            "store": "local",
            "store_root": home / "store",
            "work_dir": home / "work",
            "broker_url": "filesystem://",
            "result_backend": f"db+sqlite:///{home / 'results.sqlite'}",
            "broker_prefix": "",
            "grpc_host": "127.0.0.1",
            "grpc_port": port,
            "pipeline_poll_s": 1.0,
        }
    )


class Embedded:
    """`with Embedded(settings) as stack:` serves on stack.address until the block ends."""

    def __init__(self, settings: Settings, log: Path | None = None, concurrency: int = 2) -> None:
        self.settings = settings
        self.concurrency = concurrency
        self.log = log
        self.worker: subprocess.Popen[bytes] | None = None
        self.server: grpc.Server | None = None
        self.address = ""

    def __enter__(self) -> Embedded:
        import importlib

        # Tasks sent by the services must reach the worker: both sides use these settings.
        os.environ.update(settings_env(self.settings))
        from orisel.core.settings import get_settings

        get_settings.cache_clear()
        regs = [
            importlib.import_module(f"orisel.{name}.servicer").registration(self.settings)
            for name in SERVICES
        ]
        self.server, port, _ = start_server(regs, "127.0.0.1", self.settings.grpc_port)
        self.address = f"127.0.0.1:{port}"
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
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
            try:
                self.worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()
        if self.server is not None:
            self.server.stop(self.settings.grace_s).wait()
