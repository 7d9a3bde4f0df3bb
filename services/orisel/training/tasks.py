"""Celery tasks of the training service: long runs as a chain of bounded segments.

A segment restores the run's latest checkpoint from the artifact store (so any worker can
take it, and a lost worker costs at most one segment), trains `segment_epochs` epochs,
uploads the new checkpoints, and gives the job back to be sent again until the run is
complete.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path
from typing import Any

from orisel.control.celery_app import job_task
from orisel.control.lifecycle import JobRun
from orisel.data.prepare import prepare
from orisel.data.sources import load_cifar10
from orisel.kernel.errors import OriselError
from orisel.models.checkpoint import (
    BEST,
    MANIFEST,
    copy_checkpoint,
    list_checkpoints,
    read_manifest,
)
from orisel.runtime import metrics
from orisel.runtime.settings import Settings
from orisel.store.backend import ArtifactRef, ArtifactStore, put_if_absent
from orisel.store.scratch import fetch
from orisel.training.loop import Trainer
from orisel.training.population import PopulationTrainer
from orisel.training.spec import POPULATION_TASK, SEGMENT_TASK, TrainJob

log = logging.getLogger(__name__)


SEGMENT_MANIFESTS = "manifests/"


def run_prefix(job_id: str) -> str:
    return f"runs/{job_id}/"


def _data_path(spec: TrainJob, store: ArtifactStore, settings: Settings) -> Path:
    if spec.data is not None:
        return fetch(store, spec.data, settings.work_dir / "data")
    if settings.data is None:
        raise OriselError("no data: the job names none and ORISEL_DATA is not set on the worker")
    return settings.data


def _attempt_dir(settings: Settings, run: JobRun) -> Path:
    """This attempt's own folder for the job: work_dir/runs/<job>/<attempt>. Never shared with
    another attempt, which may be a zombie (cut off from the database, its lease lapsed) that
    trains on and writes its run folder until it learns it was fenced; folders of other
    attempts are removed, as all of theirs that counts is in the store."""
    job_dir = settings.work_dir / "runs" / run.job.id
    if job_dir.is_dir():
        for old in job_dir.iterdir():
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)
    return job_dir / re.sub(r"[^A-Za-z0-9._-]", "_", run.worker)


def _stored_steps(store: ArtifactStore, prefix: str) -> list[int]:
    """The steps the run under `prefix` has a segment manifest for, in order."""
    keys = (r.key.removeprefix(prefix) for r in store.list(prefix + SEGMENT_MANIFESTS))
    return sorted(int(Path(k).stem) for k in keys)


def _restore(store: ArtifactStore, prefix: str, run_dir: Path, upto: int | None = None) -> None:
    """Make `run_dir` the run as the store holds it under `prefix`: its newest segment
    manifest (each segment's has its own key, manifests/<step>.json, as objects are written
    once), or the newest at step `upto` or before, the checkpoint that manifest ends at and
    the best one (best.pt is a copy of it).

    The store is the only source: whatever the folder held is discarded first. A local run
    newer than the store's is one whose upload never landed (a fenced attempt's, or this
    worker's own cut off before its upload), and a segment continued from it would train
    from a state the store cannot reproduce and end at steps the undisturbed run never
    stored (one segment's manifest missing, checkpoints that no stored manifest names)."""
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    refs = {r.key.removeprefix(prefix): r for r in store.list(prefix)}
    manifests = sorted(
        k
        for k in refs
        if k.startswith(SEGMENT_MANIFESTS) and (upto is None or int(Path(k).stem) <= upto)
    )
    if not manifests:
        return
    store.get_file(refs[manifests[-1]], run_dir / MANIFEST)
    manifest = read_manifest(run_dir)
    # The checkpoint the manifest ends at, not the newest stored: an attempt fenced between
    # its checkpoints' upload and its manifest's may have stored one past it.
    history = manifest.get("history") or [{}]
    best = (manifest.get("best") or {}).get("file")
    for name in {history[-1].get("file"), best} - {None}:
        if name not in refs:
            raise OriselError(f"{prefix}{manifests[-1]} names {name}, which is not stored")
        store.get_file(refs[name], run_dir / name)
    if best is not None:
        copy_checkpoint(run_dir / best, run_dir / BEST)


def _upload(
    store: ArtifactStore, prefix: str, run_dir: Path, step: int, final: bool
) -> dict[str, ArtifactRef]:
    """Upload checkpoints not yet in the store and this segment's manifest; at the end of the
    run also manifest.json and best.pt, the run's outputs (first write wins, so a re-run
    after a crash between upload and completion keeps the first)."""
    present = {r.key for r in store.list(prefix + "checkpoints/")}
    for path in list_checkpoints(run_dir):
        key = prefix + path.relative_to(run_dir).as_posix()
        if key not in present:
            put_if_absent(store, key, path)
    put_if_absent(store, f"{prefix}{SEGMENT_MANIFESTS}{step:09d}.json", run_dir / MANIFEST)
    if not final:
        return {}
    return {name: put_if_absent(store, prefix + name, run_dir / name) for name in (BEST, MANIFEST)}


@job_task(SEGMENT_TASK)
def segment(run: JobRun, settings: Settings) -> None:
    job = run.job
    store = run.store
    spec = TrainJob.of(job)
    cfg = spec.config
    ds = load_cifar10(_data_path(spec, store, settings), settings.cache_dir)
    run_dir = _attempt_dir(settings, run)
    _restore(store, run_prefix(job.id), run_dir)
    trainer = Trainer.open(cfg, prepare(ds, cfg.data), run_dir, resume=True, progress=False)
    total = cfg.epochs * trainer.steps_per_epoch
    # The job's progress in the units a user waits on: epochs and steps, and the latest
    # checkpoint's metrics once there is one.
    shown: dict[str, float] = {"epochs": cfg.epochs, "steps": total}

    def progress(steps: int, images: int, epoch: float) -> None:
        metrics.training_progress(steps, images, epoch)
        step = round(epoch * trainer.steps_per_epoch)
        shown.update(epoch=epoch, step=step)
        # Also how a cancel reaches the segment: within PROGRESS_STEPS steps or a few seconds.
        run.progress(phase="train", fraction=step / total, metrics=shown)

    def report(entry: dict[str, Any]) -> None:
        m = entry["metrics"]
        metrics.training_checkpoint(entry["epoch"], m)
        shown.update(
            val_loss=m["validation"]["loss"],
            val_accuracy=m["validation"]["accuracy"],
            test_accuracy=m["test"]["accuracy"],
            epoch=entry["epoch"],
            step=entry["step"],
        )
        run.progress(phase="train", fraction=entry["step"] / total, metrics=shown)

    trainer.on_checkpoint = report
    trainer.on_progress = progress
    run.progress(phase="train", fraction=trainer.state.step / total)
    epochs = spec.segment_epochs or settings.segment_epochs
    stop = min(total, trainer.state.step + epochs * trainer.steps_per_epoch)
    try:
        summary = trainer.run(max_steps=stop)
    finally:
        metrics.training_done()
    done = summary["status"] == "completed"
    refs = _upload(store, run_prefix(job.id), run_dir, trainer.state.step, final=done)
    if done:
        run.succeed((refs[BEST], refs[MANIFEST]))
    else:
        run.again()  # the next segment, on whichever worker takes it


@job_task(POPULATION_TASK)
def population(run: JobRun, settings: Settings) -> None:
    """A segment of a population: every network restored from the store, trained together
    as one stack for `segment_epochs`, each uploaded to runs/<job>/<network>/."""
    job = run.job
    store = run.store
    spec = TrainJob.of(job)
    base = spec.config
    ds = load_cifar10(_data_path(spec, store, settings), settings.cache_dir)
    trainers, prefixes = [], []
    work = _attempt_dir(settings, run)
    networks = [(f"{run_prefix(job.id)}{name}/", name, cfg) for name, cfg in spec.networks()]
    # Every network from the last segment all of them stored: an attempt fenced between two
    # networks' uploads stored some a segment further than the others.
    upto = min((_stored_steps(store, prefix) or [0])[-1] for prefix, _, _ in networks)
    for prefix, name, cfg in networks:
        run_dir = work / name
        _restore(store, prefix, run_dir, upto)
        trainers.append(
            Trainer.open(cfg, prepare(ds, cfg.data), run_dir, resume=True, progress=False)
        )
        prefixes.append(prefix)
    stack = PopulationTrainer(trainers)
    total = base.epochs * trainers[0].steps_per_epoch
    names = [Path(p.rstrip("/")).name for p in prefixes]

    latest: dict[str, float] = {"epochs": base.epochs, "steps": total}

    def progress(steps: int, images: int, epoch: float) -> None:
        metrics.training_progress(steps, images, epoch)
        step = round(epoch * trainers[0].steps_per_epoch)
        latest.update(epoch=epoch, step=step)
        # Also how a cancel reaches every network: within PROGRESS_STEPS steps or seconds.
        run.progress(phase="train population", fraction=step / total, metrics=latest)

    def report(name: str) -> Any:
        def on_checkpoint(entry: dict[str, Any]) -> None:
            m = entry["metrics"]
            metrics.training_checkpoint(entry["epoch"], m)
            latest[f"{name}/val_loss"] = m["validation"]["loss"]
            latest[f"{name}/val_accuracy"] = m["validation"]["accuracy"]
            latest[f"{name}/test_accuracy"] = m["test"]["accuracy"]
            latest.update(epoch=entry["epoch"], step=entry["step"])
            run.progress(phase="train population", fraction=entry["step"] / total, metrics=latest)

        return on_checkpoint

    for name, t in zip(names, trainers, strict=True):
        t.on_checkpoint = report(name)
    stack.on_progress = progress
    run.progress(phase="train population", fraction=trainers[0].state.step / total)
    epochs = spec.segment_epochs or settings.segment_epochs
    stop = min(total, trainers[0].state.step + epochs * trainers[0].steps_per_epoch)
    try:
        summaries = stack.run(max_steps=stop)
    finally:
        metrics.training_done()
    done = all(s["status"] == "completed" for s in summaries)
    outputs = []
    for prefix, t in zip(prefixes, trainers, strict=True):
        refs = _upload(store, prefix, t.run_dir, t.state.step, final=done)
        outputs += [refs[BEST], refs[MANIFEST]] if done else []
    if done:
        run.succeed(outputs)
    else:
        run.again()
