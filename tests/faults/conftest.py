"""The fault tests' stack and their undisturbed reference runs, one of each per module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from orisel.control.job import Job, JobState
from tests.faults.jobs import SEGMENTS, start_controller, submit, wait_for
from tests.stack import Stack, stack


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, python_archive: Path) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("faults")
    with stack(root, data=python_archive, lease_s=3.0, dispatch_timeout_s=4.0) as s:
        s.serve(("training",))
        yield s


@pytest.fixture(autouse=True)
def _own_processes(live: Stack) -> Iterator[None]:
    """Every worker, controller and front end a test starts ends with it, passed or failed."""
    started = len(live.procs)
    yield
    live.stop(started)


@pytest.fixture(scope="module")
def reference(live: Stack) -> Job:
    """The undisturbed run every faulty run must reproduce."""
    started = len(live.procs)
    start_controller(live)
    live.worker("training", pool="prefork")
    try:
        job = wait_for(live, submit(live.address, "reference"))
    finally:
        live.stop(started)  # ended even when the reference fails: no stray worker stays
    assert job.state == JobState.SUCCEEDED, job.error
    assert job.attempts == SEGMENTS
    return job


@pytest.fixture(scope="module")
def reference_population(live: Stack) -> Job:
    """The undisturbed population job a killed one must reproduce, network by network."""
    started = len(live.procs)
    start_controller(live)
    live.worker("training", pool="prefork")
    try:
        job = wait_for(live, submit(live.address, "reference-population", population=True))
    finally:
        live.stop(started)  # ended even when the reference fails: no stray worker stays
    assert job.state == JobState.SUCCEEDED, job.error
    return job
