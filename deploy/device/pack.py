"""Pack trained runs for the trip back from a lent GPU machine, most useful first.

The device tool returns at most 8 files of 16 MiB (64 MiB in all), so checkpoints travel
without their optimizer state (analysis needs only the weights; the full checkpoints stay
on the machine) and in this order until the budget is spent: every manifest and log, each
run's best and last checkpoint, each seed's initial network, then the training trajectory
of the seed-0 clean run, then that of the most corrupted run.

usage: python deploy/device/pack.py RUNS_DIR OUT_DIR
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
TRAJECTORY_EPOCHS = {
    0.25,
    0.5,
    0.75,
    1.0,
    1.25,
    1.5,
    1.75,
    2.0,
    3,
    5,
    7,
    10,
    15,
    20,
    30,
    40,
    50,
    60,
    80,
    100,
    120,
    150,
    200,
}


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


def wanted(runs: Path) -> list[tuple[str, Path]]:
    """(archive name, source) pairs in priority order."""
    order: list[tuple[str, Path]] = []
    run_dirs = sorted(p for p in runs.iterdir() if p.is_dir())
    for run in run_dirs:
        order += [(f"{run.name}/manifest.json", run / "manifest.json")]
        if (runs / f"{run.name}.log").is_file():
            order.append((f"{run.name}.log", runs / f"{run.name}.log"))
    for run in run_dirs:
        ckpts = sorted((run / "checkpoints").glob("e*.pt"), key=_epoch)
        if (run / "best.pt").is_file():
            order.append((f"{run.name}/best.pt", run / "best.pt"))
        if ckpts:
            order.append((f"{run.name}/checkpoints/{ckpts[-1].name}", ckpts[-1]))
    for run in run_dirs:
        if run.name.startswith("cnn7-c0-"):
            ckpts = sorted((run / "checkpoints").glob("e*.pt"), key=_epoch)
            if ckpts:
                order.append((f"{run.name}/checkpoints/{ckpts[0].name}", ckpts[0]))
    for run in (runs / "cnn7-c0-s0", max(run_dirs, key=lambda p: p.name, default=runs)):
        for ckpt in sorted((run / "checkpoints").glob("e*.pt"), key=_epoch):
            if _epoch(ckpt) in TRAJECTORY_EPOCHS:
                order.append((f"{run.name}/checkpoints/{ckpt.name}", ckpt))
    unique = dict.fromkeys(order)
    return [(n, p) for n, p in unique if p.is_file()]


def summary(runs: Path) -> None:
    for manifest in sorted(runs.glob("*/manifest.json")):
        m = json.loads(manifest.read_text())
        last, best = m["history"][-1], m.get("best") or {}
        sys.stdout.write(
            f"{manifest.parent.name}: epoch {last['epoch']}, "
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


def main(runs: Path, out: Path) -> None:
    summary(runs)
    out.mkdir(parents=True, exist_ok=True)
    items = [(n, _slim(p) if p.suffix == ".pt" else p.read_bytes()) for n, p in wanted(runs)]
    groups, left = bins(items)
    for index, group in enumerate(groups):
        with tarfile.open(out / f"runs-{index}.tar", "w") as archive:
            for name, data in group:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    sys.stdout.write(f"packed into {len(groups)} files; left on the machine: {left}\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
