"""The `orisel` commands that run here, on files: data, models, train, tune, trajectory,
ablate, invariance, report, paper-report.

Longer than 400 lines on purpose: nine commands, each a short adapter from flags to the
library, with their parsers beside them (most flags generated from the same config models the
services validate); split by command they would share every helper below."""

from __future__ import annotations

import argparse
import itertools
import json
import logging
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orisel.client.args import (
    add_model_fields,
    comma_list,
    emit,
    spec_from_args,
    validation_message,
)
from orisel.data.prepare import SplitSpec
from orisel.kernel.atomic import check_output
from orisel.kernel.errors import (
    FailedPrecondition,
    InvalidArgument,
    OriselError,
)
from orisel.kernel.provenance import sha256_file
from orisel.runtime.settings import get_settings
from orisel.training.config import run_name
from orisel.training.spec import Member

log = logging.getLogger("orisel")


def _data_path(args: argparse.Namespace) -> Path:
    path = args.data or get_settings().data
    if path is None:
        raise InvalidArgument("--data", "a CIFAR-10 archive or folder (or set ORISEL_DATA)", None)
    return Path(path)


def cmd_data_info(args: argparse.Namespace) -> int:
    from orisel.data.sources import load_cifar10

    ds = load_cifar10(_data_path(args), args.cache_dir or get_settings().cache_dir)
    s = ds.summary()
    emit(
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
    emit(args, {"path": str(path)}, f"CIFAR-10 (python format) is in {path}; pass --data {path}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from orisel.models.registry import available_models

    names = list(available_models())
    emit(args, {"models": names}, "\n".join(names))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from orisel.data.prepare import prepare
    from orisel.data.sources import load_cifar10
    from orisel.training.config import TrainConfig
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
    source = _data_path(args)
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
    cfg: Any,
    members: list[Member],
    ds: Any,
    source: Path,
    explicit: set[str],
) -> int:
    """Every (label corruption, seed) of the grid trained as one stacked model; each network
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


def _members(args: argparse.Namespace, cfg: Any) -> list[Member]:
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


def _output(text: str | None) -> str | int | None:
    """--output: an index of a tuple (digits) or a key of a dict."""
    return int(text) if text is not None and text.isdigit() else text


def cmd_layers(args: argparse.Namespace) -> int:
    from orisel.extraction.network import load_network

    net = load_network(
        None,
        args.model,
        args.weights,
        args.device,
        args.download,
        args.input_size,
        _output(args.output),
    )
    rows = net.layer_table(every=args.all)
    width = max((len(str(r["layer"])) for r in rows), default=5)
    lines = [
        f"{r['layer']!s:{width}s}  {r['kind']!s:22s} {tuple(r['shape'])!s:18s} "  # type: ignore[arg-type]
        f"{r['units']} units{'  (default)' if args.all and r['default'] else ''}"
        for r in rows
    ]
    note = net.source.get("functional")
    if note:
        lines.append(f"({note})")
    emit(args, {"model": args.model, "layers": rows, "network": net.source}, "\n".join(lines))
    return 0


def _network(args: argparse.Namespace) -> Any:
    from orisel.extraction.network import load_network

    if args.checkpoint is None and args.model is None:
        raise InvalidArgument(
            "--checkpoint", "a checkpoint file (or --model NAME --weights W)", None
        )
    net = load_network(
        args.checkpoint,
        args.model,
        args.weights,
        args.device,
        args.download,
        args.input_size,
        _output(args.output),
    )
    if args.checkpoint is None:
        # The file the weights came from (a state dict, or a whole .pt2/.ts archive), beside
        # the checksum of the weights as analysed that every summary records.
        named = [p for p in (args.weights, args.model) if p and Path(p).is_file()]
        if named:
            net.source |= {"weights": named[0], "weights_file_sha256": sha256_file(Path(named[0]))}
    return net


def _scores_of(args: argparse.Namespace, net: Any) -> None:
    """Refuse --scores computed on another checkpoint (their unit order would be another
    network's) unless --allow-mismatch."""
    summary = Path(args.scores) / "summary.json"
    if not summary.is_file():
        return
    scored = json.loads(summary.read_text()).get("network", {}).get("checkpoint_sha256")
    analysed = net.source.get("checkpoint_sha256")
    if scored and analysed and scored != analysed and not args.allow_mismatch:
        raise FailedPrecondition(
            f"--scores {args.scores} were computed on checkpoint {scored[:12]}, not on "
            f"{analysed[:12]} ({args.checkpoint}); pass --allow-mismatch to use them anyway"
        )


def _warnings(net: Any) -> list[str]:
    """Said in the output and on stderr: results of a network at chance mean little."""
    metrics = net.source.get("metrics") or {}
    accuracy = (metrics.get("test") or {}).get("accuracy")
    classes = net.source.get("num_classes")
    out = []
    if accuracy is not None and classes and accuracy < 1 / classes + 0.05:
        out.append(
            f"the network is near chance (test accuracy {accuracy:.3f}, chance "
            f"{1 / classes:.3f}): its units' selectivity says little about what it learned"
        )
    for message in out:
        log.warning(message)
    return out


def _test_split(args: argparse.Namespace, net: Any) -> Any:
    """Labelled test images (`extraction.inputs.Labelled`) for class selectivity, ablation
    and invariance, or None without --data: CIFAR-10's test split for a network trained by
    orisel, an ImageFolder tree (e.g. ImageNet's val/) for any other, its classes matched to
    the network's outputs (--class-map; --test-subset: a stratified sample, or the folder's
    first N images)."""
    from orisel.extraction.inputs import labelled_images

    path = args.data or get_settings().data
    if path is None:
        return None
    return labelled_images(
        net,
        Path(path),
        args.test_subset,
        args.cache_dir or get_settings().cache_dir,
        args.class_map,
    )


def _data_record(args: argparse.Namespace, got: Any) -> dict[str, Any]:
    """What the summary records of the run and its labelled images."""
    record: dict[str, Any] = {"command": args.command}
    if got is not None:
        record |= {
            "data_sha256": got.sha256 or None,
            "class_outputs": got.class_outputs,
            "classes_matched_by": got.matched_by,
        }
    return record


def cmd_extract(args: argparse.Namespace) -> int:
    from orisel.extraction.activations import extract
    from orisel.extraction.spec import ExtractSpec

    spec = spec_from_args(ExtractSpec, args)
    check_output(args.out, [args.checkpoint, args.data], args.force)
    net = _network(args)
    got = _test_split(args, net)
    record = _data_record(args, got)
    if got is None:
        summary = extract(net, spec, Path(args.out), record)
    else:
        summary = extract(net, spec, Path(args.out), record, got.images, got.labels, got.n_classes)
    lines = [f"activations {summary['key'][:12]} -> {args.out}"]
    lines += [f"  {name:24s} {shape}" for name, shape in summary["arrays"].items()]
    emit(args, summary, "\n".join(lines))
    return 0


def _tune_stored(args: argparse.Namespace) -> tuple[Any, Any]:
    """`tune --responses`: score an `orisel extract` folder, no network loaded; flags left
    out take the extraction's settings."""
    from orisel.analyses import tune_activations
    from orisel.extraction.activations import read
    from orisel.scoring.spec import TuneSpec

    network = [f for f in ("checkpoint", "model", "data") if getattr(args, f) is not None]
    if network:
        raise InvalidArgument(
            "--responses",
            "stored activations or a network (and its images) to run, not both",
            "--" + network[0],
        )
    acts = read(Path(args.responses))
    given = spec_from_args(TuneSpec, args).model_dump(exclude_unset=True)
    spec = TuneSpec.model_validate(acts.settings() | given)
    check_output(args.out, [args.responses], args.force)
    record = {"command": args.command, "data_sha256": None}
    return spec, tune_activations(acts, spec, Path(args.out), record)


def cmd_tune(args: argparse.Namespace) -> int:
    from orisel.analyses import tune
    from orisel.scoring.spec import TuneSpec

    out = Path(args.out)
    if args.responses is not None:
        spec, result = _tune_stored(args)
    else:
        spec = spec_from_args(TuneSpec, args)
        check_output(args.out, [args.checkpoint, args.data], args.force)
        net = _network(args)
        got = _test_split(args, net)
        provenance = _data_record(args, got) | {"warnings": _warnings(net)}
        if got is None:
            result = tune(net, spec, out, provenance=provenance)
        else:
            result = tune(net, spec, out, got.images, got.labels, got.n_classes, provenance)
    network = result.network
    lines = [f"tuning of {network.checkpoint or network.model} -> {out}"]
    for kind, tuning in result.summary.by_stimulus(spec.stimuli).items():
        for layer, s in tuning.layers.items():
            lines.append(
                f"  {kind:8s} {layer:14s} selective {s.fraction_selective:.2f} "
                f"(null above threshold {s.null_fraction_above_threshold:.2f}), "
                f"mean gOSI {s.mean_gosi:.3f} (null {s.null_mean_gosi:.3f}), dead {s.dead}"
            )
    emit(args, result, "\n".join(lines))
    return 0


def _needs_test_split(args: argparse.Namespace, net: Any) -> Any:
    got = _test_split(args, net)
    if got is None:
        raise InvalidArgument(
            "--data", "the labelled images to evaluate on (or set ORISEL_DATA)", None
        )
    return got


def cmd_trajectory(args: argparse.Namespace) -> int:
    from orisel.analyses import trajectory
    from orisel.scoring.spec import TuneSpec

    spec = spec_from_args(TuneSpec, args)
    run = Path(args.run)
    check_output(args.out, [run], args.force)
    try:
        epochs = None if args.epochs is None else [float(e) for e in args.epochs]
    except ValueError as exc:
        raise InvalidArgument("--epochs", "numbers separated by commas", args.epochs) from exc
    result = trajectory(
        run,
        spec,
        Path(args.out),
        args.device,
        {"command": args.command},
        epochs=epochs,
        activations=args.activations,
    )
    lines = [f"trajectory of {run}: {result.checkpoints} checkpoints -> {args.out}"]
    emit(args, result, "\n".join(lines))
    return 0


def _given(args: argparse.Namespace, model: Any) -> set[str]:
    return {k for k in model.model_fields if getattr(args, k, None) is not None}


def _noted(notes: list[str]) -> list[str]:
    """Choices made for the network where flags left them open: logged and recorded."""
    for note in notes:
        log.info("default %s", note)
    return notes


def _points_line(points: Any) -> str:
    where = ", ".join(f"{layer} at {p.site} ({p.point})" for layer, p in (points or {}).items())
    return f"  ablated: {where}"


def cmd_ablate(args: argparse.Namespace) -> int:
    from orisel.ablation.defaults import ablate_spec
    from orisel.ablation.scores import UnitScores
    from orisel.ablation.spec import AblateSpec
    from orisel.analyses import ablate

    spec = spec_from_args(AblateSpec, args)
    scores = UnitScores(args.scores, spec.stimulus)
    check_output(args.out, [args.checkpoint, args.scores, args.data], args.force)
    net = _network(args)
    _scores_of(args, net)
    spec, notes = ablate_spec(net, scores, spec, _given(args, AblateSpec))
    got = _needs_test_split(args, net)
    record = _data_record(args, got) | {"warnings": _warnings(net), "notes": _noted(notes)}
    result = ablate(net, spec, scores, got.images, got.targets, Path(args.out), record)
    lines = [f"ablation on {len(got.targets)} test images -> {args.out}"]
    lines += [f"  default {note}" for note in notes] + [_points_line(result.points)]
    for s in result.splits:
        top, bottom = s.top50, s.bottom50
        lines.append(
            f"  {s.layer:8s} by {s.by:4s}: top-50% {top.loss_increase_mean:+.4f}"
            f"±{top.loss_increase_sem:.4f} (acc {top.accuracy:.3f}) vs bottom-50% "
            f"{bottom.loss_increase_mean:+.4f}±{bottom.loss_increase_sem:.4f} "
            f"(acc {bottom.accuracy:.3f})"
        )
    emit(args, result, "\n".join(lines))
    return 0


def cmd_invariance(args: argparse.Namespace) -> int:
    from orisel.ablation.defaults import invariance_spec
    from orisel.ablation.scores import UnitScores
    from orisel.ablation.spec import InvarianceSpec
    from orisel.analyses import invariance

    spec = spec_from_args(InvarianceSpec, args)
    scores = UnitScores(args.scores, spec.stimulus)
    check_output(args.out, [args.checkpoint, args.scores, args.data], args.force)
    net = _network(args)
    _scores_of(args, net)
    spec, notes = invariance_spec(net, scores, spec, _given(args, InvarianceSpec))
    got = _needs_test_split(args, net)
    record = _data_record(args, got) | {"warnings": _warnings(net), "notes": _noted(notes)}
    result = invariance(net, spec, scores, got.images, Path(args.out), record, got.targets)
    lines = [f"shift-invariance on {len(got.images)} test images -> {args.out}"]
    lines += [f"  default {note}" for note in notes] + [_points_line(result.points)]
    for name, v in result.summary.items():
        lines.append(
            f"  {name:28s} invariance {v.invariance:.3f}  consistency {v.consistency:.3f}"
            f"  correlation {v.correlation:.3f}  damage {v.loss_increase:+.3f}"
        )
    emit(args, result, "\n".join(lines))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from orisel.report.markdown import write_report

    out = write_report(
        Path(args.run), Path(args.out or Path(args.run) / "report.md"), force=args.force
    )
    emit(args, {"report": str(out)}, f"report: {out}")
    return 0


def cmd_paper_report(args: argparse.Namespace) -> int:
    from orisel.report.collect import collect
    from orisel.report.data import ReportData
    from orisel.report.paper import render, save_data

    if args.analysis:
        data = collect(args.analysis)
        if args.memorize:
            data.memorize = collect(args.memorize).variants
        save_data(data, args.out.parent / args.out.stem / "data.json")
    else:
        if not args.from_data.is_file():
            raise InvalidArgument(
                "--from-data", "a data.json written by paper-report", args.from_data
            )
        data = ReportData.read(args.from_data)
    preface = args.preface.read_text() if args.preface else ""
    out = render(data, args.out, preface)
    emit(args, {"report": str(out)}, f"report: {out}")
    return 0


def _scored_network_args(parser: argparse.ArgumentParser) -> None:
    """A network, and the `orisel tune` output whose indices order its units."""
    _network_args(parser)
    parser.add_argument(
        "--scores",
        type=Path,
        required=True,
        help="the output folder of `orisel tune` whose indices order the units",
    )
    parser.add_argument(
        "--allow-mismatch",
        action="store_true",
        help="use --scores computed on another checkpoint than the one analysed",
    )


def _network_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", type=Path, help="an orisel checkpoint (e.g. runs/x/best.pt)"
    )
    parser.add_argument(
        "--model",
        help="instead of a checkpoint: a torchvision model name (e.g. vgg16), or your own: "
        "path/to/file.py:ClassName (--weights a state-dict file), a torch.export archive "
        "(.pt2, dynamic batch) or a TorchScript archive (.ts/.pt); pixels in [0, 1]",
    )
    parser.add_argument(
        "--weights", help="torchvision weights name (DEFAULT, IMAGENET1K_V1) or file"
    )
    parser.add_argument(
        "--download", action="store_true", help="allow fetching torchvision weights"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default: auto)")
    parser.add_argument(
        "--input-size", type=int, help="input pixels of a --model network (default: 224)"
    )
    parser.add_argument(
        "--output",
        help="for a --model network that returns several outputs: the dict key or tuple "
        "index of its logits",
    )
    parser.add_argument(
        "--test-subset", type=int, help="use a stratified subset of the test images"
    )
    parser.add_argument(
        "--class-map",
        type=Path,
        help="for an ImageFolder --data: which network output each folder class is, a JSON "
        'file {"<class>": <output index>} or a text file of the network\'s class names in '
        "output order, one per line (default: the weights' class names, else the sorted "
        "folder order when the folder holds as many classes as the network has outputs)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="output folder: new, empty, or an earlier orisel output with --force",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace --out if it is an earlier orisel output"
    )


def add_local_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """The local commands, on the `orisel` parser."""
    from orisel.training.config import TrainConfig

    data_src = argparse.ArgumentParser(add_help=False)
    data_src.add_argument(
        "--data",
        type=Path,
        help="CIFAR-10 archive or folder (python or ImageFolder layout) for networks orisel "
        "trained; for any other network an ImageFolder tree of test images, <root>/<class>/"
        "<image> (default: $ORISEL_DATA)",
    )
    data_src.add_argument(
        "--cache-dir", type=Path, help="decoded data cache (default: $ORISEL_CACHE_DIR)"
    )
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

    layers = sub.add_parser(
        "layers",
        parents=[common],
        help="the layers a network is analysed at by default (--all: every module call)",
        description="Build the network, run it once on a blank image and list its default "
        "layers (the family's: ResNet blocks, VGG's ReLUs and pools, ViT blocks, the blocks "
        "of other torchvision models, every activation otherwise) with their output shapes; "
        "--all lists every module call, each a valid --layers name.",
    )
    layers.add_argument(
        "model",
        help="a torchvision model name, path/to/file.py:ClassName, or a torch.export (.pt2) "
        "or TorchScript (.ts) archive",
    )
    layers.add_argument("--weights", help="torchvision weights name or state-dict file")
    layers.add_argument("--download", action="store_true", help="allow fetching weights")
    layers.add_argument("--device", default="cpu", help="cpu (default) or cuda[:N]")
    layers.add_argument("--input-size", type=int, help="input pixels (default: 224)")
    layers.add_argument("--output", help="dict key or tuple index of the logits")
    layers.add_argument("--all", action="store_true", help="every module call, not the defaults")
    layers.set_defaults(func=cmd_layers)

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
    train.add_argument(
        "--population",
        action="store_true",
        help="train the grid --label-corruptions x --seeds x --select-regs as one stacked model "
        "(cnn7), each network in --out/cnn7-c<corruption>-s<seed>[-a<alpha>]",
    )
    train.add_argument("--label-corruptions", type=comma_list, help="with --population")
    train.add_argument("--seeds", type=comma_list, help="with --population")
    train.add_argument(
        "--select-regs", type=comma_list, help="with --population: one alpha per network"
    )
    add_model_fields(train, TrainConfig, skip={"data"})
    add_model_fields(train, SplitSpec, skip=set())
    train.set_defaults(func=cmd_train)

    from orisel.scoring.spec import TuneSpec

    tune = sub.add_parser(
        "tune",
        parents=[common, data_src],
        help="orientation and class selectivity of every unit",
        description="Present gratings and bars, score every unit (OSI, gOSI, preference, range, "
        "bandwidth, permutation p-value against shuffled stimuli) and, with --data, class "
        "selectivity on the test images. Writes units.csv|parquet, summary.json and plots.",
    )
    _network_args(tune)
    tune.add_argument(
        "--responses",
        type=Path,
        help="score the activations an `orisel extract` wrote to this folder instead of "
        "running the network (no --checkpoint/--model); its stimuli, layers and grid are "
        "the defaults",
    )
    add_model_fields(tune, TuneSpec, skip=set())
    tune.set_defaults(func=cmd_tune)

    from orisel.extraction.spec import ExtractSpec

    extract = sub.add_parser(
        "extract",
        parents=[common, data_src],
        help="a network's responses to the stimuli (and test images), stored for scoring",
        description="Run the forward passes `orisel tune` needs once: each layer's responses "
        "to gratings and bars and, with --data, to the test images, written to --out as "
        "responses.npz and summary.json (docs/tables.md), named by the sha256 of what "
        "determines them. `orisel tune --responses OUT` scores them with any statistics "
        "settings, with no forward pass.",
    )
    _network_args(extract)
    add_model_fields(extract, ExtractSpec, skip={"rectify"})
    extract.set_defaults(func=cmd_extract)

    traj = sub.add_parser(
        "trajectory",
        parents=[common],
        help="tune every checkpoint of a training run: selectivity against epoch and accuracy",
        description="Score every checkpoint a run's manifest lists (as `orisel tune` does) and "
        "write one table, trajectory.csv (epoch, step, stimulus, layer, fraction selective, mean "
        "and median gOSI, the null's mean, dead units, and the run's train/validation/test "
        "accuracy at that checkpoint), and trajectory.png.",
    )
    traj.add_argument("--run", type=Path, required=True, help="a training run folder")
    traj.add_argument("--out", type=Path, required=True, help="output folder (new or empty)")
    traj.add_argument("--force", action="store_true", help="replace an earlier orisel output")
    traj.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default: auto)")
    traj.add_argument(
        "--epochs",
        type=comma_list,
        help="tune only the checkpoints at these epochs (for example 0,0.5,1,2,5,10); "
        "default every checkpoint",
    )
    traj.add_argument(
        "--activations",
        type=Path,
        help="keep each checkpoint's activations in this folder (by the sha256 of what "
        "determines them) and score from them: a later trajectory of the run with other "
        "statistics settings runs no forward pass",
    )
    add_model_fields(traj, TuneSpec, skip=set())
    traj.set_defaults(func=cmd_trajectory)

    from orisel.ablation.spec import AblateSpec, InvarianceSpec

    ablate = sub.add_parser(
        "ablate",
        parents=[common, data_src],
        help="ablation curves and the paper's median split",
        description="Silence units layer by layer: cumulatively by each index (descending and "
        "ascending) and at random, and the top vs bottom 50% by each index. Reports test "
        "accuracy (overall and per class) and the per-image cross-entropy increase ± SEM.",
    )
    _scored_network_args(ablate)
    add_model_fields(ablate, AblateSpec, skip=set())
    ablate.set_defaults(func=cmd_ablate)

    inv = sub.add_parser(
        "invariance",
        parents=[common, data_src],
        help="shift-invariance with and without ablation",
        description="Correlation of higher layers' pooled responses to shifted test images, and "
        "prediction consistency, intact and with the most / least selective lower-layer units "
        "ablated, against random ablations of the same size.",
    )
    _scored_network_args(inv)
    add_model_fields(inv, InvarianceSpec, skip=set())
    inv.set_defaults(func=cmd_invariance)

    report = sub.add_parser(
        "report",
        parents=[common],
        help="a Markdown report of one analysis folder",
        description="Collect RUN/train (a training run), RUN/tune, RUN/ablate and RUN/invariance "
        "into one Markdown report with their figures; missing parts are skipped.",
    )
    report.add_argument("--run", type=Path, required=True, help="the analysis folder")
    report.add_argument("--out", type=Path, help="report path (default: RUN/report.md)")
    report.add_argument(
        "--force", action="store_true", help="replace --out if it is an earlier orisel report"
    )
    report.set_defaults(func=cmd_report)

    pr = sub.add_parser(
        "paper-report",
        parents=[common],
        help="the C1-C5 claims report of many analysed networks",
        description="Collect an analysis folder (<variant>/manifest.json, <variant>/best/"
        "{tune,ablate,invariance}, <variant>/trajectory/*) into OUT with plots in OUT's stem "
        "folder and the numbers in <stem>/data.json; or re-render from that data.json.",
    )
    src = pr.add_mutually_exclusive_group(required=True)
    src.add_argument("--analysis", type=Path, help="the analysis folder")
    src.add_argument("--from-data", type=Path, help="a data.json written by an earlier run")
    pr.add_argument("--out", type=Path, required=True, help="report path, e.g. docs/results/x.md")
    pr.add_argument("--preface", type=Path, help="markdown placed before the claims table")
    pr.add_argument(
        "--memorize",
        type=Path,
        help="with --analysis: the analysis folder of networks trained to fit their labels "
        "(no augmentation), reported beside the population as Morcos et al.'s regime",
    )
    pr.set_defaults(func=cmd_paper_report)
