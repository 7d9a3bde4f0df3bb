"""The per-unit scores an `orisel tune` output holds, as the ablations read them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from orisel.kernel.errors import InvalidArgument, NotFound
from orisel.kernel.tables import read_table


class UnitScores:
    """The per-unit indices of one `orisel tune` output, looked up by layer."""

    def __init__(self, tune_dir: Path, stimulus: str) -> None:
        tables = sorted(Path(tune_dir).glob("units.*"))
        if not tables:
            raise NotFound(f"no units.csv or units.parquet in {tune_dir}; run `orisel tune` first")
        self.cols = read_table(tables[0])
        self.stimulus = stimulus
        if stimulus not in set(self.cols["stimulus"].tolist()):
            raise InvalidArgument("stimulus", f"one scored in {tune_dir}", stimulus)

    def layers(self) -> tuple[str, ...]:
        """The layers scored for this stimulus set, in the table's order."""
        sel = self.cols["stimulus"] == self.stimulus
        return tuple(dict.fromkeys(self.cols["layer"][sel].tolist()))

    def has(self, index: str) -> bool:
        """Whether the tune run computed `index` (csi needs `orisel tune --data`)."""
        sel = self.cols["stimulus"] == self.stimulus
        return index in self.cols and not np.isnan(self.cols[index][sel].astype(float)).all()

    def get(self, layer: str, index: str) -> tuple[np.ndarray, np.ndarray]:
        """(scores, dead) in unit order for `layer`."""
        sel = (self.cols["layer"] == layer) & (self.cols["stimulus"] == self.stimulus)
        if not sel.any():
            scored = sorted(set(self.cols["layer"].tolist()))
            raise NotFound(f"layer {layer} was not scored by the tune run; scored: {scored}")
        order = np.argsort(self.cols["unit"][sel])
        scores = self.cols[index][sel][order].astype(np.float64)
        if np.isnan(scores).all():
            allowed = f"indices the tune run computed ({index} needs `orisel tune --data`)"
            raise InvalidArgument("orders", allowed, index)
        return scores, self.cols["dead"][sel][order].astype(bool)
