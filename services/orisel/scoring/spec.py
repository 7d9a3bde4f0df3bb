"""How units are scored: the tuning spec and the scoring job, light enough for front ends
(no torch)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from orisel.extraction.spec import ExtractSpec, Inputs
from orisel.kernel.names import MAX_SEED
from orisel.kernel.tables import TableFormat
from orisel.store.backend import ArtifactRef

# The Celery task names of this capability's jobs: the servicer submits them, tasks.py
# registers them.
SCORE_TASK = "orisel.scoring.score"


class TuneSpec(ExtractSpec):
    """Everything that determines a tuning analysis besides the network and the data: the
    stimuli and layers (as for extraction), then how units are scored."""

    permutations: int = Field(1000, ge=0, le=100_000, description="shuffles for the gOSI p-value")
    threshold: float = Field(
        0.33, ge=0.0, le=1.0, description="gOSI above which a unit is selective"
    )
    alpha: float = Field(
        0.05, gt=0.0, le=1.0, description="p-value below which a unit is selective"
    )
    seed: int = Field(0, ge=0, le=MAX_SEED)
    format: TableFormat = "csv"


class StoredActivations(BaseModel):
    """Activations an extraction stored: its summary.json and the responses.npz beside it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    summary: ArtifactRef
    responses: ArtifactRef


class ScoreJob(Inputs):
    """Tune units on stored `activations`, or on those of the network and images named (an
    extraction job the scoring finds or starts: scoring.extraction)."""

    TASK = SCORE_TASK
    SPARSE = Inputs.SPARSE | {"activations"}

    activations: StoredActivations | None = None
    tune: TuneSpec = TuneSpec()

    def needs_network(self) -> bool:
        return self.activations is None

    def sparse(self) -> frozenset[str]:
        # A job on stored activations reads no images: its rows never held test_subset.
        return self.SPARSE | ({"test_subset"} if self.activations else set())
