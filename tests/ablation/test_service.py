"""The ablation service for real: PostgreSQL, Redis, the controller, Celery worker processes,
a gRPC server, and a worker killed in the middle of a sweep."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from orisel.ablation.scores import UnitScores
from orisel.ablation.spec import AblateSpec
from orisel.analyses import ablate
from orisel.api.ablation.v1 import ablation_pb2, ablation_pb2_grpc
from orisel.api.common.v1 import common_pb2
from orisel.client.cli import main
from orisel.data.sources import load_cifar10
from orisel.extraction.network import load_network
from orisel.kernel.tables import read_table
from orisel.runtime.settings import Settings
from orisel.store.backend import ArtifactRef, LocalStore, get_bytes
from tests.stack import Stack, stack

pytestmark = pytest.mark.integration
LAYERS = ["layer1", "layer2"]
SWEEP: dict[str, Any] = {
    "layers": LAYERS,
    "orders": ["gosi", "csi"],
    "fractions": [0.0, 0.5, 1.0],
    "seeds": [0, 1, 2],
    "random_halves": 5,
    "block_images": 40,  # 100 test images: blocks 0-40, 40-80, 80-100 of every layer
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, python_archive: Path) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("abl")
    with stack(root, data=python_archive, task_time_limit_s=60) as s:
        s.serve(("ablation",))
        s.start_controller()
        yield s


@pytest.fixture(scope="module")
def settings(live: Stack) -> Settings:
    return live.settings


@pytest.fixture(scope="module")
def inputs(
    settings: Settings,
    tiny_checkpoint: Path,
    python_archive: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[ArtifactRef, ArtifactRef, Path]:
    tune_dir = tmp_path_factory.mktemp("tune") / "tune"
    assert (
        main(
            [
                "tune",
                "--checkpoint",
                str(tiny_checkpoint),
                "--data",
                str(python_archive),
                "--layers",
                ",".join(LAYERS),
                "--stimuli",
                "gratings",
                "--permutations",
                "10",
                "--out",
                str(tune_dir),
                "-q",
            ]
        )
        == 0
    )
    store = LocalStore(settings.store_root, settings.bucket)
    ckpt = store.put_file("runs/tiny/best.pt", tiny_checkpoint)
    units = store.put_file("analyses/tiny/tune/units.csv", tune_dir / "units.csv")
    return ckpt, units, tune_dir


@pytest.fixture(scope="module")
def stub(live: Stack) -> Iterator[ablation_pb2_grpc.AblationServiceStub]:
    channel = grpc.insecure_channel(live.address)
    yield ablation_pb2_grpc.AblationServiceStub(channel)
    channel.close()


def _sweep(ckpt: ArtifactRef, units: ArtifactRef) -> ablation_pb2.SweepSpec:
    return ablation_pb2.SweepSpec(checkpoint=ckpt.to_proto(), scores=units.to_proto(), **SWEEP)


def _wait(stub: ablation_pb2_grpc.AblationServiceStub, job_id: str) -> common_pb2.Job:
    last = None
    for update in stub.Watch(ablation_pb2.WatchRequest(id=job_id), timeout=300):
        last = update.job
    assert last is not None
    return last


def _curves(settings: Settings, job: common_pb2.Job) -> dict[str, np.ndarray]:
    store = LocalStore(settings.store_root, settings.bucket)
    ref = next(ArtifactRef.from_proto(o) for o in job.outputs if o.key.endswith("curves.csv"))
    path = settings.store_root / "check" / job.id / "curves.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(get_bytes(store, ref))
    return read_table(path)


def test_sweep_fans_out_and_matches_the_library(
    live: Stack,
    settings: Settings,
    inputs: tuple[ArtifactRef, ArtifactRef, Path],
    stub: ablation_pb2_grpc.AblationServiceStub,
    python_archive: Path,
    tiny_checkpoint: Path,
    tmp_path: Path,
) -> None:
    ckpt, units, tune_dir = inputs
    workers = [live.worker("ablation"), live.worker("ablation")]
    try:
        job = stub.Submit(
            ablation_pb2.SubmitRequest(idempotency_key="s1", sweep=_sweep(ckpt, units))
        ).job
        final = _wait(stub, job.id)
    finally:
        for w in workers:
            w.terminate()
            w.wait(30)
    assert final.state == common_pb2.JOB_STATE_SUCCEEDED, final.error
    chunks = live.db.children(final.id)
    # One child per (layer, block of images); the blocks combine into the library's numbers.
    assert sorted((c.spec["layer"], tuple(c.spec["block"])) for c in chunks) == sorted(
        (layer, block) for layer in LAYERS for block in ((0, 40), (40, 80), (80, 100))
    )
    assert all(c.attempts == 1 for c in chunks)
    service = _curves(settings, final)
    ds = load_cifar10(python_archive)
    local = ablate(
        load_network(tiny_checkpoint, device="cpu"),
        AblateSpec.model_validate(SWEEP),
        UnitScores(tune_dir, "gratings"),
        ds.test_images,
        ds.test_labels,
        tmp_path / "local",
    )
    direct = read_table(tmp_path / "local" / "curves.csv")
    assert len(service["layer"]) == len(direct["layer"]) == 2 * (2 * 2 * 3 + 3 * 3)
    for col in ("layer", "order", "seed", "fraction"):
        assert service[col].tolist() == direct[col].tolist()
    np.testing.assert_allclose(
        service["loss_increase_mean"], direct["loss_increase_mean"], atol=1e-9
    )
    np.testing.assert_allclose(service["accuracy"], direct["accuracy"], atol=1e-12)
    assert len(local.splits) == 4


def test_a_killed_worker_costs_nothing(
    live: Stack,
    settings: Settings,
    inputs: tuple[ArtifactRef, ArtifactRef, Path],
    stub: ablation_pb2_grpc.AblationServiceStub,
) -> None:
    ckpt, units, _ = inputs
    reference = stub.Get(
        ablation_pb2.GetRequest(
            id=stub.Submit(
                ablation_pb2.SubmitRequest(idempotency_key="s1", sweep=_sweep(ckpt, units))
            ).job.id
        )
    ).job
    victim, survivor = live.worker("ablation"), live.worker("ablation")
    try:
        job = stub.Submit(
            ablation_pb2.SubmitRequest(idempotency_key="s2", sweep=_sweep(ckpt, units))
        ).job
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = stub.Get(ablation_pb2.GetRequest(id=job.id)).job
            if state.progress.metrics.get("chunks_done", 0) >= 1:
                break
            time.sleep(0.05)
        victim.send_signal(signal.SIGKILL)  # mid-sweep: the victim is likely inside a chunk
        victim.wait()
        final = _wait(stub, job.id)
    finally:
        survivor.terminate()
        survivor.wait(30)
    assert final.state == common_pb2.JOB_STATE_SUCCEEDED, final.error
    a, b = _curves(settings, reference), _curves(settings, final)
    for col in a:
        assert a[col].tolist() == b[col].tolist(), col


def test_bad_specs(
    settings: Settings,
    inputs: tuple[ArtifactRef, ArtifactRef, Path],
    stub: ablation_pb2_grpc.AblationServiceStub,
) -> None:
    ckpt, units, _ = inputs
    missing = ArtifactRef(ckpt.bucket, "runs/none/best.pt", ckpt.sha256, 1).to_proto()
    cases = [
        (
            ablation_pb2.SweepSpec(checkpoint=missing, scores=units.to_proto()),
            grpc.StatusCode.NOT_FOUND,
            "runs/none/best.pt",
        ),
        (
            ablation_pb2.SweepSpec(scores=units.to_proto()),
            grpc.StatusCode.INVALID_ARGUMENT,
            "spec.sweep.checkpoint",
        ),
        (
            ablation_pb2.SweepSpec(
                checkpoint=ckpt.to_proto(), scores=units.to_proto(), fractions=[1.5]
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            None,
        ),
        (
            ablation_pb2.SweepSpec(
                checkpoint=ckpt.to_proto(), scores=units.to_proto(), mode="melt"
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "spec.sweep.mode",
        ),
        (
            ablation_pb2.SweepSpec(
                checkpoint=ckpt.to_proto(), scores=units.to_proto(), random_halves=5000
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "spec.sweep.random_halves",
        ),
    ]
    for spec, code, text in cases:
        with pytest.raises(grpc.RpcError) as err:
            stub.Submit(ablation_pb2.SubmitRequest(sweep=spec))
        assert err.value.code() == code
        if text:
            assert text in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.Submit(ablation_pb2.SubmitRequest())
    assert "spec: must be a sweep or an invariance spec" in err.value.details()
