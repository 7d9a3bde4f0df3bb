"""Chaos soak: many small training jobs submitted at a steady rate while faults between hosts
are injected at random, then a checker over every job.

Hosts: this one runs PostgreSQL, Redis, the front end, the controller and one worker; two
worker hosts (network namespaces, tests/faults/hosts.py) reach the database and broker over
links, the second with 200 ms of latency. Faults, one at a time, each for a few seconds to
past a lease: a worker host partitioned (link down), a link losing 20% of its packets, a
worker killed (SIGKILL, its pool children too) and restarted, a worker host restarted with
its clock 10 minutes ahead or behind (libfaketime).

Printed (and --json): jobs submitted, ended (by state), lost (not ended once the faults
stopped and the backlog drained), duplicated (more than one job for an idempotency key),
wrong (weights unlike the undisturbed run of the same spec), mismatched (stored objects
unlike the undisturbed run's: a name only one has, or other bytes; tests.faults.jobs.
objects), with how each mismatched job differs (which objects, which of their entries), and
for the jobs running on a faulted worker the seconds from the fault to their end (p50, p90,
p99, max). Each job is checked once it ended and its objects deleted then, so the disk
holds only the running; --keep DIR keeps there the objects of every mismatched job, the
undisturbed runs' and the workers' logs.

Needs root (namespaces), nftables and faketime besides PostgreSQL and Redis
(deploy/dev/services.sh installs them).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import torch
from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import make_arrays, python_files, write_tar
from tests.faults.hosts import Remote, remote
from tests.faults.jobs import children_of, differences, objects, start_controller
from tests.stack import Stack, stack

from orisel.api.training.v1 import training_pb2, training_pb2_grpc
from orisel.control.job import Job, JobState
from orisel.control.schema import jobs
from orisel.store.backend import LocalStore
from orisel.training.spec import TrainJob

# Two segments of a few steps each: small enough for thousands, long enough to be cut.
SPEC = {
    "epochs": 2,
    "epochs_per_segment": 1,
    "batch_size": 4,
    "train_subset": 16,
    "val_size": 16,
    "test_subset": 20,
    "early_checkpoint_until": 0.0,
}
SEGMENTS = 2
SEEDS = 4  # distinct specs: each job must end with its seed's undisturbed weights
FAULTS = ("partition", "lossy", "kill", "skew")


def digest(live: Stack, job: Job) -> str:
    """The sha256 of the job's best weights, tensor by tensor."""
    store = LocalStore(live.settings.store_root, live.settings.bucket)
    ref = next(r for r in job.outputs if r.key.endswith("best.pt"))
    path = store.get_file(ref, live.settings.work_dir / "check" / f"{job.id}.pt")
    h = hashlib.sha256()
    for name, value in sorted(torch.load(path, weights_only=False)["model"].items()):
        h.update(name.encode())
        h.update(value.cpu().numpy().tobytes())
    path.unlink()
    return h.hexdigest()


class Worker:
    """One worker on this host or another, restartable with a clock off by `clock`."""

    def __init__(self, live: Stack, name: str, far: Remote | None, logs: Path) -> None:
        self.live, self.name, self.far, self.log = live, name, far, logs / f"{name}.log"
        self.proc = self.start()

    def start(self, clock: str = "") -> subprocess.Popen[bytes]:
        if self.far is None:
            self.proc = self.live.worker("training", pool="prefork", log=self.log)
        else:
            self.proc = self.far.worker(self.live, self.log, clock=clock)
        return self.proc

    def pids(self) -> set[int]:
        """The worker's process tree (faketime's wrapper, the worker, its pool)."""
        found, todo = set(), [self.proc.pid]
        while todo:
            pid = todo.pop()
            found.add(pid)
            todo += children_of(pid)
        return found

    def kill(self) -> None:
        for pid in self.pids():
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait()

    def restart(self, clock: str = "") -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()
        self.start(clock)


def running_on(live: Stack, worker: Worker) -> list[str]:
    """The jobs the worker's processes hold now (a lease owner is host:pid:nonce)."""
    pids = {str(p) for p in worker.pids()}
    running = select(jobs.c.id, jobs.c.lease_owner).where(jobs.c.state == int(JobState.RUNNING))
    with live.db.connect() as c:
        rows = c.execute(running).all()
    return [r.id for r in rows if r.lease_owner and r.lease_owner.split(":")[1] in pids]


class Chaos:
    """Injects one fault at a time at random until stopped; records what each one hit."""

    def __init__(self, live: Stack, workers: list[Worker], seed: int, every_s: float) -> None:
        self.live, self.workers, self.every_s = live, workers, every_s
        self.rng = random.Random(seed)
        self.stopped = threading.Event()
        self.hit: list[tuple[str, float, list[str]]] = []  # (fault, at, jobs held)
        self.thread = threading.Thread(target=self.run, daemon=True, name="chaos")

    def run(self) -> None:
        while not self.stopped.wait(self.rng.uniform(0.5, 1.5) * self.every_s):
            fault = self.rng.choice(FAULTS)
            remotes = [w for w in self.workers if w.far is not None]
            worker = self.rng.choice(self.workers if fault == "kill" else remotes)
            self.inject(fault, worker)

    def inject(self, fault: str, worker: Worker) -> None:
        held = running_on(self.live, worker)
        self.hit.append((fault, time.monotonic(), held))
        host = worker.far.host if worker.far else None
        lease = self.live.settings.lease_s
        if fault == "partition" and host:
            host.partition()
            self.stopped.wait(lease * self.rng.uniform(0.5, 3.0))
            host.heal()
        elif fault == "lossy" and host:
            host.lossy(20)
            self.stopped.wait(self.rng.uniform(2, 10))
            host.heal()
        elif fault == "kill":
            worker.kill()
            self.stopped.wait(self.rng.uniform(0.5, 3.0))
            worker.start()
        elif fault == "skew":
            worker.restart(self.rng.choice(["+10m", "-10m"]))


def submitter(address: str, rate: float, duration: float, keys: list[str]) -> None:
    """Submit `rate` jobs a second for `duration` seconds; a refused call is retried with
    its key, as a client would (the key makes it one job however often it is sent)."""
    with grpc.insecure_channel(address) as ch:
        stub = training_pb2_grpc.TrainingServiceStub(ch)  # type: ignore[no-untyped-call]
        t0 = time.monotonic()
        i = 0
        while (now := time.monotonic()) - t0 < duration:
            key = f"soak-{i}"
            spec = training_pb2.TrainSpec(**SPEC, seed=i % SEEDS)  # type: ignore[arg-type]
            for _ in range(50):
                try:
                    stub.Submit(training_pb2.SubmitRequest(idempotency_key=key, spec=spec))
                    break
                except grpc.RpcError:
                    time.sleep(0.5)
            keys.append(key)
            i += 1
            time.sleep(max(0.0, t0 + i / rate - now))


def all_jobs(live: Stack) -> Iterator[Job]:
    token = ""
    while True:
        page, token = live.db.list(page_size=1000, page_token=token)
        yield from page
        if not token:
            return


class Checker:
    """Checks every job once it ended, then frees what it stored: thousands of runs'
    checkpoints (about 25 MB each, in the store and in the workers' folders) would fill the
    disk. A job passes when it is the undisturbed run of its spec: the same weights, and the
    same objects stored under its prefix, byte for byte, with one manifest per segment."""

    def __init__(self, live: Stack, expected: dict[int, Reference], keep: Path | None) -> None:
        self.live, self.expected, self.keep = live, expected, keep
        self.store = LocalStore(live.settings.store_root, live.settings.bucket)
        self.scratch = live.settings.work_dir / "check"
        self.verdicts: dict[str, tuple[str, bool, bool]] = {}  # id: (state, weights, objects)
        self.differences: dict[str, list[str]] = {}  # id: how its objects differ
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True, name="checker")

    def run(self) -> None:
        while not self.stopped.wait(2.0):
            self.sweep()

    def sweep(self) -> None:
        for job in all_jobs(self.live):
            mine = job.idempotency_key.startswith("soak-")
            if mine and job.state.done and job.id not in self.verdicts:
                self.verdicts[job.id] = self.verdict(job)

    def verdict(self, job: Job) -> tuple[str, bool, bool]:
        weights = same = False
        if job.state == JobState.SUCCEEDED:
            ref = self.expected[TrainJob.of(job).config.seed]
            weights = digest(self.live, job) == ref.digest
            same = objects(self.store, job.id, self.scratch) == ref.objects
            if not same:
                found = differences(self.store, ref.job_id, job.id, self.scratch)
                self.differences[job.id] = found
                if self.keep is not None:
                    self.keep_objects(job.id, ref.job_id, found)
        for ref_ in self.store.list(f"runs/{job.id}/"):
            self.store.delete(ref_.key)
        shutil.rmtree(self.live.settings.work_dir / "runs" / job.id, ignore_errors=True)
        shutil.rmtree(self.scratch / job.id, ignore_errors=True)
        return job.state.name, weights, same

    def keep_objects(self, job_id: str, reference_id: str, found: list[str]) -> None:
        """The job's objects and its undisturbed twin's (once), and how they differ."""
        assert self.keep is not None
        for of in (job_id, reference_id):
            if (self.keep / of).exists():
                continue
            for ref in self.store.list(f"runs/{of}/"):
                self.store.get_file(ref, self.keep / of / ref.key.removeprefix(f"runs/{of}/"))
        text = f"{job_id} against {reference_id}, the undisturbed run of its spec:\n"
        (self.keep / job_id / "differences.txt").write_text(text + "\n".join(found) + "\n")


@dataclass(frozen=True)
class Reference:
    """The undisturbed run of a spec: its job, best weights' digest and stored objects."""

    job_id: str
    digest: str
    objects: dict[str, str]


def figures(live: Stack, keys: list[str], checker: Checker) -> dict[str, Any]:
    jobs = [j for j in all_jobs(live) if j.idempotency_key.startswith("soak-")]
    by_key = Counter(j.idempotency_key for j in jobs)
    verdicts = checker.verdicts.values()
    return {
        "submitted": len(keys),
        "jobs": len(jobs),
        "ended": sum(j.state.done for j in jobs),
        "states": dict(Counter(state for state, _, _ in verdicts)),
        "lost": sum(k not in by_key for k in keys) + sum(not j.state.done for j in jobs),
        "duplicated": sum(n - 1 for n in by_key.values()),
        "wrong": sum(state == "SUCCEEDED" and not weights for state, weights, _ in verdicts),
        "mismatched": sum(state == "SUCCEEDED" and not same for state, _, same in verdicts),
        # What differed, counted over the mismatched jobs: each line with job ids left out.
        "differences": dict(
            Counter(line for found in checker.differences.values() for line in found)
        ),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=120.0, help="seconds of submissions")
    p.add_argument("--rate", type=float, default=1.0, help="jobs submitted a second")
    p.add_argument("--fault-every", type=float, default=8.0, help="mean seconds between faults")
    p.add_argument("--drain", type=float, default=600.0, help="seconds allowed for the backlog")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument(
        "--keep",
        type=Path,
        help="keep here the objects of each mismatched job, the undisturbed runs' and the logs",
    )
    args = p.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_chaos needs root: it makes network namespaces")
    with tempfile.TemporaryDirectory(prefix="orisel-chaos-") as tmp, ExitStack() as ctx:
        root = Path(tmp)
        data = write_tar(root / "cifar-10-python.tar.gz", python_files(make_arrays()))
        live = ctx.enter_context(stack(root, data=data, lease_s=3.0, dispatch_timeout_s=4.0))
        live.serve(("training",))
        start_controller(live)
        logs = root / "logs"
        logs.mkdir()
        near = Worker(live, "near", None, logs)
        expected: dict[int, Reference] = {}
        for seed in range(SEEDS):  # the undisturbed runs, one per spec
            with grpc.insecure_channel(live.address) as ch:
                spec = training_pb2.TrainSpec(**SPEC, seed=seed)  # type: ignore[arg-type]
                request = training_pb2.SubmitRequest(idempotency_key=f"ref-{seed}", spec=spec)
                stub = training_pb2_grpc.TrainingServiceStub(ch)  # type: ignore[no-untyped-call]
                job_id = stub.Submit(request).job.id
            while not (job := live.db.get(job_id)).state.done:
                time.sleep(0.1)
            assert job.state == JobState.SUCCEEDED, job.error
            store = LocalStore(live.settings.store_root, live.settings.bucket)
            scratch = live.settings.work_dir / "check"
            expected[seed] = Reference(job.id, digest(live, job), objects(store, job.id, scratch))
        workers = [near]
        for i, delay in enumerate((0.0, 0.2)):
            far = ctx.enter_context(remote(live, f"chaos{i}", delay_s=delay))
            workers.append(Worker(live, f"far{i}", far, logs))
        chaos = Chaos(live, workers, args.seed, args.fault_every)
        checker = Checker(live, expected, args.keep)
        keys: list[str] = []
        t0 = time.monotonic()
        chaos.thread.start()
        checker.thread.start()
        submitter(live.address, args.rate, args.duration, keys)
        chaos.stopped.set()
        chaos.thread.join()
        for w in workers[1:]:
            if w.proc.poll() is not None:
                w.start()
        deadline = time.monotonic() + args.drain
        while time.monotonic() < deadline:
            if all(j.state.done for j in all_jobs(live)):
                break
            time.sleep(1.0)
        drained = time.monotonic() - t0
        checker.stopped.set()
        checker.thread.join()
        checker.sweep()
        ends = {j.id: j.finished_at for j in all_jobs(live)}
        result = figures(live, keys, checker)
        # Seconds from each fault to the end of every job its worker held then. finished_at
        # is the database's clock; the fault's moment is mapped onto it from this process.
        offset = time.time() - time.monotonic()
        recovery = [
            ends[j] - (at + offset) for _, at, held in chaos.hit for j in held if ends.get(j)
        ]
        result |= {
            "seconds": round(drained, 1),
            "faults": dict(Counter(f for f, _, _ in chaos.hit)),
            "jobs_hit": len(recovery),
        }
        if recovery:
            pct = np.percentile(recovery, [50, 90, 99])
            result["recovery_s"] = {
                "p50": round(float(pct[0]), 1),
                "p90": round(float(pct[1]), 1),
                "p99": round(float(pct[2]), 1),
                "max": round(max(recovery), 1),
            }
        print(json.dumps(result, indent=1))
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            shutil.copytree(logs, args.keep / "logs", dirs_exist_ok=True)
            (args.keep / "figures.json").write_text(json.dumps(result, indent=1))
        if result["lost"] or result["duplicated"] or result["wrong"] or result["mismatched"]:
            sys.exit(1)


if __name__ == "__main__":
    main()
