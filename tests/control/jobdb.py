"""A job row for the job-database tests: a training job with a spec and an idempotency key."""

from __future__ import annotations

from orisel.control.db import JobDB


def new_job(db: JobDB, key: str = "", spec: dict[str, object] | None = None, **kw: str) -> str:
    job, _ = db.create(
        "training", spec or {"epochs": 3}, task="t", queue="training", idempotency_key=key, **kw
    )
    return job.id
