"""TrainingService: the TrainSpec message to a validated job spec; the verbs are shared."""

from __future__ import annotations

from typing import Any

from orisel.api.training.v1 import training_pb2, training_pb2_grpc
from orisel.data.prepare import SplitSpec
from orisel.kernel.errors import InvalidArgument
from orisel.rpc.jobservice import Backends, job_registration
from orisel.rpc.protospec import from_proto, given, validated
from orisel.rpc.server import Registration
from orisel.store.backend import ArtifactStore
from orisel.store.scratch import resolve
from orisel.training.config import POPULATION_TASK, SEGMENT_TASK, TrainConfig, run_name


def spec_from_proto(spec: training_pb2.TrainSpec, store: ArtifactStore) -> dict[str, Any]:
    """The job's spec: its TrainConfig (the split's fields flat in the message, `data` there
    the archive's reference), data and segment size; what the message leaves unset takes the
    defaults. The device is the worker's."""
    split = from_proto(SplitSpec, spec, "spec")
    fields = {k: v for k, v in given(TrainConfig, spec).items() if k != "data"}
    config = validated(TrainConfig, {**fields, "data": split, "device": "auto"}, "spec")
    if not 0 <= spec.epochs_per_segment <= 10_000:
        raise InvalidArgument(
            "spec.epochs_per_segment", "0 (the service default) to 10000", spec.epochs_per_segment
        )
    population = []
    if len(spec.population) > MAX_POPULATION:
        raise InvalidArgument(
            "spec.population", f"at most {MAX_POPULATION} networks", len(spec.population)
        )
    for i, v in enumerate(spec.population):
        where = f"spec.population[{i}]"
        try:
            one = validated(
                TrainConfig,
                {
                    **config,
                    "seed": v.seed,
                    "data": {**config["data"], "label_corruption": v.label_corruption},
                    "select_reg": v.select_reg
                    if v.HasField("select_reg")
                    else config["select_reg"],
                },
                where,
            )
        except InvalidArgument as exc:  # named as the Variant's field, not the config's
            field = exc.field.replace(f"{where}.data.", f"{where}.")
            raise InvalidArgument(field, exc.allowed, exc.got) from exc
        population.append(
            {
                "seed": one["seed"],
                "label_corruption": one["data"]["label_corruption"],
                "select_reg": one["select_reg"],
            }
        )
    names = [
        run_name(config["model"], v["label_corruption"], v["seed"], v["select_reg"])
        for v in population
    ]
    if len(set(names)) != len(names):
        raise InvalidArgument(
            "spec.population", "distinct (seed, label_corruption, select_reg) networks", names
        )
    if population and config["model"] != "cnn7":
        raise InvalidArgument(
            "spec.model", "cnn7 for a population (the stacked model)", config["model"]
        )
    return {
        "config": config,
        "population": population or None,
        # Resolved in the store: no field of the request names a path, bucket or checksum.
        "data": resolve(store, spec, "data").__dict__ if spec.HasField("data") else None,
        "segment_epochs": spec.epochs_per_segment or None,
    }


def spec_of(request: training_pb2.SubmitRequest, store: ArtifactStore) -> dict[str, Any]:
    return spec_from_proto(request.spec, store)


SERVICE_NAME = training_pb2.DESCRIPTOR.services_by_name["TrainingService"].full_name
MAX_POPULATION = 256


def registration(b: Backends) -> Registration:
    return job_registration(
        b,
        training_pb2,
        training_pb2_grpc.add_TrainingServiceServicer_to_server,
        SERVICE_NAME,
        "training",
        lambda r: spec_of(r, b.store),
        lambda spec: POPULATION_TASK if spec.get("population") else SEGMENT_TASK,
    )
