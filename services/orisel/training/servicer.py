"""TrainingService: the TrainSpec message to a TrainJob; the verbs are shared."""

from __future__ import annotations

from orisel.api.training.v1 import training_pb2, training_pb2_grpc
from orisel.data.prepare import SplitSpec
from orisel.kernel.errors import InvalidArgument
from orisel.rpc.jobservice import Backends, job_registration
from orisel.rpc.protospec import from_proto, given, validated
from orisel.rpc.server import Registration
from orisel.store.backend import ArtifactStore
from orisel.store.scratch import resolve
from orisel.training.config import TrainConfig
from orisel.training.spec import MAX_POPULATION, Member, TrainJob


def spec_from_proto(spec: training_pb2.TrainSpec, store: ArtifactStore) -> TrainJob:
    """The job's spec: its TrainConfig (the split's fields flat in the message, `data` there
    the archive's reference), its population, data and segment size; what the message leaves
    unset takes the defaults. The device is the worker's."""
    split = from_proto(SplitSpec, spec, "spec")
    fields = {k: v for k, v in given(TrainConfig, spec).items() if k != "data"}
    config = validated(TrainConfig, {**fields, "data": split, "device": "auto"}, "spec")
    if not 0 <= spec.epochs_per_segment <= 10_000:
        raise InvalidArgument(
            "spec.epochs_per_segment", "0 (the service default) to 10000", spec.epochs_per_segment
        )
    population = []
    for i, v in enumerate(spec.population[: MAX_POPULATION + 1]):
        alpha = v.select_reg if v.HasField("select_reg") else config.select_reg
        one = {"seed": v.seed, "label_corruption": v.label_corruption, "select_reg": alpha}
        # Named as the Variant's field, the message's name for a member.
        population.append(validated(Member, one, f"spec.population[{i}]"))
    return validated(
        TrainJob,
        {
            "config": config,
            "population": population or None,
            # Resolved in the store: no field of the request names a path, bucket or checksum.
            "data": resolve(store, spec, "data") if spec.HasField("data") else None,
            "segment_epochs": spec.epochs_per_segment or None,
        },
        "spec",
    )


def spec_of(request: training_pb2.SubmitRequest, store: ArtifactStore) -> TrainJob:
    return spec_from_proto(request.spec, store)


SERVICE_NAME = training_pb2.DESCRIPTOR.services_by_name["TrainingService"].full_name


def registration(b: Backends) -> Registration:
    return job_registration(
        b,
        training_pb2,
        training_pb2_grpc.add_TrainingServiceServicer_to_server,
        SERVICE_NAME,
        "training",
        lambda r: spec_of(r, b.store),
    )
