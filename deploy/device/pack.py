"""Pack what a lent GPU machine produced for the trip back, most useful first.

The device tool returns at most 8 files of 16 MiB (64 MiB in all), so checkpoints travel
without their optimizer state (analysis needs only the weights; the full checkpoints stay
on the machine) and in this order until the budget is spent: every file that is not a
checkpoint (manifests, logs, trajectory tables), each run's best checkpoint, each clean run's
initial network, each run's last checkpoint, then the stored trajectory checkpoints of the
seed-0 clean run (of the population, where there is one). Names in the archives are relative
to ROOT.

usage: python deploy/device/pack.py ROOT OUT_DIR
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import torch

FILE_BUDGET = 15 * 2**20
# The transfer allows 8 files and 64 MiB in all: four full archives stay inside both.
FILES = 4
TRAJECTORY_EPOCHS = {0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3, 5, 10, 20, 50, 100, 150, 200}


def _epoch(path: Path) -> float:
    return float(path.name[1:].split("_")[0])


def _slim(path: Path) -> bytes:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    ckpt.pop("optimizer", None)
    ckpt.pop("scaler", None)
    ckpt["slimmed"] = "optimizer state dropped for transfer; not resumable"
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return buf.getvalue()


def _checkpoints(run: Path) -> list[Path]:
    return sorted((run / "checkpoints").glob("e*.pt"), key=_epoch)


def wanted(root: Path) -> list[tuple[str, Path]]:
    """(archive name, source) pairs in priority order."""
    runs = sorted(
        m.parent for m in root.rglob("manifest.json") if (m.parent / "checkpoints").is_dir()
    )
    order = [p for p in sorted(root.rglob("*")) if p.is_file() and p.suffix not in (".pt", ".png")]
    order += [run / "best.pt" for run in runs]
    order += [
        _checkpoints(run)[0]
        for run in runs
        if run.name.startswith("cnn7-c0-") and _checkpoints(run)
    ]
    order += [_checkpoints(run)[-1] for run in runs if _checkpoints(run)]
    clean = [run for run in runs if run.name == "cnn7-c0-s0"]
    for run in sorted(clean, key=lambda r: r.parent.name != "population")[:1]:
        order += [c for c in _checkpoints(run) if _epoch(c) in TRAJECTORY_EPOCHS]
    unique = dict.fromkeys(p for p in order if p.is_file())
    return [(str(p.relative_to(root)), p) for p in unique]


def summary(root: Path) -> None:
    for manifest in sorted(root.rglob("manifest.json")):
        m = json.loads(manifest.read_text())
        if not m.get("history"):
            continue
        last, best = m["history"][-1], m.get("best") or {}
        sys.stdout.write(
            f"{manifest.parent.relative_to(root)}: epoch {last['epoch']}, "
            f"test acc {last['metrics']['test']['accuracy']:.4f}, best epoch {best.get('epoch')}\n"
        )


def bins(items: list[tuple[str, bytes]]) -> tuple[list[list[tuple[str, bytes]]], list[str]]:
    """Fill archives in priority order; what does not fit the transfer stays behind."""
    groups: list[list[tuple[str, bytes]]] = [[]]
    used, left = 0, []
    for name, data in items:
        size = len(data) + 1024  # tar header and padding
        if used + size > FILE_BUDGET:
            if len(groups) == FILES:
                left.append(name)
                continue
            groups.append([])
            used = 0
        groups[-1].append((name, data))
        used += size
    return groups, left


def main(root: Path, out: Path) -> None:
    summary(root)
    out.mkdir(parents=True, exist_ok=True)
    items = [(n, _slim(p) if p.suffix == ".pt" else p.read_bytes()) for n, p in wanted(root)]
    groups, left = bins(items)
    for index, group in enumerate(groups):
        with tarfile.open(out / f"runs-{index}.tar", "w") as archive:
            for name, data in group:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    sys.stdout.write(
        f"packed into {len(groups)} files; left on the machine: {len(left)} {left[:20]}\n"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
