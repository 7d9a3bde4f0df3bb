"""`python -m orisel.training`: the training gRPC service (same as `orisel serve training`)."""

from __future__ import annotations

from typing import cast

from orisel.api.training.v1 import training_pb2, training_pb2_grpc
from orisel.core.grpcserver import Registration
from orisel.core.jobs import Job, JobStore
from orisel.core.settings import Settings, make_store
from orisel.core.storage import ArtifactStore

SERVICE_NAME = training_pb2.DESCRIPTOR.services_by_name["TrainingService"].full_name
SEGMENT_TASK = "orisel.training.segment"


def registration(settings: Settings) -> Registration:
    """The servicer wired to the settings' store and broker (tasks are sent by name)."""
    from orisel.core.celery_app import make_celery
    from orisel.core.jobservice import JobServicer
    from orisel.training.servicer import spec_of

    jobs = JobStore(cast(ArtifactStore, make_store(settings)))
    celery = make_celery(settings)

    def enqueue(job: Job) -> None:
        celery.send_task(SEGMENT_TASK, args=(job.id,), queue="training")

    servicer = JobServicer(training_pb2, "training", jobs, spec_of, enqueue)
    return training_pb2_grpc.add_TrainingServiceServicer_to_server, servicer, SERVICE_NAME


if __name__ == "__main__":
    from orisel.client.cli import main

    raise SystemExit(main(["serve", "training"]))
