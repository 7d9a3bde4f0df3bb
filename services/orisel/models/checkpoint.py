"""Checkpoints are plain dicts written atomically; the run folder is laid out as below.

<run>/manifest.json                 config, seeds, data, environment, history, best
<run>/checkpoints/e<epoch>_s<step>.pt  every scheduled checkpoint (model + optimizer)
<run>/best.pt                       a copy of the checkpoint with the best validation score
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from orisel.kernel.atomic import atomic_path, atomic_write_json
from orisel.kernel.errors import FailedPrecondition, NotFound

CHECKPOINT_FORMAT = "orisel.checkpoint/1"
MANIFEST = "manifest.json"
BEST = "best.pt"
_NAME = re.compile(r"^e(\d+\.\d{3})_s(\d{8,})\.pt$")


def checkpoint_name(epoch: float, step: int) -> str:
    return f"e{epoch:07.3f}_s{step:08d}.pt"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """The run's checkpoints in training order (temporary files are never matched)."""
    found = [p for p in (run_dir / "checkpoints").glob("*.pt") if _NAME.match(p.name)]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(2)))  # type: ignore[union-attr]


def save_checkpoint(path: Path, ckpt: dict[str, Any]) -> None:
    """Write `ckpt` so that equal contents give equal bytes, whichever worker wrote it.

    Saved through an open file: torch.save given a path names the archive's records after
    the file (here a random temporary name), so the same state saved twice differed."""
    with atomic_path(path) as tmp, open(tmp, "wb") as out:
        torch.save(ckpt, out)


def copy_checkpoint(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def load_checkpoint(path: Path, model_name: str | None = None) -> dict[str, Any]:
    """Load a checkpoint; refuse one written for a different model."""
    if not path.is_file():
        raise NotFound(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        raise FailedPrecondition(f"checkpoint {path} cannot be read ({exc})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise FailedPrecondition(f"{path} is not an orisel checkpoint ({CHECKPOINT_FORMAT})")
    if model_name is not None and ckpt["model_name"] != model_name:
        raise FailedPrecondition(
            f"checkpoint {path} is for model {ckpt['model_name']!r}, not {model_name!r}; "
            f"pick a run of {model_name} or set --model {ckpt['model_name']}"
        )
    return ckpt


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = run_dir / MANIFEST
    if not path.is_file():
        raise NotFound(f"no run in {run_dir} ({MANIFEST} is missing)")
    manifest: dict[str, Any] = json.loads(path.read_text())
    return manifest


def write_manifest(run_dir: Path, manifest: dict[str, Any]) -> None:
    atomic_write_json(run_dir / MANIFEST, manifest)
