"""Progress bars for long library calls, on stderr and only when the caller switched them on
(the command line does, unless -q), so library code never prints on its own."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")
_SHOWN: ContextVar[bool] = ContextVar("orisel_progress_shown", default=False)
# A service job's progress sink: called with (phase, fraction of the current step) as bars move.
_SINK: ContextVar[Callable[[str, float], None] | None] = ContextVar(
    "orisel_progress_sink", default=None
)
SINK_EVERY_S = 1.0


@contextlib.contextmanager
def reported(sink: Callable[[str, float], None]) -> Iterator[None]:
    """Within the block, bars also report (phase, fraction) to `sink`, at most once a second
    (a job's progress through Watch); `sink` may raise to stop the work (a cancel)."""
    token = _SINK.set(sink)
    try:
        yield
    finally:
        _SINK.reset(token)


class _Sink:
    def __init__(self, sink: Callable[[str, float], None], desc: str, total: int) -> None:
        self.sink, self.desc, self.total = sink, desc, max(total, 1)
        self.done, self.last = 0, 0.0

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= SINK_EVERY_S or self.done >= self.total:
            self.last = now
            self.sink(self.desc, min(self.done / self.total, 1.0))


@contextlib.contextmanager
def shown(on: bool = True) -> Iterator[None]:
    """Within the block, long calls draw progress bars (with ETA) on stderr."""
    token = _SHOWN.set(on)
    try:
        yield
    finally:
        _SHOWN.reset(token)


def bar(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterable[T]:
    """`items`, with a progress bar while bars are shown (and reported to a job's sink)."""
    sink = _SINK.get()
    if sink is not None and total:
        return _reporting(items, _Sink(sink, desc, total))
    if not _SHOWN.get():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)


def _reporting(items: Iterable[T], sink: _Sink) -> Iterator[T]:
    for item in items:
        yield item
        sink.update(1)


class _Silent:
    def update(self, n: int = 1) -> None:
        """Nothing to draw."""


@contextlib.contextmanager
def counter(total: int, desc: str, unit: str = "it") -> Iterator[Any]:
    """A bar advanced by hand (`.update(n)`), or a silent stand-in."""
    sink = _SINK.get()
    if sink is not None:
        yield _Sink(sink, desc, total)
        return
    if not _SHOWN.get():
        yield _Silent()
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True) as t:
        yield t


PROGRESS_STEPS = 50
PROGRESS_EVERY_S = 5.0


class ProgressDue:
    """When a training loop reports progress: every PROGRESS_STEPS steps, or sooner once
    PROGRESS_EVERY_S seconds passed, so a slow machine's bar still moves every few seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.last = clock()

    def __call__(self, step: int) -> bool:
        now = self.clock()
        if step % PROGRESS_STEPS == 0 or now - self.last >= PROGRESS_EVERY_S:
            self.last = now
            return True
        return False
