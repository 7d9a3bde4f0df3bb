"""Fencing: a stale attempt (a worker paused past its lease, whose job was handed to another
worker) races the new attempt, writing the same keys, progress and the job's end at once.
Nothing the stale one writes lands, in the job database or the store; the new one's all does.
On PostgreSQL and on SQLite."""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import make_url, select, text

from orisel.control import migrate
from orisel.control.db import JobDB
from orisel.control.job import JobState
from orisel.control.lifecycle import JobRun, JobStopped
from orisel.control.schema import jobs
from orisel.runtime.settings import Settings
from orisel.store.backend import ArtifactRef, LocalStore, get_bytes, put_if_absent
from tests.control.fakeclock import FakeClock
from tests.control.jobdb import new_job
from tests.control.proxy import Proxy
from tests.procs import guarded
from tests.stack import pg_database

KEYS = [f"runs/x/checkpoints/e{i}.pt" for i in range(20)] + ["runs/x/manifests/000000010.json"]
STRANDED = Path(__file__).with_name("stranded.py")
IDLE_S = 1.0  # the stranded worker's Settings.db_idle_in_transaction_s
TAKE_OVER_S = 10.0  # a claim behind a stranded worker; without the idle limit, never


def _attempt(db: JobDB, job_id: str, settings: Settings) -> JobRun:
    run = JobRun.claim(db, job_id, settings)
    assert run is not None
    return run


def test_a_stale_attempt_never_writes_after_its_job_changed_hands(
    clocked_db: JobDB, clock: FakeClock, tmp_path: Path
) -> None:
    db = clocked_db
    store_root = tmp_path / "store"
    settings = Settings(database_url=db.url, store="local", store_root=store_root, lease_s=5)
    job_id = new_job(db)
    stale = _attempt(db, job_id, settings)  # no heartbeat: a worker paused, or cut off
    clock.advance(6)  # its lease lapses
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


def test_the_job_changes_hands_only_after_a_write_under_way(
    clocked_db: JobDB, clock: FakeClock, tmp_path: Path
) -> None:
    """A write begun while the lease held (its token valid) lands before the next claim, not
    after it: the claim waits for it."""
    db = clocked_db
    settings = Settings(database_url=db.url, store="local", store_root=tmp_path, lease_s=5)
    job_id = new_job(db)
    stale = _attempt(db, job_id, settings)
    clock.advance(6)  # its lease lapses; no other worker has taken the job yet
    claimed = threading.Event()
    taken: list[JobRun | None] = []

    def take() -> None:
        taken.append(JobRun.claim(db, job_id, settings.model_copy(update={"lease_s": 60.0})))
        claimed.set()

    claimer = threading.Thread(target=take)
    with db.holding(job_id, stale.worker) as fence:
        assert fence.held
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


@contextlib.contextmanager
def _held_open(path: Path) -> Iterator[None]:
    """While inside, another process that opens `path` waits (a write lease the test holds,
    for up to the kernel's lease-break-time, 45 s by default): a worker held in the middle
    of writing an artifact, at a point of the test's choosing."""
    ignored = signal.signal(signal.SIGIO, signal.SIG_IGN)  # the kernel's notice of the wait
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
        yield
    finally:
        os.close(fd)  # gives the lease up
        signal.signal(signal.SIGIO, ignored)


def _inside_the_fence(db: JobDB, bound: float = 10.0) -> None:
    """Wait until a session holds a job's row lock in a transaction and sends nothing more."""
    deadline = time.monotonic() + bound
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND state = 'idle in transaction' AND query LIKE '%FOR UPDATE%'"
    )
    while True:
        with db.connect() as c:
            if c.execute(query).scalar():
                return
        assert time.monotonic() < deadline, "the worker never took its job's row lock"
        time.sleep(0.01)


def _lapsed(db: JobDB, job_id: str) -> None:
    """Wait until the job's lease lapsed, as the next claim or the controller sees it."""
    query = select(jobs.c.lease_until).where(jobs.c.id == job_id)
    while True:
        with db.connect() as c:
            if c.execute(query).scalar_one() < time.time():
                return
        time.sleep(0.01)


@pytest.mark.service
@pytest.mark.parametrize("how", ["stopped", "partitioned"])
def test_a_worker_cut_off_inside_the_fence_loses_it_to_the_servers_idle_limit(
    tmp_path: Path, how: str
) -> None:
    """A worker stopped (SIGSTOP), or cut off from the database (every byte either way
    dropped), while it holds its job's row lock to write an artifact would hold the lock until
    TCP gave up on it, hours later, and no other worker could take the job. PostgreSQL ends
    the stranded transaction after db_idle_in_transaction_s: another attempt takes the job
    and finishes it, and the cut-off worker's write, once it goes on, lands nowhere."""
    store_root = tmp_path / "store"
    stale, fresh_file = tmp_path / "stale", tmp_path / "fresh"
    stale.write_bytes(b"stale")
    fresh_file.write_bytes(b"fresh")
    with pg_database() as url, Proxy(make_url(url).port or 5432) as link:
        migrate.upgrade(url)
        db = JobDB(url, idle_s=IDLE_S)
        job_id = new_job(db)
        linked = make_url(url).set(port=link.port).render_as_string(hide_password=False)
        zombie = None
        try:
            with _held_open(stale):
                cmd = [str(STRANDED), linked, job_id, str(store_root), str(stale), "runs/x/s.bin"]
                zombie = subprocess.Popen(
                    guarded([sys.executable, *cmd]), stdout=subprocess.PIPE, text=True
                )
                _inside_the_fence(db)
                if how == "stopped":
                    os.kill(zombie.pid, signal.SIGSTOP)
                else:
                    link.freeze()
                fenced_at = time.monotonic()
                _lapsed(db, job_id)  # its heartbeat waits behind its own row lock
                taken: list[JobRun | None] = []
                settings = Settings(database_url=url, store="local", store_root=store_root)

                def take() -> None:
                    taken.append(JobRun.claim(db, job_id, settings))

                claimer = threading.Thread(target=take, daemon=True)
                claimer.start()
                claimer.join(TAKE_OVER_S)
                assert taken, "the cut-off worker still holds its job's row lock"
                # The claim waited for the server to end the stranded transaction.
                assert time.monotonic() - fenced_at > IDLE_S * 0.9
                fresh = taken[0]
                assert fresh is not None
                fresh.succeed([fresh.store.put_file("runs/x/best.pt", fresh_file)])
                if how == "stopped":
                    os.kill(zombie.pid, signal.SIGCONT)
            link.thaw()  # the write goes on, its source open at last
            out, _ = zombie.communicate(timeout=30)
        finally:
            if zombie is not None and zombie.poll() is None:
                zombie.kill()
                zombie.wait()
        try:
            stranded_worker, outcome = out.split()
            assert outcome == "STOPPED"
            stored = sorted(p.relative_to(store_root).as_posix() for p in store_root.rglob("*"))
            assert [p for p in stored if "s.bin" in p] == []  # nor a temporary file of it
            plain = LocalStore(store_root, settings.bucket)
            job = db.get(job_id)
            assert (job.state, job.outputs) == (JobState.SUCCEEDED, (plain.stat("runs/x/best.pt"),))
            assert get_bytes(plain, job.outputs[0]) == b"fresh"
            handed_over = max(i for i, e in enumerate(db.events(job_id)) if e.type == "claimed")
            assert {e.principal for e in db.events(job_id)[handed_over:]} == {fresh.worker}
            assert stranded_worker not in {e.principal for e in db.events(job_id)[handed_over:]}
        finally:
            db.close()
