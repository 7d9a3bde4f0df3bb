"""The pipeline's spec: defaults, the networks it names, and clear errors for bad fields."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from orisel.api.pipeline.v1 import pipeline_pb2
from orisel.kernel.errors import InvalidArgument
from orisel.pipeline.servicer import spec_of
from orisel.pipeline.spec import PaperSpec, Variant
from orisel.store.backend import LocalStore


def test_defaults_are_the_papers_design() -> None:
    spec = PaperSpec()
    assert spec.epochs == 200
    assert [v.name for v in spec.variants()] == [
        "cnn7-c0-s0",
        "cnn7-c0.1-s0",
        "cnn7-c0.2-s0",
        "cnn7-c0.4-s0",
        "cnn7-c0-s1",
    ]
    assert [v.name for v in spec.reference()] == ["cnn7-c0-s0", "cnn7-c0-s1"]


def test_extra_seeds_go_to_the_lowest_corruption() -> None:
    spec = PaperSpec(label_corruptions=(0.4, 0.2), seeds=(3, 5))
    assert spec.variants() == [Variant(0.4, 3), Variant(0.2, 3), Variant(0.2, 5)]
    assert spec.reference() == [Variant(0.2, 3), Variant(0.2, 5)]


def test_the_selectivity_study_trains_every_seed_per_alpha_and_sweeps_none() -> None:
    spec = PaperSpec(label_corruptions=(0.4, 0.0), seeds=(3, 5), select_regs=(-0.5, 2.0))
    assert [v.name for v in spec.variants()] == [
        "cnn7-c0.4-s3",
        "cnn7-c0-s3",
        "cnn7-c0-s5",
        "cnn7-c0-s3-a-0.5",
        "cnn7-c0-s5-a-0.5",
        "cnn7-c0-s3-a2",
        "cnn7-c0-s5-a2",
    ]
    assert spec.reference() == [Variant(0.0, 3), Variant(0.0, 5)]  # the ablation sweeps'
    assert spec.regularized() == [
        Variant(0.0, 3, -0.5),
        Variant(0.0, 5, -0.5),
        Variant(0.0, 3, 2.0),
        Variant(0.0, 5, 2.0),
    ]


@pytest.mark.parametrize(
    ("fields", "name"),
    [
        ({"label_corruptions": [1.0]}, "label_corruptions"),
        ({"label_corruptions": [0.1, 0.1]}, "label_corruptions"),
        ({"seeds": [-1]}, "seeds"),
        ({"epochs": 0}, "epochs"),
        ({"permutations": -5}, "permutations"),
        ({"select_regs": [0.0]}, "select_regs"),
        ({"select_regs": [1.0, 1.0]}, "select_regs"),
        ({"select_regs": [100.5]}, "select_regs"),
        ({"select_regs": [float("nan")]}, "select_regs"),
    ],
)
def test_bad_fields_are_named(fields: dict[str, object], name: str) -> None:
    with pytest.raises(ValidationError) as err:
        PaperSpec.model_validate(fields)
    assert err.value.errors()[0]["loc"][0] == name


def test_request_zeros_mean_defaults_and_errors_name_the_spec_field(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    got = spec_of(pipeline_pb2.SubmitRequest(spec=pipeline_pb2.PaperSpec(epochs=3)), store)
    assert got.paper.epochs == 3
    assert got.paper.label_corruptions == (0.0, 0.1, 0.2, 0.4)
    assert got.data is None
    bad = pipeline_pb2.SubmitRequest(spec=pipeline_pb2.PaperSpec(label_corruptions=[0.5, 1.5]))
    with pytest.raises(InvalidArgument) as err:
        spec_of(bad, store)
    assert err.value.field == "spec.label_corruptions"


@pytest.mark.parametrize("population", [1, 4])
def test_the_study_trains_on_its_own_recipe_as_the_training_service_reads_it(
    tmp_path: Path, population: int
) -> None:
    from orisel.pipeline.tasks import _train_children

    spec = PaperSpec(
        label_corruptions=(0.0, 0.4),
        seeds=(0,),
        epochs=3,
        train_subset=5000,
        select_regs=(-2.0, 2.0),
        select_train_subset=500,
    )
    children = _train_children(spec, None, population)
    specs = {c.name: c.spec.row() for c in children}
    if population == 1:
        assert list(specs) == [
            "train/cnn7-c0-s0",
            "train/cnn7-c0.4-s0",
            "train/cnn7-c0-s0-a-2",
            "train/cnn7-c0-s0-a2",
        ]
        configs = {n: s["config"] for n, s in specs.items()}
        assert configs["train/cnn7-c0-s0-a2"]["select_reg"] == 2.0
    else:  # the study stacks apart: its recipe is not the others'
        assert list(specs) == ["train/stack0", "train/study0"]
        study = specs["train/study0"]
        assert [v["select_reg"] for v in study["population"]] == [-2.0, 2.0]
        configs = {"train/cnn7-c0-s0": specs["train/stack0"]["config"]}
        configs["train/cnn7-c0-s0-a2"] = study["config"]
    plain, pushed = configs["train/cnn7-c0-s0"], configs["train/cnn7-c0-s0-a2"]
    assert (plain["data"]["train_subset"], plain["select_reg"]) == (5000, 0.0)
    assert (pushed["data"]["train_subset"], pushed["epochs"]) == (500, 3)
    # A short study analyses its networks' end: first and last checkpoints only.
    assert (pushed["early_checkpoint_until"], pushed["checkpoint_every_epochs"]) == (0.0, 3)
    # On the paper's recipe the study's checkpoints are the paper's.
    same = spec.model_copy(update={"select_train_subset": None})
    full = {c.name: c.spec.row() for c in _train_children(same, None, 1)}
    assert full["train/cnn7-c0-s0-a2"]["config"]["early_checkpoint_until"] == 2.0


def test_every_field_of_the_spec_travels_in_the_message() -> None:
    """`orisel up --paper` and `submit paper` send what the message declares: a field it
    lacked would be dropped on the way without a word."""
    from orisel.rpc.protospec import carried

    assert carried(PaperSpec, pipeline_pb2.PaperSpec.DESCRIPTOR) == tuple(PaperSpec.model_fields)
