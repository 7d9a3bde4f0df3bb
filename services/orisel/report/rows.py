"""What every claim row shares: the layer groups, the significance level, number formatting,
the reference networks and the row itself (claims.py: C1-C3; causal.py: C4-C6)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
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


Verdict = Literal["yes", "no", "inconclusive", "not tested"]


@dataclass(frozen=True)
class Part:
    """One test a claim needs, with the sign the claim predicts. A claim holds only when
    every part does (an intersection-union test: its p is the largest part's)."""

    name: str
    test: st.Test
    sign: float = 1.0

    @property
    def supports(self) -> bool:
        return significant(self.test, self.sign)

    @property
    def p_decide(self) -> float:
        """The part's p as evidence for the claim: a wrong sign cannot support it (1)."""
        if np.isnan(self.test.p):
            return float("nan")
        return self.test.p if self.sign * self.test.effect > 0 else 1.0

    @property
    def detectable(self) -> float:
        """The smallest effect this design detects with 80% power (two-sided, 0.05)."""
        return st.detectable(self.test.se, self.test.df)

    @property
    def reference(self) -> float:
        """One standard deviation of the units of replication, se * sqrt(df + 1): for a mean
        over networks, their SD; for a slope, the residual SD per SD of the predictor."""
        return float(self.test.se * np.sqrt(self.test.df + 1))

    @property
    def powered(self) -> bool:
        """Whether the design detects, with 80% power, an effect as large as the spread
        between its units of replication; below that, a miss says nothing."""
        return bool(self.detectable <= self.reference)

    def text(self, digits: int = 3) -> str:
        t = self.test
        out = f"{self.name} {fmt(t.effect, digits)} [{fmt(t.ci_low, digits)}, "
        out += f"{fmt(t.ci_high, digits)}], p={fmt(t.p, 4)}"
        return out + (f", {t.df:g} df" if np.isfinite(t.df) else "")


@dataclass(frozen=True)
class ClaimRow:
    """One claim as the table states it: the statistic and null of the test that decides
    it, its parts (every test the claim needs, specificity controls included), our value in
    words, and, once the family is known (`adjust`), its Holm-adjusted p and verdict.

    `gate` is a condition without a p-value that the claim also needs (C1: selective units
    in every layer); False makes the claim fail, None leaves it untested."""

    claim: str
    statistic: str
    null: str
    parts: tuple[Part, ...]
    value: str
    gate: bool | None = True
    p_holm: float = float("nan")
    family: int = 1

    @property
    def key(self) -> str:
        """The claim's label (C1, C4m, ...), as the prose names it."""
        return self.claim.split()[0]

    @property
    def deciding(self) -> Part | None:
        """The part with the weakest evidence for the claim: it decides the verdict."""
        if not self.parts:
            return None
        return max(self.parts, key=lambda q: -np.inf if np.isnan(q.p_decide) else q.p_decide)

    @property
    def p(self) -> float | None:
        """The claim's p: its weakest part's (NaN where a part is untestable)."""
        if not self.parts:
            return None
        ps = [q.p_decide for q in self.parts]
        return float("nan") if np.isnan(ps).any() else max(ps)

    @property
    def n(self) -> int:
        d = self.deciding
        return d.test.n if d else 0

    @property
    def effect(self) -> float | None:
        d = self.deciding
        return d.test.effect if d else None

    @property
    def ci(self) -> tuple[float, float] | None:
        d = self.deciding
        return (d.test.ci_low, d.test.ci_high) if d else None

    @property
    def df(self) -> float | None:
        d = self.deciding
        return d.test.df if d else None

    def interval_text(self) -> str:
        if self.ci is None:
            return "n/a"
        return f"[{fmt(self.ci[0])}, {fmt(self.ci[1])}]"

    def power_text(self) -> str:
        """The deciding part's smallest detectable effect beside one SD of its units."""
        d = self.deciding
        if d is None or np.isnan(d.detectable):
            return "n/a"
        return f"{fmt(d.detectable)} (1 SD {fmt(d.reference)})"

    @property
    def verdict(self) -> Verdict:
        """yes: every part significant with its predicted sign and the claim's Holm p below
        ALPHA. no: a part significant against its sign at the family's Bonferroni level, or
        the claim missed by a design powered for an effect of one SD of its units. Otherwise
        inconclusive: the design could not have told. Untestable: not tested."""
        if self.gate is False:
            return "no"
        if self.gate is None:
            return "not tested"
        if not self.parts:
            return "inconclusive"  # the gate holds, but the test it needs has no data
        if self.p is None or np.isnan(self.p):
            return "not tested"
        if all(q.supports for q in self.parts) and self.p_holm <= ALPHA:
            return "yes"
        if any(q.test.p * self.family <= ALPHA and q.sign * q.test.effect < 0 for q in self.parts):
            return "no"
        d = self.deciding
        return "no" if d is not None and d.powered else "inconclusive"


def adjust(rows: list[ClaimRow]) -> list[ClaimRow]:
    """Holm's correction across the claims that have a p: each row's adjusted p and the
    family's size, on which its verdict rests."""
    p = np.array([np.nan if r.p is None else r.p for r in rows], dtype=float)
    q = st.holm(p)
    m = int((~np.isnan(p)).sum())
    return [replace(r, p_holm=float(h), family=max(m, 1)) for r, h in zip(rows, q, strict=True)]


def significant(test: st.Test, sign: float = 1.0) -> bool:
    return bool(sign * test.effect > 0 and test.p <= ALPHA)
