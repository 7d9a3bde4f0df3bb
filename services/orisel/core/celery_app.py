"""The Celery application: one queue per service, settings for work that must not be lost.

Tasks are acknowledged only when done (acks_late) and requeued if their worker dies
(reject_on_worker_lost); each worker takes one task at a time (prefetch 1), so a long task
never holds others hostage. The broker's visibility timeout exceeds the hard time limit, so
a running task is never handed to a second worker while the first still works on it.
"""

from __future__ import annotations

import inspect
import time
from typing import Any

from celery import Celery, Task, signals

from orisel.core import metrics
from orisel.core.settings import QUEUES, Settings, get_settings


class JobTask(Task):  # type: ignore[misc]
    """Every orisel task: an error that escapes it marks its job FAILED, so no job hangs."""

    def on_failure(
        self, exc: Exception, task_id: str, args: tuple[Any, ...], kwargs: dict[str, Any],
        einfo: object,
    ) -> None:  # fmt: skip
        from orisel.core.jobs import JobState, open_job

        job_id = inspect.signature(self.run).bind(*args, **kwargs).arguments.get("job_id")
        if not isinstance(job_id, str):
            return
        _, _, jobs, job = open_job(job_id)
        if not job.state.done:
            jobs.update(
                job_id, state=JobState.FAILED, error=f"{self.name}: {type(exc).__name__}: {exc}"
            )


_started: dict[str, float] = {}


@signals.task_prerun.connect  # type: ignore[untyped-decorator]
def _task_started(task_id: str, **_: Any) -> None:
    _started[task_id] = time.perf_counter()


@signals.task_postrun.connect  # type: ignore[untyped-decorator]
def _task_finished(task_id: str, task: Task, state: str | None = None, **_: Any) -> None:
    t0 = _started.pop(task_id, None)
    if t0 is not None:
        metrics.TASK_SECONDS.labels(task.name, (state or "UNKNOWN").lower()).observe(
            time.perf_counter() - t0
        )


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
        "visibility_timeout": settings.visibility_timeout_s or settings.task_time_limit_s + 600,
        **({"global_keyprefix": settings.broker_prefix} if settings.broker_prefix else {}),
    }


def make_celery(settings: Settings) -> Celery:
    app = Celery(
        "orisel", broker=settings.broker_url, backend=settings.result_backend, task_cls=JobTask
    )
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit_s,
        task_soft_time_limit=int(settings.task_time_limit_s * 0.95),
        broker_transport_options=_transport_options(settings),
        result_backend_transport_options=(
            {"global_keyprefix": settings.broker_prefix}
            if settings.broker_prefix and settings.result_backend.startswith("redis")
            else {}
        ),
        task_routes={f"orisel.{q}.*": {"queue": q} for q in QUEUES},
        task_default_queue="pipeline",
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        include=[f"orisel.{q}.tasks" for q in QUEUES],
    )
    return app


app = make_celery(get_settings())
