"""Every RPC of every service, fuzzed against a live server: no answer is UNKNOWN or INTERNAL,
the server stays up, and nothing is written outside its configured roots."""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from orisel.runtime.settings import QUEUES
from tests.security.fuzz import ESCAPE_DIR, Report, fuzz, methods
from tests.stack import stack

pytestmark = pytest.mark.service  # servicers in this process, on a real database
EXAMPLES = int(os.environ.get("ORISEL_FUZZ_EXAMPLES", "20"))  # per method


def test_no_request_breaks_a_server_or_escapes_its_roots(tmp_path: Path) -> None:
    root = tmp_path / "roots"
    with stack(root) as live:
        live.serve(QUEUES)
        report = Report()
        with grpc.insecure_channel(live.address) as channel:
            fuzz(channel, EXAMPLES, report)
            health = health_pb2_grpc.HealthStub(channel)
            assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == 1
    assert report.failures == []
    assert report.examples >= EXAMPLES * len(list(methods()))
    assert len(report.codes) > 2  # refusals of several kinds, and some calls that succeed
    assert not Path(ESCAPE_DIR).exists()
    written = {p.name for p in root.iterdir()} if root.exists() else set()
    assert written <= {"cache", "store", "work"}
    for p in (root / "store").rglob("*"):
        assert ".." not in p.relative_to(root / "store").parts
