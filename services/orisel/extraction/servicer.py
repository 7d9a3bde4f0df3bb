"""ExtractionService: ExtractSpec to a validated extraction job; the verbs are shared."""

from __future__ import annotations

from typing import Any

from orisel.api.extraction.v1 import extraction_pb2, extraction_pb2_grpc
from orisel.core.grpcserver import Registration
from orisel.core.jobservice import Backends, job_registration, validated
from orisel.core.storage import ArtifactStore
from orisel.extraction.spec import EXTRACT_TASK, ExtractSpec, network_ref

SERVICE_NAME = extraction_pb2.DESCRIPTOR.services_by_name["ExtractionService"].full_name


def spec_of(request: extraction_pb2.SubmitRequest, store: ArtifactStore) -> dict[str, Any]:
    spec = request.spec
    network = network_ref(store, spec, "spec")
    given: dict[str, Any] = {
        k: list(getattr(spec, k)) for k in ("stimuli", "layers") if getattr(spec, k)
    }
    given |= {
        k: getattr(spec, k)
        for k in ("reduction", "n_orientations", "n_phases", "n_frequencies")
        if getattr(spec, k)
    }
    return {**network, "extract": validated(ExtractSpec, given, "spec")}


def registration(b: Backends) -> Registration:
    return job_registration(
        b,
        extraction_pb2,
        extraction_pb2_grpc.add_ExtractionServiceServicer_to_server,
        SERVICE_NAME,
        "extraction",
        lambda r: spec_of(r, b.store),
        lambda _: EXTRACT_TASK,
    )
