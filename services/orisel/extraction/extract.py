"""Activation extraction: a network's responses to the tuning stimuli, stored for reuse.

<out>/responses.npz   one (stimuli, units) float32 array per "<stimulus>/<layer>"
<out>/summary.json    spec, stimulus grids, array shapes, network and environment
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from orisel.core.atomic import atomic_dir
from orisel.core.provenance import environment
from orisel.extraction.network import Network
from orisel.extraction.provenance import network_record
from orisel.extraction.spec import ExtractSpec
from orisel.science.stimuli import GratingCentre, StimulusSet, bars, gratings


class StimulusGrid(Protocol):
    @property
    def n_orientations(self) -> int: ...
    @property
    def n_phases(self) -> int: ...
    @property
    def n_frequencies(self) -> int: ...
    @property
    def grating_centre(self) -> GratingCentre: ...


def make_stimuli(kind: str, size: int, spec: StimulusGrid) -> StimulusSet:
    """The stimulus set named `kind` at the spec's grid, for images of `size` pixels."""
    if kind == "gratings":
        return gratings(
            size, spec.n_orientations, spec.n_phases, spec.n_frequencies, spec.grating_centre
        )
    return bars(size, spec.n_orientations)


def extract(
    net: Network, spec: ExtractSpec, out: Path, provenance: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write every analysed layer's responses to every stimulus set to `out` (atomically)."""
    t0 = time.perf_counter()
    layers = spec.layers or net.default_layers()
    arrays: dict[str, np.ndarray] = {}
    grids: dict[str, Any] = {}
    for kind in spec.stimuli:
        stim = make_stimuli(kind, net.info.image_size, spec)
        grids[kind] = stim.describe()
        responses = net.stimulus_responses(
            stim, layers, spec.reduction, spec.batch_size, tokens=spec.tokens
        )
        arrays |= {f"{kind}/{layer}": r.astype(np.float32) for layer, r in responses.items()}
    result = {
        "spec": spec.model_dump(mode="json"),
        "network": network_record(net),
        "layers": list(layers),
        "stimuli": grids,
        "arrays": {k: list(v.shape) for k, v in arrays.items()},
        "environment": environment(net.device),
        "wall_s": round(time.perf_counter() - t0, 2),
        **(provenance or {}),
    }
    with atomic_dir(out) as tmp:
        np.savez(tmp / "responses.npz", **arrays)  # type: ignore[arg-type]
        (tmp / "summary.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result
