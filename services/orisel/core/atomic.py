"""Write-then-rename, so a killed process never leaves a half-written file behind."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orisel.core.errors import FailedPrecondition


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success rename it onto `target`."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def atomic_write(target: Path, write: Callable[[Path], None]) -> None:
    with atomic_path(target) as tmp:
        write(tmp)


def atomic_write_json(target: Path, obj: Any) -> None:
    def write(path: Path) -> None:
        path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")

    atomic_write(target, write)


OUTPUT_MARKER = ".orisel-output"  # in every folder orisel writes whole; only those it replaces


def check_output(
    target: Path, inputs: Sequence[Path | None] = (), force: bool = False, field: str = "--out"
) -> None:
    """Refuse an output folder whose writing could destroy anything not orisel's own: a
    regular file, a folder with other content, a path that is or contains an input, or an
    earlier orisel output unless `force`."""
    out = Path(target).resolve()
    for given in inputs:
        if given is None:
            continue
        src = Path(given).resolve()
        if src == out or out in src.parents:
            raise FailedPrecondition(
                f"{field} {target} holds the input {given}: name another folder"
            )
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir():
        raise FailedPrecondition(f"{field} {target} is a file (left untouched): name a folder")
    if not any(out.iterdir()):
        return
    if not (out / OUTPUT_MARKER).is_file():
        raise FailedPrecondition(
            f"{field} {target} holds files orisel did not write (left untouched): name a new or "
            "empty folder"
        )
    if not force:
        raise FailedPrecondition(
            f"{field} {target} is an earlier orisel output: pass --force to replace it, or name "
            "a new folder"
        )


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; on success it replaces `target` whole. Only
    a missing or empty target or an earlier orisel output (the marker) is ever replaced;
    interrupted (an exception, Ctrl-C, SIGTERM in the CLI), the temporary folder is removed."""
    check_output(target, force=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        (tmp / OUTPUT_MARKER).write_text("written by orisel; replaced only when asked (--force)\n")
        old = None
        if target.exists():
            old = Path(
                tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent)
            )
            os.replace(target, old / "x")
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
