"""C7, the selectivity study: slopes on alpha within seeds, recomputed here by least squares
with a dummy per seed, verdicts on numbers made to hold or to fail, and the study's networks
kept out of C1-C6."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy import stats

from orisel.report.claims import claims
from orisel.report.collect import collect
from orisel.report.data import ReportData
from orisel.report.paper import render
from tests.report.test_paper import HOLDING, _data, _typed, _variant

ALPHAS = (-1.0, 1.0, 2.0)
SEEDS = (0, 1, 2)


def _noise(seed: int, alpha: float) -> float:
    """A fixed wiggle per network, so no slope is an exact fit."""
    return float(np.sin(3.1 * seed + 1.7 * alpha))


def _outcome(seed: int, alpha: float, slopes: dict[str, float]) -> dict[str, float]:
    e = 1e-3 * _noise(seed, alpha)
    return {
        "gosi": 0.3 + 0.02 * seed + slopes["gosi"] * alpha + e,
        "test": 0.7 + 0.01 * seed + slopes["test"] * alpha - e,
        "gap": 0.1 + slopes["gap"] * alpha + 2 * e,
        "invariance": 0.5 - 0.01 * seed + slopes["invariance"] * alpha + e,
    }


def _network(seed: int, alpha: float, slopes: dict[str, float]) -> dict[str, Any]:
    o = _outcome(seed, alpha, slopes)
    v = _variant(0.0, seed, o["test"], o["gosi"], (0.8, 0.75, 0.85)[seed])
    metrics = {"train": {"accuracy": o["test"] + o["gap"]}, "test": {"accuracy": o["test"]}}
    v["best"]["metrics"] = metrics
    intact = {
        "correlation": 0.9,
        "correlation_sd": 0.1,
        "consistency": 0.9,
        "consistency_sd": 0.1,
        "invariance": o["invariance"],
    }
    v["invariance"] = {
        "spec": {"ablate_layers": ["layer1"], "shift": 3, "layers": ["layer4"]},
        "images": 100,
        "summary": {**(v["invariance"] or {}).get("summary", {}), "none:intact": intact},
    }
    if alpha:
        v |= {"select_reg": alpha, "ablate": None, "trajectory": None}
    return v


def _study(slopes: dict[str, float]) -> ReportData:
    data = _data(HOLDING)
    for seed in SEEDS:  # the reference networks are the study's alpha 0
        data["variants"][f"cnn7-c0-s{seed}"] = _network(seed, 0.0, slopes)
    data["regularized"] = {
        f"cnn7-c0-s{s}-a{a:g}": _network(s, a, slopes) for a in ALPHAS for s in SEEDS
    }
    return _typed(data)


def _by_hand(y: list[float], alpha: list[float], seeds: list[int]) -> tuple[float, float, int]:
    """Least-squares slope on alpha with one intercept per seed, its t-test p and df."""
    x = np.column_stack([alpha, *[[1.0 * (s == k) for s in seeds] for k in sorted(set(seeds))]])
    beta, *_ = np.linalg.lstsq(x, np.array(y), rcond=None)
    df = len(y) - x.shape[1]
    resid = np.array(y) - x @ beta
    cov = resid @ resid / df * np.linalg.inv(x.T @ x)
    t = beta[0] / np.sqrt(cov[0, 0])
    return float(beta[0]), float(2 * stats.t.sf(abs(t), df)), df


HOLDS = {"gosi": 0.1, "test": 0.02, "gap": -0.01, "invariance": 0.03}


def test_c7_is_each_outcomes_slope_within_seeds() -> None:
    table = claims(_study(HOLDS))
    c7 = {r.key: r for r in table}["C7"]
    networks = [(s, a) for s in SEEDS for a in (0.0, *ALPHAS)]
    keys = ("gosi", "test", "gap", "invariance")
    names = ("lower-layer gOSI", "test accuracy", "generalization gap", "shift-invariance")
    assert [q.name for q in c7.parts] == list(names)
    for key, part in zip(keys, c7.parts, strict=True):
        y = [_outcome(s, a, HOLDS)[key] for s, a in networks]
        slope, p, df = _by_hand(y, [a for _, a in networks], [s for s, _ in networks])
        assert part.test.effect == pytest.approx(slope, rel=1e-9)
        assert part.test.p == pytest.approx(p, rel=1e-6)
        assert part.test.df == df == 12 - 3 - 1
    assert [q.sign for q in c7.parts] == [1.0, 1.0, -1.0, 1.0]
    assert c7.verdict == "yes"
    # Holm runs across every claim with a p, C7 among them.
    assert c7.family == sum(r.p is not None and not np.isnan(r.p) for r in table) > 4
    assert "12 networks, alphas -1, 0, 1, 2, 3 seed(s)" in c7.value
    assert "a short run (10 epochs" in c7.value


def test_c7_fails_where_selectivity_costs_accuracy() -> None:
    c7 = {r.key: r for r in claims(_study(HOLDS | {"test": -0.02}))}["C7"]
    assert c7.parts[1].test.effect == pytest.approx(-0.02, abs=1e-3)
    assert c7.verdict == "no"  # significant against its predicted sign


def test_the_study_stays_out_of_c1_to_c6() -> None:
    study = _study(HOLDS)
    alone = {r.key: r for r in claims(study.model_copy(update={"regularized": None}))}
    with_study = {r.key: r for r in claims(study)}
    for key, row in alone.items():
        assert [q.test for q in with_study[key].parts] == [q.test for q in row.parts], key
    assert "C7" not in alone  # no study, no C7 row (the committed report has none)


def test_the_report_shows_the_study(tmp_path: Path) -> None:
    text = render(_study(HOLDS), tmp_path / "report.md").read_text()
    section = text.split("## C7: the selectivity study")[1].split("\n## ")[0]
    assert "This is a short run" in section
    assert section.count("| cnn7-c0-s") == 12
    assert "| cnn7-c0-s1-a2 | 2 | 1 |" in section
    assert "| C7 networks trained to be more orientation-selective" in text


def test_collect_puts_a_network_trained_with_the_term_in_the_study(tmp_path: Path) -> None:
    data = _study(HOLDS)
    for name, v in (
        ("plain", data.variants["cnn7-c0-s0"]),
        ("pushed", data.variants["cnn7-c0-s1"]),
    ):
        folder = tmp_path / name
        folder.mkdir()
        config = {"model": "cnn7", "seed": v.seed, "epochs": 10, "data": {"label_corruption": 0}}
        if name == "pushed":
            config["select_reg"] = 0.5
        manifest = {
            "config": config,
            "history": [{"epoch": 10.0, "metrics": {"train": None}}],
            "best": {"epoch": 10.0, "metrics": {}},
            "data": {"sha256": "b" * 64},
            "environment": {"device": "cpu"}
            if name == "plain"
            else {"device": "cuda:0", "device_name": "NVIDIA H100"},
        }
        (folder / "manifest.json").write_text(json.dumps(manifest))
    got = collect(tmp_path)
    assert list(got.variants) == ["cnn7-c0-s0"]
    assert got.regularized is not None
    assert list(got.regularized) == ["cnn7-c0-s1-a0.5"]
    assert got.regularized["cnn7-c0-s1-a0.5"].select_reg == 0.5
    assert got.variants["cnn7-c0-s0"].select_reg is None
    # The short-run note names the device: a GPU by its model, else torch's device.
    assert got.variants["cnn7-c0-s0"].device == "cpu"
    assert got.regularized["cnn7-c0-s1-a0.5"].device == "NVIDIA H100"


def test_a_short_study_compares_its_alphas_among_themselves() -> None:
    """Networks trained on another recipe than the reference networks (fewer images, as
    `make run`'s study) have no alpha 0 there: the slope runs over the alphas trained."""
    data = _study(HOLDS)
    assert data.regularized is not None
    short = {n: v.model_copy(update={"train_images": 2000}) for n, v in data.regularized.items()}
    c7 = {r.key: r for r in claims(data.model_copy(update={"regularized": short}))}["C7"]
    assert "9 networks, alphas -1, 1, 2, 3 seed(s)" in c7.value
    assert all(q.test.df == 9 - 3 - 1 for q in c7.parts)


def test_a_network_kept_at_its_initialization_is_left_out_and_named(tmp_path: Path) -> None:
    """A term too strong for its recipe leaves the validation loss above the untrained
    network's, so the kept checkpoint is step 0: the same weights at every alpha of a seed.
    Regressing those would test the initialization, so they are left out and said."""
    data = _study(HOLDS)
    assert data.regularized is not None
    stuck = {"cnn7-c0-s0-a2", "cnn7-c0-s1-a-1"}
    reg = {
        n: v.model_copy(update={"best": v.best.model_copy(update={"epoch": 0.0})})
        if n in stuck
        else v
        for n, v in data.regularized.items()
    }
    c7 = {r.key: r for r in claims(data.model_copy(update={"regularized": reg}))}["C7"]
    kept = [(s, a) for s in SEEDS for a in (0.0, *ALPHAS)]
    kept = [(s, a) for s, a in kept if f"cnn7-c0-s{s}-a{a:g}" not in stuck]
    y = [_outcome(s, a, HOLDS)["gosi"] for s, a in kept]
    slope, p, df = _by_hand(y, [a for _, a in kept], [s for s, _ in kept])
    assert c7.parts[0].test.effect == pytest.approx(slope, rel=1e-9)
    assert c7.parts[0].test.p == pytest.approx(p, rel=1e-6)
    assert c7.parts[0].test.df == df == 10 - 3 - 1
    assert "10 networks" in c7.value
    assert "2 of 12 networks left out: their kept checkpoint is their initialization" in c7.value
    text = render(data.model_copy(update={"regularized": reg}), tmp_path / "r.md").read_text()
    assert "| cnn7-c0-s0-a2 | 2 | 0 | 10 | 0 (initialization: left out) |" in text


def test_a_study_kept_at_its_initialization_throughout_is_not_tested() -> None:
    data = _study(HOLDS)
    at_init = {
        n: v.model_copy(update={"best": v.best.model_copy(update={"epoch": 0.0})})
        for n, v in (data.regularized or {}).items()
    }
    plain = {
        n: v.model_copy(update={"best": v.best.model_copy(update={"epoch": 0.0})})
        for n, v in data.variants.items()
    }
    c7 = {
        r.key: r
        for r in claims(data.model_copy(update={"regularized": at_init, "variants": plain}))
    }["C7"]
    assert c7.verdict == "not tested"
    assert "12 of 12 networks left out" in c7.value
