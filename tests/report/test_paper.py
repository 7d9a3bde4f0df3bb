"""The claims report's statistics on known answers, and its verdicts on made-up numbers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from orisel.report.paper import claims, rank, render, spearman, spearman_test


def test_rank_shares_ties() -> None:
    np.testing.assert_array_equal(rank(np.array([3.0, 1.0, 3.0, 2.0])), [3.5, 1, 3.5, 2])


def test_spearman_known_values() -> None:
    x = np.arange(6.0)
    assert spearman(x, x**3) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    # d = (0, 0, 1, -1): 1 - 6 * 2 / (4 * 15) = 0.8
    assert spearman(np.arange(4.0), np.array([0.0, 1.0, 3.0, 2.0])) == pytest.approx(0.8)


def test_exact_permutation_p_for_a_perfect_order() -> None:
    # Of the 24 orders of 4 points, only the identity and its reverse reach |r| = 1.
    out = spearman_test(np.arange(4.0), np.arange(4.0) * 2)
    assert out["r"] == pytest.approx(1.0)
    assert out["p"] == pytest.approx(2 / 24)
    assert out["ci_low"] <= 1.0 <= out["ci_high"] + 1e-12


def _layers(mean: float, above: float, null_above: float) -> dict[str, Any]:
    return {
        name: {
            "mean_gosi": mean, "fraction_above_threshold": above,
            "null_fraction_above_threshold": null_above, "units": 8, "dead": 0,
            "fraction_selective": above, "null_mean_gosi": 0.1,
            "histogram_edges": [0.0, 0.5, 1.0], "histogram": [4, 4],
            "null_histogram_density": [1.0, 0.0],
        }
        for name in ("layer1", "layer2", "layer3", "layer4")
    }  # fmt: skip


def _variant(c: float, seed: int, acc: float, gosi: float) -> dict[str, Any]:
    metrics = {"train": {"accuracy": acc + 0.05}, "test": {"accuracy": acc}}
    tune = {
        "epoch": 10.0, "metrics": metrics, "threshold": 0.33, "permutations": 10,
        "gratings": _layers(gosi, 0.6, 0.05), "bars": _layers(gosi, 0.5, 0.05),
    }  # fmt: skip
    trajectory = [
        {**tune, "epoch": e, "metrics": {"test": {"accuracy": a}}, "gratings": _layers(g, 0.5, 0)}
        for e, a, g in zip(
            range(6), np.linspace(0.1, 0.6, 6), np.linspace(0.1, 0.5, 6), strict=True
        )
    ]
    split = {
        "by": "gosi", "layer": "layer1",
        "top50": {"loss_increase_mean": 1.0, "loss_increase_sem": 0.1, "accuracy": 0.3},
        "bottom50": {"loss_increase_mean": 0.2, "loss_increase_sem": 0.1, "accuracy": 0.6},
    }  # fmt: skip
    inv = {
        "spec": {"ablate_layers": ["layer1"], "shift": 3, "layers": ["layer4"]},
        "images": 100,
        "summary": {
            "layer1:top50": {"correlation": 0.5, "correlation_sd": 0.1, "consistency": 0.6,
                             "consistency_sd": 0.1},
            "layer1:random": {"correlation": 0.7, "correlation_sd": 0.1, "consistency": 0.7,
                              "consistency_sd": 0.1},
        },
    }  # fmt: skip
    return {
        "corruption": c, "seed": seed, "epochs_trained": 10.0, "epochs_configured": 10,
        "best": {"epoch": 10.0, "metrics": metrics}, "manifest_sha256": "a" * 64,
        "data_sha256": "b" * 64, "code_version": "test", "tune": tune,
        "trajectory": trajectory if c == 0 else None,
        "ablate": {"splits": [split], "test_images": 100, "curves": []} if c == 0 else None,
        "invariance": inv if c == 0 else None,
    }  # fmt: skip


def _data(gosis: list[float]) -> dict[str, Any]:
    accs = [0.8, 0.7, 0.6, 0.5]
    names = ["cnn7-c0-s0", "cnn7-c0.2-s0", "cnn7-c0.4-s0", "cnn7-c0.6-s0"]
    return {
        "variants": {
            n: _variant(float(n.split("-c")[1].split("-")[0]), 0, a, g)
            for n, a, g in zip(names, accs, gosis, strict=True)
        }
    }


def test_every_claim_holds_on_numbers_made_to_hold() -> None:
    rows = claims(_data([0.6, 0.5, 0.4, 0.3]))
    assert [r["holds"] for r in rows] == [True, True, False, True, True]
    # C3: 4 networks, a perfect order; the exact p (2/24) misses 0.05, and the table says so.
    assert "r=1.00" in rows[2]["value"]
    assert "p=0.0833" in rows[2]["value"]


def test_a_claim_that_fails_is_reported_as_failing(tmp_path: Path) -> None:
    data = _data([0.3, 0.4, 0.5, 0.6])  # selectivity falls as accuracy rises
    for v in data["variants"].values():
        if v["ablate"]:
            s = v["ablate"]["splits"][0]
            s["top50"], s["bottom50"] = s["bottom50"], s["top50"]
    rows = claims(data)
    assert rows[2]["holds"] is False
    assert "r=-1.00" in rows[2]["value"]
    assert rows[3]["holds"] is False
    assert "1/1 bottom > top" in rows[3]["value"]
    out = render(data, tmp_path / "r.md")
    text = out.read_text()
    assert "| C4 ablating the most selective" in text
    assert "| no |" in text
    assert (tmp_path / "r" / "c3_gosi_vs_accuracy.png").stat().st_size > 1000


def test_claims_without_their_analyses_are_not_tested() -> None:
    data = _data([0.6, 0.5, 0.4, 0.3])
    for v in data["variants"].values():
        v["ablate"] = v["invariance"] = v["trajectory"] = None
    rows = claims(data)
    assert [r["holds"] for r in rows[1:2] + rows[3:]] == [None, None, None]
    assert not math.isnan(float(rows[2]["value"].split("r=")[1].split(" ")[0]))
