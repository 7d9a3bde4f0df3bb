"""AblationService: sweep and invariance specs to a SweepJob or an InvarianceJob; the verbs are
shared."""

from __future__ import annotations

from orisel.ablation.spec import AblateSpec, InvarianceJob, InvarianceSpec, SweepJob
from orisel.api.ablation.v1 import ablation_pb2, ablation_pb2_grpc
from orisel.extraction.spec import data_ref, network_ref
from orisel.kernel.errors import InvalidArgument
from orisel.rpc.jobservice import Backends, job_registration
from orisel.rpc.protospec import from_proto
from orisel.rpc.server import Registration
from orisel.store.backend import ArtifactStore
from orisel.store.scratch import resolve

SERVICE_NAME = ablation_pb2.DESCRIPTOR.services_by_name["AblationService"].full_name


def spec_of(request: ablation_pb2.SubmitRequest, store: ArtifactStore) -> SweepJob | InvarianceJob:
    which = request.WhichOneof("spec")
    if which is None:
        raise InvalidArgument("spec", "a sweep or an invariance spec", None)
    msg = getattr(request, which)
    where = f"spec.{which}"
    if msg.test_subset < 0:
        raise InvalidArgument(
            f"{where}.test_subset", "0 (all test images) or more", msg.test_subset
        )
    network = network_ref(store, msg, where) | data_ref(store, msg, where)
    scores = resolve(store, msg, "scores", where)
    test_subset = msg.test_subset or None
    if which == "sweep":
        ablate = from_proto(AblateSpec, msg, where)
        return SweepJob(**network, scores=scores, test_subset=test_subset, ablate=ablate)
    invariance = from_proto(InvarianceSpec, msg, where)
    return InvarianceJob(**network, scores=scores, test_subset=test_subset, invariance=invariance)


def registration(b: Backends) -> Registration:
    return job_registration(
        b,
        ablation_pb2,
        ablation_pb2_grpc.add_AblationServiceServicer_to_server,
        SERVICE_NAME,
        "ablation",
        lambda r: spec_of(r, b.store),
    )
