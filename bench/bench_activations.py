"""Scoring again from stored activations, side by side with scoring in one step (issue 28).

A second scoring of the same network under other statistics settings (permutations,
threshold, alpha) either runs every forward pass again (`score_units`: the one-step path) or
reads the stored activations (`score_activations`). Both are timed in one run, for cnn7
(32 px) and VGG16 at a small input size, with the same labelled test images for class
selectivity; the tables must be identical and the second path must run no module.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch

from orisel.extraction.activations import measure
from orisel.extraction.network import Network
from orisel.models import CNN7
from orisel.scoring.spec import TuneSpec
from orisel.scoring.tune import score_activations, score_units


def _network(name: str, size: int) -> Network:
    torch.manual_seed(0)
    if name == "cnn7":
        return Network.from_module(CNN7().eval(), size, name=name)
    import torchvision.models as tvm

    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    return Network.from_module(tvm.vgg16().eval(), size, mean=mean, std=std, name=name)


def _modules_run(fn: Any) -> tuple[float, int, Any]:
    calls = [0]

    def count(*_: object) -> None:
        calls[0] += 1

    handle = torch.nn.modules.module.register_module_forward_hook(count)
    t0 = time.perf_counter()
    try:
        out = fn()
    finally:
        handle.remove()
    return time.perf_counter() - t0, calls[0], out


def bench(name: str, size: int, images: int, permutations: int) -> dict[str, Any]:
    net = _network(name, size)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(images, size, size, 3), dtype=np.uint8)
    y = np.arange(images) % 10
    first = TuneSpec(permutations=permutations, batch_size=64)
    second = TuneSpec(permutations=permutations, threshold=0.5, alpha=0.01, batch_size=64)
    t_extract, _, acts = _modules_run(lambda: measure(net, first, x, y, 10))
    t_one, calls_one, one = _modules_run(lambda: score_units(net, second, x, y, 10))
    t_stored, calls_stored, stored = _modules_run(lambda: score_activations(acts, second))
    for col, v in one.columns.items():
        np.testing.assert_array_equal(v, stored.columns[col], err_msg=col)
    assert calls_stored == 0
    return {
        "network": name,
        "input_size": size,
        "layers": len(acts.layers),
        "test_images": images,
        "permutations": permutations,
        "extraction_s": round(t_extract, 2),
        "second_scoring_one_step_s": round(t_one, 2),
        "second_scoring_from_activations_s": round(t_stored, 2),
        "speedup": round(t_one / t_stored, 2),
        "module_calls_one_step": calls_one,
        "module_calls_from_activations": calls_stored,
        "identical": True,
        "units": sum(r.shape[1] for r in acts.stimuli["gratings"].values()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--images", type=int, default=200)
    p.add_argument("--vgg-size", type=int, default=32)
    p.add_argument("--permutations", type=int, default=50)
    a = p.parse_args()
    torch.set_num_threads(2)
    rows = [
        bench("cnn7", 32, a.images, a.permutations),
        bench("vgg16", a.vgg_size, a.images, a.permutations),
    ]
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
