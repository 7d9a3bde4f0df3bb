"""A population of cnn7 networks trained in one process as one batched model.

One cnn7 at batch 32 launches about a hundred small kernels per step and leaves a GPU idle.
Stacked, N networks run as one: each convolution is a grouped convolution (network k owns
group k), BatchNorm normalises N x C channels (exactly each network's own statistics), the
dense layers are batched matrix products, and the loss is the sum of the networks' mean
losses, so each network's gradient is its own. Adam and SGD are elementwise, so one optimizer
over the stacked tensors takes exactly each network's own step.

Everything else is the single-network trainer's: every network keeps its Trainer (its data,
seed, label corruption, run folder, manifest, checkpoint schedule, best checkpoint), draws its
own batches and augmentations from its own seed, and its checkpoints (weights and optimizer
state unstacked) are written in the existing format, so every analysis, the pipeline and the
report read them unchanged, and a network can be resumed alone or with its population.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch.nn import functional as F
from tqdm import tqdm

from orisel.data.augment import apply_shift_flip, random_shift_flip, shift_flip_sources
from orisel.kernel.errors import FailedPrecondition, InvalidArgument
from orisel.kernel.progress import ProgressDue
from orisel.models.stacked import StackedCNN7
from orisel.training.batches import batch_generator, epoch_permutation
from orisel.training.compute import compiled, numerics, precision
from orisel.training.loop import Trainer
from orisel.training.select import SelectTerm, StackedTerm

# The settings every network of a stack must share (they shape the step, not the network).
SHARED = (
    "model",
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "augment",
    "max_shift",
    "hflip",
    "fill",
    "early_checkpoint_every",
    "early_checkpoint_until",
    "checkpoint_every_epochs",
    "device",
    "amp",
    "tf32",
    "compile",
    "channels_last",
    "deterministic",
    "select_layers",
    "select_every",
    "select_frequencies",
    "select_phases",
)


Layout = Literal["auto", "stacked", "loop"]


def _unstack_optimizer(
    opt: torch.optim.Optimizer, stacked: StackedCNN7, k: int, target: torch.optim.Optimizer
) -> None:
    """Network k's optimizer state (Adam's moments and step, SGD's momentum) into `target`,
    the optimizer of a single cnn7, in the order of its parameters."""
    by_name = dict(zip(stacked.param_names, stacked.parameters(), strict=True))
    state = {}
    for index, name in enumerate(stacked.param_names):
        s = opt.state.get(by_name[name], {})
        state[index] = {
            key: (
                v[k].clone()
                if torch.is_tensor(v) and v.dim() > 0
                else v.clone()
                if torch.is_tensor(v)
                else v
            )
            for key, v in s.items()
        }
    layout = target.state_dict()
    target.load_state_dict({"state": state, "param_groups": layout["param_groups"]})


def _stack_optimizer(
    trainers: Sequence[Trainer], stacked: StackedCNN7, opt: torch.optim.Optimizer
) -> None:
    """The networks' optimizer states (a resumed population) stacked into `opt`."""
    states = [t.optimizer.state_dict()["state"] for t in trainers]
    if not states[0]:
        return
    params = list(stacked.parameters())
    for index, p in enumerate(params):
        per = [s[index] for s in states]
        opt.state[p] = {
            key: torch.stack([s[key] for s in per]) if per[0][key].dim() > 0 else per[0][key]
            for key in per[0]
        }


class PopulationTrainer:
    """Train `trainers` (one per network, each opened as for a single run) as one stack."""

    def __init__(
        self, trainers: Sequence[Trainer], progress: bool = False, layout: Layout = "auto"
    ) -> None:
        self.progress = progress
        # Called every PROGRESS_STEPS steps or few seconds (ProgressDue) with (steps done
        # since the last call, images of all networks, epoch).
        self.on_progress: Callable[[int, int, float], None] | None = None
        if not trainers:
            raise InvalidArgument("population", "at least one network", 0)
        self.trainers = list(trainers)
        first = self.trainers[0]
        for t in self.trainers[1:]:
            for name in SHARED:
                if getattr(t.cfg, name) != getattr(first.cfg, name):
                    raise InvalidArgument(
                        name,
                        f"the same in every network of a population ({getattr(first.cfg, name)!r})",
                        getattr(t.cfg, name),
                    )
            if len(t.train_data) != len(first.train_data):
                raise InvalidArgument(
                    "data", "training sets of one size in a population", len(t.train_data)
                )
        if first.cfg.model != "cnn7":
            raise InvalidArgument("model", "cnn7 (the stacked model)", first.cfg.model)
        if first.cfg.amp == "fp16" and layout != "loop":
            # fp16 needs loss scaling per network; bf16 (same range as float32) needs none.
            raise InvalidArgument("amp", "off or bf16 for a stacked population", "fp16")
        steps = {t.state.step for t in self.trainers}
        if len(steps) != 1:
            # Stopped between two networks' checkpoints (a killed worker): every network
            # goes back to the last step they all have a checkpoint for.
            common = min(steps)
            try:
                for t in self.trainers:
                    if t.state.step != common:
                        t.rewind(common)
            except FailedPrecondition as exc:
                raise FailedPrecondition(
                    f"the networks were stopped at different steps {sorted(steps)}: {exc}"
                ) from exc
        self.device = first.device
        self.cfg = first.cfg
        self.shared = self._shared_data()
        # A CPU is compute-bound at cnn7's size, and one big grouped convolution runs slower
        # there than the networks one after another (docs/benchmarks.md); a GPU is launch-
        # bound, and the stack fills it.
        self.layout = (
            layout if layout != "auto" else ("stacked" if self.device.type == "cuda" else "loop")
        )
        if self.layout == "stacked":
            nets = [t.model for t in self.trainers]
            self.model = StackedCNN7(nets).to(self.device)  # type: ignore[arg-type]
            self.forward = compiled(self.model, self.cfg, self.device)
            self.optimizer = self._optimizer()
            _stack_optimizer(self.trainers, self.model, self.optimizer)
            # One alpha per network (0 for some is fine): the pass serves them all.
            alphas = [t.cfg.select_reg for t in self.trainers]
            self.select = (
                StackedTerm.of(
                    [
                        SelectTerm.of(t.cfg, t.model, t.data.mean, self.device)
                        for t in self.trainers
                    ],
                    alphas,
                )
                if any(alphas)
                else None
            )

    def _optimizer(self) -> torch.optim.Optimizer:
        cfg, params = self.cfg, self.model.parameters()
        fused = self.device.type == "cuda"
        if cfg.optimizer == "adam":
            return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )

    def _shared_data(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """(images, mean, (N, n) labels) when every network trains on the same images in the
        same order of storage (a population differs in labels and seeds), so a step's batches
        are drawn in one gather instead of one per network; None otherwise."""
        first = self.trainers[0].train_data
        if first.channels_last or not all(
            torch.equal(t.train_data.images, first.images)
            and torch.equal(t.train_data.mean, first.mean)
            for t in self.trainers[1:]
        ):
            return None
        labels = torch.stack([t.train_data.labels for t in self.trainers])
        return first.images, first.mean, labels

    def _batch(
        self, step: int, epoch: int, perms: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Every network's batch `step` as its single run draws it: (N, B, C, H, W), (N, B)."""
        b = (step - 1) % self.trainers[0].steps_per_epoch
        bs = self.cfg.batch_size
        idx = perms[:, b * bs : min((b + 1) * bs, perms.shape[1])]
        if self.shared is None:
            xs, ys = [], []
            for k, t in enumerate(self.trainers):
                x, y = t.train_data.batch(idx[k])
                if self.cfg.augment:
                    gen = batch_generator(t.cfg.seed, epoch, b)
                    x = random_shift_flip(x, t.max_shift, self.cfg.hflip, gen, self.cfg.fill)
                xs.append(x)
                ys.append(y)
            return torch.stack(xs), torch.stack(ys)
        images, mean, labels = self.shared
        n, m = idx.shape
        # The same elementwise operations as DeviceData.batch and random_shift_flip, on all
        # networks' images at once: bit-identical to drawing them one network at a time.
        x = images[idx.reshape(-1)].float().div_(255.0).sub_(mean)
        if self.cfg.augment:
            h, w = x.shape[2:]
            drawn = [
                shift_flip_sources(
                    m, h, w, t.max_shift, self.cfg.hflip, batch_generator(t.cfg.seed, epoch, b)
                )
                for t in self.trainers
            ]
            rows = torch.cat([r for r, _ in drawn])
            cols = torch.cat([c for _, c in drawn])
            x = apply_shift_flip(x, rows, cols, self.cfg.fill)
        return x.view(n, m, *x.shape[1:]), labels.gather(1, idx)

    def step(
        self, x: torch.Tensor, y: torch.Tensor, step: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step of every network (global `step`, for the selectivity term):
        (N,) mean cross-entropies and (N,) correct counts."""
        if self.layout == "loop":
            steps = [t.train_step(x[k], y[k], step) for k, t in enumerate(self.trainers)]
            return torch.stack([s[0] for s in steps]), torch.stack([s[1] for s in steps])
        self.optimizer.zero_grad(set_to_none=True)
        with precision(self.cfg, self.device):
            logits = self.forward(x).float()
        n, b, k = logits.shape
        per_image = F.cross_entropy(logits.reshape(n * b, k), y.reshape(n * b), reduction="none")
        losses = per_image.view(n, b).mean(1)
        objective = losses.sum()
        if self.select is not None and self.select.due(step):
            objective = objective - (self.select.alphas * self.select.values(self.model)).sum()
        torch.autograd.backward(objective)
        self.optimizer.step()
        return losses.detach(), (logits.argmax(2) == y).sum(1)

    def _sync(self, k: int) -> None:
        """Network k's weights and optimizer state into its own Trainer (for a checkpoint)."""
        if self.layout == "loop":
            return  # each Trainer trained its own model
        t = self.trainers[k]
        self.model.copy_into(k, t.model)
        _unstack_optimizer(self.optimizer, self.model, k, t.optimizer)

    def run(self, max_steps: int | None = None) -> list[dict[str, Any]]:
        """Train every network to the configured epochs (or global step `max_steps`)."""
        with numerics(self.cfg, self.device):
            return self._run(max_steps)

    def _run(self, max_steps: int | None) -> list[dict[str, Any]]:
        first = self.trainers[0]
        spe = first.steps_per_epoch
        total = self.cfg.epochs * spe
        stop = total if max_steps is None else min(total, max_steps)
        start, t0 = first.state.step, time.perf_counter()
        schedule = set(first.schedule)
        if start == 0 and 0 in schedule and not first.state.history:
            for k, t in enumerate(self.trainers):
                self._sync(k)
                t._checkpoint(0)
        for t in self.trainers:
            t.model.train()
        if self.layout == "stacked":
            self.model.train()
        n = len(self.trainers)
        bar = tqdm(
            total=total,
            initial=start,
            unit="step",
            disable=not self.progress,
            dynamic_ncols=True,
            desc=f"{n} networks",
        )
        try:
            images = self._steps(start, stop, spe, schedule, bar)
        except KeyboardInterrupt:
            # Stopped from outside (Ctrl-C, a wall-clock budget): every session is recorded
            # and every network resumes from its last checkpoint.
            for t in self.trainers:
                t._end_session(start, time.perf_counter() - t0, done=False)
            raise
        finally:
            bar.close()
        for t in self.trainers:
            t.state.step = max(start, stop)
        wall = time.perf_counter() - t0
        summaries = []
        for k, t in enumerate(self.trainers):
            self._sync(k)
            t._end_session(start, wall, t.state.step >= total)
            summary = t.summary(wall, images // n)
            summary["images_per_s"] = round(images / wall, 1) if wall > 0 and images else math.nan
            summaries.append(summary)
        return summaries

    def _steps(self, start: int, stop: int, spe: int, schedule: set[int], bar: Any) -> int:
        """Steps start+1 .. stop of every network; returns the images trained on, in all."""
        n = len(self.trainers)
        images = 0
        cfg_batch = self.cfg.batch_size
        loss_sum = torch.zeros(n, device=self.device, dtype=torch.float64)
        correct = torch.zeros(n, device=self.device, dtype=torch.int64)
        seen = 0
        perms = torch.empty(0)
        perm_epoch = -1
        due, reported = ProgressDue(), start
        for step in range(start + 1, stop + 1):
            bar.update(1)
            if self.on_progress is not None and step > reported + 1 and due(step - 1):
                done = step - 1 - reported  # steps completed since the last report
                self.on_progress(done, done * cfg_batch * n, (step - 1) / spe)
                reported = step - 1
            epoch = (step - 1) // spe
            if epoch != perm_epoch:
                perms = torch.stack(
                    [epoch_permutation(t.cfg.seed, epoch, len(t.train_data)) for t in self.trainers]
                ).to(self.device)
                perm_epoch = epoch
            x, y = self._batch(step, epoch, perms)
            losses, hits = self.step(x, y, step)
            loss_sum += losses.double() * y.shape[1]
            correct += hits
            seen += y.shape[1]
            images += y.numel()
            if step % spe == 0 or step in schedule:
                for k, t in enumerate(self.trainers):
                    t.state.step = step
                    t._fold_running(loss_sum[k], correct[k], seen)
                    if step in schedule:
                        self._sync(k)
                        t._checkpoint(step)
                    if step % spe == 0:
                        t.state.running = type(t.state.running)()
                loss_sum.zero_(), correct.zero_()
                seen = 0
        return images
