"""The tuning stimuli an extraction presents (the extraction itself: `activations`)."""

from __future__ import annotations

from typing import Protocol

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
