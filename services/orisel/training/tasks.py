"""Celery tasks of the training service: long runs as a chain of bounded segments.

A segment restores the run's latest checkpoint from the artifact store (so any worker can
take it, and a lost worker costs at most one segment), trains `segment_epochs` epochs,
uploads the new checkpoints, and gives the job back to be sent again until the run is
complete.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

from orisel.core import metrics
from orisel.core.artifacts import fetch
from orisel.core.celery_app import job_task
from orisel.core.errors import OriselError
from orisel.core.lifecycle import JobRun
from orisel.core.settings import Settings, make_store
from orisel.core.storage import ArtifactRef, ArtifactStore, put_if_absent
from orisel.data.prepare import prepare
from orisel.data.sources import load_cifar10
from orisel.training.checkpoint import (
    BEST,
    MANIFEST,
    copy_checkpoint,
    list_checkpoints,
    read_manifest,
)
from orisel.training.config import TrainConfig
from orisel.training.loop import Trainer
from orisel.training.servicer import SEGMENT_TASK

log = logging.getLogger(__name__)


SEGMENT_MANIFESTS = "manifests/"


def run_prefix(job_id: str) -> str:
    return f"runs/{job_id}/"


def _data_path(spec: dict[str, Any], store: ArtifactStore, settings: Settings) -> Path:
    ref = spec.get("data")
    if ref:
        return fetch(store, ArtifactRef(**ref), settings.work_dir / "data")
    if settings.data is None:
        raise OriselError("no data: the job names none and ORISEL_DATA is not set on the worker")
    return settings.data


def _restore(store: ArtifactStore, job_id: str, run_dir: Path) -> None:
    """Bring down what resuming needs: the latest manifest, the latest checkpoint and the best
    one (best.pt is a copy of it). Objects are written once, so the manifest of each segment
    has its own key: manifests/<step>.json."""
    refs = {r.key.removeprefix(run_prefix(job_id)): r for r in store.list(run_prefix(job_id))}
    manifests = sorted(k for k in refs if k.startswith(SEGMENT_MANIFESTS))
    if not manifests:
        return
    stored_step = int(Path(manifests[-1]).stem)
    local = run_dir / MANIFEST
    local_history = read_manifest(run_dir).get("history", []) if local.is_file() else []
    # Another worker may have trained later segments: the store's newest manifest wins over
    # this worker's older copy (a newer local one is this worker's own unfinished upload).
    if not local_history or local_history[-1]["step"] < stored_step:
        local.unlink(missing_ok=True)
        store.get_file(refs[manifests[-1]], local)
    ckpts = sorted(k for k in refs if k.startswith("checkpoints/"))
    best = (read_manifest(run_dir).get("best") or {}).get("file")
    for name in {*ckpts[-1:], *([best] if best in refs else [])}:
        if not (run_dir / name).is_file():
            store.get_file(refs[name], run_dir / name)
    if best in refs and not (run_dir / BEST).is_file():
        copy_checkpoint(run_dir / best, run_dir / BEST)


def _upload(
    store: ArtifactStore, job_id: str, run_dir: Path, step: int, final: bool
) -> dict[str, ArtifactRef]:
    """Upload checkpoints not yet in the store and this segment's manifest; at the end of the
    run also manifest.json and best.pt, the run's outputs (first write wins, so a re-run
    after a crash between upload and completion keeps the first)."""
    present = {r.key for r in store.list(run_prefix(job_id) + "checkpoints/")}
    for path in list_checkpoints(run_dir):
        key = run_prefix(job_id) + path.relative_to(run_dir).as_posix()
        if key not in present:
            put_if_absent(store, key, path)
    segment_key = f"{run_prefix(job_id)}{SEGMENT_MANIFESTS}{step:09d}.json"
    put_if_absent(store, segment_key, run_dir / MANIFEST)
    if not final:
        return {}
    return {
        name: put_if_absent(store, run_prefix(job_id) + name, run_dir / name)
        for name in (BEST, MANIFEST)
    }


@job_task(SEGMENT_TASK)
def segment(run: JobRun, settings: Settings) -> None:
    job = run.job
    store = cast(ArtifactStore, make_store(settings))
    cfg = TrainConfig.model_validate(job.spec["config"])
    ds = load_cifar10(_data_path(job.spec, store, settings), settings.cache_dir)
    run_dir = settings.work_dir / "runs" / job.id
    _restore(store, job.id, run_dir)
    trainer = Trainer.open(cfg, prepare(ds, cfg.data), run_dir, resume=True, progress=False)
    total = cfg.epochs * trainer.steps_per_epoch

    def progress(steps: int, images: int, epoch: float) -> None:
        metrics.training_progress(steps, images, epoch)
        run.check()  # a cancel stops the segment within PROGRESS_STEPS steps

    def report(entry: dict[str, Any]) -> None:
        m = entry["metrics"]
        metrics.training_checkpoint(entry["epoch"], m)
        shown = {
            "val_loss": m["validation"]["loss"],
            "val_accuracy": m["validation"]["accuracy"],
            "test_accuracy": m["test"]["accuracy"],
            "epoch": entry["epoch"],
        }
        run.progress(phase="train", fraction=entry["step"] / total, metrics=shown)

    trainer.on_checkpoint = report
    trainer.on_progress = progress
    run.progress(phase="train", fraction=trainer.state.step / total)
    epochs = job.spec.get("segment_epochs") or settings.segment_epochs
    stop = min(total, trainer.state.step + epochs * trainer.steps_per_epoch)
    try:
        summary = trainer.run(max_steps=stop)
    finally:
        metrics.training_done()
    done = summary["status"] == "completed"
    refs = _upload(store, job.id, run_dir, trainer.state.step, final=done)
    if done:
        run.succeed((refs[BEST], refs[MANIFEST]))
    else:
        run.again()  # the next segment, on whichever worker takes it
