"""A population of N cnn7 networks trained three ways on one device, side by side in one
run: N single runs one after another, the population trainer's stacked layout (grouped
convolutions, one optimizer) and its loop layout (the networks one after another inside one
process). Prints images per second per network and which layout the trainer picks here.

usage: python bench/bench_population.py --data ARCHIVE [--networks 8] [--steps 40]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from orisel.data.prepare import SplitSpec, prepare
from orisel.data.sources import load_cifar10
from orisel.runtime.settings import get_settings
from orisel.training.config import TrainConfig
from orisel.training.loop import Trainer
from orisel.training.population import PopulationTrainer

WARM_STEPS = 2


def step_flops(batch: int) -> float:
    """FLOPs of one training step of one cnn7 (forward, and backward at twice the forward),
    counted from its convolutions and dense layers."""
    from torch import nn

    from orisel.models.cnn7 import CNN7

    macs = 0

    def count(module: nn.Module, _: object, out: torch.Tensor) -> None:
        nonlocal macs
        if isinstance(module, nn.Conv2d):
            macs += out.numel() * module.in_channels * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, nn.Linear):
            macs += out.numel() * module.in_features

    model = CNN7()
    for m in model.modules():
        m.register_forward_hook(count)
    with torch.no_grad():
        model(torch.zeros(batch, 3, 32, 32))
    return 3 * 2 * macs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--networks", type=int, default=8)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--train-images", type=int, default=4000)
    ap.add_argument("--val-size", type=int, default=10_000)
    ap.add_argument(
        "--compile", choices=("on", "cudagraphs"), help="also: the stack torch.compile'd"
    )
    ap.add_argument("--tf32", action="store_true", help="also: the stack with TF32 kernels")
    ap.add_argument("--amp", choices=("bf16",), help="also: the stack under autocast")
    args = ap.parse_args()
    # Each option the trainer offers, measured alone against the plain float32 stack.
    options: dict[str, dict[str, object]] = {}
    if args.compile:
        options[f"stacked, compile={args.compile}"] = {"compile": args.compile}
    if args.tf32:
        options["stacked, tf32"] = {"tf32": True}
    if args.amp:
        options[f"stacked, amp={args.amp}"] = {"amp": args.amp}
    spec = SplitSpec(val_size=args.val_size, train_subset=args.train_images, test_subset=None)
    data = prepare(load_cifar10(args.data, get_settings().cache_dir), spec)
    # No checkpoint inside the measured steps: training throughput only.
    cfg = TrainConfig(
        epochs=10,
        data=spec,
        device=args.device,
        early_checkpoint_until=0,
        checkpoint_every_epochs=10,
    )
    n, steps = args.networks, args.steps
    with tempfile.TemporaryDirectory() as tmp:

        def trainers(tag: str, **update: object) -> list[Trainer]:
            return [
                Trainer.open(
                    cfg.model_copy(update={"seed": k, **update}),
                    data,
                    Path(tmp) / f"{tag}-{k}",
                    False,
                    progress=False,
                )
                for k in range(n)
            ]

        def timed(run: object) -> float:
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            run()  # type: ignore[operator]
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            return time.perf_counter() - t0

        def sequential(tag: str) -> float:
            singles = trainers(tag)
            for t in singles:  # step 0's checkpoint before the clock starts, as below
                t.run(max_steps=0)
            return timed(lambda: [t.run(max_steps=steps) for t in singles])

        def population(tag: str, layout: str, **update: object) -> float:
            pop = PopulationTrainer(trainers(tag, **update), layout=layout)  # type: ignore[arg-type]
            # Two steps before the clock starts: compiled kernels and CUDA graphs are built
            # (and cuDNN tuned) there, for every layout alike.
            pop.run(max_steps=WARM_STEPS)
            return timed(lambda: pop.run(max_steps=WARM_STEPS + steps))

        # Alternating repeats, best of each: the first pass also warms the kernels up.
        results: dict[str, float] = {}
        for r in range(args.repeats):
            for name, seconds in (
                ("sequential single runs", sequential(f"s{r}")),
                ("population, stacked", population(f"p{r}", "stacked")),
                ("population, loop", population(f"l{r}", "loop")),
                *(
                    (f"population, {label}", population(f"o{r}{i}", "stacked", **update))
                    for i, (label, update) in enumerate(options.items())
                ),
            ):
                results[name] = min(seconds, results.get(name, seconds))
        picked = PopulationTrainer(trainers("auto")).layout
    images = steps * cfg.batch_size
    device = Trainer.open(cfg, data, Path(tempfile.mkdtemp()) / "d", False, progress=False).device
    print(f"{n} cnn7 networks x {steps} steps of {cfg.batch_size} images on {device}")
    base = images / results["sequential single runs"]
    for name, seconds in results.items():
        rate = images / seconds
        print(f"  {name:36s} {rate:8.1f} images/s per network  ({rate / base:.2f}x sequential)")
    print(f"  the trainer picks the {picked} layout on {device.type}")
    flops = step_flops(cfg.batch_size) * n
    best = min(results.values()) / steps
    print(
        f"  one step of all {n} networks: {flops / 1e9:.2f} GFLOP; fastest layout "
        f"{best * 1e3:.2f} ms per step = {flops / best / 1e12:.3f} TFLOP/s achieved"
    )


if __name__ == "__main__":
    main()
