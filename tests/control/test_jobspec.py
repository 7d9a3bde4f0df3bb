"""One typed spec per kind of job: rows written before specs were typed still read, and
write the same bytes (the idempotency key compares them), each names the task that runs it,
and a row no spec reads fails its job naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from orisel.ablation.spec import (
    CHUNK_TASK,
    INVARIANCE_TASK,
    SWEEP_TASK,
    AblateSpec,
    ChunkJob,
    InvarianceJob,
    InvarianceSpec,
    SweepJob,
)
from orisel.control.db import JobDB
from orisel.control.job import Job, JobSpec, JobState
from orisel.control.rows import canonical
from orisel.extraction.spec import EXTRACT_TASK, ExtractJob, ExtractSpec
from orisel.kernel.errors import FailedPrecondition
from orisel.pipeline.spec import ADVANCE_TASK, PaperJob, PaperSpec
from orisel.scoring.spec import SCORE_TASK, ScoreJob, TuneSpec
from orisel.training.config import TrainConfig
from orisel.training.spec import POPULATION_TASK, SEGMENT_TASK, Member, TrainJob


def _ref(key: str) -> dict[str, Any]:
    return {"bucket": "orisel", "key": key, "sha256": "a" * 64, "size": 10}


CONFIG = TrainConfig().model_dump(mode="json")
EXTRACT = ExtractSpec().model_dump(mode="json")
TUNE = TuneSpec().model_dump(mode="json")
MODEL = {"architecture": "resnet18", "weights": None, "program": None, "input_size": None}

# Rows as the servicers (and the pipeline, a sweep, a scoring job) wrote them before specs
# were typed, literally: kind, spec, the task it was sent to.
OLD_ROWS: list[tuple[type[JobSpec], dict[str, Any], str]] = [
    (
        TrainJob,
        {"config": CONFIG, "population": None, "data": None, "segment_epochs": None},
        SEGMENT_TASK,
    ),
    (
        TrainJob,
        {
            "config": CONFIG,
            "population": [
                {"seed": 0, "label_corruption": 0.0, "select_reg": 0.0},
                {"seed": 1, "label_corruption": 0.2, "select_reg": -2.0},
            ],
            "data": _ref("datasets/cifar.tar.gz"),
            "segment_epochs": 5,
        },
        POPULATION_TASK,
    ),
    (
        ExtractJob,
        {
            "checkpoint": _ref("runs/j/best.pt"),
            "test_subset": None,
            "images": False,
            "extract": EXTRACT,
        },
        EXTRACT_TASK,
    ),
    (
        ExtractJob,
        {
            "model": MODEL,
            "data": _ref("users/me/val.tar"),
            "class_map": _ref("users/me/classes.txt"),
            "test_subset": 100,
            "images": True,
            "extract": EXTRACT,
        },
        EXTRACT_TASK,
    ),
    (
        ScoreJob,
        {
            "activations": {
                "summary": _ref("activations/o/k/summary.json"),
                "responses": _ref("activations/o/k/responses.npz"),
            },
            "tune": TUNE,
        },
        SCORE_TASK,
    ),
    (
        ScoreJob,
        {"checkpoint": _ref("runs/j/best.pt"), "tune": TUNE, "test_subset": None},
        SCORE_TASK,
    ),
    (
        SweepJob,
        {
            "task": "sweep",
            "checkpoint": _ref("runs/j/best.pt"),
            "data": _ref("datasets/cifar.tar.gz"),
            "scores": _ref("analyses/s/tune/units.csv"),
            "test_subset": 1000,
            "ablate": AblateSpec().model_dump(mode="json"),
        },
        SWEEP_TASK,
    ),
    (
        InvarianceJob,
        {
            "task": "invariance",
            "model": MODEL,
            "scores": _ref("analyses/s/tune/units.csv"),
            "test_subset": None,
            "invariance": InvarianceSpec().model_dump(mode="json"),
        },
        INVARIANCE_TASK,
    ),
    (ChunkJob, {"layer": "layer1", "block": [0, 500]}, CHUNK_TASK),
    (PaperJob, {"paper": PaperSpec().model_dump(mode="json"), "data": None}, ADVANCE_TASK),
]


def _job(spec: dict[str, Any], kind: str = "training") -> Job:
    return Job(id="j" * 32, kind=kind, state=JobState.QUEUED, spec=spec)


@pytest.mark.parametrize(("model", "row", "task"), OLD_ROWS)
def test_an_old_row_reads_and_writes_the_same_bytes(
    model: type[JobSpec], row: dict[str, Any], task: str
) -> None:
    spec = model.of(_job(row))
    assert spec.task_name == task
    assert canonical(spec.row()) == canonical(row)


def test_the_same_request_after_the_change_is_the_same_job(db: JobDB) -> None:
    """A Submit repeated with its idempotency key once specs are typed finds the job the
    first one made, as long as the first row is the same request's."""
    for i, (model, row, task) in enumerate(OLD_ROWS):
        first, _ = db.create("scoring", row, task=task, queue="q", idempotency_key=f"k{i}")
        again = model.model_validate(row)
        second, made = db.create(
            "scoring", again.row(), task=again.task_name, queue="q", idempotency_key=f"k{i}"
        )
        assert (second.id, made) == (first.id, False)


def test_a_population_from_before_the_selectivity_term_reads_as_alpha_zero() -> None:
    row = {
        "config": {k: v for k, v in CONFIG.items() if not k.startswith("select_")},
        "population": [{"seed": 3, "label_corruption": 0.4}],
        "data": None,
        "segment_epochs": None,
    }
    spec = TrainJob.of(_job(row))
    assert [name for name, _ in spec.networks()] == ["cnn7-c0.4-s3"]


def test_each_network_of_a_population_is_validated() -> None:
    for bad in ({"seed": -5}, {"label_corruption": 1.5}, {"select_reg": float("nan")}):
        with pytest.raises(ValidationError) as err:
            Member.model_validate({"seed": 0, "label_corruption": 0.0, **bad})
        assert err.value.errors()[0]["loc"] == (next(iter(bad)),)
    one = Member(seed=2, label_corruption=0.2, select_reg=1.0)
    with pytest.raises(ValidationError, match="distinct"):
        TrainJob(config=TrainConfig(), population=(one, one))
    with pytest.raises(ValidationError, match="cnn7 networks"):
        TrainJob(config=TrainConfig(model="resnet18"), population=(one,))
    ((name, cfg),) = TrainJob(config=TrainConfig(), population=(one,)).networks()
    assert (name, cfg.seed, cfg.data.label_corruption, cfg.select_reg) == (
        "cnn7-c0.2-s2-a1",
        2,
        0.2,
        1.0,
    )


def test_a_row_no_spec_reads_fails_the_job_naming_the_field() -> None:
    row = {"config": {**CONFIG, "epochs": 0}, "population": None, "data": None}
    with pytest.raises(FailedPrecondition, match=r"TrainJob: spec\.config\.epochs"):
        TrainJob.of(_job(row))
    with pytest.raises(FailedPrecondition, match=r"spec\.surprise"):
        ChunkJob.of(_job({"layer": "layer1", "block": [0, 1], "surprise": 1}))
    with pytest.raises(FailedPrecondition, match="exactly one"):
        ExtractJob.of(_job({"extract": EXTRACT}, "extraction"))
    with pytest.raises(FailedPrecondition, match="neither"):
        ScoreJob.of(_job({**OLD_ROWS[4][1], "checkpoint": _ref("runs/j/best.pt")}, "scoring"))
