"""Selectivity over training: the checkpoints of a run tuned, one row per (checkpoint,
stimulus, layer), beside the run's own accuracies at that checkpoint."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orisel.extraction.activations import kept
from orisel.extraction.network import load_network
from orisel.kernel import progress
from orisel.kernel.errors import NotFound
from orisel.models.checkpoint import read_manifest
from orisel.scoring.spec import TuneSpec
from orisel.scoring.tune import score_activations, score_units

SUMMARY_KEYS = (
    "fraction_selective",
    "fraction_above_threshold",
    "null_fraction_above_threshold",
    "mean_gosi",
    "median_gosi",
    "null_mean_gosi",
    "dead",
)


def trajectory_rows(
    run: Path,
    spec: TuneSpec,
    device: str = "auto",
    epochs: Sequence[float] | None = None,
    activations: Path | None = None,
) -> list[dict[str, Any]]:
    """Tune each checkpoint the run's manifest lists (those at `epochs` when given; a run
    keeps one per epoch, so a long one is sampled), in training order; with `activations`,
    from the checkpoints' activations kept there (measured once, by the first run)."""
    history = read_manifest(run).get("history", [])
    entries = [h for h in history if (run / h["file"]).is_file()]
    if epochs is not None:
        wanted = {round(float(e), 6) for e in epochs}
        entries = [h for h in entries if round(float(h["epoch"]), 6) in wanted]
    if not entries:
        raise NotFound(
            f"no checkpoints of {run} are on disk (its manifest lists {len(history)})"
            + (f" at epochs {sorted(epochs)}" if epochs is not None else "")
        )
    rows: list[dict[str, Any]] = []
    for entry in progress.bar(entries, "checkpoints", len(entries), "checkpoint"):
        net = load_network(run / entry["file"], device=device)
        tuned = (
            score_activations(kept(net, spec, activations), spec)
            if activations is not None
            else score_units(net, spec)
        )
        m = entry["metrics"]
        accuracy = {
            f"{split}_accuracy": (m.get(split) or {}).get("accuracy")
            for split in ("train", "validation", "test")
        }
        for kind, tuning in tuned.summary.by_stimulus(spec.stimuli).items():
            for layer, s in tuning.layers.items():
                rows.append(
                    {
                        "epoch": entry["epoch"],
                        "step": entry["step"],
                        "stimulus": kind,
                        "layer": layer,
                        **{k: getattr(s, k) for k in SUMMARY_KEYS},
                        **accuracy,
                    }
                )
    return rows
