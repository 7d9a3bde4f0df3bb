"""The training loop, shaped like torchvision's references: a step, an evaluation, a run.

Randomness is a pure function of (seed, epoch, batch): the shuffling of epoch e comes from
seed and e, the augmentation of batch b from seed, e and b. A run resumed from any
checkpoint therefore sees exactly the batches an uninterrupted run sees, and with the
model, optimizer and running-metric state restored it ends with bit-identical weights.

What a step draws lives in training.batches and how it computes in training.compute.
Longer than 400 lines on purpose: what is left is the Trainer's state (steps, running
metrics, best checkpoint, history, sessions), written and restored in one place, which is
what makes resuming exact; the population trainer reuses it network by network.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from orisel.data.augment import random_shift_flip
from orisel.data.prepare import PreparedData
from orisel.kernel.errors import FailedPrecondition, InvalidArgument
from orisel.kernel.progress import ProgressDue
from orisel.kernel.provenance import environment
from orisel.models.checkpoint import (
    BEST,
    CHECKPOINT_FORMAT,
    MANIFEST,
    checkpoint_name,
    copy_checkpoint,
    list_checkpoints,
    load_checkpoint,
    read_manifest,
    save_checkpoint,
    write_manifest,
)
from orisel.models.registry import build_model, resolve_device
from orisel.training.batches import DeviceData, batch_generator, epoch_permutation
from orisel.training.compute import compiled, evaluate, numerics, precision
from orisel.training.config import (
    RESUMABLE_CHANGES,
    TrainConfig,
    checkpoint_steps,
    steps_per_epoch,
)
from orisel.training.select import SelectTerm

log = logging.getLogger(__name__)


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """Refuse a run folder that training would write into without it being this run's own:
    a file, a folder holding files that are not an orisel run, or (without `resume`) a run."""
    if run_dir.exists() and not run_dir.is_dir():
        raise FailedPrecondition(f"--out {run_dir} is a file (left untouched): name a folder")
    if (run_dir / MANIFEST).is_file():
        if not resume:
            raise FailedPrecondition(
                f"{run_dir} already holds a run; pass --resume to continue it or choose "
                "another --out"
            )
        return
    if run_dir.is_dir() and any(run_dir.iterdir()):
        raise FailedPrecondition(
            f"--out {run_dir} holds files that are not an orisel run (left untouched): name a "
            "new or empty folder"
        )


@dataclass
class Running:
    """Training loss/accuracy accumulated since the start of the current epoch."""

    loss_sum: float = 0.0
    correct: int = 0
    seen: int = 0

    def metrics(self) -> dict[str, float] | None:
        if self.seen == 0:
            return None
        return {"loss": self.loss_sum / self.seen, "accuracy": self.correct / self.seen}


@dataclass
class RunState:
    step: int = 0
    running: Running = field(default_factory=Running)
    best: dict[str, Any] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def _make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
    )


def _is_better(cfg: TrainConfig, metrics: dict[str, Any], best: dict[str, Any] | None) -> bool:
    if best is None:
        return True
    if cfg.select_by == "val_loss":
        return bool(metrics["validation"]["loss"] < best["metrics"]["validation"]["loss"])
    return bool(metrics["validation"]["accuracy"] > best["metrics"]["validation"]["accuracy"])


def _check_resumable(stored: TrainConfig, given: TrainConfig, explicit: set[str]) -> TrainConfig:
    """The stored config, with only the fields that may change on resume taken from `given`."""
    a, b = stored.model_dump(), given.model_dump()
    for name in sorted(explicit - RESUMABLE_CHANGES):
        if a[name] != b[name]:
            raise FailedPrecondition(
                f"{name} is {b[name]!r} but the run was started with {a[name]!r}; only "
                f"{', '.join(sorted(RESUMABLE_CHANGES))} may change when resuming"
            )
    resumed = a | {k: b[k] for k in explicit & RESUMABLE_CHANGES}
    try:  # validated whole: a new device must still suit the stored options (amp, compile)
        return TrainConfig.model_validate(resumed)
    except ValidationError as exc:
        raise FailedPrecondition(
            f"resuming on {b['device']}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}"
        ) from exc


@dataclass
class Trainer:
    """One training run in `run_dir`; `run()` trains to the configured epoch (or max_steps)."""

    cfg: TrainConfig
    data: PreparedData
    run_dir: Path
    data_source: str = ""
    progress: bool = True
    # Called with each checkpoint's history entry (e.g. to report progress to a job record).
    on_checkpoint: Callable[[dict[str, Any]], None] | None = None
    # Called every PROGRESS_STEPS steps or few seconds (ProgressDue) with (steps, images) since
    # the last call, and the epoch.
    on_progress: Callable[[int, int, float], None] | None = None
    device: torch.device = field(init=False)
    checkpoint_s: float = field(init=False, default=0.0)
    manifest: dict[str, Any] = field(init=False, default_factory=dict)
    forward: Callable[..., Any] = field(init=False)

    def __post_init__(self) -> None:
        self.device = resolve_device(self.cfg.device)
        if self.device.type == "cpu" and self.cfg.amp == "fp16":
            # Half-precision autocast on a CPU is emulated, about 20x slower than float32.
            raise InvalidArgument("amp", "off or bf16 on a CPU (fp16 needs CUDA)", self.cfg.amp)
        self.train_data = DeviceData.from_numpy(
            self.data.train_images,
            self.data.train_labels,
            self.data.mean,
            self.device,
            self.cfg.channels_last,
        )
        self.val_data = DeviceData.from_numpy(
            self.data.val_images,
            self.data.val_labels,
            self.data.mean,
            self.device,
            self.cfg.channels_last,
        )
        self.test_data = DeviceData.from_numpy(
            self.data.test_images,
            self.data.test_labels,
            self.data.mean,
            self.device,
            self.cfg.channels_last,
        )
        self.steps_per_epoch = steps_per_epoch(len(self.train_data), self.cfg.batch_size)
        self.schedule = checkpoint_steps(self.cfg, self.steps_per_epoch)
        torch.manual_seed(self.cfg.seed)
        model, _ = build_model(
            self.cfg.model,
            num_classes=len(self.data.classes),
            image_size=self.data.train_images.shape[1],
        )
        self.model = model.to(self.device)
        if self.cfg.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.optimizer = _make_optimizer(self.cfg, self.model)
        self.forward = compiled(self.model, self.cfg, self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.cfg.amp == "fp16")
        self.state = RunState()
        self.max_shift = round(self.cfg.max_shift * self.data.train_images.shape[1])
        self.select = (
            SelectTerm.of(self.cfg, self.model, self.data.mean, self.device)
            if self.cfg.select_reg
            else None
        )

    # -- creating and resuming -------------------------------------------------------------
    @classmethod
    def open(
        cls,
        cfg: TrainConfig,
        data: PreparedData,
        run_dir: Path,
        resume: bool,
        explicit: set[str] | None = None,
        data_source: str = "",
        progress: bool = True,
    ) -> Trainer:
        """Start a new run in `run_dir`, or resume the run there from its last checkpoint."""
        check_run_dir(run_dir, resume)
        if not resume:
            trainer = cls(cfg, data, run_dir, data_source, progress)
            trainer._write_manifest(status="running", created=True)
            return trainer
        if not (run_dir / MANIFEST).is_file():
            log.info("no run in %s yet; starting a new one", run_dir)
            return cls.open(cfg, data, run_dir, False, explicit, data_source, progress)
        manifest = read_manifest(run_dir)
        stored = TrainConfig.model_validate(manifest["config"])
        cfg = _check_resumable(stored, cfg, explicit if explicit is not None else set())
        if manifest["data"]["sha256"] != data.sha256:
            raise FailedPrecondition(
                f"the data's sha256 {data.sha256[:12]} differs from the run's "
                f"{manifest['data']['sha256'][:12]}; resume with the same data source"
            )
        trainer = cls(cfg, data, run_dir, data_source or manifest["data"]["source"], progress)
        trainer.manifest = manifest
        ckpts = list_checkpoints(run_dir)
        if ckpts:
            trainer._restore(load_checkpoint(ckpts[-1], cfg.model))
            log.info("resumed %s from %s", run_dir, ckpts[-1].name)
        trainer._write_manifest(status="running")
        return trainer

    def rewind(self, step: int) -> None:
        """Back to this run's checkpoint at `step` (a population resuming where every network
        has one); later checkpoints are rewritten as training passes them again."""
        at = [p for p in list_checkpoints(self.run_dir) if p.stem.endswith(f"_s{step:08d}")]
        if not at:
            raise FailedPrecondition(f"{self.run_dir} has no checkpoint at step {step}")
        self._restore(load_checkpoint(at[0], self.cfg.model))
        self._write_manifest(status="running")

    def _restore(self, ckpt: dict[str, Any]) -> None:
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.state.step = int(ckpt["step"])
        # A checkpoint at an epoch's end holds that epoch's totals; the next epoch starts anew.
        at_epoch_end = self.state.step % self.steps_per_epoch == 0
        self.state.running = Running() if at_epoch_end else Running(**ckpt["running"])
        self.state.best = ckpt["best"]
        self.state.history = [
            h for h in self.manifest.get("history", []) if h["step"] <= self.state.step
        ]

    def _write_manifest(self, status: str, created: bool = False) -> None:
        if created:
            self.manifest = {
                "format": "orisel.run/1",
                "config": self.cfg.model_dump(mode="json"),
                "seeds": {
                    "model_init": self.cfg.seed,
                    "shuffle_and_augment": self.cfg.seed,
                    "split": self.cfg.data.split_seed,
                    "label_corruption": self.cfg.data.corruption_seed,
                },
                "data": {"source": self.data_source, **self.data.summary()},
                "environment": environment(self.device),
                "steps_per_epoch": self.steps_per_epoch,
                "sessions": [],
            }
        self.manifest["config"] = self.cfg.model_dump(mode="json")
        self.manifest["status"] = status
        self.manifest["checkpoint_steps"] = self.schedule
        self.manifest["history"] = self.state.history
        self.manifest["best"] = self.state.best
        write_manifest(self.run_dir, self.manifest)

    # -- training --------------------------------------------------------------------------
    def train_step(
        self, x: torch.Tensor, y: torch.Tensor, step: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step (global `step`, which decides when the selectivity term runs);
        returns the cross-entropy and the correct count."""
        self.optimizer.zero_grad(set_to_none=True)
        with precision(self.cfg, self.device):
            logits = self.forward(x)
            loss = F.cross_entropy(logits.float(), y)
            objective = loss
            if self.select is not None and self.select.due(step):
                objective = loss - self.cfg.select_reg * self.select.value(self.model)
        scaled: torch.Tensor = self.scaler.scale(objective)
        torch.autograd.backward(scaled)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.detach(), (logits.argmax(1) == y).sum()

    def _batches(self, start_step: int, stop_step: int) -> Iterator[tuple[int, int, torch.Tensor]]:
        """(global step, epoch, batch indices) for steps start_step+1 .. stop_step."""
        n, bs, spe = len(self.train_data), self.cfg.batch_size, self.steps_per_epoch
        step = start_step
        while step < stop_step:
            epoch, first = divmod(step, spe)
            perm = epoch_permutation(self.cfg.seed, epoch, n).to(self.device)
            for b in range(first, spe):
                if step >= stop_step:
                    return
                step += 1
                yield step, epoch, perm[b * bs : min((b + 1) * bs, n)]

    def run(self, max_steps: int | None = None) -> dict[str, Any]:
        """Train until the configured epochs (or global step `max_steps`); return a summary."""
        with numerics(self.cfg, self.device):
            return self._run(max_steps)

    def _run(self, max_steps: int | None) -> dict[str, Any]:
        total = self.cfg.epochs * self.steps_per_epoch
        stop = total if max_steps is None else min(total, max_steps)
        start_step, t0 = self.state.step, time.perf_counter()
        self.checkpoint_s = 0.0
        if start_step == 0 and 0 in self.schedule and not self.state.history:
            self._checkpoint(0)
        self.model.train()
        schedule = set(self.schedule)
        bar = tqdm(
            total=total,
            initial=start_step,
            unit="step",
            disable=not self.progress,
            dynamic_ncols=True,
            mininterval=0.5 if sys.stderr.isatty() else 30.0,
        )
        due = ProgressDue()
        loss_sum = torch.zeros((), device=self.device, dtype=torch.float64)
        correct = torch.zeros((), device=self.device, dtype=torch.int64)
        seen = images = 0
        reported_step, reported_images = start_step, 0
        try:
            for step, epoch, idx in self._batches(start_step, stop):
                x, y = self.train_data.batch(idx)
                if self.cfg.augment:
                    gen = batch_generator(self.cfg.seed, epoch, (step - 1) % self.steps_per_epoch)
                    x = random_shift_flip(x, self.max_shift, self.cfg.hflip, gen, self.cfg.fill)
                loss, hits = self.train_step(x, y, step)
                loss_sum += loss.double() * len(idx)
                correct += hits
                seen += len(idx)
                images += len(idx)
                self.state.step = step
                if step % self.steps_per_epoch == 0 or step in schedule:
                    self._fold_running(loss_sum, correct, seen)
                    loss_sum.zero_(), correct.zero_()
                    seen = 0
                    if step in schedule:
                        self._checkpoint(step)
                    if step % self.steps_per_epoch == 0:
                        self.state.running = Running()
                bar.update(1)
                if self.on_progress is not None and due(step):
                    self.on_progress(
                        step - reported_step, images - reported_images, step / self.steps_per_epoch
                    )
                    reported_step, reported_images = step, images
                r = self.state.running
                if self.progress and step % 50 == 0 and r.seen + seen:
                    s = r.seen + seen
                    bar.set_postfix(
                        epoch=f"{step / self.steps_per_epoch:.2f}",
                        loss=f"{(r.loss_sum + float(loss_sum)) / max(s, 1):.3f}",
                        acc=f"{(r.correct + int(correct)) / max(s, 1):.3f}",
                    )
            if self.on_progress is not None and self.state.step > reported_step:
                self.on_progress(
                    self.state.step - reported_step,
                    images - reported_images,
                    self.state.step / self.steps_per_epoch,
                )
        except KeyboardInterrupt:
            # Stopped from outside (Ctrl-C, a wall-clock budget): the session is still recorded.
            self._end_session(start_step, time.perf_counter() - t0, done=False)
            raise
        finally:
            bar.close()
        wall = time.perf_counter() - t0
        done = self.state.step >= total
        self._end_session(start_step, wall, done)
        return self.summary(wall, images)

    def _end_session(self, start_step: int, wall: float, done: bool) -> None:
        if not done:
            log.info(
                "stopped at step %d; --resume continues from step %d",
                self.state.step,
                self.state.history[-1]["step"],
            )
        self.manifest["sessions"].append(
            {
                "from_step": start_step,
                "to_step": self.state.step,
                "wall_s": round(wall, 3),
                "environment": environment(self.device),
            }
        )
        self._write_manifest(status="completed" if done else "stopped")

    def _fold_running(self, loss_sum: torch.Tensor, correct: torch.Tensor, seen: int) -> None:
        r = self.state.running
        self.state.running = Running(
            r.loss_sum + float(loss_sum), r.correct + int(correct), r.seen + seen
        )

    def _checkpoint(self, step: int) -> None:
        t0 = time.perf_counter()
        self._write_checkpoint(step)
        self.checkpoint_s += time.perf_counter() - t0

    def _write_checkpoint(self, step: int) -> None:
        epoch = step / self.steps_per_epoch
        metrics: dict[str, Any] = {
            "train": self.state.running.metrics(),
            "validation": evaluate(
                self.model, self.val_data, self.cfg.eval_batch_size, self.cfg, self.device
            ),
            "test": evaluate(
                self.model, self.test_data, self.cfg.eval_batch_size, self.cfg, self.device
            ),
        }
        name = checkpoint_name(epoch, step)
        entry: dict[str, Any] = {
            "step": step,
            "epoch": epoch,
            "file": f"checkpoints/{name}",
            "metrics": metrics,
        }
        if self.select is not None:
            with torch.no_grad():
                layers = self.select.layer_gosi(self.model)
            # What the term sees (its grating sub-grid), not tune's measurement.
            entry["selectivity"] = {name: float(v) for name, v in layers.items()}
        better = _is_better(self.cfg, metrics, self.state.best)
        if better:
            self.state.best = entry
        ckpt = {
            "format": CHECKPOINT_FORMAT,
            "model_name": self.cfg.model,
            "num_classes": len(self.data.classes),
            "classes": list(self.data.classes),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": epoch,
            "step": step,
            "config": self.cfg.model_dump(mode="json"),
            "metrics": metrics,
            "running": vars(self.state.running).copy(),
            "best": self.state.best,
            # In C order: the mean's layout follows the images' (C order when freshly
            # decoded, a transposed view when read from the cache), and torch.save keeps
            # strides, so workers with and without the cache stored different bytes.
            "mean_image": torch.from_numpy(self.data.mean).contiguous(),
            "data_sha256": self.data.sha256,
        }
        path = self.run_dir / entry["file"]
        save_checkpoint(path, ckpt)
        if better:
            copy_checkpoint(path, self.run_dir / BEST)
        self.state.history.append(entry)
        self._write_manifest(status="running")
        if self.on_checkpoint is not None:
            self.on_checkpoint(entry)
        val, test = metrics["validation"], metrics["test"]
        log.info(
            "epoch %.2f step %d: val loss %.4f acc %.4f | test acc %.4f%s",
            epoch,
            step,
            val["loss"],
            val["accuracy"],
            test["accuracy"],
            " (best)" if better else "",
        )

    def summary(self, wall_s: float, images: int) -> dict[str, Any]:
        last = self.state.history[-1] if self.state.history else None
        train_s = wall_s - self.checkpoint_s
        return {
            "run_dir": str(self.run_dir),
            "status": self.manifest["status"],
            "step": self.state.step,
            "epoch": self.state.step / self.steps_per_epoch,
            "checkpoints": len(self.state.history),
            "best": self.state.best,
            "last": last,
            "wall_s": round(wall_s, 3),
            "checkpoint_s": round(self.checkpoint_s, 3),
            # Training throughput: time spent evaluating and saving checkpoints is left out.
            "images_per_s": round(images / train_s, 1) if train_s > 0 and images else math.nan,
            "device": str(self.device),
        }
