"""What a task's run records when its work fails: passing errors are retried, and what the
job's owner reads never carries the worker's file paths."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from orisel.control import migrate
from orisel.control.db import JobDB
from orisel.control.lifecycle import JobRun, run_job
from orisel.runtime.settings import Settings
from tests.control.jobdb import new_job

WORKER_FILE = "/var/lib/orisel/work/3f2a/checkpoints/e1_s100.pt"


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
