"""Celery tasks of the ablation service: a sweep job fans out one child job per (layer,
block of images), each with all the layer's orders and random seeds, and assembles the
curves once every child succeeded.

The sweep's task runs when the sweep is submitted and again whenever a chunk ends, like a
pipeline: chunks go through the job database, so a lost worker costs one chunk, which the
controller sends again, and the chunks already done are never redone.

A task keeps a layer's orders together because the sweep engine shares the layer's prefix
activations and cached suffix passes across all of them (one task per (layer, order)
measured 1.54x the library's time); it splits the images instead, because a layer's work
is far from even (layer1 holds 58% of a cnn7 sweep): a block's per-image outcomes
concatenate with its neighbours' into exactly the whole sweep's (docs/benchmarks.md).

Chunk results go to content-addressed keys (the hash of everything that determines them),
so a re-delivered chunk rewrites the same object and the assembly reads the same bytes.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any, cast

import numpy as np

from orisel.ablation.scores import UnitScores
from orisel.ablation.spec import (
    CHUNK_TASK,
    INVARIANCE_TASK,
    SWEEP_TASK,
    AblateSpec,
    ChunkJob,
    InvarianceJob,
    SweepJob,
)
from orisel.ablation.sweep import (
    Chunk,
    Swept,
    chunks,
    evaluation_tensors,
    rows_from_blocks,
    run_block,
)
from orisel.analyses import invariance, write_ablation
from orisel.control.celery_app import job_task
from orisel.control.job import Job, JobState
from orisel.control.lifecycle import Child, JobRun, children_of, ensure_children, one_task_job
from orisel.extraction.inputs import job_images, job_network, output_count
from orisel.extraction.network import Network
from orisel.extraction.provenance import network_record
from orisel.kernel.errors import OriselError
from orisel.kernel.provenance import environment
from orisel.runtime.settings import Settings
from orisel.science.ablation import RawSweep
from orisel.store.backend import ArtifactStore, get_bytes, put_if_absent
from orisel.store.scratch import fetch, upload_dir


def _inputs(
    spec: SweepJob | InvarianceJob, store: ArtifactStore, settings: Settings
) -> tuple[Network, Path, Any, Any]:
    """The network, the folder holding the scores table, and the evaluation images."""
    cache = settings.work_dir / "artifacts"
    net = job_network(spec, store, cache)
    scores = fetch(store, spec.scores, cache)
    got = job_images(spec, net, store, cache, settings.data, settings.cache_dir)
    if got is None:
        raise OriselError(
            "no evaluation images: the job names no data and ORISEL_DATA is not set on the worker"
        )
    return net, scores.parent, got.images, got.targets


# A worker usually takes several chunks of one sweep in a row: it keeps that sweep's network,
# scores and preprocessed images instead of rebuilding them for every chunk.
_SWEEP_CACHE: dict[str, tuple[Network, UnitScores, Any, Any]] = {}


def _sweep_inputs(
    job: Job, store: ArtifactStore, settings: Settings
) -> tuple[Network, UnitScores, Any, Any]:
    if job.id not in _SWEEP_CACHE:
        spec = SweepJob.of(job)
        net, scores_dir, images, labels = _inputs(spec, store, settings)
        x, y = evaluation_tensors(net, images, labels)
        _SWEEP_CACHE.clear()  # one sweep's tensors at a time
        _SWEEP_CACHE[job.id] = (net, UnitScores(scores_dir, spec.ablate.stimulus), x, y)
    return _SWEEP_CACHE[job.id]


def layer_chunks(spec: AblateSpec, layer: str) -> list[Chunk]:
    return [c for c in chunks(spec) if c.layer == layer]


def blocks(spec: AblateSpec, n_images: int) -> list[tuple[int, int]]:
    """The image ranges a layer's work is split into: the sweep's critical path is its
    largest (layer, block) task, so blocks make it a small part of the whole."""
    size = spec.block_images or n_images
    return [(s, min(s + size, n_images)) for s in range(0, n_images, size)]


def chunk_key(job: Job, layer: str, block: tuple[int, int]) -> str:
    basis = json.dumps({"spec": job.spec, "layer": layer, "block": list(block)}, sort_keys=True)
    return f"analyses/{job.id}/ablate/chunks/{hashlib.sha256(basis.encode()).hexdigest()}.npz"


def image_count(job: Job, store: ArtifactStore, settings: Settings) -> int:
    """How many evaluation images a sweep reads. Finding out loads the network and the
    images, so it is done once and kept beside the chunks: the sweep wakes up every time a
    chunk ends, and those wake-ups read one small file instead."""
    key = f"analyses/{job.id}/ablate/chunks/plan.json"
    if not store.exists(key):
        _, _, _, y = _sweep_inputs(job, store, settings)
        with tempfile.TemporaryDirectory() as tmp:
            plan = Path(tmp) / "plan.json"
            plan.write_text(json.dumps({"images": len(y)}))
            put_if_absent(store, key, plan)  # every wake-up computes the same count
    return int(json.loads(get_bytes(store, store.stat(key)))["images"])


def _save(raw: dict[str, RawSweep], path: Path) -> None:
    arrays: dict[str, np.ndarray] = {}
    for site, r in raw.items():
        arrays |= {
            f"{site}|distinct": r.distinct,
            f"{site}|index": np.asarray(r.index),
            f"{site}|losses": r.losses,
            f"{site}|correct": r.correct,
            f"{site}|base": r.base,
        }
    with path.open("wb") as fh:
        cast(Any, np.savez)(fh, **arrays)  # names per site; the stub types kwargs as flags


def _load(data: bytes) -> dict[str, RawSweep]:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        sites = {k.split("|")[0] for k in z.files}
        return {
            site: RawSweep(
                z[f"{site}|distinct"],
                z[f"{site}|index"].tolist(),
                z[f"{site}|losses"],
                z[f"{site}|correct"],
                z[f"{site}|base"],
            )
            for site in sites
        }


@job_task(SWEEP_TASK)
def sweep(run: JobRun, settings: Settings) -> None:
    job = run.job
    sweep_job = SweepJob.of(job)
    spec = sweep_job.ablate
    store = run.store
    parts = blocks(spec, image_count(job, store, settings))
    made = children_of(run)
    wanted = [
        Child(f"chunk/{layer}/{a}-{b}", "ablation", ChunkJob(layer=layer, block=(a, b)))
        for layer in spec.layers
        for a, b in parts
    ]
    got = ensure_children(run, wanted, made)
    if bad := next((c for c in got if c.state in (JobState.FAILED, JobState.CANCELLED)), None):
        run.fail(f"chunk {ChunkJob.of(bad).layer} {bad.state.name.lower()}: {bad.error}")
        return
    done = sum(c.state == JobState.SUCCEEDED for c in got)
    if done < len(got):
        chunk_counts = {"chunks": float(len(got)), "chunks_done": float(done)}
        run.progress(phase="sweep", fraction=min(done / len(got), 0.99), metrics=chunk_counts)
        return  # given back: the next chunk to end sends the sweep again
    # Canonical order (layer, then images), whatever order the chunks ended in.
    net, scores, _, y = _sweep_inputs(job, store, settings)
    swept = Swept([], [])
    labels = y.cpu().numpy()
    for layer in spec.layers:
        raws = [_load(get_bytes(store, store.stat(chunk_key(job, layer, p)))) for p in parts]
        swept += rows_from_blocks(net, spec, scores, layer_chunks(spec, layer), raws, labels)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "ablate"
        record = {
            "network": network_record(net),
            "environment": environment(net.device),
            "inputs": sweep_job.model_dump(
                mode="json", include={"checkpoint", "model", "data", "scores"}
            ),
            "test_images": sweep_job.test_subset,
            "tasks": len(got),
            "job": job.id,
        }
        write_ablation(out, spec, swept, record, output_count(net))
        run.check()
        refs = upload_dir(store, f"analyses/{job.id}/ablate", out)
    run.succeed(refs)


@job_task(CHUNK_TASK)
def chunk_task(run: JobRun, settings: Settings) -> None:
    chunk = ChunkJob.of(run.job)
    layer, (a, b) = chunk.layer, chunk.block
    parent = run.db.get(run.job.parent_id)
    store = run.store
    key = chunk_key(parent, layer, (a, b))
    if not store.exists(key):  # else computed by a worker that died before recording it
        net, scores, x, y = _sweep_inputs(parent, store, settings)
        spec = SweepJob.of(parent).ablate
        try:
            raw = run_block(net, spec, scores, layer_chunks(spec, layer), x, y, slice(a, b))
        except OriselError as exc:
            raise OriselError(f"{layer}: {exc}") from exc
        run.check()
        with tempfile.TemporaryDirectory() as tmp:
            blob = Path(tmp) / "chunk.npz"
            _save(raw, blob)
            put_if_absent(store, key, blob)  # a racing attempt's result stands
    run.succeed([store.stat(key)])


def _invariance(settings: Settings, store: ArtifactStore, job: Job, out: Path) -> None:
    asked = InvarianceJob.of(job)
    net, scores_dir, images, labels = _inputs(asked, store, settings)
    spec = asked.invariance
    units = UnitScores(scores_dir, spec.stimulus)
    invariance(net, spec, units, images, out, {"job": job.id}, labels)


@job_task(INVARIANCE_TASK)
def invariance_task(run: JobRun, settings: Settings) -> None:
    one_task_job(run, settings, "invariance", _invariance)
