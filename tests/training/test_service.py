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
from orisel.runtime.settings import Settings
from orisel.store.backend import LocalStore
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
    assert "spec.label_corruption" in err.value.details()


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
    from orisel.models.checkpoint import load_checkpoint

    assert load_checkpoint(out, "cnn7")["epoch"] > 0
    # A population from the command line: the grid of corruptions x seeds as one job.
    grid = ["--label-corruptions", "0,0.5", "--seeds", "3", "--epochs", "1", "--val-size", "50"]
    capsys.readouterr()
    assert main(["submit", "train", "--server", address, *grid, "--json"]) == 0
    pop_id = json.loads(capsys.readouterr().out)["id"]
    assert main(["watch", pop_id, "--server", address, "--json"]) == 0
    outputs = {o["key"].split("/")[2] for o in json.loads(capsys.readouterr().out)["outputs"]}
    assert outputs == {"cnn7-c0-s3", "cnn7-c0.5-s3"}
    assert main(["submit", "train", "--server", address, "--seeds", "3"]) == 2  # half a grid


def test_a_population_trains_as_one_job(
    live: Stack, settings: Settings, stub: training_pb2_grpc.TrainingServiceStub, tmp_path: Path
) -> None:
    """Four networks (two seeds x two label corruptions) as one job on one worker, in two
    segments; each network's run lands in the store as a single run's would."""
    variants = [
        training_pb2.Variant(seed=s, label_corruption=c) for c in (0.0, 0.5) for s in (0, 1)
    ]
    spec = _spec(population=variants, epochs_per_segment=1, tf32=True)
    job = stub.Submit(training_pb2.SubmitRequest(idempotency_key="pop-1", spec=spec)).job
    seen = [u.job for u in stub.Watch(training_pb2.WatchRequest(id=job.id), timeout=300)]
    final = seen[-1]
    assert final.state == common_pb2.JOB_STATE_SUCCEEDED, final.error
    names = ["cnn7-c0-s0", "cnn7-c0-s1", "cnn7-c0.5-s0", "cnn7-c0.5-s1"]
    assert sorted(o.key for o in final.outputs) == sorted(
        f"runs/{job.id}/{n}/{f}" for n in names for f in ("best.pt", "manifest.json")
    )
    # Progress per network through Watch, and two segments (epochs_per_segment=1 of 2).
    shown = {k for u in seen for k in u.progress.metrics}
    assert {f"{n}/val_accuracy" for n in names} <= shown
    assert final.attempts == 2
    store = LocalStore(settings.store_root, settings.bucket)
    import json

    from orisel.store.backend import get_bytes

    for n in names:
        ref = store.stat(f"runs/{job.id}/{n}/manifest.json")
        manifest = json.loads(get_bytes(store, ref))
        assert manifest["status"] == "completed"
        assert manifest["config"]["seed"] == int(n[-1])
        assert manifest["config"]["tf32"] is True  # the numerics asked for, recorded
        assert [h["epoch"] for h in manifest["history"]][-1] == 2.0


def test_a_bad_population_is_refused_naming_the_field(
    stub: training_pb2_grpc.TrainingServiceStub,
) -> None:
    twice = [training_pb2.Variant(seed=1), training_pb2.Variant(seed=1)]
    cases: list[tuple[dict[str, object], str]] = [
        ({"population": twice}, "spec.population"),
        ({"population": [training_pb2.Variant(seed=-1)]}, "spec.population[0]"),
        ({"population": [training_pb2.Variant(label_corruption=2.0)]}, "spec.population[0]"),
        ({"amp": "fp8"}, "spec.amp"),
        ({"compile": "jit"}, "spec.compile"),
        ({"population": [training_pb2.Variant(select_reg=101.0)]}, "spec.population[0].select_reg"),
        ({"select_reg": float("nan")}, "spec.select_reg"),
        ({"select_layers": ["layer1", "a b"]}, "spec.select_layers"),
        ({"select_phases": 5}, "spec.select_phases"),
    ]
    for fields, field in cases:
        with pytest.raises(grpc.RpcError) as err:
            stub.Submit(training_pb2.SubmitRequest(spec=_spec(**fields)))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (err.value.details() or "")
    spec = _spec(model="resnet18", population=[training_pb2.Variant(seed=1)])
    with pytest.raises(grpc.RpcError) as err:
        stub.Submit(training_pb2.SubmitRequest(spec=spec))
    assert "spec.population: must be cnn7 networks" in (err.value.details() or "")
