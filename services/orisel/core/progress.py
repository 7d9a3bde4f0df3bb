"""Progress bars for long library calls, on stderr and only when the caller switched them on
(the command line does, unless -q), so library code never prints on its own."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")
_SHOWN: ContextVar[bool] = ContextVar("orisel_progress_shown", default=False)


@contextlib.contextmanager
def shown(on: bool = True) -> Iterator[None]:
    """Within the block, long calls draw progress bars (with ETA) on stderr."""
    token = _SHOWN.set(on)
    try:
        yield
    finally:
        _SHOWN.reset(token)


def bar(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterable[T]:
    """`items`, with a progress bar while bars are shown."""
    if not _SHOWN.get():
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, total=total, unit=unit, file=sys.stderr, dynamic_ncols=True)


class _Silent:
    def update(self, n: int = 1) -> None:
        """Nothing to draw."""


@contextlib.contextmanager
def counter(total: int, desc: str, unit: str = "it") -> Iterator[Any]:
    """A bar advanced by hand (`.update(n)`), or a silent stand-in."""
    if not _SHOWN.get():
        yield _Silent()
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True) as t:
        yield t
