"""The claims table's verdicts on numbers made to hold or to fail, with the statistic, the
null, n and the effect each row states; the report renders them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orisel.kernel.errors import InvalidArgument
from orisel.report.claims import claims
from orisel.report.data import ReportData
from orisel.report.paper import render

CHECKPOINTS = 40  # circular shifts reach p = 0.025, which Holm across the claims needs
TREND = ("mean_gosi", "fraction_above_threshold", "null_fraction_above_threshold")


def _layers(mean: float, above: float, null_above: float, fdr: int | None) -> dict[str, Any]:
    out = {}
    for name in ("layer1", "layer2", "layer3", "layer4"):
        s = {
            "mean_gosi": mean,
            "fraction_above_threshold": above,
            "null_fraction_above_threshold": null_above,
            "units": 8,
            "dead": 0,
            "fraction_selective": above,
            "null_mean_gosi": 0.1,
            "histogram_edges": [0.0, 0.5, 1.0],
            "histogram": [4, 4],
            "null_histogram_density": [1.0, 0.0],
        }
        if fdr is not None:
            s |= {"selective_fdr": fdr, "fraction_selective_fdr": fdr / 8}
        out[name] = s
    return out


def _trajectory(tracks: bool) -> list[dict[str, Any]]:
    """Twenty checkpoints; test accuracy wiggles around its trend. Lower-layer gOSI follows
    the wiggle (tracks) or the trend with a wiggle of its own (does not)."""
    k = np.arange(CHECKPOINTS, dtype=float)
    wiggle = 0.1 * np.sin(2.3 * k)
    test = 0.3 + 0.01 * k + wiggle
    lower = 0.1 + 0.008 * k + (0.8 * wiggle if tracks else 0.05 * np.cos(1.1 * k))
    return [
        {
            "epoch": float(e),
            "metrics": {"train": {"accuracy": 0.3 + 0.02 * e}, "test": {"accuracy": a}},
            "threshold": 0.33,
            "permutations": 10,
            "gratings": {
                n: {k: s[k] for k in TREND} for n, s in _layers(g, 0.5, 0.0, None).items()
            },
        }
        for e, a, g in zip(k, test, lower, strict=True)
    ]


def _curves(diff: float) -> list[dict[str, Any]]:
    """layer1's cumulative curves: gOSI-first loses more than CSI-first when diff > 0."""
    mid = {"gosi:descending": 0.5 - diff / 4, "csi:descending": 0.5 + diff / 4, "random": 0.72}
    last = {"gosi:descending": 0.1, "csi:descending": 0.3, "random": 0.25}
    return [
        {
            "layer": "layer1",
            "order": order,
            "seed": -1,
            "fraction": f,
            "accuracy": a,
            "loss_increase_mean": 0.0,
        }
        for order in mid
        for f, a in ((0.0, 0.8), (0.5, mid[order]), (1.0, last[order]))
    ]


def _outcome(loss: float, accuracy: float) -> dict[str, Any]:
    return {
        "n_ablated": 4,
        "accuracy": accuracy,
        "loss_increase_mean": loss,
        "loss_increase_sem": 0.1,
    }


def _variant(
    c: float, seed: int, acc: float, gosi: float, diff: float, fdr: int | None = 2
) -> dict[str, Any]:
    metrics = {"train": {"accuracy": acc + 0.05}, "test": {"accuracy": acc}}
    tune = {
        "epoch": 10.0,
        "metrics": metrics,
        "threshold": 0.33,
        "permutations": 10,
        "gratings": _layers(gosi, 0.6, 0.05, fdr),
        "bars": _layers(gosi, 0.5, 0.05, fdr),
    }
    split = {
        "by": "gosi",
        "layer": "layer1",
        "top50": _outcome(0.2 + diff, 0.3),
        "bottom50": _outcome(0.2, 0.6),
        "paired": {"difference": diff, "sem": 0.05, "images": 100},
        "random_halves": {
            "n": 100,
            "loss_increase_mean": 0.2,
            "loss_increase_sd": 0.05,
            "top50_percentile": 97.0,
            "bottom50_percentile": 12.0,
        },
        "matched": {
            name: {
                "units": 4,
                "covariate_top": 1.0,
                "covariate_bottom": 1.0,
                "score_top": 0.6,
                "score_bottom": 0.2,
                "paired": {"difference": diff * k, "sem": 0.05, "images": 100},
            }
            for name, k in (("mean_activation", 0.5), ("bn_gain", 0.25), ("outgoing_norm", 0.75))
        },
    }
    inv = {
        "spec": {"ablate_layers": ["layer1"], "shift": 3, "layers": ["layer4"]},
        "images": 100,
        "summary": {
            "layer1:top50": {
                "correlation": 0.7 - diff / 4,
                "correlation_sd": 0.1,
                "consistency": 0.6,
                "consistency_sd": 0.1,
                "invariance": 0.5 - diff / 2,
                "loss_increase": 0.9,
            },
            "layer1:random": {
                "correlation": 0.7,
                "correlation_sd": 0.1,
                "consistency": 0.7,
                "consistency_sd": 0.1,
                "invariance": 0.6,
                "loss_increase": 0.2,
            },
            "layer1:random_damage_matched": {
                "correlation": 0.7,
                "correlation_sd": 0.1,
                "consistency": 0.7,
                "consistency_sd": 0.1,
                "invariance": 0.5,
                "loss_increase": 0.9,
            },
        },
    }
    ref = c == 0
    trajectory = _trajectory(True) if ref else None
    if trajectory:  # at initialization, fewer units above threshold, varying by seed
        for layer in trajectory[0]["gratings"].values():
            layer["fraction_above_threshold"] = 0.1 + 0.02 * seed
    return {
        "corruption": c,
        "seed": seed,
        "epochs_trained": 10.0,
        "epochs_configured": 10,
        "best": {"epoch": 10.0, "metrics": metrics},
        "manifest_sha256": "a" * 64,
        "data_sha256": "b" * 64,
        "code_version": "test",
        "history": [{"epoch": 10.0, **metrics}],
        "analysed": "best",
        "tune": tune,
        "trajectory": trajectory,
        "ablate": {"splits": [split], "test_images": 100, "curves": _curves(diff)} if ref else None,
        "invariance": inv if ref else None,
    }


def _data(gosis: list[float], diffs: tuple[float, ...] = (0.8, 0.75, 0.85)) -> dict[str, Any]:
    """Three seeds at corruption 0 (the reference networks), then three more levels, two of
    them with two seeds: four levels, so seeds within a level test C3's within-level slope."""
    names = ["c0-s0", "c0-s1", "c0-s2", "c0.2-s0", "c0.2-s1", "c0.4-s0", "c0.4-s1", "c0.6-s0"]
    return {
        "variants": {
            f"cnn7-{n}": _variant(
                float(n[1:].split("-")[0]), int(n[-1]), a, g, diffs[i] if i < 3 else 0.0
            )
            for i, (n, a, g) in enumerate(zip(names, ACCURACIES, gosis, strict=True))
        }
    }


def _typed(data: dict[str, Any]) -> ReportData:
    return ReportData.model_validate(data)


ACCURACIES = [0.8, 0.79, 0.81, 0.7, 0.68, 0.6, 0.57, 0.5]
# gOSI = accuracy - 0.2, with a wiggle so that no slope is an exact fit (no zero error).
WIGGLE = [2, -1, -1, 1, -1, -2, 2, 0]
HOLDING = [a - 0.2 + 1e-4 * w for a, w in zip(ACCURACIES, WIGGLE, strict=True)]


def test_every_claim_holds_on_numbers_made_to_hold() -> None:
    rows = claims(_typed(_data(HOLDING)))
    assert [r.verdict for r in rows] == ["yes"] * 7
    c1, c2, c3, c4, c4m, c5, c6 = rows
    assert "24/24 (network, stimulus, layer) cases" in c1.value  # higher layers included
    assert "orientations shuffled within" in c1.null
    # Against initialization: 0.55 above the null trained, 0.1 + 0.02 seed at epoch 0.
    assert c1.effect == pytest.approx(0.45 - 0.02)
    assert c1.n == 3
    assert c2.n == CHECKPOINTS  # each network tested over its own checkpoints
    assert len(c2.parts) == 3  # every network must show it
    assert "circular shift" in c2.null
    assert "partial r=" in c2.value
    # gOSI = accuracy - 0.2 up to 2e-4: slopes of about 1 between and within levels.
    assert [q.name for q in c3.parts] == ["between levels", "within levels"]
    assert c3.parts[0].test.effect == pytest.approx(1.0, abs=0.01)
    assert c3.parts[0].test.df == 2  # four levels: their means decide
    assert c3.parts[1].test.df == 8 - 4 - 1
    assert "Spearman across networks" in c3.value
    assert c4.effect == pytest.approx(0.8)  # mean over the three networks, layer1
    assert c4.ci is not None
    assert c4.ci[0] < 0.8 < c4.ci[1]
    assert c4.n == 3
    assert c4.df == 2
    assert "97th percentile" in c4.value
    assert c4m.effect == pytest.approx(0.8 * 0.5)  # the covariates' mean share of d
    assert "matched on bn gain: mean 0.200 nats, 3/3" in c4m.value
    assert c5.effect == pytest.approx(0.4)  # damage-matched random minus top, unpooled
    assert "damage" in c5.statistic
    # gOSI-first loses (0.8 - mean(0.8, 0.5 - d/4, 0.1)) and CSI-first (0.8 - mean(0.8, 0.5 +
    # d/4, 0.3)): their difference is d/6 + 0.2/3, averaged over d = 0.8, 0.75, 0.85.
    assert [q.name for q in c6.parts] == ["gOSI-first minus random", "gOSI-first minus CSI-first"]
    assert c6.parts[1].test.effect == pytest.approx(0.8 / 6 + 0.2 / 3)
    assert "CSI-first minus random in all layers" in c6.value
    # Holm across the seven claims: each adjusted p is at least its own.
    assert all(r.p is not None and r.p <= r.p_holm <= 0.05 for r in rows)
    assert {r.family for r in rows} == {7}


def test_a_claim_that_fails_is_reported_as_failing(tmp_path: Path) -> None:
    data = _data(HOLDING[::-1], diffs=(-0.8, -0.7, -0.9))  # less selective, better networks
    for n, v in data["variants"].items():
        if v["trajectory"]:  # selectivity follows only the trend
            v["trajectory"] = v["trajectory"][:1] + _trajectory(tracks=False)[1:]
        if n.endswith("c0-s0"):
            for s in v["tune"]["gratings"].values():
                s["selective_fdr"], s["fraction_selective_fdr"] = 0, 0.0
    rows = claims(_typed(data))
    # Significant against the prediction (at the family's Bonferroni level) is "no"; C2's
    # and C3's misses (circular shifts; four levels' means on 2 df) cannot be told from no
    # effect, and C6's contrast against CSI-first is not significant at 0.05 / 7.
    verdicts = ["no", "inconclusive", "inconclusive", "no", "no", "no", "inconclusive"]
    assert [r.verdict for r in rows] == verdicts
    assert "20/24" in rows[0].value  # one network's gratings have no selective unit
    assert rows[2].parts[0].test.effect < -0.8  # between levels
    assert (rows[3].effect or 0.0) < 0
    out = render(_typed(data), tmp_path / "r.md")
    text = out.read_text()
    assert "| C4 ablating the most selective" in text
    assert "| no |" in text
    assert "| inconclusive |" in text
    assert "effect [95% CI]" in text
    assert "Holm p" in text
    assert (tmp_path / "r" / "c3_gosi_vs_accuracy.png").stat().st_size > 1000


def test_claims_without_their_analyses_are_not_tested() -> None:
    data = _data(HOLDING)
    for v in data["variants"].values():
        v["ablate"] = v["invariance"] = v["trajectory"] = None
    rows = claims(_typed(data))
    assert [r.verdict for r in (rows[1], *rows[3:])] == ["not tested"] * 5
    assert rows[2].verdict == "yes"
    # C1's units are selective, but without an epoch-0 tuning nothing says training made them.
    assert rows[0].verdict == "inconclusive"
    assert "no epoch-0 tuning in these data for cnn7-c0-s0, cnn7-c0-s1, cnn7-c0-s2" in rows[0].value


def test_older_data_are_tested_with_what_they_hold() -> None:
    """A data.json collected before the per-unit FDR and paired errors: C1 compares fractions
    with the shuffled null and says so; C4 combines the halves' errors."""
    data = _data(HOLDING)
    for v in data["variants"].values():
        for kind in ("gratings", "bars"):
            for s in v["tune"][kind].values():
                del s["selective_fdr"], s["fraction_selective_fdr"]
        for s in (v["ablate"] or {}).get("splits", []):
            del s["paired"], s["random_halves"], s["matched"]
        if v["invariance"]:
            del v["invariance"]["summary"]["layer1:random_damage_matched"]
    c1, _, _, c4, c4m, c5, _ = claims(_typed(data))
    assert c5.effect == pytest.approx(0.2)  # pooled correlation, size-matched random
    assert "collected before" in c5.statistic
    assert c4m.verdict == "not tested"
    assert c4m.value == "no matched controls in these data"
    assert c1.verdict == "yes"
    assert "no per-unit FDR" in c1.statistic
    assert "paired" not in c4.value
    assert c4.verdict == "yes"


def test_prose_is_filled_from_the_claims_table() -> None:
    from orisel.kernel.errors import NotFound
    from orisel.report.paper import fill

    rows = claims(_typed(_data(HOLDING)))
    text = fill("C3 {{C3.holds}}: r = {{C3.effect}} {{C3.ci}}, p = {{C3.p}}, n = {{C3.n}}.", rows)
    c3 = rows[2]
    assert c3.ci is not None
    assert text == (
        f"C3 yes: r = {c3.effect:.3f} [{c3.ci[0]:.3f}, {c3.ci[1]:.3f}], p = {c3.p:.4f}, n = {c3.n}."
    )
    assert fill("{{C3.holm}} {{C3.df}}", rows) == f"{c3.p_holm:.4f} {c3.df:.0f}"
    with pytest.raises(NotFound, match="C9"):
        fill("{{C9.effect}}", rows)
    c4m = rows[4]
    assert fill("{{C4m.holds}} {{C4m.effect}}", rows) == f"yes {c4m.effect:.3f}"
    from orisel.kernel.errors import InvalidArgument

    # A token the pattern does not know is refused, never left in the report.
    with pytest.raises(InvalidArgument, match=r"C3\.mean"):
        fill("{{C3.mean}}", rows)


def test_the_memorizing_regime_is_reported_beside_the_population(tmp_path: Path) -> None:
    """Networks analysed as trained (last/) are collected with what was analysed, and the
    report lists them with their fit of their own labels and their lower-layer gOSI."""
    import json

    from orisel.report.collect import collect
    from orisel.scoring.results import TuneResult
    from orisel.scoring.spec import TuneSpec

    root = tmp_path / "memorize"
    metrics = {"train": {"accuracy": 0.935}, "test": {"accuracy": 0.413}}
    tune = TuneResult(
        spec=TuneSpec(threshold=0.33, permutations=10),
        network={"model": "cnn7", "epoch": 47.0, "metrics": metrics},
        layers=["layer1", "layer2", "layer3", "layer4"],
        summary={"gratings": {"stimuli": {}, "layers": _layers(0.25, 0.5, 0.05, 1)}},
        table="units.csv",
        environment={},
        wall_s=1.0,
    )
    manifest = {
        "history": [{"epoch": 47.0, "metrics": metrics}],
        "config": {"epochs": 200, "model": "cnn7", "seed": 0, "data": {"label_corruption": 0.4}},
        "best": {"epoch": 7.0, "metrics": {}},
        "data": {"sha256": "b" * 64},
        "environment": {"code_version": "test"},
    }
    # The network is read from its manifest, whatever its folder is called.
    (root / "no-augment run" / "last" / "tune").mkdir(parents=True)
    (root / "no-augment run" / "manifest.json").write_text(json.dumps(manifest))
    (root / "no-augment run" / "last" / "tune" / "summary.json").write_text(tune.to_json())
    memorize = collect(root).variants
    assert list(memorize) == ["cnn7-c0.4-s0"]
    assert memorize["cnn7-c0.4-s0"].analysed == "last"
    data = _typed(_data(HOLDING))
    data.memorize = memorize
    text = render(data, tmp_path / "r.md").read_text()
    section = text.split("## The memorizing regime")[1].split("##")[0]
    row = next(line for line in section.splitlines() if line.startswith("| cnn7-c0.4-s0 | 0.4 |"))
    assert "| last (epoch 47) | 0.935 | 0.413 | 0.522 | 0.250 |" in row
    assert (
        "## The memorizing regime"
        not in render(_typed(_data(HOLDING)), tmp_path / "s.md").read_text()
    )
    (root / "copy").mkdir()
    (root / "copy" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InvalidArgument, match=r"one analysis per network \(cnn7-c0.4-s0"):
        collect(root)


def test_a_metric_without_a_value_stays_nan_through_summary_and_data_json() -> None:
    """The damage of an ablation evaluated without labels is NaN: it must read back as NaN
    (pydantic's own JSON writer would turn it into null, which no float field accepts)."""
    from orisel.ablation.results import InvarianceResult

    cell = {"consistency": 1.0, "consistency_sd": 0.0, "correlation": 0.5, "correlation_sd": 0.1}
    result = InvarianceResult(
        spec={"layers": ["layer4"], "ablate_layers": ["layer1"]},
        network={"model": "cnn7"},
        images=10,
        summary={"layer1:top50": cell | {"invariance": 0.4, "loss_increase": float("nan")}},
        table="invariance.csv",
        environment={},
        wall_s=0.5,
    )
    back = InvarianceResult.model_validate_json(result.to_json())
    assert np.isnan(back.summary["layer1:top50"].loss_increase)
    assert back.summary["layer1:top50"].invariance == 0.4
    assert back.to_json() == result.to_json()
    data = _data(HOLDING)
    data["variants"]["cnn7-c0-s0"]["invariance"]["summary"]["layer1:top50"]["invariance"] = float(
        "nan"
    )
    again = ReportData.model_validate_json(_typed(data).to_json())
    assert np.isnan(again.variants["cnn7-c0-s0"].invariance.summary["layer1:top50"].invariance)  # type: ignore[union-attr]


def test_a_summary_that_is_not_its_analysis_result_is_refused_by_name(tmp_path: Path) -> None:
    """An analysis folder whose summary.json lacks what the analysis records (here the
    ablation's splits) is an error naming the file, not a report with holes."""
    import json

    from orisel.report.markdown import write_report

    (tmp_path / "ablate").mkdir()
    (tmp_path / "ablate" / "summary.json").write_text(json.dumps({"spec": {}, "table": "c.csv"}))
    with pytest.raises(
        InvalidArgument, match=r"ablate/summary.json: must be a summary.json holding AblateResult"
    ):
        write_report(tmp_path, tmp_path / "report.md")
    assert not (tmp_path / "report.md").exists()


def test_the_committed_data_json_reads_back_byte_for_byte() -> None:
    """The typed data.json is the same file: every number, key order and absent section of
    the committed report's data survives a read and a write."""
    path = Path(__file__).parents[2] / "docs" / "results" / "cifar10" / "data.json"
    assert ReportData.read(path).to_json() == path.read_text()


def test_older_results_still_read(tmp_path: Path) -> None:
    """A sweep job's summary from before sweeps recorded their network (inputs at the top
    level), and a matched split whose pool had no pair (no covariate means), read back."""
    from orisel.ablation.results import AblateResult

    outcome = {"n_ablated": 2, "accuracy": 0.5, "loss_increase_mean": 0.1, "loss_increase_sem": 0.0}
    split = {"layer": "layer1", "by": "gosi", "top50": outcome, "bottom50": outcome}
    older = {
        "spec": {"layers": ["layer1"]},
        "splits": [split | {"matched": {"bn_gain": {"units": 0}}}],
        "table": "curves.csv",
        "checkpoint": {"key": "runs/j/best.pt"},
        "model": None,
        "data": None,
        "scores": {"key": "analyses/s/tune/units.csv"},
        "test_images": 100,
        "tasks": 3,
        "job": "j",
    }
    result = AblateResult.model_validate(older)
    assert result.inputs == {
        "checkpoint": {"key": "runs/j/best.pt"},
        "model": None,
        "data": None,
        "scores": {"key": "analyses/s/tune/units.csv"},
    }
    assert result.network is None
    matched = result.splits[0].matched
    assert matched is not None
    assert matched["bn_gain"].covariate_top is None
    assert AblateResult.model_validate_json(result.to_json()) == result


def test_a_trajectory_of_tuned_checkpoints_keeps_their_class_selectivity(tmp_path: Path) -> None:
    """A trajectory made of one tuning per checkpoint carries each checkpoint's gOSI trend and,
    where it was scored on images, its class selectivity, in training order."""
    import json

    from orisel.report.collect import collect
    from orisel.scoring.results import TuneResult
    from orisel.scoring.spec import TuneSpec

    run = tmp_path / "population" / "cnn7-c0-s0"
    metrics = {"train": {"accuracy": 0.6}, "test": {"accuracy": 0.5}}
    manifest = {
        "history": [{"epoch": 2.0, "metrics": metrics}],
        "config": {"epochs": 2, "model": "cnn7", "seed": 0, "data": {"label_corruption": 0.0}},
        "best": {"epoch": 2.0, "metrics": metrics},
        "data": {"sha256": "b" * 64},
        "environment": {"code_version": "test"},
    }
    run.mkdir(parents=True)
    (run / "manifest.json").write_text(json.dumps(manifest))
    for epoch, gosi, csi in ((2.0, 0.3, 0.25), (0.5, 0.1, 0.05)):
        tune = TuneResult(
            spec=TuneSpec(permutations=10),
            network={"model": "cnn7", "epoch": epoch, "metrics": metrics},
            layers=["layer1"],
            summary={
                "gratings": {
                    "stimuli": {},
                    "layers": {"layer1": _layers(gosi, 0.5, 0.0, 1)["layer1"]},
                },
                "class_selectivity": {"layer1": {"mean_csi": csi, "median_csi": csi}},
            },
            table="units.csv",
            environment={},
            wall_s=1.0,
        )
        (run / "trajectory" / f"epoch{epoch}").mkdir(parents=True)
        (run / "trajectory" / f"epoch{epoch}" / "summary.json").write_text(tune.to_json())
    trajectory = collect(tmp_path / "population").variants["cnn7-c0-s0"].trajectory or []
    assert [t.epoch for t in trajectory] == [0.5, 2.0]
    assert [t.gratings["layer1"].mean_gosi for t in trajectory] == [0.1, 0.3]
    assert [t.csi for t in trajectory] == [{"layer1": 0.05}, {"layer1": 0.25}]


def test_c2_is_not_tested_where_epoch_orders_test_accuracy_exactly() -> None:
    """A trajectory whose test accuracy rises at every checkpoint leaves nothing once epoch
    is partialled out: C2 says so and is not tested, rather than 'r = 0, does not hold'."""
    data = _data(HOLDING)
    for v in data["variants"].values():
        for k, t in enumerate(v["trajectory"] or []):
            t["metrics"]["test"]["accuracy"] = 0.3 + 0.01 * k
    c2 = claims(_typed(data))[1]
    assert c2.verdict == "not tested"
    assert c2.n == 0
    assert c2.effect is None
    assert c2.value.count("partial r undefined") == 3


def test_c2_compares_lower_with_higher_layers_directly() -> None:
    """Where lower layers track test accuracy beyond the trend and the higher ones follow only
    the trend with a wiggle of their own, each network's lower-minus-higher partial r is the
    difference of the two partial correlations computed directly, and C2 reports their mean
    and its t test across networks."""
    from orisel.science import statistics as st

    data = _data(HOLDING)
    k = np.arange(CHECKPOINTS, dtype=float)
    gaps = []
    for j, v in enumerate(data["variants"].values()):
        traj = v["trajectory"] or []
        for i, t in enumerate(traj):
            own = (0.03 + 0.02 * j) * np.cos((1.1 + 0.3 * j) * i)
            t["gratings"]["layer4"]["mean_gosi"] = 0.1 + 0.008 * i + own
        if traj:
            test = np.array([t["metrics"]["test"]["accuracy"] for t in traj])
            covariates = np.column_stack([k, [t["metrics"]["train"]["accuracy"] for t in traj]])
            lower = np.array([t["gratings"]["layer1"]["mean_gosi"] for t in traj])
            higher = np.array([t["gratings"]["layer4"]["mean_gosi"] for t in traj])
            gaps.append(
                st.partial_spearman(lower, test, covariates)
                - st.partial_spearman(higher, test, covariates)
            )
    assert len(gaps) == 3
    assert min(gaps) > 0.5
    assert np.ptp(gaps) > 0
    c2 = claims(_typed(data))[1]
    reported = c2.value.split("lower minus higher layers' partial r: ")[1]
    assert reported.startswith(f"{np.mean(gaps):.2f} [")
    assert reported.endswith(", 3 networks")
    assert "lower against higher layers" in c2.statistic
