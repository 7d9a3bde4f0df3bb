"""Celery task of the scoring service: `orisel tune` on stored activations. A job that names
a network instead scores the activations of its extraction job (scoring.extraction), which
it finds or starts and waits for, so scoring runs no forward pass: on a CPU worker, as
often as the statistics change."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from orisel.analyses import tune_activations
from orisel.control.celery_app import job_task
from orisel.control.job import Job, JobState
from orisel.control.lifecycle import JobRun, one_task_job
from orisel.extraction.activations import read
from orisel.runtime.settings import Settings
from orisel.scoring.extraction import ENDED_BADLY, activations_of, shared_extraction, wait_s
from orisel.scoring.spec import SCORE_TASK, ScoreJob, StoredActivations
from orisel.store.backend import ArtifactStore
from orisel.store.scratch import fetch


def _tune(
    stored: StoredActivations, settings: Settings, store: ArtifactStore, job: Job, out: Path
) -> None:
    cache = settings.work_dir / "artifacts"
    # The worker's cache keeps each object in a folder of its checksum: the pair is read
    # together from a folder of its own.
    folder = out.parent / "activations"
    folder.mkdir()
    for ref in (stored.summary, stored.responses):
        src = fetch(store, ref, cache)
        shutil.copyfile(src, folder / src.name)
    acts = read(folder)
    tune_activations(acts, ScoreJob.of(job).tune, out, {"job": job.id})


@job_task(SCORE_TASK)
def score(run: JobRun, settings: Settings) -> None:
    spec = ScoreJob.of(run.job)
    stored = spec.activations
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
        stored = activations_of(extraction)

    def work(settings: Settings, store: ArtifactStore, job: Job, out: Path) -> None:
        _tune(stored, settings, store, job, out)

    one_task_job(run, settings, "tune", work)
