"""A worker's write that meets a full artifact store (a tmpfs the test fills): the job is
given back and sent again, not failed, since space is freed or the next attempt lands on
another disk (after max_attempts it fails, saying so). The retry records what ran out and no
server path; once space was freed the job ends with the weights of an undisturbed run, and
the store holds no part of the refused write."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orisel.control.job import Job
from tests.faults.jobs import same_as_reference, start_controller, submit, wait_for
from tests.fulldisk import files_under, filled, tmpfs
from tests.stack import Stack, stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, python_archive: Path) -> Iterator[Stack]:
    """The fault tests' stack with its artifact store on a disk of its own (two runs take
    about 100 MB)."""
    root = tmp_path_factory.mktemp("full-disk")
    with (
        tmpfs(root / "disk", "160m") as disk,
        stack(root, data=python_archive, store_root=disk / "store", dispatch_timeout_s=4.0) as s,
    ):
        s.serve(("training",))
        yield s


def _retried(live: Stack, job_id: str) -> list[str]:
    return [e.data["error"] for e in live.db.events(job_id) if e.type == "retry"]


def test_a_job_whose_store_is_full_is_retried_and_ends_as_an_undisturbed_run(
    live: Stack, reference: Job
) -> None:
    start_controller(live)
    live.worker("training", pool="prefork")
    store = live.settings.store_root
    with filled(store.parent):
        job_id = submit(live.address, "full")
        wait_for(live, job_id, until=lambda j: _retried(live, j.id))
        assert live.db.get(job_id).state.done is False
    job = wait_for(live, job_id)
    same_as_reference(live, reference, job)
    said = _retried(live, job_id)
    assert said[0] == (
        "the artifact store is out of space (No space left on device): retry once space was freed"
    )
    files = files_under(store)
    objects = [f for f in files if not f.startswith(".meta/")]
    assert not [f for f in files if Path(f).name.startswith(".")]  # no temporary file
    assert {f for f in files if f.startswith(".meta/")} == {f".meta/{o}.json" for o in objects}
    assert {r.key for r in job.outputs} <= {
        o.removeprefix(f"{r.bucket}/") for o in objects for r in job.outputs[:1]
    }
