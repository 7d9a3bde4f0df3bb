"""Pack a population's training state for the trip between GPU runs, or unpack it.

usage: python deploy/device/population_state.py pack ROOT DEST [--trajectory-runs GLOBS]
                                                [--trajectory-epochs EPOCHS] [--part-bytes N]
       python deploy/device/population_state.py unpack SRC ROOT

`pack` writes DEST/index.json and DEST/part-NNN.bin (orisel.training.pack says what they
hold) and prints what each kind of file takes. `unpack` exits 75 (EX_TEMPFAIL) while parts of
the pack are missing, so a pack carried in over several calls is unpacked by the call that
brings its last part.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from orisel.kernel.errors import OriselError
from orisel.training.pack import PART_BYTES, TRAJECTORY_EPOCHS, missing_parts, pack, unpack

INCOMPLETE = 75


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack")
    p.add_argument("root", type=Path)
    p.add_argument("dest", type=Path)
    p.add_argument("--trajectory-runs", default="cnn7-c0-s0", help="run-name globs, commas")
    p.add_argument("--trajectory-epochs", default=",".join(f"{e:g}" for e in TRAJECTORY_EPOCHS))
    p.add_argument("--part-bytes", type=int, default=PART_BYTES, help="largest part's size")
    u = sub.add_parser("unpack")
    u.add_argument("src", type=Path)
    u.add_argument("root", type=Path)
    args = parser.parse_args(argv)
    if args.command == "unpack":
        missing = missing_parts(args.src)
        if missing:
            sys.stdout.write(f"{args.src}: waiting for parts {missing}\n")
            return INCOMPLETE
        index = unpack(args.src, args.root)
        sys.stdout.write(
            f"unpacked {len(index['runs'])} runs at step {index['resume_step']} into {args.root}\n"
        )
        return 0
    index = pack(
        args.root,
        args.dest,
        trajectory_runs=args.trajectory_runs.split(","),
        trajectory_epochs=[float(e) for e in args.trajectory_epochs.split(",")],
        part_bytes=args.part_bytes,
    )
    kinds = ", ".join(f"{k} {_mb(n)}" for k, n in index["packed_bytes_by_kind"].items())
    sys.stdout.write(
        f"packed {len(index['runs'])} runs at step {index['resume_step']} into {args.dest}: "
        f"{_mb(index['packed_bytes'])} in {len(index['parts'])} parts ({kinds})\n"
    )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except OriselError as exc:  # a refused folder or a damaged pack: one line, no traceback
        sys.stderr.write(f"population_state: {exc}\n")
        sys.exit(4)
