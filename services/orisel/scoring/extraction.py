"""A scoring job's activations: the extraction of its network, stimuli and images, found or
started once however many scoring jobs ask for it at the same time.

The extraction job's idempotency key is the sha256 of its spec (`activations/<sha256>`), so
the job database's unique (kind, owner, key) constraint is the one conditional write that
decides which of many concurrent scoring jobs creates it: the others get the same job back.
A scoring job then waits for it without holding a worker: it gives itself back, to be sent
again a little later, until the extraction ended."""

from __future__ import annotations

import hashlib
from pathlib import Path

from orisel.control.db import JobDB
from orisel.control.job import Job, JobState
from orisel.control.rows import canonical
from orisel.control.schema import KEY_LEN
from orisel.extraction.spec import ExtractJob, ExtractSpec
from orisel.kernel.errors import FailedPrecondition
from orisel.scoring.spec import ScoreJob, StoredActivations

KEY_PREFIX = "activations/"
ENDED_BADLY = (JobState.FAILED, JobState.CANCELLED)
# How often a waiting scoring job looks again: soon at first, then at most this often.
WAIT_S = (1.0, 15.0)
# TuneSpec fields that change no stored number (how negative responses are counted is the
# scoring's choice), so scorings that differ only in them share one extraction.
SCORING_ONLY = {"rectify"}


def extraction_spec(score: ScoreJob) -> ExtractJob:
    """The extraction job a scoring job's spec needs: its network, its test images (the
    worker's data set when it names none, as the scoring would read) and its stimuli and
    layers."""
    fields = set(ExtractSpec.model_fields) - SCORING_ONLY
    return ExtractJob(
        checkpoint=score.checkpoint,
        model=score.model,
        data=score.data,
        class_map=score.class_map,
        test_subset=score.test_subset,
        images=True,
        extract=ExtractSpec.model_validate(score.tune.model_dump(include=fields)),
    )


def extraction_key(spec: ExtractJob) -> str:
    return KEY_PREFIX + hashlib.sha256(canonical(spec.row()).encode()).hexdigest()


def activations_of(extraction: Job) -> StoredActivations:
    """The activations an extraction job stored."""
    refs = {Path(r.key).stem: r for r in extraction.outputs}
    if not {"summary", "responses"} <= set(refs):
        raise FailedPrecondition(f"extraction job {extraction.id} stored no activations")
    return StoredActivations(summary=refs["summary"], responses=refs["responses"])


def shared_extraction(db: JobDB, score: Job) -> Job:
    """The extraction job of `score`'s activations: created by the first scoring job to ask,
    the same job for every other (a conditional insert on its idempotency key). One that
    failed or was cancelled before `score` was submitted is followed by another, keyed after
    it, so a scoring submitted again starts the extraction again (once, too)."""
    extraction = extraction_spec(ScoreJob.of(score))
    key = extraction_key(extraction)
    while True:
        job, _ = db.create(
            "extraction",
            extraction.row(),
            task=extraction.task_name,
            queue="extraction",
            idempotency_key=key,
            owner=score.owner,
        )
        ended_before = job.finished_at and job.finished_at < score.created_at
        retry = f"{key}/{job.id}"
        if job.state not in ENDED_BADLY or not ended_before or len(retry) > KEY_LEN:
            return job
        key = retry


def wait_s(waited: float) -> float:
    """When a scoring job waiting `waited` seconds for its extraction looks again."""
    low, high = WAIT_S
    return min(high, max(low, waited / 10))
