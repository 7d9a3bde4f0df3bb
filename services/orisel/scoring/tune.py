"""`orisel tune`: per-unit orientation (and class) selectivity of a network, with its null."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from orisel.extraction.activations import Activations, measure
from orisel.extraction.extract import make_stimuli
from orisel.extraction.network import Network
from orisel.kernel import progress
from orisel.kernel.errors import InvalidArgument
from orisel.kernel.names import Tokens
from orisel.science import indices as ix
from orisel.science.statistics import fdr
from orisel.science.stimuli import StimulusSet
from orisel.scoring.results import (
    LayerClassSelectivity,
    LayerTuning,
    StimulusTuning,
    TuneSummary,
)
from orisel.scoring.spec import TuneSpec

HIST_BINS = 20
UNIT_COLUMNS = (
    "gosi",
    "osi",
    "preferred_deg",
    "range_deg",
    "bandwidth_deg",
    "preferred_condition",
    "p_value",
    "null_gosi",
    "selective",
    "dead",
    "p_orientation",
    "q_value",
    "q_orientation",
    "selective_fdr",
    "negative_fraction",
)
# The orientation-only null draws its shuffles from a stream of its own.
ORIENTATION_SEED_OFFSET = 1 << 30


def score_layer(
    r: np.ndarray, stim: StimulusSet, spec: TuneSpec, seed: int
) -> dict[str, np.ndarray]:
    """Per-unit indices of one layer's (stimuli, units) responses, with the permutation null.
    The indices count negative responses as 0; the share each unit had is kept."""
    t = ix.tuning(r, stim.shape)
    g = ix.gosi(t.curves)
    null = ix.null_gosi(r, stim.shape, max(spec.permutations, 1), seed)
    p = ix.permutation_pvalue(g, null) if spec.permutations else np.full(len(g), np.nan)
    selective = (g > spec.threshold) & (p < spec.alpha) if spec.permutations else g > spec.threshold
    # Beside the paper's per-unit test: an orientation-only null, and both p-values adjusted
    # for the layer's many units (Benjamini-Hochberg over its grating-responsive units).
    nan = np.full(len(g), np.nan)
    p_orientation, q, q_orientation = nan, nan, nan
    if spec.permutations:
        null_o = ix.null_gosi(
            r, stim.shape, spec.permutations, seed + ORIENTATION_SEED_OFFSET, orientation_only=True
        )
        p_orientation = ix.permutation_pvalue(g, null_o)
        q = fdr(np.where(t.dead, np.nan, p))
        q_orientation = fdr(np.where(t.dead, np.nan, p_orientation))
    with np.errstate(invalid="ignore"):  # NaN q (untested) is never below alpha
        selective_fdr = (g > spec.threshold) & (q < spec.alpha) & (q_orientation < spec.alpha)
    return {
        "gosi": g,
        "osi": ix.osi(t.curves),
        "preferred_deg": ix.preferred_orientation(t.curves),
        "range_deg": ix.orientation_range(t.by_condition),
        "bandwidth_deg": ix.bandwidth(t.curves),
        "preferred_condition": t.preferred_condition,
        "p_value": p,
        "null_gosi": null[0],  # one shuffled presentation: the paper's null control
        "selective": selective & ~t.dead,
        "dead": t.dead,
        "p_orientation": p_orientation,
        "q_value": q,
        "q_orientation": q_orientation,
        "selective_fdr": selective_fdr & ~t.dead,
        "negative_fraction": (r < 0).mean(axis=0),
        "curves": t.curves,
        "_null_all": null,
    }


def layer_summary(s: dict[str, np.ndarray], spec: TuneSpec) -> LayerTuning:
    live = ~s["dead"]
    n_live = max(int(live.sum()), 1)
    null_all = s["_null_all"][:, live].ravel()
    edges = np.linspace(0, 1, HIST_BINS + 1)
    # Every fraction is of the grating-responsive units (units - dead): a unit no grating
    # drives has no orientation tuning to test, in the data or in the null.
    return LayerTuning(
        units=len(live),
        dead=int((~live).sum()),
        denominator="grating-responsive units (units - dead)",
        fraction_selective=float(s["selective"][live].sum() / n_live),
        fraction_selective_fdr=float(s["selective_fdr"][live].sum() / n_live),
        selective_fdr=int(s["selective_fdr"].sum()),
        fraction_above_threshold=float((s["gosi"][live] > spec.threshold).sum() / n_live),
        null_fraction_above_threshold=float((null_all > spec.threshold).mean())
        if null_all.size
        else 0.0,
        mean_gosi=float(s["gosi"][live].mean()) if live.any() else 0.0,
        median_gosi=float(np.median(s["gosi"][live])) if live.any() else 0.0,
        null_mean_gosi=float(null_all.mean()) if null_all.size else 0.0,
        mean_osi=float(s["osi"][live].mean()) if live.any() else 0.0,
        histogram_edges=edges.tolist(),
        histogram=np.histogram(s["gosi"][live], edges)[0].tolist(),
        null_histogram_density=(np.histogram(null_all, edges)[0] / max(null_all.size, 1)).tolist(),
        negative_units=int((s["negative_fraction"] > 0).sum()),
    )


def class_selectivity_by_layer(
    net: Network,
    images: np.ndarray,
    labels: np.ndarray,
    n_classes: int,
    layers: tuple[str, ...],
    batch_size: int,
    tokens: Tokens = "mean",
    rectify: bool = True,
) -> dict[str, np.ndarray]:
    resp = net.image_responses(images, layers, "mean", batch_size, tokens)
    if not rectify:
        for n in layers:
            refuse_signed(n, resp[n], "test images")
    return {n: ix.class_selectivity(resp[n], labels, n_classes) for n in layers}


def refuse_signed(layer: str, responses: np.ndarray, what: str) -> None:
    """With rectification off, a layer whose responses go below 0 has no index to give."""
    negative = (responses < 0).any(axis=0)
    if negative.any():
        raise InvalidArgument(
            "rectify",
            f"true (--rectify: negative responses count as 0) for layer {layer}, whose "
            f"responses to the {what} go below 0 in {int(negative.sum())} of {negative.size} "
            "units (a signed output, not a ReLU's); or name a rectified layer",
            False,
        )


@dataclass
class Tuned:
    """Every unit scored: the table's columns, the per-layer summary, and what the figures
    are drawn from (each stimulus set and its layers' scores)."""

    layers: tuple[str, ...]
    columns: dict[str, np.ndarray]
    summary: TuneSummary
    scored: dict[str, dict[str, dict[str, np.ndarray]]] = field(default_factory=dict)
    stimuli: dict[str, StimulusSet] = field(default_factory=dict)


def score_units(
    net: Network,
    spec: TuneSpec,
    test_images: np.ndarray | None = None,
    test_labels: np.ndarray | None = None,
    n_classes: int = 10,
) -> Tuned:
    """Score every unit of the analysed layers (and, given test images, class selectivity)."""
    return score_activations(measure(net, spec, test_images, test_labels, n_classes), spec)


def score_activations(acts: Activations, spec: TuneSpec) -> Tuned:
    """Score every unit from stored responses: no forward pass, the same numbers as scoring
    the network itself (the statistics read only these arrays)."""
    layers = acts.check(spec)
    csi = None
    if acts.images is not None and acts.labels is not None:
        if not spec.rectify:
            for layer in layers:
                refuse_signed(layer, acts.images[layer], "test images")
        csi = {
            layer: ix.class_selectivity(acts.images[layer], acts.labels, acts.n_classes)
            for layer in layers
        }
    columns: dict[str, list[Any]] = {
        k: [] for k in ("stimulus", "layer", "unit", *UNIT_COLUMNS, "csi")
    }
    tuned = Tuned(tuple(layers), {}, TuneSummary())
    for k, kind in enumerate(spec.stimuli):
        stim = tuned.stimuli[kind] = make_stimuli(kind, acts.image_size, spec)
        responses = acts.stimuli[kind]
        if not spec.rectify:
            for layer in layers:
                refuse_signed(layer, responses[layer], kind)
        tuning = StimulusTuning(stimuli=stim.describe(), layers={})
        setattr(tuned.summary, kind, tuning)
        scored = tuned.scored[kind] = {}
        for i, layer in progress.bar(enumerate(layers), f"scoring {kind}", len(layers), "layer"):
            s = score_layer(responses[layer], stim, spec, seed=spec.seed * 1000 + 100 * k + i)
            scored[layer] = s
            tuning.layers[layer] = layer_summary(s, spec)
            n = len(s["gosi"])
            columns["stimulus"] += [kind] * n
            columns["layer"] += [layer] * n
            columns["unit"] += list(range(n))
            for col in UNIT_COLUMNS:
                columns[col] += s[col].tolist()
            columns["csi"] += csi[layer].tolist() if csi is not None else [float("nan")] * n
    if csi is not None:
        tuned.summary.class_selectivity = {
            layer: LayerClassSelectivity(
                mean_csi=float(np.mean(csi[layer])), median_csi=float(np.median(csi[layer]))
            )
            for layer in layers
        }
    tuned.columns = {k: np.asarray(v) for k, v in columns.items()}
    return tuned
