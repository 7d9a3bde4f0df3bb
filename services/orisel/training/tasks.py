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
from orisel.core.celery_app import job_task
from orisel.core.errors import OriselError
from orisel.core.lifecycle import JobRun
from orisel.core.settings import Settings, make_store
from orisel.core.storage import ArtifactRef, ArtifactStore
from orisel.data.prepare import prepare
from orisel.data.sources import load_cifar10
from orisel.training.checkpoint import BEST, MANIFEST, list_checkpoints
from orisel.training.config import TrainConfig
from orisel.training.loop import Trainer
from orisel.training.servicer import SEGMENT_TASK

log = logging.getLogger(__name__)


def run_prefix(job_id: str) -> str:
    return f"runs/{job_id}/"


def _data_path(spec: dict[str, Any], store: ArtifactStore, settings: Settings) -> Path:
    ref = spec.get("data")
    if ref:
        artifact = ArtifactRef(**ref)
        local = settings.work_dir / "data" / artifact.sha256 / Path(artifact.key).name
        return local if local.is_file() else store.get_file(artifact, local)
    if settings.data is None:
        raise OriselError("no data: the job names none and ORISEL_DATA is not set on the worker")
    return settings.data


def _restore(store: ArtifactStore, job_id: str, run_dir: Path) -> None:
    """Bring down what resuming needs: the manifest, best.pt and the latest checkpoint."""
    refs = {r.key.removeprefix(run_prefix(job_id)): r for r in store.list(run_prefix(job_id))}
    ckpts = sorted(k for k in refs if k.startswith("checkpoints/"))
    for name in [MANIFEST, BEST, *ckpts[-1:]]:
        if name in refs and not (run_dir / name).is_file():
            store.get_file(refs[name], run_dir / name)


def _upload(store: ArtifactStore, job_id: str, run_dir: Path) -> dict[str, ArtifactRef]:
    """Upload checkpoints not yet in the store, and the manifest and best.pt every time."""
    present = {r.key for r in store.list(run_prefix(job_id) + "checkpoints/")}
    out = {}
    for path in list_checkpoints(run_dir):
        key = run_prefix(job_id) + path.relative_to(run_dir).as_posix()
        if key not in present:
            store.put_file(key, path)
    for name in (BEST, MANIFEST):
        if (run_dir / name).is_file():
            out[name] = store.put_file(run_prefix(job_id) + name, run_dir / name)
    return out


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
        metrics.training_progress(job.id, steps, images, epoch)
        run.check()  # a cancel stops the segment within PROGRESS_STEPS steps

    def report(entry: dict[str, Any]) -> None:
        m = entry["metrics"]
        metrics.training_checkpoint(job.id, entry["epoch"], m)
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
        metrics.training_done(job.id)
    refs = _upload(store, job.id, run_dir)
    if summary["status"] == "completed":
        run.succeed((refs[BEST], refs[MANIFEST]))
    else:
        run.again()  # the next segment, on whichever worker takes it
