"""Each analysis run end to end into its output folder: the numbers come from its own package
(`scoring`, `ablation`); here they become a table, figures and a summary.json with the spec,
the network and its provenance, committed to the folder whole (never half-written). The
command line, the library and the service tasks all run analyses through these functions."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from orisel.ablation.invariance import invariance_rows, invariance_summary
from orisel.ablation.results import AblateResult, InvarianceResult
from orisel.ablation.scores import UnitScores
from orisel.ablation.sites import ablation_sites
from orisel.ablation.spec import AblateSpec, InvarianceSpec
from orisel.ablation.sweep import Swept, chunks, evaluation_tensors, run_chunks
from orisel.extraction.activations import Activations, measure
from orisel.extraction.inputs import output_count
from orisel.extraction.network import Network
from orisel.extraction.provenance import network_record
from orisel.kernel.atomic import atomic_dir
from orisel.kernel.provenance import environment
from orisel.kernel.tables import write_table
from orisel.report import plots
from orisel.scoring.results import TrajectoryResult, TuneResult
from orisel.scoring.spec import TuneSpec
from orisel.scoring.trajectory import trajectory_rows
from orisel.scoring.tune import score_activations


def tune(
    net: Network,
    spec: TuneSpec,
    out: Path,
    test_images: np.ndarray | None = None,
    test_labels: np.ndarray | None = None,
    n_classes: int = 10,
    provenance: dict[str, Any] | None = None,
) -> TuneResult:
    """Score every unit of the analysed layers; write the table, summary and plots to `out`."""
    t0 = time.perf_counter()
    acts = measure(net, spec, test_images, test_labels, n_classes)
    return tune_activations(acts, spec, out, provenance, net.device, t0)


def tune_activations(
    acts: Activations,
    spec: TuneSpec,
    out: Path,
    provenance: dict[str, Any] | None = None,
    device: torch.device | None = None,
    started: float | None = None,
) -> TuneResult:
    """`tune` from stored activations (`orisel tune --responses`, a scoring job): the same
    table and summary, no forward pass. The summary names the activations scored and where
    their forward passes ran."""
    t0 = time.perf_counter() if started is None else started
    with atomic_dir(out) as tmp:
        tuned = score_activations(acts, spec)
        for kind, stim in tuned.stimuli.items():
            plots.tuning_grid(tuned.scored[kind], kind, tmp / f"tuning_{kind}.png")
            plots.stimulus_sheet(stim, tmp / f"stimuli_{kind}.png")
        plots.histograms(
            tuned.summary.by_stimulus(spec.stimuli), spec.threshold, tmp / "gosi_histograms.png"
        )
        table = write_table(tuned.columns, tmp / "units", spec.format)
        result = TuneResult(
            spec=spec,
            network=acts.network,
            layers=list(tuned.layers),
            summary=tuned.summary,
            table=table.name,
            environment=environment(device or torch.device("cpu")),
            activations={"key": acts.key, "environment": acts.environment},
            wall_s=round(time.perf_counter() - t0, 2),
            **(provenance or {}),
        )
        (tmp / "summary.json").write_text(result.to_json())
    return result


def trajectory(
    run: Path,
    spec: TuneSpec,
    out: Path,
    device: str = "auto",
    provenance: dict[str, Any] | None = None,
    epochs: Sequence[float] | None = None,
    activations: Path | None = None,
) -> TrajectoryResult:
    """Write trajectory.csv, trajectory.png (selectivity per layer against epoch and test
    accuracy) and summary.json to `out`."""
    t0 = time.perf_counter()
    with atomic_dir(out) as tmp:
        rows = trajectory_rows(run, spec, device, epochs, activations)
        cols = {
            k: np.asarray([r[k] if r[k] is not None else np.nan for r in rows]) for k in rows[0]
        }
        table = write_table(cols, tmp / "trajectory", spec.format)
        plots.trajectory(rows, tmp / "trajectory.png")
        result = TrajectoryResult(
            run=str(run),
            spec=spec,
            epochs=None if epochs is None else sorted(float(e) for e in epochs),
            table=table.name,
            checkpoints=len({r["step"] for r in rows}),
            wall_s=round(time.perf_counter() - t0, 2),
            **(provenance or {}),
        )
        (tmp / "summary.json").write_text(result.to_json())
    return result


def write_ablation(
    out: Path, spec: AblateSpec, swept: Swept, record: dict[str, Any], outputs: int
) -> AblateResult:
    """The curves table, plots and summary.json of a sweep (with `record`: its network,
    environment and provenance; `outputs`: the network's, chance's denominator), committed
    to `out` whole."""
    curves, splits = swept.curves, swept.splits
    with atomic_dir(out) as tmp:
        cols = {k: np.asarray([row[k] for row in curves]) for k in curves[0]}
        table = write_table(cols, tmp / "curves", spec.format)
        for layer in spec.layers:
            plots.ablation_curves(cols, layer, "accuracy", tmp / f"curves_{layer}.png", outputs)
        for by in spec.orders:
            rows = [v for v in splits if v.by == by]
            series = {
                "top50": (
                    np.array([r.top50.loss_increase_mean for r in rows]),
                    np.array([r.top50.loss_increase_sem for r in rows]),
                ),
                "bottom50": (
                    np.array([r.bottom50.loss_increase_mean for r in rows]),
                    np.array([r.bottom50.loss_increase_sem for r in rows]),
                ),
            }
            ylabel = f"cross-entropy increase (nats, ± SEM)\nunits split by {by}"
            plots.grouped_bars([r.layer for r in rows], series, ylabel, tmp / f"split_{by}.png")
        result = AblateResult(
            spec=spec, splits=splits, table=table.name, points=swept.points or None, **record
        )
        (tmp / "summary.json").write_text(result.to_json())
    return result


def ablate(
    net: Network,
    spec: AblateSpec,
    scores: UnitScores,
    images: np.ndarray,
    labels: np.ndarray,
    out: Path,
    provenance: dict[str, Any] | None = None,
) -> AblateResult:
    """Cumulative curves (each index descending and ascending, and random) and the median split."""
    t0 = time.perf_counter()
    x, y = evaluation_tensors(net, images, labels)
    swept = run_chunks(net, spec, scores, chunks(spec), x, y)
    record = {
        "network": network_record(net),
        "test_images": len(labels),
        "environment": environment(net.device),
        "wall_s": round(time.perf_counter() - t0, 2),
        **(provenance or {}),
    }
    return write_ablation(out, spec, swept, record, output_count(net))


def invariance(
    net: Network,
    spec: InvarianceSpec,
    scores: UnitScores,
    images: np.ndarray,
    out: Path,
    provenance: dict[str, Any] | None = None,
    labels: np.ndarray | None = None,
) -> InvarianceResult:
    """Shift-invariance with and without ablation (`invariance_rows`): the table, one bar
    chart per metric and summary.json, committed to `out` whole."""
    t0 = time.perf_counter()
    k = spec.shift
    rows = invariance_rows(net, spec, scores, images, labels)
    with atomic_dir(out) as tmp:
        cols = {key: np.asarray([r[key] for r in rows]) for key in rows[0]}
        table = write_table(cols, tmp / "invariance", spec.format)
        summary = invariance_summary(cols)
        groups = [f"{a}:{c}" for a, c in summary]
        for metric in ("consistency", "correlation", "invariance"):
            plots.grouped_bars(
                groups,
                {
                    metric: (
                        np.array([v[metric] for v in summary.values()]),
                        np.array([v[f"{metric}_sd"] for v in summary.values()]),
                    )
                },
                f"{metric} under shifts of {k} px (± SD)",
                tmp / f"{metric}.png",
            )
        result = InvarianceResult(
            spec=spec,
            network=network_record(net),
            points=ablation_sites(net, spec.ablate_layers, spec.point),
            images=len(images),
            summary={f"{a}:{c}": v for (a, c), v in summary.items()},
            table=table.name,
            environment=environment(net.device),
            wall_s=round(time.perf_counter() - t0, 2),
            **(provenance or {}),
        )
        (tmp / "summary.json").write_text(result.to_json())
    return result
