"""The `orisel` commands that run here, on files: data, models, layers, extract, tune,
trajectory, ablate, invariance, report, paper-report (train: client/train.py; the parsers of
them all: client/local_parser.py)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from orisel.client.args import data_path, emit, spec_from_args
from orisel.kernel.atomic import check_output
from orisel.kernel.errors import FailedPrecondition, InvalidArgument
from orisel.kernel.provenance import sha256_file
from orisel.runtime.settings import get_settings

log = logging.getLogger("orisel")


def cmd_data_info(args: argparse.Namespace) -> int:
    from orisel.data.sources import load_cifar10

    ds = load_cifar10(data_path(args), args.cache_dir or get_settings().cache_dir)
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
