"""What every claim row shares: the layer groups, the significance level, number formatting,
the reference networks and the row itself (claims.py: C1-C3; causal.py: C4-C6)."""

from __future__ import annotations

from typing import Any

import numpy as np

from orisel.science import statistics as st

LOWER = ("layer1", "layer2", "layer3")
HIGHER = ("layer4", "layer5", "layer6", "fc1")
ALPHA = 0.05


def fmt(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.{digits}f}"


def layer_mean(layers: dict[str, Any], group: tuple[str, ...]) -> float:
    """Mean gOSI over the layers of `group` that a tuning has."""
    values = [layers[n]["mean_gosi"] for n in group if n in layers]
    return float(np.mean(values)) if values else float("nan")


def reference(variants: dict[str, Any]) -> list[str]:
    """The networks with the least label corruption (the paper's ordinary networks)."""
    low = min(v["corruption"] for v in variants.values())
    return [n for n, v in variants.items() if v["corruption"] == low]


def row(
    claim: str, statistic: str, null: str, test: st.Test | None, value: str, holds: bool | None
) -> dict[str, Any]:
    return {
        "claim": claim,
        "statistic": statistic,
        "null": null,
        "n": test.n if test is not None else 0,
        "effect": test.effect if test is not None else None,
        "ci": [test.ci_low, test.ci_high] if test is not None else None,
        "p": test.p if test is not None else None,
        "value": value,
        "holds": holds,
    }


def significant(test: st.Test, sign: float = 1.0) -> bool:
    return bool(sign * test.effect > 0 and test.p <= ALPHA)
