"""A real Prometheus scrapes a running training service and a worker during a short
training job; its API shows the training metrics moving and the RPCs counted."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from orisel.api.common.v1 import common_pb2
from orisel.api.training.v1 import training_pb2, training_pb2_grpc
from orisel.runtime import metrics
from tests.procs import free_port
from tests.stack import REDIS, stack

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="needs Debian's prometheus"),
]
EPOCHS = 8  # 63 steps each at batch 4, in two segments (5 + 3 epochs): long enough to scrape


def _query(base: str, promql: str, **params: Any) -> list[dict[str, Any]]:
    path = "query_range" if "start" in params else "query"
    url = f"{base}/api/v1/{path}?" + urllib.parse.urlencode({"query": promql, **params})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return list(body["data"]["result"])


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[str, int, int]]:
    service_port, worker_port, port = free_port(), free_port(), free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: orisel-training\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{service_port}']}}]\n"
        "  - job_name: orisel-worker-training\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{worker_port}']}}]\n"
    )
    proc = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/-/ready", timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("prometheus did not become ready")
    yield base, service_port, worker_port
    proc.terminate()
    proc.wait(10)


def test_prometheus_sees_training_move(
    prometheus: tuple[str, int, int], tmp_path: Path, python_archive: Path
) -> None:
    base, service_port, worker_port = prometheus
    with stack(tmp_path, data=python_archive, metrics_port=worker_port, segment_epochs=5) as live:
        live.worker("training")
        # This process hosts the service and the controller, as `orisel serve` and
        # `orisel controller` do.
        metrics.watch_queues(REDIS, live.settings.broker_prefix, ("training",))
        metrics.serve(service_port)
        live.serve(("training",))
        live.start_controller()
        with grpc.insecure_channel(live.address) as channel:
            _train_and_scrape(base, training_pb2_grpc.TrainingServiceStub(channel))


def _train_and_scrape(base: str, stub: training_pb2_grpc.TrainingServiceStub) -> None:
    start = time.time()
    spec = training_pb2.TrainSpec(epochs=EPOCHS, batch_size=4, val_size=50)
    job = stub.Submit(training_pb2.SubmitRequest(spec=spec)).job
    for update in stub.Watch(training_pb2.WatchRequest(id=job.id), timeout=300):
        job = update.job
    assert job.state == common_pb2.JOB_STATE_SUCCEEDED, job.error
    time.sleep(3)  # one more scrape after the end
    window = {"start": start, "end": time.time(), "step": "1"}
    up = _query(base, "up")
    assert {r["metric"]["job"]: r["value"][1] for r in up} == {
        "orisel-training": "1",
        "orisel-worker-training": "1",
    }
    worker = '{job="orisel-worker-training"}'
    steps = _query(base, f"orisel_training_step_total{worker}", **window)
    values = [float(v) for _, v in steps[0]["values"]]
    assert values[-1] == EPOCHS * 63  # every step counted, across the run's two segments
    assert len(set(values)) >= 3  # seen moving, not only at the end
    epoch = _query(base, f"max_over_time(orisel_training_epoch{worker}[5m])")
    assert 1.0 <= float(epoch[0]["value"][1]) <= EPOCHS
    acc = _query(base, 'max_over_time(orisel_training_accuracy{split="validation"}[5m])')
    assert 0.0 <= float(acc[0]["value"][1]) <= 1.0
    # The finished run's progress reads as no value (NaN), so an idle worker never looks
    # stalled; and no series is labelled with a job id.
    last = _query(base, f"orisel_training_last_progress_timestamp_seconds{worker}")
    assert last[0]["value"][1] == "NaN"
    assert _query(base, "orisel_training_last_progress_timestamp_seconds > 0") == []
    assert _query(base, f'{{__name__=~"orisel_.+", run="{job.id}"}}') == []
    assert _query(base, '{__name__=~"orisel_.+", job_id!=""}') == []
    queued = _query(base, 'orisel_queue_messages{queue="training"}')
    assert float(queued[0]["value"][1]) == 0.0
    submits = _query(
        base,
        'orisel_grpc_server_handled_total{method="Submit",service="TrainingService",code="OK"}',
    )
    assert float(submits[0]["value"][1]) >= 1
    assert submits[0]["metric"]["code"] == "OK"
    tasks = _query(base, "orisel_task_duration_seconds_count")
    assert {r["metric"]["task"] for r in tasks} == {"orisel.training.segment"}
