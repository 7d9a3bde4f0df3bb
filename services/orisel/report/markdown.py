"""A Markdown report from the outputs of train, tune, ablate and invariance in one folder."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from orisel.ablation.results import AblateResult, InvarianceResult
from orisel.kernel.atomic import check_file_output, write_output_file
from orisel.kernel.errors import NotFound
from orisel.kernel.records import read_result
from orisel.scoring.results import TuneResult


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """A Markdown table, the one way every report writes one: a header, its rule, a line
    per row."""

    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join(str(c) for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(r) for r in rows)]


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _training(manifest: dict[str, Any]) -> list[str]:
    best = manifest["best"]
    cfg = manifest["config"]
    rows = []
    for h in manifest["history"]:
        m = h["metrics"]
        rows.append(
            (
                f"{h['epoch']:.2f}",
                f"{m['train']['accuracy']:.3f}" if m["train"] else "-",
                f"{m['validation']['loss']:.4f}",
                f"{m['validation']['accuracy']:.3f}",
                f"{m['test']['accuracy']:.3f}",
            )
        )
    header = ("epoch", "train acc", "validation loss", "validation acc", "test acc")
    return [
        "## Training",
        f"{cfg['model']}, {manifest['data']['train']} training images, label corruption "
        f"{cfg['data']['label_corruption']}, seed {cfg['seed']}, {cfg['epochs']} epochs "
        f"(status: {manifest['status']}); data sha256 `{manifest['data']['sha256'][:16]}`, "
        f"code `{manifest['environment']['code_version']}`.",
        "",
        *table(header, rows),
        "",
        f"Kept checkpoint (best validation loss): epoch {best['epoch']:.2f}, test "
        f"accuracy {best['metrics']['test']['accuracy']:.4f}.",
        "",
    ]


def _tuning(t: TuneResult) -> list[str]:
    spec = t.spec
    csi = t.summary.class_selectivity or {}
    rows = [
        (
            kind,
            layer,
            s.units,
            s.dead,
            f"{s.fraction_selective:.3f}",
            f"{s.fraction_above_threshold:.3f}",
            f"{s.null_fraction_above_threshold:.3f}",
            f"{s.mean_gosi:.3f}",
            f"{s.null_mean_gosi:.3f}",
            f"{csi[layer].mean_csi:.3f}" if layer in csi else "-",
        )
        for kind, tuning in t.summary.by_stimulus(spec.stimuli).items()
        for layer, s in tuning.layers.items()
    ]
    header = (
        "stimuli",
        "layer",
        "units",
        "dead",
        "fraction selective",
        "above threshold",
        "null above threshold",
        "mean gOSI",
        "null mean gOSI",
        "mean CSI",
    )
    return [
        "## Orientation selectivity (C1)",
        f"Selective = gOSI > {spec.threshold} and permutation p < {spec.alpha} "
        f"({spec.permutations} shuffles of the stimulus labels); responses are spatial "
        f"means ({spec.reduction}) at conv+ReLU outputs.",
        "",
        *table(header, rows),
        "",
        "![gOSI histograms](tune/gosi_histograms.png)",
        "",
        "![tuning curves](tune/tuning_gratings.png)",
        "",
    ]


def _ablation(a: AblateResult) -> list[str]:
    rows = [
        (
            s.layer,
            s.by,
            f"{s.top50.loss_increase_mean:.4f} ± {s.top50.loss_increase_sem:.4f}",
            f"{s.bottom50.loss_increase_mean:.4f} ± {s.bottom50.loss_increase_sem:.4f}",
            f"{s.top50.accuracy:.3f}",
            f"{s.bottom50.accuracy:.3f}",
            "yes" if s.top50.loss_increase_mean > s.bottom50.loss_increase_mean else "no",
        )
        for s in a.splits
    ]
    header = ("layer", "by", "top 50%", "bottom 50%", "top acc", "bottom acc", "top > bottom?")
    # Where each layer was silenced; a summary older than `points` has only the spec's choice.
    where = (
        ", ".join(f"{layer} at {p.site} ({p.point})" for layer, p in a.points.items())
        if a.points
        else f"the {a.spec.point} output"
    )
    return [
        "## Ablation (C4)",
        f"Units silenced ({a.spec.mode}): {where}; "
        f"{a.test_images} test images. Per-image cross-entropy increase, mean ± SEM.",
        "",
        *table(header, rows),
        "",
        *(f"![split by {by}](ablate/split_{by}.png)" for by in a.spec.orders),
        "",
        "![cumulative ablation, layer1](ablate/curves_layer1.png)",
        "",
    ]


def _invariance(v: InvarianceResult) -> list[str]:
    rows = [
        (*name.split(":"), f"{s.consistency:.3f}", f"{s.correlation:.3f}")
        for name, s in v.summary.items()
    ]
    header = ("ablated", "condition", "prediction consistency", "response correlation")
    return [
        "## Shift-invariance (C5)",
        f"Shifts of {v.spec.shift} px ({v.spec.padding} padding) on {v.images} test "
        f"images; layers {', '.join(v.spec.layers)}.",
        "",
        *table(header, rows),
        "",
        "![consistency](invariance/consistency.png)",
        "",
    ]


def write_report(run: Path, out: Path, force: bool = False) -> Path:
    """Report on `run/{train,tune,ablate,invariance}`; parts that are missing are skipped. An
    existing `out` is replaced only if it is an earlier orisel report and `force` is given."""
    check_file_output(out, force)
    manifest = _load(run / "train" / "manifest.json")
    tune = read_result(run / "tune" / "summary.json", TuneResult)
    ablate = read_result(run / "ablate" / "summary.json", AblateResult)
    inv = read_result(run / "invariance" / "summary.json", InvarianceResult)
    if not (manifest or tune or ablate or inv):
        raise NotFound(
            f"nothing to report in {run}: no train/, tune/, ablate/ or invariance/ outputs"
        )
    lines = [f"# orisel report: {run}", ""]
    if manifest:
        lines += _training(manifest)
    if tune:
        lines += _tuning(tune)
    if ablate:
        lines += _ablation(ablate)
    if inv:
        lines += _invariance(inv)
    commands = [p.command for p in (tune, ablate, inv) if p and p.command]
    if manifest:
        env = manifest["environment"]
        commands.insert(0, env.get("argv", env.get("command", [])))  # "command" before 0.1.0+
    lines += ["## Commands", "", "```"] + [" ".join(c) for c in commands] + ["```", ""]

    def write(path: Path) -> None:
        path.write_text("\n".join(lines))

    return write_output_file(out, write, force)
