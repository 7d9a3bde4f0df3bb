"""The `orisel` command line: `orisel data ...`, `orisel train ...`, `orisel models`."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from tqdm import tqdm

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
    return load_network(args.checkpoint, args.model, args.weights, args.device, args.download)


def _test_split(args: argparse.Namespace, net: Any) -> tuple[Any, Any, int, str] | None:
    """CIFAR-10 test images for a cnn7 network (class selectivity, ablation, invariance)."""
    from orisel.data.prepare import stratified_split
    from orisel.data.sources import load_cifar10

    path = args.data or get_settings().data
    if path is None:
        return None
    if net.mean_image is None:
        raise InvalidArgument(
            "--data",
            "CIFAR-10 data for a cnn7 checkpoint (ImageNet evaluation is not wired here)",
            str(path),
        )
    ds = load_cifar10(Path(path), args.cache_dir or get_settings().cache_dir)
    expected = net.source.get("data_sha256")
    if expected and expected != ds.sha256:
        log.warning(
            "the checkpoint was trained on data %s, this is %s", expected[:12], ds.sha256[:12]
        )
    images, labels = ds.test_images, ds.test_labels
    if args.test_subset is not None and args.test_subset < len(labels):
        _, keep = stratified_split(labels, args.test_subset, seed=0)
        images, labels = images[keep], labels[keep]
    return images, labels, len(ds.classes), ds.sha256


def cmd_tune(args: argparse.Namespace) -> int:
    from orisel.scoring.tune import TuneSpec, tune

    spec = _spec(TuneSpec, args)
    net = _network(args)
    split = _test_split(args, net)
    images, labels, n_classes, sha = split if split is not None else (None, None, 10, None)
    out = Path(args.out)
    result = tune(
        net, spec, out, images, labels, n_classes, {"data_sha256": sha, "command": args.command}
    )
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
            "--data", "the CIFAR-10 source to evaluate on (or set ORISEL_DATA)", None
        )
    return split


def cmd_ablate(args: argparse.Namespace) -> int:
    from orisel.ablation.run import AblateSpec, UnitScores, ablate

    spec = _spec(AblateSpec, args)
    scores = UnitScores(args.scores, spec.stimulus)
    net = _network(args)
    images, labels, _, sha = _needs_test_split(args, net)
    result = ablate(
        net,
        spec,
        scores,
        images,
        labels,
        Path(args.out),
        {"data_sha256": sha, "command": args.command},
    )
    lines = [f"ablation on {len(labels)} test images -> {args.out}"]
    for s in result["splits"]:
        top, bottom = s["top50"], s["bottom50"]
        lines.append(
            f"  {s['layer']:8s} by {s['by']:4s}: top-50% +{top['loss_increase_mean']:.4f}"
            f"±{top['loss_increase_sem']:.4f} (acc {top['accuracy']:.3f}) vs bottom-50% "
            f"+{bottom['loss_increase_mean']:.4f}±{bottom['loss_increase_sem']:.4f} "
            f"(acc {bottom['accuracy']:.3f})"
        )
    _emit(args, result, "\n".join(lines))
    return 0


def cmd_invariance(args: argparse.Namespace) -> int:
    from orisel.ablation.run import InvarianceSpec, UnitScores, invariance

    spec = _spec(InvarianceSpec, args)
    scores = UnitScores(args.scores, spec.stimulus)
    net = _network(args)
    images, _, _, sha = _needs_test_split(args, net)
    result = invariance(
        net, spec, scores, images, Path(args.out), {"data_sha256": sha, "command": args.command}
    )
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
    import importlib

    from orisel.core.grpcserver import serve_until_signal, start_server

    settings = get_settings()
    if args.port is not None:
        settings = settings.model_copy(update={"grpc_port": args.port})
    registration = importlib.import_module(f"orisel.{args.service}.servicer").registration
    server, port, health = start_server(
        [registration(settings)], settings.grpc_host, settings.grpc_port
    )
    sys.stderr.write(f"orisel {args.service} service on {settings.grpc_host}:{port}\n")
    serve_until_signal(server, health, settings.grace_s)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from orisel.core.celery_app import app

    argv = [
        "worker",
        "--queues",
        ",".join(args.queues),
        "--concurrency",
        str(args.concurrency),
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--pool",
        args.pool,
    ]
    app.worker_main(argv)
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


def cmd_submit_train(args: argparse.Namespace) -> int:
    from orisel.api.training.v1 import training_pb2
    from orisel.client.jobs import JobClient

    spec = training_pb2.TrainSpec(
        model=args.model or "",
        epochs=args.epochs or 0,
        seed=args.seed or 0,
        label_corruption=args.label_corruption or 0.0,
        train_subset=args.train_subset or 0,
        val_size=args.val_size or 0,
        epochs_per_segment=args.epochs_per_segment or 0,
    )
    client = JobClient(args.server, "training")
    try:
        job = client.submit(training_pb2.SubmitRequest(idempotency_key=args.key or "", spec=spec))
    finally:
        client.close()
    _emit(
        args,
        _job_dict(job),
        f"submitted {_job_line(job)}\n  follow it: orisel watch {job.id} --service training",
    )
    return 0


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


def cmd_watch(args: argparse.Namespace) -> int:
    from orisel.api.common.v1 import common_pb2
    from orisel.client.jobs import JobClient

    client = JobClient(args.server, args.service)
    bar = tqdm(total=100, unit="%", disable=args.quiet or args.json, dynamic_ncols=True)
    job = None
    try:
        for job in client.watch(args.job):
            bar.n = round(job.progress.fraction * 100, 1)
            state = common_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_").lower()
            shown: dict[str, object] = {"state": state}
            shown |= {k: f"{v:.4g}" for k, v in job.progress.metrics.items()}
            bar.set_postfix(shown)
    finally:
        bar.close()
        client.close()
    assert job is not None
    _emit(args, _job_dict(job), _job_line(job))
    return 0 if job.state == common_pb2.JOB_STATE_SUCCEEDED else 1


def cmd_fetch(args: argparse.Namespace) -> int:
    from typing import cast

    from orisel.core.settings import make_store
    from orisel.core.storage import ArtifactStore

    store = cast(ArtifactStore, make_store(get_settings()))
    ref = store.stat(args.key)
    out = store.get_file(ref, Path(args.out or Path(args.key).name))
    _emit(
        args,
        {"path": str(out), **ref.__dict__},
        f"{ref.key} ({ref.size} bytes, sha256 {ref.sha256[:12]}) -> {out}",
    )
    return 0


def _network_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint", type=Path, help="an orisel checkpoint (e.g. runs/x/best.pt)"
    )
    parser.add_argument(
        "--model", help="a torchvision model name instead of a checkpoint (e.g. vgg16)"
    )
    parser.add_argument(
        "--weights", help="torchvision weights name (DEFAULT, IMAGENET1K_V1) or file"
    )
    parser.add_argument(
        "--download", action="store_true", help="allow fetching torchvision weights"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default: auto)")
    parser.add_argument(
        "--test-subset", type=int, help="use a stratified subset of the test images"
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (replaced whole)")


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

    from orisel.scoring.tune import TuneSpec

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

    from orisel.ablation.run import AblateSpec, InvarianceSpec

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
    serve.add_argument("service", choices=["training", "scoring", "ablation"], help="which service")
    serve.add_argument(
        "--port", type=int, help="port (default: $ORISEL_GRPC_PORT or 50051; 0: any)"
    )
    serve.set_defaults(func=cmd_serve)

    from orisel.core.settings import QUEUES

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

    server = argparse.ArgumentParser(add_help=False)
    server.add_argument("--server", default="127.0.0.1:50051", help="host:port of the service")
    submit = sub.add_parser("submit", help="submit a job to a service")
    submit_sub = submit.add_subparsers(dest="submit_kind", required=True, metavar="KIND")
    st = submit_sub.add_parser("train", parents=[common, server], help="a training job")
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
    st.add_argument("--key", help="idempotency key: submitting it again returns the same job")
    st.set_defaults(func=cmd_submit_train)

    service = argparse.ArgumentParser(add_help=False)
    service.add_argument("--service", default="training", choices=["training", "ablation"])
    jobs = sub.add_parser("jobs", parents=[common, server, service], help="list a service's jobs")
    jobs.set_defaults(func=cmd_jobs)
    watch = sub.add_parser(
        "watch", parents=[common, server, service], help="follow a job to its end"
    )
    watch.add_argument("job", help="the job id")
    watch.set_defaults(func=cmd_watch)
    fetch = sub.add_parser("fetch", parents=[common], help="download an artifact from the store")
    fetch.add_argument("key", help="object key, e.g. runs/<job>/best.pt")
    fetch.add_argument("--out", help="local path (default: the key's file name)")
    fetch.set_defaults(func=cmd_fetch)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.command = ["orisel", *argv]
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
