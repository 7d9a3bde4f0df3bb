"""ScoringService: ScoreSpec to a ScoreJob; the verbs are shared."""

from __future__ import annotations

from typing import Any

from orisel.api.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from orisel.extraction.spec import data_ref, network_ref
from orisel.kernel.errors import InvalidArgument, NotFound
from orisel.rpc.jobservice import Backends, job_registration
from orisel.rpc.protospec import from_proto
from orisel.rpc.server import Registration
from orisel.scoring.spec import ScoreJob, StoredActivations, TuneSpec
from orisel.store.backend import ArtifactStore
from orisel.store.scratch import resolve

SERVICE_NAME = scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"].full_name


def stored_activations(store: ArtifactStore, msg: Any, where: str) -> StoredActivations:
    """The activations a request names: their summary.json and the responses.npz beside it,
    both resolved (and their reading checked) here."""
    summary = resolve(store, msg, "activations", where)
    folder, name = summary.key.rsplit("/", 1) if "/" in summary.key else ("", summary.key)
    if name != "summary.json":
        raise InvalidArgument(
            f"{where}.activations.key",
            "the summary.json an extraction wrote (responses.npz beside it)",
            summary.key,
        )
    try:
        arrays = store.stat(f"{folder}/responses.npz")
    except NotFound as exc:
        raise NotFound(f"{where}.activations: no responses.npz beside {summary.key}") from exc
    return StoredActivations(summary=summary, responses=arrays)


def spec_of(request: scoring_pb2.SubmitRequest, store: ArtifactStore) -> ScoreJob:
    spec = request.spec
    if spec.HasField("activations"):
        if spec.HasField("checkpoint") or spec.HasField("model"):
            raise InvalidArgument(
                "spec.activations",
                "stored activations or a network to extract them from, not both",
                None,
            )
        acts = stored_activations(store, spec, "spec")
        return ScoreJob(activations=acts, tune=from_proto(TuneSpec, spec, "spec"))
    network = network_ref(store, spec, "spec") | data_ref(store, spec, "spec")
    if spec.test_subset < 0:
        raise InvalidArgument("spec.test_subset", "0 (all test images) or more", spec.test_subset)
    tune = from_proto(TuneSpec, spec, "spec")
    return ScoreJob(**network, tune=tune, test_subset=spec.test_subset or None)


def registration(b: Backends) -> Registration:
    return job_registration(
        b,
        scoring_pb2,
        scoring_pb2_grpc.add_ScoringServiceServicer_to_server,
        SERVICE_NAME,
        "scoring",
        lambda r: spec_of(r, b.store),
    )
