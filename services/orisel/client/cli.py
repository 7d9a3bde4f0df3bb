"""The `orisel` command line: `orisel data ...`, `orisel train ...`, `orisel models`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from orisel.core.errors import InvalidArgument, OriselError
from orisel.core.settings import get_settings
from orisel.data.prepare import SplitSpec

log = logging.getLogger("orisel")


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if isinstance(p, str)]
        where = _flag(loc[-1]) if loc else "configuration"
        got = (
            f" (got {err['input']!r})"
            if "input" in err and not isinstance(err["input"], dict)
            else ""
        )
        parts.append(f"{where}: {err['msg'].removeprefix('Value error, ')}{got}")
    return "; ".join(parts)


def _add_model_fields(
    parser: argparse.ArgumentParser, model: type[BaseModel], skip: set[str]
) -> None:
    """One flag per config field, default None so that only flags the user gave override."""
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        ann = info.annotation
        kwargs: dict[str, Any] = {"dest": name, "default": None}
        if ann is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif ann in (int, float, str):
            kwargs["type"] = ann
        elif ann == int | None:
            kwargs["type"] = int
        else:  # Literal choices
            kwargs["choices"] = list(getattr(ann, "__args__", ()))
        default = info.default
        help_text = info.description or ""
        parser.add_argument(_flag(name), help=f"{help_text} (default: {default})".strip(), **kwargs)


def _emit(args: argparse.Namespace, payload: dict[str, Any], human: str) -> None:
    if args.json:
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")
    else:
        sys.stdout.write(human + "\n")


def _data_path(args: argparse.Namespace) -> Path:
    path = args.data or get_settings().data
    if path is None:
        raise InvalidArgument("--data", "a CIFAR-10 archive or folder (or set ORISEL_DATA)", None)
    return Path(path)


def cmd_data_info(args: argparse.Namespace) -> int:
    from orisel.data.sources import load_cifar10

    ds = load_cifar10(_data_path(args), args.cache_dir or get_settings().cache_dir)
    s = ds.summary()
    _emit(
        args,
        s,
        f"{s['source']}: {s['format']} layout, sha256 {s['sha256']}\n"
        f"  {s['train']} train / {s['test']} test images of {s['image_shape']}, "
        f"{len(ds.classes)} classes: {', '.join(ds.classes)}",
    )
    return 0


def cmd_data_download(args: argparse.Namespace) -> int:
    from orisel.data.sources import download_cifar10

    path = download_cifar10(Path(args.root))
    _emit(args, {"path": str(path)}, f"CIFAR-10 (python format) is in {path}; pass --data {path}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from orisel.models.registry import available_models

    names = list(available_models())
    _emit(args, {"models": names}, "\n".join(names))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from orisel.data.prepare import prepare
    from orisel.data.sources import load_cifar10
    from orisel.training.config import TrainConfig
    from orisel.training.loop import Trainer

    settings = get_settings()
    given = {k: v for k, v in vars(args).items() if k in TrainConfig.model_fields and v is not None}
    data_given = {
        k: v for k, v in vars(args).items() if k in SplitSpec.model_fields and v is not None
    }
    try:
        cfg = TrainConfig.model_validate({**given, "data": data_given})
    except ValidationError as exc:
        raise OriselError(_validation_message(exc)) from exc
    if args.max_steps is not None and args.max_steps < 1:
        raise InvalidArgument("--max-steps", "a positive number of steps", args.max_steps)
    run_dir = Path(
        args.out or settings.runs_dir / f"{cfg.model}-c{cfg.data.label_corruption:g}-s{cfg.seed}"
    )
    if args.resume and (run_dir / "manifest.json").is_file():
        stored = json.loads((run_dir / "manifest.json").read_text())
        # The stored split decides which data the run uses; flags may only confirm it.
        spec = SplitSpec.model_validate({**stored["config"]["data"], **data_given})
        cfg = cfg.model_copy(update={"data": spec})
    source = _data_path(args)
    ds = load_cifar10(source, args.cache_dir or settings.cache_dir)
    data = prepare(ds, cfg.data)
    explicit = set(given) | ({"data"} if data_given else set())
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
    _emit(args, summary, human)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from orisel.training.config import TrainConfig

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bar or logs")
    data_src = argparse.ArgumentParser(add_help=False)
    data_src.add_argument(
        "--data",
        type=Path,
        help="CIFAR-10 archive or folder, python or ImageFolder layout (default: $ORISEL_DATA)",
    )
    data_src.add_argument(
        "--cache-dir", type=Path, help="decoded data cache (default: $ORISEL_CACHE_DIR)"
    )

    parser = argparse.ArgumentParser(
        prog="orisel",
        description="Orientation and class selectivity of single units, and ablation tests.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="inspect, cache or download data sets")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    info = data_sub.add_parser(
        "info",
        parents=[common, data_src],
        help="decode (once, then cached) and describe a data set",
    )
    info.set_defaults(func=cmd_data_info)
    dl = data_sub.add_parser(
        "download", parents=[common], help="download the official CIFAR-10 (needs a network)"
    )
    dl.add_argument("--root", required=True, help="folder to download into")
    dl.set_defaults(func=cmd_data_download)

    models = sub.add_parser("models", parents=[common], help="list the models orisel can build")
    models.set_defaults(func=cmd_models)

    train = sub.add_parser(
        "train",
        parents=[common, data_src],
        help="train a model with checkpoints over time",
        description="Train with the paper's recipe by default (cnn7, Adam 1e-3, batch 32, "
        "200 epochs, best validation loss kept). Every flag overrides one config field.",
    )
    train.add_argument("--out", type=Path, help="run folder (default: $ORISEL_RUNS_DIR/<name>)")
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint (start it if there is none)",
    )
    train.add_argument(
        "--max-steps", type=int, help="stop once this global step is reached (a training segment)"
    )
    _add_model_fields(train, TrainConfig, skip={"data"})
    _add_model_fields(train, SplitSpec, skip=set())
    train.set_defaults(func=cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        rc: int = args.func(args)
    except OriselError as exc:
        sys.stderr.write(f"orisel: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("orisel: interrupted; --resume continues from the last checkpoint\n")
        return 130
    return rc
