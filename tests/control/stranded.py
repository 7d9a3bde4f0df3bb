"""A worker of tests/control/test_fencing.py, run as its own process: it claims a job, writes
one artifact through its fenced store inside the job's lifecycle, and prints the outcome.
The test holds it inside that write (its source file under a lease the test holds) and
stops it there."""

from __future__ import annotations

import sys
from pathlib import Path

from orisel.control.db import open_db
from orisel.control.lifecycle import JobRun
from orisel.runtime.settings import Settings


def main(url: str, job_id: str, store_root: str, source: str, key: str) -> None:
    settings = Settings(
        database_url=url,
        store="local",
        store_root=Path(store_root),
        lease_s=0.5,
        db_idle_in_transaction_s=1.0,
    )
    db = open_db(settings.database_url, settings.max_attempts, settings.db_idle_in_transaction_s)
    run = JobRun.claim(db, job_id, settings)
    assert run is not None
    with run:
        sys.stdout.write(f"{run.worker}\n")
        sys.stdout.flush()
        run.succeed([run.store.put_file(key, Path(source))])
    sys.stdout.write(f"{run.outcome}\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
