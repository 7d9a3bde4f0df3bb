"""The job database cut off (a proxy in front of the real PostgreSQL drops it): every call
is UNAVAILABLE with a retry hint, never INTERNAL; health reads NOT_SERVING until the database
is back; a worker whose claim met the outage leaves the job to be sent again."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orisel.api.common.v1 import common_pb2
from orisel.api.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from orisel.api.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from orisel.control.job import JobState
from orisel.control.lifecycle import run_job
from orisel.rpc.server import LIVENESS, RETRY_HEADER
from orisel.security.auth import Tokens
from orisel.server.launch import start_front_end
from orisel.store.backend import LocalStore
from tests.control.jobdb import new_job
from tests.control.proxy import Proxy
from tests.stack import Stack, pg_database, stack

pytestmark = pytest.mark.service  # servicers in this process, on a real database
PG_PORT = 5432
SERVING, NOT_SERVING = (
    health_pb2.HealthCheckResponse.SERVING,
    health_pb2.HealthCheckResponse.NOT_SERVING,
)


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proxy, Stack]]:
    with Proxy(PG_PORT) as proxy, pg_database() as url:
        via = url.replace(f"127.0.0.1:{PG_PORT}/", f"127.0.0.1:{proxy.port}/")
        assert via != url
        with stack(tmp_path_factory.mktemp("outage"), database_url=via, auth="token") as live:
            live.serve(("scoring",))
            yield proxy, live
            proxy.restore()


def _health(channel: grpc.Channel, wanted: int) -> None:
    """Wait until health reads `wanted` (the server probes its database every 2 s)."""
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + 15
    while stub.Check(health_pb2.HealthCheckRequest(), timeout=5).status != wanted:
        assert time.monotonic() < deadline, f"health never read {wanted}"
        time.sleep(0.1)


def _refused(call: Callable[[], Any]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value


def _every_verb(channel: grpc.Channel, md: Any, job_id: str) -> list[Callable[[], Any]]:
    jobs = jobs_pb2_grpc.JobServiceStub(channel)
    scoring = scoring_pb2_grpc.ScoringServiceStub(channel)
    spec = scoring_pb2.ScoreSpec(checkpoint=common_pb2.ArtifactRef(key="models/x"))
    return [
        partial(jobs.GetJob, jobs_pb2.GetJobRequest(id=job_id), metadata=md),
        partial(jobs.ListJobs, jobs_pb2.ListJobsRequest(), metadata=md),
        partial(jobs.CancelJob, jobs_pb2.CancelJobRequest(id=job_id), metadata=md),
        partial(scoring.Get, scoring_pb2.GetRequest(id=job_id), metadata=md),
        partial(scoring.Submit, scoring_pb2.SubmitRequest(spec=spec), metadata=md),
        lambda: list(scoring.Watch(scoring_pb2.WatchRequest(id=job_id), metadata=md)),
    ]


def test_an_outage_is_unavailable_with_a_retry_hint_and_not_serving(
    outage: tuple[Proxy, Stack], tmp_path: Path
) -> None:
    proxy, live = outage
    token = Tokens(live.db).create("alice")
    md = (("authorization", f"Bearer {token}"),)
    job_id = new_job(live.db, owner="alice")
    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"w")  # a Submit's checkpoint must exist: it then meets the outage
    LocalStore(live.settings.store_root, live.settings.bucket).put_file("models/x", weights)
    # The same database without authentication: the job verbs meet the outage themselves.
    open_settings = live.settings.model_copy(update={"auth": "off", "work_dir": tmp_path})
    open_server = start_front_end(open_settings, ["scoring"])
    try:
        with (
            grpc.insecure_channel(live.address) as ch,
            grpc.insecure_channel(f"127.0.0.1:{open_server.port}") as open_ch,
        ):
            calls = _every_verb(ch, md, job_id) + _every_verb(open_ch, md, job_id)
            jobs = jobs_pb2_grpc.JobServiceStub(ch)
            assert jobs.GetJob(jobs_pb2.GetJobRequest(id=job_id), metadata=md).job.id == job_id
            _health(ch, SERVING)
            proxy.cut()
            for call in calls:
                err = _refused(call)
                assert err.code() == grpc.StatusCode.UNAVAILABLE, err.details()
                assert "retry" in err.details()
                assert "127.0.0.1" not in err.details()  # the database's address stays inside
                assert (RETRY_HEADER, "2000") in (err.trailing_metadata() or ())
            _health(ch, NOT_SERVING)
            _health(open_ch, NOT_SERVING)
            # Not ready, but alive: a liveness probe must not restart it for the database.
            live_check = health_pb2.HealthCheckRequest(service=LIVENESS)
            assert health_pb2_grpc.HealthStub(ch).Check(live_check).status == SERVING
            proxy.restore()
            _health(ch, SERVING)
            got = jobs.GetJob(jobs_pb2.GetJobRequest(id=job_id), metadata=md)
            assert got.job.state == common_pb2.JOB_STATE_QUEUED
    finally:
        open_server.stop(0)


def test_a_claim_that_meets_an_outage_leaves_the_job_to_be_sent_again(
    outage: tuple[Proxy, Stack],
) -> None:
    proxy, live = outage
    job_id = new_job(live.db)
    assert live.db.dispatch_due(lambda due: None) >= 1  # its message went out ...
    proxy.cut()
    try:
        # ... and a worker took it while the database was away: nothing escapes to Celery.
        assert run_job(live.db, job_id, live.settings, lambda run: None) == "UNCLAIMED"
    finally:
        proxy.restore()
    job = live.db.get(job_id)
    assert (job.state, job.attempts) == (JobState.QUEUED, 0)
    # The message is spent and the queue holds nothing: the controller sends it again.
    assert live.db.reconcile(1e-3, lambda queue: 0)["resent"] >= 1
    sent: list[str] = []
    live.db.dispatch_due(lambda due: sent.append(due.id))
    assert job_id in sent
