"""The Celery application: one queue per service; tasks take a job id and nothing else.

Celery only carries messages. Whether a job runs, who holds it and what happens when a
worker is lost is the job database's business (control.db, control.lifecycle): a task claims its
job under a lease and a second delivery of the same message finds it taken or ended, so
redelivery is harmless and the broker's visibility timeout is no longer a recovery path
(the controller re-sends what a lost worker held, within one lease).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celery import Celery, Task, signals

from orisel.runtime import metrics
from orisel.runtime.settings import QUEUES, Settings

if TYPE_CHECKING:
    from orisel.control.lifecycle import JobRun

VISIBILITY_TIMEOUT_S = 3600

_started: dict[str, float] = {}


@signals.task_prerun.connect  # type: ignore[untyped-decorator]
def _task_started(task_id: str, **_: Any) -> None:
    _started[task_id] = time.perf_counter()


@signals.task_postrun.connect  # type: ignore[untyped-decorator]
def _task_finished(task_id: str, task: Task, retval: Any = None, **_: Any) -> None:
    t0 = _started.pop(task_id, None)
    if t0 is not None:
        outcome = retval.lower() if isinstance(retval, str) else "unknown"
        metrics.TASK_SECONDS.labels(task.name, outcome).observe(time.perf_counter() - t0)


def _transport_options(settings: Settings) -> dict[str, object]:
    if settings.broker_url.startswith("filesystem://"):
        # Embedded mode: messages are files in one folder that every local process shares.
        folder = settings.work_dir / "broker"
        for sub in ("queue", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        return {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
        }
    return {
        "visibility_timeout": VISIBILITY_TIMEOUT_S,
        **({"global_keyprefix": settings.broker_prefix} if settings.broker_prefix else {}),
    }


def make_celery(settings: Settings) -> Celery:
    app = Celery("orisel", broker=settings.broker_url)
    app.conf.update(
        # Acknowledged after the run, so a worker killed before claiming loses nothing;
        # a redelivered message is harmless (the claim is conditional).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_time_limit=settings.task_time_limit_s,
        task_soft_time_limit=int(settings.task_time_limit_s * 0.95),
        broker_transport_options=_transport_options(settings),
        broker_connection_retry_on_startup=True,
        task_routes={f"orisel.{q}.*": {"queue": q} for q in QUEUES},
        task_default_queue="pipeline",
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
    )
    return app


Body = Callable[["JobRun", Settings], None]

# Task bodies by name, registered when their capability's tasks module is imported; a
# worker's app binds them to the settings its entry point was given (make_worker_app).
_BODIES: dict[str, Body] = {}


def job_task(name: str) -> Callable[[Body], Body]:
    """Register `body(run, settings)` as the task `name`, run in its job's lifecycle."""

    def register(body: Body) -> Body:
        if _BODIES.setdefault(name, body) is not body:
            raise RuntimeError(f"two bodies for the task {name}")
        return body

    return register


def make_worker_app(settings: Settings) -> Celery:
    """A Celery app for a worker whose tasks run with `settings` (not with
    whatever the process environment says): the broker, the database and the store all
    come from the one object the entry point built."""
    from orisel.control.db import open_db
    from orisel.control.lifecycle import run_job

    for queue in QUEUES:
        importlib.import_module(f"orisel.{queue}.tasks")
    app = make_celery(settings)

    def bind(name: str, body: Body) -> None:
        @app.task(name=name)  # type: ignore[untyped-decorator]
        def task(job_id: str) -> str:
            db = open_db(
                settings.database_url, settings.max_attempts, settings.db_idle_in_transaction_s
            )
            return run_job(db, job_id, settings, lambda run: body(run, settings))

    for name, body in _BODIES.items():
        bind(name, body)
    return app
