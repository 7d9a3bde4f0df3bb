"""The Celery application: one queue per service, settings for work that must not be lost.

Tasks are acknowledged only when done (acks_late) and requeued if their worker dies
(reject_on_worker_lost); each worker takes one task at a time (prefetch 1), so a long task
never holds others hostage. The broker's visibility timeout exceeds the hard time limit, so
a running task is never handed to a second worker while the first still works on it.
"""

from __future__ import annotations

from celery import Celery

from orisel.core.settings import QUEUES, Settings, get_settings


def make_celery(settings: Settings) -> Celery:
    app = Celery("orisel", broker=settings.broker_url, backend=settings.result_backend)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.task_time_limit_s,
        task_soft_time_limit=int(settings.task_time_limit_s * 0.95),
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout_s or settings.task_time_limit_s + 600,
            **({"global_keyprefix": settings.broker_prefix} if settings.broker_prefix else {}),
        },
        result_backend_transport_options=(
            {"global_keyprefix": settings.broker_prefix} if settings.broker_prefix else {}
        ),
        task_routes={f"orisel.{q}.*": {"queue": q} for q in QUEUES},
        task_default_queue="pipeline",
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        include=["orisel.training.tasks", "orisel.scoring.tasks", "orisel.ablation.tasks"],
    )
    return app


app = make_celery(get_settings())
