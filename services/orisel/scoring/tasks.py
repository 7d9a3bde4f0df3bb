"""Celery task of the scoring service: `orisel tune` on a checkpoint from the store."""

from __future__ import annotations

from pathlib import Path

from orisel.core.artifacts import fetch
from orisel.core.celery_app import job_task
from orisel.core.jobs import Job
from orisel.core.lifecycle import JobRun, one_task_job
from orisel.core.settings import Settings
from orisel.core.storage import ArtifactRef, ArtifactStore
from orisel.scoring.servicer import SCORE_TASK
from orisel.scoring.spec import TuneSpec
from orisel.scoring.tune import tune


def _tune(settings: Settings, store: ArtifactStore, job: Job, out: Path) -> None:
    from orisel.data.prepare import stratified_split
    from orisel.data.sources import load_cifar10
    from orisel.extraction.network import load_network

    ckpt = fetch(store, ArtifactRef(**job.spec["checkpoint"]), settings.work_dir / "artifacts")
    net = load_network(ckpt, device="auto")
    images = labels = None
    n_classes = 10
    if settings.data is not None:
        ds = load_cifar10(settings.data, settings.cache_dir)
        images, labels, n_classes = ds.test_images, ds.test_labels, len(ds.classes)
        subset = job.spec.get("test_subset")
        if subset and subset < len(labels):
            _, keep = stratified_split(labels, subset, seed=0)
            images, labels = images[keep], labels[keep]
    spec = TuneSpec.model_validate(job.spec["tune"])
    tune(net, spec, out, images, labels, n_classes, {"job": job.id})


@job_task(SCORE_TASK)
def score(run: JobRun, settings: Settings) -> None:
    one_task_job(run, settings, "tune", _tune)
