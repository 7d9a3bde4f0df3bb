"""`orisel train` on local files: one network, or a grid of them trained together as one
stacked model (a population)."""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orisel.client.args import data_path, emit, validation_message
from orisel.data.prepare import SplitSpec
from orisel.kernel.errors import FailedPrecondition, InvalidArgument, OriselError
from orisel.runtime.settings import get_settings
from orisel.training.config import TrainConfig, run_name
from orisel.training.spec import Member


def cmd_train(args: argparse.Namespace) -> int:
    from orisel.data.prepare import prepare
    from orisel.data.sources import load_cifar10
    from orisel.training.loop import Trainer, check_run_dir

    settings = get_settings()
    given = {k: v for k, v in vars(args).items() if k in TrainConfig.model_fields and v is not None}
    data_given = {
        k: v for k, v in vars(args).items() if k in SplitSpec.model_fields and v is not None
    }

    def config(split: dict[str, Any]) -> TrainConfig:
        try:
            return TrainConfig.model_validate({**given, "data": split})
        except ValidationError as exc:
            raise OriselError(validation_message(exc)) from exc

    cfg = config(data_given)
    if args.select_regs and not args.population:
        raise InvalidArgument("--select-regs", "given with --population (else --select-reg)", None)
    if args.max_steps is not None and args.max_steps < 1:
        raise InvalidArgument("--max-steps", "a positive number of steps", args.max_steps)
    run_dir = Path(
        args.out
        or settings.runs_dir
        / run_name(cfg.model, cfg.data.label_corruption, cfg.seed, cfg.select_reg)
    )
    # Before the data is read (seconds to minutes): a refused --out costs nothing.
    if not args.population:
        check_run_dir(run_dir, args.resume)
    elif args.out is not None and Path(args.out).is_file():
        raise FailedPrecondition(f"--out {args.out} is a file (left untouched): name a folder")
    if args.resume and (run_dir / "manifest.json").is_file():
        stored = json.loads((run_dir / "manifest.json").read_text())
        # The stored split decides which data the run uses; flags may only confirm it.
        cfg = config({**stored["config"]["data"], **data_given})
    members = _members(args, cfg) if args.population else []
    source = data_path(args)
    ds = load_cifar10(source, args.cache_dir or settings.cache_dir)
    explicit = set(given) | ({"data"} if data_given else set())
    if members:
        return _train_population(args, cfg, members, ds, source, explicit)
    data = prepare(ds, cfg.data)
    trainer = Trainer.open(
        cfg,
        data,
        run_dir,
        resume=args.resume,
        explicit=explicit,
        data_source=str(source),
        progress=not args.quiet,
    )
    summary = trainer.run(max_steps=args.max_steps)
    best, last = summary["best"], summary["last"]
    human = (
        f"run {run_dir}: {summary['status']} at epoch {summary['epoch']:.2f} "
        f"({summary['checkpoints']} checkpoints, {summary['images_per_s']} images/s on "
        f"{summary['device']})"
    )
    if last is not None:
        acc = last["metrics"]["test"]["accuracy"]
        human += f"\n  last:  epoch {last['epoch']:.2f} test accuracy {acc:.4f}"
    if best is not None:
        human += (
            f"\n  best:  epoch {best['epoch']:.2f} (validation loss "
            f"{best['metrics']['validation']['loss']:.4f}) test accuracy "
            f"{best['metrics']['test']['accuracy']:.4f} -> {run_dir / 'best.pt'}"
        )
    emit(args, summary, human)
    return 0


def _train_population(
    args: argparse.Namespace,
    cfg: TrainConfig,
    members: list[Member],
    ds: Any,
    source: Path,
    explicit: set[str],
) -> int:
    """Every network of the grid trained as one stacked model; each network
    in its own run folder under --out, named as the pipeline names them."""
    from orisel.data.prepare import prepare
    from orisel.training.loop import Trainer
    from orisel.training.population import PopulationTrainer

    root = Path(args.out or get_settings().runs_dir)
    trainers = []
    prepared: dict[float, Any] = {}  # one split per corruption, shared by its networks
    for member in members:
        one = member.config(cfg)
        if member.label_corruption not in prepared:
            prepared[member.label_corruption] = prepare(ds, one.data)
        trainers.append(
            Trainer.open(
                one,
                prepared[member.label_corruption],
                root / member.name(cfg.model),
                resume=args.resume,
                explicit=explicit | {"seed", "select_reg"},
                data_source=str(source),
                progress=False,
            )
        )
    summaries = PopulationTrainer(trainers, progress=not args.quiet).run(max_steps=args.max_steps)
    lines = [
        f"population of {len(trainers)} networks in {root}: "
        f"{summaries[0]['images_per_s']} images/s in all on {summaries[0]['device']}"
    ]
    for summary in summaries:
        best = summary["best"]
        acc = best["metrics"]["test"]["accuracy"] if best else float("nan")
        lines.append(
            f"  {Path(summary['run_dir']).name}: {summary['status']} at epoch "
            f"{summary['epoch']:.2f}, best test accuracy {acc:.4f}"
        )
    emit(args, {"runs": summaries}, "\n".join(lines))
    return 0


# The flag that gives each field of a population's networks.
MEMBER_FLAGS = {
    "seed": "--seeds",
    "label_corruption": "--label-corruptions",
    "select_reg": "--select-regs",
}


def _members(args: argparse.Namespace, cfg: TrainConfig) -> list[Member]:
    """The grid --label-corruptions x --seeds x --select-regs, each network validated as the
    training service validates a population's; an error names the flag."""
    grid = itertools.product(
        args.label_corruptions or [cfg.data.label_corruption],
        args.seeds or [cfg.seed],
        args.select_regs or [cfg.select_reg],
    )
    out = []
    for c, seed, alpha in grid:
        try:
            out.append(Member(seed=seed, label_corruption=c, select_reg=alpha))
        except ValidationError as exc:
            err = exc.errors()[0]
            flag = MEMBER_FLAGS[str(err["loc"][0])]
            raise InvalidArgument(flag, err["msg"].lower(), err.get("input")) from exc
    return out
