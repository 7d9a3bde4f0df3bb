"""The training service for real: Redis broker, a Celery worker process, a gRPC server."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orisel.api.common.v1 import common_pb2
from orisel.api.training.v1 import training_pb2, training_pb2_grpc
from orisel.core.grpcserver import start_server
from orisel.core.settings import Settings
from orisel.core.storage import LocalStore
from orisel.training.servicer import registration
from tests.procs import start_worker

pytestmark = pytest.mark.integration
REDIS = "redis://127.0.0.1:6379"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory, python_archive: Path) -> Settings:
    root = tmp_path_factory.mktemp("svc")
    try:
        redis.Redis.from_url(f"{REDIS}/13").flushdb()
    except redis.ConnectionError:
        pytest.fail("Redis is not running on 127.0.0.1:6379 (.ci/run starts it)")
    return Settings(
        data=python_archive,
        cache_dir=root / "cache",
        store="local",
        store_root=root / "store",
        broker_url=f"{REDIS}/13",
        result_backend=f"{REDIS}/13",
        work_dir=root / "work",
        segment_epochs=1,
        grpc_port=0,
    )


@pytest.fixture(scope="module")
def worker(settings: Settings) -> Iterator[subprocess.Popen[bytes]]:
    proc = start_worker(settings, "training")
    yield proc
    proc.terminate()
    proc.wait(30)


@pytest.fixture(scope="module")
def address(settings: Settings, worker: subprocess.Popen[bytes]) -> Iterator[str]:
    server, port, _ = start_server([registration(settings)], "127.0.0.1", 0)
    yield f"127.0.0.1:{port}"
    server.stop(0)


@pytest.fixture(scope="module")
def stub(address: str) -> Iterator[training_pb2_grpc.TrainingServiceStub]:
    channel = grpc.insecure_channel(address)
    yield training_pb2_grpc.TrainingServiceStub(channel)
    channel.close()


def _spec(**kw: object) -> training_pb2.TrainSpec:
    fields: dict[str, object] = {"epochs": 2, "val_size": 50, **kw}
    return training_pb2.TrainSpec(**fields)  # type: ignore[arg-type]


def test_health_is_serving(settings: Settings, stub: training_pb2_grpc.TrainingServiceStub) -> None:
    server, port, _ = start_server([registration(settings)], "127.0.0.1", 0)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        check = health_pb2_grpc.HealthStub(ch).Check
        resp = check(
            health_pb2.HealthCheckRequest(service="orisel.api.training.v1.TrainingService")
        )
        assert resp.status == health_pb2.HealthCheckResponse.SERVING
    server.stop(0)


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
        stub.Cancel(training_pb2.CancelRequest(id="missing"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_client_commands(
    settings: Settings,
    address: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    import json

    from orisel.client.cli import main
    from orisel.core.settings import get_settings

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
    for name, value in {"STORE_ROOT": settings.store_root, "STORE": "local"}.items():
        monkeypatch.setenv(f"ORISEL_{name}", str(value))
    get_settings.cache_clear()
    out = tmp_path / "best.pt"
    assert main(["fetch", f"runs/{job_id}/best.pt", "--out", str(out)]) == 0
    get_settings.cache_clear()
    from orisel.training.checkpoint import load_checkpoint

    assert load_checkpoint(out, "cnn7")["epoch"] > 0
