"""A population's training state in one small folder, carried between short GPU runs.

A pack holds, for every run folder under a root (a folder with a manifest.json):

    manifest.json                  exact: config, seeds, data sha256, history, best, sessions
    checkpoints/<resume>.pt        exact: the whole state at the population's resume step
                                   (weights, BatchNorm statistics, the optimizer's moments and
                                   step counts, running metrics, best so far)
    best.pt                        weights only, floats as `analysis_dtype`: for the analyses
    checkpoints/<trajectory>.pt    the same, at `trajectory_epochs`, for `trajectory_runs`

Nothing else is needed to continue training bit for bit: shuffling and augmentation are a
pure function of (seed, epoch, batch) (training/loop.py), so the step is both the random
state and the data position. The resume step is the last one every network has a checkpoint
for, as PopulationTrainer resumes a population stopped between two networks' checkpoints.
Every other checkpoint stays behind.

Files are compressed losslessly (a float's four bytes split into planes, whose sign and
exponent bytes compress well, then zlib), concatenated, and cut into parts of at most
`part_bytes`: the device returns at most 8 files of 16 MiB. index.json, written last, names
each file's place in that stream and the sha256 of every file and part, so a pack cut short
by a kill, or a part lost on the way, is refused rather than unpacked.
"""

from __future__ import annotations

import hashlib
import io
import json
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import numpy as np
import torch

from orisel.kernel.atomic import atomic_path, atomic_write_json
from orisel.kernel.errors import FailedPrecondition, NotFound
from orisel.models.checkpoint import BEST, MANIFEST, list_checkpoints, read_manifest

FORMAT = "orisel.pack/1"
INDEX = "index.json"
PART_BYTES = 15 * 2**20
# Dense early, where selectivity changes most; at about 0.62 MB each (cnn7, float16) these keep
# the pack of 12 networks at 200 epochs under 60 MB (docs/benchmarks.md).
TRAJECTORY_EPOCHS = (0, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 20, 50, 100, 200)
_PLANES = 4  # bytes of a float32; torch.save aligns every tensor's bytes to 64


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode(data: bytes, planes: int) -> bytes:
    """Lossless: the bytes transposed into `planes` planes (1: as they are), then zlib."""
    if planes > 1:
        pad = -len(data) % planes
        lanes = np.frombuffer(data + bytes(pad), np.uint8).reshape(-1, planes)
        data = pad.to_bytes(1, "little") + lanes.T.tobytes()
    return zlib.compress(data, 6)


def decode(data: bytes, planes: int) -> bytes:
    raw = zlib.decompress(data)
    if planes == 1:
        return raw
    pad, body = raw[0], raw[1:]
    lanes = np.frombuffer(body, np.uint8).reshape(planes, -1).T.tobytes()
    return lanes[: len(lanes) - pad]


def slim(path: Path, dtype: torch.dtype) -> bytes:
    """A checkpoint as the analyses read it: its weights (floats as `dtype`) and metadata,
    without the optimizer's state. One slimmed already is returned as it is."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if "optimizer" not in ckpt:
        return path.read_bytes()
    for key in ("optimizer", "scaler", "running"):
        ckpt.pop(key, None)
    ckpt["model"] = {
        k: v.to(dtype) if v.is_floating_point() else v for k, v in ckpt["model"].items()
    }
    ckpt["weights_dtype"] = str(dtype).removeprefix("torch.")
    ckpt["resumable"] = False
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return buf.getvalue()


@dataclass(frozen=True)
class Entry:
    path: str  # relative to the root
    kind: str  # manifest | state | best | trajectory
    data: bytes


def _runs(root: Path) -> list[Path]:
    return sorted(m.parent for m in root.rglob(MANIFEST) if (m.parent / "checkpoints").is_dir())


def _full(path: Path) -> bool:
    return "optimizer" in torch.load(path, map_location="cpu", weights_only=True)


def resume_step(runs: Sequence[Path]) -> int:
    """The last step at which every run has a full checkpoint: where the population resumes."""
    steps = [
        {int(p.stem.split("_s")[1]) for p in list_checkpoints(run)[-2:] if _full(p)} for run in runs
    ]
    common = set.intersection(*steps) if steps else set()
    if not common:
        raise FailedPrecondition(
            "the runs have no full checkpoint at one step among their last two: "
            + ", ".join(f"{r.name} {sorted(s)}" for r, s in zip(runs, steps, strict=True))
        )
    return max(common)


def entries(
    root: Path,
    trajectory_runs: Sequence[str] = ("cnn7-c0-s0",),
    trajectory_epochs: Iterable[float] = TRAJECTORY_EPOCHS,
    analysis_dtype: torch.dtype = torch.float16,
) -> tuple[int, list[Entry]]:
    """The resume step and what a pack of `root` holds, in the order it is packed."""
    runs = _runs(root)
    if not runs:
        raise NotFound(f"no training runs under {root}")
    step = resume_step(runs)
    wanted = {round(float(e), 6) for e in trajectory_epochs}
    out: list[Entry] = []
    for run in runs:
        rel = run.relative_to(root).as_posix()
        ckpts = {int(p.stem.split("_s")[1]): p for p in list_checkpoints(run)}
        state = ckpts[step]
        out.append(Entry(f"{rel}/{MANIFEST}", "manifest", (run / MANIFEST).read_bytes()))
        out.append(Entry(f"{rel}/checkpoints/{state.name}", "state", state.read_bytes()))
        best = _best(run, state)
        if best is not None:
            out.append(Entry(f"{rel}/{BEST}", "best", slim(best, analysis_dtype)))
        if not any(fnmatchcase(run.name, pattern) for pattern in trajectory_runs):
            continue
        for h in read_manifest(run).get("history", []):
            # The resume step's checkpoint is packed whole already.
            if round(float(h["epoch"]), 6) in wanted and h["step"] < step:
                path = run / h["file"]
                if path.is_file():
                    out.append(
                        Entry(f"{rel}/{h['file']}", "trajectory", slim(path, analysis_dtype))
                    )
    return step, out


def _best(run: Path, state: Path) -> Path | None:
    """The best checkpoint as of the resume step. A run stopped after writing a newer one
    (best.pt then holds that) trains it again, so its best is the one `state` names."""
    named = torch.load(state, map_location="cpu", weights_only=True)["best"]
    if named is not None and (run / str(named["file"])).is_file():
        return run / str(named["file"])
    return run / BEST if (run / BEST).is_file() else None


def _write(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def _fresh(folder: Path, what: str) -> None:
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise FailedPrecondition(f"{what} {folder} is not a new or empty folder (left untouched)")


def pack(
    root: Path,
    dest: Path,
    trajectory_runs: Sequence[str] = ("cnn7-c0-s0",),
    trajectory_epochs: Iterable[float] = TRAJECTORY_EPOCHS,
    analysis_dtype: torch.dtype = torch.float16,
    part_bytes: int = PART_BYTES,
) -> dict[str, Any]:
    """Pack the runs under `root` into the new or empty folder `dest`; returns the index."""
    _fresh(dest, "the pack's folder")
    step, items = entries(root, trajectory_runs, trajectory_epochs, analysis_dtype)
    stream = bytearray()
    files: list[dict[str, Any]] = []
    by_kind: dict[str, int] = {}
    for item in items:
        planes = 1 if item.kind == "manifest" else _PLANES
        coded = encode(item.data, planes)
        by_kind[item.kind] = by_kind.get(item.kind, 0) + len(coded)
        files.append(
            {
                "path": item.path,
                "kind": item.kind,
                "planes": planes,
                "offset": len(stream),
                "length": len(coded),
                "bytes": len(item.data),
                "sha256": _digest(item.data),
            }
        )
        stream += coded
    parts = []
    for k, start in enumerate(range(0, max(len(stream), 1), part_bytes)):
        chunk = bytes(stream[start : start + part_bytes])
        name = f"part-{k:03d}.bin"
        _write(dest / name, chunk)
        parts.append({"name": name, "bytes": len(chunk), "sha256": _digest(chunk)})
    index = {
        "format": FORMAT,
        "resume_step": step,
        "runs": [i.path.removesuffix(f"/{MANIFEST}") for i in items if i.kind == "manifest"],
        "analysis_dtype": str(analysis_dtype).removeprefix("torch."),
        "packed_bytes": len(stream),
        "packed_bytes_by_kind": by_kind,
        "parts": parts,
        "files": files,
    }
    atomic_write_json(dest / INDEX, index)
    return index


def read_index(src: Path) -> dict[str, Any]:
    if not (src / INDEX).is_file():
        raise NotFound(f"{src} holds no {INDEX}: not a pack, or one cut short")
    index: dict[str, Any] = json.loads((src / INDEX).read_text())
    if index.get("format") != FORMAT:
        raise FailedPrecondition(f"{src} is not a pack of this format ({FORMAT})")
    return index


def missing_parts(src: Path) -> list[str]:
    """The parts of the pack in `src` that are absent or not the bytes its index names."""
    return [
        p["name"]
        for p in read_index(src)["parts"]
        if not (src / p["name"]).is_file() or _digest((src / p["name"]).read_bytes()) != p["sha256"]
    ]


def unpack(src: Path, root: Path) -> dict[str, Any]:
    """The run folders packed in `src`, written into the new or empty folder `root`."""
    index = read_index(src)
    bad = missing_parts(src)
    if bad:
        raise FailedPrecondition(f"the pack in {src} lacks parts or holds damaged ones: {bad}")
    _fresh(root, "the folder to unpack into")
    stream = b"".join((src / p["name"]).read_bytes() for p in index["parts"])
    for f in index["files"]:
        data = decode(stream[f["offset"] : f["offset"] + f["length"]], f["planes"])
        if _digest(data) != f["sha256"]:
            raise FailedPrecondition(f"{f['path']} in the pack in {src} is damaged")
        target = root / f["path"]
        if not target.resolve().is_relative_to(root.resolve()):
            raise FailedPrecondition(f"the pack in {src} names a path outside it: {f['path']}")
        _write(target, data)
    return index
