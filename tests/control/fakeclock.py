"""A clock the test moves by hand: leases lapse and messages fall due when it says, with no
sleeping on the wall clock."""

from __future__ import annotations

import threading
import time


class FakeClock:
    """control.clock.Clock, standing still until advanced."""

    def __init__(self, now: float | None = None) -> None:
        self.now = time.time() if now is None else now
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds
