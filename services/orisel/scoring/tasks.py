"""Celery task of the scoring service: `orisel tune` on a checkpoint from the store."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from orisel.core.artifacts import fetch, upload_dir
from orisel.core.celery_app import app
from orisel.core.errors import OriselError
from orisel.core.jobs import JobState, open_job
from orisel.core.storage import ArtifactRef
from orisel.scoring.servicer import SCORE_TASK
from orisel.scoring.tune import TuneSpec, tune


@app.task(name=SCORE_TASK, bind=True, max_retries=3, default_retry_delay=5)  # type: ignore[untyped-decorator]
def score(self: Any, job_id: str) -> str:
    from orisel.data.prepare import stratified_split
    from orisel.data.sources import load_cifar10
    from orisel.extraction.network import load_network

    settings, store, jobs, job = open_job(job_id)
    if job.state.done:
        return job.state.name
    jobs.update(job_id, state=JobState.RUNNING, phase="tune")
    try:
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
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "tune"
            spec = TuneSpec.model_validate(job.spec["tune"])
            tune(net, spec, out, images, labels, n_classes, {"job": job_id})
            refs = upload_dir(store, f"analyses/{job_id}/tune", out)
    except OriselError as exc:
        jobs.update(job_id, state=JobState.FAILED, error=str(exc))
        return "FAILED"
    jobs.update(job_id, state=JobState.SUCCEEDED, fraction=1.0, phase="done", outputs=tuple(refs))
    return "SUCCEEDED"
