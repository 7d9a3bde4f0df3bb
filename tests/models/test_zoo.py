"""One torchvision model per family, random weights, tiny inputs: each is tuned and ablated
at its default layers, or refused with an OriselError that says why; never a traceback.
(The whole zoo at larger inputs, with invariance and timings: bench/bench_zoo.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import orisel
from orisel.kernel.errors import OriselError

# (model, input pixels, the refusal expected, or None where every step must run)
FAMILIES = [
    ("resnet18", 32, None),
    ("vgg11", 32, None),
    ("alexnet", 32, "does not run on images of shape"),
    ("mobilenet_v3_small", 32, None),
    ("efficientnet_b0", 32, None),
    ("googlenet", 32, None),
    ("densenet121", 32, None),
    ("squeezenet1_1", 32, None),
    ("shufflenet_v2_x0_5", 32, None),
    ("mnasnet0_5", 32, None),
    ("regnet_x_400mf", 32, None),
    ("convnext_tiny", 32, None),
    ("vit_b_32", 32, None),
    ("inception_v3", 32, "does not run on images of shape"),
    ("maxvit_t", 32, "cannot be built for images of 32 px"),
    ("swin_t", 32, None),
]


@pytest.mark.parametrize(("name", "size", "refusal"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_each_family_runs_or_is_refused_clearly(name: str, size: int, refusal: str | None) -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, size, size, 3), dtype=np.uint8)
    labels = np.arange(8) % 4

    def steps() -> None:
        net = orisel.load(model=name, input_size=size, device="cpu")
        layers = net.default_layers()
        assert len(layers) >= 3  # a family's layers, not one stray module
        scores = orisel.tune(
            net,
            layers=(layers[0], layers[-1]),
            stimuli=("gratings",),
            permutations=0,
            n_orientations=4,
            n_phases=1,
            n_frequencies=1,
        )
        curves = orisel.ablate(
            net,
            scores,
            images,
            labels,
            layers=(layers[-1],),
            orders=("gosi",),
            seeds=(),
            fractions=(0.0, 1.0),
            random_halves=0,
            matched_controls=False,
        )["curves"]
        assert np.isfinite(curves["loss_increase_mean"]).all()

    if refusal is None:
        steps()
    else:
        with pytest.raises(OriselError, match=refusal):
            steps()
