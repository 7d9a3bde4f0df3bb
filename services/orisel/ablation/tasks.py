"""Celery tasks of the ablation service: a sweep fans out one task per layer (all its
orders and random seeds); a chord assembles the curves once every layer is in.

A layer is the unit of work because the sweep engine shares the layer's prefix activations
and cached suffix passes across all of its orders: one task per (layer, order) measured
1.54x the library's time, one per layer 1.06x (docs/benchmarks.md).

Chunk results go to content-addressed keys (the hash of everything that determines them),
so a re-delivered chunk rewrites the same object and the assembly reads the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

from celery import chord

from orisel.ablation.run import (
    AblateSpec,
    Chunk,
    InvarianceSpec,
    UnitScores,
    chunks,
    evaluation_tensors,
    invariance,
    run_chunks,
    write_ablation,
)
from orisel.ablation.servicer import INVARIANCE_TASK, PLAN_TASK
from orisel.core.artifacts import fetch, upload_dir
from orisel.core.celery_app import app
from orisel.core.errors import OriselError
from orisel.core.jobs import Job, JobState, one_task_job, open_job
from orisel.core.settings import Settings
from orisel.core.storage import ArtifactRef, ArtifactStore, get_bytes, put_bytes
from orisel.extraction.network import Network, load_network

CHUNK_TASK = "orisel.ablation.chunk"
ASSEMBLE_TASK = "orisel.ablation.assemble"


def _inputs(job: Job, store: ArtifactStore, settings: Settings) -> tuple[Network, Path, Any, Any]:
    """The network, the folder holding the scores table, and the evaluation images."""
    from orisel.data.prepare import stratified_split
    from orisel.data.sources import load_cifar10

    ckpt = fetch(store, ArtifactRef(**job.spec["checkpoint"]), settings.work_dir / "artifacts")
    scores = fetch(store, ArtifactRef(**job.spec["scores"]), settings.work_dir / "artifacts")
    net = load_network(ckpt, device="auto")
    if settings.data is None:
        raise OriselError("ORISEL_DATA is not set on the worker: no test images to evaluate on")
    ds = load_cifar10(settings.data, settings.cache_dir)
    images, labels = ds.test_images, ds.test_labels
    subset = job.spec.get("test_subset")
    if subset and subset < len(labels):
        _, keep = stratified_split(labels, subset, seed=0)
        images, labels = images[keep], labels[keep]
    return net, scores.parent, images, labels


# A worker usually takes several chunks of one sweep in a row: it keeps that sweep's network,
# scores and preprocessed images instead of rebuilding them for every chunk.
_SWEEP_CACHE: dict[str, tuple[Network, UnitScores, Any, Any]] = {}


def _sweep_inputs(
    job: Job, store: ArtifactStore, settings: Settings
) -> tuple[Network, UnitScores, Any, Any]:
    if job.id not in _SWEEP_CACHE:
        net, scores_dir, images, labels = _inputs(job, store, settings)
        spec = AblateSpec.model_validate(job.spec["ablate"])
        x, y = evaluation_tensors(net, images, labels)
        _SWEEP_CACHE.clear()  # one sweep's tensors at a time
        _SWEEP_CACHE[job.id] = (net, UnitScores(scores_dir, spec.stimulus), x, y)
    return _SWEEP_CACHE[job.id]


def layer_chunks(spec: AblateSpec, layer: str) -> list[Chunk]:
    return [c for c in chunks(spec) if c.layer == layer]


def chunk_key(job: Job, layer: str) -> str:
    basis = json.dumps({"spec": job.spec, "layer": layer}, sort_keys=True)
    return f"analyses/{job.id}/ablate/chunks/{hashlib.sha256(basis.encode()).hexdigest()}.json"


@app.task(name=PLAN_TASK, bind=True)  # type: ignore[untyped-decorator]
def plan(self: Any, job_id: str) -> str:
    _, _, jobs, job = open_job(job_id)
    spec = AblateSpec.model_validate(job.spec["ablate"])
    jobs.update(
        job_id,
        state=JobState.RUNNING,
        phase="sweep",
        fraction=0.0,
        metrics={"chunks": float(len(spec.layers))},
    )
    header = [chunk_task.s(job_id, layer) for layer in spec.layers]
    chord(header)(assemble.s(job_id))
    return f"{len(spec.layers)} chunks"


@app.task(name=CHUNK_TASK, bind=True, max_retries=3, default_retry_delay=5)  # type: ignore[untyped-decorator]
def chunk_task(self: Any, job_id: str, layer: str) -> str:
    settings, store, jobs, job = open_job(job_id)
    key = chunk_key(job, layer)
    if store.exists(key):  # already computed by a worker that died before acknowledging
        return key
    if job.state.done:
        return key
    try:
        net, scores, x, y = _sweep_inputs(job, store, settings)
        spec = AblateSpec.model_validate(job.spec["ablate"])
        parts = run_chunks(net, spec, scores, layer_chunks(spec, layer), x, y)
    except OriselError as exc:
        # The chord's callback sees a finished job and does nothing.
        jobs.update(job_id, state=JobState.FAILED, error=f"{layer}: {exc}")
        return key
    put_bytes(store, key, json.dumps(parts, sort_keys=True).encode())
    done = len([r for r in store.list(f"analyses/{job_id}/ablate/chunks/")])
    total = len(spec.layers)
    if not jobs.get(job_id).state.done:
        jobs.update(
            job_id,
            fraction=min(done / total, 0.99),
            metrics={"chunks": float(total), "chunks_done": float(done)},
        )
    return key


@app.task(name=ASSEMBLE_TASK, bind=True)  # type: ignore[untyped-decorator]
def assemble(self: Any, keys: list[str], job_id: str) -> str:
    settings, store, jobs, job = open_job(job_id)
    if job.state.done:
        return job.state.name
    spec = AblateSpec.model_validate(job.spec["ablate"])
    # Canonical chunk order, whatever order the chord delivered the keys in.
    parts: dict[str, list[dict[str, Any]]] = {"curves": [], "splits": []}
    for layer in spec.layers:
        got = json.loads(get_bytes(store, store.stat(chunk_key(job, layer))))
        parts["curves"] += got["curves"]
        parts["splits"] += got["splits"]
    with tempfile.TemporaryDirectory(
        dir=settings.work_dir if settings.work_dir.exists() else None
    ) as tmp:
        out = Path(tmp) / "ablate"
        summary = {
            "checkpoint": job.spec["checkpoint"],
            "scores": job.spec["scores"],
            "test_images": job.spec.get("test_subset"),
            "job": job_id,
        }
        write_ablation(out, spec, parts, summary)
        refs = upload_dir(store, f"analyses/{job_id}/ablate", out)
    jobs.update(job_id, state=JobState.SUCCEEDED, fraction=1.0, phase="done", outputs=tuple(refs))
    return "SUCCEEDED"


def _invariance(settings: Settings, store: ArtifactStore, job: Job, out: Path) -> None:
    net, scores_dir, images, _ = _inputs(job, store, settings)
    spec = InvarianceSpec.model_validate(job.spec["invariance"])
    invariance(net, spec, UnitScores(scores_dir, spec.stimulus), images, out, {"job": job.id})


@app.task(name=INVARIANCE_TASK, bind=True, max_retries=3, default_retry_delay=5)  # type: ignore[untyped-decorator]
def invariance_task(self: Any, job_id: str) -> str:
    return one_task_job(job_id, "invariance", _invariance)
