"""Fencing: a stale attempt (a worker paused past its lease, whose job was handed to another
worker) races the new attempt, writing the same keys, progress and the job's end at once.
Nothing the stale one writes lands, in the job database or the store; the new one's all does.
On PostgreSQL and on SQLite."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from orisel.core.db import JobDB
from orisel.core.jobs import JobState
from orisel.core.lifecycle import JobRun, JobStopped
from orisel.core.settings import Settings
from orisel.core.storage import ArtifactRef, LocalStore, get_bytes, put_if_absent
from tests.core.jobdb import new_job

KEYS = [f"runs/x/checkpoints/e{i}.pt" for i in range(20)] + ["runs/x/manifests/000000010.json"]


def _attempt(db: JobDB, job_id: str, settings: Settings) -> JobRun:
    run = JobRun.claim(db, job_id, settings)
    assert run is not None
    return run


def test_a_stale_attempt_never_writes_after_its_job_changed_hands(
    db: JobDB, tmp_path: Path
) -> None:
    store_root = tmp_path / "store"
    settings = Settings(database_url=db.url, store="local", store_root=store_root, lease_s=0.05)
    job_id = new_job(db)
    stale = _attempt(db, job_id, settings)  # no heartbeat: a worker paused, or cut off
    time.sleep(0.1)  # its lease lapses
    fresh = _attempt(db, job_id, settings.model_copy(update={"lease_s": 60.0}))
    assert fresh.job.attempts == stale.job.attempts + 1
    files = {}
    for who in ("stale", "fresh"):
        files[who] = tmp_path / who
        files[who].write_bytes(who.encode())
    refused: list[str] = []
    fresh_refs: list[ArtifactRef] = []
    go = threading.Barrier(2)

    def zombie() -> None:
        go.wait()
        for key in KEYS:
            try:
                stale.store.put_file(key, files["stale"])
            except JobStopped:
                refused.append(key)
        with pytest.raises(JobStopped):
            stale.progress(phase="train", fraction=0.9)
        stale.succeed([])

    def worker() -> None:
        go.wait()
        for key in KEYS:
            fresh_refs.append(put_if_absent(fresh.store, key, files["fresh"]))
            fresh.progress(phase="train", fraction=0.5)

    threads = [threading.Thread(target=zombie), threading.Thread(target=worker)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fresh.succeed(fresh_refs)
    assert refused == KEYS
    assert (stale.outcome, fresh.outcome) == ("STOPPED", "SUCCEEDED")
    plain = LocalStore(store_root, settings.bucket)
    assert {get_bytes(plain, plain.stat(key)) for key in KEYS} == {b"fresh"}
    job = db.get(job_id)
    assert (job.state, job.outputs) == (JobState.SUCCEEDED, tuple(fresh_refs))
    handed_over = max(i for i, e in enumerate(db.events(job_id)) if e.type == "claimed")
    assert {e.principal for e in db.events(job_id)[handed_over:]} == {fresh.worker}


def test_the_job_changes_hands_only_after_a_write_under_way(db: JobDB, tmp_path: Path) -> None:
    """A write begun while the lease held (its token valid) lands before the next claim, not
    after it: the claim waits for it."""
    settings = Settings(database_url=db.url, store="local", store_root=tmp_path, lease_s=0.05)
    job_id = new_job(db)
    stale = _attempt(db, job_id, settings)
    time.sleep(0.1)  # its lease lapses; no other worker has taken the job yet
    claimed = threading.Event()
    taken: list[JobRun | None] = []

    def take() -> None:
        taken.append(JobRun.claim(db, job_id, settings.model_copy(update={"lease_s": 60.0})))
        claimed.set()

    claimer = threading.Thread(target=take)
    with db.holding(job_id, stale.worker) as held:
        assert held
        claimer.start()
        assert not claimed.wait(0.3)  # the claim waits for the write under way
    claimer.join()
    assert taken[0] is not None  # then the job changes hands
    assert not db.progress(job_id, stale.worker, fraction=0.5)
    # A passing error the stale attempt meets now spends no retry of the new one's job.
    with stale:
        raise ConnectionError("the store is unreachable")
    assert stale.outcome == "STOPPED"
    assert db.get(job_id).retries == taken[0].job.retries
