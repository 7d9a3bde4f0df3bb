"""Collect an analysis folder into the one JSON-able dict of numbers the paper report uses:

    <root>/<variant>/manifest.json                   the training run's manifest
    <root>/<variant>/best/{tune,ablate,invariance}/  analyses of the kept checkpoint (or
                                                     last/, of networks analysed as trained)
    <root>/<variant>/trajectory/                     `orisel trajectory` of the run
                                                     (or one `orisel tune` per checkpoint,
                                                     in <root>/<variant>/trajectory/<name>/)

Which network a folder holds is read from its manifest (the run's own config: model, seed,
label corruption, selectivity term), never from the folder's name; the report names it as
the pipeline and the training service name a population's networks
(`cnn7-c<corruption>-s<seed>`, `-a<alpha>` for one trained with the selectivity term, which
goes to the selectivity study, C7, and nowhere else)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

from orisel.ablation.results import AblateResult, InvarianceResult
from orisel.kernel.errors import InvalidArgument, NotFound
from orisel.kernel.records import read_result
from orisel.kernel.tables import read_table
from orisel.report.data import (
    Ablation,
    CurvePoint,
    Invariance,
    Network,
    ReportData,
    TrajectoryPoint,
    Tuning,
)
from orisel.scoring.results import LayerTrend, TrajectoryResult, TuneResult
from orisel.training.config import run_name


def _manifest(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _checkpoint(t: TuneResult) -> dict[str, Any]:
    """What a tuned checkpoint records wherever the report shows it: where it was in training,
    how selectivity was tested, and its class selectivity where it was scored on images."""
    csi = t.summary.class_selectivity
    return {
        "epoch": t.network.epoch,
        "metrics": t.network.metrics,
        "checkpoint_sha256": t.network.checkpoint_sha256,
        "threshold": t.spec.threshold,
        "permutations": t.spec.permutations,
        "csi": None if csi is None else {k: v.mean_csi for k, v in csi.items()},
    }


def _tuning(t: TuneResult) -> Tuning:
    """The report's numbers of the analysed checkpoint's tuning."""
    g, b = t.summary.gratings, t.summary.bars
    return Tuning(
        **_checkpoint(t),
        gratings=None if g is None else g.layers,
        bars=None if b is None else b.layers,
        command=t.command,
    )


def _trend(t: TuneResult) -> TrajectoryPoint:
    """A checkpoint's tuning as a point of its run's trajectory."""
    kinds = {
        k: {
            n: LayerTrend.model_validate(s.model_dump(include=set(LayerTrend.model_fields)))
            for n, s in v.layers.items()
        }
        for k, v in t.summary.by_stimulus().items()
    }
    return TrajectoryPoint(
        **_checkpoint(t), gratings=kinds.get("gratings", {}), bars=kinds.get("bars")
    )


def _curves(path: Path) -> list[CurvePoint]:
    keep = set(CurvePoint.model_fields)
    with path.open() as f:
        return [
            CurvePoint.model_validate({k: v for k, v in r.items() if k in keep})
            for r in csv.DictReader(f)
        ]


def _trajectory_table(folder: Path) -> list[TrajectoryPoint]:
    """`orisel trajectory`'s table as the report's per-checkpoint entries."""
    summary = read_result(folder / "summary.json", TrajectoryResult)
    if summary is None:
        return []
    table = read_table(folder / summary.table)
    by_step: dict[int, dict[str, Any]] = {}
    for i in range(len(table["step"])):
        step = int(table["step"][i])
        metrics = {
            split: {"accuracy": float(table[f"{split}_accuracy"][i])}
            for split in ("train", "validation", "test")
            if f"{split}_accuracy" in table
            and table[f"{split}_accuracy"][i] == table[f"{split}_accuracy"][i]  # not NaN
        }
        entry = by_step.setdefault(
            step,
            {
                "epoch": float(table["epoch"][i]),
                "metrics": metrics,
                "threshold": summary.spec.threshold,
                "permutations": summary.spec.permutations,
            },
        )
        layers = entry.setdefault(str(table["stimulus"][i]), {})
        layers[str(table["layer"][i])] = {k: float(table[k][i]) for k in LayerTrend.model_fields}
    return [TrajectoryPoint.model_validate(e) for e in by_step.values()]


def _network(folder: Path, manifest: dict[str, Any]) -> Network:
    config = manifest["config"]
    analysed = "best" if (folder / "best").is_dir() or not (folder / "last").is_dir() else "last"
    here = folder / analysed
    tune = read_result(here / "tune" / "summary.json", TuneResult)
    ablate = read_result(here / "ablate" / "summary.json", AblateResult)
    inv = read_result(here / "invariance" / "summary.json", InvarianceResult)
    trajectory = _trajectory_table(folder / "trajectory")
    for t_dir in sorted(p for p in (folder / "trajectory").glob("*") if p.is_dir()):
        point = read_result(t_dir / "summary.json", TuneResult)
        if point is not None:
            trajectory.append(_trend(point))
    trajectory.sort(key=lambda t: t.epoch if t.epoch is not None else -1.0)
    env = manifest["environment"]
    return Network.model_validate(
        {
            "corruption": float(config["data"]["label_corruption"]),
            "seed": int(config["seed"]),
            "epochs_trained": manifest["history"][-1]["epoch"],
            "epochs_configured": config["epochs"],
            "best": {"epoch": manifest["best"]["epoch"], "metrics": manifest["best"]["metrics"]},
            "manifest_sha256": hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest(),
            "data_sha256": manifest["data"]["sha256"],
            "code_version": manifest["environment"].get("code_version"),
            # A GPU's model where there is one, else the torch device (cpu, mps).
            "device": env.get("device_name") or env.get("device"),
            "history": [
                {"epoch": h["epoch"], **{s: h["metrics"][s] for s in ("train", "test")}}
                for h in manifest["history"]
                if h["metrics"].get("train")
            ],
            "analysed": analysed,
            "tune": _tuning(tune) if tune else None,
            "ablate": Ablation(
                splits=ablate.splits,
                test_images=ablate.test_images,
                curves=_curves(here / "ablate" / ablate.table),
                command=ablate.command,
            )
            if ablate
            else None,
            "invariance": Invariance(
                spec=inv.spec, summary=inv.summary, images=inv.images, command=inv.command
            )
            if inv
            else None,
            "trajectory": trajectory or None,
            "select_reg": config.get("select_reg") or None,
            "train_images": manifest["data"].get("train"),
        }
    )


def collect(root: Path) -> ReportData:
    """Every number the report needs, from an analysis folder (layout above)."""
    variants: dict[str, Network] = {}
    regularized: dict[str, Network] = {}
    folders: dict[str, Path] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        manifest = _manifest(folder / "manifest.json")
        if manifest is None or manifest["config"]["model"] != "cnn7":
            continue
        config = manifest["config"]
        alpha = float(config.get("select_reg", 0.0))
        corruption = float(config["data"]["label_corruption"])
        name = run_name("cnn7", corruption, int(config["seed"]), alpha)
        if name in folders:
            raise InvalidArgument(
                str(root), f"one analysis per network ({name} is in both)", [folders[name], folder]
            )
        folders[name] = folder
        (regularized if alpha else variants)[name] = _network(folder, manifest)
    if not variants:
        raise NotFound(f"no analysed cnn7 networks (<folder>/manifest.json) in {root}")
    return ReportData(variants=variants, regularized=regularized or None)
