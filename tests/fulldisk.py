"""A disk that really fills: a small tmpfs mounted by the test (root), and a file that takes
every byte left on it."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "32m") -> Iterator[Path]:
    """A tmpfs of `size` at `path` for the block; skipped where mounting is not allowed."""
    path.mkdir(parents=True, exist_ok=True)
    cmd = ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(path)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        pytest.skip("no mount command: a full disk needs a tmpfs mounted by the test")
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs (root is needed): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=True)


@contextlib.contextmanager
def filled(folder: Path, leave: int = 0) -> Iterator[Path]:
    """The disk under `folder` full for the block (a file holding every free byte but
    `leave`), then freed again."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        size = 1 << 20
        while size:  # smaller writes after a refused one, down to the last byte free
            try:
                os.write(fd, b"\0" * size)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                size //= 2
        os.ftruncate(fd, os.fstat(fd).st_size - leave)
    finally:
        os.close(fd)
    try:
        yield filler
    finally:
        filler.unlink()


def files_under(root: Path) -> list[str]:
    """Every file below `root` (hidden and temporary ones too), as sorted relative paths."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if not p.is_dir())
