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
from pathlib import Path
from typing import Any

from orisel.ablation.spec import AblateSpec, InvarianceJob, InvarianceSpec, SweepJob
from orisel.control.celery_app import job_task
from orisel.control.job import Job, JobState
from orisel.control.lifecycle import Child, JobRun, children_of, ensure_children
from orisel.extraction.spec import ExtractJob, ExtractSpec
from orisel.kernel.errors import OriselError
from orisel.pipeline.spec import ADVANCE_TASK, PaperJob, PaperSpec, Variant
from orisel.runtime.settings import Settings
from orisel.scoring.extraction import activations_of
from orisel.scoring.spec import ScoreJob, TuneSpec
from orisel.store.backend import ArtifactRef, ArtifactStore
from orisel.store.scratch import upload_dir
from orisel.training.config import TrainConfig
from orisel.training.spec import Member, TrainJob

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


def _train_children(spec: PaperSpec, data: ArtifactRef | None, population: int) -> list[Child]:
    """One training job per network, or with `population` > 1 the networks in stacks of that
    many, each stack one population job (one model on one device)."""

    def job(variants: list[Variant], stacked: bool) -> TrainJob:
        study = bool(variants[0].select_reg)
        epochs, subset = spec.study_recipe() if study else (spec.epochs, spec.train_subset)
        # the same test images for training curves and analyses
        split = {"train_subset": subset, "val_size": spec.val_size, "test_subset": spec.test_subset}
        config: dict[str, Any] = {
            "epochs": epochs,
            "data": {k: v for k, v in split.items() if v is not None},
        }
        if study and (epochs, subset) != (spec.epochs, spec.train_subset):
            # A short study is compared within itself: what it analyses is its networks'
            # end, so only the first and last checkpoints are evaluated and written.
            config |= {"early_checkpoint_until": 0, "checkpoint_every_epochs": epochs}
        base = TrainConfig.model_validate(config)
        members = [
            Member(seed=v.seed, label_corruption=v.corruption, select_reg=v.select_reg)
            for v in variants
        ]
        return TrainJob(
            config=base if stacked else members[0].config(base),
            population=members if stacked else None,
            data=data,
            segment_epochs=spec.segment_epochs,
        )

    out = []
    plain = [v for v in spec.variants() if not v.select_reg]
    # The study's networks stack apart: their recipe may differ from the others'.
    for prefix, variants in (("stack", plain), ("study", spec.regularized())):
        if population <= 1:
            out += [Child(f"train/{v.name}", "training", job([v], False)) for v in variants]
            continue
        out += [
            Child(
                f"train/{prefix}{i // population}",
                "training",
                job(variants[i : i + population], True),
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
        train = TrainJob.of(job)
        if train.population:
            for variant, _ in train.networks():
                out[variant] = (job, f"runs/{job.id}/{variant}/")
        else:
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
    data: ArtifactRef | None,
) -> list[Child]:
    """An extraction per network to score, with the test images' responses (class
    selectivity; the worker's data set where the pipeline names none, as scoring read them)."""

    study = {f"score/{v.name}" for v in spec.regularized()}

    def child(name: str, ref: ArtifactRef) -> Child:
        # The study needs its networks' grating tuning only (C7's manipulation).
        asked = ExtractSpec(stimuli=STUDY_STIMULI) if name in study else ExtractSpec()
        job = ExtractJob(
            checkpoint=ref,
            data=data,
            test_subset=spec.test_subset,
            images=name not in study,
            extract=asked,
        )
        return Child(f"extract/{name}", "extraction", job)

    return [child(name, ref) for name, ref in _scored(spec, trained, store)]


def _score_children(
    spec: PaperSpec,
    trained: dict[str, tuple[Job, str]],
    store: ArtifactStore,
    made: dict[str, Job],
) -> list[Child]:
    """A scoring of each network on its extraction's activations."""

    study = {f"score/{v.name}" for v in spec.regularized()}

    def child(name: str) -> Child:
        tune = TuneSpec(permutations=spec.permutations)
        if name in study:
            tune = TuneSpec(permutations=spec.permutations, stimuli=STUDY_STIMULI)
        activations = activations_of(made[f"extract/{name}"])
        return Child(name, "scoring", ScoreJob(activations=activations, tune=tune))

    return [child(name) for name, _ in _scored(spec, trained, store)]


def _analysis_children(
    spec: PaperSpec,
    trained: dict[str, tuple[Job, str]],
    scored: dict[str, Job],
    data: ArtifactRef | None,
) -> list[Child]:
    """A sweep and a shift-invariance test of each reference network, and a shift-invariance
    test of each network of the selectivity study."""

    out = []
    for v in spec.reference() + spec.regularized():
        best = _best(trained[v.name])
        scores = _output(scored[v.name], "/units.csv")
        inputs: dict[str, Any] = {
            "checkpoint": best,
            "scores": scores,
            "test_subset": spec.test_subset,
            "data": data,
        }
        if v.select_reg:
            # C7 reads the intact network's invariance: one ablated layer, one random set
            # and no damage matching keep the conditions measured beside it few.
            asked = InvarianceSpec(
                ablate_layers=("layer1",), seeds=(0,), damage_candidates=0, damage_matched=0
            )
        else:
            asked = InvarianceSpec()
            sweep = SweepJob(**inputs, ablate=AblateSpec(random_halves=spec.random_halves))
            out.append(Child(f"ablate/{v.name}", "ablation", sweep))
        invariance = InvarianceJob(**inputs, invariance=asked)
        out.append(Child(f"invariance/{v.name}", "ablation", invariance))
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
            if stage == "train" and TrainJob.of(job).population:
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
    stage: str, pipeline: PaperJob, store: ArtifactStore, made: dict[str, Job], settings: Settings
) -> list[Child]:
    spec, data = pipeline.paper, pipeline.data  # data: the images every child trains and reads
    trained = _runs(made)
    if stage == "train":
        return _train_children(spec, data, spec.population or settings.population_size)
    if stage == "extract":
        return _extract_children(spec, trained, store, data)
    if stage == "score":
        return _score_children(spec, trained, store, made)
    scored = {k.removeprefix("score/"): j for k, j in made.items() if k.startswith("score/")}
    return _analysis_children(spec, trained, scored, data)


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
    pipeline = PaperJob.of(job)
    spec = pipeline.paper
    made = children_of(run)
    before = 0.0
    for stage, weight in STAGES[:-1]:
        got = ensure_children(run, _stage(stage, pipeline, store, made, settings), made)
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
