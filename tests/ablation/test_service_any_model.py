"""Any network through the services: a torchvision architecture with weights from the store,
and a torch.export program, scored, ablated and tested for shift-invariance on an ImageFolder
archive from the store, by real servers and a worker process; the numbers equal the command
line's on the same files."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import torch
from torch import nn

from orisel.api.ablation.v1 import ablation_pb2, ablation_pb2_grpc
from orisel.api.common.v1 import common_pb2
from orisel.api.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from orisel.client.cli import main
from orisel.kernel.tables import read_table
from orisel.models.registry import build_model
from orisel.store.backend import ArtifactRef, LocalStore, get_bytes
from tests.conftest import Arrays, imagefolder_files, write_folder, write_tar
from tests.stack import Stack, stack

pytestmark = pytest.mark.integration
LAYERS = ["layer1.0", "layer2.0"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with stack(tmp_path_factory.mktemp("any"), task_time_limit_s=120) as s:
        s.serve(("scoring", "ablation"))
        s.start_controller()
        s.worker("extraction,scoring,ablation")
        yield s


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, arrays: Arrays) -> dict[str, Path]:
    """A random ResNet-18's weights, and the same labelled images as a folder and an archive."""
    root = tmp_path_factory.mktemp("inputs")
    torch.manual_seed(3)
    model, _ = build_model("resnet18", num_classes=10)
    torch.save(model.state_dict(), root / "resnet18.pt")
    images = imagefolder_files(arrays, ".png")
    folder = write_folder(root / "folder", images)
    return {
        "weights": root / "resnet18.pt",
        "folder": folder / "cifar10" / "test",
        "archive": write_tar(root / "images.tar.gz", images),
    }


@pytest.fixture(scope="module")
def channel(live: Stack) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(live.address) as ch:
        yield ch


def _put(live: Stack, key: str, path: Path) -> common_pb2.ArtifactRef:
    store = LocalStore(live.settings.store_root, live.settings.bucket)
    return store.put_file(key, path).to_proto()


def _table(live: Stack, job: common_pb2.Job, name: str, tmp: Path) -> dict[str, np.ndarray]:
    store = LocalStore(live.settings.store_root, live.settings.bucket)
    ref = next(ArtifactRef.from_proto(o) for o in job.outputs if o.key.endswith(f"/{name}"))
    path = tmp / job.id / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(get_bytes(store, ref))
    return read_table(path)


def _ended(stub: object, watch: type, job_id: str) -> common_pb2.Job:
    last = None
    for update in stub.Watch(watch(id=job_id), timeout=300):  # type: ignore[attr-defined]
        last = update.job
    assert last is not None
    return last


def test_a_torchvision_model_scored_and_ablated_like_the_command_line(
    live: Stack, channel: grpc.Channel, files: dict[str, Path], tmp_path: Path
) -> None:
    model = common_pb2.Model(
        architecture="resnet18",
        weights=_put(live, "models/resnet18.pt", files["weights"]),
        input_size=32,
    )
    data = _put(live, "datasets/images.tar.gz", files["archive"])
    scoring = scoring_pb2_grpc.ScoringServiceStub(channel)
    spec = scoring_pb2.ScoreSpec(
        model=model, data=data, layers=LAYERS, stimuli=["gratings"], permutations=5
    )
    job = scoring.Submit(scoring_pb2.SubmitRequest(idempotency_key="rn", spec=spec)).job
    scored = _ended(scoring, scoring_pb2.WatchRequest, job.id)
    assert scored.state == common_pb2.JOB_STATE_SUCCEEDED, scored.error
    units = _table(live, scored, "units.csv", tmp_path)

    net = [
        "--model",
        "resnet18",
        "--weights",
        str(files["weights"]),
        "--input-size",
        "32",
        "--device",
        "cpu",
        "--data",
        str(files["folder"]),
    ]
    tune = tmp_path / "tune"
    assert (
        main(
            [
                "tune",
                *net,
                "--layers",
                ",".join(LAYERS),
                "--stimuli",
                "gratings",
                "--permutations",
                "5",
                "--out",
                str(tune),
                "-q",
            ]
        )
        == 0
    )
    local = read_table(tune / "units.csv")
    assert len(units["unit"]) == 64 + 128
    np.testing.assert_allclose(units["gosi"], local["gosi"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(units["csi"], local["csi"], rtol=1e-5, atol=1e-6)
    assert np.isfinite(units["csi"]).all()  # class selectivity on the archive's images

    ablation = ablation_pb2_grpc.AblationServiceStub(channel)
    scores = next(o for o in scored.outputs if o.key.endswith("/units.csv"))
    sweep = ablation_pb2.SweepSpec(
        model=model,
        data=data,
        scores=scores,
        layers=LAYERS,
        orders=["gosi", "csi"],
        seeds=[0],
        fractions=[0.0, 0.5, 1.0],
        random_halves=3,
        point="relu",
    )
    job = ablation.Submit(ablation_pb2.SubmitRequest(idempotency_key="rn-s", sweep=sweep)).job
    swept = _ended(ablation, ablation_pb2.WatchRequest, job.id)
    assert swept.state == common_pb2.JOB_STATE_SUCCEEDED, swept.error
    curves = _table(live, swept, "curves.csv", tmp_path)
    ab = tmp_path / "ablate"
    assert (
        main(
            [
                "ablate",
                *net,
                "--scores",
                str(tune),
                "--layers",
                ",".join(LAYERS),
                "--point",
                "relu",
                "--orders",
                "gosi,csi",
                "--seeds",
                "0",
                "--fractions",
                "0,0.5,1",
                "--out",
                str(ab),
                "-q",
            ]
        )
        == 0
    )
    want = read_table(ab / "curves.csv")
    np.testing.assert_allclose(curves["accuracy"], want["accuracy"], atol=1e-12)
    assert curves["accuracy"].max() > 0  # a 10-class head: accuracies that can differ
    np.testing.assert_allclose(
        curves["loss_increase_mean"], want["loss_increase_mean"], rtol=1e-5, atol=1e-7
    )

    inv = ablation_pb2.InvarianceSpec(
        model=model,
        data=data,
        scores=scores,
        layers=["layer4.1"],
        ablate_layers=["layer1.0"],
        seeds=[0],
        shift=2,
        point="relu",
    )
    job = ablation.Submit(ablation_pb2.SubmitRequest(idempotency_key="rn-i", invariance=inv)).job
    tested = _ended(ablation, ablation_pb2.WatchRequest, job.id)
    assert tested.state == common_pb2.JOB_STATE_SUCCEEDED, tested.error
    assert any(o.key.endswith("/summary.json") for o in tested.outputs)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit's deprecation, on purpose
@pytest.mark.parametrize("archive", ["pt2", "ts"])
def test_a_program_is_scored(
    live: Stack, channel: grpc.Channel, files: dict[str, Path], tmp_path: Path, archive: str
) -> None:
    """A torch.export program or a TorchScript archive from the store, its layers read by
    the names they have in the module it was made from."""
    model = nn.Sequential(
        nn.Conv2d(3, 6, 5),
        nn.ReLU(),
        nn.Conv2d(6, 8, 3),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),  # logits: class selectivity reads the classes from them
    ).eval()
    path = tmp_path / f"net.{archive}"
    if archive == "pt2":
        batch = torch.export.Dim("batch")
        program = torch.export.export(
            model, (torch.zeros(2, 3, 32, 32),), dynamic_shapes={"input": {0: batch}}
        )
        buffer = io.BytesIO()
        torch.export.save(program, buffer)
        path.write_bytes(buffer.getvalue())
    else:
        torch.jit.save(torch.jit.script(model), str(path))
    ref = _put(live, f"models/net.{archive}", path)
    scoring = scoring_pb2_grpc.ScoringServiceStub(channel)
    spec = scoring_pb2.ScoreSpec(
        model=common_pb2.Model(program=ref, input_size=32),
        data=_put(live, "datasets/images.tar.gz", files["archive"]),
        stimuli=["gratings"],
        permutations=3,
    )
    job = scoring.Submit(scoring_pb2.SubmitRequest(idempotency_key=archive, spec=spec)).job
    final = _ended(scoring, scoring_pb2.WatchRequest, job.id)
    assert final.state == common_pb2.JOB_STATE_SUCCEEDED, final.error
    units = _table(live, final, "units.csv", tmp_path)
    assert set(units["layer"].tolist()) == {"1", "3"}  # the program's ReLUs, by their names
    assert len(units["unit"]) == 6 + 8


@pytest.mark.parametrize(
    ("model", "field"),
    [
        (common_pb2.Model(), "spec.model.architecture"),
        (common_pb2.Model(architecture="../etc"), "spec.model.architecture"),
        (common_pb2.Model(architecture="resnet18", input_size=5000), "spec.model.input_size"),
        (
            common_pb2.Model(architecture="resnet18", weights={"key": "no/such"}),
            "spec.model.weights",
        ),
        (
            common_pb2.Model(program={"key": "models/x.pt2"}, weights={"key": "models/w.pt"}),
            "spec.model.weights",
        ),
    ],
)
def test_a_bad_model_is_refused_naming_the_field(
    channel: grpc.Channel, model: common_pb2.Model, field: str, live: Stack, tmp_path: Path
) -> None:
    (tmp_path / "x").write_bytes(b"x")
    _put(live, "models/x.pt2", tmp_path / "x")
    _put(live, "models/w.pt", tmp_path / "x")
    scoring = scoring_pb2_grpc.ScoringServiceStub(channel)
    spec = scoring_pb2.ScoreSpec(model=model)
    with pytest.raises(grpc.RpcError) as err:
        scoring.Submit(scoring_pb2.SubmitRequest(spec=spec))
    assert err.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    assert field in (err.value.details() or "")


def test_a_checkpoint_and_a_model_together_are_refused(
    channel: grpc.Channel, live: Stack, tmp_path: Path
) -> None:
    (tmp_path / "x").write_bytes(b"x")
    ckpt = _put(live, "runs/x/best.pt", tmp_path / "x")
    spec = scoring_pb2.ScoreSpec(checkpoint=ckpt, model=common_pb2.Model(architecture="vgg16"))
    with pytest.raises(grpc.RpcError) as err:
        scoring_pb2_grpc.ScoringServiceStub(channel).Submit(scoring_pb2.SubmitRequest(spec=spec))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "spec.checkpoint" in (err.value.details() or "")
    assert "exactly one" in (err.value.details() or "")
