"""How a service ablation sweep scales with workers: every (layer, block of images) task of
a cnn7 sweep timed on this machine, the critical path (longest task / all work) for tasks by
layer and by (layer, block), the speedup that implies for W workers (longest-first list
scheduling of the measured tasks), and a measured run of the block tasks on 1 and 2 worker
processes.

usage: python bench/bench_sweep.py --data ARCHIVE [--images 10000] [--block 500]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE: dict[str, Any] = {}


def _setup(data: str, images: int, tune_dir: str) -> None:
    torch.set_num_threads(1)
    from orisel.ablation.scores import UnitScores
    from orisel.ablation.spec import AblateSpec
    from orisel.ablation.sweep import chunks, evaluation_tensors
    from orisel.data.sources import load_cifar10
    from orisel.extraction.network import Network
    from orisel.models.registry import build_model
    from orisel.runtime.settings import get_settings

    torch.manual_seed(0)
    model, info = build_model("cnn7")
    ds = load_cifar10(Path(data), get_settings().cache_dir)
    net = Network(
        model.eval(),
        info,
        torch.device("cpu"),
        ds.train_images.mean(0).transpose(2, 0, 1).astype(np.float32) / 255,
        {"model": "cnn7"},
    )
    x, y = evaluation_tensors(net, ds.test_images[:images], ds.test_labels[:images])
    spec = AblateSpec(orders=("gosi", "osi"))  # csi needs labelled tuning images: same cost
    STATE.update(
        net=net,
        x=x,
        y=y,
        spec=spec,
        scores=UnitScores(Path(tune_dir), "gratings"),
        chunks=chunks(spec),
    )


def _task(task: tuple[str, int, int]) -> float:
    from orisel.ablation.sweep import run_block

    layer, a, b = task
    todo = [c for c in STATE["chunks"] if c.layer == layer]
    t0 = time.perf_counter()
    run_block(
        STATE["net"], STATE["spec"], STATE["scores"], todo, STATE["x"], STATE["y"], slice(a, b)
    )
    return time.perf_counter() - t0


def _makespan(times: list[float], workers: int) -> float:
    loads = [0.0] * workers
    for t in sorted(times, reverse=True):
        loads[loads.index(min(loads))] += t
    return max(loads)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--block", type=int, default=500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        import orisel
        from orisel.extraction.network import Network
        from orisel.models.registry import build_model

        torch.manual_seed(0)
        model, info = build_model("cnn7")
        net = Network(
            model.eval(), info, torch.device("cpu"), np.zeros((3, 32, 32), np.float32), {}
        )
        orisel.tune(net, out=Path(tmp) / "tune", stimuli=("gratings",), permutations=20)
        init = (str(args.data), args.images, str(Path(tmp) / "tune"))
        _setup(*init)
        layers = STATE["spec"].layers
        tasks = [
            (layer, a, min(a + args.block, args.images))
            for layer in layers
            for a in range(0, args.images, args.block)
        ]
        times = {t: _task(t) for t in tasks}
        total = sum(times.values())
        by_layer = {
            layer: sum(v for (lay, _, _), v in times.items() if lay == layer) for layer in layers
        }
        print(
            f"cnn7 sweep on {args.images} images: {len(tasks)} tasks of {args.block} images, "
            f"{total:.1f} s of work in all"
        )
        print(
            "  share of the work by layer: "
            + ", ".join(f"{k} {v / total:.0%}" for k, v in by_layer.items())
        )
        for name, parts in (
            ("by layer", list(by_layer.values())),
            (f"by (layer, {args.block} images)", list(times.values())),
        ):
            print(
                f"  tasks {name}: longest / all = {max(parts) / total:.3f} (goal <= 1/32 = 0.031)"
            )
            print(
                "    implied speedup, W workers: "
                + ", ".join(f"{w}: {total / _makespan(parts, w):.1f}x" for w in (2, 4, 8, 16, 32))
            )
        # Work is linear in the images (each block's share of its layer is its share of
        # the images), so the measured per-layer shares give the critical path at any size.
        top = max(by_layer.values()) / total
        for n_images in (10_000,):
            longest = top * min(args.block, n_images) / n_images
            print(
                f"  at {n_images} images in blocks of {args.block}: longest / all = "
                f"{longest:.3f} (from the measured layer shares)"
            )
        walls = {}
        for workers in (1, 2):
            with mp.get_context("spawn").Pool(workers, _setup, init) as pool:
                pool.map(_task, tasks[:workers])  # warm up each process
                t0 = time.perf_counter()
                pool.map(_task, tasks, chunksize=1)
                walls[workers] = time.perf_counter() - t0
        print(
            f"  measured: 1 worker process {walls[1]:.1f} s, 2 worker processes {walls[2]:.1f} s "
            f"({walls[1] / walls[2]:.2f}x on this {mp.cpu_count()}-core machine)"
        )


if __name__ == "__main__":
    main()
