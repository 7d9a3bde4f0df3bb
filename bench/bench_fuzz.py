"""A longer run of the request fuzzer (tests/security/fuzz.py) against a live server with
every service: requests tried, answers by status code, failures (UNKNOWN or INTERNAL) and
whether the server stayed up.

usage: python bench/bench_fuzz.py [--examples N]   (per RPC method; default 300)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.security.fuzz import ESCAPE_DIR, Report, fuzz, methods
from tests.stack import stack

from orisel.runtime.settings import QUEUES


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=300)
    args = parser.parse_args()
    report = Report()
    with tempfile.TemporaryDirectory() as tmp, stack(Path(tmp)) as live:
        live.serve(QUEUES)
        t0 = time.perf_counter()
        with grpc.insecure_channel(live.address) as channel:
            fuzz(channel, args.examples, report, seed=1)
            up = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        seconds = time.perf_counter() - t0
    n_methods = len(list(methods()))
    print(f"fuzz: {report.examples} requests over {n_methods} RPC methods in {seconds:.0f} s")
    print(f"  answers: {dict(sorted(report.codes.items()))}")
    print(f"  failures (UNKNOWN/INTERNAL): {len(report.failures)}")
    for failure in report.failures[:20]:
        print(f"    {failure}")
    print(
        f"  server healthy after: {up.status == 1}; escape folder exists: "
        f"{Path(ESCAPE_DIR).exists()}"
    )
    return 1 if report.failures or up.status != 1 else 0


if __name__ == "__main__":
    raise SystemExit(main())
