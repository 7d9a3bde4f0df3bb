"""The scoring service for real: PostgreSQL, Redis, the controller, a Celery worker
process, a gRPC server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from orisel.api.common.v1 import common_pb2
from orisel.api.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from orisel.core.settings import Settings
from orisel.core.storage import ArtifactRef, LocalStore, get_bytes
from tests.stack import Stack, stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, python_archive: Path) -> Iterator[Stack]:
    with stack(tmp_path_factory.mktemp("scoring"), data=python_archive) as s:
        s.serve(("scoring",))
        s.start_controller()
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
