"""Celery task of the extraction service: stimulus responses of a checkpoint in the store."""

from __future__ import annotations

from pathlib import Path

from orisel.core.artifacts import fetch
from orisel.core.celery_app import job_task
from orisel.core.jobs import Job
from orisel.core.lifecycle import JobRun, one_task_job
from orisel.core.settings import Settings
from orisel.core.storage import ArtifactRef, ArtifactStore
from orisel.extraction.extract import extract
from orisel.extraction.network import load_network
from orisel.extraction.servicer import EXTRACT_TASK
from orisel.extraction.spec import ExtractSpec


def _extract(settings: Settings, store: ArtifactStore, job: Job, out: Path) -> None:
    ckpt = fetch(store, ArtifactRef(**job.spec["checkpoint"]), settings.work_dir / "artifacts")
    net = load_network(ckpt, device="auto")
    extract(net, ExtractSpec.model_validate(job.spec["extract"]), out, {"job": job.id})


@job_task(EXTRACT_TASK)
def extract_task(run: JobRun, settings: Settings) -> None:
    one_task_job(run, settings, "responses", _extract)
