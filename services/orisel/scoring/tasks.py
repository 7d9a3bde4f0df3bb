"""Celery task of the scoring service: `orisel tune` on a network from the store."""

from __future__ import annotations

from pathlib import Path

from orisel.core.celery_app import job_task
from orisel.core.jobs import Job
from orisel.core.lifecycle import JobRun, one_task_job
from orisel.core.settings import Settings
from orisel.core.storage import ArtifactStore
from orisel.extraction.inputs import job_images, job_network
from orisel.report.outputs import tune
from orisel.scoring.spec import SCORE_TASK, TuneSpec


def _tune(settings: Settings, store: ArtifactStore, job: Job, out: Path) -> None:
    cache = settings.work_dir / "artifacts"
    net = job_network(job.spec, store, cache)
    got = job_images(job.spec, net, store, cache, settings.data, settings.cache_dir)
    images, labels, n_classes = (got.images, got.labels, got.n_classes) if got else (None, None, 10)
    spec = TuneSpec.model_validate(job.spec["tune"])
    tune(net, spec, out, images, labels, n_classes, {"job": job.id})


@job_task(SCORE_TASK)
def score(run: JobRun, settings: Settings) -> None:
    one_task_job(run, settings, "tune", _tune)
