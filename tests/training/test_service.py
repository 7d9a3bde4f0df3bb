"""The training service for real: PostgreSQL, Redis, the controller, a Celery worker
process and a gRPC server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orisel.api.common.v1 import common_pb2
from orisel.api.training.v1 import training_pb2, training_pb2_grpc
from orisel.core.settings import Settings
from orisel.core.storage import LocalStore
from tests.stack import Stack, stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, python_archive: Path) -> Iterator[Stack]:
    with stack(tmp_path_factory.mktemp("svc"), data=python_archive) as s:
        s.serve(("training",))
        s.start_controller()
        s.worker("training")
        yield s


@pytest.fixture(scope="module")
def settings(live: Stack) -> Settings:
    return live.settings


@pytest.fixture(scope="module")
def address(live: Stack) -> str:
    return live.address


@pytest.fixture(scope="module")
def stub(address: str) -> Iterator[training_pb2_grpc.TrainingServiceStub]:
    channel = grpc.insecure_channel(address)
    yield training_pb2_grpc.TrainingServiceStub(channel)
    channel.close()


def _spec(**kw: object) -> training_pb2.TrainSpec:
    fields: dict[str, object] = {"epochs": 2, "val_size": 50, **kw}
    return training_pb2.TrainSpec(**fields)  # type: ignore[arg-type]


def test_health_is_serving(address: str) -> None:
    with grpc.insecure_channel(address) as ch:
        check = health_pb2_grpc.HealthStub(ch).Check
        for name in ("orisel.api.training.v1.TrainingService", "orisel.api.jobs.v1.JobService"):
            resp = check(health_pb2.HealthCheckRequest(service=name))
            assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_submit_watch_to_completion(
    settings: Settings, stub: training_pb2_grpc.TrainingServiceStub
) -> None:
    job = stub.Submit(training_pb2.SubmitRequest(idempotency_key="run-1", spec=_spec())).job
    assert job.state == common_pb2.JOB_STATE_QUEUED
    again = stub.Submit(training_pb2.SubmitRequest(idempotency_key="run-1", spec=_spec())).job
    assert again.id == job.id
    seen = []
    deadline = time.monotonic() + 240
    for update in stub.Watch(training_pb2.WatchRequest(id=job.id), timeout=240):
        seen.append(update.job)
        assert time.monotonic() < deadline
    final = seen[-1]
    assert final.state == common_pb2.JOB_STATE_SUCCEEDED, final.error
    assert final.progress.fraction == 1.0
    assert any(0 < j.progress.fraction < 1 for j in seen)  # progress reported on the way
    assert {Path(o.key).name for o in final.outputs} == {"best.pt", "manifest.json"}
    store = LocalStore(settings.store_root, settings.bucket)
    ckpts = [r.key for r in store.list(f"runs/{job.id}/checkpoints/")]
    assert len(ckpts) == 9  # step 0, quarter epochs for 2 epochs
    assert stub.Get(training_pb2.GetRequest(id=job.id)).job == final
    listed = stub.List(training_pb2.ListRequest(state=common_pb2.JOB_STATE_SUCCEEDED)).jobs
    assert job.id in [j.id for j in listed]


def test_errors_map_to_status_codes(stub: training_pb2_grpc.TrainingServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.Get(training_pb2.GetRequest(id="0" * 32))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        stub.Submit(training_pb2.SubmitRequest(spec=training_pb2.TrainSpec(epochs=-2)))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "spec.epochs" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.Submit(training_pb2.SubmitRequest(spec=training_pb2.TrainSpec(label_corruption=2.0)))
    assert "spec.data.label_corruption" in err.value.details()


def test_cancel(stub: training_pb2_grpc.TrainingServiceStub) -> None:
    job = stub.Submit(training_pb2.SubmitRequest(spec=_spec(epochs=50))).job
    cancelled = stub.Cancel(training_pb2.CancelRequest(id=job.id)).job
    assert cancelled.state == common_pb2.JOB_STATE_CANCELLED
    with pytest.raises(grpc.RpcError) as err:
        stub.Cancel(training_pb2.CancelRequest(id="0" * 32))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        stub.Cancel(training_pb2.CancelRequest(id="missing"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_client_commands(
    settings: Settings,
    address: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    import json

    from orisel.client.cli import main

    rc = main(
        [
            "submit",
            "train",
            "--server",
            address,
            "--epochs",
            "1",
            "--val-size",
            "50",
            "--key",
            "cli-1",
            "--json",
        ]
    )
    assert rc == 0
    job_id = json.loads(capsys.readouterr().out)["id"]
    assert main(["watch", job_id, "--server", address, "--json"]) == 0
    final = json.loads(capsys.readouterr().out)
    assert final["state"] == "JOB_STATE_SUCCEEDED"
    assert main(["jobs", "--server", address]) == 0
    assert job_id in capsys.readouterr().out
    out = tmp_path / "best.pt"  # through ArtifactService: the client holds no store keys
    assert main(["fetch", f"runs/{job_id}/best.pt", "--out", str(out), "--server", address]) == 0
    from orisel.training.checkpoint import load_checkpoint

    assert load_checkpoint(out, "cnn7")["epoch"] > 0
