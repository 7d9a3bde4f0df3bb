"""The whole suite for real: PostgreSQL, Redis, an S3 server (moto), the five gRPC services
(each its own server), the controller, two worker processes; a small paper pipeline
submitted through the client, watched to its end, and its report fetched from the object
store. Extraction runs on the same stack."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import torch

from orisel.api.common.v1 import common_pb2
from orisel.api.extraction.v1 import extraction_pb2
from orisel.api.pipeline.v1 import pipeline_pb2
from orisel.client.cli import main
from orisel.client.jobs import JobClient
from orisel.control.job import JobState
from orisel.extraction.extract import make_stimuli
from orisel.extraction.network import load_network
from orisel.extraction.spec import ExtractSpec
from orisel.runtime.settings import QUEUES, Settings
from orisel.server.launch import start_front_end
from orisel.store.backend import S3Store, get_bytes
from tests.procs import moto_server
from tests.stack import Stack, stack

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, python_archive: Path) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("pipeline")
    with (
        moto_server() as endpoint,
        stack(
            root,
            data=python_archive,
            store="s3",
            s3_endpoint=endpoint,
            s3_access_key="test",
            s3_secret_key="test",
            bucket="orisel-test",
        ) as s,
    ):
        s.start_controller()
        for _ in range(2):
            s.worker(pool="prefork")
        yield s


@pytest.fixture(scope="module")
def settings(live: Stack) -> Settings:
    return live.settings


@pytest.fixture(scope="module")
def services(live: Stack) -> Iterator[dict[str, str]]:
    """Each service its own front end (port) on the same database."""
    servers = {name: start_front_end(live.settings, [name]) for name in QUEUES}
    yield {name: f"127.0.0.1:{server.port}" for name, server in servers.items()}
    for server in servers.values():
        server.stop(0)


def _store(settings: Settings) -> S3Store:
    return S3Store(settings.s3_endpoint, "test", "test", settings.bucket)


def _run(client: JobClient, request: Any, timeout: float = 600) -> common_pb2.Job:
    job = client.submit(request)
    last = job
    for update in client.watch(job.id, timeout=timeout):
        last = update
    return last


def test_a_small_paper_pipeline_end_to_end(
    live: Stack,
    settings: Settings,
    services: dict[str, str],
    python_archive: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    client = JobClient(services["pipeline"], "pipeline")
    # The images named by the request, not the workers' own: every child reads these.
    data = _store(settings).put_file("datasets/paper.tar.gz", python_archive)
    # The four networks train as one population job (one stacked model on one worker).
    spec = pipeline_pb2.PaperSpec(
        label_corruptions=[0.0, 0.5, 0.8],
        seeds=[0, 1],
        epochs=1,
        val_size=50,
        permutations=10,
        population=4,
        random_halves=5,  # the statistic's plumbing; its cost grows with the count
        data=common_pb2.ArtifactRef(key=data.key),
        # The selectivity study, short: both seeds at two alphas on 100 images, one stack.
        select_regs=[-2.0, 2.0],
        select_train_subset=100,
    )
    request = pipeline_pb2.SubmitRequest(idempotency_key="paper-1", spec=spec)
    seen: list[common_pb2.Job] = []
    job = client.submit(request)
    for update in client.watch(job.id, timeout=900):
        seen.append(update)
    final = seen[-1]
    assert final.state == common_pb2.JOB_STATE_SUCCEEDED, final.error
    # Progress moved through every stage and only forwards.
    fractions = [u.progress.fraction for u in seen]
    assert fractions == sorted(fractions)
    assert fractions[-1] == 1.0
    phases = {u.progress.phase.split(" ")[0] for u in seen}
    assert {"train", "extract", "score", "analyse"} <= phases
    # The same idempotency key names the same job.
    assert client.submit(request).id == job.id
    client.close()

    store = _store(settings)
    keys = {o.key.rsplit("/", 1)[-1]: o for o in final.outputs}
    assert final.outputs[0].key.endswith("report.md")
    report = get_bytes(store, store.stat(keys["report.md"].key)).decode()
    numbers = json.loads(get_bytes(store, store.stat(keys["data.json"].key)))
    assert set(numbers["variants"]) == {"cnn7-c0-s0", "cnn7-c0.5-s0", "cnn7-c0-s1", "cnn7-c0.8-s0"}
    for name in numbers["variants"]:
        assert name in report
    first = numbers["variants"]["cnn7-c0-s0"]
    # Every checkpoint of the first run scored: step 0 and each quarter epoch.
    assert [t["epoch"] for t in first["trajectory"]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    for ref in ("cnn7-c0-s0", "cnn7-c0-s1"):
        assert numbers["variants"][ref]["ablate"]["splits"]
        assert "layer1:top50" in numbers["variants"][ref]["invariance"]["summary"]
    assert "ablate" not in numbers["variants"]["cnn7-c0.5-s0"]
    assert "| C1 orientation-selective units" in report
    study = {"cnn7-c0-s0-a-2", "cnn7-c0-s1-a-2", "cnn7-c0-s0-a2", "cnn7-c0-s1-a2"}
    assert set(numbers["regularized"]) == study
    for name in study:
        net = numbers["regularized"][name]
        assert "gratings" in net["tune"]
        assert "bars" not in net["tune"]
        assert "none:intact" in net["invariance"]["summary"]
        assert "ablate" not in net
    assert "| C7 networks trained to be more orientation-selective" in report
    assert "This is a short run" in report
    assert (numbers["variants"]["cnn7-c0.5-s0"]["data_sha256"]) == first["data_sha256"]
    assert any(k.endswith(".png") for k in keys)
    # The children are ordinary jobs of their services.
    training = JobClient(services["training"], "training")
    mine = training.list(parent_id=job.id, kind="training")
    training.close()
    assert len(mine) == 2  # the paper's networks, and the study's apart
    assert sorted(len(json.loads(m.spec_json)["population"]) for m in mine) == [4, 4]
    assert all(j.state == common_pb2.JOB_STATE_SUCCEEDED for j in mine)
    # The pipeline ran on its children's events: at most once per child that ended, plus
    # its first run (it never polls).
    children = live.db.children(job.id)
    # train; extract, then score, the best and the trajectory's networks; ablate, invariance;
    # the study: train, extract, score, invariance
    assert len(children) == 1 + (4 + 5) * 2 + 2 + 2 + 1 + 4 * 3
    # Each child is the spec its service reads from a request, on the pipeline's images;
    # the scorings read their extraction's activations instead.
    reading = [c for c in children if c.kind != "scoring"]
    assert {c.spec["data"]["sha256"] for c in reading} == {data.sha256}
    assert {c.spec["data"]["key"] for c in reading} == {"datasets/paper.tar.gz"}
    assert all("activations" in c.spec for c in children if c.kind == "scoring")
    assert live.db.get(job.id).attempts <= len(children) + 1
    # The numbers are those of tuning the network in one step, as the pipeline did before
    # it had an extraction stage: `orisel tune` here, on the same checkpoint and images.
    by_key = {c.idempotency_key.removeprefix(f"{job.id}/"): c for c in children}
    scored, trained = by_key["score/cnn7-c0-s1"], by_key["train/stack0"]
    best = next(o for o in trained.outputs if o.key.endswith("cnn7-c0-s1/best.pt"))
    units = next(o for o in scored.outputs if o.key.endswith("units.csv"))
    root = tmp_path_factory.mktemp("one_step")
    store.get_file(best, root / "best.pt")
    argv = ["tune", "--checkpoint", str(root / "best.pt"), "--data", str(python_archive)]
    argv += ["--permutations", "10", "--cache-dir", str(root / "cache"), "-q"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers run (OMP_NUM_THREADS=1): the same sums
    try:
        assert main([*argv, "--out", str(root / "tune")]) == 0
    finally:
        torch.set_num_threads(threads)
    assert (root / "tune" / "units.csv").read_bytes() == get_bytes(store, units)


def test_extraction_job_matches_the_library(
    settings: Settings, services: dict[str, str], tiny_checkpoint: Path
) -> None:
    store = _store(settings)
    ckpt = store.put_file("runs/tiny/best.pt", tiny_checkpoint)
    client = JobClient(services["extraction"], "extraction")
    spec = extraction_pb2.ExtractSpec(
        checkpoint=common_pb2.ArtifactRef(key=ckpt.key),  # by key alone: the service fills in
        stimuli=["bars"],
        layers=["layer1", "fc1"],
    )
    final = _run(client, extraction_pb2.SubmitRequest(spec=spec))
    client.close()
    assert final.state == common_pb2.JOB_STATE_SUCCEEDED, final.error
    npz = next(o for o in final.outputs if o.key.endswith("responses.npz"))
    got = np.load(io.BytesIO(get_bytes(store, store.stat(npz.key))))
    net = load_network(tiny_checkpoint, device="cpu")
    stim = make_stimuli("bars", 32, ExtractSpec())
    want = net.stimulus_responses(stim, ("layer1", "fc1"), "mean", 256)
    assert sorted(got.files) == ["bars/fc1", "bars/layer1"]
    np.testing.assert_allclose(got["bars/layer1"], want["layer1"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["bars/fc1"], want["fc1"], rtol=1e-5, atol=1e-6)


def test_bad_requests_get_the_right_status(settings: Settings, services: dict[str, str]) -> None:
    ext = JobClient(services["extraction"], "extraction")
    missing = extraction_pb2.ExtractSpec(checkpoint=common_pb2.ArtifactRef(key="runs/none.pt"))
    with pytest.raises(grpc.RpcError) as err:
        ext.submit(extraction_pb2.SubmitRequest(spec=missing))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "spec.checkpoint" in (err.value.details() or "")
    ext.close()
    pipe = JobClient(services["pipeline"], "pipeline")
    bad = pipeline_pb2.PaperSpec(label_corruptions=[0.2, 1.5])
    with pytest.raises(grpc.RpcError) as err:
        pipe.submit(pipeline_pb2.SubmitRequest(spec=bad))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "spec.label_corruptions" in (err.value.details() or "")
    pipe.close()


def test_cancelling_a_pipeline_cancels_its_children(live: Stack, services: dict[str, str]) -> None:
    client = JobClient(services["pipeline"], "pipeline")
    spec = pipeline_pb2.PaperSpec(label_corruptions=[0.0], seeds=[0], epochs=500, val_size=50)
    job = client.submit(pipeline_pb2.SubmitRequest(spec=spec))
    for update in client.watch(job.id, timeout=120):
        if update.progress.phase.startswith("train"):
            break
    cancelled = client.cancel(job.id)  # through JobService, as for every kind
    assert cancelled.state == common_pb2.JOB_STATE_CANCELLED
    client.close()
    # The cancel and its children's are one transaction: no child is left running.
    children = live.db.children(job.id)
    assert [c.idempotency_key for c in children] == [f"{job.id}/train/cnn7-c0-s0"]
    assert all(c.state == JobState.CANCELLED for c in children)
