"""Collect an analysis folder into the one JSON-able dict of numbers the paper report uses:

    <root>/<variant>/manifest.json                   the training run's manifest
    <root>/<variant>/best/{tune,ablate,invariance}/  analyses of the kept checkpoint (or
                                                     last/, of networks analysed as trained)
    <root>/<variant>/trajectory/                     `orisel trajectory` of the run
                                                     (or one `orisel tune` per checkpoint,
                                                     in <root>/<variant>/trajectory/<name>/)

Which network a folder holds is read from its manifest (the run's own config: model, seed,
label corruption), never from the folder's name; the report names it as the pipeline and
the training service name a population's networks (`cnn7-c<corruption>-s<seed>`)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

from orisel.core.errors import InvalidArgument, NotFound
from orisel.core.tables import read_table
from orisel.training.config import run_name


def _json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


TRAJECTORY_KEYS = ("mean_gosi", "fraction_above_threshold", "null_fraction_above_threshold")


def _tune_numbers(t: dict[str, Any], keep: tuple[str, ...] | None = None) -> dict[str, Any]:
    """The report's numbers of one tuning; `keep` limits each layer's entries to those keys."""
    out: dict[str, Any] = {
        "epoch": t["network"].get("epoch"),
        "metrics": t["network"].get("metrics"),
        "checkpoint_sha256": t["network"].get("checkpoint_sha256"),
        "threshold": t["spec"]["threshold"],
        "permutations": t["spec"]["permutations"],
    }
    for kind in ("gratings", "bars"):
        if kind in t["summary"]:
            layers = t["summary"][kind]["layers"]
            out[kind] = {n: {k: s[k] for k in keep} for n, s in layers.items()} if keep else layers
    if "class_selectivity" in t["summary"]:
        out["csi"] = {k: v["mean_csi"] for k, v in t["summary"]["class_selectivity"].items()}
    return out


def _curves(path: Path) -> list[dict[str, Any]]:
    keep = ("layer", "order", "seed", "fraction", "accuracy", "loss_increase_mean")
    with path.open() as f:
        return [
            {k: (r[k] if k in ("layer", "order") else float(r[k])) for k in keep}
            for r in csv.DictReader(f)
        ]


def _trajectory_table(folder: Path) -> list[dict[str, Any]]:
    """`orisel trajectory`'s table as the report's per-checkpoint entries."""
    summary = _json(folder / "summary.json")
    if summary is None or "table" not in summary:
        return []
    table = read_table(folder / summary["table"])
    by_step: dict[int, dict[str, Any]] = {}
    for i in range(len(table["step"])):
        step = int(table["step"][i])
        entry = by_step.setdefault(
            step,
            {
                "epoch": float(table["epoch"][i]),
                "metrics": {
                    split: {"accuracy": float(table[f"{split}_accuracy"][i])}
                    for split in ("train", "validation", "test")
                    if f"{split}_accuracy" in table
                    and table[f"{split}_accuracy"][i] == table[f"{split}_accuracy"][i]  # not NaN
                },
                "threshold": summary["spec"]["threshold"],
                "permutations": summary["spec"]["permutations"],
            },
        )
        layers = entry.setdefault(str(table["stimulus"][i]), {})
        layers[str(table["layer"][i])] = {k: float(table[k][i]) for k in TRAJECTORY_KEYS}
    return list(by_step.values())


def collect(root: Path) -> dict[str, Any]:
    """Every number the report needs, from an analysis folder (layout above)."""
    variants: dict[str, Any] = {}
    folders: dict[str, Path] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        manifest = _json(folder / "manifest.json")
        if manifest is None or manifest["config"]["model"] != "cnn7":
            continue
        config = manifest["config"]
        corruption, seed = float(config["data"]["label_corruption"]), int(config["seed"])
        name = run_name("cnn7", corruption, seed)
        if name in folders:
            raise InvalidArgument(
                str(root), f"one analysis per network ({name} is in both)", [folders[name], folder]
            )
        folders[name] = folder
        last = manifest["history"][-1]
        v: dict[str, Any] = {
            "corruption": corruption,
            "seed": seed,
            "epochs_trained": last["epoch"],
            "epochs_configured": manifest["config"]["epochs"],
            "best": {"epoch": manifest["best"]["epoch"], "metrics": manifest["best"]["metrics"]},
            "manifest_sha256": hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest(),
            "data_sha256": manifest["data"]["sha256"],
            "code_version": manifest["environment"].get("code_version"),
            "device": manifest["environment"].get("device_name"),
            "history": [
                {"epoch": h["epoch"], **{s: h["metrics"][s] for s in ("train", "test")}}
                for h in manifest["history"]
                if h["metrics"].get("train")
            ],
        }
        analysed = (
            "best" if (folder / "best").is_dir() or not (folder / "last").is_dir() else "last"
        )
        v["analysed"] = analysed
        tune = _json(folder / analysed / "tune" / "summary.json")
        if tune:
            v["tune"] = _tune_numbers(tune)
            v["tune"]["command"] = tune.get("command")
        ablate = _json(folder / analysed / "ablate" / "summary.json")
        if ablate:
            v["ablate"] = {
                "splits": ablate["splits"],
                "test_images": ablate.get("test_images"),
                "curves": _curves(folder / analysed / "ablate" / ablate["table"]),
                "command": ablate.get("command"),
            }
        inv = _json(folder / analysed / "invariance" / "summary.json")
        if inv:
            v["invariance"] = {
                "spec": inv["spec"],
                "summary": inv["summary"],
                "images": inv.get("images"),
                "command": inv.get("command"),
            }
        trajectory = _trajectory_table(folder / "trajectory")
        for t_dir in sorted(p for p in (folder / "trajectory").glob("*") if p.is_dir()):
            t = _json(t_dir / "summary.json")
            if t:
                trajectory.append(_tune_numbers(t, TRAJECTORY_KEYS))
        if trajectory:
            v["trajectory"] = sorted(trajectory, key=lambda t: t["epoch"])
        variants[name] = v
    if not variants:
        raise NotFound(f"no analysed cnn7 networks (<folder>/manifest.json) in {root}")
    return {"variants": variants}
