"""One task run of a job (control.lifecycle), on the job database of the other control tests
(PostgreSQL and SQLite) and a clock the test moves: claim, progress, the ways a run ends, and
an attempt whose job changed hands refused; passing errors are retried, and what the job's
owner reads never carries the worker's file paths."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from orisel.control import migrate
from orisel.control.db import JobDB
from orisel.control.job import JobState
from orisel.control.lifecycle import BACKOFF_S, JobRun, JobStopped, run_job
from orisel.control.outbox import Due
from orisel.kernel.errors import FailedPrecondition, Unavailable
from orisel.runtime.settings import Settings
from orisel.store.backend import ArtifactRef
from tests.control.fakeclock import FakeClock
from tests.control.jobdb import new_job

WORKER_FILE = "/var/lib/orisel/work/3f2a/checkpoints/e1_s100.pt"
LEASE_S = 30.0


@pytest.fixture
def settings(clocked_db: JobDB, tmp_path: Path) -> Settings:
    return Settings(
        database_url=clocked_db.url, store="local", store_root=tmp_path, lease_s=LEASE_S
    )


def claimed(db: JobDB, settings: Settings) -> tuple[str, JobRun]:
    job_id = new_job(db)
    run = JobRun.claim(db, job_id, settings)
    assert run is not None
    return job_id, run


def owed(db: JobDB) -> list[str]:
    """The jobs whose message is due now, sent (and so no longer owed)."""
    sent: list[Due] = []
    db.dispatch_due(sent.append)
    return [d.id for d in sent]


def test_a_claim_takes_the_job_for_one_worker(clocked_db: JobDB, settings: Settings) -> None:
    job_id, run = claimed(clocked_db, settings)
    assert (run.job.state, run.job.attempts) == (JobState.RUNNING, 1)
    assert clocked_db.get(job_id).state == JobState.RUNNING
    assert JobRun.claim(clocked_db, job_id, settings) is None  # held: nothing to do
    assert run_job(clocked_db, job_id, settings, lambda run: None) == "SKIPPED"


def test_progress_is_recorded_and_never_changes_state(
    clocked_db: JobDB, settings: Settings
) -> None:
    job_id, run = claimed(clocked_db, settings)
    with run:
        run.progress(phase="train", fraction=0.25, eta_seconds=12.0, metrics={"loss": 1.5})
        job = clocked_db.get(job_id)
        assert (job.state, job.phase, job.fraction) == (JobState.RUNNING, "train", 0.25)
        assert (job.eta_seconds, job.metrics) == (12.0, {"loss": 1.5})
        run.succeed()


def test_a_run_that_succeeds_records_its_outputs(clocked_db: JobDB, settings: Settings) -> None:
    ref = ArtifactRef(bucket="orisel", key="analyses/x/tune/summary.json", sha256="0" * 64, size=2)
    job_id, run = claimed(clocked_db, settings)
    with run:
        run.succeed([ref])
    job = clocked_db.get(job_id)
    assert run.outcome == "SUCCEEDED"
    assert (job.state, job.outputs, job.fraction, job.phase) == (
        JobState.SUCCEEDED,
        (ref,),
        1.0,
        "done",
    )


@pytest.mark.parametrize(
    ("error", "recorded"),
    [
        (FailedPrecondition("the scores are of another checkpoint"), "of another checkpoint"),
        (ValueError("no such layer"), "ValueError: no such layer"),
    ],
)
def test_a_run_that_fails_ends_the_job_with_its_error(
    clocked_db: JobDB, settings: Settings, error: Exception, recorded: str
) -> None:
    def body(run: JobRun) -> None:
        raise error

    job_id = new_job(clocked_db)
    assert run_job(clocked_db, job_id, settings, body) == "FAILED"
    job = clocked_db.get(job_id)
    assert job.state == JobState.FAILED
    assert recorded in job.error
    assert job.retries == 0  # not a passing error: no retry spent


def test_a_passing_error_gives_the_job_back_owed_after_a_backoff(
    clocked_db: JobDB, clock: FakeClock, settings: Settings
) -> None:
    def down(run: JobRun) -> None:
        raise Unavailable("the artifact store is unavailable")

    job_id = new_job(clocked_db)
    assert owed(clocked_db) == [job_id]
    assert run_job(clocked_db, job_id, settings, down) == "RETRY"
    job = clocked_db.get(job_id)
    assert (job.retries, job.error) == (1, "")  # the error is the retry's event, not the job's
    assert clocked_db.events(job_id)[-1].type == "retry"
    clock.advance(BACKOFF_S[0] - 1)
    assert owed(clocked_db) == []  # not before its backoff
    clock.advance(1)
    assert owed(clocked_db) == [job_id]


def test_a_run_given_back_again_is_owed_after_its_delay(
    clocked_db: JobDB, clock: FakeClock, settings: Settings
) -> None:
    job_id = new_job(clocked_db)
    owed(clocked_db)
    assert run_job(clocked_db, job_id, settings, lambda run: run.again(60.0)) == "CONTINUED"
    assert clocked_db.get(job_id).retries == 0  # a next segment, not a retry
    clock.advance(59)
    assert owed(clocked_db) == []
    clock.advance(1)
    assert owed(clocked_db) == [job_id]
    # A body that neither ends nor re-queues its job waits (for its children, say).
    assert run_job(clocked_db, job_id, settings, lambda run: None) == "WAITING"
    assert owed(clocked_db) == []


def test_a_cancelled_job_stops_its_run_at_the_next_report(
    clocked_db: JobDB, settings: Settings
) -> None:
    job_id, run = claimed(clocked_db, settings)
    with run:
        run.progress(phase="train", fraction=0.1)
        clocked_db.cancel(job_id)
        with pytest.raises(JobStopped):
            run.progress(phase="train", fraction=0.2)
        run.check()  # raises JobStopped, which the block swallows
    assert run.outcome == "STOPPED"
    job = clocked_db.get(job_id)
    assert (job.state, job.fraction) == (JobState.CANCELLED, 0.1)


def test_an_attempt_whose_lease_lapsed_is_refused_once_another_took_the_job(
    clocked_db: JobDB, clock: FakeClock, settings: Settings
) -> None:
    job_id, stale = claimed(clocked_db, settings)  # then paused: no heartbeat
    clock.advance(LEASE_S + 1)
    fresh = JobRun.claim(clocked_db, job_id, settings)
    assert fresh is not None
    assert (fresh.job.attempts, fresh.job.retries) == (2, 1)  # the lost attempt cost a retry
    with stale:
        stale.progress(phase="train", fraction=0.9)  # refused: JobStopped, swallowed
    assert stale.outcome == "STOPPED"
    stale.succeed()
    stale.fail("late")
    assert stale.outcome == "STOPPED"  # nor does its end land
    job = clocked_db.get(job_id)
    assert (job.state, job.fraction, job.retries) == (JobState.RUNNING, 0.0, 1)
    with fresh:
        fresh.succeed()
    assert clocked_db.get(job_id).state == JobState.SUCCEEDED


def test_a_full_disk_is_retried_and_recorded_without_the_workers_paths(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'jobs.sqlite'}"
    migrate.upgrade(url)
    db = JobDB(url, max_attempts=2)
    settings = Settings(database_url=url, lease_s=30)
    job_id = new_job(db)

    def full(run: JobRun) -> None:
        # What creating a file on a full disk raises: it names the file.
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), WORKER_FILE)

    try:
        assert run_job(db, job_id, settings, full) == "RETRY"  # space may be freed
        assert run_job(db, job_id, settings, full) == "FAILED"
        job = db.get(job_id)
        assert job.error == (
            "gave up after 2 attempts: the worker's disk is out of space (No space left on device)"
        )
        assert "/var/lib" not in str(db.events(job_id))
    finally:
        db.close()
