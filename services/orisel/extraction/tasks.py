"""Celery task of the extraction service: stimulus responses of a checkpoint in the store."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from orisel.core.artifacts import fetch, upload_dir
from orisel.core.celery_app import app
from orisel.core.errors import OriselError
from orisel.core.jobs import JobState, open_job
from orisel.core.storage import ArtifactRef
from orisel.extraction.extract import ExtractSpec, extract
from orisel.extraction.network import load_network
from orisel.extraction.servicer import EXTRACT_TASK


@app.task(name=EXTRACT_TASK, bind=True, max_retries=3, default_retry_delay=5)  # type: ignore[untyped-decorator]
def extract_task(self: Any, job_id: str) -> str:
    settings, store, jobs, job = open_job(job_id)
    if job.state.done:
        return job.state.name
    jobs.update(job_id, state=JobState.RUNNING, phase="extract")
    try:
        ckpt = fetch(store, ArtifactRef(**job.spec["checkpoint"]), settings.work_dir / "artifacts")
        net = load_network(ckpt, device="auto")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "responses"
            extract(net, ExtractSpec.model_validate(job.spec["extract"]), out, {"job": job_id})
            refs = upload_dir(store, f"analyses/{job_id}/responses", out)
    except OriselError as exc:
        jobs.update(job_id, state=JobState.FAILED, error=str(exc))
        return "FAILED"
    jobs.update(job_id, state=JobState.SUCCEEDED, fraction=1.0, phase="done", outputs=tuple(refs))
    return "SUCCEEDED"
