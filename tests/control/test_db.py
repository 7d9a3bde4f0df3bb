"""The job database's state machine, on PostgreSQL and on SQLite (the same code and
migrations), raced by many threads: nothing lost, nothing duplicated, nothing unreadable."""

from __future__ import annotations

import base64
import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import select

from orisel.control import migrate
from orisel.control.db import JobDB
from orisel.control.job import JobState
from orisel.control.outbox import Due
from orisel.control.rows import NewJob
from orisel.kernel.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from orisel.store.backend import ArtifactRef
from tests.control.fakeclock import FakeClock
from tests.control.jobdb import new_job

RACE_ROUNDS = 1000


def nothing_waiting(queue: str) -> int:
    """The broker's answer when every queue is empty (it restarted empty, or all was taken)."""
    return 0


def test_idempotency_by_constraint(db: JobDB) -> None:
    a = new_job(db, "k1")
    assert new_job(db, "k1") == a
    assert new_job(db, "k2") != a
    other, _ = db.create("scoring", {"epochs": 3}, task="t", queue="s", idempotency_key="k1")
    assert other.id != a  # keys are per kind
    with pytest.raises(AlreadyExists, match="'k1' was used for job"):
        new_job(db, "k1", {"epochs": 4})
    assert new_job(db) != new_job(db)  # no key: always a new job


def test_concurrent_submits_with_one_key_make_one_job(db: JobDB) -> None:
    for round_ in range(5):
        with ThreadPoolExecutor(32) as pool:
            ids = list(pool.map(new_job, [db] * 32, [f"burst-{round_}"] * 32))
        assert len(set(ids)) == 1
    assert len(db.list(kind="training", page_size=1000)[0]) == 5


def test_input_bounds(db: JobDB) -> None:
    with pytest.raises(InvalidArgument, match=r"^kind: must be one of"):
        db.create("juggling", {}, task="t", queue="q")
    with pytest.raises(InvalidArgument, match=r"^idempotency_key: must be at most 256"):
        new_job(db, "k" * 257)
    with pytest.raises(InvalidArgument, match=r"^spec: must be at most"):
        new_job(db, spec={"x": "y" * 70_000})
    with pytest.raises(InvalidArgument, match=r"^id: must be a job id .*\(5002 characters\)"):
        db.get("x" * 5000)
    with pytest.raises(NotFound, match="does not exist"):
        db.get("0" * 32)


def test_state_machine(db: JobDB) -> None:
    job_id = new_job(db)
    held = db.claim(job_id, "w1", lease_s=30)
    assert held is not None
    assert held.state == JobState.RUNNING
    assert held.attempts == 1
    assert db.claim(job_id, "w2", lease_s=30) is None  # one holder at a time
    assert db.progress(job_id, "w1", phase="train", fraction=0.5, metrics={"loss": 1.0})
    assert not db.progress(job_id, "w2", fraction=0.9)  # not the holder: nothing written
    ref = ArtifactRef("orisel", "runs/x/best.pt", "ab" * 32, 3)
    assert db.finish(job_id, "w1", JobState.SUCCEEDED, outputs=[ref])
    done = db.get(job_id)
    assert (done.state, done.fraction, done.outputs) == (JobState.SUCCEEDED, 1.0, (ref,))
    # A terminal state never changes, whoever asks.
    assert db.cancel(job_id).state == JobState.SUCCEEDED
    assert db.claim(job_id, "w1", 30) is None
    assert not db.finish(job_id, "w1", JobState.FAILED, error="late")
    assert db.get(job_id) == done
    types = [e.type for e in db.events(job_id)]
    assert types == ["created", "transition", "progress", "transition"]
    assert [e.seq for e in db.events(job_id)] == [1, 2, 3, 4]
    assert done.version == 4


@pytest.mark.integration  # many threads against the real database server, many rounds
def test_cancel_wins_every_race_with_progress(db: JobDB) -> None:
    lost = unreadable = 0
    ids = [new_job(db) for _ in range(RACE_ROUNDS)]
    for job_id in ids:
        assert db.claim(job_id, "w", 60) is not None

    def race(job_id: str) -> tuple[str, bool]:
        go = threading.Event()
        results: list[bool] = []

        def worker() -> None:
            go.wait()
            for i in range(3):
                results.append(db.progress(job_id, "w", fraction=i / 3))
            results.append(db.finish(job_id, "w", JobState.SUCCEEDED))

        t = threading.Thread(target=worker)
        t.start()
        go.set()
        db.cancel(job_id)
        t.join()
        return job_id, results[-1]

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(race, ids))
    for job_id, finished in outcomes:
        try:
            job = db.get(job_id)
        except Exception:
            unreadable += 1
            continue
        events = db.events(job_id)
        ends = [e for e in events if e.type == "transition" and e.state.done]
        if finished:
            # The worker's success committed before the cancel: the cancel found it ended.
            assert job.state == JobState.SUCCEEDED
        elif job.state != JobState.CANCELLED:
            lost += 1
        assert len(ends) == 1  # exactly one terminal transition, never two
        assert events[-1] == ends[0]  # and nothing recorded after it
    assert (lost, unreadable) == (0, 0)
    assert sum(not f for _, f in outcomes) > 0  # the cancel did win some races


def test_leases_lapse_and_the_controller_gives_them_back(
    clocked_db: JobDB, clock: FakeClock
) -> None:
    db = clocked_db
    job_id = new_job(db)
    assert db.claim(job_id, "w1", lease_s=5) is not None
    clock.advance(4)
    assert db.heartbeat(job_id, "w1", 5)  # renewed: 5 s from now
    clock.advance(4)
    assert db.reconcile(600, nothing_waiting)["expired"] == 0
    clock.advance(2)
    counts = db.reconcile(600, nothing_waiting)
    assert counts["expired"] == 1
    job = db.get(job_id)
    assert (job.state, job.retries) == (JobState.RUNNING, 1)
    assert not db.heartbeat(job_id, "w1", 1)  # the lost worker learns it lost the job
    assert not db.progress(job_id, "w1", fraction=0.5)
    assert db.claim(job_id, "w2", lease_s=5) is not None  # another worker takes it
    for _ in range(2):  # two more lapses spend max_attempts = 3
        clock.advance(6)
        db.reconcile(600, nothing_waiting)
        db.claim(job_id, "w3", lease_s=5)
    job = db.get(job_id)
    assert job.state == JobState.FAILED
    assert "lost its worker 3 times" in job.error


def test_a_worker_that_finds_a_lapsed_lease_first_spends_the_same_retry(
    clocked_db: JobDB, clock: FakeClock
) -> None:
    """The message sent again after a worker died can be taken before the controller looks:
    the lost worker still costs one retry, and the last one ends the job instead of a claim."""
    db = clocked_db
    job_id = new_job(db)
    assert db.claim(job_id, "w1", lease_s=5) is not None
    for retries in (1, 2):
        clock.advance(4)
        assert db.claim(job_id, "early", lease_s=5) is None  # still held
        clock.advance(2)
        job = db.claim(job_id, f"w{retries + 1}", lease_s=5)
        assert job is not None
        assert job.retries == retries
        assert [e.type for e in db.events(job_id)][-2:] == ["lease-expired", "claimed"]
    clock.advance(6)
    assert db.claim(job_id, "w4", lease_s=30) is None
    job = db.get(job_id)
    assert (job.state, job.retries) == (JobState.FAILED, 3)
    assert "lost its worker 3 times" in job.error


@pytest.mark.integration  # many threads against the real database server, many rounds
def test_the_controller_and_workers_race_for_lapsed_leases_and_count_each_once(
    clocked_db: JobDB, clock: FakeClock
) -> None:
    db = clocked_db
    ids = [new_job(db) for _ in range(RACE_ROUNDS // 10)]
    for job_id in ids:
        assert db.claim(job_id, "lost", lease_s=1) is not None
    clock.advance(2)
    go = threading.Barrier(5)

    def controller() -> None:
        go.wait()
        for _ in range(5):
            db.reconcile(600, nothing_waiting)

    def worker(name: str) -> list[str]:
        go.wait()
        return [job_id for job_id in ids if db.claim(job_id, name, lease_s=600) is not None]

    with ThreadPoolExecutor(5) as pool:
        ctl = pool.submit(controller)
        taken = list(pool.map(worker, ["a", "b", "c", "d"]))
        ctl.result()
    owners = Counter(job_id for names in taken for job_id in names)
    assert set(owners) == set(ids)
    assert set(owners.values()) == {1}  # each taken exactly once
    for job_id in ids:
        job = db.get(job_id)
        assert (job.state, job.retries, job.attempts) == (JobState.RUNNING, 1, 2)
        assert [e.type for e in db.events(job_id)].count("lease-expired") == 1


def test_a_passing_error_retries_then_fails(db: JobDB) -> None:
    job_id = new_job(db)
    for attempt in range(1, 4):
        assert db.claim(job_id, "w", 30) is not None
        state = db.release(job_id, "w", again_in=0, error="ConnectionError: store down")
        assert state == (JobState.FAILED if attempt == 3 else JobState.RUNNING)
    job = db.get(job_id)
    assert job.error == "gave up after 3 attempts: ConnectionError: store down"


def test_the_outbox_sends_once_and_resends_what_was_lost(db: JobDB) -> None:
    ids = {new_job(db) for _ in range(50)}
    sent: Counter[str] = Counter()
    lock = threading.Lock()

    def send(due: Due) -> None:
        assert (due.task, due.queue) == ("t", "training")
        with lock:
            sent[due.id] += 1

    if db.postgres:
        # Several controllers at once (replicas): row locks keep every message single.
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: db.dispatch_due(send, limit=20), range(8)))
        assert set(sent) == ids
        assert set(sent.values()) == {1}
    else:
        assert db.dispatch_due(send, limit=100) == 50
    assert db.dispatch_due(send) == 0  # nothing owed any more
    # No worker took them, but all still wait in their queue (behind a busy worker): none is
    # lost, however long ago it was sent; nor when the broker cannot say how many wait.
    assert db.reconcile(0, lambda queue: 50)["resent"] == 0
    assert db.reconcile(0, lambda queue: None)["resent"] == 0
    # 20 still wait: the 30 sent first left the queue and no worker took them.
    assert db.reconcile(3600, lambda queue: 20)["resent"] == 0  # may still be on their way
    assert db.reconcile(0, lambda queue: 20)["resent"] == 30
    assert db.reconcile(0, nothing_waiting)["resent"] == 20  # the broker emptied
    assert db.reconcile(0, nothing_waiting)["resent"] == 0  # owed once, not once a round

    def broken(due: Due) -> None:
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        db.dispatch_due(broken)
    assert db.dispatch_due(send) == 50  # a failed send left them owed


def test_children_wake_their_parent_and_die_with_it(db: JobDB) -> None:
    parent = new_job(db)
    assert db.claim(parent, "p", 30) is not None
    db.dispatch_due(lambda due: None)
    kids = [new_job(db, parent_id=parent, key=f"{parent}/c{i}") for i in range(3)]
    assert db.release(parent, "p") == JobState.RUNNING  # waiting for its children
    db.dispatch_due(lambda due: None)
    assert db.claim(kids[0], "k", 30) is not None
    assert db.finish(kids[0], "k", JobState.SUCCEEDED)
    woken: list[str] = []
    db.dispatch_due(lambda due: woken.append(due.id))
    assert woken == [parent]  # a child's end owes the parent a run
    db.cancel(parent)
    states = [db.get(k).state for k in kids]
    assert states == [JobState.SUCCEEDED, JobState.CANCELLED, JobState.CANCELLED]
    with pytest.raises(FailedPrecondition, match="has ended"):
        new_job(db, parent_id=parent, key=f"{parent}/late")


def test_list_pages_by_keyset(db: JobDB) -> None:
    ids = [new_job(db) for _ in range(250)]
    other, _ = db.create("scoring", {}, task="t", queue="scoring")
    seen, token = [], ""
    while True:
        page, token = db.list(kind="training", page_size=100, page_token=token)
        seen += [j.id for j in page]
        if not token:
            break
    assert seen == ids
    assert [j.id for j in db.list(kind="scoring")[0]] == [other.id]
    # The last two decode, to an id no job can have: a NUL, refused before PostgreSQL sees it.
    nul = [base64.urlsafe_b64encode(json.dumps([1.0, i]).encode()).decode() for i in ("\x00", "")]
    for bad in ("x", "e30=", "W10=", "!" * 300, *nul):
        with pytest.raises(InvalidArgument, match=r"^page_token"):
            db.list(page_token=bad)
    with pytest.raises(InvalidArgument, match=r"^page_size"):
        db.list(page_size=1001)


def test_a_batch_of_submits_has_each_one_outcome(db: JobDB) -> None:
    old = new_job(db, "old")
    batch = [
        NewJob("training", {"epochs": 3}, "t", "training", "old"),  # exists, same spec
        NewJob("training", {"epochs": 9}, "t", "training", "old"),  # exists, other spec
        NewJob("training", {"epochs": 1}, "t", "training", "twice"),  # new ...
        NewJob("training", {"epochs": 1}, "t", "training", "twice"),  # ... and again at once
        NewJob("training", {"epochs": 2}, "t", "training"),  # no key
        NewJob("juggling", {}, "t", "q"),
    ]
    out = db.create_many(batch)
    assert out[0] == (db.get(old), False)
    assert isinstance(out[1], AlreadyExists)
    first, second = out[2], out[3]
    assert isinstance(first, tuple)
    assert isinstance(second, tuple)
    assert (first[1], second[1], first[0].id) == (True, False, second[0].id)
    assert isinstance(out[4], tuple)
    assert out[4][1]
    assert isinstance(out[5], InvalidArgument)
    assert db.get(first[0].id) == first[0]  # what the Submit answered is what was stored
    assert [e.type for e in db.events(first[0].id)] == ["created"]


@pytest.mark.integration  # many threads against the real database server, many rounds
def test_cancelling_a_parent_races_its_child_ending_without_deadlock(db: JobDB) -> None:
    # Without the parent-first lock order PostgreSQL aborted about 2 rounds in 100 as deadlocks.
    errors: list[BaseException] = []
    for round_ in range(200):
        parent = new_job(db, f"p{round_}")
        assert db.claim(parent, "p", 30) is not None
        child = new_job(db, f"{parent}/c", parent_id=parent)
        assert db.claim(child, "c", 30) is not None
        go = threading.Barrier(2)

        def cancel(parent: str = parent, go: threading.Barrier = go) -> None:
            go.wait()
            try:
                db.cancel(parent)
            except BaseException as exc:  # a deadlock would surface here ...
                errors.append(exc)

        def finish(child: str = child, go: threading.Barrier = go) -> None:
            go.wait()
            try:
                db.finish(child, "c", JobState.SUCCEEDED)
            except BaseException as exc:  # ... or here
                errors.append(exc)

        threads = [threading.Thread(target=cancel), threading.Thread(target=finish)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert db.get(parent).state == JobState.CANCELLED
        assert db.get(child).state in (JobState.SUCCEEDED, JobState.CANCELLED)
    assert errors == []


def test_a_parent_waiting_for_its_children_is_not_resent_by_a_timer(db: JobDB) -> None:
    parent = new_job(db)
    db.dispatch_due(lambda due: None)
    assert db.claim(parent, "p", 30) is not None
    new_job(db, f"{parent}/c", parent_id=parent)
    assert db.release(parent, "p") == JobState.RUNNING  # waits for its child
    assert db.dispatch_due(lambda due: None) == 1  # the child is sent ...
    assert db.reconcile(0, nothing_waiting)["resent"] == 1  # ... and, lost, re-owed
    sent: list[str] = []
    db.dispatch_due(lambda due: sent.append(due.id))
    assert parent not in sent  # its child's end wakes it, not a timer


def test_a_sqlite_database_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """It holds every job's spec and the tokens' hashes: 0600 when made, and an older file
    that others could read (0644) is closed to them."""
    older = tmp_path / "older" / "jobs.sqlite"
    older.parent.mkdir()
    older.touch(mode=0o644)
    for path in (tmp_path / "new" / "jobs.sqlite", older):
        url = f"sqlite:///{path}"
        migrate.upgrade(url)
        handle = JobDB(url)
        try:
            with handle.connect() as reader:  # keeps the -wal and -shm files while it is open
                reader.execute(select(1))
                new_job(handle)
                files = list(path.parent.glob("jobs.sqlite*"))
                assert len(files) == 3
                assert {oct(f.stat().st_mode & 0o777) for f in files} == {oct(0o600)}
        finally:
            handle.close()
