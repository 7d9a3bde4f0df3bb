"""The Python API: measure any network in a few lines, get tables back.

    import torchvision, orisel
    net = orisel.Network.from_module(torchvision.models.resnet18(), input_size=64)
    units = orisel.tune(net, permutations=100)          # one row per unit and stimulus
    units.groupby("layer").gosi.mean()

Every function returns pandas DataFrames (columns in docs/tables.md) and, given `out`, also
writes exactly the files the command line writes there (an existing `out` is replaced only
if it is an earlier orisel output and `force=True`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from orisel.core.atomic import check_output
from orisel.core.errors import InvalidArgument

if TYPE_CHECKING:
    import pandas as pd

    from orisel.extraction.network import Network

__all__ = [
    "Network",
    "ablate",
    "cifar10",
    "class_selectivity",
    "invariance",
    "load",
    "responses",
    "trajectory",
    "tune",
]


def _frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame({k: np.asarray(v) for k, v in columns.items()})


def load(
    checkpoint: str | Path | None = None,
    model: str | None = None,
    weights: str | None = None,
    input_size: int | None = None,
    device: str = "auto",
) -> Network:
    """An orisel checkpoint (`runs/x/best.pt`), or a torchvision model by name (`weights`:
    None for random, a torchvision weights name from the local cache, or a file)."""
    from orisel.extraction.network import load_network

    path = Path(checkpoint) if checkpoint is not None else None
    return load_network(path, model, weights, device, False, input_size)


def cifar10(source: str | Path, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 32, 32, 3) uint8, labels (N,)) of a CIFAR-10 archive or folder."""
    from orisel.data.sources import load_cifar10

    ds = load_cifar10(Path(source))
    if split == "test":
        return ds.test_images, ds.test_labels
    if split == "train":
        return ds.train_images, ds.train_labels
    raise InvalidArgument("split", "test or train", split)


def tune(
    net: Network,
    *,
    images: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    out: str | Path | None = None,
    force: bool = False,
    **spec: Any,
) -> pd.DataFrame:
    """Orientation tuning of every unit (gratings and bars; any TuneSpec field as a keyword:
    `layers`, `stimuli`, `permutations`, `reduction`, ...). With `images` and `labels` the
    table also has each unit's class selectivity (`csi`)."""
    from orisel.report.outputs import tune as tune_to
    from orisel.scoring.spec import TuneSpec
    from orisel.scoring.tune import score_units

    tune_spec = TuneSpec.model_validate(spec)
    n_classes = int(labels.max()) + 1 if labels is not None else 10
    if out is not None:
        check_output(Path(out), force=force)
        tune_to(net, tune_spec, Path(out), images, labels, n_classes)
    return _frame(score_units(net, tune_spec, images, labels, n_classes).columns)


def responses(
    net: Network, stimulus: str = "gratings", *, layers: tuple[str, ...] | None = None, **grid: Any
) -> dict[str, np.ndarray]:
    """Each layer's (stimuli, units) responses to a stimulus set ("gratings" or "bars"),
    stimuli in the order of `orisel.stimuli(...)`; `grid`: n_orientations, n_phases, ..."""
    from orisel.extraction.extract import make_stimuli
    from orisel.extraction.spec import ExtractSpec

    spec = ExtractSpec.model_validate({**grid, "stimuli": (stimulus,), "layers": layers})
    stim = make_stimuli(stimulus, net.info.image_size, spec)
    chosen = spec.layers or net.default_layers()
    return net.stimulus_responses(stim, chosen, spec.reduction, spec.batch_size)


def class_selectivity(
    net: Network, images: np.ndarray, labels: np.ndarray, *, layers: tuple[str, ...] | None = None
) -> pd.DataFrame:
    """Class selectivity (Morcos et al.) of every unit on labelled images: layer, unit, csi."""
    from orisel.scoring.tune import class_selectivity_by_layer

    chosen = layers or net.default_layers()
    by_layer = class_selectivity_by_layer(net, images, labels, int(labels.max()) + 1, chosen, 256)
    return _frame(
        {
            "layer": np.concatenate([[n] * len(v) for n, v in by_layer.items()]),
            "unit": np.concatenate([np.arange(len(v)) for v in by_layer.values()]),
            "csi": np.concatenate(list(by_layer.values())),
        }
    )


def _scores_dir(scores: pd.DataFrame | str | Path, tmp: Path) -> Path:
    if isinstance(scores, (str, Path)):
        return Path(scores)
    from orisel.core.tables import write_table

    folder = tmp / "scores"
    folder.mkdir()
    write_table({c: scores[c].to_numpy() for c in scores.columns}, folder / "units", "csv")
    return folder


def _tables(folder: Path) -> dict[str, pd.DataFrame]:
    from orisel.core.tables import read_table

    return {p.stem: _frame(read_table(p)) for p in sorted(folder.glob("*.csv"))}


def ablate(
    net: Network,
    scores: pd.DataFrame | str | Path,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    out: str | Path | None = None,
    force: bool = False,
    **spec: Any,
) -> dict[str, pd.DataFrame]:
    """Cumulative ablation curves and the top/bottom-50% split, by the units' scores (a table
    from `tune` or a tune output folder); any AblateSpec field as a keyword. Returns
    {"curves": ..., "splits": ...}."""
    from orisel.ablation.scores import UnitScores
    from orisel.ablation.spec import AblateSpec
    from orisel.report.outputs import ablate as ablate_to

    ablate_spec = AblateSpec.model_validate(spec)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(out) if out is not None else Path(tmp) / "ablate"
        if out is not None:
            check_output(folder, force=force)
        units = UnitScores(_scores_dir(scores, Path(tmp)), ablate_spec.stimulus)
        result = ablate_to(net, ablate_spec, units, images, labels, folder)
        import pandas as pd

        splits = pd.json_normalize(result.model_dump(exclude_none=True)["splits"], sep="_")
        return {**_tables(folder), "splits": splits}


def invariance(
    net: Network,
    scores: pd.DataFrame | str | Path,
    images: np.ndarray,
    labels: np.ndarray | None = None,
    *,
    out: str | Path | None = None,
    force: bool = False,
    **spec: Any,
) -> dict[str, pd.DataFrame]:
    """Shift-invariance of higher layers, intact and with the most/least selective lower-layer
    units ablated (against random ablations of the same size and, given `labels`, of the same
    damage); any InvarianceSpec field."""
    from orisel.ablation.scores import UnitScores
    from orisel.ablation.spec import InvarianceSpec
    from orisel.report.outputs import invariance as invariance_to

    inv_spec = InvarianceSpec.model_validate(spec)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(out) if out is not None else Path(tmp) / "invariance"
        if out is not None:
            check_output(folder, force=force)
        units = UnitScores(_scores_dir(scores, Path(tmp)), inv_spec.stimulus)
        invariance_to(net, inv_spec, units, images, folder, labels=labels)
        return _tables(folder)


def trajectory(
    run: str | Path,
    *,
    out: str | Path | None = None,
    force: bool = False,
    device: str = "auto",
    epochs: Sequence[float] | None = None,
    **spec: Any,
) -> pd.DataFrame:
    """The checkpoints of a training run tuned (every one, or those at `epochs`): one row per
    (checkpoint, stimulus, layer) with its selectivity summary and the run's accuracies."""
    from orisel.report.outputs import trajectory as trajectory_to
    from orisel.scoring.spec import TuneSpec
    from orisel.scoring.trajectory import trajectory_rows

    tune_spec = TuneSpec.model_validate(spec)
    if out is not None:
        check_output(Path(out), [Path(run)], force)
        trajectory_to(Path(run), tune_spec, Path(out), device, epochs=epochs)
        from orisel.core.tables import read_table

        return _frame(read_table(Path(out) / f"trajectory.{tune_spec.format}"))
    import pandas as pd

    return pd.DataFrame(trajectory_rows(Path(run), tune_spec, device, epochs))


def __getattr__(name: str) -> Any:
    if name == "Network":
        from orisel.extraction.network import Network

        return Network
    raise AttributeError(name)
