"""Every Prometheus metric orisel exports, in one place.

Labels stay low-cardinality: kinds, states, services, methods, codes, splits. Training
gauges carry the run's job id (one series per run in flight, so a stalled run can be named
in an alert); histograms never do.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily

# Training series describe the segment a worker process is running (Prometheus adds the
# instance): no job ids as labels, so the number of series stays bounded however many jobs
# run. The job itself is found with `orisel jobs` or in the worker's log.
TRAINING_EPOCH = Gauge("orisel_training_epoch", "Epochs completed by the run in progress")
TRAINING_STEPS = Counter("orisel_training_step", "Optimizer steps taken")
TRAINING_SAMPLES = Counter("orisel_training_samples", "Training images seen")
TRAINING_LOSS = Gauge("orisel_training_loss", "Latest loss at a checkpoint", ["split"])
TRAINING_ACCURACY = Gauge("orisel_training_accuracy", "Latest accuracy at a checkpoint", ["split"])
TRAINING_PROGRESS = Gauge(
    "orisel_training_last_progress_timestamp_seconds",
    "Unix time of the running segment's latest progress report (stalls show as an old value)",
)
JOBS = Counter("orisel_jobs", "Job state transitions", ["kind", "state"])
JOBS_NOW = Gauge(
    "orisel_jobs_current",
    "Jobs in the database by kind and state (exported by the controller only)",
    ["kind", "state"],
)
TASK_SECONDS = Histogram(
    "orisel_task_duration_seconds",
    "Celery task run time",
    ["task", "outcome"],
    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 21600),
)
GRPC_STARTED = Counter("orisel_grpc_server_started", "RPCs started", ["service", "method", "type"])
GRPC_HANDLED = Counter(
    "orisel_grpc_server_handled", "RPCs completed, by status", ["service", "method", "code"]
)
GRPC_SECONDS = Histogram(
    "orisel_grpc_server_handling_seconds",
    "RPC handling time (a Watch stream: its whole life)",
    ["service", "method", "type"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300, 3600),
)
STORE_BYTES = Counter("orisel_store_bytes", "Bytes moved to and from the store", ["op"])
STORE_SECONDS = Histogram(
    "orisel_store_operation_seconds",
    "Artifact store put/get time",
    ["op", "backend"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120),
)


class QueueCollector:
    """orisel_queue_messages{queue}: messages waiting in each Celery queue (Redis lists),
    read at scrape time, for backlog alerts (KEDA reads the same lists to scale workers)."""

    def __init__(self, broker_url: str, prefix: str, queues: tuple[str, ...]) -> None:
        import redis

        self.client = redis.Redis.from_url(broker_url, socket_timeout=2)
        self.prefix = prefix
        self.queues = queues

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "orisel_queue_messages", "Messages waiting in a Celery queue", labels=["queue"]
        )
        try:
            for q in self.queues:
                family.add_metric([q], float(self.client.llen(f"{self.prefix}{q}")))
        except OSError:
            return  # broker unreachable: no sample rather than a wrong zero
        yield family


def watch_queues(broker_url: str, prefix: str, queues: tuple[str, ...]) -> None:
    if broker_url.startswith("redis"):
        REGISTRY.register(QueueCollector(broker_url, prefix, queues))


def set_job_counts(
    counts: dict[tuple[str, str], int], kinds: Iterable[str], states: Iterable[str]
) -> None:
    """Refresh the job-state gauges over every (kind, state) the control plane has, so one no
    longer present reads 0."""
    for kind in kinds:
        for state in states:
            JOBS_NOW.labels(kind, state).set(counts.get((kind, state), 0))


def training_done() -> None:
    """Drop the gauges when a segment ends, so an idle worker never looks stalled."""
    for gauge in (TRAINING_EPOCH, TRAINING_PROGRESS):
        gauge.set(float("nan"))
    for split in ("train", "validation", "test"):
        for per_split in (TRAINING_LOSS, TRAINING_ACCURACY):
            with contextlib.suppress(KeyError):
                per_split.remove(split)


def serve(port: int, host: str = "127.0.0.1") -> None:
    """Expose /metrics on host:port (port 0: not at all) from a background thread."""
    if port:
        start_http_server(port, addr=host)


@contextmanager
def timed_store(op: str, backend: str, size: int) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    STORE_SECONDS.labels(op, backend).observe(time.perf_counter() - t0)
    STORE_BYTES.labels(op).inc(size)


def training_progress(steps: int, images: int, epoch: float) -> None:
    TRAINING_STEPS.inc(steps)
    TRAINING_SAMPLES.inc(images)
    TRAINING_EPOCH.set(epoch)
    TRAINING_PROGRESS.set(time.time())


def training_checkpoint(epoch: float, metrics: dict[str, dict[str, float] | None]) -> None:
    TRAINING_EPOCH.set(epoch)
    for split, values in metrics.items():
        if values:
            TRAINING_LOSS.labels(split).set(values["loss"])
            TRAINING_ACCURACY.labels(split).set(values["accuracy"])
    TRAINING_PROGRESS.set(time.time())
