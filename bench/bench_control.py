"""Control-plane benchmarks, each measured side by side in one run (ratios, not targets).

burst     200 concurrent Submit calls against 200 concurrent health Checks, same front end
          (`orisel serve training` on PostgreSQL), same client: p50/p99 and their ratio
streams   health-check p99 under a burst with 1,000 open Watch streams against none
list      ListJobs latency with 100,000 jobs in the database: first page, a page 50,000
          deep (keyset token), and filtered by kind and state
rss       idle resident memory of a front-end process (no torch)
faults    recovery time after each fault of tests/faults (a killed worker child, a killed
          worker, a killed controller, an emptied broker, a broker down, a killed S3
          server, a killed front end), from the moment of the fault to the job's end

Needs PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 (deploy/dev/services.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.procs import free_port
from tests.stack import pg_database

from orisel.api.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from orisel.api.training.v1 import training_pb2, training_pb2_grpc
from orisel.control import migrate
from orisel.control.db import JobDB
from orisel.control.schema import jobs as jobs_table

ROOT = Path(__file__).resolve().parents[1]


def _ms(lat: list[float]) -> dict[str, float]:
    a = np.array(lat) * 1000
    return {
        "p50_ms": round(float(np.percentile(a, 50)), 1),
        "p99_ms": round(float(np.percentile(a, 99)), 1),
    }


def _burst(call: Any, n: int) -> list[float]:
    barrier = threading.Barrier(n)

    def one(i: int) -> float:
        barrier.wait()
        t0 = time.perf_counter()
        call(i)
        return time.perf_counter() - t0

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def _front_end(url: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "ORISEL_DATABASE_URL": url,
        "ORISEL_GRPC_PORT": str(port),
        "ORISEL_ALLOW_PLAINTEXT": "true",
        "ORISEL_AUTH": "off",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "orisel", "serve", "training"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    address = f"127.0.0.1:{port}"
    with grpc.insecure_channel(address) as ch:
        deadline = time.monotonic() + 60
        while True:
            try:
                health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=1)
                break
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    return proc, address


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def bench_burst(address: str, n: int, rounds: int) -> dict[str, Any]:
    with grpc.insecure_channel(address) as ch:
        submit = training_pb2_grpc.TrainingServiceStub(ch).Submit
        check = health_pb2_grpc.HealthStub(ch).Check
        spec = training_pb2.TrainSpec(epochs=1, train_subset=1000)
        check(health_pb2.HealthCheckRequest())
        submits: list[float] = []
        checks: list[float] = []
        for _ in range(rounds):  # interleaved, so both see the same machine
            key = uuid.uuid4().hex

            def one(i: int, key: str = key) -> None:
                submit(training_pb2.SubmitRequest(idempotency_key=f"{key}-{i}", spec=spec))

            submits += _burst(one, n)
            checks += _burst(lambda i: check(health_pb2.HealthCheckRequest()), n)
    s, c = _ms(submits), _ms(checks)
    return {
        "concurrent": n,
        "rounds": rounds,
        "submit": s,
        "health": c,
        "submit_p99_over_health_p99": round(s["p99_ms"] / c["p99_ms"], 2),
    }


def bench_streams(address: str, n_streams: int, n: int) -> dict[str, Any]:
    with grpc.insecure_channel(address) as ch:
        stub = training_pb2_grpc.TrainingServiceStub(ch)
        job = stub.Submit(training_pb2.SubmitRequest(spec=training_pb2.TrainSpec(epochs=1))).job
        check = health_pb2_grpc.HealthStub(ch).Check
        quiet = _ms(_burst(lambda i: check(health_pb2.HealthCheckRequest()), n))

    opened = threading.Event()
    stop: asyncio.Future[None] | None = None
    loop = asyncio.new_event_loop()

    async def hold() -> None:
        nonlocal stop
        stop = loop.create_future()
        async with grpc.aio.insecure_channel(address) as ach:
            jobs = jobs_pb2_grpc.JobServiceStub(ach)
            calls = [jobs.WatchJob(jobs_pb2.WatchJobRequest(id=job.id)) for _ in range(n_streams)]
            await asyncio.gather(*(c.read() for c in calls))  # each stream has its first message
            opened.set()
            await stop
            for c in calls:
                c.cancel()

    thread = threading.Thread(target=loop.run_until_complete, args=(hold(),))
    thread.start()
    assert opened.wait(120), "streams did not open"
    with grpc.insecure_channel(address) as ch:
        check = health_pb2_grpc.HealthStub(ch).Check
        get = jobs_pb2_grpc.JobServiceStub(ch).GetJob
        busy = _ms(_burst(lambda i: check(health_pb2.HealthCheckRequest()), n))
        gets = _ms(_burst(lambda i: get(jobs_pb2.GetJobRequest(id=job.id)), n))
    assert stop is not None
    loop.call_soon_threadsafe(stop.set_result, None)
    thread.join(60)
    return {
        "open_streams": n_streams,
        "health_without": quiet,
        "health_with": busy,
        "get_with": gets,
        "health_p99_ratio": round(busy["p99_ms"] / quiet["p99_ms"], 2),
    }


def bench_list(url: str, address: str, total: int) -> dict[str, Any]:
    db = JobDB(url)
    now = time.time()
    rows = [
        {
            "id": uuid.uuid4().hex,
            "kind": "training" if i % 4 else "scoring",
            "state": 1 + i % 5,
            "spec": {"epochs": i % 200},
            "spec_sha256": "0" * 64,
            "task": "orisel.training.segment",
            "queue": "training",
            "metrics": {},
            "outputs": [],
            "version": 1,
            "created_at": now - total + i,
            "updated_at": now,
        }
        for i in range(total)
    ]
    t0 = time.perf_counter()
    with db.engine.begin() as c:
        for i in range(0, total, 5000):
            c.execute(jobs_table.insert(), rows[i : i + 5000])
    insert_s = time.perf_counter() - t0
    db.close()
    out: dict[str, Any] = {"jobs": total, "bulk_insert_s": round(insert_s, 1)}
    with grpc.insecure_channel(address) as ch:
        stub = jobs_pb2_grpc.JobServiceStub(ch)
        token = ""
        for _ in range(500):  # walk to 50,000 deep with pages of 100
            token = stub.ListJobs(
                jobs_pb2.ListJobsRequest(page_size=100, page_token=token)
            ).next_page_token
        cases = {
            "first_page": jobs_pb2.ListJobsRequest(page_size=100),
            "page_50000_deep": jobs_pb2.ListJobsRequest(page_size=100, page_token=token),
            "kind_and_state": jobs_pb2.ListJobsRequest(kind="training", state=2, page_size=100),
        }
        for name, request in cases.items():
            lat = []
            for _ in range(20):
                t0 = time.perf_counter()
                assert len(stub.ListJobs(request).jobs) == 100
                lat.append(time.perf_counter() - t0)
            out[name] = _ms(lat)
    return out


def bench_faults() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "recovery.json"
        env = {**os.environ, "ORISEL_FAULT_REPORT": str(report)}
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/faults"]
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        result: dict[str, Any] = json.loads(report.read_text()) if report.is_file() else {}
        result["pytest"] = (
            done.stdout.strip().splitlines()[-1] if done.stdout else done.stderr[-300:]
        )
        return result


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--concurrent", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--streams", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--no-faults", action="store_true", help="skip the fault suite (minutes)")
    args = ap.parse_args()
    results: dict[str, Any] = {}
    with pg_database() as url:
        migrate.upgrade(url)
        proc, address = _front_end(url)
        try:
            time.sleep(2)
            results["rss_idle_mb"] = _rss_mb(proc.pid)
            results["burst"] = bench_burst(address, args.concurrent, args.rounds)
            results["streams"] = bench_streams(address, args.streams, args.concurrent)
            results["list"] = bench_list(url, address, args.jobs)
            results["rss_after_mb"] = _rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(30)
    if not args.no_faults:
        results["faults"] = bench_faults()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
