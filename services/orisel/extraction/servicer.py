"""ExtractionService: ExtractSpec to an ExtractJob; the verbs are shared."""

from __future__ import annotations

from orisel.api.extraction.v1 import extraction_pb2, extraction_pb2_grpc
from orisel.extraction.spec import ExtractJob, ExtractSpec, data_ref, network_ref
from orisel.kernel.errors import InvalidArgument
from orisel.rpc.jobservice import Backends, job_registration
from orisel.rpc.protospec import from_proto
from orisel.rpc.server import Registration
from orisel.store.backend import ArtifactStore

SERVICE_NAME = extraction_pb2.DESCRIPTOR.services_by_name["ExtractionService"].full_name


def spec_of(request: extraction_pb2.SubmitRequest, store: ArtifactStore) -> ExtractJob:
    spec = request.spec
    network = network_ref(store, spec, "spec") | data_ref(store, spec, "spec")
    if spec.test_subset < 0:
        raise InvalidArgument("spec.test_subset", "0 (all test images) or more", spec.test_subset)
    return ExtractJob(
        **network,
        test_subset=spec.test_subset or None,
        # Test-image responses only where the request names the images: the worker's data
        # set would add forward passes nobody asked for.
        images=spec.HasField("data"),
        extract=from_proto(ExtractSpec, spec, "spec"),
    )


def registration(b: Backends) -> Registration:
    return job_registration(
        b,
        extraction_pb2,
        extraction_pb2_grpc.add_ExtractionServiceServicer_to_server,
        SERVICE_NAME,
        "extraction",
        lambda r: spec_of(r, b.store),
    )
