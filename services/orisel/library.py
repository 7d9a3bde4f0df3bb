"""The Python API: measure any network in a few lines, get tables back.

    import torchvision, orisel
    net = orisel.Network.from_module(torchvision.models.resnet18(), input_size=64)
    units = orisel.tune(net, permutations=100)          # one row per unit and stimulus
    units.groupby("layer").gosi.mean()

`tune`, `class_selectivity`, `ablate`, `invariance` and `trajectory` return pandas
DataFrames (columns in docs/tables.md); `tune`, `ablate`, `invariance` and `trajectory`,
given `out`, also write exactly the files the command line writes there (an existing `out`
is replaced only if it is an earlier orisel output and `force=True`). Long calls draw
progress bars on stderr unless `progress=False`.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from orisel.kernel import progress as bars
from orisel.kernel.atomic import check_output
from orisel.kernel.errors import InvalidArgument

if TYPE_CHECKING:
    import pandas as pd

    from orisel.ablation.scores import UnitScores
    from orisel.extraction.network import Network

__all__ = [
    "Network",
    "ablate",
    "cifar10",
    "class_selectivity",
    "extract",
    "imagefolder",
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


def cifar10(
    source: str | Path, split: str = "test", *, cache_dir: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 32, 32, 3) uint8, labels (N,)) of a CIFAR-10 archive or folder, decoded
    once into the cache the command line shares (`cache_dir`, default $ORISEL_CACHE_DIR or
    ~/.cache/orisel) and read from there afterwards."""
    from orisel.data.sources import load_cifar10
    from orisel.runtime.settings import get_settings

    ds = load_cifar10(Path(source), Path(cache_dir) if cache_dir else get_settings().cache_dir)
    if split == "test":
        return ds.test_images, ds.test_labels
    if split == "train":
        return ds.train_images, ds.train_labels
    raise InvalidArgument("split", "test or train", split)


def imagefolder(
    source: str | Path,
    net: Network,
    *,
    class_map: Mapping[str, int] | Sequence[str] | str | Path | None = None,
    subset: int | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, size, size, 3) uint8 at the network's input size, labels (N,)) of an
    ImageFolder tree (`<root>/<class>/<image>`), each label the network output of its class:
    matched by `class_map` ({class: output index}, the network's class names in output
    order, or a file of either), else by the weights' class names, else by sorted folder
    order when the folder holds as many classes as the network has outputs; any other folder
    is refused. `subset`: a class-stratified sample of that many images."""
    from orisel.extraction.inputs import labelled_images

    with bars.shown(progress):
        got = labelled_images(net, Path(source), subset, class_map=class_map)
    return got.images, got.targets


def _classes(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels renumbered over the classes present, which class selectivity compares (a
    folder of three of ImageNet's classes has three class means, not 1000)."""
    present, compact = np.unique(np.asarray(labels), return_inverse=True)
    return compact.astype(np.int64), len(present)


def _check_targets(net: Network, labels: np.ndarray) -> None:
    """Labels must be the network's output indices, or accuracy scores the wrong outputs."""
    from orisel.extraction.inputs import output_count

    n = output_count(net)
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= n):
        raise InvalidArgument(
            "labels",
            f"the network's output index of each image's class, in [0, {n}) (orisel.imagefolder "
            "maps a folder's classes to outputs)",
            f"labels from {labels.min()} to {labels.max()}",
        )


def extract(
    net: Network,
    out: str | Path,
    *,
    images: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    force: bool = False,
    progress: bool = True,
    **spec: Any,
) -> dict[str, Any]:
    """Every forward pass `tune` needs, written to `out` (responses.npz and summary.json, as
    `orisel extract`; any ExtractSpec field as a keyword) for `tune(out, ...)` to score with
    any statistics settings; returns the summary (its `key` names the activations)."""
    from orisel.extraction.activations import extract as extract_to
    from orisel.extraction.spec import ExtractSpec

    extract_spec = ExtractSpec.model_validate(spec)
    classes, n_classes = _classes(labels) if labels is not None else (None, 10)
    check_output(Path(out), force=force)
    with bars.shown(progress):
        return extract_to(net, extract_spec, Path(out), None, images, classes, n_classes)


def tune(
    net: Network | str | Path,
    *,
    images: np.ndarray | None = None,
    labels: np.ndarray | None = None,
    out: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    **spec: Any,
) -> pd.DataFrame:
    """Orientation tuning of every unit (gratings and bars; any TuneSpec field as a keyword:
    `layers`, `stimuli`, `permutations`, `reduction`, ...). With `images` and `labels` the
    table also has each unit's class selectivity (`csi`, over the classes the labels hold).
    `net` may be the folder `extract` wrote: its units are scored with no forward pass (the
    same numbers), the extraction's settings the defaults."""
    from orisel.analyses import tune_activations
    from orisel.extraction.activations import measure, read
    from orisel.scoring.spec import TuneSpec
    from orisel.scoring.tune import score_activations

    with bars.shown(progress):
        if isinstance(net, str | Path):
            acts = read(Path(net))
            tune_spec = TuneSpec.model_validate(acts.settings() | spec)
        else:
            tune_spec = TuneSpec.model_validate(spec)
            classes, n_classes = _classes(labels) if labels is not None else (None, 10)
            acts = measure(net, tune_spec, images, classes, n_classes)
        if out is not None:
            check_output(Path(out), force=force)
            device = None if isinstance(net, str | Path) else net.device
            tuned = tune_activations(acts, tune_spec, Path(out), device=device)
            from orisel.kernel.tables import read_table

            return _frame(read_table(Path(out) / tuned.table))
        return _frame(score_activations(acts, tune_spec).columns)


def responses(
    net: Network,
    stimulus: str = "gratings",
    *,
    layers: tuple[str, ...] | None = None,
    progress: bool = True,
    **grid: Any,
) -> dict[str, np.ndarray]:
    """Each layer's (stimuli, units) responses to a stimulus set ("gratings" or "bars"), as
    arrays (not a table: stimuli x units per layer), stimuli in the order the stimulus set
    renders them; `grid`: n_orientations, n_phases, ..."""
    from orisel.extraction.extract import make_stimuli
    from orisel.extraction.spec import ExtractSpec

    spec = ExtractSpec.model_validate({**grid, "stimuli": (stimulus,), "layers": layers})
    stim = make_stimuli(stimulus, net.info.image_size, spec)
    chosen = spec.layers or net.default_layers()
    with bars.shown(progress):
        return net.stimulus_responses(stim, chosen, spec.reduction, spec.batch_size)


def class_selectivity(
    net: Network,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    layers: tuple[str, ...] | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Class selectivity (Morcos et al.) of every unit on labelled images, over the classes
    the labels hold: a table of layer, unit, csi."""
    from orisel.scoring.tune import class_selectivity_by_layer

    chosen = layers or net.default_layers()
    classes, n_classes = _classes(labels)
    with bars.shown(progress):
        by_layer = class_selectivity_by_layer(net, images, classes, n_classes, chosen, 256)
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
    from orisel.kernel.tables import write_table

    folder = tmp / "scores"
    folder.mkdir()
    write_table({c: scores[c].to_numpy() for c in scores.columns}, folder / "units", "csv")
    return folder


def _tables(folder: Path) -> dict[str, pd.DataFrame]:
    from orisel.kernel.tables import read_table

    return {p.stem: _frame(read_table(p)) for p in sorted(folder.glob("*.csv"))}


def _noted(notes: list[str]) -> dict[str, Any]:
    """Choices made for the network where the call left them open: logged and recorded."""
    import logging

    for note in notes:
        logging.getLogger("orisel").info("default %s", note)
    return {"notes": notes}


def _units(scores: pd.DataFrame | str | Path, tmp: Path, stimulus: str) -> UnitScores:
    from orisel.ablation.scores import UnitScores

    return UnitScores(_scores_dir(scores, tmp), stimulus)


def ablate(
    net: Network,
    scores: pd.DataFrame | str | Path,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    out: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
    **spec: Any,
) -> dict[str, pd.DataFrame]:
    """Cumulative ablation curves and the top/bottom-50% split, by the units' scores (a table
    from `tune` or a tune output folder); `labels`: each image's network output. Any
    AblateSpec field as a keyword; left out, `layers` are the network's default layers and
    `orders` those the scores hold (summary.json's `notes` says which). Returns
    {"curves": ..., "splits": ...}."""
    from orisel.ablation.defaults import ablate_spec
    from orisel.ablation.spec import AblateSpec
    from orisel.analyses import ablate as ablate_to

    _check_targets(net, labels)
    with tempfile.TemporaryDirectory() as tmp, bars.shown(progress):
        folder = Path(out) if out is not None else Path(tmp) / "ablate"
        if out is not None:
            check_output(folder, force=force)
        asked = AblateSpec.model_validate(spec)
        units = _units(scores, Path(tmp), asked.stimulus)
        chosen, notes = ablate_spec(net, units, asked, spec)
        result = ablate_to(net, chosen, units, images, labels, folder, _noted(notes))
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
    progress: bool = True,
    **spec: Any,
) -> dict[str, pd.DataFrame]:
    """Shift-invariance of higher layers, intact and with the most/least selective lower-layer
    units ablated (against random ablations of the same size and, given `labels` (each
    image's network output), of the same damage); any InvarianceSpec field. Left out,
    `ablate_layers` are the lowest 2/7 of the network's default layers and `layers` the
    highest 4/7 (cnn7: the paper's)."""
    from orisel.ablation.defaults import invariance_spec
    from orisel.ablation.spec import InvarianceSpec
    from orisel.analyses import invariance as invariance_to

    if labels is not None:
        _check_targets(net, labels)
    with tempfile.TemporaryDirectory() as tmp, bars.shown(progress):
        folder = Path(out) if out is not None else Path(tmp) / "invariance"
        if out is not None:
            check_output(folder, force=force)
        asked = InvarianceSpec.model_validate(spec)
        units = _units(scores, Path(tmp), asked.stimulus)
        chosen, notes = invariance_spec(net, units, asked, spec)
        invariance_to(net, chosen, units, images, folder, _noted(notes), labels)
        return _tables(folder)


def trajectory(
    run: str | Path,
    *,
    out: str | Path | None = None,
    force: bool = False,
    device: str = "auto",
    epochs: Sequence[float] | None = None,
    progress: bool = True,
    **spec: Any,
) -> pd.DataFrame:
    """The checkpoints of a training run tuned (every one, or those at `epochs`): one row per
    (checkpoint, stimulus, layer) with its selectivity summary and the run's accuracies."""
    from orisel.analyses import trajectory as trajectory_to
    from orisel.scoring.spec import TuneSpec
    from orisel.scoring.trajectory import trajectory_rows

    tune_spec = TuneSpec.model_validate(spec)
    with bars.shown(progress):
        if out is not None:
            check_output(Path(out), [Path(run)], force)
            trajectory_to(Path(run), tune_spec, Path(out), device, epochs=epochs)
            from orisel.kernel.tables import read_table

            return _frame(read_table(Path(out) / f"trajectory.{tune_spec.format}"))
        import pandas as pd

        return pd.DataFrame(trajectory_rows(Path(run), tune_spec, device, epochs))


def __getattr__(name: str) -> Any:
    if name == "Network":
        from orisel.extraction.network import Network

        return Network
    raise AttributeError(name)
