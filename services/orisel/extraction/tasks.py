"""Celery task of the extraction service: stimulus responses of a checkpoint in the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orisel.core.artifacts import fetch
from orisel.core.celery_app import app
from orisel.core.jobs import Job, one_task_job
from orisel.core.settings import Settings
from orisel.core.storage import ArtifactRef, ArtifactStore
from orisel.extraction.extract import ExtractSpec, extract
from orisel.extraction.network import load_network
from orisel.extraction.servicer import EXTRACT_TASK


def _extract(settings: Settings, store: ArtifactStore, job: Job, out: Path) -> None:
    ckpt = fetch(store, ArtifactRef(**job.spec["checkpoint"]), settings.work_dir / "artifacts")
    net = load_network(ckpt, device="auto")
    extract(net, ExtractSpec.model_validate(job.spec["extract"]), out, {"job": job.id})


@app.task(name=EXTRACT_TASK, bind=True, max_retries=3, default_retry_delay=5)  # type: ignore[untyped-decorator]
def extract_task(self: Any, job_id: str) -> str:
    return one_task_job(job_id, "responses", _extract)
