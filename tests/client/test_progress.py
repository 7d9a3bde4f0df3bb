"""Progress in the units a user waits on: a training loop reports every few seconds however
slow its steps, and a pipeline's bar fills from its running children between its own
updates (which come only when a child ends)."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from orisel.api.common.v1 import common_pb2
from orisel.client.follow import _shown, overall
from orisel.kernel.progress import PROGRESS_EVERY_S, PROGRESS_STEPS, ProgressDue


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_slow_loop_reports_within_seconds_and_a_fast_one_every_n_steps() -> None:
    clock = Clock()
    due = ProgressDue(clock)
    slow = []
    for step in range(1, 10):
        clock.now += 2.0  # a step of two seconds: PROGRESS_STEPS of them would be minutes
        if due(step):
            slow.append(step)
    assert slow == [3, 6, 9]  # every PROGRESS_EVERY_S (5 s) of stepping
    assert PROGRESS_EVERY_S <= 5.0
    clock, fast = Clock(), []
    due = ProgressDue(clock)
    for step in range(1, 2 * PROGRESS_STEPS + 1):
        clock.now += 0.001
        if due(step):
            fast.append(step)
    assert fast == [PROGRESS_STEPS, 2 * PROGRESS_STEPS]


def _job(
    state: common_pb2.JobState, fraction: float, phase: str, metrics: dict[str, float], created: int
) -> common_pb2.Job:
    job = common_pb2.Job(state=state, progress=common_pb2.Progress(fraction=fraction, phase=phase))
    job.progress.metrics.update(metrics)
    job.created_at.CopyFrom(Timestamp(seconds=created))
    return job


def test_a_pipeline_bar_fills_from_its_running_stage() -> None:
    running, succeeded = common_pb2.JOB_STATE_RUNNING, common_pb2.JOB_STATE_SUCCEEDED
    stage = {"stage_jobs": 2, "stage_jobs_done": 1, "stage_start": 0.6, "stage_weight": 0.2}
    pipeline = _job(running, 0.7, "score (1/2 jobs)", stage, 0)
    children = [
        _job(succeeded, 1.0, "done", {}, 1),  # an earlier stage's child: not counted
        _job(succeeded, 1.0, "done", {}, 2),
        _job(running, 0.5, "train", {"epoch": 0.254, "epochs": 2, "step": 40, "steps": 158}, 3),
    ]
    fraction, phase = overall(pipeline, children)
    # 0.6 + 0.2 * (1.0 + 0.5) / 2, computed by hand
    assert abs(fraction - 0.75) < 1e-12
    assert phase == "score (1/2 jobs) · train epoch 0.25/2 step 40/158"
    # Without the stage's share the job's own numbers stand.
    alone = _job(running, 0.3, "train", {"epoch": 0.5}, 0)
    assert overall(alone, children) == (alone.progress.fraction, "train")


def test_epochs_show_two_decimals_and_counts_none() -> None:
    shown = _shown({"epoch": 0.249201, "step": 40.0, "val_accuracy": 0.253968, "stage_jobs": 3})
    assert shown == {"epoch": "0.25", "step": "40", "val_accuracy": "0.254"}
