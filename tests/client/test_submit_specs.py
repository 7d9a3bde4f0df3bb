"""One typed spec per analysis job: the flags of `orisel submit KIND`, the request message and
what the service validates are the same spec model, field for field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from orisel.client.args import spec_from_args
from orisel.client.cli import build_parser
from orisel.client.remote import ANALYSES, _analysis_message, _spec_model, _submit_request
from orisel.kernel.errors import InvalidArgument, OriselError
from orisel.rpc.protospec import carried, from_proto, given

# Fields the worker decides (its memory, its table format), never a request.
WORKER_ONLY = {
    "extract": {"batch_size"},
    "tune": {"batch_size", "format"},
    "ablate": {"chunk_images", "format"},
    "invariance": {"batch_size", "format"},
}
# Message fields that are references, not spec fields: checked by the servicer.
REFERENCES = {"checkpoint", "model", "data", "class_map", "scores", "test_subset", "activations"}

# Every carried field away from its default (zero where zero is a real choice).
FLAGS = {
    "extract": "--stimuli bars --layers layer2,fc1 --reduction max --n-orientations 8 "
    "--n-phases 2 --n-frequencies 3 --grating-centre symmetric --tokens cls --no-rectify",
    "tune": "--stimuli gratings --layers layer1 --reduction centre --n-orientations 6 "
    "--n-phases 1 --n-frequencies 2 --grating-centre symmetric --permutations 0 "
    "--threshold 0 --alpha 0.01 --seed 7 --tokens cls --no-rectify",
    "ablate": "--layers layer3 --stimulus bars --orders csi --seeds 4,5 --fractions 0,0.5 "
    "--mode mean --point relu --no-include-dead --random-halves 0 --no-matched-controls "
    "--block-images 64",
    "invariance": "--layers layer6 --ablate-layers layer2 --by osi --stimulus bars --shift 0 "
    "--padding circular --seeds 9 --damage-candidates 0 --damage-matched 0 --mode mean "
    "--point relu --no-include-dead",
}


def _args(kind: str, flags: str) -> Any:
    argv = ["submit", kind, "--checkpoint-key", "runs/a/best.pt", *flags.split()]
    if kind in ("ablate", "invariance"):
        argv += ["--scores-key", "analyses/b/tune/units.csv"]
    return build_parser().parse_args(argv)


def _spec_message(request: Any) -> Any:
    if "spec" in request.DESCRIPTOR.oneofs_by_name:
        return getattr(request, request.WhichOneof("spec"))
    return request.spec


@pytest.mark.parametrize("kind", sorted(ANALYSES))
def test_the_message_carries_every_field_of_the_spec_but_the_workers(kind: str) -> None:
    model: type[BaseModel] = _spec_model(kind)
    descriptor = _analysis_message(kind).DESCRIPTOR
    assert set(model.model_fields) - set(carried(model, descriptor)) == WORKER_ONLY[kind]
    assert {f.name for f in descriptor.fields} - set(model.model_fields) <= REFERENCES


@pytest.mark.parametrize("kind", sorted(ANALYSES))
def test_submit_flags_reach_the_service_as_the_local_command_reads_them(kind: str) -> None:
    args = _args(kind, FLAGS[kind])
    model = _spec_model(kind)
    service, request = _submit_request(args)
    assert service == ANALYSES[kind][0]
    msg = _spec_message(request)
    expected = spec_from_args(model, args).model_dump(mode="json")
    assert from_proto(model, msg, "spec").model_dump(mode="json") == expected
    # every carried field was set away from its default, so each one travelled
    defaults = model().model_dump(mode="json")
    assert set(given(model, msg)) == set(carried(model, msg.DESCRIPTOR))
    assert all(expected[n] != defaults[n] for n in carried(model, msg.DESCRIPTOR))


@pytest.mark.parametrize("kind", sorted(ANALYSES))
def test_flags_left_out_take_the_models_defaults_on_the_service(kind: str) -> None:
    model = _spec_model(kind)
    _, request = _submit_request(_args(kind, ""))
    msg = _spec_message(request)
    assert given(model, msg) == {}
    assert from_proto(model, msg, "spec") == model()


@pytest.mark.parametrize("kind", ["tune", "ablate", "invariance"])
def test_a_class_map_travels_beside_the_images(kind: str) -> None:
    flags = "--data-key users/me/val.tar --class-map-key users/me/classes.txt"
    _, request = _submit_request(_args(kind, flags))
    msg = _spec_message(request)
    assert (msg.data.key, msg.class_map.key) == ("users/me/val.tar", "users/me/classes.txt")
    assert not _spec_message(_submit_request(_args(kind, ""))[1]).HasField("class_map")


def test_a_bad_value_is_refused_by_the_client_naming_its_flag() -> None:
    with pytest.raises(OriselError, match="--damage-matched"):
        _submit_request(_args("invariance", "--damage-matched 101"))


def test_the_service_names_the_field_of_a_bad_message() -> None:
    from orisel.api.ablation.v1 import ablation_pb2

    msg = ablation_pb2.InvarianceSpec(damage_candidates=5000)
    with pytest.raises(InvalidArgument) as err:
        from_proto(_spec_model("invariance"), msg, "spec.invariance")
    assert err.value.field == "spec.invariance.damage_candidates"


TRAIN_FLAGS = (
    "--model resnet18 --epochs 3 --batch-size 8 --optimizer sgd --lr 0.01 --momentum 0 "
    "--weight-decay 0.001 --seed 5 --no-augment --max-shift 0.2 --no-hflip --fill zeros "
    "--early-checkpoint-every 0.5 --early-checkpoint-until 0 --checkpoint-every-epochs 2 "
    "--select-by val_accuracy --amp bf16 --tf32 --compile on --channels-last --deterministic "
    "--val-size 50 --split-seed 3 --train-subset 100 --test-subset 20 --label-corruption 0.4 "
    "--corruption-seed 2 --select-reg -0.5 --select-layers layer1,layer2 --select-every 5 "
    "--select-frequencies 2 --select-phases 2"
)


def test_a_training_message_carries_the_whole_recipe_but_the_workers() -> None:
    from orisel.api.training.v1 import training_pb2
    from orisel.data.prepare import SplitSpec
    from orisel.training.config import TrainConfig

    message = training_pb2.TrainSpec.DESCRIPTOR
    # `data` is the split, flat in the message (whose `data` is the archive's reference)
    assert set(TrainConfig.model_fields) - set(carried(TrainConfig, message)) == {
        "device",
        "eval_batch_size",
    }
    assert set(carried(SplitSpec, message)) == set(SplitSpec.model_fields)


def test_submit_train_reaches_the_service_as_orisel_train_reads_it() -> None:
    from orisel.data.prepare import SplitSpec
    from orisel.training.config import TrainConfig
    from orisel.training.servicer import spec_from_proto

    args = build_parser().parse_args(["submit", "train", *TRAIN_FLAGS.split()])
    _, request = _submit_request(args)
    read = spec_from_proto(request.spec, store=None)  # type: ignore[arg-type]
    config = read.config.model_dump(mode="json")
    split = spec_from_args(SplitSpec, args)
    local = spec_from_args(TrainConfig, args).model_copy(update={"data": split})
    assert config == local.model_dump(mode="json")
    defaults = TrainConfig().model_dump(mode="json")
    changed = {k for k in defaults if config[k] != defaults[k]}
    assert changed == set(TrainConfig.model_fields) - {"device", "eval_batch_size"}
    assert all(config["data"][k] != v for k, v in SplitSpec().model_dump(mode="json").items())
    _, bare = _submit_request(build_parser().parse_args(["submit", "train"]))
    assert spec_from_proto(bare.spec, store=None).config == TrainConfig()  # type: ignore[arg-type]


def test_an_explicit_zero_or_empty_list_is_never_mistaken_for_unset() -> None:
    # 0 blocks: one task per layer on all images, not the default 500
    _, request = _submit_request(_args("ablate", "--block-images 0"))
    assert from_proto(_spec_model("ablate"), request.sweep, "spec").block_images == 0
    # an empty list would read as the default on the wire: refused, naming the field
    with pytest.raises(InvalidArgument, match="seeds"):
        _submit_request(_args("invariance", "--seeds ,"))


def test_a_bad_population_variant_is_named_as_the_message_field() -> None:
    from orisel.api.training.v1 import training_pb2
    from orisel.training.servicer import spec_from_proto

    msg = training_pb2.TrainSpec(population=[training_pb2.Variant(seed=0, label_corruption=2)])
    with pytest.raises(InvalidArgument) as err:
        spec_from_proto(msg, store=None)  # type: ignore[arg-type]
    assert err.value.field == "spec.population[0].label_corruption"


def test_submit_paper_flags_are_the_pipeline_spec() -> None:
    from orisel.pipeline.spec import PaperSpec

    flags = (
        "--label-corruptions 0,0.5 --seeds 3 --epochs 2 --train-subset 100 --val-size 50 "
        "--test-subset 20 --permutations 0 --random-halves 0 --population 2 --segment-epochs 1 "
        "--select-regs=-1,2 --select-epochs 1 --select-train-subset 50"
    )
    args = build_parser().parse_args(["submit", "paper", *flags.split()])
    _, request = _submit_request(args)
    read = from_proto(PaperSpec, request.spec, "spec")
    assert read == spec_from_args(PaperSpec, args)
    assert all(getattr(read, k) != getattr(PaperSpec(), k) for k in PaperSpec.model_fields)


def _train(flags: str) -> Any:
    return build_parser().parse_args(["submit", "train", *flags.split()])


def test_submit_train_gives_each_network_of_a_grid_its_alpha() -> None:
    from orisel.training.servicer import spec_from_proto

    grid = "--label-corruptions 0 --seeds 1,2 --select-regs 0,-3 --select-reg 2"
    _, request = _submit_request(_train(grid))
    spec = spec_from_proto(request.spec, store=None)  # type: ignore[arg-type]
    assert [(v.seed, v.select_reg) for v in spec.population or ()] == [
        (1, 0.0),
        (1, -3.0),
        (2, 0.0),
        (2, -3.0),
    ]
    _, request = _submit_request(_train("--label-corruptions 0 --seeds 1"))
    spec = spec_from_proto(request.spec, store=None)  # type: ignore[arg-type]
    assert (spec.population or ())[0].select_reg == 0.0
    with pytest.raises(InvalidArgument, match="--select-regs"):
        _submit_request(_train("--select-regs 1"))
    with pytest.raises(InvalidArgument, match="--select-regs"):
        _submit_request(_train("--label-corruptions 0 --seeds 1 --select-regs x"))
