"""Selectivity over training: every checkpoint of a run tuned, one row per (checkpoint,
stimulus, layer), beside the run's own accuracies at that checkpoint."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from orisel.core import progress
from orisel.core.atomic import atomic_dir
from orisel.core.errors import NotFound
from orisel.core.tables import write_table
from orisel.extraction.network import load_network
from orisel.scoring.spec import TuneSpec
from orisel.scoring.tune import score_units
from orisel.training.checkpoint import read_manifest

SUMMARY_KEYS = ("fraction_selective", "mean_gosi", "median_gosi", "null_mean_gosi", "dead")


def trajectory_rows(run: Path, spec: TuneSpec, device: str = "auto") -> list[dict[str, Any]]:
    """Tune each checkpoint the run's manifest lists, in training order."""
    history = read_manifest(run).get("history", [])
    entries = [h for h in history if (run / h["file"]).is_file()]
    if not entries:
        raise NotFound(f"no checkpoints of {run} are on disk (its manifest lists {len(history)})")
    rows: list[dict[str, Any]] = []
    for entry in progress.bar(entries, "checkpoints", len(entries), "checkpoint"):
        net = load_network(run / entry["file"], device=device)
        tuned = score_units(net, spec)
        m = entry["metrics"]
        accuracy = {f"{split}_accuracy": (m.get(split) or {}).get("accuracy") for split in
                    ("train", "validation", "test")}  # fmt: skip
        for kind in spec.stimuli:
            for layer, s in tuned.summary[kind]["layers"].items():
                rows.append(
                    {"epoch": entry["epoch"], "step": entry["step"], "stimulus": kind,
                     "layer": layer, **{k: s[k] for k in SUMMARY_KEYS}, **accuracy}
                )  # fmt: skip
    return rows


def trajectory(
    run: Path, spec: TuneSpec, out: Path, device: str = "auto",
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Write trajectory.csv, trajectory.png (selectivity per layer against epoch and test
    accuracy) and summary.json to `out`."""
    from orisel.report import plots

    t0 = time.perf_counter()
    with atomic_dir(out) as tmp:
        rows = trajectory_rows(run, spec, device)
        cols = {
            k: np.asarray([r[k] if r[k] is not None else np.nan for r in rows]) for k in rows[0]
        }
        table = write_table(cols, tmp / "trajectory", spec.format)
        plots.trajectory(rows, tmp / "trajectory.png")
        result = {
            "run": str(run),
            "spec": spec.model_dump(mode="json"),
            "table": table.name,
            "checkpoints": len({r["step"] for r in rows}),
            "wall_s": round(time.perf_counter() - t0, 2),
            **(provenance or {}),
        }
        (tmp / "summary.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result
