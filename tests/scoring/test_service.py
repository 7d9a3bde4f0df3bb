"""The scoring service for real: PostgreSQL, Redis, the controller, an extraction worker and
a scoring worker process, a gRPC server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

from orisel.api.common.v1 import common_pb2
from orisel.api.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from orisel.runtime.settings import Settings
from orisel.store.backend import ArtifactRef, LocalStore, get_bytes
from tests.stack import Stack, stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, python_archive: Path) -> Iterator[Stack]:
    with stack(tmp_path_factory.mktemp("scoring"), data=python_archive) as s:
        s.serve(("scoring", "extraction"))
        s.start_controller()
        # as deployed: forward passes on the extraction (GPU) workers, statistics on the
        # scoring (CPU) workers
        s.worker("extraction")
        s.worker("scoring")
        yield s


@pytest.fixture(scope="module")
def settings(live: Stack) -> Settings:
    return live.settings


@pytest.fixture(scope="module")
def stub(live: Stack) -> Iterator[scoring_pb2_grpc.ScoringServiceStub]:
    channel = grpc.insecure_channel(live.address)
    yield scoring_pb2_grpc.ScoringServiceStub(channel)
    channel.close()


def test_tune_as_a_job(
    live: Stack,
    settings: Settings,
    stub: scoring_pb2_grpc.ScoringServiceStub,
    tiny_checkpoint: Path,
) -> None:
    store = LocalStore(settings.store_root, settings.bucket)
    ckpt = store.put_file("runs/tiny/best.pt", tiny_checkpoint)
    spec = scoring_pb2.ScoreSpec(
        checkpoint=ckpt.to_proto(),
        layers=["layer1", "layer2"],
        stimuli=["gratings"],
        permutations=10,
    )
    job = stub.Submit(scoring_pb2.SubmitRequest(idempotency_key="t1", spec=spec)).job
    final = None
    for update in stub.Watch(scoring_pb2.WatchRequest(id=job.id), timeout=240):
        final = update.job
    assert final is not None
    assert final.state == common_pb2.JOB_STATE_SUCCEEDED, final.error
    names = {Path(o.key).name for o in final.outputs}
    assert {"units.csv", "summary.json", "gosi_histograms.png"} <= names
    units = next(ArtifactRef.from_proto(o) for o in final.outputs if o.key.endswith("units.csv"))
    rows = get_bytes(store, units).decode().strip().splitlines()
    assert len(rows) == 1 + 32 + 32  # header + the units of layer1 and layer2
    # The analysis's own steps reached the job's progress (what Watch streams).
    steps = [e.data for e in live.db.events(job.id) if e.type == "progress"]
    scoring = [d for d in steps if d.get("phase", "").startswith("tune: scoring gratings")]
    assert scoring
    assert all(0 < d["fraction"] <= 0.95 for d in scoring)


def test_missing_checkpoint_fails_fast(stub: scoring_pb2_grpc.ScoringServiceStub) -> None:
    ref = common_pb2.ArtifactRef(bucket="orisel", key="runs/none/best.pt", sha256="0" * 64, size=1)
    with pytest.raises(grpc.RpcError) as err:
        stub.Submit(scoring_pb2.SubmitRequest(spec=scoring_pb2.ScoreSpec(checkpoint=ref)))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        stub.Submit(scoring_pb2.SubmitRequest(spec=scoring_pb2.ScoreSpec()))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "spec.checkpoint" in err.value.details()


def _wait(stub: scoring_pb2_grpc.ScoringServiceStub, job_id: str) -> common_pb2.Job:
    final = None
    for update in stub.Watch(scoring_pb2.WatchRequest(id=job_id), timeout=300):
        final = update.job
    assert final is not None
    return final


def test_sixteen_scorings_at_once_share_one_extraction(
    live: Stack,
    settings: Settings,
    stub: scoring_pb2_grpc.ScoringServiceStub,
    tiny_checkpoint: Path,
) -> None:
    store = LocalStore(settings.store_root, settings.bucket)
    ckpt = store.put_file("runs/race/best.pt", tiny_checkpoint)
    before, _ = live.db.list(kind="extraction", page_size=1000)

    def spec(seed: int) -> scoring_pb2.ScoreSpec:
        return scoring_pb2.ScoreSpec(
            checkpoint=ckpt.to_proto(),
            layers=["layer1"],
            stimuli=["gratings"],
            n_phases=2,
            permutations=5,
            test_subset=20,
            seed=seed,
        )

    def submit(seed: int) -> str:
        request = scoring_pb2.SubmitRequest(idempotency_key=f"race{seed}", spec=spec(seed))
        return str(stub.Submit(request).job.id)

    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(submit, range(16)))
    finals = [_wait(stub, i) for i in ids]
    assert all(f.state == common_pb2.JOB_STATE_SUCCEEDED for f in finals), [f.error for f in finals]
    after, _ = live.db.list(kind="extraction", page_size=1000)
    made = [j for j in after if j.id not in {b.id for b in before}]
    assert len(made) == 1
    assert made[0].attempts == 1
    # Scoring the same network again with other statistics settings: no new extraction,
    # the stored activations scored on the scoring worker (which loads no network).
    other = spec(0)
    other.threshold, other.alpha, other.permutations = 0.5, 0.01, 20
    again = stub.Submit(scoring_pb2.SubmitRequest(spec=other)).job
    final = _wait(stub, again.id)
    assert final.state == common_pb2.JOB_STATE_SUCCEEDED, final.error
    assert len(live.db.list(kind="extraction", page_size=1000)[0]) == len(after)
    summaries = [
        json.loads(get_bytes(store, ArtifactRef.from_proto(o)))
        for f in (finals[0], final)
        for o in f.outputs
        if o.key.endswith("summary.json")
    ]
    key = made[0].outputs[0].key.split("/")[-2]
    assert [s["activations"]["key"] for s in summaries] == [key, key]
    assert summaries[1]["spec"]["threshold"] == 0.5
    # the class selectivity came from the stored test images' responses
    assert summaries[0]["summary"]["class_selectivity"]["layer1"]["mean_csi"] > 0


def test_scoring_stored_activations_by_reference(
    live: Stack,
    stub: scoring_pb2_grpc.ScoringServiceStub,
) -> None:
    extractions, _ = live.db.list(kind="extraction", page_size=1000)
    done = next(j for j in extractions if j.spec["extract"]["n_phases"] == 2)
    summary = done.output("/summary.json")
    assert summary is not None
    request = scoring_pb2.SubmitRequest(
        spec=scoring_pb2.ScoreSpec(
            activations=summary.to_proto(),
            layers=["layer1"],
            stimuli=["gratings"],
            n_phases=2,
            permutations=7,
        )
    )
    final = _wait(stub, stub.Submit(request).job.id)
    assert final.state == common_pb2.JOB_STATE_SUCCEEDED, final.error
    # another grid than the activations' is refused, naming it
    request.spec.n_phases = 4
    final = _wait(stub, stub.Submit(request).job.id)
    assert final.state == common_pb2.JOB_STATE_FAILED
    assert "n_phases=2" in final.error
    request.spec.checkpoint.CopyFrom(summary.to_proto())
    with pytest.raises(grpc.RpcError) as err:
        stub.Submit(request)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
