"""The torchvision zoo through every analysis: does each classification model run, or is it
refused with a clear error, and how long does each step take?

Every model of `torchvision.models.list_models(module=torchvision.models)`, random weights,
small inputs (32 px; those that cannot run so small at the least size they can), on 8 random
labelled images, through the Python API, each in a process of its own (one model's memory
or failure never touches the next):

    load        orisel.load(model=NAME, input_size=N), the probe pass included
    tune        default layers, gratings (4 orientations x 2 phases x 2 frequencies),
                10 permutations, class selectivity on the images
    ablate      the first and last default layers, fractions 0 and 1 by gOSI, and the median
                split
    invariance  the last default layer read, the first ablated (top and bottom half, and the
                closer in damage of two random sets of the top half's size), shifts of 2 px

A step ends "ok", "refused" (an OriselError: the message says why and what to pass) or
"error" (anything else: a bug). `--table docs/models.md` rewrites the table there.

    python bench/bench_zoo.py                      # the whole zoo (tens of minutes on a CPU)
    python bench/bench_zoo.py --models resnet18,vit_b_32 --table ''
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("load", "tune", "ablate", "invariance")
# The least input size at which a model runs, where 64 px is too small for it.
SIZES = {"alexnet": 64, "inception_v3": 80, "maxvit_t": 224, "vit_h_14": 28}
START, END = "<!-- zoo table: bench/bench_zoo.py --table -->", "<!-- end of zoo table -->"


def one(name: str, size: int, images: int) -> dict[str, Any]:
    """Every step for one model; the first step that does not succeed ends the row."""
    import numpy as np
    import torch

    import orisel
    from orisel.kernel.errors import OriselError

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (images, size, size, 3), dtype=np.uint8)
    labels = np.arange(images) % 10
    row: dict[str, Any] = {"model": name, "size": size, "steps": {}, "seconds": {}}
    state: dict[str, Any] = {}

    def load() -> None:
        state["net"] = orisel.load(model=name, input_size=size, device="cpu")
        state["layers"] = state["net"].default_layers()
        row["layers"] = len(state["layers"])

    def tune() -> None:
        state["scores"] = orisel.tune(
            state["net"],
            images=pixels,
            labels=labels,
            stimuli=("gratings",),
            permutations=10,
            n_orientations=4,
            n_phases=2,
            n_frequencies=2,
            batch_size=32,
        )
        row["units"] = len(state["scores"])

    def ablate() -> None:
        layers = state["layers"]
        orisel.ablate(
            state["net"],
            state["scores"],
            pixels,
            labels,
            layers=tuple(dict.fromkeys((layers[0], layers[-1]))),
            orders=("gosi",),
            seeds=(),
            fractions=(0.0, 1.0),
            random_halves=0,
            matched_controls=False,
        )

    def invariance() -> None:
        layers = state["layers"]
        orisel.invariance(
            state["net"],
            state["scores"],
            pixels,
            labels,
            layers=(layers[-1],),
            ablate_layers=(layers[0],),
            seeds=(),
            damage_candidates=2,
            damage_matched=1,
            shift=2,
            batch_size=32,
        )

    for step, run in zip(STEPS, (load, tune, ablate, invariance), strict=True):
        t0 = time.perf_counter()
        try:
            run()
        except OriselError as exc:
            row["steps"][step] = "refused"
            row["message"] = str(exc)
        except Exception as exc:  # a bug: the row says which, the matrix goes on
            row["steps"][step] = "error"
            row["message"] = f"{type(exc).__name__}: {exc}"
        else:
            row["steps"][step] = "ok"
        row["seconds"][step] = round(time.perf_counter() - t0, 2)
        if row["steps"][step] != "ok":
            break
    return row


def _run(name: str, size: int, images: int, timeout: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", name, "--size", str(size), "--images", str(images)]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"model": name, "size": size, "steps": {"load": "timeout"}, "seconds": {}}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode or not lines:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"model": name, "size": size, "steps": {"load": "error"}, "message": tail[0]}
    row: dict[str, Any] = json.loads(lines[-1])
    return row


def outcome(row: dict[str, Any]) -> str:
    """ok (every step ran), else how the first step that did not run ended."""
    statuses = list(row["steps"].values())
    return "ok" if statuses == ["ok"] * len(STEPS) else str(statuses[-1])


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown matrix: one row per model, each step's outcome and seconds."""
    out = [
        "| model | px | layers | load | tune | ablate | invariance | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = []
        for step in STEPS:
            status = r["steps"].get(step, "")
            secs = r.get("seconds", {}).get(step)
            cells.append(f"{status} {secs:.1f}s" if status == "ok" and secs is not None else status)
        note = str(r.get("message", "")).replace("|", "\\|").replace("\n", " ")
        note = note if len(note) <= 160 else note[:157] + "..."
        out.append(
            f"| {r['model']} | {r['size']} | {r.get('layers', '')} | "
            + " | ".join(cells)
            + f" | {note} |"
        )
    counts = Counter(outcome(r) for r in rows)
    out.append("")
    out.append(
        f"{len(rows)} models: {counts['ok']} through every step, {counts['refused']} refused "
        f"with a clear error, {len(rows) - counts['ok'] - counts['refused']} failing otherwise."
    )
    return "\n".join(out)


def write_table(path: Path, text: str) -> None:
    doc = path.read_text()
    head, _, rest = doc.partition(START)
    _, _, tail = rest.partition(END)
    path.write_text(f"{head}{START}\n{text}\n{END}{tail}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", help="comma-separated names (default: every one)")
    ap.add_argument("--size", type=int, default=32, help="input pixels (default 32)")
    ap.add_argument("--images", type=int, default=8, help="random labelled images")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per model")
    ap.add_argument("--jobs", type=int, default=1, help="models measured at once")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "bench_zoo.json")
    ap.add_argument("--table", default=str(ROOT / "docs" / "models.md"))
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "services"))
    if args.one:
        print(json.dumps(one(args.one, args.size, args.images)))
        return
    import torchvision.models as tvm

    names = args.models.split(",") if args.models else tvm.list_models(module=tvm)
    rows: list[dict[str, Any]] = []
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = [
            pool.submit(_run, n, SIZES.get(n, args.size), args.images, args.timeout) for n in names
        ]
        for run in runs:
            rows.append(run.result())
            print(json.dumps(rows[-1]), flush=True)
            # After every model, so that a matrix cut short keeps what it measured.
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(rows, indent=1) + "\n")
    text = table(rows)
    print(text)
    if args.table:
        write_table(Path(args.table), text)


if __name__ == "__main__":
    main()
