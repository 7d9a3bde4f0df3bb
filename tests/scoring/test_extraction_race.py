"""Many scoring jobs of one network at once start one extraction: the job database's
conditional insert on the extraction's idempotency key decides, on PostgreSQL as on SQLite."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from orisel.control import migrate
from orisel.control.db import JobDB
from orisel.control.job import Job, JobState
from orisel.scoring.extraction import extraction_spec, shared_extraction
from orisel.scoring.spec import SCORE_TASK, ScoreJob, TuneSpec
from orisel.store.backend import ArtifactRef
from tests.stack import pg_database

CKPT = {"bucket": "orisel", "key": "runs/a/best.pt", "sha256": "a" * 64, "size": 1}
N = 16


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.service), "sqlite"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[JobDB]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
        migrate.upgrade(url)
        handle = JobDB(url)
        yield handle
        handle.close()
        return
    with pg_database() as url:
        migrate.upgrade(url)
        handle = JobDB(url)
        yield handle
        handle.close()


def scoring(db: JobDB, seed: int, **tune: object) -> Job:
    spec = {"checkpoint": CKPT, "tune": TuneSpec(seed=seed, **tune).model_dump(mode="json")}
    job, _ = db.create("scoring", spec, task=SCORE_TASK, queue="scoring", owner="alice")
    return job


def test_sixteen_scorings_at_once_make_one_extraction(db: JobDB) -> None:
    jobs = [scoring(db, seed, permutations=10 * seed) for seed in range(N)]
    start = threading.Barrier(N)

    def ask(job: Job) -> str:
        start.wait()
        return shared_extraction(db, job).id

    with ThreadPoolExecutor(N) as pool:
        ids = set(pool.map(ask, jobs))
    assert len(ids) == 1
    extractions, _ = db.list(kind="extraction")
    assert [j.id for j in extractions] == list(ids)
    # statistics settings change no stored number: they share it; a grid is another one
    assert shared_extraction(db, scoring(db, 99, threshold=0.9, rectify=False)).id in ids
    assert shared_extraction(db, scoring(db, 0, n_phases=2)).id not in ids


def test_an_extraction_that_failed_is_started_again_once(db: JobDB) -> None:
    first = shared_extraction(db, scoring(db, 0))
    claimed = db.claim(first.id, "w1", 30)
    assert claimed is not None
    db.finish(first.id, "w1", JobState.FAILED, error="the worker ran out of memory")
    # a scoring job already waiting on it hears that it failed ...
    assert shared_extraction(db, scoring_before(db, first)).id == first.id
    # ... one submitted since starts another, the same for every such job
    again = {shared_extraction(db, scoring(db, s)).id for s in range(3)}
    assert len(again) == 1
    assert first.id not in again


def scoring_before(db: JobDB, extraction: Job) -> Job:
    """A scoring job as it was when it first asked: created before the extraction ended."""
    job = scoring(db, 7)
    return Job(**{**job.__dict__, "created_at": extraction.created_at})


def test_the_extraction_measures_what_the_scoring_scores() -> None:
    score = {"checkpoint": CKPT, "test_subset": 50, "tune": {"layers": ["layer1"]}}
    spec = extraction_spec(ScoreJob.model_validate(score))
    assert spec.checkpoint == ArtifactRef("orisel", "runs/a/best.pt", "a" * 64, 1)
    assert spec.test_subset == 50
    assert spec.images is True
    assert spec.extract.layers == ("layer1",)
    assert "permutations" not in spec.row()["extract"]
