"""Celery task of the extraction service: stimulus responses of a network in the store."""

from __future__ import annotations

from pathlib import Path

from orisel.core.celery_app import job_task
from orisel.core.jobs import Job
from orisel.core.lifecycle import JobRun, one_task_job
from orisel.core.settings import Settings
from orisel.core.storage import ArtifactStore
from orisel.extraction.extract import extract
from orisel.extraction.inputs import job_network
from orisel.extraction.spec import EXTRACT_TASK, ExtractSpec


def _extract(settings: Settings, store: ArtifactStore, job: Job, out: Path) -> None:
    net = job_network(job.spec, store, settings.work_dir / "artifacts")
    extract(net, ExtractSpec.model_validate(job.spec["extract"]), out, {"job": job.id})


@job_task(EXTRACT_TASK)
def extract_task(run: JobRun, settings: Settings) -> None:
    one_task_job(run, settings, "responses", _extract)
