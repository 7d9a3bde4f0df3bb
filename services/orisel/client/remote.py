"""The `orisel` commands that talk to services: submit, and the parser of every remote
command (jobs, watch, get, cancel: client/follow.py; fetch, push: client/transfer.py)."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

from orisel.client.args import (
    add_model_fields,
    comma_list,
    emit,
    paper_flags,
    spec_from_args,
)
from orisel.client.follow import (
    cmd_cancel,
    cmd_get,
    cmd_jobs,
    cmd_watch,
    follow,
    job_dict,
    job_line,
)
from orisel.client.transfer import cmd_fetch, cmd_push
from orisel.kernel.errors import InvalidArgument
from orisel.runtime.settings import QUEUES


def _ref(key: str | None) -> Any:
    from orisel.api.common.v1 import common_pb2

    return common_pb2.ArtifactRef(key=key) if key else None


def _network_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The network of `orisel submit extract|tune|ablate`: a checkpoint or a model."""
    from orisel.api.common.v1 import common_pb2

    if args.model is None and args.program_key is None:
        return {"checkpoint": _ref(args.checkpoint_key)}
    model = common_pb2.Model(
        architecture=args.model or "",
        weights=_ref(args.weights_key),
        program=_ref(args.program_key),
        input_size=args.input_size or 0,
    )
    return {"checkpoint": _ref(args.checkpoint_key), "model": model}


# submit KIND: the service, its spec model (module, class) and the references it takes
# besides the network; the spec's other fields are flags made from the model.
ANALYSES: dict[str, tuple[str, str, str, tuple[str, ...]]] = {
    "extract": (
        "extraction",
        "orisel.extraction.spec",
        "ExtractSpec",
        ("data", "class_map", "test_subset"),
    ),
    "tune": (
        "scoring",
        "orisel.scoring.spec",
        "TuneSpec",
        ("data", "class_map", "test_subset", "activations"),
    ),
    "ablate": (
        "ablation",
        "orisel.ablation.spec",
        "AblateSpec",
        ("data", "class_map", "scores", "test_subset"),
    ),
    "invariance": (
        "ablation",
        "orisel.ablation.spec",
        "InvarianceSpec",
        ("data", "class_map", "scores", "test_subset"),
    ),
}


def _spec_model(kind: str) -> Any:
    _, module, name, _ = ANALYSES[kind]
    return getattr(importlib.import_module(module), name)


def _analysis_message(kind: str) -> Any:
    """The request's spec message class of `orisel submit KIND`."""
    from orisel.api.ablation.v1 import ablation_pb2
    from orisel.api.extraction.v1 import extraction_pb2
    from orisel.api.scoring.v1 import scoring_pb2

    return {
        "extract": extraction_pb2.ExtractSpec,
        "tune": scoring_pb2.ScoreSpec,
        "ablate": ablation_pb2.SweepSpec,
        "invariance": ablation_pb2.InvarianceSpec,
    }[kind]


def _analysis_request(args: argparse.Namespace, key: str) -> tuple[str, Any]:
    """The flags the user gave, validated by the same spec model the local command and the
    service use, written into the message by name."""
    from orisel.rpc.protospec import carried, to_proto

    kind = args.submit_kind
    service, _, _, refs = ANALYSES[kind]
    model, message = _spec_model(kind), _analysis_message(kind)
    names = carried(model, message.DESCRIPTOR)
    spec = spec_from_args(model, args, names)
    given = {n for n in names if getattr(args, n, None) is not None}
    fields = _network_fields(args)
    if "data" in refs:
        fields["data"] = _ref(args.data_key)
    if "class_map" in refs:
        fields["class_map"] = _ref(args.class_map_key)
    if "scores" in refs:
        fields["scores"] = _ref(args.scores_key)
    if "activations" in refs:
        fields["activations"] = _ref(args.activations_key)
    if "test_subset" in refs:
        fields["test_subset"] = args.test_subset or 0
    msg = to_proto(message(**fields), spec.model_dump(include=given))
    pb2 = importlib.import_module(message.__module__)
    if kind in ("ablate", "invariance"):
        which = "sweep" if kind == "ablate" else "invariance"
        return service, pb2.SubmitRequest(idempotency_key=key, **{which: msg})
    return service, pb2.SubmitRequest(idempotency_key=key, spec=msg)


def _train_fields() -> list[tuple[Any, tuple[str, ...]]]:
    """The TrainConfig and SplitSpec fields a TrainSpec carries (flat; its `data` is the
    archive's reference, the device the worker's)."""
    from orisel.api.training.v1 import training_pb2
    from orisel.data.prepare import SplitSpec
    from orisel.rpc.protospec import carried
    from orisel.training.config import TrainConfig

    message = training_pb2.TrainSpec.DESCRIPTOR
    own = tuple(n for n in carried(TrainConfig, message) if n != "data")
    return [(TrainConfig, own), (SplitSpec, carried(SplitSpec, message))]


def _submit_request(args: argparse.Namespace) -> tuple[str, Any]:
    """(service, SubmitRequest) for `orisel submit KIND`; the service validates the spec."""
    key = args.key or ""
    if args.submit_kind == "train":
        from orisel.api.training.v1 import training_pb2
        from orisel.rpc.protospec import to_proto

        if bool(args.label_corruptions) != bool(args.seeds):
            raise InvalidArgument(
                "--label-corruptions/--seeds", "both (a population) or neither", None
            )
        if args.select_regs and not args.seeds:
            raise InvalidArgument(
                "--select-regs", "given with --label-corruptions and --seeds", None
            )
        alphas: list[float | None] = [None]
        if args.select_regs:
            try:
                alphas = [float(a) for a in args.select_regs]
            except ValueError as exc:
                raise InvalidArgument("--select-regs", "numbers", args.select_regs) from exc
        values: dict[str, Any] = {}
        for model, names in _train_fields():
            given = {n for n in names if getattr(args, n, None) is not None}
            values |= spec_from_args(model, args, names).model_dump(include=given)
        spec = training_pb2.TrainSpec(
            epochs_per_segment=args.epochs_per_segment or 0,
            data=_ref(args.data_key),
            population=[
                training_pb2.Variant(seed=int(s), label_corruption=float(c), select_reg=a)
                for c in args.label_corruptions or ()
                for s in args.seeds or ()
                for a in alphas
            ],
        )
        to_proto(spec, values)
        return "training", training_pb2.SubmitRequest(idempotency_key=key, spec=spec)
    if args.submit_kind in ANALYSES:
        return _analysis_request(args, key)
    from orisel.api.pipeline.v1 import pipeline_pb2
    from orisel.pipeline.spec import PaperSpec
    from orisel.rpc.protospec import carried, to_proto

    names = carried(PaperSpec, pipeline_pb2.PaperSpec.DESCRIPTOR)
    given = {n for n in names if getattr(args, n, None) is not None}
    values = spec_from_args(PaperSpec, args, names).model_dump(include=given)
    paper = to_proto(pipeline_pb2.PaperSpec(data=_ref(args.data_key)), values)
    return "pipeline", pipeline_pb2.SubmitRequest(idempotency_key=key, spec=paper)


def submit_job(args: argparse.Namespace) -> Any:
    """The job the request `orisel submit KIND` describes made, sent to args.server."""
    from orisel.client.jobs import JobClient

    service, request = _submit_request(args)
    client = JobClient(args.server, service)
    try:
        return client.submit(request)
    finally:
        client.close()


def cmd_submit(args: argparse.Namespace) -> int:
    from orisel.api.common.v1 import common_pb2

    job = submit_job(args)
    if not args.wait:
        hint = f"orisel watch {job.id} --server {args.server}"
        emit(args, job_dict(job), f"submitted {job_line(job)}\n  follow it: {hint}")
        return 0
    job = follow(args.server, job.id, args.quiet or args.json)
    emit(args, job_dict(job), job_line(job) + "".join(f"\n  {o.key}" for o in job.outputs))
    return 0 if job.state == common_pb2.JOB_STATE_SUCCEEDED else 1


DATA_KEY_HELP = (
    "labelled images in the store: a CIFAR-10 archive for a checkpoint, an ImageFolder archive "
    "(<class>/<image>) for a model (default: the worker's data set)"
)


def add_remote_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    """The remote commands, on the `orisel` parser."""
    from orisel.rpc.protospec import carried

    server = argparse.ArgumentParser(add_help=False)
    server.add_argument(
        "--server",
        help="host:port of the services (default: ORISEL_SERVER, else the local `orisel up` "
        "this machine runs, else 127.0.0.1:50051)",
    )
    server.add_argument(
        "--home", type=Path, help="reach the local `orisel up --home HOME` (when several run)"
    )
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
    for model, names in _train_fields():
        add_model_fields(st, model, skip=set(model.model_fields) - set(names))
    st.add_argument(
        "--epochs-per-segment", type=int, help="epochs per task (default: the service's)"
    )
    st.add_argument("--data-key", help="data-set archive in the store (default: the worker's)")
    st.add_argument(
        "--label-corruptions",
        type=comma_list,
        help="with --seeds: a population, every (corruption, seed) trained as one stacked model",
    )
    st.add_argument("--seeds", type=comma_list, help="with --label-corruptions")
    st.add_argument(
        "--select-regs",
        type=comma_list,
        help="with --seeds: each (corruption, seed) once per alpha of the selectivity term",
    )
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
    helps = {
        "extract": "stimulus responses of a network",
        "tune": "orientation and class selectivity",
        "ablate": "an ablation sweep and the median split",
        "invariance": "shift-invariance with and without ablating the selective units",
    }
    analyses = []
    for kind, what in helps.items():
        parser = submit_sub.add_parser(kind, parents=[submit_common, analysis], help=what)
        model = _spec_model(kind)
        carries = set(carried(model, _analysis_message(kind).DESCRIPTOR))
        add_model_fields(parser, model, skip=set(model.model_fields) - carries)
        refs = ANALYSES[kind][3]
        if "test_subset" in refs:
            parser.add_argument("--test-subset", type=int, help="test images (default: all)")
        if "data" in refs:
            parser.add_argument("--data-key", help=DATA_KEY_HELP)
        if "class_map" in refs:
            parser.add_argument(
                "--class-map-key",
                help="for an ImageFolder --data-key: a stored class map, which network output "
                'each class is (JSON {"<class>": <index>}, or the network\'s class names in '
                "output order, one per line)",
            )
        if "scores" in refs:
            parser.add_argument(
                "--scores-key", required=True, help="units table of a tune job, .../tune/units.csv"
            )
        if "activations" in refs:
            parser.add_argument(
                "--activations-key",
                help="instead of a network: stored activations to score, the summary.json of "
                "an extraction (activations/<user>/<key>/summary.json); without it the job "
                "finds or starts its network's extraction",
            )
        analyses.append(parser)
    sp = submit_sub.add_parser(
        "paper", parents=[submit_common], help="the paper end to end: train, score, ablate, report"
    )
    paper_flags(sp)
    sp.add_argument("--data-key", help="data-set archive in the store (default: the worker's)")
    for p in (st, *analyses, sp):
        p.set_defaults(func=cmd_submit)

    jobs = sub.add_parser("jobs", parents=[common, server], help="list the jobs you may see")
    jobs.add_argument("--kind", choices=list(QUEUES), help="only jobs of this kind")
    jobs.set_defaults(func=cmd_jobs)
    for name, func, what in (
        ("watch", cmd_watch, "follow a job to its end (exit 1 unless it succeeds)"),
        ("get", cmd_get, "a job's state, progress and outputs"),
        ("cancel", cmd_cancel, "cancel a job and its children"),
    ):
        verb = sub.add_parser(name, parents=[common, server], help=what)
        verb.add_argument("job", help="the job id, of any kind")
        verb.set_defaults(func=func)
    fetch = sub.add_parser(
        "fetch",
        parents=[common, server],
        help="download a job's whole result, or one artifact (ArtifactService)",
    )
    fetch.add_argument(
        "key", help="a job id (its every artifact) or an object key, e.g. runs/<job>/best.pt"
    )
    fetch.add_argument(
        "--out",
        help="a new folder for a job, a new file for a key; never written over (default: the "
        "job id, or the key's name)",
    )
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
