"""A Markdown report from the outputs of train, tune, ablate and invariance in one folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orisel.core.atomic import atomic_write
from orisel.core.errors import NotFound


def _load(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def _training(manifest: dict[str, Any]) -> list[str]:
    best = manifest["best"]
    cfg = manifest["config"]
    lines = [
        "## Training",
        f"{cfg['model']}, {manifest['data']['train']} training images, label corruption "
        f"{cfg['data']['label_corruption']}, seed {cfg['seed']}, {cfg['epochs']} epochs "
        f"(status: {manifest['status']}); data sha256 `{manifest['data']['sha256'][:16]}`, "
        f"code `{manifest['environment']['code_version']}`.",
        "",
        "| epoch | train acc | validation loss | validation acc | test acc |",
        "|---|---|---|---|---|",
    ]
    for h in manifest["history"]:
        m = h["metrics"]
        train = f"{m['train']['accuracy']:.3f}" if m["train"] else "-"
        lines.append(
            f"| {h['epoch']:.2f} | {train} | {m['validation']['loss']:.4f} | "
            f"{m['validation']['accuracy']:.3f} | {m['test']['accuracy']:.3f} |"
        )
    lines += [
        "",
        f"Kept checkpoint (best validation loss): epoch {best['epoch']:.2f}, test "
        f"accuracy {best['metrics']['test']['accuracy']:.4f}.",
        "",
    ]
    return lines


def _tuning(t: dict[str, Any]) -> list[str]:
    spec = t["spec"]
    lines = [
        "## Orientation selectivity (C1)",
        f"Selective = gOSI > {spec['threshold']} and permutation p < {spec['alpha']} "
        f"({spec['permutations']} shuffles of the stimulus labels); responses are spatial "
        f"means ({spec['reduction']}) at conv+ReLU outputs.",
        "",
        "| stimuli | layer | units | dead | fraction selective | above threshold "
        "| null above threshold | mean gOSI | null mean gOSI | mean CSI |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    csi = t["summary"].get("class_selectivity", {})
    for kind in spec["stimuli"]:
        for layer, s in t["summary"][kind]["layers"].items():
            c = csi.get(layer, {}).get("mean_csi")
            cells = [
                kind,
                layer,
                s["units"],
                s["dead"],
                f"{s['fraction_selective']:.3f}",
                f"{s['fraction_above_threshold']:.3f}",
                f"{s['null_fraction_above_threshold']:.3f}",
                f"{s['mean_gosi']:.3f}",
                f"{s['null_mean_gosi']:.3f}",
                "-" if c is None else f"{c:.3f}",
            ]
            lines.append("| " + " | ".join(str(x) for x in cells) + " |")
    lines += [
        "",
        "![gOSI histograms](tune/gosi_histograms.png)",
        "",
        "![tuning curves](tune/tuning_gratings.png)",
        "",
    ]
    return lines


def _ablation(a: dict[str, Any]) -> list[str]:
    lines = [
        "## Ablation (C4)",
        f"Units silenced ({a['spec']['mode']}) at the {a['spec']['point']} output; "
        f"{a['test_images']} test images. Per-image cross-entropy increase, mean ± SEM.",
        "",
        "| layer | by | top 50% | bottom 50% | top acc | bottom acc | top > bottom? |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in a["splits"]:
        top, bottom = s["top50"], s["bottom50"]
        worse = top["loss_increase_mean"] > bottom["loss_increase_mean"]
        cells = [
            s["layer"],
            s["by"],
            f"{top['loss_increase_mean']:.4f} ± {top['loss_increase_sem']:.4f}",
            f"{bottom['loss_increase_mean']:.4f} ± {bottom['loss_increase_sem']:.4f}",
            f"{top['accuracy']:.3f}",
            f"{bottom['accuracy']:.3f}",
            "yes" if worse else "no",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [""] + [f"![split by {by}](ablate/split_{by}.png)" for by in a["spec"]["orders"]]
    lines += ["", "![cumulative ablation, layer1](ablate/curves_layer1.png)", ""]
    return lines


def _invariance(v: dict[str, Any]) -> list[str]:
    lines = [
        "## Shift-invariance (C5)",
        f"Shifts of {v['spec']['shift']} px ({v['spec']['padding']} padding) on {v['images']} test "
        f"images; layers {', '.join(v['spec']['layers'])}.",
        "",
        "| ablated | condition | prediction consistency | response correlation |",
        "|---|---|---|---|",
    ]
    for name, s in v["summary"].items():
        ablated, condition = name.split(":")
        lines.append(
            f"| {ablated} | {condition} | {s['consistency']:.3f} | {s['correlation']:.3f} |"
        )
    lines += ["", "![consistency](invariance/consistency.png)", ""]
    return lines


def write_report(run: Path, out: Path) -> Path:
    """Report on `run/{train,tune,ablate,invariance}`; parts that are missing are skipped."""
    parts = {
        "train": _load(run / "train" / "manifest.json"),
        "tune": _load(run / "tune" / "summary.json"),
        "ablate": _load(run / "ablate" / "summary.json"),
        "invariance": _load(run / "invariance" / "summary.json"),
    }
    if not any(parts.values()):
        raise NotFound(
            f"nothing to report in {run}: no train/, tune/, ablate/ or invariance/ outputs"
        )
    lines = [f"# orisel report: {run}", ""]
    if parts["train"]:
        lines += _training(parts["train"])
    if parts["tune"]:
        lines += _tuning(parts["tune"])
    if parts["ablate"]:
        lines += _ablation(parts["ablate"])
    if parts["invariance"]:
        lines += _invariance(parts["invariance"])
    commands = [
        p["command"]
        for p in (parts["tune"], parts["ablate"], parts["invariance"])
        if p and "command" in p
    ]
    if parts["train"]:
        env = parts["train"]["environment"]
        commands.insert(0, env.get("argv", env.get("command", [])))  # "command" before 0.1.0+
    lines += ["## Commands", "", "```"] + [" ".join(c) for c in commands] + ["```", ""]

    def write(path: Path) -> None:
        path.write_text("\n".join(lines))

    atomic_write(out, write)
    return out
