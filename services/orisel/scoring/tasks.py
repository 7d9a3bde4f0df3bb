"""Celery task of the scoring service: `orisel tune` on stored activations. A job that names
a network instead scores the activations of its extraction job (scoring.extraction), which
it finds or starts and waits for, so scoring runs no forward pass: on a CPU worker, as
often as the statistics change."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from orisel.analyses import tune_activations
from orisel.control.celery_app import job_task
from orisel.control.job import Job, JobState
from orisel.control.lifecycle import JobRun, one_task_job
from orisel.extraction.activations import read
from orisel.kernel.errors import FailedPrecondition
from orisel.runtime.settings import Settings
from orisel.scoring.extraction import ENDED_BADLY, shared_extraction, wait_s
from orisel.scoring.spec import SCORE_TASK, TuneSpec
from orisel.store.backend import ArtifactRef, ArtifactStore
from orisel.store.scratch import fetch


def _tune(
    stored: dict[str, Any], settings: Settings, store: ArtifactStore, job: Job, out: Path
) -> None:
    cache = settings.work_dir / "artifacts"
    # The worker's cache keeps each object in a folder of its checksum: the pair is read
    # together from a folder of its own.
    folder = out.parent / "activations"
    folder.mkdir()
    for name in ("summary", "responses"):
        src = fetch(store, ArtifactRef(**stored[name]), cache)
        shutil.copyfile(src, folder / src.name)
    acts = read(folder)
    spec = TuneSpec.model_validate(job.spec["tune"])
    tune_activations(acts, spec, out, {"job": job.id})


def _outputs(extraction: Job) -> dict[str, Any]:
    refs = {Path(r.key).stem: r.__dict__ for r in extraction.outputs}
    if not {"summary", "responses"} <= set(refs):
        raise FailedPrecondition(f"extraction job {extraction.id} stored no activations")
    return refs


@job_task(SCORE_TASK)
def score(run: JobRun, settings: Settings) -> None:
    stored = run.job.spec.get("activations")
    if stored is None:
        extraction = shared_extraction(run.db, run.job)
        if extraction.state in ENDED_BADLY:
            state = extraction.state.name.lower()
            run.fail(f"extraction job {extraction.id} {state}: {extraction.error}")
            return
        if extraction.state != JobState.SUCCEEDED:
            # Given back, not waited for here: the worker is free while the network runs.
            run.progress(phase=f"waiting for extraction {extraction.id}", fraction=0.0)
            run.again(wait_s(time.time() - run.job.created_at))
            return
        stored = _outputs(extraction)

    def work(settings: Settings, store: ArtifactStore, job: Job, out: Path) -> None:
        _tune(stored, settings, store, job, out)

    one_task_job(run, settings, "tune", work)
