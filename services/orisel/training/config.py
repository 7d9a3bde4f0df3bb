"""Training configuration: the paper's recipe as defaults, every field overridable."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orisel.data.prepare import SplitSpec
from orisel.kernel.names import MAX_LAYERS, MAX_SEED, Fill, LayerName

# Fields that may differ when a run is resumed; everything else must match the stored run.
RESUMABLE_CHANGES = frozenset({"epochs", "device"})


# The selectivity term's bounds: gOSI is in [0, 1], so alpha is the most cross-entropy the
# term may trade; beyond 100 the term alone would drive training.
MAX_SELECT_REG = 100.0
# The term's grating batch: every one of tune's 12 orientations at a sub-grid of its
# frequencies and phases, small enough that a pass every 10 steps costs under 10% of
# training (docs/benchmarks.md). One phase: a full-field grating's spatial-mean response
# hardly depends on its phase, so a second phase doubles the cost for little.
SELECT_FREQUENCIES = 3
SELECT_PHASES = 1


class TrainConfig(BaseModel):
    """Everything that determines a training run (with the data's sha256 and the code)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(
        "cnn7",
        max_length=64,
        pattern=r"^[A-Za-z0-9_.]+$",
        description="cnn7 or a torchvision classification model",
    )
    epochs: int = Field(200, ge=1, le=10_000, description="epochs to train")
    batch_size: int = Field(32, ge=1, le=65_536, description="training batch size")
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(
        1e-3, gt=0.0, le=10.0, description="learning rate (constant, as in the paper)"
    )
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum")
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    seed: int = Field(
        0, ge=0, le=MAX_SEED, description="model initialisation, shuffling and augmentation"
    )
    data: SplitSpec = SplitSpec()
    augment: bool = Field(True, description="random shifts and horizontal flips")
    max_shift: float = Field(0.1, ge=0.0, le=0.5, description="largest shift, fraction of size")
    hflip: bool = True
    fill: Fill = Field("nearest", description="how shifted-in pixels are filled")
    early_checkpoint_every: float = Field(
        0.25, gt=0.0, le=1.0, description="epoch fraction between early checkpoints"
    )
    early_checkpoint_until: float = Field(
        2.0, ge=0.0, le=10_000, description="epochs with early checkpoints"
    )
    checkpoint_every_epochs: int = Field(
        1, ge=1, le=10_000, description="epochs between later checkpoints"
    )
    select_by: Literal["val_loss", "val_accuracy"] = Field(
        "val_loss", description="which validation metric picks the kept (best) checkpoint"
    )
    eval_batch_size: int = Field(256, ge=1, le=65_536, description="evaluation batch size")
    device: str = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$")
    amp: Literal["off", "bf16", "fp16"] = Field("off", description="mixed precision (CUDA)")
    tf32: bool = Field(
        False,
        description="TensorFloat-32 convolutions and matrix products on CUDA (Ampere and "
        "later): faster, about 1e-3 relative error; off keeps float32 exact",
    )
    compile: Literal["off", "on", "cudagraphs"] = Field(
        "off",
        description="torch.compile the training forward pass; cudagraphs also replays it as "
        "CUDA graphs (CUDA only)",
    )
    channels_last: bool = False
    deterministic: bool = Field(False, description="deterministic kernels (bit-exact resume)")
    select_reg: float = Field(
        0.0,
        ge=-MAX_SELECT_REG,
        le=MAX_SELECT_REG,
        allow_inf_nan=False,
        description="alpha of the selectivity term: loss = cross-entropy - alpha x mean gOSI "
        "of select_layers (alpha < 0 lowers selectivity; 0: no term)",
    )
    select_layers: tuple[LayerName, ...] = Field(
        ("layer1", "layer2", "layer3"),
        min_length=1,
        max_length=MAX_LAYERS,
        description="layers whose mean gOSI the term moves (cnn7's lower half by default)",
    )
    select_every: int = Field(
        10, ge=1, le=100_000, description="steps between the term's grating passes"
    )
    select_frequencies: int = Field(
        SELECT_FREQUENCIES,
        ge=1,
        le=9,
        description="spatial frequencies of tune's 9 in the term's grating batch, evenly spaced",
    )
    select_phases: int = Field(
        SELECT_PHASES, ge=1, le=4, description="phases of tune's 4 in the term's grating batch"
    )

    @model_validator(mode="after")
    def _cuda_only_options(self) -> TrainConfig:
        if self.amp == "fp16" and self.device == "cpu":
            raise ValueError("amp=fp16 needs a CUDA device; use bf16 or off on the CPU")
        if self.compile == "cudagraphs" and self.device == "cpu":
            raise ValueError("compile=cudagraphs needs a CUDA device; use on or off on the CPU")
        return self


def checkpoint_steps(cfg: TrainConfig, steps_per_epoch: int) -> list[int]:
    """Global steps at which a checkpoint is written, initial network (step 0) included."""
    steps = {0, cfg.epochs * steps_per_epoch}
    k = 1
    while k * cfg.early_checkpoint_every < min(cfg.early_checkpoint_until, cfg.epochs) - 1e-9:
        steps.add(round(k * cfg.early_checkpoint_every * steps_per_epoch))
        k += 1
    steps.update(e * steps_per_epoch for e in range(0, cfg.epochs + 1, cfg.checkpoint_every_epochs))
    return sorted(s for s in steps if s <= cfg.epochs * steps_per_epoch)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Batches per epoch; the last one may be short, as in Keras."""
    return math.ceil(n_train / batch_size)


def run_name(model: str, label_corruption: float, seed: int, select_reg: float = 0.0) -> str:
    """A network's run name (its folder, its key prefix in the store): the one format the
    command line, the training service, the pipeline and the report share; a network trained
    with the selectivity term carries its alpha."""
    alpha = f"-a{select_reg:g}" if select_reg else ""
    return f"{model}-c{label_corruption:g}-s{seed}{alpha}"
