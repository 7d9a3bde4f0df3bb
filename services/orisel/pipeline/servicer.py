"""PipelineService: the paper's pipeline as one job; the verbs are shared."""

from __future__ import annotations

from orisel.api.pipeline.v1 import pipeline_pb2, pipeline_pb2_grpc
from orisel.pipeline.spec import PaperJob, PaperSpec
from orisel.rpc.jobservice import Backends, job_registration
from orisel.rpc.protospec import from_proto
from orisel.rpc.server import Registration
from orisel.store.backend import ArtifactStore
from orisel.store.scratch import resolve

SERVICE_NAME = pipeline_pb2.DESCRIPTOR.services_by_name["PipelineService"].full_name


def spec_of(request: pipeline_pb2.SubmitRequest, store: ArtifactStore) -> PaperJob:
    """PaperSpec from the message; zero or empty fields take the paper's defaults."""
    spec = request.spec
    # Resolved in the store: no field of the request names a path, bucket or checksum.
    data = resolve(store, spec, "data") if spec.HasField("data") else None
    return PaperJob(paper=from_proto(PaperSpec, spec, "spec"), data=data)


def registration(b: Backends) -> Registration:
    return job_registration(
        b,
        pipeline_pb2,
        pipeline_pb2_grpc.add_PipelineServiceServicer_to_server,
        SERVICE_NAME,
        "pipeline",
        lambda r: spec_of(r, b.store),
    )
