"""The `orisel` command line: `orisel data ...`, `orisel train ...`, `orisel models`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from tqdm import tqdm

from orisel.core import progress
from orisel.core.atomic import check_output
from orisel.core.errors import (
    AlreadyExists,
    DataError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OriselError,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from orisel.core.settings import QUEUES, get_settings
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


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _add_model_fields(
    parser: argparse.ArgumentParser, model: type[BaseModel], skip: set[str]
) -> None:
    """One flag per config field, default None so that only flags the user gave override."""
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        ann = info.annotation
        kwargs: dict[str, Any] = {"dest": name, "default": None}
        parts = (ann, *typing.get_args(ann))
        if ann is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif any(typing.get_origin(p) is tuple for p in parts):
            kwargs["type"] = _comma_list
            kwargs["metavar"] = "A,B,..."
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
    explicit = set(given) | ({"data"} if data_given else set())
    if args.population:
        return _train_population(args, cfg, ds, source, explicit)
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
    _emit(args, summary, human)
    return 0


def _train_population(
    args: argparse.Namespace, cfg: Any, ds: Any, source: Path, explicit: set[str]
) -> int:
    """Every (label corruption, seed) of the grid trained as one stacked model; each network
    in its own run folder under --out, named as the pipeline names them."""
    from orisel.data.prepare import prepare
    from orisel.training.loop import Trainer
    from orisel.training.population import PopulationTrainer

    corruptions = [float(c) for c in args.label_corruptions or [cfg.data.label_corruption]]
    seeds = [int(x) for x in args.seeds or [cfg.seed]]
    root = Path(args.out or get_settings().runs_dir)
    trainers = []
    for c in corruptions:
        data = prepare(ds, cfg.data.model_copy(update={"label_corruption": c}))
        for seed in seeds:
            one = cfg.model_copy(
                update={"seed": seed, "data": cfg.data.model_copy(update={"label_corruption": c})}
            )
            run_dir = root / f"{cfg.model}-c{c:g}-s{seed}"
            trainers.append(
                Trainer.open(
                    one,
                    data,
                    run_dir,
                    resume=args.resume,
                    explicit=explicit | {"seed"},
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
    _emit(args, {"runs": summaries}, "\n".join(lines))
    return 0


def _spec(model: type[BaseModel], args: argparse.Namespace) -> Any:
    given = {k: v for k, v in vars(args).items() if k in model.model_fields and v is not None}
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        raise OriselError(_validation_message(exc)) from exc


def _network(args: argparse.Namespace) -> Any:
    from orisel.extraction.network import load_network

    if args.checkpoint is None and args.model is None:
        raise InvalidArgument(
            "--checkpoint", "a checkpoint file (or --model NAME --weights W)", None
        )
    return load_network(
        args.checkpoint, args.model, args.weights, args.device, args.download, args.input_size
    )


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


def _test_split(args: argparse.Namespace, net: Any) -> tuple[Any, Any, int, str] | None:
    """Labelled test images (class selectivity, ablation, invariance): CIFAR-10's test split
    for a network trained by orisel, an ImageFolder tree (e.g. ImageNet's val/) for any other
    (--test-subset: a stratified sample, or the folder's first N images)."""
    from orisel.extraction.inputs import labelled_images

    path = args.data or get_settings().data
    if path is None:
        return None
    got = labelled_images(
        net, Path(path), args.test_subset, args.cache_dir or get_settings().cache_dir
    )
    return got.images, got.labels, got.n_classes, got.sha256


def cmd_tune(args: argparse.Namespace) -> int:
    from orisel.report.outputs import tune
    from orisel.scoring.spec import TuneSpec

    spec = _spec(TuneSpec, args)
    check_output(args.out, [args.checkpoint, args.data], args.force)
    net = _network(args)
    split = _test_split(args, net)
    images, labels, n_classes, sha = split if split is not None else (None, None, 10, None)
    out = Path(args.out)
    provenance = {"data_sha256": sha, "command": args.command, "warnings": _warnings(net)}
    result = tune(net, spec, out, images, labels, n_classes, provenance)
    lines = [f"tuning of {net.source.get('checkpoint') or net.source['model']} -> {out}"]
    for kind in spec.stimuli:
        for layer, s in result["summary"][kind]["layers"].items():
            lines.append(
                f"  {kind:8s} {layer:14s} selective {s['fraction_selective']:.2f} "
                f"(null above threshold {s['null_fraction_above_threshold']:.2f}), "
                f"mean gOSI {s['mean_gosi']:.3f} (null {s['null_mean_gosi']:.3f}), dead {s['dead']}"
            )
    _emit(args, result, "\n".join(lines))
    return 0


def _needs_test_split(args: argparse.Namespace, net: Any) -> tuple[Any, Any, int, str]:
    split = _test_split(args, net)
    if split is None:
        raise InvalidArgument(
            "--data", "the labelled images to evaluate on (or set ORISEL_DATA)", None
        )
    return split


def cmd_trajectory(args: argparse.Namespace) -> int:
    from orisel.report.outputs import trajectory
    from orisel.scoring.spec import TuneSpec

    spec = _spec(TuneSpec, args)
    run = Path(args.run)
    check_output(args.out, [run], args.force)
    result = trajectory(run, spec, Path(args.out), args.device, {"command": args.command})
    lines = [f"trajectory of {run}: {result['checkpoints']} checkpoints -> {args.out}"]
    _emit(args, result, "\n".join(lines))
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from orisel.ablation.run import UnitScores
    from orisel.ablation.spec import AblateSpec
    from orisel.report.outputs import ablate

    spec = _spec(AblateSpec, args)
    scores = UnitScores(args.scores, spec.stimulus)
    check_output(args.out, [args.checkpoint, args.scores, args.data], args.force)
    net = _network(args)
    _scores_of(args, net)
    images, labels, _, sha = _needs_test_split(args, net)
    result = ablate(
        net,
        spec,
        scores,
        images,
        labels,
        Path(args.out),
        {"data_sha256": sha, "command": args.command, "warnings": _warnings(net)},
    )
    lines = [f"ablation on {len(labels)} test images -> {args.out}"]
    for s in result["splits"]:
        top, bottom = s["top50"], s["bottom50"]
        lines.append(
            f"  {s['layer']:8s} by {s['by']:4s}: top-50% {top['loss_increase_mean']:+.4f}"
            f"±{top['loss_increase_sem']:.4f} (acc {top['accuracy']:.3f}) vs bottom-50% "
            f"{bottom['loss_increase_mean']:+.4f}±{bottom['loss_increase_sem']:.4f} "
            f"(acc {bottom['accuracy']:.3f})"
        )
    _emit(args, result, "\n".join(lines))
    return 0


def cmd_invariance(args: argparse.Namespace) -> int:
    from orisel.ablation.run import UnitScores
    from orisel.ablation.spec import InvarianceSpec
    from orisel.report.outputs import invariance

    spec = _spec(InvarianceSpec, args)
    scores = UnitScores(args.scores, spec.stimulus)
    check_output(args.out, [args.checkpoint, args.scores, args.data], args.force)
    net = _network(args)
    _scores_of(args, net)
    images, _, _, sha = _needs_test_split(args, net)
    provenance = {"data_sha256": sha, "command": args.command, "warnings": _warnings(net)}
    result = invariance(net, spec, scores, images, Path(args.out), provenance)
    lines = [f"shift-invariance on {len(images)} test images -> {args.out}"]
    for name, v in result["summary"].items():
        lines.append(
            f"  {name:20s} consistency {v['consistency']:.3f}  correlation {v['correlation']:.3f}"
        )
    _emit(args, result, "\n".join(lines))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from orisel.report.markdown import write_report

    out = write_report(Path(args.run), Path(args.out or Path(args.run) / "report.md"))
    _emit(args, {"report": str(out)}, f"report: {out}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from orisel.server.launch import serve

    settings = get_settings()
    if args.port is not None:
        settings = settings.model_copy(update={"grpc_port": args.port})
    serve(settings, args.service)
    return 0


def cmd_controller(args: argparse.Namespace) -> int:
    from orisel.server.launch import run_controller

    run_controller(get_settings())
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from orisel.server.launch import run_worker

    run_worker(get_settings(), args.queues, args.concurrency, args.pool)
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from orisel.core import migrate
    from orisel.core.db import make_engine

    url = get_settings().database_url
    if args.db_action == "upgrade":
        migrate.upgrade(url, args.revision)
    else:
        migrate.downgrade(url, args.revision)
    engine = make_engine(url)
    try:
        rev = migrate.current(engine)
    finally:
        engine.dispose()
    _emit(args, {"revision": rev, "head": migrate.head()}, f"job database at revision {rev}")
    return 0


def _job_dict(job: Any) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    out: dict[str, Any] = MessageToDict(job, preserving_proto_field_name=True)
    return out


def _job_line(job: Any) -> str:
    from orisel.api.common.v1 import common_pb2

    state = common_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_").lower()
    done = job.progress.fraction * 100
    line = f"{job.id}  {job.kind:9s} {state:9s} {done:5.1f}%  {job.progress.phase}"
    return line + (f"  error: {job.error}" if job.error else "")


def _ref(key: str | None) -> Any:
    from orisel.api.common.v1 import common_pb2

    return common_pb2.ArtifactRef(key=key) if key else None


def _network_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The network of `orisel submit extract|tune|ablate`: a checkpoint or a model."""
    from orisel.api.common.v1 import common_pb2

    if args.model is None and args.program_key is None:
        return {"checkpoint": _ref(args.checkpoint_key)}
    model = common_pb2.Model(
        architecture=args.model or "", weights=_ref(args.weights_key),
        program=_ref(args.program_key), input_size=args.input_size or 0,
    )  # fmt: skip
    return {"checkpoint": _ref(args.checkpoint_key), "model": model}


def _submit_request(args: argparse.Namespace) -> tuple[str, Any]:
    """(service, SubmitRequest) for `orisel submit KIND`; the service validates the spec."""
    key = args.key or ""
    if args.submit_kind == "train":
        from orisel.api.training.v1 import training_pb2

        if bool(args.label_corruptions) != bool(args.seeds):
            raise InvalidArgument(
                "--label-corruptions/--seeds", "both (a population) or neither", None
            )
        spec = training_pb2.TrainSpec(
            model=args.model or "",
            epochs=args.epochs or 0,
            seed=args.seed or 0,
            label_corruption=args.label_corruption or 0.0,
            train_subset=args.train_subset or 0,
            val_size=args.val_size or 0,
            epochs_per_segment=args.epochs_per_segment or 0,
            data=_ref(args.data_key),
            amp=args.amp or "",
            tf32=bool(args.tf32),
            compile=args.compile or "",
            population=[
                training_pb2.Variant(seed=int(s), label_corruption=float(c))
                for c in args.label_corruptions or ()
                for s in args.seeds or ()
            ],
        )
        return "training", training_pb2.SubmitRequest(idempotency_key=key, spec=spec)
    if args.submit_kind == "extract":
        from orisel.api.extraction.v1 import extraction_pb2

        ext = extraction_pb2.ExtractSpec(
            **_network_fields(args), stimuli=args.stimuli or [],
            layers=args.layers or [], reduction=args.reduction or "",
        )  # fmt: skip
        return "extraction", extraction_pb2.SubmitRequest(idempotency_key=key, spec=ext)
    if args.submit_kind == "tune":
        from orisel.api.scoring.v1 import scoring_pb2

        score = scoring_pb2.ScoreSpec(
            **_network_fields(args), data=_ref(args.data_key), stimuli=args.stimuli or [],
            layers=args.layers or [], permutations=args.permutations or 0,
            test_subset=args.test_subset or 0,
        )  # fmt: skip
        return "scoring", scoring_pb2.SubmitRequest(idempotency_key=key, spec=score)
    if args.submit_kind == "ablate":
        from orisel.api.ablation.v1 import ablation_pb2

        common = {
            **_network_fields(args),
            "data": _ref(args.data_key),
            "scores": _ref(args.scores_key),
            "layers": args.layers or [],
            "seeds": [int(x) for x in args.seeds or []],
            "test_subset": args.test_subset or 0,
        }
        if args.invariance:
            inv = ablation_pb2.InvarianceSpec(
                **common, ablate_layers=args.ablate_layers or [], shift=args.shift or 0
            )
            return "ablation", ablation_pb2.SubmitRequest(idempotency_key=key, invariance=inv)
        sweep = ablation_pb2.SweepSpec(
            **common, orders=args.orders or [], fractions=[float(x) for x in args.fractions or []]
        )
        return "ablation", ablation_pb2.SubmitRequest(idempotency_key=key, sweep=sweep)
    from orisel.api.pipeline.v1 import pipeline_pb2

    paper = pipeline_pb2.PaperSpec(
        label_corruptions=[float(x) for x in args.label_corruptions or []],
        seeds=[int(x) for x in args.seeds or []],
        epochs=args.epochs or 0, train_subset=args.train_subset or 0,
        val_size=args.val_size or 0, test_subset=args.test_subset or 0,
        permutations=args.permutations or 0,
        data=_ref(args.data_key),
    )  # fmt: skip
    return "pipeline", pipeline_pb2.SubmitRequest(idempotency_key=key, spec=paper)


def _paper_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--label-corruptions", type=_comma_list, help="e.g. 0,0.1,0.2,0.4 (the default)"
    )
    parser.add_argument("--seeds", type=_comma_list, help="seeds at the lowest corruption (0,1)")
    parser.add_argument("--epochs", type=int, help="epochs per network (default: 200)")
    parser.add_argument("--train-subset", type=int, help="training images (default: all 40k)")
    parser.add_argument("--val-size", type=int, help="validation images (default: 10000)")
    parser.add_argument("--test-subset", type=int, help="test images (default: all 10k)")
    parser.add_argument("--permutations", type=int, help="gOSI shuffles (default: 1000)")


def cmd_up(args: argparse.Namespace) -> int:
    """Serve every service and a worker from one folder; with --paper, run the pipeline."""
    import signal
    import threading
    from typing import cast

    from orisel.api.common.v1 import common_pb2
    from orisel.core.settings import make_store
    from orisel.core.storage import ArtifactStore
    from orisel.server.embedded import Embedded, embedded_settings

    base = get_settings()
    if args.data:
        base = base.model_copy(update={"data": Path(args.data).resolve()})
    if args.paper and base.data is None:
        raise InvalidArgument("--data", "a CIFAR-10 archive or folder (or set ORISEL_DATA)", None)
    home = Path(args.home)
    settings = embedded_settings(base, home, args.port)
    home.mkdir(parents=True, exist_ok=True)
    with Embedded(settings, log=home / "worker.log") as stack:
        sys.stderr.write(
            f"orisel: all services on {stack.address} (store {settings.store_root}, "
            f"worker log {home / 'worker.log'})\n"
        )
        if not args.paper:
            stop = threading.Event()
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
            stop.wait()
            return 0
        args.server, args.submit_kind, args.data_key = stack.address, "paper", None
        service, job = _submit(args)
        sys.stderr.write(f"orisel: pipeline job {job.id} submitted through {stack.address}\n")
        job = _follow(stack.address, service, job.id, args.quiet or args.json)
        if job.state != common_pb2.JOB_STATE_SUCCEEDED:
            _emit(args, _job_dict(job), _job_line(job))
            return 1
        store = cast(ArtifactStore, make_store(settings))
        out = Path(args.report_dir or home / "report")
        prefix = f"analyses/{job.id}/report/"
        for ref in job.outputs:
            store.get_file(store.stat(ref.key), out / ref.key.removeprefix(prefix))
    _emit(
        args, {**_job_dict(job), "report": str(out / "report.md")}, f"report: {out / 'report.md'}"
    )
    return 0


def cmd_paper_report(args: argparse.Namespace) -> int:
    from orisel.report.paper import collect, render, save_data

    if args.analysis:
        data = collect(args.analysis)
        save_data(data, args.out.parent / args.out.stem / "data.json")
    else:
        if not args.from_data.is_file():
            raise InvalidArgument(
                "--from-data", "a data.json written by paper-report", args.from_data
            )
        data = json.loads(args.from_data.read_text())
    preface = args.preface.read_text() if args.preface else ""
    out = render(data, args.out, preface)
    _emit(args, {"report": str(out)}, f"report: {out}")
    return 0


def _submit(args: argparse.Namespace) -> tuple[str, Any]:
    """(service, job): the request `orisel submit KIND` describes, sent to args.server."""
    from orisel.client.jobs import JobClient

    service, request = _submit_request(args)
    client = JobClient(args.server, service)
    try:
        return service, client.submit(request)
    finally:
        client.close()


def cmd_submit(args: argparse.Namespace) -> int:
    from orisel.api.common.v1 import common_pb2

    service, job = _submit(args)
    if not args.wait:
        follow = f"orisel watch {job.id} --service {service} --server {args.server}"
        _emit(args, _job_dict(job), f"submitted {_job_line(job)}\n  follow it: {follow}")
        return 0
    job = _follow(args.server, service, job.id, args.quiet or args.json)
    _emit(args, _job_dict(job), _job_line(job) + "".join(f"\n  {o.key}" for o in job.outputs))
    return 0 if job.state == common_pb2.JOB_STATE_SUCCEEDED else 1


def cmd_jobs(args: argparse.Namespace) -> int:
    from orisel.client.jobs import JobClient

    client = JobClient(args.server, args.service)
    try:
        jobs = client.list()
    finally:
        client.close()
    _emit(
        args,
        {"jobs": [_job_dict(j) for j in jobs]},
        "\n".join(_job_line(j) for j in jobs) or "no jobs",
    )
    return 0


def _follow(address: str, service: str, job_id: str, quiet: bool) -> Any:
    """Watch a job to its end with a progress bar; returns the final job."""
    from orisel.api.common.v1 import common_pb2
    from orisel.client.jobs import JobClient

    client = JobClient(address, service)
    bar = tqdm(total=100, unit="%", disable=quiet, dynamic_ncols=True)
    job = None
    try:
        for job in client.watch(job_id):
            bar.n = round(job.progress.fraction * 100, 1)
            state = common_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_").lower()
            shown: dict[str, object] = {"state": state, "phase": job.progress.phase}
            shown |= {k: f"{v:.4g}" for k, v in job.progress.metrics.items()}
            bar.set_postfix(shown)
    finally:
        bar.close()
        client.close()
    if job is None:
        raise OriselError(f"job {job_id}: the service sent no update")
    return job


def cmd_watch(args: argparse.Namespace) -> int:
    from orisel.api.common.v1 import common_pb2

    job = _follow(args.server, args.service, args.job, args.quiet or args.json)
    _emit(args, _job_dict(job), _job_line(job))
    return 0 if job.state == common_pb2.JOB_STATE_SUCCEEDED else 1


def cmd_fetch(args: argparse.Namespace) -> int:
    out = Path(args.out or Path(args.key).name)
    if args.direct:
        # Inside a deployment (a worker's init container): the store with its own credentials.
        from typing import cast

        from orisel.core.settings import make_store
        from orisel.core.storage import ArtifactStore

        store = cast(ArtifactStore, make_store(get_settings()))
        ref = store.stat(args.key)
        store.get_file(ref, out)
    else:
        from orisel.client.artifacts import ArtifactClient

        client = ArtifactClient(args.server)
        try:
            ref = client.download(args.key, out)
        finally:
            client.close()
    _emit(
        args,
        {"path": str(out), **ref.__dict__},
        f"{ref.key} ({ref.size} bytes, sha256 {ref.sha256[:12]}) -> {out}",
    )
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from orisel.client.artifacts import ArtifactClient

    path = Path(args.file)
    if not path.is_file():
        raise InvalidArgument("FILE", "an existing file", str(path))
    client = ArtifactClient(args.server)
    try:
        ref = client.upload(path, args.key)
    finally:
        client.close()
    _emit(args, ref.__dict__, f"{path} -> {ref.key} ({ref.size} bytes, sha256 {ref.sha256[:12]})")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    """Bearer tokens, straight in the job database (an operator's command, like db upgrade)."""
    import datetime

    from orisel.core.auth import Tokens
    from orisel.core.db import open_db

    settings = get_settings()
    tokens = Tokens(open_db(settings.database_url, settings.max_attempts))
    if args.token_action == "create":
        ttl = args.expires_days * 86400 if args.expires_days else None
        token = tokens.create(args.user, admin=args.admin, ttl_s=ttl)
        _emit(args, {"token": token}, token)
    elif args.token_action == "list":
        rows = tokens.list()

        def when(t: float | None) -> str:
            return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat() if t else "-"

        lines = [
            f"{t.id}  {t.user:20s} {'admin' if t.admin else 'user':5s} "
            f"created {when(t.created_at)}  expires {when(t.expires_at)}  "
            f"revoked {when(t.revoked_at)}"
            for t in rows
        ]
        _emit(args, {"tokens": [t.__dict__ for t in rows]}, "\n".join(lines) or "no tokens")
    else:
        tokens.revoke(args.id)
        _emit(args, {"revoked": args.id}, f"revoked {args.id}")
    return 0


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
        "--test-subset", type=int, help="use a stratified subset of the test images"
    )
    parser.add_argument(
        "--out", type=Path, required=True,
        help="output folder: new, empty, or an earlier orisel output with --force",
    )  # fmt: skip
    parser.add_argument(
        "--force", action="store_true", help="replace --out if it is an earlier orisel output"
    )


DATA_KEY_HELP = (
    "labelled images in the store: a CIFAR-10 archive for a checkpoint, an ImageFolder archive "
    "(<class>/<image>) for a model (default: the worker's data set)"
)


def build_parser() -> argparse.ArgumentParser:
    from orisel.training.config import TrainConfig

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bar or logs")
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

    parser = argparse.ArgumentParser(
        prog="orisel",
        description="Orientation and class selectivity of single units, and ablation tests.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    train.add_argument(
        "--population",
        action="store_true",
        help="train the grid --label-corruptions x --seeds as one stacked model (cnn7), each "
        "network in --out/cnn7-c<corruption>-s<seed>",
    )
    train.add_argument("--label-corruptions", type=_comma_list, help="with --population")
    train.add_argument("--seeds", type=_comma_list, help="with --population")
    _add_model_fields(train, TrainConfig, skip={"data"})
    _add_model_fields(train, SplitSpec, skip=set())
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
    _add_model_fields(tune, TuneSpec, skip=set())
    tune.set_defaults(func=cmd_tune)

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
    _add_model_fields(traj, TuneSpec, skip=set())
    traj.set_defaults(func=cmd_trajectory)

    from orisel.ablation.spec import AblateSpec, InvarianceSpec

    scores_help = "the output folder of `orisel tune` whose indices order the units"
    ablate = sub.add_parser(
        "ablate",
        parents=[common, data_src],
        help="ablation curves and the paper's median split",
        description="Silence units layer by layer: cumulatively by each index (descending and "
        "ascending) and at random, and the top vs bottom 50% by each index. Reports test "
        "accuracy (overall and per class) and the per-image cross-entropy increase ± SEM.",
    )
    _network_args(ablate)
    ablate.add_argument("--scores", type=Path, required=True, help=scores_help)
    ablate.add_argument(
        "--allow-mismatch", action="store_true",
        help="use --scores computed on another checkpoint than the one analysed",
    )  # fmt: skip
    _add_model_fields(ablate, AblateSpec, skip=set())
    ablate.set_defaults(func=cmd_ablate)

    inv = sub.add_parser(
        "invariance",
        parents=[common, data_src],
        help="shift-invariance with and without ablation",
        description="Correlation of higher layers' pooled responses to shifted test images, and "
        "prediction consistency, intact and with the most / least selective lower-layer units "
        "ablated, against random ablations of the same size.",
    )
    _network_args(inv)
    inv.add_argument("--scores", type=Path, required=True, help=scores_help)
    inv.add_argument(
        "--allow-mismatch", action="store_true",
        help="use --scores computed on another checkpoint than the one analysed",
    )  # fmt: skip
    _add_model_fields(inv, InvarianceSpec, skip=set())
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
    report.set_defaults(func=cmd_report)

    serve = sub.add_parser("serve", help="run a gRPC service (settings: ORISEL_* variables)")
    serve.add_argument("service", choices=list(QUEUES), help="which service")
    serve.add_argument(
        "--port", type=int, help="port (default: $ORISEL_GRPC_PORT or 50051; 0: any)"
    )
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run a Celery worker for some service queues")
    worker.add_argument(
        "--queues", type=_comma_list, default=list(QUEUES), help="e.g. training,ablation"
    )
    worker.add_argument("--concurrency", type=int, default=1, help="tasks at once (default 1)")
    worker.add_argument(
        "--pool",
        default="prefork",
        choices=["prefork", "solo", "threads"],
        help="Celery pool (solo: tasks run in the worker process itself)",
    )
    worker.set_defaults(func=cmd_worker)

    controller = sub.add_parser(
        "controller", help="send queued jobs' tasks and re-send what lost its worker or message"
    )
    controller.set_defaults(func=cmd_controller)

    db = sub.add_parser("db", help="the job database's schema (ORISEL_DATABASE_URL)")
    db_sub = db.add_subparsers(dest="db_action", required=True, metavar="ACTION")
    db_up = db_sub.add_parser("upgrade", parents=[common], help="migrate to a revision")
    db_up.add_argument("revision", nargs="?", default="head", help="default: head")
    db_down = db_sub.add_parser("downgrade", parents=[common], help="migrate back")
    db_down.add_argument("revision", help="a revision, or base for an empty database")
    db.set_defaults(func=cmd_db)

    server = argparse.ArgumentParser(add_help=False)
    server.add_argument("--server", default="127.0.0.1:50051", help="host:port of the service")
    server.add_argument("--ca", help="CA certificate the server's TLS must chain to (ORISEL_CA)")
    server.add_argument("--token", help="bearer token (ORISEL_TOKEN; a local orisel up's is found)")
    submit = sub.add_parser("submit", help="submit a job to a service")
    submit_sub = submit.add_subparsers(dest="submit_kind", required=True, metavar="KIND")
    submit_common = argparse.ArgumentParser(add_help=False, parents=[common, server])
    submit_common.add_argument(
        "--key", help="idempotency key: submitting it again returns the same job"
    )
    submit_common.add_argument(
        "--wait", action="store_true", help="follow the job to its end (exit 1 unless it succeeds)"
    )
    st = submit_sub.add_parser("train", parents=[submit_common], help="a training job")
    for flag, typ in (
        ("--model", str),
        ("--epochs", int),
        ("--seed", int),
        ("--label-corruption", float),
        ("--train-subset", int),
        ("--val-size", int),
        ("--epochs-per-segment", int),
    ):
        st.add_argument(flag, type=typ)
    st.add_argument("--data-key", help="data-set archive in the store (default: the worker's)")
    st.add_argument(
        "--label-corruptions",
        type=_comma_list,
        help="with --seeds: a population, every (corruption, seed) trained as one stacked model",
    )
    st.add_argument("--seeds", type=_comma_list, help="with --label-corruptions")
    st.add_argument("--amp", choices=("off", "bf16", "fp16"), help="mixed precision (CUDA)")
    st.add_argument("--tf32", action="store_true", help="TensorFloat-32 kernels (CUDA)")
    st.add_argument("--compile", choices=("off", "on", "cudagraphs"), help="torch.compile")
    analysis = argparse.ArgumentParser(add_help=False)
    analysis.add_argument(
        "--checkpoint-key", help="orisel checkpoint in the store, e.g. runs/<job>/best.pt"
    )
    analysis.add_argument("--model", help="instead: a torchvision architecture, e.g. resnet18")
    analysis.add_argument("--weights-key", help="with --model: a state dict in the store")
    analysis.add_argument(
        "--program-key", help="instead: a torch.export (.pt2) or TorchScript archive in the store"
    )
    analysis.add_argument("--input-size", type=int, help="with --model/--program-key: pixels")
    analysis.add_argument("--layers", type=_comma_list, help="layers (default: all analysed)")
    se = submit_sub.add_parser(
        "extract", parents=[submit_common, analysis], help="stimulus responses of a checkpoint"
    )
    se.add_argument("--stimuli", type=_comma_list, help="gratings,bars (default: both)")
    se.add_argument("--reduction", choices=["mean", "centre", "max"])
    su = submit_sub.add_parser(
        "tune", parents=[submit_common, analysis], help="orientation and class selectivity"
    )
    su.add_argument("--stimuli", type=_comma_list, help="gratings,bars (default: both)")
    su.add_argument("--permutations", type=int)
    su.add_argument("--test-subset", type=int)
    su.add_argument("--data-key", help=DATA_KEY_HELP)
    sa = submit_sub.add_parser(
        "ablate", parents=[submit_common, analysis], help="an ablation sweep or shift-invariance"
    )
    sa.add_argument(
        "--scores-key", required=True, help="units table of a tune job, .../tune/units.csv"
    )
    sa.add_argument("--orders", type=_comma_list, help="gosi,osi,csi")
    sa.add_argument("--fractions", type=_comma_list)
    sa.add_argument("--seeds", type=_comma_list, help="seeds of the random orders")
    sa.add_argument("--test-subset", type=int)
    sa.add_argument("--data-key", help=DATA_KEY_HELP)
    sa.add_argument("--invariance", action="store_true", help="shift-invariance instead")
    sa.add_argument("--ablate-layers", type=_comma_list, help="with --invariance")
    sa.add_argument("--shift", type=int, help="with --invariance: pixels")
    sp = submit_sub.add_parser(
        "paper", parents=[submit_common], help="the paper end to end: train, score, ablate, report"
    )
    _paper_flags(sp)
    sp.add_argument("--data-key", help="data-set archive in the store (default: the worker's)")
    for p in (st, se, su, sa, sp):
        p.set_defaults(func=cmd_submit)

    up = sub.add_parser(
        "up",
        parents=[common],
        help="embedded mode: every service and a worker, no servers needed",
        description="Serve all five gRPC services, the controller and one worker from one "
        "folder (local store, SQLite job database, Celery filesystem broker). With --paper, "
        "submit the paper pipeline "
        "through the gRPC client, follow it, fetch its report and stop.",
    )
    up.add_argument("--home", default="runs/embedded", help="state folder (default: %(default)s)")
    up.add_argument("--port", type=int, default=50051, help="gRPC port (0: any free port)")
    up.add_argument("--data", help="CIFAR-10 archive or folder (default: $ORISEL_DATA)")
    up.add_argument("--paper", action="store_true", help="run the paper pipeline, then stop")
    up.add_argument("--key", help="idempotency key of the pipeline job")
    up.add_argument("--report-dir", help="where the report goes (default: HOME/report)")
    _paper_flags(up)
    up.set_defaults(func=cmd_up)
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
    pr.set_defaults(func=cmd_paper_report)

    service = argparse.ArgumentParser(add_help=False)
    service.add_argument("--service", default="training", choices=list(QUEUES))
    jobs = sub.add_parser("jobs", parents=[common, server, service], help="list a service's jobs")
    jobs.set_defaults(func=cmd_jobs)
    watch = sub.add_parser(
        "watch", parents=[common, server, service], help="follow a job to its end"
    )
    watch.add_argument("job", help="the job id")
    watch.set_defaults(func=cmd_watch)
    fetch = sub.add_parser(
        "fetch", parents=[common, server], help="download an artifact (ArtifactService)"
    )
    fetch.add_argument("key", help="object key, e.g. runs/<job>/best.pt")
    fetch.add_argument("--out", help="local path, never overwritten (default: the key's name)")
    fetch.add_argument(
        "--direct", action="store_true", help="inside a deployment: from the store itself"
    )
    fetch.set_defaults(func=cmd_fetch)
    push = sub.add_parser(
        "push", parents=[common, server], help="upload a file as an artifact (ArtifactService)"
    )
    push.add_argument("file", help="local file, e.g. a data-set archive")
    push.add_argument(
        "key", help="users/<you>/<name>; admins also datasets/<name> and models/<name>"
    )
    push.set_defaults(func=cmd_push)
    token = sub.add_parser("token", help="bearer tokens in the job database (operators)")
    token_sub = token.add_subparsers(dest="token_action", required=True, metavar="ACTION")
    create = token_sub.add_parser("create", parents=[common], help="issue a token for a user")
    create.add_argument("user", help="the principal the token authenticates")
    create.add_argument("--admin", action="store_true", help="sees and acts on every job")
    create.add_argument("--expires-days", type=float, help="lifetime (default: until revoked)")
    token_sub.add_parser("list", parents=[common], help="every token (never the secret)")
    revoke = token_sub.add_parser("revoke", parents=[common], help="revoke a token at once")
    revoke.add_argument("id", help="the token's id (orisel_<id>_...)")
    token.set_defaults(func=cmd_token)
    return parser


EXIT_USAGE, EXIT_INPUT, EXIT_REFUSED, EXIT_SERVICE = 2, 3, 4, 5
EXIT_CODES = """exit codes:
  0  done (watch, submit --wait, up --paper: the job succeeded)
  1  the job ended but did not succeed
  2  usage: a flag or value is not allowed
  3  input: a file, checkpoint, layer or data set is missing or unreadable
  4  refused: the request is valid but the state forbids it (an existing --out, a
     checkpoint of another model, scores of another checkpoint, a reused key)
  5  service: a server answered with an error or could not be reached
  130 interrupted (Ctrl-C, SIGTERM); temporary outputs are removed"""


def exit_code(exc: OriselError) -> int:
    if isinstance(exc, Unavailable):
        return EXIT_SERVICE
    if isinstance(exc, (NotFound, DataError)):
        return EXIT_INPUT
    if isinstance(exc, (FailedPrecondition, AlreadyExists, PermissionDenied, Unauthenticated)):
        return EXIT_REFUSED
    return EXIT_USAGE


def _fail(args: argparse.Namespace, rc: int, kind: str, message: str) -> int:
    sys.stderr.write(f"orisel: error: {message}\n")
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps({"error": message, "kind": kind, "exit_code": rc}) + "\n")
    return rc


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.command = ["orisel", *argv]
    for flag, variable in (("ca", "ORISEL_CA"), ("token", "ORISEL_TOKEN")):
        if getattr(args, flag, None):
            os.environ[variable] = getattr(args, flag)
            get_settings.cache_clear()
    logging.basicConfig(
        level=logging.WARNING if getattr(args, "quiet", False) else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # SIGTERM unwinds like Ctrl-C, so temporary outputs are removed on the way out (the
    # process launchers install their own handlers).
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        with progress.shown(not getattr(args, "quiet", False)):
            rc: int = args.func(args)
    except OriselError as exc:
        return _fail(args, exit_code(exc), type(exc).__name__, str(exc))
    except Exception as exc:
        # A service's answer (grpc.RpcError) without importing grpc for every command.
        if not (type(exc).__module__.startswith("grpc") and hasattr(exc, "code")):
            raise
        code = exc.code().name
        return _fail(args, EXIT_SERVICE, code, f"{code}: {exc.details()}")  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        hint = "; `orisel train --resume` continues from the last checkpoint"
        sys.stderr.write(f"orisel: interrupted{hint if args.func is cmd_train else ''}\n")
        return 130
    return rc
