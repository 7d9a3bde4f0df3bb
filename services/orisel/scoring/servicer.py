"""ScoringService: ScoreSpec to a validated tune job; the verbs are shared."""

from __future__ import annotations

from typing import Any, cast

from orisel.api.scoring.v1 import scoring_pb2, scoring_pb2_grpc
from orisel.core.artifacts import resolve
from orisel.core.errors import InvalidArgument
from orisel.core.grpcserver import Registration
from orisel.core.jobs import Job, JobStore
from orisel.core.jobservice import JobServicer, validated
from orisel.core.settings import Settings, make_store
from orisel.core.storage import ArtifactStore
from orisel.scoring.tune import TuneSpec

SERVICE_NAME = scoring_pb2.DESCRIPTOR.services_by_name["ScoringService"].full_name
SCORE_TASK = "orisel.scoring.score"


def spec_of(request: scoring_pb2.SubmitRequest, store: ArtifactStore) -> dict[str, Any]:
    spec = request.spec
    ref = resolve(store, spec, "checkpoint")
    if spec.test_subset < 0:
        raise InvalidArgument("spec.test_subset", "0 (all test images) or more", spec.test_subset)
    given: dict[str, Any] = {
        k: list(getattr(spec, k)) for k in ("stimuli", "layers") if getattr(spec, k)
    }
    given |= {
        k: getattr(spec, k)
        for k in ("reduction", "permutations", "threshold", "alpha", "seed")
        if getattr(spec, k)
    }
    tune = validated(TuneSpec, given, "spec")
    return {"checkpoint": ref.__dict__, "tune": tune, "test_subset": spec.test_subset or None}


def registration(settings: Settings) -> Registration:
    from orisel.core.celery_app import make_celery

    store = cast(ArtifactStore, make_store(settings))
    celery = make_celery(settings)

    def enqueue(job: Job) -> None:
        celery.send_task(SCORE_TASK, args=(job.id,), queue="scoring")

    servicer = JobServicer(
        scoring_pb2, "scoring", JobStore(store), lambda r: spec_of(r, store), enqueue
    )
    return scoring_pb2_grpc.add_ScoringServiceServicer_to_server, servicer, SERVICE_NAME
