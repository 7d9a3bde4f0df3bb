"""What every claim row shares: the layer groups, the significance level, number formatting,
the reference networks and the row itself (claims.py: C1-C3; causal.py: C4-C6)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from orisel.report.data import Network
from orisel.science import statistics as st
from orisel.scoring.results import LayerTrend, LayerTuning

LOWER = ("layer1", "layer2", "layer3")
HIGHER = ("layer4", "layer5", "layer6", "fc1")
ALPHA = 0.05


def fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def layer_mean(
    layers: Mapping[str, LayerTrend | LayerTuning] | None, group: tuple[str, ...]
) -> float:
    """Mean gOSI over the layers of `group` that a tuning has."""
    values = [layers[n].mean_gosi for n in group if n in layers] if layers else []
    return float(np.mean(values)) if values else float("nan")


def reference(variants: Mapping[str, Network]) -> list[str]:
    """The networks with the least label corruption (the paper's ordinary networks)."""
    low = min(v.corruption for v in variants.values())
    return [n for n, v in variants.items() if v.corruption == low]


@dataclass(frozen=True)
class ClaimRow:
    """One claim as the table states it: the statistic, its null, n, the effect with its
    95% interval and p, our value in words and the verdict (None: not tested)."""

    claim: str
    statistic: str
    null: str
    n: int
    effect: float | None
    ci: tuple[float, float] | None
    p: float | None
    value: str
    holds: bool | None
    interval: Literal["95% CI", "range"] = "95% CI"  # what `ci` is

    @property
    def key(self) -> str:
        """The claim's label (C1, C4m, ...), as the prose names it."""
        return self.claim.split()[0]

    def interval_text(self) -> str:
        """`ci` as the table and the prose show it: a range is never dressed as a CI."""
        if self.ci is None:
            return "n/a"
        low, high = fmt(self.ci[0]), fmt(self.ci[1])
        return f"(range {low} to {high})" if self.interval == "range" else f"[{low}, {high}]"


def row(
    claim: str,
    statistic: str,
    null: str,
    test: st.Test | None,
    value: str,
    holds: bool | None,
    interval: Literal["95% CI", "range"] = "95% CI",
) -> ClaimRow:
    if test is None:
        return ClaimRow(claim, statistic, null, 0, None, None, None, value, holds, interval)
    ci = (test.ci_low, test.ci_high)
    return ClaimRow(claim, statistic, null, test.n, test.effect, ci, test.p, value, holds, interval)


def significant(test: st.Test, sign: float = 1.0) -> bool:
    return bool(sign * test.effect > 0 and test.p <= ALPHA)
