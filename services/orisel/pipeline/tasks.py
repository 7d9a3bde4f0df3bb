"""The pipeline job: the paper end to end as a DAG of the other services' jobs.

One task, `advance`, runs when the pipeline is submitted and again whenever one of its
children ends (the database owes the parent a run in the same transaction that ends the
child). Each run reads the children from the database, creates the next stage's children
under keys derived from the pipeline's id (a re-run makes nothing twice; the controller
sends them like any submitted job), and moves on once every child of a stage succeeded. No
worker waits on another and nothing polls: the DAG's state is the children's rows.

    train   one training job per variant
    extract the activations of each best checkpoint and of every checkpoint of the first run
            (the forward passes, on GPU workers)
    score   tune each of them from its activations (trajectory: the first run's), no forward
            pass (on CPU workers)
    analyse ablation sweep and shift-invariance of each reference network
    report  the report, built here from the children's outputs
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orisel.ablation import servicer as ablation_servicer
from orisel.ablation.spec import INVARIANCE_TASK, SWEEP_TASK
from orisel.api.ablation.v1 import ablation_pb2
from orisel.api.common.v1 import common_pb2
from orisel.api.extraction.v1 import extraction_pb2
from orisel.api.scoring.v1 import scoring_pb2
from orisel.api.training.v1 import training_pb2
from orisel.control.celery_app import job_task
from orisel.control.job import Job, JobState
from orisel.control.lifecycle import Child, JobRun, children_of, ensure_children
from orisel.extraction import servicer as extraction_servicer
from orisel.extraction.spec import EXTRACT_TASK
from orisel.kernel.errors import OriselError
from orisel.pipeline.spec import ADVANCE_TASK, PaperSpec, Variant
from orisel.runtime.settings import Settings
from orisel.scoring import servicer as scoring_servicer
from orisel.scoring.spec import SCORE_TASK
from orisel.store.backend import ArtifactRef, ArtifactStore
from orisel.store.scratch import upload_dir
from orisel.training import servicer as training_servicer
from orisel.training.config import POPULATION_TASK, SEGMENT_TASK, run_name

# What the selectivity study's networks are scored on.
STUDY_STIMULI = ("gratings",)
# Share of the whole pipeline's progress that each stage accounts for.
STAGES = (
    ("train", 0.6),
    ("extract", 0.1),
    ("score", 0.05),
    ("analyse", 0.2),
    ("report", 0.05),
)


def _ref(ref: ArtifactRef | dict[str, Any]) -> common_pb2.ArtifactRef:
    return (ref if isinstance(ref, ArtifactRef) else ArtifactRef(**ref)).to_proto()


def _train_children(
    spec: PaperSpec, data: dict[str, Any] | None, population: int, store: ArtifactStore
) -> list[Child]:
    """One training job per network, or with `population` > 1 the networks in stacks of that
    many, each stack one population job (one model on one device). Each is the TrainSpec a
    client would submit, validated by the training service's own reading of it."""

    def job_spec(variants: list[Variant], stacked: bool) -> Callable[[], dict[str, Any]]:
        study = bool(variants[0].select_reg)
        epochs, subset = spec.study_recipe() if study else (spec.epochs, spec.train_subset)
        msg = training_pb2.TrainSpec(
            epochs=epochs,
            train_subset=subset or 0,
            val_size=spec.val_size or 0,
            # the same test images for training curves and analyses
            test_subset=spec.test_subset or 0,
            epochs_per_segment=spec.segment_epochs or 0,
            data=_ref(data) if data else None,
        )
        if study and (epochs, subset) != (spec.epochs, spec.train_subset):
            # A short study is compared within itself: what it analyses is its networks'
            # end, so only the first and last checkpoints are evaluated and written.
            msg.early_checkpoint_until = 0
            msg.checkpoint_every_epochs = epochs
        if stacked:
            msg.population.extend(
                training_pb2.Variant(
                    seed=v.seed, label_corruption=v.corruption, select_reg=v.select_reg
                )
                for v in variants
            )
        else:
            (v,) = variants
            msg.seed, msg.label_corruption = v.seed, v.corruption
            msg.select_reg = v.select_reg
        return lambda: training_servicer.spec_from_proto(msg, store)

    out = []
    plain = [v for v in spec.variants() if not v.select_reg]
    # The study's networks stack apart: their recipe may differ from the others'.
    for prefix, variants in (("stack", plain), ("study", spec.regularized())):
        if population <= 1:
            out += [
                Child(f"train/{v.name}", "training", job_spec([v], False), SEGMENT_TASK)
                for v in variants
            ]
            continue
        out += [
            Child(
                f"train/{prefix}{i // population}",
                "training",
                job_spec(variants[i : i + population], True),
                POPULATION_TASK,
            )
            for i in range(0, len(variants), population)
        ]
    return out


def _runs(made: dict[str, Job]) -> dict[str, tuple[Job, str]]:
    """Each trained network's (training job, key prefix of its run) by variant name."""
    out = {}
    for name, job in made.items():
        if not name.startswith("train/"):
            continue
        for v in job.spec.get("population") or []:
            model = job.spec["config"]["model"]
            variant = run_name(model, v["label_corruption"], v["seed"], v.get("select_reg", 0.0))
            out[variant] = (job, f"runs/{job.id}/{variant}/")
        if not job.spec.get("population"):
            out[name.removeprefix("train/")] = (job, f"runs/{job.id}/")
    return out


def _output(job: Job, suffix: str) -> ArtifactRef:
    ref = job.output(suffix)
    if ref is None:
        raise OriselError(f"{job.kind} job {job.id} has no output ending in {suffix}")
    return ref


def _best(run: tuple[Job, str]) -> ArtifactRef:
    job, prefix = run
    return _output(job, prefix.removeprefix(f"runs/{job.id}") + "best.pt")


def _scored(
    spec: PaperSpec, trained: dict[str, tuple[Job, str]], store: ArtifactStore
) -> list[tuple[str, ArtifactRef]]:
    """The networks the paper scores, by score child name: each best checkpoint, and every
    checkpoint of the first run (trajectory)."""
    out = [(f"score/{n}", _best(run)) for n, run in trained.items()]
    first = spec.variants()[0].name
    prefix = f"{trained[first][1]}checkpoints/"
    for ref in sorted(store.list(prefix), key=lambda r: r.key):
        out.append((f"trajectory/{first}/{Path(ref.key).stem}", ref))
    return out


def _extract_children(
    spec: PaperSpec,
    trained: dict[str, tuple[Job, str]],
    store: ArtifactStore,
    data: dict[str, Any] | None,
) -> list[Child]:
    """An ExtractSpec per network to score, with the test images' responses (class
    selectivity; the worker's data set where the pipeline names none, as scoring read them),
    as a client would submit it, read by the extraction service's own spec_of."""

    study = {f"score/{v.name}" for v in spec.regularized()}

    def child(name: str, ref: ArtifactRef) -> Child:
        msg = extraction_pb2.ExtractSpec(
            checkpoint=_ref(ref),
            test_subset=spec.test_subset or 0,
            data=_ref(data) if data else None,
            # The study needs its networks' grating tuning only (C7's manipulation).
            stimuli=STUDY_STIMULI if name in study else (),
        )
        request = extraction_pb2.SubmitRequest(spec=msg)
        images = {"images": name not in study}
        return Child(
            f"extract/{name}",
            "extraction",
            lambda: extraction_servicer.spec_of(request, store) | images,
            EXTRACT_TASK,
        )

    return [child(name, ref) for name, ref in _scored(spec, trained, store)]


def _score_children(
    spec: PaperSpec,
    trained: dict[str, tuple[Job, str]],
    store: ArtifactStore,
    made: dict[str, Job],
) -> list[Child]:
    """A ScoreSpec per network on its extraction's activations, as a client would submit
    it, read by the scoring service's own spec_of."""

    study = {f"score/{v.name}" for v in spec.regularized()}

    def child(name: str) -> Child:
        activations = _output(made[f"extract/{name}"], "/summary.json")
        msg = scoring_pb2.ScoreSpec(
            activations=_ref(activations),
            permutations=spec.permutations,
            stimuli=STUDY_STIMULI if name in study else (),
        )
        request = scoring_pb2.SubmitRequest(spec=msg)
        return Child(name, "scoring", lambda: scoring_servicer.spec_of(request, store), SCORE_TASK)

    return [child(name) for name, _ in _scored(spec, trained, store)]


def _analysis_children(
    spec: PaperSpec,
    trained: dict[str, tuple[Job, str]],
    scored: dict[str, Job],
    store: ArtifactStore,
    data: dict[str, Any] | None,
) -> list[Child]:
    """A sweep and a shift-invariance test of each reference network, and a shift-invariance
    test of each network of the selectivity study, as a client would submit them, read by
    the ablation service's own spec_of."""

    def child(name: str, task: str, request: ablation_pb2.SubmitRequest) -> Child:
        return Child(name, "ablation", lambda: ablation_servicer.spec_of(request, store), task)

    out = []
    for v in spec.reference() + spec.regularized():
        common: dict[str, Any] = {
            "checkpoint": _ref(_best(trained[v.name])),
            "scores": _ref(_output(scored[v.name], "/units.csv")),
            "test_subset": spec.test_subset or 0,
            "data": _ref(data) if data else None,
        }
        sweep = ablation_pb2.SweepSpec(**common, random_halves=spec.random_halves)
        inv = ablation_pb2.InvarianceSpec(**common)
        if v.select_reg:
            # C7 reads the intact network's invariance: one ablated layer, one random set
            # and no damage matching keep the conditions measured beside it few.
            inv = ablation_pb2.InvarianceSpec(
                **common, ablate_layers=["layer1"], seeds=[0], damage_candidates=0, damage_matched=0
            )
        else:
            request = ablation_pb2.SubmitRequest(sweep=sweep)
            out.append(child(f"ablate/{v.name}", SWEEP_TASK, request))
        out.append(
            child(
                f"invariance/{v.name}",
                INVARIANCE_TASK,
                ablation_pb2.SubmitRequest(invariance=inv),
            )
        )
    return out


def _stage_fraction(children: list[Job]) -> float:
    return sum(1.0 if c.state == JobState.SUCCEEDED else c.fraction for c in children) / max(
        len(children), 1
    )


def _failed(children: list[Job]) -> Job | None:
    return next((c for c in children if c.state in (JobState.FAILED, JobState.CANCELLED)), None)


def _place(store: ArtifactStore, job: Job, root: Path, keep: int) -> None:
    """Download a child's outputs under `root`, keeping the last `keep` parts of each key
    (outputs are keyed analyses/<job>/<analysis>/<file> or runs/<job>/<file>)."""
    for ref in job.outputs:
        dest = root.joinpath(*ref.key.split("/")[-keep:])
        if not dest.is_file():
            store.get_file(ref, dest)


def build_report(
    store: ArtifactStore, spec: PaperSpec, children: dict[str, Job], out: Path, meta: dict[str, Any]
) -> None:
    """The pipeline's report from its children's artifacts (layout of report.paper)."""
    from orisel.report.paper import write_paper_report

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, job in children.items():
            stage, rest = name.split("/", 1)
            if stage == "train" and job.spec.get("population"):
                _place(store, job, root, keep=2)  # runs/<job>/<variant>/<file>
            elif stage == "train":
                _place(store, job, root / rest, keep=1)
            elif stage == "extract":
                continue  # the scorings' inputs, not the report's
            elif stage == "trajectory":
                variant, stem = rest.split("/")
                _place(store, job, root / variant / "trajectory" / stem, keep=1)
            else:
                _place(store, job, root / rest / "best", keep=2)
        write_paper_report(root, out, meta)


def _stage(
    stage: str,
    spec: PaperSpec,
    job: Job,
    store: ArtifactStore,
    made: dict[str, Job],
    settings: Settings,
) -> list[Child]:
    trained = _runs(made)
    data = job.spec.get("data")  # the images every child reads: trained on, scored on
    if stage == "train":
        population = spec.population or settings.population_size
        return _train_children(spec, data, population, store)
    if stage == "extract":
        return _extract_children(spec, trained, store, data)
    if stage == "score":
        return _score_children(spec, trained, store, made)
    scored = {k.removeprefix("score/"): j for k, j in made.items() if k.startswith("score/")}
    return _analysis_children(spec, trained, scored, store, data)


def _progress(job: Job, stage: str, before: float, weight: float, got: list[Job]) -> dict[str, Any]:
    # Never backwards: a child retried from its last stored segment reports less than before.
    fraction = max(job.fraction, before + weight * _stage_fraction(got))
    elapsed = time.time() - job.created_at
    done = sum(c.state == JobState.SUCCEEDED for c in got)
    # The stage's share of the whole, so a client can fill it from the children's own
    # progress between the pipeline's updates (which come only when a child ends).
    metrics = {
        "stage_jobs": float(len(got)),
        "stage_jobs_done": float(done),
        "stage_start": before,
        "stage_weight": weight,
    }
    accuracies = [c.metrics["val_accuracy"] for c in got if "val_accuracy" in c.metrics]
    if accuracies:
        metrics["mean_val_accuracy"] = sum(accuracies) / len(accuracies)
    return {
        "phase": f"{stage} ({done}/{len(got)} jobs)",
        "fraction": min(fraction, 0.99),
        "eta_seconds": elapsed * (1 - fraction) / fraction if fraction > 0 else -1.0,
        "metrics": metrics,
    }


@job_task(ADVANCE_TASK)
def advance(run: JobRun, settings: Settings) -> None:
    job = run.job
    store = run.store
    spec = PaperSpec.model_validate(job.spec["paper"])
    made = children_of(run)
    before = 0.0
    for stage, weight in STAGES[:-1]:
        got = ensure_children(run, _stage(stage, spec, job, store, made, settings), made)
        if bad := _failed(got):
            name = next(n for n, j in made.items() if j.id == bad.id)
            run.fail(f"{name} ({bad.kind} job {bad.id}) {bad.state.name.lower()}: {bad.error}")
            return
        if not all(c.state == JobState.SUCCEEDED for c in got):
            run.progress(**_progress(job, stage, before, weight, got))
            return  # given back: the next child to end sends the pipeline again
        before += weight
    run.progress(phase="report", fraction=before)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report"
        meta = {"job": job.id, "spec": spec.model_dump(mode="json")}
        meta["children"] = {n: j.id for n, j in made.items()}
        build_report(store, spec, made, out, meta)
        run.check()
        refs = upload_dir(store, f"analyses/{job.id}/report", out)
    run.succeed(sorted(refs, key=lambda r: not r.key.endswith("report.md")))
