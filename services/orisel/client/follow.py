"""Following jobs through JobService, whatever their kind: list, watch (a progress bar in
the units a user waits on), get and cancel."""

from __future__ import annotations

import argparse
from typing import Any

from tqdm import tqdm

from orisel.client.args import emit
from orisel.kernel.errors import OriselError


def job_dict(job: Any) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    out: dict[str, Any] = MessageToDict(job, preserving_proto_field_name=True)
    return out


def state_name(state: int) -> str:
    from orisel.api.common.v1 import common_pb2

    return str(common_pb2.JobState.Name(state)).removeprefix("JOB_STATE_").lower()


def job_line(job: Any) -> str:
    state = state_name(job.state)
    done = job.progress.fraction * 100
    line = f"{job.id}  {job.kind:9s} {state:9s} {done:5.1f}%  {job.progress.phase}"
    return line + (f"  error: {job.error}" if job.error else "")


def cmd_jobs(args: argparse.Namespace) -> int:
    from orisel.client.jobs import JobClient

    client = JobClient(args.server)
    try:
        jobs = client.list(kind=args.kind or "")
    finally:
        client.close()
    emit(
        args,
        {"jobs": [job_dict(j) for j in jobs]},
        "\n".join(job_line(j) for j in jobs) or "no jobs",
    )
    return 0


# Progress metrics shown as counts, and as epochs (two decimals); the rest with 4 digits.
COUNTS = frozenset({"step", "steps", "images"})
EPOCHS = frozenset({"epoch", "epochs"})
CHILDREN_POLL_S = 2.0
BAR = "{l_bar}{bar}| {n:.0f}/{total:.0f}% [{elapsed}<{remaining}{postfix}]"


def _shown(metrics: Any) -> dict[str, str]:
    out = {}
    for key, value in metrics.items():
        if key.startswith("stage_"):  # the phase says it ("score (1/2 jobs)")
            continue
        if key in COUNTS:
            out[key] = f"{value:.0f}"
        elif key in EPOCHS:
            out[key] = f"{value:.2f}"
        else:
            out[key] = f"{value:.4g}"
    return out


def _position(metrics: Any) -> str:
    """Where a training job is: ' epoch 0.25/2 step 40/158' (empty for other jobs)."""
    out = ""
    if "epoch" in metrics and "epochs" in metrics:
        out += f" epoch {metrics['epoch']:.2f}/{metrics['epochs']:.0f}"
    if "step" in metrics and "steps" in metrics:
        out += f" step {metrics['step']:.0f}/{metrics['steps']:.0f}"
    return out


def overall(job: Any, children: list[Any]) -> tuple[float, str]:
    """A parent's progress from its running stage's children: the stage's share of the whole
    (stage_start, stage_weight in the parent's metrics) filled by the mean of its children's
    fractions, and the phase of the child that is running, so the bar moves with every
    child's epochs and steps rather than only when a child ends."""
    from orisel.api.common.v1 import common_pb2

    m = job.progress.metrics
    fraction, phase = job.progress.fraction, job.progress.phase
    n = int(m.get("stage_jobs", 0))
    if "stage_start" not in m or not children or not n:
        return fraction, phase
    stage = sorted(children, key=lambda c: c.created_at.ToNanoseconds())[-n:]
    ended = common_pb2.JOB_STATE_SUCCEEDED
    done = [1.0 if c.state == ended else c.progress.fraction for c in stage]
    fraction = max(fraction, m["stage_start"] + m["stage_weight"] * sum(done) / len(stage))
    running = [c for c in stage if c.state == common_pb2.JOB_STATE_RUNNING]
    if running:
        c = running[0]
        phase = f"{phase} · {c.progress.phase}{_position(c.progress.metrics)}"
    return min(fraction, 0.99), phase


def follow(address: str, job_id: str, quiet: bool) -> Any:
    """Watch a job to its end with a progress bar; returns the final job. A job with children
    (the pipeline) also shows its running child's progress, read every few seconds."""
    import queue
    import threading

    from orisel.client.jobs import JobClient

    client = JobClient(address)
    updates: queue.Queue[Any] = queue.Queue()

    def stream() -> None:
        try:
            for update in client.watch(job_id):
                updates.put(update)
            updates.put(None)
        except BaseException as exc:  # handed to the main thread, which raises it
            updates.put(exc)

    bar = tqdm(total=100, unit="%", disable=quiet, dynamic_ncols=True, bar_format=BAR)
    job = None
    threading.Thread(target=stream, daemon=True).start()
    try:
        while True:
            try:
                item = updates.get(timeout=CHILDREN_POLL_S)
            except queue.Empty:
                if job is None:  # a slow first answer is no end of the stream
                    continue
                item = job  # no news from the job itself: refresh its children's share
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            job = item
            # Only a job that records its stage's share has children to read (the pipeline).
            staged = "stage_jobs" in job.progress.metrics
            children = client.list(parent_id=job.id) if staged else []
            fraction, phase = overall(job, children)
            bar.n = round(fraction * 100, 1)
            shown: dict[str, object] = {"state": state_name(job.state), "phase": phase}
            bar.set_postfix(shown | _shown(job.progress.metrics))
    finally:
        bar.close()
        client.close()
    if job is None:
        raise OriselError(f"job {job_id}: the service sent no update")
    return job


def cmd_watch(args: argparse.Namespace) -> int:
    from orisel.api.common.v1 import common_pb2

    job = follow(args.server, args.job, args.quiet or args.json)
    emit(args, job_dict(job), job_line(job))
    return 0 if job.state == common_pb2.JOB_STATE_SUCCEEDED else 1


def _one(args: argparse.Namespace, cancel: bool) -> int:
    from orisel.client.jobs import JobClient

    client = JobClient(args.server)
    try:
        job = client.cancel(args.job) if cancel else client.get(args.job)
    finally:
        client.close()
    emit(args, job_dict(job), job_line(job) + "".join(f"\n  {o.key}" for o in job.outputs))
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    return _one(args, cancel=False)


def cmd_cancel(args: argparse.Namespace) -> int:
    return _one(args, cancel=True)
