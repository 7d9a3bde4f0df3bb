"""Celery task of the extraction service: the activations of a network in the store, kept
under the key of what determines them (activations/<owner>/<key>/), written once."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from orisel.control.celery_app import job_task
from orisel.control.lifecycle import JobRun
from orisel.extraction.activations import measure, store_prefix, write
from orisel.extraction.inputs import job_images, job_network
from orisel.extraction.spec import EXTRACT_TASK, ExtractJob
from orisel.runtime.settings import Settings
from orisel.store.backend import put_if_absent


@job_task(EXTRACT_TASK)
def extract_task(run: JobRun, settings: Settings) -> None:
    job, store = run.job, run.store
    cache = settings.work_dir / "artifacts"
    run.progress(phase="responses", fraction=0.0)
    spec = ExtractJob.of(job)
    net = job_network(spec, store, cache)
    got = (
        job_images(spec, net, store, cache, settings.data, settings.cache_dir)
        if spec.images
        else None
    )
    asked = spec.extract
    acts = (
        measure(net, asked, got.images, got.labels, got.n_classes) if got else measure(net, asked)
    )
    run.check()
    prefix = store_prefix(job.owner, acts.key)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "responses"
        summary = write(acts, out, {"job": job.id, "data_sha256": got.sha256 if got else None})
        # Another job may have stored activations of the same key first (the same network,
        # stimuli and images): its arrays stand, and the summary names the stored bytes, so
        # a summary never points at another attempt's array file.
        arrays = put_if_absent(store, f"{prefix}/responses.npz", out / "responses.npz")
        summary["responses_sha256"] = arrays.sha256
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        described = put_if_absent(store, f"{prefix}/summary.json", out / "summary.json")
    run.succeed([described, arrays])
