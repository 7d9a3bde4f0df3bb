"""What produced a result: code version, library versions, command line, hardware."""

from __future__ import annotations

import hashlib
import platform
import subprocess
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def package_version() -> str:
    """The installed package's version; "0+source" when run from a source tree (PYTHONPATH)
    without installing it, as on a lent GPU machine."""
    try:
        return metadata.version("orisel")
    except metadata.PackageNotFoundError:
        return "0+source"


@lru_cache(maxsize=1)
def code_version() -> str:
    """Git commit of the source tree (with '+dirty' for local edits), else the package version."""
    version = package_version()
    src = Path(__file__).resolve().parents[1]  # the orisel package
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=src, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "."],
            cwd=src,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return version
    return f"{version}+g{commit[:12]}{'.dirty' if dirty else ''}"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def environment(device: torch.device) -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {
        "code_version": code_version(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "host": platform.node(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "argv": sys.argv,
    }
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
    return env
