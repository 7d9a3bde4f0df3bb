"""Trainer throughput against a bare PyTorch loop: same model, data, batch size, augmentation.

Both sides run the same number of optimisation steps on the same CIFAR-10 subset, in
alternation, and the best of the repeats is kept for each. Prints images/s and the ratio;
the target is trainer >= 0.95 x bare for the training steps.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from torch.nn import functional as F

from orisel.data.augment import random_shift_flip
from orisel.data.prepare import PreparedData, SplitSpec, prepare
from orisel.data.sources import load_cifar10
from orisel.models import build_model
from orisel.runtime.settings import get_settings
from orisel.training.batches import DeviceData
from orisel.training.config import TrainConfig
from orisel.training.loop import Trainer


def bare_loop(data: DeviceData, steps: int, batch: int, max_shift: int) -> float:
    """The textbook loop: shuffle, slice, augment, forward, backward, step. Returns images/s."""
    torch.manual_seed(0)
    model, _ = build_model("cnn7")
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(data), generator=gen)
    t0 = time.perf_counter()
    for b in range(steps):
        x, y = data.batch(perm[b * batch : (b + 1) * batch])
        x = random_shift_flip(x, max_shift, True, gen)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - t0)


def trainer_run(prepared: PreparedData, spec: SplitSpec, epochs: int) -> dict[str, float]:
    cfg = TrainConfig(epochs=epochs, data=spec, device="cpu", early_checkpoint_until=0)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer.open(cfg, prepared, Path(tmp) / "run", resume=False, progress=True)
        s = trainer.run()
    whole = s["images_per_s"] * (s["wall_s"] - s["checkpoint_s"]) / s["wall_s"]
    return {"steps": s["images_per_s"], "whole": whole, "checkpoint_s": s["checkpoint_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--train-images", type=int, default=8000)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    spec = SplitSpec(val_size=10_000, train_subset=args.train_images, test_subset=1000)
    prepared = prepare(load_cifar10(args.data, get_settings().cache_dir), spec)
    dev = DeviceData.from_numpy(
        prepared.train_images, prepared.train_labels, prepared.mean, torch.device("cpu")
    )
    steps = args.train_images // 32
    bare, ours = [], []
    for _ in range(args.repeats):
        bare.append(bare_loop(dev, steps, 32, 3))
        ours.append(trainer_run(prepared, spec, epochs=1))
    best_bare = max(bare)
    best = max(ours, key=lambda r: r["steps"])
    result = {
        "torch_threads": torch.get_num_threads(),
        "images_per_epoch": args.train_images,
        "bare_images_per_s": round(best_bare, 1),
        "trainer_images_per_s": round(best["steps"], 1),
        "ratio_trainer_over_bare": round(best["steps"] / best_bare, 3),
        "trainer_with_checkpoints_images_per_s": round(best["whole"], 1),
        "checkpoint_s_per_run": round(best["checkpoint_s"], 2),
        "all_bare": [round(b, 1) for b in bare],
        "all_trainer": [round(r["steps"], 1) for r in ours],
    }
    print(json.dumps(result, indent=2))
    verdict = "meets" if result["ratio_trainer_over_bare"] >= 0.95 else "MISSES"
    print(f"trainer/bare = {result['ratio_trainer_over_bare']:.3f} ({verdict} the >= 0.95 target)")


if __name__ == "__main__":
    main()
