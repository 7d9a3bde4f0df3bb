"""Celery tasks of the ablation service: a sweep job fans out one child job per layer (all
its orders and random seeds) and assembles the curves once every child succeeded.

The sweep's task runs when the sweep is submitted and again whenever a chunk ends, like a
pipeline: chunks go through the job database, so a lost worker costs one chunk, which the
controller sends again, and the chunks already done are never redone.

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
from typing import Any, cast

from orisel.ablation.run import (
    Chunk,
    UnitScores,
    chunks,
    evaluation_tensors,
    invariance,
    run_chunks,
    write_ablation,
)
from orisel.ablation.servicer import CHUNK_TASK, INVARIANCE_TASK, SWEEP_TASK
from orisel.ablation.spec import AblateSpec, InvarianceSpec
from orisel.core.artifacts import fetch, upload_dir
from orisel.core.celery_app import job_task
from orisel.core.errors import OriselError
from orisel.core.jobs import Job, JobState
from orisel.core.lifecycle import Child, JobRun, children_of, ensure_children, one_task_job
from orisel.core.settings import Settings, make_store
from orisel.core.storage import ArtifactRef, ArtifactStore, get_bytes, put_if_absent
from orisel.extraction.inputs import job_images, job_network
from orisel.extraction.network import Network


def _inputs(job: Job, store: ArtifactStore, settings: Settings) -> tuple[Network, Path, Any, Any]:
    """The network, the folder holding the scores table, and the evaluation images."""
    cache = settings.work_dir / "artifacts"
    net = job_network(job.spec, store, cache)
    scores = fetch(store, ArtifactRef(**job.spec["scores"]), cache)
    got = job_images(job.spec, net, store, cache, settings.data, settings.cache_dir)
    if got is None:
        raise OriselError(
            "no evaluation images: the job names no data and ORISEL_DATA is not set on the worker"
        )
    return net, scores.parent, got.images, got.labels


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


@job_task(SWEEP_TASK)
def sweep(run: JobRun, settings: Settings) -> None:
    job = run.job
    spec = AblateSpec.model_validate(job.spec["ablate"])
    made = children_of(run)
    wanted = [
        Child(f"chunk/{layer}", "ablation", {"layer": layer}, CHUNK_TASK) for layer in spec.layers
    ]
    got = ensure_children(run, wanted, made)
    if bad := next((c for c in got if c.state in (JobState.FAILED, JobState.CANCELLED)), None):
        run.fail(f"chunk {bad.spec['layer']} {bad.state.name.lower()}: {bad.error}")
        return
    done = sum(c.state == JobState.SUCCEEDED for c in got)
    if done < len(got):
        chunk_counts = {"chunks": float(len(got)), "chunks_done": float(done)}
        run.progress(phase="sweep", fraction=min(done / len(got), 0.99), metrics=chunk_counts)
        return  # given back: the next chunk to end sends the sweep again
    store = cast(ArtifactStore, make_store(settings))
    # Canonical chunk order, whatever order the chunks ended in.
    parts: dict[str, list[dict[str, Any]]] = {"curves": [], "splits": []}
    for layer in spec.layers:
        got_layer = json.loads(get_bytes(store, store.stat(chunk_key(job, layer))))
        parts["curves"] += got_layer["curves"]
        parts["splits"] += got_layer["splits"]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ablate"
        summary = {
            "checkpoint": job.spec.get("checkpoint"),
            "model": job.spec.get("model"),
            "data": job.spec.get("data"),
            "scores": job.spec["scores"],
            "test_images": job.spec.get("test_subset"),
            "job": job.id,
        }
        write_ablation(out, spec, parts, summary)
        run.check()
        refs = upload_dir(store, f"analyses/{job.id}/ablate", out)
    run.succeed(refs)


@job_task(CHUNK_TASK)
def chunk_task(run: JobRun, settings: Settings) -> None:
    layer = run.job.spec["layer"]
    parent = run.db.get(run.job.parent_id)
    store = cast(ArtifactStore, make_store(settings))
    key = chunk_key(parent, layer)
    if not store.exists(key):  # else computed by a worker that died before recording it
        net, scores, x, y = _sweep_inputs(parent, store, settings)
        spec = AblateSpec.model_validate(parent.spec["ablate"])
        try:
            parts = run_chunks(net, spec, scores, layer_chunks(spec, layer), x, y)
        except OriselError as exc:
            raise OriselError(f"{layer}: {exc}") from exc
        run.check()
        with tempfile.TemporaryDirectory() as tmp:
            blob = Path(tmp) / "chunk.json"
            blob.write_text(json.dumps(parts, sort_keys=True))
            put_if_absent(store, key, blob)  # a racing attempt's result stands
    run.succeed([store.stat(key)])


def _invariance(settings: Settings, store: ArtifactStore, job: Job, out: Path) -> None:
    net, scores_dir, images, _ = _inputs(job, store, settings)
    spec = InvarianceSpec.model_validate(job.spec["invariance"])
    invariance(net, spec, UnitScores(scores_dir, spec.stimulus), images, out, {"job": job.id})


@job_task(INVARIANCE_TASK)
def invariance_task(run: JobRun, settings: Settings) -> None:
    one_task_job(run, settings, "invariance", _invariance)
