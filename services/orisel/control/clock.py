"""Where the job database reads the time: this process's wall clock unless one is injected."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Now, in Unix seconds."""

    def time(self) -> float: ...


class WallClock:
    """This process's clock (time.time): the default."""

    def time(self) -> float:
        return time.time()


WALL = WallClock()
